//! Races between concurrent operations on the same customer or conversation, with real threads
//! (each runs `futures::executor::block_on`), on the in-memory store and on SQLite (a temp file).
//!
//! Every test loops many rounds; each round starts its threads behind a barrier and checks the
//! invariants once all of them returned: nothing acknowledged is lost or half-erased, nothing is
//! stored twice, nothing is attached to a customer that is not live, and an export is a
//! consistent snapshot. No test asserts anything about timing.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use touchpoint::channel::{Capabilities, StubChannel};
use touchpoint::model::*;
use touchpoint::privacy::CustomerExport;
use touchpoint::store::sqlite::{SqliteOptions, Synchronous};
use touchpoint::store::{InMemoryStore, MessageQuery, MessageScope, SqliteStore, Store};
use touchpoint::{CustomerPatch, Engine, Error, IngestOutcome, SendRequest, SurvivorRule};

fn run<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

fn ep(s: &str) -> EndpointId {
    EndpointId::new(s).expect("endpoint")
}

fn tenant(round: usize) -> TenantId {
    TenantId::new(format!("round-{round}")).expect("tenant")
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("touchpoint-cc-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The stores every race runs on: (name, store, directory to keep alive).
fn stores(name: &str) -> Vec<(&'static str, Arc<dyn Store>, Option<TempDir>)> {
    let dir = TempDir::new(name);
    // No fsync: the races are about isolation, not durability, and the machine is shared.
    let options = SqliteOptions::default().with_synchronous(Synchronous::Off);
    let sqlite = SqliteStore::open_with(dir.0.join("touchpoint.db"), options).expect("open sqlite");
    vec![("memory", Arc::new(InMemoryStore::new()), None), ("sqlite", Arc::new(sqlite), Some(dir))]
}

/// Rounds per store: SQLite rounds cost more.
fn rounds(store: &str, memory: usize) -> usize {
    if store == "sqlite" { memory / 4 } else { memory }
}

/// Runs `f(i)` on `n` threads that start together, and returns their results in order.
fn race<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, f) = (&barrier, &f);
                s.spawn(move || {
                    barrier.wait();
                    f(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a racing thread panicked")).collect()
    })
}

fn whatsapp(phone: &str, id: &str, text: &str) -> InboundMessage {
    InboundMessage::new(ChannelKind::WhatsApp, ep("wa-main"), Address::phone(phone), id, Content::text(text))
        .with_sender_name("Ana Race")
}

fn sms(phone: &str, id: &str, text: &str) -> InboundMessage {
    InboundMessage::new(ChannelKind::Sms, ep("sms-main"), Address::phone(phone), id, Content::text(text))
}

fn phone(round: usize) -> String {
    format!("+551198{:07}", 1_000_000 + round)
}

async fn all_messages(store: &dyn Store, tenant: &TenantId, scope: MessageScope) -> Vec<Message> {
    store.messages(tenant, &MessageQuery { scope, before: None, limit: 100_000 }).await.expect("messages")
}

/// Whether `id` names a live customer.
async fn live(engine: &Engine, tenant: &TenantId, id: CustomerId) -> bool {
    matches!(engine.store().customer(tenant, id).await, Ok(Some(c)) if c.is_active())
}

/// The invariants of a conversation on its own: its counters match its stored messages.
async fn check_conversation(store: &dyn Store, tenant: &TenantId, c: &Conversation, what: &str) {
    let messages = all_messages(store, tenant, MessageScope::Conversation(c.id)).await;
    assert_eq!(c.message_count as usize, messages.len(), "{what}: message_count of {} is off", c.id);
    let inbound = messages.iter().filter(|m| m.direction == Direction::Inbound).count();
    let counted_in: u32 = c.channels.iter().map(|u| u.inbound).sum();
    let counted_out: u32 = c.channels.iter().map(|u| u.outbound).sum();
    assert_eq!(counted_in as usize, inbound, "{what}: inbound count of {} is off", c.id);
    assert_eq!(counted_out as usize, messages.len() - inbound, "{what}: outbound count of {} is off", c.id);
    if let Some(last) = messages.iter().map(|m| m.recorded_at).max() {
        assert_eq!(c.last_activity_at, last, "{what}: last_activity_at of {} is not its last message's", c.id);
    }
    if let Some(last) = messages.iter().filter(|m| m.direction == Direction::Inbound).map(|m| m.recorded_at).max() {
        assert_eq!(c.last_inbound_at, Some(last), "{what}: last_inbound_at of {} is not its last inbound", c.id);
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Erasure racing an ingest from the same address.

/// Erasing Ana while a new message of hers comes in (the same WhatsApp address, or her phone on
/// SMS): whichever commits first, the acknowledged message is either erased with her (the
/// ingest's outcome named her) or kept whole under a new, live customer — never half, never
/// attached to the tombstone, and nothing of hers resurfaces.
#[test]
fn erasure_racing_an_ingest_from_the_same_address_is_all_or_nothing() {
    for (name, store, _dir) in stores("erase") {
        let engine = Engine::builder(store.clone()).build();
        for round in 0..rounds(name, 200) {
            let t = tenant(round);
            let number = phone(round);
            let first = run(engine.ingest(&t, whatsapp(&number, &format!("wamid.first-{round}"), "ANA-SECRET-1")))
                .expect("first contact");
            let ana = first.customer;
            let next = if round % 2 == 0 {
                whatsapp(&number, &format!("wamid.next-{round}"), "ANA-NEXT")
            } else {
                sms(&number, &format!("SM-next-{round}"), "ANA-NEXT")
            };
            let results = race(2, |i| {
                if i == 0 {
                    Err(run(engine.erase_customer(&t, ana)).map(|_| ()))
                } else {
                    Ok(run(engine.ingest(&t, next.clone())))
                }
            });
            let mut outcome: Option<IngestOutcome> = None;
            for r in results {
                match r {
                    Err(erased) => erased.unwrap_or_else(|e| panic!("{name} round {round}: erasure failed: {e}")),
                    Ok(ingested) => {
                        outcome = Some(ingested.unwrap_or_else(|e| panic!("{name} round {round}: ingest failed: {e}")))
                    }
                }
            }
            let out = outcome.expect("the ingest ran");
            let what = format!("{name} round {round}");
            let s = &*store;
            assert!(matches!(run(engine.customer(&t, ana)), Err(Error::Erased(_))), "{what}: Ana is not erased");
            assert!(run(s.identities_of(&t, ana)).unwrap().is_empty(), "{what}: an identity survived on Ana");
            assert!(run(s.conversations_of(&t, ana)).unwrap().is_empty(), "{what}: a conversation survived on Ana");
            let first_msg = run(s.message_by_external_id(&t, &ChannelKind::WhatsApp, &format!("wamid.first-{round}")));
            assert!(first_msg.unwrap().is_none(), "{what}: Ana's first message resurfaced");
            assert!(run(s.message(&t, first.message)).unwrap().is_none(), "{what}: Ana's first message resurfaced");
            match run(s.message(&t, out.message)).unwrap() {
                // Kept: whole, under the live customer the outcome named.
                Some(m) => {
                    assert_ne!(out.customer, ana, "{what}: the outcome names the erased customer for a kept message");
                    let c = run(s.conversation(&t, m.conversation)).unwrap();
                    let c = c.unwrap_or_else(|| panic!("{what}: the kept message has no conversation"));
                    assert_eq!(c.customer, out.customer, "{what}: the kept message is not where the outcome says");
                    assert!(run(live(&engine, &t, c.customer)), "{what}: the kept message's customer is not live");
                    let Author::Customer(i) = m.author else { panic!("{what}: not a customer's message") };
                    let identity = run(s.identity(&t, i)).unwrap();
                    let identity = identity.unwrap_or_else(|| panic!("{what}: the kept message's identity is gone"));
                    assert_eq!(identity.customer, c.customer, "{what}: the kept message's identity is elsewhere");
                    assert_eq!(c.message_count, 1, "{what}: the new customer's conversation counts Ana's messages");
                    check_conversation(s, &t, &c, &what).await_ready();
                    let export = run(engine.export_customer(&t, c.customer)).expect("export of the new customer");
                    let json = export.to_json();
                    assert!(!json.contains("ANA-SECRET-1"), "{what}: Ana's erased text resurfaced in the export");
                    assert!(!json.contains(&format!("wamid.first-{round}")), "{what}: Ana's erased id resurfaced");
                }
                // Erased with Ana: the outcome named her, and nothing of the message is left.
                None => {
                    assert_eq!(out.customer, ana, "{what}: an acknowledged message for a live customer was lost");
                    let key = run(s.message_by_external_id(&t, &next.channel, &next.external_id)).unwrap();
                    assert!(key.is_none(), "{what}: the erased message's provider id survived");
                    assert!(run(s.conversation(&t, out.conversation)).unwrap().is_none(), "{what}: half erased");
                }
            }
            // Whatever happened, the same address afterwards belongs to a live customer only.
            let normalized = NormalizedAddress { kind: AddressKind::Phone, value: number.clone() };
            for channel in [ChannelKind::WhatsApp, ChannelKind::Sms] {
                if let Some(i) = run(s.identity_by_address(&t, &channel, &normalized)).unwrap() {
                    assert!(run(live(&engine, &t, i.customer)), "{what}: {channel} identity on a dead customer");
                }
            }
        }
    }
}

/// `block_on` for the checks inside the loops (readable at the call site).
trait AwaitReady: std::future::Future + Sized {
    fn await_ready(self) -> Self::Output {
        run(self)
    }
}

impl<F: std::future::Future> AwaitReady for F {}

// ---------------------------------------------------------------------------------------------
// 2. Export racing ingest and send.

/// An export is a consistent snapshot: every message is in one of the exported conversations,
/// each exported conversation's counters match its exported messages, and every identity named
/// by a message or conversation of the customer is exported.
fn check_export(export: &CustomerExport, what: &str) {
    let conversations: HashMap<ConversationId, &Conversation> =
        export.conversations.iter().map(|c| (c.id, c)).collect();
    let mut counts: HashMap<ConversationId, usize> = HashMap::new();
    for m in &export.messages {
        assert!(
            conversations.contains_key(&m.conversation),
            "{what}: message {} is exported without its conversation {}",
            m.id,
            m.conversation
        );
        *counts.entry(m.conversation).or_default() += 1;
    }
    for c in &export.conversations {
        assert_eq!(c.customer, export.customer.id, "{what}: a conversation of someone else is exported");
        assert_eq!(
            c.message_count as usize,
            counts.get(&c.id).copied().unwrap_or(0),
            "{what}: conversation {} says {} messages, the export holds others",
            c.id,
            c.message_count
        );
    }
    let identities: HashSet<IdentityId> = export.identities.iter().map(|i| i.id).collect();
    for c in &export.conversations {
        for (_, i) in &c.sessions {
            assert!(identities.contains(i), "{what}: conversation {} names identity {i}, not exported", c.id);
        }
    }
}

/// A store that answers [`Store::customer_snapshot`] with the trait's default (piece by piece,
/// read again while anything moved), as a backend without an override does.
#[derive(Debug)]
struct Piecewise(Arc<dyn Store>);

#[async_trait::async_trait]
impl Store for Piecewise {
    async fn customer(&self, t: &TenantId, id: CustomerId) -> touchpoint::Result<Option<Customer>> {
        self.0.customer(t, id).await
    }
    async fn customer_by_external_id(&self, t: &TenantId, x: &str) -> touchpoint::Result<Option<Customer>> {
        self.0.customer_by_external_id(t, x).await
    }
    async fn identity(&self, t: &TenantId, id: IdentityId) -> touchpoint::Result<Option<Identity>> {
        self.0.identity(t, id).await
    }
    async fn identity_by_address(
        &self,
        t: &TenantId,
        channel: &ChannelKind,
        address: &NormalizedAddress,
    ) -> touchpoint::Result<Option<Identity>> {
        self.0.identity_by_address(t, channel, address).await
    }
    async fn identities_of(&self, t: &TenantId, c: CustomerId) -> touchpoint::Result<Vec<Identity>> {
        self.0.identities_of(t, c).await
    }
    async fn customers_by_address(
        &self,
        t: &TenantId,
        key: &touchpoint::store::LinkKey,
    ) -> touchpoint::Result<Vec<(CustomerId, Verification)>> {
        self.0.customers_by_address(t, key).await
    }
    async fn conversation(&self, t: &TenantId, id: ConversationId) -> touchpoint::Result<Option<Conversation>> {
        self.0.conversation(t, id).await
    }
    async fn conversation_by_thread_key(
        &self,
        t: &TenantId,
        key: &touchpoint::store::ThreadKey,
    ) -> touchpoint::Result<Option<ConversationId>> {
        self.0.conversation_by_thread_key(t, key).await
    }
    async fn conversations_of(&self, t: &TenantId, c: CustomerId) -> touchpoint::Result<Vec<Conversation>> {
        self.0.conversations_of(t, c).await
    }
    async fn message(&self, t: &TenantId, id: MessageId) -> touchpoint::Result<Option<Message>> {
        self.0.message(t, id).await
    }
    async fn message_by_external_id(
        &self,
        t: &TenantId,
        channel: &ChannelKind,
        x: &str,
    ) -> touchpoint::Result<Option<Message>> {
        self.0.message_by_external_id(t, channel, x).await
    }
    async fn messages(&self, t: &TenantId, q: &MessageQuery) -> touchpoint::Result<Vec<Message>> {
        self.0.messages(t, q).await
    }
    async fn commit(
        &self,
        t: &TenantId,
        changes: touchpoint::store::ChangeSet,
    ) -> touchpoint::Result<touchpoint::store::Committed> {
        self.0.commit(t, changes).await
    }
    async fn events_after(
        &self,
        t: &TenantId,
        after: u64,
        limit: usize,
    ) -> touchpoint::Result<Vec<touchpoint::events::StoredEvent>> {
        self.0.events_after(t, after, limit).await
    }
}

#[test]
fn export_racing_ingest_and_send_is_a_consistent_snapshot() {
    let mut backends = stores("export");
    backends.push(("piecewise", Arc::new(Piecewise(Arc::new(InMemoryStore::new()))), None));
    for (name, store, _dir) in backends {
        let wa = Arc::new(StubChannel::new(ep("wa-main"), Capabilities::whatsapp()));
        let engine = Engine::builder(store.clone()).channel(wa).build();
        let t = tenant(0);
        let number = phone(0);
        let first = run(engine.ingest(&t, whatsapp(&number, "wamid.export-0", "hello"))).expect("first contact");
        let ana = first.customer;
        let patch = CustomerPatch { external_id: Some(Some("ana-ext".into())), ..CustomerPatch::default() };
        run(engine.update_customer(&t, ana, patch)).expect("external id");
        let writes = rounds(name, 400);
        let done = AtomicBool::new(false);
        let exports = std::sync::atomic::AtomicUsize::new(0);
        race(3, |i| match i {
            // Ingests: into Ana's WhatsApp conversation, and from new SMS/email addresses of
            // hers that open new conversations (a verified claim links them to her).
            0 => {
                for k in 0..writes {
                    let msg = if k % 2 == 0 {
                        whatsapp(&number, &format!("wamid.export-in-{k}"), "more")
                    } else {
                        InboundMessage::new(
                            ChannelKind::Email,
                            ep("mail"),
                            Address::email(format!("ana{k}@example.org")),
                            format!("<export-{k}@example.org>"),
                            Content::text("by mail"),
                        )
                        .with_claim(CustomerKey::ExternalId("ana-ext".into()), Verification::Verified)
                    };
                    run(engine.ingest(&t, msg)).expect("ingest");
                }
                done.store(true, Ordering::SeqCst);
            }
            // Sends into the WhatsApp conversation.
            1 => {
                let mut k = 0;
                while !done.load(Ordering::SeqCst) && k < writes {
                    let request = SendRequest::agent(AgentId::new("agent-1").unwrap(), Content::text("reply"));
                    run(engine.send(&t, first.conversation, request)).expect("send");
                    k += 1;
                }
            }
            // Exports, checked one by one.
            _ => {
                while !done.load(Ordering::SeqCst) {
                    match run(engine.export_customer(&t, ana)) {
                        Ok(export) => {
                            check_export(&export, &format!("{name} export"));
                            exports.fetch_add(1, Ordering::Relaxed);
                        }
                        // Reading piece by piece may give up while the writes never pause.
                        Err(Error::Conflict(_)) if name == "piecewise" => {}
                        Err(e) => panic!("{name}: export failed: {e}"),
                    }
                }
            }
        });
        let export = run(engine.export_customer(&t, ana)).expect("final export");
        check_export(&export, &format!("{name} final export"));
        if name != "piecewise" {
            assert!(exports.load(Ordering::Relaxed) > 0, "{name}: no export ran during the writes");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Concurrent deliveries of the same provider message id.

/// Webhook retries of one message arriving at once on several threads (from a sender seen for
/// the first time, and from a known one): exactly one is stored, every other answer is a
/// duplicate naming it, and no stray customer, identity or conversation is left behind.
#[test]
fn concurrent_deliveries_of_one_provider_id_store_exactly_one_message() {
    const THREADS: usize = 4;
    for (name, store, _dir) in stores("dedupe") {
        // Two engines on one store (two hosts behind a load balancer): deliveries through the
        // same engine take turns, those through the other race it in the store.
        let engines = [Engine::builder(store.clone()).build(), Engine::builder(store.clone()).build()];
        let engine = &engines[0];
        for round in 0..rounds(name, 200) {
            let t = tenant(round);
            let number = phone(round);
            let known = round % 2 == 1;
            if known {
                run(engine.ingest(&t, whatsapp(&number, &format!("wamid.known-{round}"), "earlier"))).expect("earlier");
            }
            let msg = whatsapp(&number, &format!("wamid.dup-{round}"), "retried");
            let results = race(THREADS, |i| run(engines[i % 2].ingest(&t, msg.clone())));
            let what = format!("{name} round {round} (known sender: {known})");
            let outcomes: Vec<IngestOutcome> =
                results.into_iter().map(|r| r.unwrap_or_else(|e| panic!("{what}: a delivery failed: {e}"))).collect();
            let fresh: Vec<_> = outcomes.iter().filter(|o| !o.duplicate).collect();
            assert_eq!(fresh.len(), 1, "{what}: {} deliveries were stored as new", fresh.len());
            let stored = fresh[0];
            for o in &outcomes {
                assert_eq!(
                    (o.message, o.customer, o.conversation),
                    (stored.message, stored.customer, stored.conversation),
                    "{what}: a duplicate answer names another message"
                );
            }
            let s = &*store;
            let normalized = NormalizedAddress { kind: AddressKind::Phone, value: number.clone() };
            let identity = run(s.identity_by_address(&t, &ChannelKind::WhatsApp, &normalized)).unwrap();
            let identity = identity.unwrap_or_else(|| panic!("{what}: no identity"));
            assert_eq!(identity.customer, stored.customer, "{what}: the identity belongs to another customer");
            let conversations = run(s.conversations_of(&t, stored.customer)).unwrap();
            assert_eq!(conversations.len(), 1, "{what}: stray conversations");
            let messages = all_messages(s, &t, MessageScope::Customer(stored.customer)).await_ready();
            let copies = messages.iter().filter(|m| m.external_id.as_deref() == Some(msg.external_id.as_str())).count();
            assert_eq!(copies, 1, "{what}: the message is stored {copies} times");
            assert_eq!(messages.len(), if known { 2 } else { 1 }, "{what}: wrong number of messages");
            check_conversation(s, &t, &conversations[0], &what).await_ready();
            let linked = run(s.customers_by_address(&t, &touchpoint::store::LinkKey(normalized))).unwrap();
            assert_eq!(linked.len(), 1, "{what}: the address belongs to {} customers", linked.len());
        }
    }
}

/// The first messages of one Brazilian mobile in its two spellings (with the ninth digit on
/// WhatsApp, without it by SMS) through two engines on one store at once (two hosts behind a
/// load balancer): one customer, whichever commits first, and later messages in either
/// spelling reach them.
#[test]
fn both_spellings_of_one_mobile_through_two_engines_at_once_make_one_customer() {
    for (name, store, _dir) in stores("spellings") {
        let engines = [Engine::builder(store.clone()).build(), Engine::builder(store.clone()).build()];
        for round in 0..rounds(name, 200) {
            let t = tenant(round);
            let with_nine = phone(round);
            let without_nine = format!("+5511{}", &with_nine[6..]);
            let results = race(2, |i| {
                let msg = match i {
                    0 => whatsapp(&with_nine, &format!("wamid.first-{round}"), "oi"),
                    _ => sms(&without_nine, &format!("SM-first-{round}"), "oi"),
                };
                run(engines[i].ingest(&t, msg))
            });
            let what = format!("{name} round {round}");
            let outcomes: Vec<IngestOutcome> =
                results.into_iter().map(|r| r.unwrap_or_else(|e| panic!("{what}: an ingest failed: {e}"))).collect();
            assert_eq!(outcomes[0].customer, outcomes[1].customer, "{what}: one phone, two customers");
            for (k, spelling) in [&with_nine, &without_nine].into_iter().enumerate() {
                let later = run(engines[k].ingest(&t, sms(spelling, &format!("SM-later-{round}-{k}"), "again")));
                assert_eq!(later.expect("later").customer, outcomes[0].customer, "{what}: {spelling} went elsewhere");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Send and ingest on one conversation.

/// Agents' sends and the customer's messages committed at the same time on one conversation:
/// every acknowledged message is stored once, in the conversation, and its counters and
/// timestamps agree with its messages.
#[test]
fn concurrent_send_and_ingest_on_one_conversation_keep_counters_consistent() {
    const EACH: usize = 6;
    for (name, store, _dir) in stores("send") {
        let wa = Arc::new(StubChannel::new(ep("wa-main"), Capabilities::whatsapp()));
        let engine = Engine::builder(store.clone()).channel(wa.clone()).build();
        for round in 0..rounds(name, 60) {
            let t = tenant(round);
            let number = phone(round);
            let first =
                run(engine.ingest(&t, whatsapp(&number, &format!("wamid.c-{round}"), "hi"))).expect("first contact");
            let results = race(4, |i| {
                let mut ids = Vec::new();
                for k in 0..EACH {
                    if i % 2 == 0 {
                        let msg = whatsapp(&number, &format!("wamid.c-{round}-{i}-{k}"), "customer");
                        let out = run(engine.ingest(&t, msg)).expect("ingest");
                        assert_eq!(out.conversation, first.conversation, "ingest left the conversation");
                        ids.push(out.message);
                    } else {
                        let request =
                            SendRequest::agent(AgentId::new(format!("agent-{i}")).unwrap(), Content::text("a"));
                        let out = run(engine.send(&t, first.conversation, request)).expect("send");
                        ids.push(out.message);
                    }
                }
                ids
            });
            let what = format!("{name} round {round}");
            let s = &*store;
            let c = run(s.conversation(&t, first.conversation)).unwrap().expect("conversation");
            let messages = all_messages(s, &t, MessageScope::Conversation(c.id)).await_ready();
            let stored: HashSet<MessageId> = messages.iter().map(|m| m.id).collect();
            for id in results.iter().flatten().chain([&first.message]) {
                assert!(stored.contains(id), "{what}: acknowledged message {id} is not stored");
            }
            assert_eq!(messages.len(), 1 + 4 * EACH, "{what}: messages stored twice or lost");
            check_conversation(s, &t, &c, &what).await_ready();
            // Waiting on us means waiting since after our last answer.
            if let (Some(waiting), Some(answered)) = (c.waiting_since, c.last_agent_at) {
                assert!(waiting >= answered, "{what}: waiting since {waiting}, before the answer at {answered}");
            }
        }
    }
}

/// Customer messages committed at the same time on one conversation (a burst of photos sent
/// at once arrives as simultaneous webhooks): every one is stored (none fails with a conflict
/// because the others kept winning the commit), and the conversation's
/// `last_inbound_at` and `last_activity_at` are its latest message's, never an older one's
/// (an ingest that read the conversation after a later message was committed must not move
/// them back).
#[test]
fn concurrent_ingests_on_one_conversation_all_succeed_and_never_move_its_timestamps_back() {
    const THREADS: usize = 4;
    const EACH: usize = 10;
    for (name, store, _dir) in stores("stamps") {
        let engine = Engine::builder(store.clone()).build();
        for round in 0..rounds(name, 80) {
            let t = tenant(round);
            let number = phone(round);
            let first =
                run(engine.ingest(&t, whatsapp(&number, &format!("wamid.s-{round}"), "hi"))).expect("first contact");
            race(THREADS, |i| {
                for k in 0..EACH {
                    let msg = whatsapp(&number, &format!("wamid.s-{round}-{i}-{k}"), "customer");
                    run(engine.ingest(&t, msg)).expect("ingest");
                }
            });
            let what = format!("{name} round {round}");
            let s = &*store;
            let c = run(s.conversation(&t, first.conversation)).unwrap().expect("conversation");
            assert_eq!(c.message_count as usize, 1 + THREADS * EACH, "{what}: messages lost or doubled");
            check_conversation(s, &t, &c, &what).await_ready();
        }
    }
}

/// A message the provider accepted is recorded, however busy the conversation: giving up on
/// a write conflict would leave it sent but unrecorded (and a retry of the send would send it
/// again). Here the agent's engine gives up on anything else after two conflicts, and another
/// host's engine keeps ingesting the customer's messages into the same conversation.
#[test]
fn a_message_the_provider_accepted_is_recorded_even_when_the_conversation_is_busy() {
    const SENDS: usize = 30;
    for (name, store, _dir) in stores("recorded") {
        let wa = Arc::new(StubChannel::new(ep("wa-main"), Capabilities::whatsapp()));
        let config = touchpoint::EngineConfig { max_commit_attempts: 2, ..touchpoint::EngineConfig::default() };
        let agent_side = Engine::builder(store.clone()).channel(wa.clone()).config(config).build();
        let webhook_side = Engine::builder(store.clone()).build();
        for round in 0..rounds(name, 12) {
            let t = tenant(round);
            let number = phone(round);
            let first = run(webhook_side.ingest(&t, whatsapp(&number, &format!("wamid.r-{round}"), "hi")))
                .expect("first contact");
            let done = AtomicBool::new(false);
            let sent_before = wa.sent().len();
            let results = race(2, |i| {
                let mut failures = Vec::new();
                if i == 0 {
                    for _ in 0..SENDS {
                        let request = SendRequest::agent(AgentId::new("agent-1").unwrap(), Content::text("reply"));
                        if let Err(e) = run(agent_side.send(&t, first.conversation, request)) {
                            failures.push(e.to_string());
                        }
                    }
                    done.store(true, Ordering::SeqCst);
                } else {
                    let mut k = 0;
                    while !done.load(Ordering::SeqCst) {
                        let msg = whatsapp(&number, &format!("wamid.r-{round}-{k}"), "customer");
                        run(webhook_side.ingest(&t, msg)).expect("ingest");
                        k += 1;
                    }
                }
                failures
            });
            let what = format!("{name} round {round}");
            let failures: Vec<_> = results.into_iter().flatten().collect();
            let sent = wa.sent().len() - sent_before;
            let s = &*store;
            let messages = all_messages(s, &t, MessageScope::Conversation(first.conversation)).await_ready();
            let recorded = messages.iter().filter(|m| m.direction == Direction::Outbound).count();
            assert_eq!(recorded, sent, "{what}: {sent} messages went out, {recorded} are recorded: {failures:?}");
            assert!(failures.is_empty(), "{what}: sends failed: {failures:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Identity operations racing an ingest.

/// After a race, the message an ingest acknowledged is stored once, in a conversation of a live
/// customer, written by an identity that is stored or was unlinked on purpose.
fn check_kept(engine: &Engine, t: &TenantId, out: &IngestOutcome, what: &str) {
    let s = &**engine.store();
    let m = run(s.message(t, out.message)).unwrap();
    let m = m.unwrap_or_else(|| panic!("{what}: acknowledged message lost"));
    let c = run(s.conversation(t, m.conversation)).unwrap();
    let c = c.unwrap_or_else(|| panic!("{what}: the message's conversation is gone"));
    assert!(run(live(engine, t, c.customer)), "{what}: the message's conversation is on a dead customer");
    // The outcome's customer resolves (through merge aliases) to the conversation's owner.
    let owner = run(engine.customer(t, out.customer)).unwrap_or_else(|e| panic!("{what}: outcome customer: {e}"));
    assert_eq!(owner.id, c.customer, "{what}: the outcome names a customer that does not own the conversation");
    check_conversation(s, t, &c, what).await_ready();
    for c in run(s.conversations_of(t, c.customer)).unwrap() {
        check_conversation(s, t, &c, what).await_ready();
    }
}

#[test]
fn merge_racing_an_ingest_leaves_everything_on_the_survivor() {
    for (name, store, _dir) in stores("merge") {
        let engine = Engine::builder(store.clone()).build();
        for round in 0..rounds(name, 200) {
            let t = tenant(round);
            let number = phone(round);
            let a = run(engine.ingest(&t, whatsapp(&number, &format!("wamid.a-{round}"), "a"))).expect("a");
            let b_msg = InboundMessage::new(
                ChannelKind::Telegram,
                ep("tg"),
                Address::platform("tg", format!("tg-user-{round}")),
                format!("tg-{round}"),
                Content::text("b"),
            );
            let b = run(engine.ingest(&t, b_msg)).expect("b");
            let next = if round % 2 == 0 {
                whatsapp(&number, &format!("wamid.a2-{round}"), "again")
            } else {
                sms(&number, &format!("SM-a2-{round}"), "again by sms")
            };
            let results = race(2, |i| {
                if i == 0 {
                    Err(run(engine.merge_customers(&t, b.customer, a.customer, SurvivorRule::First)).map(|_| ()))
                } else {
                    Ok(run(engine.ingest(&t, next.clone())))
                }
            });
            let what = format!("{name} round {round}");
            for r in results {
                match r {
                    Err(merged) => merged.unwrap_or_else(|e| panic!("{what}: merge failed: {e}")),
                    Ok(out) => check_kept(&engine, &t, &out.unwrap_or_else(|e| panic!("{what}: ingest: {e}")), &what),
                }
            }
            let s = &*store;
            assert!(run(s.identities_of(&t, a.customer)).unwrap().is_empty(), "{what}: identity left on the alias");
            assert!(run(s.conversations_of(&t, a.customer)).unwrap().is_empty(), "{what}: conversation on the alias");
            let all = all_messages(s, &t, MessageScope::Customer(b.customer)).await_ready();
            assert_eq!(all.len(), 3, "{what}: the survivor does not hold every message");
        }
    }
}

#[test]
fn move_and_unlink_racing_an_ingest_lose_nothing() {
    for (name, store, _dir) in stores("move") {
        let engine = Engine::builder(store.clone()).build();
        for round in 0..rounds(name, 200) {
            let t = tenant(round);
            let number = phone(round);
            let a = run(engine.ingest(&t, whatsapp(&number, &format!("wamid.m-{round}"), "a"))).expect("a");
            let b_msg = InboundMessage::new(
                ChannelKind::Telegram,
                ep("tg"),
                Address::platform("tg", format!("tg-user-{round}")),
                format!("tg-m-{round}"),
                Content::text("b"),
            );
            let b = run(engine.ingest(&t, b_msg)).expect("b");
            let unlink = round % 2 == 1;
            let next = whatsapp(&number, &format!("wamid.m2-{round}"), "again");
            let results = race(2, |i| {
                if i == 0 {
                    let r = if unlink {
                        run(engine.unlink_identity(&t, a.identity))
                    } else {
                        run(engine.move_identity(&t, a.identity, b.customer)).map(|_| ())
                    };
                    Err(r)
                } else {
                    Ok(run(engine.ingest(&t, next.clone())))
                }
            });
            let what = format!("{name} round {round} ({})", if unlink { "unlink" } else { "move" });
            for r in results {
                match r {
                    Err(done) => done.unwrap_or_else(|e| panic!("{what}: identity operation failed: {e}")),
                    Ok(out) => check_kept(&engine, &t, &out.unwrap_or_else(|e| panic!("{what}: ingest: {e}")), &what),
                }
            }
            let s = &*store;
            let normalized = NormalizedAddress { kind: AddressKind::Phone, value: number.clone() };
            if let Some(i) = run(s.identity_by_address(&t, &ChannelKind::WhatsApp, &normalized)).unwrap() {
                assert!(run(live(&engine, &t, i.customer)), "{what}: the identity is on a dead customer");
                if !unlink {
                    assert_eq!(i.customer, b.customer, "{what}: the move was undone");
                }
            }
        }
    }
}

/// The same send (one idempotency key) retried at once through two engines on one store: one
/// message is recorded. When both copies reached the provider, the call whose copy is not
/// recorded says so at once (a conflict naming both provider ids), and never returns `Ok`.
#[test]
fn one_send_retried_through_two_engines_at_once_is_recorded_once_and_a_lost_copy_is_reported() {
    for (name, store, _dir) in stores("send-two-engines") {
        let wa = Arc::new(StubChannel::new(ep("wa-main"), Capabilities::whatsapp()));
        let engines = [
            Engine::builder(store.clone()).channel(wa.clone()).build(),
            Engine::builder(store.clone()).channel(wa.clone()).build(),
        ];
        let mut doubled = 0;
        for round in 0..rounds(name, 80) {
            let t = tenant(round);
            let first = run(engines[0].ingest(&t, whatsapp(&phone(round), &format!("wamid.{round}"), "hi"))).unwrap();
            let request = SendRequest::agent(AgentId::new("ana").unwrap(), Content::text("reply"))
                .with_message_id(engines[0].new_message_id());
            let before = wa.sent().len();
            let results = race(2, |i| run(engines[i].send(&t, first.conversation, request.clone())));
            let sent = wa.sent().len() - before;
            let query =
                MessageQuery { scope: MessageScope::Conversation(first.conversation), before: None, limit: 100 };
            let outbound: Vec<Message> = run(store.messages(&t, &query))
                .unwrap()
                .into_iter()
                .filter(|m| m.direction == Direction::Outbound)
                .collect();
            assert_eq!(outbound.len(), 1, "{name} round {round}: one message recorded: {results:?}");
            let recorded_id = outbound[0].external_id.clone().unwrap();
            match sent {
                1 => assert!(results.iter().all(|r| r.is_ok() || matches!(r, Err(Error::Conflict(_)))), "{results:?}"),
                2 => {
                    doubled += 1;
                    let lost: Vec<&String> = results
                        .iter()
                        .filter_map(|r| match r {
                            Err(Error::Conflict(why)) if why.contains(&recorded_id) && why.contains("not recorded") => {
                                Some(why)
                            }
                            _ => None,
                        })
                        .collect();
                    assert_eq!(lost.len(), 1, "{name} round {round}: the unrecorded copy is reported: {results:?}");
                }
                n => panic!("{name} round {round}: sent {n} times"),
            }
        }
        eprintln!("{name}: both copies reached the provider in {doubled} rounds");
    }
}
