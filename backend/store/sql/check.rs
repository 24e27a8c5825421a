//! `backend check`: the book's invariants as queries (entries balance, cached balances equal
//! their postings, every charge has its entry and idempotency record, ...), the keyed audit
//! chain recomputed from the start, and the journal against the chain both ways: every entry
//! sealed (past the grace period) with the content it has now, every seal's entry present, every
//! seal batch matching the digest its audit entry recorded, every charge an audit entry names
//! present. What this can and cannot detect is written in SECURITY.md. Read-only.

use super::error::db;
use super::SqlStore;
use std::collections::{BTreeSet, HashMap};
use store::{audit_hash, entry_hash, seal_digest, AuditBreak, CheckReport, Result, GENESIS_HASH};

/// A sealed audit entry: (id, at, actor, action, detail, seq, prev_hash, hash).
type ChainRow = (
    i64,
    i64,
    String,
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
);

pub(crate) async fn check(
    s: &SqlStore,
    now_ms: i64,
    unsealed_grace_ms: i64,
) -> Result<CheckReport> {
    let mut rep = CheckReport::default();
    let p = &s.pool;
    let mut problems = Vec::new();
    macro_rules! ids {
        ($sql:expr, $what:expr) => {{
            let rows: Vec<(i64,)> = sqlx::query_as($sql).fetch_all(p).await.map_err(db)?;
            if !rows.is_empty() {
                let shown: Vec<String> = rows.iter().take(20).map(|r| r.0.to_string()).collect();
                problems.push(format!("{} ({}): {}", $what, rows.len(), shown.join(", ")));
            }
        }};
    }
    ids!(
        "SELECT entry_id FROM postings GROUP BY entry_id HAVING SUM(amount_fen) <> 0",
        "journal entries whose postings do not sum to zero"
    );
    ids!(
        "SELECT e.id FROM journal_entries e LEFT JOIN postings p ON p.entry_id = e.id GROUP BY e.id HAVING COUNT(p.entry_id) < 2",
        "journal entries with fewer than two postings"
    );
    ids!(
        "SELECT p.entry_id FROM postings p LEFT JOIN journal_entries e ON e.id = p.entry_id \
         LEFT JOIN book_accounts a ON a.id = p.account_id WHERE e.id IS NULL OR a.id IS NULL",
        "orphan postings (no entry or no account), by entry"
    );
    ids!(
        "SELECT entry_id FROM charges WHERE entry_id IS NOT NULL GROUP BY entry_id HAVING COUNT(*) > 1",
        "journal entries claimed by more than one charge"
    );
    ids!(
        "SELECT a.id FROM book_accounts a LEFT JOIN postings p ON p.account_id = a.id WHERE a.staff_id IS NOT NULL \
         GROUP BY a.id, a.balance_fen HAVING a.balance_fen <> CAST(COALESCE(SUM(p.amount_fen), 0) AS BIGINT)",
        "accounts whose cached balance differs from the sum of their postings"
    );
    ids!(
        "SELECT id FROM book_accounts WHERE staff_id IS NOT NULL AND balance_fen < 0",
        "overdrawn accounts"
    );
    ids!(
        "SELECT s.id FROM staff s WHERE (SELECT COUNT(*) FROM book_accounts a WHERE a.staff_id = s.id) <> 2",
        "staff without exactly a cash and a subsidy account"
    );
    ids!(
        "SELECT c.id FROM charges c LEFT JOIN journal_entries e ON e.id = c.entry_id \
         WHERE c.status IN ('accepted','refunded') AND (e.id IS NULL OR e.kind <> 'charge')",
        "posted charges without their charge entry"
    );
    ids!(
        "SELECT c.id FROM charges c JOIN postings p ON p.entry_id = c.entry_id JOIN book_accounts a ON a.id = p.account_id \
         GROUP BY c.id, c.amount_fen, c.cash_fen, c.subsidy_fen \
         HAVING CAST(SUM(CASE WHEN a.kind = 'cash' THEN p.amount_fen ELSE 0 END) AS BIGINT) <> -c.cash_fen \
             OR CAST(SUM(CASE WHEN a.kind = 'subsidy' THEN p.amount_fen ELSE 0 END) AS BIGINT) <> -c.subsidy_fen \
             OR CAST(SUM(CASE WHEN a.kind = 'revenue' THEN p.amount_fen ELSE 0 END) AS BIGINT) <> c.amount_fen",
        "charges whose postings differ from the charge"
    );
    ids!(
        "SELECT e.id FROM journal_entries e LEFT JOIN charges c ON c.entry_id = e.id WHERE e.kind = 'charge' AND c.id IS NULL",
        "charge entries without a charge"
    );
    ids!(
        "SELECT e.id FROM journal_entries e LEFT JOIN refunds r ON r.entry_id = e.id \
         WHERE e.kind IN ('reversal','refund') AND r.id IS NULL",
        "reversal/refund entries without a refund record"
    );
    ids!(
        "SELECT r.id FROM refunds r JOIN charges c ON c.id = r.charge_id WHERE r.status = 'approved' AND c.status <> 'refunded'",
        "approved refunds whose charge still stands"
    );
    ids!(
        "SELECT c.id FROM charges c LEFT JOIN refunds r ON r.charge_id = c.id AND r.status = 'approved' \
         WHERE c.status = 'refunded' AND r.id IS NULL",
        "refunded charges without an approved refund"
    );
    ids!(
        "SELECT e.id FROM journal_entries e LEFT JOIN payment_orders o ON o.entry_id = e.id WHERE e.kind = 'top_up' AND o.order_no IS NULL",
        "top-up entries without a paid order"
    );
    ids!(
        "SELECT c.id FROM charges c LEFT JOIN idempotency i ON i.kiosk_id = c.kiosk_id AND i.scope = 'charge' \
         AND i.key = c.idempotency_key WHERE i.key IS NULL",
        "charges without their idempotency record"
    );
    ids!(
        "SELECT f.id FROM face_templates f, counters k WHERE k.name = 'gallery' AND f.version > k.value",
        "face templates above the gallery counter"
    );

    // The audit chain, streamed in pages so a large log does not need to fit in memory.
    let mut prev = GENESIS_HASH.to_string();
    let mut expect_seq = 1i64;
    let mut chain_broken = false;
    // What the sealed chain says the journal holds: seal batches (audit id -> digest, count)
    // and the charges its entries name.
    let mut seal_batches: HashMap<i64, (String, i64)> = HashMap::new();
    let mut named_charges: BTreeSet<i64> = BTreeSet::new();
    loop {
        let rows: Vec<ChainRow> = sqlx::query_as(
            "SELECT id, at, actor, action, detail, seq, prev_hash, hash FROM audit_log \
             WHERE seq IS NOT NULL AND seq >= $1 ORDER BY seq LIMIT 5000",
        )
        .bind(expect_seq)
        .fetch_all(p)
        .await
        .map_err(db)?;
        if rows.is_empty() {
            break;
        }
        for (id, at, actor, action, detail, seq, ph, h) in rows {
            if seq != expect_seq {
                let problem = format!(
                    "audit chain: sequence jumps from {} to {seq} (entry {id})",
                    expect_seq - 1
                );
                problems.push(problem.clone());
                rep.audit_break = Some(AuditBreak {
                    seq: expect_seq,
                    entry_id: None,
                    problem,
                });
                chain_broken = true;
                break;
            }
            let want = audit_hash(&s.audit_key, &prev, seq, id, at, &actor, &action, &detail);
            if ph.as_deref() != Some(prev.as_str()) || h.as_deref() != Some(want.as_str()) {
                let why = if ph.as_deref() != Some(prev.as_str()) {
                    "it does not link to the entry before it (rows removed, added or reordered)"
                } else {
                    "its time, actor, action or detail changed after it was sealed"
                };
                let problem =
                    format!("audit chain: entry {id} (seq {seq}) does not match its hash: {why}");
                problems.push(problem.clone());
                rep.audit_break = Some(AuditBreak {
                    seq,
                    entry_id: Some(id),
                    problem,
                });
                chain_broken = true;
                break;
            }
            rep.audit_verified_head = Some((seq, want.clone()));
            prev = want;
            expect_seq += 1;
            rep.audit_sealed += 1;
            if let Ok(d) = serde_json::from_str::<serde_json::Value>(&detail) {
                if action == "journal.sealed" {
                    let digest = d["digest"].as_str().unwrap_or_default().to_string();
                    seal_batches.insert(id, (digest, d["entries"].as_i64().unwrap_or(-1)));
                } else if action.starts_with("charge.") {
                    if let Some(c) = d["charge_id"].as_i64() {
                        named_charges.insert(c);
                    }
                }
            }
        }
        if chain_broken {
            break;
        }
    }
    // Seals made by a round whose `journal.sealed` entry is not chained yet (still within the
    // grace period the unsealed-entries rule watches) are not "unaccounted for".
    let pending: Vec<(i64,)> =
        sqlx::query_as("SELECT id FROM audit_log WHERE seq IS NULL AND action = 'journal.sealed'")
            .fetch_all(p)
            .await
            .map_err(db)?;
    let pending: BTreeSet<i64> = pending.into_iter().map(|r| r.0).collect();
    journal_against_seals(p, &seal_batches, &pending, &mut problems).await?;
    let missing = missing_ids(p, "charges", &named_charges).await?;
    if !missing.is_empty() {
        problems.push(listed(
            "charges the sealed audit log records that are gone from the charges table",
            &missing,
        ));
    }
    let stale_entries: Vec<(i64,)> = sqlx::query_as(
        "SELECT e.id FROM journal_entries e LEFT JOIN journal_seals s ON s.entry_id = e.id \
         WHERE s.entry_id IS NULL AND e.created_at < $1 ORDER BY e.id",
    )
    .bind(now_ms - unsealed_grace_ms)
    .fetch_all(p)
    .await
    .map_err(db)?;
    if !stale_entries.is_empty() {
        let ids: Vec<i64> = stale_entries.into_iter().map(|r| r.0).collect();
        problems.push(listed(
            "journal entries older than the grace period that no seal in the audit chain covers",
            &ids,
        ));
    }
    let (unsealed, stale): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN at < $1 THEN 1 ELSE 0 END), 0) AS BIGINT) FROM audit_log WHERE seq IS NULL",
    )
    .bind(now_ms - unsealed_grace_ms)
    .fetch_one(p)
    .await
    .map_err(db)?;
    rep.audit_unsealed = unsealed;
    if stale > 0 {
        problems.push(format!(
            "audit log: {stale} entries older than {} s are not sealed into the chain (is a server running its sealer?)",
            unsealed_grace_ms / 1000
        ));
    }
    let (entries,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM journal_entries")
        .fetch_one(p)
        .await
        .map_err(db)?;
    let (postings,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM postings")
        .fetch_one(p)
        .await
        .map_err(db)?;
    let (charges,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM charges")
        .fetch_one(p)
        .await
        .map_err(db)?;
    rep.entries = entries;
    rep.postings = postings;
    rep.charges = charges;
    rep.problems = problems;
    Ok(rep)
}

fn listed(what: &str, ids: &[i64]) -> String {
    let shown: Vec<String> = ids.iter().take(20).map(i64::to_string).collect();
    format!("{what} ({}): {}", ids.len(), shown.join(", "))
}

/// Of `ids`, those with no row in `table` (by `id`).
async fn missing_ids(
    p: &crate::dialect::DbPool,
    table: &'static str,
    ids: &BTreeSet<i64>,
) -> Result<Vec<i64>> {
    let mut missing = Vec::new();
    let all: Vec<i64> = ids.iter().copied().collect();
    for chunk in all.chunks(1000) {
        let (lo, hi) = (chunk[0], chunk[chunk.len() - 1]);
        // Only the table's name (a constant) is formatted into the text.
        let sql = format!("SELECT id FROM {table} WHERE id BETWEEN $1 AND $2");
        let found: Vec<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(lo)
            .bind(hi)
            .fetch_all(p)
            .await
            .map_err(db)?;
        let found: BTreeSet<i64> = found.into_iter().map(|r| r.0).collect();
        missing.extend(chunk.iter().filter(|id| !found.contains(id)));
    }
    Ok(missing)
}

/// Recomputes every sealed entry's content hash from the journal as it is now, and every seal
/// batch's digest from its rows, streaming in entry order.
async fn journal_against_seals(
    p: &crate::dialect::DbPool,
    batches: &HashMap<i64, (String, i64)>,
    pending: &BTreeSet<i64>,
    problems: &mut Vec<String>,
) -> Result<()> {
    let mut changed = Vec::new();
    let mut gone = Vec::new();
    let mut unknown_batch = Vec::new();
    let mut by_batch: HashMap<i64, Vec<(i64, String)>> = HashMap::new();
    let mut after = 0i64;
    loop {
        let seals: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT entry_id, content_hash, audit_id FROM journal_seals WHERE entry_id > $1 \
             ORDER BY entry_id LIMIT 5000",
        )
        .bind(after)
        .fetch_all(p)
        .await
        .map_err(db)?;
        let (Some(first), Some(last)) = (seals.first(), seals.last()) else {
            break;
        };
        let (lo, hi) = (first.0, last.0);
        after = hi;
        let entries: Vec<(i64, String, i64, String)> = sqlx::query_as(
            "SELECT id, kind, created_at, memo FROM journal_entries WHERE id BETWEEN $1 AND $2",
        )
        .bind(lo)
        .bind(hi)
        .fetch_all(p)
        .await
        .map_err(db)?;
        let postings: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT entry_id, account_id, amount_fen FROM postings WHERE entry_id BETWEEN $1 AND $2",
        )
        .bind(lo)
        .bind(hi)
        .fetch_all(p)
        .await
        .map_err(db)?;
        let mut legs: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for (e, a, amount) in postings {
            legs.entry(e).or_default().push((a, amount));
        }
        let entries: HashMap<i64, (String, i64, String)> = entries
            .into_iter()
            .map(|(id, kind, at, memo)| (id, (kind, at, memo)))
            .collect();
        for (id, sealed, audit_id) in seals {
            match entries.get(&id) {
                None => gone.push(id),
                Some((kind, at, memo)) => {
                    let l = legs.get(&id).map(Vec::as_slice).unwrap_or(&[]);
                    if entry_hash(id, kind, *at, memo, l) != sealed {
                        changed.push(id);
                    }
                }
            }
            if !batches.contains_key(&audit_id) && !pending.contains(&audit_id) {
                unknown_batch.push(id);
            }
            by_batch.entry(audit_id).or_default().push((id, sealed));
        }
    }
    let mut altered_batches: Vec<i64> = batches
        .iter()
        .filter(|(audit_id, (digest, count))| {
            let rows = by_batch.get(audit_id).map(Vec::as_slice).unwrap_or(&[]);
            rows.len() as i64 != *count
                || seal_digest(rows.iter().map(|(id, h)| (*id, h.as_str()))) != *digest
        })
        .map(|(audit_id, _)| *audit_id)
        .collect();
    altered_batches.sort_unstable();
    if !changed.is_empty() {
        problems.push(listed(
            "journal entries whose content (kind, time, memo or postings) differs from their seal",
            &changed,
        ));
    }
    if !gone.is_empty() {
        problems.push(listed("sealed journal entries that are gone", &gone));
    }
    if !unknown_batch.is_empty() {
        problems.push(listed(
            "journal seals no sealed audit entry accounts for",
            &unknown_batch,
        ));
    }
    if !altered_batches.is_empty() {
        problems.push(listed(
            "seal batches whose rows differ from the digest their audit entry recorded (audit ids)",
            &altered_batches,
        ));
    }
    Ok(())
}
