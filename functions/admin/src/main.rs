//! The `admin` Lambda function: serves mPanel's admin routes (and health checks).

use mpanel::app::{Function, function_router};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let state = mpanel::init_function(Function::Admin.needs()).await;
    lambda_http::run(function_router(mpanel::app::admin_routes(), state)).await
}
