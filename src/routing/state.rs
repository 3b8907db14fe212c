//! The router's internal state: agent slots and indexes, item slots and classes, timers.
//! Everything here runs under the router's one lock.

use super::condition::{Env, QueueView};
use super::eligibility::{AgentProfile, Mask, ProfileTable, Term};
use super::model::{Agent, PresenceStatus, Queue, WorkItem};
use super::plan::{Fallback, Plan, Pool, PoolMode, SkipIf, Step, TimerBasis};
use super::queue::{ItemKey, KeyedHeap, discipline_key_at};
use super::rank::{AgentView, DynKey, RankKey, Ranker, static_value};
use super::{RouterConfig, RoutingEvent, WorkItemId};
use crate::model::{AgentId, ChannelKind, QueueId};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The router's internal maps, keyed by ids the host already validated (never iterated, not
/// exposed): the crate's unkeyed fast hasher.
pub(crate) type FastMap<K, V> = crate::hash::IdMap<K, V>;
use std::sync::Arc;

pub(crate) type DynArr = [i64; 3];
pub(crate) type FullKey = [i64; 8];
/// An index entry: live key, registration order, agent slot.
pub(crate) type IndexEntry = (DynArr, u64, u32);

const BUSY_OFFSET: i64 = 1 << 60;
const BUCKET_SHIFT: u32 = 10;
/// How many entries a freed agent looks past in one class before leaving the rest to `sweep`.
pub(crate) const CLASS_WALK: usize = 32;

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// `now - then` exactly as chrono computes it, given `then` in milliseconds ([`ms`]): one
/// conversion of `now` instead of calendar arithmetic on both.
pub(crate) fn elapsed(now: DateTime<Utc>, then: DateTime<Utc>, then_ms: i64) -> TimeDelta {
    let (a, b) = (now.timestamp_subsec_nanos(), then.timestamp_subsec_nanos());
    if a >= 1_000_000_000 || b >= 1_000_000_000 {
        return now - then; // a leap second: chrono's rules
    }
    let sub_ms = i64::from(a % 1_000_000) - i64::from(b % 1_000_000);
    TimeDelta::milliseconds(ms(now) - then_ms) + TimeDelta::nanoseconds(sub_ms)
}

pub(crate) fn from_ms(v: i64) -> DateTime<Utc> {
    from_parts(v.div_euclid(1000), (v.rem_euclid(1000) * 1_000_000) as u32)
        .or_else(|| DateTime::from_timestamp_millis(v))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

pub(crate) fn add(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    let sub = t.timestamp_subsec_nanos();
    let nanos = i64::from(sub) + i64::from(d.subsec_nanos());
    // A leap second (sub-second part ≥ 1 s) is left to chrono.
    let fast = (sub < 1_000_000_000)
        .then_some(())
        .and_then(|()| t.timestamp().checked_add(d.num_seconds()))
        .and_then(|s| s.checked_add(nanos.div_euclid(1_000_000_000)))
        .and_then(|s| from_parts(s, nanos.rem_euclid(1_000_000_000) as u32));
    fast.or_else(|| t.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

std::thread_local! {
    /// The last day converted by [`from_parts`] (days since the epoch, its date): timers and
    /// steps convert many instants of the same day, and the calendar arithmetic is the costly
    /// part of building a `DateTime`.
    static LAST_DAY: std::cell::Cell<(i64, chrono::NaiveDate)> =
        const { std::cell::Cell::new((0, chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date"))) };
}

/// `secs` since the epoch plus `nanos` (below one second), the calendar day memoized; `None`
/// out of chrono's range (the caller falls back to chrono).
fn from_parts(secs: i64, nanos: u32) -> Option<DateTime<Utc>> {
    let (day, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400) as u32);
    let date = LAST_DAY.with(|c| {
        let (d, date) = c.get();
        if d == day {
            return Some(date);
        }
        let date = chrono::NaiveDate::from_num_days_from_ce_opt(i32::try_from(day.checked_add(719_163)?).ok()?)?;
        c.set((day, date));
        Some(date)
    })?;
    let time = chrono::NaiveTime::from_num_seconds_from_midnight_opt(sod, nanos)?;
    Some(chrono::NaiveDateTime::new(date, time).and_utc())
}

#[cfg(test)]
mod time_and_agent_tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn elapsed_is_chrono_s_difference() {
        let t = |s: i64, ns: u32| Utc.timestamp_opt(s, ns).single().expect("a valid instant");
        let cases = [
            (t(1_772_442_000, 0), t(1_772_441_000, 0)),
            (t(1_772_442_000, 123_456_789), t(1_772_441_999, 987_654_321)),
            (t(1_772_441_000, 5), t(1_772_442_000, 999_999_999)),
            (t(-86_401, 999_999), t(-1, 1)),
            (t(0, 1), t(-1_000_000_000_000, 700_000_001)),
            (t(1_772_441_999, 1_500_000_000), t(1_772_441_000, 3)), // a leap second
        ];
        for (now, then) in cases {
            assert_eq!(elapsed(now, then, ms(then)), now - then, "{now} - {then}");
            assert_eq!(elapsed(then, now, ms(now)), then - now, "{then} - {now}");
        }
    }

    #[test]
    fn an_assignment_reads_and_writes_the_first_three_cache_lines_of_an_agent_slot() {
        let hot_end = std::mem::offset_of!(AgentSlot, chans) + std::mem::size_of::<Vec<ChanCap>>();
        assert!(hot_end <= 64, "the hot fields end at byte {hot_end}");
        // Then a line with the status and the id, and one with what holding an item writes.
        assert!(std::mem::offset_of!(AgentSlot, id) + std::mem::size_of::<AgentId>() <= 128);
        assert!(std::mem::offset_of!(AgentSlot, agent) <= 192);
        for end in [
            std::mem::offset_of!(AgentSlot, load),
            std::mem::offset_of!(AgentSlot, budget_used),
            std::mem::offset_of!(AgentSlot, idle_since),
            std::mem::offset_of!(AgentSlot, last_assigned),
        ] {
            assert!(end < 64);
        }
        assert_eq!(std::mem::align_of::<AgentSlot>(), 64);
    }
}

// ---------------------------------------------------------------------------------------------
// Agents

/// An agent in the router. `repr(C)`, cache-line aligned, the fields an assignment reads and
/// writes first: with many agents, the one a decision picks is usually out of cache, and each
/// line it touches costs a memory access. The router keeps it boxed, so whether an agent is
/// there is the pointer, not a niche in some late field of the record.
#[derive(Debug)]
#[repr(C, align(64))]
pub(crate) struct AgentSlot {
    pub load: u32,
    pub budget_used: u32,
    pub profile: usize,
    pub reg: u64,
    pub idle_since: i64,
    pub last_assigned: u64,
    /// Per channel (by index, one for each of the router's channels): the items held there and
    /// the agent's limit and cost on it.
    pub chans: Vec<ChanCap>,
    // Second line: what a capacity check and the decision's answer read.
    pub status: PresenceStatus,
    /// `agent.id` (a clone: a short key is copied in place), here for the events and answers
    /// that name the agent.
    pub id: AgentId,
    // Third line: what holding an item writes.
    /// Items held (offered or assigned), by item slot.
    pub held: Vec<u32>,
    pub entries: Vec<(usize, usize, usize, DynArr)>,
    pub last_assigned_at: Option<DateTime<Utc>>,
    pub agent: Agent,
    // Cold: the shift (read when a status or a shift changes, never by a decision).
    /// The status the agent's presence names; `status` is what the agent may take now (the same
    /// while on shift, [`PresenceStatus::offline`] while off shift).
    pub presence: PresenceStatus,
    /// The generation of the last status change (an offline timer of an older one is stale).
    pub presence_gen: u64,
    /// Whether the agent's schedule is open (always for an agent without one).
    pub on_shift: bool,
    /// The due time (ms) and generation of the agent's pending shift timer.
    pub shift_due: Option<i64>,
    pub shift_gen: u64,
    /// The agent's last activity (ms), for the idle rule; the due time and generation of its
    /// pending idle check (at most one).
    pub last_activity: i64,
    pub idle_due: Option<i64>,
    pub idle_gen: u64,
}

/// What agent slot `presence` and `on_shift` let the agent take now.
fn effective(presence: &PresenceStatus, on_shift: bool) -> PresenceStatus {
    if on_shift { presence.clone() } else { PresenceStatus::offline() }
}

/// `t` in milliseconds, rounded up: a timer due then never fires before `t`.
pub(crate) fn ceil_ms(t: DateTime<Utc>) -> i64 {
    ms(t).saturating_add(i64::from(!t.timestamp_subsec_nanos().is_multiple_of(1_000_000)))
}

/// An agent's state on one channel: items held, and its [`Capacity`](super::Capacity) there
/// (read from the capacity's maps once, when the agent or the channel is added).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ChanCap {
    pub load: u32,
    pub limit: Option<u32>,
    pub cost: u32,
}

/// Why an agent cannot take an item on a channel right now.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Block {
    Presence,
    Limit,
    Budget,
    Interrupted(ChannelKind),
}

impl std::fmt::Display for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Block::Presence => f.write_str("its presence takes no work on this channel"),
            Block::Limit => f.write_str("it is at its limit on this channel"),
            Block::Budget => f.write_str("its total capacity is used up"),
            Block::Interrupted(holding) => write!(f, "it holds {holding} work, which this channel may not interrupt"),
        }
    }
}

impl AgentSlot {
    /// Sets what the agent may take now. An agent with no work who could take none before and
    /// can now is idle from `now` (longest idle counts time available, not time signed in),
    /// whichever way the change came: a presence change, a shift, an upsert.
    fn set_effective(&mut self, status: PresenceStatus, now: DateTime<Utc>) {
        if self.load == 0 && self.status.channels.is_empty() && !status.channels.is_empty() {
            self.idle_since = ms(now);
        }
        self.status = status;
    }

    pub fn chan_load(&self, c: usize) -> u32 {
        self.chans.get(c).map_or(0, |x| x.load)
    }

    /// The agent's state on channel `c` (`ch`).
    fn chan(&self, c: usize, ch: &ChannelKind) -> ChanCap {
        let cap = &self.agent.capacity;
        self.chans.get(c).copied().unwrap_or_else(|| ChanCap {
            load: 0,
            limit: cap.limit_of(ch),
            cost: cap.cost_of(ch),
        })
    }

    /// Sizes `chans` to `channels`, each with the agent's limit and cost there (loads kept).
    /// The budget in use is counted again at the current costs, so that releasing an item
    /// later gives back what it counts for now: a cost changed while the agent holds work
    /// neither leaves budget used up for good nor lets the agent go over its total.
    pub fn sync_chans(&mut self, channels: &[ChannelKind]) {
        let cap = &self.agent.capacity;
        self.chans.resize(channels.len(), ChanCap { load: 0, limit: None, cost: 1 });
        let mut used = 0u32;
        for (x, ch) in self.chans.iter_mut().zip(channels) {
            x.limit = cap.limit_of(ch);
            x.cost = cap.cost_of(ch);
            used = used.saturating_add(x.load.saturating_mul(x.cost));
        }
        self.budget_used = used;
    }

    /// The channel of the interruption rule that keeps work on channel `c` from the agent: a
    /// rule blocking `c` while the agent holds work on the rule's channel. `held`: the work in
    /// question is held already (an open offer) and does not count against itself.
    pub fn interrupting<'c>(&self, c: usize, channels: &'c [ChannelKind], held: bool) -> Option<&'c ChannelKind> {
        let ch = channels.get(c)?;
        self.agent.capacity.interruptions.iter().find_map(|rule| {
            let hc = channels.iter().position(|k| *k == rule.while_holding)?;
            (rule.blocks.contains(ch) && self.chan_load(hc) > u32::from(held && hc == c)).then(|| &channels[hc])
        })
    }

    pub fn can_take(&self, c: usize, channels: &[ChannelKind]) -> Result<(), Block> {
        let Some(ch) = channels.get(c) else { return Err(Block::Presence) };
        if self.status.offline || !self.status.channels.contains(ch) {
            return Err(Block::Presence);
        }
        let x = self.chan(c, ch);
        if let Some(limit) = x.limit
            && x.load >= limit
        {
            return Err(Block::Limit);
        }
        let cap = &self.agent.capacity;
        if let Some(total) = cap.total
            && u64::from(self.budget_used) + u64::from(x.cost) > u64::from(total)
        {
            return Err(Block::Budget);
        }
        match self.interrupting(c, channels, false) {
            Some(holding) => Err(Block::Interrupted(holding.clone())),
            None => Ok(()),
        }
    }

    pub fn spare(&self, c: usize, ch: &ChannelKind) -> i64 {
        let x = self.chan(c, ch);
        let by_limit = x.limit.map_or(i64::MAX / 4, |l| i64::from(l) - i64::from(x.load));
        let by_budget = self
            .agent
            .capacity
            .total
            .map_or(i64::MAX / 4, |t| (i64::from(t) - i64::from(self.budget_used)) / i64::from(x.cost.max(1)));
        by_limit.min(by_budget)
    }

    pub fn dyn_value(&self, k: DynKey, c: usize, ch: &ChannelKind) -> i64 {
        match k {
            DynKey::Idle => {
                if self.load == 0 {
                    self.idle_since
                } else {
                    self.idle_since.saturating_add(BUSY_OFFSET)
                }
            }
            DynKey::Load => i64::from(self.load),
            DynKey::Utilization => {
                let x = self.chan(c, ch);
                match (x.limit, self.agent.capacity.total) {
                    (Some(l), _) if l > 0 => i64::from(x.load) * 1000 / i64::from(l),
                    (_, Some(t)) if t > 0 => i64::from(self.budget_used) * 1000 / i64::from(t),
                    _ => 0,
                }
            }
            DynKey::Spare => -self.spare(c, ch),
            DynKey::RoundRobin => self.last_assigned as i64,
        }
    }

    pub fn dyn_arr(&self, spec: &[DynKey], c: usize, ch: &ChannelKind) -> DynArr {
        let mut a = [0; 3];
        for (i, k) in spec.iter().enumerate().take(3) {
            a[i] = self.dyn_value(*k, c, ch);
        }
        a
    }

    pub fn view<'a>(&'a self, profile: &'a AgentProfile, c: usize, ch: &ChannelKind) -> AgentView<'a> {
        let spare = self.spare(c, ch);
        AgentView {
            id: &self.agent.id,
            profile,
            status: &self.agent.presence.status,
            load: self.load,
            channel_load: self.chan_load(c),
            spare: u32::try_from(spare.max(0)).unwrap_or(u32::MAX),
            idle_since: (self.load == 0).then(|| from_ms(self.idle_since)),
            last_assigned_at: self.last_assigned_at,
        }
    }
}

/// One profile's available agents on one channel, in key order.
///
/// Under the usual rankers an agent put back sorts after every agent already there (freed
/// later = idle since later), so most entries go to `run`, a sorted deque whose best entry is
/// taken in O(1); the others go to `rest`, a B-tree. An entry removed from the middle of `run`
/// is left there dead (its stamp no longer the agent's) and skipped, and `run` is compacted
/// when the dead outnumber the living.
#[derive(Debug, Default)]
pub(crate) struct ProfileSet {
    /// Sorted entries with their stamps; the front one is always live.
    run: VecDeque<(IndexEntry, u64)>,
    rest: BTreeSet<IndexEntry>,
    dead: usize,
}

impl ProfileSet {
    pub fn len(&self) -> usize {
        self.run.len() - self.dead + self.rest.len()
    }

    fn first(&self) -> Option<IndexEntry> {
        let run = self.run.front().map(|(e, _)| *e);
        match (run, self.rest.first()) {
            (Some(a), Some(b)) => Some(a.min(*b)),
            (a, b) => a.or(b.copied()),
        }
    }
}

/// No profile (the end of a [`ChanIndex`] list).
pub(crate) const NIL: u32 = u32::MAX;

/// The agents that could take an item on one channel now, per profile, for one ranker spec.
#[derive(Debug)]
pub(crate) struct ChanIndex {
    /// Per profile: its available agents.
    sets: Vec<ProfileSet>,
    /// Per profile: its best entry.
    pub top: Vec<Option<IndexEntry>>,
    /// Per profile: its best entry's first live key and registration packed for one compare
    /// (`u128::MAX`: none), which orders the tops exactly when the spec has at most one key.
    pub fast: Vec<u128>,
    /// Profiles with at least one available agent.
    pub avail: Mask,
    /// The profiles with a top, best first, as a list linked through `next`/`prev` from
    /// `head` ([`NIL`]: none): with one key, a decision walks it from the front and stops at
    /// the first eligible profile; a top that changes is unlinked and linked in again from the
    /// back (a new top is usually the latest).
    pub head: u32,
    tail: u32,
    pub next: Vec<u32>,
    prev: Vec<u32>,
    /// Per agent slot: the stamp of its live entry in a `run` (0: none there).
    stamps: Vec<u64>,
    last_stamp: u64,
    /// After the last take from the front of a run: the agents now first and second in it (the
    /// profile's likely next picks; [`NIL`]: none), for [`State::warm_next_picks`].
    pub next_picks: (u32, u32),
}

impl Default for ChanIndex {
    fn default() -> Self {
        ChanIndex {
            sets: Vec::new(),
            top: Vec::new(),
            fast: Vec::new(),
            avail: Mask::default(),
            head: NIL,
            tail: NIL,
            next: Vec::new(),
            prev: Vec::new(),
            stamps: Vec::new(),
            last_stamp: 0,
            next_picks: (NIL, NIL),
        }
    }
}

impl ChanIndex {
    fn ensure(&mut self, p: usize) {
        if self.sets.len() <= p {
            self.sets.resize_with(p + 1, ProfileSet::default);
            self.top.resize(p + 1, None);
            self.fast.resize(p + 1, u128::MAX);
            self.next.resize(p + 1, NIL);
            self.prev.resize(p + 1, NIL);
        }
    }

    /// Sets profile `p`'s packed top key, keeping the list of tops in order.
    fn set_fast(&mut self, p: usize, new: u128) {
        let Some(old) = self.fast.get(p).copied() else { return };
        if old == new {
            return;
        }
        self.fast[p] = new;
        let p32 = p as u32;
        if old != u128::MAX {
            let (before, after) = (self.prev[p], self.next[p]);
            match self.next.get_mut(before as usize) {
                Some(n) => *n = after,
                None => self.head = after,
            }
            match self.prev.get_mut(after as usize) {
                Some(n) => *n = before,
                None => self.tail = before,
            }
        }
        if new != u128::MAX {
            let mut before = self.tail;
            while let Some(&k) = self.fast.get(before as usize)
                && k > new
            {
                before = self.prev[before as usize];
            }
            let after = match self.next.get_mut(before as usize) {
                Some(n) => std::mem::replace(n, p32),
                None => std::mem::replace(&mut self.head, p32),
            };
            match self.prev.get_mut(after as usize) {
                Some(n) => *n = p32,
                None => self.tail = p32,
            }
            self.prev[p] = before;
            self.next[p] = after;
        }
    }

    /// `e`'s first live key and registration, packed so that `u128` order is their order.
    pub fn fast_key(e: &IndexEntry) -> u128 {
        (u128::from((e.0[0] as u64) ^ (1 << 63)) << 64) | u128::from(e.1)
    }

    /// How many agents of profile `p` are available.
    pub fn len(&self, p: usize) -> usize {
        self.sets.get(p).map_or(0, ProfileSet::len)
    }

    /// The available agents of profile `p`, best first.
    pub fn iter(&self, p: usize) -> impl Iterator<Item = IndexEntry> + '_ {
        let set = self.sets.get(p);
        let stamps = &self.stamps;
        let mut run = set
            .into_iter()
            .flat_map(|s| s.run.iter())
            .filter(move |(e, st)| stamps.get(e.2 as usize) == Some(st))
            .map(|(e, _)| *e)
            .peekable();
        let mut rest = set.into_iter().flat_map(|s| s.rest.iter()).copied().peekable();
        std::iter::from_fn(move || match (run.peek(), rest.peek()) {
            (Some(a), Some(b)) if b < a => rest.next(),
            (Some(_), _) => run.next(),
            (None, _) => rest.next(),
        })
    }

    fn insert(&mut self, p: usize, e: IndexEntry) {
        self.ensure(p);
        let a = e.2 as usize;
        if self.stamps.len() <= a {
            self.stamps.resize(a + 1, 0);
        }
        let Some(set) = self.sets.get_mut(p) else { return };
        if set.run.back().is_none_or(|(b, _)| *b < e) {
            self.last_stamp += 1;
            set.run.push_back((e, self.last_stamp));
            self.stamps[a] = self.last_stamp;
        } else {
            set.rest.insert(e);
        }
        if self.top[p].is_none_or(|t| e < t) {
            self.top[p] = Some(e);
            self.set_fast(p, Self::fast_key(&e));
        }
        self.avail.set(p);
    }

    fn remove(&mut self, p: usize, e: &IndexEntry) {
        let ChanIndex { sets, top, avail, stamps, .. } = self;
        let Some(set) = sets.get_mut(p) else { return };
        let a = e.2 as usize;
        let stamp = stamps.get(a).copied().unwrap_or(0);
        if stamp != 0 {
            // In the run: the front is taken at once, another entry left dead.
            stamps[a] = 0;
            if set.run.front().is_some_and(|(_, s)| *s == stamp) {
                set.run.pop_front();
                while let Some((f, s)) = set.run.front()
                    && stamps.get(f.2 as usize) != Some(s)
                {
                    set.run.pop_front();
                    set.dead = set.dead.saturating_sub(1);
                }
                let second = set.run.get(1).map_or(NIL, |(n, _)| n.2);
                if let Some(st) = stamps.get(second as usize) {
                    prefetch(st);
                }
                self.next_picks = (set.run.front().map_or(NIL, |(f, _)| f.2), second);
            } else {
                set.dead += 1;
            }
            if set.dead > 32 && set.dead * 2 > set.run.len() {
                set.run.retain(|(f, s)| stamps.get(f.2 as usize) == Some(s));
                set.dead = 0;
            }
        } else {
            set.rest.remove(e);
        }
        let empty = set.len() == 0;
        if empty {
            avail.clear(p);
        }
        if top[p].as_ref() == Some(e) {
            top[p] = set.first();
            let fast = top[p].as_ref().map_or(u128::MAX, Self::fast_key);
            self.set_fast(p, fast);
        }
    }
}

#[derive(Debug)]
pub(crate) struct SpecIndex {
    pub spec: Vec<DynKey>,
    pub chans: Vec<ChanIndex>,
}

// ---------------------------------------------------------------------------------------------
// Rankers and plan

#[derive(Debug, Clone)]
pub(crate) enum KeyKind {
    Static,
    Dyn(usize),
    Affinity,
    Custom(Arc<dyn super::rank::AgentScore>),
}

#[derive(Debug)]
pub(crate) struct CRanker {
    pub ranker: Ranker,
    pub spec: usize,
    pub kinds: Vec<KeyKind>,
    /// Per profile, per key: the static value.
    pub statics: Vec<Vec<i64>>,
    pub affinity: bool,
    pub custom: bool,
}

impl CRanker {
    fn rebuild_statics(&mut self, profiles: &ProfileTable) {
        self.statics =
            profiles.list.iter().map(|p| self.ranker.keys.iter().map(|k| static_value(k, p)).collect()).collect();
    }
}

/// Where an item is in its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum StepRef {
    Rule(usize, usize),
    /// No rule matched: the implicit step.
    Implicit,
    /// Any member of the queue it waits in (fallback, overflow).
    AnyMember,
}

#[derive(Debug)]
pub(crate) struct CPlan {
    pub plan: Plan,
    pub implicit: Step,
    pub any_member: Step,
    /// Ranker index per rule per step.
    pub rankers: Vec<Vec<usize>>,
    /// Each step in words, per rule per step.
    pub labels: Vec<Vec<Arc<str>>>,
    /// Each rule's name, shared by the events that name it.
    pub rule_names: Vec<Arc<str>>,
}

impl CPlan {
    /// The name of rule `r` (empty for a removed rule).
    pub fn rule_name(&self, r: usize) -> Arc<str> {
        self.rule_names.get(r).cloned().unwrap_or_else(|| Arc::from(""))
    }

    pub fn step(&self, at: StepRef) -> &Step {
        match at {
            StepRef::Rule(r, s) => self.plan.rules.get(r).and_then(|x| x.steps.get(s)).unwrap_or(&self.implicit),
            StepRef::Implicit => &self.implicit,
            StepRef::AnyMember => &self.any_member,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Items

#[derive(Debug, Clone)]
pub(crate) enum IState {
    Waiting {
        class: usize,
        seq: u64,
    },
    Offered {
        agents: Vec<u32>,
        epoch: u64,
    },
    Assigned {
        agent: u32,
        epoch: u64,
    },
    /// Waiting for the host's decision (out of every queue class).
    Awaiting {
        request: u64,
        deadline: DateTime<Utc>,
    },
    /// Between states inside one operation.
    Moving,
}

#[derive(Debug, Default)]
pub(crate) struct Tier {
    pub pool: Mask,
    pub mask: Mask,
    pub elig: Mask,
    /// Agents named individually; a last agent comes last (see `last_until`).
    pub explicit: Vec<AgentId>,
    /// When `explicit` ends with the item's last agent: the end of that preference (ms).
    pub last_until: Option<i64>,
}

impl Tier {
    /// The agents the tier names at `now_ms`: a last agent only while its preference holds.
    pub fn named(&self, now_ms: i64) -> &[AgentId] {
        match self.last_until {
            Some(until) if until <= now_ms => self.explicit.split_last().map_or(&[], |(_, rest)| rest),
            _ => &self.explicit,
        }
    }
}

impl Clone for Tier {
    fn clone(&self) -> Self {
        Tier {
            pool: self.pool.clone(),
            mask: self.mask.clone(),
            elig: self.elig.clone(),
            explicit: self.explicit.clone(),
            last_until: self.last_until,
        }
    }

    /// In place: masks of up to 64 profiles and empty name lists copy without allocating.
    fn clone_from(&mut self, o: &Self) {
        self.pool.clone_from(&o.pool);
        self.mask.clone_from(&o.mask);
        self.elig.clone_from(&o.elig);
        if !(self.explicit.is_empty() && o.explicit.is_empty()) {
            self.explicit.clone_from(&o.explicit);
        }
        self.last_until = o.last_until;
    }
}

/// An item's eligibility tiers: its own, or shared with the items a batch step move moved with
/// it (`relax`; one tier list per group instead of a copy per item). Read as a slice.
#[derive(Debug, Clone, Default)]
#[repr(C)]
pub(crate) struct Tiers {
    shared: Option<Arc<[Tier]>>,
    /// The item's own tiers (kept for their allocation while `shared` is set).
    own: Vec<Tier>,
}

impl std::ops::Deref for Tiers {
    type Target = [Tier];
    fn deref(&self) -> &[Tier] {
        match &self.shared {
            Some(s) => s,
            None => &self.own,
        }
    }
}

impl<'a> IntoIterator for &'a Tiers {
    type Item = &'a Tier;
    type IntoIter = std::slice::Iter<'a, Tier>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Tiers {
    /// The item's own tiers, to be written over (the shared ones are dropped).
    pub fn rewrite(&mut self) -> &mut Vec<Tier> {
        self.shared = None;
        &mut self.own
    }

    /// Tiers of the item's own, written into `own` (an allocation kept from a removed item).
    pub fn from_own(own: Vec<Tier>) -> Tiers {
        Tiers { shared: None, own }
    }

    /// The item's own tier list, emptied, for reuse by a later item.
    pub fn into_spare(self) -> Vec<Tier> {
        let mut own = self.own;
        own.clear();
        own
    }

    /// Shares `tiers`.
    pub fn share(&mut self, tiers: &Arc<[Tier]>) {
        self.shared = Some(Arc::clone(tiers));
    }
}

/// An item in the router. `repr(C)`, cache-line aligned, the fields a step move reads and
/// writes first: moving a million waiting items is bound by the cache lines each one touches.
#[derive(Debug)]
#[repr(C, align(64))]
pub(crate) struct ItemSlot {
    pub state: IState,
    pub at: StepRef,
    pub step_due: Option<i64>,
    pub step_gen: u64,
    pub wait_gen: u64,
    /// The `wait_gen` for which a `Queued` event was sent.
    pub announced: u64,
    /// `item.effective_since()` in milliseconds (items do not change once submitted).
    pub since_ms: i64,
    /// `item.eligible_since` in milliseconds.
    pub eligible_ms: i64,
    pub queue: QueueId,
    pub step_entered: DateTime<Utc>,
    /// `queue`'s index in [`Queues`] (`u32::MAX` if there is no such queue).
    pub qi: u32,
    pub chan: usize,
    pub priority: i32,
    /// The number of `item.skills` among the skill sets numbered for batch step moves (0 until
    /// the item first waits; see `relax`).
    pub skill_set: u32,
    pub by_policy: bool,
    /// Last of the hot fields: a step move reads only the shared tiers, at its start.
    pub tiers: Tiers,
    /// The rest, behind a box: a step move over a million items walks 256-byte slots.
    pub item: Box<ItemRecord>,
}

/// The submitted item (what it derefs to) and the router's notes on it that a step move does
/// not read. `repr(C)`, the item first: what a step move reads of it (its id, queue and skills)
/// is its first 64 bytes.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct ItemRecord {
    pub work: WorkItem,
    pub plan_gen: u64,
    pub queue_entered: DateTime<Utc>,
    /// Agents not to offer it again (declined it, handed it off), by id: also once removed
    /// and added again.
    pub excluded: Vec<AgentId>,
    pub declines: u32,
    pub bot_hold: Option<u32>,
    /// Retry timers already scheduled for queue delays (due ms).
    pub retries: Vec<i64>,
    /// When it was last assigned (ms), and how long agents held it assigned before (ms): time
    /// handled is no wait in the estimated wait.
    pub assigned_ms: i64,
    pub handled_ms: i64,
    /// The `step_gen` whose external decision was made (no second request in that visit).
    pub decided_gen: u64,
    /// The fallback of the open decision request.
    pub decision_fallback: Option<super::plan::DecisionFallback>,
    /// An overflow (a timeout action) placed it in its queue: a new plan leaves it there
    /// ([`State::reclassify`]); a bot's handoff classifies it again.
    pub moved: bool,
    /// Another queue's after-hours action moved it into its queue ([`State::waits_for_opening`]).
    pub hours_moved: bool,
}

impl ItemRecord {
    /// Its agent gave it back at `now_ms` (requeued, handed off): the time it was held is added
    /// to `handled_ms`.
    pub fn unassigned(&mut self, now_ms: i64) {
        self.handled_ms = self.handled_ms.saturating_add(now_ms.saturating_sub(self.assigned_ms));
    }
}

impl std::ops::Deref for ItemRecord {
    type Target = WorkItem;
    fn deref(&self) -> &WorkItem {
        &self.work
    }
}

/// The index for a new item slot: a free one, or a new one at the end (its slot `None`).
pub(crate) fn take_item_index(free: &mut Vec<u32>, items: &mut Vec<Option<ItemSlot>>) -> u32 {
    match free.pop() {
        Some(i) => i,
        None => {
            items.push(None);
            (items.len() - 1) as u32
        }
    }
}

impl ItemSlot {
    pub fn union_mask(&self) -> Mask {
        let mut m = Mask::default();
        for t in &self.tiers {
            m.or_with(&t.mask);
        }
        m
    }
}

#[derive(Debug)]
pub(crate) struct Class {
    pub queue: QueueId,
    /// `queue`'s index in [`Queues`].
    pub qi: u32,
    pub chan: usize,
    pub mask: Mask,
    pub heap: KeyedHeap<u32>,
}

/// The queues by id, each with a dense index that never changes (queues are never removed):
/// hot paths keep the index and skip hashing the id.
#[derive(Debug, Default)]
pub(crate) struct Queues {
    ids: FastMap<QueueId, u32>,
    slots: Vec<QueueSlot>,
}

impl Queues {
    pub fn idx(&self, q: &QueueId) -> Option<u32> {
        self.ids.get(q).copied()
    }
    pub fn at(&self, qi: u32) -> Option<&QueueSlot> {
        self.slots.get(qi as usize)
    }
    pub fn at_mut(&mut self, qi: u32) -> Option<&mut QueueSlot> {
        self.slots.get_mut(qi as usize)
    }
    pub fn get(&self, q: &QueueId) -> Option<&QueueSlot> {
        self.idx(q).and_then(|i| self.at(i))
    }
    pub fn get_mut(&mut self, q: &QueueId) -> Option<&mut QueueSlot> {
        self.idx(q).and_then(|i| self.at_mut(i))
    }
    pub fn contains_key(&self, q: &QueueId) -> bool {
        self.ids.contains_key(q)
    }
    pub fn len(&self) -> usize {
        self.slots.len()
    }
    /// Adds a queue that is not there yet; its index.
    pub fn insert(&mut self, q: QueueId, slot: QueueSlot) -> u32 {
        if let Some(i) = self.idx(&q) {
            if let Some(s) = self.at_mut(i) {
                *s = slot;
            }
            return i;
        }
        self.slots.push(slot);
        let i = (self.slots.len() - 1) as u32;
        self.ids.insert(q, i);
        i
    }
    pub fn keys(&self) -> impl Iterator<Item = &QueueId> {
        self.slots.iter().map(|s| &s.config.id)
    }
}

#[derive(Debug)]
pub(crate) struct QueueSlot {
    pub config: Queue,
    pub classes: Vec<usize>,
    pub waiting: usize,
    pub waits: VecDeque<i64>,
    /// (profile, delay ms) of members with a delay.
    pub delays: Vec<(usize, i64)>,
    pub members: Mask,
    /// The queue's hours ([`Queue::hours`]) were closed at the last check, made at
    /// `checked_at` (ms; `None`: the hours or the calendars changed since).
    pub closed: bool,
    pub checked_at: Option<i64>,
    /// When the hours are checked next (ms), and that timer's epoch.
    pub hours_due: Option<i64>,
    pub hours_gen: u64,
}

// ---------------------------------------------------------------------------------------------
// Timers

#[derive(Debug, Clone, Copy)]
pub(crate) enum TimerKind {
    Step {
        item: u32,
        epoch: u64,
    },
    MaxWait {
        item: u32,
        epoch: u64,
    },
    Offer {
        item: u32,
        epoch: u64,
    },
    NoReply {
        item: u32,
        epoch: u64,
    },
    Retry {
        item: u32,
        epoch: u64,
    },
    Offline {
        agent: u32,
        epoch: u64,
    },
    Decision {
        item: u32,
        epoch: u64,
    },
    /// Agent `agent`'s schedule may open or close (`epoch`: its `shift_gen`).
    Shift {
        agent: u32,
        epoch: u64,
    },
    /// Queue `queue`'s hours may open or close (`epoch`: its `hours_gen`).
    QueueHours {
        queue: u32,
        epoch: u64,
    },
    /// Agent `agent` may have been idle long enough (`epoch`: its `idle_gen`).
    Idle {
        agent: u32,
        epoch: u64,
    },
    /// The calendars changed: every agent with a schedule and every queue with hours is
    /// checked (`epoch`: `calendars_gen`).
    Calendars {
        epoch: u64,
    },
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Timer {
    pub due: i64,
    pub seq: u64,
    pub kind: TimerKind,
}

/// Timers bucketed by ~1 s of due time. A bucket is sorted (latest first) the first time it
/// becomes current, after which due timers pop off its end in O(1).
#[derive(Debug, Default)]
pub(crate) struct Timers {
    buckets: BTreeMap<i64, Bucket>,
    pub len: usize,
    /// An emptied timer list kept for its allocation (taken buckets come back here).
    spare: Vec<Timer>,
}

#[derive(Debug, Default)]
struct Bucket {
    sorted: bool,
    v: Vec<Timer>,
}

impl Bucket {
    /// Adds a timer (in its place once the bucket is sorted).
    fn put(&mut self, t: Timer) {
        if self.sorted {
            let pos = self.v.partition_point(|x| later_first(x, &t) == std::cmp::Ordering::Less);
            self.v.insert(pos, t);
        } else {
            self.v.push(t);
        }
    }
}

fn later_first(a: &Timer, b: &Timer) -> std::cmp::Ordering {
    (b.due, b.seq).cmp(&(a.due, a.seq))
}

impl Timers {
    pub fn add(&mut self, t: Timer) {
        self.buckets.entry(t.due >> BUCKET_SHIFT).or_default().put(t);
        self.len += 1;
    }

    /// An empty list with the capacity of the last one given back.
    pub fn take_spare(&mut self) -> Vec<Timer> {
        std::mem::take(&mut self.spare)
    }

    /// Gives back a list of fired timers (its allocation is reused).
    pub fn recycle(&mut self, mut v: Vec<Timer>) {
        if v.capacity() > self.spare.capacity() {
            v.clear();
            self.spare = v;
        }
    }

    /// Adds timers in order, looking each run of one bucket up once (a list that is one new
    /// bucket becomes that bucket as it is).
    pub fn add_all(&mut self, ts: &mut Vec<Timer>) {
        if let (Some(first), Some(last)) = (ts.first(), ts.last())
            && first.due >> BUCKET_SHIFT == last.due >> BUCKET_SHIFT
            && ts.iter().all(|t| t.due >> BUCKET_SHIFT == first.due >> BUCKET_SHIFT)
        {
            let b = self.buckets.entry(first.due >> BUCKET_SHIFT).or_default();
            if b.v.is_empty() && !b.sorted {
                self.len += ts.len();
                b.v = std::mem::take(ts);
                return;
            }
        }
        let mut rest: &[Timer] = ts;
        while let Some(first) = rest.first() {
            let key = first.due >> BUCKET_SHIFT;
            let n = rest.iter().position(|t| t.due >> BUCKET_SHIFT != key).unwrap_or(rest.len());
            let (run, tail) = rest.split_at(n);
            let b = self.buckets.entry(key).or_default();
            if b.sorted {
                for t in run {
                    b.put(*t);
                }
            } else {
                b.v.extend_from_slice(run);
            }
            self.len += n;
            rest = tail;
        }
        ts.clear();
    }

    /// No timer is scheduled.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    pub fn next_due(&self) -> Option<i64> {
        self.buckets.first_key_value().and_then(|(_, b)| b.v.iter().map(|t| t.due).min())
    }

    /// Removes and returns the timers due at or before `now`, in (due, seq) order.
    pub fn take_due(&mut self, now: i64) -> Vec<Timer> {
        let mut out = Vec::new();
        let now_bucket = now >> BUCKET_SHIFT;
        while let Some(mut e) = self.buckets.first_entry() {
            if *e.key() > now_bucket {
                break;
            }
            // A bucket due as a whole (every earlier one, and usually the current one too) is
            // taken in one move; only a partly due bucket is sorted and popped from.
            let earlier = *e.key() < now_bucket;
            let b = e.get();
            let all_due = earlier
                || if b.sorted { b.v.first().is_none_or(|t| t.due <= now) } else { b.v.iter().all(|t| t.due <= now) };
            if all_due {
                let v = e.remove().v;
                if out.is_empty() {
                    out = v;
                } else {
                    out.extend(v);
                }
                continue;
            }
            let b = e.get_mut();
            if !b.sorted {
                b.v.sort_unstable_by(later_first);
                b.sorted = true;
            }
            while b.v.last().is_some_and(|t| t.due <= now) {
                if let Some(t) = b.v.pop() {
                    out.push(t);
                }
            }
            if b.v.is_empty() {
                e.remove();
            }
            break;
        }
        self.len = self.len.saturating_sub(out.len());
        // Timers are mostly added in due order: usually there is nothing to sort.
        if !out.is_sorted_by_key(|t| (t.due, t.seq)) {
            out.sort_unstable_by_key(|t| (t.due, t.seq));
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The state

#[derive(Debug)]
pub(crate) struct State {
    pub config: RouterConfig,
    pub plan: Arc<CPlan>,
    pub plan_gen: u64,
    /// Earlier plans (with their generations) that items offered, assigned or awaiting a
    /// decision were classified by; they report those plans' rules and steps until they are
    /// classified again.
    retired_plans: Vec<(u64, Arc<CPlan>)>,
    pub rankers: Vec<CRanker>,
    pub index: Vec<SpecIndex>,
    pub policy: Option<Arc<dyn super::plan::RoutingPolicy>>,
    pub profiles: ProfileTable,
    pub profile_agents: Vec<u32>,
    pub signed_in: Vec<u32>,
    /// Per profile: agents off shift (schedule closed).
    pub off_shift: Vec<u32>,
    pub channels: Vec<ChannelKind>,
    pub agents: Vec<Option<Box<AgentSlot>>>,
    pub agent_ids: FastMap<AgentId, u32>,
    free_agents: Vec<u32>,
    pub items: Vec<Option<ItemSlot>>,
    pub item_ids: FastMap<WorkItemId, u32>,
    pub free_items: Vec<u32>,
    pub queues: Queues,
    pub classes: Vec<Class>,
    /// Items naming an agent individually (explicit pools, preferred and last agents), by the
    /// agent's id: an agent added (or added again) later finds them.
    pub targeted: FastMap<AgentId, Vec<(u32, u64)>>,
    /// `targeted` is cleared of ids no waiting item names when it grows past this.
    targeted_prune_at: usize,
    pub timers: Timers,
    pub seq: u64,
    pub assign_seq: u64,
    pub events: Vec<RoutingEvent>,
    /// Agents whose capacity was freed during the current operation.
    pub freed: Vec<u32>,
    /// Agents who took work an interruption rule of theirs names during the current operation:
    /// their open offers the rule now blocks are withdrawn before the operation ends.
    pub interrupted: Vec<u32>,
    pub unknown_agent: AgentId,
    /// The class the last enqueued item went to (a hint for the next one).
    last_class: Option<usize>,
    /// Reused by `reindex`.
    scratch: Vec<(usize, usize, usize, DynArr)>,
    /// Tier lists of removed items, kept for their allocations.
    pub spare_tiers: Vec<Vec<Tier>>,
    /// The step-timer batch's memo, kept for its buffers.
    pub(crate) relax: super::relax::StepMemo,
    /// The skill sets numbered for batch step moves ([`ItemSlot::skill_set`]).
    pub(crate) skill_sets: super::relax::SkillSets,
    /// Tiers shared by items of steps that read their skills only ([`State::compute_tiers`]).
    pub(crate) tiers_memo: super::relax::TiersMemo,
    /// Changes whenever what tiers are computed from changes, other than the item: the plan,
    /// a queue, the set of profiles.
    pub(crate) tiers_gen: u64,
    /// What expressions can read, and the registered functions.
    pub schemas: super::condition::Schemas,
    /// Business-hours schedules for `schedule(…)` and agents' shifts.
    pub calendars: Arc<super::calendar::Calendars>,
    /// Bumped by every `set_calendars`: only the latest [`TimerKind::Calendars`] applies.
    pub calendars_gen: u64,
    /// The idle rule ([`Router::set_idle_policy`](super::Router::set_idle_policy)).
    pub idle: Option<super::IdlePolicy>,
    /// Set while an item that a queue's after-hours action moved is routed in its new queue:
    /// there it waits even if that queue is closed too.
    pub hours_move: bool,
}

/// The best candidates for an item, best first (one without allocating).
#[derive(Debug)]
pub(crate) enum Cands {
    None,
    One([Cand; 1]),
    Many(Vec<Cand>),
}

impl std::ops::Deref for Cands {
    type Target = [Cand];
    fn deref(&self) -> &[Cand] {
        match self {
            Cands::None => &[],
            Cands::One(c) => c,
            Cands::Many(v) => v,
        }
    }
}

/// A candidate agent for an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Cand {
    pub key: FullKey,
    pub reg: u64,
    pub agent: u32,
}

impl State {
    pub fn new(config: RouterConfig) -> Self {
        let default_queue = Queue::new(config.default_queue.clone());
        let mut s = State {
            config,
            plan: Arc::new(CPlan {
                plan: Plan::default(),
                implicit: Step::default(),
                any_member: Step::default(),
                rankers: Vec::new(),
                labels: Vec::new(),
                rule_names: Vec::new(),
            }),
            plan_gen: 0,
            retired_plans: Vec::new(),
            rankers: Vec::new(),
            index: Vec::new(),
            policy: None,
            profiles: ProfileTable::default(),
            profile_agents: Vec::new(),
            signed_in: Vec::new(),
            off_shift: Vec::new(),
            channels: Vec::new(),
            agents: Vec::new(),
            agent_ids: FastMap::default(),
            free_agents: Vec::new(),
            items: Vec::new(),
            item_ids: FastMap::default(),
            free_items: Vec::new(),
            queues: Queues::default(),
            classes: Vec::new(),
            targeted: FastMap::default(),
            targeted_prune_at: TARGETED_PRUNE_MIN,
            timers: Timers::default(),
            seq: 0,
            assign_seq: 0,
            events: Vec::new(),
            freed: Vec::new(),
            interrupted: Vec::new(),
            unknown_agent: AgentId::new("unknown").expect("a literal key is valid"),
            scratch: Vec::new(),
            spare_tiers: Vec::new(),
            relax: Default::default(),
            skill_sets: Default::default(),
            tiers_memo: Default::default(),
            tiers_gen: 0,
            last_class: None,
            schemas: super::condition::Schemas::default(),
            calendars: Arc::default(),
            calendars_gen: 0,
            hours_move: false,
            idle: None,
        };
        s.install_plan(Plan::default());
        s.upsert_queue_slot(default_queue);
        s
    }

    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn chan_of(&mut self, ch: &ChannelKind) -> usize {
        if let Some(i) = self.channels.iter().position(|c| c == ch) {
            return i;
        }
        self.channels.push(ch.clone());
        let c = self.channels.len() - 1;
        for si in 0..self.index.len() {
            self.index[si].chans.push(ChanIndex::default());
        }
        for a in 0..self.agents.len() {
            if let Some(slot) = self.agents[a].as_mut() {
                slot.sync_chans(&self.channels);
                self.reindex(a as u32);
            }
        }
        c
    }

    // ----- plan and rankers

    /// The plan of generation `plan_gen` (an item's `plan_gen`): the current one or a retired one.
    pub fn plan_of(&self, plan_gen: u64) -> &Arc<CPlan> {
        if plan_gen == self.plan_gen {
            return &self.plan;
        }
        self.retired_plans.iter().find(|(g, _)| *g == plan_gen).map_or(&self.plan, |(_, p)| p)
    }

    /// Drops the retired plans no item was classified by.
    pub fn prune_retired_plans(&mut self) {
        let current = self.plan_gen;
        let mut gens: Vec<u64> =
            self.items.iter().flatten().map(|x| x.item.plan_gen).filter(|g| *g != current).collect();
        gens.sort_unstable();
        gens.dedup();
        self.retired_plans.retain(|(g, _)| gens.binary_search(g).is_ok());
    }

    pub fn install_plan(&mut self, plan: Plan) {
        let implicit = Step::new(Pool::default()).eligible(Term::and([Term::ItemSkills, Term::ItemLanguage]));
        let any_member = Step::new(Pool::default());
        self.rankers.clear();
        let default = self.config.default_ranker.clone();
        self.add_ranker(default.clone());
        let mut rankers = Vec::new();
        for rule in &plan.rules {
            let mut v = Vec::new();
            for step in &rule.steps {
                v.push(match &step.ranker {
                    Some(r) => self.add_ranker(r.clone()),
                    // Preferred agents are ordered, best first: a step drawing on them ranks
                    // by that order before the router's default.
                    None if step.pool.preferred_agents
                        && !default.keys.iter().any(|k| matches!(k, RankKey::Affinity)) =>
                    {
                        let keys = std::iter::once(RankKey::Affinity).chain(default.keys.iter().cloned());
                        self.add_ranker(Ranker::new(keys))
                    }
                    None => 0,
                });
            }
            rankers.push(v);
        }
        let labels = plan
            .rules
            .iter()
            .map(|rule| {
                rule.steps
                    .iter()
                    .enumerate()
                    .map(|(s, step)| match &step.name {
                        Some(n) => Arc::from(format!("rule {:?} step {s} ({n})", rule.name)),
                        None => Arc::from(format!("rule {:?} step {s}", rule.name)),
                    })
                    .collect()
            })
            .collect();
        let rule_names = plan.rules.iter().map(|r| Arc::from(r.name.as_str())).collect();
        let old = std::mem::replace(
            &mut self.plan,
            Arc::new(CPlan { plan, implicit, any_member, rankers, labels, rule_names }),
        );
        self.retired_plans.push((self.plan_gen, old));
        self.plan_gen += 1;
        self.tiers_gen += 1;
        self.profiles.clear_caches();
    }

    fn add_ranker(&mut self, ranker: Ranker) -> usize {
        let spec_keys = ranker.dynamic_keys();
        let spec = match self.index.iter().position(|s| s.spec == spec_keys) {
            Some(i) => i,
            None => {
                let chans = (0..self.channels.len()).map(|_| ChanIndex::default()).collect();
                self.index.push(SpecIndex { spec: spec_keys, chans });
                let si = self.index.len() - 1;
                for a in 0..self.agents.len() {
                    if self.agents[a].is_some() {
                        self.reindex(a as u32);
                    }
                }
                si
            }
        };
        let mut dyn_pos = 0;
        let kinds = ranker
            .keys
            .iter()
            .map(|k| match k {
                RankKey::LongestIdle
                | RankKey::LeastLoad
                | RankKey::LeastUtilization
                | RankKey::MostSpareCapacity
                | RankKey::RoundRobin => {
                    dyn_pos += 1;
                    KeyKind::Dyn(dyn_pos - 1)
                }
                RankKey::Proficiency(_) | RankKey::Attribute { .. } => KeyKind::Static,
                RankKey::Affinity => KeyKind::Affinity,
                RankKey::Custom(c) => KeyKind::Custom(c.clone()),
            })
            .collect();
        let mut c = CRanker {
            affinity: ranker.keys.iter().any(|k| matches!(k, RankKey::Affinity)),
            custom: ranker.has_custom(),
            ranker,
            spec,
            kinds,
            statics: Vec::new(),
        };
        c.rebuild_statics(&self.profiles);
        self.rankers.push(c);
        self.rankers.len() - 1
    }

    /// Whether the step at `at` ranks by affinity (preferred and last agents count there).
    fn ranks_by_affinity(&self, at: StepRef) -> bool {
        self.rankers.get(self.ranker_of(at)).is_some_and(|r| r.affinity)
    }

    pub fn ranker_of(&self, at: StepRef) -> usize {
        match at {
            StepRef::Rule(r, s) => self.plan.rankers.get(r).and_then(|v| v.get(s)).copied().unwrap_or(0),
            _ => 0,
        }
    }

    // ----- queues

    pub fn upsert_queue_slot(&mut self, q: Queue) {
        self.tiers_gen += 1;
        let members = self.profiles.mask_where(|p| p.queues.contains_key(&q.id));
        let delays = self.delays_of(&q.id);
        let hours_changed = self.queues.get(&q.id).map_or(q.hours.is_some(), |s| s.config.hours != q.hours);
        let id = q.id.clone();
        match self.queues.get_mut(&q.id) {
            Some(slot) => {
                let rekey = slot.config.discipline != q.discipline;
                // A max wait added or shortened holds for the items waiting now too (one
                // lengthened or removed is seen when their timers fire).
                let sooner = q.max_wait.filter(|new| slot.config.max_wait.is_none_or(|old| *new < old));
                slot.config = q.clone();
                if let Some(m) = sooner {
                    let waiting: Vec<(u32, DateTime<Utc>, u64)> = self
                        .items
                        .iter()
                        .enumerate()
                        .filter_map(|(i, x)| x.as_ref().map(|x| (i as u32, x)))
                        .filter(|(_, x)| {
                            x.queue == q.id && matches!(x.state, IState::Waiting { .. } | IState::Awaiting { .. })
                        })
                        .map(|(i, x)| (i, add(x.item.queue_entered, m), x.wait_gen))
                        .collect();
                    for (i, due, epoch) in waiting {
                        self.schedule(due, TimerKind::MaxWait { item: i, epoch });
                    }
                }
                let Some(slot) = self.queues.get_mut(&q.id) else { return };
                if rekey {
                    let classes = slot.classes.clone();
                    for ci in classes {
                        let entries: Vec<u32> = self.classes[ci].heap.iter().map(|e| e.payload).collect();
                        for i in entries {
                            if let Some(it) = self.items[i as usize].as_ref()
                                && let IState::Waiting { class, .. } = it.state
                                && class == ci
                            {
                                self.unqueue(i);
                                self.enqueue(i);
                            }
                        }
                    }
                }
            }
            None => {
                self.queues.insert(
                    q.id.clone(),
                    QueueSlot {
                        config: q,
                        classes: Vec::new(),
                        waiting: 0,
                        waits: VecDeque::new(),
                        delays,
                        members,
                        closed: false,
                        checked_at: None,
                        hours_due: None,
                        hours_gen: 0,
                    },
                );
            }
        }
        if hours_changed && let Some(qi) = self.queues.idx(&id) {
            self.recheck_queue_hours(qi);
        }
    }

    /// Queue `qi`'s hours changed: they are checked by a timer due at once (so at the `now` of
    /// the next call); without hours the queue is open and no check is pending.
    fn recheck_queue_hours(&mut self, qi: u32) {
        let epoch = self.next_seq();
        let Some(slot) = self.queues.at_mut(qi) else { return };
        slot.hours_gen = epoch;
        slot.hours_due = None;
        slot.checked_at = None;
        if slot.config.hours.is_some() {
            self.schedule(DateTime::<Utc>::MIN_UTC, TimerKind::QueueHours { queue: qi, epoch });
        } else {
            slot.closed = false;
        }
    }

    /// Whether queue `qi` has hours that are closed at `now` (a schedule missing from the
    /// calendars counts as closed).
    pub fn queue_closed(&self, qi: u32, now: DateTime<Utc>) -> bool {
        let Some(hours) = self.queues.at(qi).and_then(|q| q.config.hours.as_ref()) else { return false };
        !self.schedule_open(Some(&hours.schedule), now)
    }

    /// Whether item `i` was moved into its closed queue by another queue's after-hours action
    /// and the queue has not changed since: it waits there for the opening (also when it comes
    /// back from an agent who took it meanwhile), as it would have had it never left.
    pub fn waits_for_opening(&self, i: u32, now: DateTime<Utc>) -> bool {
        let Some(s) = self.items.get(i as usize).and_then(|s| s.as_ref()) else { return false };
        if !s.item.hours_moved {
            return false;
        }
        let Some(hours) = self.queues.at(s.qi).and_then(|q| q.config.hours.as_ref()) else { return false };
        self.calendars
            .get(&hours.schedule)
            .is_none_or(|sch| sch.next_change(s.item.queue_entered).is_none_or(|c| c > now))
    }

    /// Why work in queue `qi` gets its after-hours action (`None`: the queue keeps no hours).
    pub fn closed_reason(&self, qi: u32) -> Option<String> {
        let q = self.queues.at(qi)?;
        let hours = q.config.hours.as_ref()?;
        Some(format!("queue {} is closed (schedule {:?})", q.config.id, hours.schedule))
    }

    /// Checks queue `qi`'s hours at `now` and schedules the next check. Closed now, with a
    /// closing since the last check (the latest one, when a late call passed several changes),
    /// every item that was waiting in the queue before that closing gets the after-hours
    /// action; items moved in at or after it (by another queue's after-hours action) wait for
    /// the opening. After a change of the hours or the calendars, a queue that was open at the
    /// last check and is closed now counts as closing now.
    pub fn check_queue_hours(&mut self, qi: u32, now: DateTime<Utc>) {
        let calendars = Arc::clone(&self.calendars);
        let Some(slot) = self.queues.at_mut(qi) else { return };
        let Some(hours) = &slot.config.hours else { return };
        let schedule = calendars.get(&hours.schedule);
        let closed = !schedule.is_some_and(|s| s.is_open(now));
        let cutoff = match (closed, slot.checked_at, schedule) {
            (false, ..) => None,
            (true, Some(from), Some(s)) => last_close(s, from_ms(from), now).map(ceil_ms),
            (true, ..) => (!slot.closed).then_some(i64::MAX),
        };
        slot.closed = closed;
        slot.checked_at = Some(ms(now));
        let due = schedule.map(|s| next_check(s, now));
        if due != slot.hours_due {
            slot.hours_due = due;
            let epoch = self.next_seq();
            let seq = self.next_seq();
            if let Some(slot) = self.queues.at_mut(qi) {
                slot.hours_gen = epoch;
            }
            if let Some(due) = due {
                self.timers.add(Timer { due, seq, kind: TimerKind::QueueHours { queue: qi, epoch } });
            }
        }
        if let Some(cutoff) = cutoff {
            for i in self.waiting_in(qi) {
                let before = self.items[i as usize].as_ref().is_some_and(|s| ms(s.item.queue_entered) < cutoff);
                if before {
                    self.after_hours(i, now);
                }
            }
        }
    }

    /// The items waiting in queue `qi`, longest waiting first (each once: a class's heap may
    /// hold stale entries of an item that was taken out and put back).
    fn waiting_in(&self, qi: u32) -> Vec<u32> {
        let Some(q) = self.queues.at(qi) else { return Vec::new() };
        let mut entries: Vec<(i64, u32)> = Vec::with_capacity(q.waiting);
        for &ci in &q.classes {
            for e in self.classes[ci].heap.iter() {
                if live(&self.items, e.payload, e.seq)
                    && let Some(it) = self.items[e.payload as usize].as_ref()
                {
                    entries.push((it.since_ms, e.payload));
                }
            }
        }
        entries.sort_unstable();
        entries.into_iter().map(|(_, i)| i).collect()
    }

    fn delays_of(&self, q: &QueueId) -> Vec<(usize, i64)> {
        self.profiles
            .list
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.queues.get(q).filter(|m| m.delay_ms > 0).map(|m| (i, m.delay_ms)))
            .collect()
    }

    // ----- profiles

    fn intern_profile(&mut self, p: AgentProfile) -> usize {
        let (idx, new) = self.profiles.intern(p);
        if new {
            self.tiers_gen += 1;
            self.profile_agents.push(0);
            self.signed_in.push(0);
            self.off_shift.push(0);
            for r in &mut self.rankers {
                r.rebuild_statics(&self.profiles);
            }
            let ids: Vec<QueueId> = self.queues.keys().cloned().collect();
            for q in ids {
                let members = self.profiles.mask_where(|p| p.queues.contains_key(&q));
                let delays = self.delays_of(&q);
                if let Some(slot) = self.queues.get_mut(&q) {
                    slot.members = members;
                    slot.delays = delays;
                }
            }
            // Waiting items may now be eligible for the new profile: recompute their classes.
            let waiting: Vec<u32> = (0..self.items.len() as u32)
                .filter(|i| matches!(self.items[*i as usize].as_ref().map(|s| &s.state), Some(IState::Waiting { .. })))
                .collect();
            for i in waiting {
                self.unqueue(i);
                self.compute_tiers(i);
                self.enqueue(i);
            }
        }
        idx
    }

    // ----- agents

    /// Adds or updates agent `a`. Answers its slot; for a known agent whose presence (status
    /// name or what it allows) changed, whether it was offline before; and whether a known
    /// agent's shift started or ended with the update.
    pub fn upsert_agent(
        &mut self,
        agent: Agent,
        status: PresenceStatus,
        now: DateTime<Utc>,
    ) -> (u32, Option<bool>, bool) {
        for ch in agent.capacity.channels.keys().chain(agent.capacity.cost.keys()) {
            self.chan_of(ch);
        }
        for r in &agent.capacity.interruptions {
            self.chan_of(&r.while_holding);
        }
        let profile = self.intern_profile(AgentProfile::of(&agent));
        let on_shift = self.schedule_open(agent.schedule.as_deref(), now);
        // Presence generations come from the router's sequence, so a timer set for an agent
        // that was removed never matches the agent that takes over its slot.
        let presence_gen = self.next_seq();
        if let Some(&a) = self.agent_ids.get(&agent.id) {
            let (old_profile, was_in, was_offline, was_on, presence_changed) = {
                let slot = self.agents[a as usize].as_mut().expect("agent slot");
                let was_in = !slot.status.offline;
                let old = slot.profile;
                // A new generation only when the presence changes: updating an offline agent's
                // skills must not cancel the grace timer its going offline set.
                let changed = slot.agent.presence.status != agent.presence.status || slot.presence != status;
                if changed {
                    slot.presence_gen = presence_gen;
                }
                let (was_offline, was_on) = (slot.presence.offline, slot.on_shift);
                slot.agent = agent;
                slot.sync_chans(&self.channels);
                slot.profile = profile;
                slot.set_effective(effective(&status, on_shift), now);
                slot.presence = status;
                slot.on_shift = on_shift;
                (old, was_in, was_offline, was_on, changed)
            };
            self.profile_agents[old_profile] = self.profile_agents[old_profile].saturating_sub(1);
            self.profile_agents[profile] += 1;
            if was_in {
                self.signed_in[old_profile] = self.signed_in[old_profile].saturating_sub(1);
            }
            if !self.agents[a as usize].as_ref().is_some_and(|s| s.status.offline) {
                self.signed_in[profile] += 1;
            }
            if !was_on {
                self.off_shift[old_profile] = self.off_shift[old_profile].saturating_sub(1);
            }
            if !on_shift {
                self.off_shift[profile] += 1;
            }
            self.reindex(a);
            self.arm_shift(a, now);
            return (a, presence_changed.then_some(was_offline), was_on != on_shift);
        }
        let reg = self.next_seq();
        let mut slot = AgentSlot {
            load: 0,
            budget_used: 0,
            profile,
            reg,
            idle_since: ms(now),
            last_assigned: 0,
            chans: Vec::new(),
            status: effective(&status, on_shift),
            presence_gen,
            id: agent.id.clone(),
            held: Vec::new(),
            entries: Vec::new(),
            last_assigned_at: None,
            agent,
            presence: status,
            on_shift,
            shift_due: None,
            shift_gen: 0,
            last_activity: ms(now),
            idle_due: None,
            idle_gen: 0,
        };
        let signed = !slot.status.offline;
        slot.sync_chans(&self.channels);
        let id = slot.agent.id.clone();
        let a = match self.free_agents.pop() {
            Some(a) => {
                self.agents[a as usize] = Some(Box::new(slot));
                a
            }
            None => {
                self.agents.push(Some(Box::new(slot)));
                (self.agents.len() - 1) as u32
            }
        };
        self.agent_ids.insert(id, a);
        self.profile_agents[profile] += 1;
        if signed {
            self.signed_in[profile] += 1;
        }
        if !on_shift {
            self.off_shift[profile] += 1;
        }
        self.reindex(a);
        self.arm_shift(a, now);
        (a, None, false)
    }

    /// Agent `a` showed activity at `now`: its idle check is armed if none is pending (a
    /// pending one looks at the latest activity when it fires).
    pub fn note_activity(&mut self, a: u32, now: DateTime<Utc>) {
        let Some(slot) = self.agents[a as usize].as_mut() else { return };
        slot.last_activity = slot.last_activity.max(ms(now));
        if self.idle.is_some() && slot.idle_due.is_none() {
            self.arm_idle(a);
        }
    }

    /// Schedules agent `a`'s idle check at its last activity plus the idle rule's `after`.
    pub fn arm_idle(&mut self, a: u32) {
        let Some(after) = self.idle.as_ref().map(|p| p.after.num_milliseconds()) else { return };
        let epoch = self.next_seq();
        let seq = self.next_seq();
        let Some(slot) = self.agents[a as usize].as_mut() else { return };
        let due = slot.last_activity.saturating_add(after);
        slot.idle_due = Some(due);
        slot.idle_gen = epoch;
        self.timers.add(Timer { due, seq, kind: TimerKind::Idle { agent: a, epoch } });
    }

    /// Agent `a`'s idle check: idle since its last activity for the rule's `after` and in a
    /// status that takes work, it is put in the rule's status; active since, the check moves on.
    pub fn check_idle(&mut self, a: u32, now: DateTime<Utc>) {
        let Some(policy) = self.idle.clone() else { return };
        // The rule's status as the router's catalogue defines it (checked when the rule was
        // installed: it takes no work), not an agent's own status of the same name.
        let Some(idle) = self.config.statuses.get(&policy.status).cloned() else { return };
        let Some(slot) = self.agents[a as usize].as_mut() else { return };
        slot.idle_due = None;
        if ms(now) < slot.last_activity.saturating_add(policy.after.num_milliseconds()) {
            self.arm_idle(a);
            return;
        }
        // Bots do not leave their desks; an agent in a status that takes no work is left as is.
        if slot.agent.is_bot || !takes_work(&slot.presence) {
            return;
        }
        self.apply_presence(a, &policy.status, idle, now);
    }

    /// Installs the idle rule (validated by the caller); every agent's check is armed from its
    /// last activity (a check already pending for that instant stays), or dropped without a rule.
    pub fn set_idle(&mut self, policy: Option<super::IdlePolicy>) {
        let after = policy.as_ref().map(|p| p.after.num_milliseconds());
        self.idle = policy;
        for a in 0..self.agents.len() as u32 {
            let Some(slot) = self.agents[a as usize].as_mut() else { continue };
            let due = after.map(|after| slot.last_activity.saturating_add(after));
            if due.is_some() && slot.idle_due == due {
                continue;
            }
            slot.idle_due = None;
            slot.idle_gen = 0;
            self.arm_idle(a);
        }
    }

    /// Whether the schedule called `name` is open at `now` (`None`: no schedule, always; a name
    /// the calendars do not hold: never).
    pub fn schedule_open(&self, name: Option<&str>, now: DateTime<Utc>) -> bool {
        name.is_none_or(|n| self.calendars.get(n).is_some_and(|s| s.is_open(now)))
    }

    /// Schedules agent `a`'s next shift check: when its schedule next opens or closes after
    /// `now` (at the latest a year on, when [`Schedule::next_change`] looks no further). A
    /// timer already set for that instant stays; any other becomes stale.
    ///
    /// [`Schedule::next_change`]: super::calendar::Schedule::next_change
    pub fn arm_shift(&mut self, a: u32, now: DateTime<Utc>) {
        let calendars = Arc::clone(&self.calendars);
        let Some(slot) = self.agents[a as usize].as_ref() else { return };
        let due = slot.agent.schedule.as_deref().and_then(|n| calendars.get(n)).map(|s| next_check(s, now));
        if due == slot.shift_due {
            return;
        }
        let epoch = self.next_seq();
        let seq = self.next_seq();
        if let Some(slot) = self.agents[a as usize].as_mut() {
            slot.shift_due = due;
            slot.shift_gen = epoch;
        }
        if let Some(due) = due {
            self.timers.add(Timer { due, seq, kind: TimerKind::Shift { agent: a, epoch } });
        }
    }

    /// Checks agent `a`'s shift at `now`: a start or end is applied (effective status, counts,
    /// index, a [`RoutingEvent::ShiftChanged`]; a start gives the agent waiting work), and the
    /// next check is scheduled.
    pub fn check_shift(&mut self, a: u32, now: DateTime<Utc>) {
        let Some(slot) = self.agents[a as usize].as_ref() else { return };
        let Some(name) = slot.agent.schedule.clone() else { return };
        let on = self.schedule_open(Some(&name), now);
        if let Some(slot) = self.agents[a as usize].as_mut()
            && slot.on_shift != on
        {
            slot.on_shift = on;
            let p = slot.profile;
            let agent = slot.agent.id.clone();
            if on {
                self.off_shift[p] = self.off_shift[p].saturating_sub(1);
            } else {
                self.off_shift[p] += 1;
            }
            self.refresh_status(a, now);
            self.events.push(RoutingEvent::ShiftChanged { agent, schedule: name, on_shift: on });
            if on {
                self.freed.push(a);
            } else {
                self.rescind_offers_of(a, now);
            }
        }
        self.arm_shift(a, now);
    }

    /// Replaces the calendars; every agent with a schedule is checked by a timer due at once
    /// (so at the `now` of the next call).
    pub fn set_calendars(&mut self, calendars: super::calendar::Calendars) {
        self.calendars = Arc::new(calendars);
        self.calendars_gen = self.next_seq();
        let queue_hours =
            (0..self.queues.len() as u32).any(|q| self.queues.at(q).is_some_and(|q| q.config.hours.is_some()));
        if queue_hours || self.agents.iter().flatten().any(|s| s.agent.schedule.is_some()) {
            let epoch = self.calendars_gen;
            self.schedule(DateTime::<Utc>::MIN_UTC, TimerKind::Calendars { epoch });
        }
    }

    /// Checks the shift of every agent with a schedule and the hours of every queue that has
    /// them (a [`TimerKind::Calendars`] timer).
    pub fn check_all_calendars(&mut self, now: DateTime<Utc>) {
        for a in 0..self.agents.len() as u32 {
            if self.agents[a as usize].as_ref().is_some_and(|s| s.agent.schedule.is_some()) {
                self.check_shift(a, now);
            }
        }
        for q in 0..self.queues.len() as u32 {
            if let Some(slot) = self.queues.at_mut(q)
                && slot.config.hours.is_some()
            {
                slot.checked_at = None;
                self.check_queue_hours(q, now);
            }
        }
    }

    pub fn drop_agent(&mut self, a: u32) {
        if let Some(slot) = self.agents[a as usize].take() {
            for (si, c, p, arr) in &slot.entries {
                self.index[*si].chans[*c].remove(*p, &(*arr, slot.reg, a));
            }
            self.profile_agents[slot.profile] = self.profile_agents[slot.profile].saturating_sub(1);
            if !slot.status.offline {
                self.signed_in[slot.profile] = self.signed_in[slot.profile].saturating_sub(1);
            }
            if !slot.on_shift {
                self.off_shift[slot.profile] = self.off_shift[slot.profile].saturating_sub(1);
            }
            self.agent_ids.remove(&slot.agent.id);
            self.free_agents.push(a);
        }
    }

    /// Puts the agent's index entries in line with its state.
    pub fn reindex(&mut self, a: u32) {
        let Some(slot) = self.agents[a as usize].as_mut() else { return };
        let mut new = std::mem::take(&mut self.scratch);
        new.clear();
        for c in 0..self.channels.len() {
            if slot.can_take(c, &self.channels).is_ok() {
                for (si, spec) in self.index.iter().enumerate() {
                    new.push((si, c, slot.profile, slot.dyn_arr(&spec.spec, c, &self.channels[c])));
                }
            }
        }
        if new == slot.entries {
            self.scratch = new;
            return;
        }
        let old = std::mem::replace(&mut slot.entries, new);
        let reg = slot.reg;
        let Some(slot) = self.agents[a as usize].as_ref() else { return };
        for e in &old {
            if !slot.entries.contains(e) {
                self.index[e.0].chans[e.1].remove(e.2, &(e.3, reg, a));
            }
        }
        for e in &slot.entries {
            if !old.contains(e) {
                self.index[e.0].chans[e.1].insert(e.2, (e.3, reg, a));
            }
        }
        self.warm_next_picks(&old);
        self.scratch = old;
    }

    /// After agent `a` left the index entries `removed`: for each run whose front that took,
    /// warms what the profile's next takes read (see [`prefetch`]). The new first agent's slot
    /// was warmed when it became second, so its heap parts are found without waiting; the new
    /// second's slot is warmed for the take after.
    fn warm_next_picks(&mut self, removed: &[(usize, usize, usize, DynArr)]) {
        for e in removed {
            let Some(chan) = self.index.get_mut(e.0).and_then(|x| x.chans.get_mut(e.1)) else { continue };
            let (first, second) = std::mem::replace(&mut chan.next_picks, (NIL, NIL));
            if let Some(Some(slot)) = self.agents.get(first as usize) {
                prefetch(slot.chans.as_ptr());
                prefetch(slot.held.as_ptr());
                prefetch(slot.entries.as_ptr());
            }
            if let Some(Some(slot)) = self.agents.get(second as usize) {
                prefetch(&slot.load);
                prefetch(&slot.status);
                prefetch(&slot.held);
                prefetch(&slot.agent.capacity);
            }
        }
    }

    /// Sets agent `a`'s presence: the status named `name`, `status` what it allows.
    pub fn set_status(&mut self, a: u32, status: PresenceStatus, name: String, now: DateTime<Utc>) {
        let presence_gen = self.next_seq();
        let Some(slot) = self.agents[a as usize].as_mut() else { return };
        slot.presence = status;
        slot.agent.presence.status = name;
        slot.presence_gen = presence_gen;
        self.refresh_status(a, now);
    }

    /// Puts agent `a`'s effective status (what it may take now) in line with its presence and
    /// shift, and the signed-in counts and the index with it.
    fn refresh_status(&mut self, a: u32, now: DateTime<Utc>) {
        let Some(slot) = self.agents[a as usize].as_mut() else { return };
        let status = effective(&slot.presence, slot.on_shift);
        let was_signed = !slot.status.offline;
        let is_signed = !status.offline;
        slot.set_effective(status, now);
        let p = slot.profile;
        match (was_signed, is_signed) {
            (true, false) => self.signed_in[p] = self.signed_in[p].saturating_sub(1),
            (false, true) => self.signed_in[p] += 1,
            _ => {}
        }
        self.reindex(a);
    }

    /// Reserves capacity for item `i` on agent `a`.
    pub fn hold(&mut self, a: u32, i: u32, c: usize, now: DateTime<Utc>) {
        let Some(slot) = self.agents[a as usize].as_mut() else { return };
        if slot.chans.len() <= c {
            slot.sync_chans(&self.channels);
        }
        let Some(x) = slot.chans.get_mut(c) else { return };
        x.load += 1;
        slot.load += 1;
        slot.budget_used = slot.budget_used.saturating_add(x.cost);
        slot.held.push(i);
        // Work on a channel that interrupts others: offers on the channels it blocks must go.
        if slot.held.len() > 1
            && let Some(ch) = self.channels.get(c)
            && slot.agent.capacity.interruptions.iter().any(|rule| rule.while_holding == *ch)
        {
            self.interrupted.push(a);
        }
        self.assign_seq += 1;
        slot.last_assigned = self.assign_seq;
        slot.last_assigned_at = Some(now);
        self.reindex(a);
    }

    /// Releases item `i`'s capacity on agent `a`.
    pub fn unhold(&mut self, a: u32, i: u32, c: usize, now: DateTime<Utc>) {
        let Some(slot) = self.agents[a as usize].as_mut() else { return };
        let Some(pos) = slot.held.iter().position(|h| *h == i) else { return };
        slot.held.swap_remove(pos);
        let cost = match slot.chans.get_mut(c) {
            Some(x) => {
                x.load = x.load.saturating_sub(1);
                x.cost
            }
            None => 0,
        };
        slot.load = slot.load.saturating_sub(1);
        slot.budget_used = slot.budget_used.saturating_sub(cost);
        if slot.load == 0 {
            slot.idle_since = ms(now);
        }
        self.reindex(a);
    }

    // ----- items: eligibility tiers

    /// Members of the pool of `step` for item slot `i` (explicit-only pools: none).
    fn pool_mask(
        queues: &Queues,
        profiles: &ProfileTable,
        step: &Step,
        item: &WorkItem,
        (wait_queue, wait_qi): (&QueueId, u32),
        at: StepRef,
    ) -> Mask {
        let pool = &step.pool;
        if at == StepRef::AnyMember {
            return queues.at(wait_qi).map(|q| q.members.clone()).unwrap_or_default();
        }
        if pool.any_agent {
            return profiles.full();
        }
        if !pool.queues.is_empty() {
            let mut m = Mask::default();
            for q in &pool.queues {
                if let Some(slot) = queues.get(q) {
                    m.or_with(&slot.members);
                }
            }
            return m;
        }
        if pool.is_explicit() {
            return Mask::default();
        }
        match &item.queue {
            Some(q) if q == wait_queue => queues.at(wait_qi).map(|s| s.members.clone()).unwrap_or_default(),
            Some(q) => queues.get(q).map(|s| s.members.clone()).unwrap_or_default(),
            None => profiles.full(),
        }
    }

    fn elig_mask(profiles: &mut ProfileTable, step: &Step, item: &WorkItem) -> Mask {
        let mut m = step.eligibility.mask(item, profiles);
        if let Some(c) = &step.custom
            && !m.is_empty()
        {
            let mut cm = Mask::default();
            m.for_each(|p| {
                if let Some(profile) = profiles.list.get(p)
                    && c.eligible(profile, item)
                {
                    cm.set(p);
                }
            });
            m = cm;
        }
        m
    }

    /// The agents `step` names for `item` entering it at `now`, and when a last agent among
    /// them (the last one) stops being named ([`Tier::named`]).
    fn explicit_of(step: &Step, item: &WorkItem, now: DateTime<Utc>) -> (Vec<AgentId>, Option<i64>) {
        if step.pool.agents.is_empty() && !step.pool.preferred_agents && !step.pool.last_agent {
            return (Vec::new(), None);
        }
        let mut v = step.pool.agents.clone();
        if step.pool.preferred_agents {
            v.extend(item.preferred_agents.iter().cloned());
        }
        if step.pool.last_agent
            && let Some(l) = &item.last_agent
            && l.until > now
        {
            v.push(l.agent.clone());
            return (v, Some(ms(l.until)));
        }
        (v, None)
    }

    /// Recomputes the eligibility tiers of item `i` for its current step.
    pub fn compute_tiers(&mut self, i: u32) {
        if self.share_memo_tiers(i) {
            return;
        }
        let State { plan, items, profiles, queues, .. } = self;
        let Some(slot) = items.get_mut(i as usize).and_then(|s| s.as_mut()) else { return };
        let wait = (&slot.queue, slot.qi);
        Self::tiers_into(plan, profiles, queues, &slot.item, wait, slot.at, slot.step_entered, slot.tiers.rewrite());
    }

    /// The eligibility tiers of `item` (waiting in `wait`) at step `at`, entered at `entered`,
    /// written over `tiers`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn tiers_into(
        plan: &CPlan,
        profiles: &mut ProfileTable,
        queues: &Queues,
        item: &WorkItem,
        wait: (&QueueId, u32),
        at: StepRef,
        entered: DateTime<Utc>,
        tiers: &mut Vec<Tier>,
    ) {
        let (chain_start, chain_len) = chain_of(plan, at);
        tiers.truncate(chain_len);
        let mut seen = Mask::default();
        for k in 0..chain_len {
            let sr = match at {
                StepRef::Rule(r, _) => StepRef::Rule(r, chain_start + k),
                other => other,
            };
            let step = plan.step(sr);
            let elig = Self::elig_mask(profiles, step, item);
            let pool = Self::pool_mask(queues, profiles, step, item, wait, sr);
            let (explicit, last_until) = Self::explicit_of(step, item, entered);
            if tiers.len() <= k {
                tiers.push(Tier::default());
            }
            // Overwritten in place: no tier is built and dropped per step.
            let Some(t) = tiers.get_mut(k) else { return };
            t.mask.clone_from(&pool);
            t.mask.and_with(&elig);
            if k > 0 {
                t.mask.and_not(&seen);
            }
            if k + 1 < chain_len {
                seen.or_with(&t.mask);
            }
            t.pool = pool;
            t.elig = elig;
            if !(t.explicit.is_empty() && explicit.is_empty()) {
                t.explicit = explicit;
            }
            t.last_until = last_until;
        }
    }

    // ----- items: waiting

    /// Puts waiting item `i` into its class (state must be `Moving`).
    pub fn enqueue(&mut self, i: u32) {
        let seq = self.next_seq();
        let Some(slot) = self.items[i as usize].as_ref() else { return };
        let mask = if slot.by_policy { Mask::default() } else { slot.union_mask() };
        let (qi, chan) = (slot.qi, slot.chan);
        let Some(ci) = self.class_for(qi, chan, mask) else { return };
        self.enqueue_in(i, ci, seq);
    }

    /// The class of queue `qi` for items on channel `chan` with pool `mask` (created if there
    /// is none yet); `None` if there is no such queue.
    pub(crate) fn class_for(&mut self, qi: u32, chan: usize, mask: Mask) -> Option<usize> {
        let q = self.queues.at(qi)?;
        // Items moving together usually land in the class the previous one did.
        let hint = self
            .last_class
            .filter(|c| self.classes.get(*c).is_some_and(|k| k.qi == qi && k.chan == chan && k.mask == mask));
        let found = hint.or_else(|| {
            q.classes.iter().copied().find(|c| self.classes[*c].chan == chan && self.classes[*c].mask == mask)
        });
        let ci = match found {
            Some(c) => c,
            None => {
                let queue = q.config.id.clone();
                self.classes.push(Class { queue, qi, chan, mask, heap: KeyedHeap::default() });
                let ci = self.classes.len() - 1;
                if let Some(q) = self.queues.at_mut(qi) {
                    q.classes.push(ci);
                }
                ci
            }
        };
        self.last_class = Some(ci);
        Some(ci)
    }

    /// Puts (moving) item `i` into class `ci` of its queue with heap seq `seq`.
    pub(crate) fn enqueue_in(&mut self, i: u32, ci: usize, seq: u64) {
        let Some(slot) = self.items[i as usize].as_ref() else { return };
        let Some(q) = self.queues.at(slot.qi) else { return };
        let key: ItemKey = discipline_key_at(&q.config.discipline, &slot.item, slot.priority, slot.since_ms);
        let qi = slot.qi;
        let Some(class) = self.classes.get_mut(ci) else { return };
        class.heap.push(key, seq, i);
        if let Some(q) = self.queues.at_mut(qi) {
            q.waiting += 1;
        }
        let mut targets: Vec<AgentId> = Vec::new();
        // Preferred and last agents are looked up where the item's step ranks by affinity.
        let by_affinity = self.items[i as usize].as_ref().is_some_and(|s| !s.by_policy && self.ranks_by_affinity(s.at));
        if let Some(slot) = self.items[i as usize].as_mut() {
            slot.state = IState::Waiting { class: ci, seq };
            for t in &slot.tiers {
                targets.extend(t.explicit.iter().cloned());
            }
            if by_affinity {
                targets.extend(slot.item.preferred_agents.iter().cloned());
                if let Some(l) = &slot.item.last_agent {
                    targets.push(l.agent.clone());
                }
            }
        }
        if targets.is_empty() {
            return;
        }
        let items = &self.items;
        for t in targets {
            let v = self.targeted.entry(t).or_default();
            v.retain(|(it, s)| live(items, *it, *s));
            v.push((i, seq));
        }
        // Ids of agents that never came (or left for good) are cleared now and then, in time
        // proportional to the map.
        if self.targeted.len() > self.targeted_prune_at {
            self.targeted.retain(|_, v| {
                v.retain(|(it, s)| live(items, *it, *s));
                !v.is_empty()
            });
            self.targeted_prune_at = TARGETED_PRUNE_MIN.max(2 * self.targeted.len());
        }
    }

    /// Takes waiting item `i` out of its class (state becomes `Moving`).
    pub fn unqueue(&mut self, i: u32) {
        if let Some(class) = self.leave_class(i) {
            self.note_left(class, 1);
            let items = &self.items;
            self.classes[class].heap.maybe_compact(|e| live(items, e.payload, e.seq));
        }
    }

    /// Takes waiting item `i` out of its class (`Moving`) without counting it out (the
    /// caller does, with [`State::note_left`]; a batch once per class); the class left.
    pub(crate) fn leave_class(&mut self, i: u32) -> Option<usize> {
        let slot = self.items[i as usize].as_mut()?;
        let IState::Waiting { class, .. } = slot.state else { return None };
        slot.state = IState::Moving;
        Some(class)
    }

    /// Counts `n` items out of class `ci` (its queue's waiting count, its heap's live entries).
    pub(crate) fn note_left(&mut self, ci: usize, n: usize) {
        let Some(class) = self.classes.get_mut(ci) else { return };
        class.heap.note_removed(n);
        if let Some(q) = self.queues.at_mut(class.qi) {
            q.waiting = q.waiting.saturating_sub(n);
        }
    }

    // ----- candidates

    /// The best `n` agents for item `i`, best first.
    #[inline]
    pub fn candidates(&mut self, i: u32, n: usize, now: DateTime<Utc>) -> Cands {
        // The common "nobody can take it" answer without entering the search (items waiting
        // for agents are asked on every step and every retry).
        let Some(slot) = self.items.get(i as usize).and_then(|s| s.as_ref()) else { return Cands::None };
        if self.nobody_available(&slot.tiers, slot.at, slot.chan) {
            return Cands::None;
        }
        self.search_candidates(i, n, now)
    }

    /// Whether nobody of the pool (`tiers` at step `at`) can take anything on channel `chan`
    /// now, and nobody is named.
    #[inline]
    pub(crate) fn nobody_available(&self, tiers: &[Tier], at: StepRef, chan: usize) -> bool {
        let spec = self.rankers.get(self.ranker_of(at)).map_or(0, |r| r.spec);
        let Some(chidx) = self.index.get(spec).and_then(|s| s.chans.get(chan)) else { return true };
        tiers.iter().all(|t| t.explicit.is_empty() && !t.mask.intersects(&chidx.avail))
    }

    /// [`State::candidates`] once some agent of the pool may be available.
    fn search_candidates(&mut self, i: u32, n: usize, now: DateTime<Utc>) -> Cands {
        let Some(slot) = self.items[i as usize].as_ref() else { return Cands::None };
        let ri = self.ranker_of(slot.at);
        let ranker = &self.rankers[ri];
        let c = slot.chan;
        let Some(chidx) = self.index.get(ranker.spec).and_then(|s| s.chans.get(c)) else { return Cands::None };
        let now_ms = ms(now);
        let age = now_ms - slot.eligible_ms;
        let delayed: Vec<usize> = self
            .queues
            .at(slot.qi)
            .map(|q| q.delays.iter().filter(|(_, d)| *d > age).map(|(p, _)| *p).collect())
            .unwrap_or_default();
        let offered: &[u32] = match &slot.state {
            IState::Offered { agents, .. } => agents,
            _ => &[],
        };
        let channel = &self.channels[c];
        if n == 1 && ranker.kinds.iter().all(|k| matches!(k, KeyKind::Dyn(_))) {
            // Live-state keys only: the per-profile index tops compare directly.
            let excluded = |a: u32| excludes(&self.agents, &slot.item, a) || offered.contains(&a);
            let spec = &self.index[ranker.spec].spec;
            let mut best: Option<(usize, IndexEntry)> = None;
            for (tier, t) in slot.tiers.iter().enumerate() {
                // One key: the packed tops compare in one instruction, and the best of the tier
                // stands unless it is excluded or delayed (then the full walk below).
                let mut settled = false;
                if spec.len() <= 1 && best.is_none() {
                    let mut first = None;
                    if t.mask.intersects(&chidx.avail) {
                        let mut p = chidx.head;
                        while let Some(&after) = chidx.next.get(p as usize) {
                            if t.mask.get(p as usize) {
                                first = Some(p as usize);
                                break;
                            }
                            p = after;
                        }
                    }
                    if let Some(p) = first
                        && let Some(e) = chidx.top.get(p).copied().flatten()
                        && !excluded(e.2)
                        && !delayed.contains(&p)
                    {
                        best = Some((tier, e));
                        if t.explicit.is_empty() {
                            break;
                        }
                        settled = true;
                    }
                }
                // The best profile top of the tier; a profile whose top is excluded offers its
                // next agent (nothing left to find once the one-key walk settled the tier).
                if !settled {
                    t.mask.for_each_common(&chidx.avail, |p| {
                        let Some(top) = chidx.top.get(p).copied().flatten() else { return };
                        if best.is_some_and(|(bt, be)| bt < tier || (be.0, be.1) < (top.0, top.1)) {
                            return;
                        }
                        if delayed.contains(&p) {
                            return;
                        }
                        let e = if excluded(top.2) { chidx.iter(p).find(|e| !excluded(e.2)) } else { Some(top) };
                        if let Some(e) = e
                            && best.is_none_or(|(bt, be)| (tier, e.0, e.1) < (bt, be.0, be.1))
                        {
                            best = Some((tier, e));
                        }
                    });
                }
                for id in t.named(now_ms) {
                    let Some(&a) = self.agent_ids.get(id) else { continue };
                    let Some(ag) = self.agents[a as usize].as_ref() else { continue };
                    if !t.elig.get(ag.profile)
                        || excluded(a)
                        || delayed.contains(&ag.profile)
                        || ag.can_take(c, &self.channels).is_err()
                    {
                        continue;
                    }
                    let e = (ag.dyn_arr(spec, c, channel), ag.reg, a);
                    if best.is_none_or(|(bt, be)| (tier, e.0, e.1) < (bt, be.0, be.1)) {
                        best = Some((tier, e));
                    }
                }
                if best.is_some() {
                    break; // inner tiers always win
                }
            }
            return best.map_or(Cands::None, |(tier, e)| {
                let mut key = [0i64; 8];
                key[0] = tier as i64;
                key[1..4].copy_from_slice(&e.0);
                Cands::One([Cand { key, reg: e.1, agent: e.2 }])
            });
        }
        let mut best: Vec<Cand> = Vec::new();
        let excluded = |a: u32| excludes(&self.agents, &slot.item, a) || offered.contains(&a);
        let consider = |cand: Cand, best: &mut Vec<Cand>| {
            if best.iter().any(|b| b.agent == cand.agent) {
                return;
            }
            if best.len() < n {
                best.push(cand);
                best.sort_unstable();
            } else if best.last().is_some_and(|l| cand < *l) {
                best.pop();
                best.push(cand);
                best.sort_unstable();
            }
        };
        for (tier, t) in slot.tiers.iter().enumerate() {
            let mut walk = |p: usize| {
                if delayed.contains(&p) {
                    return;
                }
                let simple = n == 1 && !ranker.custom;
                if simple
                    && let Some(top) = chidx.top.get(p).copied().flatten()
                    && !excluded(top.2)
                {
                    if let Some(a) = self.agents[top.2 as usize].as_ref() {
                        let key = full_key(ranker, tier, p, &top.0, a, &slot.item, c, channel, now);
                        consider(Cand { key, reg: top.1, agent: top.2 }, &mut best);
                    }
                    return;
                }
                let mut taken = 0;
                for e in chidx.iter(p) {
                    if excluded(e.2) {
                        continue;
                    }
                    if let Some(a) = self.agents[e.2 as usize].as_ref() {
                        let key = full_key(ranker, tier, p, &e.0, a, &slot.item, c, channel, now);
                        consider(Cand { key, reg: e.1, agent: e.2 }, &mut best);
                    }
                    taken += 1;
                    if !ranker.custom && taken >= n {
                        break;
                    }
                }
            };
            t.mask.for_each_common(&chidx.avail, &mut walk);
            // Agents named individually (and, for affinity, preferred/last agents).
            let explicit = t.named(now_ms);
            let mut named: Vec<&AgentId> = explicit.iter().collect();
            if ranker.affinity {
                named.extend(slot.item.preferred_agents.iter());
                if let Some(l) = &slot.item.last_agent
                    && l.until > now
                {
                    named.push(&l.agent);
                }
            }
            for id in named {
                let Some(&a) = self.agent_ids.get(id) else { continue };
                let Some(ag) = self.agents[a as usize].as_ref() else { continue };
                let in_tier = if explicit.contains(id) { t.elig.get(ag.profile) } else { t.mask.get(ag.profile) };
                if !in_tier || excluded(a) || delayed.contains(&ag.profile) || ag.can_take(c, &self.channels).is_err() {
                    continue;
                }
                let arr = ag.dyn_arr(&self.index[ranker.spec].spec, c, channel);
                let key = full_key(ranker, tier, ag.profile, &arr, ag, &slot.item, c, channel, now);
                consider(Cand { key, reg: ag.reg, agent: a }, &mut best);
            }
        }
        Cands::Many(best)
    }

    /// Whether any agent of item `i`'s pool is signed in at `now_ms`.
    pub fn any_signed_in(&self, i: u32, now_ms: i64) -> bool {
        let Some(slot) = self.items[i as usize].as_ref() else { return false };
        let mut any = false;
        for t in &slot.tiers {
            t.mask.for_each(|p| any |= self.signed_in.get(p).is_some_and(|n| *n > 0));
        }
        any || self.named_outside_masks(slot, now_ms).iter().any(|ag| !ag.status.offline)
    }

    /// The agents item `slot`'s tiers name at `now_ms` (a last agent only while its preference
    /// holds) and count as eligible, once each, leaving out those a tier's mask already holds.
    fn named_outside_masks(&self, slot: &ItemSlot, now_ms: i64) -> Vec<&AgentSlot> {
        let mut out: Vec<&AgentSlot> = Vec::new();
        for t in &slot.tiers {
            for id in t.named(now_ms) {
                let Some(ag) = self.agent_ids.get(id).and_then(|a| self.agents[*a as usize].as_ref()) else { continue };
                let counted = slot.tiers.iter().any(|u| u.mask.get(ag.profile)) || out.iter().any(|o| o.id == ag.id);
                if t.elig.get(ag.profile) && !counted {
                    out.push(ag);
                }
            }
        }
        out
    }

    /// The best waiting item for agent `a` (freed-agent direction), if any.
    pub fn best_item_for(&mut self, a: u32, now: DateTime<Utc>) -> Option<u32> {
        let ag = self.agents[a as usize].as_ref()?;
        let p = ag.profile;
        let me = &ag.id;
        let profile = self.profiles.list.get(p)?.clone();
        let now_ms = ms(now);
        // (membership priority, waiting since, discipline key, sequence)
        type HeadKey = (u32, i64, ItemKey, u64);
        // Items naming this agent come first, in their queues' order: each queue's best by its
        // discipline, then those by membership priority and wait, as for the classes below.
        let mut heads: Vec<(u32, HeadKey, u32)> = Vec::new();
        let mut delayed_tops: Vec<(u32, i64)> = Vec::new();
        if let Some(list) = self.targeted.get_mut(&ag.id) {
            let items = &self.items;
            list.retain(|(it, s)| live(items, *it, *s));
        }
        if let Some(list) = self.targeted.get(&ag.id) {
            for &(it, seq) in list {
                let Some(slot) = self.items[it as usize].as_ref() else { continue };
                // An item a custom policy decides is given to nobody behind its back (it is
                // listed here still, for when the policy hands it back to the plan).
                if slot.by_policy || slot.item.excluded.contains(me) || ag.can_take(slot.chan, &self.channels).is_err()
                {
                    continue;
                }
                // First only while the item names the agent now (a last agent only while
                // preferred); otherwise the item is found in its queue's order below.
                let named = slot.tiers.iter().any(|t| t.named(now_ms).contains(me) && t.elig.get(p));
                // Preferred and last agents count where the item's own step ranks by affinity.
                let preferred = self.ranks_by_affinity(slot.at)
                    && !slot.by_policy
                    && affinity(&slot.item, me, now) < i64::MAX
                    && slot.tiers.iter().any(|t| t.mask.get(p));
                if !named && !preferred {
                    continue;
                }
                // The agent's delay in the item's queue holds here too; a retry at its end.
                let delay = profile.queues.get(&slot.queue).map_or(0, |m| m.delay_ms);
                if now_ms - slot.eligible_ms < delay {
                    delayed_tops.push((it, slot.eligible_ms + delay));
                    continue;
                }
                let Some(q) = self.queues.at(slot.qi) else { continue };
                let dkey = discipline_key_at(&q.config.discipline, &slot.item, slot.priority, slot.since_ms);
                let prio = profile.queues.get(&slot.queue).map_or(u32::MAX, |m| m.priority);
                let key = (prio, ms(slot.item.effective_since()), dkey, seq);
                match heads.iter_mut().find(|(q, _, _)| *q == slot.qi) {
                    Some(head) => {
                        if (dkey, seq) < (head.1.2, head.1.3) {
                            (head.1, head.2) = (key, it);
                        }
                    }
                    None => heads.push((slot.qi, key, it)),
                }
            }
        }
        if let Some(&(_, _, it)) = heads.iter().min_by_key(|(_, key, _)| *key) {
            self.schedule_retries(delayed_tops);
            return Some(it);
        }
        // Then classes whose mask holds the agent's profile: each queue's head by the queue's
        // discipline (a queue may have several classes), then the heads by membership priority
        // and wait, so the choice does not depend on the order the classes were made in.
        for ci in 0..self.classes.len() {
            let class = &self.classes[ci];
            if !class.mask.get(p) || ag.can_take(class.chan, &self.channels).is_err() {
                continue;
            }
            let (prio, delay) = profile.queues.get(&class.queue).map_or((u32::MAX, 0), |m| (m.priority, m.delay_ms));
            let qi = class.qi;
            let items = &self.items;
            let fits = |e: &super::queue::Entry<u32>| {
                items[e.payload as usize]
                    .as_ref()
                    .is_some_and(|s| !s.item.excluded.contains(me) && now_ms - s.eligible_ms >= delay)
            };
            let heap = &mut self.classes[ci].heap;
            let top = heap.peek_live(|e| live(items, e.payload, e.seq));
            if delay > 0
                && let Some(e) = top
                && let Some(s) = items[e.payload as usize].as_ref()
                && now_ms - s.eligible_ms < delay
            {
                delayed_tops.push((e.payload, s.eligible_ms + delay));
            }
            let found = match top {
                Some(e) if fits(&e) => Some(e),
                Some(_) => {
                    let walk = heap.best_live(CLASS_WALK, |e| live(items, e.payload, e.seq));
                    let found = walk.iter().find(|e| fits(e)).copied();
                    // Nothing for the agent now: the item here whose delay ends first (one the
                    // agent did not decline) is tried again then.
                    if found.is_none() && delay > 0 {
                        let soonest = walk
                            .iter()
                            .filter_map(|e| items[e.payload as usize].as_ref().map(|s| (s, e.payload)))
                            .filter(|(s, _)| !s.item.excluded.contains(me) && now_ms - s.eligible_ms < delay)
                            .map(|(s, i)| (s.eligible_ms + delay, i))
                            .min();
                        delayed_tops.extend(soonest.map(|(due, i)| (i, due)));
                    }
                    found
                }
                None => None,
            };
            if let Some(e) = found {
                let since = items[e.payload as usize].as_ref().map_or(0, |s| ms(s.item.effective_since()));
                let key = (prio, since, e.key, e.seq);
                match heads.iter_mut().find(|(q, _, _)| *q == qi) {
                    Some(head) => {
                        if (e.key, e.seq) < (head.1.2, head.1.3) {
                            (head.1, head.2) = (key, e.payload);
                        }
                    }
                    None => heads.push((qi, key, e.payload)),
                }
            }
        }
        self.schedule_retries(delayed_tops);
        heads.into_iter().min_by_key(|(_, key, _)| *key).map(|(_, _, i)| i)
    }

    /// [`State::schedule_retry`] for each (item, due).
    fn schedule_retries(&mut self, retries: Vec<(u32, i64)>) {
        for (i, due) in retries {
            self.schedule_retry(i, due);
        }
    }

    /// Schedules a retry of waiting item `i` at `due` (once per due time and queue visit).
    pub fn schedule_retry(&mut self, i: u32, due: i64) {
        let seq = self.next_seq();
        let Some(slot) = self.items[i as usize].as_mut() else { return };
        if slot.item.retries.contains(&due) || slot.item.retries.len() >= 16 {
            return;
        }
        slot.item.retries.push(due);
        let epoch = slot.wait_gen;
        self.timers.add(Timer { due, seq, kind: TimerKind::Retry { item: i, epoch } });
    }

    /// Schedules `kind` at `due`, rounded up to the millisecond: a timer never fires before the
    /// time it stands for (an offer is open until the `expires_at` its event announced).
    pub fn schedule(&mut self, due: DateTime<Utc>, kind: TimerKind) {
        let seq = self.next_seq();
        self.timers.add(Timer { due: ceil_ms(due), seq, kind });
    }

    /// Records a wait of `wait_ms` for the estimated wait of queue `qi`.
    pub fn record_wait(&mut self, qi: u32, wait_ms: i64) {
        if let Some(q) = self.queues.at_mut(qi) {
            q.waits.push_back(wait_ms.max(0));
            while q.waits.len() > q.config.ewt_samples {
                q.waits.pop_front();
            }
        }
    }

    /// The state of the queue item `i` waits in, and how long it waited.
    pub fn env<'a>(&'a self, slot: &'a ItemSlot, now: DateTime<Utc>) -> Env<'a> {
        let queue = self.queues.at(slot.qi).map(|q| QueueView {
            name: slot.queue.as_str(),
            waiting: q.waiting as i64,
            waits: &q.waits,
        });
        Env {
            item: &slot.item,
            priority: slot.priority,
            profile: None,
            now: Some(now),
            calendars: Some(&self.calendars),
            queue,
            pool: None,
        }
    }

    /// Agents of item `i`'s current pool that are eligible and could take it now, and those
    /// signed in (by profile counts, less the agents the item may not go to now).
    pub fn pool_counts(&self, i: u32, now_ms: i64) -> (i64, i64) {
        let Some(slot) = self.items[i as usize].as_ref() else { return (0, 0) };
        let chidx = self.index.first().and_then(|s| s.chans.get(slot.chan));
        // Available counts whom the item could be given to now, as the candidate search finds
        // them: not an agent still in its queue delay, nor one it may not go to (who declined
        // it, or was taken off it).
        let age = now_ms - slot.eligible_ms;
        let delays = self.queues.at(slot.qi).map_or(&[][..], |q| &q.delays[..]);
        let delayed = |p: usize| delays.iter().any(|&(q, d)| q == p && d > age);
        let (mut available, mut signed) = (0i64, 0i64);
        for t in &slot.tiers {
            t.mask.for_each(|p| {
                signed += i64::from(self.signed_in.get(p).copied().unwrap_or(0));
                if !delayed(p) {
                    available += chidx.map_or(0, |c| c.len(p)) as i64;
                }
            });
        }
        let excluded = &slot.item.excluded;
        for (k, id) in excluded.iter().enumerate() {
            let Some(ag) = self.agent_ids.get(id).and_then(|a| self.agents[*a as usize].as_ref()) else { continue };
            let counted = slot.tiers.iter().any(|t| t.mask.get(ag.profile))
                && !delayed(ag.profile)
                && ag.can_take(slot.chan, &self.channels).is_ok();
            if counted && !excluded[..k].contains(id) {
                available -= 1;
            }
        }
        for ag in self.named_outside_masks(slot, now_ms) {
            signed += i64::from(!ag.status.offline);
            let free = ag.can_take(slot.chan, &self.channels).is_ok();
            available += i64::from(free && !delayed(ag.profile) && !excluded.contains(&ag.id));
        }
        (available, signed)
    }

    pub fn step_skip(&mut self, i: u32, skip: &SkipIf, now: DateTime<Utc>) -> bool {
        match skip {
            SkipIf::Expr(c) => {
                let Some(compiled) = c.compiled() else { return false };
                let pool = compiled.reads_pool().then(|| self.pool_counts(i, ms(now)));
                let Some(slot) = self.items[i as usize].as_ref() else { return false };
                let env = Env { pool, ..self.env(slot, now) };
                compiled.holds(&env)
            }
            SkipIf::NoAvailableAgents => self.candidates(i, 1, now).is_empty(),
            SkipIf::NoAgentsSignedIn => !self.any_signed_in(i, ms(now)),
            SkipIf::QueueLongerThan(n) => {
                let q = self.items[i as usize].as_ref().map(|s| s.qi);
                q.and_then(|q| self.queues.at(q)).is_some_and(|q| q.waiting > *n as usize)
            }
        }
    }

    pub fn fallback_of(&self, at: StepRef) -> Fallback {
        match at {
            StepRef::Rule(r, _) => self.plan.plan.rules.get(r).map(|r| r.fallback.clone()).unwrap_or_default(),
            _ => Fallback::StayQueued,
        }
    }

    pub fn step_due(&self, step: &Step, item: &WorkItem, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let d = step.dwell?;
        Some(match step.timer {
            TimerBasis::StepEntry => add(now, d),
            TimerBasis::ItemAge => add(item.eligible_since, d),
        })
    }
}

/// The steps whose pools make up the tiers at `at` (the step and the widening steps before it):
/// first step, count.
pub(crate) fn chain_of(plan: &CPlan, at: StepRef) -> (usize, usize) {
    match at {
        StepRef::Rule(r, s) if plan.plan.rules.get(r).is_some_and(|x| s < x.steps.len()) => {
            let steps = &plan.plan.rules[r].steps;
            let mut first = s;
            while first > 0 && steps[first].mode == PoolMode::Widen {
                first -= 1;
            }
            (first, s + 1 - first)
        }
        _ => (0, 1),
    }
}

/// Least size of [`State::targeted`] before it is pruned.
const TARGETED_PRUNE_MIN: usize = 1024;

/// Whether `item` excludes agent `a` (declined, handed off).
fn excludes(agents: &[Option<Box<AgentSlot>>], item: &ItemRecord, a: u32) -> bool {
    !item.excluded.is_empty()
        && agents.get(a as usize).and_then(|s| s.as_ref()).is_some_and(|s| item.excluded.contains(&s.id))
}

/// Whether a status lets an agent take new work on some channel.
pub(crate) fn takes_work(status: &PresenceStatus) -> bool {
    !status.offline && !status.channels.is_empty()
}

/// The instant (ms) to check `schedule` again after `now`: its next change, or a look a year on
/// when none is that near ([`Schedule::next_change`] looks no further).
///
/// [`Schedule::next_change`]: super::calendar::Schedule::next_change
fn next_check(schedule: &super::calendar::Schedule, now: DateTime<Utc>) -> i64 {
    let horizon = TimeDelta::days(super::calendar::NEXT_CHANGE_HORIZON_DAYS);
    ceil_ms(schedule.next_change(now).unwrap_or_else(|| add(now, horizon)))
}

/// The latest instant in `(from, to]` at which `schedule` closes, if any (walking its changes,
/// a bounded number of them).
fn last_close(schedule: &super::calendar::Schedule, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut at = from;
    let mut last = None;
    for _ in 0..10_000 {
        match schedule.next_change(at) {
            Some(change) if change <= to => {
                if !schedule.is_open(change) {
                    last = Some(change);
                }
                at = change;
            }
            _ => break,
        }
    }
    last
}

/// Whether heap entry (`i`, `seq`) is still the item's current place.
pub(crate) fn live(items: &[Option<ItemSlot>], i: u32, seq: u64) -> bool {
    items
        .get(i as usize)
        .and_then(|s| s.as_ref())
        .is_some_and(|s| matches!(s.state, IState::Waiting { seq: ws, .. } if ws == seq))
}

#[allow(clippy::too_many_arguments)]
fn full_key(
    r: &CRanker,
    tier: usize,
    p: usize,
    arr: &DynArr,
    a: &AgentSlot,
    item: &WorkItem,
    c: usize,
    ch: &ChannelKind,
    now: DateTime<Utc>,
) -> FullKey {
    let mut k = [0i64; 8];
    k[0] = tier as i64;
    for (j, kind) in r.kinds.iter().enumerate().take(7) {
        k[j + 1] = match kind {
            KeyKind::Static => r.statics.get(p).and_then(|v| v.get(j)).copied().unwrap_or(i64::MAX),
            KeyKind::Dyn(pos) => arr.get(*pos).copied().unwrap_or(0),
            KeyKind::Affinity => affinity(item, &a.agent.id, now),
            KeyKind::Custom(s) => {
                let profile = AgentProfile::of(&a.agent);
                s.score(&a.view(&profile, c, ch), item)
            }
        };
    }
    k
}

fn affinity(item: &WorkItem, id: &AgentId, now: DateTime<Utc>) -> i64 {
    if let Some(pos) = item.preferred_agents.iter().position(|p| p == id) {
        return pos as i64;
    }
    match &item.last_agent {
        Some(l) if l.agent == *id && l.until > now => item.preferred_agents.len() as i64,
        _ => i64::MAX,
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    #[test]
    fn a_step_move_reads_four_cache_lines_of_an_item_slot() {
        // Everything a batch step move reads or writes comes before the `WorkItem`; keep it
        // within the slot's first four cache lines.
        let hot_end = std::mem::offset_of!(ItemSlot, tiers) + std::mem::size_of::<Tiers>();
        assert!(hot_end <= 4 * 64, "the hot fields end at byte {hot_end}");
        assert!(std::mem::offset_of!(ItemSlot, item) >= hot_end);
        assert_eq!(std::mem::align_of::<ItemSlot>(), 64);
        // What a step move reads of the boxed item: its first line.
        assert_eq!(std::mem::offset_of!(ItemRecord, work), 0);
        for end in [
            std::mem::offset_of!(WorkItem, id) + std::mem::size_of::<WorkItemId>(),
            std::mem::offset_of!(WorkItem, queue) + std::mem::size_of::<Option<QueueId>>(),
            std::mem::offset_of!(WorkItem, skills) + std::mem::size_of::<std::collections::BTreeMap<String, u32>>(),
        ] {
            assert!(end <= 64, "a field a step move reads ends at byte {end}");
        }
        // The item itself is boxed: a tick walking a million slots walks 256-byte strides (640
        // with the item in place).
        assert!(
            std::mem::size_of::<ItemSlot>() <= 4 * 64,
            "an item slot takes {} bytes",
            std::mem::size_of::<ItemSlot>()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Cache warming

/// Asks the CPU to bring the cache line holding `p` in ahead of use (a no-op off x86-64).
///
/// With many agents, the one a decision takes is usually not in cache, and each line of it read
/// on the way (slot, channel loads, held items, index entries, run stamp) waits for memory in
/// turn. Warming what a profile's next take will read, while this one runs, overlaps those
/// waits with work.
#[allow(unsafe_code)]
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is a hint: it reads nothing the program sees, cannot fault whatever
    // the address, and changes no result.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
