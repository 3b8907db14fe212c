//! Opening the first `SqliteStore` of a process turns SQLite's memory statistics off (a
//! process-wide mutex on every allocation). Its own test binary: SQLite must not have been
//! initialised by anything else in the process first.
use futures::executor::block_on;
use std::sync::Arc;
use touchpoint::Engine;
use touchpoint::model::{Address, ChannelKind, Content, EndpointId, InboundMessage, TenantId};
use touchpoint::store::SqliteStore;

#[test]
fn the_first_store_of_a_process_turns_sqlite_memory_statistics_off() {
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
    // SAFETY: a plain read of SQLite's counters, which SQLite allows from any thread.
    #[allow(unsafe_code)]
    let (used, highwater) =
        unsafe { (rusqlite::ffi::sqlite3_memory_used(), rusqlite::ffi::sqlite3_memory_highwater(0)) };
    assert_eq!((used, highwater), (0, 0), "SQLite counted its allocations: the statistics are on");

    // SQLite is initialised now: a connection the host opens later works as ever.
    let conn = rusqlite::Connection::open_in_memory().expect("a later connection");
    let one: i64 = conn.query_row("SELECT 1", [], |r| r.get(0)).expect("query");
    assert_eq!(one, 1);
    drop((engine, conn));
    let _ = std::fs::remove_dir_all(&dir);
}
