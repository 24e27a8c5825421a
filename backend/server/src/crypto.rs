//! Secrets handling: random tokens (only their SHA-256 is stored), argon2 password hashes, and
//! AES-256-GCM sealing of face templates. The template's id is not known before insertion, so
//! the associated data binds the ciphertext to the *person*: a template copied onto another
//! person's row fails to decrypt.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use store::SealedTemplate;

/// A random URL-safe token with 256 bits of entropy.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

pub fn token_hash(token: &str) -> String {
    store::sha256_hex(token.as_bytes())
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("face template could not be sealed or opened")]
    Template,
}

pub fn hash_password(password: &str) -> Result<String, CryptoError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CryptoError::Hash(e.to_string()))
}

/// Constant-time check (argon2 compares in constant time); a malformed stored hash is `false`.
pub fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the user does not exist, so timing does not reveal usernames.
pub fn dummy_password_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password("not a real password").unwrap_or_default())
}

#[derive(Clone)]
pub struct FaceCipher {
    cipher: Aes256Gcm,
}

impl FaceCipher {
    pub fn new(key: &[u8; 32]) -> Self {
        FaceCipher {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    fn aad(staff_id: i64) -> Vec<u8> {
        format!("cleanplate-face-template:v1:staff:{staff_id}").into_bytes()
    }

    pub fn seal(&self, staff_id: i64, embedding: &[f32]) -> Result<SealedTemplate, CryptoError> {
        let mut plain = Vec::with_capacity(embedding.len() * 4);
        for x in embedding {
            plain.extend_from_slice(&x.to_le_bytes());
        }
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = Self::aad(staff_id);
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Template)?;
        Ok(SealedTemplate {
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    pub fn open(&self, staff_id: i64, sealed: &SealedTemplate) -> Result<Vec<f32>, CryptoError> {
        if sealed.nonce.len() != 12 {
            return Err(CryptoError::Template);
        }
        let aad = Self::aad(staff_id);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Template)?;
        if plain.len() % 4 != 0 {
            return Err(CryptoError::Template);
        }
        Ok(plain
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_round_trip_and_binding() {
        let c = FaceCipher::new(&[7u8; 32]);
        let e = vec![0.25f32, -0.5, 1.0];
        let s = c.seal(3, &e).unwrap();
        assert_ne!(
            s.ciphertext[..12],
            e.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>()[..]
        );
        assert_eq!(c.open(3, &s).unwrap(), e);
        assert!(
            c.open(4, &s).is_err(),
            "a template moved to another person must not open"
        );
        let other = FaceCipher::new(&[8u8; 32]);
        assert!(other.open(3, &s).is_err(), "wrong key must not open");
    }

    #[test]
    fn passwords() {
        let h = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }
}
