//! Shared by the PostgreSQL tests: the server comes from `TOUCHPOINT_PG_URL`, and every test
//! works in a schema of its own (`tp_test_<uuid>`), dropped when the test ends.

#![allow(dead_code)]

use touchpoint::store::PostgresStore;
use touchpoint::store::postgres::PostgresConfig;

/// How to point the tests at a server.
pub const HOW_TO: &str = "set TOUCHPOINT_PG_URL to a PostgreSQL database the tests may create schemas in, \
     e.g. TOUCHPOINT_PG_URL=postgres://touchpoint:touchpoint@127.0.0.1:5432/touchpoint \
     (`bash .ci/run` starts a local server and sets it)";

/// The server to test against. Without `TOUCHPOINT_PG_URL`: under `CI=true` the test fails
/// (CI must run these tests); elsewhere it says loudly that the PostgreSQL tests did not run.
pub fn url(test: &str) -> Option<String> {
    match std::env::var("TOUCHPOINT_PG_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: TOUCHPOINT_PG_URL is not set, and CI=true requires the PostgreSQL tests to run: {HOW_TO}")
        }
        _ => {
            // Straight to stderr: the test harness would swallow `eprintln!` of a passing test.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "NOTE: PostgreSQL test `{test}` did NOT run: TOUCHPOINT_PG_URL is not set; {HOW_TO}"
            );
            None
        }
    }
}

/// A fresh schema name for one test run.
pub fn fresh_schema() -> String {
    format!("tp_test_{}", uuid::Uuid::new_v4().simple())
}

/// A store in a fresh schema, dropped with everything in it when the guard goes.
pub struct TestStore {
    pub store: PostgresStore,
}

impl TestStore {
    pub fn connect(url: &str) -> TestStore {
        Self::connect_with(PostgresConfig::new(url).with_schema(fresh_schema()))
    }

    pub fn connect_with(config: PostgresConfig) -> TestStore {
        let store = futures::executor::block_on(PostgresStore::connect_with(config)).expect("connect to PostgreSQL");
        TestStore { store }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let result = futures::executor::block_on(self.store.clone().drop_schema());
        if let Err(e) = result {
            eprintln!("could not drop the test schema: {e}");
        }
    }
}

/// Runs `sql` on its own connection (search_path = `schema`) and returns every row as text
/// (`row::text`), for tests that look at what is really stored.
pub fn raw_rows(url: &str, schema: &str, sql: &str) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut config: tokio_postgres::Config = url.parse().expect("url");
        config.options(format!("-c search_path={schema}"));
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.expect("connect");
        let driver = tokio::spawn(connection);
        let rows = client.simple_query(sql).await.expect("query");
        drop(client);
        let _ = driver.await;
        rows.into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or_default().to_owned()),
                _ => None,
            })
            .collect()
    })
}
