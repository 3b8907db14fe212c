//! The PostgreSQL store: the conformance suite, the ledger conformance, schema migrations,
//! configuration errors, and the store used through the Engine from any executor.
//! Needs `TOUCHPOINT_PG_URL` (see tests/postgres_common).

mod postgres_common;

use postgres_common::{TestStore, url};
use std::sync::Arc;
use touchpoint::routing::ledger::conformance;
use touchpoint::store::Store;

fn run<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

#[test]
fn passes_the_store_conformance_suite() {
    let Some(url) = url("passes_the_store_conformance_suite") else { return };
    let db = TestStore::connect(&url);
    run(touchpoint::testkit::run_all(&db.store));
    // Through a trait object too, as hosts hold it.
    let shared: Arc<dyn Store> = Arc::new(db.store.clone());
    run(touchpoint::testkit::run_all(shared.as_ref()));
}

#[test]
fn ledger_passes_the_ledger_conformance_checks() {
    let Some(url) = url("ledger_passes_the_ledger_conformance_checks") else { return };
    let db = TestStore::connect(&url);
    run(conformance::run_all(&db.store.ledger()));
    conformance::concurrent_claims(Arc::new(db.store.ledger()), 6);
}
