//! The database side of a charge batch on SQLite (see `backend/store/sql/batch.rs`): take the
//! write lock (`BEGIN IMMEDIATE`, behind the writer gate), read the batch's facts with three
//! statements that take their keys as JSON arrays (`json_each`), write the decisions row by row
//! (a statement costs microseconds in-process; what a batch saves is fsyncs), and commit once.
//! Nothing can change the wallets between the read and the commit, so a write always applies.

use crate::sql::batch::{BatchCtx, Locking};
use crate::sql::error::{corrupt, db};
use crate::sql::journal::{SystemIds, Wallets};
use crate::sql::plan::{write_rows, BatchFacts, BatchKeys, BatchPerson, Plan, PreparedCharge};
use crate::sql::rows::to_u32;
use crate::sql::tx::{begin_gated, Tx};
use ledger::Fen;
use store::Result;

/// A batch's write transaction.
pub(crate) struct BatchIo {
    tx: Tx,
}

/// What a read found; SQLite needs nothing besides the facts to write (it holds the lock).
pub(crate) struct BatchRead {
    pub(crate) facts: BatchFacts,
    pub(crate) snapshot: Snapshot,
}

/// Nothing: under the write lock a write never checks what the read saw.
pub(crate) struct Snapshot;

/// (staff id, active, meals per period, category, cash account, cash, subsidy account, subsidy).
type PersonRow = (i64, bool, i64, String, i64, i64, i64, i64);

impl BatchIo {
    /// `BEGIN IMMEDIATE` behind the writer gate: the database's write lock, held to the commit,
    /// whatever the locking asked for.
    pub(crate) async fn open(ctx: &BatchCtx, _keys: &BatchKeys, _locking: Locking) -> Result<Self> {
        Ok(BatchIo {
            tx: begin_gated(&ctx.pool, ctx.gate.as_ref()).await?,
        })
    }

    /// The write lock means a read is never stale: one attempt.
    pub(crate) fn attempts(&self) -> usize {
        1
    }

    pub(crate) async fn read(&mut self, k: &BatchKeys, _charges: usize) -> Result<BatchRead> {
        Ok(BatchRead {
            facts: BatchFacts {
                people: self.people(&k.staff_ids).await?,
                totals: self.totals(&k.days).await?,
                seen: self.seen(&k.keys).await?,
            },
            snapshot: Snapshot,
        })
    }

    /// Writes the decisions row by row; always applies (the write lock is held).
    pub(crate) async fn write(
        &mut self,
        sys: &SystemIds,
        items: &[PreparedCharge],
        plans: &mut [Plan],
        _snapshot: Snapshot,
    ) -> Result<bool> {
        write_rows(&mut self.tx, sys, items, plans).await?;
        Ok(true)
    }

    pub(crate) async fn finish(self) -> Result<()> {
        self.tx.commit().await
    }

    /// The wallets and facts of every person of the batch.
    async fn people(&mut self, staff_ids: &[i64]) -> Result<Vec<(i64, BatchPerson)>> {
        let ids = serde_json::to_string(staff_ids).map_err(corrupt)?;
        let rows: Vec<PersonRow> = sqlx::query_as(
            "SELECT s.id, s.active, s.meals_per_period, s.category, c.id, c.balance_fen, sb.id, sb.balance_fen \
             FROM staff s \
             JOIN book_accounts c ON c.staff_id = s.id AND c.kind = 'cash' \
             JOIN book_accounts sb ON sb.staff_id = s.id AND sb.kind = 'subsidy' \
             WHERE s.id IN (SELECT value FROM json_each($1))",
        )
        .bind(ids)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(db)?;
        rows.into_iter()
            .map(|r| {
                Ok((
                    r.0,
                    BatchPerson {
                        active: r.1,
                        meals_per_period: to_u32(r.2)?,
                        category: r.3,
                        wallets: Wallets {
                            staff_id: r.0,
                            cash_id: r.4,
                            cash: Fen(r.5),
                            subsidy_id: r.6,
                            subsidy: Fen(r.7),
                        },
                    },
                ))
            })
            .collect()
    }

    /// Accepted charges per (person, local day, meal): sum and count.
    async fn totals(
        &mut self,
        days: &[(i64, String)],
    ) -> Result<Vec<(i64, String, Option<String>, i64, i64)>> {
        let days = serde_json::to_string(days).map_err(corrupt)?;
        sqlx::query_as(
            "SELECT c.staff_id, c.local_date, c.meal, CAST(SUM(c.amount_fen) AS INTEGER), COUNT(*) \
             FROM json_each($1) d JOIN charges c \
               ON c.staff_id = json_extract(d.value, '$[0]') AND c.local_date = json_extract(d.value, '$[1]') \
             WHERE c.status = 'accepted' GROUP BY c.staff_id, c.local_date, c.meal",
        )
        .bind(days)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(db)
    }

    /// Stored charge responses for the batch's (kiosk, key) pairs.
    async fn seen(&mut self, keys: &[(i64, String)]) -> Result<Vec<(i64, String, String, String)>> {
        let keys = serde_json::to_string(keys).map_err(corrupt)?;
        sqlx::query_as(
            "SELECT i.kiosk_id, i.key, i.request_hash, i.response \
             FROM json_each($1) k JOIN idempotency i \
               ON i.kiosk_id = json_extract(k.value, '$[0]') AND i.scope = 'charge' AND i.key = json_extract(k.value, '$[1]')",
        )
        .bind(keys)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(db)
    }
}
