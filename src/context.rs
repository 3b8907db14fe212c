//! The cross-channel context view: what an agent or a bot sees when a customer switches
//! channels — who they are, every address they use (with reply-window state), their open work,
//! and one timeline across all channels.

use crate::channel::WindowStatus;
use crate::engine::Engine;
use crate::model::{
    AgentId, ChannelKind, Conversation, ConversationId, Customer, CustomerId, EndpointId, Identity, Message, MessageId,
    TenantId,
};
use crate::store::{MessageQuery, MessageScope};
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which slice of the timeline to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelinePage {
    /// Only messages older than this one (the `next_page` cursor of a previous view).
    pub before: Option<MessageId>,
    /// How many messages (1–500).
    pub limit: usize,
}

impl Default for TimelinePage {
    fn default() -> Self {
        TimelinePage { before: None, limit: 50 }
    }
}

/// Whether we may write freely to a customer on one of our endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyWindowState {
    /// Our endpoint.
    pub endpoint: EndpointId,
    /// The customer's latest message there.
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// When free-form replies stop being allowed (`None`: the channel has no window, the window
    /// is too long to ever close, or the customer never wrote here).
    pub closes_at: Option<DateTime<Utc>>,
    /// Whether a free-form reply is allowed now.
    pub open: bool,
}

/// An identity with its reply-window state per endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityContext {
    /// The identity.
    pub identity: Identity,
    /// One entry per endpoint the customer used.
    pub reply_windows: Vec<ReplyWindowState>,
}

/// Counts over all of a customer's conversations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactCounts {
    /// Conversations.
    pub conversations: u32,
    /// Of which open.
    pub open_conversations: u32,
    /// Messages from the customer.
    pub inbound: u32,
    /// Messages to the customer.
    pub outbound: u32,
    /// Messages per channel.
    pub per_channel: BTreeMap<ChannelKind, u32>,
}

/// Everything an agent or bot needs about a customer, across channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextView {
    /// The profile.
    pub customer: Customer,
    /// The conversation the view was asked for, if any.
    pub focus: Option<Conversation>,
    /// Every identity with its reply windows.
    pub identities: Vec<IdentityContext>,
    /// Open conversations on any channel, most recently active first.
    pub open_conversations: Vec<Conversation>,
    /// The latest conversations that are no longer open (at most 10), most recent first.
    pub past_conversations: Vec<Conversation>,
    /// Messages of all conversations on all channels, newest first.
    pub timeline: Vec<Message>,
    /// Cursor for the next (older) page, if there are more messages.
    pub next_page: Option<MessageId>,
    /// The agent who last wrote to the customer.
    pub last_agent: Option<AgentId>,
    /// Channels used, most recently used first.
    pub channels_used: Vec<ChannelKind>,
    /// Contact counts.
    pub counts: ContactCounts,
}

impl Engine {
    /// The context of a customer (following merge aliases).
    pub async fn customer_context(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
        page: TimelinePage,
    ) -> Result<ContextView> {
        let customer = self.customer(tenant, customer).await?;
        self.build_context(tenant, customer, None, page).await
    }

    /// The context of a conversation's customer, with that conversation in focus.
    pub async fn conversation_context(
        &self,
        tenant: &TenantId,
        conversation: ConversationId,
        page: TimelinePage,
    ) -> Result<ContextView> {
        let focus = self.conversation(tenant, conversation).await?;
        let customer = self.customer(tenant, focus.customer).await?;
        self.build_context(tenant, customer, Some(focus), page).await
    }

    async fn build_context(
        &self,
        tenant: &TenantId,
        customer: Customer,
        focus: Option<Conversation>,
        page: TimelinePage,
    ) -> Result<ContextView> {
        if page.limit == 0 || page.limit > 500 {
            return Err(Error::invalid("page.limit", "must be 1 to 500"));
        }
        let store = &**self.store();
        let now = self.now();
        let identities = store.identities_of(tenant, customer.id).await?;
        let conversations = store.conversations_of(tenant, customer.id).await?;
        let mut timeline = store
            .messages(
                tenant,
                &MessageQuery {
                    scope: MessageScope::Customer(customer.id),
                    before: page.before,
                    limit: page.limit + 1,
                },
            )
            .await?;
        let next_page = if timeline.len() > page.limit {
            timeline.truncate(page.limit);
            timeline.last().map(|m| m.id)
        } else {
            None
        };

        let identities = identities
            .into_iter()
            .map(|identity| {
                let rule = crate::engine::reply_window_rule(self.config(), &identity.channel);
                let reply_windows = identity
                    .endpoints
                    .iter()
                    .map(|e| {
                        let status = rule.map_or(WindowStatus::NoWindow, |r| r.status(e.last_inbound_at, now));
                        let (open, closes_at) = match status {
                            WindowStatus::NoWindow => (true, None),
                            WindowStatus::Open { closes_at } => (true, Some(closes_at)),
                            WindowStatus::HumanAgentOnly { closes_at } => (false, Some(closes_at)),
                            WindowStatus::Closed { closed_at } => (false, closed_at),
                        };
                        ReplyWindowState {
                            endpoint: e.endpoint.clone(),
                            last_inbound_at: e.last_inbound_at,
                            closes_at,
                            open,
                        }
                    })
                    .collect();
                IdentityContext { identity, reply_windows }
            })
            .collect();

        let mut counts = ContactCounts { conversations: conversations.len() as u32, ..ContactCounts::default() };
        let mut last_used: BTreeMap<ChannelKind, DateTime<Utc>> = BTreeMap::new();
        for c in &conversations {
            if c.status.is_open() {
                counts.open_conversations += 1;
            }
            for u in &c.channels {
                counts.inbound += u.inbound;
                counts.outbound += u.outbound;
                *counts.per_channel.entry(u.channel.clone()).or_default() += u.inbound + u.outbound;
                let e = last_used.entry(u.channel.clone()).or_insert(u.last_at);
                *e = (*e).max(u.last_at);
            }
        }
        let mut channels_used: Vec<(ChannelKind, DateTime<Utc>)> = last_used.into_iter().collect();
        channels_used.sort_by_key(|c| std::cmp::Reverse(c.1));
        // The agent who wrote last: by when they wrote (records from before that was kept fall
        // back to the conversation's last activity).
        let last_agent = conversations
            .iter()
            .filter(|c| c.last_agent.is_some())
            .max_by_key(|c| c.last_agent_at.unwrap_or(c.last_activity_at))
            .and_then(|c| c.last_agent.clone());
        let (open, past): (Vec<Conversation>, Vec<Conversation>) =
            conversations.into_iter().partition(|c| c.status.is_open());
        Ok(ContextView {
            customer,
            focus,
            identities,
            open_conversations: open,
            past_conversations: past.into_iter().take(10).collect(),
            timeline,
            next_page,
            last_agent,
            channels_used: channels_used.into_iter().map(|(c, _)| c).collect(),
            counts,
        })
    }
}
