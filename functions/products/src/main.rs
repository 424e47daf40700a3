//! The `products` Lambda function: serves mPanel's products routes (and health checks).

use mpanel::app::{Function, function_router};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let state = mpanel::init_function(Function::Products.needs()).await;
    lambda_http::run(function_router(mpanel::app::products_routes(), state)).await
}
