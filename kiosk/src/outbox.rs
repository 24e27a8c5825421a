//! The kiosk's local state in SQLite: the outbox of charges and waste records waiting to
//! reach the backend, the meals already charged here (so a person is not charged twice
//! in one meal period even offline), and the cached balances offline decisions use.
//!
//! The outbox is the kiosk's promise-keeping device. A charge is committed here, with
//! `synchronous=FULL` in WAL mode so the commit survives a power cut, BEFORE the diner
//! is told "paid"; it is then sent in order (lowest sequence number first), and an item
//! is marked delivered only after the backend answered. A crash between "sent" and
//! "marked" resends the same idempotency key, which the backend answers with the stored
//! result, so each item takes effect exactly once. A transient failure stops the drain
//! (order is kept); a permanent refusal (a 4xx other than 408/429) sets the item aside as
//! `rejected` for a person to look at, so one bad item cannot block the queue forever.
//!
//! What an answer teaches (balances, the backend's charge id, a declined meal to forget) is
//! applied in the same transaction that marks the item. One case adds an item: a charge
//! whose answer was lost and whose diner the kiosk served anyway (within the offline
//! allowance, marked `served`) may turn out `declined` (or refused for good, i.e. never
//! applied). The idempotency key keeps its meaning at the backend, so the kiosk then queues
//! a NEW charge for the served meal, `offline: true`, under the derived key `<key>:served`,
//! in that same transaction: the backend records it (accepted, or an exception for a
//! manager) exactly once, whatever crashes or lost answers happen around it.
//!
//! The mirror case: a charge whose answer was lost and whose diner the kiosk then REFUSED
//! on its own (marked `refused`; it could not be withdrawn because it may have arrived)
//! may turn out `accepted`: the person paid for a meal never served. The transaction that
//! records that answer queues a void (`<key>:void`), which asks the backend to reverse
//! exactly that charge; the backend answers a repeated void with the same reversal.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;
use wire::{ChargeRequest, ChargeResponse, ChargeStatus, VoidChargeRequest};

use crate::config::to_fen;

/// Suffix of the key of the offline charge queued for a meal served after a lost answer
/// whose request the backend declined (see the module documentation).
pub const SERVED_SUFFIX: &str = ":served";

/// Suffix of the key of the void queued for a charge accepted after the kiosk refused its
/// diner (see the module documentation).
pub const VOID_SUFFIX: &str = ":void";

/// The reason a void gives the backend (and the manager reading the journal).
pub const VOID_REASON: &str = "refused_offline_not_served";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("local database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("local database: {0}")]
    Json(#[from] serde_json::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Charge,
    Waste,
    /// A request to reverse a charge whose diner was not served.
    Void,
}

impl ItemKind {
    fn as_str(self) -> &'static str {
        match self {
            ItemKind::Charge => "charge",
            ItemKind::Waste => "waste",
            ItemKind::Void => "void",
        }
    }

    fn parse(s: &str) -> ItemKind {
        match s {
            "waste" => ItemKind::Waste,
            "void" => ItemKind::Void,
            _ => ItemKind::Charge,
        }
    }
}

/// One queued request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxItem {
    pub seq: i64,
    pub kind: ItemKind,
    pub idempotency_key: String,
    /// The request body (JSON of the `wire` type), exactly as it will be sent every time.
    pub body: String,
    pub created_ms: i64,
    pub attempts: i64,
    /// The diner was served on the kiosk's own (offline) decision.
    pub served: bool,
    /// The diner was refused on the kiosk's own (offline) decision after this charge may
    /// already have reached the backend.
    pub refused: bool,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// The backend answered (first time or replay); its response body.
    Delivered(String),
    /// Try again later (timeout, 5xx, 429): the request may have arrived. Stops the
    /// drain to keep the order.
    Transient(String),
    /// The backend could not be reached at all: the request surely did not arrive.
    /// Stops the drain like `Transient`.
    Unreachable(String),
    /// The backend will never accept this body (4xx); set it aside.
    Permanent(String),
}

/// What one drain did.
#[derive(Debug, Default)]
pub struct DrainReport {
    /// Items delivered or rejected, in order.
    pub done: Vec<(OutboxItem, Delivery)>,
    /// The item whose transient failure stopped the drain.
    pub stopped: Option<(OutboxItem, Delivery)>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    pub pending: i64,
    pub delivered: i64,
    pub rejected: i64,
    /// Items queued by the outbox itself: offline charges for served meals whose lost-answer
    /// charge was declined, and voids of charges accepted for diners who were refused.
    pub derived: i64,
}

/// A person's balance as last heard from the backend (a charge answer or the balances
/// snapshot).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CachedBalance {
    pub staff_id: i64,
    /// Cash + subsidy, in fen, as the backend last reported it.
    pub available_fen: i64,
    pub as_of_ms: i64,
    /// The snapshot's version of this person's balances; None when the newest news was a
    /// charge answer (which carries none).
    pub version: Option<i64>,
    /// False for people the backend lists as inactive (offboarded): refused offline.
    pub active: bool,
    /// Staff category, to pick the offline price; None until a snapshot told it.
    pub category: Option<String>,
}

/// One person's entry of the backend's balances snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotBalance {
    pub staff_id: i64,
    pub available_fen: i64,
    pub version: i64,
    pub active: bool,
    pub category: String,
}

pub struct LocalStore {
    conn: Connection,
}

impl LocalStore {
    /// Opens (or creates) the database file with WAL and `synchronous=FULL`.
    pub fn open(path: &Path) -> Result<LocalStore> {
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<LocalStore> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<LocalStore> {
        // WAL: readers never block the writer; FULL: a commit is fsynced before it returns,
        // which is the guarantee "written before the diner is told paid" needs.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS outbox (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                kind TEXT NOT NULL,
                idempotency_key TEXT NOT NULL UNIQUE,
                body TEXT NOT NULL,
                created_ms INTEGER NOT NULL,
                state TEXT NOT NULL DEFAULT 'pending',
                attempts INTEGER NOT NULL DEFAULT 0,
                -- 1 once an attempt may have reached the backend: the body is then frozen.
                maybe_sent INTEGER NOT NULL DEFAULT 0,
                last_error TEXT,
                response TEXT,
                done_ms INTEGER
            );
            CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(state, seq);
            CREATE TABLE IF NOT EXISTS meals_charged (
                staff_id INTEGER NOT NULL,
                local_date TEXT NOT NULL,
                meal TEXT NOT NULL,
                idempotency_key TEXT NOT NULL,
                at_ms INTEGER NOT NULL,
                charge_id INTEGER,
                PRIMARY KEY (staff_id, local_date, meal)
            );
            CREATE TABLE IF NOT EXISTS waste_log (
                staff_id INTEGER,
                net_g INTEGER NOT NULL,
                at_ms INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS balances (
                staff_id INTEGER PRIMARY KEY,
                available_fen INTEGER NOT NULL,
                as_of_ms INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS offline_spent (
                idempotency_key TEXT PRIMARY KEY,
                staff_id INTEGER NOT NULL,
                amount_fen INTEGER NOT NULL,
                settled INTEGER NOT NULL DEFAULT 0
            );",
        )?;
        // Later columns, added to databases made by earlier versions (user_version 0).
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if v < 1 {
            conn.execute_batch(
                "BEGIN;
                 ALTER TABLE outbox ADD COLUMN served INTEGER NOT NULL DEFAULT 0;
                 ALTER TABLE outbox ADD COLUMN derived_from TEXT;
                 ALTER TABLE balances ADD COLUMN version INTEGER;
                 ALTER TABLE balances ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
                 ALTER TABLE balances ADD COLUMN category TEXT;
                 PRAGMA user_version = 1;
                 COMMIT;",
            )?;
        }
        if v < 2 {
            conn.execute_batch(
                "BEGIN;
                 ALTER TABLE outbox ADD COLUMN refused INTEGER NOT NULL DEFAULT 0;
                 PRAGMA user_version = 2;
                 COMMIT;",
            )?;
        }
        Ok(LocalStore { conn })
    }

    /// Queues a request durably (committed and fsynced when this returns). Enqueuing the
    /// same key again is a no-op returning the existing item's sequence number.
    pub fn enqueue(&mut self, kind: ItemKind, key: &str, body: &str, now_ms: i64) -> Result<i64> {
        let tx = self.conn.transaction()?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT seq FROM outbox WHERE idempotency_key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()?;
        let seq = match existing {
            Some(s) => s,
            None => {
                tx.execute(
                    "INSERT INTO outbox (kind, idempotency_key, body, created_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![kind.as_str(), key, body, now_ms],
                )?;
                tx.last_insert_rowid()
            }
        };
        tx.commit()?;
        Ok(seq)
    }

    /// The oldest item not yet delivered or rejected.
    pub fn next_pending(&self) -> Result<Option<OutboxItem>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {ITEM_COLUMNS} FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT 1"),
                [],
                item_from_row,
            )
            .optional()?)
    }

    /// The kiosk serves a diner on its own decision, in one transaction: the charge's body
    /// becomes `offline_body` if it surely never left the kiosk (else it stays as is, to be
    /// resent identically), it is marked `served`, and `amount_fen` counts against the
    /// person's offline allowance. Returns whether the body was replaced.
    pub fn serve_offline(
        &mut self,
        key: &str,
        offline_body: &str,
        staff_id: i64,
        amount_fen: i64,
    ) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let rewritten = tx.execute(
            "UPDATE outbox SET body = ?2 WHERE idempotency_key = ?1 AND state = 'pending' AND maybe_sent = 0",
            params![key, offline_body],
        )? == 1;
        tx.execute(
            "UPDATE outbox SET served = 1 WHERE idempotency_key = ?1",
            [key],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO offline_spent (idempotency_key, staff_id, amount_fen) VALUES (?1, ?2, ?3)",
            params![key, staff_id, amount_fen],
        )?;
        tx.commit()?;
        Ok(rewritten)
    }

    /// Marks a queued charge as served on the kiosk's own decision (see the module
    /// documentation for what a `declined` answer to it then does).
    pub fn mark_served(&mut self, key: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE outbox SET served = 1 WHERE idempotency_key = ?1",
            [key],
        )? == 1)
    }

    /// Marks a queued charge whose diner the kiosk refused on its own while the charge may
    /// already have reached the backend (see the module documentation for what an
    /// `accepted` answer to it then does).
    pub fn mark_refused(&mut self, key: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE outbox SET refused = 1 WHERE idempotency_key = ?1 AND kind = 'charge'",
            [key],
        )? == 1)
    }

    pub fn item(&self, key: &str) -> Result<Option<(String, Option<String>)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT state, response FROM outbox WHERE idempotency_key = ?1",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Records the outcome of one attempt at item `seq`, and what a final answer teaches,
    /// in one transaction (see the module documentation).
    pub fn record(&mut self, seq: i64, outcome: &Delivery, now_ms: i64) -> Result<()> {
        let tx = self.conn.transaction()?;
        match outcome {
            Delivery::Delivered(resp) => tx.execute(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, response = ?2, done_ms = ?3,
                 last_error = NULL WHERE seq = ?1",
                params![seq, resp, now_ms],
            )?,
            Delivery::Transient(e) => tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, maybe_sent = 1, last_error = ?2 WHERE seq = ?1",
                params![seq, e],
            )?,
            Delivery::Unreachable(e) => tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE seq = ?1",
                params![seq, e],
            )?,
            Delivery::Permanent(e) => tx.execute(
                "UPDATE outbox SET state = 'rejected', attempts = attempts + 1, last_error = ?2, done_ms = ?3
                 WHERE seq = ?1",
                params![seq, e, now_ms],
            )?,
        };
        if matches!(outcome, Delivery::Delivered(_) | Delivery::Permanent(_)) {
            let item = tx
                .query_row(
                    &format!("SELECT {ITEM_COLUMNS} FROM outbox WHERE seq = ?1"),
                    [seq],
                    item_from_row,
                )
                .optional()?;
            if let Some(item) = item {
                if item.kind == ItemKind::Charge {
                    learn_charge_outcome(&tx, &item, outcome, now_ms)?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Sends pending items in order through `send` until the queue is empty or an attempt
    /// fails transiently. Returns the items delivered or rejected in this call.
    pub fn drain(
        &mut self,
        now_ms: impl Fn() -> i64,
        send: impl FnMut(&OutboxItem) -> Delivery,
    ) -> Result<Vec<(OutboxItem, Delivery)>> {
        Ok(self.drain_report(now_ms, send)?.done)
    }

    /// [`drain`](Self::drain), also telling which item stopped it and how.
    pub fn drain_report(
        &mut self,
        now_ms: impl Fn() -> i64,
        mut send: impl FnMut(&OutboxItem) -> Delivery,
    ) -> Result<DrainReport> {
        let mut report = DrainReport::default();
        while let Some(item) = self.next_pending()? {
            let outcome = send(&item);
            self.record(item.seq, &outcome, now_ms())?;
            match outcome {
                Delivery::Transient(_) | Delivery::Unreachable(_) => {
                    report.stopped = Some((item, outcome));
                    break;
                }
                other => report.done.push((item, other)),
            }
        }
        Ok(report)
    }

    /// Replaces the body of an item that surely never reached the backend (every attempt
    /// so far was `Unreachable`). Returns false, changing nothing, if it may have.
    pub fn rewrite_unsent(&mut self, key: &str, body: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE outbox SET body = ?2 WHERE idempotency_key = ?1 AND state = 'pending' AND maybe_sent = 0",
            params![key, body],
        )? == 1)
    }

    /// Withdraws an item that surely never reached the backend; false if it may have.
    pub fn withdraw_unsent(&mut self, key: &str) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM outbox WHERE idempotency_key = ?1 AND state = 'pending' AND maybe_sent = 0", [key])?
            == 1)
    }

    #[cfg(test)]
    pub(crate) fn unmark_meal_for_test(&mut self, staff_id: i64) {
        self.conn
            .execute("DELETE FROM meals_charged WHERE staff_id = ?1", [staff_id])
            .unwrap();
    }

    /// Records a weighing shown at this station (for the averages shown to diners when
    /// the backend offers none).
    pub fn log_waste(&mut self, staff_id: Option<i64>, net_g: i64, at_ms: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO waste_log (staff_id, net_g, at_ms) VALUES (?1, ?2, ?3)",
            params![staff_id, net_g, at_ms],
        )?;
        Ok(())
    }

    /// This station's average net waste: of one person, and of everyone.
    pub fn local_waste_averages(
        &self,
        staff_id: Option<i64>,
    ) -> Result<(Option<f64>, Option<f64>)> {
        let person = match staff_id {
            Some(id) => self.conn.query_row(
                "SELECT AVG(net_g) FROM waste_log WHERE staff_id = ?1",
                [id],
                |r| r.get(0),
            )?,
            None => None,
        };
        let all = self
            .conn
            .query_row("SELECT AVG(net_g) FROM waste_log", [], |r| r.get(0))?;
        Ok((person, all))
    }

    /// Remembers the backend's charge id of a meal charged here (links waste records).
    pub fn set_meal_charge(&mut self, key: &str, charge_id: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE meals_charged SET charge_id = ?2 WHERE idempotency_key = ?1",
            params![key, charge_id],
        )?;
        Ok(())
    }

    pub fn meal_charge(&self, staff_id: i64, local_date: &str, meal: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT charge_id FROM meals_charged WHERE staff_id = ?1 AND local_date = ?2 AND meal = ?3",
                params![staff_id, local_date, meal],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten())
    }

    pub fn counts(&self) -> Result<OutboxCounts> {
        let mut c = OutboxCounts {
            derived: self.conn.query_row(
                "SELECT count(*) FROM outbox WHERE derived_from IS NOT NULL",
                [],
                |r| r.get(0),
            )?,
            ..OutboxCounts::default()
        };
        let mut stmt = self
            .conn
            .prepare("SELECT state, count(*) FROM outbox GROUP BY state")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (state, n) = row?;
            match state.as_str() {
                "pending" => c.pending = n,
                "delivered" => c.delivered = n,
                _ => c.rejected += n,
            }
        }
        Ok(c)
    }

    /// Remembers that `staff_id` was charged for (`local_date`, `meal`). Returns false when
    /// a charge for that meal was already recorded here.
    pub fn mark_meal(
        &mut self,
        staff_id: i64,
        local_date: &str,
        meal: &str,
        key: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO meals_charged (staff_id, local_date, meal, idempotency_key, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![staff_id, local_date, meal, key, now_ms],
        )?;
        Ok(n == 1)
    }

    /// Forgets a meal mark (the charge was declined after all).
    pub fn unmark_meal(&mut self, key: &str) -> Result<()> {
        self.conn.execute(
            "DELETE FROM meals_charged WHERE idempotency_key = ?1",
            [key],
        )?;
        Ok(())
    }

    pub fn meal_taken(&self, staff_id: i64, local_date: &str, meal: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM meals_charged WHERE staff_id = ?1 AND local_date = ?2 AND meal = ?3",
                params![staff_id, local_date, meal],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// A balance from a charge answer received at `as_of_ms`. It replaces what is cached
    /// unless that is newer news (a snapshot page requested later).
    pub fn set_balance(&mut self, staff_id: i64, available_fen: i64, as_of_ms: i64) -> Result<()> {
        set_balance_from_charge(&self.conn, staff_id, available_fen, as_of_ms)
    }

    /// One page of the backend's balances snapshot, requested at `requested_ms`, in one
    /// transaction. Per person the entry replaces the cached one when its version is higher
    /// or, if the cached one came from a charge answer (no version), when the page was
    /// requested after that answer arrived. Returns how many balances changed.
    pub fn apply_balance_snapshot(
        &mut self,
        entries: &[SnapshotBalance],
        requested_ms: i64,
    ) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let mut changed = 0;
        {
            let mut upsert = tx.prepare(
                "INSERT INTO balances (staff_id, available_fen, as_of_ms, version, active, category)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(staff_id) DO UPDATE SET available_fen = excluded.available_fen,
                   as_of_ms = excluded.as_of_ms, version = excluded.version
                 WHERE (balances.version IS NOT NULL AND excluded.version > balances.version)
                    OR (balances.version IS NULL AND excluded.as_of_ms >= balances.as_of_ms)",
            )?;
            // Whether someone is active and their category are not balance news: always current.
            let mut facts =
                tx.prepare("UPDATE balances SET active = ?2, category = ?3 WHERE staff_id = ?1")?;
            for e in entries {
                changed += upsert.execute(params![
                    e.staff_id,
                    e.available_fen,
                    requested_ms,
                    e.version,
                    e.active,
                    e.category
                ])?;
                facts.execute(params![e.staff_id, e.active, e.category])?;
            }
        }
        tx.commit()?;
        Ok(changed)
    }

    pub fn balance(&self, staff_id: i64) -> Result<Option<CachedBalance>> {
        Ok(self
            .conn
            .query_row(
                "SELECT available_fen, as_of_ms, version, active, category FROM balances WHERE staff_id = ?1",
                [staff_id],
                |r| {
                    Ok(CachedBalance {
                        staff_id,
                        available_fen: r.get(0)?,
                        as_of_ms: r.get(1)?,
                        version: r.get(2)?,
                        active: r.get(3)?,
                        category: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// How many people have a cached balance.
    pub fn balances_known(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM balances", [], |r| r.get(0))?)
    }

    /// Records an offline charge against the person's offline allowance.
    pub fn add_offline_spend(&mut self, key: &str, staff_id: i64, amount_fen: i64) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO offline_spent (idempotency_key, staff_id, amount_fen) VALUES (?1, ?2, ?3)",
            params![key, staff_id, amount_fen],
        )?;
        Ok(())
    }

    /// The backend has seen the charge: it no longer counts against the offline limit.
    pub fn settle_offline_spend(&mut self, key: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE offline_spent SET settled = 1 WHERE idempotency_key = ?1",
            [key],
        )?;
        Ok(())
    }

    /// What this kiosk charged `staff_id` offline that the backend has not confirmed yet.
    pub fn unsettled_offline_fen(&self, staff_id: i64) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT COALESCE(SUM(amount_fen), 0) FROM offline_spent WHERE staff_id = ?1 AND settled = 0",
            [staff_id],
            |r| r.get(0),
        )?)
    }
}

const ITEM_COLUMNS: &str =
    "seq, kind, idempotency_key, body, created_ms, attempts, served, refused";

fn item_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxItem> {
    Ok(OutboxItem {
        seq: r.get(0)?,
        kind: ItemKind::parse(&r.get::<_, String>(1)?),
        idempotency_key: r.get(2)?,
        body: r.get(3)?,
        created_ms: r.get(4)?,
        attempts: r.get(5)?,
        served: r.get(6)?,
        refused: r.get(7)?,
    })
}

fn set_balance_from_charge(
    conn: &Connection,
    staff_id: i64,
    available_fen: i64,
    as_of_ms: i64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO balances (staff_id, available_fen, as_of_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT(staff_id) DO UPDATE SET available_fen = excluded.available_fen,
           as_of_ms = excluded.as_of_ms, version = NULL
         WHERE excluded.as_of_ms >= balances.as_of_ms",
        params![staff_id, available_fen, as_of_ms],
    )?;
    Ok(())
}

/// The charge a served meal still needs when `outcome` is the final answer to `item`:
/// `Some` only for a served, online (`offline: false`) charge that was declined or refused
/// for good (so never applied). Pure, so the state machine can be tested on its own.
pub fn served_follow_up(item: &OutboxItem, outcome: &Delivery) -> Option<ChargeRequest> {
    if item.kind != ItemKind::Charge || !item.served {
        return None;
    }
    let req: ChargeRequest = serde_json::from_str(&item.body).ok()?;
    if req.offline {
        // Already an offline charge: the backend never declines those (a broken rule becomes
        // an exception), and one refused for good would be refused again.
        return None;
    }
    let never_applied = match outcome {
        Delivery::Delivered(body) => serde_json::from_str::<ChargeResponse>(body)
            .is_ok_and(|r| r.status == ChargeStatus::Declined),
        Delivery::Permanent(_) => true,
        Delivery::Transient(_) | Delivery::Unreachable(_) => false,
    };
    never_applied.then(|| ChargeRequest {
        idempotency_key: format!("{}{SERVED_SUFFIX}", item.idempotency_key),
        offline: true,
        ..req
    })
}

/// The void an accepted charge needs when its diner was refused: `Some` only for a charge
/// marked `refused` whose final answer is `accepted` (money taken for a meal not served).
/// Returns the void's idempotency key and body. Pure, like [`served_follow_up`].
pub fn refused_follow_up(
    item: &OutboxItem,
    outcome: &Delivery,
) -> Option<(String, VoidChargeRequest)> {
    if item.kind != ItemKind::Charge || !item.refused || item.served {
        return None;
    }
    let Delivery::Delivered(body) = outcome else {
        return None;
    };
    let resp: ChargeResponse = serde_json::from_str(body).ok()?;
    (resp.status == ChargeStatus::Accepted).then(|| {
        (
            format!("{}{VOID_SUFFIX}", item.idempotency_key),
            VoidChargeRequest {
                charge_key: item.idempotency_key.clone(),
                reason: VOID_REASON.to_string(),
            },
        )
    })
}

/// What a final answer to a charge teaches the local state, inside `record`'s transaction.
fn learn_charge_outcome(
    tx: &Transaction<'_>,
    item: &OutboxItem,
    outcome: &Delivery,
    now_ms: i64,
) -> Result<()> {
    let key = &item.idempotency_key;
    if let Some(follow) = served_follow_up(item, outcome) {
        // The meal was eaten: its mark and its share of the offline allowance now belong to
        // the charge that records it.
        let body = serde_json::to_string(&follow)?;
        tx.execute(
            "INSERT OR IGNORE INTO outbox (kind, idempotency_key, body, created_ms, served, derived_from)
             VALUES ('charge', ?1, ?2, ?3, 1, ?4)",
            params![follow.idempotency_key, body, now_ms, key],
        )?;
        tx.execute(
            "UPDATE OR IGNORE meals_charged SET idempotency_key = ?2 WHERE idempotency_key = ?1",
            params![key, follow.idempotency_key],
        )?;
        tx.execute(
            "UPDATE OR IGNORE offline_spent SET idempotency_key = ?2 WHERE idempotency_key = ?1",
            params![key, follow.idempotency_key],
        )?;
        tracing::warn!(
            key = %key,
            staff_id = follow.staff_id,
            "a meal served after a lost answer was declined by the backend; queued {} as an offline charge",
            follow.idempotency_key
        );
    }
    if let Some((void_key, void)) = refused_follow_up(item, outcome) {
        tx.execute(
            "INSERT OR IGNORE INTO outbox (kind, idempotency_key, body, created_ms, derived_from)
             VALUES ('void', ?1, ?2, ?3, ?4)",
            params![void_key, serde_json::to_string(&void)?, now_ms, key],
        )?;
        tracing::warn!(
            key = %key,
            "a charge whose diner was refused offline was accepted by the backend; queued {void_key} to reverse it"
        );
    }
    let Ok(req) = serde_json::from_str::<ChargeRequest>(&item.body) else {
        return Ok(());
    };
    match outcome {
        Delivery::Delivered(body) => {
            let Ok(resp) = serde_json::from_str::<ChargeResponse>(body) else {
                return Ok(());
            };
            tx.execute(
                "UPDATE offline_spent SET settled = 1 WHERE idempotency_key = ?1",
                [key],
            )?;
            set_balance_from_charge(
                tx,
                req.staff_id,
                to_fen(resp.cash_balance + resp.subsidy_balance),
                now_ms,
            )?;
            if let Some(id) = resp.charge_id {
                tx.execute(
                    "UPDATE meals_charged SET charge_id = ?2 WHERE idempotency_key = ?1",
                    params![key, id],
                )?;
            }
            if resp.status == ChargeStatus::Declined {
                // Not eaten (or moved to the follow-up above): the person may pay again.
                tx.execute(
                    "DELETE FROM meals_charged WHERE idempotency_key = ?1",
                    [key],
                )?;
            }
        }
        Delivery::Permanent(_) if !item.served => {
            tx.execute(
                "DELETE FROM meals_charged WHERE idempotency_key = ?1",
                [key],
            )?;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// A backend that applies each idempotency key once and answers replays with the
    /// stored result, like the real one.
    #[derive(Default)]
    struct FakeBackend {
        applied: Vec<String>,
        seen: HashMap<String, String>,
    }

    impl FakeBackend {
        fn handle(&mut self, item: &OutboxItem) -> String {
            self.seen
                .entry(item.idempotency_key.clone())
                .or_insert_with(|| {
                    self.applied.push(item.idempotency_key.clone());
                    format!("ok:{}", item.body)
                })
                .clone()
        }
    }

    #[test]
    fn items_are_sent_in_order_and_marked() {
        let mut s = LocalStore::in_memory().unwrap();
        for k in ["a", "b", "c"] {
            s.enqueue(ItemKind::Charge, k, &format!("body-{k}"), 1)
                .unwrap();
        }
        assert_eq!(
            s.enqueue(ItemKind::Charge, "a", "other", 2).unwrap(),
            1,
            "same key, same item"
        );
        let mut sent = Vec::new();
        let done = s
            .drain(
                || 5,
                |i| {
                    sent.push(i.idempotency_key.clone());
                    if i.idempotency_key == "b" && sent.len() == 2 {
                        Delivery::Transient("down".into())
                    } else {
                        Delivery::Delivered("{}".into())
                    }
                },
            )
            .unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(sent, ["a", "b"], "a transient failure stops the drain");
        s.drain(
            || 6,
            |i| {
                sent.push(i.idempotency_key.clone());
                Delivery::Delivered("{}".into())
            },
        )
        .unwrap();
        assert_eq!(sent, ["a", "b", "b", "c"]);
        assert_eq!(
            s.counts().unwrap(),
            OutboxCounts {
                pending: 0,
                delivered: 3,
                rejected: 0,
                derived: 0
            }
        );
    }

    #[test]
    fn only_surely_unsent_items_may_change() {
        let mut s = LocalStore::in_memory().unwrap();
        s.enqueue(ItemKind::Charge, "a", "v1", 1).unwrap();
        s.drain(|| 2, |_| Delivery::Unreachable("refused".into()))
            .unwrap();
        assert!(s.rewrite_unsent("a", "v2").unwrap());
        assert_eq!(s.next_pending().unwrap().unwrap().body, "v2");
        s.drain(|| 3, |_| Delivery::Transient("timeout".into()))
            .unwrap();
        assert!(
            !s.rewrite_unsent("a", "v3").unwrap(),
            "it may have arrived: frozen"
        );
        assert!(!s.withdraw_unsent("a").unwrap());
        assert_eq!(s.next_pending().unwrap().unwrap().body, "v2");
    }

    #[test]
    fn serving_offline_rewrites_only_what_surely_never_left() {
        let mut s = LocalStore::in_memory().unwrap();
        s.enqueue(ItemKind::Charge, "a", "online-a", 1).unwrap();
        s.enqueue(ItemKind::Charge, "b", "online-b", 1).unwrap();
        s.drain(
            || 2,
            |i| {
                if i.idempotency_key == "a" {
                    Delivery::Transient("timeout".into())
                } else {
                    Delivery::Unreachable("refused".into())
                }
            },
        )
        .unwrap();
        assert!(
            !s.serve_offline("a", "offline-a", 1, 1500).unwrap(),
            "a may have arrived"
        );
        let a = s.next_pending().unwrap().unwrap();
        assert_eq!((a.body.as_str(), a.served), ("online-a", true));
        s.record(a.seq, &Delivery::Delivered("{}".into()), 3)
            .unwrap();
        assert!(s.serve_offline("b", "offline-b", 1, 1200).unwrap());
        let b = s.next_pending().unwrap().unwrap();
        assert_eq!((b.body.as_str(), b.served), ("offline-b", true));
        assert_eq!(s.unsettled_offline_fen(1).unwrap(), 2700);
    }

    #[test]
    fn a_permanent_refusal_does_not_block_the_queue() {
        let mut s = LocalStore::in_memory().unwrap();
        s.enqueue(ItemKind::Waste, "bad", "x", 1).unwrap();
        s.enqueue(ItemKind::Waste, "good", "y", 1).unwrap();
        s.drain(
            || 2,
            |i| {
                if i.idempotency_key == "bad" {
                    Delivery::Permanent("422".into())
                } else {
                    Delivery::Delivered("{}".into())
                }
            },
        )
        .unwrap();
        assert_eq!(
            s.counts().unwrap(),
            OutboxCounts {
                pending: 0,
                delivered: 1,
                rejected: 1,
                derived: 0
            }
        );
    }

    #[test]
    fn the_outbox_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kiosk.db");
        {
            let mut s = LocalStore::open(&path).unwrap();
            s.enqueue(ItemKind::Charge, "k1", "b1", 1).unwrap();
        }
        let s = LocalStore::open(&path).unwrap();
        assert_eq!(
            s.next_pending().unwrap().map(|i| i.idempotency_key),
            Some("k1".into())
        );
    }

    #[test]
    fn meals_balances_and_offline_allowance() {
        let mut s = LocalStore::in_memory().unwrap();
        assert!(s.mark_meal(1, "2026-11-26", "lunch", "k", 1).unwrap());
        assert!(!s.mark_meal(1, "2026-11-26", "lunch", "k2", 2).unwrap());
        assert!(s.meal_taken(1, "2026-11-26", "lunch").unwrap());
        assert!(!s.meal_taken(1, "2026-11-26", "dinner").unwrap());
        s.unmark_meal("k").unwrap();
        assert!(!s.meal_taken(1, "2026-11-26", "lunch").unwrap());

        s.set_balance(1, 1000, 10).unwrap();
        s.set_balance(1, 5, 5).unwrap();
        assert_eq!(
            s.balance(1).unwrap().map(|b| b.available_fen),
            Some(1000),
            "older news does not overwrite"
        );
        s.add_offline_spend("o1", 1, 300).unwrap();
        s.add_offline_spend("o2", 1, 200).unwrap();
        s.add_offline_spend("o2", 1, 200).unwrap();
        assert_eq!(s.unsettled_offline_fen(1).unwrap(), 500);
        s.settle_offline_spend("o1").unwrap();
        assert_eq!(s.unsettled_offline_fen(1).unwrap(), 200);
    }

    #[derive(Debug, Clone)]
    enum Step {
        Enqueue,
        /// Drain with this failure pattern per attempt: 0 ok, 1 refused before the
        /// backend saw it, 2 applied by the backend but the answer lost, 3 crash (the
        /// process dies after the backend applied it, before marking).
        Drain(Vec<u8>),
        Reopen,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => Just(Step::Enqueue),
            3 => proptest::collection::vec(0u8..4, 1..6).prop_map(Step::Drain),
            1 => Just(Step::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Whatever fails when, every queued item takes effect exactly once at the backend,
        /// in the order it was queued.
        #[test]
        fn each_item_takes_effect_exactly_once_in_order(steps in proptest::collection::vec(step(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("kiosk.db");
            let mut store = LocalStore::open(&path).unwrap();
            let mut backend = FakeBackend::default();
            let mut queued = Vec::new();
            for s in steps {
                match s {
                    Step::Enqueue => {
                        let key = format!("k{}", queued.len());
                        store.enqueue(ItemKind::Charge, &key, "{}", 0).unwrap();
                        queued.push(key);
                    }
                    Step::Reopen => {
                        drop(store);
                        store = LocalStore::open(&path).unwrap();
                    }
                    Step::Drain(pattern) => {
                        let mut attempt = 0;
                        let mut crashed = false;
                        let _ = store.drain(|| 0, |item| {
                            let p = pattern[attempt % pattern.len()];
                            attempt += 1;
                            match p {
                                0 => Delivery::Delivered(backend.handle(item)),
                                1 => Delivery::Unreachable("connection refused".into()),
                                2 => { backend.handle(item); Delivery::Transient("timeout".into()) }
                                _ => { backend.handle(item); crashed = true; Delivery::Transient("crash".into()) }
                            }
                        });
                        if crashed {
                            // The crash happened before the outcome was written: the
                            // "transient" row update stands in for nothing being marked.
                            drop(store);
                            store = LocalStore::open(&path).unwrap();
                        }
                    }
                }
            }
            // The network comes back for good.
            store.drain(|| 0, |item| Delivery::Delivered(backend.handle(item))).unwrap();
            prop_assert_eq!(&backend.applied, &queued);
            let c = store.counts().unwrap();
            prop_assert_eq!(c.pending, 0);
            prop_assert_eq!(c.delivered as usize, queued.len());
        }
    }

    /// The real backend's charge behaviour, in memory: each key is applied once and its
    /// first answer stored; online charges of `decline` keys are declined, of `refuse` keys
    /// refused for good (4xx, never applied); offline charges are never declined.
    #[derive(Default)]
    struct ChargeBackend {
        applied: Vec<ChargeRequest>,
        stored: HashMap<String, String>,
        decline: std::collections::HashSet<String>,
        refuse: std::collections::HashSet<String>,
    }

    impl ChargeBackend {
        /// Some(answer) when the backend applied or replayed it; None when it refused it.
        fn handle(&mut self, item: &OutboxItem) -> Option<String> {
            if let Some(r) = self.stored.get(&item.idempotency_key) {
                return Some(r.clone());
            }
            let req: ChargeRequest = serde_json::from_str(&item.body).unwrap();
            if !req.offline && self.refuse.contains(&req.idempotency_key) {
                return None;
            }
            let declined = self.decline.contains(&req.idempotency_key);
            let status = match (declined, req.offline) {
                (false, _) => ChargeStatus::Accepted,
                (true, false) => ChargeStatus::Declined,
                (true, true) => ChargeStatus::Exception,
            };
            let resp = ChargeResponse {
                status,
                charge_id: (status != ChargeStatus::Declined)
                    .then_some(self.applied.len() as i64 + 1),
                reason: declined.then(|| "insufficient_funds".into()),
                meal: Some(wire::Meal::Lunch),
                local_date: Some("2026-11-26".into()),
                amount: rust_decimal::Decimal::new(1500, 2),
                subsidy_used: rust_decimal::Decimal::ZERO,
                cash_used: rust_decimal::Decimal::ZERO,
                cash_balance: rust_decimal::Decimal::new(10_000, 2),
                subsidy_balance: rust_decimal::Decimal::ZERO,
                replayed: false,
            };
            let body = serde_json::to_string(&resp).unwrap();
            self.applied.push(req);
            self.stored
                .insert(item.idempotency_key.clone(), body.clone());
            Some(body)
        }
    }

    #[derive(Debug, Clone)]
    enum ChargeStep {
        /// A charge for a new person; `served`: the kiosk served the diner on its own
        /// decision after losing the answer; `fate`: 0 accepted, 1 declined, 2 refused for
        /// good (never applied).
        Enqueue {
            served: bool,
            fate: u8,
        },
        /// Per attempt: 0 answered, 1 refused before the backend saw it, 2 handled by the
        /// backend but the answer lost, 3 the kiosk crashed after the backend handled it.
        Drain(Vec<u8>),
        Reopen,
    }

    fn charge_step() -> impl Strategy<Value = ChargeStep> {
        prop_oneof![
            3 => (any::<bool>(), 0u8..3).prop_map(|(served, fate)| ChargeStep::Enqueue { served, fate }),
            3 => proptest::collection::vec(0u8..4, 1..6).prop_map(ChargeStep::Drain),
            1 => Just(ChargeStep::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// The lost-answer state machine: whatever fails when, every charge the backend can
        /// apply is applied exactly once, and every SERVED meal whose charge was declined or
        /// refused gets exactly one offline charge `<key>:served` (same person, same time),
        /// while nothing else does. The meal stays marked exactly when it was eaten, and no
        /// offline allowance is left hanging.
        #[test]
        fn served_meals_are_recorded_exactly_once(steps in proptest::collection::vec(charge_step(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("kiosk.db");
            let mut store = LocalStore::open(&path).unwrap();
            let mut backend = ChargeBackend::default();
            // (key, staff, served, fate)
            let mut queued: Vec<(String, i64, bool, u8)> = Vec::new();
            let t0 = time::macros::datetime!(2026-11-26 12:00 +08:00);
            for s in steps {
                match s {
                    ChargeStep::Enqueue { served, fate } => {
                        let staff = queued.len() as i64 + 1;
                        let key = format!("k{staff}");
                        let req = ChargeRequest {
                            idempotency_key: key.clone(),
                            staff_id: staff,
                            kiosk_time: t0 + time::Duration::minutes(staff),
                            offline: false,
                            amount: None,
                        };
                        store.mark_meal(staff, "2026-11-26", "lunch", &key, 0).unwrap();
                        store.enqueue(ItemKind::Charge, &key, &serde_json::to_string(&req).unwrap(), 0).unwrap();
                        if served {
                            store.mark_served(&key).unwrap();
                            store.add_offline_spend(&key, staff, 1500).unwrap();
                        }
                        match fate {
                            1 => { backend.decline.insert(key.clone()); }
                            2 => { backend.refuse.insert(key.clone()); }
                            _ => {}
                        }
                        queued.push((key, staff, served, fate));
                    }
                    ChargeStep::Reopen => {
                        drop(store);
                        store = LocalStore::open(&path).unwrap();
                    }
                    ChargeStep::Drain(pattern) => {
                        let mut attempt = 0;
                        let mut crashed = false;
                        let _ = store.drain(|| 0, |item| {
                            let p = pattern[attempt % pattern.len()];
                            attempt += 1;
                            match p {
                                0 => match backend.handle(item) {
                                    Some(r) => Delivery::Delivered(r),
                                    None => Delivery::Permanent("422 refused".into()),
                                },
                                1 => Delivery::Unreachable("connection refused".into()),
                                2 => { backend.handle(item); Delivery::Transient("timeout".into()) }
                                _ => { backend.handle(item); crashed = true; Delivery::Transient("crash".into()) }
                            }
                        });
                        if crashed {
                            drop(store);
                            store = LocalStore::open(&path).unwrap();
                        }
                    }
                }
            }
            store.drain(|| 0, |item| match backend.handle(item) {
                Some(r) => Delivery::Delivered(r),
                None => Delivery::Permanent("422 refused".into()),
            }).unwrap();

            let originals: Vec<&ChargeRequest> = backend.applied.iter().filter(|r| !r.idempotency_key.ends_with(SERVED_SUFFIX)).collect();
            let expected: Vec<String> = queued.iter().filter(|q| q.3 != 2).map(|q| q.0.clone()).collect();
            prop_assert_eq!(originals.iter().map(|r| r.idempotency_key.clone()).collect::<Vec<_>>(), expected, "originals once each, in order");
            prop_assert!(originals.iter().all(|r| !r.offline));
            let mut derived_expected = 0;
            for (key, staff, served, fate) in &queued {
                let dkey = format!("{key}{SERVED_SUFFIX}");
                let derived: Vec<&ChargeRequest> = backend.applied.iter().filter(|r| r.idempotency_key == dkey).collect();
                let needs = *served && *fate != 0;
                prop_assert_eq!(derived.len(), usize::from(needs), "{} derived charges for {}", derived.len(), key);
                if needs {
                    derived_expected += 1;
                    prop_assert!(derived[0].offline);
                    prop_assert_eq!(derived[0].staff_id, *staff);
                    prop_assert_eq!(derived[0].kiosk_time, t0 + time::Duration::minutes(*staff));
                    if *fate == 1 {
                        let pos = |k: &str| backend.applied.iter().position(|r| r.idempotency_key == k);
                        prop_assert!(pos(&dkey) > pos(key), "the derived charge follows its original");
                    }
                }
                let eaten = *fate == 0 || *served;
                prop_assert_eq!(store.meal_taken(*staff, "2026-11-26", "lunch").unwrap(), eaten, "meal mark of {}", key);
                prop_assert_eq!(store.unsettled_offline_fen(*staff).unwrap(), 0);
            }
            prop_assert_eq!(backend.applied.len(), expected_len(&queued), "nothing else was applied");
            let c = store.counts().unwrap();
            prop_assert_eq!(c.pending, 0);
            prop_assert_eq!(c.derived, derived_expected);
            prop_assert_eq!(c.rejected as usize, queued.iter().filter(|q| q.3 == 2).count());
        }
    }

    fn expected_len(queued: &[(String, i64, bool, u8)]) -> usize {
        queued
            .iter()
            .map(|q| usize::from(q.3 != 2) + usize::from(q.2 && q.3 != 0))
            .sum()
    }

    #[test]
    fn an_old_database_gains_the_new_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kiosk.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
                   idempotency_key TEXT NOT NULL UNIQUE, body TEXT NOT NULL, created_ms INTEGER NOT NULL,
                   state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
                   maybe_sent INTEGER NOT NULL DEFAULT 0, last_error TEXT, response TEXT, done_ms INTEGER);
                 CREATE TABLE balances (staff_id INTEGER PRIMARY KEY, available_fen INTEGER NOT NULL, as_of_ms INTEGER NOT NULL);
                 INSERT INTO outbox (kind, idempotency_key, body, created_ms) VALUES ('charge', 'old', '{}', 1);
                 INSERT INTO balances VALUES (5, 700, 1);",
            )
            .unwrap();
        }
        let mut s = LocalStore::open(&path).unwrap();
        let item = s.next_pending().unwrap().unwrap();
        assert_eq!((item.idempotency_key.as_str(), item.served), ("old", false));
        assert!(s.mark_served("old").unwrap());
        let b = s.balance(5).unwrap().unwrap();
        assert_eq!((b.available_fen, b.version, b.active), (700, None, true));
        drop(s);
        LocalStore::open(&path).unwrap();
    }

    #[test]
    fn snapshot_and_charge_answers_keep_the_newest_balance() {
        let mut s = LocalStore::in_memory().unwrap();
        let e = |fen, version| SnapshotBalance {
            staff_id: 1,
            available_fen: fen,
            version,
            active: true,
            category: "regular".into(),
        };
        assert_eq!(s.apply_balance_snapshot(&[e(1000, 5)], 100).unwrap(), 1);
        assert_eq!(
            s.apply_balance_snapshot(&[e(900, 4)], 200).unwrap(),
            0,
            "an older version loses"
        );
        // A charge answer arriving after the page was asked for is newer (it has no version).
        s.set_balance(1, 850, 150).unwrap();
        assert_eq!(s.balance(1).unwrap().unwrap().available_fen, 850);
        // A page asked for before that answer arrived does not undo it...
        assert_eq!(s.apply_balance_snapshot(&[e(1000, 5)], 140).unwrap(), 0);
        // ...one asked for later does.
        assert_eq!(s.apply_balance_snapshot(&[e(700, 7)], 300).unwrap(), 1);
        let b = s.balance(1).unwrap().unwrap();
        assert_eq!(
            (b.available_fen, b.version, b.category.as_deref()),
            (700, Some(7), Some("regular"))
        );
        // Offboarding comes through whatever the version.
        let mut off = e(0, 7);
        off.active = false;
        s.apply_balance_snapshot(&[off], 400).unwrap();
        assert!(!s.balance(1).unwrap().unwrap().active);
        assert_eq!(s.balances_known().unwrap(), 1);
    }
}
