//! Routing plans: first-match [`Rule`]s of ordered [`Step`]s, loadable from JSON or built in
//! Rust, and the [`RoutingPolicy`] trait for fully custom decisions.
//!
//! A plan classifies an item with the first rule whose `when` matches (rules without a `when`
//! match everything); the item then walks the rule's steps. Each step names a pool of agents,
//! an eligibility condition, a ranker, an optional priority change and how long the item dwells
//! there before the next step. [`PoolMode::Widen`] keeps the earlier steps' candidates and
//! prefers them (Genesys bullseye rings); [`PoolMode::Replace`] starts afresh (Amazon Connect
//! routing steps, Twilio targets). [`TimerBasis`] says whether the dwell counts from entering the
//! step or from the item's eligibility (Twilio's cumulative target timeouts).
//!
//! ```
//! use touchpoint::routing::Plan;
//! let plan = Plan::from_json(r#"{
//!   "rules": [{
//!     "name": "billing",
//!     "when": {"item_attr": {"key": "topic", "equals": "billing"}},
//!     "steps": [
//!       {"pool": {"queues": ["billing"]}, "eligibility": {"and": ["item_skills", "item_optional_skills"]}, "dwell": 30},
//!       {"pool": {"queues": ["billing"]}, "eligibility": "item_skills", "dwell": 60, "mode": "widen"},
//!       {"pool": {"queues": ["general"]}}
//!     ],
//!     "fallback": "stay_queued"
//!   }]
//! }"#).unwrap();
//! assert_eq!(plan.rules[0].steps.len(), 3);
//!
//! let err = Plan::from_json(r#"{"rules": [{"name": "x", "steps": [{"dwell": -1}]}]}"#).unwrap_err();
//! assert!(err.to_string().contains("line 1 column"), "{err}");
//! let err = Plan::from_json(r#"{"rules": [{"name": "x", "steps": []}]}"#).unwrap_err();
//! assert!(err.to_string().contains("rules[0].steps: a rule needs at least one step"), "{err}");
//! ```

use super::eligibility::{Eligibility, Term};
use super::model::{TimeoutAction, WorkItem, secs};
use super::rank::{AgentView, Ranker};
use crate::Error;
use crate::model::{AgentId, QueueId};
use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Which agents a step considers.
///
/// With no queues and no agents listed the pool is the members of the item's queue, or every
/// agent when the item names no queue.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// Members of any of these queues. The item waits in the first one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<QueueId>,
    /// These agents by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<AgentId>,
    /// The item's preferred agents.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preferred_agents: bool,
    /// The item's last agent (while its preference holds).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub last_agent: bool,
    /// Every agent (ignores queue membership).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub any_agent: bool,
}

impl Pool {
    /// Members of these queues.
    pub fn queues(queues: impl IntoIterator<Item = QueueId>) -> Self {
        Pool { queues: queues.into_iter().collect(), ..Pool::default() }
    }
    /// These agents.
    pub fn agents(agents: impl IntoIterator<Item = AgentId>) -> Self {
        Pool { agents: agents.into_iter().collect(), ..Pool::default() }
    }
    /// The item's preferred agents. They are ordered, best first: a step with this pool and no
    /// ranker of its own ranks by [`RankKey::Affinity`](super::RankKey::Affinity) before the
    /// router's default ranker, so the first preferred agent who can take the item gets it.
    pub fn preferred() -> Self {
        Pool { preferred_agents: true, ..Pool::default() }
    }
    /// The item's last agent.
    pub fn last_agent() -> Self {
        Pool { last_agent: true, ..Pool::default() }
    }
    /// Every agent.
    pub fn any() -> Self {
        Pool { any_agent: true, ..Pool::default() }
    }
    /// Whether the pool names agents individually (and only them).
    pub(crate) fn is_explicit(&self) -> bool {
        (!self.agents.is_empty() || self.preferred_agents || self.last_agent)
            && self.queues.is_empty()
            && !self.any_agent
    }
}

/// Whether a step replaces the previous pool or widens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolMode {
    /// Only this step's pool.
    #[default]
    Replace,
    /// This step's pool plus the earlier steps' (back to the last `Replace`), earlier steps'
    /// candidates ranked first.
    Widen,
}

/// What a step's dwell counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerBasis {
    /// From entering the step.
    #[default]
    StepEntry,
    /// From the item's `eligible_since` (cumulative, Twilio style).
    ItemAge,
}

/// When to skip a step at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SkipIf {
    /// No agent of the step's pool is available now (presence and capacity) — Twilio
    /// `skip_if: workers.available == 0`.
    NoAvailableAgents,
    /// No agent of the step's pool is signed in at all (any status that is not offline, and
    /// on shift if the agent follows a [schedule](super::Agent::schedule)) — Rocket.Chat's
    /// fallback department; with regional schedules, a step per region that is skipped while
    /// the region is off shift.
    NoAgentsSignedIn,
    /// More than this many items already wait in the step's queue.
    QueueLongerThan(u32),
    /// A routing expression over the item, its queue, the step's pool, the clock and calendars
    /// (`{"expr": "pool.available == 0 or not schedule(\"support\").open"}`; see
    /// [`Condition`](super::Condition) for what it can read).
    Expr(super::condition::Condition),
}

impl SkipIf {
    /// A guard in the expression language's text form.
    pub fn expr(source: impl Into<String>) -> SkipIf {
        SkipIf::Expr(super::condition::Condition::text(source))
    }
}

/// An external decision (Twilio's assignment callback, Salesforce external routing) for the
/// items that reach a step: instead of choosing an agent itself the router marks the item
/// [`AwaitingDecision`](super::ItemState::AwaitingDecision), emits
/// [`DecisionRequested`](super::RoutingEvent::DecisionRequested) with the agents that could
/// take it, and waits for [`Router::resolve_decision`](super::Router::resolve_decision). If no
/// answer comes within `timeout`, [`Router::tick`](super::Router::tick) applies `fallback`.
/// Runtime-free: the host carries the request to its decider however it likes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionHook {
    /// How long the host has to answer (seconds in JSON).
    #[serde(with = "secs")]
    pub timeout: TimeDelta,
    /// What happens when the answer does not come in time.
    #[serde(default)]
    pub fallback: DecisionFallback,
}

impl DecisionHook {
    /// A hook answered within `timeout`, falling back to the plan.
    pub fn new(timeout: TimeDelta) -> Self {
        DecisionHook { timeout, fallback: DecisionFallback::Plan }
    }
    /// Sets the fallback.
    pub fn or_else(mut self, fallback: DecisionFallback) -> Self {
        self.fallback = fallback;
        self
    }
}

/// What a [`DecisionHook`] does when the host does not answer in time.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DecisionFallback {
    /// Route by the step itself (its pool, eligibility and ranker).
    #[default]
    Plan,
    /// Move to this queue, where any member may take it (an overflow).
    Queue(QueueId),
    /// The first of these agents that can take the item now; if none can, the plan.
    Agents(Vec<AgentId>),
}

/// A change of the item's priority on entering a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PriorityChange {
    /// Set it to this.
    Set(i32),
    /// Add this (saturating).
    Raise(i32),
}

/// One step of a rule.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// A name for explanations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Which agents.
    #[serde(default)]
    pub pool: Pool,
    /// Structured eligibility.
    #[serde(default)]
    pub eligibility: Term,
    /// Extra eligibility from code (AND-ed with [`eligibility`](Self::eligibility)). Not serialised.
    #[serde(skip)]
    pub custom: Option<Arc<dyn Eligibility>>,
    /// Agent ordering (`None` = the router's default; for a pool of preferred agents, their
    /// order first, then the router's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranker: Option<Ranker>,
    /// Priority change on entering the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<PriorityChange>,
    /// How long to stay before moving on (`None` = stay; only the last step may omit it).
    #[serde(with = "secs::option", default, skip_serializing_if = "Option::is_none")]
    pub dwell: Option<TimeDelta>,
    /// What the dwell counts from.
    #[serde(default)]
    pub timer: TimerBasis,
    /// When to skip the step at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_if: Option<SkipIf>,
    /// Replace or widen the pool.
    #[serde(default)]
    pub mode: PoolMode,
    /// Ask the host to decide (with a timeout and a fallback) instead of choosing an agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionHook>,
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Step")
            .field("name", &self.name)
            .field("pool", &self.pool)
            .field("eligibility", &self.eligibility)
            .field("custom", &self.custom)
            .field("ranker", &self.ranker)
            .field("priority", &self.priority)
            .field("dwell", &self.dwell)
            .field("timer", &self.timer)
            .field("skip_if", &self.skip_if)
            .field("mode", &self.mode)
            .field("decision", &self.decision)
            .finish()
    }
}

impl Step {
    /// A step over `pool`, eligibility [`Term::Any`], default ranker, no dwell.
    pub fn new(pool: Pool) -> Self {
        Step { pool, ..Step::default() }
    }
    /// Names the step.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Sets the structured eligibility.
    pub fn eligible(mut self, term: Term) -> Self {
        self.eligibility = term;
        self
    }
    /// Adds eligibility from code.
    pub fn eligible_by(mut self, custom: Arc<dyn Eligibility>) -> Self {
        self.custom = Some(custom);
        self
    }
    /// Sets the ranker.
    pub fn ranked(mut self, ranker: Ranker) -> Self {
        self.ranker = Some(ranker);
        self
    }
    /// Sets the dwell.
    pub fn dwell(mut self, dwell: TimeDelta) -> Self {
        self.dwell = Some(dwell);
        self
    }
    /// Counts the dwell from the item's eligibility instead of step entry.
    pub fn timed_from_item_age(mut self) -> Self {
        self.timer = TimerBasis::ItemAge;
        self
    }
    /// Widens the previous pool instead of replacing it.
    pub fn widen(mut self) -> Self {
        self.mode = PoolMode::Widen;
        self
    }
    /// Skips the step when the condition holds on entry.
    pub fn skip_if(mut self, skip: SkipIf) -> Self {
        self.skip_if = Some(skip);
        self
    }
    /// Hands the decision to the host ([`DecisionHook`]).
    pub fn decided_by_host(mut self, hook: DecisionHook) -> Self {
        self.decision = Some(hook);
        self
    }
    /// Changes the item's priority on entry.
    pub fn with_priority(mut self, change: PriorityChange) -> Self {
        self.priority = Some(change);
        self
    }
}

impl PartialEq for Step {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
            && self.pool == o.pool
            && self.eligibility == o.eligibility
            && match (&self.custom, &o.custom) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
            && self.ranker == o.ranker
            && self.priority == o.priority
            && self.dwell == o.dwell
            && self.timer == o.timer
            && self.skip_if == o.skip_if
            && self.mode == o.mode
            && self.decision == o.decision
    }
}

/// What happens when the last step's dwell ends.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Fallback {
    /// Stay at the last step.
    #[default]
    StayQueued,
    /// Any member of the queue the item waits in, eligibility dropped (Amazon Connect after the
    /// last routing step).
    AnyQueueMember,
    /// Move to another queue (any member).
    Overflow(QueueId),
    /// Finish: the host calls back.
    Callback,
    /// Finish: voicemail.
    Voicemail,
    /// Finish: close.
    Close,
}

impl Fallback {
    pub(crate) fn as_timeout(&self) -> Option<TimeoutAction> {
        match self {
            Fallback::Overflow(q) => Some(TimeoutAction::Overflow(q.clone())),
            Fallback::Callback => Some(TimeoutAction::Callback),
            Fallback::Voicemail => Some(TimeoutAction::Voicemail),
            Fallback::Close => Some(TimeoutAction::Close),
            Fallback::StayQueued | Fallback::AnyQueueMember => None,
        }
    }
}

/// A first-match rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Name, for explanations.
    pub name: String,
    /// Item-only condition (`Any` = always).
    #[serde(default)]
    pub when: Term,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// After the last step's dwell.
    #[serde(default)]
    pub fallback: Fallback,
}

impl Rule {
    /// A rule matching every item.
    pub fn new(name: impl Into<String>, steps: impl IntoIterator<Item = Step>) -> Self {
        Rule { name: name.into(), when: Term::Any, steps: steps.into_iter().collect(), fallback: Fallback::default() }
    }
    /// Sets the condition.
    pub fn when(mut self, when: Term) -> Self {
        self.when = when;
        self
    }
    /// Sets the fallback.
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = fallback;
        self
    }
}

/// Most rules in a plan, and most steps in a rule.
pub const MAX_RULES: usize = 1000;
/// Most steps in one rule.
pub const MAX_STEPS: usize = 32;

/// A routing plan. With no rules (or none matching) an item gets one implicit step: the
/// members of its queue (all agents without one), eligible by its required skills and language,
/// the router's default ranker.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Rules, first match wins.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

impl Plan {
    /// A plan of these rules.
    pub fn new(rules: impl IntoIterator<Item = Rule>) -> Self {
        Plan { rules: rules.into_iter().collect() }
    }

    /// Parses and validates a JSON plan. Syntax and shape errors give serde_json's line and
    /// column; rule errors give the path (`rules[0].steps[1].dwell: …`).
    pub fn from_json(json: &str) -> crate::Result<Plan> {
        if json.len() > 4 << 20 {
            return Err(Error::invalid("plan", "a plan is at most 4 MiB of JSON"));
        }
        let plan: Plan = serde_json::from_str(json).map_err(|e| Error::invalid("plan", e.to_string()))?;
        plan.validate()?;
        Ok(plan)
    }

    /// Checks the plan; errors name the path of the offending part.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |path: String, reason: &str| Error::invalid("plan", format!("{path}: {reason}"));
        if self.rules.len() > MAX_RULES {
            return Err(bad("rules".into(), "at most 1000 rules"));
        }
        let mut names = std::collections::BTreeSet::new();
        for (r, rule) in self.rules.iter().enumerate() {
            let rp = format!("rules[{r}]");
            if rule.name.is_empty() || rule.name.chars().count() > 128 {
                return Err(bad(format!("{rp}.name"), "a rule name is 1 to 128 characters"));
            }
            if !names.insert(rule.name.as_str()) {
                return Err(bad(format!("{rp}.name"), &format!("rule name {:?} is used twice", rule.name)));
            }
            rule.when.check_limits().map_err(|e| bad(format!("{rp}.when"), &e))?;
            rule.when.check_item_only().map_err(|e| bad(format!("{rp}.when"), &e))?;
            if rule.steps.is_empty() {
                return Err(bad(format!("{rp}.steps"), "a rule needs at least one step"));
            }
            if rule.steps.len() > MAX_STEPS {
                return Err(bad(format!("{rp}.steps"), "at most 32 steps"));
            }
            let last = rule.steps.len() - 1;
            for (s, step) in rule.steps.iter().enumerate() {
                let sp = format!("{rp}.steps[{s}]");
                step.eligibility.check_limits().map_err(|e| bad(format!("{sp}.eligibility"), &e))?;
                if let Some(r) = &step.ranker {
                    r.validate().map_err(|e| bad(format!("{sp}.ranker"), &e))?;
                }
                if let Some(d) = step.dwell
                    && d < TimeDelta::zero()
                {
                    return Err(bad(format!("{sp}.dwell"), "must not be negative"));
                }
                if step.dwell.is_none() && s != last {
                    return Err(bad(format!("{sp}.dwell"), "only the last step may stay without a dwell"));
                }
                if step.pool.agents.len() > 1000 || step.pool.queues.len() > 256 {
                    return Err(bad(format!("{sp}.pool"), "at most 1000 agents and 256 queues"));
                }
                if let Some(n) = &step.name
                    && n.chars().count() > 128
                {
                    return Err(bad(format!("{sp}.name"), "a step name is at most 128 characters"));
                }
                if let Some(h) = &step.decision {
                    if h.timeout <= TimeDelta::zero() {
                        return Err(bad(format!("{sp}.decision.timeout"), "must be positive"));
                    }
                    if let DecisionFallback::Agents(a) = &h.fallback
                        && a.len() > 1000
                    {
                        return Err(bad(format!("{sp}.decision.fallback"), "at most 1000 agents"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// What a [`RoutingPolicy`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyChoice {
    /// Give the item to the first of these agents that can take it (with parallel offers, to as
    /// many as the queue's offer policy allows). Agents that cannot are skipped.
    Agents(Vec<AgentId>),
    /// Leave the item waiting; the policy is asked again on the next [`sweep`](super::Router::sweep).
    Wait,
    /// Route with the plan instead.
    UsePlan,
}

/// A fully custom routing decision (Twilio assignment callback, Salesforce external routing).
///
/// The router hands it the item and every agent that could take the item right now (present
/// on the item's channel, with capacity, not excluded for the item), so a decision costs a
/// scan of the available agents. The router still enforces capacity and presence.
pub trait RoutingPolicy: Send + Sync + fmt::Debug {
    /// Decides for `item` among `available` agents.
    fn route(&self, item: &WorkItem, available: &[AgentView<'_>]) -> PolicyChoice;
}
