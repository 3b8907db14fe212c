//! Eight OS threads share one engine and ingest 100,000 deliveries (about 10 % of them repeats,
//! delivered by a different thread than the original, close in time) for overlapping customers
//! on WhatsApp, SMS, email and web chat. Afterwards every count must be exact.

use chrono::{TimeZone, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use touchpoint::clock::ManualClock;
use touchpoint::events::Event;
use touchpoint::model::*;
use touchpoint::store::{InMemoryStore, Store};
use touchpoint::{Engine, IngestOutcome};

mod rng;
use rng::Rng;

const THREADS: usize = 8;
const TOTAL: usize = 100_000;
const REPEATS: usize = 10_000;
const DISTINCT: usize = TOTAL - REPEATS;
const PEOPLE: usize = 1_500;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    WhatsApp,
    Sms,
    Email,
    WebChat,
}

#[derive(Clone, Copy, Debug)]
struct Spec {
    person: usize,
    kind: Kind,
}

fn e164(person: usize) -> String {
    format!("+49151{person:08}")
}

fn channel(kind: Kind) -> ChannelKind {
    match kind {
        Kind::WhatsApp => ChannelKind::WhatsApp,
        Kind::Sms => ChannelKind::Sms,
        Kind::Email => ChannelKind::Email,
        Kind::WebChat => ChannelKind::WebChat,
    }
}

fn external_id(i: usize) -> String {
    format!("msg-{i}")
}

fn inbound(i: usize, s: Spec) -> InboundMessage {
    let p = s.person;
    let (endpoint, sender) = match s.kind {
        // WhatsApp sends bare international digits; SMS gateways use other spellings.
        Kind::WhatsApp => ("wa-main", Address::phone(format!("49151{p:08}"))),
        Kind::Sms => ("sms-main", Address::phone(format!("0049 151 {p:08}"))),
        Kind::Email => ("support-inbox", Address::email(format!("Person.{p}@Example.org"))),
        Kind::WebChat => ("site-widget", Address::platform("site-widget", format!("visitor-{p}"))),
    };
    InboundMessage::new(
        channel(s.kind),
        EndpointId::new(endpoint).unwrap(),
        sender,
        external_id(i),
        Content::text(format!("message {i} from person {p}")),
    )
}

#[test]
fn eight_threads_ingest_100k_deliveries_with_cross_thread_duplicates() {
    let started = std::time::Instant::now();
    let store = InMemoryStore::new();
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()));
    let engine = Engine::builder(Arc::new(store.clone())).clock(clock).build();
    let tenant = TenantId::new("stress").unwrap();

    // The messages: people overlap across channels (phones on both WhatsApp and SMS).
    let mut rng = Rng(0x5eed);
    let specs: Vec<Spec> = (0..DISTINCT)
        .map(|_| {
            let kind = match rng.index(10) {
                0..=3 => Kind::WhatsApp,
                4..=5 => Kind::Sms,
                6..=7 => Kind::Email,
                _ => Kind::WebChat,
            };
            Spec { person: rng.index(PEOPLE), kind }
        })
        .collect();

    // Deliveries per thread, ordered by a nominal time: the original of message i goes to
    // thread i % 8 at time i; a repeat goes to another thread at nearly the same time, so the
    // two deliveries race.
    let mut plans: Vec<Vec<(usize, usize)>> = vec![Vec::new(); THREADS];
    for i in 0..DISTINCT {
        plans[i % THREADS].push((i * 4, i));
    }
    let mut repeated = HashSet::new();
    while repeated.len() < REPEATS {
        let i = rng.index(DISTINCT);
        if repeated.insert(i) {
            let other = (i % THREADS + 1 + rng.index(THREADS - 1)) % THREADS;
            plans[other].push((i * 4 + rng.index(3), i));
        }
    }
    for plan in &mut plans {
        plan.sort_unstable();
    }
    assert_eq!(plans.iter().map(Vec::len).sum::<usize>(), TOTAL);

    let specs = Arc::new(specs);
    let handles: Vec<_> = plans
        .into_iter()
        .map(|plan| {
            let (engine, tenant, specs) = (engine.clone(), tenant.clone(), specs.clone());
            std::thread::spawn(move || {
                futures::executor::block_on(async {
                    let mut outcomes: Vec<(usize, IngestOutcome)> = Vec::with_capacity(plan.len());
                    for (_, i) in plan {
                        let out = engine
                            .ingest(&tenant, inbound(i, specs[i]))
                            .await
                            .unwrap_or_else(|e| panic!("ingest of message {i} failed: {e:?}"));
                        outcomes.push((i, out));
                    }
                    outcomes
                })
            })
        })
        .collect();
    let outcomes: Vec<(usize, IngestOutcome)> =
        handles.into_iter().flat_map(|h| h.join().expect("an ingest thread panicked")).collect();
    let ingest_time = started.elapsed();
    assert_eq!(outcomes.len(), TOTAL);

    // Outcomes: per message exactly one first delivery; the repeat reports the same message.
    let mut by_message: HashMap<usize, Vec<&IngestOutcome>> = HashMap::new();
    for (i, out) in &outcomes {
        by_message.entry(*i).or_default().push(out);
    }
    assert_eq!(by_message.len(), DISTINCT);
    let mut message_of: HashMap<usize, MessageId> = HashMap::new();
    for (i, outs) in &by_message {
        let expected_deliveries = if repeated.contains(i) { 2 } else { 1 };
        assert_eq!(outs.len(), expected_deliveries, "message {i}");
        assert_eq!(outs.iter().filter(|o| !o.duplicate).count(), 1, "message {i}: exactly one first delivery");
        assert!(outs.iter().all(|o| o.message == outs[0].message), "message {i}: deliveries disagree on the id");
        assert!(
            outs.iter().all(|o| o.customer == outs[0].customer),
            "message {i}: deliveries disagree on the customer"
        );
        assert!(
            outs.iter().all(|o| o.conversation == outs[0].conversation),
            "message {i}: deliveries disagree on the conversation"
        );
        message_of.insert(*i, outs[0].message);
    }
    assert_eq!(outcomes.iter().filter(|(_, o)| o.duplicate).count(), REPEATS);
    let distinct_ids: HashSet<MessageId> = message_of.values().copied().collect();
    assert_eq!(distinct_ids.len(), DISTINCT, "two external ids share a stored message");

    // The store: exactly the distinct messages, each findable by its provider id.
    futures::executor::block_on(async {
        for (i, s) in specs.iter().enumerate() {
            let m = store
                .message_by_external_id(&tenant, &channel(s.kind), &external_id(i))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("message {i} was lost"));
            assert_eq!(m.id, message_of[&i]);
            assert_eq!(m.content, inbound(i, *s).content);
        }
    });

    let dump = store.dump();
    let d = &dump[tenant.as_str()];
    let messages: Vec<Message> = serde_json::from_value(d["messages"].clone()).unwrap();
    let conversations: Vec<Conversation> = serde_json::from_value(d["conversations"].clone()).unwrap();
    let customers: Vec<Customer> = serde_json::from_value(d["customers"].clone()).unwrap();
    let identities: Vec<Identity> = serde_json::from_value(d["identities"].clone()).unwrap();
    assert_eq!(messages.len(), DISTINCT);
    assert_eq!(d["message_keys"].as_array().unwrap().len(), DISTINCT);
    let stored_externals: HashSet<&str> = messages.iter().filter_map(|m| m.external_id.as_deref()).collect();
    assert_eq!(stored_externals.len(), DISTINCT);

    // Conversation counters agree with the messages they hold.
    let total: u64 = conversations.iter().map(|c| u64::from(c.message_count)).sum();
    assert_eq!(total, DISTINCT as u64);
    let mut per_conversation: HashMap<ConversationId, u32> = HashMap::new();
    for m in &messages {
        *per_conversation.entry(m.conversation).or_default() += 1;
    }
    for c in &conversations {
        assert_eq!(per_conversation.get(&c.id).copied().unwrap_or(0), c.message_count, "conversation {}", c.id);
        let by_channel: u32 = c.channels.iter().map(|u| u.inbound + u.outbound).sum();
        assert_eq!(by_channel, c.message_count, "conversation {}", c.id);
    }

    // Identities: one per (channel, address) used; one customer per carrier-asserted phone,
    // shared by its WhatsApp and SMS identities; no customer without an identity.
    let used: HashSet<(Kind, usize)> = specs.iter().map(|s| (s.kind, s.person)).collect();
    assert_eq!(identities.len(), used.len());
    let mut phone_customer: HashMap<usize, CustomerId> = HashMap::new();
    futures::executor::block_on(async {
        for &(kind, p) in &used {
            if !matches!(kind, Kind::WhatsApp | Kind::Sms) {
                continue;
            }
            let address = NormalizedAddress { kind: AddressKind::Phone, value: e164(p) };
            let identity = store
                .identity_by_address(&tenant, &channel(kind), &address)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{kind:?} identity of {} missing", e164(p)));
            assert_eq!(identity.verification, Verification::CarrierAsserted);
            let owner = *phone_customer.entry(p).or_insert(identity.customer);
            assert_eq!(identity.customer, owner, "the WhatsApp and SMS identities of {} split", e164(p));
        }
    });
    let phone_customers: HashSet<CustomerId> = phone_customer.values().copied().collect();
    assert_eq!(phone_customers.len(), phone_customer.len(), "two phones share a customer");
    let emails = used.iter().filter(|(k, _)| *k == Kind::Email).count();
    let visitors = used.iter().filter(|(k, _)| *k == Kind::WebChat).count();
    // Unverified emails and anonymous visitors never link: one customer each.
    assert_eq!(customers.len(), phone_customer.len() + emails + visitors);
    let owners: HashSet<CustomerId> = identities.iter().map(|i| i.customer).collect();
    assert!(customers.iter().all(|c| owners.contains(&c.id)), "a customer without any identity was left behind");
    for (i, out) in &outcomes {
        let s = specs[*i];
        if matches!(s.kind, Kind::WhatsApp | Kind::Sms) {
            assert_eq!(out.customer, phone_customer[&s.person], "message {i} went to the wrong customer");
        }
    }

    // The outbox: exactly one MessageReceived per stored message, numbered without gaps.
    let events = futures::executor::block_on(store.events_after(&tenant, 0, usize::MAX)).unwrap();
    assert!(events.iter().enumerate().all(|(n, e)| e.seq == n as u64 + 1), "event sequence has gaps");
    let mut received: HashMap<MessageId, usize> = HashMap::new();
    let mut created = 0;
    for e in &events {
        match &e.event {
            Event::MessageReceived { message, .. } => *received.entry(*message).or_default() += 1,
            Event::CustomerCreated { .. } => created += 1,
            _ => {}
        }
    }
    assert_eq!(received.len(), DISTINCT);
    assert!(received.values().all(|n| *n == 1), "a message was announced twice");
    assert_eq!(received.keys().copied().collect::<HashSet<_>>(), distinct_ids);
    assert_eq!(created, customers.len(), "one CustomerCreated per stored customer");

    eprintln!(
        "stress: {TOTAL} deliveries on {THREADS} threads ingested in {ingest_time:?}, checked in {:?}",
        started.elapsed()
    );
}
