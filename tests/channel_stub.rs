//! StubChannel: records every send, scripted failures, deterministic provider ids; the Channel
//! trait used as an object.

use futures::executor::block_on;
use std::sync::Arc;
use touchpoint::Error;
use touchpoint::channel::{
    Capabilities, Channel, HUMAN_AGENT_TAG, OutgoingMessage, RenderedPart, StubChannel, render, send_all,
};
use touchpoint::model::{AddressKind, ChannelKind, Content, EndpointId, NormalizedAddress};

fn customer() -> NormalizedAddress {
    NormalizedAddress { kind: AddressKind::Phone, value: "+447700900123".into() }
}

fn hello(n: usize) -> OutgoingMessage {
    OutgoingMessage::new(customer(), RenderedPart::Text { body: format!("message {n}") })
}

fn whatsapp() -> StubChannel {
    StubChannel::new(EndpointId::new("wa-main").unwrap(), Capabilities::whatsapp())
}

#[test]
fn records_every_accepted_send_in_order_with_deterministic_ids() {
    let channel = whatsapp();
    let a = block_on(channel.send(&hello(1))).unwrap();
    let b = block_on(channel.send(&hello(2).reply_to("wamid.IN1"))).unwrap();
    assert_eq!((a.as_str(), b.as_str()), ("stub-wa-main-1", "stub-wa-main-2"));
    let sent = channel.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].provider_message_id, "stub-wa-main-1");
    assert_eq!(sent[0].message, hello(1));
    assert_eq!(sent[1].message.reply_to.as_deref(), Some("wamid.IN1"));

    // A second stub with the same settings gives the same ids: tests can hard-code them.
    let again = whatsapp();
    assert_eq!(block_on(again.send(&hello(1))).unwrap(), "stub-wa-main-1");
    let custom = whatsapp().with_id_prefix("wamid.TEST");
    assert_eq!(block_on(custom.send(&hello(1))).unwrap(), "wamid.TEST1");
}

#[test]
fn fail_next_n_then_recover_by_itself() {
    let channel = whatsapp();
    channel.fail_next(2);
    for _ in 0..2 {
        let err = block_on(channel.send(&hello(1))).unwrap_err();
        assert!(matches!(&err, Error::Provider { channel: ChannelKind::WhatsApp, temporary: true, .. }), "{err:?}");
        assert!(err.is_temporary());
    }
    assert_eq!(block_on(channel.send(&hello(1))).unwrap(), "stub-wa-main-1", "failed sends use no id");
    assert_eq!(channel.attempts(), 3);
    assert_eq!(channel.attempted(), [hello(1), hello(1), hello(1)], "failed attempts are recorded too");
    assert_eq!(channel.sent().len(), 1);
}

#[test]
fn always_fail_with_a_given_error_until_recovered() {
    let channel = whatsapp();
    channel.always_fail_with(|| Error::Provider {
        channel: ChannelKind::WhatsApp,
        code: Some("131047".into()),
        message: "Re-engagement message".into(),
        temporary: false,
    });
    for _ in 0..3 {
        let err = block_on(channel.send(&hello(1))).unwrap_err();
        assert_eq!(err.to_string(), "the whatsapp provider failed (131047): Re-engagement message");
        assert!(!err.is_temporary());
    }
    assert!(channel.sent().is_empty());
    channel.recover();
    assert!(block_on(channel.send(&hello(1))).is_ok());
}

#[test]
fn scripted_failures_queue_in_order() {
    let channel = whatsapp();
    channel.fail_next_with(1, || Error::Refused("first".into()));
    channel.fail_next_with(1, || Error::Refused("second".into()));
    let e1 = block_on(channel.send(&hello(1))).unwrap_err().to_string();
    let e2 = block_on(channel.send(&hello(1))).unwrap_err().to_string();
    assert_eq!((e1.as_str(), e2.as_str()), ("refused: first", "refused: second"));
    assert!(block_on(channel.send(&hello(1))).is_ok());
}

#[test]
fn rejects_what_the_channel_cannot_carry_like_a_strict_provider() {
    let sms = StubChannel::new(EndpointId::new("sms-1").unwrap(), Capabilities::sms());
    let buttons = OutgoingMessage::new(customer(), RenderedPart::Buttons { body: "Pick".into(), buttons: vec![] });
    assert!(matches!(block_on(sms.send(&buttons)), Err(Error::InvalidInput { .. })));
    let too_long = OutgoingMessage::new(customer(), RenderedPart::Text { body: "a".repeat(1601) });
    assert!(matches!(block_on(sms.send(&too_long)), Err(Error::InvalidInput { .. })));
    assert!(sms.sent().is_empty());
}

#[test]
fn send_all_stops_at_the_first_failure_and_keeps_the_ids_sent() {
    let channel = whatsapp();
    let no_buttons = OutgoingMessage::new(customer(), RenderedPart::Buttons { body: "Pick".into(), buttons: vec![] });
    let batch = [hello(1), no_buttons, hello(3)];
    let report = block_on(send_all(&channel, &batch));
    assert!(!report.is_complete());
    assert_eq!(report.provider_message_ids, ["stub-wa-main-1"]);
    let (index, err) = report.failure.expect("the second message fails");
    assert_eq!(index, 1);
    assert!(matches!(err, Error::InvalidInput { .. }));
    assert_eq!(channel.attempts(), 2, "the third message was not attempted");

    channel.fail_next(1);
    let report = block_on(send_all(&channel, &[hello(1), hello(2)]));
    assert!(report.provider_message_ids.is_empty());
    assert!(matches!(report.failure, Some((0, Error::Provider { .. }))));

    let report = block_on(send_all(&channel, &[hello(1), hello(2)]));
    assert!(report.is_complete());
    assert_eq!(report.provider_message_ids, ["stub-wa-main-2", "stub-wa-main-3"]);
}

#[test]
fn a_long_reply_goes_out_as_several_messages_in_order() {
    let channel = StubChannel::new(EndpointId::new("ig-1").unwrap(), Capabilities::instagram());
    let long = format!("{}. {}.", "a".repeat(599), "b".repeat(599));
    let parts = render(&Content::text(long), channel.capabilities()).unwrap();
    let messages: Vec<OutgoingMessage> =
        parts.into_iter().map(|p| OutgoingMessage::new(customer(), p).tagged(HUMAN_AGENT_TAG)).collect();
    let report = block_on(send_all(&channel, &messages));
    assert_eq!(report.provider_message_ids, ["stub-ig-1-1", "stub-ig-1-2"]);
    let sent = channel.sent();
    assert_eq!(sent[0].message.part, RenderedPart::Text { body: format!("{}.", "a".repeat(599)) });
    assert_eq!(sent[1].message.part, RenderedPart::Text { body: format!("{}.", "b".repeat(599)) });
    assert!(sent.iter().all(|s| s.message.message_tag.as_deref() == Some("HUMAN_AGENT")));
}

#[test]
fn typing_and_mark_read_are_recorded_where_supported_and_quiet_elsewhere() {
    let wa = whatsapp();
    block_on(wa.typing(&customer())).unwrap();
    block_on(wa.mark_read(&customer(), "wamid.IN1")).unwrap();
    assert_eq!(wa.typing_shown(), [customer()]);
    assert_eq!(wa.marked_read(), [(customer(), "wamid.IN1".to_owned())]);

    let sms = StubChannel::new(EndpointId::new("sms-1").unwrap(), Capabilities::sms());
    block_on(sms.typing(&customer())).unwrap();
    block_on(sms.mark_read(&customer(), "SM1")).unwrap();
    assert!(sms.typing_shown().is_empty() && sms.marked_read().is_empty());
}

#[derive(Debug)]
struct SendOnly {
    endpoint: EndpointId,
    caps: Capabilities,
}

#[async_trait::async_trait]
impl Channel for SendOnly {
    fn endpoint(&self) -> &EndpointId {
        &self.endpoint
    }
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
    async fn send(&self, _: &OutgoingMessage) -> touchpoint::Result<String> {
        Ok("only".into())
    }
}

#[test]
fn the_trait_is_object_safe_and_its_defaults_succeed_quietly() {
    let channels: Vec<Arc<dyn Channel>> = vec![
        Arc::new(whatsapp()),
        Arc::new(SendOnly { endpoint: EndpointId::new("email-1").unwrap(), caps: Capabilities::email() }),
    ];
    let kinds: Vec<&ChannelKind> = channels.iter().map(|c| c.kind()).collect();
    assert_eq!(kinds, [&ChannelKind::WhatsApp, &ChannelKind::Email]);
    let minimal = &channels[1];
    assert_eq!(minimal.endpoint().as_str(), "email-1");
    assert!(block_on(minimal.typing(&customer())).is_ok());
    assert!(block_on(minimal.mark_read(&customer(), "x")).is_ok());
    assert_eq!(block_on(minimal.send(&hello(1))).unwrap(), "only");

    fn shared<T: Send + Sync>(_: &T) {}
    shared(&whatsapp());
    shared(&channels);
}

#[test]
fn concurrent_sends_get_distinct_ids() {
    let channel = Arc::new(whatsapp());
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let c = channel.clone();
            std::thread::spawn(move || {
                (0..25).map(|i| block_on(c.send(&hello(t * 100 + i))).unwrap()).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut ids: Vec<String> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100);
    assert_eq!(channel.sent().len(), 100);
}

#[test]
fn shared_channel_types_are_send_and_sync() {
    fn shared<T: Send + Sync + 'static>() {}
    use touchpoint::channel::*;
    shared::<Capabilities>();
    shared::<RenderedPart>();
    shared::<Renderer>();
    shared::<RenderOverrides>();
    shared::<OutgoingMessage>();
    shared::<SendReport>();
    shared::<StubChannel>();
    shared::<Arc<dyn Channel>>();
    shared::<ChannelPolicy>();
    shared::<ChannelChoice>();
    shared::<Receipt>();
    shared::<ReceiptPlan>();
    shared::<ReceiptReport>();
    shared::<sms::SmsSegmentation>();
}

#[test]
fn channel_futures_are_send() {
    fn is_send<F: std::future::Future + Send>(f: F) -> F {
        f
    }
    let channel: Arc<dyn Channel> = Arc::new(whatsapp());
    let batch = [hello(1)];
    let report = block_on(is_send(send_all(&*channel, &batch)));
    assert!(report.is_complete());
    assert!(block_on(is_send(channel.send(&hello(2)))).is_ok());
    let engine = touchpoint::Engine::in_memory();
    let tenant = touchpoint::model::TenantId::new("acme").unwrap();
    let report = block_on(is_send(touchpoint::channel::apply_receipts(&engine, &tenant, &[]))).unwrap();
    assert!(report.updated.is_empty() && report.unmatched.is_empty());
}
