//! The `migrate` Lambda function: the stack's `Custom::Migrations` resource.
//! Configuration is read per invocation, so even a configuration error is
//! answered to CloudFormation (FAILED) instead of failing the container's init.

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    mpanel::telemetry::init();
    // CloudFormation's response URL is a presigned S3 URL: the web's roots,
    // through the one client stack (outbound.rs) every other call uses.
    let tls = mpanel::tls::client_config_trusting(mpanel::tls::web_roots())?;
    let http =
        mpanel::outbound::client(tls, std::time::Duration::from_secs(10), Some(std::time::Duration::from_secs(30)))?;
    let http = &http;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        mpanel::lambda::handle_migrations(&mpanel::config::process_env(), http, event).await
    }))
    .await
}
