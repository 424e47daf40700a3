//! The `worker` Lambda function: SQS batches of job ids from the jobs queue,
//! answered with partial batch failures.

use lambda_runtime::{LambdaEvent, service_fn};
use mpanel::Needs;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let state = mpanel::init_function(Needs { pdns: true, ssh: true, sqs: true, ..Needs::NONE }).await;
    let state = &state;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| mpanel::lambda::handle_jobs_batch(state, event))).await
}
