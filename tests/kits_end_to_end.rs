//! End to end, as a host would wire it: webhook bytes → signature check → kit → `Engine::ingest`
//! / `Engine::update_delivery` → the customer's context shows each message on the right
//! conversation, receipts move delivery states forward, and forged requests change nothing.

use chrono::{TimeZone, Utc};
use std::sync::Arc;
use touchpoint::channels::messenger::MessengerKit;
use touchpoint::channels::signature::{MetaSignature, TelegramSecretToken};
use touchpoint::channels::telegram::TelegramKit;
use touchpoint::channels::whatsapp::WhatsAppKit;
use touchpoint::channels::{DeliveryReceipt, KitEvent};
use touchpoint::clock::ManualClock;
use touchpoint::context::{ContextView, TimelinePage};
use touchpoint::identity::{LinkedBy, Resolution};
use touchpoint::model::*;
use touchpoint::store::InMemoryStore;
use touchpoint::{Engine, Error, IngestOutcome, OutboundMessage, SignatureFailure};

// Kits, verifiers and their output are shared between request handlers: they must be Send + Sync
// (checked at compile time).
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<WhatsAppKit>();
    shared::<MessengerKit>();
    shared::<TelegramKit>();
    shared::<MetaSignature>();
    shared::<TelegramSecretToken>();
    shared::<touchpoint::channels::signature::TwilioSignature>();
    shared::<touchpoint::channels::signature::SlackSignature>();
    shared::<KitEvent>();
    shared::<DeliveryReceipt>();
};

const APP_SECRET: &str = "test_app_secret_0001";
const TG_SECRET: &str = "tg_secret-0001";

struct Host {
    engine: Engine,
    store: InMemoryStore,
    tenant: TenantId,
    meta: MetaSignature,
    telegram_secret: TelegramSecretToken,
    whatsapp: WhatsAppKit,
    messenger: MessengerKit,
    telegram: TelegramKit,
}

/// What the host did with one webhook.
#[derive(Debug, Default)]
struct Handled {
    ingested: Vec<IngestOutcome>,
    receipts: Vec<Message>,
    callbacks: Vec<String>,
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

impl Host {
    fn new() -> Self {
        let store = InMemoryStore::new();
        // Just after the fixtures' timestamps (2025-01-01).
        let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2025, 1, 1, 0, 5, 0).unwrap()));
        let engine = Engine::builder(Arc::new(store.clone())).clock(clock).build();
        Host {
            engine,
            store,
            tenant: TenantId::new("acme").unwrap(),
            meta: MetaSignature::new(APP_SECRET),
            telegram_secret: TelegramSecretToken::new(TG_SECRET).unwrap(),
            whatsapp: WhatsAppKit::new().with_endpoint("800000000000001", EndpointId::new("wa-main").unwrap()),
            messenger: MessengerKit::new().with_endpoint("700000000000001", EndpointId::new("fb-page").unwrap()),
            telegram: TelegramKit::new(EndpointId::new("tg-bot").unwrap()).unwrap(),
        }
    }

    fn handle(&self, events: Vec<KitEvent>) -> Result<Handled, Error> {
        let mut done = Handled::default();
        for event in events {
            match event {
                KitEvent::Message(m) | KitEvent::Edited { message: m, .. } => {
                    done.ingested.push(run(self.engine.ingest(&self.tenant, m))?);
                }
                KitEvent::ButtonPressed { query_id, message } => {
                    done.ingested.push(run(self.engine.ingest(&self.tenant, message))?);
                    done.callbacks.push(query_id);
                }
                KitEvent::Receipt(DeliveryReceipt { channel, external_id, state, watermark: false, .. }) => {
                    done.receipts.push(run(self.engine.update_delivery(&self.tenant, &channel, &external_id, state))?);
                }
                _ => {}
            }
        }
        Ok(done)
    }

    /// `POST /webhooks/whatsapp` with the `X-Hub-Signature-256` header.
    fn whatsapp_post(&self, signature: Option<&str>, body: &[u8]) -> Result<Handled, Error> {
        self.meta.verify(signature, body)?;
        self.handle(self.whatsapp.parse_webhook(body)?)
    }

    /// `POST /webhooks/messenger`.
    fn messenger_post(&self, signature: Option<&str>, body: &[u8]) -> Result<Handled, Error> {
        self.meta.verify(signature, body)?;
        self.handle(self.messenger.parse_webhook(body)?)
    }

    /// `POST /webhooks/telegram` with the `X-Telegram-Bot-Api-Secret-Token` header.
    fn telegram_post(&self, secret: Option<&str>, body: &[u8]) -> Result<Handled, Error> {
        self.telegram_secret.verify(secret)?;
        self.handle(self.telegram.parse_update(body)?)
    }

    /// A correctly signed WhatsApp or Messenger delivery of a fixture.
    fn signed_meta(&self, path: &str) -> (String, Vec<u8>) {
        let body = fixture(path);
        (self.meta.sign(&body), body)
    }

    fn context(&self, customer: CustomerId) -> ContextView {
        run(self.engine.customer_context(&self.tenant, customer, TimelinePage { before: None, limit: 500 })).unwrap()
    }

    fn reply(&self, conversation: ConversationId, external_id: &str) -> Message {
        let out = OutboundMessage::agent(AgentId::new("agent-1").unwrap(), Content::text("Checking with the courier"))
            .with_external_id(external_id);
        run(self.engine.record_outbound(&self.tenant, conversation, out)).unwrap()
    }
}

fn on_conversation(view: &ContextView, external_id: &str) -> Option<ConversationId> {
    view.timeline.iter().find(|m| m.external_id.as_deref() == Some(external_id)).map(|m| m.conversation)
}

#[test]
fn whatsapp_messages_and_receipts_flow_through_the_engine() {
    let host = Host::new();
    // The exact bytes and header of the reference's signature vector.
    let body = fixture("whatsapp/text.json");
    let header = "sha256=136088737a5b8a0f17850ddacbc9e7580bb3fad10d0eba905290ea7c8f870821";
    let first = host.whatsapp_post(Some(header), &body).unwrap().ingested.remove(0);
    assert!(!first.duplicate);

    let view = host.context(first.customer);
    assert_eq!(on_conversation(&view, "wamid.TEST0001"), Some(first.conversation));
    assert_eq!(view.timeline[0].content, Content::text("Hi, my parcel has not arrived"));
    assert_eq!(view.timeline[0].sent_at, Utc.timestamp_opt(1735689600, 0).unwrap());
    let identity = &view.identities[0].identity;
    assert_eq!((identity.channel.clone(), identity.address.value.as_str()), (ChannelKind::WhatsApp, "+447700900123"));
    assert_eq!(view.identities[0].reply_windows[0].endpoint.as_str(), "wa-main");

    // Meta retries the webhook: nothing changes.
    let again = host.whatsapp_post(Some(header), &body).unwrap().ingested.remove(0);
    assert!(again.duplicate);
    assert_eq!(again.message, first.message);

    // The customer taps a row of our list: same customer, same conversation.
    let (sig, list) = host.signed_meta("whatsapp/list_reply.json");
    let pick = host.whatsapp_post(Some(&sig), &list).unwrap().ingested.remove(0);
    assert_eq!((pick.customer, pick.conversation), (first.customer, first.conversation));

    // Our reply is sent as wamid.OUT0008; its statuses arrive: sent, delivered, read.
    let reply = host.reply(first.conversation, "wamid.OUT0008");
    assert_eq!(reply.delivery, DeliveryState::Pending);
    let (sig, statuses) = host.signed_meta("whatsapp/statuses.json");
    let handled = host.whatsapp_post(Some(&sig), &statuses).unwrap();
    assert_eq!(handled.receipts.last().unwrap().delivery, DeliveryState::Read);
    // A late `failed` for a message already read does not move it back.
    let (sig, failed) = host.signed_meta("whatsapp/status_failed.json");
    host.whatsapp_post(Some(&sig), &failed).unwrap();
    assert_eq!(run(host.engine.message(&host.tenant, reply.id)).unwrap().delivery, DeliveryState::Read);

    let view = host.context(first.customer);
    assert_eq!(view.timeline.len(), 3);
    assert!(view.timeline.iter().all(|m| m.conversation == first.conversation));
}

#[test]
fn a_failed_whatsapp_status_marks_the_message_failed_with_its_code() {
    let host = Host::new();
    let (sig, body) = host.signed_meta("whatsapp/text.json");
    let first = host.whatsapp_post(Some(&sig), &body).unwrap().ingested.remove(0);
    let reply = host.reply(first.conversation, "wamid.OUT0008");
    let (sig, failed) = host.signed_meta("whatsapp/status_failed.json");
    host.whatsapp_post(Some(&sig), &failed).unwrap();
    assert_eq!(
        run(host.engine.message(&host.tenant, reply.id)).unwrap().delivery,
        DeliveryState::Failed { code: Some("131047".into()), reason: "Re-engagement message".into() }
    );
}

#[test]
fn forged_or_unsigned_webhooks_change_nothing() {
    let host = Host::new();
    let before = host.store.dump();
    let body = fixture("whatsapp/text.json");
    let forged = MetaSignature::new("someone-elses-secret").sign(&body);
    assert!(matches!(
        host.whatsapp_post(Some(&forged), &body),
        Err(Error::Unauthenticated { failure: SignatureFailure::Mismatch, .. })
    ));
    assert!(matches!(
        host.whatsapp_post(None, &body),
        Err(Error::Unauthenticated { failure: SignatureFailure::MissingHeader, .. })
    ));
    // A body changed after signing.
    let sig = host.meta.sign(&body);
    let tampered = String::from_utf8(body).unwrap().replace("not arrived", "arrived");
    assert!(host.whatsapp_post(Some(&sig), tampered.as_bytes()).is_err());
    assert!(host.telegram_post(Some("guess"), &fixture("telegram/start_command.json")).is_err());
    assert_eq!(host.store.dump(), before);
}

#[test]
fn a_malformed_but_signed_webhook_is_rejected_whole() {
    let host = Host::new();
    let before = host.store.dump();
    // The second message lacks its id: the first must not be ingested either.
    let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"9","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"800000000000001"},"messages":[
        {"from":"447700900123","id":"wamid.A","timestamp":"1735689600","type":"text","text":{"body":"one"}},
        {"from":"447700900123","timestamp":"1735689601","type":"text","text":{"body":"two"}}]}}]}]}"#;
    let err = host.whatsapp_post(Some(&host.meta.sign(body)), body).unwrap_err();
    assert!(err.to_string().contains("entry[0].changes[0].value.messages[1]"), "{err}");
    assert_eq!(host.store.dump(), before);
}

#[test]
fn a_business_scoped_id_with_the_known_phone_links_to_the_same_customer() {
    let host = Host::new();
    let (sig, body) = host.signed_meta("whatsapp/text.json");
    let by_phone = host.whatsapp_post(Some(&sig), &body).unwrap().ingested.remove(0);
    let (sig, body) = host.signed_meta("whatsapp/bsuid.json");
    let handled = host.whatsapp_post(Some(&sig), &body).unwrap();
    let with_bsuid = &handled.ingested[0];
    assert_eq!(with_bsuid.customer, by_phone.customer);
    assert_eq!(
        with_bsuid.resolution,
        Resolution::Linked { key: LinkedBy::Phone, verification: Verification::CarrierAsserted }
    );
    // The user without a phone number is somebody else.
    assert_ne!(handled.ingested[1].customer, by_phone.customer);
    assert_eq!(host.context(by_phone.customer).identities.len(), 2);
}

#[test]
fn messenger_message_and_delivery_receipt() {
    let host = Host::new();
    let (sig, body) = host.signed_meta("messenger/text_reply.json");
    let first = host.messenger_post(Some(&sig), &body).unwrap().ingested.remove(0);
    let reply = host.reply(first.conversation, "m_OUTMID0005");

    // The quick reply joins the conversation; the delivery receipt reaches our reply.
    let (sig, body) = host.signed_meta("messenger/quick_reply_and_delivery.json");
    let handled = host.messenger_post(Some(&sig), &body).unwrap();
    assert_eq!(handled.ingested[0].conversation, first.conversation);
    assert_eq!(handled.receipts[0].id, reply.id);
    assert_eq!(handled.receipts[0].delivery, DeliveryState::Delivered);

    let view = host.context(first.customer);
    assert_eq!(on_conversation(&view, "m_TESTMID0001"), Some(first.conversation));
    assert_eq!(view.identities[0].identity.address.value, "700000000000001:6100000000000001");
}

#[test]
fn telegram_command_and_button_press_land_in_one_conversation() {
    let host = Host::new();
    let start =
        host.telegram_post(Some(TG_SECRET), &fixture("telegram/start_command.json")).unwrap().ingested.remove(0);
    let press = host.telegram_post(Some(TG_SECRET), &fixture("telegram/callback_query.json")).unwrap();
    assert_eq!(press.callbacks, vec!["4300000000000000001".to_owned()]);
    assert_eq!(press.ingested[0].conversation, start.conversation);
    let view = host.context(start.customer);
    assert_eq!(on_conversation(&view, "tg-bot:7000000001:42"), Some(start.conversation));
    assert_eq!(on_conversation(&view, "callback:tg-bot:4300000000000000001"), Some(start.conversation));
    assert_eq!(view.customer.name.as_deref(), Some("Ada"));
}

#[test]
fn sharing_ones_own_number_on_telegram_joins_the_whatsapp_customer() {
    let host = Host::new();
    let (sig, body) = host.signed_meta("whatsapp/text.json");
    let whatsapp = host.whatsapp_post(Some(&sig), &body).unwrap().ingested.remove(0);
    let telegram =
        host.telegram_post(Some(TG_SECRET), &fixture("telegram/contact_own.json")).unwrap().ingested.remove(0);
    assert_eq!(telegram.customer, whatsapp.customer);
    assert_eq!(
        telegram.resolution,
        Resolution::Linked { key: LinkedBy::Phone, verification: Verification::CarrierAsserted }
    );
    // One customer, two channels, each message on its own channel's conversation.
    let view = host.context(whatsapp.customer);
    assert_eq!(view.identities.len(), 2);
    assert_eq!(on_conversation(&view, "wamid.TEST0001"), Some(whatsapp.conversation));
    assert_eq!(on_conversation(&view, "tg-bot:7000000001:52"), Some(telegram.conversation));
    assert_ne!(telegram.conversation, whatsapp.conversation);

    // Someone else's card links nobody.
    let host = Host::new();
    let (sig, body) = host.signed_meta("whatsapp/text.json");
    let whatsapp = host.whatsapp_post(Some(&sig), &body).unwrap().ingested.remove(0);
    let other =
        host.telegram_post(Some(TG_SECRET), &fixture("telegram/contact_other.json")).unwrap().ingested.remove(0);
    assert_ne!(other.customer, whatsapp.customer);
}

/// Two bots sharing a user scope (`with_user_scope`: one identity per person) each have a
/// private chat with the same user, and both chats carry the user's id as chat id. Like one
/// person writing to two of our WhatsApp numbers, that is one customer with two threads.
#[test]
fn two_telegram_bots_sharing_a_user_scope_keep_two_threads() {
    let host = Host::new();
    let kit = |bot: &str| TelegramKit::new(EndpointId::new(bot).unwrap()).unwrap().with_user_scope("tg-users").unwrap();
    let post = |kit: &TelegramKit| {
        let body = fixture("telegram/start_command.json");
        host.handle(kit.parse_update(&body).unwrap()).unwrap().ingested.remove(0)
    };
    let sales = post(&kit("tg-sales"));
    let support = post(&kit("tg-support"));
    assert_eq!(support.identity, sales.identity, "one identity through the shared scope");
    assert_ne!(
        support.conversation, sales.conversation,
        "the support bot's chat joined the sales bot's: {:?}",
        support.thread
    );
    // Each bot's later message continues its own chat's conversation.
    let again = host.handle(kit("tg-sales").parse_update(&fixture("telegram/photo_reply.json")).unwrap()).unwrap();
    assert_eq!(again.ingested[0].conversation, sales.conversation);
}
