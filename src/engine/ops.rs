//! Engine operations besides ingest: outbound records, delivery receipts, profile and
//! conversation updates, identity link/unlink/move, merges.

use super::Engine;
use crate::channel::ReplyWindowRule;
use crate::events::Event;
use crate::identity::{self, find_identity};
use crate::model::{
    Address, AgentId, Attributes, Author, ChannelKind, Consent, Content, Conversation, ConversationId,
    ConversationStatus, Customer, CustomerId, CustomerState, DeliveryState, Direction, EndpointId, Handler, Identity,
    IdentityId, LanguageTag, Message, MessageId, Priority, TenantId, TimeZoneName, Verification,
};
use crate::store::{ChangeSet, ThreadKey, ThreadKeyClaim, Write};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// A message from us to the customer, to be recorded in a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// Who wrote it (an agent, a bot or the system; never the customer).
    pub author: Author,
    /// What it says.
    pub content: Content,
    /// Our endpoint and the customer's identity to use; default: where the customer last wrote.
    pub via: Option<(EndpointId, IdentityId)>,
    /// The provider's id for it, once known (email Message-ID, WhatsApp wamid).
    pub external_id: Option<String>,
    /// Its delivery state so far.
    pub delivery: DeliveryState,
}

impl OutboundMessage {
    /// A message written by a human agent.
    pub fn agent(agent: AgentId, content: Content) -> Self {
        OutboundMessage {
            author: Author::Agent(agent),
            content,
            via: None,
            external_id: None,
            delivery: DeliveryState::Pending,
        }
    }
    /// A message written by a bot.
    pub fn bot(bot: AgentId, content: Content) -> Self {
        OutboundMessage {
            author: Author::Bot(bot),
            content,
            via: None,
            external_id: None,
            delivery: DeliveryState::Pending,
        }
    }
    /// Sends through `endpoint` to `identity` instead of the default.
    pub fn via(mut self, endpoint: EndpointId, identity: IdentityId) -> Self {
        self.via = Some((endpoint, identity));
        self
    }
    /// Records the provider's id.
    pub fn with_external_id(mut self, id: impl Into<String>) -> Self {
        self.external_id = Some(id.into());
        self
    }
}

/// Changes to a customer's profile; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerPatch {
    /// New name (`Some(None)` clears it).
    pub name: Option<Option<String>>,
    /// New language.
    pub language: Option<Option<LanguageTag>>,
    /// New time zone.
    pub time_zone: Option<Option<TimeZoneName>>,
    /// New external id (must be unique in the tenant).
    pub external_id: Option<Option<String>>,
    /// Block or unblock.
    pub blocked: Option<bool>,
    /// Attributes to set.
    pub set_attributes: Attributes,
    /// Attributes to remove.
    pub remove_attributes: Vec<String>,
    /// Consent to record per channel.
    pub consent: Vec<(ChannelKind, Consent)>,
}

/// Changes to a conversation; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationPatch {
    /// New status.
    pub status: Option<ConversationStatus>,
    /// New priority.
    pub priority: Option<Priority>,
    /// New handler (`Some(None)` unassigns).
    pub handler: Option<Option<Handler>>,
    /// New subject.
    pub subject: Option<Option<String>>,
    /// Tags to add.
    pub add_tags: Vec<String>,
    /// Tags to remove.
    pub remove_tags: Vec<String>,
}

/// Which of two customers survives a merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SurvivorRule {
    /// The first customer named.
    First,
    /// The one created first.
    Oldest,
    /// The one with the host's external id (else the first named).
    HasExternalId,
}

/// What a merge does (or did): computed identically by the preview and the merge itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergePlan {
    /// The customer that remains.
    pub survivor: CustomerId,
    /// The customer that becomes an alias of the survivor.
    pub absorbed: CustomerId,
    /// The survivor's profile after the merge.
    pub result: Customer,
    /// Identities that move to the survivor.
    pub identities_moved: Vec<IdentityId>,
    /// Conversations that move to the survivor.
    pub conversations_moved: Vec<ConversationId>,
    /// Attributes of the absorbed customer that lost to the survivor's values, or that would
    /// have taken the merged profile past the attribute limit (16 KiB as JSON).
    pub discarded_attributes: Attributes,
}

/// How [`Engine::try_record_outbound`] treats the rules of sending.
#[derive(Clone, Copy)]
enum Recording {
    /// A record before (or instead of) sending: closed conversations, consent and reply windows
    /// are checked; the id is new.
    Checked,
    /// A part the provider accepted, under this id.
    Sent(MessageId),
}

pub(crate) fn check_text(field: &'static str, value: &str, max: usize) -> Result<()> {
    if value.trim().is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(Error::invalid(field, format!("must be 1 to {max} bytes without control characters")));
    }
    Ok(())
}

const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;

fn check_attributes(attributes: &Attributes) -> Result<()> {
    for key in attributes.keys() {
        check_text("attributes", key, 64)?;
    }
    let size = serde_json::to_vec(attributes).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_ATTRIBUTES_BYTES {
        return Err(Error::invalid(
            "attributes",
            format!("{size} bytes of attributes, the limit is {MAX_ATTRIBUTES_BYTES}"),
        ));
    }
    Ok(())
}

impl Engine {
    /// A live customer by id, following merge aliases; erased customers are [`Error::Erased`].
    pub async fn customer(&self, tenant: &TenantId, id: CustomerId) -> Result<Customer> {
        match identity::follow_aliases(&**self.store(), tenant, id).await? {
            Some(c) if c.is_active() => Ok(c),
            Some(c) if matches!(c.state, CustomerState::Erased { .. }) => Err(Error::Erased(id.to_string())),
            _ => Err(Error::not_found("customer", id)),
        }
    }

    /// A conversation by id.
    pub async fn conversation(&self, tenant: &TenantId, id: ConversationId) -> Result<Conversation> {
        self.store().conversation(tenant, id).await?.ok_or_else(|| Error::not_found("conversation", id))
    }

    /// A message by id.
    pub async fn message(&self, tenant: &TenantId, id: MessageId) -> Result<Message> {
        self.store().message(tenant, id).await?.ok_or_else(|| Error::not_found("message", id))
    }

    /// Records a message from us in a conversation (an agent's or bot's reply, a notice).
    ///
    /// Refused before anything is stored when the conversation is closed, the customer opted
    /// out of the channel or is blocked, the engine's
    /// [`ChannelPolicy`](crate::channel::ChannelPolicy) needs an opt-in on the channel that is
    /// not recorded, or the channel's reply window is closed and the content is not a template
    /// ([`Error::ReplyWindowClosed`]).
    ///
    /// With a router, a message by the agent (or bot) the conversation is assigned to is their
    /// reply: it stops the queue's no-reply timer, as [`Engine::send`] does too.
    pub async fn record_outbound(
        &self,
        tenant: &TenantId,
        conversation: ConversationId,
        out: OutboundMessage,
    ) -> Result<Message> {
        if matches!(out.author, Author::Customer(_)) {
            return Err(Error::invalid("author", "an outbound message is written by an agent, a bot or the system"));
        }
        out.content.validate(&self.config().limits)?;
        if let Some(x) = &out.external_id {
            check_text("external_id", x, 512)?;
        }
        let message = {
            let _turn = self.recipient_turn(tenant, conversation, &out).await?;
            self.retrying(|| self.try_record_outbound(tenant, conversation, &out, Recording::Checked)).await?
        };
        self.note_reply(tenant, &message).await;
        Ok(message)
    }

    /// A turn on the lane of the identity a message to `conversation` goes to (`via`, else
    /// where the customer last wrote), if it is stored: recording takes turns there with the
    /// ingests from that identity, which write the same identity and conversation.
    async fn recipient_turn(
        &self,
        tenant: &TenantId,
        conversation: ConversationId,
        out: &OutboundMessage,
    ) -> Result<Option<futures::lock::MutexGuard<'_, ()>>> {
        let id = match &out.via {
            Some((_, id)) => Some(*id),
            None => {
                self.store().conversation(tenant, conversation).await?.and_then(|c| c.last_inbound_via.map(|v| v.1))
            }
        };
        let Some(id) = id else { return Ok(None) };
        let Some(identity) = self.store().identity(tenant, id).await? else { return Ok(None) };
        Ok(Some(self.lane(tenant, &identity.address).lock().await))
    }

    /// Records a message part a channel has already accepted ([`Engine::send`]): the rules were
    /// checked before sending, and a message the provider acknowledged is never refused
    /// afterwards (a conversation closed or a window that closed in the meantime).
    pub(crate) async fn record_sent(
        &self,
        tenant: &TenantId,
        conversation: ConversationId,
        id: MessageId,
        out: &OutboundMessage,
    ) -> Result<Message> {
        // The provider has the message: giving up on a conflict would leave it sent but not
        // recorded (and a retry of the send would send it again). Every conflict means another
        // commit made progress, so keep at it far longer than for anything else.
        // A temporary failure (a busy database, a pool timeout, a commit whose outcome is
        // unknown) is tried again too, a few times: the commit may even have landed, and then
        // the message is there.
        let attempts = self.config().max_commit_attempts.max(1).saturating_mul(64);
        let message = {
            let _turn = self.recipient_turn(tenant, conversation, out).await?;
            // Ok(Err(theirs)): another send under this message id (in another engine on this
            // store) recorded it first. That conflict never clears: no more attempts.
            let record = || {
                self.retrying_up_to(attempts, || async {
                    match self.try_record_outbound(tenant, conversation, out, Recording::Sent(id)).await {
                        Err(Error::Conflict(why)) => match self.store().message(tenant, id).await {
                            Ok(Some(theirs)) if theirs.external_id != out.external_id => Ok(Err(theirs)),
                            Ok(Some(same)) => Ok(Ok(same)),
                            _ => Err(Error::Conflict(why)),
                        },
                        other => other.map(Ok),
                    }
                })
            };
            let mut failures = 0;
            let recorded = loop {
                match record().await {
                    Err(Error::Backend { temporary: true, .. }) if failures < self.config().max_commit_attempts => {
                        failures += 1;
                        if let Ok(Some(recorded)) = self.store().message(tenant, id).await {
                            break Ok(recorded);
                        }
                    }
                    other => break other?,
                }
            };
            recorded.map_err(|theirs| {
                Error::Conflict(format!(
                    "message {id} was sent and recorded by another send under the same message id at the same time \
                     (provider id {}); this send's copy (provider id {}) was accepted by the provider and is not \
                     recorded",
                    theirs.external_id.as_deref().unwrap_or("none"),
                    out.external_id.as_deref().unwrap_or("none"),
                ))
            })?
        };
        self.note_reply(tenant, &message).await;
        Ok(message)
    }

    async fn try_record_outbound(
        &self,
        tenant: &TenantId,
        id: ConversationId,
        out: &OutboundMessage,
        recording: Recording,
    ) -> Result<Message> {
        let store = &**self.store();
        let checked = matches!(recording, Recording::Checked);
        let mut conversation = self.conversation(tenant, id).await?;
        if checked && conversation.status == ConversationStatus::Closed {
            return Err(Error::Refused(format!("conversation {id} is closed")));
        }
        let (endpoint, identity_id) =
            out.via.clone().or_else(|| conversation.last_inbound_via.clone()).ok_or_else(|| {
                Error::invalid(
                    "via",
                    "the customer has not written in this conversation; name the endpoint and identity",
                )
            })?;
        let mut identity = store
            .identity(tenant, identity_id)
            .await?
            .filter(|i| i.customer == conversation.customer)
            .ok_or_else(|| Error::not_found("identity of this conversation's customer", identity_id))?;
        let customer = self.customer(tenant, conversation.customer).await?;
        let channel = identity.channel.clone();
        if checked && let Some(why) = self.inner.channel_policy.consent_refusal(&customer, &channel) {
            return Err(Error::Refused(why));
        }
        // Never before the conversation's latest message (see `try_ingest`).
        let now = self.now().max(conversation.last_activity_at);
        let human = matches!(out.author, Author::Agent(_));
        let window = match self.config().human_agent_reply_windows.get(&channel) {
            Some(w) if human => Some(w),
            _ => self.config().reply_windows.get(&channel),
        };
        if let Some(window) = window.filter(|_| checked) {
            let last = identity.endpoint(&endpoint).and_then(|e| e.last_inbound_at);
            let open = ReplyWindowRule::new(*window).open(last, now);
            // A template is the way out of a closed window only where the channel has templates
            // (WhatsApp); a channel of the host's own is taken to have them.
            let template_channel = crate::channel::Capabilities::for_channel(&channel).is_none_or(|c| c.templates);
            let template = template_channel && matches!(out.content, Content::Template { .. });
            if !open && !template {
                return Err(Error::ReplyWindowClosed {
                    channel,
                    hint: format!(
                        "the customer last wrote {} on this endpoint; send an approved template or use another channel",
                        last.map_or("never".to_owned(), |t| t.to_rfc3339())
                    ),
                });
            }
        }
        let external_id = out.external_id.as_deref().map(|x| super::provider_id(&channel, x).to_owned());
        if let Some(x) = &external_id
            && store.message_by_external_id(tenant, &channel, x).await?.is_some()
        {
            return Err(Error::invalid(
                "external_id",
                format!("a {channel} message with id {x:?} is already recorded"),
            ));
        }
        let message = Message {
            id: match recording {
                Recording::Checked => MessageId(self.next_id(now)),
                Recording::Sent(id) => id,
            },
            tenant: tenant.clone(),
            conversation: id,
            direction: Direction::Outbound,
            author: out.author.clone(),
            channel: channel.clone(),
            endpoint: endpoint.clone(),
            external_id: external_id.clone(),
            recipient: Some(identity_id),
            content: out.content.clone(),
            delivery: out.delivery.clone(),
            sent_at: now,
            recorded_at: now,
            version: 0,
        };
        let expected = conversation.version;
        let agent = match &out.author {
            Author::Agent(a) | Author::Bot(a) => Some(a.clone()),
            _ => None,
        };
        let mut events = Vec::new();
        if conversation.adds_channel(&channel) {
            events.push(Event::ChannelAdded { conversation: id, channel: channel.clone() });
        }
        // The customer's answer through the same (endpoint, identity) continues this conversation.
        let session = (endpoint.clone(), identity_id);
        if !conversation.sessions.contains(&session) {
            conversation.sessions.push(session);
        }
        conversation.count_message(&channel, false, now);
        if agent.is_some() {
            conversation.waiting_since = None;
            conversation.first_response_at.get_or_insert(now);
            conversation.last_agent.clone_from(&agent);
            conversation.last_agent_at = Some(now);
        }
        conversation.version += 1;
        let identity_expected = identity.version;
        identity.touch_outbound(&endpoint, now);
        identity.version += 1;
        events.push(Event::MessageRecorded { conversation: id, message: message.id, channel: channel.clone(), agent });
        let mut thread_keys = Vec::new();
        if let (ChannelKind::Email, Some(x)) = (&channel, &external_id) {
            thread_keys
                .push(ThreadKeyClaim::new(ThreadKey::EmailMessageId(crate::thread::message_id(x).to_owned()), id));
        }
        let changes = ChangeSet {
            conversations: vec![Write { record: conversation, expected: Some(expected) }],
            identities: vec![Write { record: identity, expected: Some(identity_expected) }],
            messages: vec![Write::insert(message.clone())],
            thread_keys,
            events,
            at: now,
            ..ChangeSet::default()
        };
        self.commit(tenant, changes).await?;
        Ok(message)
    }

    /// Applies a delivery receipt for the outbound message with provider id `external_id` on
    /// `channel`. Receipts that would move the state backwards (late, duplicated) change nothing.
    /// Receipts are about what was sent: one naming an inbound message (a forged bounce that
    /// quotes a customer's Message-ID, say) is not found and changes nothing.
    pub async fn update_delivery(
        &self,
        tenant: &TenantId,
        channel: &ChannelKind,
        external_id: &str,
        state: DeliveryState,
    ) -> Result<Message> {
        self.retrying(|| async {
            let mut message = self
                .store()
                .message_by_external_id(tenant, channel, super::provider_id(channel, external_id))
                .await?
                .filter(|m| m.direction == Direction::Outbound)
                .ok_or_else(|| Error::not_found("outbound message", format!("{channel}:{external_id}")))?;
            let next = message.delivery.advance(state.clone());
            if next == message.delivery {
                return Ok(message);
            }
            let expected = message.version;
            message.delivery = next.clone();
            message.version += 1;
            let changes = ChangeSet {
                events: vec![Event::DeliveryUpdated {
                    conversation: message.conversation,
                    message: message.id,
                    status: next.status(),
                    error_code: match &next {
                        DeliveryState::Failed { code, .. } => code.clone(),
                        _ => None,
                    },
                }],
                messages: vec![Write { record: message.clone(), expected: Some(expected) }],
                at: self.now(),
                ..ChangeSet::default()
            };
            self.commit(tenant, changes).await?;
            Ok(message)
        })
        .await
    }

    /// Changes a customer's profile. Refused, changing nothing ([`Error::InvalidInput`]): a name
    /// over 256 bytes, a bad external id or attribute key, a consent for a custom channel named
    /// like a built-in one, blank, or with spaces.
    pub async fn update_customer(&self, tenant: &TenantId, id: CustomerId, patch: CustomerPatch) -> Result<Customer> {
        if let Some(Some(name)) = &patch.name {
            check_text("name", name, 256)?;
        }
        let external = match &patch.external_id {
            Some(Some(x)) => Some(Some(identity::external_id(x)?)),
            other => other.clone(),
        };
        for key in &patch.remove_attributes {
            check_text("remove_attributes", key, 64)?;
        }
        // A consent is kept per channel by name: a custom channel spelled like a built-in one
        // would read back as the built-in one from a database.
        for (channel, consent) in &patch.consent {
            super::check_channel(channel)?;
            // Where the consent was given (a form, a keyword): a short label like every other
            // profile string, not a place to store data past the attribute limit.
            if let Some(source) = &consent.source {
                check_text("consent.source", source, 256)?;
            }
        }
        self.retrying(|| async {
            let before = self.customer(tenant, id).await?;
            let mut c = before.clone();
            if let Some(name) = &patch.name {
                c.name.clone_from(name);
            }
            if let Some(language) = &patch.language {
                c.language.clone_from(language);
            }
            if let Some(tz) = &patch.time_zone {
                c.time_zone.clone_from(tz);
            }
            if let Some(x) = &external {
                if let Some(x) = x
                    && let Some(holder) = self.store().customer_by_external_id(tenant, x).await?
                    && holder.id != c.id
                {
                    return Err(Error::Refused(format!("external id {x:?} belongs to customer {}", holder.id)));
                }
                c.external_id.clone_from(x);
            }
            if let Some(b) = patch.blocked {
                c.blocked = b;
            }
            for key in &patch.remove_attributes {
                c.attributes.remove(key);
            }
            c.attributes.extend(patch.set_attributes.clone());
            check_attributes(&c.attributes)?;
            for (channel, consent) in &patch.consent {
                c.consent.insert(channel.clone(), consent.clone());
            }
            if c == before {
                return Ok(c);
            }
            let now = self.now();
            c.updated_at = now;
            c.version += 1;
            let changes = ChangeSet {
                customers: vec![Write { record: c.clone(), expected: Some(before.version) }],
                events: vec![Event::CustomerUpdated { customer: c.id }],
                at: now,
                ..ChangeSet::default()
            };
            self.commit(tenant, changes).await?;
            Ok(c)
        })
        .await
    }

    /// Changes a conversation's status, priority, handler, subject or tags.
    ///
    /// With a router, a conversation resolved or closed leaves routing: the router completes
    /// its work item when an agent has it (their capacity frees for the next waiting
    /// conversation, and the conversation no longer has a handler) and withdraws it otherwise.
    /// One reopened (resolved, now `Open`; a closed one cannot be) with no handler goes back to
    /// routing, as a
    /// new message would take it. A new priority reaches the conversation's work item
    /// ([`Router::update_item`]): a waiting conversation takes its new place in the queue at
    /// once.
    ///
    /// A new handler for a conversation the router holds is refused ([`Error::Refused`],
    /// nothing changes): the router decides who handles routed work and counts it against
    /// that agent's capacity, so move it through the router ([`Router::requeue`],
    /// [`Router::transfer`], [`Router::transfer_to_agent`], then
    /// [`Engine::apply_routing_events`]); the record follows.
    ///
    /// [`Router::update_item`]: crate::routing::Router::update_item
    /// [`Router::requeue`]: crate::routing::Router::requeue
    /// [`Router::transfer`]: crate::routing::Router::transfer
    /// [`Router::transfer_to_agent`]: crate::routing::Router::transfer_to_agent
    pub async fn update_conversation(
        &self,
        tenant: &TenantId,
        id: ConversationId,
        patch: ConversationPatch,
    ) -> Result<Conversation> {
        for tag in patch.add_tags.iter().chain(&patch.remove_tags) {
            check_text("tags", tag, 64)?;
        }
        if let Some(Some(subject)) = &patch.subject {
            check_text("subject", subject, 998)?;
        }
        if let Some(handler) = &patch.handler
            && let Some(router) = self.router()
            && router.item(crate::routing::WorkItemId::from(id)).is_some()
            && *handler != self.conversation(tenant, id).await?.handler
        {
            return Err(Error::Refused(format!(
                "conversation {id} is routed: the router decides its handler; move it with \
                 Router::requeue, transfer or transfer_to_agent"
            )));
        }
        // A patch that reopens (not one that says `Open` of an open conversation) routes again.
        let reopens = patch.status == Some(ConversationStatus::Open)
            && self.router().is_some()
            && !self.conversation(tenant, id).await?.status.is_open();
        let updated = self.patch_conversation(tenant, id, &patch, &[]).await?;
        if patch.status.as_ref().is_some_and(|s| !s.is_open()) {
            self.leave_routing(tenant, id).await;
        } else if reopens
            && updated.handler.is_none()
            && self.router().is_some_and(|r| r.item(crate::routing::WorkItemId::from(id)).is_none())
        {
            // Reopened by hand with nobody on it: it goes back to routing, as a new message
            // would take it. A failure leaves the reopened conversation as it is.
            let _ = self.route_conversation(tenant, id).await;
        } else if let Some(priority) = patch.priority {
            self.reprioritize(tenant, id, priority).await;
        } else {
            return Ok(updated);
        }
        // What the router did may have changed the handler.
        self.conversation(tenant, id).await
    }

    /// Applies a checked `patch` and appends `extra` events in the same commit. With nothing to
    /// change and no extra events it writes nothing; with only extra events it writes only them.
    pub(crate) async fn patch_conversation(
        &self,
        tenant: &TenantId,
        id: ConversationId,
        patch: &ConversationPatch,
        extra: &[Event],
    ) -> Result<Conversation> {
        self.retrying(|| async {
            let before = self.conversation(tenant, id).await?;
            let mut c = before.clone();
            let now = self.now();
            let mut events = Vec::new();
            if let Some(status) = &patch.status
                && *status != c.status
            {
                let from = c.status.name().to_owned();
                c.set_status(status.clone(), now)?;
                events.push(Event::ConversationStatusChanged { conversation: id, from, to: status.name().to_owned() });
            }
            if let Some(p) = patch.priority {
                c.priority = p;
            }
            if let Some(handler) = &patch.handler
                && *handler != c.handler
            {
                c.handler.clone_from(handler);
                events.push(Event::ConversationAssigned { conversation: id, handler: handler.clone() });
            }
            if let Some(subject) = &patch.subject {
                c.subject.clone_from(subject);
            }
            for tag in &patch.remove_tags {
                c.tags.remove(tag);
            }
            c.tags.extend(patch.add_tags.iter().cloned());
            if c.tags.len() > 100 {
                return Err(Error::invalid("tags", "at most 100 tags per conversation"));
            }
            let fields: Vec<String> = [
                ("priority", c.priority != before.priority),
                ("subject", c.subject != before.subject),
                ("tags", c.tags != before.tags),
            ]
            .into_iter()
            .filter(|(_, changed)| *changed)
            .map(|(name, _)| name.to_owned())
            .collect();
            if !fields.is_empty() {
                events.push(Event::ConversationUpdated { conversation: id, fields });
            }
            events.extend(extra.iter().cloned());
            if c == before && events.is_empty() {
                return Ok(c);
            }
            let conversations = if c == before {
                Vec::new()
            } else {
                c.version += 1;
                vec![Write { record: c.clone(), expected: Some(before.version) }]
            };
            let changes = ChangeSet { conversations, events, at: now, ..ChangeSet::default() };
            self.commit(tenant, changes).await?;
            Ok(c)
        })
        .await
    }

    /// Attaches an address to a customer (an agent recording a phone number, a verified email
    /// from the host's sign-up). Returns the identity; linking an address the customer already
    /// has returns it unchanged. An address another customer has on the same channel is
    /// refused (move it explicitly with [`Engine::move_identity`]), and so is a verified or
    /// carrier-asserted link of an address another customer holds at a trusted level; an
    /// unverified link of such an address is allowed (it proves nothing and joins no one).
    pub async fn link_identity(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
        channel: ChannelKind,
        address: Address,
        verification: Verification,
    ) -> Result<Identity> {
        super::check_channel(&channel)?;
        let normalized = self.normalizer().address(&address)?;
        self.retrying(|| async {
            let owner = self.customer(tenant, customer).await?;
            if let Some(existing) = find_identity(&**self.store(), tenant, &channel, &normalized).await? {
                if existing.customer == owner.id {
                    return Ok(existing);
                }
                return Err(Error::Refused(format!(
                    "this {channel} address is identity {} of customer {}; move it instead",
                    existing.id, existing.customer
                )));
            }
            if verification.can_link()
                && let Some(holder) = identity::trusted_holder(&**self.store(), tenant, &normalized).await?
                && holder != owner.id
            {
                return Err(Error::Refused(format!(
                    "this address is a verified address of customer {holder} on another channel; \
                     merge the customers or link it unverified"
                )));
            }
            let now = self.now();
            let identity = Identity::new(
                IdentityId(self.next_id(now)),
                &owner,
                channel.clone(),
                normalized.clone(),
                address.raw(),
                verification,
                now,
            );
            let changes = ChangeSet {
                customers: vec![super::touch(&owner)],
                identities: vec![Write::insert(identity.clone())],
                events: vec![Event::IdentityLinked {
                    customer: owner.id,
                    identity: identity.id,
                    channel: channel.clone(),
                    verification,
                }],
                at: now,
                ..ChangeSet::default()
            };
            self.commit(tenant, changes).await?;
            Ok(identity)
        })
        .await
    }

    /// Removes an identity from its customer (messages sent through it stay in history).
    pub async fn unlink_identity(&self, tenant: &TenantId, identity: IdentityId) -> Result<()> {
        self.retrying(|| async {
            let i =
                self.store().identity(tenant, identity).await?.ok_or_else(|| Error::not_found("identity", identity))?;
            let changes = ChangeSet {
                identity_deletes: vec![(i.id, i.version)],
                events: vec![Event::IdentityUnlinked { customer: i.customer, identity: i.id }],
                at: self.now(),
                ..ChangeSet::default()
            };
            self.commit(tenant, changes).await?;
            Ok(())
        })
        .await
    }

    /// Moves an identity to another customer. Its past messages stay in their conversations;
    /// its future messages go to the new owner.
    pub async fn move_identity(&self, tenant: &TenantId, identity: IdentityId, to: CustomerId) -> Result<Identity> {
        self.retrying(|| async {
            let mut i =
                self.store().identity(tenant, identity).await?.ok_or_else(|| Error::not_found("identity", identity))?;
            let target = self.customer(tenant, to).await?;
            if i.customer == target.id {
                return Ok(i);
            }
            // One customer per verified address: refused while the owner keeps the address
            // through another identity (its SMS number, when the WhatsApp identity moves).
            if i.verification.can_link()
                && crate::store::LinkKey::of(&i.address).is_some()
                && identity::held_by_other(&**self.store(), tenant, &i.address, target.id, Some(i.id)).await?
            {
                return Err(Error::Refused(format!(
                    "another customer holds {} through another identity; unlink it there first",
                    i.address.value
                )));
            }
            let from = i.customer;
            let expected = i.version;
            i.customer = target.id;
            // The name the channel reported was the previous owner's: it stays with them (an
            // erasure of them must find nothing under the new owner, whose export must not show
            // it). The new owner's next message sets theirs.
            i.display_name = None;
            i.version += 1;
            let changes = ChangeSet {
                customers: vec![super::touch(&target)],
                identities: vec![Write { record: i.clone(), expected: Some(expected) }],
                events: vec![Event::IdentityMoved { identity: i.id, from, to: target.id }],
                at: self.now(),
                ..ChangeSet::default()
            };
            self.commit(tenant, changes).await?;
            Ok(i)
        })
        .await
    }

    /// What merging `a` and `b` would do, without doing it.
    pub async fn preview_merge(
        &self,
        tenant: &TenantId,
        a: CustomerId,
        b: CustomerId,
        rule: SurvivorRule,
    ) -> Result<MergePlan> {
        Ok(self.plan_merge(tenant, a, b, rule).await?.0)
    }

    /// Merges two customers in one commit: the survivor (by `rule`) keeps its values and fills
    /// blanks from the other, except that it is blocked if either was and, per channel, the
    /// more recent consent wins; identities and conversations move to it; the absorbed customer
    /// becomes an alias (late references to its id still resolve); a `CustomersMerged` event is
    /// emitted. Refused when both have different external ids.
    pub async fn merge_customers(
        &self,
        tenant: &TenantId,
        a: CustomerId,
        b: CustomerId,
        rule: SurvivorRule,
    ) -> Result<MergePlan> {
        self.retrying(|| async {
            let (plan, changes) = self.plan_merge(tenant, a, b, rule).await?;
            self.commit(tenant, changes).await?;
            Ok(plan)
        })
        .await
    }

    async fn plan_merge(
        &self,
        tenant: &TenantId,
        a: CustomerId,
        b: CustomerId,
        rule: SurvivorRule,
    ) -> Result<(MergePlan, ChangeSet)> {
        let store = &**self.store();
        let ca = self.customer(tenant, a).await?;
        let cb = self.customer(tenant, b).await?;
        if ca.id == cb.id {
            return Err(Error::invalid("customers", "a customer cannot be merged with itself"));
        }
        if let (Some(x), Some(y)) = (&ca.external_id, &cb.external_id)
            && x != y
        {
            return Err(Error::Refused(
                "the two customers have different external ids; they are different people".into(),
            ));
        }
        let a_survives = match rule {
            SurvivorRule::First => true,
            SurvivorRule::Oldest => ca.created_at <= cb.created_at,
            SurvivorRule::HasExternalId => ca.external_id.is_some() || cb.external_id.is_none(),
        };
        let (survivor, absorbed) = if a_survives { (ca, cb) } else { (cb, ca) };
        let now = self.now();

        let mut result = survivor.clone();
        result.external_id = survivor.external_id.clone().or_else(|| absorbed.external_id.clone());
        if result.name.is_none() {
            result.name.clone_from(&absorbed.name);
        }
        if result.language.is_none() {
            result.language.clone_from(&absorbed.language);
        }
        if result.time_zone.is_none() {
            result.time_zone.clone_from(&absorbed.time_zone);
        }
        let mut discarded = Attributes::new();
        let mut added = Vec::new();
        for (k, v) in &absorbed.attributes {
            match result.attributes.get(k) {
                None => {
                    result.attributes.insert(k.clone(), v.clone());
                    added.push(k);
                }
                Some(mine) if mine != v => {
                    discarded.insert(k.clone(), v.clone());
                }
                Some(_) => {}
            }
        }
        // The merged profile keeps within the attribute limit every profile keeps to: the
        // absorbed customer's attributes that would take it past are handed back with those
        // that lost (the last keys first), so the survivor stays editable.
        while check_attributes(&result.attributes).is_err() {
            let Some(k) = added.pop() else { break };
            if let Some(v) = result.attributes.remove(k) {
                discarded.insert(k.clone(), v);
            }
        }
        for (channel, consent) in &absorbed.consent {
            let newer = result.consent.get(channel).is_none_or(|mine| mine.at < consent.at);
            if newer {
                result.consent.insert(channel.clone(), consent.clone());
            }
        }
        result.blocked = survivor.blocked || absorbed.blocked;
        // The absorbed customer and everything merged into it before now resolve here.
        result.merged_from.push(absorbed.id);
        result.merged_from.extend(absorbed.merged_from.iter().copied());
        // Suspicions carry over, but not those between customers now merged: the merge settled them.
        for c in &absorbed.suspected_duplicates {
            if !result.suspected_duplicates.contains(c) {
                result.suspected_duplicates.push(*c);
            }
        }
        let merged = &result.merged_from;
        result.suspected_duplicates.retain(|c| *c != survivor.id && !merged.contains(c));
        result.created_at = survivor.created_at.min(absorbed.created_at);
        result.updated_at = now;
        result.version = survivor.version + 1;

        // The alias keeps only what a tombstone keeps (id, tenant, times): everything else of
        // the profile, `blocked` included, lives on in the survivor.
        let mut alias = Customer::new(absorbed.id, tenant.clone(), absorbed.created_at);
        alias.state = CustomerState::Merged { into: survivor.id, at: now };
        alias.updated_at = now;
        alias.version = absorbed.version + 1;

        let identities = store.identities_of(tenant, absorbed.id).await?;
        let conversations = store.conversations_of(tenant, absorbed.id).await?;
        let mut events = vec![Event::CustomersMerged { survivor: survivor.id, absorbed: absorbed.id }];
        let mut identity_writes = Vec::new();
        for mut i in identities.iter().cloned() {
            events.push(Event::IdentityMoved { identity: i.id, from: absorbed.id, to: survivor.id });
            let expected = i.version;
            i.customer = survivor.id;
            i.version += 1;
            identity_writes.push(Write { record: i, expected: Some(expected) });
        }
        let mut conversation_writes = Vec::new();
        for mut c in conversations.iter().cloned() {
            events.push(Event::ConversationMoved { conversation: c.id, from: absorbed.id, to: survivor.id });
            let expected = c.version;
            c.customer = survivor.id;
            c.version += 1;
            conversation_writes.push(Write { record: c, expected: Some(expected) });
        }
        let plan = MergePlan {
            survivor: survivor.id,
            absorbed: absorbed.id,
            result: result.clone(),
            identities_moved: identities.iter().map(|i| i.id).collect(),
            conversations_moved: conversations.iter().map(|c| c.id).collect(),
            discarded_attributes: discarded,
        };
        let changes = ChangeSet {
            customers: vec![
                Write { record: alias, expected: Some(absorbed.version) },
                Write { record: result, expected: Some(survivor.version) },
            ],
            identities: identity_writes,
            conversations: conversation_writes,
            events,
            at: now,
            ..ChangeSet::default()
        };
        Ok((plan, changes))
    }
}
