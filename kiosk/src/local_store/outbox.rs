//! The `outbox` table: requests waiting for the backend, sent in the order they were queued,
//! each under its idempotency key. An item's request is typed ([`Request`]) and stored as the
//! JSON of its `wire` type, exactly as it will be sent every time; the answer ([`Answer`]) is
//! kept beside it once it came. See the module documentation of [`super`] for the promise
//! the outbox keeps.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use wire::{
    ChargeRequest, ChargeResponse, VoidChargeRequest, VoidChargeResponse, WasteRequest,
    WasteResponse,
};

use super::follow_up::{learn_charge_outcome, void_key};
use super::{LocalStore, Result};

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

/// A request the outbox holds for the backend.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Charge(ChargeRequest),
    Waste(WasteRequest),
    /// Reverses a charge of this kiosk whose diner was not served.
    Void(VoidChargeRequest),
}

impl Request {
    pub fn kind(&self) -> ItemKind {
        match self {
            Request::Charge(_) => ItemKind::Charge,
            Request::Waste(_) => ItemKind::Waste,
            Request::Void(_) => ItemKind::Void,
        }
    }

    /// The idempotency key the item is queued and sent under: the request's own key, and for
    /// a void the key of its charge with `:void` (one void per charge).
    pub fn key(&self) -> String {
        match self {
            Request::Charge(r) => r.idempotency_key.clone(),
            Request::Waste(r) => r.idempotency_key.clone(),
            Request::Void(r) => void_key(&r.charge_key),
        }
    }

    fn to_json(&self) -> serde_json::Result<String> {
        match self {
            Request::Charge(r) => serde_json::to_string(r),
            Request::Waste(r) => serde_json::to_string(r),
            Request::Void(r) => serde_json::to_string(r),
        }
    }

    fn from_json(kind: ItemKind, body: &str) -> serde_json::Result<Request> {
        Ok(match kind {
            ItemKind::Charge => Request::Charge(serde_json::from_str(body)?),
            ItemKind::Waste => Request::Waste(serde_json::from_str(body)?),
            ItemKind::Void => Request::Void(serde_json::from_str(body)?),
        })
    }
}

/// The backend's answer to a [`Request`] of the same kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Charge(ChargeResponse),
    Waste(WasteResponse),
    Void(VoidChargeResponse),
}

impl Answer {
    fn to_json(&self) -> serde_json::Result<String> {
        match self {
            Answer::Charge(r) => serde_json::to_string(r),
            Answer::Waste(r) => serde_json::to_string(r),
            Answer::Void(r) => serde_json::to_string(r),
        }
    }
}

/// One queued request.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub seq: i64,
    pub idempotency_key: String,
    /// Sent exactly as it is, every time.
    pub request: Request,
    pub created_ms: i64,
    pub attempts: i64,
    /// The diner was served on the kiosk's own (offline) decision.
    pub served: bool,
    /// The diner was refused on the kiosk's own (offline) decision after this charge may
    /// already have reached the backend.
    pub refused: bool,
}

impl OutboxItem {
    pub fn kind(&self) -> ItemKind {
        self.request.kind()
    }
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// The backend answered (first time or replay).
    Delivered(Answer),
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

impl DrainReport {
    /// How the item queued under `key` fared in this drain, if it was finished.
    pub fn outcome_of(&self, key: &str) -> Option<&Delivery> {
        self.done
            .iter()
            .find(|(i, _)| i.idempotency_key == key)
            .map(|(_, d)| d)
    }
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

const ITEM_COLUMNS: &str =
    "seq, kind, idempotency_key, body, created_ms, attempts, served, refused";

/// A row whose body no longer reads as its kind's request (written by a broken build, or
/// damaged): it is set aside instead of blocking the queue.
struct Unreadable {
    seq: i64,
    key: String,
    error: String,
}

fn item_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<OutboxItem, Unreadable>> {
    let seq: i64 = r.get(0)?;
    let kind = ItemKind::parse(&r.get::<_, String>(1)?);
    let idempotency_key: String = r.get(2)?;
    let body: String = r.get(3)?;
    let request = match Request::from_json(kind, &body) {
        Ok(req) => req,
        Err(e) => {
            return Ok(Err(Unreadable {
                seq,
                key: idempotency_key,
                error: format!("unreadable queued {}: {e}", kind.as_str()),
            }))
        }
    };
    Ok(Ok(OutboxItem {
        seq,
        idempotency_key,
        request,
        created_ms: r.get(4)?,
        attempts: r.get(5)?,
        served: r.get(6)?,
        refused: r.get(7)?,
    }))
}

/// Queues an item the outbox made itself (a follow-up of `derived_from`), inside the caller's
/// transaction; a second attempt with the same key changes nothing.
pub(super) fn insert_derived(
    conn: &Connection,
    request: &Request,
    served: bool,
    derived_from: &str,
    now_ms: i64,
) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO outbox (kind, idempotency_key, body, created_ms, served, derived_from)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            request.kind().as_str(),
            request.key(),
            request.to_json()?,
            now_ms,
            served,
            derived_from
        ],
    )?;
    Ok(())
}

impl LocalStore {
    /// Queues a request durably (committed and fsynced when this returns) under
    /// [`Request::key`]. Enqueuing the same key again is a no-op returning the existing item's
    /// sequence number.
    pub fn enqueue(&mut self, request: &Request, now_ms: i64) -> Result<i64> {
        let key = request.key();
        let tx = self.conn.transaction()?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT seq FROM outbox WHERE idempotency_key = ?1",
                [&key],
                |r| r.get(0),
            )
            .optional()?;
        let seq = match existing {
            Some(s) => s,
            None => {
                tx.execute(
                    "INSERT INTO outbox (kind, idempotency_key, body, created_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![request.kind().as_str(), key, request.to_json()?, now_ms],
                )?;
                tx.last_insert_rowid()
            }
        };
        tx.commit()?;
        Ok(seq)
    }

    /// The oldest item not yet delivered or rejected. An unreadable one is set aside as
    /// rejected (logged) on the way.
    pub fn next_pending(&self) -> Result<Option<OutboxItem>> {
        loop {
            let row = self
                .conn
                .query_row(
                    &format!("SELECT {ITEM_COLUMNS} FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT 1"),
                    [],
                    item_from_row,
                )
                .optional()?;
            match row {
                None => return Ok(None),
                Some(Ok(item)) => return Ok(Some(item)),
                Some(Err(bad)) => {
                    tracing::error!(seq = bad.seq, key = %bad.key, "{}; set aside as rejected", bad.error);
                    self.conn.execute(
                        "UPDATE outbox SET state = 'rejected', last_error = ?2 WHERE seq = ?1",
                        params![bad.seq, bad.error],
                    )?;
                }
            }
        }
    }

    /// The kiosk serves a diner on its own decision, in one transaction: the charge becomes
    /// `offline` if it surely never left the kiosk (else it stays as is, to be resent
    /// identically), it is marked `served`, and `amount_fen` counts against the person's
    /// offline allowance. Returns whether the request was replaced.
    pub fn serve_offline(
        &mut self,
        key: &str,
        offline: &ChargeRequest,
        staff_id: i64,
        amount_fen: i64,
    ) -> Result<bool> {
        let body = Request::Charge(offline.clone()).to_json()?;
        let tx = self.conn.transaction()?;
        let rewritten = tx.execute(
            "UPDATE outbox SET body = ?2 WHERE idempotency_key = ?1 AND state = 'pending' AND maybe_sent = 0",
            params![key, body],
        )? == 1;
        tx.execute(
            "UPDATE outbox SET served = 1 WHERE idempotency_key = ?1",
            [key],
        )?;
        super::allowance::add(&tx, key, staff_id, amount_fen)?;
        tx.commit()?;
        Ok(rewritten)
    }

    /// Marks a queued charge as served on the kiosk's own decision (see
    /// [`super::follow_up`] for what a `declined` answer to it then does).
    pub fn mark_served(&mut self, key: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE outbox SET served = 1 WHERE idempotency_key = ?1",
            [key],
        )? == 1)
    }

    /// Marks a queued charge whose diner the kiosk refused on its own while the charge may
    /// already have reached the backend (see [`super::follow_up`] for what an `accepted`
    /// answer to it then does).
    pub fn mark_refused(&mut self, key: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE outbox SET refused = 1 WHERE idempotency_key = ?1 AND kind = 'charge'",
            [key],
        )? == 1)
    }

    /// Records the outcome of one attempt at item `seq`, and what a final answer teaches, in
    /// one transaction (see [`super::follow_up`]).
    pub fn record(&mut self, seq: i64, outcome: &Delivery, now_ms: i64) -> Result<()> {
        let tx = self.conn.transaction()?;
        match outcome {
            Delivery::Delivered(answer) => tx.execute(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, response = ?2, done_ms = ?3,
                 last_error = NULL WHERE seq = ?1",
                params![seq, answer.to_json()?, now_ms],
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
            let current = tx
                .query_row(
                    &format!("SELECT {ITEM_COLUMNS} FROM outbox WHERE seq = ?1"),
                    [seq],
                    item_from_row,
                )
                .optional()?;
            if let Some(Ok(current)) = current {
                learn_charge_outcome(&tx, &current, outcome, now_ms)?;
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

    /// Replaces the request of an item that surely never reached the backend (every attempt
    /// so far was `Unreachable`). Returns false, changing nothing, if it may have.
    pub fn rewrite_unsent(&mut self, key: &str, request: &Request) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE outbox SET body = ?2 WHERE idempotency_key = ?1 AND state = 'pending' AND maybe_sent = 0",
            params![key, request.to_json()?],
        )? == 1)
    }

    /// Withdraws an item that surely never reached the backend; false if it may have.
    pub fn withdraw_unsent(&mut self, key: &str) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM outbox WHERE idempotency_key = ?1 AND state = 'pending' AND maybe_sent = 0", [key])?
            == 1)
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
}
