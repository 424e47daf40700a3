//! The real `mpanel` binary fails with a non-zero status and one line naming
//! the problem.

use std::process::Command;

#[test]
fn missing_config_exits_non_zero_with_one_line() {
    let output = Command::new(env!("CARGO_BIN_EXE_mpanel"))
        .arg("migrate")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("run mpanel");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("DATABASE_URL"), "{stderr}");
}

#[test]
fn unknown_command_exits_non_zero() {
    let output = Command::new(env!("CARGO_BIN_EXE_mpanel")).arg("frobnicate").output().expect("run mpanel");
    assert!(!output.status.success());
}
