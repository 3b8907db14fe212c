//! A recording channel for tests (in the spirit of lettre's `StubTransport`).

use super::{Capabilities, Channel, OutgoingMessage};
use crate::model::{EndpointId, NormalizedAddress};
use crate::{Error, Result};
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

type MakeError = Arc<dyn Fn() -> Error + Send + Sync>;

/// A message the stub accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    /// The id the stub returned for it.
    pub provider_message_id: String,
    /// The message as it was handed to `send`.
    pub message: OutgoingMessage,
}

#[derive(Default)]
struct State {
    sent: Vec<SentMessage>,
    attempted: Vec<OutgoingMessage>,
    next_id: u64,
    fail_next: VecDeque<MakeError>,
    always: Option<MakeError>,
    typing: Vec<NormalizedAddress>,
    read: Vec<(NormalizedAddress, String)>,
}

/// A [`Channel`] that sends nothing and records everything: every message handed to it, every
/// accepted message with the id it got, typing indicators and read marks. Ids are deterministic:
/// `stub-<endpoint>-1`, `-2`, … in order of accepted sends.
///
/// Like a strict provider it rejects a message its [`Capabilities`] cannot carry
/// ([`Capabilities::check`]), and failures can be scripted: the next *n* sends, or every send
/// until [`recover`](StubChannel::recover). A failed send records nothing and uses no id.
///
/// ```
/// use touchpoint::channel::{Capabilities, Channel, OutgoingMessage, RenderedPart, StubChannel};
/// use touchpoint::model::*;
/// use touchpoint::Error;
/// # futures::executor::block_on(async {
/// let sms = StubChannel::new(EndpointId::new("sms-1").unwrap(), Capabilities::sms());
/// let to = NormalizedAddress { kind: AddressKind::Phone, value: "+15550002222".into() };
/// let hello = OutgoingMessage::new(to, RenderedPart::Text { body: "Hello".into() });
/// sms.fail_next_with(1, || Error::Provider {
///     channel: ChannelKind::Sms,
///     code: Some("30003".into()),
///     message: "unreachable handset".into(),
///     temporary: true,
/// });
/// assert!(sms.send(&hello).await.unwrap_err().is_temporary());
/// assert_eq!(sms.send(&hello).await.unwrap(), "stub-sms-1-1");
/// assert_eq!((sms.attempts(), sms.sent().len()), (2, 1));
/// # });
/// ```
pub struct StubChannel {
    endpoint: EndpointId,
    capabilities: Capabilities,
    prefix: String,
    state: Mutex<State>,
}

impl std::fmt::Debug for StubChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("StubChannel")
            .field("endpoint", &self.endpoint)
            .field("channel", &self.capabilities.channel)
            .field("sent", &state.sent.len())
            .field("attempts", &state.attempted.len())
            .finish()
    }
}

impl StubChannel {
    /// A stub for `endpoint` with `capabilities`.
    pub fn new(endpoint: EndpointId, capabilities: Capabilities) -> Self {
        let prefix = format!("stub-{endpoint}-");
        StubChannel { endpoint, capabilities, prefix, state: Mutex::new(State::default()) }
    }

    /// Uses `prefix` instead of `stub-<endpoint>-` for provider ids.
    pub fn with_id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-updated in a harmful way.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fails the next `n` sends with a temporary [`Error::Provider`].
    pub fn fail_next(&self, n: usize) {
        let channel = self.capabilities.channel.clone();
        self.fail_next_with(n, move || Error::Provider {
            channel: channel.clone(),
            code: None,
            message: "scripted stub failure".to_owned(),
            temporary: true,
        });
    }

    /// Fails the next `n` sends with the error `make` returns (after any failures already
    /// scripted).
    pub fn fail_next_with(&self, n: usize, make: impl Fn() -> Error + Send + Sync + 'static) {
        let make: MakeError = Arc::new(make);
        let mut state = self.state();
        state.fail_next.extend(std::iter::repeat_n(make, n));
    }

    /// Fails every send with the error `make` returns, until [`recover`](Self::recover).
    pub fn always_fail_with(&self, make: impl Fn() -> Error + Send + Sync + 'static) {
        self.state().always = Some(Arc::new(make));
    }

    /// Clears all scripted failures.
    pub fn recover(&self) {
        let mut state = self.state();
        state.fail_next.clear();
        state.always = None;
    }

    /// The messages accepted so far, in order.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.state().sent.clone()
    }

    /// Every message handed to `send`, in order: accepted, failed by script, and rejected.
    pub fn attempted(&self) -> Vec<OutgoingMessage> {
        self.state().attempted.clone()
    }

    /// How many times `send` was called.
    pub fn attempts(&self) -> usize {
        self.state().attempted.len()
    }

    /// Recipients of typing indicators, in order.
    pub fn typing_shown(&self) -> Vec<NormalizedAddress> {
        self.state().typing.clone()
    }

    /// Messages marked read, as (recipient, provider message id), in order.
    pub fn marked_read(&self) -> Vec<(NormalizedAddress, String)> {
        self.state().read.clone()
    }

    /// Forgets what was recorded (sends, attempts, typing, read marks); scripted failures and
    /// the id counter stay.
    pub fn clear(&self) {
        let mut state = self.state();
        state.sent.clear();
        state.attempted.clear();
        state.typing.clear();
        state.read.clear();
    }
}

#[async_trait]
impl Channel for StubChannel {
    fn endpoint(&self) -> &EndpointId {
        &self.endpoint
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<String> {
        let mut state = self.state();
        state.attempted.push(message.clone());
        if let Some(make) = state.fail_next.pop_front() {
            return Err(make());
        }
        if let Some(make) = &state.always {
            return Err(make());
        }
        self.capabilities.check(&message.part)?;
        state.next_id += 1;
        let provider_message_id = format!("{}{}", self.prefix, state.next_id);
        state.sent.push(SentMessage { provider_message_id: provider_message_id.clone(), message: message.clone() });
        Ok(provider_message_id)
    }

    async fn typing(&self, recipient: &NormalizedAddress) -> Result<()> {
        if !self.capabilities.typing {
            return Ok(());
        }
        self.state().typing.push(recipient.clone());
        Ok(())
    }

    async fn mark_read(&self, recipient: &NormalizedAddress, provider_message_id: &str) -> Result<()> {
        if !self.capabilities.mark_read {
            return Ok(());
        }
        self.state().read.push((recipient.clone(), provider_message_id.to_owned()));
        Ok(())
    }
}
