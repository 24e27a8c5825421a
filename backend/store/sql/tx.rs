//! Write transactions. On SQLite a write transaction also holds the process-wide writer gate (a
//! fair FIFO in front of SQLite's single writer, so writers queue here rather than in SQLite's
//! sleep-and-retry busy handler); on PostgreSQL there is no gate.

use super::error::db;
use crate::dialect::{begin_write, Db, DbPool};
use std::sync::Arc;
use store::Result;

/// The writer gate: one per store, shared by its write transactions and batch writers.
pub(crate) type WriterGate = Arc<tokio::sync::Mutex<()>>;

/// A write transaction. It derefs to the connection, so queries run on it as on a plain
/// transaction.
pub(crate) struct WriteTx {
    tx: sqlx::Transaction<'static, Db>,
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
}

pub(crate) type Tx = WriteTx;

impl std::ops::Deref for WriteTx {
    type Target = <Db as sqlx::Database>::Connection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<()> {
        self.tx.commit().await.map_err(db)
    }
}

/// Begins a write transaction, first queueing at the writer gate where there is one (SQLite).
pub(crate) async fn begin_gated(pool: &DbPool, gate: Option<&WriterGate>) -> Result<Tx> {
    let gate = match gate {
        Some(g) => Some(g.clone().lock_owned().await),
        None => None,
    };
    Ok(WriteTx {
        tx: begin_write(pool).await?,
        _gate: gate,
    })
}
