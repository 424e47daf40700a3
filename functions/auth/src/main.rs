//! The `auth` Lambda function: serves mPanel's auth routes (and health checks).

use mpanel::app::{Function, function_app};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let state = mpanel::init_function(Function::Auth.needs()).await;
    lambda_http::run(function_app(Function::Auth, state)).await
}
