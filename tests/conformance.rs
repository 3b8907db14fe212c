//! The store conformance suite on the in-memory store, directly and through `Arc<dyn Store>`.

use std::sync::Arc;
use touchpoint::store::{InMemoryStore, Store};

#[test]
fn in_memory_store_passes_the_conformance_suite() {
    futures::executor::block_on(touchpoint::testkit::run_all(&InMemoryStore::new()));
}

#[test]
fn in_memory_store_passes_through_arc_dyn_store() {
    let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
    futures::executor::block_on(touchpoint::testkit::run_all(&*store));
}

#[test]
fn one_store_serves_many_suite_runs() {
    // Every check uses its own tenant, so runs on one shared store do not interfere.
    let store = InMemoryStore::new();
    for _ in 0..3 {
        futures::executor::block_on(touchpoint::testkit::run_all(&store));
    }
}
