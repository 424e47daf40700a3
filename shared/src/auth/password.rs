//! Argon2id password hashing (m=19456 KiB, t=2, p=1, PHC strings), run off
//! the async threads, plus the password rules.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{AppError, AppResult, FieldError};
use crate::secrets::Secret;

pub const MIN_LEN: usize = 12;
pub const MAX_LEN: usize = 128;

/// Passwords people pick that pass the length rule; shipped with the code.
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

fn argon2() -> AppResult<Argon2<'static>> {
    let params =
        Params::new(19_456, 2, 1, None).map_err(|e| AppError::internal(anyhow::anyhow!("argon2 params: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Checks the password rules; the error names `field`.
pub fn check_rules(field: &str, password: &str) -> Result<(), FieldError> {
    let len = password.chars().count();
    if len < MIN_LEN {
        return Err(FieldError::new(field, format!("must be at least {MIN_LEN} characters")));
    }
    if len > MAX_LEN {
        return Err(FieldError::new(field, format!("must be at most {MAX_LEN} characters")));
    }
    let lowered = password.to_lowercase();
    if COMMON_PASSWORDS.lines().map(str::trim).any(|common| common == lowered) {
        return Err(FieldError::new(field, "is too common; choose another"));
    }
    Ok(())
}

/// Hashes synchronously; call through [`hash`] from async code.
pub fn hash_blocking(password: &str) -> AppResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    let hash = argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AppError::internal(anyhow::anyhow!("argon2 hash: {e}")))?;
    Ok(hash.to_string())
}

pub async fn hash(password: Secret<String>) -> AppResult<String> {
    tokio::task::spawn_blocking(move || hash_blocking(password.expose())).await.map_err(AppError::internal)?
}

/// A valid hash of a random password, verified against when the user does
/// not exist so that unknown emails cost the same time as known ones.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let random: [u8; 16] = rand::random();
        hash_blocking(&hex::encode(random)).unwrap_or_else(|_| {
            // Static fallback with the same parameters (never matches anything typed).
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$9Xq0wMl1zC1zTk7K0mZ1oPqN2bM3cL4dE5fG6hI7jK8"
                .to_string()
        })
    })
}

/// Verifies `password` against `stored` (or a dummy hash when there is no
/// user), off the async threads. Returns true only for a real match.
pub async fn verify(password: Secret<String>, stored: Option<String>) -> AppResult<bool> {
    tokio::task::spawn_blocking(move || {
        let has_user = stored.is_some();
        let hash_text = stored.unwrap_or_else(|| dummy_hash().to_string());
        let Ok(parsed) = PasswordHash::new(&hash_text) else {
            return Ok(false);
        };
        let matched = argon2()?.verify_password(password.expose().as_bytes(), &parsed).is_ok();
        Ok(has_user && matched)
    })
    .await
    .map_err(AppError::internal)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(check_rules("password", "short").is_err());
        assert!(check_rules("password", &"x".repeat(129)).is_err());
        assert!(check_rules("password", "correct horse battery staple").is_ok());
        let err = check_rules("password", "Password1234").unwrap_err();
        assert_eq!(err.field, "password");
        assert!(err.message.contains("common"));
    }

    #[tokio::test]
    async fn hash_and_verify() {
        let hash = hash(Secret::new("correct horse battery staple".into())).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify(Secret::new("correct horse battery staple".into()), Some(hash.clone())).await.unwrap());
        assert!(!verify(Secret::new("wrong horse battery staple".into()), Some(hash)).await.unwrap());
        assert!(!verify(Secret::new("anything at all".into()), None).await.unwrap());
    }
}
