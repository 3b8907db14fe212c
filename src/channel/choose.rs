//! Which endpoint and identity a reply goes out through.

use super::HUMAN_AGENT_TAG;
use super::capabilities::{Capabilities, ReplyWindowRule, WindowStatus};
use crate::model::{
    Author, ChannelKind, ConsentState, Content, Customer, CustomerState, EndpointId, Identity, IdentityId,
    NormalizedAddress,
};
use crate::{Error, Result};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The rules for picking the channel of a reply.
///
/// Order of preference: the customer's [`preferred`](ChannelPolicy::preferred) channel, then
/// the channel the customer last wrote on, then the [`fallbacks`](ChannelPolicy::fallbacks) in
/// order. A channel is usable when the customer has not opted out of it (nor is blocked), has
/// opted in where [`opt_in_required`](ChannelPolicy::opt_in_required) says so, and its reply
/// window allows the message: open; or the human-agent extension for a reply written by an
/// agent (sent with the `HUMAN_AGENT` tag); or closed but the content is a template on a
/// channel that has templates.
///
/// ```
/// use chrono::{Duration, TimeZone, Utc};
/// use touchpoint::channel::{ChannelPolicy, ChoiceReason};
/// use touchpoint::model::*;
/// let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
/// let customer = Customer::new(CustomerId::from_uuid(uuid::Uuid::nil()), TenantId::new("acme").unwrap(), t0);
/// let mut wa = Identity::new(
///     IdentityId::from_uuid(uuid::Uuid::from_u128(1)),
///     &customer,
///     ChannelKind::WhatsApp,
///     NormalizedAddress { kind: AddressKind::Phone, value: "+447700900123".into() },
///     "+44 7700 900123".into(),
///     Verification::CarrierAsserted,
///     t0,
/// );
/// wa.touch_inbound(&EndpointId::new("wa-main").unwrap(), t0);
/// let bot = Author::Bot(AgentId::new("helper-bot").unwrap());
/// let reply = Content::text("On it!");
///
/// let policy = ChannelPolicy::default();
/// let choice = policy.choose(&customer, &[wa.clone()], &bot, &reply, t0 + Duration::hours(2)).unwrap();
/// assert_eq!((choice.channel, choice.reason), (ChannelKind::WhatsApp, ChoiceReason::LastUsed));
///
/// // A day later the WhatsApp window is closed: a template is required.
/// let late = policy.choose(&customer, &[wa], &bot, &reply, t0 + Duration::hours(25));
/// assert!(matches!(late, Err(touchpoint::Error::ReplyWindowClosed { .. })));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelPolicy {
    /// Reply windows per channel (default: those of [`Capabilities`] — WhatsApp 24 h;
    /// Messenger and Instagram 24 h, 7 days for human agents).
    pub reply_windows: BTreeMap<ChannelKind, ReplyWindowRule>,
    /// Channels that can send a template outside the window (default: WhatsApp).
    pub template_channels: BTreeSet<ChannelKind>,
    /// The channel the customer prefers, if any.
    pub preferred: Option<ChannelKind>,
    /// Channels to try, in order, when neither the preferred nor the last-used channel can take
    /// the message. Empty (the default): no fallback, a closed window is an error.
    pub fallbacks: Vec<ChannelKind>,
    /// Our endpoint per channel for customers who never wrote to us there (for example the SMS
    /// number to fall back to for a customer known from WhatsApp).
    pub default_endpoints: BTreeMap<ChannelKind, EndpointId>,
    /// Channels on which we only write to customers who explicitly opted in.
    pub opt_in_required: BTreeSet<ChannelKind>,
}

impl Default for ChannelPolicy {
    fn default() -> Self {
        let all = [
            Capabilities::whatsapp(),
            Capabilities::messenger(),
            Capabilities::instagram(),
            Capabilities::telegram(),
            Capabilities::sms(),
            Capabilities::email(),
            Capabilities::webchat(),
            Capabilities::voice(),
        ];
        ChannelPolicy::from_capabilities(&all)
    }
}

/// Why a channel was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum ChoiceReason {
    /// It is the customer's preferred channel.
    Preferred,
    /// The customer last wrote on it.
    LastUsed,
    /// A configured fallback, because the preferred and last-used channels could not take the
    /// message (see [`ChannelChoice::skipped`]).
    Fallback,
}

/// A route that was considered and not taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRoute {
    /// The channel.
    pub channel: ChannelKind,
    /// Why not, in words.
    pub reason: String,
}

/// Where a reply goes out, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelChoice {
    /// The channel.
    pub channel: ChannelKind,
    /// Our endpoint to send from.
    pub endpoint: EndpointId,
    /// The customer's identity to send to.
    pub identity: IdentityId,
    /// The identity's address.
    pub recipient: NormalizedAddress,
    /// Why this channel.
    pub reason: ChoiceReason,
    /// The reply window on this route at the time of the choice (`Closed` when a template is
    /// sent outside the window).
    pub window: WindowStatus,
    /// The provider message tag to send with ([`HUMAN_AGENT_TAG`] inside a human-agent
    /// extension).
    pub message_tag: Option<String>,
    /// Channels considered first and why they were not taken.
    pub skipped: Vec<SkippedRoute>,
}

struct Route<'a> {
    identity: &'a Identity,
    endpoint: &'a EndpointId,
    last_inbound_at: Option<DateTime<Utc>>,
    last_outbound_at: Option<DateTime<Utc>>,
}

enum Refusal {
    Consent(String),
    Window(String),
}

impl ChannelPolicy {
    /// The windows and template channels of `capabilities`, no preference, no fallbacks.
    pub fn from_capabilities(capabilities: &[Capabilities]) -> Self {
        ChannelPolicy {
            reply_windows: capabilities.iter().filter_map(|c| c.reply_window.map(|w| (c.channel.clone(), w))).collect(),
            template_channels: capabilities.iter().filter(|c| c.templates).map(|c| c.channel.clone()).collect(),
            preferred: None,
            fallbacks: Vec::new(),
            default_endpoints: BTreeMap::new(),
            opt_in_required: BTreeSet::new(),
        }
    }

    /// This policy with the customer's preferred channel.
    pub fn preferring(mut self, channel: ChannelKind) -> Self {
        self.preferred = Some(channel);
        self
    }

    /// This policy with `channel` as the next fallback, sent from `endpoint` to customers who
    /// never wrote there.
    pub fn falling_back_to(mut self, channel: ChannelKind, endpoint: EndpointId) -> Self {
        self.default_endpoints.insert(channel.clone(), endpoint);
        if !self.fallbacks.contains(&channel) {
            self.fallbacks.push(channel);
        }
        self
    }

    /// Picks the endpoint and identity for a message from `author` with `content` to
    /// `customer`, whose identities are `identities`, at `now`. Pure: reads only its arguments.
    ///
    /// Errors: [`Error::ReplyWindowClosed`] when the last-used channel's window is closed and no
    /// fallback can take the message (the hint says a template is required, or which fallbacks
    /// failed); [`Error::Refused`] when the customer is blocked or opted out of every channel
    /// they have, or has no address to write to; [`Error::Erased`] for an erased customer;
    /// [`Error::InvalidInput`] when an identity belongs to another customer.
    pub fn choose(
        &self,
        customer: &Customer,
        identities: &[Identity],
        author: &Author,
        content: &Content,
        now: DateTime<Utc>,
    ) -> Result<ChannelChoice> {
        match &customer.state {
            CustomerState::Active => {}
            CustomerState::Erased { .. } => return Err(Error::Erased(customer.id.to_string())),
            CustomerState::Merged { into, .. } => {
                return Err(Error::Refused(format!(
                    "customer {} was merged into {into}; choose a channel for {into}",
                    customer.id
                )));
            }
        }
        if customer.blocked {
            return Err(Error::Refused(format!("customer {} is blocked", customer.id)));
        }
        if let Some(other) = identities.iter().find(|i| i.customer != customer.id || i.tenant != customer.tenant) {
            return Err(Error::invalid(
                "identities",
                format!("identity {} belongs to customer {}, not {}", other.id, other.customer, customer.id),
            ));
        }

        let last_used = identities
            .iter()
            .flat_map(|i| i.endpoints.iter().filter_map(move |e| e.last_inbound_at.map(|t| (t, &i.channel))))
            .max_by_key(|(t, _)| *t)
            .map(|(_, c)| c.clone());
        let mut order: Vec<(ChannelKind, ChoiceReason)> = Vec::new();
        let mut push = |channel: &ChannelKind, reason: ChoiceReason| {
            if !order.iter().any(|(c, _)| c == channel) {
                order.push((channel.clone(), reason));
            }
        };
        if let Some(p) = &self.preferred {
            push(p, ChoiceReason::Preferred);
        }
        if let Some(l) = &last_used {
            push(l, ChoiceReason::LastUsed);
        }
        for f in &self.fallbacks {
            push(f, ChoiceReason::Fallback);
        }

        let human = matches!(author, Author::Agent(_));
        let is_template = matches!(content, Content::Template { .. });
        let mut skipped = Vec::new();
        let mut window_refusals: Vec<(ChannelKind, ChoiceReason, String)> = Vec::new();
        for (channel, reason) in order {
            let routes = self.routes(identities, &channel);
            if routes.is_empty() {
                let why = match self.default_endpoints.contains_key(&channel) {
                    true => format!("the customer has no {channel} address"),
                    false => format!("the customer never wrote on {channel} and no default {channel} endpoint is set"),
                };
                skipped.push(SkippedRoute { channel, reason: why });
                continue;
            }
            let mut why_not = Vec::new();
            for route in &routes {
                match self.usable(customer, &channel, route, human, is_template, now) {
                    Ok((window, message_tag)) => {
                        return Ok(ChannelChoice {
                            channel,
                            endpoint: route.endpoint.clone(),
                            identity: route.identity.id,
                            recipient: route.identity.address.clone(),
                            reason,
                            window,
                            message_tag,
                            skipped,
                        });
                    }
                    Err(Refusal::Window(w)) => {
                        window_refusals.push((channel.clone(), reason.clone(), w.clone()));
                        why_not.push(w);
                    }
                    Err(Refusal::Consent(c)) => why_not.push(c),
                }
            }
            why_not.dedup();
            skipped.push(SkippedRoute { channel, reason: why_not.join("; ") });
        }

        let tried = skipped.iter().map(|s| format!("{}: {}", s.channel, s.reason)).collect::<Vec<_>>().join("; ");
        // A closed window on the channel the customer last used (else on the preferred one) is
        // the reason to report: the caller's remedy is a template there.
        let window_refusal = window_refusals
            .iter()
            .find(|(_, r, _)| *r == ChoiceReason::LastUsed)
            .or_else(|| window_refusals.iter().find(|(_, r, _)| *r == ChoiceReason::Preferred))
            .map(|(c, _, w)| (c.clone(), w.clone()));
        match window_refusal {
            Some((channel, why)) => {
                let remedy = if self.template_channels.contains(&channel) {
                    "send an approved template"
                } else {
                    "the customer has to write first"
                };
                let fallbacks = if self.fallbacks.is_empty() {
                    "no fallback channel is configured".to_owned()
                } else {
                    format!("no fallback could take it ({tried})")
                };
                Err(Error::ReplyWindowClosed { channel, hint: format!("{why}; {remedy}; {fallbacks}") })
            }
            None if tried.is_empty() => {
                Err(Error::Refused(format!("customer {} has no address we can write to", customer.id)))
            }
            None => Err(Error::Refused(format!("no channel can reach customer {}: {tried}", customer.id))),
        }
    }

    /// The routes on `channel`, most recently written-from first; a route through the default
    /// endpoint for an identity that never wrote to it.
    fn routes<'a>(&'a self, identities: &'a [Identity], channel: &ChannelKind) -> Vec<Route<'a>> {
        let on_channel: Vec<&Identity> = identities.iter().filter(|i| &i.channel == channel).collect();
        let mut routes: Vec<Route<'a>> = on_channel
            .iter()
            .flat_map(|i| {
                i.endpoints.iter().map(move |e| Route {
                    identity: i,
                    endpoint: &e.endpoint,
                    last_inbound_at: e.last_inbound_at,
                    last_outbound_at: e.last_outbound_at,
                })
            })
            .collect();
        routes.sort_by_key(|r| std::cmp::Reverse((r.last_inbound_at, r.last_outbound_at, r.identity.verification)));
        if let Some(endpoint) = self.default_endpoints.get(channel) {
            let mut fresh: Vec<&Identity> = on_channel.into_iter().filter(|i| i.endpoint(endpoint).is_none()).collect();
            fresh.sort_by_key(|i| std::cmp::Reverse((i.verification, i.last_seen)));
            routes.extend(fresh.into_iter().map(|identity| Route {
                identity,
                endpoint,
                last_inbound_at: None,
                last_outbound_at: None,
            }));
        }
        routes
    }

    /// Why the customer may not be contacted on `channel` at all: blocked or opted out, or the
    /// opt-in the channel needs ([`opt_in_required`](Self::opt_in_required)) is not recorded.
    pub(crate) fn consent_refusal(&self, customer: &Customer, channel: &ChannelKind) -> Option<String> {
        if !customer.may_contact(channel) {
            return Some(if customer.blocked {
                "the customer is blocked".to_owned()
            } else {
                format!("the customer opted out of {channel}")
            });
        }
        if self.opt_in_required.contains(channel)
            && !matches!(customer.consent.get(channel), Some(c) if c.state == ConsentState::OptedIn)
        {
            return Some(format!("{channel} needs the customer's opt-in, which is not recorded"));
        }
        None
    }

    fn usable(
        &self,
        customer: &Customer,
        channel: &ChannelKind,
        route: &Route<'_>,
        human: bool,
        is_template: bool,
        now: DateTime<Utc>,
    ) -> std::result::Result<(WindowStatus, Option<String>), Refusal> {
        if let Some(why) = self.consent_refusal(customer, channel) {
            return Err(Refusal::Consent(why));
        }
        let Some(rule) = self.reply_windows.get(channel) else {
            return Ok((WindowStatus::NoWindow, None));
        };
        let status = rule.status(route.last_inbound_at, now);
        let last = match route.last_inbound_at {
            Some(t) => format!("the customer last wrote to {} at {}", route.endpoint, t.to_rfc3339()),
            None => format!("the customer never wrote to {}", route.endpoint),
        };
        match status {
            WindowStatus::NoWindow | WindowStatus::Open { .. } => Ok((status, None)),
            WindowStatus::HumanAgentOnly { .. } if human => Ok((status, Some(HUMAN_AGENT_TAG.to_owned()))),
            WindowStatus::HumanAgentOnly { closes_at } => Err(Refusal::Window(format!(
                "{last}: the {} window is closed; only a human agent may reply until {}",
                hours(rule.window),
                closes_at.to_rfc3339()
            ))),
            WindowStatus::Closed { .. } if is_template && self.template_channels.contains(channel) => {
                Ok((status, None))
            }
            WindowStatus::Closed { .. } => {
                Err(Refusal::Window(format!("{last}: the {} {channel} window is closed", hours(rule.window))))
            }
        }
    }
}

fn hours(d: Duration) -> String {
    if d.num_hours() % 24 == 0 && d.num_hours() >= 48 {
        format!("{}-day", d.num_days())
    } else {
        format!("{}-hour", d.num_hours())
    }
}
