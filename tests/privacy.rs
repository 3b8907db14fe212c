//! Export (GDPR art. 15/20) and erasure (art. 17): the export holds everything about the
//! customer; after erasure the store holds nothing personal about them, other customers are
//! untouched, and the same address starts afresh.

use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use touchpoint::clock::ManualClock;
use touchpoint::context::TimelinePage;
use touchpoint::events::Event;
use touchpoint::identity::Resolution;
use touchpoint::model::*;
use touchpoint::privacy::CustomerExport;
use touchpoint::store::{ChangeSet, Committed, InMemoryStore, Store};
use touchpoint::{CustomerPatch, Engine, Error, IngestOutcome, OutboundMessage, SurvivorRule};

mod common;
use common::{canonical, run, t0};

/// Personal data of Ana that must be gone after her erasure (raw and normalised spellings).
const ANA_PII: &[&str] = &[
    "+55 11 98765-4321",
    "5511987654321",
    "551187654321", // the lookup variant without the ninth digit
    "Ana.Souza@Example.COM",
    "ana.souza@example.com",
    "Ana.Work@Example.NET",
    "ana.work@example.net",
    "ana-visitor-77",
    "ana-psid-88",
    "Ana Souza-Privacy",
    "Ana FB-Alias",
    "ana-user-42",
    "ANA-ATTR-GOLD",
    "ANA-ACC-99817",
    "wamid.ANA-0001",
    "SM-ANA-0002",
    "ana-0003@mail.example.com",
    "chat-ANA-0004",
    "wamid.OUT-ANA-0005",
    "mid.ANA-0006",
    "ANA-TEXT-1",
    "ANA-TEXT-2",
    "ANA-TEXT-3",
    "ANA-TEXT-4",
    "ANA-REPLY-5",
    "ANA-TEXT-6",
    "ANA-SUBJECT-3",
    "ANA-THREAD-6",
];

const BOB_PII: &[&str] = &["+447700900555", "Bob Keeper", "bob@example.org", "BOB-TEXT-1", "BOB-TEXT-2", "bob-user-7"];

struct Setup {
    engine: Engine,
    store: InMemoryStore,
    tenant: TenantId,
    ana: CustomerId,
    /// The customer merged into Ana (now an alias).
    alias: CustomerId,
    bob: CustomerId,
    ana_identities: HashSet<IdentityId>,
    ana_conversations: HashSet<ConversationId>,
    ana_messages: HashSet<MessageId>,
}

fn ep(s: &str) -> EndpointId {
    EndpointId::new(s).unwrap()
}

fn setup() -> Setup {
    let store = InMemoryStore::new();
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = Engine::builder(Arc::new(store.clone())).clock(clock.clone()).build();
    let tenant = TenantId::new("shop").unwrap();
    let t = &tenant.clone();
    run(async {
        let mut outs: Vec<IngestOutcome> = Vec::new();
        let wa = InboundMessage::new(
            ChannelKind::WhatsApp,
            ep("wa-main"),
            Address::phone("+55 11 98765-4321"),
            "wamid.ANA-0001",
            Content::text("ANA-TEXT-1 my card was charged twice"),
        )
        .with_sender_name("Ana Souza-Privacy");
        outs.push(engine.ingest(t, wa).await.unwrap());
        let ana = outs[0].customer;
        clock.advance(chrono::Duration::minutes(1));
        let sms = InboundMessage::new(
            ChannelKind::Sms,
            ep("sms-main"),
            Address::phone("5511987654321"),
            "SM-ANA-0002",
            Content::text("ANA-TEXT-2 still waiting"),
        );
        outs.push(engine.ingest(t, sms).await.unwrap());
        engine
            .update_customer(
                t,
                ana,
                CustomerPatch {
                    external_id: Some(Some("ana-user-42".into())),
                    set_attributes: [
                        ("loyalty".to_owned(), Value::from("ANA-ATTR-GOLD")),
                        ("account".to_owned(), serde_json::json!({ "number": "ANA-ACC-99817" })),
                    ]
                    .into_iter()
                    .collect(),
                    ..CustomerPatch::default()
                },
            )
            .await
            .unwrap();
        clock.advance(chrono::Duration::minutes(1));
        let mail = InboundMessage::new(
            ChannelKind::Email,
            ep("support-inbox"),
            Address::email("Ana.Souza@Example.COM"),
            "<ana-0003@mail.example.com>",
            Content::text("ANA-TEXT-3 please refund"),
        )
        .with_claim(CustomerKey::ExternalId("ana-user-42".into()), Verification::Verified)
        .with_thread(ThreadHints { subject: Some("Refund ANA-SUBJECT-3".into()), ..ThreadHints::default() });
        outs.push(engine.ingest(t, mail).await.unwrap());
        clock.advance(chrono::Duration::minutes(1));
        let chat = InboundMessage::new(
            ChannelKind::WebChat,
            ep("shop-widget"),
            Address::platform("shop-widget", "ana-visitor-77"),
            "chat-ANA-0004",
            Content::text("ANA-TEXT-4 hello from the site"),
        )
        .with_claim(CustomerKey::ExternalId("ana-user-42".into()), Verification::Verified);
        outs.push(engine.ingest(t, chat).await.unwrap());
        let reply = engine
            .record_outbound(
                t,
                outs[0].conversation,
                OutboundMessage::agent(AgentId::new("agent-1").unwrap(), Content::text("ANA-REPLY-5 refund issued"))
                    .with_external_id("wamid.OUT-ANA-0005"),
            )
            .await
            .unwrap();
        engine.update_delivery(t, &ChannelKind::WhatsApp, "wamid.OUT-ANA-0005", DeliveryState::Read).await.unwrap();
        // Another profile of Ana on Messenger, merged into her.
        clock.advance(chrono::Duration::minutes(1));
        let fb = InboundMessage::new(
            ChannelKind::Messenger,
            ep("fb-page"),
            Address::platform("page-1", "ana-psid-88"),
            "mid.ANA-0006",
            Content::text("ANA-TEXT-6 from Facebook"),
        )
        .with_sender_name("Ana FB-Alias")
        .with_thread(ThreadHints { provider_thread_id: Some("ANA-THREAD-6".into()), ..ThreadHints::default() });
        outs.push(engine.ingest(t, fb).await.unwrap());
        let alias = outs[4].customer;
        assert_ne!(alias, ana);
        let plan = engine.merge_customers(t, ana, alias, SurvivorRule::First).await.unwrap();
        assert_eq!(plan.survivor, ana);
        let linked = engine
            .link_identity(t, ana, ChannelKind::Email, Address::email("Ana.Work@Example.NET"), Verification::Verified)
            .await
            .unwrap();
        for o in &outs {
            assert_eq!(engine.customer(t, o.customer).await.unwrap().id, ana, "setup: one Ana");
        }

        // Bob: another customer, whose data must survive Ana's erasure.
        let bob_wa = InboundMessage::new(
            ChannelKind::WhatsApp,
            ep("wa-main"),
            Address::phone("+447700900555"),
            "wamid.BOB-1",
            Content::text("BOB-TEXT-1 where is my parcel"),
        )
        .with_sender_name("Bob Keeper");
        let bob = engine.ingest(t, bob_wa).await.unwrap();
        let bob_mail = InboundMessage::new(
            ChannelKind::Email,
            ep("support-inbox"),
            Address::email("bob@example.org"),
            "<bob-2@example.org>",
            Content::text("BOB-TEXT-2 any news"),
        )
        .with_verification(Verification::Verified)
        .with_claim(CustomerKey::Phone("+447700900555".into()), Verification::CarrierAsserted);
        let bob2 = engine.ingest(t, bob_mail).await.unwrap();
        assert_eq!(bob2.customer, bob.customer);
        engine
            .update_customer(
                t,
                bob.customer,
                CustomerPatch { external_id: Some(Some("bob-user-7".into())), ..CustomerPatch::default() },
            )
            .await
            .unwrap();

        let mut ana_identities: HashSet<IdentityId> = outs.iter().map(|o| o.identity).collect();
        ana_identities.insert(linked.id);
        let ana_conversations: HashSet<ConversationId> = outs.iter().map(|o| o.conversation).collect();
        let mut ana_messages: HashSet<MessageId> = outs.iter().map(|o| o.message).collect();
        ana_messages.insert(reply.id);
        assert_eq!(ana_identities.len(), 6);
        assert_eq!(ana_conversations.len(), 5);
        assert_eq!(ana_messages.len(), 6);
        Setup { engine, store, tenant, ana, alias, bob: bob.customer, ana_identities, ana_conversations, ana_messages }
    })
}

fn without_export_time(e: &CustomerExport) -> Value {
    let mut v = serde_json::to_value(e).unwrap();
    v.as_object_mut().unwrap().remove("exported_at");
    canonical(&v)
}

#[test]
fn export_holds_every_identity_conversation_and_message_as_json() {
    let s = setup();
    let export = run(s.engine.export_customer(&s.tenant, s.ana)).unwrap();
    let json = export.to_json();

    // It parses back, as JSON and as the typed export, losslessly.
    let value: Value = serde_json::from_str(&json).expect("the export is valid JSON");
    let back: CustomerExport = serde_json::from_str(&json).expect("the export parses back");
    assert_eq!(back, export);
    assert_eq!(value["customer"]["id"], Value::from(s.ana.to_string()));

    let identities: HashSet<IdentityId> = back.identities.iter().map(|i| i.id).collect();
    let conversations: HashSet<ConversationId> = back.conversations.iter().map(|c| c.id).collect();
    let messages: HashSet<MessageId> = back.messages.iter().map(|m| m.id).collect();
    assert_eq!(identities, s.ana_identities);
    assert_eq!(conversations, s.ana_conversations);
    assert_eq!(messages, s.ana_messages);
    assert_eq!(back.messages.len(), s.ana_messages.len(), "a message exported twice");
    assert!(back.messages.windows(2).all(|w| w[0].id < w[1].id), "messages are not oldest first");
    assert!(back.identities.iter().all(|i| i.customer == s.ana));
    assert!(back.conversations.iter().all(|c| c.customer == s.ana));
    assert!(back.messages.iter().all(|m| s.ana_conversations.contains(&m.conversation)));
    let total: u32 = back.conversations.iter().map(|c| c.message_count).sum();
    assert_eq!(total as usize, back.messages.len());

    // Every piece of Ana's data is in it; nothing of Bob's is.
    // (Not in the export: the phone lookup variant, never stored, and the provider's thread id,
    // a routing key rather than data about the person.)
    for pii in ANA_PII.iter().filter(|p| !["551187654321", "ANA-THREAD-6"].contains(*p)) {
        assert!(json.contains(pii), "the export lacks {pii:?}");
    }
    for pii in BOB_PII {
        assert!(!json.contains(pii), "the export holds Bob's {pii:?}");
    }
    assert_eq!(back.customer.name.as_deref(), Some("Ana Souza-Privacy"));
    assert_eq!(back.customer.external_id.as_deref(), Some("ana-user-42"));
    assert_eq!(back.customer.attributes["loyalty"], Value::from("ANA-ATTR-GOLD"));

    // Through the merged-away id, the export is the survivor's.
    let via_alias = run(s.engine.export_customer(&s.tenant, s.alias)).unwrap();
    assert_eq!(without_export_time(&via_alias), without_export_time(&export));
}

#[test]
fn erasure_leaves_no_personal_data_and_spares_other_customers() {
    let s = setup();
    let (e, t) = (&s.engine, &s.tenant);
    let export = run(e.export_customer(t, s.ana)).unwrap();
    let bob_before = without_export_time(&run(e.export_customer(t, s.bob)).unwrap());

    // Everything personal the export showed, plus the known literals.
    let mut pii: Vec<String> = ANA_PII.iter().map(|s| (*s).to_owned()).collect();
    for i in &export.identities {
        pii.push(i.raw_address.clone());
        pii.push(i.address.value.clone());
        pii.extend(i.display_name.clone());
    }
    for c in &export.conversations {
        pii.extend(c.subject.clone());
        pii.push(c.reply_token.clone());
    }
    for m in &export.messages {
        pii.extend(m.external_id.clone());
        if let Content::Text { body } = &m.content {
            pii.push(body.clone());
        }
    }
    pii.extend(export.customer.name.clone());
    pii.extend(export.customer.external_id.clone());
    pii.push("ANA-ATTR-GOLD".into());
    pii.push("ANA-ACC-99817".into());
    let dump_before = serde_json::to_string(&s.store.dump()).unwrap();
    for p in &pii {
        assert!(dump_before.contains(p.as_str()) || p == "551187654321", "setup: {p:?} was never stored");
    }

    let report = run(e.erase_customer(t, s.ana)).unwrap();
    assert_eq!(report.customer, s.ana);
    assert_eq!(report.identities, s.ana_identities.len());
    assert_eq!(report.conversations, s.ana_conversations.len());
    assert_eq!(report.messages, s.ana_messages.len());

    let dump = s.store.dump();
    let text = serde_json::to_string(&dump).unwrap();
    let leaks: Vec<&String> = pii.iter().filter(|p| text.contains(p.as_str())).collect();
    assert!(leaks.is_empty(), "personal data left in the store after erasure: {leaks:?}");
    // No record that points at Ana's deleted data is left either.
    for id in s.ana_identities.iter().map(ToString::to_string).chain(s.ana_messages.iter().map(ToString::to_string)) {
        let in_records = ["identities", "messages", "conversations", "customers"]
            .iter()
            .any(|k| dump["shop"][*k].to_string().contains(&id));
        assert!(!in_records, "a stored record still refers to {id}");
    }

    // The tombstone: id, tenant and times only.
    let tomb = run(e.store().customer(t, s.ana)).unwrap().expect("a tombstone is kept");
    assert!(matches!(tomb.state, CustomerState::Erased { .. }));
    assert_eq!(tomb.name, None);
    assert_eq!(tomb.external_id, None);
    assert_eq!(tomb.language, None);
    assert_eq!(tomb.time_zone, None);
    assert!(tomb.attributes.is_empty());
    assert!(tomb.consent.is_empty());
    let tomb_json = serde_json::to_string(&tomb).unwrap();
    for p in &pii {
        assert!(!tomb_json.contains(p.as_str()), "the tombstone holds {p:?}");
    }
    assert!(run(e.store().identities_of(t, s.ana)).unwrap().is_empty());
    assert!(run(e.store().conversations_of(t, s.ana)).unwrap().is_empty());
    assert!(run(e.store().customer_by_external_id(t, "ana-user-42")).unwrap().is_none());

    // The engine reports the customer as erased, everywhere.
    assert!(matches!(run(e.customer(t, s.ana)), Err(Error::Erased(_))));
    assert!(matches!(run(e.customer_context(t, s.ana, TimelinePage::default())), Err(Error::Erased(_))));
    assert!(matches!(run(e.export_customer(t, s.ana)), Err(Error::Erased(_))));
    assert!(matches!(run(e.erase_customer(t, s.ana)), Err(Error::Erased(_))));
    for c in &s.ana_conversations {
        assert!(matches!(run(e.conversation(t, *c)), Err(Error::NotFound { .. })));
    }
    for m in &s.ana_messages {
        assert!(matches!(run(e.message(t, *m)), Err(Error::NotFound { .. })));
    }

    // Bob is untouched.
    let bob_after = without_export_time(&run(e.export_customer(t, s.bob)).unwrap());
    assert_eq!(bob_after, bob_before);
    for p in BOB_PII {
        assert!(text.contains(p), "Bob's {p:?} was erased too");
    }
}

#[test]
fn after_erasure_the_same_address_starts_a_new_customer_without_history() {
    let s = setup();
    let (e, t) = (&s.engine, &s.tenant);
    run(e.erase_customer(t, s.ana)).unwrap();
    run(async {
        let again = InboundMessage::new(
            ChannelKind::WhatsApp,
            ep("wa-main"),
            Address::phone("+5511987654321"),
            "wamid.ANA-NEW-1",
            Content::text("hello again"),
        );
        let out = e.ingest(t, again).await.unwrap();
        assert!(!out.duplicate);
        assert_ne!(out.customer, s.ana);
        assert_ne!(out.customer, s.alias);
        assert_ne!(out.customer, s.bob);
        assert_eq!(out.resolution, Resolution::Created);
        assert!(!s.ana_conversations.contains(&out.conversation));
        assert!(out.suspected_duplicates.is_empty());

        let fresh = e.customer(t, out.customer).await.unwrap();
        assert_eq!(fresh.name, None);
        assert_eq!(fresh.external_id, None);
        assert!(fresh.attributes.is_empty());
        let view = e.customer_context(t, out.customer, TimelinePage::default()).await.unwrap();
        assert_eq!(view.timeline.len(), 1);
        assert_eq!(view.timeline[0].id, out.message);
        assert_eq!(view.identities.len(), 1);
        assert_eq!(view.open_conversations.len() + view.past_conversations.len(), 1);
        let export = e.export_customer(t, out.customer).await.unwrap();
        assert_eq!(export.messages.len(), 1);
        assert_eq!(export.conversations.len(), 1);
        let json = export.to_json();
        for p in ANA_PII.iter().filter(|p| !p.contains("5511987654321") && !p.contains("98765-4321")) {
            assert!(!json.contains(p), "old history {p:?} came back");
        }
        // The old customer stays erased.
        assert!(matches!(e.customer(t, s.ana).await, Err(Error::Erased(_))));

        // Her former signed-in web chat starts over too.
        let chat = InboundMessage::new(
            ChannelKind::WebChat,
            ep("shop-widget"),
            Address::platform("shop-widget", "ana-visitor-77"),
            "chat-ANA-NEW-2",
            Content::text("hi"),
        )
        .with_claim(CustomerKey::ExternalId("ana-user-42".into()), Verification::Verified);
        let chat = e.ingest(t, chat).await.unwrap();
        assert_ne!(chat.customer, s.ana);
        let view = e.customer_context(t, chat.customer, TimelinePage::default()).await.unwrap();
        assert!(view.timeline.iter().all(|m| m.id == chat.message || m.id == out.message));
        assert!(view.timeline.iter().all(|m| !s.ana_messages.contains(&m.id)));
    });
}

#[test]
fn export_and_erase_of_another_tenants_customer_are_not_found() {
    let s = setup();
    let (e, t) = (&s.engine, &s.tenant);
    let other = TenantId::new("other-shop").unwrap();
    run(async {
        // The other tenant exists and has a customer of its own.
        let mine = InboundMessage::new(
            ChannelKind::WhatsApp,
            ep("wa-main"),
            Address::phone("+447700900777"),
            "wamid.OTHER-1",
            Content::text("other tenant"),
        );
        let mine = e.ingest(&other, mine).await.unwrap();
        let before = canonical(&s.store.dump());
        assert!(matches!(e.export_customer(&other, s.ana).await, Err(Error::NotFound { .. })));
        assert!(matches!(e.export_customer(&other, s.alias).await, Err(Error::NotFound { .. })));
        assert!(matches!(e.erase_customer(&other, s.ana).await, Err(Error::NotFound { .. })));
        assert!(matches!(e.erase_customer(&other, s.bob).await, Err(Error::NotFound { .. })));
        assert!(matches!(e.export_customer(t, mine.customer).await, Err(Error::NotFound { .. })));
        assert!(matches!(e.erase_customer(t, mine.customer).await, Err(Error::NotFound { .. })));
        assert_eq!(canonical(&s.store.dump()), before, "a refused export/erase changed the store");
        assert_eq!(e.customer(t, s.ana).await.unwrap().name.as_deref(), Some("Ana Souza-Privacy"));
        // An erased customer of one tenant is not even revealed as erased to another.
        e.erase_customer(t, s.bob).await.unwrap();
        assert!(matches!(e.export_customer(&other, s.bob).await, Err(Error::NotFound { .. })));
        assert!(matches!(e.customer(&other, s.bob).await, Err(Error::NotFound { .. })));
    });
}

/// A delivery failure's reason is free text from the provider and often names the recipient
/// ("+55… is not a WhatsApp user"). The outbox keeps events after an erasure, so they must not
/// carry it.
#[test]
fn erasure_leaves_no_personal_data_in_delivery_receipt_events() {
    let s = setup();
    let (e, t) = (&s.engine, &s.tenant);
    run(async {
        let export = e.export_customer(t, s.ana).await.unwrap();
        let wa = export.conversations.iter().find(|c| c.origin == ChannelKind::WhatsApp).unwrap().id;
        e.record_outbound(
            t,
            wa,
            OutboundMessage::agent(AgentId::new("agent-1").unwrap(), Content::text("ANA-REPLY-7"))
                .with_external_id("wamid.OUT-ANA-0007"),
        )
        .await
        .unwrap();
        let failed = DeliveryState::Failed {
            code: Some("131026".into()),
            reason: "recipient +5511987654321 (Ana Souza-Privacy) is not a WhatsApp user".into(),
        };
        e.update_delivery(t, &ChannelKind::WhatsApp, "wamid.OUT-ANA-0007", failed).await.unwrap();
        e.erase_customer(t, s.ana).await.unwrap();
    });
    let text = serde_json::to_string(&s.store.dump()).unwrap();
    for p in ["+5511987654321", "Ana Souza-Privacy", "wamid.OUT-ANA-0007", "ANA-REPLY-7"] {
        assert!(!text.contains(p), "{p:?} is still stored after erasure (in the event outbox)");
    }
}

/// A store that, once armed, runs an erasure of `customer` in the middle of the next commit
/// that matches, before applying that commit: a deterministic interleaving of an erasure with
/// a concurrent ingest.
#[derive(Debug)]
struct Interleave {
    engine: std::sync::OnceLock<Engine>,
    armed: std::sync::Mutex<Option<Armed>>,
}

#[derive(Debug)]
enum Armed {
    /// Erase this customer just before the next ingest commit is applied.
    EraseDuringIngest(TenantId, CustomerId),
    /// Ingest this message just before the next erasure commit is applied.
    IngestDuringErase(TenantId, Box<InboundMessage>),
    /// Erase this customer just before the next commit that records a routing event.
    EraseDuringRouting(TenantId, CustomerId),
}

#[async_trait::async_trait]
impl common::CommitHook for Interleave {
    async fn commit(&self, inner: &InMemoryStore, t: &TenantId, changes: ChangeSet) -> touchpoint::Result<Committed> {
        let is_ingest = changes.events.iter().any(|e| matches!(e, Event::MessageReceived { .. }));
        let is_erase = changes.events.iter().any(|e| matches!(e, Event::CustomerErased { .. }));
        let is_routing = changes.events.iter().any(|e| matches!(e, Event::Routing { .. }));
        let armed = {
            let mut slot = self.armed.lock().unwrap();
            match &*slot {
                Some(Armed::EraseDuringIngest(..)) if is_ingest => slot.take(),
                Some(Armed::IngestDuringErase(..)) if is_erase => slot.take(),
                Some(Armed::EraseDuringRouting(..)) if is_routing => slot.take(),
                _ => None,
            }
        };
        let engine = self.engine.get().expect("engine set").clone();
        match armed {
            Some(Armed::EraseDuringIngest(tenant, customer) | Armed::EraseDuringRouting(tenant, customer)) => {
                engine.erase_customer(&tenant, customer).await.expect("the interleaved erasure");
            }
            Some(Armed::IngestDuringErase(tenant, msg)) => {
                engine.ingest(&tenant, *msg).await.expect("the interleaved ingest");
            }
            None => {}
        }
        inner.commit(t, changes).await
    }
}

type Interleaved = common::HookedStore<Interleave>;

fn interleaved() -> (Engine, Arc<Interleaved>, TenantId, IngestOutcome) {
    let store = Arc::new(common::HookedStore {
        inner: InMemoryStore::new(),
        hook: Interleave { engine: std::sync::OnceLock::new(), armed: std::sync::Mutex::new(None) },
    });
    let engine = Engine::builder(store.clone()).clock(Arc::new(ManualClock::new(t0()))).build();
    store.hook.engine.set(engine.clone()).unwrap();
    let tenant = TenantId::new("race").unwrap();
    let first = InboundMessage::new(
        ChannelKind::WhatsApp,
        ep("wa-main"),
        Address::phone("+5511987654321"),
        "wamid.ANA-0001",
        Content::text("ANA-TEXT-1 first contact"),
    )
    .with_sender_name("Ana Souza-Privacy");
    let ana = run(engine.ingest(&tenant, first)).unwrap();
    (engine, store, tenant, ana)
}

fn sms_from_ana() -> InboundMessage {
    InboundMessage::new(
        ChannelKind::Sms,
        ep("sms-main"),
        Address::phone("5511987654321"),
        "SM-ANA-0002",
        Content::text("ANA-TEXT-2 by SMS"),
    )
}

/// Nothing in the store may belong to an erased customer.
fn assert_nothing_attached_to(store: &Interleaved, tenant: &TenantId, erased: CustomerId) {
    let dump = store.inner.dump();
    let d = &dump[tenant.as_str()];
    let identities: Vec<Identity> = serde_json::from_value(d["identities"].clone()).unwrap();
    let conversations: Vec<Conversation> = serde_json::from_value(d["conversations"].clone()).unwrap();
    let orphans: Vec<String> = identities
        .iter()
        .filter(|i| i.customer == erased)
        .map(|i| format!("identity {} ({})", i.id, i.raw_address))
        .chain(conversations.iter().filter(|c| c.customer == erased).map(|c| format!("conversation {}", c.id)))
        .collect();
    assert!(orphans.is_empty(), "personal data attached to the erased customer survived: {orphans:?}");
}

/// An ingest resolved to Ana before her erasure commits after it: its new identity and
/// conversation must not end up attached to the tombstone.
#[test]
fn an_ingest_racing_an_erasure_does_not_revive_the_erased_customer() {
    let (engine, store, tenant, ana) = interleaved();
    *store.hook.armed.lock().unwrap() = Some(Armed::EraseDuringIngest(tenant.clone(), ana.customer));
    let out = run(engine.ingest(&tenant, sms_from_ana())).expect("the SMS must be stored somewhere");
    assert!(store.hook.armed.lock().unwrap().is_none(), "the interleaving did not happen");
    assert!(matches!(run(engine.customer(&tenant, ana.customer)), Err(Error::Erased(_))));
    assert_ne!(out.customer, ana.customer, "a message was attributed to an erased customer");
    assert!(run(engine.customer(&tenant, out.customer)).is_ok(), "the SMS landed on a customer that is not live");
    assert_nothing_attached_to(&store, &tenant, ana.customer);
    let text = serde_json::to_string(&store.inner.dump()).unwrap();
    for p in ["ANA-TEXT-1", "wamid.ANA-0001", "Ana Souza-Privacy"] {
        assert!(!text.contains(p), "{p:?} survived the erasure");
    }
}

/// An erasure computed before a concurrent ingest linked a new identity to Ana commits after
/// it: the erasure must cover (or retry and cover) what the ingest added.
#[test]
fn an_erasure_racing_an_ingest_leaves_nothing_behind() {
    let (engine, store, tenant, ana) = interleaved();
    *store.hook.armed.lock().unwrap() = Some(Armed::IngestDuringErase(tenant.clone(), Box::new(sms_from_ana())));
    run(engine.erase_customer(&tenant, ana.customer)).expect("the erasure");
    assert!(store.hook.armed.lock().unwrap().is_none(), "the interleaving did not happen");
    assert!(matches!(run(engine.customer(&tenant, ana.customer)), Err(Error::Erased(_))));
    assert_nothing_attached_to(&store, &tenant, ana.customer);
    let text = serde_json::to_string(&store.inner.dump()).unwrap();
    for p in ["+5511987654321", "5511987654321", "ANA-TEXT-1", "ANA-TEXT-2", "SM-ANA-0002", "Ana Souza-Privacy"] {
        assert!(!text.contains(p), "{p:?} survived the erasure");
    }
}

// ---------------------------------------------------------------------------------------------
// Erasure and the engine's own state: the router and merged aliases.

/// An engine with a router and one web-chat agent of capacity 1 (over an in-memory store).
fn routed_engine() -> (Engine, Arc<touchpoint::routing::Router>, InMemoryStore, TenantId) {
    use touchpoint::routing::{Agent, Capacity, Router, RouterConfig};
    let router = Arc::new(Router::new(RouterConfig::default()));
    let maria = Agent::new(AgentId::new("maria").unwrap())
        .with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 1)]))
        .with_status("online");
    router.upsert_agent(maria, t0()).unwrap();
    let store = InMemoryStore::new();
    let engine =
        Engine::builder(Arc::new(store.clone())).clock(Arc::new(ManualClock::new(t0()))).router(router.clone()).build();
    (engine, router, store, TenantId::new("shop").unwrap())
}

fn web_chat(visitor: &str, id: &str, text: &str) -> InboundMessage {
    InboundMessage::new(
        ChannelKind::WebChat,
        ep("shop-widget"),
        Address::platform("shop-widget", visitor),
        id,
        Content::text(text),
    )
}

/// The engine routed Ana's conversation itself (during ingest). Erasing Ana must take that
/// conversation out of routing: the router must not keep a work item for a conversation that
/// no longer exists (a work item can carry the customer's language and host attributes), and the agent it was assigned to must get the
/// capacity back, so the next customer is served instead of waiting behind a ghost.
#[test]
fn erasure_takes_the_customers_conversations_out_of_routing() {
    use touchpoint::routing::{Outcome, WorkItemId};
    let (engine, router, _store, t) = routed_engine();
    let maria = AgentId::new("maria").unwrap();
    let ana = run(engine.ingest(&t, web_chat("ana-visitor-77", "chat-ANA-1", "ANA-TEXT-1 help"))).unwrap();
    assert_eq!(ana.routing.as_ref().map(|d| d.outcome.clone()), Some(Outcome::Assigned(maria.clone())), "setup");
    assert_eq!(router.agent(&maria).unwrap().load, 1, "setup");

    run(engine.erase_customer(&t, ana.customer)).unwrap();

    assert!(
        router.item(WorkItemId::from(ana.conversation)).is_none(),
        "the router still holds the erased conversation: {:?}",
        router.item(WorkItemId::from(ana.conversation))
    );
    assert_eq!(router.agent(&maria).unwrap().load, 0, "the agent still carries the erased conversation");
    // The next customer gets the agent.
    let bob = run(engine.ingest(&t, web_chat("bob-visitor-1", "chat-BOB-1", "hello"))).unwrap();
    assert_eq!(
        bob.routing.map(|d| d.outcome),
        Some(Outcome::Assigned(maria)),
        "the next customer waits behind the erased one's conversation"
    );
}

/// Art. 15/20: the export is everything the store holds about the person. A customer merged
/// into Ana is a record the store keeps about her (an alias with its own id, creation time and
/// merge time, which `customer()` resolves to her); the export must name it, or a host holding
/// the absorbed id in its own systems cannot tell from the export that it is hers.
#[test]
fn export_names_the_customers_merged_aliases() {
    let s = setup();
    let export = run(s.engine.export_customer(&s.tenant, s.ana)).unwrap();
    let alias = run(s.engine.store().customer(&s.tenant, s.alias)).unwrap().expect("the alias is stored");
    assert!(matches!(alias.state, CustomerState::Merged { into, .. } if into == s.ana), "setup");
    let json = export.to_json();
    assert!(json.contains(&s.alias.to_string()), "the export does not mention the merged alias {}", s.alias);
}

/// After the survivor's erasure, a customer merged into it must hold no more than a tombstone
/// does (id, tenant, times): here it still says the person was blocked.
#[test]
fn erasing_the_survivor_leaves_no_personal_data_on_its_merged_alias() {
    let store = InMemoryStore::new();
    let engine = Engine::builder(Arc::new(store.clone())).clock(Arc::new(ManualClock::new(t0()))).build();
    let t = TenantId::new("shop").unwrap();
    let wa = run(engine.ingest(&t, sms_from_ana())).unwrap();
    let chat = run(engine.ingest(&t, web_chat("ana-visitor-77", "chat-ANA-1", "ANA-TEXT-1 help"))).unwrap();
    let blocked = CustomerPatch { blocked: Some(true), ..Default::default() };
    run(engine.update_customer(&t, chat.customer, blocked)).unwrap();
    run(engine.merge_customers(&t, wa.customer, chat.customer, SurvivorRule::First)).unwrap();
    run(engine.erase_customer(&t, chat.customer)).unwrap(); // through the alias: erases the survivor
    assert!(matches!(run(engine.customer(&t, wa.customer)), Err(Error::Erased(_))));

    let survivor = run(engine.store().customer(&t, wa.customer)).unwrap().unwrap();
    assert!(!survivor.blocked, "the tombstone keeps nothing");
    let alias = run(engine.store().customer(&t, chat.customer)).unwrap().unwrap();
    assert!(!alias.blocked, "the merged alias of an erased customer still records that the person was blocked");
}

/// The host hands the engine a batch of router events (say from `tick`): Ana's conversation
/// and Bob's were both assigned. Ana is erased while the batch is being applied. Her event has
/// nothing left to apply to, but Bob's assignment must still be recorded (the host cannot
/// simply re-apply the batch: applying events twice records them twice).
#[test]
fn an_erasure_during_routing_does_not_drop_other_customers_routing_events() {
    use touchpoint::routing::{RoutingEvent, WorkItemId};
    let (engine, store, tenant, ana) = interleaved();
    let bob = run(engine.ingest(
        &tenant,
        InboundMessage::new(
            ChannelKind::WhatsApp,
            ep("wa-main"),
            Address::phone("+447700900555"),
            "wamid.BOB-1",
            Content::text("BOB-TEXT-1"),
        ),
    ))
    .unwrap();
    let maria = AgentId::new("maria").unwrap();
    let assigned = |c: ConversationId| RoutingEvent::Assigned {
        item: WorkItemId::from(c),
        agent: maria.clone(),
        queue: QueueId::new("default").unwrap(),
        wait: chrono::TimeDelta::zero(),
    };
    *store.hook.armed.lock().unwrap() = Some(Armed::EraseDuringRouting(tenant.clone(), ana.customer));
    let applied = run(engine.apply_routing_events(&tenant, &[assigned(ana.conversation), assigned(bob.conversation)]));
    assert!(store.hook.armed.lock().unwrap().is_none(), "the interleaving did not happen");
    assert!(matches!(run(engine.customer(&tenant, ana.customer)), Err(Error::Erased(_))));
    let bob_handler = run(engine.conversation(&tenant, bob.conversation)).unwrap().handler;
    assert_eq!(
        bob_handler,
        Some(Handler::Agent(maria)),
        "Bob's assignment was not recorded; apply_routing_events returned {applied:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// A shared device: the identity moves between the people who sign in on it.

/// A web-chat message from the shared device `family-tablet`, signed in as `user`.
fn signed_in(user: &str, id: &str, text: &str, name: &str) -> InboundMessage {
    web_chat("family-tablet", id, text)
        .with_claim(CustomerKey::ExternalId(user.into()), Verification::Verified)
        .with_sender_name(name)
}

/// Carla signs in on the tablet, then Dan: the tablet's identity moved to Dan. The name the
/// tablet reported for Carla is hers: it does not stay on Dan's identity, where erasing Carla
/// would not find it and Dan's export would show it.
#[test]
fn an_identity_that_moves_to_another_person_leaves_the_previous_name_behind() {
    let (engine, store, tenant, _ana) = interleaved();
    let carla = run(engine.ingest(&tenant, signed_in("carla-1", "W-1", "hello", "Carla Tablet-Name"))).unwrap();
    let dan = run(engine.ingest(&tenant, signed_in("dan-2", "W-2", "hi again", "Dan Tablet-Name"))).unwrap();
    assert!(matches!(dan.resolution, Resolution::Moved { from } if from == carla.customer), "{:?}", dan.resolution);
    assert_eq!(dan.identity, carla.identity, "the same device identity moved");
    let export = run(engine.export_customer(&tenant, dan.customer)).unwrap();
    assert_eq!(export.identities[0].display_name.as_deref(), Some("Dan Tablet-Name"));
    run(engine.erase_customer(&tenant, carla.customer)).unwrap();
    let text = serde_json::to_string(&store.inner.dump()).unwrap();
    assert!(!text.contains("Carla Tablet-Name"), "Carla's name survived her erasure");
}

/// Carla signs in on the tablet, then Dan, and while Carla's erasure runs Carla signs in on it
/// again: the identity moves back to her. The erasure must cover it (the ingest that moved it
/// back touched Carla, so the erasure reads her again) and nothing may point at her tombstone.
#[test]
fn an_erasure_racing_a_sign_in_that_moves_an_identity_back_leaves_nothing_behind() {
    let (engine, store, tenant, _ana) = interleaved();
    let carla = run(engine.ingest(&tenant, signed_in("carla-1", "W-1", "CARLA-TEXT-1", "Carla"))).unwrap();
    run(engine.ingest(&tenant, signed_in("dan-2", "W-2", "DAN-TEXT-1", "Dan"))).unwrap();
    let back = signed_in("carla-1", "W-3", "CARLA-TEXT-2", "Carla");
    *store.hook.armed.lock().unwrap() = Some(Armed::IngestDuringErase(tenant.clone(), Box::new(back)));
    run(engine.erase_customer(&tenant, carla.customer)).expect("the erasure");
    assert!(store.hook.armed.lock().unwrap().is_none(), "the interleaving did not happen");
    assert_nothing_attached_to(&store, &tenant, carla.customer);
    let text = serde_json::to_string(&store.inner.dump()).unwrap();
    for p in ["CARLA-TEXT-1", "CARLA-TEXT-2", "carla-1"] {
        assert!(!text.contains(p), "{p:?} survived the erasure");
    }
}

/// An identity moved by hand (`Engine::move_identity`) to another person leaves the name its
/// channel reported for the previous owner behind: the new owner's export does not show it,
/// and erasing the previous owner leaves it nowhere.
#[test]
fn a_moved_identity_leaves_the_previous_owners_name_behind() {
    let store = InMemoryStore::new();
    let engine = Engine::builder(Arc::new(store.clone())).build();
    let t = TenantId::new("shop").unwrap();
    let wa = |from: &str, id: &str, name: &str| {
        InboundMessage::new(ChannelKind::WhatsApp, ep("wa"), Address::phone(from), id, Content::text("hi"))
            .with_sender_name(name)
    };
    run(async {
        let carla = engine.ingest(&t, wa("+5511987650001", "wamid.C1", "Carla Privata")).await.unwrap();
        let dan = engine.ingest(&t, wa("+5511987650002", "wamid.D1", "Dan Other")).await.unwrap();
        // "Actually it's Dan's phone": the agent moves it.
        engine.move_identity(&t, carla.identity, dan.customer).await.unwrap();
        let dan_export = engine.export_customer(&t, dan.customer).await.unwrap().to_json();
        assert!(!dan_export.contains("Carla Privata"), "Dan's export shows Carla's name");
        engine.erase_customer(&t, carla.customer).await.unwrap();
        let dump = serde_json::to_string(&store.dump()).unwrap();
        assert!(!dump.contains("Carla Privata"), "Carla's name survives her erasure");
        // Dan's next message from the number names him.
        let next = engine.ingest(&t, wa("+5511987650001", "wamid.D2", "Dan Other")).await.unwrap();
        assert_eq!(next.customer, dan.customer);
        let moved = engine.store().identity(&t, carla.identity).await.unwrap().unwrap();
        assert_eq!(moved.display_name.as_deref(), Some("Dan Other"));
    });
}
