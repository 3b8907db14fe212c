//! Outbound channel choice (pure) and the engine's reply-window check at its edges.

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::executor::block_on;
use std::sync::Arc;
use touchpoint::channel::{ChannelPolicy, ChoiceReason, WindowStatus};
use touchpoint::clock::ManualClock;
use touchpoint::model::*;
use touchpoint::store::InMemoryStore;
use touchpoint::{Engine, Error, OutboundMessage};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn ep(s: &str) -> EndpointId {
    EndpointId::new(s).unwrap()
}

fn customer() -> Customer {
    Customer::new(CustomerId::from_uuid(uuid::Uuid::from_u128(1)), tenant(), t0())
}

fn identity(n: u128, owner: &Customer, channel: ChannelKind, kind: AddressKind, value: &str) -> Identity {
    let address = NormalizedAddress { kind, value: value.into() };
    let id = IdentityId::from_uuid(uuid::Uuid::from_u128(100 + n));
    Identity::new(id, owner, channel, address, value.into(), Verification::CarrierAsserted, t0())
}

fn whatsapp(owner: &Customer, last_inbound: DateTime<Utc>) -> Identity {
    let mut i = identity(1, owner, ChannelKind::WhatsApp, AddressKind::Phone, "+447700900123");
    i.touch_inbound(&ep("wa-main"), last_inbound);
    i
}

fn sms(owner: &Customer) -> Identity {
    identity(2, owner, ChannelKind::Sms, AddressKind::Phone, "+447700900123")
}

fn agent() -> Author {
    Author::Agent(AgentId::new("ana").unwrap())
}

fn bot() -> Author {
    Author::Bot(AgentId::new("helper-bot").unwrap())
}

fn reply() -> Content {
    Content::text("Thanks, we are on it.")
}

fn template() -> Content {
    Content::Template { name: "order_update".into(), language: "en".into(), parameters: vec![] }
}

fn opt(channel: ChannelKind, state: ConsentState) -> (ChannelKind, Consent) {
    (channel, Consent { state, at: t0(), source: None })
}

#[test]
fn replies_on_the_channel_the_customer_last_used_while_its_window_is_open() {
    let c = customer();
    let wa = whatsapp(&c, t0());
    let choice = ChannelPolicy::default()
        .choose(&c, std::slice::from_ref(&wa), &bot(), &reply(), t0() + Duration::hours(3))
        .unwrap();
    assert_eq!(choice.channel, ChannelKind::WhatsApp);
    assert_eq!(choice.endpoint, ep("wa-main"));
    assert_eq!(choice.identity, wa.id);
    assert_eq!(choice.recipient, wa.address);
    assert_eq!(choice.reason, ChoiceReason::LastUsed);
    assert_eq!(choice.window, WindowStatus::Open { closes_at: t0() + Duration::hours(24) });
    assert_eq!(choice.message_tag, None);
    assert!(choice.skipped.is_empty());
}

#[test]
fn the_most_recent_inbound_across_channels_and_endpoints_wins() {
    let c = customer();
    let mut wa = whatsapp(&c, t0());
    wa.touch_inbound(&ep("wa-us"), t0() + Duration::hours(2));
    let mut text = sms(&c);
    text.touch_inbound(&ep("sms-1"), t0() + Duration::hours(1));
    let choice =
        ChannelPolicy::default().choose(&c, &[text.clone(), wa.clone()], &bot(), &reply(), t0() + Duration::hours(3));
    let choice = choice.unwrap();
    assert_eq!((choice.channel, choice.endpoint), (ChannelKind::WhatsApp, ep("wa-us")));

    text.touch_inbound(&ep("sms-1"), t0() + Duration::hours(4));
    let choice = ChannelPolicy::default().choose(&c, &[text, wa], &bot(), &reply(), t0() + Duration::hours(5)).unwrap();
    assert_eq!(
        (choice.channel, choice.endpoint, choice.window),
        (ChannelKind::Sms, ep("sms-1"), WindowStatus::NoWindow)
    );
}

#[test]
fn the_preferred_channel_wins_over_the_last_used_one() {
    let c = customer();
    let wa = whatsapp(&c, t0());
    let mail = identity(3, &c, ChannelKind::Email, AddressKind::Email, "ada@example.net");
    let policy = ChannelPolicy {
        default_endpoints: [(ChannelKind::Email, ep("support-inbox"))].into(),
        ..ChannelPolicy::default()
    }
    .preferring(ChannelKind::Email);
    let choice = policy.choose(&c, &[wa, mail.clone()], &bot(), &reply(), t0() + Duration::hours(1)).unwrap();
    assert_eq!((choice.channel, choice.reason), (ChannelKind::Email, ChoiceReason::Preferred));
    assert_eq!((choice.endpoint, choice.identity), (ep("support-inbox"), mail.id));
}

#[test]
fn a_preferred_channel_that_cannot_take_the_message_is_skipped_with_the_reason() {
    let c = customer();
    let wa = whatsapp(&c, t0());
    let mut text = sms(&c);
    text.touch_inbound(&ep("sms-1"), t0() + Duration::hours(1));
    let policy = ChannelPolicy::default().preferring(ChannelKind::WhatsApp);
    let choice = policy.choose(&c, &[wa, text], &bot(), &reply(), t0() + Duration::hours(30)).unwrap();
    assert_eq!((choice.channel, choice.reason), (ChannelKind::Sms, ChoiceReason::LastUsed));
    assert_eq!(choice.skipped.len(), 1);
    assert_eq!(choice.skipped[0].channel, ChannelKind::WhatsApp);
    assert!(choice.skipped[0].reason.contains("24-hour whatsapp window is closed"), "{}", choice.skipped[0].reason);
}

#[test]
fn outside_the_window_without_fallback_a_template_is_required() {
    let c = customer();
    let wa = whatsapp(&c, t0());
    let err = ChannelPolicy::default()
        .choose(&c, std::slice::from_ref(&wa), &agent(), &reply(), t0() + Duration::hours(25))
        .unwrap_err();
    let Error::ReplyWindowClosed { channel, hint } = &err else { panic!("{err:?}") };
    assert_eq!(channel, &ChannelKind::WhatsApp);
    assert!(hint.contains("send an approved template"), "{hint}");
    assert!(hint.contains("no fallback channel is configured"), "{hint}");

    let choice = ChannelPolicy::default().choose(&c, &[wa], &bot(), &template(), t0() + Duration::hours(25)).unwrap();
    assert_eq!(choice.channel, ChannelKind::WhatsApp);
    assert_eq!(choice.window, WindowStatus::Closed { closed_at: Some(t0() + Duration::hours(24)) });
}

#[test]
fn the_window_includes_its_last_instant() {
    let c = customer();
    let wa = whatsapp(&c, t0());
    let policy = ChannelPolicy::default();
    assert!(policy.choose(&c, std::slice::from_ref(&wa), &bot(), &reply(), t0() + Duration::hours(24)).is_ok());
    assert!(policy.choose(&c, &[wa], &bot(), &reply(), t0() + Duration::hours(24) + Duration::seconds(1)).is_err());
}

#[test]
fn falls_back_to_a_configured_channel_when_the_window_is_closed() {
    let c = customer();
    let wa = whatsapp(&c, t0());
    let text = sms(&c);
    let policy = ChannelPolicy::default().falling_back_to(ChannelKind::Sms, ep("sms-1"));
    let choice = policy.choose(&c, &[wa, text.clone()], &bot(), &reply(), t0() + Duration::hours(30)).unwrap();
    assert_eq!(choice.channel, ChannelKind::Sms);
    assert_eq!(choice.reason, ChoiceReason::Fallback);
    assert_eq!((choice.endpoint, choice.identity), (ep("sms-1"), text.id));
    assert_eq!(choice.skipped.iter().map(|s| s.channel.clone()).collect::<Vec<_>>(), [ChannelKind::WhatsApp]);
}

#[test]
fn a_fallback_respects_consent_and_opt_in_rules() {
    let mut c = customer();
    let wa = whatsapp(&c, t0());
    let text = sms(&c);
    let later = t0() + Duration::hours(30);
    let policy = ChannelPolicy::default().falling_back_to(ChannelKind::Sms, ep("sms-1"));

    c.consent.extend([opt(ChannelKind::Sms, ConsentState::OptedOut)]);
    let err = policy.choose(&c, &[wa.clone(), text.clone()], &bot(), &reply(), later).unwrap_err();
    let Error::ReplyWindowClosed { hint, .. } = &err else { panic!("{err:?}") };
    assert!(hint.contains("sms: the customer opted out of sms"), "{hint}");

    // Opt-in required and not recorded: no SMS either.
    let strict = ChannelPolicy { opt_in_required: [ChannelKind::Sms].into(), ..policy.clone() };
    c.consent.clear();
    assert!(matches!(
        strict.choose(&c, &[wa.clone(), text.clone()], &bot(), &reply(), later),
        Err(Error::ReplyWindowClosed { .. })
    ));
    c.consent.extend([opt(ChannelKind::Sms, ConsentState::OptedIn)]);
    assert_eq!(strict.choose(&c, &[wa, text], &bot(), &reply(), later).unwrap().channel, ChannelKind::Sms);
}

#[test]
fn messenger_human_agents_may_reply_for_seven_days_with_the_tag() {
    let c = customer();
    let mut fb = identity(4, &c, ChannelKind::Messenger, AddressKind::Platform, "page-1:psid-9");
    fb.touch_inbound(&ep("fb-page"), t0());
    let policy = ChannelPolicy::default();
    let day3 = t0() + Duration::days(3);

    let choice = policy.choose(&c, std::slice::from_ref(&fb), &agent(), &reply(), day3).unwrap();
    assert_eq!(choice.message_tag.as_deref(), Some("HUMAN_AGENT"));
    assert_eq!(choice.window, WindowStatus::HumanAgentOnly { closes_at: t0() + Duration::days(7) });

    let err = policy.choose(&c, std::slice::from_ref(&fb), &bot(), &reply(), day3).unwrap_err();
    let Error::ReplyWindowClosed { channel, hint } = &err else { panic!("{err:?}") };
    assert_eq!(channel, &ChannelKind::Messenger);
    assert!(hint.contains("only a human agent may reply"), "{hint}");
    assert!(hint.contains("the customer has to write first"), "Messenger has no templates: {hint}");

    let within = policy.choose(&c, std::slice::from_ref(&fb), &bot(), &reply(), t0() + Duration::hours(23)).unwrap();
    assert_eq!(within.message_tag, None);
    assert!(policy.choose(&c, &[fb], &agent(), &reply(), t0() + Duration::days(8)).is_err());
}

#[test]
fn consent_blocking_and_lifecycle_are_respected() {
    let mut c = customer();
    let wa = whatsapp(&c, t0());
    let soon = t0() + Duration::hours(1);
    let policy = ChannelPolicy::default();

    c.consent.extend([opt(ChannelKind::WhatsApp, ConsentState::OptedOut)]);
    let err = policy.choose(&c, std::slice::from_ref(&wa), &bot(), &reply(), soon).unwrap_err();
    assert!(matches!(&err, Error::Refused(m) if m.contains("opted out of whatsapp")), "{err:?}");

    c.consent.clear();
    c.blocked = true;
    assert!(
        matches!(policy.choose(&c, std::slice::from_ref(&wa), &bot(), &reply(), soon), Err(Error::Refused(m)) if m.contains("blocked"))
    );

    c.blocked = false;
    c.state = CustomerState::Erased { at: t0() };
    assert!(matches!(policy.choose(&c, std::slice::from_ref(&wa), &bot(), &reply(), soon), Err(Error::Erased(_))));

    c.state = CustomerState::Merged { into: CustomerId::from_uuid(uuid::Uuid::from_u128(2)), at: t0() };
    assert!(matches!(policy.choose(&c, &[wa], &bot(), &reply(), soon), Err(Error::Refused(m)) if m.contains("merged")));
}

#[test]
fn bad_input_is_a_typed_error() {
    let c = customer();
    let other = Customer::new(CustomerId::from_uuid(uuid::Uuid::from_u128(9)), tenant(), t0());
    let foreign = whatsapp(&other, t0());
    assert!(matches!(
        ChannelPolicy::default().choose(&c, &[foreign], &bot(), &reply(), t0()),
        Err(Error::InvalidInput { field: "identities", .. })
    ));
    assert!(matches!(
        ChannelPolicy::default().choose(&c, &[], &bot(), &reply(), t0()),
        Err(Error::Refused(m)) if m.contains("no address")
    ));
    // An address the customer never wrote from, and no default endpoint: nowhere to send from.
    let unused = sms(&c);
    let err = ChannelPolicy::default().choose(&c, &[unused], &bot(), &reply(), t0()).unwrap_err();
    assert!(matches!(&err, Error::Refused(_)), "{err:?}");
}

// --- the engine's own reply-window check --------------------------------------------------

struct World {
    engine: Engine,
    clock: Arc<ManualClock>,
    conversation: ConversationId,
    customer: CustomerId,
}

fn whatsapp_customer_wrote_at_t0() -> World {
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = Engine::builder(Arc::new(InMemoryStore::new())).clock(clock.clone()).build();
    let inbound = InboundMessage::new(
        ChannelKind::WhatsApp,
        ep("wa-main"),
        Address::phone("+447700900123"),
        "wamid.IN1",
        Content::text("Where is my parcel?"),
    );
    let outcome = block_on(engine.ingest(&tenant(), inbound)).unwrap();
    World { engine, clock, conversation: outcome.conversation, customer: outcome.customer }
}

#[test]
fn a_whatsapp_reply_23h59_after_the_last_inbound_is_allowed_and_at_24h01_refused() {
    let w = whatsapp_customer_wrote_at_t0();
    let agent_id = AgentId::new("ana").unwrap();

    w.clock.set(t0() + Duration::hours(23) + Duration::minutes(59));
    let sent = block_on(w.engine.record_outbound(
        &tenant(),
        w.conversation,
        OutboundMessage::agent(agent_id.clone(), reply()),
    ));
    assert!(sent.is_ok(), "{sent:?}");

    w.clock.set(t0() + Duration::hours(24) + Duration::minutes(1));
    let refused = block_on(w.engine.record_outbound(
        &tenant(),
        w.conversation,
        OutboundMessage::agent(agent_id.clone(), reply()),
    ));
    let err = refused.unwrap_err();
    assert!(matches!(&err, Error::ReplyWindowClosed { channel: ChannelKind::WhatsApp, .. }), "{err:?}");
    assert!(err.to_string().contains("template"), "{err}");

    // A template still goes out.
    let t = block_on(w.engine.record_outbound(&tenant(), w.conversation, OutboundMessage::agent(agent_id, template())));
    assert!(t.is_ok(), "{t:?}");
}

#[test]
fn channel_choice_agrees_with_the_engine_on_stored_identities() {
    let w = whatsapp_customer_wrote_at_t0();
    let customer = block_on(w.engine.customer(&tenant(), w.customer)).unwrap();
    let identities = block_on(w.engine.store().identities_of(&tenant(), w.customer)).unwrap();
    let policy = ChannelPolicy::default();

    let at = t0() + Duration::hours(23) + Duration::minutes(59);
    let choice = policy.choose(&customer, &identities, &bot(), &reply(), at).unwrap();
    assert_eq!((&choice.channel, &choice.endpoint), (&ChannelKind::WhatsApp, &ep("wa-main")));

    w.clock.set(at);
    let out = OutboundMessage::bot(AgentId::new("helper-bot").unwrap(), reply()).via(choice.endpoint, choice.identity);
    assert!(block_on(w.engine.record_outbound(&tenant(), w.conversation, out)).is_ok());

    let late = t0() + Duration::hours(24) + Duration::minutes(1);
    assert!(matches!(
        policy.choose(&customer, &identities, &bot(), &reply(), late),
        Err(Error::ReplyWindowClosed { channel: ChannelKind::WhatsApp, .. })
    ));
}
