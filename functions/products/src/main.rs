//! The `products` Lambda function: serves mPanel's products routes (and health checks).

use mpanel::app::{Function, function_app};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let state = mpanel::init_function(Function::Products.needs()).await;
    lambda_http::run(function_app(Function::Products, state)).await
}
