//! The database side of a charge batch on PostgreSQL (see `backend/store/sql/batch.rs`), in two
//! round trips and, for queued batches, without an explicit transaction (each round trip costs
//! more than the work in it on a busy server): one statement reads everything the decisions
//! need, Rust decides, and one statement writes the whole batch and commits, optimistically: it
//! locks the wallets it moves (in account-id order, so batches and other transactions cannot
//! deadlock), checks that their versions are still the ones read (every change to a balance
//! bumps the version, and so does every change to a person's accepted charges of a day, which
//! always moves money), and writes nothing at all when one is not. The batch is then read and
//! decided again. Decisions that move no money (declines, exceptions) rest on the read's
//! snapshot, as if the batch had run at that instant.
//!
//! A charge settled alone (`Locking::Wait`) runs the same two statements inside a transaction
//! that first locks the person's wallets: the read then sees every change committed before the
//! lock was granted, and the write's version check cannot fail.

use crate::sql::batch::{BatchCtx, Locking};
use crate::sql::error::{corrupt, db};
use crate::sql::journal::{account_id, SystemIds, Wallets};
use crate::sql::plan::{BatchFacts, BatchKeys, BatchPerson, Plan, PreparedCharge};
use crate::sql::rows::to_u32;
use ledger::posting::BookAccount;
use ledger::Fen;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres};
use std::collections::HashMap;
use store::{Actor, Result};

/// How often a queued batch is read and decided again when wallets changed under it before its
/// charges are settled alone (which waits for the locks instead).
const BATCH_ATTEMPTS: usize = 3;

/// A batch's connection: a plain one (optimistic), or a transaction holding the wallet locks.
pub(crate) enum BatchIo {
    Optimistic(PoolConnection<Postgres>),
    Locked(sqlx::Transaction<'static, Postgres>),
}

/// What the write needs from the read besides the facts.
#[derive(Default)]
pub(crate) struct Snapshot {
    /// Wallet account id -> version, as read.
    versions: HashMap<i64, i64>,
    /// Ids reserved for the batch's journal entries and charges (one of each per charge).
    entry_ids: Vec<i64>,
    charge_ids: Vec<i64>,
}

/// What `read_batch` found.
pub(crate) struct BatchRead {
    pub(crate) facts: BatchFacts,
    pub(crate) snapshot: Snapshot,
}

impl BatchIo {
    pub(crate) async fn open(ctx: &BatchCtx, keys: &BatchKeys, locking: Locking) -> Result<Self> {
        Ok(match locking {
            Locking::Optimistic => BatchIo::Optimistic(ctx.pool.acquire().await.map_err(db)?),
            Locking::Wait => {
                let mut tx = ctx.pool.begin().await.map_err(db)?;
                // In account-id order, as the batch write locks them: no deadlock between the two.
                sqlx::query(
                    "SELECT id FROM book_accounts WHERE staff_id = ANY($1) AND kind IN ('cash', 'subsidy') \
                     ORDER BY id FOR UPDATE",
                )
                .bind(&keys.staff_ids)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                BatchIo::Locked(tx)
            }
        })
    }

    pub(crate) fn attempts(&self) -> usize {
        match self {
            BatchIo::Optimistic(_) => BATCH_ATTEMPTS,
            BatchIo::Locked(_) => 1,
        }
    }

    fn conn(&mut self) -> &mut PgConnection {
        match self {
            BatchIo::Optimistic(c) => c,
            BatchIo::Locked(tx) => tx,
        }
    }

    pub(crate) async fn read(&mut self, keys: &BatchKeys, charges: usize) -> Result<BatchRead> {
        read_batch(self.conn(), keys, charges).await
    }

    /// Writes the batch; `false` (nothing written) when a wallet changed since the read.
    pub(crate) async fn write(
        &mut self,
        sys: &SystemIds,
        items: &[PreparedCharge],
        plans: &mut [Plan],
        snapshot: Snapshot,
    ) -> Result<bool> {
        if !plans.iter().any(|p| matches!(p, Plan::Write(_))) {
            return Ok(true);
        }
        write_batch(self.conn(), sys, items, plans, snapshot).await
    }

    pub(crate) async fn finish(self) -> Result<()> {
        match self {
            BatchIo::Optimistic(_) => Ok(()),
            BatchIo::Locked(tx) => tx.commit().await.map_err(db),
        }
    }
}

/// `read_batch`'s statement. Parameters: $1 staff ids, $2/$3 (person, local day) pairs, $4/$5
/// (kiosk, key) pairs, $6 how many entry and charge ids to reserve. Public so a test can check
/// its generic plan.
pub const READ_BATCH_SQL: &str = "SELECT 0 AS k, w.staff_id AS a, w.id AS b, w.balance_fen AS c, w.version AS d, NULL::BOOLEAN AS flag, \
                w.kind AS t1, NULL::TEXT AS t2, NULL::TEXT AS t3 \
         FROM book_accounts w WHERE w.staff_id = ANY($1) AND w.kind IN ('cash', 'subsidy') \
         UNION ALL \
         SELECT 1, s.id, s.meals_per_period, NULL, NULL, s.active, s.category, NULL, NULL FROM staff s WHERE s.id = ANY($1) \
         UNION ALL \
         SELECT 2, d.staff_id, t.total, t.n, NULL, NULL, d.local_date, t.meal, NULL \
         FROM unnest($2::BIGINT[], $3::TEXT[]) AS d(staff_id, local_date) \
         CROSS JOIN LATERAL ( \
           SELECT c.meal, CAST(SUM(c.amount_fen) AS BIGINT) AS total, COUNT(*) AS n FROM charges c \
           WHERE c.staff_id = d.staff_id AND c.local_date = d.local_date AND c.status = 'accepted' \
           GROUP BY c.meal OFFSET 0) t \
         UNION ALL \
         SELECT 3, q.kiosk_id, NULL, NULL, NULL, NULL, q.key, i.request_hash, i.response \
         FROM unnest($4::BIGINT[], $5::TEXT[]) AS q(kiosk_id, key) \
         CROSS JOIN LATERAL ( \
           SELECT i.request_hash, i.response FROM idempotency i \
           WHERE i.kiosk_id = q.kiosk_id AND i.scope = 'charge' AND i.key = q.key OFFSET 0) i \
         UNION ALL \
         SELECT 4, nextval(pg_get_serial_sequence('journal_entries', 'id')), \
                nextval(pg_get_serial_sequence('charges', 'id')), NULL, NULL, NULL, NULL, NULL, NULL \
         FROM generate_series(1, $6)";

/// `write_batch`'s statement (parameters: see the binds there). Public so a test can check its
/// generic plan.
pub const WRITE_BATCH_SQL: &str = "WITH l AS ( \
           SELECT w.id, w.version FROM book_accounts w WHERE w.id = ANY($7) ORDER BY w.id FOR UPDATE \
         ), ok AS ( \
           SELECT COUNT(*) = cardinality($7::BIGINT[]) \
                  AND COALESCE(bool_and(l.version = ($9::BIGINT[])[array_position($7::BIGINT[], l.id)]), TRUE) AS ok \
           FROM l \
         ), b AS ( \
           UPDATE book_accounts a \
           SET balance_fen = a.balance_fen + ($8::BIGINT[])[array_position($7::BIGINT[], a.id)], version = a.version + 1 \
           WHERE a.id = ANY($7) AND (SELECT ok FROM ok) \
         ), e AS ( \
           INSERT INTO journal_entries (id, kind, created_at, memo) \
           SELECT id, 'charge', at, memo FROM unnest($1::BIGINT[], $2::BIGINT[], $3::TEXT[]) AS t(id, at, memo) \
           WHERE (SELECT ok FROM ok) \
         ), p AS ( \
           INSERT INTO postings (entry_id, account_id, amount_fen) \
           SELECT * FROM unnest($4::BIGINT[], $5::BIGINT[], $6::BIGINT[]) WHERE (SELECT ok FROM ok) \
         ), c AS ( \
           INSERT INTO charges (id, kiosk_id, idempotency_key, staff_id, canteen_id, meal, local_date, kiosk_time, \
             received_at, amount_fen, subsidy_fen, cash_fen, status, reason, entry_id, offline) \
           SELECT * FROM unnest($10::BIGINT[], $11::BIGINT[], $12::TEXT[], $13::BIGINT[], $14::BIGINT[], $15::TEXT[], \
             $16::TEXT[], $17::BIGINT[], $18::BIGINT[], $19::BIGINT[], $20::BIGINT[], $21::BIGINT[], $22::TEXT[], \
             $23::TEXT[], $24::BIGINT[], $25::BOOLEAN[]) \
           WHERE (SELECT ok FROM ok) \
         ), i AS ( \
           INSERT INTO idempotency (kiosk_id, scope, key, request_hash, response, created_at) \
           SELECT k, 'charge', key, h, r, at FROM unnest($26::BIGINT[], $27::TEXT[], $28::TEXT[], $29::TEXT[], $30::BIGINT[]) \
             AS t(k, key, h, r, at) \
           WHERE (SELECT ok FROM ok) \
         ), a AS ( \
           INSERT INTO audit_log (at, actor, action, detail) \
           SELECT * FROM unnest($31::BIGINT[], $32::TEXT[], $33::TEXT[], $34::TEXT[]) WHERE (SELECT ok FROM ok) \
         ) \
         SELECT ok FROM ok";

/// Reads everything a batch's decisions need in ONE statement (one snapshot): the people's
/// wallets with their versions, their facts, the day's accepted totals, the stored idempotency
/// records, and `ids` reserved entry and charge ids (so the write can name its rows up front and
/// responses can carry the charge id).
///
/// The totals and the records are looked up pair by pair, each in a LATERAL subquery that the
/// planner cannot flatten (`OFFSET 0`) and that compares a whole index key with the outer row:
/// such a probe is an index lookup in any plan, including the one generic plan a batch writer's
/// session makes once, perhaps while the tables are still empty (see `connect_with` in lib.rs). As plain
/// joins, a plan made on small tables scanned every charge or every idempotency record and
/// filtered, which grows with the tables.
async fn read_batch(conn: &mut sqlx::PgConnection, k: &BatchKeys, ids: usize) -> Result<BatchRead> {
    let day_staff: Vec<i64> = k.days.iter().map(|d| d.0).collect();
    let day_dates: Vec<String> = k.days.iter().map(|d| d.1.clone()).collect();
    let key_kiosks: Vec<i64> = k.keys.iter().map(|k| k.0).collect();
    let key_names: Vec<String> = k.keys.iter().map(|k| k.1.clone()).collect();
    // Five kinds of rows in one result, told apart by `k`:
    //   0 wallet  (a staff id, b account id, c balance, d version, t1 kind)
    //   1 person  (a staff id, b meals_per_period, flag active, t1 category)
    //   2 totals  (a staff id, b sum, c count, t1 local date, t2 meal)
    //   3 record  (a kiosk id, t1 key, t2 request hash, t3 response)
    //   4 ids     (a entry id, b charge id)
    let rows: Vec<BatchRow> = sqlx::query_as(READ_BATCH_SQL)
        .bind(&k.staff_ids)
        .bind(day_staff)
        .bind(day_dates)
        .bind(key_kiosks)
        .bind(key_names)
        .bind(ids as i64)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    let mut out = BatchRead {
        facts: BatchFacts {
            people: Vec::new(),
            totals: Vec::new(),
            seen: Vec::new(),
        },
        snapshot: Snapshot::default(),
    };
    let need = |v: Option<i64>| v.ok_or_else(|| corrupt("missing column in a batch read"));
    let need_text = |v: Option<String>| v.ok_or_else(|| corrupt("missing column in a batch read"));
    // staff id -> (cash account, balance), (subsidy account, balance)
    let mut wallets: std::collections::HashMap<
        i64,
        (Option<AccountBalance>, Option<AccountBalance>),
    > = Default::default();
    let mut staff = Vec::new();
    for r in rows {
        match r.0 {
            0 => {
                let account = (need(r.2)?, need(r.3)?);
                out.snapshot.versions.insert(account.0, need(r.4)?);
                let w = wallets.entry(need(r.1)?).or_default();
                match need_text(r.6)?.as_str() {
                    "cash" => w.0 = Some(account),
                    _ => w.1 = Some(account),
                }
            }
            1 => staff.push((
                need(r.1)?,
                need(r.2)?,
                r.5.ok_or_else(|| corrupt("missing column in a batch read"))?,
                need_text(r.6)?,
            )),
            2 => out
                .facts
                .totals
                .push((need(r.1)?, need_text(r.6)?, r.7, need(r.2)?, need(r.3)?)),
            3 => out.facts.seen.push((
                need(r.1)?,
                need_text(r.6)?,
                need_text(r.7)?,
                need_text(r.8)?,
            )),
            4 => {
                out.snapshot.entry_ids.push(need(r.1)?);
                out.snapshot.charge_ids.push(need(r.2)?);
            }
            k => return Err(corrupt(format!("batch read row of kind {k}"))),
        }
    }
    for (id, meals, active, category) in staff {
        // A person without both wallets is not someone who can be charged (as on the one-charge
        // path, whose join finds no row): the charge answers "staff not found".
        let Some((Some((cash_id, cash)), Some((subsidy_id, subsidy)))) = wallets.get(&id).copied()
        else {
            continue;
        };
        out.facts.people.push((
            id,
            BatchPerson {
                active,
                meals_per_period: to_u32(meals)?,
                category,
                wallets: Wallets {
                    staff_id: id,
                    cash_id,
                    cash: Fen(cash),
                    subsidy_id,
                    subsidy: Fen(subsidy),
                },
            },
        ));
    }
    Ok(out)
}

/// (account id, balance in fen).
type AccountBalance = (i64, i64);

/// One row of `read_batch`'s result (see the kinds there).
type BatchRow = (
    i32,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<bool>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Writes every planned charge of a batch in ONE statement, which is also its own transaction:
/// the entries, postings, charges, idempotency records and audit entries, and the wallet
/// balances, all from arrays. It first locks the wallets whose balances move, in account-id
/// order, and reads their versions under the lock; only when every one is still the version the
/// batch was decided on does anything get written (`ok`). Returns `ok`.
async fn write_batch(
    conn: &mut sqlx::PgConnection,
    sys: &SystemIds,
    items: &[PreparedCharge],
    plans: &mut [Plan],
    snapshot: Snapshot,
) -> Result<bool> {
    let versions = snapshot.versions;
    let (mut entry_ids, mut charge_ids) = (
        snapshot.entry_ids.into_iter(),
        snapshot.charge_ids.into_iter(),
    );
    let (mut e_id, mut e_at, mut e_memo) = (Vec::new(), Vec::new(), Vec::new());
    let (mut p_entry, mut p_acct, mut p_amt) = (Vec::new(), Vec::new(), Vec::new());
    let mut deltas: std::collections::BTreeMap<i64, i64> = Default::default();
    let mut c_id = Vec::new();
    let (mut c_kiosk, mut c_key, mut c_staff, mut c_canteen) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut c_meal, mut c_date, mut c_ktime, mut c_recv) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut c_amount, mut c_sub, mut c_cash, mut c_status) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut c_reason, mut c_entry, mut c_offline) = (Vec::new(), Vec::new(), Vec::new());
    let (mut i_kiosk, mut i_key, mut i_hash, mut i_resp, mut i_at) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut a_at, mut a_actor, mut a_action, mut a_detail) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for plan in plans.iter_mut() {
        let Plan::Write(w) = plan else { continue };
        let cmd = &items[w.item].cmd;
        let mut entry_id = None;
        if let Some(entry) = &w.entry {
            let id = entry_ids
                .next()
                .ok_or_else(|| corrupt("ran out of reserved entry ids"))?;
            entry_id = Some(id);
            e_id.push(id);
            e_at.push(cmd.received_ms);
            e_memo.push(w.memo.clone());
            let wallets = w.wallets(cmd.staff_id);
            for posting in entry.postings() {
                p_entry.push(id);
                p_acct.push(account_id(sys, &wallets, posting.account)?);
                p_amt.push(posting.amount.0);
            }
            // Both wallets of the person, always: a charge moves the day's totals even when it
            // takes nothing from one of them, and the version is how others notice.
            *deltas.entry(w.cash_id).or_default() +=
                entry.delta(BookAccount::StaffCash(cmd.staff_id)).0;
            *deltas.entry(w.subsidy_id).or_default() +=
                entry.delta(BookAccount::StaffSubsidy(cmd.staff_id)).0;
        }
        if let Some(status) = w.status {
            let id = charge_ids
                .next()
                .ok_or_else(|| corrupt("ran out of reserved charge ids"))?;
            w.result.charge_id = Some(id);
            let r = &w.result;
            c_id.push(id);
            c_kiosk.push(cmd.kiosk_id);
            c_key.push(cmd.idempotency_key.clone());
            c_staff.push(cmd.staff_id);
            c_canteen.push(cmd.canteen_id);
            c_meal.push(r.meal.map(|m| m.as_str().to_string()));
            c_date.push(r.local_date.clone().unwrap_or_default());
            c_ktime.push(cmd.kiosk_time_ms);
            c_recv.push(cmd.received_ms);
            c_amount.push(r.amount.0);
            c_sub.push(r.subsidy.0);
            c_cash.push(r.cash.0);
            c_status.push(status.to_string());
            c_reason.push(r.reason.clone());
            c_entry.push(entry_id);
            c_offline.push(cmd.offline);
        }
        i_kiosk.push(cmd.kiosk_id);
        i_key.push(cmd.idempotency_key.clone());
        i_hash.push(cmd.request_hash.clone());
        i_resp.push(serde_json::to_string(&w.result).map_err(corrupt)?);
        i_at.push(cmd.received_ms);
        if let Some(action) = w.audit_action() {
            a_at.push(cmd.received_ms);
            a_actor.push(Actor::Kiosk { id: cmd.kiosk_id }.label());
            a_action.push(action.to_string());
            a_detail.push(w.audit_detail(cmd).to_string());
        }
    }
    let (b_id, b_delta): (Vec<i64>, Vec<i64>) = deltas.into_iter().unzip();
    let b_version = b_id
        .iter()
        .map(|id| {
            versions
                .get(id)
                .copied()
                .ok_or_else(|| corrupt(format!("no version read for account {id}")))
        })
        .collect::<Result<Vec<i64>>>()?;
    let (ok,): (bool,) = sqlx::query_as(WRITE_BATCH_SQL)
        .bind(e_id)
        .bind(e_at)
        .bind(e_memo)
        .bind(p_entry)
        .bind(p_acct)
        .bind(p_amt)
        .bind(b_id)
        .bind(b_delta)
        .bind(b_version)
        .bind(c_id)
        .bind(c_kiosk)
        .bind(c_key)
        .bind(c_staff)
        .bind(c_canteen)
        .bind(c_meal)
        .bind(c_date)
        .bind(c_ktime)
        .bind(c_recv)
        .bind(c_amount)
        .bind(c_sub)
        .bind(c_cash)
        .bind(c_status)
        .bind(c_reason)
        .bind(c_entry)
        .bind(c_offline)
        .bind(i_kiosk)
        .bind(i_key)
        .bind(i_hash)
        .bind(i_resp)
        .bind(i_at)
        .bind(a_at)
        .bind(a_actor)
        .bind(a_action)
        .bind(a_detail)
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    if !ok {
        // Nothing was written; the ids this attempt reserved stay unused (gaps are harmless).
        for plan in plans.iter_mut() {
            if let Plan::Write(w) = plan {
                w.result.charge_id = None;
            }
        }
    }
    Ok(ok)
}
