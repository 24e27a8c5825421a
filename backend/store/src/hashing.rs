//! Hashes both storage implementations and `backend check` must compute identically: token
//! hashes (only hashes of secrets are stored) and the audit chain's entry hash.

use sha2::{Digest, Sha256};

/// The `prev_hash` of the first sealed audit entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The hash of a sealed audit entry: it covers the previous hash, its position in the chain and
/// every field of the entry, so editing, removing or reordering any sealed entry breaks every
/// hash after it. Fields are length-prefixed so no two different entries serialise alike.
pub fn audit_hash(
    prev_hash: &str,
    seq: i64,
    id: i64,
    at_ms: i64,
    actor: &str,
    action: &str,
    detail: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [
        prev_hash,
        &seq.to_string(),
        &id.to_string(),
        &at_ms.to_string(),
        actor,
        action,
        detail,
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_hash_depends_on_every_field() {
        let base = audit_hash(GENESIS_HASH, 1, 1, 5, "user:1", "charge", "{}");
        assert_ne!(
            base,
            audit_hash(GENESIS_HASH, 2, 1, 5, "user:1", "charge", "{}")
        );
        assert_ne!(
            base,
            audit_hash(GENESIS_HASH, 1, 1, 5, "user:1", "charg", "e{}")
        );
        assert_ne!(base, audit_hash("ab", 1, 1, 5, "user:1", "charge", "{}"));
        assert_eq!(
            base,
            audit_hash(GENESIS_HASH, 1, 1, 5, "user:1", "charge", "{}")
        );
    }
}
