//! Driver errors as [`StoreError`]s. A constraint violation is the client's doing (a duplicate
//! name, a reference to nothing), so it becomes `Conflict`/`Invalid` (4xx) with a stable code
//! chosen by the constraint's name and a message of ours: a client never sees database text.
//! Lock timeouts and serialisation failures become `Busy` (retryable); anything else is
//! `Database`, keeping the driver's error as its source for the log.

use sqlx::error::{DatabaseError, ErrorKind};
use store::StoreError;

/// The code of a unique violation on a charge's or a waste record's idempotency key: two
/// requests with one key raced and one committed first. The charge and waste paths retry and
/// answer the winner's result; it reaches a client only if that keeps failing.
pub(crate) const KEY_RACE: &str = "idempotency_key_race";

/// A unique constraint a client can run into, by the name each database gives it: PostgreSQL's
/// constraint or index name, and the `table.column, ...` list SQLite reports (SQLite names no
/// constraint in its error).
struct UniqueConstraint {
    postgres: &'static str,
    sqlite: &'static str,
    code: &'static str,
    message: &'static str,
}

const UNIQUE_CONSTRAINTS: &[UniqueConstraint] = &[
    UniqueConstraint {
        postgres: "canteens_name_key",
        sqlite: "canteens.name",
        code: "duplicate_canteen_name",
        message: "a canteen with this name exists",
    },
    UniqueConstraint {
        postgres: "staff_employee_no_key",
        sqlite: "staff.employee_no",
        code: "employee_no_taken",
        message: "this employee number exists",
    },
    UniqueConstraint {
        postgres: "users_username_key",
        sqlite: "users.username",
        code: "username_taken",
        message: "this username exists",
    },
    UniqueConstraint {
        postgres: "users_one_per_staff",
        sqlite: "users.staff_id",
        code: "login_exists",
        message: "this person already has a login",
    },
    UniqueConstraint {
        postgres: "refunds_one_per_charge",
        sqlite: "refunds.charge_id",
        code: "refund_exists",
        message: "a refund for this charge is already open or done",
    },
    UniqueConstraint {
        postgres: "offboardings_pkey",
        sqlite: "offboardings.staff_id",
        code: "already_offboarded",
        message: "this person has already left",
    },
    UniqueConstraint {
        postgres: "payment_orders_pkey",
        sqlite: "payment_orders.order_no",
        code: "duplicate_order_no",
        message: "a payment order with this number exists",
    },
    UniqueConstraint {
        postgres: "charges_kiosk_id_idempotency_key_key",
        sqlite: "charges.kiosk_id, charges.idempotency_key",
        code: KEY_RACE,
        message: "a concurrent request with this idempotency key is being settled; retry",
    },
    UniqueConstraint {
        postgres: "idempotency_pkey",
        sqlite: "idempotency.kiosk_id, idempotency.scope, idempotency.key",
        code: KEY_RACE,
        message: "a concurrent request with this idempotency key is being settled; retry",
    },
];

/// The name of the constraint a database error violated, as `UNIQUE_CONSTRAINTS` spells it.
fn violated_constraint(d: &dyn DatabaseError) -> Option<&str> {
    d.constraint()
        .or_else(|| d.message().strip_prefix("UNIQUE constraint failed: "))
}

/// Turns a driver error into a storage error (see the module comment).
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => return StoreError::NotFound("row"),
        sqlx::Error::PoolTimedOut => {
            return StoreError::Busy {
                reason: "connection pool exhausted".into(),
                source: Some(std::sync::Arc::new(e)),
            }
        }
        sqlx::Error::Database(d) => {
            match d.kind() {
                ErrorKind::UniqueViolation => {
                    let name = violated_constraint(d.as_ref());
                    return match UNIQUE_CONSTRAINTS
                        .iter()
                        .find(|c| Some(c.postgres) == name || Some(c.sqlite) == name)
                    {
                        Some(c) => StoreError::conflict(c.code, c.message),
                        None => StoreError::conflict("duplicate", "this already exists"),
                    };
                }
                ErrorKind::ForeignKeyViolation => {
                    return StoreError::invalid(
                        "unknown_reference",
                        "refers to something that does not exist",
                    )
                }
                ErrorKind::CheckViolation | ErrorKind::NotNullViolation => {
                    return StoreError::invalid(
                        "constraint_violation",
                        "the request breaks a rule of the book",
                    )
                }
                _ => {}
            }
            let code = d.code().map(|c| c.to_string()).unwrap_or_default();
            // SQLite BUSY/LOCKED, PostgreSQL serialization failure / deadlock / lock timeout.
            if matches!(
                code.as_str(),
                "5" | "6" | "517" | "261" | "40001" | "40P01" | "55P03"
            ) {
                return StoreError::Busy {
                    reason: "the database is busy".into(),
                    source: Some(std::sync::Arc::new(e)),
                };
            }
        }
        _ => {}
    }
    StoreError::database(e)
}

/// Whether an error is a lost race on an idempotency key (see [`KEY_RACE`]).
pub(crate) fn is_key_race(e: &StoreError) -> bool {
    matches!(e, StoreError::Conflict { code, .. } if *code == KEY_RACE)
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}
