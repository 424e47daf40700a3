//! The `migrate` Lambda function: the stack's `Custom::Migrations` resource.
//! Configuration is read per invocation, so even a configuration error is
//! answered to CloudFormation (FAILED) instead of failing the container's init.

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    mpanel::telemetry::init();
    // The CloudFormation response URL is reached by reqwest's own TLS set-up,
    // which needs the process's default provider.
    mpanel::tls::install_default_provider();
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
    let http = &http;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        mpanel::lambda::handle_migrations(&mpanel::config::process_env(), http, event).await
    }))
    .await
}
