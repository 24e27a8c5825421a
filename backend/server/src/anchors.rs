//! Anchors of the audit chain outside the database. Every `audit_anchor_seconds` the server
//! appends the chain's head (`seq`, `hash`) to an append-only file (make it so with
//! `chattr +a`, or point it at storage the database's administrators cannot write). `backend
//! check` then verifies that the database still holds every anchored entry with the anchored
//! hash: deleting the newest sealed audit rows, or rebuilding the chain, shows even though
//! what is left in the database is a consistent chain. Each line also carries an HMAC under
//! the audit key, so lines cannot be forged without it. The inspection export carries the head
//! too (its `manifest.json`), and `backend verify-export` checks the database still holds it.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;
use store::{AuditKey, Store};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub at_ms: i64,
    pub seq: i64,
    pub hash: String,
    /// HMAC-SHA256 under the audit key over `at_ms`, `seq` and `hash`.
    pub mac: String,
}

fn mac_of(key: &AuditKey, at_ms: i64, seq: i64, hash: &str) -> String {
    // HMAC takes keys of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&key.bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(format!("{at_ms}|{seq}|{hash}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// Appends the chain's current head, unless the file's last anchor already is that head.
/// Returns the anchor written.
pub async fn append_head(
    store: &Arc<dyn Store>,
    key: &AuditKey,
    path: &Path,
    now_ms: i64,
) -> Result<Option<Anchor>, String> {
    let Some((seq, hash)) = store.audit_head().await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let last = read(path)?.into_iter().last();
    if last
        .as_ref()
        .is_some_and(|a| a.seq == seq && a.hash == hash)
    {
        return Ok(None);
    }
    let a = Anchor {
        at_ms: now_ms,
        seq,
        mac: mac_of(key, now_ms, seq, &hash),
        hash,
    };
    let line = serde_json::to_string(&a).map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("audit anchors {}: {e}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("audit anchors {}: {e}", path.display()))?;
    writeln!(f, "{line}")
        .and_then(|_| f.sync_data())
        .map_err(|e| format!("audit anchors {}: {e}", path.display()))?;
    Ok(Some(a))
}

/// The anchors in the file (none when it does not exist).
pub fn read(path: &Path) -> Result<Vec<Anchor>, String> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("audit anchors {}: {e}", path.display())),
    };
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| format!("audit anchors {}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let a: Anchor = serde_json::from_str(&line)
            .map_err(|e| format!("audit anchors {} line {}: {e}", path.display(), n + 1))?;
        out.push(a);
    }
    Ok(out)
}

/// Problems found comparing the anchors in `path` with the chain in the database.
pub async fn verify(
    store: &Arc<dyn Store>,
    key: &AuditKey,
    path: &Path,
) -> Result<Vec<String>, String> {
    let mut problems = Vec::new();
    let anchors = read(path)?;
    for a in &anchors {
        if mac_of(key, a.at_ms, a.seq, &a.hash) != a.mac {
            problems.push(format!(
                "audit anchor at seq {} is not signed by the audit key (forged or another key)",
                a.seq
            ));
            continue;
        }
        match store
            .audit_hash_at(a.seq)
            .await
            .map_err(|e| e.to_string())?
        {
            None => problems.push(format!(
                "audit chain: the entry anchored at seq {} (anchored at {} ms) is gone: sealed \
                 audit entries were deleted",
                a.seq, a.at_ms
            )),
            Some(h) if h != a.hash => problems.push(format!(
                "audit chain: the entry at seq {} differs from its anchor: the chain was rebuilt",
                a.seq
            )),
            Some(_) => {}
        }
    }
    Ok(problems)
}
