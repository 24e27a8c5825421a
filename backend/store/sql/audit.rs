//! The audit log: entries are appended unchained inside each operation's own transaction, and a
//! sealer chains them afterwards (next `seq`, `prev_hash`, `hash`), so the chain head is never a
//! lock every money transaction waits for. The sealer's lock comes from the dialect (PostgreSQL:
//! an advisory lock, one instance seals at a time; SQLite: its single writer).
//!
//! The chain is keyed (HMAC-SHA256 under the store's audit key, which is not in the database)
//! and commits to the journal: each round first seals the journal entries committed since the
//! last one — their content hashes go to `journal_seals`, and one `journal.sealed` audit entry
//! records a digest of them — so `backend check` can tell a journal rewritten consistently
//! (entry, postings, balances) from the one that was written.

use super::error::db;
use super::journal::audit;
use super::tx::Tx;
use super::SqlStore;
use crate::dialect::try_sealer_lock;
use store::{audit_hash, entry_hash, seal_digest, Actor, AuditEntry, Result, GENESIS_HASH};

/// How far below the newest sealed entry the sealer looks for entries that committed late (a
/// lower id committing after higher ones, on PostgreSQL). `backend check` reports any entry
/// left unsealed past the grace period, so nothing outside the window goes unnoticed.
const LATE_COMMIT_WINDOW: i64 = 20_000;

/// Seals the journal entries committed since the last round (at most `max`): their content
/// hashes into `journal_seals` under one `journal.sealed` audit entry. Returns how many.
async fn seal_journal(tx: &mut Tx, max: i64, now_ms: i64) -> Result<usize> {
    let (newest,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(entry_id), 0) FROM journal_seals")
        .fetch_one(&mut **tx)
        .await
        .map_err(db)?;
    let entries: Vec<(i64, String, i64, String)> = sqlx::query_as(
        "SELECT e.id, e.kind, e.created_at, e.memo FROM journal_entries e \
         LEFT JOIN journal_seals s ON s.entry_id = e.id \
         WHERE e.id > $1 AND s.entry_id IS NULL ORDER BY e.id LIMIT $2",
    )
    .bind(newest - LATE_COMMIT_WINDOW)
    .bind(max.clamp(1, 100_000))
    .fetch_all(&mut **tx)
    .await
    .map_err(db)?;
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
        return Ok(0);
    };
    let (first, last) = (first.0, last.0);
    let postings: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT entry_id, account_id, amount_fen FROM postings WHERE entry_id BETWEEN $1 AND $2",
    )
    .bind(first)
    .bind(last)
    .fetch_all(&mut **tx)
    .await
    .map_err(db)?;
    let mut legs: std::collections::HashMap<i64, Vec<(i64, i64)>> = Default::default();
    for (entry, account, amount) in postings {
        legs.entry(entry).or_default().push((account, amount));
    }
    let hashes: Vec<(i64, String)> = entries
        .iter()
        .map(|(id, kind, at, memo)| {
            let l = legs.get(id).map(Vec::as_slice).unwrap_or(&[]);
            (*id, entry_hash(*id, kind, *at, memo, l))
        })
        .collect();
    let digest = seal_digest(hashes.iter().map(|(id, h)| (*id, h.as_str())));
    let detail = serde_json::json!({
        "entries": hashes.len(), "first": first, "last": last, "digest": digest,
    });
    let (audit_id,): (i64,) = sqlx::query_as(
        "INSERT INTO audit_log (at, actor, action, detail) VALUES ($1, $2, 'journal.sealed', $3) RETURNING id",
    )
    .bind(now_ms)
    .bind(Actor::System("sealer").label())
    .bind(detail.to_string())
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    for chunk in hashes.chunks(500) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
            .collect();
        // Only numbered placeholders are formatted into the text; all data is bound.
        let sql = format!(
            "INSERT INTO journal_seals (entry_id, content_hash, audit_id) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, h) in chunk {
            q = q.bind(*id).bind(h.clone()).bind(audit_id);
        }
        q.execute(&mut **tx).await.map_err(db)?;
    }
    Ok(hashes.len())
}

pub(crate) async fn append_audit(
    s: &SqlStore,
    actor: &Actor,
    action: &str,
    detail: serde_json::Value,
    now_ms: i64,
) -> Result<()> {
    let mut tx = s.begin().await?;
    audit(&mut tx, actor, action, detail, now_ms).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn seal_audit(s: &SqlStore, max: i64) -> Result<usize> {
    let mut tx = s.begin().await?;
    if !try_sealer_lock(&mut tx).await? {
        return Ok(0);
    }
    seal_journal(&mut tx, max, store::now_ms()).await?;
    let last: Option<(i64, String)> = sqlx::query_as(
        "SELECT seq, hash FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1",
    )
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    let (mut seq, mut prev) = last.unwrap_or((0, GENESIS_HASH.to_string()));
    let rows: Vec<(i64, i64, String, String, String)> = sqlx::query_as(
        "SELECT id, at, actor, action, detail FROM audit_log WHERE seq IS NULL ORDER BY id LIMIT $1",
    )
    .bind(max.clamp(1, 100_000))
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    // Hash in order, then write in batches of one statement each (a round trip per entry
    // would make the sealer the busiest client of the database under load).
    let mut sealed: Vec<(i64, i64, String, String)> = Vec::with_capacity(rows.len());
    for (id, at, actor, action, detail) in &rows {
        seq += 1;
        let h = audit_hash(&s.audit_key, &prev, seq, *id, *at, actor, action, detail);
        sealed.push((*id, seq, std::mem::replace(&mut prev, h.clone()), h));
    }
    for chunk in sealed.chunks(500) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                format!(
                    "(${}, ${}, ${}, ${})",
                    4 * i + 1,
                    4 * i + 2,
                    4 * i + 3,
                    4 * i + 4
                )
            })
            .collect();
        // Only numbered placeholders are formatted into the text; all data is bound.
        let sql = format!(
            "UPDATE audit_log SET seq = v.column2, prev_hash = v.column3, hash = v.column4 \
             FROM (VALUES {}) AS v WHERE audit_log.id = v.column1",
            values.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, seq, prev_hash, hash) in chunk {
            q = q
                .bind(*id)
                .bind(*seq)
                .bind(prev_hash.clone())
                .bind(hash.clone());
        }
        q.execute(&mut *tx).await.map_err(db)?;
    }
    tx.commit().await?;
    Ok(rows.len())
}

/// (id, at, actor, action, detail, seq, prev_hash, hash).
pub(crate) type AuditRow = (
    i64,
    i64,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
);

pub(crate) async fn list_audit(s: &SqlStore, after_id: i64, limit: i64) -> Result<Vec<AuditEntry>> {
    let rows: Vec<AuditRow> = sqlx::query_as(
        "SELECT id, at, actor, action, detail, seq, prev_hash, hash FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after_id)
    .bind(limit.clamp(1, 10_000))
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    Ok(rows.into_iter().map(entry_from).collect())
}

pub(crate) fn entry_from(r: AuditRow) -> AuditEntry {
    AuditEntry {
        id: r.0,
        at_ms: r.1,
        actor: r.2,
        action: r.3,
        detail: r.4,
        seq: r.5,
        prev_hash: r.6,
        hash: r.7,
    }
}

pub(crate) async fn audit_head(s: &SqlStore) -> Result<Option<(i64, String)>> {
    let r: Option<(i64, Option<String>)> = sqlx::query_as(
        "SELECT seq, hash FROM audit_log WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1",
    )
    .fetch_optional(&s.pool)
    .await
    .map_err(db)?;
    Ok(r.and_then(|(seq, h)| h.map(|h| (seq, h))))
}

pub(crate) async fn audit_hash_at(s: &SqlStore, seq: i64) -> Result<Option<String>> {
    let r: Option<(Option<String>,)> = sqlx::query_as("SELECT hash FROM audit_log WHERE seq = $1")
        .bind(seq)
        .fetch_optional(&s.pool)
        .await
        .map_err(db)?;
    Ok(r.and_then(|(h,)| h))
}
