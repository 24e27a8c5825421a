//! Hashes both storage implementations and `backend check` must compute identically: token
//! hashes (only hashes of secrets are stored), the audit chain's entry hash (keyed), and the
//! content hash of a journal entry that the chain commits to.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The key the audit chain is computed with (HMAC-SHA256). It lives in the configuration, never
/// in the database: whoever can rewrite the database but does not hold the key cannot
/// recompute the chain after changing a sealed row.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditKey([u8; 32]);

impl AuditKey {
    pub fn new(bytes: [u8; 32]) -> AuditKey {
        AuditKey(bytes)
    }

    pub fn bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The development placeholder (refused by `backend serve` outside dev mode).
    pub fn development() -> AuditKey {
        AuditKey([0x5a; 32])
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
    }
}

impl Default for AuditKey {
    fn default() -> Self {
        AuditKey::development()
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

/// Feeds length-prefixed parts, so no two different sequences of parts serialise alike.
fn feed(update: &mut impl FnMut(&[u8]), parts: &[&[u8]]) {
    for part in parts {
        update(&(part.len() as u64).to_le_bytes());
        update(part);
    }
}

/// The `prev_hash` of the first sealed audit entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The hash of a sealed audit entry: HMAC-SHA256 under the audit key over the previous hash,
/// its position in the chain and every field of the entry, so editing, removing or reordering
/// any sealed entry breaks every hash after it, and only the key's holder can rebuild them.
#[allow(clippy::too_many_arguments)]
pub fn audit_hash(
    key: &AuditKey,
    prev_hash: &str,
    seq: i64,
    id: i64,
    at_ms: i64,
    actor: &str,
    action: &str,
    detail: &str,
) -> String {
    let mut mac = key.mac();
    feed(
        &mut |b| mac.update(b),
        &[
            prev_hash.as_bytes(),
            seq.to_string().as_bytes(),
            id.to_string().as_bytes(),
            at_ms.to_string().as_bytes(),
            actor.as_bytes(),
            action.as_bytes(),
            detail.as_bytes(),
        ],
    );
    hex::encode(mac.finalize().into_bytes())
}

/// The content hash of a journal entry: its id, kind, time, memo and postings (sorted by
/// account), which is what a seal in the audit chain commits to.
pub fn entry_hash(id: i64, kind: &str, at_ms: i64, memo: &str, postings: &[(i64, i64)]) -> String {
    let mut sorted = postings.to_vec();
    sorted.sort_unstable();
    let mut h = Sha256::new();
    let mut parts: Vec<Vec<u8>> = vec![
        id.to_string().into_bytes(),
        kind.as_bytes().to_vec(),
        at_ms.to_string().into_bytes(),
        memo.as_bytes().to_vec(),
    ];
    for (account, amount) in sorted {
        parts.push(format!("{account}:{amount}").into_bytes());
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    feed(&mut |b| h.update(b), &refs);
    hex::encode(h.finalize())
}

/// The digest a `journal.sealed` audit entry records over the (entry, content hash) pairs it
/// seals, in entry order.
pub fn seal_digest<'a>(pairs: impl IntoIterator<Item = (i64, &'a str)>) -> String {
    let mut h = Sha256::new();
    for (id, hash) in pairs {
        feed(
            &mut |b| h.update(b),
            &[id.to_string().as_bytes(), hash.as_bytes()],
        );
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_hash_depends_on_every_field_and_the_key() {
        let k = AuditKey::new([7; 32]);
        let base = audit_hash(&k, GENESIS_HASH, 1, 1, 5, "user:1", "charge", "{}");
        assert_ne!(
            base,
            audit_hash(&k, GENESIS_HASH, 2, 1, 5, "user:1", "charge", "{}")
        );
        assert_ne!(
            base,
            audit_hash(&k, GENESIS_HASH, 1, 1, 5, "user:1", "charg", "e{}")
        );
        assert_ne!(
            base,
            audit_hash(&k, "ab", 1, 1, 5, "user:1", "charge", "{}")
        );
        let other = AuditKey::new([8; 32]);
        assert_ne!(
            base,
            audit_hash(&other, GENESIS_HASH, 1, 1, 5, "user:1", "charge", "{}")
        );
        assert_eq!(
            base,
            audit_hash(&k, GENESIS_HASH, 1, 1, 5, "user:1", "charge", "{}")
        );
    }

    #[test]
    fn entry_hash_covers_memo_time_and_postings_in_any_order() {
        let h = entry_hash(7, "charge", 100, "lunch", &[(1, -1500), (9, 1500)]);
        assert_eq!(
            h,
            entry_hash(7, "charge", 100, "lunch", &[(9, 1500), (1, -1500)])
        );
        assert_ne!(
            h,
            entry_hash(7, "charge", 101, "lunch", &[(1, -1500), (9, 1500)])
        );
        assert_ne!(
            h,
            entry_hash(7, "charge", 100, "lunch!", &[(1, -1500), (9, 1500)])
        );
        assert_ne!(
            h,
            entry_hash(7, "charge", 100, "lunch", &[(1, -1600), (9, 1600)])
        );
    }
}
