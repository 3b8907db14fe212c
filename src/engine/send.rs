//! Sending: choose the channel, render, hand each part to the channel, record what was sent.

use super::Engine;
use super::ops::check_text;
use crate::channel::{Channel, ChannelChoice, ChannelPolicy, OutgoingMessage, RenderOverrides, RenderedPart, Renderer};
use crate::events::Event;
use crate::model::{
    AgentId, Author, ChannelKind, Content, ConversationId, ConversationStatus, CustomerId, DeliveryState, Direction,
    EndpointId, Message, MessageId, TenantId,
};
use crate::store::{ChangeSet, ThreadKey, ThreadKeyClaim, Write};
use crate::{Error, OutboundMessage, Result};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What to send with [`Engine::send`].
///
/// ```
/// use touchpoint::SendRequest;
/// use touchpoint::model::{AgentId, ChannelKind, Content};
/// let request = SendRequest::agent(AgentId::new("ana").unwrap(), Content::text("Your refund is on its way"))
///     .preferring(ChannelKind::Sms);
/// assert_eq!(request.preferred, Some(ChannelKind::Sms));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendRequest {
    /// Who writes it (an agent, a bot or the system; never the customer). Replies written by a
    /// human agent may use a human-agent window extension (Messenger `HUMAN_AGENT`).
    pub author: Author,
    /// What to say, channel-neutral; rendered for the chosen channel.
    pub content: Content,
    /// A channel to prefer for this message over the channel policy's preference.
    pub preferred: Option<ChannelKind>,
    /// The provider id of a message to quote (WhatsApp `context.message_id`, Telegram
    /// `reply_to_message_id`); set on the first part only.
    pub reply_to: Option<String>,
    /// The idempotency key: the id the (first) recorded message gets. Reserve one with
    /// [`Engine::new_message_id`] when the agent presses send and pass the same id on every
    /// retry: a retry sends nothing that was sent and recorded before. `None`: a new id.
    pub message_id: Option<MessageId>,
    /// Provider payloads that replace rendering on given channels.
    pub overrides: RenderOverrides,
}

impl SendRequest {
    fn new(author: Author, content: Content) -> Self {
        SendRequest {
            author,
            content,
            preferred: None,
            reply_to: None,
            message_id: None,
            overrides: RenderOverrides::default(),
        }
    }

    /// A message written by a human agent.
    pub fn agent(agent: AgentId, content: Content) -> Self {
        SendRequest::new(Author::Agent(agent), content)
    }

    /// A message written by a bot.
    pub fn bot(bot: AgentId, content: Content) -> Self {
        SendRequest::new(Author::Bot(bot), content)
    }

    /// An automatic message (a notice, a confirmation).
    pub fn system(content: Content) -> Self {
        SendRequest::new(Author::System, content)
    }

    /// Prefers `channel` for this message.
    pub fn preferring(mut self, channel: ChannelKind) -> Self {
        self.preferred = Some(channel);
        self
    }

    /// Quotes the provider message `id`.
    pub fn replying_to(mut self, id: impl Into<String>) -> Self {
        self.reply_to = Some(id.into());
        self
    }

    /// Makes the send idempotent under `id` (see [`SendRequest::message_id`]).
    pub fn with_message_id(mut self, id: MessageId) -> Self {
        self.message_id = Some(id);
        self
    }

    /// Sends `payload` instead of the rendered content on `channel`.
    pub fn with_override(mut self, channel: ChannelKind, payload: serde_json::Value) -> Self {
        self.overrides.insert(channel, payload);
        self
    }
}

/// One provider message that was sent and recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentPart {
    /// The recorded message.
    pub message: MessageId,
    /// The provider's id for it, which delivery receipts refer to.
    pub provider_message_id: String,
}

/// What [`Engine::send`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendOutcome {
    /// The id of the first recorded message (the request's `message_id` when it gave one).
    pub message: MessageId,
    /// The conversation.
    pub conversation: ConversationId,
    /// The channel it went out on.
    pub channel: ChannelKind,
    /// Our endpoint it went out through.
    pub endpoint: EndpointId,
    /// Every part of the message, in order, each recorded as its own message with its provider
    /// id — including parts an earlier call with the same `message_id` sent.
    pub parts: Vec<SentPart>,
    /// How many of `parts` this call sent (0: an earlier call with the same `message_id` had
    /// sent everything, and nothing was sent again).
    pub newly_sent: usize,
    /// The channel choice and why, when this call chose (`None` when it sent nothing).
    pub choice: Option<ChannelChoice>,
}

impl SendOutcome {
    /// The provider ids of all parts, in order.
    pub fn provider_message_ids(&self) -> Vec<&str> {
        self.parts.iter().map(|p| p.provider_message_id.as_str()).collect()
    }
}

/// Parts of one send get consecutive ids after the first: at most this many.
const MAX_PARTS: usize = 256;

/// The id of part `k` of the send whose first part is `base`: the low 62 bits counted up, so
/// the ids stay UUID v7 and sort in part order.
fn part_id(base: MessageId, k: usize) -> MessageId {
    const LOW: u64 = (1 << 62) - 1;
    let (hi, lo) = base.0.as_u64_pair();
    let step = u64::try_from(k).unwrap_or(u64::MAX);
    MessageId(uuid::Uuid::from_u64_pair(hi, (lo & !LOW) | (lo.wrapping_add(step) & LOW)))
}

/// The content to record for a rendered part: what the customer was shown (a split text's
/// part, a choice as the form it took), or the original content for a provider override.
fn recorded_content(part: &RenderedPart, original: &Content) -> Content {
    match part {
        RenderedPart::Text { body } => Content::text(body.clone()),
        RenderedPart::Media { media, url, mime_type, caption, filename } => Content::Media {
            media: *media,
            url: url.clone(),
            mime_type: mime_type.clone(),
            caption: caption.clone(),
            filename: filename.clone(),
        },
        RenderedPart::Buttons { body, buttons: options }
        | RenderedPart::List { body, rows: options, .. }
        | RenderedPart::QuickReplies { body, replies: options } => {
            Content::Choices { body: body.clone(), options: options.clone(), selected: None }
        }
        RenderedPart::Location { latitude, longitude, name, address } => Content::Location {
            latitude: *latitude,
            longitude: *longitude,
            name: name.clone(),
            address: address.clone(),
        },
        RenderedPart::Contact(card) => Content::Contact(card.clone()),
        RenderedPart::Template { name, language, parameters } => {
            Content::Template { name: name.clone(), language: language.clone(), parameters: parameters.clone() }
        }
        RenderedPart::Raw { .. } => original.clone(),
    }
}

/// Marks a (tenant, message id) send as under way until dropped.
struct Sending<'a> {
    engine: &'a Engine,
    key: (TenantId, MessageId),
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.engine.inner.sending.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
    }
}

impl Engine {
    /// A fresh message id from the engine's clock: reserve one when a message is composed and
    /// pass it as [`SendRequest::message_id`] on every attempt to send it.
    pub fn new_message_id(&self) -> MessageId {
        MessageId(self.next_id(self.now()))
    }

    /// The channel registered for `endpoint` with [`EngineBuilder::channel`](super::EngineBuilder::channel).
    pub fn channel(&self, endpoint: &EndpointId) -> Option<&Arc<dyn Channel>> {
        self.inner.channels.get(endpoint)
    }

    fn registered(&self, endpoint: &EndpointId) -> Result<&Arc<dyn Channel>> {
        self.channel(endpoint).ok_or_else(|| Error::not_found("channel registered for endpoint", endpoint))
    }

    /// The channel registered for `choice`'s endpoint and the request's content rendered for it;
    /// an error when the channel is of another kind or cannot carry the content.
    fn rendered_for(
        &self,
        choice: &ChannelChoice,
        request: &SendRequest,
    ) -> Result<(&Arc<dyn Channel>, Vec<RenderedPart>)> {
        let channel = self.registered(&choice.endpoint)?;
        if *channel.kind() != choice.channel {
            return Err(Error::invalid(
                "channel",
                format!(
                    "the channel registered for endpoint {} is a {} channel, but the customer's identity there is on {}",
                    choice.endpoint,
                    channel.kind(),
                    choice.channel
                ),
            ));
        }
        let parts = Renderer::default().render_with(&request.content, channel.capabilities(), &request.overrides)?;
        if parts.len() > MAX_PARTS {
            return Err(Error::invalid("content", format!("renders to {} messages; at most {MAX_PARTS}", parts.len())));
        }
        Ok((channel, parts))
    }

    /// Sends a message to the customer of `conversation` and records what was sent.
    ///
    /// 1. **Choose** the endpoint and identity with the engine's
    ///    [`ChannelPolicy`](crate::channel::ChannelPolicy) (the request's preferred channel first,
    ///    then the channel the customer last wrote on, then the policy's fallbacks), honouring
    ///    consent, opt-in and reply windows, among the endpoints a channel is registered for
    ///    ([`EngineBuilder::channel`](super::EngineBuilder::channel)).
    /// 2. **Render** the content for the registered channel's
    ///    [`Capabilities`](crate::channel::Capabilities) (long text is split into parts, choices
    ///    degrade, …).
    /// 3. **Send** each part through [`Channel::send`], in order, and **record** each accepted
    ///    part right away as an outbound message in `Sent` state with its provider id (through
    ///    the same path as [`Engine::record_outbound`]), so delivery receipts find it.
    ///
    /// Errors, with what is left behind:
    ///
    /// * [`Error::ReplyWindowClosed`] — the customer's window on the chosen channel is closed
    ///   and no fallback could take the message: send a template or configure a fallback.
    ///   Nothing was sent or recorded.
    /// * [`Error::NotFound`] — only an endpoint without a registered channel could take the
    ///   message (or the conversation does not exist). Nothing was sent or recorded.
    /// * [`Error::Refused`] — the conversation is closed, the customer is blocked or opted out
    ///   everywhere, or has no address to write to. Nothing was sent or recorded.
    /// * [`Error::InvalidInput`] — bad content or request, or content the channel cannot carry
    ///   (a template on SMS). Nothing was sent or recorded.
    /// * [`Error::Provider`] (the channel's own error, `is_temporary` as the kit reported) — a
    ///   part was not accepted. The failed part and the parts after it are not recorded; parts
    ///   the provider accepted before it are recorded (they reached the provider and cannot be
    ///   taken back). Retry with the same `message_id` to send the rest.
    /// * [`Error::Conflict`] — a send with the same `message_id` is under way in this engine
    ///   (nothing sent), or another engine on the same store sent and recorded a part under it
    ///   at the same moment: this call's copy reached the provider too and is not recorded (the
    ///   message names both provider ids). Said at once, not after retries.
    ///
    /// **Idempotency.** With [`SendRequest::message_id`], part *k* is recorded under a
    /// deterministic id derived from it, and a retry first reads which parts are recorded:
    /// those are not sent again, and when all are there the call returns the earlier outcome
    /// with `newly_sent == 0` without choosing a channel. A retry that would now go through
    /// another endpoint than the recorded parts is refused. The gaps: if the provider accepts
    /// a part and the store then fails to record it, a retry sends that part again; and the
    /// guard against two sends under one id at once holds within one engine, so the same
    /// retry through two engines (two hosts) at the same moment may reach the provider twice
    /// (one of the two calls then fails with [`Error::Conflict`]). Route retries of one send to
    /// one host, or wait for the first call to return.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use touchpoint::channel::{Capabilities, StubChannel};
    /// use touchpoint::model::*;
    /// use touchpoint::{Engine, SendRequest};
    /// # futures::executor::block_on(async {
    /// let sms = Arc::new(StubChannel::new(EndpointId::new("sms-1").unwrap(), Capabilities::sms()));
    /// let engine = Engine::builder(Arc::new(touchpoint::store::InMemoryStore::new())).channel(sms.clone()).build();
    /// let tenant = TenantId::new("acme").unwrap();
    /// let inbound = InboundMessage::new(
    ///     ChannelKind::Sms,
    ///     EndpointId::new("sms-1").unwrap(),
    ///     Address::phone("+14155550123"),
    ///     "SM1",
    ///     Content::text("Where is my parcel?"),
    /// );
    /// let conversation = engine.ingest(&tenant, inbound).await.unwrap().conversation;
    ///
    /// let id = engine.new_message_id();
    /// let reply = SendRequest::agent(AgentId::new("ana").unwrap(), Content::text("It arrives today."))
    ///     .with_message_id(id);
    /// let sent = engine.send(&tenant, conversation, reply.clone()).await.unwrap();
    /// assert_eq!((sent.message, sent.channel.clone()), (id, ChannelKind::Sms));
    /// assert_eq!(sent.provider_message_ids(), ["stub-sms-1-1"]);
    ///
    /// // A retry of the same send sends nothing.
    /// let again = engine.send(&tenant, conversation, reply).await.unwrap();
    /// assert_eq!((again.newly_sent, sms.sent().len()), (0, 1));
    /// # });
    /// ```
    pub async fn send(
        &self,
        tenant: &TenantId,
        conversation: ConversationId,
        request: SendRequest,
    ) -> Result<SendOutcome> {
        self.check_request(&request)?;
        let base = request.message_id.unwrap_or_else(|| self.new_message_id());
        let _sending = self.start_sending(tenant, base)?;
        let earlier = match request.message_id {
            Some(_) => self.recorded_parts(tenant, conversation, base).await?,
            None => Vec::new(),
        };
        let renderer = Renderer::default();

        if let Some(first) = earlier.first() {
            let channel = self.registered(&first.endpoint)?;
            let parts = renderer.render_with(&request.content, channel.capabilities(), &request.overrides)?;
            if earlier.len() >= parts.len() {
                return Ok(outcome(conversation, base, first, &earlier, 0, None));
            }
        }

        let c = self.conversation(tenant, conversation).await?;
        if c.status == ConversationStatus::Closed {
            return Err(Error::Refused(format!("conversation {conversation} is closed")));
        }
        let choice = self.choose_channel(tenant, c.customer, &request).await?;
        if let Some(first) = earlier.first()
            && (first.endpoint != choice.endpoint || first.recipient.is_some_and(|r| r != choice.identity))
        {
            return Err(Error::Refused(format!(
                "an earlier attempt with message id {base} sent {} part(s) through {} to {}, and the rest would now go \
                 through {} to {}; send the rest under a new message id",
                earlier.len(),
                first.endpoint,
                first.recipient.map_or_else(|| "the customer".to_owned(), |r| format!("identity {r}")),
                choice.endpoint,
                format_args!("identity {}", choice.identity),
            )));
        }
        let (channel, parts) = self.rendered_for(&choice, &request)?;

        let mut recorded = earlier;
        let mut newly_sent = 0;
        for (k, part) in parts.iter().enumerate().skip(recorded.len()) {
            let mut message = OutgoingMessage::new(choice.recipient.clone(), part.clone());
            message.message_tag.clone_from(&choice.message_tag);
            if k == 0 {
                message.reply_to.clone_from(&request.reply_to);
            }
            let provider_message_id = channel.send(&message).await?;
            let out = OutboundMessage {
                author: request.author.clone(),
                content: recorded_content(part, &request.content),
                via: Some((choice.endpoint.clone(), choice.identity)),
                external_id: Some(provider_message_id),
                delivery: DeliveryState::Sent,
            };
            recorded.push(self.record_sent(tenant, conversation, part_id(base, k), &out).await?);
            newly_sent += 1;
        }
        let first = recorded.first().ok_or_else(|| Error::invalid("content", "renders to no message"))?;
        Ok(outcome(conversation, base, first, &recorded, newly_sent, Some(choice)))
    }

    /// Sends a message to a customer without naming the conversation (an order update, a
    /// callback notice): the channel is chosen as by [`Engine::send`], and the message goes into
    /// the customer's most recently active open conversation that already talks through the
    /// chosen endpoint and identity, or else into a new conversation opened for it — `pending`
    /// (waiting on the customer), with no handler, so nobody is asked to pick it up until the
    /// customer answers.
    ///
    /// Errors are those of [`Engine::send`], plus [`Error::NotFound`] / [`Error::Erased`] for
    /// the customer. When the provider refuses the first part, a conversation opened for the
    /// message stays (empty); a retry uses it, and a retry under the same
    /// [`message_id`](SendRequest::message_id) never opens another. A `message_id` that already
    /// names a message sent to another customer is [`Error::InvalidInput`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use touchpoint::channel::{Capabilities, ChannelPolicy, StubChannel};
    /// use touchpoint::model::*;
    /// use touchpoint::{Engine, SendRequest};
    /// # futures::executor::block_on(async {
    /// let sms = Arc::new(StubChannel::new(EndpointId::new("sms-1").unwrap(), Capabilities::sms()));
    /// let policy = ChannelPolicy::default().falling_back_to(ChannelKind::Sms, EndpointId::new("sms-1").unwrap());
    /// let engine = Engine::builder(Arc::new(touchpoint::store::InMemoryStore::new()))
    ///     .channel(sms.clone())
    ///     .channel_policy(policy)
    ///     .build();
    /// let tenant = TenantId::new("acme").unwrap();
    /// // A customer who chatted on the web site and whose phone number the shop knows.
    /// let chat = InboundMessage::new(
    ///     ChannelKind::WebChat,
    ///     EndpointId::new("site").unwrap(),
    ///     Address::platform("site", "visitor-1"),
    ///     "chat-1",
    ///     Content::text("Can you text me when it ships?"),
    /// );
    /// let customer = engine.ingest(&tenant, chat).await.unwrap().customer;
    /// let phone = Address::phone("+14155550123");
    /// engine.link_identity(&tenant, customer, ChannelKind::Sms, phone, Verification::Verified).await.unwrap();
    ///
    /// let notice = SendRequest::system(Content::text("Your order has shipped."));
    /// let sent = engine.send_to_customer(&tenant, customer, notice).await.unwrap();
    /// let conversation = engine.conversation(&tenant, sent.conversation).await.unwrap();
    /// assert_eq!((conversation.status, sent.channel), (ConversationStatus::Pending, ChannelKind::Sms));
    /// assert_eq!(sms.sent().len(), 1);
    /// # });
    /// ```
    pub async fn send_to_customer(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
        request: SendRequest,
    ) -> Result<SendOutcome> {
        self.check_request(&request)?;
        if let Some(id) = request.message_id
            && let Some(earlier) = self.store().message(tenant, id).await?
        {
            // A retry goes on in the conversation the first attempt opened, which must be this
            // customer's (after a merge, the survivor's): an id of another customer's message
            // would send this request to them.
            let owner = self.customer(tenant, customer).await?;
            let theirs = self.conversation(tenant, earlier.conversation).await.map(|c| c.customer);
            if theirs.ok() != Some(owner.id) {
                return Err(Error::invalid(
                    "message_id",
                    format!("{id} already names a message of another customer; use a new id"),
                ));
            }
            return self.send(tenant, earlier.conversation, request).await;
        }
        let choice = self.choose_channel(tenant, customer, &request).await?;
        // Content the chosen channel cannot carry is refused before a conversation is opened.
        self.rendered_for(&choice, &request)?;
        let session = (choice.endpoint.clone(), choice.identity);
        let conversation = self
            .retrying(|| async {
                let owner = self.customer(tenant, customer).await?;
                let conversations = self.store().conversations_of(tenant, owner.id).await?;
                if let Some(c) = conversations.iter().find(|c| c.status.is_open() && c.sessions.contains(&session)) {
                    return Ok(c.id);
                }
                let now = self.now();
                let mut c = self.new_conversation(tenant, &owner, &choice.channel, None, now);
                c.status = ConversationStatus::Pending;
                c.sessions.push(session.clone());
                let changes = ChangeSet {
                    customers: vec![super::touch(&owner)],
                    thread_keys: vec![ThreadKeyClaim::new(ThreadKey::ReplyToken(c.reply_token.clone()), c.id)],
                    events: vec![Event::ConversationOpened {
                        conversation: c.id,
                        customer: owner.id,
                        channel: choice.channel.clone(),
                        previous: None,
                    }],
                    conversations: vec![Write::insert(c.clone())],
                    at: now,
                    ..ChangeSet::default()
                };
                self.commit(tenant, changes).await?;
                Ok(c.id)
            })
            .await?;
        // The same choice again (the customer's preference is the channel just chosen).
        let request = SendRequest { preferred: Some(choice.channel.clone()), ..request };
        let mut outcome = self.send(tenant, conversation, request).await?;
        // Report the choice made for the customer (its reason and skipped routes), not the
        // forced preference used to repeat it.
        if let Some(again) = &outcome.choice
            && again.endpoint == choice.endpoint
            && again.identity == choice.identity
        {
            outcome.choice =
                Some(ChannelChoice { window: again.window, message_tag: again.message_tag.clone(), ..choice });
        }
        Ok(outcome)
    }

    fn check_request(&self, request: &SendRequest) -> Result<()> {
        if matches!(request.author, Author::Customer(_)) {
            return Err(Error::invalid("author", "an outbound message is written by an agent, a bot or the system"));
        }
        request.content.validate(&self.config().limits)?;
        if let Some(x) = &request.reply_to {
            check_text("reply_to", x, 512)?;
        }
        if let Some(id) = request.message_id
            && id.0.get_version_num() != 7
        {
            return Err(Error::invalid(
                "message_id",
                "must be a UUID v7 (time-ordered, as Engine::new_message_id gives)",
            ));
        }
        // Ids order the timeline by when they were taken: one stamped in the future would stay
        // on top of it for ever. (A past one is a retry's, or the host's choice.)
        if let Some(id) = request.message_id
            && let Some(stamp) = id.0.get_timestamp()
        {
            let (secs, nanos) = stamp.to_unix();
            let taken =
                i64::try_from(secs).ok().and_then(|s| chrono::DateTime::<chrono::Utc>::from_timestamp(s, nanos));
            if taken.is_none_or(|t| t > self.now() + chrono::Duration::minutes(1)) {
                return Err(Error::invalid(
                    "message_id",
                    "is stamped in the future; take one from Engine::new_message_id",
                ));
            }
        }
        // The parts' ids count up from it in its low 62 bits: they must not wrap.
        if let Some(id) = request.message_id
            && part_id(id, MAX_PARTS - 1) < id
        {
            return Err(Error::invalid(
                "message_id",
                "leaves no room for the ids of its parts (its random low bits are nearly all ones); take one from Engine::new_message_id",
            ));
        }
        Ok(())
    }

    /// The engine's channel policy applied to `customer` for `request`, over the endpoints a
    /// channel is registered for. When nothing registered can take the message but an
    /// unregistered endpoint could, that is the error: [`Error::NotFound`] naming the endpoint.
    async fn choose_channel(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
        request: &SendRequest,
    ) -> Result<ChannelChoice> {
        let customer = self.customer(tenant, customer).await?;
        let identities = self.store().identities_of(tenant, customer.id).await?;
        let (author, content, now) = (&request.author, &request.content, self.now());
        let with_preference = |policy: &ChannelPolicy| {
            request.preferred.as_ref().map(|p| ChannelPolicy { preferred: Some(p.clone()), ..policy.clone() })
        };
        let registered = |e: &EndpointId| self.inner.channels.contains_key(e);
        let unregistered_endpoints = identities.iter().any(|i| i.endpoints.iter().any(|e| !registered(&e.endpoint)));
        let reachable = match unregistered_endpoints {
            false => std::borrow::Cow::Borrowed(&identities),
            true => std::borrow::Cow::Owned(
                identities
                    .iter()
                    .map(|i| {
                        let mut i = i.clone();
                        i.endpoints.retain(|e| registered(&e.endpoint));
                        i
                    })
                    .collect::<Vec<_>>(),
            ),
        };
        let reachable_policy = with_preference(&self.inner.reachable_policy);
        let policy = reachable_policy.as_ref().unwrap_or(&self.inner.reachable_policy);
        match policy.choose(&customer, &reachable, author, content, now) {
            Ok(choice) => Ok(choice),
            Err(e) => {
                let full = with_preference(&self.inner.channel_policy);
                let policy = full.as_ref().unwrap_or(&self.inner.channel_policy);
                match policy.choose(&customer, &identities, author, content, now) {
                    Ok(other) if !registered(&other.endpoint) => {
                        Err(Error::not_found("channel registered for endpoint", other.endpoint))
                    }
                    _ => Err(e),
                }
            }
        }
    }

    fn start_sending(&self, tenant: &TenantId, id: MessageId) -> Result<Sending<'_>> {
        let key = (tenant.clone(), id);
        let mut sending = self.inner.sending.lock().unwrap_or_else(|p| p.into_inner());
        if !sending.insert(key.clone()) {
            return Err(Error::Conflict(format!("a send with message id {id} is under way")));
        }
        Ok(Sending { engine: self, key })
    }

    /// The parts an earlier send under `base` recorded, in order.
    async fn recorded_parts(
        &self,
        tenant: &TenantId,
        conversation: ConversationId,
        base: MessageId,
    ) -> Result<Vec<Message>> {
        let mut parts = Vec::new();
        for k in 0..MAX_PARTS {
            let Some(m) = self.store().message(tenant, part_id(base, k)).await? else { break };
            if m.conversation != conversation || m.direction != Direction::Outbound {
                return Err(Error::invalid(
                    "message_id",
                    format!("{base} already names a message of another conversation or direction; use a new id"),
                ));
            }
            parts.push(m);
        }
        Ok(parts)
    }
}

fn outcome(
    conversation: ConversationId,
    base: MessageId,
    first: &Message,
    recorded: &[Message],
    newly_sent: usize,
    choice: Option<ChannelChoice>,
) -> SendOutcome {
    SendOutcome {
        message: base,
        conversation,
        channel: first.channel.clone(),
        endpoint: first.endpoint.clone(),
        parts: recorded
            .iter()
            .filter_map(|m| {
                m.external_id.clone().map(|provider_message_id| SentPart { message: m.id, provider_message_id })
            })
            .collect(),
        newly_sent,
        choice,
    }
}
