//! Routing: deciding who — agent, bot or queue — handles a piece of work.
//!
//! The [`Router`] holds agents, queues and waiting [`WorkItem`]s, and matches them in both
//! directions: a new item goes to the best available eligible agent; an agent whose capacity
//! frees up takes the best waiting item across all its queues. It is built from the eight
//! primitives every contact-center router reduces to:
//!
//! 1. **Eligibility** — structured [`Term`]s, [expressions](condition) (`agent.skills.billing >= 3
//!    and item.language in agent.languages`) or any [`Eligibility`] implementation, decided per
//!    agent *profile*, never per agent.
//! 2. **Plans** — first-match [`Rule`]s of ordered [`Step`]s with dwell times, widen/replace pools,
//!    timer basis, skip conditions (expressions over queue state, the clock and calendars), an
//!    external [`DecisionHook`] and a [`Fallback`]; JSON or Rust; or a [`RoutingPolicy`].
//! 3. **Rankers** — [`Ranker`]s: longest idle, least load, most spare capacity, round robin,
//!    proficiency, attributes, affinity, custom.
//! 4. **Queue disciplines** — [`Discipline`]: priority then age (with age adjustment), due time,
//!    LIFO, linear scoring, buckets; per-membership priority and delay.
//! 5. **Capacity** — [`Capacity`]: per-channel counts, a weighted shared budget, interruption rules.
//! 6. **Offers** — [`OfferPolicy`]: direct assignment or offers to one or many (first accept
//!    wins), expiry, decline limits; declined agents are never offered the same item again.
//! 7. **Timers** — step dwell, queue max wait (overflow / callback / voicemail / close), offer
//!    expiry, no-reply reassignment, agent-offline handling; fired by [`Router::tick`].
//! 8. **Calendars and presence** — custom status names mapped to per-channel availability
//!    ([`PresenceStatus`]); business hours as [`calendar`] schedules, read by expressions
//!    (`schedule("support").open`) and followed by agents ([`Agent::schedule`]: off shift they
//!    take no new work, at the shift's start they take waiting work — follow-the-sun) and by
//!    queues ([`Queue::hours`]: an after-hours action for the work waiting when they close).
//!
//! The condition language is [`expr`], bound to the router's items, agent profiles, queues and
//! calendars as described in [`condition`]; business hours are [`calendar`] schedules.
//!
//! Time never comes from the system clock: every operation takes `now` and first fires the
//! timers due by then (their events come first in its answer). Nothing here blocks or spawns;
//! the host calls [`Router::tick`] when [`Router::next_timer`] is due, and [`Router::sweep`] now
//! and then as a safety net.
//!
//! ```
//! use touchpoint::routing::*;
//! use touchpoint::model::{AgentId, ChannelKind, QueueId};
//! use chrono::{TimeDelta, TimeZone, Utc};
//!
//! let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
//! let support = QueueId::new("support").unwrap();
//! let router = Router::new(RouterConfig::default());
//! router.upsert_queue(Queue::new(support.clone())).unwrap();
//! for (name, level) in [("ana", 5), ("bo", 2)] {
//!     let agent = Agent::new(AgentId::new(name).unwrap())
//!         .with_skill("billing", level)
//!         .with_queue(support.clone())
//!         .with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 2)]))
//!         .with_status("online");
//!     router.upsert_agent(agent, t0).unwrap();
//! }
//!
//! // Billing chats need level 3: only ana qualifies.
//! let item = WorkItem::new(WorkItemId::from_u128(1), ChannelKind::WebChat, t0)
//!     .in_queue(support.clone())
//!     .with_skill("billing", 3);
//! let decision = router.submit(item, t0).unwrap();
//! assert_eq!(decision.outcome, Outcome::Assigned(AgentId::new("ana").unwrap()));
//!
//! // Level 6 nobody has: it waits, and the explanation says why.
//! let hard = WorkItem::new(WorkItemId::from_u128(2), ChannelKind::WebChat, t0)
//!     .in_queue(support.clone())
//!     .with_skill("billing", 6);
//! assert_eq!(router.submit(hard, t0).unwrap().outcome, Outcome::Queued(support.clone()));
//! let why = router.explain(WorkItemId::from_u128(2), t0).unwrap();
//! assert!(why.groups.iter().all(|g| matches!(&g.reason, Exclusion::Ineligible { term } if term == "skill billing >= 6")));
//! ```

pub mod calendar;
pub mod condition;
mod eligibility;
pub mod expr;
pub mod ledger;
mod model;
pub(crate) use model::conversation_priority;
mod ops;
mod plan;
mod queue;
mod rank;
mod relax;
mod state;

pub use condition::Condition;
pub use eligibility::{
    AgentProfile, AttrTest, Eligibility, EligibleFn, MAX_TERM_DEPTH, MAX_TERM_NODES, Membership, Term, eligible_fn,
};
pub use ledger::{Assignment, AssignmentLedger, Claim, ClaimOutcome, InMemoryLedger, Refusal};
pub use model::{
    Agent, Capacity, ChannelSet, Discipline, IdlePolicy, Interruption, ItemUpdate, LastAgent, MAX_DURATION_SECS,
    NoReplyPolicy, OfferPolicy, Presence, PresenceStatus, Queue, QueueHours, QueueMembership, TimeoutAction, WorkItem,
    WorkItemId,
};
pub use plan::{
    DecisionFallback, DecisionHook, Fallback, MAX_RULES, MAX_STEPS, Plan, PolicyChoice, Pool, PoolMode, PriorityChange,
    RoutingPolicy, Rule, SkipIf, Step, TimerBasis,
};
pub use queue::ItemQueue;
pub use rank::{AgentScore, AgentView, MAX_DYNAMIC_KEYS, MAX_RANK_KEYS, RankKey, Ranker, ScoreFn, SortOrder, score_fn};

use crate::Error;
use crate::model::{AgentId, Attributes, ChannelKind, QueueId};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use state::{Block, IState, State, StepRef};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// What happens to an agent's assigned work when the agent goes offline.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum OfflineAction {
    /// The agent keeps it.
    #[default]
    Keep,
    /// It goes back to routing (Rocket.Chat *forward*).
    Requeue,
    /// It is closed (Rocket.Chat *close*).
    Close,
}

/// The agent-offline policy: after `grace` in an offline status, apply `assigned`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflinePolicy {
    /// How long an agent may be offline before the action applies (0 = at once).
    #[serde(with = "model::secs", default)]
    pub grace: TimeDelta,
    /// What happens to their assigned work.
    #[serde(default)]
    pub assigned: OfflineAction,
}

impl Default for OfflinePolicy {
    fn default() -> Self {
        OfflinePolicy { grace: TimeDelta::zero(), assigned: OfflineAction::Keep }
    }
}

/// Router-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// Presence statuses by name. Defaults: `online` (all channels), `away` and `busy` (none,
    /// keep work), `offline` (gone).
    pub statuses: BTreeMap<String, PresenceStatus>,
    /// Ranker of steps that name none.
    pub default_ranker: Ranker,
    /// Queue of items that name none (created automatically).
    pub default_queue: QueueId,
    /// What happens to work of agents that go offline.
    pub offline: OfflinePolicy,
}

impl Default for RouterConfig {
    fn default() -> Self {
        let statuses = BTreeMap::from([
            ("online".to_owned(), PresenceStatus::available(ChannelSet::All)),
            ("away".to_owned(), PresenceStatus::unavailable()),
            ("busy".to_owned(), PresenceStatus::unavailable()),
            ("offline".to_owned(), PresenceStatus::offline()),
        ]);
        RouterConfig {
            statuses,
            default_ranker: Ranker::default(),
            default_queue: QueueId::new("default").expect("a literal key is valid"),
            offline: OfflinePolicy::default(),
        }
    }
}

/// Why an assigned item went back to routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequeueReason {
    /// The agent did not reply in time.
    NoReply,
    /// The agent went offline.
    AgentOffline,
    /// The agent was removed.
    AgentRemoved,
    /// The host put it back ([`Router::requeue`]).
    Released,
}

/// Something that happened in the router. Every operation returns the events it caused, in
/// order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RoutingEvent {
    /// The item is assigned to the agent.
    Assigned {
        /// Item.
        item: WorkItemId,
        /// Agent.
        agent: AgentId,
        /// Queue it waited in.
        queue: QueueId,
        /// How long it waited since `eligible_since`.
        #[serde(with = "model::secs")]
        wait: TimeDelta,
    },
    /// The item is offered to agents (capacity reserved) until `expires_at`.
    Offered {
        /// Item.
        item: WorkItemId,
        /// Agents.
        agents: Vec<AgentId>,
        /// When the offers expire (on a whole millisecond, the precision of the router's
        /// timers): an accept from then on is refused.
        expires_at: DateTime<Utc>,
    },
    /// The item waits in a queue (sent once per queue it enters; ask [`Router::explain`] why).
    Queued {
        /// Item.
        item: WorkItemId,
        /// Queue.
        queue: QueueId,
    },
    /// The agent declined the offer.
    Declined {
        /// Item.
        item: WorkItemId,
        /// Agent.
        agent: AgentId,
    },
    /// The offer to the agent expired.
    OfferExpired {
        /// Item.
        item: WorkItemId,
        /// Agent.
        agent: AgentId,
    },
    /// The offer to the agent was withdrawn (another agent accepted, or the agent left).
    OfferRescinded {
        /// Item.
        item: WorkItemId,
        /// Agent.
        agent: AgentId,
    },
    /// The item entered a plan step.
    StepEntered {
        /// Item.
        item: WorkItemId,
        /// Rule name (shared with the plan: no copy per event).
        #[serde(with = "model::arc_str")]
        rule: Arc<str>,
        /// Step index.
        step: usize,
    },
    /// The item skipped a step (its `skip_if` held).
    StepSkipped {
        /// Item.
        item: WorkItemId,
        /// Rule name (shared with the plan: no copy per event).
        #[serde(with = "model::arc_str")]
        rule: Arc<str>,
        /// Step index.
        step: usize,
    },
    /// An assigned item was taken back.
    Requeued {
        /// Item.
        item: WorkItemId,
        /// The agent it was taken from.
        agent: AgentId,
        /// Why.
        reason: RequeueReason,
    },
    /// The item moved to an overflow queue.
    Overflowed {
        /// Item.
        item: WorkItemId,
        /// From.
        from: QueueId,
        /// To.
        to: QueueId,
    },
    /// The host moved the item to another queue ([`Router::transfer`]).
    Transferred {
        /// Item.
        item: WorkItemId,
        /// The queue it left.
        from: QueueId,
        /// The queue it waits in now.
        to: QueueId,
        /// The agent (or bot) it was assigned to, who let it go; `None` if it was waiting or
        /// offered (the offers are rescinded, each an [`RoutingEvent::OfferRescinded`]).
        agent: Option<AgentId>,
        /// The agent it was transferred to ([`Router::transfer_to_agent`]; an `Offered` or
        /// `Assigned` event follows); `None` for a transfer to a queue.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<AgentId>,
    },
    /// The item left routing by policy (max wait, declines, plan end, agent offline).
    TimedOut {
        /// Item.
        item: WorkItemId,
        /// What the host should do.
        action: TimeoutAction,
        /// Why.
        reason: String,
    },
    /// The item was completed.
    Completed {
        /// Item.
        item: WorkItemId,
        /// Agent.
        agent: AgentId,
    },
    /// The item was withdrawn by the host.
    Withdrawn {
        /// Item.
        item: WorkItemId,
    },
    /// An agent's status changed.
    PresenceChanged {
        /// Agent.
        agent: AgentId,
        /// New status.
        status: String,
    },
    /// An agent's shift started or ended: the [schedule](Agent::schedule) they work by opened
    /// or closed (or was removed from the calendars). Their presence status is unchanged (no
    /// [`PresenceChanged`](RoutingEvent::PresenceChanged)); while off shift they take no new
    /// work.
    ShiftChanged {
        /// Agent.
        agent: AgentId,
        /// The schedule's name.
        schedule: String,
        /// Whether the agent is now on shift.
        on_shift: bool,
    },
    /// The item waits for the host's decision (a step with a [`DecisionHook`]): answer with
    /// [`Router::resolve_decision`] before `deadline`, or the hook's fallback applies.
    DecisionRequested {
        /// Item.
        item: WorkItemId,
        /// The request to answer (stale answers to earlier requests are refused).
        request: u64,
        /// Agents of the step that could take the item now, best first (at most 100).
        agents: Vec<AgentId>,
        /// When the fallback applies.
        deadline: DateTime<Utc>,
    },
    /// No answer came by the deadline; the hook's fallback applied (its events follow).
    DecisionExpired {
        /// Item.
        item: WorkItemId,
        /// The request that went unanswered.
        request: u64,
    },
    /// A human handed the item back to a bot ([`Router::return_to_bot`]); the bot's
    /// `Assigned` follows.
    ReturnedToBot {
        /// Item.
        item: WorkItemId,
        /// The human agent who let go of it.
        agent: AgentId,
        /// The bot that takes it.
        bot: AgentId,
    },
    /// A bot handed the item to routing. Also sent, with [`HandoffMode::Pass`], when a bot that
    /// kept an item it had offered ([`HandoffMode::Offer`]) is removed before a human took it:
    /// nobody serves the customer until one does.
    HandedOff {
        /// Item.
        item: WorkItemId,
        /// The bot.
        bot: AgentId,
        /// Whether the bot keeps it until a human has it.
        mode: HandoffMode,
    },
}

/// Where a submitted item ended up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Assigned to an agent.
    Assigned(AgentId),
    /// Offered to agents.
    Offered(Vec<AgentId>),
    /// Waiting in a queue.
    Queued(QueueId),
    /// Left routing at once by policy.
    TimedOut(TimeoutAction),
    /// Waiting for the host's decision ([`RoutingEvent::DecisionRequested`]).
    AwaitingDecision {
        /// The request to answer.
        request: u64,
        /// When the fallback applies.
        deadline: DateTime<Utc>,
    },
}

/// The answer to [`Router::submit`] (and [`Router::handoff`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingDecision {
    /// The item.
    pub item: WorkItemId,
    /// Where it is.
    pub outcome: Outcome,
    /// The rule that classified it (`None` = the implicit default step or a policy), shared
    /// with the plan.
    #[serde(with = "model::arc_str::option", default)]
    pub rule: Option<Arc<str>>,
    /// The step it is at.
    pub step: Option<usize>,
    /// Why, in words when shown (`decision.reason.to_string()`).
    pub reason: DecisionReason,
    /// Everything that happened, in order.
    pub events: Vec<RoutingEvent>,
}

/// Why a decision came out as it did. Kept compact on the routing path and written out in
/// words only when shown ([`Display`](std::fmt::Display)) or serialized (as a string).
///
/// ```
/// use touchpoint::routing::DecisionReason;
/// let why = DecisionReason::from("waiting for an agent".to_owned());
/// assert_eq!(why.to_string(), "waiting for an agent");
/// ```
#[derive(Debug, Clone)]
pub struct DecisionReason(Why);

#[derive(Debug, Clone)]
enum Why {
    /// Assigned to `agent` at the step `step`.
    Assigned { agent: AgentId, step: StepText },
    /// Anything else, in words.
    Text(String),
}

/// A step's label: a fixed text or one shared with the installed plan.
#[derive(Debug, Clone)]
pub(crate) enum StepText {
    Static(&'static str),
    Shared(Arc<str>),
}

impl std::fmt::Display for StepText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepText::Static(s) => f.write_str(s),
            StepText::Shared(s) => f.write_str(s),
        }
    }
}

impl From<String> for DecisionReason {
    fn from(text: String) -> Self {
        DecisionReason(Why::Text(text))
    }
}

impl std::fmt::Display for DecisionReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Why::Assigned { agent, step } => write!(f, "assigned to {} at {step}", agent.as_str()),
            Why::Text(t) => f.write_str(t),
        }
    }
}

impl PartialEq for DecisionReason {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Serialize for DecisionReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DecisionReason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(DecisionReason::from)
    }
}

/// How a bot hands an item to humans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoffMode {
    /// The bot lets go at once (pass control).
    Pass,
    /// The bot keeps the item (and its capacity) until a human is assigned (offer control).
    Offer,
}

/// Where an item is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// In a queue.
    Waiting,
    /// Offered to agents.
    Offered(Vec<AgentId>),
    /// Assigned to an agent.
    Assigned(AgentId),
    /// Waiting for the host's decision.
    AwaitingDecision {
        /// The request to answer.
        request: u64,
        /// When the fallback applies.
        deadline: DateTime<Utc>,
    },
}

/// Who controls an item's conversation (bot/human handoff).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemControl {
    /// Nobody: routing.
    Routing,
    /// A bot has it.
    Bot(AgentId),
    /// A bot still has it while routing looks for a human.
    BotOffering(AgentId),
    /// A human agent has it.
    Human(AgentId),
}

/// A snapshot of one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemStatus {
    /// The item (with attributes merged from handoffs).
    pub item: WorkItem,
    /// Where it is.
    pub state: ItemState,
    /// Who controls it.
    pub control: ItemControl,
    /// The queue it waits (or waited) in.
    pub queue: QueueId,
    /// Rule name.
    pub rule: Option<String>,
    /// Step index.
    pub step: Option<usize>,
    /// Current priority (after step changes).
    pub priority: i32,
    /// Declines and expiries so far.
    pub declines: u32,
}

/// A snapshot of one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The agent.
    pub id: AgentId,
    /// Whether the agent is a bot.
    pub is_bot: bool,
    /// Status name.
    pub status: String,
    /// Items held (offered and assigned).
    pub load: u32,
    /// Items held per channel.
    pub channel_load: BTreeMap<ChannelKind, u32>,
    /// Shared budget used.
    pub budget_used: u32,
    /// Items assigned.
    pub assigned: Vec<WorkItemId>,
    /// Items offered.
    pub offered: Vec<WorkItemId>,
}

/// Live statistics of a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Items waiting.
    pub waiting: usize,
    /// Estimated wait: mean of the last `ewt_samples` waits (`None` before the first); time an
    /// agent held an item before giving it back (requeue, handoff) is not wait.
    #[serde(with = "model::secs::option")]
    pub estimated_wait: Option<TimeDelta>,
}

/// Why an agent is not taking an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Exclusion {
    /// Not in the current step's pool.
    NotInPool,
    /// An eligibility term excludes the profile.
    Ineligible {
        /// The excluding term, in words.
        term: String,
    },
    /// The agent declined (or let expire, or did not reply to) this item before.
    DeclinedBefore,
    /// The agent's queue membership delays this item until then.
    QueueDelay {
        /// When the item becomes eligible for the agent.
        until: DateTime<Utc>,
    },
    /// The agent's status does not take this channel.
    Presence {
        /// The status.
        status: String,
    },
    /// The agent is off shift: the [schedule](Agent::schedule) they work by is closed (or not
    /// in the router's calendars any more).
    OffShift {
        /// The schedule's name.
        schedule: String,
    },
    /// The agent's limit on the channel is reached.
    NoCapacity {
        /// The channel.
        channel: ChannelKind,
    },
    /// The agent's shared budget has no room for the item's cost.
    NoBudget,
    /// An interruption rule blocks the channel while the agent holds work on another.
    Interrupted {
        /// The channel of the work the agent holds.
        holding: ChannelKind,
    },
    /// The item is offered to (or assigned to) this agent right now.
    Holding,
    /// Nothing excludes the agent (the item will go to them or an equal on the next decision).
    Available,
}

/// Agents excluded for one reason, grouped by profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExclusionGroup {
    /// The reason.
    pub reason: Exclusion,
    /// Agents (at most 20 listed).
    pub agents: Vec<AgentId>,
    /// How many agents in all.
    pub count: usize,
}

/// Why an item is where it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The item's snapshot.
    pub status: ItemStatus,
    /// The step, in words.
    pub step: String,
    /// The last decision, in words.
    pub reason: String,
    /// Every agent, grouped by profile and reason.
    pub groups: Vec<ExclusionGroup>,
}

/// The routing engine: agents, queues, plans, offers and timers behind one lock.
///
/// Every operation is atomic: capacity checks and claims happen under the same lock, so an
/// agent is never over capacity and an item never assigned twice, whatever the number of
/// threads. Operations that fail change nothing.
pub struct Router {
    state: Mutex<State>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("Router")
            .field("agents", &s.agent_ids.len())
            .field("items", &s.item_ids.len())
            .field("queues", &s.queues.len())
            .field("profiles", &s.profiles.len())
            .finish()
    }
}

impl Router {
    /// A router with no agents, the default queue, and an empty plan.
    pub fn new(config: RouterConfig) -> Self {
        Router { state: Mutex::new(State::new(config)) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn finish(s: &mut State, now: DateTime<Utc>) -> Vec<RoutingEvent> {
        s.drain(now);
        // What the operation made due at once (a zero max wait, a zero dwell) happens in it.
        s.fire_timers(now);
        s.drain(now);
        std::mem::take(&mut s.events)
    }

    /// Replaces the plan (validated; every queue it names — pools, fallbacks, `queue` eligibility
    /// terms — must exist; a refused plan changes nothing, and fires no timers). Waiting items
    /// are classified again from the first rule; offered and assigned items when they come back.
    /// Items an overflow placed in their queue (max wait, after hours, declines, a decision's
    /// fallback) stay there, their max wait running on: the new plan does not send them back to
    /// the queue they left to get its action again.
    ///
    /// Every expression in the plan is compiled here, once, against the router's attributes,
    /// functions and calendars; a bad one is an [`Error::Expression`] whose message starts with
    /// its path (`rules[1].steps[0].eligibility: cannot compare … at 1:15`), and nothing changes.
    pub fn set_plan(&self, mut plan: Plan, now: DateTime<Utc>) -> crate::Result<Vec<RoutingEvent>> {
        plan.validate()?;
        let mut s = self.lock();
        condition::compile_plan(&mut plan, &s.schemas)?;
        for (r, rule) in plan.rules.iter().enumerate() {
            for (k, step) in rule.steps.iter().enumerate() {
                if let Some(DecisionHook { fallback: DecisionFallback::Queue(q), .. }) = &step.decision
                    && !s.queues.contains_key(q)
                {
                    return Err(Error::invalid(
                        "plan",
                        format!("rules[{r}].steps[{k}].decision.fallback: unknown queue {q:?}"),
                    ));
                }
            }
        }
        for (r, rule) in plan.rules.iter().enumerate() {
            let known = |q: &QueueId| s.queues.contains_key(q);
            for (k, step) in rule.steps.iter().enumerate() {
                if let Some(q) = step.eligibility.unknown_queue(&known) {
                    return Err(Error::invalid(
                        "plan",
                        format!("rules[{r}].steps[{k}].eligibility: unknown queue {q:?}"),
                    ));
                }
                for (q, id) in step.pool.queues.iter().enumerate() {
                    if !s.queues.contains_key(id) {
                        return Err(Error::invalid(
                            "plan",
                            format!("rules[{r}].steps[{k}].pool.queues[{q}]: unknown queue {id:?}"),
                        ));
                    }
                }
            }
            if let Fallback::Overflow(q) = &rule.fallback
                && !s.queues.contains_key(q)
            {
                return Err(Error::invalid("plan", format!("rules[{r}].fallback: unknown queue {q:?}")));
            }
        }
        // Refused plans change nothing: timers fire only once the plan is known to be good.
        s.fire_timers(now);
        s.install_plan(plan);
        let waiting: Vec<u32> = (0..s.items.len() as u32)
            .filter(|i| matches!(s.items[*i as usize].as_ref().map(|x| &x.state), Some(IState::Waiting { .. })))
            .collect();
        for i in waiting {
            // An item an overflow placed in its queue stays there, waiting as it was
            // (`State::reclassify`): not sent back to the queue it left.
            if s.items[i as usize].as_ref().is_some_and(|x| x.item.moved) {
                s.reclassify(i, now);
                continue;
            }
            s.unqueue(i);
            if s.classify(i, now) {
                s.route(i, now);
            }
        }
        s.prune_retired_plans();
        Ok(Self::finish(&mut s, now))
    }

    /// Installs (or removes) a fully custom policy; items submitted while one is installed are
    /// decided by it.
    pub fn set_policy(&self, policy: Option<Arc<dyn RoutingPolicy>>) {
        self.lock().policy = policy;
    }

    /// Creates or updates a queue.
    ///
    /// Refused, changing nothing: an overflow into a queue the router does not have, hours
    /// naming a schedule its calendars do not hold ([`Error::NotFound`]), and a queue that would
    /// close a ring of overflows passing an item on without a wait ([`Error::InvalidInput`]).
    /// Hours that change are checked at the `now` of the next call (a timer due at once).
    pub fn upsert_queue(&self, mut queue: Queue) -> crate::Result<()> {
        queue.validate()?;
        let mut s = self.lock();
        condition::compile_queue(&mut queue, &s.schemas)?;
        let actions =
            [Some(&queue.on_max_wait), Some(&queue.offer.on_max_declines), queue.hours.as_ref().map(|h| &h.action)];
        for action in actions.into_iter().flatten() {
            if let TimeoutAction::Overflow(q) = action
                && !s.queues.contains_key(q)
            {
                return Err(Error::not_found("queue", q));
            }
        }
        if let Some(h) = &queue.hours {
            s.calendars.schedule(&h.schedule)?;
        }
        if overflow_ring(&queue, |q| s.queues.get(q).map(|slot| &slot.config)) {
            return Err(Error::invalid(
                "queue.max_wait",
                "queues overflowing into each other in a ring need a wait above zero on at least one of them",
            ));
        }
        s.upsert_queue_slot(queue);
        Ok(())
    }

    /// Adds or updates an agent. An agent whose new capacity is below its current load keeps
    /// its work and receives nothing new until under its limits again; its open offers that no
    /// longer fit — over a limit, or on a channel a new interruption rule blocks while the agent
    /// holds other work — are withdrawn ([`RoutingEvent::OfferRescinded`], not a decline).
    ///
    /// An agent that names a [`schedule`](Agent::schedule) the router's calendars do not hold
    /// is refused with [`Error::NotFound`] (entity `schedule`) and nothing changes. Updating a
    /// known agent so that its shift starts or ends (another schedule, none any more) is a
    /// [`RoutingEvent::ShiftChanged`]; a new agent's shift state is no event.
    pub fn upsert_agent(&self, agent: Agent, now: DateTime<Utc>) -> crate::Result<Vec<RoutingEvent>> {
        agent.validate()?;
        let mut s = self.lock();
        s.fire_timers(now);
        for m in &agent.queues {
            if !s.queues.contains_key(&m.queue) {
                return Err(Error::not_found("queue", &m.queue));
            }
        }
        let name = agent.presence.status.clone();
        let status = agent
            .presence
            .statuses
            .get(&name)
            .or_else(|| s.config.statuses.get(&name))
            .cloned()
            .ok_or_else(|| Error::invalid("agent.presence.status", format!("unknown presence status {name:?}")))?;
        if let Some(schedule) = &agent.schedule {
            s.calendars.schedule(schedule)?;
        }
        let offline = status.offline;
        // The schedule the shift change is of: the new one, or the one the agent no longer has.
        let previous = s
            .agent_ids
            .get(&agent.id)
            .and_then(|a| s.agents[*a as usize].as_ref())
            .and_then(|x| x.agent.schedule.clone());
        let schedule = agent.schedule.clone().or(previous);
        // A known agent's change of presence through an upsert is a presence change like
        // `set_presence`'s: an event, and the offline policy when it goes offline.
        let (a, was_offline, shift_changed) = s.upsert_agent(agent, status, now);
        s.note_activity(a, now);
        if was_offline.is_some() {
            let agent = s.agent_id(a);
            s.events.push(RoutingEvent::PresenceChanged { agent, status: name });
        }
        if shift_changed && let Some(schedule) = schedule {
            let agent = s.agent_id(a);
            let on_shift = s.agents[a as usize].as_ref().is_some_and(|x| x.on_shift);
            s.events.push(RoutingEvent::ShiftChanged { agent, schedule, on_shift });
        }
        let off_shift = s.agents[a as usize].as_ref().is_some_and(|x| !x.on_shift);
        match (offline, was_offline) {
            (true, Some(false)) => s.went_offline(a, now),
            (true, _) => s.rescind_offers_of(a, now),
            // Off shift (the update ended the shift, say): no offer stays open, as at a shift end.
            (false, _) if off_shift => s.rescind_offers_of(a, now),
            // Capacity lowered below what it holds, or a new interruption rule: open offers that
            // no longer fit are withdrawn.
            (false, _) => {
                s.rescind_offers_that_no_longer_fit(a, now);
                s.freed.push(a);
            }
        }
        Ok(Self::finish(&mut s, now))
    }

    /// Removes an agent: their offers are withdrawn and their assigned work goes back to routing.
    /// A bot that kept items it offered to humans lets go of them ([`RoutingEvent::HandedOff`]
    /// with [`HandoffMode::Pass`]); their offers to humans stand.
    pub fn remove_agent(&self, agent: &AgentId, now: DateTime<Utc>) -> crate::Result<Vec<RoutingEvent>> {
        let mut s = self.lock();
        s.fire_timers(now);
        let a = *s.agent_ids.get(agent).ok_or_else(|| Error::not_found("agent", agent))?;
        s.remove_agent(a, now);
        Ok(Self::finish(&mut s, now))
    }

    /// Sets an agent's status by name (the agent's own statuses first, then the router's).
    /// Going available gives them waiting work; going offline withdraws their offers and
    /// schedules the [`OfflinePolicy`].
    pub fn set_presence(&self, agent: &AgentId, status: &str, now: DateTime<Utc>) -> crate::Result<Vec<RoutingEvent>> {
        let mut s = self.lock();
        s.fire_timers(now);
        let a = *s.agent_ids.get(agent).ok_or_else(|| Error::not_found("agent", agent))?;
        s.presence(a, status, now)?;
        s.note_activity(a, now);
        Ok(Self::finish(&mut s, now))
    }

    /// Routes a new item.
    pub fn submit(&self, item: WorkItem, now: DateTime<Utc>) -> crate::Result<RoutingDecision> {
        item.validate()?;
        let mut s = self.lock();
        s.fire_timers(now);
        let id = item.id;
        // One look-up of the id: refused if taken, else registered once the queue is known.
        let State { item_ids, queues, config, free_items, items, .. } = &mut *s;
        let std::collections::hash_map::Entry::Vacant(entry) = item_ids.entry(id) else {
            return Err(Error::Conflict(format!("work item {id} is already being routed")));
        };
        let queue = item.queue.as_ref().unwrap_or(&config.default_queue);
        let Some(qi) = queues.idx(queue) else {
            return Err(Error::not_found("queue", queue));
        };
        let queue = queue.clone();
        let i = state::take_item_index(free_items, items);
        entry.insert(i);
        s.admit(i, item, queue, qi, now);
        let events = Self::finish(&mut s, now);
        let queue = s.queues.at(qi).map(|q| &q.config.id).unwrap_or(&s.config.default_queue);
        Ok(decision(&s, id, i, queue, events, now))
    }

    fn item_index(s: &State, item: WorkItemId) -> crate::Result<u32> {
        s.item_ids.get(&item).copied().ok_or_else(|| Error::not_found("work item", item))
    }

    /// Refuses `findings` that would take item `i` past the 256 attributes an item may have
    /// (a key it has already is replaced, not added).
    fn check_findings(s: &State, i: u32, findings: &Attributes) -> crate::Result<()> {
        let Some(x) = s.items[i as usize].as_ref() else { return Ok(()) };
        let have = &x.item.work.attributes;
        if have.len() + findings.keys().filter(|k| !have.contains_key(*k)).count() > model::MAX_ITEM_ATTRIBUTES {
            return Err(Error::invalid("findings", "at most 256 attributes, the item's and the findings' together"));
        }
        Ok(())
    }

    fn agent_index(s: &State, agent: &AgentId) -> crate::Result<u32> {
        s.agent_ids.get(agent).copied().ok_or_else(|| Error::not_found("agent", agent))
    }

    /// An agent accepts an offer. The first accept wins; the other offers of the item are
    /// rescinded. Accepting an offer that is no longer open is refused.
    pub fn accept(&self, item: WorkItemId, agent: &AgentId, now: DateTime<Utc>) -> crate::Result<Vec<RoutingEvent>> {
        let mut s = self.lock();
        s.fire_timers(now);
        let i = Self::item_index(&s, item)?;
        let a = Self::agent_index(&s, agent)?;
        s.accept(i, a, now)?;
        s.note_activity(a, now);
        Ok(Self::finish(&mut s, now))
    }

    /// An agent declines an offer: they are never offered this item again; the item goes on to
    /// other agents, or leaves routing after the queue's `max_declines`.
    pub fn decline(&self, item: WorkItemId, agent: &AgentId, now: DateTime<Utc>) -> crate::Result<Vec<RoutingEvent>> {
        let mut s = self.lock();
        s.fire_timers(now);
        let i = Self::item_index(&s, item)?;
        let a = Self::agent_index(&s, agent)?;
        s.decline(i, a, false, now)?;
        s.note_activity(a, now);
        Ok(Self::finish(&mut s, now))
    }

    /// Completes an assigned item: the agent's capacity frees and they get the best waiting
    /// item across all their queues.
    pub fn complete(&self, item: WorkItemId, now: DateTime<Utc>) -> crate::Result<Vec<RoutingEvent>> {
        let mut s = self.lock();
        s.fire_timers(now);
        let i = Self::item_index(&s, item)?;
        let agent = match s.items[i as usize].as_ref().map(|x| &x.state) {
            Some(IState::Assigned { agent, .. }) => Some(*agent),
            _ => None,
        };
        s.complete(i, now)?;
        if let Some(a) = agent {
            s.note_activity(a, now);
        }
        Ok(Self::finish(&mut s, now))
    }

    /// Takes an assigned item back from its agent and routes it again (original wait kept).
    /// With `exclude_agent` the agent is not offered it again.
    pub fn requeue(
        &self,
        item: WorkItemId,
        exclude_agent: bool,
        now: DateTime<Utc>,
    ) -> crate::Result<Vec<RoutingEvent>> {
        let mut s = self.lock();
        s.fire_timers(now);
        let i = Self::item_index(&s, item)?;
        let Some(IState::Assigned { agent, .. }) = s.items[i as usize].as_ref().map(|x| x.state.clone()) else {
            return Err(Error::Refused(format!("work item {item} is not assigned")));
        };
        let exclude = exclude_agent.then(|| s.agent_id(agent));
        s.requeue(i, RequeueReason::Released, exclude, now);
        Ok(Self::finish(&mut s, now))
    }

    /// Transfers an item to queue `to`: an agent sends the customer on ("billing will take
    /// it from here"), or a supervisor moves waiting work. Returns the router's events: its
    /// offers rescinded (each a [`RoutingEvent::OfferRescinded`]), a
    /// [`RoutingEvent::Transferred`], then what routing it again did.
    ///
    /// Whoever holds the item lets go: its offers are rescinded, and the agent it was assigned
    /// to gets the capacity back and is not offered it again. An open decision request of the
    /// host about it is closed ([`RoutingEvent::DecisionExpired`]; an answer is refused). The
    /// item's queue becomes `to`; its preferred and last agent are dropped (they were chosen
    /// for the old queue). It waits in `to` for any member of that queue, as an overflow does
    /// (the plan's steps and their queues no longer apply), and is routed at once, so a member
    /// free now takes it in this call. Its place in the queue and the delays on the queue's
    /// members count from its original wait; the queue's max wait counts from the transfer
    /// (also when `to` is the queue it was in). A bot serving the customer while humans are
    /// offered the item (a handoff in offer mode) keeps serving until a human takes it.
    ///
    /// Refused, changing nothing: an unknown item or queue ([`Error::NotFound`]).
    ///
    /// ```
    /// # use chrono::{TimeZone, Utc};
    /// # use touchpoint::model::{AgentId, ChannelKind, QueueId};
    /// # use touchpoint::routing::*;
    /// let now = Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap();
    /// let (support, billing) = (QueueId::new("support")?, QueueId::new("billing")?);
    /// let router = Router::new(RouterConfig::default());
    /// router.upsert_queue(Queue::new(support.clone()))?;
    /// router.upsert_queue(Queue::new(billing.clone()))?;
    /// for (name, queue) in [("ana", &support), ("bo", &billing)] {
    ///     let agent = Agent::new(AgentId::new(name)?)
    ///         .with_queue(queue.clone())
    ///         .with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 1)]))
    ///         .with_status("online");
    ///     router.upsert_agent(agent, now)?;
    /// }
    /// let item = WorkItemId::from_u128(1);
    /// router.submit(WorkItem::new(item, ChannelKind::WebChat, now).in_queue(support.clone()), now)?;
    /// assert_eq!(router.item(item).unwrap().state, ItemState::Assigned(AgentId::new("ana")?));
    /// // Ana sends the customer to billing: Bo takes it, and Ana is free again.
    /// let events = router.transfer(item, &billing, now)?;
    /// assert_eq!(
    ///     events[0],
    ///     RoutingEvent::Transferred {
    ///         item,
    ///         from: support,
    ///         to: billing,
    ///         agent: Some(AgentId::new("ana")?),
    ///         target: None
    ///     }
    /// );
    /// assert_eq!(router.item(item).unwrap().state, ItemState::Assigned(AgentId::new("bo")?));
    /// assert_eq!(router.agent(&AgentId::new("ana")?).unwrap().load, 0);
    /// # Ok::<(), touchpoint::Error>(())
    /// ```
    pub fn transfer(&self, item: WorkItemId, to: &QueueId, now: DateTime<Utc>) -> crate::Result<Vec<RoutingEvent>> {
        let mut s = self.lock();
        s.fire_timers(now);
        let i = Self::item_index(&s, item)?;
        if !s.queues.contains_key(to) {
            return Err(Error::not_found("queue", to));
        }
        s.transfer(i, to.clone(), now);
        Ok(Self::finish(&mut s, now))
    }

    /// Transfers an item to one agent: a colleague an agent hands the customer to, or a
    /// supervisor's direct assignment. Returns the router's events: its offers rescinded, a
    /// [`RoutingEvent::Transferred`] naming the target, then the offer to them or the
    /// assignment.
    ///
    /// Whoever holds the item lets go, as for [`Router::transfer`]. The item stays in its
    /// queue, and the target need not be a member of it, nor have its skills: the choice is
    /// the host's. An earlier decline by the target does not stand in the way. When the queue
    /// offers work the target is offered it, and a decline or an expired offer is like any
    /// other: it counts toward the queue's `max_declines`, and the item goes back to routing
    /// in its queue without them (or gets `on_max_declines`).
    ///
    /// Refused, changing nothing: an unknown item or agent ([`Error::NotFound`]); a target who
    /// cannot take it now (offline or in a status closed to its channel, at capacity, held by
    /// an interruption rule), who has it already, or who holds an offer of it (they can accept
    /// that) ([`Error::Refused`]).
    ///
    /// ```
    /// # use chrono::{TimeZone, Utc};
    /// # use touchpoint::model::{AgentId, ChannelKind, QueueId};
    /// # use touchpoint::routing::*;
    /// let now = Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap();
    /// let router = Router::new(RouterConfig::default());
    /// for name in ["ana", "cy"] {
    ///     let agent = Agent::new(AgentId::new(name)?)
    ///         .with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 1)]))
    ///         .with_status("online");
    ///     router.upsert_agent(agent, now)?;
    /// }
    /// let item = WorkItemId::from_u128(1);
    /// router.submit(WorkItem::new(item, ChannelKind::WebChat, now), now)?;
    /// let (ana, cy) = (AgentId::new("ana")?, AgentId::new("cy")?);
    /// assert_eq!(router.item(item).unwrap().state, ItemState::Assigned(ana.clone()));
    /// // Ana hands the customer to Cy, who knows the case.
    /// router.transfer_to_agent(item, &cy, now)?;
    /// assert_eq!(router.item(item).unwrap().state, ItemState::Assigned(cy.clone()));
    /// // Cy is at capacity now: a transfer to her of another chat is refused.
    /// let other = WorkItemId::from_u128(2);
    /// router.submit(WorkItem::new(other, ChannelKind::WebChat, now), now)?;
    /// assert!(matches!(router.transfer_to_agent(other, &cy, now), Err(touchpoint::Error::Refused(_))));
    /// # Ok::<(), touchpoint::Error>(())
    /// ```
    pub fn transfer_to_agent(
        &self,
        item: WorkItemId,
        agent: &AgentId,
        now: DateTime<Utc>,
    ) -> crate::Result<Vec<RoutingEvent>> {
        let mut s = self.lock();
        s.fire_timers(now);
        let i = Self::item_index(&s, item)?;
        let a = Self::agent_index(&s, agent)?;
        s.transfer_to_agent(i, a, now)?;
        Ok(Self::finish(&mut s, now))
    }

    /// Withdraws an item in any state (the customer left, the host closed it).
    pub fn withdraw(&self, item: WorkItemId, now: DateTime<Utc>) -> crate::Result<Vec<RoutingEvent>> {
        let mut s = self.lock();
        s.fire_timers(now);
        let i = Self::item_index(&s, item)?;
        s.withdraw(i, now);
        Ok(Self::finish(&mut s, now))
    }

    /// Changes an item the router holds: its priority (a supervisor escalates a waiting
    /// conversation), age adjustment, due time, language, skills or attributes; see
    /// [`ItemUpdate`]. Returns the router's events.
    ///
    /// A waiting item takes its new place in its queue at once. It keeps its rule and plan
    /// step (and the time it has spent there) while it still matches that rule first, and its
    /// eligibility at that step is computed again; when another rule matches first now, it is
    /// classified again from that rule's first step. An item an overflow placed in its queue
    /// stays there. Either way it is routed again, so an agent who can take it now gets it.
    /// Offered and assigned items keep their place: the change counts when they are routed
    /// again (a requeue, a handoff).
    ///
    /// Refused, changing nothing: an unknown item ([`Error::NotFound`]); a result that would
    /// not be accepted by [`Router::submit`] (too many skills or attributes, an age adjustment
    /// beyond 400 days: [`Error::InvalidInput`]).
    ///
    /// ```
    /// # use chrono::{TimeZone, Utc};
    /// # use touchpoint::model::{AgentId, ChannelKind};
    /// # use touchpoint::routing::*;
    /// let now = Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap();
    /// let router = Router::new(RouterConfig::default());
    /// let (first, second) = (WorkItemId::from_u128(1), WorkItemId::from_u128(2));
    /// router.submit(WorkItem::new(first, ChannelKind::WebChat, now), now)?;
    /// router.submit(WorkItem::new(second, ChannelKind::WebChat, now), now)?;
    /// // The second customer is escalated: the first agent free takes it.
    /// router.update_item(second, ItemUpdate::new().priority(5), now)?;
    /// let ana = Agent::new(AgentId::new("ana")?)
    ///     .with_capacity(Capacity::per_channel([(ChannelKind::WebChat, 1)]))
    ///     .with_status("online");
    /// router.upsert_agent(ana, now)?;
    /// assert_eq!(router.item(second).unwrap().state, ItemState::Assigned(AgentId::new("ana")?));
    /// assert_eq!(router.item(first).unwrap().state, ItemState::Waiting);
    /// # Ok::<(), touchpoint::Error>(())
    /// ```
    pub fn update_item(
        &self,
        item: WorkItemId,
        update: ItemUpdate,
        now: DateTime<Utc>,
    ) -> crate::Result<Vec<RoutingEvent>> {
        let mut s = self.lock();
        s.fire_timers(now);
        let i = Self::item_index(&s, item)?;
        let Some(x) = s.items[i as usize].as_ref() else { return Err(Error::not_found("work item", item)) };
        let work = update.applied_to(&x.item.work);
        work.validate()?;
        // The item's own priority again (a form saved whole) leaves what plan steps made of it.
        let priority = update.priority.filter(|p| *p != x.item.work.priority);
        s.update_item(i, work, priority, now);
        Ok(Self::finish(&mut s, now))
    }

    /// Records that `agent`, who has the item, replied: the queue's no-reply timer stops.
    /// Returns the events of timers that fell due first. Refused, changing nothing, when the
    /// item is not assigned to `agent` (a colleague's or supervisor's message is no reply of
    /// the agent who must answer); an unknown item is [`Error::NotFound`].
    pub fn note_agent_reply(
        &self,
        item: WorkItemId,
        agent: &AgentId,
        now: DateTime<Utc>,
    ) -> crate::Result<Vec<RoutingEvent>> {
        let mut s = self.lock();
        s.fire_timers(now);
        let i = Self::item_index(&s, item)?;
        let a = match s.items[i as usize].as_ref().map(|x| &x.state) {
            Some(IState::Assigned { agent: a, .. }) if s.agent_ids.get(agent) == Some(a) => *a,
            Some(IState::Assigned { .. }) => {
                return Err(Error::Refused(format!("work item {item} is assigned to another agent than {agent}")));
            }
            _ => return Err(Error::Refused(format!("work item {item} is not assigned"))),
        };
        let epoch = s.next_seq();
        if let Some(IState::Assigned { epoch: g, .. }) = s.items[i as usize].as_mut().map(|x| &mut x.state) {
            *g = epoch;
        }
        s.note_activity(a, now);
        Ok(Self::finish(&mut s, now))
    }

    /// Records activity of an agent that the router does not see otherwise (typing, opening a
    /// conversation, a heartbeat of the agent's desktop), for the idle rule
    /// ([`set_idle_policy`](Self::set_idle_policy)). Unknown agents are [`Error::NotFound`].
    pub fn note_agent_activity(&self, agent: &AgentId, now: DateTime<Utc>) -> crate::Result<Vec<RoutingEvent>> {
        let mut s = self.lock();
        s.fire_timers(now);
        let a = Self::agent_index(&s, agent)?;
        s.note_activity(a, now);
        Ok(Self::finish(&mut s, now))
    }

    /// Installs (or with `None` removes) the idle rule: see [`IdlePolicy`]. Each agent's idle
    /// time counts from its last activity, also activity before the rule was installed.
    ///
    /// Refused, changing nothing ([`Error::InvalidInput`]): `after` not positive or longer
    /// than 400 days, and a status the router's catalogue ([`RouterConfig::statuses`]) does
    /// not have, that takes new work (the rule exists to stop new work) or that is offline (an
    /// idle agent keeps their work).
    pub fn set_idle_policy(&self, policy: Option<IdlePolicy>) -> crate::Result<()> {
        let mut s = self.lock();
        if let Some(p) = &policy {
            if p.after <= TimeDelta::zero() || p.after > TimeDelta::days(400) {
                return Err(Error::invalid("idle.after", "must be positive and at most 400 days"));
            }
            match s.config.statuses.get(&p.status) {
                None => {
                    return Err(Error::invalid("idle.status", format!("unknown presence status {:?}", p.status)));
                }
                Some(st) if st.offline => {
                    return Err(Error::invalid(
                        "idle.status",
                        format!(
                            "status {:?} is offline: an idle agent keeps their work (use one such as away)",
                            p.status
                        ),
                    ));
                }
                Some(st) if state::takes_work(st) => {
                    return Err(Error::invalid(
                        "idle.status",
                        format!("status {:?} takes new work; an idle agent must not", p.status),
                    ));
                }
                Some(_) => {}
            }
        }
        s.set_idle(policy);
        Ok(())
    }

    /// A bot hands its item to humans: `findings` are merged into the item's attributes, the
    /// item is classified again and routed (the bot is never chosen again for it). The time the
    /// bot served the customer is no wait: the queue's max wait counts from the handoff. With
    /// [`HandoffMode::Offer`] the bot keeps the item through overflows until a human has it.
    pub fn handoff(
        &self,
        item: WorkItemId,
        findings: Attributes,
        mode: HandoffMode,
        now: DateTime<Utc>,
    ) -> crate::Result<RoutingDecision> {
        let mut s = self.lock();
        s.fire_timers(now);
        let i = Self::item_index(&s, item)?;
        Self::check_findings(&s, i, &findings)?;
        let Some(IState::Assigned { agent: b, .. }) = s.items[i as usize].as_ref().map(|x| x.state.clone()) else {
            return Err(Error::Refused(format!("work item {item} is not assigned")));
        };
        let Some(bot) = s.agents[b as usize].as_ref().filter(|a| a.agent.is_bot).map(|a| a.agent.id.clone()) else {
            return Err(Error::Refused(format!("work item {item} is assigned to a human, not a bot")));
        };
        let chan = s.items[i as usize].as_ref().map_or(0, |x| x.chan);
        if mode == HandoffMode::Pass {
            s.unhold(b, i, chan, now);
            s.freed.push(b);
        }
        if let Some(x) = s.items[i as usize].as_mut() {
            x.item.work.attributes.extend(findings);
            x.item.excluded.push(bot.clone());
            x.item.unassigned(state::ms(now));
            x.state = IState::Moving;
            x.item.bot_hold = (mode == HandoffMode::Offer).then_some(b);
            // Classified again with the findings, wherever an overflow had put it.
            x.item.moved = false;
            x.item.hours_moved = false;
        }
        // The time the bot served the customer is no wait: the queue's max wait (and its
        // `Queued` announcement) start again at the handoff.
        s.enter_wait_queue(i, None, now);
        s.events.push(RoutingEvent::HandedOff { item, bot, mode });
        s.note_activity(b, now);
        if s.classify(i, now) {
            s.route_back(i, now);
        }
        let queue =
            s.items[i as usize].as_ref().map(|x| x.queue.clone()).unwrap_or_else(|| s.config.default_queue.clone());
        let events = Self::finish(&mut s, now);
        Ok(decision(&s, item, i, &queue, events, now))
    }

    /// A human hands their item back to a bot (human back to bot: the bot runs a survey, an
    /// automated flow, or waits for the customer's next step): `findings` (the human's notes)
    /// are merged into the item's attributes, the human's capacity frees (they get the best
    /// waiting item across their queues), and `bot` gets the item at once. A bot that handed the
    /// item off before may take it again, and may hand it off again later.
    ///
    /// Refused, changing nothing, when the item is not assigned to a human or when the bot
    /// cannot take it now (its presence, capacity, or an interruption rule);
    /// [`Error::InvalidInput`] when `bot` is a human agent; [`Error::NotFound`] for an unknown
    /// item or agent.
    ///
    /// ```
    /// use touchpoint::routing::*;
    /// use touchpoint::model::{AgentId, ChannelKind};
    /// use chrono::{TimeDelta, TimeZone, Utc};
    ///
    /// let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
    /// let (survey, ana) = (AgentId::new("survey-bot").unwrap(), AgentId::new("ana").unwrap());
    /// let router = Router::new(RouterConfig::default());
    /// router.upsert_agent(Agent::bot(survey.clone()).with_status("offline"), t0).unwrap();
    /// router.upsert_agent(Agent::new(ana.clone()).with_status("online"), t0).unwrap();
    /// let d = router.submit(WorkItem::new(WorkItemId::from_u128(1), ChannelKind::WebChat, t0), t0).unwrap();
    /// assert_eq!(d.outcome, Outcome::Assigned(ana.clone()));
    ///
    /// // Ana solved it; the survey bot (offline so far, so it took nothing) asks for a rating.
    /// let later = t0 + TimeDelta::minutes(5);
    /// router.set_presence(&survey, "online", later).unwrap();
    /// let notes = [("resolved".to_string(), serde_json::json!(true))].into_iter().collect();
    /// let events = router.return_to_bot(WorkItemId::from_u128(1), &survey, notes, later).unwrap();
    /// assert!(matches!(&events[0], RoutingEvent::ReturnedToBot { agent, .. } if *agent == ana));
    /// assert!(matches!(&events[1], RoutingEvent::Assigned { agent, .. } if *agent == survey));
    /// assert_eq!(router.item(WorkItemId::from_u128(1)).unwrap().control, ItemControl::Bot(survey));
    /// assert_eq!(router.agent(&ana).unwrap().load, 0);
    /// ```
    pub fn return_to_bot(
        &self,
        item: WorkItemId,
        bot: &AgentId,
        findings: Attributes,
        now: DateTime<Utc>,
    ) -> crate::Result<Vec<RoutingEvent>> {
        let mut s = self.lock();
        s.fire_timers(now);
        let i = Self::item_index(&s, item)?;
        Self::check_findings(&s, i, &findings)?;
        let b = Self::agent_index(&s, bot)?;
        let Some(IState::Assigned { agent: h, .. }) = s.items[i as usize].as_ref().map(|x| x.state.clone()) else {
            return Err(Error::Refused(format!("work item {item} is not assigned")));
        };
        if s.agents[h as usize].as_ref().is_some_and(|a| a.agent.is_bot) {
            return Err(Error::Refused(format!(
                "work item {item} is with a bot already (a bot hands off with handoff)"
            )));
        }
        let chan = s.items[i as usize].as_ref().map_or(0, |x| x.chan);
        let Some(slot) = s.agents[b as usize].as_ref() else { return Err(Error::not_found("agent", bot)) };
        if !slot.agent.is_bot {
            return Err(Error::invalid("bot", format!("agent {bot} is a human, not a bot")));
        }
        if let Err(block) = slot.can_take(chan, &s.channels) {
            return Err(Error::Refused(format!("bot {bot} cannot take work item {item} now: {block}")));
        }
        let human = s.agent_id(h);
        s.unhold(h, i, chan, now);
        s.freed.push(h);
        if let Some(x) = s.items[i as usize].as_mut() {
            x.item.work.attributes.extend(findings);
            x.item.excluded.retain(|a| a != bot);
            x.item.unassigned(state::ms(now));
            x.state = IState::Moving;
        }
        s.events.push(RoutingEvent::ReturnedToBot { item, agent: human, bot: bot.clone() });
        s.note_activity(h, now);
        // Nobody waited for the bot: the queue's estimate counts no sample (the wait before the
        // human was counted when the human got the item).
        let _no_wait = s.hand_over(i, b, now);
        Ok(Self::finish(&mut s, now))
    }

    /// Answers an external decision ([`RoutingEvent::DecisionRequested`], `request`):
    ///
    /// * [`PolicyChoice::Agents`] — the first listed agents that can take the item now (present,
    ///   with capacity, not declined before; as many as the queue's offer policy allows) get it;
    ///   if none can, the step routes it as if it had no hook;
    /// * [`PolicyChoice::UsePlan`] — the step routes it as if it had no hook;
    /// * [`PolicyChoice::Wait`] — the request stays open (its deadline still runs).
    ///
    /// An answer to a request that is no longer open — already answered, expired, or superseded
    /// by a newer request — is [`Error::Refused`] and changes nothing; an unknown item is
    /// [`Error::NotFound`].
    ///
    /// ```
    /// use touchpoint::routing::*;
    /// use touchpoint::model::{AgentId, ChannelKind, QueueId};
    /// use chrono::{TimeDelta, TimeZone, Utc};
    ///
    /// let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
    /// let sales = QueueId::new("sales").unwrap();
    /// let router = Router::new(RouterConfig::default());
    /// router.upsert_queue(Queue::new(sales.clone())).unwrap();
    /// for name in ["ana", "bo"] {
    ///     router.upsert_agent(Agent::new(AgentId::new(name).unwrap()).with_queue(sales.clone()).with_status("online"), t0).unwrap();
    /// }
    /// let hook = DecisionHook::new(TimeDelta::seconds(2));
    /// router.set_plan(Plan::new([Rule::new("ask", [Step::new(Pool::queues([sales.clone()])).decided_by_host(hook)])]), t0).unwrap();
    ///
    /// let d = router.submit(WorkItem::new(WorkItemId::from_u128(1), ChannelKind::Email, t0), t0).unwrap();
    /// let Outcome::AwaitingDecision { request, .. } = d.outcome else { panic!("{d:?}") };
    /// let choice = PolicyChoice::Agents(vec![AgentId::new("bo").unwrap()]);
    /// let events = router.resolve_decision(WorkItemId::from_u128(1), request, choice.clone(), t0).unwrap();
    /// assert!(matches!(&events[0], RoutingEvent::Assigned { agent, .. } if agent.as_str() == "bo"));
    /// // The same answer again is refused.
    /// assert!(router.resolve_decision(WorkItemId::from_u128(1), request, choice, t0).is_err());
    /// ```
    pub fn resolve_decision(
        &self,
        item: WorkItemId,
        request: u64,
        choice: PolicyChoice,
        now: DateTime<Utc>,
    ) -> crate::Result<Vec<RoutingEvent>> {
        let mut s = self.lock();
        s.fire_timers(now);
        let i = Self::item_index(&s, item)?;
        // A refused answer changes nothing; timers that fell due first (an expired deadline) stay
        // fired and their events come with the next call.
        s.resolve_decision(i, request, choice, now)?;
        Ok(Self::finish(&mut s, now))
    }

    /// Declares an item or agent attribute for expressions: `item.tier` reads
    /// `item.attributes["tier"]`, `agent.team` the agent's `attributes["team"]`; longer paths
    /// read into JSON objects (`item.order.total` → `attributes["order"]["total"]`). A JSON
    /// value of another type than `ty` reads as missing. Applies to plans and queues set after.
    /// Maps and durations (JSON has none) are refused: declare a duration as int seconds.
    ///
    /// ```
    /// use touchpoint::routing::{Router, RouterConfig, Plan, Rule, Step, Pool, Term};
    /// use touchpoint::routing::expr::Type;
    /// let router = Router::new(RouterConfig::default());
    /// let plan = Plan::new([Rule::new("vip", [Step::new(Pool::any())]).when(Term::expr(r#"item.tier == "gold""#))]);
    /// assert!(router.set_plan(plan.clone(), chrono::Utc::now()).is_err()); // item.tier is not declared
    /// router.declare_attribute("item.tier", Type::STR).unwrap();
    /// router.set_plan(plan, chrono::Utc::now()).unwrap();
    /// ```
    pub fn declare_attribute(&self, path: &str, ty: expr::Type) -> crate::Result<()> {
        let mut s = self.lock();
        let schemas = s.schemas.declare(path, ty)?;
        s.schemas = schemas;
        Ok(())
    }

    /// Registers a function (a custom predicate, a lookup) that expressions in plans may call,
    /// e.g. `vip(item.customer)`. It must be quick, must not block and should be a function of
    /// its arguments (eligibility results are cached per agent profile). Applies to plans and
    /// queues set after.
    pub fn register_function(&self, function: expr::Function) -> crate::Result<()> {
        let mut s = self.lock();
        let schemas = s.schemas.register(function)?;
        s.schemas = schemas;
        Ok(())
    }

    /// Replaces the business-hours schedules that `schedule("name")` reads in expressions, that
    /// agents work by ([`Agent::schedule`]) and that queues keep ([`Queue::hours`]).
    ///
    /// Every agent with a schedule and every queue with hours is checked again — a schedule that is no longer there counts
    /// as closed — as of the `now` of the router's next call: the check is a timer due at once
    /// ([`next_timer`](Self::next_timer) answers the earliest instant), so the next
    /// [`tick`](Self::tick), or any call that fires timers, starts and ends shifts before it
    /// does anything else, and its answer carries the [`RoutingEvent::ShiftChanged`] events and
    /// the work given to agents whose shift started. Expressions read the new calendars at once.
    pub fn set_calendars(&self, calendars: calendar::Calendars) {
        self.lock().set_calendars(calendars);
    }

    /// Fires every timer due at `now`: step dwell, max wait, offer expiry, no reply, queue
    /// delays, agent offline, external-decision deadlines, shift starts and ends, queue hours
    /// closing. The events come after those of timers that an earlier refused call fired (every
    /// call fires due timers first, and a call that changes something fires again at its end
    /// what it made due at once, such as a zero max wait, so its answer already shows it).
    pub fn tick(&self, now: DateTime<Utc>) -> Vec<RoutingEvent> {
        let mut events = Vec::new();
        self.tick_into(now, &mut events);
        events
    }

    /// [`tick`](Self::tick), appending the events to `events`: a timer loop that keeps one
    /// buffer (and clears it once it has handled the events) allocates nothing per tick. With a
    /// million items moving a step at once, a fresh list of events is about 70 MB of new memory
    /// whose first touch costs more than the moves themselves in places.
    ///
    /// ```
    /// use touchpoint::routing::*;
    /// use touchpoint::model::{ChannelKind, QueueId};
    /// use chrono::{TimeDelta, TimeZone, Utc};
    ///
    /// let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
    /// let support = QueueId::new("support").unwrap();
    /// let router = Router::new(RouterConfig::default());
    /// router.upsert_queue(Queue::new(support.clone())).unwrap();
    /// let steps = [Step::new(Pool::default()).dwell(TimeDelta::seconds(30)), Step::new(Pool::any())];
    /// router.set_plan(Plan::new([Rule::new("widen", steps)]), t0).unwrap();
    /// let item = WorkItem::new(WorkItemId::from_u128(1), ChannelKind::WebChat, t0).in_queue(support);
    /// router.submit(item, t0).unwrap();
    ///
    /// let mut events = Vec::new();
    /// for second in [10, 20, 30, 40] {
    ///     router.tick_into(t0 + TimeDelta::seconds(second), &mut events);
    ///     // … hand the events on, then keep the buffer for the next tick.
    ///     let moved = events.iter().any(|e| matches!(e, RoutingEvent::StepEntered { step: 1, .. }));
    ///     assert_eq!(moved, second == 30);
    ///     events.clear();
    /// }
    /// ```
    pub fn tick_into(&self, now: DateTime<Utc>, events: &mut Vec<RoutingEvent>) {
        let mut s = self.lock();
        // Events of timers that a refused call fired come first (moved, once); then the router
        // collects into the caller's buffer (after what it holds) and gets its own (empty)
        // list back.
        events.append(&mut s.events);
        std::mem::swap(&mut s.events, events);
        s.fire_timers(now);
        s.drain(now);
        std::mem::swap(&mut s.events, events);
    }

    /// When the next timer is due (call [`tick`](Self::tick) then). Timers are dropped when
    /// they come due, not when what they were for ends: this may be the time of a timer with
    /// nothing left to do (an offer withdrawn since, say), and the tick then fires nothing.
    pub fn next_timer(&self) -> Option<DateTime<Utc>> {
        let s = self.lock();
        s.timers.next_due().map(state::from_ms)
    }

    /// Offers every waiting item that someone can take now, best first — the periodic safety
    /// net (and how items waiting on a [`RoutingPolicy`] are retried).
    pub fn sweep(&self, now: DateTime<Utc>) -> Vec<RoutingEvent> {
        let mut s = self.lock();
        s.fire_timers(now);
        s.sweep(now);
        Self::finish(&mut s, now)
    }

    /// The current decision about an item the router holds (its outcome, rule, step and the
    /// reason in words, with no events): what [`Router::submit`] answered, as it stands now.
    pub fn decision(&self, item: WorkItemId, now: DateTime<Utc>) -> Option<RoutingDecision> {
        let s = self.lock();
        let i = *s.item_ids.get(&item)?;
        let queue = s.items.get(i as usize)?.as_ref()?.queue.clone();
        Some(decision(&s, item, i, &queue, Vec::new(), now))
    }

    /// A snapshot of an item.
    pub fn item(&self, item: WorkItemId) -> Option<ItemStatus> {
        let s = self.lock();
        let i = *s.item_ids.get(&item)?;
        item_status(&s, i)
    }

    /// A snapshot of an agent.
    pub fn agent(&self, agent: &AgentId) -> Option<AgentStatus> {
        let s = self.lock();
        let a = *s.agent_ids.get(agent)?;
        let slot = s.agents[a as usize].as_ref()?;
        let mut assigned = Vec::new();
        let mut offered = Vec::new();
        for i in &slot.held {
            let Some(x) = s.items[*i as usize].as_ref() else { continue };
            match &x.state {
                IState::Assigned { agent, .. } if *agent == a => assigned.push(x.item.id),
                // Not an item a bot keeps while it is offered to others.
                IState::Offered { agents, .. } if agents.contains(&a) => offered.push(x.item.id),
                _ => {}
            }
        }
        Some(AgentStatus {
            id: slot.agent.id.clone(),
            is_bot: slot.agent.is_bot,
            status: slot.agent.presence.status.clone(),
            load: slot.load,
            channel_load: s
                .channels
                .iter()
                .enumerate()
                .filter(|(c, _)| slot.chan_load(*c) > 0)
                .map(|(c, ch)| (ch.clone(), slot.chan_load(c)))
                .collect(),
            budget_used: slot.budget_used,
            assigned,
            offered,
        })
    }

    /// Live statistics of a queue.
    pub fn queue_stats(&self, queue: &QueueId) -> crate::Result<QueueStats> {
        let s = self.lock();
        let q = s.queues.get(queue).ok_or_else(|| Error::not_found("queue", queue))?;
        let estimated_wait = condition::mean_wait(&q.waits);
        Ok(QueueStats { waiting: q.waiting, estimated_wait })
    }

    /// Why an item is where it is: its rule and step, the last decision, and every agent grouped
    /// by profile with what excludes them (pool, eligibility term, presence, shift, capacity,
    /// interruption, earlier decline, queue delay). Costs a scan of the agents.
    pub fn explain(&self, item: WorkItemId, now: DateTime<Utc>) -> crate::Result<Explanation> {
        let mut s = self.lock();
        let i = Self::item_index(&s, item)?;
        explain(&mut s, i, now).ok_or_else(|| Error::not_found("work item", item))
    }
}

fn item_status(s: &State, i: u32) -> Option<ItemStatus> {
    let x = s.items[i as usize].as_ref()?;
    let (state, control) = match &x.state {
        IState::Waiting { .. } | IState::Moving => (ItemState::Waiting, ItemControl::Routing),
        IState::Awaiting { request, deadline } => {
            (ItemState::AwaitingDecision { request: *request, deadline: *deadline }, ItemControl::Routing)
        }
        IState::Offered { agents, .. } => {
            (ItemState::Offered(agents.iter().map(|a| s.agent_id(*a)).collect()), ItemControl::Routing)
        }
        IState::Assigned { agent, .. } => {
            let id = s.agent_id(*agent);
            let bot = s.agents[*agent as usize].as_ref().is_some_and(|a| a.agent.is_bot);
            (ItemState::Assigned(id.clone()), if bot { ItemControl::Bot(id) } else { ItemControl::Human(id) })
        }
    };
    let control = match (x.item.bot_hold, &control) {
        (Some(b), ItemControl::Routing) => ItemControl::BotOffering(s.agent_id(b)),
        _ => control,
    };
    let (rule, step) = match x.at {
        StepRef::Rule(r, k) => (s.plan_of(x.item.plan_gen).plan.rules.get(r).map(|r| r.name.clone()), Some(k)),
        _ => (None, None),
    };
    Some(ItemStatus {
        item: WorkItem::clone(&x.item),
        state,
        control,
        queue: x.queue.clone(),
        rule,
        step,
        priority: x.priority,
        declines: x.item.declines,
    })
}

/// Why item `i` is where it is at `now` (written out in words when shown).
fn reason(s: &State, i: u32, now: DateTime<Utc>) -> DecisionReason {
    let Some(x) = s.items[i as usize].as_ref() else { return String::new().into() };
    match &x.state {
        IState::Assigned { agent, .. } => {
            DecisionReason(Why::Assigned { agent: s.agent_id(*agent), step: s.step_text(x.item.plan_gen, x.at) })
        }
        IState::Offered { agents, .. } => {
            format!("offered to {} agent(s) at {}", agents.len(), s.step_label(x.item.plan_gen, x.at)).into()
        }
        IState::Awaiting { request, deadline } => {
            let step = s.step_label(x.item.plan_gen, x.at);
            format!("awaiting the host's decision (request {request}, until {deadline}) at {step}").into()
        }
        IState::Waiting { .. } | IState::Moving => s.queued_reason(i, state::ms(now)).into(),
    }
}

/// Whether `queue` would close a ring of queues that pass an item on without it waiting:
/// overflows after a zero max wait, and after-hours overflows (two closed queues pass an item
/// on once, not back, so only a ring with at least one zero wait goes round without end).
fn overflow_ring<'a>(queue: &'a Queue, get: impl Fn(&QueueId) -> Option<&'a Queue>) -> bool {
    let edges = |q: &'a Queue| {
        let wait = match &q.on_max_wait {
            TimeoutAction::Overflow(to) if q.max_wait == Some(TimeDelta::zero()) => Some((to, true)),
            _ => None,
        };
        let hours = match q.hours.as_ref().map(|h| &h.action) {
            Some(TimeoutAction::Overflow(to)) => Some((to, false)),
            _ => None,
        };
        wait.into_iter().chain(hours)
    };
    // Depth-first over (queue, a zero wait on the way) from `queue` back to itself.
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<(&QueueId, bool)> = edges(queue).collect();
    while let Some((q, zero)) = stack.pop() {
        if *q == queue.id {
            if zero {
                return true;
            }
            continue;
        }
        if !seen.insert((q, zero)) {
            continue;
        }
        if let Some(c) = get(q) {
            stack.extend(edges(c).map(|(to, z)| (to, zero || z)));
        }
    }
    false
}

fn decision(
    s: &State,
    id: WorkItemId,
    i: u32,
    queue: &QueueId,
    events: Vec<RoutingEvent>,
    now: DateTime<Utc>,
) -> RoutingDecision {
    let slot = s.items.get(i as usize).and_then(|x| x.as_ref()).filter(|x| x.item.id == id);
    let Some(x) = slot else {
        let (outcome, reason) = events
            .iter()
            .rev()
            .find_map(|e| match e {
                RoutingEvent::TimedOut { action, reason, .. } => {
                    Some((Outcome::TimedOut(action.clone()), reason.clone()))
                }
                _ => None,
            })
            .unwrap_or_else(|| (Outcome::Queued(queue.clone()), String::new()));
        return RoutingDecision { item: id, outcome, rule: None, step: None, reason: reason.into(), events };
    };
    let outcome = match &x.state {
        IState::Assigned { agent, .. } => Outcome::Assigned(s.agent_id(*agent)),
        IState::Offered { agents, .. } => Outcome::Offered(agents.iter().map(|a| s.agent_id(*a)).collect()),
        IState::Awaiting { request, deadline } => Outcome::AwaitingDecision { request: *request, deadline: *deadline },
        IState::Waiting { .. } | IState::Moving => Outcome::Queued(x.queue.clone()),
    };
    let (rule, step) = match x.at {
        StepRef::Rule(r, k) => (s.plan_of(x.item.plan_gen).rule_names.get(r).cloned(), Some(k)),
        _ => (None, None),
    };
    RoutingDecision { item: id, outcome, rule, step, reason: reason(s, i, now), events }
}

fn explain(s: &mut State, i: u32, now: DateTime<Utc>) -> Option<Explanation> {
    let status = item_status(s, i)?;
    let x = s.items[i as usize].as_ref()?;
    let at = x.at;
    let item = x.item.clone();
    let chan = x.chan;
    let excluded = x.item.excluded.clone();
    let tiers = x.tiers.clone();
    let holding: Vec<u32> = match &x.state {
        IState::Offered { agents, .. } => agents.clone(),
        IState::Assigned { agent, .. } => vec![*agent],
        _ => Vec::new(),
    };
    let reason = reason(s, i, now).to_string();
    let queue = x.queue.clone();
    let label = s.step_label(x.item.plan_gen, at).to_owned();
    let plan = Arc::clone(s.plan_of(x.item.plan_gen));
    let step = plan.step(at);
    let age = now - item.eligible_since;
    let now_ms = state::ms(now);
    let mut groups: BTreeMap<(usize, String), ExclusionGroup> = BTreeMap::new();
    for (a, ag) in s.agents.iter().enumerate() {
        let Some(ag) = ag else { continue };
        let p = ag.profile;
        let Some(profile) = s.profiles.list.get(p) else { continue };
        let named = tiers.iter().any(|t| t.named(now_ms).contains(&ag.agent.id));
        let in_pool = named || tiers.iter().any(|t| t.pool.get(p));
        let in_tiers = tiers.iter().any(|t| (t.named(now_ms).contains(&ag.agent.id) && t.elig.get(p)) || t.mask.get(p));
        let r = if holding.contains(&(a as u32)) {
            Exclusion::Holding
        } else if !in_pool {
            Exclusion::NotInPool
        } else if !in_tiers {
            let term = step
                .eligibility
                .excluding_term(profile, &item)
                .or_else(|| step.custom.as_ref().and_then(|c| c.excluding_term(profile, &item)))
                .unwrap_or_else(|| "eligibility".into());
            Exclusion::Ineligible { term }
        } else if excluded.contains(&ag.id) {
            Exclusion::DeclinedBefore
        } else if let Some(m) = profile.queues.get(&queue).filter(|m| m.delay() > age) {
            Exclusion::QueueDelay { until: state::add(item.eligible_since, m.delay()) }
        } else if !ag.on_shift {
            Exclusion::OffShift { schedule: ag.agent.schedule.clone().unwrap_or_default() }
        } else {
            match ag.can_take(chan, &s.channels) {
                Ok(()) => Exclusion::Available,
                Err(Block::Presence) => Exclusion::Presence { status: ag.agent.presence.status.clone() },
                Err(Block::Limit) => Exclusion::NoCapacity { channel: item.channel.clone() },
                Err(Block::Budget) => Exclusion::NoBudget,
                Err(Block::Interrupted(h)) => Exclusion::Interrupted { holding: h },
            }
        };
        let key = (p, serde_json::to_string(&r).unwrap_or_default());
        let g = groups.entry(key).or_insert_with(|| ExclusionGroup { reason: r, agents: Vec::new(), count: 0 });
        g.count += 1;
        if g.agents.len() < 20 {
            g.agents.push(ag.agent.id.clone());
        }
    }
    Some(Explanation { status, step: label, reason, groups: groups.into_values().collect() })
}
