//! Routing expressions inside plans: [`Condition`] (the text or tree form of a
//! [`routing::expr`](super::expr) expression) and what the router binds them to.
//!
//! A condition can stand wherever a plan takes a [`Term`](super::Term) — a rule's `when`, a
//! step's `eligibility`, a queue's bucket — as `{"expr": "…"}` (text) or `{"expr": {…}}` (the
//! serde tree form of [`Expr`]), and as a step guard in `skip_if`. [`Router::set_plan`]
//! compiles every condition once, against the router's schema for the place it stands in;
//! errors are [`Error::Expression`] whose message starts with the
//! condition's path in the plan (`rules[1].steps[0].eligibility: … at 1:15`).
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use touchpoint::model::{AgentId, ChannelKind, LanguageTag, QueueId};
//! use touchpoint::routing::calendar::{Calendars, ScheduleConfig};
//! use touchpoint::routing::expr::Type;
//! use touchpoint::routing::*;
//!
//! let router = Router::new(RouterConfig::default());
//! for q in ["support", "bots"] {
//!     router.upsert_queue(Queue::new(QueueId::new(q).unwrap())).unwrap();
//! }
//! router.declare_attribute("item.tier", Type::STR).unwrap();
//! let hours = ScheduleConfig::new("support", "UTC").hours("Mon-Fri", "09:00", "17:00").build().unwrap();
//! router.set_calendars(Calendars::from_schedules([hours]).unwrap());
//! router.set_plan(Plan::from_json(r#"{"rules": [
//!   {"name": "after hours", "when": {"expr": "not schedule(\"support\").open"},
//!    "steps": [{"pool": {"queues": ["bots"]}}]},
//!   {"name": "whatsapp", "when": {"expr": "item.channel == \"whatsapp\" or item.tier == \"gold\""},
//!    "steps": [{"pool": {"queues": ["support"]},
//!               "eligibility": {"expr": "item.language in agent.languages and agent.skills.billing >= 3"}}]}
//! ]}"#).unwrap(), Utc::now()).unwrap();
//!
//! let monday_10 = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap();
//! let ana = Agent::new(AgentId::new("ana").unwrap())
//!     .with_queue(QueueId::new("support").unwrap())
//!     .with_skill("billing", 4)
//!     .with_language(LanguageTag::parse("es").unwrap())
//!     .with_status("online");
//! router.upsert_agent(ana, monday_10).unwrap();
//! let chat = WorkItem::new(WorkItemId::from_u128(1), ChannelKind::WhatsApp, monday_10)
//!     .with_language(LanguageTag::parse("es").unwrap());
//! let d = router.submit(chat, monday_10).unwrap();
//! assert_eq!((d.outcome, d.rule.as_deref()), (Outcome::Assigned(AgentId::new("ana").unwrap()), Some("whatsapp")));
//!
//! // A type error names its place in the plan and its position in the text.
//! let bad = Plan::from_json(r#"{"rules": [{"name": "x", "steps": [{"eligibility": {"expr": "agent.skills.billing >= \"3\""}}]}]}"#).unwrap();
//! let err = router.set_plan(bad, monday_10).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     r#"rules[0].steps[0].eligibility: cannot compare agent.skills.billing (int) with "3" (string) at 1:22"#
//! );
//! ```
//!
//! # What a condition can read
//!
//! | path | type | rules (`when`) | guards (`skip_if`) | eligibility | queue buckets |
//! |---|---|---|---|---|---|
//! | `item.channel` | string (`"whatsapp"`, `"webchat"`, …) | ✓ | ✓ | ✓ | ✓ |
//! | `item.queue` | string (the queue the item names; missing if none) | ✓ | ✓ | ✓ | ✓ |
//! | `item.priority` | int (rules and guards: after step changes; else the item's own) | ✓ | ✓ | ✓ | ✓ |
//! | `item.language` | string (`"es-MX"`; missing if none) | ✓ | ✓ | ✓ | ✓ |
//! | `item.primary_language` | string (`"es"` for `"es-MX"`; missing if none) | ✓ | ✓ | ✓ | ✓ |
//! | `item.skills`, `item.optional_skills` | map of int | ✓ | ✓ | ✓ | ✓ |
//! | `item.age` | duration since `eligible_since` | ✓ | ✓ | | |
//! | `item.<attribute>` | as declared ([`Router::declare_attribute`]) | ✓ | ✓ | ✓ | ✓ |
//! | `agent.skills` | map of int | | | ✓ | |
//! | `agent.languages` | list of string | | | ✓ | |
//! | `agent.queues` | map of int (membership priority) | | | ✓ | |
//! | `agent.is_bot` | bool | | | ✓ | |
//! | `agent.<attribute>` | as declared | | | ✓ | |
//! | `queue.name`, `queue.waiting`, `queue.estimated_wait` | string, int, duration | ✓ | ✓ | | |
//! | `pool.available`, `pool.signed_in` | int | | ✓ | | |
//! | `schedule("name").open`, `.opens_in`, `.closes_in` | bool, duration, duration | ✓ | ✓ | | |
//! | functions registered with [`Router::register_function`] | as declared | ✓ | ✓ | ✓ | ✓ |
//!
//! * `in` compares whole tags: `item.language in agent.languages` is false for an `es-MX` item
//!   and an agent who lists `es`. `item.primary_language in agent.languages` matches them, as
//!   [`Term::ItemLanguage`](super::Term::ItemLanguage) does for agents who list bare languages.
//! * `queue.*` is the queue the item waits in (a step naming queues waits in its first);
//!   `queue.estimated_wait` is missing before the queue's first assignment.
//! * `pool.available` counts the agents of the step's pool that are eligible and could take the
//!   item now (presence, shift and capacity; not those who declined it or are still in their
//!   queue's delay; Twilio's `workers.available`); `pool.signed_in`
//!   those not offline and not off shift ([`Agent::schedule`](super::Agent::schedule)).
//! * `schedule(name)` reads the router's calendars ([`Router::set_calendars`]) at the `now`
//!   passed to the operation — never the system clock. `opens_in` is `0s` while open,
//!   `closes_in` `0s` while closed; an unknown schedule, or one that does not change within
//!   a year, is missing (so the condition is unknown, which counts as no).
//!
//! # Eligibility is per profile
//!
//! The router decides eligibility per agent *profile* (skills, languages, attributes, queue
//! memberships, bot or human), so only profile fields exist under `agent.`: per-agent live
//! state (`agent.id`, status, load) is refused at compile time with a hint (name agents with a
//! pool, order them with a ranker). The clauses of an eligibility condition that read only
//! `agent.` paths (and call no function) are evaluated once per profile and cached until the
//! plan or the profiles change; the clauses that read the item are evaluated per profile when
//! the item enters a step — never per agent. Time-dependent reads (`item.age`,
//! `schedule(…)`) are not available in eligibility (a step's eligible set is fixed while the
//! item is at the step); put them in a rule or a `skip_if` guard.
//!
//! # Evaluation
//!
//! Missing values make a comparison unknown, and unknown counts as no (see the
//! [language docs](super::expr)). An attribute whose JSON value has another type than declared
//! reads as missing. A condition whose evaluation fails (its step budget runs out, a
//! registered function reports an error) counts as no as well; evaluation never panics.
//!
//! [`Router::set_plan`]: super::Router::set_plan
//! [`Router::declare_attribute`]: super::Router::declare_attribute
//! [`Router::register_function`]: super::Router::register_function
//! [`Router::set_calendars`]: super::Router::set_calendars

use super::calendar::Calendars;
use super::eligibility::AgentProfile;
use super::expr::{
    Bindings, CompiledExpr, Expr, ExprError, ExprErrorKind, Function, ListRef, Path, ScalarType, Schema, Slot, Type,
    Value, ValueRef,
};
use super::model::WorkItem;
use crate::Error;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// A routing expression in a plan: its text form (`"agent.skills.billing >= 3"`) or its tree
/// form ([`Expr`]), and — once a router has compiled it — the compiled form.
///
/// In JSON and TOML it is a string (text form) or an object (tree form). Two conditions are
/// equal when their sources are; the compiled form is derived data.
///
/// ```
/// use touchpoint::routing::{Condition, Term};
/// let text: Term = serde_json::from_str(r#"{"expr": "item.channel == \"whatsapp\""}"#).unwrap();
/// assert_eq!(text, Term::expr(r#"item.channel == "whatsapp""#));
/// let tree: Condition = serde_json::from_str(r#"{"ge": [{"path": "agent.skills.billing"}, {"int": 3}]}"#).unwrap();
/// assert_eq!(tree.to_string(), "agent.skills.billing >= 3");
/// assert!(!tree.is_compiled());
/// ```
#[derive(Clone)]
pub struct Condition {
    source: Source,
    compiled: Option<Arc<Compiled>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Source {
    Text(String),
    Tree(Expr),
}

impl Condition {
    /// A condition in text form (parsed when a router compiles it).
    pub fn text(source: impl Into<String>) -> Self {
        Condition { source: Source::Text(source.into()), compiled: None }
    }

    /// A condition in tree form.
    pub fn tree(expr: Expr) -> Self {
        Condition { source: Source::Tree(expr), compiled: None }
    }

    /// The text form as written (a tree prints as text).
    pub fn source(&self) -> String {
        match &self.source {
            Source::Text(t) => t.clone(),
            Source::Tree(e) => e.to_string(),
        }
    }

    /// Whether a router has compiled it (conditions in an installed plan are). An uncompiled
    /// condition matches nothing.
    pub fn is_compiled(&self) -> bool {
        self.compiled.is_some()
    }

    /// Compiles against `schema` (for context `ctx`), keeping the source.
    pub(crate) fn compile(&mut self, ctx: &Arc<Ctx>) -> Result<(), ExprError> {
        let whole = match &self.source {
            Source::Text(t) => ctx.schema.compile(t),
            Source::Tree(e) => ctx.schema.compile_expr(e),
        }
        .map_err(|e| match e {
            Error::Expression(x) => x,
            other => ExprError::new(ExprErrorKind::Syntax, other.to_string()),
        })
        .map_err(|e| ctx.hint(e))?;
        let (agent_part, item_part) = if ctx.kind == Context::Eligibility {
            let split = whole.expr().split_by_roots(&["agent"]);
            let part = |e: Option<Expr>| -> Result<Option<CompiledExpr>, ExprError> {
                e.map(|e| ctx.schema.compile_expr(&e))
                    .transpose()
                    .map_err(|e| ExprError::new(ExprErrorKind::Type, e.to_string()))
            };
            (part(split.selected)?, part(split.rest)?)
        } else {
            (None, None)
        };
        self.compiled = Some(Arc::new(Compiled { ctx: ctx.clone(), whole, agent_part, item_part }));
        Ok(())
    }

    pub(crate) fn compiled(&self) -> Option<&Arc<Compiled>> {
        self.compiled.as_ref()
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Condition({:?})", self.source())
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source())
    }
}

impl PartialEq for Condition {
    fn eq(&self, o: &Self) -> bool {
        self.source == o.source
    }
}

impl From<&str> for Condition {
    fn from(s: &str) -> Self {
        Condition::text(s)
    }
}

impl From<Expr> for Condition {
    fn from(e: Expr) -> Self {
        Condition::tree(e)
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.source {
            Source::Text(t) => s.serialize_str(t),
            Source::Tree(e) => e.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        match v {
            serde_json::Value::String(t) => Ok(Condition::text(t)),
            other => serde_json::from_value::<Expr>(other)
                .map(Condition::tree)
                .map_err(|e| serde::de::Error::custom(format!("an expression is a string or an expression tree: {e}"))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Contexts and schemas

/// Where a condition stands, which decides what it may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    /// A rule's `when`: the item, its queue, the clock and calendars.
    Rule,
    /// A step's `skip_if`: as a rule, plus the step's pool.
    Guard,
    /// A step's eligibility: the agent profile against the item.
    Eligibility,
    /// A queue bucket: the item's static fields.
    Bucket,
}

/// What a slot reads.
#[derive(Debug, Clone)]
pub(crate) enum Field {
    ItemChannel,
    ItemQueue,
    ItemPriority,
    ItemLanguage,
    ItemPrimaryLanguage,
    ItemSkills,
    ItemOptionalSkills,
    ItemAge,
    ItemAttr(Vec<String>, Type),
    AgentSkills,
    AgentLanguages,
    AgentQueues,
    AgentIsBot,
    AgentAttr(Vec<String>, Type),
    QueueName,
    QueueWaiting,
    QueueEstimatedWait,
    PoolAvailable,
    PoolSignedIn,
}

const BUILTIN: &[(&str, Type, Field, [bool; 4])] = {
    use Field::*;
    const ALL: [bool; 4] = [true, true, true, true];
    const CLOCK: [bool; 4] = [true, true, false, false];
    const AGENT: [bool; 4] = [false, false, true, false];
    const GUARD: [bool; 4] = [false, true, false, false];
    &[
        ("item.channel", Type::STR, ItemChannel, ALL),
        ("item.queue", Type::STR, ItemQueue, ALL),
        ("item.priority", Type::INT, ItemPriority, ALL),
        ("item.language", Type::STR, ItemLanguage, ALL),
        ("item.primary_language", Type::STR, ItemPrimaryLanguage, ALL),
        ("item.skills", Type::Map(ScalarType::Int), ItemSkills, ALL),
        ("item.optional_skills", Type::Map(ScalarType::Int), ItemOptionalSkills, ALL),
        ("item.age", Type::DURATION, ItemAge, CLOCK),
        ("agent.skills", Type::Map(ScalarType::Int), AgentSkills, AGENT),
        ("agent.languages", Type::List(ScalarType::Str), AgentLanguages, AGENT),
        ("agent.queues", Type::Map(ScalarType::Int), AgentQueues, AGENT),
        ("agent.is_bot", Type::BOOL, AgentIsBot, AGENT),
        ("queue.name", Type::STR, QueueName, CLOCK),
        ("queue.waiting", Type::INT, QueueWaiting, CLOCK),
        ("queue.estimated_wait", Type::DURATION, QueueEstimatedWait, CLOCK),
        ("pool.available", Type::INT, PoolAvailable, GUARD),
        ("pool.signed_in", Type::INT, PoolSignedIn, GUARD),
    ]
};

/// Agent paths that exist per agent, not per profile.
const PER_AGENT: &[&str] = &["agent.id", "agent.status", "agent.presence", "agent.load", "agent.capacity"];

/// The members of `schedule(name)`.
const SCHEDULE_MEMBERS: &[(&str, Type)] =
    &[("open", Type::BOOL), ("opens_in", Type::DURATION), ("closes_in", Type::DURATION)];

fn context_index(c: Context) -> usize {
    match c {
        Context::Rule => 0,
        Context::Guard => 1,
        Context::Eligibility => 2,
        Context::Bucket => 3,
    }
}

/// A compiled schema for one context, and what each of its slots reads.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub kind: Context,
    pub schema: Schema,
    pub fields: Vec<Field>,
}

impl Ctx {
    /// A clearer message for paths that exist in another context.
    fn hint(&self, e: ExprError) -> ExprError {
        if e.kind() != ExprErrorKind::UnknownPath && e.kind() != ExprErrorKind::UnknownFunction {
            return e;
        }
        let msg = e.message().to_owned();
        let hint = if PER_AGENT.iter().any(|p| msg.contains(&format!("path {p}"))) {
            Some(
                "; eligibility is decided per agent profile (skills, languages, attributes, queues), \
                 not per agent: name agents with a pool or order them with a ranker",
            )
        } else {
            match self.kind {
                Context::Rule | Context::Guard if msg.contains("path agent.") => {
                    Some("; a rule or guard reads the item, its queue and the clock, not agents (use eligibility)")
                }
                Context::Rule if msg.contains("path pool.") => Some("; `pool.` is only known in a step's skip_if"),
                Context::Eligibility if msg.contains("path queue.") || msg.contains("path pool.") => {
                    Some("; eligibility reads the agent profile and the item (use skip_if for queue state)")
                }
                Context::Eligibility | Context::Bucket
                    if msg.contains("item.age") || msg.contains("function schedule") =>
                {
                    Some("; time-dependent conditions belong in a rule's when or a step's skip_if")
                }
                _ => None,
            }
        };
        match hint {
            Some(h) => e.with_message(format!("{msg}{h}")),
            None => e,
        }
    }
}

/// The router's four schemas: built-in paths, declared attributes, registered functions.
#[derive(Debug, Clone)]
pub(crate) struct Schemas {
    pub attributes: Vec<(String, Type)>,
    pub functions: Vec<Function>,
    ctxs: [Arc<Ctx>; 4],
}

impl Default for Schemas {
    fn default() -> Self {
        Schemas::build(Vec::new(), Vec::new()).unwrap_or_else(|_| unreachable_schemas())
    }
}

/// Built-ins alone always build; this is the (never taken) fallback that keeps library code free
/// of panics.
fn unreachable_schemas() -> Schemas {
    let empty = |kind| Arc::new(Ctx { kind, schema: Schema::builder().build(), fields: Vec::new() });
    Schemas {
        attributes: Vec::new(),
        functions: Vec::new(),
        ctxs: [empty(Context::Rule), empty(Context::Guard), empty(Context::Eligibility), empty(Context::Bucket)],
    }
}

impl Schemas {
    pub fn build(attributes: Vec<(String, Type)>, functions: Vec<Function>) -> crate::Result<Schemas> {
        let mk = |kind: Context| -> crate::Result<Arc<Ctx>> {
            let ci = context_index(kind);
            let mut b = Schema::builder();
            let mut fields = Vec::new();
            for (path, ty, field, on) in BUILTIN {
                if on[ci] {
                    b.declare(path, *ty)?;
                    fields.push(field.clone());
                }
            }
            for (path, ty) in &attributes {
                let p = Path::parse(path)?;
                let keys: Vec<String> = p.segments().iter().skip(1).cloned().collect();
                let field = match p.root() {
                    "item" => Field::ItemAttr(keys, *ty),
                    _ if kind != Context::Eligibility => continue,
                    _ => Field::AgentAttr(keys, *ty),
                };
                b.declare_path(p, *ty)?;
                fields.push(field);
            }
            if matches!(kind, Context::Rule | Context::Guard) {
                for (member, ty) in SCHEDULE_MEMBERS {
                    b.function(
                        Function::new("schedule", [Type::STR], *ty, |_| Ok(Value::Missing)).member(*member).cost(20),
                    )?;
                }
            }
            for f in &functions {
                b.function(f.clone())?;
            }
            Ok(Arc::new(Ctx { kind, schema: b.build(), fields }))
        };
        Ok(Schemas {
            ctxs: [mk(Context::Rule)?, mk(Context::Guard)?, mk(Context::Eligibility)?, mk(Context::Bucket)?],
            attributes,
            functions,
        })
    }

    pub fn ctx(&self, c: Context) -> &Arc<Ctx> {
        &self.ctxs[context_index(c)]
    }

    /// Adds an attribute path (`item.tier`, `agent.team`), checked against the built-ins.
    pub fn declare(&self, path: &str, ty: Type) -> crate::Result<Schemas> {
        let p = Path::parse(path)?;
        if !matches!(p.root(), "item" | "agent") || p.segments().len() < 2 {
            return Err(Error::invalid(
                "attribute",
                format!("{path}: an attribute path is item.<key> or agent.<key> (nested keys allowed)"),
            ));
        }
        if PER_AGENT.iter().any(|x| Path::parse(x).is_ok_and(|x| p.starts_with(&x) || x.starts_with(&p))) {
            return Err(Error::invalid("attribute", format!("{path}: reserved for per-agent state")));
        }
        if matches!(ty, Type::Map(_)) {
            return Err(Error::invalid("attribute", format!("{path}: attributes are scalars or lists, not maps")));
        }
        // Attributes are JSON, which has no durations: a duration attribute could never be read.
        if matches!(ty, Type::Scalar(ScalarType::Duration) | Type::List(ScalarType::Duration)) {
            return Err(Error::invalid(
                "attribute",
                format!("{path}: attributes are JSON, which has no durations; declare seconds as an int"),
            ));
        }
        let mut attributes = self.attributes.clone();
        attributes.push((path.to_owned(), ty));
        Schemas::build(attributes, self.functions.clone())
    }

    /// Adds a function.
    pub fn register(&self, f: Function) -> crate::Result<Schemas> {
        let mut functions = self.functions.clone();
        functions.push(f);
        Schemas::build(self.attributes.clone(), functions)
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled conditions and the router's bindings

/// A compiled condition with its context (and, for eligibility, its agent-only and item parts).
pub(crate) struct Compiled {
    ctx: Arc<Ctx>,
    whole: CompiledExpr,
    /// Eligibility: the clauses that read only the agent profile.
    pub agent_part: Option<CompiledExpr>,
    /// Eligibility: the other clauses (`None` = the condition never reads the item).
    pub item_part: Option<CompiledExpr>,
}

impl fmt::Debug for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Compiled({:?}, {})", self.ctx.kind, self.whole)
    }
}

impl Compiled {
    /// Whether the condition holds (unknown and failures are no).
    pub fn holds(&self, env: &Env<'_>) -> bool {
        Self::run(&self.whole, &self.ctx, env)
    }

    /// Whether part `e` (of this condition) holds within `budget` steps, and the steps it took:
    /// the parts of an eligibility condition share the one budget the whole condition has.
    pub fn part_holds(&self, e: &CompiledExpr, env: &Env<'_>, budget: u64) -> (bool, u64) {
        let (truth, used) = e.eval_counted(&Bound { fields: &self.ctx.fields, env }, budget);
        (truth.is_ok_and(|t| t.is_true()), used)
    }

    /// The evaluation budget of the whole condition (its schema's).
    pub fn budget(&self) -> u64 {
        self.whole.schema().limits().eval_budget
    }

    fn run(e: &CompiledExpr, ctx: &Ctx, env: &Env<'_>) -> bool {
        e.matches(&Bound { fields: &ctx.fields, env }).unwrap_or(false)
    }

    /// Whether the condition reads the item (else its answer per profile is fixed).
    pub fn reads_item(&self) -> bool {
        self.item_part.is_some()
    }

    /// Whether the condition reads the step's pool (so a guard must count it first).
    pub fn reads_pool(&self) -> bool {
        self.whole
            .slots()
            .iter()
            .any(|s| matches!(self.ctx.fields.get(s.index()), Some(Field::PoolAvailable | Field::PoolSignedIn)))
    }
}

/// The live state of the queue an item waits in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueView<'a> {
    pub name: &'a str,
    pub waiting: i64,
    /// The recent waits (ms) the estimate is the mean of.
    pub waits: &'a std::collections::VecDeque<i64>,
}

impl QueueView<'_> {
    fn estimated_wait(&self) -> Option<TimeDelta> {
        mean_wait(self.waits)
    }
}

/// The estimated wait: the mean of the recent waits (ms), `None` before the first. Summed
/// wide, so that no recorded waits, however long, overflow.
pub(crate) fn mean_wait(waits: &std::collections::VecDeque<i64>) -> Option<TimeDelta> {
    let n = i128::try_from(waits.len()).ok().filter(|n| *n > 0)?;
    let mean = waits.iter().map(|w| i128::from(*w)).sum::<i128>() / n;
    // The mean of `i64`s is an `i64`; only `i64::MIN` itself lies outside `TimeDelta`.
    Some(i64::try_from(mean).ok().and_then(TimeDelta::try_milliseconds).unwrap_or(TimeDelta::MIN))
}

/// Everything a condition may read at one evaluation; the router fills what the context allows.
#[derive(Clone, Copy)]
pub(crate) struct Env<'a> {
    pub item: &'a WorkItem,
    pub priority: i32,
    pub profile: Option<&'a AgentProfile>,
    pub now: Option<DateTime<Utc>>,
    pub calendars: Option<&'a Calendars>,
    pub queue: Option<QueueView<'a>>,
    pub pool: Option<(i64, i64)>,
}

impl<'a> Env<'a> {
    /// An item alone (no clock, no queue): what a plain `Term::matches_item` sees.
    pub fn item(item: &'a WorkItem) -> Self {
        Env { item, priority: item.priority, profile: None, now: None, calendars: None, queue: None, pool: None }
    }

    /// An agent profile against an item (eligibility).
    pub fn profile(profile: &'a AgentProfile, item: &'a WorkItem) -> Self {
        Env { profile: Some(profile), ..Env::item(item) }
    }
}

struct Bound<'e, 'a> {
    fields: &'e [Field],
    env: &'e Env<'a>,
}

/// The value at `keys` inside a JSON attribute map, as type `ty` (another type reads as missing).
fn attr<'v>(attrs: &'v crate::model::Attributes, keys: &[String], ty: Type) -> ValueRef<'v> {
    let Some((first, rest)) = keys.split_first() else { return ValueRef::Missing };
    let mut v = match attrs.get(first) {
        Some(v) => v,
        None => return ValueRef::Missing,
    };
    for k in rest {
        match v.get(k) {
            Some(x) => v = x,
            None => return ValueRef::Missing,
        }
    }
    match (ty, v) {
        (Type::List(_), serde_json::Value::Array(items)) => ValueRef::List(ListRef::Custom(items)),
        (Type::Scalar(t), v) => {
            let r = ValueRef::from_json(v);
            match r {
                ValueRef::Int(_) if t == ScalarType::Float => r,
                ValueRef::Int(_) if t == ScalarType::Int => r,
                ValueRef::Float(_) if t == ScalarType::Float => r,
                ValueRef::Str(_) if t == ScalarType::Str => r,
                ValueRef::Bool(_) if t == ScalarType::Bool => r,
                _ => ValueRef::Missing,
            }
        }
        _ => ValueRef::Missing,
    }
}

impl Bindings for Bound<'_, '_> {
    fn get(&self, slot: Slot) -> ValueRef<'_> {
        let env = self.env;
        let item = env.item;
        let Some(field) = self.fields.get(slot.index()) else { return ValueRef::Missing };
        match field {
            Field::ItemChannel => ValueRef::Str(item.channel.as_str()),
            Field::ItemQueue => item.queue.as_ref().map_or(ValueRef::Missing, |q| ValueRef::Str(q.as_str())),
            Field::ItemPriority => ValueRef::Int(i64::from(env.priority)),
            Field::ItemLanguage => item.language.as_ref().map_or(ValueRef::Missing, |l| ValueRef::Str(l.as_str())),
            Field::ItemPrimaryLanguage => {
                item.language.as_ref().map_or(ValueRef::Missing, |l| ValueRef::Str(l.primary_language()))
            }
            Field::ItemAge => env.now.map_or(ValueRef::Missing, |n| ValueRef::Duration(n - item.eligible_since)),
            Field::ItemAttr(keys, ty) => attr(&item.attributes, keys, *ty),
            Field::AgentLanguages => {
                env.profile.map_or(ValueRef::Missing, |p| ValueRef::List(ListRef::Custom(&p.languages)))
            }
            Field::AgentIsBot => env.profile.map_or(ValueRef::Missing, |p| ValueRef::Bool(p.is_bot)),
            Field::AgentAttr(keys, ty) => env.profile.map_or(ValueRef::Missing, |p| attr(&p.attributes, keys, *ty)),
            Field::QueueName => env.queue.map_or(ValueRef::Missing, |q| ValueRef::Str(q.name)),
            Field::QueueWaiting => env.queue.map_or(ValueRef::Missing, |q| ValueRef::Int(q.waiting)),
            Field::QueueEstimatedWait => {
                env.queue.and_then(|q| q.estimated_wait()).map_or(ValueRef::Missing, ValueRef::Duration)
            }
            Field::PoolAvailable => env.pool.map_or(ValueRef::Missing, |p| ValueRef::Int(p.0)),
            Field::PoolSignedIn => env.pool.map_or(ValueRef::Missing, |p| ValueRef::Int(p.1)),
            Field::ItemSkills | Field::ItemOptionalSkills | Field::AgentSkills | Field::AgentQueues => {
                ValueRef::Missing
            }
        }
    }

    fn get_key(&self, slot: Slot, key: &str) -> ValueRef<'_> {
        let level = |v: Option<&u32>| v.map_or(ValueRef::Missing, |l| ValueRef::Int(i64::from(*l)));
        match self.fields.get(slot.index()) {
            Some(Field::ItemSkills) => level(self.env.item.skills.get(key)),
            Some(Field::ItemOptionalSkills) => level(self.env.item.optional_skills.get(key)),
            Some(Field::AgentSkills) => self.env.profile.map_or(ValueRef::Missing, |p| level(p.skills.get(key))),
            Some(Field::AgentQueues) => self.env.profile.map_or(ValueRef::Missing, |p| {
                p.queues
                    .iter()
                    .find(|(q, _)| q.as_str() == key)
                    .map_or(ValueRef::Missing, |(_, m)| ValueRef::Int(i64::from(m.priority)))
            }),
            _ => ValueRef::Missing,
        }
    }

    fn call(&self, function: &Function, args: &[ValueRef<'_>]) -> Result<Value, String> {
        // The built-in `schedule(name).<member>` (its members cannot be registered again);
        // a host's own `schedule` function with other members is called like any other.
        let builtin = function.name() == "schedule"
            && function.member_name().is_some_and(|m| SCHEDULE_MEMBERS.iter().any(|(b, _)| *b == m));
        if !builtin {
            return function.invoke(args);
        }
        let (Some(now), Some(cal), [ValueRef::Str(name)]) = (self.env.now, self.env.calendars, args) else {
            return Ok(Value::Missing);
        };
        let Some(schedule) = cal.get(name) else { return Ok(Value::Missing) };
        let open = schedule.is_open(now);
        Ok(match function.member_name() {
            Some("open") => Value::Bool(open),
            Some("opens_in") if open => Value::Duration(TimeDelta::zero()),
            Some("closes_in") if !open => Value::Duration(TimeDelta::zero()),
            Some("opens_in" | "closes_in") => {
                schedule.next_change(now).map_or(Value::Missing, |t| Value::Duration(t - now))
            }
            _ => Value::Missing,
        })
    }
}

/// Prefixes an expression error with the condition's place in the plan.
pub(crate) fn at_path(path: &str, e: ExprError) -> Error {
    let msg = format!("{path}: {}", e.message());
    Error::Expression(e.with_message(msg))
}

/// Compiles the conditions of `term` (standing in context `ctx` at `path`).
///
/// An expression under a term's `not` is refused: the term would count its unknown (a missing
/// value) and its failures as no and then negate that into a yes, where the same negation
/// written inside the expression (`not (…)`) keeps them unknown, which counts as no.
pub(crate) fn compile_term(term: &mut super::Term, ctx: &Arc<Ctx>, path: &str) -> crate::Result<()> {
    compile_term_in(term, ctx, path, false)
}

fn compile_term_in(term: &mut super::Term, ctx: &Arc<Ctx>, path: &str, under_not: bool) -> crate::Result<()> {
    use super::Term;
    match term {
        Term::And(ts) => {
            for (j, t) in ts.iter_mut().enumerate() {
                compile_term_in(t, ctx, &format!("{path}.and[{j}]"), under_not)?;
            }
            Ok(())
        }
        Term::Or(ts) => {
            for (j, t) in ts.iter_mut().enumerate() {
                compile_term_in(t, ctx, &format!("{path}.or[{j}]"), under_not)?;
            }
            Ok(())
        }
        Term::Not(t) => compile_term_in(t, ctx, &format!("{path}.not"), true),
        Term::Expr(c) if under_not => Err(Error::invalid(
            "plan",
            format!(
                "{path}: an expression under `not` would turn a missing value into a match; write the \
                 negation inside the expression instead: {{\"expr\": \"not ({c})\"}}"
            ),
        )),
        Term::Expr(c) => c.compile(ctx).map_err(|e| at_path(path, e)),
        _ => Ok(()),
    }
}

/// Compiles every condition of `plan` against the router's schemas; errors name the path.
pub(crate) fn compile_plan(plan: &mut super::Plan, schemas: &Schemas) -> crate::Result<()> {
    for (r, rule) in plan.rules.iter_mut().enumerate() {
        compile_term(&mut rule.when, schemas.ctx(Context::Rule), &format!("rules[{r}].when"))?;
        for (k, step) in rule.steps.iter_mut().enumerate() {
            let sp = format!("rules[{r}].steps[{k}]");
            compile_term(&mut step.eligibility, schemas.ctx(Context::Eligibility), &format!("{sp}.eligibility"))?;
            if let Some(super::SkipIf::Expr(c)) = &mut step.skip_if {
                c.compile(schemas.ctx(Context::Guard)).map_err(|e| at_path(&format!("{sp}.skip_if"), e))?;
            }
        }
    }
    Ok(())
}

/// Compiles the bucket conditions of a queue's discipline.
pub(crate) fn compile_queue(queue: &mut super::Queue, schemas: &Schemas) -> crate::Result<()> {
    if let super::Discipline::Buckets(terms) = &mut queue.discipline {
        for (i, t) in terms.iter_mut().enumerate() {
            compile_term(t, schemas.ctx(Context::Bucket), &format!("queue.discipline.buckets[{i}]"))?;
        }
    }
    Ok(())
}
