//! The shared store test-suite (`backend/store/store_suite.rs`) on SQLite: each test gets
//! its own database file in a temporary directory.

use store_sqlite::{BatchSettings, SqliteSettings, SqliteStore};

struct TestDb {
    store: std::sync::Arc<dyn store::Store>,
    raw: std::sync::Arc<SqliteStore>,
    url: String,
    _dir: tempfile::TempDir,
}

impl TestDb {
    async fn exec(&self, sql: &'static str) {
        sqlx::query(sql)
            .execute(self.raw.pool())
            .await
            .expect("raw SQL in a test");
    }

    /// As `exec`, for statements a test composes (its own values, never outside input).
    async fn exec_composed(&self, sql: String) {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(self.raw.pool())
            .await
            .expect("raw SQL in a test");
    }

    /// Another store instance (its own pool, writer gate and charge queue) on the same file, as
    /// a second process would have; the two meet at SQLite's own lock.
    async fn second_instance(&self) -> std::sync::Arc<dyn store::Store> {
        std::sync::Arc::new(
            SqliteStore::connect(&self.url, &SqliteSettings::default())
                .await
                .expect("open a second instance"),
        )
    }

    /// Another instance on the same file with batching off: every charge settled alone.
    async fn unbatched_instance(&self) -> std::sync::Arc<dyn store::Store> {
        let settings = SqliteSettings {
            batch: BatchSettings {
                max_batch: 1,
                ..BatchSettings::default()
            },
            ..SqliteSettings::default()
        };
        std::sync::Arc::new(
            SqliteStore::connect(&self.url, &settings)
                .await
                .expect("open an unbatched instance"),
        )
    }

    /// From now on, inserting a charge whose idempotency key starts with "boom" fails with a
    /// database error (a trigger), to see what a failing batch does.
    async fn inject_charge_failure(&self) {
        self.exec(
            "CREATE TRIGGER cp_test_boom BEFORE INSERT ON charges WHEN NEW.idempotency_key LIKE 'boom%' \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
        )
        .await;
    }

    async fn remove_charge_failure(&self) {
        self.exec("DROP TRIGGER cp_test_boom").await;
    }

    async fn teardown(self) {}
}

async fn fresh() -> Option<TestDb> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let s = std::sync::Arc::new(
        SqliteStore::connect(&url, &SqliteSettings::default())
            .await
            .expect("open sqlite"),
    );
    store::Store::migrate(&*s).await.expect("migrate");
    Some(TestDb {
        store: s.clone(),
        raw: s,
        url,
        _dir: dir,
    })
}

#[path = "../../store/store_suite.rs"]
mod suite;
