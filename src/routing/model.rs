//! Routing configuration and work: [`Agent`], [`Queue`], [`WorkItem`] and their parts.
//!
//! Everything here is plain serde data (JSON/TOML friendly). Durations are written as seconds
//! (`"dwell": 30`, `"delay": 2.5`), with millisecond precision.

use crate::Error;
use crate::model::{AgentId, Attributes, ChannelKind, ConversationId, LanguageTag, Priority, QueueId};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use uuid::Uuid;

/// The longest duration a routing configuration may name: 400 days.
pub const MAX_DURATION_SECS: f64 = 400.0 * 86_400.0;

/// Durations as seconds in serde (a number, fractions allowed down to milliseconds).
/// Serde for `Arc<str>` (as a plain string) without serde's `rc` feature.
pub(crate) mod arc_str {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::sync::Arc;

    pub fn serialize<S: Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<str>, D::Error> {
        String::deserialize(d).map(Arc::from)
    }

    pub(crate) mod option {
        use serde::{Deserialize, Deserializer, Serializer};
        use std::sync::Arc;

        pub fn serialize<S: Serializer>(v: &Option<Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => s.serialize_some(&**v),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Arc<str>>, D::Error> {
            Option::<String>::deserialize(d).map(|o| o.map(Arc::from))
        }
    }
}

pub(crate) mod secs {
    use super::MAX_DURATION_SECS;
    use chrono::TimeDelta;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn to_secs(d: &TimeDelta) -> f64 {
        d.num_milliseconds() as f64 / 1000.0
    }

    pub fn from_secs(s: f64) -> Result<TimeDelta, String> {
        if !s.is_finite() || s < 0.0 {
            return Err(format!("a duration is a non-negative number of seconds, not {s}"));
        }
        if s > MAX_DURATION_SECS {
            return Err(format!("{s} s is longer than the limit of {MAX_DURATION_SECS} s (400 days)"));
        }
        Ok(TimeDelta::milliseconds((s * 1000.0).round() as i64))
    }

    pub fn serialize<S: Serializer>(d: &TimeDelta, s: S) -> Result<S::Ok, S::Error> {
        if d.num_milliseconds() % 1000 == 0 { s.serialize_i64(d.num_seconds()) } else { s.serialize_f64(to_secs(d)) }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TimeDelta, D::Error> {
        from_secs(f64::deserialize(d)?).map_err(D::Error::custom)
    }

    /// `Option<TimeDelta>` as an optional number of seconds.
    pub mod option {
        use chrono::TimeDelta;
        use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

        pub fn serialize<S: Serializer>(d: &Option<TimeDelta>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TimeDelta>, D::Error> {
            match Option::<f64>::deserialize(d)? {
                Some(v) => super::from_secs(v).map(Some).map_err(D::Error::custom),
                None => Ok(None),
            }
        }
    }
}

/// Identifies one piece of routable work. Usually the conversation's id
/// ([`WorkItemId::from`] a [`ConversationId`]); a host routing other work (a callback request,
/// a case) uses its own UUIDs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkItemId(pub Uuid);

impl WorkItemId {
    /// Wraps a UUID.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        WorkItemId(uuid)
    }
    /// A deterministic id from a number (handy in tests and simulations).
    pub const fn from_u128(n: u128) -> Self {
        WorkItemId(Uuid::from_u128(n))
    }
    /// A fresh random id.
    pub fn random() -> Self {
        WorkItemId(Uuid::new_v4())
    }
}

impl From<ConversationId> for WorkItemId {
    fn from(c: ConversationId) -> Self {
        WorkItemId(c.0)
    }
}

impl fmt::Debug for WorkItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WorkItemId({})", self.0)
    }
}

impl fmt::Display for WorkItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A set of channels: all, none, a list, or all but a list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelSet {
    /// Every channel.
    #[default]
    All,
    /// No channel.
    None,
    /// Only these channels.
    Only(BTreeSet<ChannelKind>),
    /// Every channel except these.
    Except(BTreeSet<ChannelKind>),
}

impl ChannelSet {
    /// Only the given channels.
    pub fn only(channels: impl IntoIterator<Item = ChannelKind>) -> Self {
        ChannelSet::Only(channels.into_iter().collect())
    }
    /// Every channel but the given ones.
    pub fn except(channels: impl IntoIterator<Item = ChannelKind>) -> Self {
        ChannelSet::Except(channels.into_iter().collect())
    }
    /// Whether `channel` is in the set.
    pub fn contains(&self, channel: &ChannelKind) -> bool {
        match self {
            ChannelSet::All => true,
            ChannelSet::None => false,
            ChannelSet::Only(s) => s.contains(channel),
            ChannelSet::Except(s) => !s.contains(channel),
        }
    }
    /// Whether the set names no channel at all (`None`, or `Only` of nothing).
    pub fn is_empty(&self) -> bool {
        match self {
            ChannelSet::None => true,
            ChannelSet::Only(s) => s.is_empty(),
            ChannelSet::All | ChannelSet::Except(_) => false,
        }
    }
}

/// What a presence status lets an agent receive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceStatus {
    /// Channels on which new work may be offered in this status.
    #[serde(default)]
    pub channels: ChannelSet,
    /// Whether the status means the agent is gone (logged out, disconnected): their offers are
    /// rescinded at once and their assigned work follows the router's
    /// [`OfflinePolicy`](super::OfflinePolicy).
    #[serde(default)]
    pub offline: bool,
}

impl PresenceStatus {
    /// A status open to the given channels.
    pub fn available(channels: ChannelSet) -> Self {
        PresenceStatus { channels, offline: false }
    }
    /// A status that receives nothing new but keeps current work (away, on break, wrap-up).
    pub fn unavailable() -> Self {
        PresenceStatus { channels: ChannelSet::None, offline: false }
    }
    /// A status meaning the agent is gone.
    pub fn offline() -> Self {
        PresenceStatus { channels: ChannelSet::None, offline: true }
    }
}

/// An agent's presence: the current status name and, optionally, the agent's own statuses
/// (looked up before the router's [catalogue](super::RouterConfig::statuses)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Presence {
    /// The current status, for example `online`, `away`, `offline` or a custom `chat-only`.
    pub status: String,
    /// Statuses defined for this agent only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub statuses: BTreeMap<String, PresenceStatus>,
}

impl Default for Presence {
    fn default() -> Self {
        Presence { status: "offline".into(), statuses: BTreeMap::new() }
    }
}

/// The idle rule (Zendesk's idle timeout): an agent in a status that takes work who shows no
/// activity for [`after`](Self::after) is put in [`status`](Self::status) (typically `away`),
/// so new work stops going to someone who left their desk. Installed with
/// [`Router::set_idle_policy`](super::Router::set_idle_policy).
///
/// Bots are never idle. The status is the one the router's catalogue defines (an agent's own
/// status of the same name does not count for this).
///
/// Activity is every router call made for the agent: [`upsert_agent`](super::Router::upsert_agent),
/// [`set_presence`](super::Router::set_presence), [`accept`](super::Router::accept),
/// [`decline`](super::Router::decline), and for the agent's own work
/// [`complete`](super::Router::complete), [`note_agent_reply`](super::Router::note_agent_reply)
/// and [`handoff`](super::Router::handoff);
/// a host reports anything else (typing, opening a conversation) with
/// [`note_agent_activity`](super::Router::note_agent_activity). Being offered or assigned work is
/// not activity. The change is a [`RoutingEvent::PresenceChanged`](super::RoutingEvent) like any
/// other; the agent keeps the work they hold, and the next activity does not restore the status
/// (the agent, or the host, sets it back).
///
/// ```
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use touchpoint::model::AgentId;
/// use touchpoint::routing::*;
///
/// let router = Router::new(RouterConfig::default());
/// router.set_idle_policy(Some(IdlePolicy::new(TimeDelta::minutes(15), "away"))).unwrap();
/// let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
/// let ana = AgentId::new("ana").unwrap();
/// router.upsert_agent(Agent::new(ana.clone()).with_status("online"), t0).unwrap();
/// router.note_agent_activity(&ana, t0 + TimeDelta::minutes(10)).unwrap();
/// assert!(router.tick(t0 + TimeDelta::minutes(24)).is_empty());
/// let events = router.tick(t0 + TimeDelta::minutes(25));
/// assert_eq!(events, [RoutingEvent::PresenceChanged { agent: ana.clone(), status: "away".into() }]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdlePolicy {
    /// How long without activity makes an agent idle.
    #[serde(with = "secs")]
    pub after: TimeDelta,
    /// The status an idle agent is put in: one of the router's statuses that takes no new work.
    pub status: String,
}

impl IdlePolicy {
    /// Idle after `after` without activity, then put in `status`.
    pub fn new(after: TimeDelta, status: impl Into<String>) -> Self {
        IdlePolicy { after, status: status.into() }
    }
}

/// "While holding work on `while_holding`, nothing on `blocks` is offered."
///
/// "No chat while on a call" is `Interruption { while_holding: Voice, blocks: only([WebChat]) }`;
/// Amazon Connect's *route current channel only* is `blocks: except([that channel])`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interruption {
    /// The channel of work the agent holds.
    pub while_holding: ChannelKind,
    /// Channels not offered meanwhile.
    pub blocks: ChannelSet,
}

/// How much work an agent can hold at once.
///
/// Two independent limits apply and both must have room: a count of items per channel, and an
/// optional weighted budget shared by all channels (each item costs [`cost`](Self::cost) of its
/// channel, 1 by default). Offers reserve capacity like assignments do.
///
/// ```
/// use touchpoint::routing::Capacity;
/// use touchpoint::model::ChannelKind;
/// // Azure-style shared budget: 1 call or 5 chats.
/// let c = Capacity::budget(100).with_cost(ChannelKind::Voice, 100).with_cost(ChannelKind::WebChat, 20);
/// assert_eq!(c.cost_of(&ChannelKind::WebChat), 20);
/// // Per-channel counts: 1 call and 3 chats, independently.
/// let c = Capacity::per_channel([(ChannelKind::Voice, 1), (ChannelKind::WebChat, 3)]);
/// assert_eq!(c.limit_of(&ChannelKind::Email), Some(0)); // unlisted channels are not served
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    /// Most items held at once per channel.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channels: BTreeMap<ChannelKind, u32>,
    /// Limit for channels not listed in [`channels`](Self::channels); `None` = no per-channel
    /// limit for them (only the total budget applies).
    #[serde(default)]
    pub other_channels: Option<u32>,
    /// Weighted budget shared by all channels; `None` = no shared budget.
    #[serde(default)]
    pub total: Option<u32>,
    /// Budget cost of one item per channel (unlisted channels cost 1).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cost: BTreeMap<ChannelKind, u32>,
    /// Cross-channel blocking rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interruptions: Vec<Interruption>,
}

impl Default for Capacity {
    /// One item per channel, every channel, no shared budget.
    fn default() -> Self {
        Capacity {
            channels: BTreeMap::new(),
            other_channels: Some(1),
            total: None,
            cost: BTreeMap::new(),
            interruptions: Vec::new(),
        }
    }
}

impl Capacity {
    /// No limits at all (a bot).
    pub fn unlimited() -> Self {
        Capacity { other_channels: None, ..Capacity::default() }
    }
    /// The same count limit on every channel.
    pub fn each_channel(limit: u32) -> Self {
        Capacity { other_channels: Some(limit), ..Capacity::default() }
    }
    /// Count limits for the listed channels; other channels are not served.
    pub fn per_channel(limits: impl IntoIterator<Item = (ChannelKind, u32)>) -> Self {
        Capacity { channels: limits.into_iter().collect(), other_channels: Some(0), ..Capacity::default() }
    }
    /// A shared weighted budget (set costs with [`with_cost`](Self::with_cost)), no per-channel
    /// counts.
    pub fn budget(total: u32) -> Self {
        Capacity { total: Some(total), other_channels: None, ..Capacity::default() }
    }
    /// Sets one channel's count limit.
    pub fn with_limit(mut self, channel: ChannelKind, limit: u32) -> Self {
        self.channels.insert(channel, limit);
        self
    }
    /// Sets one channel's budget cost.
    pub fn with_cost(mut self, channel: ChannelKind, cost: u32) -> Self {
        self.cost.insert(channel, cost);
        self
    }
    /// Adds an interruption rule.
    pub fn with_interruption(mut self, while_holding: ChannelKind, blocks: ChannelSet) -> Self {
        self.interruptions.push(Interruption { while_holding, blocks });
        self
    }
    /// The count limit on `channel` (`None` = unlimited).
    pub fn limit_of(&self, channel: &ChannelKind) -> Option<u32> {
        match self.channels.get(channel) {
            Some(limit) => Some(*limit),
            None => self.other_channels,
        }
    }
    /// The budget cost of one item on `channel`.
    pub fn cost_of(&self, channel: &ChannelKind) -> u32 {
        self.cost.get(channel).copied().unwrap_or(1)
    }
}

/// An agent's membership in a queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueMembership {
    /// The queue.
    pub queue: QueueId,
    /// Across the agent's queues, lower is served first (Amazon Connect 1–99 style). Default 1.
    #[serde(default = "one")]
    pub priority: u32,
    /// Items of this queue reach this agent only once they have waited this long (Amazon
    /// Connect routing-profile delay). Default 0.
    #[serde(with = "secs", default)]
    pub delay: TimeDelta,
}

fn one() -> u32 {
    1
}

impl QueueMembership {
    /// Membership with priority 1 and no delay.
    pub fn new(queue: QueueId) -> Self {
        QueueMembership { queue, priority: 1, delay: TimeDelta::zero() }
    }
}

/// A human agent or a bot that can take work.
///
/// ```
/// use touchpoint::routing::{Agent, Capacity};
/// use touchpoint::model::{AgentId, ChannelKind, QueueId};
/// let ana = Agent::new(AgentId::new("ana").unwrap())
///     .with_skill("billing", 4)
///     .with_language("es".parse().unwrap())
///     .with_queue(QueueId::new("support").unwrap())
///     .with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 3)]))
///     .with_status("online");
/// assert_eq!(ana.skills["billing"], 4);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// The agent's id.
    pub id: AgentId,
    /// Whether this agent is a bot.
    #[serde(default)]
    pub is_bot: bool,
    /// Skills with proficiency levels (any scale the host picks, higher = better).
    #[serde(default)]
    pub skills: BTreeMap<String, u32>,
    /// Languages spoken.
    #[serde(default)]
    pub languages: BTreeSet<LanguageTag>,
    /// Other static attributes (team, region, tier, …) for eligibility terms and rankers.
    #[serde(default)]
    pub attributes: Attributes,
    /// Queue memberships.
    #[serde(default)]
    pub queues: Vec<QueueMembership>,
    /// Current presence.
    #[serde(default)]
    pub presence: Presence,
    /// Capacity limits and interruption rules.
    #[serde(default)]
    pub capacity: Capacity,
    /// The business-hours schedule the agent works by (a name in the router's
    /// [`Calendars`](super::calendar::Calendars), [`Router::set_calendars`](super::Router::set_calendars)),
    /// or `None` (the default) to work whenever their presence allows.
    ///
    /// While the schedule is closed the agent is *off shift*: they take no new work — no offers,
    /// no assignments — as if their status allowed no channel, and they do not count as signed
    /// in (`pool.signed_in`, [`SkipIf::NoAgentsSignedIn`](super::SkipIf::NoAgentsSignedIn)).
    /// Assigned work stays with them; offers still open when the shift ends are withdrawn (an
    /// offer accepted then would be new work off shift) and go on to others. The moment the schedule
    /// opens — on the router's clock, from [`Router::tick`](super::Router::tick) or any call
    /// that fires timers — they take the best waiting work across their queues, like an agent
    /// going available. Each change is a [`RoutingEvent::ShiftChanged`](super::RoutingEvent::ShiftChanged),
    /// and [`Router::explain`](super::Router::explain) lists the agent as
    /// [`Exclusion::OffShift`](super::Exclusion::OffShift).
    ///
    /// Upserting an agent that names a schedule the router's calendars do not hold is an
    /// [`Error::NotFound`](crate::Error::NotFound) (entity `schedule`); a schedule that a later
    /// `set_calendars` drops counts as closed until one by that name is back.
    ///
    /// ```
    /// use touchpoint::routing::*;
    /// use touchpoint::routing::calendar::{Calendars, ScheduleConfig};
    /// use touchpoint::model::{AgentId, ChannelKind, QueueId};
    /// use chrono::{TimeDelta, TimeZone, Utc};
    ///
    /// let router = Router::new(RouterConfig::default());
    /// let emea = ScheduleConfig::new("emea", "UTC").hours("Mon-Fri", "08:00", "16:00").build().unwrap();
    /// router.set_calendars(Calendars::from_schedules([emea]).unwrap());
    /// let support = QueueId::new("support").unwrap();
    /// router.upsert_queue(Queue::new(support.clone())).unwrap();
    ///
    /// let early = Utc.with_ymd_and_hms(2026, 3, 2, 7, 30, 0).unwrap(); // Monday, before 08:00 UTC
    /// let ana = Agent::new(AgentId::new("ana").unwrap()).with_queue(support.clone()).with_status("online");
    /// router.upsert_agent(ana.with_schedule("emea"), early).unwrap();
    ///
    /// // Online but off shift: the chat waits.
    /// let chat = WorkItem::new(WorkItemId::from_u128(1), ChannelKind::WebChat, early).in_queue(support);
    /// assert!(matches!(router.submit(chat, early).unwrap().outcome, Outcome::Queued(_)));
    ///
    /// // The shift starts at 08:00 exactly: the router's next timer, and ana takes the chat then.
    /// let eight = Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap();
    /// assert_eq!(router.next_timer(), Some(eight));
    /// let events = router.tick(eight);
    /// assert!(events.contains(&RoutingEvent::ShiftChanged {
    ///     agent: AgentId::new("ana").unwrap(),
    ///     schedule: "emea".into(),
    ///     on_shift: true,
    /// }));
    /// assert!(events.iter().any(|e| matches!(e, RoutingEvent::Assigned { agent, .. } if agent.as_str() == "ana")));
    /// ```
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

impl Agent {
    /// A human agent with no skills, no queues, default capacity, status `offline`.
    pub fn new(id: AgentId) -> Self {
        Agent {
            id,
            is_bot: false,
            skills: BTreeMap::new(),
            languages: BTreeSet::new(),
            attributes: Attributes::new(),
            queues: Vec::new(),
            presence: Presence::default(),
            capacity: Capacity::default(),
            schedule: None,
        }
    }
    /// A bot: unlimited capacity, status `online`.
    pub fn bot(id: AgentId) -> Self {
        Agent { is_bot: true, capacity: Capacity::unlimited(), ..Agent::new(id) }.with_status("online")
    }
    /// Adds a skill.
    pub fn with_skill(mut self, skill: impl Into<String>, level: u32) -> Self {
        self.skills.insert(skill.into(), level);
        self
    }
    /// Adds a language.
    pub fn with_language(mut self, language: LanguageTag) -> Self {
        self.languages.insert(language);
        self
    }
    /// Sets an attribute.
    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }
    /// Joins a queue with priority 1 and no delay.
    pub fn with_queue(mut self, queue: QueueId) -> Self {
        self.queues.push(QueueMembership::new(queue));
        self
    }
    /// Joins a queue with a priority and delay.
    pub fn with_membership(mut self, membership: QueueMembership) -> Self {
        self.queues.push(membership);
        self
    }
    /// Sets the capacity.
    pub fn with_capacity(mut self, capacity: Capacity) -> Self {
        self.capacity = capacity;
        self
    }
    /// Sets the current status.
    pub fn with_status(mut self, status: impl Into<String>) -> Self {
        self.presence.status = status.into();
        self
    }
    /// Defines a status for this agent only.
    pub fn with_custom_status(mut self, name: impl Into<String>, status: PresenceStatus) -> Self {
        self.presence.statuses.insert(name.into(), status);
        self
    }
    /// Works by the schedule called `name` in the router's calendars ([`Agent::schedule`]).
    pub fn with_schedule(mut self, name: impl Into<String>) -> Self {
        self.schedule = Some(name.into());
        self
    }

    pub(crate) fn validate(&self) -> crate::Result<()> {
        let mut seen = BTreeSet::new();
        for m in &self.queues {
            if !seen.insert(&m.queue) {
                return Err(Error::invalid("agent.queues", format!("queue {} is listed twice", m.queue)));
            }
            if m.delay < TimeDelta::zero() || secs::to_secs(&m.delay) > MAX_DURATION_SECS {
                return Err(Error::invalid("agent.queues.delay", "must be between 0 and 400 days"));
            }
        }
        if self.presence.status.is_empty() || self.presence.status.chars().count() > 64 {
            return Err(Error::invalid("agent.presence.status", "a status name is 1 to 64 characters"));
        }
        if self.skills.len() > 256
            || self.attributes.len() > 256
            || self.languages.len() > 64
            || self.queues.len() > 256
        {
            return Err(Error::invalid(
                "agent",
                "too many skills, attributes, languages or queues (limits 256, 256, 64, 256)",
            ));
        }
        if self.skills.keys().any(|k| k.is_empty() || k.chars().count() > 128) {
            return Err(Error::invalid("agent.skills", "a skill name is 1 to 128 characters"));
        }
        if let Some(name) = &self.schedule
            && (name.is_empty() || name.chars().count() > super::calendar::MAX_NAME_LEN)
        {
            return Err(Error::invalid(
                "agent.schedule",
                format!("a schedule name is 1 to {} characters", super::calendar::MAX_NAME_LEN),
            ));
        }
        Ok(())
    }
}

/// How a queue orders its waiting items (the item side of matching: which item a freed agent
/// gets). Every discipline ends on arrival order, so the order is total and deterministic.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Discipline {
    /// Higher priority first, then the longest effective wait (`eligible_since` minus the age
    /// adjustment). The default (Twilio, Salesforce, Zendesk).
    #[default]
    PriorityThenAge,
    /// Earliest due time first (items without one last), then priority, then age (SLA routing).
    DueTime,
    /// Higher priority first, then the *newest* (Twilio `task_order: LIFO`).
    Lifo,
    /// Linear priority aging (Genesys conversation score): each priority point counts as this
    /// many seconds of waiting.
    Scored {
        /// Seconds of waiting one priority point is worth.
        seconds_per_priority: u32,
    },
    /// Ordered buckets (D365 prioritization rulesets): an item sorts by the first bucket whose
    /// item-only condition it matches (unmatched last), then priority, then age.
    Buckets(Vec<super::Term>),
}

/// What happens to an item that waited too long in a queue or exhausted its declines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TimeoutAction {
    /// Move to another queue (any member may take it there).
    Overflow(QueueId),
    /// Finish it; the host schedules a call back.
    Callback,
    /// Finish it; the host offers voicemail.
    Voicemail,
    /// Finish it; the host closes the conversation.
    Close,
}

/// Whether items are offered (and must be accepted) or assigned outright.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferPolicy {
    /// `false`: assign directly (Chatwoot, Rocket.Chat auto selection). `true`: offer and wait
    /// for accept/decline/expiry.
    #[serde(default)]
    pub offer: bool,
    /// How many agents to offer to at once; the first to accept wins. 1–50.
    #[serde(default = "one")]
    pub parallel: u32,
    /// How long an offer stays open.
    #[serde(with = "secs", default = "default_offer_expiry")]
    pub expires_after: TimeDelta,
    /// Declines (an expired offer counts as one) after which the item leaves automatic routing
    /// through [`on_max_declines`](Self::on_max_declines).
    #[serde(default = "default_max_declines")]
    pub max_declines: u32,
    /// What happens after [`max_declines`](Self::max_declines).
    #[serde(default = "default_exhausted")]
    pub on_max_declines: TimeoutAction,
    /// Status an agent is put in when an offer to them expires (for example `not-responding`).
    #[serde(default)]
    pub on_expiry_status: Option<String>,
}

fn default_offer_expiry() -> TimeDelta {
    TimeDelta::seconds(30)
}
fn default_max_declines() -> u32 {
    100
}
fn default_exhausted() -> TimeoutAction {
    TimeoutAction::Close
}

impl Default for OfferPolicy {
    /// Direct assignment.
    fn default() -> Self {
        OfferPolicy {
            offer: false,
            parallel: 1,
            expires_after: default_offer_expiry(),
            max_declines: default_max_declines(),
            on_max_declines: default_exhausted(),
            on_expiry_status: None,
        }
    }
}

impl OfferPolicy {
    /// Offer to `parallel` agents at once, each offer open for `expires_after`.
    pub fn offers(parallel: u32, expires_after: TimeDelta) -> Self {
        OfferPolicy { offer: true, parallel, expires_after, ..OfferPolicy::default() }
    }
}

/// What to do with assigned work whose agent has not replied in time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoReplyPolicy {
    /// How long after assignment the agent has to send a first reply (reported with
    /// [`Router::note_agent_reply`](super::Router::note_agent_reply)); after that the item is
    /// taken back and routed to someone else.
    #[serde(with = "secs")]
    pub after: TimeDelta,
}

/// A queue: a place where work waits, with its ordering and timers.
///
/// ```
/// use touchpoint::routing::{Discipline, Queue, TimeoutAction};
/// use touchpoint::model::QueueId;
/// let q = Queue::new(QueueId::new("billing").unwrap())
///     .with_discipline(Discipline::DueTime)
///     .with_max_wait(chrono::TimeDelta::minutes(10), TimeoutAction::Callback);
/// assert_eq!(q.discipline, Discipline::DueTime);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Queue {
    /// The queue's id.
    pub id: QueueId,
    /// How waiting items are ordered.
    #[serde(default)]
    pub discipline: Discipline,
    /// Longest an item may wait in this queue, counted from when it entered the queue; time
    /// offered to or assigned to an agent counts too. An item that comes back to the queue
    /// (declined, expired, requeued) after its max wait gets [`on_max_wait`](Self::on_max_wait)
    /// at once unless an agent takes it then.
    ///
    /// A change of the queue ([`Router::upsert_queue`](super::Router::upsert_queue)) holds for
    /// the items waiting in it too: a max wait added or shortened ends their wait at entry plus
    /// the new value (at the next tick if that is past), one lengthened or removed lets them
    /// wait on.
    #[serde(with = "secs::option", default)]
    pub max_wait: Option<TimeDelta>,
    /// What happens after [`max_wait`](Self::max_wait).
    #[serde(default = "default_exhausted")]
    pub on_max_wait: TimeoutAction,
    /// Offer or assign.
    #[serde(default)]
    pub offer: OfferPolicy,
    /// Reassign work whose agent did not reply in time. A rule removed or lengthened by a change
    /// of the queue holds for work assigned before the change too; one added or shortened,
    /// from the next assignment.
    #[serde(default)]
    pub no_reply: Option<NoReplyPolicy>,
    /// How many recent waits the estimated wait time averages. Default 100.
    #[serde(default = "default_ewt")]
    pub ewt_samples: usize,
    /// Business hours: what happens to work nobody takes while the queue is closed.
    #[serde(default)]
    pub hours: Option<QueueHours>,
}

fn default_ewt() -> usize {
    100
}

/// A queue's business hours (a schedule of the router's
/// [`Calendars`](super::calendar::Calendars)) and its after-hours action.
///
/// While the schedule is closed, work that no agent takes gets [`action`](Self::action):
/// - every item waiting in the queue at the instant the schedule closes (a timer, so at that
///   instant on a [`Router::tick`](super::Router::tick) or any later call; like shifts, the
///   hours are judged at the call's `now`: a call that comes only after they have opened again
///   finds them open, and one that comes after several changes applies the latest closing to
///   the items that were waiting before it);
/// - an item that finds no agent while the queue is closed — submitted, back from an agent,
///   moved in by a plan step or another queue's max wait — at once.
///
/// An agent still taking work in a closed queue gets it as usual: the hours decide only what
/// happens to work that would wait. An item that another queue's after-hours action moves
/// into this queue while it is closed too waits here for the opening (two closed queues do not
/// pass it back and forth). Items offered or assigned, or awaiting an external decision, are
/// not touched. A schedule missing from the calendars (after
/// [`Router::set_calendars`](super::Router::set_calendars)) counts as closed.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use touchpoint::model::{ChannelKind, QueueId};
/// use touchpoint::routing::calendar::{Calendars, ScheduleConfig};
/// use touchpoint::routing::*;
///
/// let router = Router::new(RouterConfig::default());
/// let hours = ScheduleConfig::new("office", "UTC").hours("Mon-Fri", "09:00", "17:00").build().unwrap();
/// router.set_calendars(Calendars::from_schedules([hours]).unwrap());
/// let support = QueueId::new("support").unwrap();
/// router.upsert_queue(Queue::new(support.clone()).with_hours("office", TimeoutAction::Callback)).unwrap();
///
/// // Monday 16:00: a chat waits for an agent; at 17:00 it is turned into a callback.
/// let four = Utc.with_ymd_and_hms(2026, 3, 2, 16, 0, 0).unwrap();
/// let chat = WorkItem::new(WorkItemId::from_u128(1), ChannelKind::WebChat, four).in_queue(support.clone());
/// assert_eq!(router.submit(chat, four).unwrap().outcome, Outcome::Queued(support.clone()));
/// let five = Utc.with_ymd_and_hms(2026, 3, 2, 17, 0, 0).unwrap();
/// let events = router.tick(five);
/// assert!(matches!(&events[..], [RoutingEvent::TimedOut { action: TimeoutAction::Callback, .. }]));
///
/// // At 18:00 a new chat gets the callback at once.
/// let six = Utc.with_ymd_and_hms(2026, 3, 2, 18, 0, 0).unwrap();
/// let late = WorkItem::new(WorkItemId::from_u128(2), ChannelKind::WebChat, six).in_queue(support);
/// assert_eq!(router.submit(late, six).unwrap().outcome, Outcome::TimedOut(TimeoutAction::Callback));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueHours {
    /// The schedule during which the queue is open.
    pub schedule: String,
    /// What happens to work nobody takes while the queue is closed (default: close it).
    #[serde(default = "default_exhausted")]
    pub action: TimeoutAction,
}

impl Queue {
    /// A queue with the default discipline, no max wait, direct assignment.
    pub fn new(id: QueueId) -> Self {
        Queue {
            id,
            discipline: Discipline::default(),
            max_wait: None,
            on_max_wait: default_exhausted(),
            offer: OfferPolicy::default(),
            no_reply: None,
            ewt_samples: default_ewt(),
            hours: None,
        }
    }
    /// Sets the discipline.
    pub fn with_discipline(mut self, discipline: Discipline) -> Self {
        self.discipline = discipline;
        self
    }
    /// Sets the max wait and its action (see [`max_wait`](Self::max_wait)).
    pub fn with_max_wait(mut self, max_wait: TimeDelta, action: TimeoutAction) -> Self {
        self.max_wait = Some(max_wait);
        self.on_max_wait = action;
        self
    }
    /// Sets the offer policy.
    pub fn with_offers(mut self, offer: OfferPolicy) -> Self {
        self.offer = offer;
        self
    }
    /// Reassigns work not replied to within `after`.
    pub fn with_no_reply(mut self, after: TimeDelta) -> Self {
        self.no_reply = Some(NoReplyPolicy { after });
        self
    }
    /// Sets business hours and the after-hours action (see [`QueueHours`]).
    pub fn with_hours(mut self, schedule: impl Into<String>, action: TimeoutAction) -> Self {
        self.hours = Some(QueueHours { schedule: schedule.into(), action });
        self
    }

    pub(crate) fn validate(&self) -> crate::Result<()> {
        let p = &self.offer;
        if p.parallel == 0 || p.parallel > 50 {
            return Err(Error::invalid("queue.offer.parallel", format!("must be 1 to 50, not {}", p.parallel)));
        }
        if p.expires_after <= TimeDelta::zero() {
            return Err(Error::invalid("queue.offer.expires_after", "must be positive"));
        }
        if p.max_declines == 0 {
            return Err(Error::invalid("queue.offer.max_declines", "must be at least 1"));
        }
        if let Some(m) = self.max_wait
            && m < TimeDelta::zero()
        {
            return Err(Error::invalid("queue.max_wait", "must not be negative"));
        }
        if let Some(n) = &self.no_reply
            && n.after <= TimeDelta::zero()
        {
            return Err(Error::invalid("queue.no_reply.after", "must be positive"));
        }
        if self.ewt_samples == 0 || self.ewt_samples > 10_000 {
            return Err(Error::invalid("queue.ewt_samples", "must be 1 to 10000"));
        }
        if let TimeoutAction::Overflow(q) = &self.on_max_wait
            && *q == self.id
        {
            return Err(Error::invalid("queue.on_max_wait", "a queue cannot overflow into itself"));
        }
        if matches!(&self.offer.on_max_declines, TimeoutAction::Overflow(q) if *q == self.id) {
            return Err(Error::invalid("queue.offer.on_max_declines", "a queue cannot overflow into itself"));
        }
        if let Some(h) = &self.hours {
            if h.schedule.trim().is_empty() {
                return Err(Error::invalid("queue.hours.schedule", "must name a schedule"));
            }
            if matches!(&h.action, TimeoutAction::Overflow(q) if *q == self.id) {
                return Err(Error::invalid("queue.hours.action", "a queue cannot overflow into itself"));
            }
        }
        if let Discipline::Buckets(terms) = &self.discipline {
            for (i, t) in terms.iter().enumerate() {
                t.check_limits()
                    .and_then(|()| t.check_item_only())
                    .map_err(|e| Error::invalid("queue.discipline", format!("buckets[{i}]: {e}")))?;
            }
        }
        Ok(())
    }
}

/// A change to an item the router holds ([`Router::update_item`](super::Router::update_item)):
/// a supervisor raising a waiting conversation's priority, a bot's or the host's later
/// findings (intent, tier, language), an SLA due time (Amazon Connect
/// `UpdateContactRoutingData`, a Twilio task update). Fields left `None` (and attributes not
/// named) stay as they are.
///
/// ```
/// use touchpoint::routing::ItemUpdate;
/// let escalate = ItemUpdate::new().priority(3).attribute("escalated_by", "supervisor-7");
/// assert_eq!(escalate.priority, Some(3));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ItemUpdate {
    /// The item's priority from now on (higher is more urgent); it replaces any change plan
    /// steps made so far (the item's own priority again changes nothing).
    #[serde(default)]
    pub priority: Option<i32>,
    /// Artificial extra age for ordering ([`WorkItem::age_adjustment`]).
    #[serde(with = "secs::option", default)]
    pub age_adjustment: Option<TimeDelta>,
    /// Due time for [`Discipline::DueTime`].
    #[serde(default)]
    pub due: Option<DateTime<Utc>>,
    /// The customer's language.
    #[serde(default)]
    pub language: Option<LanguageTag>,
    /// Required skills with minimum levels (replacing the item's).
    #[serde(default)]
    pub skills: Option<BTreeMap<String, u32>>,
    /// Optional skills (replacing the item's).
    #[serde(default)]
    pub optional_skills: Option<BTreeMap<String, u32>>,
    /// Attributes set (merged into the item's; others are kept).
    #[serde(default)]
    pub attributes: Attributes,
}

impl ItemUpdate {
    /// A change of nothing.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the priority.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
    }
    /// Sets the age adjustment.
    pub fn age_adjustment(mut self, adjustment: TimeDelta) -> Self {
        self.age_adjustment = Some(adjustment);
        self
    }
    /// Sets the due time.
    pub fn due(mut self, due: DateTime<Utc>) -> Self {
        self.due = Some(due);
        self
    }
    /// Sets the language.
    pub fn language(mut self, language: LanguageTag) -> Self {
        self.language = Some(language);
        self
    }
    /// Replaces the required skills.
    pub fn skills(mut self, skills: impl IntoIterator<Item = (String, u32)>) -> Self {
        self.skills = Some(skills.into_iter().collect());
        self
    }
    /// Replaces the optional skills.
    pub fn optional_skills(mut self, skills: impl IntoIterator<Item = (String, u32)>) -> Self {
        self.optional_skills = Some(skills.into_iter().collect());
        self
    }
    /// Sets an attribute.
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// `item` with the change applied.
    pub(crate) fn applied_to(&self, item: &WorkItem) -> WorkItem {
        let mut item = item.clone();
        if let Some(p) = self.priority {
            item.priority = p;
        }
        if let Some(a) = self.age_adjustment {
            item.age_adjustment = a;
        }
        if let Some(d) = self.due {
            item.due = Some(d);
        }
        if let Some(l) = &self.language {
            item.language = Some(l.clone());
        }
        if let Some(s) = &self.skills {
            item.skills.clone_from(s);
        }
        if let Some(s) = &self.optional_skills {
            item.optional_skills.clone_from(s);
        }
        item.attributes.extend(self.attributes.iter().map(|(k, v)| (k.clone(), v.clone())));
        item
    }
}

/// Most attributes a work item may have (its own and a bot's findings together).
pub(crate) const MAX_ITEM_ATTRIBUTES: usize = 256;

/// A conversation's [`Priority`] as an item priority (low 0, normal 1, high 2, urgent 3).
pub(crate) fn conversation_priority(priority: Priority) -> i32 {
    match priority {
        Priority::Low => 0,
        Priority::Normal => 1,
        Priority::High => 2,
        Priority::Urgent => 3,
    }
}

/// The last agent who handled the customer, preferred until `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastAgent {
    /// The agent.
    pub agent: AgentId,
    /// Until when the preference holds.
    pub until: DateTime<Utc>,
}

/// One piece of work to route: a conversation, a call, a case.
///
/// ```
/// use touchpoint::routing::WorkItem;
/// use touchpoint::model::ChannelKind;
/// use chrono::{TimeZone, Utc};
/// let now = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
/// let item = WorkItem::new(touchpoint::routing::WorkItemId::from_u128(1), ChannelKind::WhatsApp, now)
///     .with_skill("billing", 3)
///     .with_language("pt-BR".parse().unwrap())
///     .with_priority(2);
/// assert_eq!(item.eligible_since, now);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
// `repr(C)`, the fields a batch step move reads first (id, queue, skills: one cache line).
#[repr(C)]
pub struct WorkItem {
    /// The item's id.
    pub id: WorkItemId,
    /// The queue it waits in unless a plan step names one (`None` = the router's default queue).
    #[serde(default)]
    pub queue: Option<QueueId>,
    /// Required skills with minimum levels.
    #[serde(default)]
    pub skills: BTreeMap<String, u32>,
    /// The channel the work is on.
    pub channel: ChannelKind,
    /// Higher is more urgent. Default 0.
    #[serde(default)]
    pub priority: i32,
    /// The customer's language.
    #[serde(default)]
    pub language: Option<LanguageTag>,
    /// Skills wanted at first and dropped by later plan steps (Salesforce *additional* skills,
    /// Zendesk optional skills, Genesys bullseye skills).
    #[serde(default)]
    pub optional_skills: BTreeMap<String, u32>,
    /// Other attributes (tier, topic, bot findings, …).
    #[serde(default)]
    pub attributes: Attributes,
    /// When the work was created.
    pub created_at: DateTime<Utc>,
    /// Since when it has been routable; its wait is counted from here and is kept across
    /// declines and requeues.
    pub eligible_since: DateTime<Utc>,
    /// Artificial extra age for ordering (Amazon Connect `QueueTimeAdjustmentSeconds`); does not
    /// change the reported wait.
    #[serde(with = "secs", default)]
    pub age_adjustment: TimeDelta,
    /// Due time for [`Discipline::DueTime`].
    #[serde(default)]
    pub due: Option<DateTime<Utc>>,
    /// Preferred agents, best first (for the affinity ranker and `preferred_agents` pools).
    #[serde(default)]
    pub preferred_agents: Vec<AgentId>,
    /// The last agent, preferred until a time.
    #[serde(default)]
    pub last_agent: Option<LastAgent>,
}

impl WorkItem {
    /// A work item on `channel`, created and eligible at `now`, priority 0.
    pub fn new(id: WorkItemId, channel: ChannelKind, now: DateTime<Utc>) -> Self {
        WorkItem {
            id,
            channel,
            queue: None,
            priority: 0,
            language: None,
            skills: BTreeMap::new(),
            optional_skills: BTreeMap::new(),
            attributes: Attributes::new(),
            created_at: now,
            eligible_since: now,
            age_adjustment: TimeDelta::zero(),
            due: None,
            preferred_agents: Vec::new(),
            last_agent: None,
        }
    }
    /// Sets the queue.
    pub fn in_queue(mut self, queue: QueueId) -> Self {
        self.queue = Some(queue);
        self
    }
    /// Sets the priority.
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
    /// Sets the priority from a conversation's [`Priority`] (low 0, normal 1, high 2, urgent 3).
    pub fn with_conversation_priority(self, priority: Priority) -> Self {
        self.with_priority(conversation_priority(priority))
    }
    /// Sets the language.
    pub fn with_language(mut self, language: LanguageTag) -> Self {
        self.language = Some(language);
        self
    }
    /// Requires a skill at a minimum level.
    pub fn with_skill(mut self, skill: impl Into<String>, min_level: u32) -> Self {
        self.skills.insert(skill.into(), min_level);
        self
    }
    /// Wants a skill at first (dropped by later steps).
    pub fn with_optional_skill(mut self, skill: impl Into<String>, min_level: u32) -> Self {
        self.optional_skills.insert(skill.into(), min_level);
        self
    }
    /// Sets an attribute.
    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }
    /// Sets the age adjustment.
    pub fn with_age_adjustment(mut self, adjustment: TimeDelta) -> Self {
        self.age_adjustment = adjustment;
        self
    }
    /// Sets the due time.
    pub fn with_due(mut self, due: DateTime<Utc>) -> Self {
        self.due = Some(due);
        self
    }
    /// Adds a preferred agent (after those already listed).
    pub fn with_preferred_agent(mut self, agent: AgentId) -> Self {
        self.preferred_agents.push(agent);
        self
    }
    /// Sets the last agent and until when they are preferred.
    pub fn with_last_agent(mut self, agent: AgentId, until: DateTime<Utc>) -> Self {
        self.last_agent = Some(LastAgent { agent, until });
        self
    }

    pub(crate) fn validate(&self) -> crate::Result<()> {
        if self.eligible_since < self.created_at {
            return Err(Error::invalid("item.eligible_since", "is before created_at"));
        }
        if self.age_adjustment.num_seconds().unsigned_abs() as f64 > MAX_DURATION_SECS {
            return Err(Error::invalid("item.age_adjustment", "is beyond 400 days"));
        }
        if self.skills.len() + self.optional_skills.len() > 64 {
            return Err(Error::invalid("item.skills", "at most 64 required and optional skills"));
        }
        if self.preferred_agents.len() > 20 {
            return Err(Error::invalid("item.preferred_agents", "at most 20 preferred agents"));
        }
        if self.attributes.len() > MAX_ITEM_ATTRIBUTES {
            return Err(Error::invalid("item.attributes", "at most 256 attributes"));
        }
        Ok(())
    }

    /// The instant its effective wait starts: `eligible_since` minus the age adjustment.
    pub fn effective_since(&self) -> DateTime<Utc> {
        self.eligible_since.checked_sub_signed(self.age_adjustment).unwrap_or(self.eligible_since)
    }
}
