//! Sealing: what must be kept in Postgres but never in clear there (a
//! certificate's private key, an ACME account key) is encrypted with the
//! tenant's data key (AES-256-GCM). The nonce is stored first; the context
//! (e.g. the certificate's id) is bound as associated data, so a sealed
//! value copied to another row does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::error::{AppError, AppResult};

const NONCE_LEN: usize = 12;

pub fn seal(key: &[u8; 32], context: &[u8], plaintext: &[u8]) -> AppResult<Vec<u8>> {
    let cipher = Aes256Gcm::new(key.into());
    let nonce: [u8; NONCE_LEN] = rand::random();
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: context })
        .map_err(|_| AppError::Internal(anyhow::anyhow!("sealing failed")))?;
    Ok([nonce.as_slice(), &sealed].concat())
}

pub fn open(key: &[u8; 32], context: &[u8], sealed: &[u8]) -> AppResult<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return Err(AppError::Internal(anyhow::anyhow!("a sealed value is too short")));
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    Aes256Gcm::new(key.into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: context })
        .map_err(|_| AppError::Internal(anyhow::anyhow!("a sealed value does not open with the tenant's data key")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_its_key_and_context() {
        let key = [7u8; 32];
        let sealed = seal(&key, b"cert-1", b"secret").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(open(&key, b"cert-1", &sealed).unwrap(), b"secret");
        assert!(open(&key, b"cert-2", &sealed).is_err(), "another row's context");
        assert!(open(&[8u8; 32], b"cert-1", &sealed).is_err(), "another tenant's key");
        assert!(open(&key, b"cert-1", &sealed[..5]).is_err());
    }
}
