//! The audit log: entries are appended unchained inside each operation's own transaction, and a
//! sealer chains them afterwards (next `seq`, `prev_hash`, `hash`), so the chain head is never a
//! lock every money transaction waits for. The sealer's lock comes from the dialect (PostgreSQL:
//! an advisory lock, one instance seals at a time; SQLite: its single writer).

use super::error::db;
use super::journal::audit;
use super::SqlStore;
use crate::dialect::try_sealer_lock;
use store::{audit_hash, Actor, AuditEntry, Result, GENESIS_HASH};

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
        let h = audit_hash(&prev, seq, *id, *at, actor, action, detail);
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
type AuditRow = (
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
    Ok(rows
        .into_iter()
        .map(|r| AuditEntry {
            id: r.0,
            at_ms: r.1,
            actor: r.2,
            action: r.3,
            detail: r.4,
            seq: r.5,
            prev_hash: r.6,
            hash: r.7,
        })
        .collect())
}
