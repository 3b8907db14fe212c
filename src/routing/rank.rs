//! Agent ordering when several agents could take an item: [`Ranker`] and its [`RankKey`]s.
//!
//! A ranker is a lexicographic list of keys; the first key decides, later keys break ties, and
//! remaining ties go to the agent registered with the router first (deterministic).
//!
//! Keys on the live state of an agent (idle time, load, spare capacity, round-robin turn) are
//! kept in per-profile indexes, keys on the static profile (proficiency, attributes) are
//! computed once per profile, so a ranked decision stays O(profiles + log agents). Only
//! [`RankKey::Custom`] needs a scan of the eligible available agents.
//!
//! ```
//! use touchpoint::routing::{RankKey, Ranker, SortOrder};
//! // Best proficiency in billing, then least loaded, then longest idle.
//! let r = Ranker::new([RankKey::Proficiency("billing".into()), RankKey::LeastLoad, RankKey::LongestIdle]);
//! assert_eq!(r.keys.len(), 3);
//! let json = serde_json::to_string(&r).unwrap();
//! assert_eq!(json, r#"[{"proficiency":"billing"},"least_load","longest_idle"]"#);
//! let by_seniority = Ranker::new([RankKey::Attribute { key: "seniority".into(), order: SortOrder::Desc }]);
//! # let _ = by_seniority;
//! ```

use super::eligibility::AgentProfile;
use super::model::WorkItem;
use crate::model::AgentId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// Ascending or descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    /// Smallest first.
    #[default]
    Asc,
    /// Largest first.
    Desc,
}

/// A custom agent score for [`RankKey::Custom`] (lower ranks first). Called once per eligible
/// available agent, so it costs a scan: keep it cheap.
pub trait AgentScore: Send + Sync + fmt::Debug {
    /// The score of `agent` for `item`; lower is better.
    fn score(&self, agent: &AgentView<'_>, item: &WorkItem) -> i64;
}

/// What a custom score or policy may look at: one agent's profile and live state.
#[derive(Debug, Clone)]
pub struct AgentView<'a> {
    /// The agent.
    pub id: &'a AgentId,
    /// Static profile.
    pub profile: &'a AgentProfile,
    /// Current status name.
    pub status: &'a str,
    /// Items held (assigned and offered).
    pub load: u32,
    /// Items held on the channel asked about.
    pub channel_load: u32,
    /// Free places on the channel asked about (`u32::MAX` = unlimited).
    pub spare: u32,
    /// Since when the agent holds no work (`None` while holding some).
    pub idle_since: Option<DateTime<Utc>>,
    /// When the agent was last given work.
    pub last_assigned_at: Option<DateTime<Utc>>,
}

/// A closure as [`AgentScore`].
pub struct ScoreFn<F>(String, F);

impl<F> fmt::Debug for ScoreFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<F> AgentScore for ScoreFn<F>
where
    F: Fn(&AgentView<'_>, &WorkItem) -> i64 + Send + Sync,
{
    fn score(&self, agent: &AgentView<'_>, item: &WorkItem) -> i64 {
        (self.1)(agent, item)
    }
}

/// Wraps a closure as a [`RankKey::Custom`] key.
pub fn score_fn<F>(name: impl Into<String>, f: F) -> RankKey
where
    F: Fn(&AgentView<'_>, &WorkItem) -> i64 + Send + Sync + 'static,
{
    RankKey::Custom(Arc::new(ScoreFn(name.into(), f)))
}

/// One key of a [`Ranker`].
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RankKey {
    /// Agents holding no work first, longest idle first (Twilio, Amazon Connect, Genesys
    /// default); agents holding work after them, by when they last became idle.
    LongestIdle,
    /// Fewest items held first (Rocket.Chat auto selection, Chatwoot balanced, SF least active).
    LeastLoad,
    /// Lowest use of the item channel's limit (or of the shared budget) first, in per mille.
    LeastUtilization,
    /// Most free places on the item's channel first (Zendesk, SF most available).
    MostSpareCapacity,
    /// Least recently given work first (round robin, Rocket.Chat load rotation).
    RoundRobin,
    /// Highest level of the skill first (agents without it last).
    Proficiency(String),
    /// By a numeric (or boolean) agent attribute; agents without it last.
    Attribute {
        /// Attribute key.
        key: String,
        /// Direction.
        #[serde(default)]
        order: SortOrder,
    },
    /// The item's preferred agents first, in their order, then its last agent (while the
    /// preference holds), then everyone else.
    Affinity,
    /// A host-supplied score (needs a scan of eligible available agents). Not serialisable.
    #[serde(skip)]
    Custom(Arc<dyn AgentScore>),
}

impl fmt::Debug for RankKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RankKey::LongestIdle => f.write_str("LongestIdle"),
            RankKey::LeastLoad => f.write_str("LeastLoad"),
            RankKey::LeastUtilization => f.write_str("LeastUtilization"),
            RankKey::MostSpareCapacity => f.write_str("MostSpareCapacity"),
            RankKey::RoundRobin => f.write_str("RoundRobin"),
            RankKey::Proficiency(s) => write!(f, "Proficiency({s:?})"),
            RankKey::Attribute { key, order } => write!(f, "Attribute({key:?}, {order:?})"),
            RankKey::Affinity => f.write_str("Affinity"),
            RankKey::Custom(c) => write!(f, "Custom({c:?})"),
        }
    }
}

impl PartialEq for RankKey {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (RankKey::Custom(a), RankKey::Custom(b)) => Arc::ptr_eq(a, b),
            (RankKey::Proficiency(a), RankKey::Proficiency(b)) => a == b,
            (RankKey::Attribute { key: a, order: x }, RankKey::Attribute { key: b, order: y }) => a == b && x == y,
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b) && !matches!(a, RankKey::Custom(_)),
        }
    }
}

/// Most keys in one ranker.
pub const MAX_RANK_KEYS: usize = 6;
/// Most live-state keys (idle, load, utilisation, spare, round robin) in one ranker.
pub const MAX_DYNAMIC_KEYS: usize = 3;

/// A lexicographic agent ordering. The default is [`RankKey::LongestIdle`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ranker {
    /// The keys, most significant first.
    pub keys: Vec<RankKey>,
}

impl Default for Ranker {
    fn default() -> Self {
        Ranker { keys: vec![RankKey::LongestIdle] }
    }
}

impl Ranker {
    /// A ranker of these keys.
    pub fn new(keys: impl IntoIterator<Item = RankKey>) -> Self {
        Ranker { keys: keys.into_iter().collect() }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.keys.len() > MAX_RANK_KEYS {
            return Err(format!("at most {MAX_RANK_KEYS} keys, found {}", self.keys.len()));
        }
        let dynamic = self.dynamic_keys().len();
        if dynamic > MAX_DYNAMIC_KEYS {
            return Err(format!("at most {MAX_DYNAMIC_KEYS} live-state keys, found {dynamic}"));
        }
        for k in &self.keys {
            if let RankKey::Proficiency(s) | RankKey::Attribute { key: s, .. } = k
                && (s.is_empty() || s.len() > 128)
            {
                return Err("a skill or attribute name is 1 to 128 characters".into());
            }
        }
        Ok(())
    }

    /// The live-state keys, in order.
    pub(crate) fn dynamic_keys(&self) -> Vec<DynKey> {
        self.keys.iter().filter_map(DynKey::of).collect()
    }

    pub(crate) fn has_custom(&self) -> bool {
        self.keys.iter().any(|k| matches!(k, RankKey::Custom(_)))
    }
}

/// A live-state key, indexable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum DynKey {
    Idle,
    Load,
    Utilization,
    Spare,
    RoundRobin,
}

impl DynKey {
    fn of(k: &RankKey) -> Option<DynKey> {
        match k {
            RankKey::LongestIdle => Some(DynKey::Idle),
            RankKey::LeastLoad => Some(DynKey::Load),
            RankKey::LeastUtilization => Some(DynKey::Utilization),
            RankKey::MostSpareCapacity => Some(DynKey::Spare),
            RankKey::RoundRobin => Some(DynKey::RoundRobin),
            _ => None,
        }
    }
}

/// The value of a static key for a profile (lower ranks first).
pub(crate) fn static_value(key: &RankKey, p: &AgentProfile) -> i64 {
    match key {
        RankKey::Proficiency(s) => p.skills.get(s).map_or(i64::MAX, |l| -i64::from(*l)),
        RankKey::Attribute { key, order } => {
            let v = match p.attributes.get(key) {
                Some(Value::Number(n)) => n.as_f64(),
                Some(Value::Bool(b)) => Some(f64::from(u8::from(*b))),
                _ => None,
            };
            match (v.map(ordered), order) {
                (None, _) => i64::MAX,
                (Some(k), SortOrder::Asc) => k,
                (Some(k), SortOrder::Desc) => -k,
            }
        }
        _ => 0,
    }
}

/// An `i64` in the order of `v`'s value, for every finite `v`: no two values tie (the sign bit
/// first, then the magnitude's bits, reversed for negatives), and none reaches `i64::MAX` (a
/// missing value) or, negated, overflows.
fn ordered(v: f64) -> i64 {
    // `+ 0.0` makes -0.0 the same key as 0.0.
    let bits = (v + 0.0).to_bits() as i64;
    if bits < 0 { bits ^ i64::MAX } else { bits }
}
