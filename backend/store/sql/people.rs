//! People: staff (the diners, with their two wallets), their balances and statements, leaving
//! (offboarding), and the users who log in with their sessions and login rate limits.

use super::error::{corrupt, db};
use super::faces::tombstone_templates;
use super::journal::{audit, lock_wallets, post_entry};
use super::rows::{staff_from, user_from, StaffRow, UserRow};
use super::tx::Tx;
use super::SqlStore;
use crate::dialect::for_update;
use ledger::posting::ProposedEntry;
use ledger::Fen;
use store::{
    Actor, BalanceRow, Balances, NewSession, NewStaff, NewUser, Offboarding, Result, Role, Session,
    Staff, StaffSearch, StaffUpdate, StatementLine, StoreError, User,
};

pub(crate) async fn create_staff(s: &SqlStore, new: NewStaff, actor: &Actor) -> Result<Staff> {
    let now = store::now_ms();
    let mut tx = s.begin().await?;
    let created = insert_staff(&mut tx, new, actor, now).await?;
    tx.commit().await?;
    Ok(created)
}

/// One new person with their two empty wallets, audited; inside the caller's transaction.
async fn insert_staff(tx: &mut Tx, new: NewStaff, actor: &Actor, now: i64) -> Result<Staff> {
    if new.employee_no.trim().is_empty()
        || new.name.trim().is_empty()
        || new.category.trim().is_empty()
    {
        return Err(StoreError::invalid(
            "bad_staff",
            "employee number, name and category are required",
        ));
    }
    let r: StaffRow = sqlx::query_as(
        "INSERT INTO staff (employee_no, name, department, category, active, meals_per_period, created_at) \
         VALUES ($1, $2, $3, $4, TRUE, 1, $5) \
         RETURNING id, employee_no, name, department, category, active, meals_per_period, created_at",
    )
    .bind(&new.employee_no)
    .bind(&new.name)
    .bind(&new.department)
    .bind(&new.category)
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    let s = staff_from(r)?;
    sqlx::query("INSERT INTO book_accounts (kind, staff_id, balance_fen) VALUES ('cash', $1, 0), ('subsidy', $1, 0)")
        .bind(s.id)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    audit(
        tx,
        actor,
        "staff.create",
        serde_json::json!({"staff": &s}),
        now,
    )
    .await?;
    Ok(s)
}

pub(crate) async fn update_staff(
    s: &SqlStore,
    id: i64,
    upd: StaffUpdate,
    actor: &Actor,
) -> Result<Staff> {
    let now = store::now_ms();
    let mut tx = s.begin().await?;
    let r: StaffRow = sqlx::query_as(concat!(
        "SELECT id, employee_no, name, department, category, active, meals_per_period, created_at FROM staff WHERE id = $1",
        for_update!()
    ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound("staff"))?;
    let mut s = staff_from(r)?;
    if let Some(v) = upd.name {
        s.name = v;
    }
    if let Some(v) = upd.department {
        s.department = v;
    }
    if let Some(v) = upd.category {
        s.category = v;
    }
    if let Some(v) = upd.active {
        s.active = v;
    }
    if let Some(v) = upd.meals_per_period {
        s.meals_per_period = v;
    }
    sqlx::query("UPDATE staff SET name = $1, department = $2, category = $3, active = $4, meals_per_period = $5 WHERE id = $6")
        .bind(&s.name)
        .bind(&s.department)
        .bind(&s.category)
        .bind(s.active)
        .bind(i64::from(s.meals_per_period))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    audit(
        &mut tx,
        actor,
        "staff.update",
        serde_json::json!({"staff": &s}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(s)
}

pub(crate) async fn get_staff(s: &SqlStore, id: i64) -> Result<Staff> {
    let r: StaffRow = sqlx::query_as(
        "SELECT id, employee_no, name, department, category, active, meals_per_period, created_at FROM staff WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&s.pool)
    .await
    .map_err(db)?
    .ok_or(StoreError::NotFound("staff"))?;
    staff_from(r)
}

pub(crate) async fn list_staff(s: &SqlStore, after_id: i64, limit: i64) -> Result<Vec<Staff>> {
    let rows: Vec<StaffRow> = sqlx::query_as(
        "SELECT id, employee_no, name, department, category, active, meals_per_period, created_at FROM staff \
         WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after_id)
    .bind(limit.clamp(1, 1000))
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    rows.into_iter().map(staff_from).collect()
}

pub(crate) async fn balances(s: &SqlStore, staff_id: i64) -> Result<Balances> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT kind, balance_fen FROM book_accounts WHERE staff_id = $1")
            .bind(staff_id)
            .fetch_all(&s.pool)
            .await
            .map_err(db)?;
    if rows.is_empty() {
        return Err(StoreError::NotFound("staff"));
    }
    let get = |k: &str| {
        Fen(rows
            .iter()
            .find(|(kind, _)| kind == k)
            .map(|(_, b)| *b)
            .unwrap_or(0))
    };
    Ok(Balances {
        staff_id,
        cash: get("cash"),
        subsidy: get("subsidy"),
    })
}

pub(crate) async fn balance_page(
    s: &SqlStore,
    after_staff_id: i64,
    limit: i64,
) -> Result<Vec<BalanceRow>> {
    let rows: Vec<(i64, bool, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT s.id, s.active, s.category, c.balance_fen, sb.balance_fen, c.version + sb.version FROM staff s \
         JOIN book_accounts c ON c.staff_id = s.id AND c.kind = 'cash' \
         JOIN book_accounts sb ON sb.staff_id = s.id AND sb.kind = 'subsidy' \
         WHERE s.id > $1 ORDER BY s.id LIMIT $2",
    )
    .bind(after_staff_id)
    .bind(limit.clamp(1, 10_000))
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    Ok(rows
        .into_iter()
        .map(
            |(staff_id, active, category, cash, subsidy, version)| BalanceRow {
                staff_id,
                active,
                category,
                cash: Fen(cash),
                subsidy: Fen(subsidy),
                version,
            },
        )
        .collect())
}

pub(crate) async fn statement(
    s: &SqlStore,
    staff_id: i64,
    limit: i64,
) -> Result<Vec<StatementLine>> {
    let rows: Vec<(i64, String, i64, String, String, i64)> = sqlx::query_as(
        "SELECT e.id, e.kind, e.created_at, e.memo, a.kind, p.amount_fen FROM postings p \
         JOIN book_accounts a ON a.id = p.account_id JOIN journal_entries e ON e.id = p.entry_id \
         WHERE a.staff_id = $1 ORDER BY e.id DESC, p.account_id LIMIT $2",
    )
    .bind(staff_id)
    .bind(limit.clamp(1, 1000) * 2)
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    let mut out: Vec<StatementLine> = Vec::new();
    for (id, kind, at, memo, acct, amount) in rows {
        if out.last().map(|l| l.entry_id) != Some(id) {
            out.push(StatementLine {
                entry_id: id,
                kind,
                at_ms: at,
                cash_delta: Fen(0),
                subsidy_delta: Fen(0),
                memo,
            });
        }
        if let Some(l) = out.last_mut() {
            if acct == "cash" {
                l.cash_delta = Fen(l.cash_delta.0 + amount);
            } else {
                l.subsidy_delta = Fen(l.subsidy_delta.0 + amount);
            }
        }
    }
    out.truncate(limit.clamp(1, 1000) as usize);
    Ok(out)
}

pub(crate) async fn create_user(s: &SqlStore, new: NewUser, actor: &Actor) -> Result<User> {
    if (new.role == Role::Staff) != new.staff_id.is_some() {
        return Err(StoreError::invalid(
            "bad_user",
            "staff users (and only they) are linked to a staff member",
        ));
    }
    let now = store::now_ms();
    let mut tx = s.begin().await?;
    let r: UserRow = sqlx::query_as(
        "INSERT INTO users (username, password_hash, role, staff_id, active, created_at) \
         VALUES ($1, $2, $3, $4, TRUE, $5) RETURNING id, username, role, staff_id, active, password_hash, one_time_until",
    )
    .bind(&new.username)
    .bind(&new.password_hash)
    .bind(new.role.as_str())
    .bind(new.staff_id)
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .map_err(db)?;
    let u = user_from(r)?;
    audit(
        &mut tx,
        actor,
        "user.create",
        serde_json::json!({"user_id": u.id, "username": u.username, "role": u.role, "staff_id": u.staff_id}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(u)
}

pub(crate) async fn user_by_username(s: &SqlStore, username: &str) -> Result<Option<User>> {
    let r: Option<UserRow> = sqlx::query_as(
        "SELECT id, username, role, staff_id, active, password_hash, one_time_until FROM users WHERE username = $1",
    )
    .bind(username)
    .fetch_optional(&s.pool)
    .await
    .map_err(db)?;
    r.map(user_from).transpose()
}

pub(crate) async fn create_session(s: &SqlStore, new: NewSession) -> Result<()> {
    sqlx::query("INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&new.token_hash)
        .bind(new.user_id)
        .bind(&new.csrf_token)
        .bind(new.created_ms)
        .bind(new.expires_ms)
        .execute(&s.pool)
        .await
        .map_err(db)?;
    Ok(())
}

/// A user's columns (`UserRow`), then the session's CSRF token and expiry.
type SessionRow = (
    i64,
    String,
    String,
    Option<i64>,
    bool,
    String,
    Option<i64>,
    String,
    i64,
);

pub(crate) async fn session(
    s: &SqlStore,
    token_hash: &str,
    now_ms: i64,
) -> Result<Option<Session>> {
    let r: Option<SessionRow> = sqlx::query_as(
        "SELECT u.id, u.username, u.role, u.staff_id, u.active, u.password_hash, u.one_time_until, s.csrf_token, s.expires_at \
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.active = TRUE",
    )
    .bind(token_hash)
    .bind(now_ms)
    .fetch_optional(&s.pool)
    .await
    .map_err(db)?;
    r.map(|r| {
        Ok(Session {
            user: user_from((r.0, r.1, r.2, r.3, r.4, r.5, r.6))?,
            csrf_token: r.7,
            expires_ms: r.8,
        })
    })
    .transpose()
}

pub(crate) async fn delete_session(s: &SqlStore, token_hash: &str) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(&s.pool)
        .await
        .map_err(db)?;
    Ok(())
}

pub(crate) async fn purge_expired(s: &SqlStore, now_ms: i64) -> Result<u64> {
    let a = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(now_ms)
        .execute(&s.pool)
        .await
        .map_err(db)?
        .rows_affected();
    let b = sqlx::query("DELETE FROM rate_limits WHERE window_start < $1")
        .bind(now_ms - 24 * 3600 * 1000)
        .execute(&s.pool)
        .await
        .map_err(db)?
        .rows_affected();
    Ok(a + b)
}

pub(crate) async fn rate_limit_hit(
    s: &SqlStore,
    key: &str,
    now_ms: i64,
    window_ms: i64,
    max: i64,
) -> Result<bool> {
    let (hits,): (i64,) = sqlx::query_as(
        "INSERT INTO rate_limits (key, window_start, hits) VALUES ($1, $2, 1) \
         ON CONFLICT (key) DO UPDATE SET \
           hits = CASE WHEN rate_limits.window_start <= $3 THEN 1 ELSE rate_limits.hits + 1 END, \
           window_start = CASE WHEN rate_limits.window_start <= $3 THEN $2 ELSE rate_limits.window_start END \
         RETURNING hits",
    )
    .bind(key)
    .bind(now_ms)
    .bind(now_ms - window_ms)
    .fetch_one(&s.pool)
    .await
    .map_err(db)?;
    Ok(hits <= max)
}

pub(crate) async fn offboard_staff(
    s: &SqlStore,
    staff_id: i64,
    now_ms: i64,
    actor: &Actor,
) -> Result<Offboarding> {
    let sys = s.system_ids().await?;
    let mut tx = s.begin().await?;
    let mut w = lock_wallets(&mut tx, staff_id).await?;
    let cash = w.cash;
    let subsidy = w.subsidy;
    if cash.0 > 0 {
        let e = ProposedEntry::cash_out(staff_id, cash).map_err(corrupt)?;
        post_entry(&mut tx, &sys, &mut w, &e, "cash-out on leaving", now_ms).await?;
    }
    if subsidy.0 > 0 {
        let e = ProposedEntry::subsidy_expiry(staff_id, subsidy).map_err(corrupt)?;
        post_entry(
            &mut tx,
            &sys,
            &mut w,
            &e,
            "subsidy returned on leaving",
            now_ms,
        )
        .await?;
    }
    sqlx::query("INSERT INTO offboardings (staff_id, cash_fen, subsidy_fen, created_at) VALUES ($1, $2, $3, $4)")
        .bind(staff_id)
        .bind(cash.0)
        .bind(subsidy.0)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    sqlx::query("UPDATE staff SET active = FALSE WHERE id = $1")
        .bind(staff_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    sqlx::query("DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE staff_id = $1)")
        .bind(staff_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let templates = tombstone_templates(&mut tx, staff_id).await?;
    let o = Offboarding {
        staff_id,
        cash_paid_out: cash,
        subsidy_returned: subsidy,
        templates_deleted: templates,
    };
    audit(
        &mut tx,
        actor,
        "staff.offboard",
        serde_json::json!(o),
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(o)
}

/// People matching a manager's search, in employee-number order after `f.after_employee_no`.
pub(crate) async fn find_staff(s: &SqlStore, f: StaffSearch) -> Result<Vec<Staff>> {
    // `LIKE` with the text's own wildcards escaped, so "50%" finds "50%" and nothing else.
    let text = f.text.trim();
    let pattern = format!(
        "%{}%",
        text.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
            .to_lowercase()
    );
    let rows: Vec<StaffRow> = sqlx::query_as(
        "SELECT id, employee_no, name, department, category, active, meals_per_period, created_at FROM staff \
         WHERE employee_no > $1 \
           AND ($2 = '' OR LOWER(employee_no) LIKE $3 ESCAPE '\\' OR LOWER(name) LIKE $3 ESCAPE '\\' \
                OR LOWER(department) LIKE $3 ESCAPE '\\') \
           AND ($4 OR active = TRUE) \
         ORDER BY employee_no LIMIT $5",
    )
    .bind(&f.after_employee_no)
    .bind(text)
    .bind(&pattern)
    .bind(f.include_inactive)
    .bind(f.limit.clamp(1, 1000))
    .fetch_all(&s.pool)
    .await
    .map_err(db)?;
    rows.into_iter().map(staff_from).collect()
}

/// Creates every person of an import in one transaction: all or nothing, so a row refused by
/// the database (an employee number taken meanwhile) leaves no half-imported list behind.
pub(crate) async fn import_staff(
    s: &SqlStore,
    people: Vec<NewStaff>,
    actor: &Actor,
) -> Result<Vec<Staff>> {
    let now = store::now_ms();
    let mut tx = s.begin().await?;
    let mut created = Vec::with_capacity(people.len());
    for new in people {
        created.push(insert_staff(&mut tx, new, actor, now).await?);
    }
    tx.commit().await?;
    Ok(created)
}

pub(crate) async fn left_at(s: &SqlStore, staff_id: i64) -> Result<Option<i64>> {
    sqlx::query_scalar("SELECT created_at FROM offboardings WHERE staff_id = $1")
        .bind(staff_id)
        .fetch_optional(&s.pool)
        .await
        .map_err(db)
}

pub(crate) async fn user_for_staff(s: &SqlStore, staff_id: i64) -> Result<Option<User>> {
    let r: Option<UserRow> = sqlx::query_as(
        "SELECT id, username, role, staff_id, active, password_hash, one_time_until FROM users WHERE staff_id = $1",
    )
    .bind(staff_id)
    .fetch_optional(&s.pool)
    .await
    .map_err(db)?;
    r.map(user_from).transpose()
}

/// Gives a member of staff a one-time sign-in code (its hash; the caller shows the code once):
/// creates their login (username = employee number) if they have none, else replaces their
/// password and ends their sessions, as a reset must.
pub(crate) async fn issue_sign_in_code(
    s: &SqlStore,
    staff_id: i64,
    code_hash: &str,
    until_ms: i64,
    actor: &Actor,
) -> Result<User> {
    let now = store::now_ms();
    let mut tx = s.begin().await?;
    let person: StaffRow = sqlx::query_as(concat!(
        "SELECT id, employee_no, name, department, category, active, meals_per_period, created_at FROM staff WHERE id = $1",
        for_update!()
    ))
    .bind(staff_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?
    .ok_or(StoreError::NotFound("staff"))?;
    let person = staff_from(person)?;
    if !person.active {
        return Err(StoreError::conflict(
            "staff_inactive",
            "this person is not active; reactivate them first",
        ));
    }
    let updated: Option<UserRow> = sqlx::query_as(
        "UPDATE users SET password_hash = $1, one_time_until = $2, active = TRUE WHERE staff_id = $3 \
         RETURNING id, username, role, staff_id, active, password_hash, one_time_until",
    )
    .bind(code_hash)
    .bind(until_ms)
    .bind(staff_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    let user = match updated {
        Some(r) => r,
        None => sqlx::query_as(
            "INSERT INTO users (username, password_hash, role, staff_id, active, created_at, one_time_until) \
             VALUES ($1, $2, 'staff', $3, TRUE, $4, $5) \
             RETURNING id, username, role, staff_id, active, password_hash, one_time_until",
        )
        .bind(&person.employee_no)
        .bind(code_hash)
        .bind(staff_id)
        .bind(now)
        .bind(until_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?,
    };
    let user = user_from(user)?;
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user.id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    audit(
        &mut tx,
        actor,
        "user.sign_in_code",
        serde_json::json!({"user_id": user.id, "staff_id": staff_id, "valid_until": until_ms}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// A user's own new password: replaces the hash, ends a one-time code, and ends every other
/// session of theirs (whoever knew the old password or code is signed out).
pub(crate) async fn set_own_password(
    s: &SqlStore,
    user_id: i64,
    password_hash: &str,
    keep_session_hash: &str,
    actor: &Actor,
) -> Result<()> {
    let now = store::now_ms();
    let mut tx = s.begin().await?;
    let changed = sqlx::query(
        "UPDATE users SET password_hash = $1, one_time_until = NULL WHERE id = $2 AND active = TRUE",
    )
    .bind(password_hash)
    .bind(user_id)
    .execute(&mut *tx)
    .await
    .map_err(db)?
    .rows_affected();
    if changed == 0 {
        return Err(StoreError::NotFound("user"));
    }
    sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
        .bind(user_id)
        .bind(keep_session_hash)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    audit(
        &mut tx,
        actor,
        "user.password",
        serde_json::json!({"user_id": user_id}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
