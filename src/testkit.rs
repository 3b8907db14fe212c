//! The conformance suite every [`Store`] backend must pass (feature `testkit`).
//!
//! Call [`run_all`] from your backend's tests (or the single checks, to see which one fails).
//! Each check works in a fresh random tenant, so a shared database can be reused. Not covered by
//! semver: checks are added as the contract is clarified.
//!
//! ```
//! # futures::executor::block_on(async {
//! let store = touchpoint::store::InMemoryStore::new();
//! touchpoint::testkit::run_all(&store).await;
//! # });
//! ```

#![allow(clippy::missing_panics_doc)]

use crate::events::Event;
use crate::model::*;
use crate::store::{
    ChangeSet, Committed, DedupeKey, LinkKey, MessageQuery, MessageScope, Store, ThreadKey, ThreadKeyClaim, Write,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

fn tenant() -> TenantId {
    TenantId::new(format!("t-{}", Uuid::now_v7().simple())).expect("valid tenant")
}

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).single().expect("valid date") + Duration::minutes(minutes)
}

fn id() -> Uuid {
    Uuid::now_v7()
}

/// A fresh customer record.
pub fn sample_customer(tenant: &TenantId) -> Customer {
    Customer::new(CustomerId(id()), tenant.clone(), at(0))
}

/// A fresh identity record for `customer`.
pub fn sample_identity(
    customer: &Customer,
    channel: ChannelKind,
    kind: AddressKind,
    value: &str,
    verification: Verification,
) -> Identity {
    Identity {
        id: IdentityId(id()),
        tenant: customer.tenant.clone(),
        customer: customer.id,
        channel,
        address: NormalizedAddress { kind, value: value.to_owned() },
        raw_address: value.to_owned(),
        verification,
        display_name: None,
        endpoints: Vec::new(),
        first_seen: at(0),
        last_seen: at(0),
        version: 0,
    }
}

/// A fresh open conversation of `customer`.
pub fn sample_conversation(customer: &Customer) -> Conversation {
    Conversation {
        id: ConversationId(id()),
        tenant: customer.tenant.clone(),
        customer: customer.id,
        status: ConversationStatus::Open,
        priority: Priority::Normal,
        subject: None,
        tags: Default::default(),
        handler: None,
        last_agent: None,
        last_agent_at: None,
        origin: ChannelKind::Sms,
        channels: Vec::new(),
        sessions: Vec::new(),
        last_inbound_via: None,
        previous: None,
        reply_token: Uuid::new_v4().simple().to_string(),
        created_at: at(0),
        last_activity_at: at(0),
        last_inbound_at: None,
        waiting_since: None,
        first_response_at: None,
        resolved_at: None,
        closed_at: None,
        message_count: 0,
        version: 0,
    }
}

/// A fresh inbound text message in `conversation`.
pub fn sample_message(conversation: &Conversation, external_id: &str, body: &str) -> Message {
    Message {
        id: MessageId(id()),
        tenant: conversation.tenant.clone(),
        conversation: conversation.id,
        direction: Direction::Inbound,
        author: Author::System,
        channel: ChannelKind::Sms,
        endpoint: EndpointId::new("sms-1").expect("valid endpoint"),
        external_id: Some(external_id.to_owned()),
        recipient: None,
        content: Content::text(body),
        delivery: DeliveryState::Delivered,
        sent_at: at(0),
        recorded_at: at(0),
        version: 0,
    }
}

async fn commit(store: &dyn Store, tenant: &TenantId, changes: ChangeSet) -> crate::Result<Committed> {
    store.commit(tenant, changes).await
}

/// Inserts, reads back and updates with optimistic versions; a stale version is a conflict that
/// changes nothing.
pub async fn versions_and_conflicts(store: &dyn Store) {
    let t = tenant();
    let mut c = sample_customer(&t);
    commit(store, &t, ChangeSet { customers: vec![Write::insert(c.clone())], ..Default::default() })
        .await
        .expect("insert");
    assert_eq!(store.customer(&t, c.id).await.expect("read"), Some(c.clone()));
    let err = commit(store, &t, ChangeSet { customers: vec![Write::insert(c.clone())], ..Default::default() }).await;
    assert!(matches!(err, Err(crate::Error::Conflict(_))), "inserting an existing id must conflict: {err:?}");

    c.name = Some("Ana".into());
    c.version = 1;
    commit(
        store,
        &t,
        ChangeSet { customers: vec![Write { record: c.clone(), expected: Some(0) }], ..Default::default() },
    )
    .await
    .expect("update at the right version");
    let mut stale = c.clone();
    stale.name = Some("Mallory".into());
    stale.version = 1;
    let err = commit(
        store,
        &t,
        ChangeSet { customers: vec![Write { record: stale, expected: Some(0) }], ..Default::default() },
    )
    .await;
    assert!(matches!(err, Err(crate::Error::Conflict(_))), "a stale version must conflict: {err:?}");
    assert_eq!(store.customer(&t, c.id).await.expect("read").and_then(|c| c.name), Some("Ana".into()));
}

/// A commit that fails on its last write applies none of its earlier writes or events.
pub async fn failed_commit_changes_nothing(store: &dyn Store) {
    let t = tenant();
    let c = sample_customer(&t);
    commit(store, &t, ChangeSet { customers: vec![Write::insert(c.clone())], ..Default::default() })
        .await
        .expect("insert");
    let other = sample_customer(&t);
    let conv = sample_conversation(&other);
    let bad = ChangeSet {
        customers: vec![Write::insert(other.clone()), Write::insert(c.clone())],
        conversations: vec![Write::insert(conv.clone())],
        events: vec![Event::CustomerCreated { customer: other.id }],
        ..Default::default()
    };
    assert!(commit(store, &t, bad).await.is_err());
    assert_eq!(store.customer(&t, other.id).await.expect("read"), None);
    assert_eq!(store.conversation(&t, conv.id).await.expect("read"), None);
    assert!(store.events_after(&t, 0, 10).await.expect("events").is_empty());
}

/// `(channel, address)` is unique; the same address on another channel is another identity;
/// lookups by address and by customer work.
pub async fn identity_addresses_are_unique(store: &dyn Store) {
    let t = tenant();
    let c = sample_customer(&t);
    let wa =
        sample_identity(&c, ChannelKind::WhatsApp, AddressKind::Phone, "+5511987654321", Verification::CarrierAsserted);
    let sms =
        sample_identity(&c, ChannelKind::Sms, AddressKind::Phone, "+5511987654321", Verification::CarrierAsserted);
    commit(
        store,
        &t,
        ChangeSet {
            customers: vec![Write::insert(c.clone())],
            identities: vec![Write::insert(wa.clone()), Write::insert(sms.clone())],
            ..Default::default()
        },
    )
    .await
    .expect("insert");
    let found = store.identity_by_address(&t, &ChannelKind::WhatsApp, &wa.address).await.expect("lookup");
    assert_eq!(found.map(|i| i.id), Some(wa.id));
    assert_eq!(store.identities_of(&t, c.id).await.expect("list").len(), 2);
    let dup =
        sample_identity(&c, ChannelKind::WhatsApp, AddressKind::Phone, "+5511987654321", Verification::Unverified);
    let err = commit(store, &t, ChangeSet { identities: vec![Write::insert(dup)], ..Default::default() }).await;
    assert!(
        matches!(err, Err(crate::Error::Conflict(_))),
        "a second identity on the same address must conflict: {err:?}"
    );
    let holders = store.customers_by_address(&t, &LinkKey(wa.address.clone())).await.expect("holders");
    assert_eq!(holders, vec![(c.id, Verification::CarrierAsserted)]);
}

/// A trusted (verified or carrier-asserted) address belongs to one customer only; unverified
/// copies may exist on other customers.
pub async fn trusted_addresses_link_one_customer(store: &dyn Store) {
    let t = tenant();
    let a = sample_customer(&t);
    let b = sample_customer(&t);
    let ia = sample_identity(&a, ChannelKind::Email, AddressKind::Email, "ana@example.com", Verification::Verified);
    let ib_unverified =
        sample_identity(&b, ChannelKind::WebChat, AddressKind::Email, "ana@example.com", Verification::Unverified);
    commit(
        store,
        &t,
        ChangeSet {
            customers: vec![Write::insert(a.clone()), Write::insert(b.clone())],
            identities: vec![Write::insert(ia), Write::insert(ib_unverified)],
            ..Default::default()
        },
    )
    .await
    .expect("an unverified copy is allowed");
    let ib_verified =
        sample_identity(&b, ChannelKind::InApp, AddressKind::Email, "ana@example.com", Verification::Verified);
    let err = commit(store, &t, ChangeSet { identities: vec![Write::insert(ib_verified)], ..Default::default() }).await;
    assert!(
        matches!(err, Err(crate::Error::Conflict(_))),
        "a verified address of another customer must conflict: {err:?}"
    );
    let mut holders = store
        .customers_by_address(
            &t,
            &LinkKey(NormalizedAddress { kind: AddressKind::Email, value: "ana@example.com".into() }),
        )
        .await
        .expect("holders");
    holders.sort();
    let mut expected = vec![(a.id, Verification::Verified), (b.id, Verification::Unverified)];
    expected.sort();
    assert_eq!(holders, expected);

    // A mobile number's other spelling (a Brazilian mobile without its ninth digit) is the same
    // key: two processes that each found no holder of their own spelling cannot both link it.
    let c = sample_customer(&t);
    let d = sample_customer(&t);
    let with_nine =
        sample_identity(&c, ChannelKind::WhatsApp, AddressKind::Phone, "+5521987654321", Verification::CarrierAsserted);
    commit(
        store,
        &t,
        ChangeSet {
            customers: vec![Write::insert(c.clone()), Write::insert(d.clone())],
            identities: vec![Write::insert(with_nine)],
            ..Default::default()
        },
    )
    .await
    .expect("insert");
    let without_nine =
        sample_identity(&d, ChannelKind::Sms, AddressKind::Phone, "+552187654321", Verification::CarrierAsserted);
    let err =
        commit(store, &t, ChangeSet { identities: vec![Write::insert(without_nine)], ..Default::default() }).await;
    assert!(
        matches!(err, Err(crate::Error::Conflict(_))),
        "the other spelling of another customer's trusted phone must conflict: {err:?}"
    );
    // Unverified, it may exist on another customer, as any address may.
    let mut unverified =
        sample_identity(&d, ChannelKind::Sms, AddressKind::Phone, "+552187654321", Verification::Unverified);
    commit(store, &t, ChangeSet { identities: vec![Write::insert(unverified.clone())], ..Default::default() })
        .await
        .expect("an unverified other spelling is allowed");
    // Where both spellings are trusted on two customers already (records written before the
    // rule), each customer's new identities on their own spelling are still taken.
    unverified.verification = Verification::CarrierAsserted;
    unverified.version = 1;
    commit(store, &t, ChangeSet { identities: vec![Write::update(unverified, 0)], ..Default::default() })
        .await
        .expect("an update is judged by its own spelling");
    let more =
        sample_identity(&c, ChannelKind::Sms, AddressKind::Phone, "+5521987654321", Verification::CarrierAsserted);
    commit(store, &t, ChangeSet { identities: vec![Write::insert(more)], ..Default::default() })
        .await
        .expect("a holder of one spelling may add identities on it");
}

/// `customers_by_address` names each customer once, with the strongest verification among its
/// identities on the address, whatever the order they were written in.
pub async fn customers_by_address_reports_the_strongest_verification(store: &dyn Store) {
    let t = tenant();
    let a = sample_customer(&t);
    let b = sample_customer(&t);
    commit(
        store,
        &t,
        ChangeSet { customers: vec![Write::insert(a.clone()), Write::insert(b.clone())], ..Default::default() },
    )
    .await
    .expect("insert");
    let phone = "+14155550199";
    // One at a time, the strongest neither first nor last.
    for (customer, channel, verification) in [
        (&a, ChannelKind::WebChat, Verification::Unverified),
        (&b, ChannelKind::InApp, Verification::Unverified),
        (&a, ChannelKind::Sms, Verification::Verified),
        (&a, ChannelKind::WhatsApp, Verification::CarrierAsserted),
        (&a, ChannelKind::Voice, Verification::Unverified),
    ] {
        let identity = sample_identity(customer, channel, AddressKind::Phone, phone, verification);
        commit(store, &t, ChangeSet { identities: vec![Write::insert(identity)], ..Default::default() })
            .await
            .expect("insert");
    }
    let key = LinkKey(NormalizedAddress { kind: AddressKind::Phone, value: phone.into() });
    let mut holders = store.customers_by_address(&t, &key).await.expect("holders");
    holders.sort();
    let mut expected = vec![(a.id, Verification::Verified), (b.id, Verification::Unverified)];
    expected.sort();
    assert_eq!(
        holders, expected,
        "each customer must be reported once, with the strongest verification among its identities"
    );
}

/// The external id is unique per tenant and can move in one commit.
pub async fn external_ids_are_unique(store: &dyn Store) {
    let t = tenant();
    let mut a = sample_customer(&t);
    a.external_id = Some("user-1".into());
    let mut b = sample_customer(&t);
    b.external_id = Some("user-1".into());
    commit(store, &t, ChangeSet { customers: vec![Write::insert(a.clone())], ..Default::default() })
        .await
        .expect("insert");
    let err = commit(store, &t, ChangeSet { customers: vec![Write::insert(b.clone())], ..Default::default() }).await;
    assert!(matches!(err, Err(crate::Error::Conflict(_))), "a taken external id must conflict: {err:?}");
    assert_eq!(store.customer_by_external_id(&t, "user-1").await.expect("read").map(|c| c.id), Some(a.id));
    // Moving the id from a to b in one commit is fine.
    let mut a2 = a.clone();
    a2.external_id = None;
    a2.version = 1;
    commit(
        store,
        &t,
        ChangeSet {
            customers: vec![Write { record: a2, expected: Some(0) }, Write::insert(b.clone())],
            ..Default::default()
        },
    )
    .await
    .expect("move the external id");
    assert_eq!(store.customer_by_external_id(&t, "user-1").await.expect("read").map(|c| c.id), Some(b.id));
}

/// The dedupe key makes a second commit of the same inbound message a no-op.
pub async fn dedupe_keys_make_commits_idempotent(store: &dyn Store) {
    let t = tenant();
    let c = sample_customer(&t);
    let conv = sample_conversation(&c);
    let m = sample_message(&conv, "SM-1", "hello");
    let key = DedupeKey { channel: ChannelKind::Sms, external_id: "SM-1".into() };
    let first = ChangeSet {
        dedupe: Some(key.clone()),
        customers: vec![Write::insert(c.clone())],
        conversations: vec![Write::insert(conv.clone())],
        messages: vec![Write::insert(m.clone())],
        events: vec![Event::MessageReceived { conversation: conv.id, message: m.id, channel: ChannelKind::Sms }],
        ..Default::default()
    };
    assert!(matches!(commit(store, &t, first.clone()).await, Ok(Committed::Applied { .. })));
    assert_eq!(commit(store, &t, first).await.expect("second commit"), Committed::Duplicate { message: m.id });
    assert_eq!(store.events_after(&t, 0, 10).await.expect("events").len(), 1);
    assert_eq!(
        store.message_by_external_id(&t, &ChannelKind::Sms, "SM-1").await.expect("read").map(|m| m.id),
        Some(m.id)
    );
}

/// Thread keys: the first conversation to claim a key keeps it.
pub async fn thread_keys_first_claim_wins(store: &dyn Store) {
    let t = tenant();
    let c = sample_customer(&t);
    let one = sample_conversation(&c);
    let two = sample_conversation(&c);
    let key = ThreadKey::EmailMessageId("abc@example.com".into());
    commit(
        store,
        &t,
        ChangeSet {
            customers: vec![Write::insert(c.clone())],
            conversations: vec![Write::insert(one.clone()), Write::insert(two.clone())],
            thread_keys: vec![ThreadKeyClaim::new(key.clone(), one.id)],
            ..Default::default()
        },
    )
    .await
    .expect("insert");
    commit(store, &t, ChangeSet { thread_keys: vec![ThreadKeyClaim::new(key.clone(), two.id)], ..Default::default() })
        .await
        .expect("claim again");
    assert_eq!(store.conversation_by_thread_key(&t, &key).await.expect("read"), Some(one.id));
}

/// Thread keys: a claim that names the conversation it replaces takes the key over from that
/// conversation, and only from that one.
pub async fn thread_keys_move_only_from_the_replaced_conversation(store: &dyn Store) {
    let t = tenant();
    let c = sample_customer(&t);
    let [one, two, three] = [sample_conversation(&c), sample_conversation(&c), sample_conversation(&c)];
    let key = ThreadKey::ProviderThread(ChannelKind::InApp, "thread-1".into());
    commit(
        store,
        &t,
        ChangeSet {
            customers: vec![Write::insert(c.clone())],
            conversations: vec![Write::insert(one.clone()), Write::insert(two.clone()), Write::insert(three.clone())],
            thread_keys: vec![ThreadKeyClaim::new(key.clone(), one.id)],
            ..Default::default()
        },
    )
    .await
    .expect("insert");
    // `three` names the wrong predecessor: the key stays with `one`.
    let wrong = ThreadKeyClaim { key: key.clone(), conversation: three.id, replaces: Some(two.id) };
    commit(store, &t, ChangeSet { thread_keys: vec![wrong], ..Default::default() }).await.expect("claim");
    assert_eq!(store.conversation_by_thread_key(&t, &key).await.expect("read"), Some(one.id));
    let right = ThreadKeyClaim { key: key.clone(), conversation: two.id, replaces: Some(one.id) };
    commit(store, &t, ChangeSet { thread_keys: vec![right], ..Default::default() }).await.expect("take over");
    assert_eq!(store.conversation_by_thread_key(&t, &key).await.expect("read"), Some(two.id));
    // Deleting the old holder does not drop the key from its new holder.
    commit(store, &t, ChangeSet { conversation_deletes: vec![one.id], ..Default::default() }).await.expect("delete");
    assert_eq!(store.conversation_by_thread_key(&t, &key).await.expect("read"), Some(two.id));
}

/// Thread keys: a claim that names a conversation it replaces takes a key that nobody holds,
/// as a first claim would (the replaced conversation may have been deleted with its keys).
pub async fn thread_keys_replacing_claims_take_unheld_keys(store: &dyn Store) {
    let t = tenant();
    let c = sample_customer(&t);
    let [old, new, gone] = [sample_conversation(&c), sample_conversation(&c), sample_conversation(&c)];
    let never_held = ThreadKey::EmailMessageId("never-held@example.com".into());
    let freed = ThreadKey::ProviderThread(ChannelKind::Messenger, "thread-freed".into());
    commit(
        store,
        &t,
        ChangeSet {
            customers: vec![Write::insert(c.clone())],
            conversations: vec![Write::insert(old.clone()), Write::insert(new.clone()), Write::insert(gone.clone())],
            thread_keys: vec![ThreadKeyClaim::new(freed.clone(), gone.id)],
            ..Default::default()
        },
    )
    .await
    .expect("insert");
    let claim = ThreadKeyClaim { key: never_held.clone(), conversation: new.id, replaces: Some(old.id) };
    commit(store, &t, ChangeSet { thread_keys: vec![claim], ..Default::default() }).await.expect("claim");
    assert_eq!(
        store.conversation_by_thread_key(&t, &never_held).await.expect("read"),
        Some(new.id),
        "a replacing claim must take a key that nobody holds"
    );
    commit(store, &t, ChangeSet { conversation_deletes: vec![gone.id], ..Default::default() }).await.expect("delete");
    let claim = ThreadKeyClaim { key: freed.clone(), conversation: new.id, replaces: Some(gone.id) };
    commit(store, &t, ChangeSet { thread_keys: vec![claim], ..Default::default() }).await.expect("claim");
    assert_eq!(
        store.conversation_by_thread_key(&t, &freed).await.expect("read"),
        Some(new.id),
        "a replacing claim must take a key its deleted predecessor freed"
    );
}

/// Identities, conversations and messages can only be written for an active customer: once a
/// customer is erased (or merged), a write that still refers to it is a conflict and changes
/// nothing.
pub async fn writes_for_inactive_customers_conflict(store: &dyn Store) {
    let t = tenant();
    let c = sample_customer(&t);
    let conv = sample_conversation(&c);
    commit(
        store,
        &t,
        ChangeSet {
            customers: vec![Write::insert(c.clone())],
            conversations: vec![Write::insert(conv.clone())],
            ..Default::default()
        },
    )
    .await
    .expect("insert");
    commit(
        store,
        &t,
        ChangeSet {
            customers: vec![left_as(&c, &CustomerState::Erased { at: at(5) })],
            conversation_deletes: vec![conv.id],
            ..Default::default()
        },
    )
    .await
    .expect("erase");

    let identity = sample_identity(&c, ChannelKind::Sms, AddressKind::Phone, "+14155550100", Verification::Verified);
    let err =
        store.commit(&t, ChangeSet { identities: vec![Write::insert(identity.clone())], ..Default::default() }).await;
    assert!(matches!(err, Err(crate::Error::Conflict(_))), "identity for an erased customer: {err:?}");
    let late = sample_conversation(&c);
    let err =
        store.commit(&t, ChangeSet { conversations: vec![Write::insert(late.clone())], ..Default::default() }).await;
    assert!(matches!(err, Err(crate::Error::Conflict(_))), "conversation for an erased customer: {err:?}");
    assert_eq!(store.identity(&t, identity.id).await.expect("read"), None);
    assert_eq!(store.conversation(&t, late.id).await.expect("read"), None);
    assert!(store.identities_of(&t, c.id).await.expect("read").is_empty());
    assert!(store.conversations_of(&t, c.id).await.expect("read").is_empty());
}

/// A merged customer (an alias of the survivor) takes no writes either: an identity, a
/// conversation or a message that would stay attached to it is a conflict and changes nothing,
/// whether the customer was merged before the commit or is merged by it.
pub async fn writes_for_merged_customers_conflict(store: &dyn Store) {
    let t = tenant();
    let survivor = sample_customer(&t);
    let alias = sample_customer(&t);
    commit(
        store,
        &t,
        ChangeSet {
            customers: vec![Write::insert(survivor.clone()), Write::insert(alias.clone())],
            ..Default::default()
        },
    )
    .await
    .expect("insert");
    let merged = CustomerState::Merged { into: survivor.id, at: at(5) };
    commit(store, &t, ChangeSet { customers: vec![left_as(&alias, &merged)], ..Default::default() })
        .await
        .expect("merge");

    let identity =
        sample_identity(&alias, ChannelKind::Sms, AddressKind::Phone, "+14155550133", Verification::CarrierAsserted);
    let err =
        commit(store, &t, ChangeSet { identities: vec![Write::insert(identity.clone())], ..Default::default() }).await;
    assert!(matches!(err, Err(crate::Error::Conflict(_))), "an identity for a merged customer must conflict: {err:?}");
    let late_conversation = sample_conversation(&alias);
    let err = commit(
        store,
        &t,
        ChangeSet { conversations: vec![Write::insert(late_conversation.clone())], ..Default::default() },
    )
    .await;
    assert!(
        matches!(err, Err(crate::Error::Conflict(_))),
        "a conversation for a merged customer must conflict: {err:?}"
    );
    assert_eq!(store.identity(&t, identity.id).await.expect("read"), None);
    assert!(store.identities_of(&t, alias.id).await.expect("read").is_empty());
    assert_eq!(store.conversation(&t, late_conversation.id).await.expect("read"), None);

    messages_for_inactive_customers_conflict(store, &t, &merged, "merged").await;
}

/// A message belongs to an active customer too: a message in a conversation of an erased
/// customer is a conflict and changes nothing, whether the customer was erased before the
/// commit or is erased by it.
pub async fn messages_for_erased_customers_conflict(store: &dyn Store) {
    messages_for_inactive_customers_conflict(store, &tenant(), &CustomerState::Erased { at: at(5) }, "erased").await;
}

/// `c` updated to `state` (merged or erased).
fn left_as(c: &Customer, state: &CustomerState) -> Write<Customer> {
    let mut left = c.clone();
    left.state = state.clone();
    left.version = c.version + 1;
    Write::update(left, c.version)
}

/// A message in a conversation whose customer is `state` (`what`: "merged", "erased") is a
/// conflict and changes nothing, whether the customer was so before the commit or becomes so
/// by it.
async fn messages_for_inactive_customers_conflict(store: &dyn Store, t: &TenantId, state: &CustomerState, what: &str) {
    let before = sample_customer(t);
    let during = sample_customer(t);
    // The store moves and deletes only what a change set names: `kept` stays attached to its
    // customer, so a message for it is judged by its conversation's owner.
    let kept = sample_conversation(&before);
    let of_during = sample_conversation(&during);
    commit(
        store,
        t,
        ChangeSet {
            customers: vec![Write::insert(before.clone()), Write::insert(during.clone())],
            conversations: vec![Write::insert(kept.clone()), Write::insert(of_during.clone())],
            ..Default::default()
        },
    )
    .await
    .expect("insert");
    commit(store, t, ChangeSet { customers: vec![left_as(&before, state)], ..Default::default() }).await.expect(what);

    let provider_id = format!("SM-{what}");
    let m = sample_message(&kept, &provider_id, "too late");
    let err = commit(store, t, ChangeSet { messages: vec![Write::insert(m.clone())], ..Default::default() }).await;
    assert!(
        matches!(err, Err(crate::Error::Conflict(_))),
        "a message in a conversation of a {what} customer must conflict: {err:?}"
    );
    assert_eq!(store.message(t, m.id).await.expect("read"), None);
    assert_eq!(store.message_by_external_id(t, &ChannelKind::Sms, &provider_id).await.expect("read"), None);

    // Made so by the same commit that writes the message: judged on the state after the commit.
    let m = sample_message(&of_during, &format!("SM-{what}-now"), "racing the change");
    let err = commit(
        store,
        t,
        ChangeSet {
            customers: vec![left_as(&during, state)],
            messages: vec![Write::insert(m.clone())],
            ..Default::default()
        },
    )
    .await;
    assert!(
        matches!(err, Err(crate::Error::Conflict(_))),
        "a message for a customer the same commit makes {what} must conflict: {err:?}"
    );
    assert_eq!(store.message(t, m.id).await.expect("read"), None);
    let stored = store.customer(t, during.id).await.expect("read").expect("stored");
    assert_eq!((stored.state, stored.version), (CustomerState::Active, 0), "a refused change leaves it as it was");
}

/// Messages page newest first, per conversation and across a customer's conversations.
pub async fn messages_page_newest_first(store: &dyn Store) {
    let t = tenant();
    let c = sample_customer(&t);
    let one = sample_conversation(&c);
    let two = sample_conversation(&c);
    let mut messages = Vec::new();
    for i in 0..25 {
        let conv = if i % 2 == 0 { &one } else { &two };
        messages.push(sample_message(conv, &format!("m-{i}"), &format!("body {i}")));
    }
    commit(
        store,
        &t,
        ChangeSet {
            customers: vec![Write::insert(c.clone())],
            conversations: vec![Write::insert(one.clone()), Write::insert(two.clone())],
            messages: messages.iter().cloned().map(Write::insert).collect(),
            ..Default::default()
        },
    )
    .await
    .expect("insert");
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .messages(&t, &MessageQuery { scope: MessageScope::Customer(c.id), before, limit: 10 })
            .await
            .expect("page");
        if page.is_empty() {
            break;
        }
        before = page.last().map(|m| m.id);
        seen.extend(page.into_iter().map(|m| m.id));
    }
    let expected: Vec<MessageId> = messages.iter().rev().map(|m| m.id).collect();
    assert_eq!(seen, expected, "customer timeline must be every message once, newest first");
    let only_one = store
        .messages(&t, &MessageQuery { scope: MessageScope::Conversation(one.id), before: None, limit: 100 })
        .await
        .expect("page");
    assert_eq!(only_one.len(), 13);
    assert!(only_one.windows(2).all(|w| w[0].id > w[1].id));
}

/// Checks that `conversations_of` and the snapshot list exactly `expected`, in that order.
async fn listed_by_activity(store: &dyn Store, t: &TenantId, customer: CustomerId, expected: [&Conversation; 4]) {
    let expected: Vec<ConversationId> = expected.iter().map(|c| c.id).collect();
    let listed: Vec<ConversationId> =
        store.conversations_of(t, customer).await.expect("list").iter().map(|c| c.id).collect();
    assert_eq!(listed, expected, "conversations must be listed most recently active first");
    let snapshot = store.customer_snapshot(t, customer).await.expect("snapshot").expect("the customer is stored");
    let listed: Vec<ConversationId> = snapshot.conversations.iter().map(|c| c.id).collect();
    assert_eq!(listed, expected, "a snapshot's conversations must be most recently active first");
}

/// The message holding `(channel, external_id)`, if any.
async fn holder_of(store: &dyn Store, t: &TenantId, channel: ChannelKind, external_id: &str) -> Option<MessageId> {
    store.message_by_external_id(t, &channel, external_id).await.expect("read").map(|m| m.id)
}

/// A customer's conversations are listed most recently active first (by `last_activity_at`,
/// whatever the order they were created or updated in), in the snapshot too.
pub async fn conversations_list_most_recently_active_first(store: &dyn Store) {
    let t = tenant();
    let c = sample_customer(&t);
    // Created in an order (and so with ids) unlike their activity.
    let mut quiet = sample_conversation(&c);
    quiet.last_activity_at = at(10);
    let mut busy = sample_conversation(&c);
    busy.last_activity_at = at(30);
    let mut middle = sample_conversation(&c);
    middle.last_activity_at = at(20);
    let mut oldest = sample_conversation(&c);
    oldest.last_activity_at = at(1);
    commit(
        store,
        &t,
        ChangeSet {
            customers: vec![Write::insert(c.clone())],
            conversations: [&middle, &quiet, &oldest, &busy].into_iter().cloned().map(Write::insert).collect(),
            ..Default::default()
        },
    )
    .await
    .expect("insert");
    listed_by_activity(store, &t, c.id, [&busy, &middle, &quiet, &oldest]).await;
    // New activity moves a conversation to the front.
    oldest.last_activity_at = at(40);
    oldest.version = 1;
    commit(store, &t, ChangeSet { conversations: vec![Write::update(oldest.clone(), 0)], ..Default::default() })
        .await
        .expect("update");
    listed_by_activity(store, &t, c.id, [&oldest, &busy, &middle, &quiet]).await;
}

/// Deleting a conversation removes its messages, thread keys and idempotency keys.
pub async fn conversation_delete_cascades(store: &dyn Store) {
    let t = tenant();
    let c = sample_customer(&t);
    let conv = sample_conversation(&c);
    let m = sample_message(&conv, "SM-9", "secret text");
    let key = ThreadKey::ReplyToken(conv.reply_token.clone());
    commit(
        store,
        &t,
        ChangeSet {
            customers: vec![Write::insert(c.clone())],
            conversations: vec![Write::insert(conv.clone())],
            messages: vec![Write::insert(m.clone())],
            thread_keys: vec![ThreadKeyClaim::new(key.clone(), conv.id)],
            ..Default::default()
        },
    )
    .await
    .expect("insert");
    commit(store, &t, ChangeSet { conversation_deletes: vec![conv.id], ..Default::default() }).await.expect("delete");
    assert_eq!(store.conversation(&t, conv.id).await.expect("read"), None);
    assert_eq!(store.message(&t, m.id).await.expect("read"), None);
    assert_eq!(store.message_by_external_id(&t, &ChannelKind::Sms, "SM-9").await.expect("read"), None);
    assert_eq!(store.conversation_by_thread_key(&t, &key).await.expect("read"), None);
    assert!(store.conversations_of(&t, c.id).await.expect("list").is_empty());
}

/// Deleting an identity (as erasure does) removes it from every lookup: by id, by address, by
/// customer and as a link key; a stale version is refused; the address can be claimed again.
pub async fn identity_deletes_remove_identities(store: &dyn Store) {
    let t = tenant();
    let c = sample_customer(&t);
    let i = sample_identity(&c, ChannelKind::Sms, AddressKind::Phone, "+14155550177", Verification::CarrierAsserted);
    commit(
        store,
        &t,
        ChangeSet {
            customers: vec![Write::insert(c.clone())],
            identities: vec![Write::insert(i.clone())],
            ..Default::default()
        },
    )
    .await
    .expect("insert");
    let stale = commit(store, &t, ChangeSet { identity_deletes: vec![(i.id, i.version + 1)], ..Default::default() });
    assert!(matches!(stale.await, Err(crate::Error::Conflict(_))), "a delete naming a stale version is a conflict");
    assert!(store.identity(&t, i.id).await.expect("read").is_some(), "a refused delete deletes nothing");
    commit(store, &t, ChangeSet { identity_deletes: vec![(i.id, i.version)], ..Default::default() })
        .await
        .expect("delete");
    assert_eq!(store.identity(&t, i.id).await.expect("read"), None, "deleted identities are gone by id");
    assert_eq!(store.identity_by_address(&t, &i.channel, &i.address).await.expect("read"), None, "and by address");
    assert!(store.identities_of(&t, c.id).await.expect("list").is_empty(), "and from their customer");
    let link = LinkKey(i.address.clone());
    assert!(store.customers_by_address(&t, &link).await.expect("read").is_empty(), "and as a link key");
    let again = sample_identity(&c, ChannelKind::Sms, AddressKind::Phone, "+14155550177", Verification::Unverified);
    commit(store, &t, ChangeSet { identities: vec![Write::insert(again.clone())], ..Default::default() })
        .await
        .expect("a deleted identity's address can be claimed again");
    assert_eq!(
        store.identity_by_address(&t, &i.channel, &i.address).await.expect("read").map(|x| x.id),
        Some(again.id)
    );
}

/// Events are numbered 1, 2, 3, … per tenant in commit order and paged with `events_after`.
pub async fn events_are_sequenced(store: &dyn Store) {
    let t = tenant();
    for _ in 0..5 {
        let c = sample_customer(&t);
        commit(
            store,
            &t,
            ChangeSet {
                customers: vec![Write::insert(c.clone())],
                events: vec![Event::CustomerCreated { customer: c.id }, Event::CustomerUpdated { customer: c.id }],
                at: at(1),
                ..Default::default()
            },
        )
        .await
        .expect("insert");
    }
    let all = store.events_after(&t, 0, 100).await.expect("events");
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=10).collect::<Vec<u64>>());
    assert!(all.iter().all(|e| e.tenant == t && e.at == at(1)));
    let tail = store.events_after(&t, 7, 2).await.expect("events");
    assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![8, 9]);
}

/// Nothing of one tenant is visible or writable from another.
pub async fn tenants_are_isolated(store: &dyn Store) {
    let a = tenant();
    let b = tenant();
    let c = sample_customer(&a);
    let i = sample_identity(&c, ChannelKind::Sms, AddressKind::Phone, "+14155550100", Verification::CarrierAsserted);
    let conv = sample_conversation(&c);
    let m = sample_message(&conv, "SM-T", "hello");
    commit(
        store,
        &a,
        ChangeSet {
            customers: vec![Write::insert(c.clone())],
            identities: vec![Write::insert(i.clone())],
            conversations: vec![Write::insert(conv.clone())],
            messages: vec![Write::insert(m.clone())],
            events: vec![Event::CustomerCreated { customer: c.id }],
            ..Default::default()
        },
    )
    .await
    .expect("insert");
    assert_eq!(store.customer(&b, c.id).await.expect("read"), None);
    assert_eq!(store.identity(&b, i.id).await.expect("read"), None);
    assert_eq!(store.identity_by_address(&b, &ChannelKind::Sms, &i.address).await.expect("read"), None);
    assert!(store.identities_of(&b, c.id).await.expect("read").is_empty());
    assert!(store.customers_by_address(&b, &LinkKey(i.address.clone())).await.expect("read").is_empty());
    assert_eq!(store.conversation(&b, conv.id).await.expect("read"), None);
    assert!(store.conversations_of(&b, c.id).await.expect("read").is_empty());
    assert_eq!(store.message(&b, m.id).await.expect("read"), None);
    assert_eq!(store.message_by_external_id(&b, &ChannelKind::Sms, "SM-T").await.expect("read"), None);
    assert!(
        store
            .messages(&b, &MessageQuery { scope: MessageScope::Customer(c.id), before: None, limit: 10 })
            .await
            .expect("read")
            .is_empty()
    );
    assert!(store.events_after(&b, 0, 10).await.expect("read").is_empty());
    // Writing a record of tenant A through tenant B is refused.
    let mut changed = c.clone();
    changed.name = Some("Mallory".into());
    changed.version = 1;
    let err = commit(
        store,
        &b,
        ChangeSet { customers: vec![Write { record: changed, expected: Some(0) }], ..Default::default() },
    )
    .await;
    assert!(err.is_err(), "a write of another tenant's record must fail");
    assert_eq!(store.customer(&a, c.id).await.expect("read").and_then(|c| c.name), None);
}

/// A change set that writes the same record twice is refused and changes nothing (the keys
/// the record is found by would be ambiguous).
pub async fn records_are_written_once_per_change(store: &dyn Store) {
    let t = tenant();
    let c = sample_customer(&t);
    let first = sample_identity(&c, ChannelKind::Sms, AddressKind::Phone, "+15550001111", Verification::Unverified);
    let mut second = first.clone();
    second.address.value = "+15550002222".into();
    second.raw_address = "+15550002222".into();
    let err = commit(
        store,
        &t,
        ChangeSet {
            customers: vec![Write::insert(c.clone())],
            identities: vec![Write::insert(first.clone()), Write::insert(second)],
            ..Default::default()
        },
    )
    .await;
    assert!(matches!(err, Err(crate::Error::InvalidInput { .. })), "a record written twice must be refused: {err:?}");
    assert_eq!(store.customer(&t, c.id).await.expect("read"), None);
    for value in ["+15550001111", "+15550002222"] {
        let address = NormalizedAddress { kind: AddressKind::Phone, value: value.into() };
        assert_eq!(store.identity_by_address(&t, &ChannelKind::Sms, &address).await.expect("read"), None);
    }
}

/// A message's provider id may be set or changed by an update (an outbound message learns its
/// id after sending): the message is then found by the new id only, the new id is unique per
/// channel, and deleting the conversation frees it.
pub async fn message_provider_ids_follow_updates(store: &dyn Store) {
    let t = tenant();
    let c = sample_customer(&t);
    let conv = sample_conversation(&c);
    let mut m = sample_message(&conv, "SM-old", "hello");
    let other = sample_message(&conv, "SM-taken", "other");
    commit(
        store,
        &t,
        ChangeSet {
            customers: vec![Write::insert(c.clone())],
            conversations: vec![Write::insert(conv.clone())],
            messages: vec![Write::insert(m.clone()), Write::insert(other.clone())],
            ..Default::default()
        },
    )
    .await
    .expect("insert");
    let mut taken = m.clone();
    taken.external_id = Some("SM-taken".into());
    taken.version = 1;
    let err = commit(store, &t, ChangeSet { messages: vec![Write::update(taken, 0)], ..Default::default() }).await;
    assert!(matches!(err, Err(crate::Error::Conflict(_))), "another message's provider id must conflict: {err:?}");

    m.external_id = Some("SM-new".into());
    m.version = 1;
    commit(store, &t, ChangeSet { messages: vec![Write::update(m.clone(), 0)], ..Default::default() })
        .await
        .expect("set a new provider id");
    let by = |x: &'static str| store.message_by_external_id(&t, &ChannelKind::Sms, x);
    assert_eq!(by("SM-new").await.expect("read").map(|m| m.id), Some(m.id));
    assert_eq!(by("SM-old").await.expect("read"), None, "the old provider id no longer finds the message");

    commit(store, &t, ChangeSet { conversation_deletes: vec![conv.id], ..Default::default() }).await.expect("delete");
    assert_eq!(by("SM-new").await.expect("read"), None);
    assert_eq!(by("SM-taken").await.expect("read"), None);
    let again = sample_conversation(&c);
    let reuse = sample_message(&again, "SM-new", "again");
    commit(
        store,
        &t,
        ChangeSet {
            conversations: vec![Write::insert(again)],
            messages: vec![Write::insert(reuse.clone())],
            ..Default::default()
        },
    )
    .await
    .expect("a freed provider id can be used again");
    assert_eq!(by("SM-new").await.expect("read").map(|m| m.id), Some(reuse.id));
}

/// A message insert whose `(channel, provider id)` is already taken is a conflict and changes
/// nothing, as for an update; the same provider id on another channel is another key.
pub async fn message_provider_ids_are_unique_on_insert(store: &dyn Store) {
    let t = tenant();
    let c = sample_customer(&t);
    let conv = sample_conversation(&c);
    let first = sample_message(&conv, "SM-1", "first");
    commit(
        store,
        &t,
        ChangeSet {
            customers: vec![Write::insert(c.clone())],
            conversations: vec![Write::insert(conv.clone())],
            messages: vec![Write::insert(first.clone())],
            ..Default::default()
        },
    )
    .await
    .expect("insert");
    // No dedupe key: the taken key is a plain conflict, not a duplicate, and the commit's other
    // writes and events are not applied.
    let other = sample_conversation(&c);
    let second = sample_message(&other, "SM-1", "second");
    let err = commit(
        store,
        &t,
        ChangeSet {
            conversations: vec![Write::insert(other.clone())],
            messages: vec![Write::insert(second.clone())],
            events: vec![Event::CustomerUpdated { customer: c.id }],
            ..Default::default()
        },
    )
    .await;
    assert!(
        matches!(err, Err(crate::Error::Conflict(_))),
        "inserting a message with a taken provider id must conflict: {err:?}"
    );
    assert_eq!(store.message(&t, second.id).await.expect("read"), None);
    assert_eq!(store.conversation(&t, other.id).await.expect("read"), None);
    assert!(store.events_after(&t, 0, 10).await.expect("events").is_empty());
    assert_eq!(holder_of(store, &t, ChannelKind::Sms, "SM-1").await, Some(first.id), "the key stays with its holder");
    // Two messages of one change set cannot share a key either.
    let [a, b] = [sample_message(&conv, "SM-2", "a"), sample_message(&conv, "SM-2", "b")];
    let err = commit(
        store,
        &t,
        ChangeSet { messages: vec![Write::insert(a.clone()), Write::insert(b.clone())], ..Default::default() },
    )
    .await;
    assert!(
        matches!(err, Err(crate::Error::Conflict(_))),
        "two new messages with one provider id must conflict: {err:?}"
    );
    assert_eq!(holder_of(store, &t, ChannelKind::Sms, "SM-2").await, None);
    // The key is (channel, provider id): the same id on another channel is free.
    let mut elsewhere = sample_message(&conv, "SM-1", "on WhatsApp");
    elsewhere.channel = ChannelKind::WhatsApp;
    commit(store, &t, ChangeSet { messages: vec![Write::insert(elsewhere.clone())], ..Default::default() })
        .await
        .expect("the same provider id on another channel is another key");
    assert_eq!(holder_of(store, &t, ChannelKind::WhatsApp, "SM-1").await, Some(elsewhere.id));
    assert_eq!(holder_of(store, &t, ChannelKind::Sms, "SM-1").await, Some(first.id));
}

/// A customer snapshot holds what the piecewise reads find: the customer, its identities and
/// conversations as listed, and every message of those conversations, oldest first; nothing
/// for an unknown customer or another tenant.
pub async fn customer_snapshot_matches_the_reads(store: &dyn Store) {
    let t = tenant();
    let c = sample_customer(&t);
    let i = sample_identity(&c, ChannelKind::Sms, AddressKind::Phone, "+14155550188", Verification::CarrierAsserted);
    let one = sample_conversation(&c);
    let two = sample_conversation(&c);
    let messages: Vec<Message> = (0..7)
        .map(|k| sample_message(if k % 2 == 0 { &one } else { &two }, &format!("snap-{k}"), &format!("body {k}")))
        .collect();
    commit(
        store,
        &t,
        ChangeSet {
            customers: vec![Write::insert(c.clone())],
            identities: vec![Write::insert(i.clone())],
            conversations: vec![Write::insert(one.clone()), Write::insert(two.clone())],
            messages: messages.iter().cloned().map(Write::insert).collect(),
            ..Default::default()
        },
    )
    .await
    .expect("insert");
    let snapshot = store.customer_snapshot(&t, c.id).await.expect("snapshot").expect("the customer is stored");
    assert_eq!(snapshot.customer, store.customer(&t, c.id).await.expect("read").expect("stored"));
    assert_eq!(snapshot.identities, store.identities_of(&t, c.id).await.expect("read"));
    assert_eq!(snapshot.conversations, store.conversations_of(&t, c.id).await.expect("read"));
    let ids: Vec<MessageId> = snapshot.messages.iter().map(|m| m.id).collect();
    let mut expected: Vec<MessageId> = messages.iter().map(|m| m.id).collect();
    expected.sort();
    assert_eq!(ids, expected, "the snapshot must hold every message once, oldest first");
    let stranger = sample_customer(&t);
    assert_eq!(store.customer_snapshot(&t, stranger.id).await.expect("snapshot"), None);
    let other = TenantId::new("conformance-snapshot-other").expect("tenant");
    assert_eq!(store.customer_snapshot(&other, c.id).await.expect("snapshot"), None, "tenants are isolated");
}

/// Runs every check.
pub async fn run_all(store: &dyn Store) {
    versions_and_conflicts(store).await;
    failed_commit_changes_nothing(store).await;
    identity_addresses_are_unique(store).await;
    trusted_addresses_link_one_customer(store).await;
    customers_by_address_reports_the_strongest_verification(store).await;
    external_ids_are_unique(store).await;
    dedupe_keys_make_commits_idempotent(store).await;
    thread_keys_first_claim_wins(store).await;
    thread_keys_move_only_from_the_replaced_conversation(store).await;
    thread_keys_replacing_claims_take_unheld_keys(store).await;
    writes_for_inactive_customers_conflict(store).await;
    writes_for_merged_customers_conflict(store).await;
    messages_for_erased_customers_conflict(store).await;
    messages_page_newest_first(store).await;
    conversations_list_most_recently_active_first(store).await;
    conversation_delete_cascades(store).await;
    identity_deletes_remove_identities(store).await;
    events_are_sequenced(store).await;
    tenants_are_isolated(store).await;
    records_are_written_once_per_change(store).await;
    message_provider_ids_follow_updates(store).await;
    message_provider_ids_are_unique_on_insert(store).await;
    customer_snapshot_matches_the_reads(store).await;
}
