//! The shared store test-suite (`backend/store/sql/tests_common.rs`) on SQLite: each test gets
//! its own database file in a temporary directory.

use store_sqlite::{SqliteSettings, SqliteStore};

struct TestDb {
    store: std::sync::Arc<dyn store::Store>,
    raw: std::sync::Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

impl TestDb {
    async fn exec(&self, sql: &'static str) {
        sqlx::query(sql)
            .execute(self.raw.pool())
            .await
            .expect("raw SQL in a test");
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
        _dir: dir,
    })
}

include!("../../store/sql/tests_common.rs");
