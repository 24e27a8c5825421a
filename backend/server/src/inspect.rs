//! `backend export` and `backend verify-export`: the inspection export (crate [`inspection`])
//! written to a file, and an export re-checked — every file against its manifest, then the
//! manifest's audit chain head against the database's chain (the entry at that seq must still
//! have that hash: an export cannot be matched to a ledger rewritten after it was taken).

use inspection::{Manifest, Period};
use std::path::Path;
use std::sync::Arc;
use store::{Actor, Store};

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Export(#[from] inspection::ExportError),
    #[error(transparent)]
    Verify(#[from] inspection::VerifyError),
    #[error("{0}: {1}")]
    File(String, std::io::Error),
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    /// The database's chain does not hold the manifest's head.
    #[error("manifest.json: {0}")]
    ChainHead(String),
}

/// Writes the export of `period` to `out` (through `out.partial`, renamed when complete, so a
/// failed export leaves no file that looks whole) and records it in the audit log.
pub async fn export_to_file(
    store: &Arc<dyn Store>,
    period: Period,
    out: &Path,
    now_ms: i64,
) -> Result<Manifest, InspectError> {
    let partial = out.with_extension("partial");
    let io = |e| InspectError::File(partial.display().to_string(), e);
    let mut f = std::fs::File::create(&partial).map_err(io)?;
    let manifest = match inspection::write_export(store.as_ref(), period, now_ms, &mut f).await {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.into());
        }
    };
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&partial, out).map_err(|e| InspectError::File(out.display().to_string(), e))?;
    store
        .append_audit(
            &Actor::System("export"),
            "inspection.export",
            serde_json::json!({
                "from": manifest.from,
                "to": manifest.to,
                "chain_head_seq": manifest.audit_chain_head.as_ref().map(|h| h.seq),
                "rows": manifest.files.iter().map(|f| (f.name.clone(), f.rows)).collect::<std::collections::BTreeMap<_, _>>(),
            }),
            now_ms,
        )
        .await?;
    Ok(manifest)
}

/// Re-checks every file of the export at `path` against its manifest.
pub fn verify_file(path: &Path) -> Result<Manifest, InspectError> {
    let f =
        std::fs::File::open(path).map_err(|e| InspectError::File(path.display().to_string(), e))?;
    Ok(inspection::verify_export(std::io::BufReader::new(f))?)
}

/// Whether the database's audit chain still holds the manifest's head.
pub async fn check_chain_head(store: &dyn Store, m: &Manifest) -> Result<(), InspectError> {
    let Some(head) = &m.audit_chain_head else {
        return Ok(());
    };
    match store.audit_hash_at(head.seq).await? {
        Some(h) if h == head.hash => Ok(()),
        Some(h) => Err(InspectError::ChainHead(format!(
            "the audit chain head it names (seq {}, hash {}) differs from the database's entry at \
             that seq (hash {h}): the chain was rebuilt, or the export is of another ledger",
            head.seq, head.hash
        ))),
        None => Err(InspectError::ChainHead(format!(
            "the audit chain head it names (seq {}) is not in the database's chain: sealed audit \
             entries were deleted, or the export is of another ledger",
            head.seq
        ))),
    }
}
