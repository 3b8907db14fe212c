//! Privacy: export everything about a customer, and erase a customer (GDPR art. 15/20 and 17).
//!
//! Erasure deletes the customer's identities, conversations, messages, thread keys and
//! idempotency keys, and replaces the customer with a tombstone that holds no personal data:
//! only its id, tenant, creation time and the time of erasure. Events carry ids only, so the
//! outbox holds no personal data either. A later message from the same address starts afresh as
//! a new customer.

use crate::engine::Engine;
use crate::events::Event;
use crate::model::{Conversation, ConversationId, Customer, CustomerId, CustomerState, Identity, Message, TenantId};
use crate::store::{ChangeSet, CustomerSnapshot, Write};
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Everything stored about one customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerExport {
    /// When the export was made.
    pub exported_at: DateTime<Utc>,
    /// The profile.
    pub customer: Customer,
    /// All identities.
    pub identities: Vec<Identity>,
    /// All conversations.
    pub conversations: Vec<Conversation>,
    /// All messages, oldest first.
    pub messages: Vec<Message>,
}

impl CustomerExport {
    /// The export as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// What an erasure removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureReport {
    /// The erased customer (now a tombstone).
    pub customer: CustomerId,
    /// Identities deleted.
    pub identities: usize,
    /// Conversations deleted.
    pub conversations: usize,
    /// Messages deleted.
    pub messages: usize,
    /// What went wrong after the erasure was committed (the erasure itself stands): recording
    /// what the router did with the capacity the erased conversations freed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Engine {
    /// Exports everything stored about a customer (following merge aliases). The customer
    /// record names the customers merged into it ([`Customer::merged_from`]), whose records are
    /// aliases holding nothing but their ids and times.
    ///
    /// The export is a consistent snapshot even while the customer keeps writing and agents keep
    /// answering: every message is in one of the exported conversations, each conversation's
    /// counters match its exported messages, and the identities are those of the same moment.
    /// (It is [`Store::customer_snapshot`](crate::store::Store::customer_snapshot): one read
    /// transaction on the in-memory and SQLite stores; a store that reads piece by piece may,
    /// under writes that never pause, give up with [`Error::Conflict`], which is worth retrying.)
    pub async fn export_customer(&self, tenant: &TenantId, customer: CustomerId) -> Result<CustomerExport> {
        self.retrying(|| self.try_export(tenant, customer)).await
    }

    async fn try_export(&self, tenant: &TenantId, id: CustomerId) -> Result<CustomerExport> {
        let customer = self.customer(tenant, id).await?;
        let snapshot = self
            .store()
            .customer_snapshot(tenant, customer.id)
            .await?
            .ok_or_else(|| Error::not_found("customer", customer.id))?;
        if !snapshot.customer.is_active() {
            // Erased or merged since it was looked up: look it up again.
            return Err(Error::Conflict(format!("customer {id} changed while it was exported")));
        }
        let CustomerSnapshot { customer, identities, conversations, messages } = snapshot;
        Ok(CustomerExport { exported_at: self.now(), customer, identities, conversations, messages })
    }

    /// Erases a customer: identities, conversations, messages and profile are deleted in one
    /// commit, leaving a PII-free tombstone. Erasing twice is [`Error::Erased`](crate::Error::Erased).
    ///
    /// The engine forgets the customer too: the router (if one is configured) withdraws the
    /// erased conversations' work items, so their agents get the capacity back, and the
    /// customer's phone numbers leave the engine's normalisation cache.
    ///
    /// A message of the customer ingested while the erasure runs is never half erased: an
    /// ingest that commits first is erased with the customer (its outcome names the erased
    /// customer, and nothing of it remains, its provider id included), one that commits after
    /// starts afresh under a new customer with none of the erased history. Nothing is ever left
    /// attached to the tombstone.
    pub async fn erase_customer(&self, tenant: &TenantId, customer: CustomerId) -> Result<ErasureReport> {
        let (mut report, conversations) = self.erase_records(tenant, customer).await?;
        self.normalizer().forget_phones();
        if let Err(e) = self.withdraw_erased(tenant, &conversations).await {
            report.notes.push(format!("routing after the erasure failed: {e}"));
        }
        Ok(report)
    }

    /// The erasure's commit: the report and the erased conversations.
    async fn erase_records(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
    ) -> Result<(ErasureReport, Vec<ConversationId>)> {
        self.retrying(|| async {
            let c = self.customer(tenant, customer).await?;
            let store = &**self.store();
            let identities = store.identities_of(tenant, c.id).await?;
            let conversations = store.conversations_of(tenant, c.id).await?;
            let messages: u32 = conversations.iter().map(|c| c.message_count).sum();
            let now = self.now();
            let mut tombstone = Customer::new(c.id, tenant.clone(), c.created_at);
            tombstone.state = CustomerState::Erased { at: now };
            tombstone.updated_at = now;
            tombstone.version = c.version + 1;
            let changes = ChangeSet {
                customers: vec![Write { record: tombstone, expected: Some(c.version) }],
                identity_deletes: identities.iter().map(|i| (i.id, i.version)).collect(),
                conversation_deletes: conversations.iter().map(|c| c.id).collect(),
                events: vec![Event::CustomerErased { customer: c.id }],
                at: now,
                ..ChangeSet::default()
            };
            self.commit(tenant, changes).await?;
            let report = ErasureReport {
                customer: c.id,
                identities: identities.len(),
                conversations: conversations.len(),
                messages: messages as usize,
                notes: Vec::new(),
            };
            Ok((report, conversations.iter().map(|c| c.id).collect()))
        })
        .await
    }
}
