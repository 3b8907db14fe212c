//! The storage seam: one object-safe async trait, an always-compiled in-memory backend, and
//! (behind the `testkit` feature) the conformance suite every backend must pass.
//!
//! # Shape
//!
//! Reads are plain lookups. All writes go through [`Store::commit`], which applies one
//! [`ChangeSet`] atomically: the idempotency key of an inbound message, customer, identity and
//! conversation changes with their expected versions, new messages, thread keys and the events
//! that describe the change. A SQL backend implements `commit` as one transaction with
//! `UPDATE … WHERE version = $expected` and unique constraints; the engine re-reads and retries
//! when a commit reports [`Error::Conflict`](crate::Error::Conflict).
//!
//! # Contract (checked by the conformance suite)
//!
//! * Every call is scoped to one tenant; nothing of another tenant is read, written or revealed.
//! * `commit` is all-or-nothing: on any error nothing was changed.
//! * A [`Write`] with `expected: None` is an insert and fails with a conflict if the id exists;
//!   with `expected: Some(v)` it replaces the stored record only if the stored version is `v`.
//! * Unique keys: identity `(channel, normalised address)`; customer `external_id`; the message
//!   idempotency key `(channel, external_id)`. A taken key is a conflict — except the dedupe key
//!   of the change set, which yields [`Committed::Duplicate`] and changes nothing.
//! * Verified link keys (see [`LinkKey`]) map to at most one customer. An identity inserted at
//!   a linking level whose address another customer holds in another spelling
//!   ([`phone_lookup_variants`](crate::identity::normalize::phone_lookup_variants): a mobile
//!   number with and without a Brazilian ninth digit) is a conflict too, unless its own
//!   customer holds one of the spellings as well.
//! * Thread keys are insert-if-absent: the first conversation to claim a key keeps it, unless
//!   a [`ThreadKeyClaim`] names the conversation it `replaces` and that conversation still holds it.
//! * Identities, conversations and messages belong to an active customer: a write that would
//!   leave one attached to a merged or erased customer is a conflict (so an erasure racing an
//!   ingest can never leave data behind or revive the customer).
//! * Events get consecutive sequence numbers per tenant in commit order.
//! * [`Store::customer_snapshot`] answers as of one moment: no message without its
//!   conversation, counters that match the messages.

mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
mod rules;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use memory::InMemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use crate::events::{Event, StoredEvent};
use crate::model::{
    AddressKind, ChannelKind, Conversation, ConversationId, Customer, CustomerId, Identity, IdentityId, Message,
    MessageId, NormalizedAddress, TenantId, Verification,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Persistence for the context model. Implement it for your database; run
/// `touchpoint::testkit` against your implementation (feature `testkit`).
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// A customer by id (merged and erased customers are returned as their alias/tombstone).
    async fn customer(&self, tenant: &TenantId, id: CustomerId) -> crate::Result<Option<Customer>>;

    /// The customer holding `external_id`, if any.
    async fn customer_by_external_id(&self, tenant: &TenantId, external_id: &str) -> crate::Result<Option<Customer>>;

    /// An identity by id.
    async fn identity(&self, tenant: &TenantId, id: IdentityId) -> crate::Result<Option<Identity>>;

    /// The identity with this exact `(channel, normalised address)`, if any.
    async fn identity_by_address(
        &self,
        tenant: &TenantId,
        channel: &ChannelKind,
        address: &NormalizedAddress,
    ) -> crate::Result<Option<Identity>>;

    /// All identities of a customer.
    async fn identities_of(&self, tenant: &TenantId, customer: CustomerId) -> crate::Result<Vec<Identity>>;

    /// Customers that own an identity with this address on any channel, with the strongest
    /// verification among those identities; at most one of them holds it at a linking level.
    async fn customers_by_address(
        &self,
        tenant: &TenantId,
        key: &LinkKey,
    ) -> crate::Result<Vec<(CustomerId, Verification)>>;

    /// A conversation by id.
    async fn conversation(&self, tenant: &TenantId, id: ConversationId) -> crate::Result<Option<Conversation>>;

    /// The conversation that claimed a thread key.
    async fn conversation_by_thread_key(
        &self,
        tenant: &TenantId,
        key: &ThreadKey,
    ) -> crate::Result<Option<ConversationId>>;

    /// All conversations of a customer, most recently active first.
    async fn conversations_of(&self, tenant: &TenantId, customer: CustomerId) -> crate::Result<Vec<Conversation>>;

    /// A message by id.
    async fn message(&self, tenant: &TenantId, id: MessageId) -> crate::Result<Option<Message>>;

    /// The message with this provider id on this channel (the idempotency key).
    async fn message_by_external_id(
        &self,
        tenant: &TenantId,
        channel: &ChannelKind,
        external_id: &str,
    ) -> crate::Result<Option<Message>>;

    /// A page of messages, newest first (by id, which sorts by the time the id was taken: the
    /// record time, or for a send under a reserved [`SendRequest::message_id`] the time of
    /// [`Engine::new_message_id`]).
    ///
    /// [`SendRequest::message_id`]: crate::SendRequest::message_id
    /// [`Engine::new_message_id`]: crate::Engine::new_message_id
    async fn messages(&self, tenant: &TenantId, query: &MessageQuery) -> crate::Result<Vec<Message>>;

    /// Applies a change set atomically.
    async fn commit(&self, tenant: &TenantId, changes: ChangeSet) -> crate::Result<Committed>;

    /// Outbox events with a sequence number greater than `after`, oldest first, at most `limit`.
    async fn events_after(&self, tenant: &TenantId, after: u64, limit: usize) -> crate::Result<Vec<StoredEvent>>;

    /// Everything stored about a customer as of one moment (for a GDPR export): the customer
    /// record as stored (an alias or tombstone is returned as such, nothing attached to it),
    /// its identities, its conversations and all their messages; `None` if the customer is not
    /// stored. Every message is in one of the conversations, and each conversation's counters
    /// match its messages.
    ///
    /// The default reads with the other methods, piece by piece, and reads again while anything
    /// it read moved meanwhile (a conversation's or identity's version, the customer's version,
    /// which everything attaching a record to it bumps); after 16 tries it fails with
    /// [`Error::Conflict`](crate::Error::Conflict). A backend that can read in one transaction
    /// should do so (the in-memory and SQLite stores do).
    async fn customer_snapshot(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
    ) -> crate::Result<Option<CustomerSnapshot>> {
        for _ in 0..16 {
            let Some(record) = self.customer(tenant, customer).await? else { return Ok(None) };
            let identities = self.identities_of(tenant, customer).await?;
            let conversations = self.conversations_of(tenant, customer).await?;
            let mut messages = Vec::new();
            let mut before = None;
            loop {
                let query = MessageQuery { scope: MessageScope::Customer(customer), before, limit: 1000 };
                let page = self.messages(tenant, &query).await?;
                let done = page.len() < 1000;
                before = page.last().map(|m| m.id);
                messages.extend(page);
                if done {
                    break;
                }
            }
            messages.reverse();
            // Every message written bumps its conversation's version. The customer is read last:
            // an erasure or merge is final.
            let conversation_versions = |c: &[Conversation]| c.iter().map(|c| (c.id, c.version)).collect::<Vec<_>>();
            let identity_versions = |i: &[Identity]| i.iter().map(|i| (i.id, i.version)).collect::<Vec<_>>();
            let unchanged = conversation_versions(&self.conversations_of(tenant, customer).await?)
                == conversation_versions(&conversations)
                && identity_versions(&self.identities_of(tenant, customer).await?) == identity_versions(&identities)
                && self.customer(tenant, customer).await?.is_some_and(|again| again.version == record.version);
            if unchanged {
                return Ok(Some(CustomerSnapshot { customer: record, identities, conversations, messages }));
            }
        }
        Err(crate::Error::Conflict(format!("customer {customer} kept changing while it was read")))
    }
}

/// Everything stored about one customer as of one moment ([`Store::customer_snapshot`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerSnapshot {
    /// The customer record.
    pub customer: Customer,
    /// Its identities.
    pub identities: Vec<Identity>,
    /// Its conversations, most recently active first.
    pub conversations: Vec<Conversation>,
    /// The messages of those conversations, oldest first (by id).
    pub messages: Vec<Message>,
}

/// An address key used to find a customer across channels (email and phone only: platform ids
/// are scoped to one channel and never link across).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LinkKey(pub NormalizedAddress);

impl LinkKey {
    /// The link key of an identity address, if its kind links across channels.
    pub fn of(address: &NormalizedAddress) -> Option<LinkKey> {
        matches!(address.kind, AddressKind::Email | AddressKind::Phone).then(|| LinkKey(address.clone()))
    }
}

/// A key that ties later messages to a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ThreadKey {
    /// The provider's conversation/thread id on a channel.
    ProviderThread(ChannelKind, String),
    /// Our reply token.
    ReplyToken(String),
    /// An email Message-ID seen in the conversation (inbound or outbound), without angle brackets.
    EmailMessageId(String),
}

/// A claim of a [`ThreadKey`] by a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadKeyClaim {
    /// The key.
    pub key: ThreadKey,
    /// The conversation that claims it.
    pub conversation: ConversationId,
    /// `None`: claim the key only if nobody holds it. `Some(old)`: take the key over if `old`
    /// (typically a closed conversation) still holds it or nobody does.
    pub replaces: Option<ConversationId>,
}

impl ThreadKeyClaim {
    /// A first-claim-wins claim.
    pub fn new(key: ThreadKey, conversation: ConversationId) -> Self {
        ThreadKeyClaim { key, conversation, replaces: None }
    }
}

/// Which messages to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum MessageScope {
    /// All messages of all conversations of a customer.
    Customer(CustomerId),
    /// The messages of one conversation.
    Conversation(ConversationId),
}

/// A page of messages, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageQuery {
    /// Whose messages.
    pub scope: MessageScope,
    /// Only messages older than this one (the cursor of the previous page).
    pub before: Option<MessageId>,
    /// Page size.
    pub limit: usize,
}

/// An insert (`expected: None`) or a versioned update of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Write<T> {
    /// The record as it should be stored (its `version` is the new version).
    pub record: T,
    /// The version the stored record must have for the update to apply.
    pub expected: Option<u64>,
}

impl<T> Write<T> {
    /// An insert.
    pub fn insert(record: T) -> Self {
        Write { record, expected: None }
    }

    /// An update that applies only if the stored record is at version `expected`.
    pub fn update(record: T, expected: u64) -> Self {
        Write { record, expected: Some(expected) }
    }
}

/// The idempotency key of an inbound message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DedupeKey {
    /// The channel.
    pub channel: ChannelKind,
    /// The provider's message id.
    pub external_id: String,
}

/// Everything one operation changes, applied by [`Store::commit`] all at once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeSet {
    /// If set and already taken, the commit changes nothing and reports the existing message.
    pub dedupe: Option<DedupeKey>,
    /// Customers to insert or update.
    pub customers: Vec<Write<Customer>>,
    /// Identities to insert or update.
    pub identities: Vec<Write<Identity>>,
    /// Identities to delete (id, expected version).
    pub identity_deletes: Vec<(IdentityId, u64)>,
    /// Conversations to insert or update.
    pub conversations: Vec<Write<Conversation>>,
    /// Conversations to delete with all their messages, thread keys and message keys
    /// (used by erasure).
    pub conversation_deletes: Vec<ConversationId>,
    /// Messages to insert or update.
    pub messages: Vec<Write<Message>>,
    /// Thread keys to claim.
    pub thread_keys: Vec<ThreadKeyClaim>,
    /// Events to append to the outbox.
    pub events: Vec<Event>,
    /// When the change happened (the events' timestamp).
    pub at: DateTime<Utc>,
}

impl ChangeSet {
    /// Whether the change set changes nothing.
    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
            && self.identities.is_empty()
            && self.identity_deletes.is_empty()
            && self.conversations.is_empty()
            && self.conversation_deletes.is_empty()
            && self.messages.is_empty()
            && self.thread_keys.is_empty()
            && self.events.is_empty()
    }
}

/// What a commit did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Committed {
    /// Applied; events were numbered from `first_event_seq` (0 when there were none).
    Applied {
        /// Sequence number of the first event appended.
        first_event_seq: u64,
    },
    /// The dedupe key was taken by this message; nothing changed.
    Duplicate {
        /// The message that holds the key.
        message: MessageId,
    },
}
