//! The `scheduler` Lambda function: one sweep pass per EventBridge tick.

use lambda_runtime::{LambdaEvent, service_fn};
use mpanel::Needs;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let state = mpanel::init_function(Needs { sqs: true, ..Needs::NONE }).await;
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| mpanel::lambda::handle_schedule(state, event))).await
}
