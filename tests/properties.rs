//! Property tests of the ingest invariants: idempotent delivery under retries and reordering,
//! forward-only delivery state, and "bad input gives a typed error and changes nothing".

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use touchpoint::clock::ManualClock;
use touchpoint::events::StoredEvent;
use touchpoint::model::*;
use touchpoint::store::InMemoryStore;
use touchpoint::{Engine, Error, OutboundMessage};

mod common;
use common::{canonical, t0};

fn engine() -> (Engine, InMemoryStore) {
    let store = InMemoryStore::new();
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = Engine::builder(Arc::new(store.clone())).clock(clock).build();
    (engine, store)
}

fn tenant() -> TenantId {
    TenantId::new("prop-tenant").unwrap()
}

fn config(cases: u32) -> ProptestConfig {
    // No regression files: this suite must not write outside its own test file.
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------------------------
// (a) Duplicate delivery, shuffled and interleaved, equals one clean delivery of each message.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Spec {
    person: usize,
    kind: u8,
    claim: bool,
    named: bool,
    body: String,
    copies: usize,
}

fn spec() -> impl Strategy<Value = Spec> {
    (0usize..4, 0u8..6, any::<bool>(), any::<bool>(), "[a-zA-Z0-9 ]{0,24}", 1usize..=5)
        .prop_map(|(person, kind, claim, named, body, copies)| Spec { person, kind, claim, named, body, copies })
}

/// The message of spec `i` (external id `ext`).
fn inbound(i: usize, s: &Spec, ext: &str) -> InboundMessage {
    let p = s.person;
    let (channel, endpoint, sender) = match s.kind {
        // The same phone in two spellings on WhatsApp and SMS: carrier-asserted, links.
        0 => (ChannelKind::WhatsApp, "wa-main", Address::phone(format!("44770090{p:04}"))),
        1 => (ChannelKind::Sms, "sms-main", Address::phone(format!("+44 7700 90{p:04}"))),
        2 => (ChannelKind::Email, "support-inbox", Address::email(format!("Person.{p}@Example.COM"))),
        3 => (ChannelKind::WebChat, "site-widget", Address::platform("site-widget", format!("visitor-{p}"))),
        4 => (ChannelKind::Messenger, "fb-page", Address::platform("page-1", format!("psid-{p}"))),
        _ => (ChannelKind::Telegram, "tg-bot", Address::platform("bot-1", format!("tg-{p}"))),
    };
    let mut msg = InboundMessage::new(
        channel,
        EndpointId::new(endpoint).unwrap(),
        sender,
        ext,
        Content::text(format!("message {i}: {}", s.body)),
    );
    if s.claim {
        msg = msg.with_claim(CustomerKey::ExternalId(format!("user-{p}")), Verification::Verified);
    }
    if s.named {
        msg = msg.with_sender_name(format!("Person {p}"));
    }
    msg
}

/// External ids: consecutive specs share one when they are on different channels (the
/// idempotency key is per channel), otherwise each gets its own.
fn external_ids(specs: &[Spec]) -> Vec<String> {
    let mut taken = HashSet::new();
    let mut out = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let channel = inbound(i, s, "x").channel;
        let mut ext = format!("m{}", i / 2);
        if !taken.insert((channel.clone(), ext.clone())) {
            ext = format!("m{i}-own");
            assert!(taken.insert((channel, ext.clone())));
        }
        out.push(ext);
    }
    out
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct MessageP {
    external_id: Option<String>,
    channel: String,
    endpoint: String,
    direction: String,
    author: String,
    content: String,
    delivery: String,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ConversationP {
    origin: String,
    status: String,
    subject: Option<String>,
    message_count: u32,
    channels: Vec<(String, u32, u32)>,
    sessions: Vec<(String, String)>,
    last_inbound_via: Option<(String, String)>,
    handler: Option<String>,
    messages: Vec<MessageP>,
}

/// (channel, normalised address, raw address, verification, display name, endpoints)
type IdentityP = (String, String, String, String, Option<String>, Vec<String>);

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct CustomerP {
    identities: Vec<IdentityP>,
    name: Option<String>,
    external_id: Option<String>,
    state: String,
    blocked: bool,
    conversations: Vec<ConversationP>,
}

#[derive(Debug, PartialEq, Eq)]
struct Projection {
    customers: Vec<CustomerP>,
    messages: usize,
    message_keys: usize,
    thread_keys: usize,
    external_ids: BTreeMap<String, Vec<String>>,
    event_types: Vec<String>,
}

/// The tenant's stored state with generated ids and timestamps replaced by the natural keys
/// of the records they point at.
fn projection(store: &InMemoryStore, tenant: &TenantId) -> Projection {
    let dump = store.dump();
    let d = &dump[tenant.as_str()];
    let customers: Vec<Customer> = serde_json::from_value(d["customers"].clone()).unwrap();
    let identities: Vec<Identity> = serde_json::from_value(d["identities"].clone()).unwrap();
    let conversations: Vec<Conversation> = serde_json::from_value(d["conversations"].clone()).unwrap();
    let mut messages: Vec<Message> = serde_json::from_value(d["messages"].clone()).unwrap();
    let events: Vec<StoredEvent> = serde_json::from_value(d["events"].clone()).unwrap();
    messages.sort_by_key(|m| m.id);

    let identity_key: HashMap<IdentityId, String> =
        identities.iter().map(|i| (i.id, format!("{}|{}", i.channel, i.address.value))).collect();
    let ikey = |id: &IdentityId| identity_key.get(id).cloned().unwrap_or_else(|| "<deleted identity>".into());
    let customer_key: HashMap<CustomerId, String> = customers
        .iter()
        .map(|c| {
            let mut keys: Vec<String> = identities.iter().filter(|i| i.customer == c.id).map(|i| ikey(&i.id)).collect();
            keys.sort();
            (c.id, keys.join(","))
        })
        .collect();

    let project_message = |m: &Message| MessageP {
        external_id: m.external_id.clone(),
        channel: m.channel.to_string(),
        endpoint: m.endpoint.to_string(),
        direction: format!("{:?}", m.direction),
        author: match &m.author {
            Author::Customer(i) => ikey(i),
            other => format!("{other:?}"),
        },
        content: serde_json::to_string(&m.content).unwrap(),
        delivery: format!("{:?}", m.delivery),
    };
    let project_conversation = |c: &Conversation| ConversationP {
        origin: c.origin.to_string(),
        status: c.status.name().to_owned(),
        subject: c.subject.clone(),
        message_count: c.message_count,
        channels: c.channels.iter().map(|u| (u.channel.to_string(), u.inbound, u.outbound)).collect(),
        sessions: c.sessions.iter().map(|(e, i)| (e.to_string(), ikey(i))).collect(),
        last_inbound_via: c.last_inbound_via.as_ref().map(|(e, i)| (e.to_string(), ikey(i))),
        handler: c.handler.as_ref().map(|h| format!("{h:?}")),
        messages: messages.iter().filter(|m| m.conversation == c.id).map(project_message).collect(),
    };
    let mut projected: Vec<CustomerP> = customers
        .iter()
        .map(|c| {
            let mut ids: Vec<_> = identities
                .iter()
                .filter(|i| i.customer == c.id)
                .map(|i| {
                    (
                        i.channel.to_string(),
                        i.address.value.clone(),
                        i.raw_address.clone(),
                        format!("{:?}", i.verification),
                        i.display_name.clone(),
                        i.endpoints.iter().map(|e| e.endpoint.to_string()).collect(),
                    )
                })
                .collect();
            ids.sort();
            let mut convs: Vec<ConversationP> =
                conversations.iter().filter(|x| x.customer == c.id).map(project_conversation).collect();
            convs.sort();
            CustomerP {
                identities: ids,
                name: c.name.clone(),
                external_id: c.external_id.clone(),
                state: match &c.state {
                    CustomerState::Active => "active".into(),
                    CustomerState::Merged { into, .. } => format!("merged into {}", customer_key[into]),
                    CustomerState::Erased { .. } => "erased".into(),
                },
                blocked: c.blocked,
                conversations: convs,
            }
        })
        .collect();
    projected.sort();
    let external_ids = customers
        .iter()
        .filter_map(|c| c.external_id.clone().map(|x| (x, customer_key[&c.id].clone())))
        .fold(BTreeMap::<String, Vec<String>>::new(), |mut m, (x, c)| {
            m.entry(x).or_default().push(c);
            m
        });
    Projection {
        customers: projected,
        messages: messages.len(),
        message_keys: d["message_keys"].as_array().unwrap().len(),
        thread_keys: d["thread_keys"].as_array().unwrap().len(),
        external_ids,
        event_types: events
            .iter()
            .map(|e| serde_json::to_value(&e.event).unwrap()["type"].as_str().unwrap().to_owned())
            .collect(),
    }
}

/// Specs plus a shuffled delivery order in which spec `i` appears `copies` times.
fn deliveries() -> impl Strategy<Value = (Vec<Spec>, Vec<usize>)> {
    prop::collection::vec(spec(), 1..14).prop_flat_map(|specs| {
        let order: Vec<usize> = specs.iter().enumerate().flat_map(|(i, s)| std::iter::repeat_n(i, s.copies)).collect();
        (Just(specs), Just(order).prop_shuffle())
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn repeated_shuffled_delivery_equals_one_clean_delivery((specs, order) in deliveries()) {
        let t = tenant();
        let ext = external_ids(&specs);
        let msgs: Vec<InboundMessage> = specs.iter().enumerate().map(|(i, s)| inbound(i, s, &ext[i])).collect();

        // Delivered with retries, in shuffled order.
        let (noisy, noisy_store) = engine();
        let mut first: HashMap<usize, MessageId> = HashMap::new();
        let mut first_order = Vec::new();
        futures::executor::block_on(async {
            for &i in &order {
                let out = noisy.ingest(&t, msgs[i].clone()).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                match first.get(&i) {
                    None => {
                        prop_assert!(!out.duplicate, "first delivery of {} reported as duplicate", i);
                        first.insert(i, out.message);
                        first_order.push(i);
                    }
                    Some(m) => {
                        prop_assert!(out.duplicate, "repeat of {} not reported as duplicate", i);
                        prop_assert_eq!(out.message, *m);
                    }
                }
            }
            Ok::<(), TestCaseError>(())
        })?;

        // Delivered once each, in the order of first delivery.
        let (clean, clean_store) = engine();
        futures::executor::block_on(async {
            for &i in &first_order {
                let out = clean.ingest(&t, msgs[i].clone()).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(!out.duplicate);
            }
            Ok::<(), TestCaseError>(())
        })?;

        // Every message stored exactly once, findable by its provider id.
        let noisy_p = projection(&noisy_store, &t);
        prop_assert_eq!(noisy_p.messages, specs.len());
        prop_assert_eq!(noisy_p.message_keys, specs.len());
        futures::executor::block_on(async {
            for (i, m) in msgs.iter().enumerate() {
                let stored = noisy.store().message_by_external_id(&t, &m.channel, &m.external_id).await.unwrap();
                prop_assert_eq!(stored.map(|s| s.id), Some(first[&i]));
            }
            Ok::<(), TestCaseError>(())
        })?;
        let total: u32 = noisy_p.customers.iter().flat_map(|c| &c.conversations).map(|c| c.message_count).sum();
        prop_assert_eq!(total as usize, specs.len());

        let clean_p = projection(&clean_store, &t);
        prop_assert_eq!(noisy_p, clean_p);
    }
}

/// The smallest case the property above shrinks to, kept as a plain regression test: a phone
/// already held (carrier-asserted) by one customer writes on another channel with a verified
/// external id of a different customer. The message must be stored (attributed to the verified
/// customer, the phone kept unverified for them or moved), never lost with a conflict.
#[test]
fn verified_sign_in_from_a_phone_held_by_another_customer_is_not_lost() {
    let t = tenant();
    let (engine, store) = engine();
    futures::executor::block_on(async {
        let chat = InboundMessage::new(
            ChannelKind::WebChat,
            EndpointId::new("site-widget").unwrap(),
            Address::platform("site-widget", "visitor-3"),
            "c1",
            Content::text("signed in on the web"),
        )
        .with_claim(CustomerKey::ExternalId("user-3".into()), Verification::Verified);
        let signed_in = engine.ingest(&t, chat).await.unwrap();
        let wa = InboundMessage::new(
            ChannelKind::WhatsApp,
            EndpointId::new("wa-main").unwrap(),
            Address::phone("447700900003"),
            "w1",
            Content::text("hello from WhatsApp"),
        );
        let phone_owner = engine.ingest(&t, wa).await.unwrap();
        assert_ne!(phone_owner.customer, signed_in.customer);
        let sms = InboundMessage::new(
            ChannelKind::Sms,
            EndpointId::new("sms-main").unwrap(),
            Address::phone("+44 7700 900003"),
            "s1",
            Content::text("hello from SMS, signed in"),
        )
        .with_claim(CustomerKey::ExternalId("user-3".into()), Verification::Verified);
        let before = canonical(&store.dump());
        let out = engine.ingest(&t, sms).await;
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                assert_eq!(canonical(&store.dump()), before, "a failed ingest changed the store");
                panic!("a valid SMS was not stored (message lost): {e:?}");
            }
        };
        assert!(!out.duplicate);
        let stored = engine.store().message_by_external_id(&t, &ChannelKind::Sms, "s1").await.unwrap();
        assert_eq!(stored.map(|m| m.id), Some(out.message));
    });
}

// ---------------------------------------------------------------------------------------------
// (b) Delivery state only moves forward.
// ---------------------------------------------------------------------------------------------

fn delivery_state() -> impl Strategy<Value = DeliveryState> {
    prop_oneof![
        Just(DeliveryState::Pending),
        Just(DeliveryState::Sent),
        Just(DeliveryState::Delivered),
        Just(DeliveryState::Read),
        (prop::option::of("[0-9]{3}"), "[a-z ]{0,8}").prop_map(|(code, reason)| DeliveryState::Failed { code, reason }),
    ]
}

fn rank(s: &DeliveryState) -> u8 {
    match s {
        DeliveryState::Pending => 0,
        DeliveryState::Sent => 1,
        DeliveryState::Delivered => 2,
        DeliveryState::Read => 3,
        DeliveryState::Failed { .. } => 4,
    }
}

fn is_failed(s: &DeliveryState) -> bool {
    matches!(s, DeliveryState::Failed { .. })
}

/// The documented rule: the highest of `Pending < Sent < Delivered < Read` seen, unless a
/// failure arrives before `Read` — then the first failure, for good.
fn expected(initial: &DeliveryState, receipts: &[DeliveryState]) -> DeliveryState {
    // A read message was delivered: `Read` wins over a failure in either order.
    if *initial == DeliveryState::Read || receipts.contains(&DeliveryState::Read) {
        return DeliveryState::Read;
    }
    if is_failed(initial) {
        return initial.clone();
    }
    let mut best = initial.clone();
    for r in receipts {
        if is_failed(r) {
            if best != DeliveryState::Read {
                return r.clone();
            }
        } else if rank(r) > rank(&best) {
            best = r.clone();
        }
    }
    best
}

/// One step is allowed: no change, a step up the ladder, a first failure before `Read`, or
/// `Read` after a failure.
fn step_is_forward(before: &DeliveryState, after: &DeliveryState) -> bool {
    before == after
        || (is_failed(before) && *after == DeliveryState::Read)
        || (!is_failed(before) && !is_failed(after) && rank(after) > rank(before))
        || (!is_failed(before) && *before != DeliveryState::Read && is_failed(after))
}

fn fold(initial: &DeliveryState, receipts: &[DeliveryState]) -> Result<DeliveryState, TestCaseError> {
    let mut state = initial.clone();
    for r in receipts {
        let next = state.advance(r.clone());
        prop_assert!(step_is_forward(&state, &next), "{:?} --{:?}--> {:?} moved backwards", state, r, next);
        prop_assert!(next == state || next == *r, "advance invented a state: {:?} -> {:?}", state, next);
        if state.is_final() {
            prop_assert_eq!(&next, &state, "a final state changed");
        }
        state = next;
    }
    Ok(state)
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn delivery_state_never_moves_backwards(
        initial in delivery_state(),
        receipts in prop::collection::vec(delivery_state(), 0..24),
    ) {
        let end = fold(&initial, &receipts)?;
        prop_assert_eq!(&end, &expected(&initial, &receipts));

        // Without failures the order of receipts does not matter: the result is the maximum,
        // the same as applying the sorted sequence.
        let plain: Vec<DeliveryState> = receipts.iter().filter(|r| !is_failed(r)).cloned().collect();
        if !is_failed(&initial) {
            let mut sorted = plain.clone();
            sorted.sort_by_key(rank);
            let max = sorted.last().filter(|m| rank(m) > rank(&initial)).cloned().unwrap_or_else(|| initial.clone());
            let reversed: Vec<DeliveryState> = plain.iter().rev().cloned().collect();
            let a = fold(&initial, &plain)?;
            prop_assert_eq!(&a, &max);
            prop_assert_eq!(&fold(&initial, &sorted)?, &max);
            prop_assert_eq!(&fold(&initial, &reversed)?, &max);
        }
    }

    /// The same rule through the engine: receipts for a recorded outbound message.
    #[test]
    fn engine_delivery_receipts_never_move_backwards(
        receipts in prop::collection::vec(delivery_state(), 0..12),
    ) {
        let t = tenant();
        let (engine, store) = engine();
        futures::executor::block_on(async {
            let inbound = InboundMessage::new(
                ChannelKind::Sms,
                EndpointId::new("sms-main").unwrap(),
                Address::phone("+447700900123"),
                "in-1",
                Content::text("hello"),
            );
            let out = engine.ingest(&t, inbound).await.unwrap();
            let agent = AgentId::new("agent-1").unwrap();
            let sent = engine
                .record_outbound(&t, out.conversation, OutboundMessage::agent(agent, Content::text("hi")).with_external_id("out-1"))
                .await
                .unwrap();
            prop_assert_eq!(&sent.delivery, &DeliveryState::Pending);
            let events_before = store.dump()[t.as_str()]["events"].as_array().unwrap().len();
            let mut state = DeliveryState::Pending;
            let mut changes = 0;
            for r in &receipts {
                let m = engine.update_delivery(&t, &ChannelKind::Sms, "out-1", r.clone()).await.unwrap();
                prop_assert!(step_is_forward(&state, &m.delivery), "{:?} -> {:?}", state, m.delivery);
                if m.delivery != state {
                    changes += 1;
                }
                state = m.delivery;
            }
            prop_assert_eq!(&state, &expected(&DeliveryState::Pending, &receipts));
            let stored = engine.message(&t, sent.id).await.unwrap();
            prop_assert_eq!(&stored.delivery, &state);
            let events_after = store.dump()[t.as_str()]["events"].as_array().unwrap().len();
            prop_assert_eq!(events_after - events_before, changes, "one DeliveryUpdated per change");
            Ok::<(), TestCaseError>(())
        })?;
    }
}

// ---------------------------------------------------------------------------------------------
// (c) No input makes ingest panic; an error changes nothing.
// ---------------------------------------------------------------------------------------------

fn weird() -> BoxedStrategy<String> {
    prop_oneof![
        2 => Just(String::new()),
        4 => any::<String>(),
        3 => "\\PC{0,40}",
        2 => "[\\x00-\\x1f\\x7f \\t\\n\u{a0}\u{2028}\u{feff}]{0,8}",
        3 => "[+0-9 ()./-]{0,30}",
        2 => "[0-9]{0,20}",
        3 => "[a-zA-Z0-9.+_\u{e9}-]{0,20}@[a-zA-Z0-9.\u{fc}-]{0,20}",
        2 => "[a-z0-9:]{0,10}",
        2 => (prop_oneof![Just(64usize * 1024), Just(64 * 1024 + 1), Just(300_000), 0usize..2048], any::<char>())
            .prop_map(|(n, c)| std::iter::repeat_n(c, n / c.len_utf8().max(1)).collect()),
    ]
    .boxed()
}

fn verification() -> BoxedStrategy<Verification> {
    prop_oneof![Just(Verification::Unverified), Just(Verification::CarrierAsserted), Just(Verification::Verified)]
        .boxed()
}

fn channel() -> BoxedStrategy<ChannelKind> {
    prop_oneof![
        Just(ChannelKind::WhatsApp),
        Just(ChannelKind::Sms),
        Just(ChannelKind::Voice),
        Just(ChannelKind::Email),
        Just(ChannelKind::WebChat),
        Just(ChannelKind::Messenger),
        Just(ChannelKind::Telegram),
        weird().prop_map(ChannelKind::Custom),
    ]
    .boxed()
}

fn address() -> BoxedStrategy<Address> {
    prop_oneof![
        weird().prop_map(Address::phone),
        weird().prop_map(Address::email),
        (prop::option::of(weird()), weird()).prop_map(|(scope, id)| Address::Platform { scope, id }),
    ]
    .boxed()
}

fn content() -> BoxedStrategy<Content> {
    prop_oneof![
        4 => weird().prop_map(Content::text),
        1 => (weird(), prop::option::of(weird())).prop_map(|(url, caption)| Content::Media {
            media: MediaKind::Image,
            url,
            mime_type: None,
            caption,
            filename: None,
        }),
        1 => (any::<f64>(), any::<f64>(), prop::option::of(weird())).prop_map(|(latitude, longitude, name)| {
            Content::Location { latitude, longitude, name, address: None }
        }),
        1 => (weird(), prop::collection::vec((weird(), weird()), 0..3)).prop_map(|(body, options)| Content::Choices {
            body,
            options: options.into_iter().map(|(id, title)| ChoiceOption { id, title, description: None }).collect(),
            selected: None,
        }),
    ]
    .boxed()
}

fn claim() -> BoxedStrategy<Claim> {
    (
        prop_oneof![
            weird().prop_map(CustomerKey::ExternalId),
            weird().prop_map(CustomerKey::Email),
            weird().prop_map(CustomerKey::Phone),
        ],
        verification(),
    )
        .prop_map(|(key, verification)| Claim { key, verification })
        .boxed()
}

fn hints() -> BoxedStrategy<ThreadHints> {
    (
        prop::option::of(weird()),
        prop::option::of(weird()),
        prop::option::of(weird()),
        prop::collection::vec(weird(), 0..4),
        prop::option::of(weird()),
    )
        .prop_map(|(provider_thread_id, reply_token, in_reply_to, references, subject)| ThreadHints {
            provider_thread_id,
            reply_token,
            in_reply_to,
            references,
            subject,
        })
        .boxed()
}

fn hostile_message() -> BoxedStrategy<InboundMessage> {
    (
        (channel(), address(), verification(), weird(), content()),
        (prop::option::of(weird()), prop::collection::vec(claim(), 0..4), hints(), 0u8..8),
    )
        .prop_map(|((channel, sender, verification, external_id, content), (sender_name, claims, thread, extra))| {
            let mut msg = InboundMessage::new(channel, EndpointId::new("ep-1").unwrap(), sender, external_id, content)
                .with_verification(verification)
                .with_thread(thread);
            msg.sender_name = sender_name;
            msg.claims = claims;
            // Now and then: more claims than allowed.
            if extra == 0 {
                msg.claims = (0..17)
                    .map(|i| Claim {
                        key: CustomerKey::ExternalId(format!("x{i}")),
                        verification: Verification::Verified,
                    })
                    .collect();
            }
            msg
        })
        .boxed()
}

fn seeded() -> (Engine, InMemoryStore, TenantId) {
    let t = tenant();
    let (engine, store) = engine();
    futures::executor::block_on(async {
        let a = InboundMessage::new(
            ChannelKind::WhatsApp,
            EndpointId::new("ep-1").unwrap(),
            Address::phone("+447700900001"),
            "seed-1",
            Content::text("seed one"),
        );
        let b = InboundMessage::new(
            ChannelKind::Email,
            EndpointId::new("ep-1").unwrap(),
            Address::email("seed@example.com"),
            "<seed-2@example.com>",
            Content::text("seed two"),
        )
        .with_claim(CustomerKey::ExternalId("seed-user".into()), Verification::Verified);
        engine.ingest(&t, a).await.unwrap();
        engine.ingest(&t, b).await.unwrap();
    });
    (engine, store, t)
}

fn check_hostile(msg: InboundMessage) -> Result<(), TestCaseError> {
    let (engine, store, t) = seeded();
    let before = canonical(&store.dump());
    let result = futures::executor::block_on(engine.ingest(&t, msg.clone()));
    match result {
        Ok(out) => {
            prop_assert!(!out.duplicate);
            let stored = futures::executor::block_on(engine.message(&t, out.message)).unwrap();
            prop_assert_eq!(&stored.content, &msg.content);
            // A second delivery of an accepted message changes nothing.
            let after_first = canonical(&store.dump());
            let again = futures::executor::block_on(engine.ingest(&t, msg))
                .map_err(|e| TestCaseError::fail(format!("a retry of an accepted message failed: {e}")))?;
            prop_assert!(again.duplicate);
            prop_assert_eq!(again.message, out.message);
            prop_assert_eq!(canonical(&store.dump()), after_first);
        }
        Err(e) => {
            prop_assert!(
                matches!(e, Error::InvalidInput { .. } | Error::InvalidAddress { .. } | Error::Refused(_)),
                "bad input gave a non-input error: {e:?}"
            );
            prop_assert_eq!(canonical(&store.dump()), before, "a failed ingest changed the store ({})", e);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn hostile_input_never_panics_and_errors_change_nothing(msg in hostile_message()) {
        check_hostile(msg)?;
    }

    /// Plausible messages with exactly one hostile field, so that the other validations pass
    /// and the field reaches normalisation, resolution and storage.
    #[test]
    fn one_hostile_field_never_panics(field in 0u8..8, s in weird(), v in verification()) {
        let base = || InboundMessage::new(
            ChannelKind::WhatsApp,
            EndpointId::new("ep-1").unwrap(),
            Address::phone("+447700900002"),
            "ok-1",
            Content::text("fine"),
        );
        let msg = match field {
            0 => InboundMessage { sender: Address::phone(s), ..base() },
            1 => InboundMessage { channel: ChannelKind::Email, sender: Address::email(s), ..base() },
            2 => InboundMessage { channel: ChannelKind::WebChat, sender: Address::platform("w", s), ..base() },
            3 => InboundMessage { external_id: s, ..base() },
            4 => InboundMessage { content: Content::text(s), ..base() },
            5 => base().with_claim(CustomerKey::Phone(s), v),
            6 => base().with_claim(CustomerKey::Email(s), v),
            _ => base().with_claim(CustomerKey::ExternalId(s), v),
        };
        check_hostile(msg)?;
    }
}

#[test]
fn known_hostile_strings_never_panic_and_errors_change_nothing() {
    let nasty = [
        "",
        " ",
        "\0",
        "\u{7f}",
        "+",
        "++1",
        "+0",
        "00",
        "0000000000000000",
        "+999999999999999999",
        "+1 (((((",
        "@",
        "a@",
        "@b",
        "a@@b",
        "a@b..c",
        "\u{202e}evil@example.com",
        "İ@example.com",
    ];
    for s in nasty {
        for field in 0..3u8 {
            let mut msg = InboundMessage::new(
                ChannelKind::Sms,
                EndpointId::new("ep-1").unwrap(),
                Address::phone("+447700900003"),
                "k-1",
                Content::text("x"),
            );
            match field {
                0 => msg.sender = Address::phone(s),
                1 => msg.sender = Address::email(s),
                _ => msg.external_id = s.to_owned(),
            }
            if let Err(e) = check_hostile(msg) {
                panic!("{s:?} in field {field}: {e}");
            }
        }
    }
}
