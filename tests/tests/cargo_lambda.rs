//! The deploy path's own tooling: `cargo lambda watch` serves the workspace's
//! functions in their real bootstrap loop (the Lambda Runtime API emulator of
//! cargo-lambda) and `cargo lambda invoke --data-file` sends every event of
//! `events/` to the function it belongs to, against the real services.
//! Needs cargo-lambda on PATH (`./scripts/stack up` installs it into the
//! stack's venv; `./scripts/test` puts that on PATH and builds the
//! functions before the tests, in the target dir they share).

use std::path::{Path, PathBuf};
use std::time::Duration;

use mpanel_tests::spawn_app;
use serde_json::Value;
use tokio::process::Command;

/// Kills `cargo lambda watch` and everything it started (cargo, the function
/// processes): they share the process group made for it.
struct ProcessGroup(i32);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{}", self.0)]).status();
    }
}

/// The tests' own target dir: `cargo test` holds its lock only while it
/// builds, and `cargo build --workspace --bins` has built the functions
/// there, so the watch finds them fresh instead of building them again.
fn watch_target_dir() -> PathBuf {
    let mpanel = mpanel_tests::mpanel_binary();
    mpanel.parent().and_then(Path::parent).expect("target dir").to_path_buf()
}

async fn wait_for_port(port: u16) {
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cargo lambda watch did not listen on {port} within 60 s");
}

#[tokio::test]
async fn cargo_lambda_invoke_answers_every_event_through_cargo_lambda_watch() {
    let app = spawn_app().await;
    let values = mpanel_tests::events::placeholders(&app).await;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let scratch = std::env::temp_dir().join(format!("mpanel-invoke-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();

    // Only what cargo needs from this process, plus the test's own config:
    // the functions must not see the developer's stack env.
    let passthrough: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            // CARGO_INCREMENTAL too: a different setting than the pre-build would rebuild everything.
            matches!(
                k.as_str(),
                "PATH" | "HOME" | "RUSTUP_HOME" | "CARGO_HOME" | "RUSTUP_TOOLCHAIN" | "CARGO_INCREMENTAL"
            )
        })
        .collect();
    let log = std::fs::File::create(scratch.join("watch.log")).expect("log");
    let watch = Command::new("cargo")
        .args(["lambda", "watch", "--ignore-changes", "-A", "127.0.0.1", "-P", &port.to_string()])
        .current_dir(&workspace)
        .env_clear()
        .envs(passthrough)
        .envs(app.env.clone())
        .env("CARGO_TARGET_DIR", watch_target_dir())
        .env("CARGO_TERM_COLOR", "never")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("cargo lambda watch (is cargo-lambda on PATH? ./scripts/stack up installs it)");
    let _group = ProcessGroup(watch.id().expect("pid") as i32);
    wait_for_port(port).await;

    let mut invoked = 0;
    for function in mpanel_tests::events::FUNCTIONS {
        std::fs::create_dir_all(scratch.join(function)).expect("dir");
        for file in mpanel_tests::events::files(function) {
            let raw = std::fs::read_to_string(&file).expect("event");
            let filled = scratch.join(function).join(file.file_name().expect("name"));
            std::fs::write(&filled, mpanel_tests::events::fill(&raw, &values, &app.env)).expect("write event");
            // The first invocation of a function may compile it.
            let output = tokio::time::timeout(
                Duration::from_secs(600),
                Command::new("cargo")
                    .args(["lambda", "invoke", function, "-A", "127.0.0.1", "-P", &port.to_string(), "-o", "json"])
                    .arg("--data-file")
                    .arg(&filled)
                    .output(),
            )
            .await
            .unwrap_or_else(|_| panic!("{}: no answer within 600 s", file.display()))
            .expect("cargo lambda invoke runs");
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "{}: cargo lambda invoke failed: {stdout}{}\n(watch log: {})",
                file.display(),
                String::from_utf8_lossy(&output.stderr),
                scratch.join("watch.log").display()
            );
            let result: Value = serde_json::from_str(&stdout)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {stdout}", file.display()));
            mpanel_tests::events::assert_expected(function, &file, &result);
            invoked += 1;
        }
    }
    assert!(invoked >= 100, "only {invoked} events invoked");
    let _ = std::fs::remove_dir_all(&scratch);
}
