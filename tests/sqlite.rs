//! The SQLite store: the conformance suite on a file and in memory, durability across reopening
//! and process crashes, group commit under concurrency, schema versioning and erasure.

use chrono::{Duration, TimeZone, Utc};
use futures::StreamExt;
use futures::future::join_all;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;
use touchpoint::clock::ManualClock;
use touchpoint::context::TimelinePage;
use touchpoint::events::Event;
use touchpoint::model::*;
use touchpoint::store::sqlite::{SqliteOptions, Synchronous};
use touchpoint::store::{ChangeSet, Committed, InMemoryStore, MessageQuery, MessageScope, SqliteStore, Store, Write};
use touchpoint::testkit::{sample_conversation, sample_customer, sample_identity, sample_message};
use touchpoint::thread::ThreadingPolicy;
use touchpoint::{Engine, Error, OutboundMessage};

mod rng;
use rng::Rng;

fn run<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("touchpoint-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn db(&self) -> PathBuf {
        self.0.join("touchpoint.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tenant(name: &str) -> TenantId {
    TenantId::new(name).expect("tenant")
}

fn endpoint(name: &str) -> EndpointId {
    EndpointId::new(name).expect("endpoint")
}

// ---------------------------------------------------------------------------------------------
// Conformance

#[test]
fn file_database_passes_the_conformance_suite() {
    let dir = TempDir::new("conformance-file");
    let store = SqliteStore::open(dir.db()).expect("open");
    run(touchpoint::testkit::run_all(&store));
}

#[test]
fn in_memory_database_passes_the_conformance_suite() {
    let store = SqliteStore::open_in_memory().expect("open");
    run(touchpoint::testkit::run_all(&store));
}

#[test]
fn one_transaction_per_change_set_without_reader_threads_passes_through_arc_dyn_store() {
    let dir = TempDir::new("conformance-single");
    let options = SqliteOptions::default().with_max_batch(1).with_readers(0).with_synchronous(Synchronous::Normal);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_with(dir.db(), options).expect("open"));
    run(touchpoint::testkit::run_all(&*store));
}

#[test]
fn concurrent_suite_runs_share_one_store() {
    // Each check works in its own tenant; run the suite four times at once so that change sets
    // of different checks land in the same group-commit batches.
    let dir = TempDir::new("conformance-concurrent");
    let store = SqliteStore::open(dir.db()).expect("open");
    run(join_all((0..4).map(|_| touchpoint::testkit::run_all(&store))));
}

// ---------------------------------------------------------------------------------------------
// Durability: the engine over a reopened store

fn story_messages() -> Vec<InboundMessage> {
    vec![
        InboundMessage::new(
            ChannelKind::WebChat,
            endpoint("shop-widget"),
            Address::platform("shop-widget", "visitor-7f3a"),
            "chat-0001",
            Content::text("Hi! My order #1042 arrived with a broken lamp."),
        )
        .with_sender_name("Ana Souza")
        .with_claim(CustomerKey::ExternalId("shop-user-1042".into()), Verification::Verified),
        InboundMessage::new(
            ChannelKind::WhatsApp,
            endpoint("wa-main"),
            Address::phone("5511987654321"),
            "wamid.1",
            Content::Media {
                media: MediaKind::Image,
                url: "https://media.example/lamp.jpg".into(),
                mime_type: Some("image/jpeg".into()),
                caption: Some("Here is the lamp".into()),
                filename: None,
            },
        ),
        InboundMessage::new(
            ChannelKind::Email,
            endpoint("support-inbox"),
            Address::email("Ana.Souza@Example.com"),
            "<CAF=ana-1@mail.example.com>",
            Content::text("Attaching the receipt as well."),
        )
        .with_thread(ThreadHints { subject: Some("Broken lamp".into()), ..ThreadHints::default() }),
    ]
}

fn story_engine(store: SqliteStore, clock: Arc<ManualClock>) -> Engine {
    Engine::builder(Arc::new(store))
        .clock(clock)
        .threading(ThreadingPolicy::default().with_cross_channel_window(Duration::days(3)))
        .build()
}

#[test]
fn the_engine_finds_everything_again_after_the_store_is_reopened() {
    let dir = TempDir::new("reopen");
    let t = tenant("acme-shop");
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()));
    let messages = story_messages();

    let (customer, before, events_before) = {
        let engine = story_engine(SqliteStore::open(dir.db()).expect("open"), clock.clone());
        let mut outcomes = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            if i == 1 {
                let first: &touchpoint::IngestOutcome = &outcomes[0];
                run(engine.link_identity(
                    &t,
                    first.customer,
                    ChannelKind::WhatsApp,
                    Address::phone("+55 11 98765-4321"),
                    Verification::Verified,
                ))
                .expect("link phone");
                run(engine.link_identity(
                    &t,
                    first.customer,
                    ChannelKind::Email,
                    Address::email("ana.souza@example.com"),
                    Verification::Verified,
                ))
                .expect("link email");
                run(engine.record_outbound(
                    &t,
                    first.conversation,
                    OutboundMessage::agent(AgentId::new("agent.bruno").unwrap(), Content::text("Sorry! A photo?")),
                ))
                .expect("reply");
            }
            clock.advance(Duration::minutes(5));
            outcomes.push(run(engine.ingest(&t, m.clone())).expect("ingest"));
        }
        let customer = outcomes[0].customer;
        assert!(outcomes.iter().all(|o| o.customer == customer), "one customer across channels");
        assert!(outcomes.iter().all(|o| o.conversation == outcomes[0].conversation), "one conversation");
        let view = run(engine.customer_context(&t, customer, TimelinePage::default())).expect("context");
        let events = run(engine.store().events_after(&t, 0, 1000)).expect("events");
        (customer, view, events)
    }; // engine and store dropped: the database is closed

    assert_eq!(before.timeline.len(), 4);
    assert_eq!(before.identities.len(), 3);
    let engine = story_engine(SqliteStore::open(dir.db()).expect("reopen"), clock.clone());
    let after = run(engine.customer_context(&t, customer, TimelinePage::default())).expect("context after reopen");
    assert_eq!(after, before, "the context view is the same after reopening");
    let events_after = run(engine.store().events_after(&t, 0, 1000)).expect("events");
    assert_eq!(events_after, events_before, "the outbox survives");

    // The idempotency keys survive: a retried webhook is still a duplicate.
    let again = run(engine.ingest(&t, messages[1].clone())).expect("retry");
    assert!(again.duplicate);
    assert_eq!(again.customer, customer);
    // New work continues the event numbering where it stopped.
    clock.advance(Duration::minutes(5));
    let next = InboundMessage::new(
        ChannelKind::WhatsApp,
        endpoint("wa-main"),
        Address::phone("5511987654321"),
        "wamid.2",
        Content::text("Any news?"),
    );
    let o = run(engine.ingest(&t, next)).expect("ingest after reopen");
    assert_eq!(o.customer, customer);
    assert_eq!(o.conversation, before.timeline[0].conversation);
    let all = run(engine.store().events_after(&t, 0, 1000)).expect("events");
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=all.len() as u64).collect::<Vec<_>>());
    assert!(all.len() > events_before.len());
    let mut stream = engine.subscribe(&t, events_before.len() as u64);
    let first_new = run(stream.next()).expect("stream item").expect("event");
    assert_eq!(first_new.seq, events_before.len() as u64 + 1);
}

// ---------------------------------------------------------------------------------------------
// Crash safety: a child process ingests until it is killed with SIGKILL

const CHILD_ENV: &str = "TOUCHPOINT_SQLITE_CRASH_CHILD";
const CRASH_PEOPLE: u64 = 12;

/// The sender of crash-test message `n`: 12 people, a third each on WhatsApp, SMS and email.
fn crash_sender(person: u64) -> (ChannelKind, EndpointId, Address, NormalizedAddress) {
    match person % 3 {
        0 => {
            let e164 = format!("+4915100000{person:03}");
            let address = NormalizedAddress { kind: AddressKind::Phone, value: e164.clone() };
            (ChannelKind::WhatsApp, endpoint("wa-main"), Address::phone(e164), address)
        }
        1 => {
            let e164 = format!("+4915100000{person:03}");
            let address = NormalizedAddress { kind: AddressKind::Phone, value: e164.clone() };
            (ChannelKind::Sms, endpoint("sms-main"), Address::phone(e164), address)
        }
        _ => {
            let email = format!("person.{person}@example.org");
            let address = NormalizedAddress { kind: AddressKind::Email, value: email.clone() };
            (ChannelKind::Email, endpoint("support-inbox"), Address::email(email), address)
        }
    }
}

fn crash_person(external_id: &str) -> u64 {
    external_id.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))) % CRASH_PEOPLE
}

fn crash_message(external_id: &str) -> InboundMessage {
    let (channel, ep, address, _) = crash_sender(crash_person(external_id));
    InboundMessage::new(channel, ep, address, external_id, Content::text(format!("message {external_id}")))
}

/// Not a test on its own: the body of the child process of
/// `acknowledged_ingests_survive_sigkill`, selected by an environment variable (it returns at
/// once in a normal test run). It ingests new messages, and retries of the previous round's
/// messages, 32 at a time, and prints `ACK <external id>` only after an ingest returned `Ok`.
#[test]
fn crash_child_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let (round, path) = spec.split_once('|').expect("round|path");
    let round: u64 = round.parse().expect("round");
    let engine = Engine::builder(Arc::new(SqliteStore::open(path).expect("child open"))).build();
    let t = tenant("crash");
    let started = Instant::now();
    let mut n = 0u64;
    let mut out = std::io::stdout().lock();
    run(async {
        let mut in_flight = futures::stream::FuturesUnordered::new();
        while started.elapsed() < std::time::Duration::from_secs(20) {
            while in_flight.len() < 32 {
                // Every fourth message retries one of the previous round (acknowledged or not).
                let id =
                    if n % 4 == 3 && round > 0 { format!("r{}-{}", round - 1, n / 4) } else { format!("r{round}-{n}") };
                n += 1;
                let engine = &engine;
                let t = &t;
                in_flight.push(async move { (engine.ingest(t, crash_message(&id)).await, id) });
            }
            if let Some((result, id)) = in_flight.next().await {
                result.expect("child ingest");
                writeln!(out, "ACK {id}").expect("stdout");
                out.flush().expect("flush");
            }
        }
    });
}

/// What the parent sees of one child: the acknowledged ids and those it may have tried.
fn read_acks(stdout: std::process::ChildStdout, acks: std::sync::mpsc::Sender<String>) {
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            // A line cut off by the kill has no newline: it was not acknowledged.
            Ok(_) if line.ends_with('\n') => {
                if let Some(id) = line.trim_end().strip_prefix("ACK ") {
                    let _ = acks.send(id.to_owned());
                }
            }
            Ok(_) => return,
        }
    }
}

/// Every message in the store for the crash tenant, found through the people's identities.
fn crash_inventory(store: &SqliteStore) -> (Vec<Message>, u64, usize) {
    let t = tenant("crash");
    run(async {
        let mut messages = Vec::new();
        let mut counted = 0u64;
        for person in 0..CRASH_PEOPLE {
            let (channel, _, _, address) = crash_sender(person);
            let Some(identity) = store.identity_by_address(&t, &channel, &address).await.expect("identity") else {
                continue;
            };
            let mut before = None;
            loop {
                let page = store
                    .messages(
                        &t,
                        &MessageQuery { scope: MessageScope::Customer(identity.customer), before, limit: 500 },
                    )
                    .await
                    .expect("messages");
                if page.is_empty() {
                    break;
                }
                before = page.last().map(|m| m.id);
                messages.extend(page);
            }
            for c in store.conversations_of(&t, identity.customer).await.expect("conversations") {
                counted += u64::from(c.message_count);
            }
        }
        let mut received = 0;
        let mut after = 0;
        loop {
            let events = store.events_after(&t, after, 1000).await.expect("events");
            let Some(last) = events.last() else { break };
            after = last.seq;
            received += events.iter().filter(|e| matches!(e.event, Event::MessageReceived { .. })).count();
        }
        (messages, counted, received)
    })
}

#[test]
fn acknowledged_ingests_survive_sigkill() {
    const ROUNDS: u64 = 20;
    let dir = TempDir::new("crash");
    let db = dir.db();
    let exe = std::env::current_exe().expect("test binary");
    let seed = uuid::Uuid::new_v4().as_u64_pair().0;
    eprintln!("crash test seed {seed:#x}");
    let mut rng = Rng(seed);
    let mut acknowledged: HashSet<String> = HashSet::new();
    let started = Instant::now();
    let mut killed_mid_stream = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child_process", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{round}|{}", db.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("child stdout");
        let reader = std::thread::spawn(move || read_acks(stdout, tx));
        let mut acks = Vec::new();
        if round % 2 == 0 {
            // Kill at a random moment after the child started acknowledging.
            let first = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("the child acknowledged nothing");
            acks.push(first);
            std::thread::sleep(std::time::Duration::from_millis(rng.below(200)));
        } else {
            // Kill at a random moment from the start (maybe while it opens the database).
            std::thread::sleep(std::time::Duration::from_millis(rng.below(300)));
        }
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert!(!status.success(), "the child must have been killed, not have finished");
        reader.join().expect("reader thread");
        acks.extend(rx.try_iter());
        if !acks.is_empty() {
            killed_mid_stream += 1;
        }
        acknowledged.extend(acks);

        let store = SqliteStore::open(&db).expect("reopen after SIGKILL");
        run(store.integrity_check()).expect("integrity after SIGKILL");
        let (messages, counted, received) = crash_inventory(&store);
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for m in &messages {
            *seen.entry(m.external_id.as_deref().expect("inbound has a provider id")).or_default() += 1;
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "round {round}: messages stored twice: {twice:?}");
        let lost: Vec<_> = acknowledged.iter().filter(|id| !seen.contains_key(id.as_str())).collect();
        assert!(lost.is_empty(), "round {round}: acknowledged but lost: {lost:?}");
        assert_eq!(counted, messages.len() as u64, "round {round}: conversation counters match the messages");
        assert_eq!(received, messages.len(), "round {round}: one MessageReceived event per message");
    }
    eprintln!(
        "crash test: {ROUNDS} kills ({killed_mid_stream} mid-stream), {} acknowledged messages, {:.1} s",
        acknowledged.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(killed_mid_stream >= ROUNDS / 2, "most kills must hit a child that was ingesting");
    assert!(acknowledged.len() > 100, "the children acknowledged too little to prove anything");
}

// ---------------------------------------------------------------------------------------------
// Concurrency and group commit

#[test]
fn threads_ingesting_overlapping_customers_lose_and_duplicate_nothing() {
    const THREADS: u64 = 4;
    const DISTINCT: u64 = 1_600;
    const REPEATS: u64 = 200;
    const PEOPLE: u64 = 30;
    let dir = TempDir::new("concurrency");
    let store = SqliteStore::open(dir.db()).expect("open");
    let engine = Engine::builder(Arc::new(store.clone())).build();
    let t = tenant("busy");
    let person_of = |i: u64| (i * 7919) % PEOPLE;
    let message = |i: u64| {
        let (channel, ep, address, _) = crash_sender(person_of(i));
        InboundMessage::new(channel, ep, address, format!("m-{i}"), Content::text(format!("message {i}")))
    };
    // Message i goes to thread i % THREADS; a repeat of it goes to another thread.
    let mut plans: Vec<Vec<u64>> = vec![Vec::new(); THREADS as usize];
    for i in 0..DISTINCT {
        plans[(i % THREADS) as usize].push(i);
    }
    let mut rng = Rng(0x5eed);
    for _ in 0..REPEATS {
        let i = rng.below(DISTINCT);
        let other = (i % THREADS + 1 + rng.below(THREADS - 1)) % THREADS;
        let plan = &mut plans[other as usize];
        let at = ((i / THREADS) as usize).min(plan.len());
        plan.insert(at, i);
    }
    let outcomes: Vec<(u64, touchpoint::IngestOutcome)> = std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .iter()
            .map(|plan| {
                let engine = &engine;
                let t = &t;
                s.spawn(move || {
                    let mut out = Vec::new();
                    for wave in plan.chunks(16) {
                        let results = run(join_all(
                            wave.iter()
                                .map(|&i| async move { (i, engine.ingest(t, message(i)).await.expect("ingest")) }),
                        ));
                        out.extend(results);
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("thread")).collect()
    });
    assert_eq!(outcomes.len() as u64, DISTINCT + REPEATS);
    let fresh: Vec<_> = outcomes.iter().filter(|(_, o)| !o.duplicate).collect();
    assert_eq!(fresh.len() as u64, DISTINCT, "exactly one delivery of each message is not a duplicate");
    let mut by_id: HashMap<u64, touchpoint::model::MessageId> = HashMap::new();
    for (i, o) in &outcomes {
        let first = *by_id.entry(*i).or_insert(o.message);
        assert_eq!(first, o.message, "every delivery of message {i} reports the same stored message");
    }

    let mut customers: HashMap<u64, CustomerId> = HashMap::new();
    for (i, o) in &outcomes {
        let c = *customers.entry(person_of(*i)).or_insert(o.customer);
        assert_eq!(c, o.customer, "one customer per person");
    }
    assert_eq!(customers.len() as u64, PEOPLE);
    let mut total = 0;
    for (person, customer) in &customers {
        let timeline =
            run(store
                .messages(&t, &MessageQuery { scope: MessageScope::Customer(*customer), before: None, limit: 10_000 }))
            .expect("timeline");
        let expected = (0..DISTINCT).filter(|i| person_of(*i) == *person).count();
        let distinct: HashSet<_> = timeline.iter().map(|m| m.external_id.clone()).collect();
        assert_eq!(timeline.len(), expected, "person {person}: every message once");
        assert_eq!(distinct.len(), expected, "person {person}: no message twice");
        let counted: u32 =
            run(store.conversations_of(&t, *customer)).expect("conversations").iter().map(|c| c.message_count).sum();
        assert_eq!(counted as usize, expected, "person {person}: conversation counters");
        total += timeline.len();
    }
    assert_eq!(total as u64, DISTINCT);
    let events = run(store.events_after(&t, 0, 100_000)).expect("events");
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=events.len() as u64).collect::<Vec<_>>());
    let received = events.iter().filter(|e| matches!(e.event, Event::MessageReceived { .. })).count();
    assert_eq!(received as u64, DISTINCT, "one MessageReceived event per stored message");
    assert!(events.windows(2).all(|w| w[0].id < w[1].id), "event ids increase in commit order");
}

#[test]
fn a_conflicting_change_set_rolls_back_alone_inside_a_batch() {
    // 100 inserts in flight at once, each customer inserted twice: every pair must give one
    // `Applied` and one conflict, and the losers leave nothing behind (not even their events).
    let dir = TempDir::new("batch");
    let store = SqliteStore::open(dir.db()).expect("open");
    let t = tenant("batch");
    let customers: Vec<Customer> = (0..50).map(|_| sample_customer(&t)).collect();
    let change = |c: &Customer, tag: &str| {
        let conversation = sample_conversation(c);
        let message = sample_message(&conversation, &format!("{tag}-{}", c.id), "hello");
        ChangeSet {
            customers: vec![Write::insert(c.clone())],
            conversations: vec![Write::insert(conversation.clone())],
            messages: vec![Write::insert(message)],
            events: vec![Event::CustomerCreated { customer: c.id }],
            at: Utc::now(),
            ..ChangeSet::default()
        }
    };
    let changes: Vec<ChangeSet> = customers.iter().flat_map(|c| [change(c, "a"), change(c, "b")]).collect();
    let results = run(join_all(changes.into_iter().map(|cs| store.commit(&t, cs))));
    for (c, pair) in customers.iter().zip(results.chunks(2)) {
        let applied = pair.iter().filter(|r| matches!(r, Ok(Committed::Applied { .. }))).count();
        let conflicts = pair.iter().filter(|r| matches!(r, Err(Error::Conflict(_)))).count();
        assert_eq!((applied, conflicts), (1, 1), "customer {}: {pair:?}", c.id);
        let winner = if pair[0].is_ok() { "a" } else { "b" };
        let loser = if winner == "a" { "b" } else { "a" };
        let found = |tag: &str| {
            run(store.message_by_external_id(&t, &ChannelKind::Sms, &format!("{tag}-{}", c.id))).expect("read")
        };
        assert!(found(winner).is_some());
        assert!(found(loser).is_none(), "the losing change set left its message behind");
        assert_eq!(run(store.conversations_of(&t, c.id)).expect("read").len(), 1);
    }
    let events = run(store.events_after(&t, 0, 1000)).expect("events");
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=50).collect::<Vec<u64>>());
    let mut firsts: Vec<u64> = results
        .iter()
        .filter_map(|r| match r {
            Ok(Committed::Applied { first_event_seq }) => Some(*first_event_seq),
            _ => None,
        })
        .collect();
    firsts.sort();
    assert_eq!(firsts, (1..=50).collect::<Vec<u64>>(), "each applied change set got its own event number");
}

/// A stale version or a taken id is refused with the very error the in-memory store gives, and
/// leaves nothing behind, whether it is found before the change set's first write (a stale
/// conversation) or after it (a stale identity, a taken message id, behind a current
/// conversation update).
#[test]
fn a_stale_version_is_refused_as_precisely_as_in_memory_wherever_the_writes_find_it() {
    let dir = TempDir::new("stale");
    let t = tenant("stale");
    let c = sample_customer(&t);
    let identity =
        sample_identity(&c, ChannelKind::Sms, AddressKind::Phone, "+447700900123", Verification::CarrierAsserted);
    let conversation = sample_conversation(&c);
    let first = sample_message(&conversation, "SM-1", "hello");
    let setup = ChangeSet {
        customers: vec![Write::insert(c.clone())],
        identities: vec![Write::insert(identity.clone())],
        conversations: vec![Write::insert(conversation.clone())],
        messages: vec![Write::insert(first.clone())],
        at: Utc::now(),
        ..ChangeSet::default()
    };
    // Each change set rewrites the conversation (current version 0) and maybe the identity.
    let bumped = |identity_expected: Option<u64>, conversation_expected: u64, message: Option<Message>| {
        let mut conv = conversation.clone();
        conv.version = conversation_expected + 1;
        let mut ident = identity.clone();
        ident.version = identity_expected.map_or(0, |v| v + 1);
        ChangeSet {
            identities: identity_expected.map(|v| Write::update(ident, v)).into_iter().collect(),
            conversations: vec![Write::update(conv, conversation_expected)],
            messages: message.map(Write::insert).into_iter().collect(),
            events: vec![Event::ConversationReopened { conversation: conversation.id }],
            at: Utc::now(),
            ..ChangeSet::default()
        }
    };
    let refused = [
        bumped(Some(0), 3, None),
        bumped(Some(7), 0, None),
        bumped(Some(0), 0, Some(first.clone())),
        bumped(None, 0, Some(sample_message(&conversation, "SM-1", "the same provider id"))),
    ];
    let sqlite = SqliteStore::open(dir.db()).expect("open");
    let memory = InMemoryStore::new();
    for store in [&sqlite as &dyn Store, &memory] {
        run(store.commit(&t, setup.clone())).expect("setup");
    }
    for changes in refused {
        let want = run(memory.commit(&t, changes.clone())).expect_err("the in-memory store refuses");
        let got = run(sqlite.commit(&t, changes)).expect_err("the SQLite store refuses");
        assert!(matches!(got, Error::Conflict(_)), "{got:?}");
        assert_eq!(got.to_string(), want.to_string());
        let stored_conversation = run(sqlite.conversation(&t, conversation.id)).expect("read").expect("stored");
        let stored_identity = run(sqlite.identity(&t, identity.id)).expect("read").expect("stored");
        assert_eq!((stored_conversation.version, stored_identity.version), (0, 0), "nothing written");
        assert!(run(sqlite.events_after(&t, 0, 10)).expect("events").is_empty(), "no event written");
    }
}

/// Two stores on one file (as two processes would have): each writer judges versions and
/// owners by what is stored now, not by what it saw when it last wrote — a version bumped,
/// a conversation moved or a customer erased through the other store is seen at once.
#[test]
fn a_second_store_on_the_same_file_sees_the_versions_the_first_one_wrote() {
    let dir = TempDir::new("two-writers");
    let (a, b) = (SqliteStore::open(dir.db()).expect("open a"), SqliteStore::open(dir.db()).expect("open b"));
    let t = tenant("two");
    let customer = sample_customer(&t);
    let conversation = sample_conversation(&customer);
    let at = Utc::now();
    let insert = ChangeSet {
        customers: vec![Write::insert(customer.clone())],
        conversations: vec![Write::insert(conversation.clone())],
        at,
        ..ChangeSet::default()
    };
    // `b` writes (and so knows) version 0 of both records.
    assert!(matches!(run(b.commit(&t, insert)), Ok(Committed::Applied { .. })));
    // `a` moves both to version 1.
    let bump = |c: &Customer, v: &Conversation, from: u64| {
        let (mut c, mut v) = (c.clone(), v.clone());
        c.version = from + 1;
        v.version = from + 1;
        ChangeSet {
            customers: vec![Write::update(c, from)],
            conversations: vec![Write::update(v, from)],
            at,
            ..ChangeSet::default()
        }
    };
    assert!(matches!(run(a.commit(&t, bump(&customer, &conversation, 0))), Ok(Committed::Applied { .. })));
    // `b` must now refuse an update from version 0 and accept one from version 1.
    assert!(matches!(run(b.commit(&t, bump(&customer, &conversation, 0))), Err(Error::Conflict(_))));
    assert!(matches!(run(b.commit(&t, bump(&customer, &conversation, 1))), Ok(Committed::Applied { .. })));
    // `a` erases the customer: `b` must refuse a message for its conversation.
    let mut erased = customer.clone();
    erased.version = 3;
    erased.state = CustomerState::Erased { at };
    let erase = ChangeSet { customers: vec![Write::update(erased, 2)], at, ..ChangeSet::default() };
    assert!(matches!(run(a.commit(&t, erase)), Ok(Committed::Applied { .. })));
    let message = sample_message(&conversation, "after-erasure", "hello");
    let late = ChangeSet { messages: vec![Write::insert(message)], at, ..ChangeSet::default() };
    assert!(matches!(run(b.commit(&t, late)), Err(Error::Conflict(_))), "a message for an erased customer");
    assert!(run(a.message_by_external_id(&t, &ChannelKind::Sms, "after-erasure")).expect("read").is_none());
}

// ---------------------------------------------------------------------------------------------
// Schema, options, bad input

#[test]
fn a_new_database_is_at_the_current_schema_version_and_reopens_without_migrating_again() {
    let dir = TempDir::new("schema");
    let store = SqliteStore::open(dir.db()).expect("open");
    assert_eq!(run(store.schema_version()).expect("version"), SqliteStore::SCHEMA_VERSION);
    let t = tenant("acme");
    let c = sample_customer(&t);
    run(store.commit(&t, ChangeSet { customers: vec![Write::insert(c.clone())], ..ChangeSet::default() }))
        .expect("commit");
    drop(store);
    let store = SqliteStore::open(dir.db()).expect("reopen");
    assert_eq!(run(store.schema_version()).expect("version"), SqliteStore::SCHEMA_VERSION);
    assert_eq!(run(store.customer(&t, c.id)).expect("read"), Some(c));
}

#[test]
fn a_database_from_a_newer_build_is_refused_and_left_alone() {
    let dir = TempDir::new("newer");
    drop(SqliteStore::open(dir.db()).expect("create"));
    let newer = i64::from(SqliteStore::SCHEMA_VERSION) + 1;
    let conn = rusqlite::Connection::open(dir.db()).expect("raw open");
    conn.pragma_update(None, "user_version", newer).expect("set version");
    drop(conn);
    let err = SqliteStore::open(dir.db()).expect_err("a newer schema must be refused");
    assert!(matches!(&err, Error::Backend { temporary: false, .. }), "{err:?}");
    assert!(err.to_string().contains("newer"), "the error says why: {err}");
    let conn = rusqlite::Connection::open(dir.db()).expect("raw open");
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).expect("version");
    assert_eq!(version, newer, "the refused file is unchanged");
}

#[test]
fn a_database_of_another_application_is_refused() {
    let dir = TempDir::new("foreign");
    let conn = rusqlite::Connection::open(dir.db()).expect("raw open");
    conn.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL);").expect("create");
    drop(conn);
    let err = SqliteStore::open(dir.db()).expect_err("a foreign database must be refused");
    assert!(matches!(err, Error::Backend { temporary: false, .. }), "{err:?}");
    let conn = rusqlite::Connection::open(dir.db()).expect("raw open");
    let tables: i64 =
        conn.query_row("SELECT count(*) FROM sqlite_schema WHERE type = 'table'", [], |r| r.get(0)).expect("count");
    assert_eq!(tables, 1, "nothing was added to the foreign database");
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).expect("journal mode");
    assert_eq!(mode, "delete", "the refused file keeps its journal mode (no switch to WAL)");
}

#[test]
fn a_versioned_database_without_touchpoints_mark_is_refused_and_left_alone() {
    let dir = TempDir::new("versioned");
    let conn = rusqlite::Connection::open(dir.db()).expect("raw open");
    conn.pragma_update(None, "user_version", 1).expect("set version");
    drop(conn);
    let err = SqliteStore::open(dir.db()).expect_err("someone else's schema version must be refused");
    assert!(matches!(&err, Error::Backend { temporary: false, .. }), "{err:?}");
    assert!(err.to_string().contains("not a touchpoint store"), "the error says why: {err}");
    let conn = rusqlite::Connection::open(dir.db()).expect("raw open");
    let application_id: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0)).expect("id");
    assert_eq!(application_id, 0, "the refused file is not marked as touchpoint's");
}

#[test]
fn bad_options_and_paths_are_invalid_input() {
    let dir = TempDir::new("options");
    for options in [
        SqliteOptions::default().with_max_batch(0),
        SqliteOptions::default().with_max_batch(1_000_000),
        SqliteOptions::default().with_readers(1_000),
        // "Wait for ever" is more than SQLite takes; refused rather than a panic in rusqlite.
        SqliteOptions::default().with_busy_timeout(std::time::Duration::MAX),
    ] {
        let err = SqliteStore::open_with(dir.db(), options.clone()).expect_err("bad options");
        assert!(matches!(err, Error::InvalidInput { .. }), "{options:?}: {err:?}");
    }
    assert!(!dir.db().exists(), "refused options create no file");
    // A SQLite URI would open what its query says (`mode=memory`: gone on close), not a file.
    for path in ["", ":memory:", "file::memory:", "file:tp-uri.db?mode=memory"] {
        let err = SqliteStore::open(path).expect_err("no file");
        assert!(matches!(err, Error::InvalidInput { field: "path", .. }), "{path:?}: {err:?}");
    }
    let missing = dir.0.join("no-such-dir").join("x.db");
    let err = SqliteStore::open(&missing).expect_err("missing directory");
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
}

/// A database of another application is refused whatever its schema holds (here only a view),
/// and left as it was.
#[test]
fn a_database_of_another_application_holding_only_views_is_refused_and_left_alone() {
    let dir = TempDir::new("foreign-view");
    let conn = rusqlite::Connection::open(dir.db()).expect("raw open");
    conn.execute_batch("CREATE VIEW settings AS SELECT 'dark' AS theme;").expect("create");
    drop(conn);
    let err = SqliteStore::open(dir.db()).err();
    let conn = rusqlite::Connection::open(dir.db()).expect("raw open");
    let objects: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0)).expect("count");
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).expect("journal mode");
    assert!(matches!(err, Some(Error::Backend { temporary: false, .. })), "{err:?}");
    assert_eq!((objects, mode.as_str()), (1, "delete"), "nothing was added to the foreign database");
}

#[test]
fn locations_round_trip_exactly_and_non_finite_ones_are_refused() {
    let store = SqliteStore::open_in_memory().expect("open");
    let t = tenant("geo");
    let c = sample_customer(&t);
    let conversation = sample_conversation(&c);
    run(store.commit(
        &t,
        ChangeSet {
            customers: vec![Write::insert(c.clone())],
            conversations: vec![Write::insert(conversation.clone())],
            ..ChangeSet::default()
        },
    ))
    .expect("setup");
    let mut rng = Rng(11);
    let mut messages = Vec::new();
    for i in 0..200 {
        let mut m = sample_message(&conversation, &format!("loc-{i}"), "x");
        let unit = |r: &mut Rng| (r.next() >> 11) as f64 / (1u64 << 53) as f64;
        m.content = Content::Location {
            latitude: unit(&mut rng) * 180.0 - 90.0,
            longitude: unit(&mut rng) * 360.0 - 180.0,
            name: None,
            address: None,
        };
        messages.push(m);
    }
    run(store.commit(
        &t,
        ChangeSet { messages: messages.iter().cloned().map(Write::insert).collect(), ..ChangeSet::default() },
    ))
    .expect("insert");
    for m in &messages {
        assert_eq!(run(store.message(&t, m.id)).expect("read").as_ref(), Some(m), "stored bit for bit");
    }
    let mut bad = sample_message(&conversation, "loc-nan", "x");
    bad.content = Content::Location { latitude: f64::NAN, longitude: 0.0, name: None, address: None };
    let err = run(store.commit(&t, ChangeSet { messages: vec![Write::insert(bad.clone())], ..ChangeSet::default() }));
    assert!(matches!(err, Err(Error::InvalidInput { field: "content.latitude", .. })), "{err:?}");
    assert_eq!(run(store.message(&t, bad.id)).expect("read"), None);
}

// ---------------------------------------------------------------------------------------------
// Erasure

fn file_contains(path: &Path, needle: &[u8]) -> bool {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn an_erased_customer_leaves_no_personal_data_in_the_database_file() {
    let dir = TempDir::new("erasure");
    let t = tenant("acme-shop");
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()));
    let secrets: [&[u8]; 4] = [b"Ana Souza", b"broken lamp", b"5511987654321", b"ana.souza@example.com"];
    {
        let engine = story_engine(SqliteStore::open(dir.db()).expect("open"), clock.clone());
        // Without linked identities the three contacts are three customers: erase them all.
        let mut customers = Vec::new();
        for m in story_messages() {
            clock.advance(Duration::minutes(1));
            let o = run(engine.ingest(&t, m)).expect("ingest");
            run(engine.record_outbound(
                &t,
                o.conversation,
                OutboundMessage::agent(AgentId::new("agent.bruno").unwrap(), Content::text("About the broken lamp")),
            ))
            .expect("reply");
            customers.push(o.customer);
        }
        run(engine.ingest(&t, bruno_keeps_his_data())).expect("other customer");
        for c in customers {
            run(engine.erase_customer(&t, c)).expect("erase");
        }
    }
    // The probe searches every file of the database (the main file and, if the store's closing
    // checkpoint has not removed it yet, the WAL), exactly as the secrets are searched below.
    let on_disk = |needle: &[u8]| {
        std::fs::read_dir(&dir.0).expect("dir").filter_map(|e| e.ok()).any(|e| file_contains(&e.path(), needle))
    };
    assert!(on_disk(b"Bruno keeps his data"), "the probe finds data that is still there");
    for secret in secrets {
        let hit = std::fs::read_dir(&dir.0)
            .expect("dir")
            .filter_map(|e| e.ok())
            .find(|e| file_contains(&e.path(), secret))
            .map(|e| e.path());
        assert_eq!(hit, None, "{:?} is still on disk", String::from_utf8_lossy(secret));
    }
}

// ---------------------------------------------------------------------------------------------
// Same semantics as the in-memory store: random change sets against both, step by step

/// Random change sets over a small universe of ids, addresses and keys, so that inserts,
/// stale versions, taken keys, moves, deletes, inactive owners, duplicates and thread-key races
/// all happen often.
struct Universe {
    rng: Rng,
    tenant: TenantId,
    other: TenantId,
    customers: Vec<CustomerId>,
    identities: Vec<(IdentityId, ChannelKind, NormalizedAddress)>,
    conversations: Vec<ConversationId>,
    /// A message keeps its conversation, channel and provider id (keys never change; several
    /// messages share a provider id, so inserts compete for it).
    messages: Vec<(MessageId, usize, ChannelKind, String)>,
    step: i64,
}

const CHANNELS: [ChannelKind; 3] = [ChannelKind::Sms, ChannelKind::WhatsApp, ChannelKind::Email];

impl Universe {
    fn new(seed: u64) -> Universe {
        let mut rng = Rng(seed);
        let addresses = [
            NormalizedAddress { kind: AddressKind::Phone, value: "+14155550100".into() },
            NormalizedAddress { kind: AddressKind::Phone, value: "+14155550101".into() },
            NormalizedAddress { kind: AddressKind::Email, value: "ana@example.com".into() },
            NormalizedAddress { kind: AddressKind::Platform, value: "widget:visitor-1".into() },
        ];
        let identities = (0..8)
            .map(|_| {
                let channel = CHANNELS[rng.below(3) as usize].clone();
                let address = addresses[rng.below(4) as usize].clone();
                (IdentityId(uuid::Uuid::now_v7()), channel, address)
            })
            .collect();
        Universe {
            tenant: tenant("diff-a"),
            other: tenant("diff-b"),
            customers: (0..4).map(|_| CustomerId(uuid::Uuid::now_v7())).collect(),
            identities,
            conversations: (0..4).map(|_| ConversationId(uuid::Uuid::now_v7())).collect(),
            messages: (0..10)
                .map(|i| {
                    let channel = CHANNELS[i % 2].clone();
                    (MessageId(uuid::Uuid::now_v7()), i % 4, channel, format!("SM-{}", i % 6))
                })
                .collect(),
            rng,
            step: 0,
        }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.below(items.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.rng.below(100) < percent
    }

    fn at(&self, minutes: i64) -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap() + Duration::minutes(minutes)
    }

    /// Insert (mostly when absent) or update at the stored version (mostly).
    fn expected(&mut self, stored: Option<u64>) -> Option<u64> {
        match stored {
            Some(v) if self.chance(92) => Some(v),
            Some(v) if self.chance(50) => Some(v + 1),
            Some(_) => None,
            None if self.chance(92) => None,
            None => Some(0),
        }
    }

    fn change_set(&mut self, reference: &InMemoryStore) -> (TenantId, ChangeSet) {
        self.step += 1;
        let t = self.tenant.clone();
        let mut cs = ChangeSet { at: self.at(self.step), ..ChangeSet::default() };
        for _ in 0..self.rng.below(3) {
            let id = *self.pick(&self.customers.clone());
            let stored = run(reference.customer(&t, id)).unwrap();
            let expected = self.expected(stored.as_ref().map(|c| c.version));
            let mut c = Customer::new(id, t.clone(), self.at(0));
            c.external_id = match self.rng.below(8) {
                0 => Some("user-1".into()),
                1 => Some("user-2".into()),
                _ => None,
            };
            c.name = Some(format!("name {}", self.step));
            c.state = match self.rng.below(30) {
                0 => CustomerState::Erased { at: self.at(self.step) },
                1 => CustomerState::Merged { into: *self.pick(&self.customers.clone()), at: self.at(self.step) },
                _ => CustomerState::Active,
            };
            c.version = expected.map_or(0, |v| v + 1);
            cs.customers.push(Write { record: c, expected });
        }
        for _ in 0..self.rng.below(3) {
            let (id, mut channel, mut address) = self.pick(&self.identities.clone()).clone();
            let stored = run(reference.identity(&t, id)).unwrap();
            // An identity's address never changes: trying it is invalid input. (A new identity
            // always uses its own address: both stores key it by its first insert.)
            if stored.is_some() && self.chance(5) {
                channel = CHANNELS[self.rng.below(3) as usize].clone();
                address.value.push('9');
            }
            let expected = self.expected(stored.as_ref().map(|i| i.version));
            let customer = *self.pick(&self.customers.clone());
            let verification = match self.rng.below(3) {
                0 => Verification::Unverified,
                1 => Verification::CarrierAsserted,
                _ => Verification::Verified,
            };
            let identity = Identity {
                id,
                tenant: t.clone(),
                customer,
                channel,
                raw_address: address.value.clone(),
                address,
                verification,
                display_name: Some(format!("step {}", self.step)),
                endpoints: Vec::new(),
                first_seen: self.at(0),
                last_seen: self.at(self.step),
                version: expected.map_or(0, |v| v + 1),
            };
            cs.identities.push(Write { record: identity, expected });
        }
        if self.chance(15) {
            let (id, ..) = self.pick(&self.identities.clone()).clone();
            let stored = run(reference.identity(&t, id)).unwrap().map(|i| i.version);
            let version = match stored {
                Some(v) if self.chance(85) => v,
                _ => self.rng.below(3),
            };
            cs.identity_deletes.push((id, version));
        }
        for _ in 0..self.rng.below(3) {
            let id = *self.pick(&self.conversations.clone());
            let stored = run(reference.conversation(&t, id)).unwrap();
            let expected = self.expected(stored.as_ref().map(|c| c.version));
            let owner = Customer::new(*self.pick(&self.customers.clone()), t.clone(), self.at(0));
            let mut c = sample_conversation(&owner);
            c.id = id;
            let minutes = self.rng.below(5) as i64;
            c.last_activity_at = self.at(minutes);
            c.message_count = self.step as u32;
            c.version = expected.map_or(0, |v| v + 1);
            cs.conversations.push(Write { record: c, expected });
        }
        if self.chance(6) {
            cs.conversation_deletes.push(*self.pick(&self.conversations.clone()));
        }
        for _ in 0..self.rng.below(4) {
            let (id, home, channel, external) = self.pick(&self.messages.clone()).clone();
            let stored = run(reference.message(&t, id)).unwrap();
            let expected = self.expected(stored.as_ref().map(|m| m.version));
            let owner = Customer::new(self.customers[0], t.clone(), self.at(0));
            let mut conversation = sample_conversation(&owner);
            conversation.id = self.conversations[home];
            let mut m = sample_message(&conversation, &external, &format!("text {}", self.step));
            m.id = id;
            m.channel = channel;
            m.version = expected.map_or(0, |v| v + 1);
            cs.messages.push(Write { record: m, expected });
        }
        for _ in 0..self.rng.below(3) {
            let key = match self.rng.below(3) {
                0 => touchpoint::store::ThreadKey::ReplyToken(format!("token-{}", self.rng.below(3))),
                1 => touchpoint::store::ThreadKey::EmailMessageId(format!("m{}@example.com", self.rng.below(3))),
                _ => touchpoint::store::ThreadKey::ProviderThread(ChannelKind::WhatsApp, "thread-1".into()),
            };
            let conversation = *self.pick(&self.conversations.clone());
            let replaces = if self.chance(40) { Some(*self.pick(&self.conversations.clone())) } else { None };
            cs.thread_keys.push(touchpoint::store::ThreadKeyClaim { key, conversation, replaces });
        }
        if self.chance(25) {
            let channel = CHANNELS[self.rng.below(2) as usize].clone();
            cs.dedupe =
                Some(touchpoint::store::DedupeKey { channel, external_id: format!("SM-{}", self.rng.below(6)) });
        }
        for _ in 0..self.rng.below(3) {
            cs.events.push(Event::CustomerUpdated { customer: *self.pick(&self.customers.clone()) });
        }
        let target = if self.chance(3) { self.other.clone() } else { t };
        (target, cs)
    }

    /// Everything the store can tell about the universe, as text.
    fn snapshot(&self, store: &dyn Store) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        run(async {
            for t in [&self.tenant, &self.other] {
                for id in &self.customers {
                    let _ = writeln!(out, "customer {:?}", store.customer(t, *id).await.unwrap());
                    let _ = writeln!(out, "identities_of {:?}", store.identities_of(t, *id).await.unwrap());
                    let _ = writeln!(out, "conversations_of {:?}", store.conversations_of(t, *id).await.unwrap());
                    let mut before = None;
                    loop {
                        let q = MessageQuery { scope: MessageScope::Customer(*id), before, limit: 3 };
                        let page = store.messages(t, &q).await.unwrap();
                        let _ = writeln!(out, "timeline page {:?}", page.iter().map(|m| m.id).collect::<Vec<_>>());
                        let Some(last) = page.last() else { break };
                        before = Some(last.id);
                    }
                }
                for x in ["user-1", "user-2"] {
                    let _ = writeln!(out, "external {x} {:?}", store.customer_by_external_id(t, x).await.unwrap());
                }
                for (id, channel, address) in &self.identities {
                    let _ = writeln!(out, "identity {:?}", store.identity(t, *id).await.unwrap());
                    let by_address = store.identity_by_address(t, channel, address).await.unwrap();
                    let _ = writeln!(out, "by address {:?}", by_address.map(|i| i.id));
                    let holders = store.customers_by_address(t, &touchpoint::store::LinkKey(address.clone())).await;
                    let _ = writeln!(out, "holders {:?}", holders.unwrap());
                }
                for id in &self.conversations {
                    let _ = writeln!(out, "conversation {:?}", store.conversation(t, *id).await.unwrap());
                    let q = MessageQuery { scope: MessageScope::Conversation(*id), before: None, limit: 100 };
                    let ids: Vec<_> = store.messages(t, &q).await.unwrap().iter().map(|m| m.id).collect();
                    let _ = writeln!(out, "messages {ids:?}");
                }
                for (id, ..) in &self.messages {
                    let _ = writeln!(out, "message {:?}", store.message(t, *id).await.unwrap());
                }
                for channel in &CHANNELS {
                    for n in 0..6 {
                        let m = store.message_by_external_id(t, channel, &format!("SM-{n}")).await.unwrap();
                        let _ = writeln!(out, "by provider id {channel} {n} {:?}", m.map(|m| m.id));
                    }
                }
                for n in 0..3 {
                    for key in [
                        touchpoint::store::ThreadKey::ReplyToken(format!("token-{n}")),
                        touchpoint::store::ThreadKey::EmailMessageId(format!("m{n}@example.com")),
                        touchpoint::store::ThreadKey::ProviderThread(ChannelKind::WhatsApp, "thread-1".into()),
                    ] {
                        let holder = store.conversation_by_thread_key(t, &key).await.unwrap();
                        let _ = writeln!(out, "thread key {key:?} {holder:?}");
                    }
                }
                let events = store.events_after(t, 0, 100_000).await.unwrap();
                let events: Vec<_> = events.iter().map(|e| (e.seq, &e.tenant, e.at, &e.event)).collect();
                let _ = writeln!(out, "events {events:?}");
            }
        });
        out
    }
}

fn outcome_kind(r: &touchpoint::Result<Committed>) -> String {
    match r {
        Ok(c) => format!("{c:?}"),
        Err(Error::Conflict(_)) => "conflict".into(),
        Err(Error::InvalidInput { field, .. }) => format!("invalid {field}"),
        Err(Error::WrongTenant(_)) => "wrong tenant".into(),
        Err(other) => format!("unexpected {other}"),
    }
}

#[test]
fn random_change_sets_have_the_same_outcome_as_on_the_in_memory_store() {
    // More seeds: TOUCHPOINT_DIFFERENTIAL_SEEDS=40 cargo test --features sqlite,testkit --test sqlite
    let seeds: u64 = std::env::var("TOUCHPOINT_DIFFERENTIAL_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let dir = TempDir::new("differential");
    for seed in 1..=seeds {
        let reference = InMemoryStore::new();
        let sqlite = SqliteStore::open(dir.0.join(format!("diff-{seed}.db"))).expect("open");
        let mut universe = Universe::new(seed);
        let mut applied = 0;
        for step in 0..1000 {
            let (t, changes) = universe.change_set(&reference);
            let expected = run(reference.commit(&t, changes.clone()));
            let actual = run(sqlite.commit(&t, changes.clone()));
            assert_eq!(
                outcome_kind(&actual),
                outcome_kind(&expected),
                "seed {seed} step {step}: {changes:#?}\nin memory: {expected:?}\nsqlite: {actual:?}"
            );
            applied += usize::from(matches!(expected, Ok(Committed::Applied { .. })));
            if step % 10 == 9 {
                let (want, got) = (universe.snapshot(&reference), universe.snapshot(&sqlite));
                if want != got {
                    let first = want.lines().zip(got.lines()).find(|(a, b)| a != b);
                    panic!("seed {seed} step {step}: stores differ, first difference {first:#?}\n{changes:#?}");
                }
            }
        }
        assert!(applied > 100, "seed {seed}: too few change sets applied ({applied}) to compare much");
    }
}

/// The store documents that an erasure is followed by a
/// `TRUNCATE` checkpoint, so the erased records leave the `-wal` file at once, not only when the
/// store is closed. A host that erases and keeps running (the usual case) relies on that.
#[test]
fn an_erased_customer_leaves_no_personal_data_on_disk_while_the_store_stays_open() {
    let dir = TempDir::new("erasure-open");
    let t = tenant("acme-shop");
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()));
    let store = SqliteStore::open(dir.db()).expect("open");
    let engine = story_engine(store.clone(), clock.clone());
    let mut customers = Vec::new();
    for m in story_messages() {
        clock.advance(Duration::minutes(1));
        customers.push(run(engine.ingest(&t, m)).expect("ingest").customer);
    }
    for c in customers {
        run(engine.erase_customer(&t, c)).expect("erase");
    }
    // One more commit and a read: the writer has finished the erasure's batch (and its
    // checkpoint) before it takes this one.
    run(engine.ingest(&t, bruno_keeps_his_data())).expect("other customer");
    let on_disk = |needle: &[u8]| {
        std::fs::read_dir(&dir.0)
            .expect("dir")
            .filter_map(|e| e.ok())
            .find(|e| file_contains(&e.path(), needle))
            .map(|e| e.path())
    };
    assert!(on_disk(b"Bruno keeps his data").is_some(), "the probe finds data that is still there");
    for secret in [&b"Ana Souza"[..], b"broken lamp", b"5511987654321", b"ana.souza@example.com"] {
        assert_eq!(on_disk(secret), None, "{:?} is on disk while the store is open", String::from_utf8_lossy(secret));
    }
    drop(engine);
    drop(store);
}

/// Another customer's message, which an erasure must leave on disk.
fn bruno_keeps_his_data() -> InboundMessage {
    InboundMessage::new(
        ChannelKind::Sms,
        endpoint("sms-main"),
        Address::phone("+14155550100"),
        "SM-keep",
        Content::text("Bruno keeps his data"),
    )
}
