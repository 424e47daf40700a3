//! Login latency beside one raw Argon2id verification of the same stored
//! hash (same parameters, read from the PHC string).

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use argon2::{Argon2, PasswordHash, PasswordVerifier};
use serde_json::json;

use crate::load::Sample;
use crate::stack::{BenchDb, Stack};

pub struct LoginRow {
    pub login: Sample,
    pub argon2: Sample,
    pub params: String,
}

pub async fn measure(db: &BenchDb, base: &str, runs: usize) -> Result<LoginRow> {
    let client = reqwest::Client::new();
    let body = json!({"email": db.admin_email, "password": db.admin_password});
    let mut login = Vec::new();
    let started = Instant::now();
    for i in 0..runs + 3 {
        let t = Instant::now();
        let response = client.post(format!("{base}/api/auth/login")).json(&body).send().await?;
        if !response.status().is_success() {
            bail!("login failed: {} {}", response.status(), response.text().await.unwrap_or_default());
        }
        let _ = response.bytes().await?;
        if i >= 3 {
            login.push(t.elapsed());
        }
    }
    let login = Sample::from_latencies(login, started.elapsed());

    let db_client = Stack::connect(&db.url).await?;
    let stored: String =
        db_client.query_one("SELECT password_hash FROM users WHERE email = $1", &[&db.admin_email]).await?.get(0);
    let password = db.admin_password.clone();
    let (argon2, params) = tokio::task::spawn_blocking(move || -> Result<(Vec<Duration>, String)> {
        let hash = PasswordHash::new(&stored).map_err(|e| anyhow!("stored hash: {e}"))?;
        let params = format!("{} {}", hash.algorithm, hash.params);
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            Argon2::default().verify_password(password.as_bytes(), &hash).map_err(|e| anyhow!("verify: {e}"))?;
            times.push(t.elapsed());
        }
        Ok((times, params))
    })
    .await??;
    let total = argon2.iter().sum();
    println!(
        "login: p50 {} ms; raw Argon2id verify p50 {} ms ({params})",
        crate::load::ms(login.percentile(50.0)),
        crate::load::ms(crate::load::percentile(
            &{
                let mut a = argon2.clone();
                a.sort();
                a
            },
            50.0
        ))
    );
    Ok(LoginRow { login, argon2: Sample::from_latencies(argon2, total), params })
}
