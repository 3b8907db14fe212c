//! `disable_memory_statistics` turns SQLite's memory statistics off when called before SQLite
//! is initialised, and answers `false` (changing nothing) after. Its own test binary, with one
//! test: SQLite must not have been initialised by anything else in the process first.

use futures::executor::block_on;
use std::sync::Arc;
use touchpoint::Engine;
use touchpoint::model::{Address, ChannelKind, Content, EndpointId, InboundMessage, TenantId};
use touchpoint::store::SqliteStore;
use touchpoint::store::sqlite::disable_memory_statistics;

#[allow(unsafe_code)]
fn counted() -> (i64, i64) {
    // SAFETY: plain reads of SQLite's counters, which SQLite allows from any thread.
    unsafe { (rusqlite::ffi::sqlite3_memory_used(), rusqlite::ffi::sqlite3_memory_highwater(0)) }
}

#[test]
#[allow(unsafe_code)]
fn memory_statistics_go_off_only_before_sqlite_is_initialised() {
    // SAFETY: the only test of this binary: no other thread uses SQLite.
    assert!(unsafe { disable_memory_statistics() }, "SQLite was not initialised yet");

    let dir = std::env::temp_dir().join(format!("touchpoint-memstat-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = Arc::new(SqliteStore::open(dir.join("t.db")).expect("open"));
    let engine = Engine::builder(store).build();
    let tenant = TenantId::new("acme").expect("tenant");
    let msg = InboundMessage::new(
        ChannelKind::WhatsApp,
        EndpointId::new("wa-main").expect("endpoint"),
        Address::phone("+447700900123"),
        "wamid.1",
        Content::text("Hello"),
    );
    block_on(engine.ingest(&tenant, msg)).expect("ingest");
    assert_eq!(counted(), (0, 0), "SQLite counted its allocations: the statistics are on");

    // Initialised now: a second call is refused and changes nothing; SQLite works as ever.
    // SAFETY: as above.
    assert!(!unsafe { disable_memory_statistics() });
    let conn = rusqlite::Connection::open_in_memory().expect("a later connection");
    let one: i64 = conn.query_row("SELECT 1", [], |r| r.get(0)).expect("query");
    assert_eq!(one, 1);
    drop((engine, conn));
    let _ = std::fs::remove_dir_all(&dir);
}
