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

#[test]
fn tmp_timing() {
    use touchpoint::model::*;
    let Some(url) = url("tmp") else { return };
    let db = TestStore::connect(&url);
    let engine = touchpoint::Engine::builder(Arc::new(db.store.clone())).build();
    let t = TenantId::new("timing").unwrap();
    run(async {
        for i in 0..50 {
            let s = std::time::Instant::now();
            let m = InboundMessage::new(ChannelKind::Sms, EndpointId::new("sms").unwrap(), Address::phone(format!("+1415555{:04}", i % 10)), format!("SM{i}"), Content::text("hi"));
            engine.ingest(&t, m).await.unwrap();
            let c = s.elapsed();
            let s = std::time::Instant::now();
            db.store.customer_by_external_id(&t, "x").await.unwrap();
            eprintln!("ingest {c:?} read {:?}", s.elapsed());
        }
    });
}
