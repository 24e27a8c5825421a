//! The storage error: a small set of kinds the HTTP layer maps to status codes. Database
//! constraint violations are turned into `Conflict`/`Invalid` here (by the implementations),
//! because they mean the client asked for something impossible, not that the server broke.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request clashes with existing state (duplicate name, reused idempotency key...).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The request breaks a business rule (no consent, charge not refundable...).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// Temporarily unable to serve (lock timeout, too many retries); safe to retry.
    #[error("storage busy: {0}")]
    Busy(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("data in the database is not what the code expects: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        StoreError::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        StoreError::Invalid {
            code,
            message: message.into(),
        }
    }
}
