//! Delivery receipts from channel kits, applied to the messages they are about.

use super::Engine;
use crate::channel::{Receipt, ReceiptReport, apply_receipts};
use crate::channels::DeliveryReceipt;
use crate::model::TenantId;
use crate::{Error, Result};

impl Engine {
    /// Applies a batch of kit receipts ([`KitEvent::Receipt`](crate::channels::KitEvent::Receipt))
    /// to the outbound messages they are about, moving each message's delivery state forward
    /// only ([`DeliveryState::advance`](crate::model::DeliveryState::advance)) and emitting one
    /// `DeliveryUpdated` event per message whose state changed.
    ///
    /// * A receipt for one message finds it by provider id on its channel — the id
    ///   [`Engine::send`] recorded.
    /// * A watermark receipt (Messenger `delivery`/`read`, Instagram `messaging_seen`) covers
    ///   every message sent to its `recipient` up to its time, through each of our endpoints
    ///   that identity talks with (Messenger and Instagram ids are scoped to one page, so that
    ///   is the page that reported it).
    /// * The batch is applied in receipt time order, so duplicates and receipts that arrive out
    ///   of order or after a later state change nothing. Receipts without a time count as
    ///   arriving now.
    ///
    /// The report lists receipts that matched no recorded message (a provider can report before
    /// the send is recorded: apply them again later) and watermarks whose recipient is not a
    /// known identity. Malformed receipts (no id and no watermark, a blank or oversized id, a
    /// watermark without a recipient) fail the whole batch before anything is written. A
    /// `Pending` receipt (Twilio's `queued` and `sending`) is valid and changes nothing.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use touchpoint::channel::{Capabilities, StubChannel};
    /// use touchpoint::channels::DeliveryReceipt;
    /// use touchpoint::model::*;
    /// use touchpoint::{Engine, SendRequest};
    /// # futures::executor::block_on(async {
    /// let sms = Arc::new(StubChannel::new(EndpointId::new("sms-1").unwrap(), Capabilities::sms()));
    /// let engine = Engine::builder(Arc::new(touchpoint::store::InMemoryStore::new())).channel(sms).build();
    /// let tenant = TenantId::new("acme").unwrap();
    /// let inbound = InboundMessage::new(
    ///     ChannelKind::Sms,
    ///     EndpointId::new("sms-1").unwrap(),
    ///     Address::phone("+14155550123"),
    ///     "SM1",
    ///     Content::text("Hello?"),
    /// );
    /// let conversation = engine.ingest(&tenant, inbound).await.unwrap().conversation;
    /// let sent = engine.send(&tenant, conversation, SendRequest::system(Content::text("Hi!"))).await.unwrap();
    ///
    /// let delivered = DeliveryReceipt::new(ChannelKind::Sms, "stub-sms-1-1", DeliveryState::Delivered);
    /// let report = engine.apply_receipts(&tenant, &[delivered.clone(), delivered]).await.unwrap();
    /// assert_eq!((report.updated.len(), report.unchanged), (1, 1));
    /// assert_eq!(engine.message(&tenant, sent.message).await.unwrap().delivery, DeliveryState::Delivered);
    /// # });
    /// ```
    pub async fn apply_receipts(&self, tenant: &TenantId, receipts: &[DeliveryReceipt]) -> Result<ReceiptReport> {
        let now = self.now();
        let mut converted = Vec::with_capacity(receipts.len());
        let mut unknown_recipients = Vec::new();
        for r in receipts {
            let at = r.at.unwrap_or(now);
            if !r.watermark {
                let id = super::provider_id(&r.channel, &r.external_id);
                converted.push(Receipt::new(r.channel.clone(), id, r.state.clone(), at));
                continue;
            }
            let recipient = r
                .recipient
                .as_ref()
                .ok_or_else(|| Error::invalid("receipt.recipient", "a watermark receipt names its recipient"))?;
            let address = self.normalizer().address(recipient)?;
            let identity = self.store().identity_by_address(tenant, &r.channel, &address).await?;
            match identity.filter(|i| !i.endpoints.is_empty()) {
                Some(i) => converted.extend(
                    i.endpoints
                        .iter()
                        .map(|e| Receipt::watermark(r.channel.clone(), e.endpoint.clone(), i.id, at, r.state.clone())),
                ),
                None => unknown_recipients.push(r.clone()),
            }
        }
        converted.iter().try_for_each(Receipt::validate)?;
        let mut report = apply_receipts(self, tenant, &converted).await?;
        report.unknown_recipients = unknown_recipients;
        Ok(report)
    }
}
