//! The shared store test-suite (`backend/store/store_suite.rs`) on PostgreSQL. Each test
//! creates its own database (so tests run in parallel, also as separate nextest processes) from
//! `CLEANPLATE_TEST_POSTGRES_URL` and drops it when the test passes.

use store_postgres::{BatchSettings, PostgresSettings, PostgresStore};

struct TestDb {
    store: std::sync::Arc<dyn store::Store>,
    raw: std::sync::Arc<PostgresStore>,
    admin_url: String,
    name: String,
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

    /// Another store instance (its own pool and charge queue) on the same database, as a second
    /// backend process behind a load balancer would have.
    async fn second_instance(&self) -> std::sync::Arc<dyn store::Store> {
        std::sync::Arc::new(
            PostgresStore::connect_database(
                &self.admin_url,
                &self.name,
                &PostgresSettings {
                    max_connections: 12,
                    ..Default::default()
                },
            )
            .await
            .expect("connect a second instance"),
        )
    }

    /// Another instance on the same database with batching off: every charge settled alone.
    async fn unbatched_instance(&self) -> std::sync::Arc<dyn store::Store> {
        std::sync::Arc::new(
            PostgresStore::connect_database(
                &self.admin_url,
                &self.name,
                &PostgresSettings {
                    max_connections: 12,
                    batch: BatchSettings {
                        max_batch: 1,
                        ..BatchSettings::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .expect("connect an unbatched instance"),
        )
    }

    /// From now on, inserting a charge whose idempotency key starts with "boom" fails with a
    /// database error (a trigger), to see what a failing batch does.
    async fn inject_charge_failure(&self) {
        self.exec(
            "CREATE FUNCTION cp_test_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF NEW.idempotency_key LIKE 'boom%' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$",
        )
        .await;
        self.exec("CREATE TRIGGER cp_test_boom BEFORE INSERT ON charges FOR EACH ROW EXECUTE FUNCTION cp_test_boom()").await;
    }

    async fn remove_charge_failure(&self) {
        self.exec("DROP TRIGGER cp_test_boom ON charges").await;
    }

    async fn teardown(self) {
        self.raw.pool().close().await;
        store_postgres::drop_database(&self.admin_url, &self.name)
            .await
            .expect("drop test database");
    }
}

async fn fresh() -> Option<TestDb> {
    let admin_url = match std::env::var("CLEANPLATE_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => u,
        _ if std::env::var("CLEANPLATE_SKIP_POSTGRES").as_deref() == Ok("1") => {
            eprintln!("skipped: PostgreSQL tests skipped because CLEANPLATE_SKIP_POSTGRES=1");
            return None;
        }
        _ => panic!(
            "CLEANPLATE_TEST_POSTGRES_URL is not set: run `scripts/postgres.sh` and export the URL it prints \
             (or set CLEANPLATE_SKIP_POSTGRES=1 to skip PostgreSQL tests explicitly)"
        ),
    };
    let name = store_postgres::create_scratch_database(&admin_url, "cptest")
        .await
        .expect("create test database");
    let s = std::sync::Arc::new(
        PostgresStore::connect_database(
            &admin_url,
            &name,
            &PostgresSettings {
                max_connections: 12,
                ..Default::default()
            },
        )
        .await
        .expect("connect to the test database"),
    );
    store::Store::migrate(&*s).await.expect("migrate");
    Some(TestDb {
        store: s.clone(),
        raw: s,
        admin_url,
        name,
    })
}

#[path = "../../store/store_suite.rs"]
mod suite;

/// The generic plan of a batch statement, made as a batch writer's session makes it (once, with
/// `plan_cache_mode = force_generic_plan`), on this test's still empty tables.
async fn generic_plan(db: &TestDb, types: &str, sql: &str, args: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect_with(&db.raw.pool().connect_options())
        .await
        .expect("connect");
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan")
        .execute(&mut conn)
        .await
        .expect("set plan_cache_mode");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "PREPARE batch_stmt({types}) AS {sql}"
    )))
    .execute(&mut conn)
    .await
    .expect("prepare");
    let lines: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "EXPLAIN EXECUTE batch_stmt({args})"
    )))
    .fetch_all(&mut conn)
    .await
    .expect("explain");
    conn.close().await.expect("close");
    lines
        .into_iter()
        .map(|l| l.0)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn batch_statements_keep_index_lookups_in_a_plan_made_on_empty_tables() {
    let Some(db) = fresh().await else { return };
    let read = generic_plan(
        &db,
        "BIGINT[], BIGINT[], TEXT[], BIGINT[], TEXT[], BIGINT",
        store_postgres::READ_BATCH_SQL,
        "'{1,2}', '{1,2}', '{2026-11-26,2026-11-26}', '{1,1}', '{a,b}', 2",
    )
    .await;
    assert!(
        !read.contains("Seq Scan"),
        "a table scan in the batch read's plan:\n{read}"
    );
    assert!(
        read.contains("Index Scan using idempotency_pkey on idempotency")
            && read
                .contains("(kiosk_id = q.kiosk_id) AND (scope = 'charge'::text) AND (key = q.key)"),
        "idempotency records are not looked up by their whole key:\n{read}"
    );
    assert!(
        read.contains("Index Scan using charges_staff_day on charges")
            && read.contains("(staff_id = d.staff_id) AND (local_date = d.local_date)"),
        "a day's charges are not looked up by (person, day):\n{read}"
    );
    let write = generic_plan(
        &db,
        "BIGINT[], BIGINT[], TEXT[], BIGINT[], BIGINT[], BIGINT[], BIGINT[], BIGINT[], BIGINT[], \
         BIGINT[], BIGINT[], TEXT[], BIGINT[], BIGINT[], TEXT[], TEXT[], BIGINT[], BIGINT[], BIGINT[], \
         BIGINT[], BIGINT[], TEXT[], TEXT[], BIGINT[], BOOLEAN[], BIGINT[], TEXT[], TEXT[], TEXT[], \
         BIGINT[], BIGINT[], TEXT[], TEXT[], TEXT[]",
        store_postgres::WRITE_BATCH_SQL,
        &vec!["'{}'"; 34].join(", "),
    )
    .await;
    assert!(
        !write.contains("Seq Scan"),
        "a table scan in the batch write's plan:\n{write}"
    );
    db.teardown().await;
}
