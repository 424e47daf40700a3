//! mPanel: the billing + provisioning backend of a web-hosting company.
//!
//! This library holds all domain logic, storage, HTTP routers and job
//! handling; the Lambda functions in `functions/` and the `mpanel` CLI are
//! thin shells around it.

pub mod app;
pub mod audit;
pub mod audit_log;
pub mod auth;
pub mod catalog;
pub mod certificates;
pub mod cli;
pub mod config;
pub mod customers;
pub mod db;
pub mod demo;
pub mod dispatch;
pub mod engine;
pub mod error;
pub mod http;
pub mod jobs;
pub mod kv;
pub mod lambda;
pub mod login;
pub mod openapi;
pub mod orders;
pub mod outbound;
pub mod provision;
pub mod ratelimit;
pub mod sealing;
pub mod secrets;
pub mod servers;
pub mod ssh_identity;
pub mod ssh_masters;
pub mod state;
pub mod subscriptions;
pub mod telemetry;
pub mod tenants;
pub mod tls;
pub mod types;
pub mod users;
pub mod webhooks;

pub use app::Function;
pub use config::{Config, Needs};
pub use error::{AppError, AppResult};
pub use state::AppState;

/// Builds the state a Lambda function needs, once per container, or exits
/// with one line naming what is wrong (the runtime logs it as an init error).
pub async fn init_function(needs: Needs) -> AppState {
    telemetry::init();
    let built = match Config::from_lambda_env(needs).await {
        Ok(config) => AppState::new(config),
        Err(e) => Err(e.into()),
    };
    match built {
        Ok(state) => state,
        Err(e) => {
            eprintln!("mpanel: config error: {e:#}");
            std::process::exit(1);
        }
    }
}
