//! Standard Webhooks v1 signatures: `webhook-id`, `webhook-timestamp` (unix
//! seconds) and `webhook-signature` (space-separated `v1,<base64>` entries;
//! several are accepted so the sender can rotate keys). The signature is
//! HMAC-SHA256 over `{id}.{timestamp}.{raw body}`, compared in constant time.

use axum::http::HeaderMap;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::AppError;

/// How far the timestamp may be from now, either way.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// A verified delivery's id (the idempotency key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedWebhook {
    pub id: String,
    pub timestamp: i64,
}

/// Verifies the headers against `body`; any failure is the same 401.
pub fn verify(headers: &HeaderMap, body: &[u8], key: &[u8], now: i64) -> Result<VerifiedWebhook, AppError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let (Some(id), Some(timestamp), Some(signatures)) =
        (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"))
    else {
        return Err(AppError::Unauthorized);
    };
    if id.is_empty() || id.len() > 200 || id.chars().any(char::is_control) {
        return Err(AppError::Unauthorized);
    }
    let timestamp: i64 = timestamp.parse().map_err(|_| AppError::Unauthorized)?;
    // abs_diff: `now - timestamp` overflows for timestamps near i64::MIN/MAX.
    if now.abs_diff(timestamp) > TOLERANCE_SECS.unsigned_abs() {
        return Err(AppError::Unauthorized);
    }
    let mut signed = Vec::with_capacity(id.len() + 24 + body.len());
    signed.extend_from_slice(id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    let matched = signatures.split(' ').filter_map(|entry| entry.strip_prefix("v1,")).any(|encoded| {
        let Ok(candidate) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
            return false;
        };
        mac.update(&signed);
        // verify_slice compares in constant time.
        mac.verify_slice(&candidate).is_ok()
    });
    if matched { Ok(VerifiedWebhook { id: id.to_string(), timestamp }) } else { Err(AppError::Unauthorized) }
}

/// Signs a payload the way the marketing site does (tests, benchmarks, docs).
pub fn sign(id: &str, timestamp: i64, body: &[u8], key: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const KEY: &[u8] = b"a-24-byte-or-longer-secret-key!!";

    fn headers(id: &str, ts: i64, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", HeaderValue::from_str(id).unwrap());
        h.insert("webhook-timestamp", HeaderValue::from_str(&ts.to_string()).unwrap());
        h.insert("webhook-signature", HeaderValue::from_str(sig).unwrap());
        h
    }

    #[test]
    fn accepts_a_valid_signature_among_several() {
        let now = 1_795_611_600;
        let body = br#"{"a":1}"#;
        let good = sign("msg_1", now, body, KEY);
        let rotated = format!("v1,b2xkLWtleQ== {good} v2,ignored");
        assert!(verify(&headers("msg_1", now, &good), body, KEY, now).is_ok());
        assert!(verify(&headers("msg_1", now, &rotated), body, KEY, now).is_ok());
    }

    #[test]
    fn rejects_tampering_staleness_and_missing_headers() {
        let now = 1_795_611_600;
        let body = br#"{"a":1}"#;
        let good = sign("msg_1", now, body, KEY);
        assert!(verify(&headers("msg_1", now, &good), br#"{"a":2}"#, KEY, now).is_err(), "body changed");
        assert!(verify(&headers("msg_2", now, &good), body, KEY, now).is_err(), "id changed");
        assert!(verify(&headers("msg_1", now, &good), body, b"another-key-another-key-xx", now).is_err());
        let stale = sign("msg_1", now - 301, body, KEY);
        assert!(verify(&headers("msg_1", now - 301, &stale), body, KEY, now).is_err(), "too old");
        let future = sign("msg_1", now + 301, body, KEY);
        assert!(verify(&headers("msg_1", now + 301, &future), body, KEY, now).is_err(), "too new");
        let edge = sign("msg_1", now - 300, body, KEY);
        assert!(verify(&headers("msg_1", now - 300, &edge), body, KEY, now).is_ok(), "within tolerance");
        assert!(verify(&HeaderMap::new(), body, KEY, now).is_err());
        for extreme in [i64::MIN, i64::MIN + 1, i64::MAX] {
            let forged = sign("msg_1", extreme, body, KEY);
            assert!(verify(&headers("msg_1", extreme, &forged), body, KEY, now).is_err(), "timestamp {extreme}");
        }
        let unversioned = good.trim_start_matches("v1,").to_string();
        assert!(verify(&headers("msg_1", now, &unversioned), body, KEY, now).is_err());
    }
}
