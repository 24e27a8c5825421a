// Group commit for kiosk charges, shared by `store-sqlite` and `store-postgres` (included by
// `common.rs`, so it compiles against each driver like the rest of the SQL implementation).
//
// Why: a charge is a small transaction writing about six rows; on PostgreSQL the cost is mostly
// per statement and per commit (parse, plan, executor start-up, WAL flush), on SQLite it is one
// fsync per commit. Charges that arrive while a batch is being written wait in a per-instance
// queue; the next free writer takes up to `max_batch` of them and applies them in ONE
// transaction: it locks every wallet of the batch in staff-id order (so batches from several
// instances cannot deadlock), reads the day's totals and the idempotency records in fresh
// statements (after the locks, so they are current), decides each charge in Rust in arrival order
// against that state (balance, daily cap, meals per period, replays, the same key twice in one
// batch), writes all of them with a few set-based statements, commits, and only then answers
// each waiting request. An idle instance adds no delay: a charge arriving with no batch in
// flight is written at once, alone. A declined charge does not fail the others (it is an
// outcome, not an error); a database error fails the whole batch and every waiter gets it (the
// kiosk retries with the same key; nothing of the batch was committed). The one race the locks do
// not cover — the same idempotency key used at once for two different people — shows up as a
// unique violation; the batch then rolls back and each of its charges is redone alone on the
// one-charge path, which settles such races.
//
// The driver crate supplies `apply_batch`, the database side of a batch. SQLite takes its write
// lock (`BEGIN IMMEDIATE`), reads through `json_each`, and writes row by row (statements cost
// microseconds in-process; what it saves is the fsyncs). PostgreSQL, where every round trip
// counts, reads in one statement and writes everything in one more, checking in that statement
// that no wallet changed since the read (see `apply_batch` in store-postgres).

use std::collections::HashMap;

/// How charges are grouped into transactions (group commit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSettings {
    /// Most charges written in one transaction. 1 (or `writers == 0`) turns batching off: every
    /// charge is its own transaction, as before batching existed.
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
        BatchSettings { max_batch: 64, writers: DEFAULT_CHARGE_WRITERS, linger: std::time::Duration::ZERO }
    }
}

impl BatchSettings {
    /// Settings as configured, where 0 writers means this database's default.
    pub fn configured(max_batch: usize, writers: usize, linger: std::time::Duration) -> Self {
        let writers = if writers == 0 { DEFAULT_CHARGE_WRITERS } else { writers };
        BatchSettings { max_batch, writers, linger }
    }

    fn enabled(&self) -> bool {
        self.max_batch > 1 && self.writers > 0
    }
}

/// A charge ready for a batch: the command plus what the rules say about its timestamp.
struct PreparedCharge {
    cmd: ChargeCommand,
    local_date: String,
    meal: Option<MealKind>,
    rules: std::sync::Arc<CanteenRules>,
}

/// What a batch writer answers a waiting request.
enum BatchReply {
    Done(SResult<ChargeResult>),
    /// The batch lost a race on an idempotency key: redo this charge on the one-charge path.
    Alone,
}

type ReplySender = tokio::sync::oneshot::Sender<BatchReply>;

/// The per-instance queue of charges waiting for a writer. Writers are tasks spawned on demand
/// (up to `settings.writers`) that exit when the queue is empty, so an idle store has none.
struct ChargeQueue {
    settings: BatchSettings,
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
struct BatchCtx {
    pool: DbPool,
    #[allow(dead_code)] // SQLite's writer gate; PostgreSQL has none.
    gate: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
    sys: SystemIds,
}

impl ChargeQueue {
    fn new(settings: BatchSettings) -> Self {
        ChargeQueue { settings, state: Default::default(), stats: Default::default() }
    }

    /// Queues a charge and waits for its batch to commit (or fail).
    async fn submit(self: &std::sync::Arc<Self>, ctx: BatchCtx, p: PreparedCharge) -> SResult<BatchReply> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawn = {
            let mut st = self.state.lock().map_err(|_| StoreError::Database("charge queue poisoned".into()))?;
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
        rx.await.map_err(|_| StoreError::Database("the charge writer stopped before answering".into()))
    }

    fn count(&self, charges: usize, failed: bool) {
        if let Ok(mut s) = self.stats.lock() {
            s.batches += 1;
            s.charges += charges as u64;
            s.largest = s.largest.max(charges as u64);
            s.failed += u64::from(failed);
        }
    }

    fn stats(&self) -> store::ChargeBatchStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Whether to let charges gather before the next batch (see `BatchSettings::linger`).
    fn should_linger(&self) -> bool {
        if self.settings.linger.is_zero() {
            return false;
        }
        match self.state.lock() {
            Ok(st) => !st.waiting.is_empty() && st.waiting.len() < self.settings.max_batch && st.writers >= self.settings.writers,
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
    let mut guard = WriterGuard { queue: queue.clone(), armed: true };
    loop {
        if queue.should_linger() {
            tokio::time::sleep(queue.settings.linger).await;
        }
        let Some(batch) = queue.take(&mut guard) else { break };
        let (items, replies): (Vec<PreparedCharge>, Vec<ReplySender>) = batch.into_iter().unzip();
        let outcome = run_batch(&ctx, &items).await;
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
                    let _ = reply.send(BatchReply::Done(Err(clone_err(&e))));
                }
            }
        }
    }
}

fn clone_err(e: &StoreError) -> StoreError {
    match e {
        StoreError::NotFound(w) => StoreError::NotFound(w),
        StoreError::Conflict { code, message } => StoreError::Conflict { code, message: message.clone() },
        StoreError::Invalid { code, message } => StoreError::Invalid { code, message: message.clone() },
        StoreError::Busy(m) => StoreError::Busy(m.clone()),
        StoreError::Database(m) => StoreError::Database(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
    }
}

/// A person of the batch as locked: facts and wallets, updated as the batch's charges are decided.
#[derive(Clone, Debug)]
struct BatchPerson {
    active: bool,
    meals_per_period: u32,
    category: String,
    wallets: Wallets,
}

/// What a batch's decisions rest on, as the driver read it.
struct BatchFacts {
    people: Vec<(i64, BatchPerson)>,
    /// Accepted charges per (person, local day, meal): sum and count.
    totals: Vec<(i64, String, Option<String>, i64, i64)>,
    /// Stored responses: (kiosk, key, request hash, response).
    seen: Vec<(i64, String, String, String)>,
}

/// One charge of a batch, as decided.
enum Plan {
    /// Answered without writing: a replay of a stored result, a key conflict, an unknown person.
    Answer(SResult<ChargeResult>),
    /// The same key and body as the earlier charge `first` of this batch: its result, replayed.
    SameAs(usize),
    Write(PlannedWrite),
}

/// A charge to write: always an idempotency record; a charge row when accepted or an exception;
/// a journal entry when accepted. `result.charge_id` is filled in by the writer.
struct PlannedWrite {
    item: usize,
    result: ChargeResult,
    status: Option<&'static str>,
    entry: Option<ProposedEntry>,
    memo: String,
    cash_id: i64,
    subsidy_id: i64,
}

impl PlannedWrite {
    fn audit_action(&self) -> Option<&'static str> {
        match self.result.outcome {
            ChargeOutcome::Accepted => Some("charge.accepted"),
            ChargeOutcome::Exception => Some("charge.exception"),
            ChargeOutcome::Declined => None,
        }
    }

    fn audit_detail(&self, cmd: &ChargeCommand) -> serde_json::Value {
        let r = &self.result;
        serde_json::json!({
            "charge_id": r.charge_id, "staff_id": cmd.staff_id, "amount_fen": r.amount.0,
            "subsidy_fen": r.subsidy.0, "cash_fen": r.cash.0, "reason": r.reason,
            "key": cmd.idempotency_key, "offline": cmd.offline, "kiosk_time": cmd.kiosk_time_ms,
        })
    }
}

/// Decides every charge of a batch in arrival order against the locked state, updating that state
/// (balances, the day's totals) as charges are accepted. Pure: no I/O.
fn plan_batch(
    sys: &SystemIds,
    items: &[PreparedCharge],
    mut people: HashMap<i64, BatchPerson>,
    totals: &[(i64, String, Option<String>, i64, i64)],
    seen: HashMap<(i64, String), (String, String)>,
) -> SResult<Vec<Plan>> {
    let mut spent: HashMap<(i64, String), i64> = HashMap::new();
    let mut taken: HashMap<(i64, String, MealKind), i64> = HashMap::new();
    for (staff, date, meal, sum, count) in totals {
        *spent.entry((*staff, date.clone())).or_default() += sum;
        if let Some(m) = meal {
            *taken.entry((*staff, date.clone(), parse_meal(m)?)).or_default() += count;
        }
    }
    let mut first_of_key: HashMap<(i64, &str), usize> = HashMap::new();
    let mut plans = Vec::with_capacity(items.len());
    for (i, p) in items.iter().enumerate() {
        let cmd = &p.cmd;
        if let Some(&first) = first_of_key.get(&(cmd.kiosk_id, cmd.idempotency_key.as_str())) {
            plans.push(if items[first].cmd.request_hash == cmd.request_hash {
                Plan::SameAs(first)
            } else {
                Plan::Answer(Err(key_reused()))
            });
            continue;
        }
        if let Some((hash, response)) = seen.get(&(cmd.kiosk_id, cmd.idempotency_key.clone())) {
            plans.push(Plan::Answer(SqlStore::replay::<ChargeResult>(hash, response, &cmd.request_hash).map(|mut r| {
                r.replayed = true;
                r
            })));
            continue;
        }
        let Some(person) = people.get_mut(&cmd.staff_id) else {
            plans.push(Plan::Answer(Err(StoreError::NotFound("staff"))));
            continue;
        };
        let day = (cmd.staff_id, p.local_date.clone());
        let spent_today = spent.get(&day).copied().unwrap_or(0);
        let meals_taken = match p.meal {
            Some(m) => taken.get(&(cmd.staff_id, p.local_date.clone(), m)).copied().unwrap_or(0),
            None => 0,
        };
        let price = match cmd.amount {
            Some(a) => Some(a),
            None => p.meal.and_then(|m| {
                p.rules.prices.iter().find(|(c, pm, _)| *pm == m && *c == person.category).map(|(_, _, price)| *price)
            }),
        };
        let w = &mut person.wallets;
        let facts = ChargeFacts {
            staff_active: person.active,
            meal: p.meal,
            price,
            cash_balance: w.cash,
            subsidy_balance: w.subsidy,
            spent_today: Fen(spent_today),
            meals_taken: to_u32(meals_taken)?,
            meals_allowed: person.meals_per_period,
            per_transaction_cap: p.rules.txn_cap,
            daily_cap: p.rules.daily_cap,
        };
        let mut result = undecided_result(p.meal, &p.local_date, price, w);
        let mut write = PlannedWrite {
            item: i,
            result: result.clone(),
            status: None,
            entry: None,
            memo: String::new(),
            cash_id: w.cash_id,
            subsidy_id: w.subsidy_id,
        };
        match decide_charge(&facts) {
            Ok(split) => {
                let entry = ProposedEntry::charge(cmd.staff_id, split.subsidy, split.cash).map_err(corrupt)?;
                // Every leg must name this person's wallets or a system account.
                for posting in entry.postings() {
                    SqlStore::account_id(sys, w, posting.account)?;
                }
                w.cash = Fen(w.cash.0 - split.cash.0);
                w.subsidy = Fen(w.subsidy.0 - split.subsidy.0);
                *spent.entry(day).or_default() += split.total.0;
                *taken.entry((cmd.staff_id, p.local_date.clone(), split.meal)).or_default() += 1;
                accept_result(&mut result, &split, w.cash, w.subsidy);
                write.memo = format!("{} {} at kiosk {}", split.meal, p.local_date, cmd.kiosk_id);
                write.entry = Some(entry);
                write.status = Some("accepted");
            }
            Err(rejection) => {
                result.reason = Some(rejection.code().to_string());
                if cmd.offline {
                    // Served while the kiosk was offline: never dropped, parked for a manager.
                    result.outcome = ChargeOutcome::Exception;
                    write.status = Some("exception");
                }
            }
        }
        write.result = result;
        first_of_key.insert((cmd.kiosk_id, cmd.idempotency_key.as_str()), i);
        plans.push(Plan::Write(write));
    }
    Ok(plans)
}

fn key_reused() -> StoreError {
    StoreError::conflict("idempotency_key_reused", "this idempotency key was already used for a different request")
}

/// The distinct people, (person, local day) pairs and (kiosk, key) pairs of a batch.
struct BatchKeys {
    staff_ids: Vec<i64>,
    days: Vec<(i64, String)>,
    keys: Vec<(i64, String)>,
}

impl BatchKeys {
    fn of(items: &[PreparedCharge]) -> Self {
        fn distinct<T: Ord>(mut v: Vec<T>) -> Vec<T> {
            v.sort_unstable();
            v.dedup();
            v
        }
        BatchKeys {
            staff_ids: distinct(items.iter().map(|p| p.cmd.staff_id).collect()),
            days: distinct(items.iter().map(|p| (p.cmd.staff_id, p.local_date.clone())).collect()),
            keys: distinct(items.iter().map(|p| (p.cmd.kiosk_id, p.cmd.idempotency_key.clone())).collect()),
        }
    }
}

/// Decides a batch from what the driver read.
fn plan_from_facts(sys: &SystemIds, items: &[PreparedCharge], facts: BatchFacts) -> SResult<Vec<Plan>> {
    let people: HashMap<i64, BatchPerson> = facts.people.into_iter().collect();
    let seen: HashMap<(i64, String), (String, String)> =
        facts.seen.into_iter().map(|(k, key, h, r)| ((k, key), (h, r))).collect();
    plan_batch(sys, items, people, &facts.totals, seen)
}

/// One batch. `Ok` holds one reply per item, in order; `Err` fails them all (nothing of the
/// batch was committed). The driver's `apply_batch` reads, decides (`plan_from_facts`), writes and
/// commits; it answers `None` when the batch could not be settled as a whole (a race on an
/// idempotency key, or wallets that kept changing under it), and then every charge of the batch
/// is redone alone.
async fn run_batch(ctx: &BatchCtx, items: &[PreparedCharge]) -> SResult<Vec<BatchReply>> {
    let plans = match apply_batch(ctx, items).await {
        Ok(Some(plans)) => plans,
        Ok(None) => return Ok(items.iter().map(|_| BatchReply::Alone).collect()),
        Err(e) if is_unique_violation(&e) => {
            tracing::debug!(charges = items.len(), "a batch lost a race on an idempotency key; redoing its charges one by one");
            return Ok(items.iter().map(|_| BatchReply::Alone).collect());
        }
        Err(e) => return Err(e),
    };
    let results: Vec<Option<ChargeResult>> =
        plans.iter().map(|p| if let Plan::Write(w) = p { Some(w.result.clone()) } else { None }).collect();
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
                None => Err(corrupt("batch replay refers to a charge that was not written")),
            }),
        })
        .collect())
}

impl SqlStore {
    /// Works out the meal and local day of a charge from the canteen's rules (cached).
    async fn prepare_charge(&self, cmd: ChargeCommand) -> SResult<PreparedCharge> {
        let (rules, local_date, meal) = self.charge_slot(&cmd).await?;
        Ok(PreparedCharge { cmd, local_date, meal, rules })
    }

    /// The canteen's rules, and the local day and meal (if any) a charge's kiosk time falls in.
    async fn charge_slot(&self, cmd: &ChargeCommand) -> SResult<(std::sync::Arc<CanteenRules>, String, Option<MealKind>)> {
        let rules = self.canteen_rules(cmd.canteen_id).await?;
        let slot = rules
            .schedule
            .locate(cmd.kiosk_time_ms)
            .map_err(|e| StoreError::invalid("bad_timestamp", e.to_string()))?;
        let local_date = match slot {
            Some(s) => s.local_date,
            None => rules
                .schedule
                .local_date(cmd.kiosk_time_ms)
                .map_err(|e| StoreError::invalid("bad_timestamp", e.to_string()))?,
        }
        .to_string();
        Ok((rules, local_date, slot.map(|s| s.meal)))
    }

    async fn batch_ctx(&self) -> SResult<BatchCtx> {
        Ok(BatchCtx { pool: self.batch_pool.clone(), gate: self.write_gate.clone(), sys: self.system_ids().await? })
    }

    /// The one-charge path: a transaction of its own, retried when it loses a race on the key.
    async fn charge_alone(&self, cmd: &ChargeCommand) -> SResult<ChargeResult> {
        // A lost race on the key means another transaction committed the same key first; the
        // next attempt reads its result. Bounded: the winner is committed before we retry.
        for _ in 0..5 {
            if let Some(r) = self.charge_once(cmd).await? {
                return Ok(r);
            }
        }
        Err(StoreError::Busy("could not settle a concurrent use of the same idempotency key".into()))
    }

    /// Applies `cmds` as ONE batch (one transaction), in order, outside the queue: what a batch
    /// writer does with the charges it takes. For tests and tools that need a known batch; the
    /// outer error is a failure of the whole batch (nothing of it was committed).
    pub async fn charge_batch(&self, cmds: Vec<ChargeCommand>) -> SResult<Vec<SResult<ChargeResult>>> {
        let mut answers: Vec<Option<SResult<ChargeResult>>> = Vec::with_capacity(cmds.len());
        let mut items = Vec::new();
        let mut slots = Vec::new();
        for cmd in cmds {
            match validate_charge(&cmd) {
                Err(e) => answers.push(Some(Err(e))),
                Ok(()) => match self.prepare_charge(cmd).await {
                    Err(e) => answers.push(Some(Err(e))),
                    Ok(p) => {
                        slots.push(answers.len());
                        answers.push(None);
                        items.push(p);
                    }
                },
            }
        }
        let ctx = self.batch_ctx().await?;
        let replies = if items.is_empty() { Vec::new() } else { run_batch(&ctx, &items).await? };
        for ((slot, item), reply) in slots.into_iter().zip(&items).zip(replies) {
            answers[slot] = Some(match reply {
                BatchReply::Done(r) => r,
                BatchReply::Alone => self.charge_alone(&item.cmd).await,
            });
        }
        Ok(answers.into_iter().map(|a| a.unwrap_or_else(|| Err(corrupt("charge without an answer")))).collect())
    }

    /// `Store::charge`: through the batch queue unless batching is off.
    async fn charge_batched(&self, cmd: ChargeCommand) -> SResult<ChargeResult> {
        validate_charge(&cmd)?;
        if !self.queue.settings.enabled() {
            return self.charge_alone(&cmd).await;
        }
        let key = cmd.clone();
        let prepared = self.prepare_charge(cmd).await?;
        let ctx = self.batch_ctx().await?;
        match self.queue.submit(ctx, prepared).await? {
            BatchReply::Done(r) => r,
            BatchReply::Alone => self.charge_alone(&key).await,
        }
    }
}

fn validate_charge(cmd: &ChargeCommand) -> SResult<()> {
    if cmd.idempotency_key.is_empty() || cmd.idempotency_key.len() > 128 {
        return Err(StoreError::invalid("bad_idempotency_key", "idempotency key must be 1 to 128 characters"));
    }
    if let Some(a) = cmd.amount {
        if a.0 <= 0 {
            return Err(StoreError::invalid("bad_amount", "an explicit amount must be positive"));
        }
    }
    Ok(())
}
