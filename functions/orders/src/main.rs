//! The `orders` Lambda function: serves mPanel's orders routes (and health checks).

use mpanel::app::{Function, function_router};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let state = mpanel::init_function(Function::Orders.needs()).await;
    lambda_http::run(function_router(mpanel::app::orders_routes(), state)).await
}
