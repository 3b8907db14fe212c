//! The PostgreSQL store: the conformance suite, the ledger conformance, schema migrations,
//! configuration errors, and the store used through the Engine from any executor.
//! Needs `TOUCHPOINT_PG_URL` (see tests/postgres_common).

mod postgres_common;

use postgres_common::{TestStore, url};
use std::sync::Arc;
use touchpoint::model::*;
use touchpoint::routing::ledger::conformance;
use touchpoint::store::postgres::PostgresConfig;
use touchpoint::store::{MessageQuery, MessageScope, PostgresStore, Store};
use touchpoint::{Engine, Error};

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

/// Two threads claim and release for one agent with a limit of 1: every over-capacity refusal
/// reports the load it was judged on (load + cost > limit), as the in-memory ledger does, not
/// one a release left after it.
#[test]
fn an_over_capacity_refusal_reports_the_load_it_was_judged_on() {
    use touchpoint::routing::{AssignmentLedger, Claim, ClaimOutcome, Refusal, WorkItemId};
    let Some(url) = url("an_over_capacity_refusal_reports_the_load_it_was_judged_on") else { return };
    let db = TestStore::connect(&url);
    let ledger: Arc<dyn AssignmentLedger> = Arc::new(db.store.ledger());
    let t = TenantId::new("acme").unwrap();
    let ana = AgentId::new("ana").unwrap();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (ledger, t, ana) = (ledger.clone(), t.clone(), ana.clone());
            std::thread::spawn(move || {
                run(async move {
                    let mut refused = 0;
                    for _ in 0..1500 {
                        let x = WorkItemId::random();
                        let claim = Claim::new(x, ana.clone(), ChannelKind::WebChat, 1, 1);
                        match ledger.claim(&t, &claim).await.unwrap() {
                            ClaimOutcome::Granted => {
                                ledger.release(&t, x, &ana).await.unwrap();
                            }
                            ClaimOutcome::Refused(Refusal::OverCapacity { load, cost, limit }) => {
                                assert!(load + cost > limit, "refused with load {load}, cost {cost}, limit {limit}");
                                refused += 1;
                            }
                            other => panic!("{other:?}"),
                        }
                    }
                    refused
                })
            })
        })
        .collect();
    let refused: usize = threads.into_iter().map(|h| h.join().expect("no refusal reported a load that fits")).sum();
    assert!(refused > 0, "the two threads never met");
}

#[test]
fn migrations_run_once_even_when_four_stores_connect_at_the_same_moment() {
    let Some(url) = url("migrations_run_once_even_when_four_stores_connect_at_the_same_moment") else { return };
    let schema = postgres_common::fresh_schema();
    let config = PostgresConfig::new(&url).with_schema(schema.clone()).with_pool_size(1);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let config = config.clone();
            std::thread::spawn(move || run(PostgresStore::connect_with(config)))
        })
        .collect();
    let stores: Vec<PostgresStore> =
        threads.into_iter().map(|h| h.join().expect("thread").expect("every store connects")).collect();
    let db = TestStore { store: stores[0].clone() };
    for store in &stores {
        assert_eq!(run(store.schema_version()).expect("version"), PostgresStore::SCHEMA_VERSION);
    }
    let applied = postgres_common::raw_rows(&url, &schema, "SELECT version FROM touchpoint_schema_version");
    let expected: Vec<String> = (1..=PostgresStore::SCHEMA_VERSION).map(|v| v.to_string()).collect();
    assert_eq!(applied, expected, "each migration is applied exactly once");
    drop(stores);
    drop(db);
}

#[test]
fn a_schema_from_a_newer_build_is_refused() {
    let Some(url) = url("a_schema_from_a_newer_build_is_refused") else { return };
    let db = TestStore::connect(&url);
    let schema = db.store.config().schema.clone().expect("schema");
    postgres_common::raw_rows(&url, &schema, "INSERT INTO touchpoint_schema_version (version) VALUES (999)");
    let again = run(PostgresStore::connect_with(PostgresConfig::new(&url).with_schema(schema)));
    match again {
        Err(Error::Backend { message, temporary: false, .. }) => {
            assert!(message.contains("newer"), "the error says why: {message}")
        }
        other => panic!("expected a permanent backend error, got {other:?}"),
    }
}

#[test]
fn bad_settings_are_typed_errors_that_never_show_the_password() {
    // No server needed: these fail before connecting, or cannot connect.
    let bad = |config: PostgresConfig| run(PostgresStore::connect_with(config)).expect_err("refused");
    let url = "postgres://app:s3cret@127.0.0.1:1/none";
    for schema in ["", "Has-Caps", "x;drop table y", "1abc", &"a".repeat(64)] {
        match bad(PostgresConfig::new(url).with_schema(schema)) {
            Error::InvalidInput { field: "schema", .. } => {}
            other => panic!("schema {schema:?}: {other:?}"),
        }
    }
    assert!(matches!(bad(PostgresConfig::new(url).with_pool_size(0)), Error::InvalidInput { field: "pool_size", .. }));
    assert!(matches!(
        bad(PostgresConfig::new(url).with_runtime_threads(0)),
        Error::InvalidInput { field: "runtime_threads", .. }
    ));
    match bad(PostgresConfig::new("postgres://app:s3cret@127.0.0.1:notaport/db")) {
        Error::InvalidInput { field: "url", reason } => assert!(!reason.contains("s3cret"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Nothing listens on port 1: a temporary backend error, worth retrying later.
    let unreachable = bad(PostgresConfig::new(url).with_connect_timeout(std::time::Duration::from_secs(2)));
    assert!(matches!(unreachable, Error::Backend { temporary: true, .. }), "{unreachable:?}");
    assert!(!unreachable.to_string().contains("s3cret"));
    assert!(matches!(
        bad(PostgresConfig::new(url).with_connect_timeout(std::time::Duration::ZERO)),
        Error::InvalidInput { field: "connect_timeout", .. }
    ));
    for lock_timeout in [std::time::Duration::ZERO, std::time::Duration::MAX] {
        assert!(matches!(
            bad(PostgresConfig::new(url).with_lock_timeout(lock_timeout)),
            Error::InvalidInput { field: "lock_timeout", .. }
        ));
    }
    // However the password is written, neither the settings nor their errors show it.
    for url in [
        url,
        "host=db user=app password=s3cret",
        "host=db user=app password = s3cret",
        "host=db user=app password='s3cret and more'",
        "postgres://db:5432/app?user=app&password=s3cret",
    ] {
        let shown = format!("{:?}", PostgresConfig::new(url));
        assert!(!shown.contains("s3cret"), "{shown}");
    }
    match bad(PostgresConfig::new("postgres://db/app?password=s3cret&connect_timeout=abc")) {
        Error::InvalidInput { field: "url", reason } => assert!(!reason.contains("s3cret"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refused_login_is_not_temporary_and_says_why() {
    let Some(url) = url("a_refused_login_is_not_temporary_and_says_why") else { return };
    let mut config: tokio_postgres::Config = url.parse().expect("TOUCHPOINT_PG_URL parses");
    config.password("not-the-password-xyz");
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        other => panic!("a TCP host is expected in TOUCHPOINT_PG_URL, not {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().expect("a user in TOUCHPOINT_PG_URL");
    let db = config.get_dbname().unwrap_or(user);
    let wrong = format!("host={host} port={port} user={user} dbname={db} password=not-the-password-xyz");
    let err = run(PostgresStore::connect_with(PostgresConfig::new(wrong))).expect_err("a wrong password");
    assert!(matches!(err, Error::Backend { temporary: false, .. }), "retrying cannot help: {err:?}");
    assert!(err.to_string().contains("password authentication failed"), "the server's reason is kept: {err}");
    assert!(!err.to_string().contains("not-the-password-xyz"), "{err}");
}

fn sms(from: &str, id: &str, body: &str) -> InboundMessage {
    InboundMessage::new(
        ChannelKind::Sms,
        EndpointId::new("sms-main").expect("endpoint"),
        Address::phone(from),
        id,
        Content::text(body),
    )
}

#[test]
fn concurrent_duplicate_deliveries_store_one_message() {
    let Some(url) = url("concurrent_duplicate_deliveries_store_one_message") else { return };
    let db = TestStore::connect(&url);
    let engine = Engine::builder(Arc::new(db.store.clone())).build();
    let t = TenantId::new("dupes").expect("tenant");
    let outcomes = run(futures::future::join_all(
        (0..12).map(|_| engine.ingest(&t, sms("+14155550111", "SM-dup", "Is my order shipped?"))),
    ));
    let outcomes: Vec<_> = outcomes.into_iter().map(|o| o.expect("ingest")).collect();
    assert!(outcomes.iter().all(|o| o.message == outcomes[0].message), "all deliveries name one message");
    assert_eq!(outcomes.iter().filter(|o| !o.duplicate).count(), 1, "exactly one delivery stored it");
    let stored = run(db
        .store
        .messages(&t, &MessageQuery { scope: MessageScope::Customer(outcomes[0].customer), before: None, limit: 50 }))
    .expect("messages");
    assert_eq!(stored.len(), 1);
}

/// `export_customer` reads one snapshot (a REPEATABLE READ transaction) while the customer
/// keeps writing: every export succeeds, every exported message is in an exported
/// conversation, and each conversation's message count matches its exported messages.
#[test]
fn exports_racing_ingests_are_consistent_snapshots() {
    let Some(url) = url("exports_racing_ingests_are_consistent_snapshots") else { return };
    let db = TestStore::connect(&url);
    let engine = Engine::builder(Arc::new(db.store.clone())).build();
    let t = TenantId::new("export-race").expect("tenant");
    let first = run(engine.ingest(&t, sms("+14155550122", "SM-race-0", "hello"))).expect("first contact");
    let done = std::sync::atomic::AtomicBool::new(false);
    let exports = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for k in 1..=120 {
                // Every fourth message from a new number: a new customer, so the reads of the
                // export meet writes to other customers too.
                let from = if k % 4 == 0 { format!("+1415555{:04}", 1000 + k) } else { "+14155550122".into() };
                run(engine.ingest(&t, sms(&from, &format!("SM-race-{k}"), "more"))).expect("ingest");
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        scope.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let export = run(engine.export_customer(&t, first.customer)).expect("export during writes");
                let mut counts = std::collections::HashMap::new();
                for m in &export.messages {
                    assert!(
                        export.conversations.iter().any(|c| c.id == m.conversation),
                        "message {} exported without its conversation",
                        m.id
                    );
                    *counts.entry(m.conversation).or_insert(0usize) += 1;
                }
                for c in &export.conversations {
                    assert_eq!(
                        c.message_count as usize,
                        counts.get(&c.id).copied().unwrap_or(0),
                        "conversation {}",
                        c.id
                    );
                }
                exports.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
    });
    assert!(exports.load(std::sync::atomic::Ordering::Relaxed) > 0, "no export ran during the writes");
    let last = run(engine.export_customer(&t, first.customer)).expect("final export");
    assert_eq!(last.messages.len(), 1 + 90, "the first message and the 90 follow-ups from her number");
}

#[test]
fn works_inside_a_host_tokio_runtime_and_drops_there() {
    let Some(url) = url("works_inside_a_host_tokio_runtime_and_drops_there") else { return };
    let host = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("host runtime");
    let schema = postgres_common::fresh_schema();
    let id = host.block_on(async {
        let store = PostgresStore::connect_with(PostgresConfig::new(&url).with_schema(schema.clone()))
            .await
            .expect("connect from inside tokio");
        let engine = Engine::builder(Arc::new(store)).build();
        let t = TenantId::new("tokio-host").expect("tenant");
        let o = engine.ingest(&t, sms("+14155550112", "SM-tokio", "hello")).await.expect("ingest");
        o.message
        // The engine and the store are dropped here, inside the host's runtime.
    });
    let db = TestStore::connect_with(PostgresConfig::new(&url).with_schema(schema));
    let found = run(db.store.message(&TenantId::new("tokio-host").expect("tenant"), id)).expect("read");
    assert_eq!(found.map(|m| m.id), Some(id));
}

#[test]
fn an_erased_customer_leaves_no_personal_data_in_any_table() {
    let Some(url) = url("an_erased_customer_leaves_no_personal_data_in_any_table") else { return };
    let db = TestStore::connect(&url);
    let schema = db.store.config().schema.clone().expect("schema");
    let engine = Engine::builder(Arc::new(db.store.clone())).build();
    let t = TenantId::new("erasure").expect("tenant");
    let ana = run(engine.ingest(&t, sms("+5511987654321", "SM-ana", "my broken lamp"))).expect("ingest");
    run(engine.ingest(&t, sms("+14155550100", "SM-keep", "Bruno keeps his data"))).expect("ingest");
    run(engine.erase_customer(&t, ana.customer)).expect("erase");
    let tables = postgres_common::raw_rows(
        &url,
        &schema,
        &format!("SELECT table_name FROM information_schema.tables WHERE table_schema = '{schema}'"),
    );
    assert!(tables.len() >= 8, "every table is searched: {tables:?}");
    let mut everything = String::new();
    for table in tables {
        for row in postgres_common::raw_rows(&url, &schema, &format!("SELECT r::text FROM {table} r")) {
            everything.push_str(&row);
            everything.push('\n');
        }
    }
    assert!(everything.contains("Bruno keeps his data"), "the probe finds data that is still there");
    for secret in ["5511987654321", "broken lamp", "SM-ana"] {
        // bytea columns print as hex: search for that form too.
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(!everything.contains(secret) && !everything.contains(&hex), "{secret:?} is still stored");
    }
}

#[test]
fn store_ledger_and_config_can_be_shared_between_threads() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<PostgresStore>();
    shared::<PostgresConfig>();
    shared::<touchpoint::store::postgres::PostgresLedger>();
    shared::<touchpoint::routing::InMemoryLedger>();
    shared::<Arc<dyn touchpoint::routing::AssignmentLedger>>();
}

#[test]
fn any_string_round_trips_even_with_nul_and_non_ascii() {
    use touchpoint::store::{ChangeSet, Write};
    use touchpoint::testkit::{sample_conversation, sample_customer, sample_message};
    let Some(url) = url("any_string_round_trips_even_with_nul_and_non_ascii") else { return };
    let db = TestStore::connect(&url);
    let t = TenantId::new("strings").expect("tenant");
    // The engine refuses control characters in provider ids; the store still keeps any string
    // a host hands it exactly.
    let (external, body) = ("SM\u{0}nul-ß-😀", "line\u{0}break – ünïcödé 😀");
    let customer = sample_customer(&t);
    let conversation = sample_conversation(&customer);
    let message = sample_message(&conversation, external, body);
    let changes = ChangeSet {
        customers: vec![Write::insert(customer)],
        conversations: vec![Write::insert(conversation)],
        messages: vec![Write::insert(message.clone())],
        ..ChangeSet::default()
    };
    run(db.store.commit(&t, changes)).expect("commit");
    let stored = run(db.store.message_by_external_id(&t, &message.channel, external)).expect("lookup");
    assert_eq!(stored, Some(message.clone()), "found by its exact provider id, unchanged");
    // A provider id that differs only after the NUL is another message.
    let other = run(db.store.message_by_external_id(&t, &message.channel, "SM\u{0}nul-ß-")).expect("lookup");
    assert_eq!(other, None);
}

/// Every connection of the pool is busy (here the one connection of a pool of 1 waits for a
/// tenant's row lock that another session holds): a call that needs a connection fails with a
/// temporary error after the pool's wait timeout instead of waiting for as long as the lock.
#[test]
fn an_exhausted_pool_gives_a_temporary_error_after_the_wait_timeout() {
    use std::time::{Duration, Instant};
    use touchpoint::events::Event;
    use touchpoint::store::{ChangeSet, Write};
    use touchpoint::testkit::{sample_conversation, sample_customer, sample_message};
    let Some(url) = url("an_exhausted_pool_gives_a_temporary_error_after_the_wait_timeout") else { return };
    let schema = postgres_common::fresh_schema();
    let db = TestStore::connect_with(
        PostgresConfig::new(&url)
            .with_schema(schema.clone())
            .with_pool_size(1)
            .with_wait_timeout(Duration::from_secs(2))
            .with_lock_timeout(Duration::from_secs(120)),
    );
    let change = |t: &TenantId, external_id: &str| {
        let c = sample_customer(t);
        let conversation = sample_conversation(&c);
        let message = sample_message(&conversation, external_id, "hello");
        ChangeSet {
            customers: vec![Write::insert(c.clone())],
            conversations: vec![Write::insert(conversation)],
            messages: vec![Write::insert(message)],
            events: vec![Event::CustomerCreated { customer: c.id }],
            at: chrono::Utc::now(),
            ..ChangeSet::default()
        }
    };
    let busy = TenantId::new("busy").expect("tenant");
    run(db.store.commit(&busy, change(&busy, "first"))).expect("the first commit makes the tenant's row");
    // Another session takes the tenant's row lock and holds it until told to let go.
    let locker = TenantLock::hold(&url, &schema, "busy");
    let locker_pid = locker.pid;
    // A commit of that tenant takes the pool's only connection and waits for the lock.
    let (s, b) = (db.store.clone(), busy.clone());
    let blocked = std::thread::spawn(move || run(s.commit(&b, change(&b, "second"))));
    let deadline = Instant::now() + Duration::from_secs(60);
    let waiting = format!("SELECT count(*) FROM pg_stat_activity WHERE {locker_pid} = ANY(pg_blocking_pids(pid))");
    while postgres_common::raw_rows(&url, &schema, &waiting) != ["1"] {
        assert!(Instant::now() < deadline, "the store's commit never came to wait for the row lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let other = TenantId::new("other").expect("tenant");
    let started = Instant::now();
    let answer = run(db.store.customer(&other, CustomerId(uuid::Uuid::now_v7())));
    let waited = started.elapsed();
    locker.release();
    assert!(matches!(answer, Err(Error::Backend { temporary: true, .. })), "{answer:?} after {waited:?}");
    assert!(waited < Duration::from_secs(6), "the read waited {waited:?}, past the 2 s wait timeout");
    assert!(blocked.join().expect("no panic").is_ok(), "the blocked commit goes through once the lock is free");
}

/// A session of another process holding a tenant's row lock (`SELECT … FOR UPDATE` in an open
/// transaction), until released.
struct TenantLock {
    pid: i32,
    release: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl TenantLock {
    fn hold(url: &str, schema: &str, tenant: &str) -> TenantLock {
        use std::time::Duration;
        let (held_tx, held_rx) = std::sync::mpsc::channel::<i32>();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let (url, sql) =
            (url.to_owned(), format!("SELECT 1 FROM {schema}.tenants WHERE tenant = '{tenant}' FOR UPDATE"));
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
                let driver = tokio::spawn(connection);
                client.batch_execute("BEGIN").await.expect("begin");
                let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await.expect("pid").get(0);
                client.batch_execute(&sql).await.expect("lock the tenant's row");
                held_tx.send(pid).expect("tell the test");
                let _ = release_rx.recv_timeout(Duration::from_secs(120));
                client.batch_execute("COMMIT").await.expect("commit");
                drop(client);
                let _ = driver.await;
            });
        });
        let pid = held_rx.recv_timeout(Duration::from_secs(60)).expect("the locker holds the row lock");
        TenantLock { pid, release, thread }
    }

    fn release(self) {
        let _ = self.release.send(());
        self.thread.join().expect("the locker ends");
    }
}

/// A process that stalls holding a tenant's row lock does not stall the others: a commit of
/// that tenant fails with a temporary error after the lock timeout, and goes through once the
/// lock is free.
#[test]
fn a_commit_behind_a_held_tenant_lock_fails_after_the_lock_timeout() {
    use std::time::{Duration, Instant};
    use touchpoint::model::{Address, ChannelKind, Content, EndpointId, InboundMessage};
    let Some(url) = url("a_commit_behind_a_held_tenant_lock_fails_after_the_lock_timeout") else { return };
    let schema = postgres_common::fresh_schema();
    let db = TestStore::connect_with(
        PostgresConfig::new(&url).with_schema(schema.clone()).with_lock_timeout(Duration::from_millis(300)),
    );
    let engine = touchpoint::Engine::builder(std::sync::Arc::new(db.store.clone())).build();
    let t = TenantId::new("stalled").expect("tenant");
    let sms = |id: &str| {
        let endpoint = EndpointId::new("sms-1").expect("endpoint");
        InboundMessage::new(ChannelKind::Sms, endpoint, Address::phone("+447700900123"), id, Content::text("hi"))
    };
    run(engine.ingest(&t, sms("SM1"))).expect("the first ingest makes the tenant's row");
    let locker = TenantLock::hold(&url, &schema, "stalled");
    let started = Instant::now();
    let answer = run(engine.ingest(&t, sms("SM2")));
    let waited = started.elapsed();
    locker.release();
    assert!(matches!(answer, Err(Error::Backend { temporary: true, .. })), "{answer:?} after {waited:?}");
    assert!(waited < Duration::from_secs(10), "waited {waited:?} for a 300 ms lock timeout");
    run(engine.ingest(&t, sms("SM2"))).expect("once the lock is free the same message goes through");
}

/// A server that refuses writes for now (a standby during a failover, here a session made
/// read-only) is a temporary failure the host retries, not a permanent one.
#[test]
fn a_read_only_server_is_a_temporary_failure() {
    let Some(url) = url("a_read_only_server_is_a_temporary_failure") else { return };
    let sep = if url.contains('?') { '&' } else { '?' };
    let read_only = format!("{url}{sep}options=-c%20default_transaction_read_only%3Don");
    let config = PostgresConfig::new(read_only).with_schema(postgres_common::fresh_schema());
    match futures::executor::block_on(PostgresStore::connect_with(config)) {
        Err(Error::Backend { temporary, message, .. }) => assert!(temporary, "reported as permanent: {message}"),
        other => panic!("expected a backend error, got {:?}", other.map(|_| "a store")),
    }
}

/// Every schema name the rules allow connects (a keyword is quoted like any name), and the
/// names PostgreSQL keeps for itself are refused up front as invalid, not as a server error.
#[test]
fn keyword_schema_names_connect_and_reserved_ones_are_invalid() {
    for schema in ["pg_touchpoint", "information_schema"] {
        let config = PostgresConfig::new("postgres://u:p@127.0.0.1:1/db").with_schema(schema);
        let got = run(PostgresStore::connect_with(config));
        assert!(matches!(got, Err(Error::InvalidInput { field: "schema", .. })), "{schema}: {got:?}");
    }
    let Some(url) = url("keyword_schema_names_connect_and_reserved_ones_are_invalid") else { return };
    for schema in ["user", "order"] {
        let store = run(PostgresStore::connect_with(PostgresConfig::new(&url).with_schema(schema)))
            .unwrap_or_else(|e| panic!("schema {schema:?}: {e:?}"));
        let t = TenantId::new("keyword").unwrap();
        let events = run(store.events_after(&t, 0, 10)).unwrap();
        assert!(events.is_empty(), "{schema}: a fresh schema");
        run(store.drop_schema()).unwrap();
    }
}

/// The store speaks no TLS: a connection string that requires it is a bad setting
/// (`InvalidInput`), not a temporary failure a host would retry for ever.
#[test]
fn a_connection_string_that_requires_tls_is_invalid_input() {
    for url in ["postgres://u:p@127.0.0.1:1/db?sslmode=require", "host=127.0.0.1 port=1 user=u sslmode=require"] {
        let got = run(PostgresStore::connect_with(PostgresConfig::new(url)));
        assert!(matches!(got, Err(Error::InvalidInput { field: "url", .. })), "{url}: {got:?}");
    }
    // `prefer` falls back to a plain connection, as libpq does.
    let config = PostgresConfig::new("postgres://u:p@127.0.0.1:1/db?sslmode=prefer");
    assert!(!matches!(run(PostgresStore::connect_with(config)), Err(Error::InvalidInput { .. })));
}
