//! Group commit for kiosk charges.
//!
//! Why: a charge is a small transaction writing about six rows; on PostgreSQL the cost is mostly
//! per statement and per commit (parse, plan, executor start-up, WAL flush), on SQLite it is one
//! fsync per commit. Charges that arrive while a batch is being written wait in a per-instance
//! queue; the next free writer takes up to `max_batch` of them and settles them together: the
//! database crate's `batch_io` reads every fact the batch needs, `plan` decides each charge in
//! Rust in arrival order against those facts (balance, daily cap, meals per period, replays, the
//! same key twice in one batch), `batch_io` writes all of them and commits, and only then is each
//! waiting request answered. An idle instance adds no delay: a charge arriving with no batch in
//! flight is written at once, as a batch of one. A declined charge does not fail the others (it
//! is an outcome, not an error); a database error fails the whole batch and every waiter gets it
//! (the kiosk retries with the same key; nothing of the batch was committed).
//!
//! How a batch meets other writers of the same wallets is [`Locking`]: SQLite holds its write
//! lock from the read to the commit; PostgreSQL's queued batches read without locks and write
//! only if no wallet changed since (else they are read and decided again), and a charge settled
//! alone waits for its wallet locks before reading. The one race neither covers — the same
//! idempotency key used at once for two different people, or by two instances — shows up as a
//! unique violation on the key; the batch then writes nothing and each of its charges is settled
//! alone, which reads the winner's record and answers it.

use super::error::{corrupt, is_key_race};
use super::journal::SystemIds;
use super::plan::{plan_from_facts, BatchKeys, Plan, PreparedCharge};
use super::tx::WriterGate;
use crate::batch_io::BatchIo;
use crate::dialect::{DbPool, DEFAULT_CHARGE_WRITERS};
use store::{ChargeResult, Result, StoreError};

/// How charges are grouped into transactions (group commit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSettings {
    /// Most charges written in one transaction. 1 (or `writers == 0`) turns batching off: every
    /// charge is settled alone, a batch of one in its own transaction that waits for its wallet
    /// locks.
    pub max_batch: usize,
    /// Batches in flight at once, each a transaction on its own connection. More than one lets a
    /// batch be decided while another waits for its commit to reach the disk.
    pub writers: usize,
    /// Under load (every writer busy), how long a writer lets charges gather before it takes a
    /// batch smaller than `max_batch`: fewer, larger batches for a little latency. Never applied
    /// when a writer is idle, so a lone charge is written at once.
    pub linger: std::time::Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            max_batch: 64,
            writers: DEFAULT_CHARGE_WRITERS,
            linger: std::time::Duration::ZERO,
        }
    }
}

impl BatchSettings {
    /// Settings as configured, where 0 writers means this database's default.
    pub fn configured(max_batch: usize, writers: usize, linger: std::time::Duration) -> Self {
        let writers = if writers == 0 {
            DEFAULT_CHARGE_WRITERS
        } else {
            writers
        };
        BatchSettings {
            max_batch,
            writers,
            linger,
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.max_batch > 1 && self.writers > 0
    }
}

/// What a batch writer answers a waiting request.
pub(crate) enum BatchReply {
    Done(Result<ChargeResult>),
    /// The batch could not be settled as a whole (a race on an idempotency key, or wallets that
    /// kept changing under it): settle this charge alone.
    Alone,
}

type ReplySender = tokio::sync::oneshot::Sender<BatchReply>;

/// The per-instance queue of charges waiting for a writer. Writers are tasks spawned on demand
/// (up to `settings.writers`) that exit when the queue is empty, so an idle store has none.
pub(crate) struct ChargeQueue {
    pub(crate) settings: BatchSettings,
    state: std::sync::Mutex<QueueState>,
    stats: std::sync::Mutex<store::ChargeBatchStats>,
}

#[derive(Default)]
struct QueueState {
    waiting: std::collections::VecDeque<(PreparedCharge, ReplySender)>,
    writers: usize,
}

/// What a writer needs from the store, owned (writers are `'static` tasks).
#[derive(Clone)]
pub(crate) struct BatchCtx {
    pub(crate) pool: DbPool,
    /// SQLite's writer gate; PostgreSQL has none.
    #[allow(dead_code, reason = "read by SQLite's batch_io only")]
    pub(crate) gate: Option<WriterGate>,
    pub(crate) sys: SystemIds,
}

/// How a batch meets concurrent writers of its wallets (SQLite ignores it: its write lock,
/// taken before the read, covers both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Locking {
    /// Read without locks; write only if no wallet changed since the read, else read and decide
    /// again (a few times, then settle each charge alone). PostgreSQL's queued batches.
    Optimistic,
    /// Lock the batch's wallets before reading, so nothing can change them until commit. A
    /// charge settled alone (it may have lost a race; it must not lose again).
    Wait,
}

impl ChargeQueue {
    pub(crate) fn new(settings: BatchSettings) -> Self {
        ChargeQueue {
            settings,
            state: Default::default(),
            stats: Default::default(),
        }
    }

    /// Queues a charge and waits for its batch to commit (or fail).
    pub(crate) async fn submit(
        self: &std::sync::Arc<Self>,
        ctx: BatchCtx,
        p: PreparedCharge,
    ) -> Result<BatchReply> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawn = {
            let mut st = self
                .state
                .lock()
                .map_err(|_| StoreError::database_msg("charge queue poisoned"))?;
            st.waiting.push_back((p, tx));
            if st.writers < self.settings.writers {
                st.writers += 1;
                true
            } else {
                false
            }
        };
        if spawn {
            // A task of its own: a request whose client disconnects must not take the other
            // waiters' batch down with it.
            tokio::spawn(run_writer(ctx, self.clone()));
        }
        rx.await
            .map_err(|_| StoreError::database_msg("the charge writer stopped before answering"))
    }

    fn count(&self, charges: usize, failed: bool) {
        if let Ok(mut s) = self.stats.lock() {
            s.batches += 1;
            s.charges += charges as u64;
            s.largest = s.largest.max(charges as u64);
            s.failed += u64::from(failed);
        }
    }

    pub(crate) fn stats(&self) -> store::ChargeBatchStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Whether to let charges gather before the next batch (see `BatchSettings::linger`).
    fn should_linger(&self) -> bool {
        if self.settings.linger.is_zero() {
            return false;
        }
        match self.state.lock() {
            Ok(st) => {
                !st.waiting.is_empty()
                    && st.waiting.len() < self.settings.max_batch
                    && st.writers >= self.settings.writers
            }
            Err(_) => false,
        }
    }

    /// The next batch, or `None` (and this writer is retired) when nothing waits.
    fn take(&self, guard: &mut WriterGuard) -> Option<Vec<(PreparedCharge, ReplySender)>> {
        let mut st = match self.state.lock() {
            Ok(st) => st,
            Err(_) => return None,
        };
        if st.waiting.is_empty() {
            st.writers = st.writers.saturating_sub(1);
            guard.armed = false;
            return None;
        }
        let n = st.waiting.len().min(self.settings.max_batch.max(1));
        Some(st.waiting.drain(..n).collect())
    }
}

/// Keeps the writer count right if a writer ends abnormally (a panic): the count drops, and the
/// charges still queued are answered with an error rather than left waiting for nobody.
struct WriterGuard {
    queue: std::sync::Arc<ChargeQueue>,
    armed: bool,
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(mut st) = self.queue.state.lock() {
            st.writers = st.writers.saturating_sub(1);
            if st.writers == 0 {
                st.waiting.clear();
            }
        }
    }
}

async fn run_writer(ctx: BatchCtx, queue: std::sync::Arc<ChargeQueue>) {
    let mut guard = WriterGuard {
        queue: queue.clone(),
        armed: true,
    };
    loop {
        if queue.should_linger() {
            tokio::time::sleep(queue.settings.linger).await;
        }
        let Some(batch) = queue.take(&mut guard) else {
            break;
        };
        let (items, replies): (Vec<PreparedCharge>, Vec<ReplySender>) = batch.into_iter().unzip();
        let outcome = run_batch(&ctx, &items, Locking::Optimistic).await;
        queue.count(items.len(), outcome.is_err());
        match outcome {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    // The waiter may be gone (client disconnected); the charge is committed anyway
                    // and a retry with the same key will read it.
                    let _ = reply.send(answer);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, charges = items.len(), "charge batch failed; every charge in it is refused");
                for reply in replies {
                    let _ = reply.send(BatchReply::Done(Err(e.clone())));
                }
            }
        }
    }
}

/// One batch through the database: read, decide, write, commit. `None` when it could not be
/// settled as a whole (wallets kept changing under an optimistic batch).
async fn apply(
    ctx: &BatchCtx,
    items: &[PreparedCharge],
    locking: Locking,
) -> Result<Option<Vec<Plan>>> {
    let keys = BatchKeys::of(items);
    let mut io = BatchIo::open(ctx, &keys, locking).await?;
    for attempt in 0..io.attempts() {
        let read = io.read(&keys, items.len()).await?;
        let mut plans = plan_from_facts(&ctx.sys, items, read.facts)?;
        if io.write(&ctx.sys, items, &mut plans, read.snapshot).await? {
            io.finish().await?;
            return Ok(Some(plans));
        }
        tracing::debug!(
            attempt,
            charges = items.len(),
            "wallets changed under a charge batch; deciding it again"
        );
    }
    Ok(None)
}

/// One batch. `Ok` holds one reply per item, in order; `Err` fails them all (nothing of the
/// batch was committed). A batch that could not be settled as a whole answers `Alone` for each
/// of its charges.
pub(crate) async fn run_batch(
    ctx: &BatchCtx,
    items: &[PreparedCharge],
    locking: Locking,
) -> Result<Vec<BatchReply>> {
    let plans = match apply(ctx, items, locking).await {
        Ok(Some(plans)) => plans,
        Ok(None) => return Ok(items.iter().map(|_| BatchReply::Alone).collect()),
        Err(e) if is_key_race(&e) => {
            tracing::debug!(
                charges = items.len(),
                "a batch lost a race on an idempotency key; settling its charges one by one"
            );
            return Ok(items.iter().map(|_| BatchReply::Alone).collect());
        }
        Err(e) => return Err(e),
    };
    let results: Vec<Option<ChargeResult>> = plans
        .iter()
        .map(|p| match p {
            Plan::Write(w) => Some(w.result.clone()),
            _ => None,
        })
        .collect();
    Ok(plans
        .into_iter()
        .map(|p| match p {
            Plan::Answer(r) => BatchReply::Done(r),
            Plan::Write(w) => BatchReply::Done(Ok(w.result)),
            Plan::SameAs(first) => BatchReply::Done(match results.get(first).cloned().flatten() {
                Some(mut r) => {
                    r.replayed = true;
                    Ok(r)
                }
                None => Err(corrupt(
                    "batch replay refers to a charge that was not written",
                )),
            }),
        })
        .collect())
}
