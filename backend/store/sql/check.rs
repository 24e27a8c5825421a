//! `backend check`: the book's invariants as queries (entries balance, cached balances equal
//! their postings, every charge has its entry and idempotency record, ...) and the audit chain
//! recomputed from the start. Read-only.

use super::error::db;
use super::SqlStore;
use store::{audit_hash, CheckReport, Result, GENESIS_HASH};

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
                problems.push(format!(
                    "audit chain: sequence jumps from {} to {seq} (entry {id})",
                    expect_seq - 1
                ));
                chain_broken = true;
                break;
            }
            let want = audit_hash(&prev, seq, id, at, &actor, &action, &detail);
            if ph.as_deref() != Some(prev.as_str()) || h.as_deref() != Some(want.as_str()) {
                problems.push(format!(
                    "audit chain: entry {id} (seq {seq}) does not match its hash"
                ));
                chain_broken = true;
                break;
            }
            prev = want;
            expect_seq += 1;
            rep.audit_sealed += 1;
        }
        if chain_broken {
            break;
        }
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
