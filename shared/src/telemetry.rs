//! Logging: JSON lines when `AWS_LAMBDA_LOG_FORMAT=JSON` (what CloudWatch's
//! JSON log format expects), human-readable otherwise. `RUST_LOG` filters.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // try_init: a second call (tests) keeps the first subscriber.
    let _ = if json {
        builder
            .json()
            // The span list carries the Lambda runtime's invocation span and
            // its requestId, so every line says which invocation wrote it.
            .with_current_span(true)
            .with_span_list(true)
            .with_target(false)
            .without_time() // CloudWatch stamps every line itself
            .try_init()
    } else {
        builder.compact().try_init()
    };
}
