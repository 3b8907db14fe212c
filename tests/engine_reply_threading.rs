//! Provider reply threading: a customer who quotes (replies to) one of our messages on WhatsApp
//! (`context.id`), Messenger (`reply_to.mid`) or Telegram (`reply_to_message`) lands in the
//! conversation of the quoted message — reopened per the reopen policy when it was resolved —
//! and a quote into a closed conversation never splits the customer's current one.

use chrono::{DateTime, Duration, TimeZone, Utc};
use std::sync::Arc;
use touchpoint::channel::{Capabilities, StubChannel};
use touchpoint::channels::KitEvent;
use touchpoint::channels::messenger::MessengerKit;
use touchpoint::channels::telegram::TelegramKit;
use touchpoint::channels::whatsapp::WhatsAppKit;
use touchpoint::clock::ManualClock;
use touchpoint::model::*;
use touchpoint::store::InMemoryStore;
use touchpoint::thread::{ChannelThreading, OpenReason, ReopenPolicy, ThreadDecision, ThreadReason, ThreadingPolicy};
use touchpoint::{ConversationPatch, Engine, IngestOutcome, SendRequest};

fn run<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

fn ep(name: &str) -> EndpointId {
    EndpointId::new(name).unwrap()
}

/// Just after the payloads' timestamps (2025-01-01 00:00 UTC).
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 5, 0).unwrap()
}

const TG_CHAT: i64 = 7000000001;

struct Host {
    engine: Engine,
    clock: Arc<ManualClock>,
    tenant: TenantId,
    whatsapp: WhatsAppKit,
    messenger: MessengerKit,
    telegram: TelegramKit,
}

fn host(threading: ThreadingPolicy) -> Host {
    let clock = Arc::new(ManualClock::new(start()));
    let engine = Engine::builder(Arc::new(InMemoryStore::new()))
        .clock(clock.clone())
        .threading(threading)
        .channel(Arc::new(StubChannel::new(ep("wa-main"), Capabilities::whatsapp()).with_id_prefix("wamid.OUT")))
        .channel(Arc::new(StubChannel::new(ep("fb-page"), Capabilities::messenger()).with_id_prefix("m_OUT")))
        // Telegram message ids are unique per chat: the kit and the host write them `<chat>:<id>`.
        .channel(Arc::new(
            StubChannel::new(ep("tg-bot"), Capabilities::telegram()).with_id_prefix(format!("tg-bot:{TG_CHAT}:")),
        ))
        .build();
    Host {
        engine,
        clock,
        tenant: TenantId::new("acme").unwrap(),
        whatsapp: WhatsAppKit::new().with_endpoint("800000000000001", ep("wa-main")),
        messenger: MessengerKit::new().with_endpoint("700000000000001", ep("fb-page")),
        telegram: TelegramKit::new(ep("tg-bot")).unwrap(),
    }
}

#[derive(Clone, Copy, Debug)]
enum Kit {
    WhatsApp,
    Messenger,
    Telegram,
}

const KITS: [Kit; 3] = [Kit::WhatsApp, Kit::Messenger, Kit::Telegram];

impl Host {
    /// The customer's message `n` through `kit`'s webhook, quoting provider message `quoting`.
    fn say(&self, kit: Kit, n: u32, body: &str, quoting: Option<&str>) -> IngestOutcome {
        let ts = 1_735_689_600 + i64::from(n);
        let events = match kit {
            Kit::WhatsApp => {
                let context =
                    quoting.map_or(String::new(), |q| format!(r#""context":{{"from":"15550001111","id":"{q}"}},"#));
                let body = format!(
                    r#"{{"object":"whatsapp_business_account","entry":[{{"id":"900000000000001","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550001111","phone_number_id":"800000000000001"}},"contacts":[{{"profile":{{"name":"Ada Example"}},"wa_id":"447700900123"}}],"messages":[{{{context}"from":"447700900123","id":"wamid.IN{n}","timestamp":"{ts}","type":"text","text":{{"body":"{body}"}}}}]}}}}]}}]}}"#
                );
                self.whatsapp.parse_webhook(body.as_bytes()).unwrap()
            }
            Kit::Messenger => {
                let reply = quoting.map_or(String::new(), |q| format!(r#","reply_to":{{"mid":"{q}"}}"#));
                let ms = ts * 1000;
                let body = format!(
                    r#"{{"object":"page","entry":[{{"id":"700000000000001","time":{ms},"messaging":[{{"sender":{{"id":"6100000000000001"}},"recipient":{{"id":"700000000000001"}},"timestamp":{ms},"message":{{"mid":"m_IN{n}","text":"{body}"{reply}}}}}]}}]}}"#
                );
                self.messenger.parse_webhook(body.as_bytes()).unwrap()
            }
            Kit::Telegram => {
                let reply = quoting.map_or(String::new(), |q| {
                    let id = q.rsplit(':').next().unwrap();
                    format!(
                        r#","reply_to_message":{{"message_id":{id},"date":{ts},"chat":{{"id":{TG_CHAT},"type":"private"}},"text":"earlier"}}"#
                    )
                });
                let body = format!(
                    r#"{{"update_id":{n},"message":{{"message_id":{},"date":{ts},"from":{{"id":{TG_CHAT},"is_bot":false,"first_name":"Ada"}},"chat":{{"id":{TG_CHAT},"type":"private","first_name":"Ada"}},"text":"{body}"{reply}}}}}"#,
                    100 + n
                );
                self.telegram.parse_update(body.as_bytes()).unwrap()
            }
        };
        let [KitEvent::Message(msg)] = &events[..] else { panic!("{kit:?}: {events:?}") };
        if let Some(q) = quoting {
            assert_eq!(msg.thread.in_reply_to.as_deref(), Some(q), "{kit:?} puts the quoted id in the thread hints");
        }
        run(self.engine.ingest(&self.tenant, msg.clone())).unwrap()
    }

    /// Our agent answers; returns the provider id of the answer.
    fn answer(&self, conversation: ConversationId, body: &str) -> String {
        let request = SendRequest::agent(AgentId::new("ana").unwrap(), Content::text(body));
        let sent = run(self.engine.send(&self.tenant, conversation, request)).unwrap();
        sent.parts[0].provider_message_id.clone()
    }

    fn set_status(&self, conversation: ConversationId, status: ConversationStatus) {
        let patch = ConversationPatch { status: Some(status), ..ConversationPatch::default() };
        run(self.engine.update_conversation(&self.tenant, conversation, patch)).unwrap();
    }
}

#[test]
fn a_quoted_reply_reopens_the_resolved_conversation_of_the_quoted_message_on_every_kit() {
    for kit in KITS {
        let h = host(ThreadingPolicy::default());
        let first = h.say(kit, 1, "My parcel has not arrived", None);
        let answer = h.answer(first.conversation, "It left our depot today");
        h.set_status(first.conversation, ConversationStatus::Resolved);

        h.clock.advance(Duration::days(2));
        let quoted = h.say(kit, 2, "It still has not come", Some(&answer));
        assert_eq!(quoted.conversation, first.conversation, "{kit:?}");
        assert_eq!(quoted.thread, ThreadDecision::Reopened { reason: ThreadReason::ProviderReply }, "{kit:?}");
        let c = run(h.engine.conversation(&h.tenant, first.conversation)).unwrap();
        assert_eq!(c.status, ConversationStatus::Open, "{kit:?}");
    }
}

#[test]
fn a_quote_into_a_closed_conversation_continues_the_current_one_instead_of_opening_another() {
    for kit in KITS {
        let h = host(ThreadingPolicy::default());
        let first = h.say(kit, 1, "My parcel has not arrived", None);
        let answer = h.answer(first.conversation, "It left our depot today");
        h.set_status(first.conversation, ConversationStatus::Closed);

        // The closed conversation is never reopened: a new one points back at it.
        let quoted = h.say(kit, 2, "About this again", Some(&answer));
        assert_ne!(quoted.conversation, first.conversation, "{kit:?}");
        assert_eq!(
            quoted.thread,
            ThreadDecision::Opened { reason: OpenReason::PreviousClosed, previous: Some(first.conversation) },
            "{kit:?}"
        );
        // Quoting the old message again joins that new conversation, not a third one.
        let again = h.say(kit, 3, "Hello?", Some(&answer));
        assert_eq!(again.conversation, quoted.conversation, "{kit:?}");
        assert!(matches!(again.thread, ThreadDecision::Continued { .. }), "{kit:?}: {:?}", again.thread);
    }
}

#[test]
fn without_session_threading_only_the_quote_ties_a_message_to_an_older_conversation() {
    let rules = ChannelThreading { session: false, reopen: ReopenPolicy::ReopenWithin(Duration::days(7)) };
    let h = host(ThreadingPolicy::default().with_channel(ChannelKind::WhatsApp, rules));
    let first = h.say(Kit::WhatsApp, 1, "Order 1 is late", None);
    let answer = h.answer(first.conversation, "Looking into order 1");
    let unrelated = h.say(Kit::WhatsApp, 2, "Also, a question about returns", None);
    assert_ne!(unrelated.conversation, first.conversation);

    let quoted = h.say(Kit::WhatsApp, 3, "Any news on order 1?", Some(&answer));
    assert_eq!(quoted.conversation, first.conversation);
    assert_eq!(quoted.thread, ThreadDecision::Continued { reason: ThreadReason::ProviderReply });
}

#[test]
fn quoting_the_customers_own_earlier_message_also_threads() {
    let rules = ChannelThreading { session: false, reopen: ReopenPolicy::ReopenWithin(Duration::days(7)) };
    let h = host(ThreadingPolicy::default().with_channel(ChannelKind::WhatsApp, rules));
    let first = h.say(Kit::WhatsApp, 1, "Order 1 is late", None);
    let quoted = h.say(Kit::WhatsApp, 2, "See above", Some("wamid.IN1"));
    assert_eq!(
        (quoted.conversation, quoted.thread),
        (first.conversation, ThreadDecision::Continued { reason: ThreadReason::ProviderReply })
    );
}

#[test]
fn a_quote_of_another_customers_message_is_ignored() {
    let h = host(ThreadingPolicy::default());
    let ada = h.say(Kit::WhatsApp, 1, "Hello", None);
    let answer = h.answer(ada.conversation, "Hi Ada");
    // Someone else claims to reply to the message we sent Ada.
    let other = InboundMessage::new(
        ChannelKind::WhatsApp,
        ep("wa-main"),
        Address::phone("+447700900999"),
        "wamid.OTHER1",
        Content::text("Hi"),
    )
    .with_thread(ThreadHints { in_reply_to: Some(answer), ..ThreadHints::default() });
    let outcome = run(h.engine.ingest(&h.tenant, other)).unwrap();
    assert_ne!(outcome.conversation, ada.conversation);
    assert_eq!(outcome.thread, ThreadDecision::Opened { reason: OpenReason::NoMatch, previous: None });
    assert!(outcome.notes.iter().any(|n| n.contains("ProviderReply")), "{:?}", outcome.notes);
}

/// An SMS-only host with a manual clock.
fn sms_only_host() -> (Engine, InMemoryStore, TenantId) {
    let sms = Arc::new(StubChannel::new(ep("sms-1"), Capabilities::sms()).with_id_prefix("SM-OUT"));
    let store = InMemoryStore::new();
    let clock = Arc::new(ManualClock::new(start()));
    let policy = touchpoint::channel::ChannelPolicy::default().falling_back_to(ChannelKind::Sms, ep("sms-1"));
    let engine = Engine::builder(Arc::new(store.clone())).clock(clock).channel_policy(policy).channel(sms).build();
    (engine, store, TenantId::new("acme").unwrap())
}

fn sms_text(id: &str, body: &str, quoting: Option<&str>) -> InboundMessage {
    let mut msg =
        InboundMessage::new(ChannelKind::Sms, ep("sms-1"), Address::phone("+14155550123"), id, Content::text(body));
    msg.thread.in_reply_to = quoting.map(str::to_owned);
    msg
}

fn set_status(engine: &Engine, tenant: &TenantId, c: ConversationId, s: ConversationStatus) {
    let patch = ConversationPatch { status: Some(s), ..Default::default() };
    run(engine.update_conversation(tenant, c, patch)).unwrap();
}

/// A conversation that followed the closed one (and was resolved since) is not reopened by a
/// quote into the closed one when the customer has a current conversation on the channel.
#[test]
fn a_quote_into_a_closed_conversation_joins_the_current_one_not_a_resolved_successor() {
    let (engine, _store, tenant) = sms_only_host();
    let a = run(engine.ingest(&tenant, sms_text("SM-1", "my order is late", None))).unwrap();
    set_status(&engine, &tenant, a.conversation, ConversationStatus::Closed);
    let b = run(engine.ingest(&tenant, sms_text("SM-2", "another thing", None))).unwrap();
    assert_ne!(b.conversation, a.conversation);
    set_status(&engine, &tenant, b.conversation, ConversationStatus::Resolved);
    // The agent writes to the customer: a new (pending) conversation is the current one.
    let sent =
        run(engine.send_to_customer(&tenant, a.customer, SendRequest::system(Content::text("Your order shipped"))))
            .unwrap();
    assert!(sent.conversation != a.conversation && sent.conversation != b.conversation);
    // The customer answers, quoting their first message.
    let answer = run(engine.ingest(&tenant, sms_text("SM-3", "thanks!", Some("SM-1")))).unwrap();
    assert_eq!(
        answer.conversation, sent.conversation,
        "joined {:?} ({:?}) instead of the current conversation",
        answer.conversation, answer.thread
    );
}

/// Under `Reject`, a quote into a resolved conversation does not refuse the customer's answer
/// when they have a current conversation on the channel: the answer joins it.
#[test]
fn under_reject_a_quote_into_a_resolved_conversation_joins_the_current_one() {
    let sms = Arc::new(StubChannel::new(ep("sms-1"), Capabilities::sms()).with_id_prefix("SM-OUT"));
    let store = InMemoryStore::new();
    let policy = touchpoint::channel::ChannelPolicy::default().falling_back_to(ChannelKind::Sms, ep("sms-1"));
    let threading = ThreadingPolicy::default()
        .with_channel(ChannelKind::Sms, ChannelThreading { session: true, reopen: ReopenPolicy::Reject });
    let engine = Engine::builder(Arc::new(store))
        .clock(Arc::new(ManualClock::new(start())))
        .channel_policy(policy)
        .threading(threading)
        .channel(sms)
        .build();
    let tenant = TenantId::new("acme").unwrap();
    let a = run(engine.ingest(&tenant, sms_text("SM-1", "my order is late", None))).unwrap();
    set_status(&engine, &tenant, a.conversation, ConversationStatus::Resolved);
    // Quoting into the resolved conversation with nothing current: refused, as before.
    let refused = run(engine.ingest(&tenant, sms_text("SM-2", "still late", Some("SM-1"))));
    assert!(matches!(refused, Err(touchpoint::Error::Refused(_))), "{refused:?}");
    // The agent writes to the customer: a new (pending) conversation is the current one.
    let sent =
        run(engine.send_to_customer(&tenant, a.customer, SendRequest::system(Content::text("Your order shipped"))))
            .unwrap();
    let answer = run(engine.ingest(&tenant, sms_text("SM-3", "thanks!", Some("SM-1")))).unwrap();
    assert_eq!(answer.conversation, sent.conversation, "{:?}", answer.thread);
}
