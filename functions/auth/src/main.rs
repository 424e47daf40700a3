//! The `auth` Lambda function: serves mPanel's auth routes (and health checks).

use mpanel::app::{Function, function_router};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let state = mpanel::init_function(Function::Auth.needs()).await;
    lambda_http::run(function_router(mpanel::app::auth_routes(), state)).await
}
