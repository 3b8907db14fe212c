//! Reply windows by author: Messenger's human-agent extension (7 days) applies to agents only.

mod common;

use chrono::Duration;
use common::*;
use touchpoint::Error;
use touchpoint::OutboundMessage;
use touchpoint::model::*;

fn messenger_contact(h: &Harness) -> touchpoint::IngestOutcome {
    h.ingest(InboundMessage::new(
        ChannelKind::Messenger,
        endpoint("fb-page"),
        Address::platform("fb-page", "psid-1"),
        "m_1",
        text("Hello from Messenger"),
    ))
}

#[test]
fn a_human_agent_may_answer_on_messenger_for_seven_days() {
    let h = Harness::new();
    let first = messenger_contact(&h);
    h.advance(Duration::days(3));
    let agent_reply =
        h.outbound(first.conversation, OutboundMessage::agent(agent("maria"), text("Sorry for the wait")));
    assert!(agent_reply.is_ok(), "{agent_reply:?}");
    h.advance(Duration::days(4) + Duration::minutes(1));
    let late = h.outbound(first.conversation, OutboundMessage::agent(agent("maria"), text("Still there?")));
    assert!(matches!(late, Err(Error::ReplyWindowClosed { .. })), "{late:?}");
}

#[test]
fn a_bot_keeps_the_standard_twenty_four_hour_window() {
    let h = Harness::new();
    let first = messenger_contact(&h);
    h.advance(Duration::hours(23));
    assert!(h.outbound(first.conversation, OutboundMessage::bot(agent("helper-bot"), text("Any news?"))).is_ok());
    h.advance(Duration::hours(2));
    let late = h.outbound(first.conversation, OutboundMessage::bot(agent("helper-bot"), text("Hello?")));
    assert!(matches!(late, Err(Error::ReplyWindowClosed { .. })), "{late:?}");
}

#[test]
fn a_reply_window_too_long_to_end_never_closes() {
    let mut config = touchpoint::EngineConfig::default();
    config.reply_windows.insert(ChannelKind::WhatsApp, Duration::MAX);
    let h = Harness::with_config(config);
    let first = h.ingest(whatsapp("wa-main", "+14155550123", "wamid.1", "Hello"));
    h.advance(Duration::days(400));
    let view = h.context(first.customer);
    let window = &view.identities[0].reply_windows[0];
    assert!(window.open && window.closes_at.is_none(), "{window:?}");
    assert!(h.outbound(first.conversation, OutboundMessage::agent(agent("maria"), text("Still here"))).is_ok());
    let rule = touchpoint::channel::ReplyWindowRule::new(Duration::MAX);
    assert_eq!(rule.status(Some(t0()), h.now()), touchpoint::channel::WindowStatus::NoWindow);
}

#[test]
fn the_whatsapp_window_runs_from_when_the_customer_wrote_not_from_when_a_late_webhook_arrived() {
    // WhatsApp retries webhooks for hours; the kit sets `sent_at` from the payload timestamp.
    // The 24 h window runs from the customer's message (channel-facts.md §1.5).
    let h = Harness::new();
    let wrote_at = h.now() - Duration::hours(23);
    let first = h.ingest(whatsapp("wa-main", "+14155550123", "wamid.1", "Hello").with_sent_at(wrote_at));
    h.advance(Duration::hours(2)); // 25 h after the customer wrote
    let late = h.outbound(first.conversation, OutboundMessage::agent(agent("maria"), text("Sorry for the wait")));
    assert!(matches!(late, Err(Error::ReplyWindowClosed { .. })), "{late:?}");
}

#[test]
fn a_template_does_not_open_a_closed_window_on_a_channel_without_templates() {
    // Templates are WhatsApp's way out of a closed window; Messenger has none (Capabilities,
    // ChannelPolicy::template_channels), and Engine::send refuses this. record_outbound must too.
    let h = Harness::new();
    let first = messenger_contact(&h);
    h.advance(Duration::days(8));
    let late = h.outbound(first.conversation, OutboundMessage::bot(agent("helper-bot"), template("order_update")));
    assert!(matches!(late, Err(Error::ReplyWindowClosed { .. })), "{late:?}");
}
