//! `Engine::send`: the channel is chosen by policy, the content rendered for it, every part sent
//! through the registered channel and recorded with its provider id; reply windows, fallbacks,
//! provider failures and retries under the same message id.

mod common;
use async_trait::async_trait;
use chrono::Duration;
use common::{agent, endpoint, run, t0};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use touchpoint::channel::{
    Capabilities, Channel, ChannelPolicy, ChoiceReason, OutgoingMessage, RenderedPart, StubChannel,
};
use touchpoint::clock::ManualClock;
use touchpoint::events::Event;
use touchpoint::model::*;
use touchpoint::store::{InMemoryStore, MessageQuery, MessageScope, Store};
use touchpoint::{Engine, Error, SendRequest};

struct Host {
    engine: Engine,
    store: InMemoryStore,
    clock: Arc<ManualClock>,
    tenant: TenantId,
}

fn host(channels: Vec<Arc<dyn Channel>>, policy: ChannelPolicy) -> Host {
    let store = InMemoryStore::new();
    let clock = Arc::new(ManualClock::new(t0()));
    let mut builder = Engine::builder(Arc::new(store.clone())).clock(clock.clone()).channel_policy(policy);
    for c in channels {
        builder = builder.channel(c);
    }
    Host { engine: builder.build(), store, clock, tenant: TenantId::new("acme").unwrap() }
}

fn whatsapp_stub() -> Arc<StubChannel> {
    Arc::new(StubChannel::new(endpoint("wa-main"), Capabilities::whatsapp()).with_id_prefix("wamid.OUT"))
}

fn sms_stub() -> Arc<StubChannel> {
    Arc::new(StubChannel::new(endpoint("sms-1"), Capabilities::sms()).with_id_prefix("SM-OUT"))
}

impl Host {
    /// The customer writes on WhatsApp; returns the conversation.
    fn whatsapp_contact(&self, wamid: &str) -> ConversationId {
        let msg = InboundMessage::new(
            ChannelKind::WhatsApp,
            endpoint("wa-main"),
            Address::phone("+447700900123"),
            wamid,
            Content::text("Hi, my parcel has not arrived"),
        );
        run(self.engine.ingest(&self.tenant, msg)).unwrap().conversation
    }

    /// Another customer writes on WhatsApp.
    fn other_whatsapp_contact(&self, wamid: &str) -> touchpoint::IngestOutcome {
        let msg = InboundMessage::new(
            ChannelKind::WhatsApp,
            endpoint("wa-main"),
            Address::phone("+447700900999"),
            wamid,
            Content::text("Me too"),
        );
        run(self.engine.ingest(&self.tenant, msg)).unwrap()
    }

    fn send(&self, conversation: ConversationId, request: SendRequest) -> touchpoint::Result<touchpoint::SendOutcome> {
        run(self.engine.send(&self.tenant, conversation, request))
    }

    fn outbound(&self, conversation: ConversationId) -> Vec<Message> {
        let query = MessageQuery { scope: MessageScope::Conversation(conversation), before: None, limit: 1000 };
        let mut all = run(self.store.messages(&self.tenant, &query)).unwrap();
        all.retain(|m| m.direction == Direction::Outbound);
        all.reverse();
        all
    }

    fn recorded_events(&self) -> usize {
        run(self.store.events_after(&self.tenant, 0, 10_000))
            .unwrap()
            .iter()
            .filter(|e| matches!(e.event, Event::MessageRecorded { .. }))
            .count()
    }
}

fn reply(body: &str) -> SendRequest {
    SendRequest::agent(agent("ana"), Content::text(body))
}

#[test]
fn a_reply_goes_out_where_the_customer_wrote_and_is_recorded_with_the_provider_id() {
    let wa = whatsapp_stub();
    let h = host(vec![wa.clone()], ChannelPolicy::default());
    let conversation = h.whatsapp_contact("wamid.IN1");
    h.clock.advance(Duration::minutes(5));

    let sent = h.send(conversation, reply("It is on its way.").replying_to("wamid.IN1")).unwrap();
    assert_eq!((sent.channel.clone(), sent.endpoint.clone()), (ChannelKind::WhatsApp, endpoint("wa-main")));
    assert_eq!(sent.choice.as_ref().map(|c| c.reason.clone()), Some(ChoiceReason::LastUsed));
    assert_eq!(sent.provider_message_ids(), ["wamid.OUT1"]);
    assert_eq!(sent.newly_sent, 1);

    let on_the_wire = wa.sent();
    assert_eq!(on_the_wire.len(), 1);
    assert_eq!(on_the_wire[0].message.recipient.value, "+447700900123");
    assert_eq!(on_the_wire[0].message.part, RenderedPart::Text { body: "It is on its way.".into() });
    assert_eq!(on_the_wire[0].message.reply_to.as_deref(), Some("wamid.IN1"));

    let recorded = h.outbound(conversation);
    assert_eq!(recorded.len(), 1);
    let m = &recorded[0];
    assert_eq!((m.id, m.external_id.as_deref()), (sent.message, Some("wamid.OUT1")));
    assert_eq!((m.delivery.clone(), m.author.clone()), (DeliveryState::Sent, Author::Agent(agent("ana"))));
    assert_eq!(m.content, Content::text("It is on its way."));
    // Receipts find it by the provider id.
    let by_provider_id = run(h.store.message_by_external_id(&h.tenant, &ChannelKind::WhatsApp, "wamid.OUT1"));
    assert_eq!(by_provider_id.unwrap().map(|m| m.id), Some(sent.message));
    assert_eq!(h.recorded_events(), 1);
    // The agent's reply stops the customer's wait.
    let c = run(h.engine.conversation(&h.tenant, conversation)).unwrap();
    assert_eq!((c.waiting_since, c.first_response_at), (None, Some(t0() + Duration::minutes(5))));
}

#[test]
fn the_whatsapp_window_allows_a_reply_at_23h59_and_refuses_one_at_24h01_before_it_reaches_the_provider() {
    let wa = whatsapp_stub();
    let h = host(vec![wa.clone()], ChannelPolicy::default());
    let conversation = h.whatsapp_contact("wamid.IN1");

    h.clock.advance(Duration::hours(23) + Duration::minutes(59));
    assert!(h.send(conversation, reply("Still with us?")).is_ok());

    h.clock.advance(Duration::minutes(2));
    let late = h.send(conversation, reply("Hello?"));
    let Err(Error::ReplyWindowClosed { channel, hint }) = &late else { panic!("{late:?}") };
    assert_eq!(*channel, ChannelKind::WhatsApp);
    assert!(hint.contains("template"), "{hint}");
    assert_eq!(wa.attempts(), 1, "the refused reply never reached the provider");
    assert_eq!(h.outbound(conversation).len(), 1, "the refused reply is not recorded");

    // An approved template still goes out.
    let template = Content::Template { name: "order_update".into(), language: "en".into(), parameters: vec![] };
    let sent = h.send(conversation, SendRequest::agent(agent("ana"), template.clone())).unwrap();
    assert_eq!(sent.channel, ChannelKind::WhatsApp);
    assert_eq!(h.outbound(conversation).last().map(|m| m.content.clone()), Some(template));
}

#[test]
fn when_the_window_is_closed_a_configured_fallback_channel_takes_the_reply() {
    let (wa, sms) = (whatsapp_stub(), sms_stub());
    let policy = ChannelPolicy::default().falling_back_to(ChannelKind::Sms, endpoint("sms-1"));
    let h = host(vec![wa.clone(), sms.clone()], policy);
    let conversation = h.whatsapp_contact("wamid.IN1");
    let customer = run(h.engine.conversation(&h.tenant, conversation)).unwrap().customer;
    run(h.engine.link_identity(
        &h.tenant,
        customer,
        ChannelKind::Sms,
        Address::phone("+447700900123"),
        Verification::CarrierAsserted,
    ))
    .unwrap();

    h.clock.advance(Duration::hours(24) + Duration::minutes(1));
    let sent = h.send(conversation, reply("Your parcel is at the depot.")).unwrap();
    assert_eq!((sent.channel.clone(), sent.endpoint.clone()), (ChannelKind::Sms, endpoint("sms-1")));
    let choice = sent.choice.unwrap();
    assert_eq!(choice.reason, ChoiceReason::Fallback);
    assert_eq!(choice.skipped.first().map(|s| s.channel.clone()), Some(ChannelKind::WhatsApp));
    assert_eq!((wa.attempts(), sms.sent().len()), (0, 1));
    let recorded = h.outbound(conversation);
    assert_eq!(recorded.len(), 1);
    assert_eq!((recorded[0].channel.clone(), recorded[0].external_id.as_deref()), (ChannelKind::Sms, Some("SM-OUT1")));
}

#[test]
fn a_preferred_channel_in_the_request_wins_over_the_last_used_one() {
    let (wa, sms) = (whatsapp_stub(), sms_stub());
    let policy = ChannelPolicy::default().falling_back_to(ChannelKind::Sms, endpoint("sms-1"));
    let h = host(vec![wa.clone(), sms.clone()], policy);
    let conversation = h.whatsapp_contact("wamid.IN1");
    let customer = run(h.engine.conversation(&h.tenant, conversation)).unwrap().customer;
    let phone = Address::phone("+447700900123");
    run(h.engine.link_identity(&h.tenant, customer, ChannelKind::Sms, phone, Verification::CarrierAsserted)).unwrap();

    let sent = h.send(conversation, reply("Texting you instead").preferring(ChannelKind::Sms)).unwrap();
    assert_eq!(sent.channel, ChannelKind::Sms);
    assert_eq!(sent.choice.map(|c| c.reason), Some(ChoiceReason::Preferred));
    assert_eq!((wa.attempts(), sms.attempts()), (0, 1));
}

#[test]
fn long_text_is_split_and_every_part_is_sent_and_recorded_in_order() {
    let wa = whatsapp_stub();
    let h = host(vec![wa.clone()], ChannelPolicy::default());
    let conversation = h.whatsapp_contact("wamid.IN1");
    let words: Vec<String> = (0..1100).map(|i| format!("word{i}")).collect();
    let long = words.join(" ");
    assert!(long.chars().count() > 2 * 4096);

    let sent = h.send(conversation, reply(&long)).unwrap();
    assert_eq!(sent.parts.len(), 3);
    assert_eq!(sent.newly_sent, 3);
    assert_eq!(sent.provider_message_ids(), ["wamid.OUT1", "wamid.OUT2", "wamid.OUT3"]);
    assert_eq!(sent.message, sent.parts[0].message);

    let recorded = h.outbound(conversation);
    assert_eq!(
        recorded.iter().map(|m| m.id).collect::<Vec<_>>(),
        sent.parts.iter().map(|p| p.message).collect::<Vec<_>>()
    );
    let mut seen = Vec::new();
    for (m, wire) in recorded.iter().zip(wa.sent()) {
        let Content::Text { body } = &m.content else { panic!("{:?}", m.content) };
        assert!(body.chars().count() <= 4096);
        assert_eq!(wire.message.part, RenderedPart::Text { body: body.clone() });
        assert_eq!(m.external_id.as_deref(), Some(wire.provider_message_id.as_str()));
        seen.extend(body.split_whitespace().map(str::to_owned));
    }
    assert_eq!(seen, words, "no word lost or reordered");
    assert_eq!(h.recorded_events(), 3);
}

#[test]
fn a_provider_failure_is_returned_as_is_and_records_nothing() {
    let wa = whatsapp_stub();
    let h = host(vec![wa.clone()], ChannelPolicy::default());
    let conversation = h.whatsapp_contact("wamid.IN1");
    wa.fail_next_with(1, || Error::Provider {
        channel: ChannelKind::WhatsApp,
        code: Some("131026".into()),
        message: "message undeliverable".into(),
        temporary: false,
    });

    let failed = h.send(conversation, reply("Hello"));
    let Err(Error::Provider { code, temporary, .. }) = &failed else { panic!("{failed:?}") };
    assert_eq!((code.as_deref(), *temporary), (Some("131026"), false));
    assert!(h.outbound(conversation).is_empty());
    assert_eq!(h.recorded_events(), 0);
}

#[test]
fn a_retry_under_the_same_message_id_never_sends_twice() {
    let wa = whatsapp_stub();
    let h = host(vec![wa.clone()], ChannelPolicy::default());
    let conversation = h.whatsapp_contact("wamid.IN1");
    let id = h.engine.new_message_id();
    wa.fail_next(1);

    let request = reply("Your refund is approved").with_message_id(id);
    let first = h.send(conversation, request.clone());
    assert!(first.as_ref().is_err_and(Error::is_temporary), "{first:?}");
    let second = h.send(conversation, request.clone()).unwrap();
    assert_eq!((second.message, second.newly_sent), (id, 1));
    // The host did not hear back and tries again: nothing is sent twice, the outcome is the same.
    let third = h.send(conversation, request).unwrap();
    assert_eq!((third.newly_sent, third.parts.clone(), third.choice), (0, second.parts.clone(), None));
    assert_eq!((wa.attempts(), wa.sent().len()), (2, 1));
    assert_eq!(h.outbound(conversation).len(), 1);

    // Even when the window has closed since, the retry reports the earlier send.
    h.clock.advance(Duration::days(2));
    let late_retry = h.send(conversation, reply("Your refund is approved").with_message_id(id)).unwrap();
    assert_eq!(late_retry.parts, second.parts);
}

#[test]
fn a_message_id_without_room_for_its_parts_ids_is_invalid_input() {
    let wa = whatsapp_stub();
    let h = host(vec![wa.clone()], ChannelPolicy::default());
    let conversation = h.whatsapp_contact("wamid.IN1");
    // A valid UUID v7 whose random low 62 bits are all ones: part 2's id would wrap below it.
    let (hi, lo) = h.engine.new_message_id().0.as_u64_pair();
    let id = MessageId(uuid::Uuid::from_u64_pair(hi, lo | ((1 << 62) - 1)));
    let r = h.send(conversation, reply("Your refund is approved").with_message_id(id));
    assert!(matches!(r, Err(Error::InvalidInput { field: "message_id", .. })), "{r:?}");
    assert_eq!((wa.attempts(), h.outbound(conversation).len()), (0, 0), "nothing sent, nothing recorded");
}

/// Passes sends to a stub, failing the `fail_at`-th call (1-based) once.
#[derive(Debug)]
struct FailsOnce {
    inner: StubChannel,
    calls: AtomicUsize,
    fail_at: usize,
}

#[async_trait]
impl Channel for FailsOnce {
    fn endpoint(&self) -> &EndpointId {
        self.inner.endpoint()
    }
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    async fn send(&self, message: &OutgoingMessage) -> touchpoint::Result<String> {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            return Err(Error::Provider {
                channel: ChannelKind::WhatsApp,
                code: Some("131000".into()),
                message: "something went wrong".into(),
                temporary: true,
            });
        }
        self.inner.send(message).await
    }
}

/// A WhatsApp host whose channel fails the second part it is given, and a conversation on it.
fn failing_at_the_second_part() -> (Arc<FailsOnce>, Host, ConversationId) {
    let wa = Arc::new(FailsOnce {
        inner: StubChannel::new(endpoint("wa-main"), Capabilities::whatsapp()).with_id_prefix("wamid.OUT"),
        calls: AtomicUsize::new(0),
        fail_at: 2,
    });
    let h = host(vec![wa.clone()], ChannelPolicy::default());
    let conversation = h.whatsapp_contact("wamid.IN1");
    (wa, h, conversation)
}

#[test]
fn when_a_later_part_fails_the_sent_parts_stay_recorded_and_a_retry_sends_only_the_rest() {
    let (wa, h, conversation) = failing_at_the_second_part();
    let long = (0..1100).map(|i| format!("word{i}")).collect::<Vec<_>>().join(" ");
    let request = reply(&long).with_message_id(h.engine.new_message_id());

    let failed = h.send(conversation, request.clone());
    assert!(matches!(failed, Err(Error::Provider { temporary: true, .. })), "{failed:?}");
    let after_failure = h.outbound(conversation);
    assert_eq!(after_failure.len(), 1, "the part the provider accepted is recorded");
    assert_eq!(after_failure[0].external_id.as_deref(), Some("wamid.OUT1"));

    let resumed = h.send(conversation, request).unwrap();
    assert_eq!((resumed.parts.len(), resumed.newly_sent), (3, 2));
    assert_eq!(resumed.provider_message_ids(), ["wamid.OUT1", "wamid.OUT2", "wamid.OUT3"]);
    assert_eq!(wa.inner.sent().len(), 3, "part 1 was not sent again");
    assert_eq!(h.outbound(conversation).len(), 3);
}

/// Yields to the executor once before passing the send on, so two sends can overlap.
#[derive(Debug)]
struct Slow(StubChannel);

#[async_trait]
impl Channel for Slow {
    fn endpoint(&self) -> &EndpointId {
        self.0.endpoint()
    }
    fn capabilities(&self) -> &Capabilities {
        self.0.capabilities()
    }
    async fn send(&self, message: &OutgoingMessage) -> touchpoint::Result<String> {
        let mut yielded = false;
        futures::future::poll_fn(|cx| {
            if yielded {
                Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await;
        self.0.send(message).await
    }
}

#[test]
fn two_overlapping_sends_under_one_message_id_send_once() {
    let wa = Arc::new(Slow(StubChannel::new(endpoint("wa-main"), Capabilities::whatsapp())));
    let h = host(vec![wa.clone()], ChannelPolicy::default());
    let conversation = h.whatsapp_contact("wamid.IN1");
    let request = reply("Only once, please").with_message_id(h.engine.new_message_id());
    let (a, b) = run(futures::future::join(
        h.engine.send(&h.tenant, conversation, request.clone()),
        h.engine.send(&h.tenant, conversation, request),
    ));
    assert!(a.is_ok(), "{a:?}");
    assert!(matches!(b, Err(Error::Conflict(_))), "{b:?}");
    assert_eq!(wa.0.sent().len(), 1);
}

#[test]
fn without_a_channel_for_the_endpoint_the_send_fails_with_a_typed_error_and_changes_nothing() {
    let sms = sms_stub();
    let h = host(vec![sms.clone()], ChannelPolicy::default());
    let conversation = h.whatsapp_contact("wamid.IN1");
    let result = h.send(conversation, reply("Hello"));
    let Err(Error::NotFound { entity, id }) = &result else { panic!("{result:?}") };
    assert!(entity.contains("channel") && id == "wa-main", "{entity} {id}");
    assert_eq!(sms.attempts(), 0);
    assert!(h.outbound(conversation).is_empty());
}

#[test]
fn bad_requests_are_refused_before_anything_is_sent() {
    let wa = whatsapp_stub();
    let h = host(vec![wa.clone()], ChannelPolicy::default());
    let conversation = h.whatsapp_contact("wamid.IN1");
    let customer_author = SendRequest {
        author: Author::Customer(IdentityId::from_uuid(uuid::Uuid::nil())),
        ..reply("I am the customer")
    };
    assert!(matches!(h.send(conversation, customer_author), Err(Error::InvalidInput { field: "author", .. })));
    assert!(matches!(h.send(conversation, reply("  ")), Err(Error::InvalidInput { .. })));
    let v4 = reply("Hi").with_message_id(MessageId::from_uuid(uuid::Uuid::new_v4()));
    assert!(matches!(h.send(conversation, v4), Err(Error::InvalidInput { field: "message_id", .. })));
    let sms_only = Content::Template { name: "x".into(), language: "en".into(), parameters: vec![] };
    let sms = sms_stub();
    let h2 = host(vec![sms.clone()], ChannelPolicy::default());
    let sms_conversation = run(h2.engine.ingest(
        &h2.tenant,
        InboundMessage::new(
            ChannelKind::Sms,
            endpoint("sms-1"),
            Address::phone("+14155550123"),
            "SM1",
            Content::text("hi"),
        ),
    ))
    .unwrap()
    .conversation;
    let template_on_sms = h2.send(sms_conversation, SendRequest::system(sms_only));
    assert!(matches!(template_on_sms, Err(Error::InvalidInput { .. })), "{template_on_sms:?}");

    run(h.engine.update_conversation(
        &h.tenant,
        conversation,
        touchpoint::ConversationPatch { status: Some(ConversationStatus::Closed), ..Default::default() },
    ))
    .unwrap();
    assert!(matches!(h.send(conversation, reply("Hello?")), Err(Error::Refused(_))));
    assert_eq!((wa.attempts(), sms.attempts()), (0, 0));
    assert!(h.outbound(conversation).is_empty());
}

#[test]
fn a_message_id_of_another_conversation_is_refused() {
    let wa = whatsapp_stub();
    let h = host(vec![wa.clone()], ChannelPolicy::default());
    let first = h.whatsapp_contact("wamid.IN1");
    let other = h.other_whatsapp_contact("wamid.IN2").conversation;
    let id = h.engine.new_message_id();
    h.send(first, reply("For the first").with_message_id(id)).unwrap();
    let reused = h.send(other, reply("For the other").with_message_id(id));
    assert!(matches!(reused, Err(Error::InvalidInput { field: "message_id", .. })), "{reused:?}");
    assert_eq!(wa.sent().len(), 1);
}

/// `send_to_customer` with the id of a message sent to another customer is refused: it would
/// go on in that customer's conversation and send this customer's notice to them.
#[test]
fn send_to_customer_with_another_customers_message_id_is_refused() {
    let wa = whatsapp_stub();
    let h = host(vec![wa.clone()], ChannelPolicy::default());
    let ana = h.whatsapp_contact("wamid.IN1");
    let bob = h.other_whatsapp_contact("wamid.IN2");
    let id = h.engine.new_message_id();
    h.send(ana, reply("For Ana").with_message_id(id)).unwrap();
    let before = h.store.dump();
    let notice = SendRequest::system(Content::text("Your order shipped, with more to say")).with_message_id(id);
    let r = run(h.engine.send_to_customer(&h.tenant, bob.customer, notice));
    assert!(matches!(&r, Err(Error::InvalidInput { field: "message_id", .. })), "{r:?}");
    assert_eq!(wa.sent().len(), 1, "nothing more sent");
    assert_eq!(h.store.dump(), before);
    // Ana's own retry with the same id still finds her conversation.
    let ana_customer = run(h.engine.conversation(&h.tenant, ana)).unwrap().customer;
    let again = run(h.engine.send_to_customer(&h.tenant, ana_customer, reply("For Ana").with_message_id(id))).unwrap();
    assert_eq!(again.conversation, ana);
}

// The engine stays shareable with channels registered.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Engine>();
    shared::<SendRequest>();
    shared::<touchpoint::SendOutcome>();
};

// Hosts await sends on multi-threaded executors: the futures must be `Send`.
#[allow(dead_code)]
fn send_futures_are_send(engine: &Engine, tenant: &TenantId, conversation: ConversationId) {
    fn send<T: Send>(_: &T) {}
    send(&engine.send(tenant, conversation, SendRequest::system(Content::text("hi"))));
    send(&engine.apply_receipts(tenant, &[]));
    send(&engine.apply_routing_events(tenant, &[]));
}

#[test]
fn on_messenger_a_human_agent_answers_for_seven_days_with_the_human_agent_tag_and_a_bot_does_not() {
    let page = Arc::new(StubChannel::new(endpoint("fb-page"), Capabilities::messenger()));
    let h = host(vec![page.clone()], ChannelPolicy::default());
    let msg = InboundMessage::new(
        ChannelKind::Messenger,
        endpoint("fb-page"),
        Address::platform("fb-page", "psid-1"),
        "m_1",
        Content::text("Hello from Messenger"),
    );
    let conversation = run(h.engine.ingest(&h.tenant, msg)).unwrap().conversation;

    h.clock.advance(Duration::hours(2));
    h.send(conversation, reply("Inside the window")).unwrap();
    h.clock.advance(Duration::days(3));
    h.send(conversation, reply("Sorry for the wait")).unwrap();
    let bot = h.send(conversation, SendRequest::bot(AgentId::new("helper-bot").unwrap(), Content::text("Hi")));
    assert!(matches!(bot, Err(Error::ReplyWindowClosed { .. })), "{bot:?}");
    let tags: Vec<Option<String>> = page.sent().into_iter().map(|s| s.message.message_tag).collect();
    assert_eq!(tags, [None, Some(touchpoint::channel::HUMAN_AGENT_TAG.to_owned())]);
}

#[test]
fn the_engine_configuration_sets_the_reply_windows_send_enforces() {
    let wa = whatsapp_stub();
    let store = InMemoryStore::new();
    let clock = Arc::new(ManualClock::new(t0()));
    let mut config = touchpoint::EngineConfig::default();
    config.reply_windows.insert(ChannelKind::WhatsApp, Duration::hours(1));
    let engine =
        Engine::builder(Arc::new(store.clone())).clock(clock.clone()).config(config).channel(wa.clone()).build();
    let h = Host { engine, store, clock, tenant: TenantId::new("acme").unwrap() };
    let conversation = h.whatsapp_contact("wamid.IN1");
    h.clock.advance(Duration::minutes(61));
    let late = h.send(conversation, reply("Hello?"));
    assert!(matches!(late, Err(Error::ReplyWindowClosed { .. })), "{late:?}");
    assert_eq!(wa.attempts(), 0);
}

/// A customer known from web chat whose phone number the shop linked; SMS is the fallback.
fn proactive_host() -> (Host, Arc<StubChannel>, CustomerId) {
    let sms = sms_stub();
    let policy = ChannelPolicy::default().falling_back_to(ChannelKind::Sms, endpoint("sms-1"));
    let h = host(vec![sms.clone()], policy);
    let chat = InboundMessage::new(
        ChannelKind::WebChat,
        endpoint("site"),
        Address::platform("site", "visitor-1"),
        "chat-1",
        Content::text("Can you text me when it ships?"),
    );
    let customer = run(h.engine.ingest(&h.tenant, chat)).unwrap().customer;
    let phone = Address::phone("+14155550123");
    run(h.engine.link_identity(&h.tenant, customer, ChannelKind::Sms, phone, Verification::Verified)).unwrap();
    (h, sms, customer)
}

#[test]
fn a_message_to_a_customer_opens_a_pending_conversation_that_the_customers_answer_continues() {
    let (h, sms, customer) = proactive_host();
    let notice = SendRequest::system(Content::text("Your order has shipped."));
    let sent = run(h.engine.send_to_customer(&h.tenant, customer, notice)).unwrap();
    assert_eq!((sent.channel.clone(), sent.endpoint.clone()), (ChannelKind::Sms, endpoint("sms-1")));
    let c = run(h.engine.conversation(&h.tenant, sent.conversation)).unwrap();
    assert_eq!((c.status, c.customer, c.handler), (ConversationStatus::Pending, customer, None));
    assert_eq!(h.outbound(sent.conversation).len(), 1);

    // A second notice joins the same conversation.
    let again = SendRequest::system(Content::text("It arrives tomorrow."));
    let second = run(h.engine.send_to_customer(&h.tenant, customer, again)).unwrap();
    assert_eq!(second.conversation, sent.conversation);
    assert_eq!(sms.sent().len(), 2);

    // The customer texts back: the answer lands in that conversation.
    let answer = InboundMessage::new(
        ChannelKind::Sms,
        endpoint("sms-1"),
        Address::phone("+14155550123"),
        "SM-IN1",
        Content::text("Thanks!"),
    );
    let outcome = run(h.engine.ingest(&h.tenant, answer)).unwrap();
    assert_eq!((outcome.customer, outcome.conversation), (customer, sent.conversation));
}

#[test]
fn a_message_to_a_customer_retried_after_a_provider_failure_opens_one_conversation_and_sends_once() {
    let (h, sms, customer) = proactive_host();
    let before = run(h.store.conversations_of(&h.tenant, customer)).unwrap().len();
    sms.fail_next(1);
    let notice =
        SendRequest::system(Content::text("Your order has shipped.")).with_message_id(h.engine.new_message_id());
    let failed = run(h.engine.send_to_customer(&h.tenant, customer, notice.clone()));
    assert!(matches!(failed, Err(Error::Provider { .. })), "{failed:?}");
    let sent = run(h.engine.send_to_customer(&h.tenant, customer, notice.clone())).unwrap();
    let retried = run(h.engine.send_to_customer(&h.tenant, customer, notice)).unwrap();
    assert_eq!((retried.conversation, retried.newly_sent), (sent.conversation, 0));
    assert_eq!(sms.sent().len(), 1);
    assert_eq!(run(h.store.conversations_of(&h.tenant, customer)).unwrap().len(), before + 1);
}

#[test]
fn a_message_to_a_customer_without_a_reachable_channel_changes_nothing() {
    let h = host(vec![sms_stub()], ChannelPolicy::default());
    let chat = InboundMessage::new(
        ChannelKind::WebChat,
        endpoint("site"),
        Address::platform("site", "visitor-1"),
        "chat-1",
        Content::text("Hello"),
    );
    let customer = run(h.engine.ingest(&h.tenant, chat)).unwrap().customer;
    let events_before = run(h.store.events_after(&h.tenant, 0, 10_000)).unwrap().len();
    // No web-chat channel is registered, and no fallback is configured.
    let result = run(h.engine.send_to_customer(&h.tenant, customer, SendRequest::system(Content::text("Hi"))));
    assert!(result.is_err());
    assert_eq!(run(h.store.conversations_of(&h.tenant, customer)).unwrap().len(), 1);
    let unknown = CustomerId::from_uuid(uuid::Uuid::now_v7());
    let missing = run(h.engine.send_to_customer(&h.tenant, unknown, SendRequest::system(Content::text("Hi"))));
    assert!(matches!(missing, Err(Error::NotFound { .. })), "{missing:?}");
    assert_eq!(run(h.store.events_after(&h.tenant, 0, 10_000)).unwrap().len(), events_before);
}

#[test]
fn a_retry_sends_the_rest_of_a_split_message_to_the_phone_that_got_its_first_part() {
    // Part 2 of 3 fails; before the retry the same customer writes from a second WhatsApp
    // number. The retry must not deliver parts 2-3 to a different phone than part 1.
    let (wa, h, conversation) = failing_at_the_second_part();
    let customer = run(h.engine.conversation(&h.tenant, conversation)).unwrap().customer;
    run(h.engine.link_identity(
        &h.tenant,
        customer,
        ChannelKind::WhatsApp,
        Address::phone("+447700900456"),
        Verification::Verified,
    ))
    .unwrap();
    let long = (0..1100).map(|i| format!("word{i}")).collect::<Vec<_>>().join(" ");
    let request = reply(&long).with_message_id(h.engine.new_message_id());
    assert!(h.send(conversation, request.clone()).is_err());

    h.clock.advance(Duration::minutes(1));
    let second_phone = InboundMessage::new(
        ChannelKind::WhatsApp,
        endpoint("wa-main"),
        Address::phone("+447700900456"),
        "wamid.IN2",
        Content::text("writing from my other phone"),
    );
    assert_eq!(run(h.engine.ingest(&h.tenant, second_phone)).unwrap().customer, customer);

    let resumed = h.send(conversation, request);
    let recipients: Vec<String> = wa.inner.sent().iter().map(|s| s.message.recipient.value.clone()).collect();
    assert!(
        recipients.iter().all(|r| r == "+447700900123"),
        "one message split across two phones: {recipients:?} (retry result {:?})",
        resumed.map(|o| o.newly_sent)
    );
}

#[test]
fn a_message_to_a_customer_the_chosen_channel_cannot_carry_changes_nothing() {
    // A template chosen onto the SMS fallback cannot be rendered: InvalidInput, and like every
    // refused send it must leave no trace (no empty conversation, no ConversationOpened event).
    let (h, sms, customer) = proactive_host();
    let conversations_before = run(h.store.conversations_of(&h.tenant, customer)).unwrap().len();
    let events_before = run(h.store.events_after(&h.tenant, 0, 10_000)).unwrap().len();
    let template = Content::Template { name: "order_update".into(), language: "en".into(), parameters: vec![] };
    let result = run(h.engine.send_to_customer(&h.tenant, customer, SendRequest::system(template)));
    assert!(matches!(result, Err(Error::InvalidInput { .. })), "{result:?}");
    assert_eq!(sms.attempts(), 0);
    assert_eq!(
        (
            run(h.store.conversations_of(&h.tenant, customer)).unwrap().len(),
            run(h.store.events_after(&h.tenant, 0, 10_000)).unwrap().len()
        ),
        (conversations_before, events_before),
        "a refused send changed stored state"
    );
}

#[test]
fn two_concurrent_replies_on_one_conversation_are_both_sent_and_recorded() {
    let wa = Arc::new(Slow(StubChannel::new(endpoint("wa-main"), Capabilities::whatsapp())));
    let h = host(vec![wa.clone()], ChannelPolicy::default());
    let conversation = h.whatsapp_contact("wamid.IN1");
    let a = h.engine.send(&h.tenant, conversation, reply("one"));
    let b = h.engine.send(&h.tenant, conversation, reply("two"));
    let (ra, rb) = run(futures::future::join(a, b));
    assert!(ra.is_ok() && rb.is_ok(), "{ra:?} {rb:?}");
    assert_eq!((wa.0.sent().len(), h.outbound(conversation).len()), (2, 2));
}

/// A channel that needs the customer's opt-in (`ChannelPolicy::opt_in_required`) refuses a
/// message recorded for the host's own transport too, not only one the engine sends.
#[test]
fn record_outbound_keeps_the_opt_in_rule_that_send_keeps() {
    let policy = ChannelPolicy { opt_in_required: [ChannelKind::Sms].into(), ..ChannelPolicy::default() };
    let h = host(vec![sms_stub()], policy);
    let conversation =
        run(h.engine.ingest(&h.tenant, common::sms("sms-1", "+447700900123", "SM-IN-1", "Hi"))).unwrap().conversation;
    let before = h.store.dump();
    let sent = h.send(conversation, SendRequest::agent(agent("maria"), Content::text("Hello")));
    assert!(matches!(&sent, Err(Error::Refused(_))), "{sent:?}");
    let recorded = run(h.engine.record_outbound(
        &h.tenant,
        conversation,
        touchpoint::OutboundMessage::agent(agent("maria"), Content::text("Hello")),
    ));
    assert!(matches!(&recorded, Err(Error::Refused(m)) if m.contains("opt-in")), "{recorded:?}");
    assert_eq!(h.store.dump(), before, "nothing recorded");
}

/// Once armed, the next commit fails with a temporary error: before committing (`landed ==
/// false`) or after (`landed == true`, a commit whose outcome the store could not tell).
#[derive(Debug, Default)]
struct FlakyCommit {
    armed: std::sync::Mutex<Option<bool>>,
}

#[async_trait]
impl common::CommitHook for FlakyCommit {
    async fn commit(
        &self,
        inner: &InMemoryStore,
        t: &TenantId,
        changes: touchpoint::store::ChangeSet,
    ) -> touchpoint::Result<touchpoint::store::Committed> {
        let armed = self.armed.lock().unwrap().take();
        let unknown = || Error::Backend { message: "connection lost".into(), temporary: true, source: None };
        match armed {
            Some(false) => Err(unknown()),
            Some(true) => {
                inner.commit(t, changes).await?;
                Err(unknown())
            }
            None => inner.commit(t, changes).await,
        }
    }
}

/// The provider took the message, then recording it failed for a moment (the database busy,
/// or the commit's outcome unknown): the send still records it, once, and succeeds, so the
/// host has no reason to send it again.
#[test]
fn a_sent_message_is_recorded_once_through_a_temporary_store_failure() {
    for landed in [false, true] {
        let wa = whatsapp_stub();
        let store = Arc::new(common::HookedStore { inner: InMemoryStore::new(), hook: FlakyCommit::default() });
        let clock = Arc::new(ManualClock::new(t0()));
        let engine = Engine::builder(store.clone()).clock(clock.clone()).channel(wa.clone()).build();
        let tenant = TenantId::new("acme").unwrap();
        let msg = InboundMessage::new(
            ChannelKind::WhatsApp,
            endpoint("wa-main"),
            Address::phone("+447700900123"),
            "wamid.IN1",
            Content::text("Hi"),
        );
        let conversation = run(engine.ingest(&tenant, msg)).unwrap().conversation;
        *store.hook.armed.lock().unwrap() = Some(landed);
        let sent = run(engine.send(&tenant, conversation, reply("On its way."))).expect("recorded on a retry");
        assert_eq!(wa.sent().len(), 1, "sent once");
        let query = MessageQuery { scope: MessageScope::Conversation(conversation), before: None, limit: 100 };
        let outbound: Vec<Message> = run(store.inner.messages(&tenant, &query))
            .unwrap()
            .into_iter()
            .filter(|m| m.direction == Direction::Outbound)
            .collect();
        assert_eq!(outbound.len(), 1, "landed = {landed}");
        assert_eq!((outbound[0].id, outbound[0].external_id.as_deref()), (sent.message, Some("wamid.OUT1")));
    }
}

/// `send_to_customer` answers why it chose the channel: a fallback is reported as one, not as
/// the customer's preference it repeats the choice with. Opening the conversation on that
/// channel does not also announce the channel as added to it (`ChannelAdded` means a
/// conversation went on on another channel).
#[test]
fn send_to_customer_reports_the_reason_for_its_channel_and_announces_no_channel_change() {
    let (h, sms, customer) = proactive_host();
    let before = run(h.store.events_after(&h.tenant, 0, 1000)).unwrap().len() as u64;
    let sent =
        run(h.engine.send_to_customer(&h.tenant, customer, SendRequest::system(Content::text("Shipped")))).unwrap();
    let choice = sent.choice.expect("a choice");
    assert_eq!((choice.channel, choice.reason), (ChannelKind::Sms, ChoiceReason::Fallback), "{:?}", choice.skipped);
    assert_eq!(sms.sent().len(), 1);
    let events: Vec<Event> =
        run(h.store.events_after(&h.tenant, before, 1000)).unwrap().into_iter().map(|e| e.event).collect();
    let opened =
        |e: &Event| matches!(e, Event::ConversationOpened { conversation, .. } if *conversation == sent.conversation);
    assert!(events.iter().any(opened), "{events:?}");
    assert!(!events.iter().any(|e| matches!(e, Event::ChannelAdded { .. })), "{events:?}");
}
