//! Access tokens (JWT HS256, 15 minutes) and refresh tokens (opaque 256-bit
//! values, stored only as SHA-256).

use base64::Engine;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Role;
use crate::error::{AppError, AppResult};
use crate::secrets::Secret;

pub const ISSUER: &str = "mpanel";
pub const AUDIENCE: &str = "mpanel-admin";
pub const ACCESS_TOKEN_TYPE: &str = "access";
pub const ACCESS_TOKEN_SECS: i64 = 15 * 60;
pub const REFRESH_TOKEN_DAYS: i64 = 7;
/// Clock skew tolerated between the issuing and verifying containers.
const LEEWAY_SECS: u64 = 30;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: Uuid,
    pub tid: Uuid,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub typ: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    /// The session (refresh-token family) this token belongs to; logout and
    /// reuse detection revoke it, which ends the access token too.
    pub sid: Uuid,
}

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenKeys {
    pub fn new(secret: &Secret<Vec<u8>>) -> TokenKeys {
        let mut validation = Validation::new(Algorithm::HS256);
        // Pinned: only HS256 is accepted, whatever the header says.
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        TokenKeys {
            encoding: EncodingKey::from_secret(secret.expose()),
            decoding: DecodingKey::from_secret(secret.expose()),
            validation,
        }
    }

    pub fn issue(&self, user_id: Uuid, tenant_id: Uuid, role: Role, session_id: Uuid) -> AppResult<String> {
        let now = Utc::now().timestamp();
        let claims = AccessClaims {
            sub: user_id,
            tid: tenant_id,
            role,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            typ: ACCESS_TOKEN_TYPE.into(),
            iat: now,
            exp: now + ACCESS_TOKEN_SECS,
            jti: Uuid::new_v4(),
            sid: session_id,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AppError::internal(anyhow::anyhow!("jwt encode: {e}")))
    }

    /// Any failure is a plain 401: the caller learns nothing about why.
    pub fn verify(&self, token: &str) -> AppResult<AccessClaims> {
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation).map_err(|e| {
            tracing::debug!(error = %e, "access token rejected");
            AppError::Unauthorized
        })?;
        if data.claims.typ != ACCESS_TOKEN_TYPE {
            return Err(AppError::Unauthorized);
        }
        Ok(data.claims)
    }
}

/// A new opaque refresh token and the hash that is stored.
pub fn new_refresh_token() -> (Secret<String>, [u8; 32]) {
    let bytes: [u8; 32] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_refresh_token(&token);
    (Secret::new(token), hash)
}

pub fn hash_refresh_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys() -> TokenKeys {
        TokenKeys::new(&Secret::new(b"0123456789abcdef0123456789abcdef".to_vec()))
    }

    fn forge(claims: serde_json::Value, key: &[u8]) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(key)).unwrap()
    }

    fn valid_claims() -> serde_json::Value {
        let now = Utc::now().timestamp();
        json!({
            "sub": Uuid::new_v4(), "tid": Uuid::new_v4(), "role": "ADMIN", "iss": ISSUER, "aud": AUDIENCE,
            "typ": "access", "iat": now, "exp": now + 60, "jti": Uuid::new_v4(), "sid": Uuid::new_v4()
        })
    }

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trip() {
        let keys = keys();
        let (user, tenant, sid) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let token = keys.issue(user, tenant, Role::Billing, sid).unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.sub, claims.tid, claims.role, claims.sid), (user, tenant, Role::Billing, sid));
        assert_eq!(claims.exp - claims.iat, ACCESS_TOKEN_SECS);
    }

    #[test]
    fn forged_and_malformed_tokens_fail() {
        let keys = keys();
        assert!(keys.verify(&forge(valid_claims(), KEY)).is_ok(), "control: a valid forged-with-our-key token passes");
        assert!(keys.verify(&forge(valid_claims(), b"another-key-another-key-another-key")).is_err());

        let mut c = valid_claims();
        c["exp"] = json!(Utc::now().timestamp() - 3600);
        assert!(keys.verify(&forge(c, KEY)).is_err(), "expired");

        for (field, value) in [("aud", json!("someone-else")), ("iss", json!("evil")), ("typ", json!("refresh"))] {
            let mut c = valid_claims();
            c[field] = value;
            assert!(keys.verify(&forge(c, KEY)).is_err(), "wrong {field}");
        }
        for missing in ["exp", "iss", "aud", "sub"] {
            let mut c = valid_claims();
            c.as_object_mut().unwrap().remove(missing);
            assert!(keys.verify(&forge(c, KEY)).is_err(), "without {missing}");
        }

        // alg: none, unsigned.
        let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let none = format!("{}.{}.", b64(json!({"alg": "none", "typ": "JWT"})), b64(valid_claims()));
        assert!(keys.verify(&none).is_err());

        // HS512 with the right key is still refused: the algorithm is pinned.
        let hs512 =
            jsonwebtoken::encode(&Header::new(Algorithm::HS512), &valid_claims(), &EncodingKey::from_secret(KEY))
                .unwrap();
        assert!(keys.verify(&hs512).is_err());

        let (refresh, _) = new_refresh_token();
        assert!(keys.verify(refresh.expose()).is_err(), "a refresh token is not an access token");
    }

    #[test]
    fn refresh_tokens_are_256_bit_and_hashed() {
        let (token, hash) = new_refresh_token();
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.expose()).unwrap();
        assert_eq!(raw.len(), 32);
        assert_eq!(hash, hash_refresh_token(token.expose()));
        let (other, _) = new_refresh_token();
        assert_ne!(token.expose(), other.expose());
    }
}
