//! The storage error: a small set of kinds the HTTP layer maps to status codes. Database
//! constraint violations are turned into `Conflict`/`Invalid` by the implementations, by
//! constraint name and with messages of our own, because they mean the client asked for
//! something impossible, not that the server broke; a client never sees database text. Errors
//! that are the server's keep the driver's error as their `source()`, for the log.

use std::sync::Arc;

/// A driver error kept as the source of a [`StoreError`]. Shared (`Arc`) because one failed
/// batch of charges answers every charge in it with the same error.
pub type SourceError = Arc<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, Clone, thiserror::Error)]
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
    #[error("storage busy: {reason}")]
    Busy {
        reason: String,
        #[source]
        source: Option<SourceError>,
    },
    /// The database failed (connection lost, a statement refused for a reason that is ours).
    #[error("database error")]
    Database(#[source] SourceError),
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

    /// `Busy` for a reason of our own (retries used up, a pool exhausted).
    pub fn busy(reason: impl Into<String>) -> Self {
        StoreError::Busy {
            reason: reason.into(),
            source: None,
        }
    }

    /// `Database` keeping the driver's error as the source.
    pub fn database(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Database(Arc::new(source))
    }

    /// `Database` for a failure described in our own words (no driver error behind it).
    pub fn database_msg(message: impl Into<String>) -> Self {
        let boxed: Box<dyn std::error::Error + Send + Sync> = message.into().into();
        StoreError::Database(Arc::from(boxed))
    }

    /// The error and each of its sources, `: `-separated, for a log line.
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        let mut next = std::error::Error::source(self);
        while let Some(e) = next {
            out.push_str(": ");
            out.push_str(&e.to_string());
            next = e.source();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_walks_the_sources() {
        let e = StoreError::database(std::io::Error::other("disk on fire"));
        assert_eq!(e.to_string(), "database error");
        assert_eq!(e.report(), "database error: disk on fire");
        let cloned = e.clone();
        assert_eq!(cloned.report(), e.report());
    }
}
