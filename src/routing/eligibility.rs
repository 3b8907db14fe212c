//! Who may take an item: [`AgentProfile`]s, the [`Eligibility`] trait, and the built-in
//! structured [`Term`]s.
//!
//! Eligibility is decided per *profile* — the static part of an agent (skills and levels,
//! languages, attributes, queue memberships, bot or human) — never per agent: agents with equal
//! profiles share one answer, so a decision evaluates at most one check per profile however many
//! agents there are. Live state (presence, capacity, declines) is checked by the router after.
//!
//! Three ways to say who is eligible:
//! * structured [`Term`]s (serde data, usable in JSON plans);
//! * a closure through [`eligible_fn`];
//! * any type implementing [`Eligibility`] (an expression-language evaluator plugs in here).
//!
//! ```
//! use touchpoint::routing::{Agent, AgentProfile, Eligibility, Term, WorkItem, WorkItemId, eligible_fn};
//! use touchpoint::model::{AgentId, ChannelKind};
//! # let now = chrono::Utc::now();
//! let agent = Agent::new(AgentId::new("ana").unwrap()).with_skill("billing", 4).with_attribute("tier", "gold");
//! let profile = AgentProfile::of(&agent);
//! let item = WorkItem::new(WorkItemId::from_u128(1), ChannelKind::Email, now).with_skill("billing", 3);
//!
//! let term = Term::and([Term::ItemSkills, Term::agent_attr_equals("tier", "gold")]);
//! assert!(term.eligible(&profile, &item));
//! assert!(!Term::skill("billing", 5).eligible(&profile, &item));
//! assert_eq!(Term::skill("billing", 5).excluding_term(&profile, &item).unwrap(), "skill billing >= 5");
//!
//! let vip_only = eligible_fn("vip agents", |p: &AgentProfile, _item: &WorkItem| p.attributes.contains_key("vip"));
//! assert!(!vip_only.eligible(&profile, &item));
//! ```

use super::condition::Env;
use super::model::{Agent, ChannelSet, WorkItem};
use super::state::FastMap;
use crate::model::{Attributes, LanguageTag, QueueId};
use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

/// The static part of an agent that eligibility looks at. Agents with equal profiles are grouped
/// and decided together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentProfile {
    /// Bot or human.
    pub is_bot: bool,
    /// Skills and levels.
    pub skills: BTreeMap<String, u32>,
    /// Languages spoken.
    pub languages: BTreeSet<LanguageTag>,
    /// Static attributes.
    pub attributes: Attributes,
    /// Queue memberships: queue → (priority, delay).
    pub queues: BTreeMap<QueueId, Membership>,
}

/// One queue membership inside a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    /// Lower is served first.
    pub priority: u32,
    /// Items reach the agent only after waiting this long (milliseconds).
    pub delay_ms: i64,
}

impl Membership {
    /// The delay as a duration.
    pub fn delay(&self) -> TimeDelta {
        TimeDelta::milliseconds(self.delay_ms)
    }
}

impl AgentProfile {
    /// The profile of an agent.
    pub fn of(agent: &Agent) -> Self {
        AgentProfile {
            is_bot: agent.is_bot,
            skills: agent.skills.clone(),
            languages: agent.languages.clone(),
            attributes: agent.attributes.clone(),
            queues: agent
                .queues
                .iter()
                .map(|m| (m.queue.clone(), Membership { priority: m.priority, delay_ms: m.delay.num_milliseconds() }))
                .collect(),
        }
    }

    /// A canonical text key: equal profiles have equal keys.
    pub(crate) fn key(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether the profile speaks `language` (same primary language: `es` serves `es-MX`).
    pub fn speaks(&self, language: &LanguageTag) -> bool {
        let want = language.primary_language();
        self.languages.iter().any(|l| l.primary_language().eq_ignore_ascii_case(want))
    }

    /// Whether the profile meets every `(skill, min level)` of `required`.
    pub fn has_skills(&self, required: &BTreeMap<String, u32>) -> bool {
        required.iter().all(|(s, min)| self.skills.get(s).is_some_and(|l| l >= min))
    }
}

/// Decides whether agents of a profile may take an item.
///
/// Object safe and `Send + Sync`; implement it to plug in any predicate (the routing
/// expression language, an external rules engine). Keep it pure: the router caches nothing
/// about custom implementations, but calls them once per profile per decision.
pub trait Eligibility: Send + Sync + fmt::Debug {
    /// Whether agents with `profile` may take `item`.
    fn eligible(&self, profile: &AgentProfile, item: &WorkItem) -> bool;

    /// Which part of the condition excludes the profile, in words (`None` if eligible). The
    /// default names the whole condition by its `Debug` form.
    fn excluding_term(&self, profile: &AgentProfile, item: &WorkItem) -> Option<String> {
        (!self.eligible(profile, item)).then(|| format!("{self:?}"))
    }
}

/// A closure as [`Eligibility`], with a name for explanations.
pub struct EligibleFn<F> {
    name: String,
    f: F,
}

impl<F> fmt::Debug for EligibleFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl<F> Eligibility for EligibleFn<F>
where
    F: Fn(&AgentProfile, &WorkItem) -> bool + Send + Sync,
{
    fn eligible(&self, profile: &AgentProfile, item: &WorkItem) -> bool {
        (self.f)(profile, item)
    }
}

/// Wraps a closure as a shareable [`Eligibility`]; `name` appears in explanations.
pub fn eligible_fn<F>(name: impl Into<String>, f: F) -> Arc<dyn Eligibility>
where
    F: Fn(&AgentProfile, &WorkItem) -> bool + Send + Sync + 'static,
{
    Arc::new(EligibleFn { name: name.into(), f })
}

/// A test on one attribute value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttrTest {
    /// The attribute equals the value (numbers by value: `2` equals `2.0`).
    Equals(Value),
    /// The attribute is one of the values (numbers by value).
    In(Vec<Value>),
    /// The attribute is present.
    Exists,
}

impl AttrTest {
    fn test(&self, v: Option<&Value>) -> bool {
        match (self, v) {
            (_, None) => false,
            (AttrTest::Equals(want), Some(v)) => same_value(v, want),
            (AttrTest::In(list), Some(v)) => list.iter().any(|x| same_value(v, x)),
            (AttrTest::Exists, Some(_)) => true,
        }
    }
}

/// Equality of attribute values as the expression language has it: numbers by value (`2` and
/// `2.0` are equal; integers exactly), anything else as JSON.
fn same_value(a: &Value, b: &Value) -> bool {
    use super::expr::ValueRef;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            // Integers exactly, unsigned ones above `i64::MAX` too (the expression values hold
            // those as floats, where neighbours compare equal).
            if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                return x == y;
            }
            super::expr::scalar_eq(ValueRef::from_json(a), ValueRef::from_json(b)) == Some(true)
        }
        _ => a == b,
    }
}

impl fmt::Display for AttrTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrTest::Equals(v) => write!(f, "== {v}"),
            AttrTest::In(vs) => write!(f, "in {}", Value::Array(vs.clone())),
            AttrTest::Exists => f.write_str("exists"),
        }
    }
}

/// Built-in structured eligibility (and, for item-only terms, rule conditions and queue buckets).
///
/// In JSON: `"item_skills"`, `{"skill": {"name": "billing", "min": 3}}`,
/// `{"agent_attr": {"key": "tier", "equals": "gold"}}`, `{"and": [ … ]}`, `{"not": …}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Term {
    /// Always true.
    #[default]
    Any,
    /// The agent has every required skill of the item at its minimum level.
    ItemSkills,
    /// The agent has every optional skill of the item at its minimum level.
    ItemOptionalSkills,
    /// The agent speaks the item's language (same primary language); true if the item has none.
    ItemLanguage,
    /// The agent has `name` at level `min` or more.
    Skill {
        /// Skill name.
        name: String,
        /// Minimum level.
        min: u32,
    },
    /// The agent speaks this language (same primary language).
    Language(LanguageTag),
    /// The item's channel is in the set (item only).
    Channel(ChannelSet),
    /// The agent is a member of the queue.
    Queue(QueueId),
    /// The agent is (`true`) or is not (`false`) a bot.
    Bot(bool),
    /// A test on an agent attribute.
    #[serde(deserialize_with = "attr_term")]
    AgentAttr {
        /// Attribute key.
        key: String,
        /// The test.
        #[serde(flatten)]
        test: AttrTest,
    },
    /// A test on an item attribute (item only).
    #[serde(deserialize_with = "attr_term")]
    ItemAttr {
        /// Attribute key.
        key: String,
        /// The test.
        #[serde(flatten)]
        test: AttrTest,
    },
    /// The agent attribute `agent` equals the item attribute `item`, or is a list containing it
    /// (D365 dynamic match). False when either is missing.
    SameAttr {
        /// Agent attribute key.
        agent: String,
        /// Item attribute key.
        item: String,
    },
    /// The item's priority is at least this (item only).
    PriorityAtLeast(i32),
    /// All of the terms.
    And(Vec<Term>),
    /// Any of the terms.
    Or(Vec<Term>),
    /// Not the term. An [`Expr`](Term::Expr) may not stand under it (a router refuses such a
    /// plan): write the negation inside the expression, `{"expr": "not (…)"}`, where a missing
    /// value stays unknown and counts as no.
    Not(Box<Term>),
    /// A routing expression (`{"expr": "item.channel == \"whatsapp\" and agent.skills.billing >= 3"}`
    /// or the tree form), compiled by the router when the plan is installed; what it may read
    /// depends on where it stands (see [`Condition`](super::Condition)). Uncompiled it matches
    /// nothing.
    Expr(super::condition::Condition),
}

/// The fields of an `agent_attr` / `item_attr` term as written: the key and exactly one test.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttrTermFields {
    key: String,
    #[serde(default, deserialize_with = "present")]
    equals: Option<Value>,
    #[serde(default, rename = "in")]
    one_of: Option<Vec<Value>>,
    #[serde(default, deserialize_with = "present")]
    exists: Option<Value>,
}

/// A field that is there, whatever its value (`null` too).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Reads `{"key": …, "equals" | "in" | "exists": …}`: an unknown field, or not exactly one
/// test, is an error (a misspelt test would otherwise be dropped without a word).
fn attr_term<'de, D: serde::Deserializer<'de>>(d: D) -> Result<(String, AttrTest), D::Error> {
    let f = AttrTermFields::deserialize(d)?;
    // `"exists": null` as written out; `exists = true` where null cannot be written (TOML).
    let exists = match f.exists {
        None => None,
        Some(Value::Null | Value::Bool(true)) => Some(AttrTest::Exists),
        Some(_) => return Err(serde::de::Error::custom("`exists` takes `null` or `true`")),
    };
    let tests = [f.equals.map(AttrTest::Equals), f.one_of.map(AttrTest::In), exists];
    let mut given = tests.into_iter().flatten();
    match (given.next(), given.next()) {
        (Some(test), None) => Ok((f.key, test)),
        _ => Err(serde::de::Error::custom("an attribute term has exactly one test: `equals`, `in` or `exists`")),
    }
}

/// Deepest nesting of `and`/`or`/`not` a term may have.
pub const MAX_TERM_DEPTH: usize = 32;
/// Most nodes one term may have.
pub const MAX_TERM_NODES: usize = 1024;

impl Term {
    /// `and` of the terms.
    pub fn and(terms: impl IntoIterator<Item = Term>) -> Term {
        Term::And(terms.into_iter().collect())
    }
    /// `or` of the terms.
    pub fn or(terms: impl IntoIterator<Item = Term>) -> Term {
        Term::Or(terms.into_iter().collect())
    }
    /// Negation.
    #[allow(clippy::should_implement_trait)]
    pub fn not(term: Term) -> Term {
        Term::Not(Box::new(term))
    }
    /// A skill at a minimum level.
    pub fn skill(name: impl Into<String>, min: u32) -> Term {
        Term::Skill { name: name.into(), min }
    }
    /// Agent attribute equals a value.
    pub fn agent_attr_equals(key: impl Into<String>, value: impl Into<Value>) -> Term {
        Term::AgentAttr { key: key.into(), test: AttrTest::Equals(value.into()) }
    }
    /// A routing expression in text form, e.g.
    /// `Term::expr("item.language in agent.languages and agent.skills.billing >= 3")`.
    pub fn expr(source: impl Into<String>) -> Term {
        Term::Expr(super::condition::Condition::text(source))
    }
    /// Item attribute equals a value.
    pub fn item_attr_equals(key: impl Into<String>, value: impl Into<Value>) -> Term {
        Term::ItemAttr { key: key.into(), test: AttrTest::Equals(value.into()) }
    }

    /// Whether the term reads only the item (usable as a rule condition or queue bucket).
    pub fn is_item_only(&self) -> bool {
        self.check_item_only().is_ok()
    }

    pub(crate) fn check_item_only(&self) -> Result<(), String> {
        match self {
            // Expressions are checked against the rule schema when a router compiles them.
            Term::Any | Term::Channel(_) | Term::ItemAttr { .. } | Term::PriorityAtLeast(_) | Term::Expr(_) => Ok(()),
            Term::And(ts) | Term::Or(ts) => ts.iter().try_for_each(Term::check_item_only),
            Term::Not(t) => t.check_item_only(),
            other => Err(format!("`{other}` reads the agent; only item terms are allowed here")),
        }
    }

    /// Checks depth and size limits.
    pub(crate) fn check_limits(&self) -> Result<(), String> {
        let mut nodes = 0;
        self.walk(0, &mut nodes)
    }

    fn walk(&self, depth: usize, nodes: &mut usize) -> Result<(), String> {
        *nodes += 1;
        if *nodes > MAX_TERM_NODES {
            return Err(format!("more than {MAX_TERM_NODES} terms"));
        }
        if depth > MAX_TERM_DEPTH {
            return Err(format!("nested deeper than {MAX_TERM_DEPTH}"));
        }
        match self {
            Term::And(ts) | Term::Or(ts) => ts.iter().try_for_each(|t| t.walk(depth + 1, nodes)),
            Term::Not(t) => t.walk(depth + 1, nodes),
            Term::AgentAttr { test: AttrTest::In(v), .. } | Term::ItemAttr { test: AttrTest::In(v), .. }
                if v.len() > 1024 =>
            {
                Err("an `in` list has more than 1024 values".into())
            }
            _ => Ok(()),
        }
    }

    /// The first queue a [`Term::Queue`] in this term names that `known` does not hold.
    pub(crate) fn unknown_queue<'a>(&'a self, known: &impl Fn(&QueueId) -> bool) -> Option<&'a QueueId> {
        match self {
            Term::Queue(q) if !known(q) => Some(q),
            Term::And(ts) | Term::Or(ts) => ts.iter().find_map(|t| t.unknown_queue(known)),
            Term::Not(t) => t.unknown_queue(known),
            _ => None,
        }
    }

    /// Evaluates an item-only term on an item (agent terms count as true). Expressions see no
    /// clock, queue or calendar here (those read as missing); the router evaluates rule
    /// conditions with all three.
    pub fn matches_item(&self, item: &WorkItem) -> bool {
        self.matches_in(&Env::item(item))
    }

    /// [`matches_item`](Self::matches_item) with the router's view of the moment.
    pub(crate) fn matches_in(&self, env: &Env<'_>) -> bool {
        let item = env.item;
        match self {
            Term::Channel(set) => set.contains(&item.channel),
            Term::ItemAttr { key, test } => test.test(item.attributes.get(key)),
            Term::PriorityAtLeast(p) => env.priority >= *p,
            Term::And(ts) => ts.iter().all(|t| t.matches_in(env)),
            Term::Or(ts) => ts.iter().any(|t| t.matches_in(env)),
            Term::Not(t) => !t.matches_in(env),
            Term::Expr(c) => c.compiled().is_some_and(|c| c.holds(env)),
            _ => true,
        }
    }

    /// Whether the term reads the item (so its answer per profile differs between items).
    pub(crate) fn reads_item(&self) -> bool {
        match self {
            Term::Any
            | Term::Skill { .. }
            | Term::Language(_)
            | Term::Queue(_)
            | Term::Bot(_)
            | Term::AgentAttr { .. } => false,
            Term::And(ts) | Term::Or(ts) => ts.iter().any(Term::reads_item),
            Term::Not(t) => t.reads_item(),
            Term::Expr(c) => c.compiled().is_none_or(|c| c.reads_item()),
            _ => true,
        }
    }

    /// The set of eligible profiles, through the table's caches.
    pub(crate) fn mask(&self, item: &WorkItem, table: &mut ProfileTable) -> Mask {
        if let Term::Any = self {
            return table.full();
        }
        if !self.reads_item() {
            let key = self as *const Term as usize;
            if let Some(m) = table.static_cache.get(&key) {
                return m.clone();
            }
            let m = table.mask_where(|p| self.eligible(p, item));
            table.static_cache.insert(key, m.clone());
            return m;
        }
        match self {
            Term::ItemSkills => table.skills_mask(&item.skills),
            Term::ItemOptionalSkills => table.skills_mask(&item.optional_skills),
            Term::ItemLanguage => match &item.language {
                None => table.full(),
                Some(l) => table.language_mask(l),
            },
            Term::Channel(_) | Term::ItemAttr { .. } | Term::PriorityAtLeast(_) => {
                if self.matches_item(item) {
                    table.full()
                } else {
                    Mask::default()
                }
            }
            Term::And(ts) => {
                let mut m = table.full();
                for t in ts {
                    if m.is_empty() {
                        break;
                    }
                    m.and_with(&t.mask(item, table));
                }
                m
            }
            Term::Or(ts) => {
                let mut m = Mask::default();
                for t in ts {
                    m.or_with(&t.mask(item, table));
                }
                m
            }
            Term::Not(t) => {
                let mut full = table.full();
                full.and_not(&t.mask(item, table));
                full
            }
            Term::Expr(c) => match c.compiled() {
                None => Mask::default(),
                Some(c) => {
                    // Agent-only clauses once per profile (cached with the steps each took),
                    // the rest per profile left, within what the first part left of the budget.
                    let budget = c.budget();
                    let key = c.agent_part.as_ref().map(|part| part as *const _ as usize);
                    if let (Some(part), Some(key)) = (&c.agent_part, key)
                        && !table.part_cache.contains_key(&key)
                    {
                        let mut m = Mask::default();
                        let mut steps = Vec::with_capacity(table.list.len());
                        for (i, p) in table.list.iter().enumerate() {
                            let (holds, used) = c.part_holds(part, &Env::profile(p, item), budget);
                            steps.push(used);
                            if holds {
                                m.set(i);
                            }
                        }
                        table.part_cache.insert(key, (m, steps));
                    }
                    let cached = key.and_then(|key| table.part_cache.get(&key));
                    let mut m = cached.map_or_else(|| table.full(), |(m, _)| m.clone());
                    if let Some(rest) = &c.item_part {
                        let mut keep = Mask::default();
                        m.for_each(|p| {
                            let used = cached.and_then(|(_, steps)| steps.get(p)).copied().unwrap_or(0);
                            if let Some(profile) = table.list.get(p)
                                && c.part_holds(rest, &Env::profile(profile, item), budget.saturating_sub(used)).0
                            {
                                keep.set(p);
                            }
                        });
                        m = keep;
                    }
                    m
                }
            },
            _ => table.mask_where(|p| self.eligible(p, item)),
        }
    }
}

impl Eligibility for Term {
    fn eligible(&self, p: &AgentProfile, item: &WorkItem) -> bool {
        match self {
            Term::Any => true,
            Term::ItemSkills => p.has_skills(&item.skills),
            Term::ItemOptionalSkills => p.has_skills(&item.optional_skills),
            Term::ItemLanguage => item.language.as_ref().is_none_or(|l| p.speaks(l)),
            Term::Skill { name, min } => p.skills.get(name).is_some_and(|l| l >= min),
            Term::Language(l) => p.speaks(l),
            Term::Queue(q) => p.queues.contains_key(q),
            Term::Bot(b) => p.is_bot == *b,
            Term::AgentAttr { key, test } => test.test(p.attributes.get(key)),
            Term::SameAttr { agent, item: key } => match (p.attributes.get(agent), item.attributes.get(key)) {
                (Some(Value::Array(list)), Some(v)) => list.iter().any(|x| same_value(x, v)),
                (Some(a), Some(v)) => same_value(a, v),
                _ => false,
            },
            Term::Channel(_) | Term::ItemAttr { .. } | Term::PriorityAtLeast(_) => self.matches_item(item),
            Term::And(ts) => ts.iter().all(|t| t.eligible(p, item)),
            Term::Or(ts) => ts.iter().any(|t| t.eligible(p, item)),
            Term::Not(t) => !t.eligible(p, item),
            Term::Expr(c) => c.compiled().is_some_and(|c| c.holds(&Env::profile(p, item))),
        }
    }

    fn excluding_term(&self, p: &AgentProfile, item: &WorkItem) -> Option<String> {
        match self {
            Term::And(ts) => ts.iter().find_map(|t| t.excluding_term(p, item)),
            Term::ItemSkills | Term::ItemOptionalSkills => {
                let req = if matches!(self, Term::ItemSkills) { &item.skills } else { &item.optional_skills };
                req.iter()
                    .find(|(s, min)| p.skills.get(*s).is_none_or(|l| l < *min))
                    .map(|(s, min)| format!("skill {s} >= {min}"))
            }
            Term::ItemLanguage => (!self.eligible(p, item))
                .then(|| format!("language {}", item.language.as_ref().map_or("", |l| l.as_str()))),
            other => (!other.eligible(p, item)).then(|| other.to_string()),
        }
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, ts: &[Term], sep: &str| -> fmt::Result {
            f.write_str("(")?;
            for (i, t) in ts.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                write!(f, "{t}")?;
            }
            f.write_str(")")
        };
        match self {
            Term::Any => f.write_str("any"),
            Term::ItemSkills => f.write_str("item skills"),
            Term::ItemOptionalSkills => f.write_str("item optional skills"),
            Term::ItemLanguage => f.write_str("item language"),
            Term::Skill { name, min } => write!(f, "skill {name} >= {min}"),
            Term::Language(l) => write!(f, "language {l}"),
            Term::Channel(c) => write!(f, "channel in {c:?}"),
            Term::Queue(q) => write!(f, "member of {q}"),
            Term::Bot(true) => f.write_str("is a bot"),
            Term::Bot(false) => f.write_str("is human"),
            Term::AgentAttr { key, test } => write!(f, "agent.{key} {test}"),
            Term::ItemAttr { key, test } => write!(f, "item.{key} {test}"),
            Term::SameAttr { agent, item } => write!(f, "agent.{agent} matches item.{item}"),
            Term::PriorityAtLeast(p) => write!(f, "priority >= {p}"),
            Term::And(ts) => list(f, ts, " and "),
            Term::Or(ts) => list(f, ts, " or "),
            Term::Not(t) => write!(f, "not {t}"),
            Term::Expr(c) => write!(f, "{c}"),
        }
    }
}

/// A set of profile indexes (a bitset; no allocation up to 64 profiles).
#[derive(Debug, Default, Eq)]
pub(crate) struct Mask {
    w0: u64,
    rest: Vec<u64>,
}

impl PartialEq for Mask {
    #[inline]
    fn eq(&self, o: &Self) -> bool {
        // Field by field, as derived, without a `memcmp` call for the usual empty `rest`.
        self.w0 == o.w0 && self.rest.len() == o.rest.len() && (self.rest.is_empty() || self.rest == o.rest)
    }
}

impl std::hash::Hash for Mask {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.w0.hash(h);
        self.rest.hash(h);
    }
}

impl Clone for Mask {
    #[inline]
    fn clone(&self) -> Self {
        // Up to 64 profiles there is nothing to allocate; skip the `Vec` clone call.
        Mask { w0: self.w0, rest: if self.rest.is_empty() { Vec::new() } else { self.rest.clone() } }
    }

    #[inline]
    fn clone_from(&mut self, o: &Self) {
        self.w0 = o.w0;
        if self.rest.is_empty() && o.rest.is_empty() {
            return;
        }
        self.rest.clone_from(&o.rest);
    }
}

impl Mask {
    #[inline]
    fn word(&self, w: usize) -> u64 {
        if w == 0 { self.w0 } else { self.rest.get(w - 1).copied().unwrap_or(0) }
    }

    fn word_mut(&mut self, w: usize) -> &mut u64 {
        if w == 0 {
            return &mut self.w0;
        }
        if self.rest.len() < w {
            self.rest.resize(w, 0);
        }
        &mut self.rest[w - 1]
    }

    pub fn set(&mut self, i: usize) {
        *self.word_mut(i / 64) |= 1 << (i % 64);
    }

    pub fn clear(&mut self, i: usize) {
        if i / 64 == 0 || self.rest.len() >= i / 64 {
            *self.word_mut(i / 64) &= !(1 << (i % 64));
        }
    }

    #[inline]
    pub fn get(&self, i: usize) -> bool {
        self.word(i / 64) & (1 << (i % 64)) != 0
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.w0 == 0 && self.rest.iter().all(|w| *w == 0)
    }

    #[inline]
    pub fn and_with(&mut self, o: &Mask) {
        self.w0 &= o.w0;
        for (i, w) in self.rest.iter_mut().enumerate() {
            *w &= o.rest.get(i).copied().unwrap_or(0);
        }
    }

    #[inline]
    pub fn or_with(&mut self, o: &Mask) {
        self.w0 |= o.w0;
        if o.rest.is_empty() {
            return;
        }
        if self.rest.len() < o.rest.len() {
            self.rest.resize(o.rest.len(), 0);
        }
        for (i, w) in o.rest.iter().enumerate() {
            self.rest[i] |= *w;
        }
    }

    #[inline]
    pub fn and_not(&mut self, o: &Mask) {
        self.w0 &= !o.w0;
        for (i, w) in self.rest.iter_mut().enumerate() {
            *w &= !o.rest.get(i).copied().unwrap_or(0);
        }
    }

    /// `self & o` is non-empty.
    #[inline]
    pub fn intersects(&self, o: &Mask) -> bool {
        self.w0 & o.w0 != 0 || self.rest.iter().zip(&o.rest).any(|(a, b)| a & b != 0)
    }

    /// Calls `f` for each index in `self & o`, in ascending order.
    #[inline]
    pub fn for_each_common(&self, o: &Mask, mut f: impl FnMut(usize)) {
        let words = 1 + self.rest.len().min(o.rest.len());
        for w in 0..words {
            let mut bits = self.word(w) & o.word(w);
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                f(w * 64 + b);
                bits &= bits - 1;
            }
        }
    }

    /// Calls `f` for each index, ascending.
    pub fn for_each(&self, mut f: impl FnMut(usize)) {
        for w in 0..=self.rest.len() {
            let mut bits = self.word(w);
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                f(w * 64 + b);
                bits &= bits - 1;
            }
        }
    }
}

/// The interned profiles and the masks cached over them.
#[derive(Debug, Default)]
pub(crate) struct ProfileTable {
    pub list: Vec<Arc<AgentProfile>>,
    by_key: HashMap<String, usize>,
    full: Mask,
    /// Agent-only sub-terms of installed plans, by address (cleared when plans change).
    pub static_cache: FastMap<usize, Mask>,
    /// Agent-only parts of installed conditions, by address: the profiles they hold for, and
    /// the steps each profile's evaluation took (the item part gets what is left of the
    /// condition's budget). Cleared with the rest.
    pub part_cache: FastMap<usize, (Mask, Vec<u64>)>,
    skill_cache: FastMap<String, Vec<(u32, Mask)>>,
    language_cache: FastMap<String, Mask>,
}

impl ProfileTable {
    /// The profile index of `profile`, interning it; `true` if it is new.
    pub fn intern(&mut self, profile: AgentProfile) -> (usize, bool) {
        let key = profile.key();
        if let Some(i) = self.by_key.get(&key) {
            return (*i, false);
        }
        let i = self.list.len();
        self.list.push(Arc::new(profile));
        self.by_key.insert(key, i);
        self.full.set(i);
        self.clear_caches();
        (i, true)
    }

    pub fn clear_caches(&mut self) {
        self.static_cache.clear();
        self.part_cache.clear();
        self.skill_cache.clear();
        self.language_cache.clear();
    }

    #[inline]
    pub fn full(&self) -> Mask {
        self.full.clone()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn mask_where(&self, mut f: impl FnMut(&AgentProfile) -> bool) -> Mask {
        let mut m = Mask::default();
        for (i, p) in self.list.iter().enumerate() {
            if f(p) {
                m.set(i);
            }
        }
        m
    }

    fn skill_mask(&mut self, skill: &str, min: u32) -> Mask {
        if let Some(v) = self.skill_cache.get(skill)
            && let Some((_, m)) = v.iter().find(|(l, _)| *l == min)
        {
            return m.clone();
        }
        let m = self.mask_where(|p| p.skills.get(skill).is_some_and(|l| *l >= min));
        self.skill_cache.entry(skill.to_owned()).or_default().push((min, m.clone()));
        m
    }

    fn skills_mask(&mut self, required: &BTreeMap<String, u32>) -> Mask {
        let mut m = self.full();
        for (s, min) in required {
            if m.is_empty() {
                break;
            }
            let sm = self.skill_mask(s, *min);
            m.and_with(&sm);
        }
        m
    }

    fn language_mask(&mut self, l: &LanguageTag) -> Mask {
        let primary = l.primary_language();
        if let Some(m) = self.language_cache.get(primary) {
            return m.clone();
        }
        let m = self.mask_where(|p| p.speaks(l));
        self.language_cache.insert(primary.to_owned(), m.clone());
        m
    }
}
