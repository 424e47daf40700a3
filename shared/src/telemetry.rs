//! Logging: JSON lines when `AWS_LAMBDA_LOG_FORMAT=JSON` (what CloudWatch's
//! JSON log format expects), human-readable otherwise. `RUST_LOG` filters by
//! level and target (`warn`, `info,mpanel::engine=debug`).

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// `RUST_LOG` as level and target directives; `info` when unset or unreadable.
/// `Targets`, not `EnvFilter`: the span and field filters EnvFilter adds
/// link a regex engine into every function and compile at each cold start.
fn filter(directives: Option<&str>) -> Targets {
    directives
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

pub fn init() {
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref());
    // The builder's own ceiling is lifted; `filter` decides.
    let builder = tracing_subscriber::fmt().with_max_level(LevelFilter::TRACE).with_writer(std::io::stderr);
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
            .finish()
            .with(filter)
            .try_init()
    } else {
        builder.compact().finish().with(filter).try_init()
    };
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::filter;

    #[test]
    fn rust_log_sets_the_default_level_and_per_target_levels() {
        let warn = filter(Some("warn"));
        assert!(warn.would_enable("mpanel::engine", &Level::WARN));
        assert!(!warn.would_enable("mpanel::engine", &Level::INFO));

        let mixed = filter(Some("info,mpanel::engine=debug"));
        assert!(mixed.would_enable("mpanel::engine::pool", &Level::DEBUG));
        assert!(!mixed.would_enable("mpanel::orders", &Level::DEBUG));
        assert!(mixed.would_enable("mpanel::orders", &Level::INFO));
    }

    #[test]
    fn unset_or_unreadable_rust_log_means_info() {
        for directives in [None, Some("mpanel=loud")] {
            let default = filter(directives);
            assert!(default.would_enable("mpanel", &Level::INFO), "{directives:?}");
            assert!(!default.would_enable("mpanel", &Level::DEBUG), "{directives:?}");
        }
    }
}
