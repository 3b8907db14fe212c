//! The batch path of step timers. Step timers that fall due together mostly move items that
//! nobody can take on to their next step: the same step of the same rule, with tiers that
//! depend on the step and (for `ItemSkills`) on the item's skills only. Such a move is done here
//! with the step's tiers and next due instant computed once per group instead of once per item;
//! anything else (a skip, a decision, a priority or queue change, an agent who could take the
//! item, a step reading more of the item) goes the per-item way, in the same order, so seqs,
//! timers and events come out exactly as they would one by one. The moved items' next timers
//! and class-heap entries are added in blocks when the run ends or before anything else runs
//! ([`State::flush_relax`]); their classes are compacted once then.

use super::RoutingEvent;
use super::eligibility::{Mask, Term};
use super::plan::TimerBasis;
use super::queue::{Entry, discipline_key_at};
use super::state::{
    CPlan, FastMap, IState, ItemSlot, State, StepRef, Tier, Timer, TimerKind, chain_of, from_ms, live, ms,
};
use crate::hash::IdHasher;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Most groups remembered at once (a tick's items go to a handful of steps and skill sets).
const MEMO_GROUPS: usize = 32;

/// Most distinct skill sets numbered ([`SkillSets`]); items with other skill sets
/// are grouped by comparing their skills.
const SKILL_SETS: usize = 1 << 16;

/// An item's skill set not numbered yet ([`ItemSlot::skill_set`](super::state::ItemSlot)).
pub(crate) const SKILL_SET_UNKNOWN: u32 = 0;
/// An item's skill set that has no number (the table is full): compared by value.
const SKILL_SET_NONE: u32 = u32::MAX;

/// One group: items at step `at` waiting in queue `qi` (the item's own queue being the wait
/// queue, none, or another one), with these skills when the step's tiers read them.
#[derive(Debug)]
struct Group {
    at: StepRef,
    qi: u32,
    item_queue: u8,
    skills: Option<BTreeMap<String, u32>>,
    /// The number of `skills` ([`SKILL_SET_NONE`] if it has none).
    skill_set: u32,
    /// `None`: the step's tiers read more of the item than its skills (per-item way).
    tiers: Option<Arc<[Tier]>>,
    /// The class its items wait in on a channel (channel, class), once nobody of the pool was
    /// found available on that channel (which holds until the memo is flushed).
    class: Option<(usize, usize)>,
}

/// A step move's timing: the previous step's due (ms) and the next step, with the entry and
/// next due they give.
#[derive(Debug, Clone, Copy)]
struct DueMemo {
    due_ms: i64,
    next: StepRef,
    entered: DateTime<Utc>,
    next_due: Option<DateTime<Utc>>,
    /// `next_due` in milliseconds.
    next_due_ms: Option<i64>,
}

/// What one run of step timers has computed so far; valid while no per-item move runs
/// between (that one may change agents and queues).
#[derive(Debug, Default)]
pub(crate) struct StepMemo {
    /// The plan, and whether a ranker reads affinity (items are then listed per agent).
    plan: Option<(Arc<CPlan>, bool)>,
    groups: Vec<Group>,
    /// For step-entry timers: the last step move's entry and next due.
    due: Option<DueMemo>,
    /// Next-step timers not added yet (added in one block, in order).
    pub timers: Vec<Timer>,
    /// Per class: the heap entries of moved items (already `Waiting`) not added yet.
    queued: Vec<Vec<Entry<u32>>>,
    /// The classes with entries in `queued`.
    queued_classes: Vec<usize>,
    /// Per class: how many items left it (counted out and compacted at the flush).
    left: Vec<usize>,
    /// The classes with a count in `left`.
    left_classes: Vec<usize>,
    /// By [`hint_of`] an item's step, queue and skill set: 1 + the group the last such item
    /// went to (0: none). Checked before use, so never stale in effect.
    hints: [u8; HINTS],
}

/// Entries in [`StepMemo::hints`].
const HINTS: usize = 32;

/// Where in [`StepMemo::hints`] the group of items moving to `at` in queue `qi` with skill set
/// `skill_set` is looked up: skill set numbers are small and consecutive, and a run mostly
/// moves items to one step of one queue, so its groups mostly get slots of their own.
fn hint_of(at: StepRef, qi: u32, skill_set: u32) -> usize {
    let step = match at {
        StepRef::Rule(r, s) => r.wrapping_mul(7).wrapping_add(s.wrapping_mul(11)),
        StepRef::Implicit => 3,
        StepRef::AnyMember => 5,
    };
    step.wrapping_add((qi as usize).wrapping_mul(13)).wrapping_add(skill_set as usize) % HINTS
}

/// Distinct skill sets numbered; kept for the router's life (items do not change once
/// submitted, so an item keeps its number and a group is found without reading the item's
/// skills again). An item is numbered when it first waits, while it is still in cache.
#[derive(Debug, Default)]
pub(crate) struct SkillSets {
    /// Every skill set seen by a step move, numbered from 1; at most [`SKILL_SETS`] entries.
    numbers: FastMap<BTreeMap<String, u32>, u32>,
    /// The last few sets numbered or found, tried first (comparing is cheaper than hashing).
    recent: VecDeque<(BTreeMap<String, u32>, u32)>,
}

/// Entries in [`SkillSets::recent`].
const RECENT_SKILL_SETS: usize = 8;

impl SkillSets {
    /// The number of skill set `skills`, numbered now if it is new ([`SKILL_SET_NONE`] once the
    /// table is full).
    fn number(&mut self, skills: &BTreeMap<String, u32>) -> u32 {
        if let Some((_, n)) = self.recent.iter().find(|(s, _)| same_skills(s, skills)) {
            return *n;
        }
        let n = match self.numbers.get(skills) {
            Some(n) => *n,
            None if self.numbers.len() >= SKILL_SETS => return SKILL_SET_NONE,
            None => {
                let n = self.numbers.len() as u32 + 1;
                self.numbers.insert(skills.clone(), n);
                n
            }
        };
        if self.recent.len() >= RECENT_SKILL_SETS {
            self.recent.pop_back();
        }
        self.recent.push_front((skills.clone(), n));
        n
    }
}

impl State {
    /// Numbers the skill set of item `i` if it waits and has no number yet: done as it is
    /// queued on arrival, while the item is in cache, so that its first step move in a batch
    /// does not read its skills from memory.
    pub(crate) fn number_skill_set(&mut self, i: u32) {
        let State { items, skill_sets, .. } = self;
        let Some(slot) = items.get_mut(i as usize).and_then(|s| s.as_mut()) else { return };
        if slot.skill_set == SKILL_SET_UNKNOWN && matches!(slot.state, IState::Waiting { .. }) {
            slot.skill_set = skill_sets.number(&slot.item.skills);
        }
    }

    /// Adds the batch's pending timers, requeues its moved items and compacts the classes they
    /// left; the memo forgets its groups. Runs before anything else looks at the state.
    pub(crate) fn flush_relax(&mut self, memo: &mut StepMemo) {
        self.timers.add_all(&mut memo.timers);
        // Out first: a class all of whose items moved is emptied without checks.
        for &ci in &memo.left_classes {
            let n = memo.left.get_mut(ci).map_or(0, std::mem::take);
            self.note_left(ci, n);
        }
        // Each class's entries in one block (a class all of whose items moved takes them as
        // they are).
        for ci in memo.queued_classes.drain(..) {
            let (Some(entries), Some(class)) = (memo.queued.get_mut(ci), self.classes.get_mut(ci)) else { continue };
            let n = entries.len();
            class.heap.append(entries);
            if let Some(q) = self.queues.at_mut(class.qi) {
                q.waiting += n;
            }
        }
        for ci in memo.left_classes.drain(..) {
            let items = &self.items;
            if let Some(class) = self.classes.get_mut(ci) {
                class.heap.maybe_compact(|e| live(items, e.payload, e.seq));
            }
        }
        memo.plan = None;
        memo.groups.clear();
        memo.due = None;
    }
}

/// Whether `a` and `b` are the same skills (the usual one or two entries compared without
/// walking the trees when they differ).
fn same_skills(a: &BTreeMap<String, u32>, b: &BTreeMap<String, u32>) -> bool {
    // Skill names are short: compared byte by byte inline rather than through `memcmp`.
    let same_first = match (a.first_key_value(), b.first_key_value()) {
        (Some((ka, la)), Some((kb, lb))) => la == lb && ka.len() == kb.len() && ka.bytes().eq(kb.bytes()),
        (None, None) => true,
        _ => false,
    };
    a.len() == b.len() && same_first && (a.len() < 2 || a == b)
}

/// Whether the tiers of step `at` read the item through its skills only (`Some(true)`), not at
/// all (`Some(false)`), or otherwise (`None`).
fn reads_skills_only(plan: &CPlan, at: StepRef) -> Option<bool> {
    let StepRef::Rule(r, _) = at else { return None };
    let (first, len) = chain_of(plan, at);
    let steps = plan.plan.rules.get(r)?.steps.get(first..first + len)?;
    let mut skills = false;
    for step in steps {
        let p = &step.pool;
        if step.custom.is_some() || !p.agents.is_empty() || p.preferred_agents || p.last_agent {
            return None;
        }
        match &step.eligibility {
            Term::ItemSkills => skills = true,
            t if !t.reads_item() => {}
            _ => return None,
        }
    }
    Some(skills)
}

/// Most entries in [`TiersMemo`].
const TIERS_MEMO: usize = 16;

/// Tiers of steps that read no more of an item than its skills, kept across operations: items
/// entering such a step with a skill set seen lately share the tiers computed for an earlier
/// one instead of computing them again ([`State::compute_tiers`]). Tiers are kept from the
/// second item of a kind on, so skill sets that never repeat cost no allocations.
#[derive(Debug, Default)]
pub(crate) struct TiersMemo {
    /// The [`State::tiers_gen`] the entries were computed under (a new plan, queue or profile
    /// starts the memo again).
    tiers_gen: u64,
    entries: Vec<MemoTiers>,
    /// Where the next entry goes once the memo is full.
    next: usize,
    /// Keys (step, queue and skills hashed) that missed lately: a key is kept only when it
    /// misses a second time, so items whose skill sets do not repeat cost no allocations.
    missed: [u64; TIERS_MEMO],
    /// Where the next key goes in `missed`.
    missed_next: usize,
}

/// Tiers of step `at` for items in queue `qi` (`item_queue` as in [`Group`]) with skills
/// `skills` (`None` when the step does not read them), whose [`skills_hash`] is `print`.
#[derive(Debug)]
struct MemoTiers {
    at: StepRef,
    qi: u32,
    item_queue: u8,
    print: u64,
    skills: Option<BTreeMap<String, u32>>,
    tiers: Arc<[Tier]>,
}

/// The relation of item `slot`'s own queue to the one it waits in, as a step's default pool
/// reads it: none (all agents) 0, the wait queue (its members) 1; `None` for another queue,
/// which the memos leave to the per-item way.
fn item_queue_of(slot: &ItemSlot) -> Option<u8> {
    match &slot.item.queue {
        None => Some(0),
        Some(q) if *q == slot.queue => Some(1),
        Some(_) => None,
    }
}

/// A hash of a skill set (the router's unkeyed hasher over names and levels), compared before
/// the sets themselves.
fn skills_hash(skills: &BTreeMap<String, u32>) -> u64 {
    let mut h = IdHasher::default();
    for (name, level) in skills {
        h.write(name.as_bytes());
        h.write_u32(*level);
    }
    h.finish()
}

/// A [`TiersMemo::missed`] key.
fn miss_key(key: &(u64, StepRef, u32, u8)) -> u64 {
    let mut h = IdHasher::default();
    key.hash(&mut h);
    h.finish()
}

impl State {
    /// Gives item `i` the tiers of its step from the memo, computing them there first if they
    /// are not in it yet; `false`, with nothing changed, if the step's tiers read more of the
    /// item than its skills: the caller computes them.
    pub(crate) fn share_memo_tiers(&mut self, i: u32) -> bool {
        let Some(slot) = self.items.get(i as usize).and_then(|s| s.as_ref()) else { return false };
        let at = slot.at;
        let Some(reads_skills) = reads_skills_only(&self.plan, at) else { return false };
        let Some(item_queue) = item_queue_of(slot) else { return false };
        let qi = slot.qi;
        let skills = &slot.item.skills;
        let print = if reads_skills { skills_hash(skills) } else { 0 };
        let memo = &mut self.tiers_memo;
        if memo.tiers_gen != self.tiers_gen {
            memo.entries.clear();
            memo.next = 0;
            memo.tiers_gen = self.tiers_gen;
        }
        let found = memo.entries.iter().position(|e| {
            e.print == print
                && e.at == at
                && e.qi == qi
                && e.item_queue == item_queue
                && e.skills.as_ref().is_none_or(|sk| same_skills(sk, skills))
        });
        let e = match found {
            Some(e) => e,
            None => {
                let key = miss_key(&(print, at, qi, item_queue));
                let seen = memo.missed.contains(&key);
                if !seen {
                    memo.missed[memo.missed_next % TIERS_MEMO] = key;
                    memo.missed_next = (memo.missed_next + 1) % TIERS_MEMO;
                    return false;
                }
                let State { plan, items, profiles, queues, .. } = self;
                let Some(slot) = items.get(i as usize).and_then(|s| s.as_ref()) else { return false };
                let mut tiers = Vec::new();
                let wait = (&slot.queue, slot.qi);
                Self::tiers_into(plan, profiles, queues, &slot.item, wait, at, slot.step_entered, &mut tiers);
                let skills = reads_skills.then(|| slot.item.skills.clone());
                let entry = MemoTiers { at, qi, item_queue, print, skills, tiers: Arc::from(tiers) };
                let memo = &mut self.tiers_memo;
                if memo.entries.len() < TIERS_MEMO {
                    memo.entries.push(entry);
                    memo.entries.len() - 1
                } else {
                    let e = memo.next % TIERS_MEMO;
                    memo.next = e + 1;
                    memo.entries[e] = entry;
                    e
                }
            }
        };
        let State { items, tiers_memo, .. } = self;
        match (items.get_mut(i as usize).and_then(|s| s.as_mut()), tiers_memo.entries.get(e)) {
            (Some(slot), Some(entry)) => {
                slot.tiers.share(&entry.tiers);
                true
            }
            _ => false,
        }
    }

    /// Moves waiting item `i` whose step timer `epoch` fell due on to its next step the batch
    /// way, if that move is a plain one (see the module docs). `false`, with nothing changed,
    /// if it must go the per-item way.
    pub(crate) fn relax_step(&mut self, i: u32, epoch: u64, now: DateTime<Utc>, memo: &mut StepMemo) -> bool {
        if memo.plan.is_none() {
            memo.plan = Some((self.plan.clone(), self.rankers.iter().any(|r| r.affinity)));
        }
        // Items named for agents (affinity rankers) are listed per agent: the per-item way.
        let Some((plan, false)) = &memo.plan else { return false };
        let plan: &CPlan = plan;
        let now_ms = ms(now);
        let Some(slot) = self.items.get(i as usize).and_then(|s| s.as_ref()) else { return false };
        if slot.step_gen != epoch
            || slot.by_policy
            || slot.announced != slot.wait_gen
            || !matches!(slot.state, IState::Waiting { .. })
        {
            return false;
        }
        let StepRef::Rule(r, s) = slot.at else { return false };
        let Some(due_ms) = slot.step_due.filter(|d| *d <= now_ms) else { return false };
        let next = StepRef::Rule(r, s + 1);
        let Some(step) = plan.plan.rules.get(r).and_then(|x| x.steps.get(s + 1)) else { return false };
        if step.priority.is_some() || step.skip_if.is_some() || step.decision.is_some() {
            return false;
        }
        let want = step.pool.queues.first().or(slot.item.queue.as_ref()).unwrap_or(&self.config.default_queue);
        if *want != slot.queue || self.queues.at(slot.qi).is_none() {
            return false;
        }
        // The step's entry (the previous due instant, as `advance` takes it) and next due.
        let (entered, next_due, next_due_ms) = match memo.due {
            Some(m) if m.due_ms == due_ms && m.next == next && step.timer == TimerBasis::StepEntry => {
                (m.entered, m.next_due, m.next_due_ms)
            }
            _ => {
                let entered = from_ms(due_ms).min(now);
                let next_due = self.step_due(step, &slot.item, entered);
                let next_due_ms = next_due.map(ms);
                if step.timer == TimerBasis::StepEntry {
                    memo.due = Some(DueMemo { due_ms, next, entered, next_due, next_due_ms });
                }
                (entered, next_due, next_due_ms)
            }
        };
        if next_due.is_some_and(|d| d <= now) {
            return false;
        }
        // The group's tiers.
        let Some(item_queue) = item_queue_of(slot) else { return false };
        let (qi, chan) = (slot.qi, slot.chan);
        let skill_set = match slot.skill_set {
            SKILL_SET_UNKNOWN => self.skill_sets.number(&slot.item.skills),
            n => n,
        };
        let matches = |g: &Group| {
            g.at == next
                && g.qi == qi
                && g.item_queue == item_queue
                && g.skills.as_ref().is_none_or(|sk| {
                    if skill_set == SKILL_SET_NONE || g.skill_set == SKILL_SET_NONE {
                        same_skills(sk, &slot.item.skills)
                    } else {
                        g.skill_set == skill_set
                    }
                })
        };
        // The group items like this one went to last, else a search.
        let hint = hint_of(next, qi, skill_set);
        let hinted = memo.hints.get(hint).and_then(|g| g.checked_sub(1)).map(usize::from);
        let found = match hinted {
            Some(g) if memo.groups.get(g).is_some_and(matches) => Some(g),
            _ => memo.groups.iter().position(matches),
        };
        let g = match found {
            Some(g) => g,
            None => {
                if memo.groups.len() >= MEMO_GROUPS {
                    memo.groups.clear();
                }
                let reads = reads_skills_only(plan, next);
                let tiers = reads.map(|_| {
                    let mut tiers = Vec::new();
                    let State { profiles, queues, .. } = self;
                    let wait = (&slot.queue, slot.qi);
                    Self::tiers_into(plan, profiles, queues, &slot.item, wait, next, entered, &mut tiers);
                    Arc::from(tiers)
                });
                let skills = (reads == Some(true)).then(|| slot.item.skills.clone());
                memo.groups.push(Group { at: next, qi, item_queue, skills, skill_set, tiers, class: None });
                memo.groups.len() - 1
            }
        };
        if let Some(h) = memo.hints.get_mut(hint) {
            *h = g as u8 + 1;
        }
        let Some(group) = memo.groups.get_mut(g) else { return false };
        let Some(tiers) = group.tiers.as_ref() else { return false };
        let known = group.class.filter(|(c, _)| *c == chan).map(|(_, ci)| ci);
        if known.is_none() && !self.nobody_available(tiers, next, chan) {
            return false;
        }
        // The move, as `fire` → `advance` → `enter_step` → `route` would make it.
        // Out of its class now, back in at the flush: a class all of whose items move is
        // emptied without checks, and no entry goes stale on the way.
        if let Some(left) = self.leave_class(i) {
            if memo.left.len() <= left {
                memo.left.resize(left + 1, 0);
            }
            if let Some(n) = memo.left.get_mut(left) {
                if *n == 0 {
                    memo.left_classes.push(left);
                }
                *n += 1;
            }
        }
        let step_gen = self.next_seq();
        let Some(slot) = self.items.get_mut(i as usize).and_then(|s| s.as_mut()) else { return false };
        slot.at = next;
        slot.step_entered = entered;
        slot.step_gen = step_gen;
        slot.tiers.share(tiers);
        slot.step_due = next_due_ms;
        slot.skill_set = skill_set;
        let id = slot.item.id;
        if let Some(due) = next_due_ms {
            let seq = self.next_seq();
            memo.timers.push(Timer { due, seq, kind: TimerKind::Step { item: i, epoch: step_gen } });
        }
        self.events.push(RoutingEvent::StepEntered { item: id, rule: plan.rule_name(r), step: s + 1 });
        let seq = self.next_seq();
        let ci = match known {
            Some(ci) => Some(ci),
            None => {
                let mut mask = Mask::default();
                for t in tiers.iter() {
                    mask.or_with(&t.mask);
                }
                let ci = self.class_for(qi, chan, mask);
                group.class = ci.map(|ci| (chan, ci));
                ci
            }
        };
        // Waiting from now on; its heap entry is added at the flush (the group names no agent
        // and no ranker reads affinity, so the item is listed for no agent).
        let State { items, queues, .. } = self;
        if let Some(ci) = ci
            && let Some(q) = queues.at(qi)
            && let Some(slot) = items.get_mut(i as usize).and_then(|s| s.as_mut())
        {
            let key = discipline_key_at(&q.config.discipline, &slot.item, slot.priority, slot.since_ms);
            slot.state = IState::Waiting { class: ci, seq };
            if memo.queued.len() <= ci {
                memo.queued.resize_with(ci + 1, Vec::new);
            }
            if let Some(entries) = memo.queued.get_mut(ci) {
                if entries.is_empty() {
                    memo.queued_classes.push(ci);
                }
                entries.push(Entry { key, seq, payload: i });
            }
        }
        true
    }
}
