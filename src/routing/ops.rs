//! The router's operations on its state (both matching directions, offers, timers).

use super::model::TimeoutAction;
use super::plan::{DecisionFallback, DecisionHook, Fallback, PolicyChoice, PriorityChange};
use super::state::{IState, ItemRecord, ItemSlot, State, StepRef, Tiers, TimerKind, add, ceil_ms, from_ms, ms};
use super::{HandoffMode, OfflineAction, PresenceStatus, RequeueReason, RoutingEvent};
use crate::model::{AgentId, QueueId};
use chrono::{DateTime, Utc};

/// Most items one freed agent takes in one go (bounded work per operation).
const FILL_LIMIT: usize = 256;
/// Most agents listed in one [`RoutingEvent::DecisionRequested`].
pub(crate) const MAX_DECISION_AGENTS: usize = 100;

/// The most rounds of due timers one call fires: a timer's action may schedule another timer
/// that is due already (the next overflow of a chain after a late tick), so a call fires round
/// after round; a ring of queues overflowing into each other with short waits, ticked very late,
/// would otherwise run for as many hops as fit into the delay.
pub(crate) const MAX_TIMER_ROUNDS: usize = 100_000;

impl State {
    pub fn item_id(&self, i: u32) -> super::WorkItemId {
        self.items[i as usize].as_ref().map(|s| s.item.id).unwrap_or(super::WorkItemId::from_u128(0))
    }

    pub fn agent_id(&self, a: u32) -> AgentId {
        self.agents[a as usize].as_ref().map(|s| s.id.clone()).unwrap_or_else(|| self.unknown_agent.clone())
    }

    fn slot(&mut self, i: u32) -> Option<&mut ItemSlot> {
        self.items.get_mut(i as usize).and_then(|s| s.as_mut())
    }

    /// Creates the slot for a new item in `queue` (index `qi`) at index `i` (from
    /// [`take_item_index`](super::state::take_item_index), already in `item_ids`) and routes it.
    pub fn admit(&mut self, i: u32, item: super::WorkItem, queue: QueueId, qi: u32, now: DateTime<Utc>) {
        let chan = self.chan_of(&item.channel);
        let eligible_ms = ms(item.eligible_since);
        // The slot is written in its place (a free one, or a new one at the end), not built
        // and moved there: it is four cache lines.
        let tiers = self.spare_tiers.pop().unwrap_or_default();
        let plan_gen = self.plan_gen;
        let item = Box::new(ItemRecord {
            work: item,
            plan_gen,
            queue_entered: now,
            excluded: Vec::new(),
            declines: 0,
            bot_hold: None,
            retries: Vec::new(),
            assigned_ms: 0,
            handled_ms: 0,
            decided_gen: 0,
            decision_fallback: None,
            moved: false,
            hours_moved: false,
        });
        let by_policy = self.policy.is_some();
        let Some(place) = self.items.get_mut(i as usize) else { return };
        *place = Some(ItemSlot {
            priority: item.priority,
            chan,
            queue,
            qi,
            since_ms: if item.age_adjustment.is_zero() { eligible_ms } else { ms(item.effective_since()) },
            eligible_ms,
            at: StepRef::Implicit,
            step_entered: now,
            step_due: None,
            step_gen: 0,
            wait_gen: 0,
            tiers: Tiers::from_own(tiers),
            state: IState::Moving,
            announced: 0,
            by_policy,
            skill_set: super::relax::SKILL_SET_UNKNOWN,
            item,
        });
        self.enter_wait_queue(i, None, now);
        if self.classify(i, now) {
            self.route(i, now);
            self.number_skill_set(i);
        }
    }

    /// Chooses the first matching rule and enters its first step, from the item's own
    /// priority (changes earlier steps made do not carry over). `false` if the item finished.
    pub fn classify(&mut self, i: u32, now: DateTime<Utc>) -> bool {
        let epoch = self.plan_gen;
        let Some(slot) = self.slot(i) else { return false };
        slot.item.plan_gen = epoch;
        slot.priority = slot.item.priority;
        let at = self.first_rule(i, now);
        self.enter_step(i, at, now, now, now)
    }

    /// The first step of the first rule item `i` matches now (the implicit step if none does).
    fn first_rule(&self, i: u32, now: DateTime<Utc>) -> StepRef {
        let Some(slot) = self.items[i as usize].as_ref() else { return StepRef::Implicit };
        let mut env = None; // built only for a rule that needs more than `Any`
        self.plan
            .plan
            .rules
            .iter()
            .position(|r| {
                matches!(r.when, super::Term::Any) || r.when.matches_in(env.get_or_insert_with(|| self.env(slot, now)))
            })
            .map_or(StepRef::Implicit, |r| StepRef::Rule(r, 0))
    }

    /// Replaces item `i`'s work item by `work` (the same item, changed: see
    /// [`Router::update_item`](super::Router::update_item)); `priority` is the new priority if
    /// the change sets one. A waiting item keeps its rule and step when it still matches that
    /// rule first (its eligibility there is computed again), else it is classified again; then
    /// it is routed. An item an overflow placed keeps its queue. Offered, assigned and
    /// decision-pending items keep their place; the change counts when they are routed again.
    pub fn update_item(&mut self, i: u32, work: super::WorkItem, priority: Option<i32>, now: DateTime<Utc>) {
        let waiting = matches!(self.items[i as usize].as_ref().map(|x| &x.state), Some(IState::Waiting { .. }));
        if waiting {
            self.unqueue(i);
        }
        let Some(slot) = self.slot(i) else { return };
        if slot.item.skills != work.skills {
            slot.skill_set = super::relax::SKILL_SET_UNKNOWN;
        }
        slot.since_ms = ms(work.effective_since());
        slot.item.work = work;
        if let Some(p) = priority {
            slot.priority = p;
        }
        if !waiting {
            return;
        }
        let (at, moved, current_plan) = (slot.at, slot.item.moved, slot.item.plan_gen == self.plan_gen);
        // A fallback (any member of its queue) stays one.
        let same_rule = match (at, self.first_rule(i, now)) {
            (StepRef::Rule(r, _), StepRef::Rule(n, _)) => r == n,
            (StepRef::Implicit, StepRef::Implicit) | (StepRef::AnyMember, _) => true,
            _ => false,
        };
        let placed = if moved || !current_plan {
            self.reclassify(i, now)
        } else if same_rule {
            self.compute_tiers(i);
            true
        } else {
            self.classify(i, now)
        };
        if placed {
            self.route(i, now);
            self.number_skill_set(i);
        }
    }

    fn next_step(&self, at: StepRef) -> Option<StepRef> {
        match at {
            StepRef::Rule(r, s) if s + 1 < self.plan.plan.rules.get(r).map_or(0, |r| r.steps.len()) => {
                Some(StepRef::Rule(r, s + 1))
            }
            _ => None,
        }
    }

    /// Sets the queue an item waits in, restarting its queue timers when it changes (`None`:
    /// the queue already in the slot, which the item has just been admitted to).
    pub(crate) fn enter_wait_queue(&mut self, i: u32, queue: Option<QueueId>, now: DateTime<Utc>) {
        let epoch = self.next_seq();
        let State { items, queues, .. } = self;
        let Some(slot) = items.get_mut(i as usize).and_then(|s| s.as_mut()) else { return };
        if let Some(q) = &queue
            && slot.wait_gen != 0
            && slot.queue == *q
        {
            return;
        }
        slot.item.queue_entered = now;
        slot.wait_gen = epoch;
        slot.item.retries.clear();
        let qi = match &queue {
            Some(q) => queues.idx(q),
            // Just admitted: the slot already has the queue's index.
            None => queues.at(slot.qi).map(|_| slot.qi).or_else(|| queues.idx(&slot.queue)),
        };
        slot.qi = qi.unwrap_or(u32::MAX);
        if let Some(q) = queue {
            slot.queue = q;
        }
        let Some(q) = qi.and_then(|qi| queues.at(qi)) else { return };
        let max_wait = q.config.max_wait;
        if let Some(m) = max_wait {
            self.schedule(add(now, m), TimerKind::MaxWait { item: i, epoch });
        }
        self.retry_at_next_delay_end(i, now);
    }

    /// Schedules a retry of waiting item `i` when the next member delay of its queue ends after
    /// `now` (its members with a delay take it from then). One at a time: each retry schedules
    /// the next, so however many delays a queue has, none is left without a timer.
    pub(crate) fn retry_at_next_delay_end(&mut self, i: u32, now: DateTime<Utc>) {
        let Some(slot) = self.items[i as usize].as_ref() else { return };
        let Some(q) = self.queues.at(slot.qi) else { return };
        let (since, now_ms) = (ms(slot.item.eligible_since), ms(now));
        let next = q.delays.iter().map(|(_, d)| since.saturating_add(*d)).filter(|due| *due > now_ms).min();
        if let Some(due) = next {
            self.schedule_retry(i, due);
        }
    }

    /// Enters step `at` as of `entered` (a step timer that fires late enters the next step at
    /// its due time, so dwell times do not stretch), skipping and expiring as the plan says.
    /// A new queue is entered as of `entered`, but not before `back` (when the item came back
    /// from an agent: its time in the new queue starts then). `false` if the item finished.
    pub fn enter_step(
        &mut self,
        i: u32,
        mut at: StepRef,
        mut entered: DateTime<Utc>,
        back: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        for _ in 0..=super::plan::MAX_STEPS + 2 {
            let epoch = self.next_seq();
            // The plan is read in place (it does not change here): no shared handle is taken.
            let State { plan, items, config, .. } = self;
            let step = plan.step(at);
            let Some(slot) = items.get_mut(i as usize).and_then(|s| s.as_mut()) else { return false };
            slot.at = at;
            slot.step_entered = entered;
            slot.step_gen = epoch;
            slot.step_due = None;
            if let Some(change) = step.priority {
                slot.priority = match change {
                    PriorityChange::Set(p) => p,
                    PriorityChange::Raise(d) => slot.priority.saturating_add(d),
                };
            }
            let new_queue = match at {
                StepRef::AnyMember => None,
                _ => {
                    let want = step.pool.queues.first().or(slot.item.queue.as_ref()).unwrap_or(&config.default_queue);
                    (*want != slot.queue).then(|| want.clone())
                }
            };
            let may_skip = step.skip_if.is_some();
            if let Some(q) = new_queue {
                self.enter_wait_queue(i, Some(q), entered.max(back));
            }
            self.compute_tiers(i);
            if may_skip && self.skips(i, at, now) {
                let id = self.item_id(i);
                if let StepRef::Rule(r, s) = at {
                    let rule = self.plan.rule_name(r);
                    self.events.push(RoutingEvent::StepSkipped { item: id, rule, step: s });
                }
                match self.next_step(at) {
                    Some(n) => {
                        at = n;
                        continue;
                    }
                    None => return self.exhausted(i, entered.max(back), now),
                }
            }
            let item = match self.items[i as usize].as_ref() {
                Some(s) => &s.item,
                None => return false,
            };
            match self.step_due(self.plan.step(at), item, entered) {
                Some(due) if due <= now => match self.next_step(at) {
                    Some(n) => {
                        at = n;
                        entered = due;
                        continue;
                    }
                    None => return self.exhausted(i, due.max(back), now),
                },
                Some(due) => {
                    if let Some(slot) = self.slot(i) {
                        slot.step_due = Some(ms(due));
                    }
                    self.schedule(due, TimerKind::Step { item: i, epoch });
                }
                None => {}
            }
            if let StepRef::Rule(r, s) = at {
                let id = self.item_id(i);
                let rule = self.plan.rule_name(r);
                self.events.push(RoutingEvent::StepEntered { item: id, rule, step: s });
            }
            return true;
        }
        true
    }

    /// Whether step `at`'s `skip_if` holds for item `i` now.
    fn skips(&mut self, i: u32, at: StepRef, now: DateTime<Utc>) -> bool {
        let plan = std::sync::Arc::clone(&self.plan);
        plan.step(at).skip_if.as_ref().is_some_and(|skip| self.step_skip(i, skip, now))
    }

    /// The last step is over (as of `ended`, at most `now`): apply the rule's fallback; an
    /// overflow queue is entered as of `ended`. `false` if the item finished.
    fn exhausted(&mut self, i: u32, ended: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let at = match self.items[i as usize].as_ref() {
            Some(s) => s.at,
            None => return false,
        };
        match self.fallback_of(at) {
            Fallback::StayQueued => {
                if let Some(s) = self.slot(i) {
                    s.step_due = None;
                }
                true
            }
            Fallback::AnyQueueMember => {
                if let Some(s) = self.slot(i) {
                    s.at = StepRef::AnyMember;
                    s.step_due = None;
                }
                self.compute_tiers(i);
                true
            }
            other => {
                let action = other.as_timeout().unwrap_or(TimeoutAction::Close);
                self.timeout(i, action, "the plan's last step ended".into(), ended, now)
            }
        }
    }

    /// Applies a timeout action to an item that holds no agent; an overflow queue is entered
    /// as of `entered`. `false` if the item finished.
    pub fn timeout(
        &mut self,
        i: u32,
        action: TimeoutAction,
        reason: String,
        entered: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        let overflow = matches!(&action, TimeoutAction::Overflow(q) if self.queues.contains_key(q));
        self.close_decision_request(i);
        // An item that moves on still looks for a human: a bot offering it keeps it.
        self.release_holds(i, overflow, now);
        let id = self.item_id(i);
        if let TimeoutAction::Overflow(q) = &action
            && overflow
        {
            let from = self.items[i as usize].as_ref().map(|s| s.queue.clone());
            self.place_in_queue(i, q.clone(), entered);
            if let Some(from) = from {
                self.events.push(RoutingEvent::Overflowed { item: id, from, to: q.clone() });
            }
            return true;
        }
        let action = match action {
            TimeoutAction::Overflow(_) => TimeoutAction::Close,
            a => a,
        };
        self.events.push(RoutingEvent::TimedOut { item: id, action, reason });
        self.remove_item(i);
        false
    }

    /// Closes item `i`'s open decision request of the host, if it has one: its answer would
    /// be refused from now on, so the host is told ([`RoutingEvent::DecisionExpired`]). The
    /// item is then `Moving`.
    fn close_decision_request(&mut self, i: u32) {
        let Some(slot) = self.items[i as usize].as_ref() else { return };
        if let IState::Awaiting { request, .. } = slot.state {
            let item = slot.item.id;
            self.events.push(RoutingEvent::DecisionExpired { item, request });
            self.decided(i);
        }
    }

    /// Item `i`'s holders let go for a transfer (a bot serving the customer while humans are
    /// offered the item keeps serving); the agent it was assigned to is excluded from it, and
    /// an open decision request of the host is closed. The item is `Moving`; answers the queue
    /// it was in and that agent.
    fn let_go_for_transfer(&mut self, i: u32, now: DateTime<Utc>) -> Option<(QueueId, Option<AgentId>)> {
        let slot = self.items[i as usize].as_ref()?;
        let from = slot.queue.clone();
        let holder = match slot.state {
            IState::Assigned { agent, .. } => Some(agent),
            _ => None,
        };
        self.close_decision_request(i);
        self.release_holds(i, true, now);
        let agent = holder.map(|a| self.agent_id(a));
        let s = self.slot(i)?;
        s.state = IState::Moving;
        if let Some(a) = &agent {
            s.item.unassigned(ms(now));
            s.item.excluded.push(a.clone());
        }
        Some((from, agent))
    }

    /// Gives item `i` to agent `a` for the host ([`Router::transfer_to_agent`]).
    pub fn transfer_to_agent(&mut self, i: u32, a: u32, now: DateTime<Utc>) -> crate::Result<()> {
        let (Some(slot), Some(target)) = (self.items[i as usize].as_ref(), self.agents[a as usize].as_ref()) else {
            return Err(crate::Error::not_found("work item", "?"));
        };
        let (id, name) = (slot.item.id, &target.id);
        match &slot.state {
            IState::Assigned { agent, .. } if *agent == a => {
                return Err(crate::Error::Refused(format!("work item {id} is assigned to {name} already")));
            }
            IState::Offered { agents, .. } if agents.contains(&a) => {
                return Err(crate::Error::Refused(format!(
                    "work item {id} is offered to {name} already: they can accept it"
                )));
            }
            _ if slot.item.bot_hold == Some(a) => {
                return Err(crate::Error::Refused(format!(
                    "work item {id} is with {name} already, who serves the customer while humans are offered it"
                )));
            }
            _ => {}
        }
        if let Err(block) = target.can_take(slot.chan, &self.channels) {
            return Err(crate::Error::Refused(format!("{name} cannot take work item {id} now: {block}")));
        }
        let policy = self.queues.get(&slot.queue).map(|q| q.config.offer.clone()).unwrap_or_default();
        let Some((from, agent)) = self.let_go_for_transfer(i, now) else { return Ok(()) };
        let was_assigned = agent.is_some();
        let target = self.agent_id(a);
        if let Some(s) = self.slot(i) {
            s.item.excluded.retain(|x| *x != target);
        }
        self.events.push(RoutingEvent::Transferred { item: id, to: from.clone(), from, agent, target: Some(target) });
        if policy.offer {
            self.offer(i, vec![a], policy.expires_after, now);
        } else if !was_assigned {
            // A wait ends here: it counts in the queue's estimate.
            self.assign(i, a, now);
        } else {
            self.hand_over(i, a, now);
        }
        Ok(())
    }

    /// Moves item `i` to queue `to` (a known one) for the host ([`Router::transfer`]).
    pub fn transfer(&mut self, i: u32, to: QueueId, now: DateTime<Utc>) {
        let Some((from, agent)) = self.let_go_for_transfer(i, now) else { return };
        let id = self.item_id(i);
        let Some(s) = self.slot(i) else { return };
        s.item.work.queue = Some(to.clone());
        s.item.work.preferred_agents.clear();
        s.item.work.last_agent = None;
        // A new wait in the queue, even the one it was in: its max wait counts from now.
        s.wait_gen = 0;
        self.events.push(RoutingEvent::Transferred { item: id, from, to: to.clone(), agent, target: None });
        self.place_in_queue(i, to, now);
        self.route_back(i, now);
    }

    /// Places item `i`, which nobody holds, in queue `q` as of `entered`, for any member of
    /// that queue (an overflow, a transfer): the plan's steps no longer apply to it.
    fn place_in_queue(&mut self, i: u32, q: QueueId, entered: DateTime<Utc>) {
        if let Some(s) = self.slot(i) {
            s.at = StepRef::AnyMember;
            s.step_due = None;
            s.state = IState::Moving;
            s.item.moved = true;
            s.item.hours_moved = false;
        }
        self.enter_wait_queue(i, Some(q), entered);
        self.compute_tiers(i);
    }

    /// Releases whatever agents hold item `i` (offers, assignment, and the bot hold unless
    /// `keep_bot`); state becomes `Moving` (waiting items are taken out of their class).
    fn release_holds(&mut self, i: u32, keep_bot: bool, now: DateTime<Utc>) {
        let Some(slot) = self.items[i as usize].as_ref() else { return };
        let chan = slot.chan;
        let state = slot.state.clone();
        let bot = slot.item.bot_hold;
        match state {
            IState::Waiting { .. } => self.unqueue(i),
            IState::Offered { agents, .. } => {
                let id = self.item_id(i);
                for a in agents {
                    self.unhold(a, i, chan, now);
                    let agent = self.agent_id(a);
                    self.events.push(RoutingEvent::OfferRescinded { item: id, agent });
                    self.freed.push(a);
                }
            }
            IState::Assigned { agent, .. } => {
                self.unhold(agent, i, chan, now);
                self.freed.push(agent);
            }
            IState::Awaiting { .. } | IState::Moving => {}
        }
        if let Some(b) = bot.filter(|_| !keep_bot) {
            self.unhold(b, i, chan, now);
            self.freed.push(b);
        }
        if let Some(s) = self.slot(i) {
            s.state = IState::Moving;
            if !keep_bot {
                s.item.bot_hold = None;
            }
        }
    }

    pub fn remove_item(&mut self, i: u32) {
        if let Some(slot) = self.items[i as usize].take() {
            self.item_ids.remove(&slot.item.id);
            self.free_items.push(i);
            if self.spare_tiers.len() < 64 {
                self.spare_tiers.push(slot.tiers.into_spare());
            }
        }
    }

    /// Tries to place item `i` (waiting or moving); queues it if nobody can take it.
    /// `true` if it was offered or assigned.
    pub fn route(&mut self, i: u32, now: DateTime<Utc>) -> bool {
        let Some(slot) = self.items[i as usize].as_ref() else { return false };
        if !slot.by_policy
            && slot.item.decided_gen != slot.step_gen
            && let Some(hook) = self.plan.step(slot.at).decision.clone()
        {
            self.request_decision(i, hook, now);
            return false;
        }
        let Some(q) = self.queues.at(slot.qi) else { return false };
        let policy = &q.config.offer;
        let (offer, expires_after) = (policy.offer, policy.expires_after);
        let n = if offer { policy.parallel as usize } else { 1 };
        let agents: Vec<u32> = if slot.by_policy {
            match self.policy_choice(i, n, now) {
                Some(v) => v,
                None => {
                    // The policy handed the item back to the plan. One waiting in the policy's
                    // class (no agent finds it there) moves to its plan's class.
                    if matches!(self.items[i as usize].as_ref().map(|s| &s.state), Some(IState::Waiting { .. })) {
                        self.unqueue(i);
                    }
                    if let Some(s) = self.slot(i) {
                        s.by_policy = false;
                    }
                    self.compute_tiers(i);
                    self.candidates(i, n, now).iter().map(|c| c.agent).collect()
                }
            }
        } else {
            let cands = self.candidates(i, n, now);
            match &cands[..] {
                [] => Vec::new(),
                [one] if !offer => {
                    self.assign(i, one.agent, now);
                    return true;
                }
                many => many.iter().map(|c| c.agent).collect(),
            }
        };
        if agents.is_empty() {
            let Some(slot) = self.items[i as usize].as_ref() else { return false };
            let (moving, qi) = (matches!(slot.state, IState::Moving), slot.qi);
            // Nobody takes it and its queue is closed: the after-hours action, before it is
            // queued (or announced) there — unless that action of another queue brought it here
            // (now, or earlier in this closed period and it came back from an agent).
            if moving && !self.hours_move && self.queue_closed(qi, now) && !self.waits_for_opening(i, now) {
                self.after_hours(i, now);
                return false;
            }
            if moving {
                self.enqueue(i);
                if let Some(s) = self.slot(i)
                    && s.announced != s.wait_gen
                {
                    s.announced = s.wait_gen;
                    let (item, queue) = (s.item.id, s.queue.clone());
                    self.events.push(RoutingEvent::Queued { item, queue });
                }
            }
            return false;
        }
        if offer {
            self.offer(i, agents, expires_after, now);
        } else {
            self.assign(i, agents[0], now);
        }
        true
    }

    pub fn queued_reason(&self, i: u32, now_ms: i64) -> String {
        let Some(slot) = self.items[i as usize].as_ref() else { return String::new() };
        if slot.by_policy {
            return "the routing policy asked to wait".into();
        }
        let mut eligible = 0u64;
        let mut signed = 0u64;
        let mut off_shift = 0u64;
        slot.union_mask().for_each(|p| {
            eligible += u64::from(self.profile_agents.get(p).copied().unwrap_or(0));
            signed += u64::from(self.signed_in.get(p).copied().unwrap_or(0));
            off_shift += u64::from(self.off_shift.get(p).copied().unwrap_or(0));
        });
        let explicit: usize = slot.tiers.iter().map(|t| t.named(now_ms).len()).sum();
        let step = self.step_label(slot.item.plan_gen, slot.at);
        let closed = match self.closed_reason(slot.qi) {
            Some(why) if self.queue_closed(slot.qi, super::state::from_ms(now_ms)) => format!("; {why}"),
            _ => String::new(),
        };
        if eligible == 0 && explicit == 0 {
            format!("no agent is eligible at {step}{closed}")
        } else {
            format!(
                "no eligible agent can take it now at {step}: {eligible} eligible by profile ({signed} signed in{}){}{closed}",
                if off_shift > 0 { format!(", {off_shift} off shift") } else { String::new() },
                if explicit > 0 { format!(", {explicit} named") } else { String::new() }
            )
        }
    }

    /// The label of step `at` of the plan of generation `plan_gen` (an item's `plan_gen`).
    pub fn step_label(&self, plan_gen: u64, at: StepRef) -> &str {
        match self.step_name(plan_gen, at) {
            Ok(l) => l,
            Err(fixed) => fixed,
        }
    }

    /// [`State::step_label`], shared rather than borrowed.
    pub fn step_text(&self, plan_gen: u64, at: StepRef) -> super::StepText {
        match self.step_name(plan_gen, at) {
            Ok(l) => super::StepText::Shared(l.clone()),
            Err(fixed) => super::StepText::Static(fixed),
        }
    }

    /// A plan step's label, or the fixed words for a step outside the plan.
    fn step_name(&self, plan_gen: u64, at: StepRef) -> Result<&std::sync::Arc<str>, &'static str> {
        match at {
            StepRef::Rule(r, s) => self.plan_of(plan_gen).labels.get(r).and_then(|v| v.get(s)).ok_or("a removed step"),
            StepRef::Implicit => Err("the default step"),
            StepRef::AnyMember => Err("any member of the queue"),
        }
    }

    fn policy_choice(&mut self, i: u32, n: usize, now: DateTime<Utc>) -> Option<Vec<u32>> {
        let policy = self.policy.clone()?;
        let slot = self.items[i as usize].as_ref()?;
        let c = slot.chan;
        let ch = self.channels[c].clone();
        let mut ids: Vec<u32> = Vec::new();
        for (a, ag) in self.agents.iter().enumerate() {
            if let Some(ag) = ag
                && ag.can_take(c, &self.channels).is_ok()
                && !slot.item.excluded.contains(&ag.id)
            {
                ids.push(a as u32);
            }
        }
        let views: Vec<_> = ids
            .iter()
            .filter_map(|a| {
                let ag = self.agents[*a as usize].as_ref()?;
                Some(ag.view(self.profiles.list.get(ag.profile)?, c, &ch))
            })
            .collect();
        let _ = now;
        match policy.route(&slot.item, &views) {
            PolicyChoice::UsePlan => None,
            PolicyChoice::Wait => Some(Vec::new()),
            PolicyChoice::Agents(list) => {
                let mut out = Vec::new();
                for id in list {
                    if let Some(&a) = self.agent_ids.get(&id)
                        && ids.contains(&a)
                        && !out.contains(&a)
                    {
                        out.push(a);
                        if out.len() >= n {
                            break;
                        }
                    }
                }
                Some(out)
            }
        }
    }

    /// Assigns item `i` to agent `a`; the wait it ended counts in its queue's estimate.
    pub fn assign(&mut self, i: u32, a: u32, now: DateTime<Utc>) {
        if let Some((qi, waited)) = self.hand_over(i, a, now) {
            self.record_wait(qi, waited);
        }
    }

    /// Assigns item `i` to agent `a` and answers the wait it ended (queue, milliseconds), for
    /// the caller to count in the queue's estimate or not.
    pub fn hand_over(&mut self, i: u32, a: u32, now: DateTime<Utc>) -> Option<(u32, i64)> {
        if matches!(self.items[i as usize].as_ref().map(|s| &s.state), Some(IState::Waiting { .. })) {
            self.unqueue(i);
        }
        let chan = self.items[i as usize].as_ref()?.chan;
        self.hold(a, i, chan, now);
        self.mark_assigned(i, a, now)
    }

    /// Item `i` is now assigned to `a` (capacity already held). Answers the wait it ended
    /// (queue, milliseconds), which the caller records.
    fn mark_assigned(&mut self, i: u32, a: u32, now: DateTime<Utc>) -> Option<(u32, i64)> {
        let epoch = self.next_seq();
        let agent = self.agent_id(a);
        let slot = self.slot(i)?;
        let chan = slot.chan;
        slot.state = IState::Assigned { agent: a, epoch };
        let wait = super::state::elapsed(now, slot.item.eligible_since, slot.eligible_ms);
        let waited = wait.num_milliseconds().saturating_sub(slot.item.handled_ms);
        slot.item.assigned_ms = ms(now);
        let queue = slot.queue.clone();
        let qi = slot.qi;
        let id = slot.item.id;
        let bot = slot.item.bot_hold.take_if(|b| *b != a);
        if let Some(b) = bot {
            self.unhold(b, i, chan, now);
            self.freed.push(b);
        }
        if let Some(after) = self.queues.at(qi).and_then(|q| q.config.no_reply.as_ref()).map(|nr| nr.after) {
            self.schedule(add(now, after), TimerKind::NoReply { item: i, epoch });
        }
        self.events.push(RoutingEvent::Assigned { item: id, agent, queue, wait });
        Some((qi, waited))
    }

    fn offer(&mut self, i: u32, agents: Vec<u32>, expires_after: chrono::TimeDelta, now: DateTime<Utc>) {
        if matches!(self.items[i as usize].as_ref().map(|s| &s.state), Some(IState::Waiting { .. })) {
            self.unqueue(i);
        }
        let Some(slot) = self.items[i as usize].as_ref() else { return };
        let chan = slot.chan;
        for a in &agents {
            self.hold(*a, i, chan, now);
        }
        let epoch = self.next_seq();
        // On a whole millisecond, as timers are kept: the offer ends exactly when announced.
        let expires_at = from_ms(ceil_ms(add(now, expires_after)));
        let ids: Vec<AgentId> = agents.iter().map(|a| self.agent_id(*a)).collect();
        if let Some(s) = self.slot(i) {
            s.state = IState::Offered { agents, epoch };
        }
        self.schedule(expires_at, TimerKind::Offer { item: i, epoch });
        let id = self.item_id(i);
        self.events.push(RoutingEvent::Offered { item: id, agents: ids, expires_at });
    }

    /// An agent accepts an open offer: it becomes the assignment, other offers are rescinded.
    pub fn accept(&mut self, i: u32, a: u32, now: DateTime<Utc>) -> crate::Result<()> {
        let Some(slot) = self.items[i as usize].as_ref() else { return Err(crate::Error::not_found("work item", "?")) };
        let IState::Offered { agents, .. } = &slot.state else {
            return Err(crate::Error::Refused(format!("work item {} has no open offer", slot.item.id)));
        };
        if !agents.contains(&a) {
            return Err(crate::Error::Refused(format!(
                "work item {} is not offered to {}",
                slot.item.id,
                self.agent_id(a)
            )));
        }
        let others: Vec<u32> = agents.iter().copied().filter(|o| *o != a).collect();
        let chan = slot.chan;
        let id = slot.item.id;
        for o in others {
            self.unhold(o, i, chan, now);
            let agent = self.agent_id(o);
            self.events.push(RoutingEvent::OfferRescinded { item: id, agent });
            self.freed.push(o);
        }
        if let Some((qi, waited)) = self.mark_assigned(i, a, now) {
            self.record_wait(qi, waited);
        }
        Ok(())
    }

    /// An agent declines (or lets expire) an open offer.
    pub fn decline(&mut self, i: u32, a: u32, expired: bool, now: DateTime<Utc>) -> crate::Result<()> {
        let Some(slot) = self.items[i as usize].as_ref() else { return Err(crate::Error::not_found("work item", "?")) };
        let IState::Offered { agents, epoch } = &slot.state else {
            return Err(crate::Error::Refused(format!("work item {} has no open offer", slot.item.id)));
        };
        if !agents.contains(&a) {
            return Err(crate::Error::Refused(format!(
                "work item {} is not offered to {}",
                slot.item.id,
                self.agent_id(a)
            )));
        }
        let rest: Vec<u32> = agents.iter().copied().filter(|o| *o != a).collect();
        let epoch = *epoch;
        let chan = slot.chan;
        let id = slot.item.id;
        self.unhold(a, i, chan, now);
        self.freed.push(a);
        let agent = self.agent_id(a);
        self.events.push(if expired {
            RoutingEvent::OfferExpired { item: id, agent: agent.clone() }
        } else {
            RoutingEvent::Declined { item: id, agent: agent.clone() }
        });
        let queue = self.items[i as usize].as_ref().map(|s| s.queue.clone());
        let policy = queue.and_then(|q| self.queues.get(&q)).map(|q| q.config.offer.clone()).unwrap_or_default();
        let Some(slot) = self.slot(i) else { return Ok(()) };
        slot.item.excluded.push(agent);
        slot.item.declines += 1;
        let declines = slot.item.declines;
        slot.state = if rest.is_empty() { IState::Moving } else { IState::Offered { agents: rest.clone(), epoch } };
        if declines >= policy.max_declines {
            // An overflow leaves the item to route in its new queue, as after a max wait.
            if self.timeout(i, policy.on_max_declines, format!("declined {declines} times"), now, now) {
                self.route(i, now);
            }
            return Ok(());
        }
        if rest.is_empty() {
            self.back_to_routing(i, now);
        }
        Ok(())
    }

    /// Brings item `i` under the plan installed since it was classified: classified again from
    /// the first rule, unless an overflow (max wait, after hours, declines, a decision's
    /// fallback) placed it in its queue. Such an item stays there, its max wait running on: the
    /// plan's rules would send it back to the queue it left, to get that queue's action again;
    /// its tiers are those of any member of the queue, under the new plan. `false` if the item
    /// finished.
    pub fn reclassify(&mut self, i: u32, now: DateTime<Utc>) -> bool {
        let plan_gen = self.plan_gen;
        if let Some(s) = self.slot(i)
            && s.item.moved
        {
            s.item.plan_gen = plan_gen;
            self.compute_tiers(i);
            return true;
        }
        self.classify(i, now)
    }

    /// Puts an item that was offered or assigned back into routing (state must be `Moving`).
    pub fn back_to_routing(&mut self, i: u32, now: DateTime<Utc>) {
        let Some(slot) = self.items[i as usize].as_ref() else { return };
        if slot.item.plan_gen != self.plan_gen {
            if !self.reclassify(i, now) {
                return;
            }
        } else if slot.step_due.is_some_and(|d| d <= ms(now)) {
            if !self.advance(i, now, now) {
                return;
            }
        } else {
            self.compute_tiers(i);
        }
        self.route_back(i, now);
    }

    /// Routes an item that comes back from an agent (state `Moving`). Its queue's max wait
    /// fell due while an agent held it (its timer passed it by): if it waits now, it gets
    /// the queue's action at once. A decision asked of the host on the way back runs to its
    /// answer or deadline first (the item is not withdrawn from under an open request).
    pub fn route_back(&mut self, i: u32, now: DateTime<Utc>) {
        if self.route(i, now) {
            return;
        }
        let Some(s) = self.items[i as usize].as_ref() else { return };
        let overdue = matches!(s.state, IState::Waiting { .. })
            && self
                .queues
                .at(s.qi)
                .and_then(|q| q.config.max_wait)
                .is_some_and(|m| add(s.item.queue_entered, m) <= now);
        if overdue {
            self.wait_over(i, false, now);
        }
    }

    /// Applies the after-hours action of item `i`'s (closed) queue; an item moved to another
    /// queue is routed there, and waits there if that queue is closed too.
    pub fn after_hours(&mut self, i: u32, now: DateTime<Utc>) {
        let Some(s) = self.items[i as usize].as_ref() else { return };
        if !matches!(s.state, IState::Waiting { .. } | IState::Moving) || !self.queue_closed(s.qi, now) {
            return;
        }
        let Some(action) = self.queues.at(s.qi).and_then(|q| q.config.hours.as_ref()).map(|h| h.action.clone()) else {
            return;
        };
        let reason = self.closed_reason(s.qi).unwrap_or_default();
        if self.timeout(i, action, reason, now, now) {
            if let Some(s) = self.slot(i) {
                s.item.hours_moved = true;
            }
            self.hours_move = true;
            self.route(i, now);
            self.hours_move = false;
        }
    }

    /// Applies the queue's max-wait action to item `i` (waiting or awaiting a decision). One
    /// that `waited` all along overflows as of the max wait's end (a late tick does not
    /// stretch a chain of overflows); one back from an agent now.
    fn wait_over(&mut self, i: u32, waited: bool, now: DateTime<Utc>) {
        let Some(s) = self.items[i as usize].as_ref() else { return };
        let Some(q) = self.queues.get(&s.queue) else { return };
        let action = q.config.on_max_wait.clone();
        let entered = match q.config.max_wait {
            Some(m) if waited => add(s.item.queue_entered, m).min(now),
            _ => now,
        };
        let reason = format!("waited {} s in queue", (now - s.item.queue_entered).num_seconds());
        if self.timeout(i, action, reason, entered, now) {
            self.route(i, now);
        }
    }

    /// Moves a (moving) item to its next step or fallback as of the step's due time; a new
    /// queue is entered no earlier than `back` ([`State::enter_step`]). `false` if it finished.
    fn advance(&mut self, i: u32, back: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let Some((at, due)) = self.items[i as usize].as_ref().map(|s| (s.at, s.step_due)) else { return false };
        let entered = due.map(super::state::from_ms).unwrap_or(now).min(now);
        match self.next_step(at) {
            Some(n) => self.enter_step(i, n, entered, back, now),
            None => self.exhausted(i, entered.max(back), now),
        }
    }

    /// The freed-agent direction: give agent `a` the best waiting work it can take.
    pub fn fill_agent(&mut self, a: u32, now: DateTime<Utc>) {
        for _ in 0..FILL_LIMIT {
            let Some(i) = self.best_item_for(a, now) else { return };
            let Some(slot) = self.items[i as usize].as_ref() else { return };
            let policy = self.queues.get(&slot.queue).map(|q| q.config.offer.clone()).unwrap_or_default();
            if policy.offer {
                self.offer(i, vec![a], policy.expires_after, now);
            } else {
                self.assign(i, a, now);
            }
        }
    }

    /// Gives freed agents work until none is left to give.
    #[inline]
    pub fn drain(&mut self, now: DateTime<Utc>) {
        // Most decisions free nobody: keep the loop (and what it inlines) off their path.
        if !(self.interrupted.is_empty() && self.freed.is_empty()) {
            self.drain_agents(now);
        }
    }

    #[inline(never)]
    fn drain_agents(&mut self, now: DateTime<Utc>) {
        let mut rounds = 0;
        loop {
            rounds += 1;
            if rounds > 100_000 {
                self.freed.clear();
                self.interrupted.clear();
                break;
            }
            if let Some(a) = self.interrupted.pop() {
                let load = |s: &Self| s.agents.get(a as usize).and_then(|x| x.as_ref()).map(|x| x.load);
                let before = load(self);
                self.rescind_offers_that_no_longer_fit(a, now);
                // A withdrawn offer frees capacity (budget) and may end what blocked other
                // work (another rule): the agent may take waiting work it could not before.
                if load(self) != before {
                    self.freed.push(a);
                }
            } else if let Some(a) = self.freed.pop() {
                if self.agents.get(a as usize).is_some_and(|s| s.is_some()) {
                    self.fill_agent(a, now);
                }
            } else {
                break;
            }
        }
    }

    /// Fires due timers (see [`MAX_TIMER_ROUNDS`]).
    pub fn fire_timers(&mut self, now: DateTime<Utc>) {
        if self.timers.is_empty() {
            return;
        }
        // Round after round until nothing is due (a timer may schedule another one that is due
        // already, as along a chain of overflows after a late tick); the bound only stops a
        // ring of queues from spinning without end, leaving the rest due for the next call.
        for _ in 0..MAX_TIMER_ROUNDS {
            let due = self.timers.take_due(ms(now));
            if due.is_empty() {
                return;
            }
            // Nearly every timer reports at least one event.
            self.events.reserve(due.len());
            // The batch's memo, with the buffers of the last batch.
            let mut memo = std::mem::take(&mut self.relax);
            let spare = self.timers.take_spare();
            if spare.capacity() > memo.timers.capacity() {
                memo.timers = spare;
            }
            memo.timers.reserve(due.len());
            for &t in &due {
                // Plain step moves the batch way (no agent freed, nothing to drain); anything
                // else one by one, after which the batch's memo is stale.
                if let TimerKind::Step { item, epoch } = t.kind
                    && self.relax_step(item, epoch, now, &mut memo)
                {
                    continue;
                }
                self.flush_relax(&mut memo);
                self.fire(t.kind, now);
                self.drain(now);
            }
            self.flush_relax(&mut memo);
            self.relax = memo;
            self.timers.recycle(due);
        }
    }

    fn fire(&mut self, kind: TimerKind, now: DateTime<Utc>) {
        match kind {
            TimerKind::Step { item, epoch } => {
                let ok = self.items[item as usize]
                    .as_ref()
                    .is_some_and(|s| s.step_gen == epoch && matches!(s.state, IState::Waiting { .. }));
                if ok {
                    self.unqueue(item);
                    // It waited all along: a new queue is entered at the step's due time.
                    if self.advance(item, DateTime::<Utc>::MIN_UTC, now) {
                        self.route(item, now);
                    }
                }
            }
            TimerKind::MaxWait { item, epoch } => {
                let Some(s) = self.items[item as usize].as_ref() else { return };
                // An item offered or assigned now gets the action when it is back waiting
                // ([`State::back_to_routing`]).
                if s.wait_gen != epoch || !matches!(s.state, IState::Waiting { .. } | IState::Awaiting { .. }) {
                    return;
                }
                // The queue's max wait as it is now: removed since, nothing happens; lengthened,
                // the check moves to the new end.
                let Some(m) = self.queues.get(&s.queue).and_then(|q| q.config.max_wait) else { return };
                let due = add(s.item.queue_entered, m);
                if due > now {
                    self.schedule(due, TimerKind::MaxWait { item, epoch });
                    return;
                }
                self.wait_over(item, true, now);
            }
            TimerKind::Offer { item, epoch } => {
                let Some(s) = self.items[item as usize].as_ref() else { return };
                let IState::Offered { agents, epoch: g } = &s.state else { return };
                if *g != epoch {
                    return;
                }
                let agents = agents.clone();
                let status = self.queues.get(&s.queue).and_then(|q| q.config.offer.on_expiry_status.clone());
                for a in agents {
                    // Still this offer: an expiry that ended the item's offers here (its last
                    // allowed decline, an overflow) may have led to a new offer, even to the same
                    // agent, which runs its own time. An agent whose offer was rescinded meanwhile
                    // did not let it expire either.
                    let still = matches!(self.items[item as usize].as_ref().map(|s| &s.state), Some(IState::Offered { agents, epoch: g }) if *g == epoch && agents.contains(&a));
                    if !still {
                        continue;
                    }
                    let _ = self.decline(item, a, true, now);
                    if let Some(st) = &status {
                        let _ = self.presence(a, st, now);
                    }
                }
            }
            TimerKind::NoReply { item, epoch } => {
                let Some(s) = self.items[item as usize].as_ref() else { return };
                let IState::Assigned { agent, epoch: g } = s.state else { return };
                if g != epoch {
                    return;
                }
                // The queue's no-reply rule as it is now: removed since, nothing happens;
                // lengthened, the check moves to the new end.
                let Some(after) = self.queues.get(&s.queue).and_then(|q| q.config.no_reply.as_ref()).map(|n| n.after)
                else {
                    return;
                };
                let due = add(super::state::from_ms(s.item.assigned_ms), after);
                if due > now {
                    self.schedule(due, TimerKind::NoReply { item, epoch });
                    return;
                }
                let silent = self.agent_id(agent);
                self.requeue(item, RequeueReason::NoReply, Some(silent), now);
            }
            TimerKind::Retry { item, epoch } => {
                // The cap on retries counts those still to come: a delay's end after the first
                // sixteen gets its own.
                if let Some(s) = self.items[item as usize].as_mut() {
                    s.item.retries.retain(|due| *due > ms(now));
                }
                // Still waiting in the same queue visit: routed now, and if still waiting then,
                // retried at the next delay's end.
                let waits = |s: &State| {
                    s.items[item as usize]
                        .as_ref()
                        .is_some_and(|s| s.wait_gen == epoch && matches!(s.state, IState::Waiting { .. }))
                };
                if waits(self) {
                    self.route(item, now);
                    if waits(self) {
                        self.retry_at_next_delay_end(item, now);
                    }
                }
            }
            TimerKind::Decision { item, epoch } => {
                let deadline = self.items[item as usize].as_ref().and_then(|s| match s.state {
                    IState::Awaiting { request, deadline } if request == epoch => Some(deadline),
                    _ => None,
                });
                if let Some(deadline) = deadline {
                    let id = self.item_id(item);
                    self.events.push(RoutingEvent::DecisionExpired { item: id, request: epoch });
                    let fallback = self.decided(item);
                    match fallback {
                        DecisionFallback::Plan => self.back_to_routing(item, now),
                        DecisionFallback::Queue(q) => {
                            let reason = "the external decision did not come in time".to_owned();
                            // Entered as of the deadline: a late tick does not stretch the wait.
                            let entered = deadline.min(now);
                            if self.timeout(item, TimeoutAction::Overflow(q), reason, entered, now) {
                                self.route(item, now);
                            }
                        }
                        DecisionFallback::Agents(list) => self.give_to_listed(item, &list, now),
                    }
                }
            }
            TimerKind::Offline { agent, epoch } => {
                let ok =
                    self.agents[agent as usize].as_ref().is_some_and(|s| s.presence_gen == epoch && s.presence.offline);
                if ok {
                    self.apply_offline(agent, now);
                }
            }
            // A late tick applies the shift as of `now` and schedules the next change after it.
            TimerKind::Shift { agent, epoch } => {
                if self.agents[agent as usize].as_ref().is_some_and(|s| s.shift_gen == epoch) {
                    self.check_shift(agent, now);
                }
            }
            TimerKind::Idle { agent, epoch } => {
                if self.agents[agent as usize].as_ref().is_some_and(|s| s.idle_gen == epoch) {
                    self.check_idle(agent, now);
                }
            }
            TimerKind::QueueHours { queue, epoch } => {
                if self.queues.at(queue).is_some_and(|q| q.hours_gen == epoch) {
                    self.check_queue_hours(queue, now);
                }
            }
            TimerKind::Calendars { epoch } => {
                if self.calendars_gen == epoch {
                    self.check_all_calendars(now);
                }
            }
        }
    }

    /// Takes an assigned item back from its agent and routes it again.
    pub fn requeue(&mut self, i: u32, reason: RequeueReason, exclude: Option<AgentId>, now: DateTime<Utc>) {
        let Some(slot) = self.items[i as usize].as_ref() else { return };
        let IState::Assigned { agent, .. } = slot.state else { return };
        let chan = slot.chan;
        let id = slot.item.id;
        self.unhold(agent, i, chan, now);
        self.freed.push(agent);
        let agent_id = self.agent_id(agent);
        if let Some(s) = self.slot(i) {
            s.state = IState::Moving;
            s.item.unassigned(ms(now));
            if let Some(r) = exclude {
                s.item.excluded.push(r);
            }
        }
        self.events.push(RoutingEvent::Requeued { item: id, agent: agent_id, reason });
        self.back_to_routing(i, now);
    }

    /// Sets a status by name for agent `a`.
    pub fn presence(&mut self, a: u32, name: &str, now: DateTime<Utc>) -> crate::Result<()> {
        let Some(slot) = self.agents[a as usize].as_ref() else { return Err(crate::Error::not_found("agent", "?")) };
        let status = slot
            .agent
            .presence
            .statuses
            .get(name)
            .or_else(|| self.config.statuses.get(name))
            .cloned()
            .ok_or_else(|| crate::Error::invalid("status", format!("unknown presence status {name:?}")))?;
        self.apply_presence(a, name, status, now);
        Ok(())
    }

    /// Puts agent `a` in status `status` called `name` (resolved by the caller): an event, the
    /// offline policy when it goes offline; the status it already has is no change.
    pub fn apply_presence(&mut self, a: u32, name: &str, status: super::PresenceStatus, now: DateTime<Utc>) {
        let Some(slot) = self.agents[a as usize].as_ref() else { return };
        let offline = status.offline;
        // The status it already has is no change: no event, and an offline grace runs on.
        if slot.agent.presence.status == name && slot.presence == status {
            if !offline {
                self.freed.push(a);
            }
            return;
        }
        self.set_status(a, status, name.to_owned(), now);
        let agent = self.agent_id(a);
        self.events.push(RoutingEvent::PresenceChanged { agent, status: name.to_owned() });
        if offline {
            self.went_offline(a, now);
        } else {
            self.freed.push(a);
        }
    }

    /// Agent `a` is now in an offline status: its offers are rescinded, and its assigned work
    /// follows the router's [`OfflinePolicy`](super::OfflinePolicy), now or after the grace.
    pub fn went_offline(&mut self, a: u32, now: DateTime<Utc>) {
        self.rescind_offers_of(a, now);
        let policy = self.config.offline.clone();
        if policy.assigned != OfflineAction::Keep {
            if policy.grace <= chrono::TimeDelta::zero() {
                self.apply_offline(a, now);
            } else {
                let epoch = self.agents[a as usize].as_ref().map_or(0, |s| s.presence_gen);
                self.schedule(add(now, policy.grace), TimerKind::Offline { agent: a, epoch });
            }
        }
    }

    /// Withdraws the agent's open offers (not a decline: the agent is not excluded).
    pub fn rescind_offers_of(&mut self, a: u32, now: DateTime<Utc>) {
        let held = self.agents[a as usize].as_ref().map(|s| s.held.clone()).unwrap_or_default();
        for i in held {
            self.rescind_offer(a, i, now);
        }
    }

    /// Withdraws agent `a`'s open offers, one by one from the end of its held list, while the
    /// agent holds more on the offer's channel (or in its budget) than its (lowered) capacity
    /// allows, or that an interruption rule now blocks: an open offer is no work yet, and
    /// accepting it would put the agent over its limits or break the rule. Work it has accepted
    /// stays.
    pub fn rescind_offers_that_no_longer_fit(&mut self, a: u32, now: DateTime<Utc>) {
        loop {
            let Some(ag) = self.agents[a as usize].as_ref() else { return };
            let total = ag.agent.capacity.total;
            let channels = &self.channels;
            let over = |c: usize| {
                let x = ag.chans.get(c);
                x.is_some_and(|x| x.limit.is_some_and(|l| x.load > l))
                    || total.is_some_and(|t| ag.budget_used > t && x.is_some_and(|x| x.cost > 0))
                    || ag.interrupting(c, channels, true).is_some()
            };
            let items = &self.items;
            let offered = ag.held.iter().rev().copied().find(|&i| {
                items[i as usize].as_ref().is_some_and(|s| {
                    matches!(&s.state, IState::Offered { agents, .. } if agents.contains(&a)) && over(s.chan)
                })
            });
            match offered {
                Some(i) => self.rescind_offer(a, i, now),
                None => return,
            }
        }
    }

    /// Withdraws item `i`'s open offer to agent `a`, if any (not a decline).
    fn rescind_offer(&mut self, a: u32, i: u32, now: DateTime<Utc>) {
        let Some(slot) = self.items[i as usize].as_ref() else { return };
        let IState::Offered { agents, epoch } = &slot.state else { return };
        if !agents.contains(&a) {
            return;
        }
        let rest: Vec<u32> = agents.iter().copied().filter(|o| *o != a).collect();
        let epoch = *epoch;
        let chan = slot.chan;
        let id = slot.item.id;
        self.unhold(a, i, chan, now);
        let agent = self.agent_id(a);
        self.events.push(RoutingEvent::OfferRescinded { item: id, agent });
        if let Some(s) = self.slot(i) {
            s.state = if rest.is_empty() { IState::Moving } else { IState::Offered { agents: rest, epoch } };
        }
        if matches!(self.items[i as usize].as_ref().map(|s| &s.state), Some(IState::Moving)) {
            self.back_to_routing(i, now);
        }
    }

    /// Applies the offline policy to the agent's assigned work.
    fn apply_offline(&mut self, a: u32, now: DateTime<Utc>) {
        let action = self.config.offline.assigned.clone();
        let held = self.agents[a as usize].as_ref().map(|s| s.held.clone()).unwrap_or_default();
        for i in held {
            let assigned_here = matches!(self.items[i as usize].as_ref().map(|s| &s.state), Some(IState::Assigned { agent, .. }) if *agent == a);
            if !assigned_here {
                continue;
            }
            match action {
                OfflineAction::Keep => {}
                OfflineAction::Requeue => self.requeue(i, RequeueReason::AgentOffline, None, now),
                OfflineAction::Close => {
                    self.timeout(i, TimeoutAction::Close, "the agent went offline".into(), now, now);
                }
            }
        }
    }

    /// Removes an agent: offers rescinded, assigned work back to routing, bot holds released.
    pub fn remove_agent(&mut self, a: u32, now: DateTime<Utc>) {
        // Offline first, so that none of the work it gives back is routed to it again.
        let name = self.agents[a as usize].as_ref().map(|s| s.agent.presence.status.clone()).unwrap_or_default();
        self.set_status(a, PresenceStatus::offline(), name, now);
        self.rescind_offers_of(a, now);
        let held = self.agents[a as usize].as_ref().map(|s| s.held.clone()).unwrap_or_default();
        for i in held {
            let Some(slot) = self.items[i as usize].as_ref() else { continue };
            match slot.state {
                IState::Assigned { agent, .. } if agent == a => self.requeue(i, RequeueReason::AgentRemoved, None, now),
                _ if slot.item.bot_hold == Some(a) => {
                    // The bot kept the item while it waited or was offered to humans; now nobody
                    // serves the customer until a human takes it. Announced as the bot letting
                    // go (a pass), so a host that showed the bot as the handler shows the queue.
                    let (chan, item) = (slot.chan, slot.item.id);
                    self.unhold(a, i, chan, now);
                    if let Some(s) = self.slot(i) {
                        s.item.bot_hold = None;
                    }
                    let bot = self.agent_id(a);
                    self.events.push(RoutingEvent::HandedOff { item, bot, mode: HandoffMode::Pass });
                }
                _ => {}
            }
        }
        self.drop_agent(a);
        self.freed.retain(|f| *f != a);
    }

    /// Finishes an assigned item.
    pub fn complete(&mut self, i: u32, now: DateTime<Utc>) -> crate::Result<()> {
        let Some(slot) = self.items[i as usize].as_ref() else { return Err(crate::Error::not_found("work item", "?")) };
        let IState::Assigned { agent, .. } = slot.state else {
            return Err(crate::Error::Refused(format!("work item {} is not assigned", slot.item.id)));
        };
        let id = slot.item.id;
        self.release_holds(i, false, now);
        let agent = self.agent_id(agent);
        self.events.push(RoutingEvent::Completed { item: id, agent });
        self.remove_item(i);
        Ok(())
    }

    /// Withdraws an item in any state.
    pub fn withdraw(&mut self, i: u32, now: DateTime<Utc>) {
        let id = self.item_id(i);
        self.release_holds(i, false, now);
        self.events.push(RoutingEvent::Withdrawn { item: id });
        self.remove_item(i);
    }

    /// Re-routes every waiting item that some agent can take now.
    pub fn sweep(&mut self, now: DateTime<Utc>) {
        let mut order: Vec<(u32, [i64; 3], u64, u32)> = Vec::new();
        for ci in 0..self.classes.len() {
            let class = &self.classes[ci];
            let avail =
                self.index.first().and_then(|s| s.chans.get(class.chan)).map(|c| c.avail.clone()).unwrap_or_default();
            let policy_class = class.mask.is_empty();
            if !policy_class && !class.mask.intersects(&avail) && !self.has_targeted_in(ci) {
                continue;
            }
            let prio = 0u32;
            for e in class.heap.iter() {
                if super::state::live(&self.items, e.payload, e.seq) {
                    order.push((prio, e.key, e.seq, e.payload));
                }
            }
        }
        order.sort_unstable();
        for (_, _, seq, i) in order {
            if super::state::live(&self.items, i, seq) {
                self.route(i, now);
                self.drain(now);
            }
        }
    }

    /// Hands item `i` to the host: out of its queue class, `DecisionRequested` with the agents
    /// that could take it now, a timer for the deadline.
    fn request_decision(&mut self, i: u32, hook: DecisionHook, now: DateTime<Utc>) {
        if matches!(self.items[i as usize].as_ref().map(|s| &s.state), Some(IState::Waiting { .. })) {
            self.unqueue(i);
        }
        let agents: Vec<AgentId> =
            self.candidates(i, MAX_DECISION_AGENTS, now).iter().map(|c| self.agent_id(c.agent)).collect();
        let request = self.next_seq();
        let deadline = add(now, hook.timeout);
        let Some(slot) = self.slot(i) else { return };
        slot.state = IState::Awaiting { request, deadline };
        slot.item.decision_fallback = Some(hook.fallback);
        let item = slot.item.id;
        self.schedule(deadline, TimerKind::Decision { item: i, epoch: request });
        self.events.push(RoutingEvent::DecisionRequested { item, request, agents, deadline });
    }

    /// Closes item `i`'s open decision request (state `Moving`); returns its fallback.
    fn decided(&mut self, i: u32) -> DecisionFallback {
        let Some(slot) = self.slot(i) else { return DecisionFallback::Plan };
        slot.item.decided_gen = slot.step_gen;
        slot.state = IState::Moving;
        slot.item.decision_fallback.take().unwrap_or_default()
    }

    /// Answers item `i`'s open decision request `request`. Stale and repeated answers are
    /// refused and change nothing.
    pub fn resolve_decision(
        &mut self,
        i: u32,
        request: u64,
        choice: PolicyChoice,
        now: DateTime<Utc>,
    ) -> crate::Result<()> {
        let Some(slot) = self.items[i as usize].as_ref() else { return Err(crate::Error::not_found("work item", "?")) };
        let id = slot.item.id;
        match slot.state {
            IState::Awaiting { request: open, .. } if open == request => {}
            IState::Awaiting { request: open, .. } => {
                return Err(crate::Error::Refused(format!(
                    "decision request {request} of work item {id} is stale: request {open} is the open one"
                )));
            }
            _ => {
                return Err(crate::Error::Refused(format!(
                    "work item {id} awaits no decision: request {request} was answered, timed out or never made"
                )));
            }
        }
        match choice {
            PolicyChoice::Wait => {}
            PolicyChoice::UsePlan => {
                self.decided(i);
                self.back_to_routing(i, now);
            }
            PolicyChoice::Agents(list) => {
                if list.len() > 1000 {
                    return Err(crate::Error::invalid("choice", "at most 1000 agents"));
                }
                self.decided(i);
                self.give_to_listed(i, &list, now);
            }
        }
        Ok(())
    }

    /// Offers or assigns (moving) item `i` to the first listed agents that can take it now
    /// (as many as the queue's offer policy allows); routes by the plan if none can.
    fn give_to_listed(&mut self, i: u32, list: &[AgentId], now: DateTime<Utc>) {
        let Some(slot) = self.items[i as usize].as_ref() else { return };
        let policy = self.queues.get(&slot.queue).map(|q| q.config.offer.clone()).unwrap_or_default();
        let n = if policy.offer { policy.parallel as usize } else { 1 };
        let mut chosen: Vec<u32> = Vec::new();
        for id in list {
            let Some(&a) = self.agent_ids.get(id) else { continue };
            let Some(ag) = self.agents[a as usize].as_ref() else { continue };
            if slot.item.excluded.contains(&ag.id)
                || ag.can_take(slot.chan, &self.channels).is_err()
                || chosen.contains(&a)
            {
                continue;
            }
            chosen.push(a);
            if chosen.len() >= n {
                break;
            }
        }
        match chosen.first() {
            None => self.back_to_routing(i, now),
            Some(&a) if !policy.offer => self.assign(i, a, now),
            Some(_) => self.offer(i, chosen, policy.expires_after, now),
        }
    }

    fn has_targeted_in(&self, ci: usize) -> bool {
        !self.targeted.is_empty() && self.classes[ci].heap.len() > 0
    }
}
