//! A seeded discrete-event simulation of a contact-center day that drives the real
//! [`Router`](touchpoint::routing::Router), and the Erlang C formulas to check it against.
//!
//! Shared by the `simulate` example (`examples/simulate/main.rs`, the command line) and the
//! `routing_simulation` test, which includes this file with `#[path]`: one copy of the logic.
//!
//! * Randomness is [`Rng`] (splitmix64), seeded: the same seed and scenario give the same report,
//!   bit for bit, on a given build (the platform's `ln`, `exp` and `cos` make the samples).
//! * Events (arrivals, abandonment, offer acceptance, completions) wait in a binary heap ordered
//!   by time and then by scheduling order; the router's own timers (offer expiry) are fired with
//!   [`Router::tick`](touchpoint::routing::Router::tick) whenever
//!   [`Router::next_timer`](touchpoint::routing::Router::next_timer) falls before the next event.
//! * Time is whole milliseconds from [`START`], the router's resolution.
//! * The router decides everything: who gets a new contact, which waiting contact a freed agent
//!   takes (its freed-capacity matching), offers and their expiry. The simulation only plays the
//!   customers (arrive, wait, hang up) and the agents (accept offers, finish work).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use touchpoint::Error;
use touchpoint::model::{AgentId, ChannelKind, QueueId};
use touchpoint::routing::{
    Agent, Capacity, ChannelSet, OfferPolicy, Queue, QueueMembership, Router, RouterConfig, RoutingEvent, WorkItem,
    WorkItemId,
};

/// The instant of simulated time 0 ([`START`]).
pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).single().unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Simulated time 0, as a label for the report.
pub const START: &str = "2026-03-02 08:00 UTC";

/// The longest arrival period: about 11 years of simulated time (long M/M/c runs at low
/// rates need years; millisecond times stay far from overflow).
pub const MAX_HOURS: f64 = 100_000.0;

/// The most customers one M/M/c run may simulate.
pub const MAX_CUSTOMERS: u64 = 50_000_000;

// ---------------------------------------------------------------------------------------------
// Randomness
// ---------------------------------------------------------------------------------------------

/// A small seeded pseudo-random generator (splitmix64): fast, 2^64 period, good enough for
/// simulation; its integers are the same on every platform.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// An independent generator for sub-stream `stream` of `seed` (one per arrival stream, one
    /// for handle times, …), so adding a stream does not shift the others' numbers.
    pub fn stream(seed: u64, stream: u64) -> Self {
        let mut mix = Rng::new(seed ^ stream.wrapping_mul(0xd1b5_4a32_d192_ed03));
        Rng::new(mix.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut x = self.state;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }

    /// Uniform in the open interval (0, 1): never 0, so `ln` is always finite.
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Exponential with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.uniform().ln()
    }

    /// Standard normal (Box–Muller, one value per call).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// A duration distribution, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    /// Exponential with this mean.
    Exponential {
        /// Mean, seconds.
        mean: f64,
    },
    /// Lognormal with this mean and coefficient of variation (standard deviation / mean).
    LogNormal {
        /// Mean, seconds.
        mean: f64,
        /// Coefficient of variation.
        cv: f64,
    },
}

impl Dist {
    /// A sample, in seconds.
    pub fn sample(&self, rng: &mut Rng) -> f64 {
        match *self {
            Dist::Exponential { mean } => rng.exponential(mean),
            Dist::LogNormal { mean, cv } => {
                let s2 = (1.0 + cv * cv).ln();
                (mean.ln() - s2 / 2.0 + s2.sqrt() * rng.normal()).exp()
            }
        }
    }

    fn validate(&self, field: &'static str) -> Result<(), Error> {
        let ok = match *self {
            Dist::Exponential { mean } => mean.is_finite() && mean > 0.0,
            Dist::LogNormal { mean, cv } => mean.is_finite() && mean > 0.0 && cv.is_finite() && cv >= 0.0,
        };
        if ok { Ok(()) } else { Err(Error::invalid(field, format!("{self:?} needs a positive finite mean"))) }
    }
}

// ---------------------------------------------------------------------------------------------
// Erlang C
// ---------------------------------------------------------------------------------------------

/// The M/M/c queue's exact figures (Erlang C).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErlangC {
    /// Agents (servers).
    pub agents: u32,
    /// Offered load in Erlangs, `a = λ/μ`.
    pub load: f64,
    /// Service rate per agent (per second).
    pub service_rate: f64,
    /// Probability that a contact waits at all, `C(c, a)`.
    pub prob_wait: f64,
    /// Mean wait in queue, seconds: `C / (cμ − λ)`.
    pub mean_wait: f64,
}

impl ErlangC {
    /// The figures for `agents` agents, `arrival_rate` and `service_rate` per second. Computed
    /// by the stable recurrence `B(k) = a·B(k−1) / (k + a·B(k−1))` for Erlang B, then
    /// `C = B / (1 − ρ(1 − B))`: no factorials or powers, fine for thousands of agents.
    /// Refused unless the queue is stable (`λ < cμ`) and the rates are positive and finite.
    pub fn new(agents: u32, arrival_rate: f64, service_rate: f64) -> Result<Self, Error> {
        if agents == 0 {
            return Err(Error::invalid("agents", "at least one agent is needed"));
        }
        if !(arrival_rate.is_finite() && arrival_rate > 0.0 && service_rate.is_finite() && service_rate > 0.0) {
            return Err(Error::invalid("rates", "arrival and service rates must be positive and finite"));
        }
        let load = arrival_rate / service_rate;
        let rho = load / f64::from(agents);
        if rho >= 1.0 {
            return Err(Error::invalid(
                "rates",
                format!("utilisation λ/(cμ) = {rho:.3} is not below 1: the queue grows without bound"),
            ));
        }
        let mut b = 1.0;
        for k in 1..=agents {
            b = load * b / (f64::from(k) + load * b);
        }
        let prob_wait = b / (1.0 - rho * (1.0 - b));
        let mean_wait = prob_wait / (f64::from(agents) * service_rate - arrival_rate);
        Ok(ErlangC { agents, load, service_rate, prob_wait, mean_wait })
    }

    /// Utilisation `ρ = a / c`.
    pub fn utilisation(&self) -> f64 {
        self.load / f64::from(self.agents)
    }

    /// Service level: the probability of answering within `target` seconds,
    /// `1 − C·e^{−(cμ − λ)·T}`.
    pub fn service_level(&self, target: f64) -> f64 {
        let drain = (f64::from(self.agents) - self.load) * self.service_rate;
        1.0 - self.prob_wait * (-drain * target).exp()
    }
}

// ---------------------------------------------------------------------------------------------
// Scenario
// ---------------------------------------------------------------------------------------------

/// One arrival stream: contacts of one channel for one queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// The queue the contacts wait in.
    pub queue: String,
    /// Their channel.
    pub channel: ChannelKind,
    /// Arrivals per hour at profile factor 1 (Poisson).
    pub per_hour: f64,
    /// Handle time (assignment to completion).
    pub handle: Dist,
    /// How long a customer waits before hanging up (`None`: never, as for email).
    pub patience: Option<Dist>,
    /// The service-level threshold T, seconds ("answered within T").
    pub answer_target: f64,
    /// Skills the contacts require, with minimum levels (the router's default step matches them
    /// against the agents' skills).
    pub skills: Vec<(String, u32)>,
}

impl Stream {
    /// Requires a skill at a minimum level.
    pub fn requiring(mut self, skill: &str, level: u32) -> Self {
        self.skills.push((skill.into(), level));
        self
    }
}

/// An agent group's membership in a queue (an Amazon Connect routing-profile entry).
#[derive(Debug, Clone, PartialEq)]
pub struct Serves {
    /// The queue.
    pub queue: String,
    /// Lower first: a freed agent takes the best contact of its best-priority queue that has one.
    pub priority: u32,
    /// Contacts of this queue reach these agents only after waiting this many seconds.
    pub delay: f64,
}

/// Serves `queue` at priority 1 without delay.
pub fn serves(queue: &str) -> Serves {
    Serves { queue: queue.into(), priority: 1, delay: 0.0 }
}

impl Serves {
    /// Sets the priority.
    pub fn priority(self, priority: u32) -> Self {
        Serves { priority, ..self }
    }
    /// Sets the delay, seconds.
    pub fn after(self, delay: f64) -> Self {
        Serves { delay, ..self }
    }
}

/// A group of identical agents.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentGroup {
    /// Group name; agents are `name-1`, `name-2`, …
    pub name: String,
    /// How many.
    pub count: u32,
    /// Queues they serve.
    pub queues: Vec<Serves>,
    /// Items held at once per channel (chat concurrency above 1); other channels not served.
    pub channels: Vec<(ChannelKind, u32)>,
    /// While holding a call, nothing else is offered.
    pub voice_blocks_others: bool,
    /// Skills with levels.
    pub skills: Vec<(String, u32)>,
}

impl AgentGroup {
    /// Gives the agents a skill at a level.
    pub fn skilled(mut self, skill: &str, level: u32) -> Self {
        self.skills.push((skill.into(), level));
        self
    }
}

/// Offers that agents accept after a delay, instead of direct assignment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Offers {
    /// Time an agent takes to accept (ring time).
    pub accept_delay: Dist,
    /// Offers expire after this many seconds (the router then offers the item to someone else).
    pub expires_after: f64,
}

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The seed of every random number.
    pub seed: u64,
    /// Arrivals come for this many hours; then the work in hand is finished.
    pub hours: f64,
    /// Arrivals stop after this many contacts in all (M/M/c runs), if set.
    pub max_arrivals: Option<u64>,
    /// Rate factor per hour of the day, repeating (empty: flat).
    pub profile: Vec<f64>,
    /// Arrival streams.
    pub streams: Vec<Stream>,
    /// Agents.
    pub groups: Vec<AgentGroup>,
    /// Offer-and-accept instead of direct assignment.
    pub offers: Option<Offers>,
    /// Record each contact's wait in arrival order (for batch means).
    pub record_waits: bool,
}

impl Scenario {
    /// A multichannel day: support, Spanish support and sales queues; voice, web chat (three at
    /// once) and email; voice agents, three Spanish speakers who take support calls waiting over
    /// 30 s when their own queue is empty, chat agents, blended agents (no chat or email while on a call) and an
    /// email team; sales contacts need sales skill 2, which only the voice and chat agents
    /// have; a morning and an afternoon peak; impatient callers, patient chatters, email that
    /// waits; agents accept offers after a few seconds.
    pub fn day(seed: u64, hours: f64) -> Self {
        let exp = |mean| Dist::Exponential { mean };
        let logn = |mean, cv| Dist::LogNormal { mean, cv };
        let stream = |queue: &str, channel, per_hour, handle, patience, answer_target| Stream {
            queue: queue.into(),
            channel,
            per_hour,
            handle,
            patience,
            answer_target,
            skills: Vec::new(),
        };
        let group =
            |name: &str, count, queues: Vec<Serves>, channels: &[(ChannelKind, u32)], voice_blocks_others| AgentGroup {
                name: name.into(),
                count,
                queues,
                channels: channels.to_vec(),
                voice_blocks_others,
                skills: Vec::new(),
            };
        use ChannelKind::{Email, Voice, WebChat};
        Scenario {
            seed,
            hours,
            max_arrivals: None,
            profile: vec![0.6, 0.9, 1.2, 1.2, 1.0, 0.8, 1.0, 1.2, 1.0, 0.7],
            streams: vec![
                stream("support", Voice, 60.0, logn(360.0, 0.8), Some(exp(180.0)), 20.0),
                stream("support", WebChat, 50.0, logn(900.0, 0.6), Some(exp(300.0)), 60.0),
                stream("support", Email, 30.0, logn(480.0, 1.0), None, 4.0 * 3600.0),
                stream("support-es", Voice, 10.0, logn(420.0, 0.8), Some(exp(150.0)), 20.0).requiring("spanish", 1),
                stream("sales", Voice, 30.0, logn(300.0, 0.7), Some(exp(120.0)), 20.0).requiring("sales", 2),
                stream("sales", WebChat, 25.0, logn(720.0, 0.6), Some(exp(240.0)), 30.0).requiring("sales", 2),
            ],
            groups: vec![
                group("voice", 8, vec![serves("support"), serves("sales")], &[(Voice, 1)], false).skilled("sales", 2),
                group(
                    "voice-es",
                    3,
                    vec![serves("support-es"), serves("support").priority(2).after(30.0)],
                    &[(Voice, 1)],
                    false,
                )
                .skilled("spanish", 1),
                group("chat", 5, vec![serves("support"), serves("sales")], &[(WebChat, 3)], false).skilled("sales", 3),
                group(
                    "blended",
                    4,
                    vec![serves("support"), serves("sales")],
                    &[(Voice, 1), (WebChat, 2), (Email, 2)],
                    true,
                )
                .skilled("sales", 1),
                group("email", 2, vec![serves("support")], &[(Email, 2)], false),
            ],
            offers: Some(Offers { accept_delay: exp(4.0), expires_after: 20.0 }),
            record_waits: false,
        }
    }

    /// The single-skill M/M/c system of `config`: one queue, one channel (voice), c agents
    /// taking one contact each, Poisson arrivals at λ, exponential handle times of mean 3600/μ
    /// seconds, nobody abandons, direct assignment, warm-up plus measured contacts in all.
    /// Every contact's wait is recorded.
    pub fn mmc(config: &MmcConfig) -> Self {
        Scenario {
            seed: config.seed,
            hours: MAX_HOURS,
            max_arrivals: Some(config.customers.saturating_add(config.warmup)),
            profile: Vec::new(),
            streams: vec![Stream {
                queue: "mmc".into(),
                channel: ChannelKind::Voice,
                per_hour: config.arrivals_per_hour,
                handle: Dist::Exponential { mean: 3600.0 / config.services_per_hour },
                patience: None,
                answer_target: config.answer_target,
                skills: Vec::new(),
            }],
            groups: vec![AgentGroup {
                name: "agent".into(),
                count: config.agents,
                queues: vec![serves("mmc")],
                channels: vec![(ChannelKind::Voice, 1)],
                voice_blocks_others: false,
                skills: Vec::new(),
            }],
            offers: None,
            record_waits: true,
        }
    }

    fn validate(&self) -> Result<(), Error> {
        if !(self.hours.is_finite() && self.hours > 0.0 && self.hours <= MAX_HOURS) {
            return Err(Error::invalid(
                "hours",
                format!("must be above 0 and at most {MAX_HOURS}, not {}", self.hours),
            ));
        }
        if self.max_arrivals.is_some_and(|n| n == 0 || n > MAX_CUSTOMERS) {
            return Err(Error::invalid("customers", format!("must be 1 to {MAX_CUSTOMERS}")));
        }
        if self.profile.iter().any(|f| !f.is_finite() || *f < 0.0) {
            return Err(Error::invalid("profile", "rate factors must be finite and not negative"));
        }
        if self.streams.is_empty() {
            return Err(Error::invalid("streams", "at least one arrival stream is needed"));
        }
        for s in &self.streams {
            if !(s.per_hour.is_finite() && s.per_hour > 0.0) {
                return Err(Error::invalid("per_hour", format!("must be positive and finite, not {}", s.per_hour)));
            }
            if !(s.answer_target.is_finite() && s.answer_target >= 0.0) {
                return Err(Error::invalid("answer_target", "must be finite and not negative"));
            }
            s.handle.validate("handle")?;
            if let Some(p) = &s.patience {
                p.validate("patience")?;
            }
        }
        if let Some(o) = &self.offers {
            o.accept_delay.validate("accept_delay")?;
            if !(o.expires_after.is_finite() && o.expires_after >= 0.001) {
                return Err(Error::invalid("expires_after", "must be at least 1 ms"));
            }
        }
        let bad_delay = |m: &Serves| !(m.delay.is_finite() && (0.0..=86_400.0).contains(&m.delay));
        if self.groups.iter().flat_map(|g| &g.queues).any(bad_delay) {
            return Err(Error::invalid("delay", "a queue delay is 0 to 86400 seconds"));
        }
        if self.groups.iter().map(|g| u64::from(g.count)).sum::<u64>() > 100_000 {
            return Err(Error::invalid("agents", "at most 100000 agents"));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

/// Figures of one queue and channel.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamReport {
    /// Queue.
    pub queue: String,
    /// Channel.
    pub channel: String,
    /// Contacts that arrived.
    pub offered: u64,
    /// Contacts answered (assigned to an agent).
    pub handled: u64,
    /// Contacts that hung up before an answer.
    pub abandoned: u64,
    /// Contacts still unanswered when the run ended.
    pub unanswered: u64,
    /// Answered within the target.
    pub within_target: u64,
    /// The target, seconds.
    pub answer_target: f64,
    /// Sum of the waits of answered contacts, seconds.
    pub total_wait: f64,
    /// Sum of handle times, seconds.
    pub total_handle: f64,
    /// Slot-seconds the agents serving this queue and channel offered (channel limit × run
    /// length, summed over them).
    pub slot_seconds: f64,
}

impl StreamReport {
    /// Service level: answered within T / (answered + abandoned).
    pub fn service_level(&self) -> f64 {
        ratio(self.within_target as f64, (self.handled + self.abandoned) as f64)
    }
    /// Average speed of answer, seconds.
    pub fn average_speed_of_answer(&self) -> f64 {
        ratio(self.total_wait, self.handled as f64)
    }
    /// Abandoned / offered.
    pub fn abandonment_rate(&self) -> f64 {
        ratio(self.abandoned as f64, self.offered as f64)
    }
    /// Handle time of this stream / slot time of the agents who can serve it. For agents
    /// serving only this stream with one slot each this is their utilisation; agents shared with
    /// other streams count in full for each, so shared capacity shows a lower figure.
    pub fn occupancy(&self) -> f64 {
        ratio(self.total_handle, self.slot_seconds)
    }
}

/// Figures of one agent group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupReport {
    /// Group name.
    pub name: String,
    /// Agents.
    pub agents: u32,
    /// Contacts answered.
    pub handled: u64,
    /// Contacts answered per arrival stream (scenario order): who took what.
    pub handled_per_stream: Vec<u64>,
    /// Fraction of the run the agents held at least one contact.
    pub occupancy: f64,
    /// Mean contacts held at once / total slots (concurrency use).
    pub slot_use: f64,
}

/// Everything one run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Hours of arrivals.
    pub hours: f64,
    /// When the last contact finished, seconds after the start.
    pub end: f64,
    /// Per queue and channel, in scenario order.
    pub streams: Vec<StreamReport>,
    /// Per agent group, in scenario order.
    pub groups: Vec<GroupReport>,
    /// Offers that expired unanswered (the router re-offered the contact).
    pub offers_expired: u64,
    /// Router calls made (submit, accept, withdraw, complete, tick).
    pub router_calls: u64,
    /// Waits in arrival order, seconds, when recorded (`NaN` for contacts never answered, so such
    /// reports never compare equal).
    pub waits: Vec<f64>,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Contact-center day: seed {}, {} h of arrivals from {START}, last contact done after {:.2} h",
            self.seed,
            self.hours,
            self.end / 3600.0
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<10} {:<8} {:>8} {:>8} {:>9} {:>16} {:>9} {:>9} {:>9}",
            "queue", "channel", "offered", "handled", "abandoned", "service level", "ASA", "abandon %", "occupancy"
        )?;
        for s in &self.streams {
            let target = if s.answer_target >= 3600.0 {
                format!("{:.0}h", s.answer_target / 3600.0)
            } else {
                format!("{:.0}s", s.answer_target)
            };
            writeln!(
                f,
                "{:<10} {:<8} {:>8} {:>8} {:>9} {:>8.1}% in {:>4} {:>8.1}s {:>8.1}% {:>8.1}%",
                s.queue,
                s.channel,
                s.offered,
                s.handled,
                s.abandoned,
                100.0 * s.service_level(),
                target,
                s.average_speed_of_answer(),
                100.0 * s.abandonment_rate(),
                100.0 * s.occupancy()
            )?;
        }
        writeln!(f)?;
        writeln!(f, "{:<10} {:>6} {:>8} {:>10} {:>9}", "agents", "count", "handled", "occupancy", "slot use")?;
        for g in &self.groups {
            writeln!(
                f,
                "{:<10} {:>6} {:>8} {:>9.1}% {:>8.1}%",
                g.name,
                g.agents,
                g.handled,
                100.0 * g.occupancy,
                100.0 * g.slot_use
            )?;
        }
        let unanswered: u64 = self.streams.iter().map(|s| s.unanswered).sum();
        writeln!(f)?;
        writeln!(
            f,
            "offers expired and re-offered: {}; unanswered at the end: {}; router calls: {}",
            self.offers_expired, unanswered, self.router_calls
        )?;
        writeln!(f)?;
        writeln!(f, "service level = answered within T / (answered + abandoned); ASA = mean wait of the answered;")?;
        writeln!(f, "occupancy (queue rows) = handle time / slot time of the agents able to take the row's contacts")?;
        writeln!(f, "  (an agent shared by several rows counts in each); occupancy (agents) = time holding at least")?;
        write!(f, "  one contact; slot use = contacts held / channel slots (chat agents hold several at once)")
    }
}

// ---------------------------------------------------------------------------------------------
// The event loop
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// The next contact of stream `s` arrives.
    Arrival(usize),
    /// The customer of item `n` runs out of patience.
    Abandon(u64),
    /// Agent `a` accepts the offer of item `n`.
    Accept(u64, usize),
    /// Item `n` is finished.
    Complete(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Offered,
    Handling { agent: usize, since: i64 },
}

#[derive(Debug)]
struct Contact {
    stream: usize,
    phase: Phase,
}

#[derive(Debug)]
struct SimAgent {
    id: AgentId,
    group: usize,
    load: u32,
    slots: u32,
    since: i64,
    busy_ms: i64,
    load_ms: i64,
    handled: Vec<u64>,
}

impl SimAgent {
    fn advance(&mut self, now: i64) {
        let dt = now - self.since;
        if self.load > 0 {
            self.busy_ms += dt;
        }
        self.load_ms += dt * i64::from(self.load);
        self.since = now;
    }
}

struct ArrivalState {
    rng: Rng,
    /// Time of the last candidate arrival, seconds (kept in floating point so rounding to
    /// milliseconds does not accumulate).
    t: f64,
    /// The highest rate of the stream, per second (thinning envelope).
    max_rate: f64,
}

struct Sim<'a> {
    sc: &'a Scenario,
    router: Router,
    queues: Vec<QueueId>,
    agents: Vec<SimAgent>,
    agent_index: HashMap<AgentId, usize>,
    heap: BinaryHeap<Reverse<(i64, u64, Event)>>,
    seq: u64,
    arrivals: Vec<ArrivalState>,
    arrived: u64,
    peak: f64,
    handle_rng: Rng,
    patience_rng: Rng,
    accept_rng: Rng,
    contacts: HashMap<u64, Contact>,
    offers: HashMap<u64, Vec<usize>>,
    streams: Vec<StreamReport>,
    offers_expired: u64,
    router_calls: u64,
    waits: Vec<f64>,
    now: i64,
}

fn at(ms: i64) -> DateTime<Utc> {
    start() + TimeDelta::milliseconds(ms)
}

/// Seconds to whole milliseconds (saturating: absurd samples land far beyond the run's end).
fn to_ms(secs: f64) -> i64 {
    (secs * 1000.0).round() as i64
}

fn item_id(n: u64) -> WorkItemId {
    WorkItemId::from_u128(u128::from(n) + 1)
}

fn number_of(id: WorkItemId) -> u64 {
    (id.0.as_u128().saturating_sub(1)) as u64
}

/// Runs a scenario to the end: arrivals for `hours` (or until `max_arrivals`), then until every
/// contact is answered and finished or has hung up, but no longer than 24 h after the arrival
/// period (what is left then counts as unanswered or unfinished).
pub fn run(sc: &Scenario) -> Result<Report, Error> {
    sc.validate()?;
    let mut sim = Sim::new(sc)?;
    sim.run()?;
    Ok(sim.report())
}

impl<'a> Sim<'a> {
    fn new(sc: &'a Scenario) -> Result<Self, Error> {
        let router = Router::new(RouterConfig::default());
        let mut queues: Vec<QueueId> = Vec::new();
        let mut queue_ids: BTreeMap<String, QueueId> = BTreeMap::new();
        let names =
            sc.streams.iter().map(|s| &s.queue).chain(sc.groups.iter().flat_map(|g| g.queues.iter().map(|m| &m.queue)));
        for name in names {
            if !queue_ids.contains_key(name) {
                let id = QueueId::new(name.as_str())?;
                let mut q = Queue::new(id.clone());
                if let Some(o) = &sc.offers {
                    q = q.with_offers(OfferPolicy::offers(1, TimeDelta::milliseconds(to_ms(o.expires_after))));
                }
                router.upsert_queue(q)?;
                queue_ids.insert(name.clone(), id);
            }
        }
        for s in &sc.streams {
            queues.push(queue_ids.get(&s.queue).cloned().ok_or_else(|| Error::not_found("queue", &s.queue))?);
        }
        let mut agents = Vec::new();
        let mut agent_index = HashMap::new();
        for (g, group) in sc.groups.iter().enumerate() {
            let mut capacity = Capacity::per_channel(group.channels.iter().cloned());
            if group.voice_blocks_others {
                capacity = capacity.with_interruption(ChannelKind::Voice, ChannelSet::except([ChannelKind::Voice]));
            }
            for k in 1..=group.count {
                let id = AgentId::new(format!("{}-{k}", group.name))?;
                let mut agent = Agent::new(id.clone()).with_capacity(capacity.clone()).with_status("online");
                for (skill, level) in &group.skills {
                    agent = agent.with_skill(skill.as_str(), *level);
                }
                for m in &group.queues {
                    if let Some(q) = queue_ids.get(&m.queue) {
                        let delay = TimeDelta::milliseconds(to_ms(m.delay));
                        agent =
                            agent.with_membership(QueueMembership { queue: q.clone(), priority: m.priority, delay });
                    }
                }
                router.upsert_agent(agent, at(0))?;
                agent_index.insert(id.clone(), agents.len());
                let slots = group.channels.iter().map(|(_, n)| *n).sum();
                agents.push(SimAgent {
                    id,
                    group: g,
                    load: 0,
                    slots,
                    since: 0,
                    busy_ms: 0,
                    load_ms: 0,
                    handled: vec![0; sc.streams.len()],
                });
            }
        }
        let streams = sc
            .streams
            .iter()
            .map(|s| StreamReport {
                queue: s.queue.clone(),
                channel: s.channel.as_str().to_owned(),
                offered: 0,
                handled: 0,
                abandoned: 0,
                unanswered: 0,
                within_target: 0,
                answer_target: s.answer_target,
                total_wait: 0.0,
                total_handle: 0.0,
                slot_seconds: 0.0,
            })
            .collect();
        let peak = sc.profile.iter().copied().fold(0.0_f64, f64::max);
        let peak = if sc.profile.is_empty() { 1.0 } else { peak };
        let arrivals = sc
            .streams
            .iter()
            .enumerate()
            .map(|(i, s)| ArrivalState {
                rng: Rng::stream(sc.seed, 16 + i as u64),
                t: 0.0,
                max_rate: s.per_hour * peak / 3600.0,
            })
            .collect();
        Ok(Sim {
            sc,
            router,
            queues,
            agents,
            agent_index,
            heap: BinaryHeap::new(),
            seq: 0,
            arrivals,
            arrived: 0,
            peak,
            handle_rng: Rng::stream(sc.seed, 1),
            patience_rng: Rng::stream(sc.seed, 2),
            accept_rng: Rng::stream(sc.seed, 3),
            contacts: HashMap::new(),
            offers: HashMap::new(),
            streams,
            offers_expired: 0,
            router_calls: 0,
            waits: Vec::new(),
            now: 0,
        })
    }

    fn schedule(&mut self, when: i64, e: Event) {
        self.seq += 1;
        self.heap.push(Reverse((when, self.seq, e)));
    }

    /// The rate factor at `t` seconds.
    fn factor(&self, t: f64) -> f64 {
        let p = &self.sc.profile;
        if p.is_empty() {
            return 1.0;
        }
        let hour = (t / 3600.0).floor() as usize % p.len();
        p.get(hour).copied().unwrap_or(1.0)
    }

    /// Schedules stream `s`'s next arrival (non-homogeneous Poisson by thinning), unless the
    /// arrival period is over.
    fn next_arrival(&mut self, s: usize) {
        let horizon = self.sc.hours * 3600.0;
        loop {
            let Some(st) = self.arrivals.get_mut(s) else { return };
            if st.max_rate <= 0.0 {
                return;
            }
            st.t += st.rng.exponential(1.0 / st.max_rate);
            let (t, u) = (st.t, st.rng.uniform());
            if t >= horizon {
                return;
            }
            if u * self.peak <= self.factor(t) {
                self.schedule(to_ms(t), Event::Arrival(s));
                return;
            }
        }
    }

    fn run(&mut self) -> Result<(), Error> {
        for s in 0..self.sc.streams.len() {
            self.next_arrival(s);
        }
        let deadline = to_ms(self.sc.hours * 3600.0) + 24 * 3_600_000;
        loop {
            let next_event = self.heap.peek().map(|Reverse((t, _, _))| *t);
            let next_timer = self.router.next_timer().map(|t| (t - start()).num_milliseconds());
            let due = match (next_event, next_timer) {
                (None, None) => break,
                (Some(e), Some(t)) => e.min(t),
                (Some(e), None) => e,
                (None, Some(t)) => t,
            };
            if due > deadline {
                break;
            }
            self.now = self.now.max(due);
            if next_timer == Some(due) {
                let events = self.router.tick(at(self.now));
                self.router_calls += 1;
                let after = self.router.next_timer().map(|t| (t - start()).num_milliseconds());
                if after.is_some_and(|t| t <= self.now) {
                    return Err(Error::Refused(format!("router timer at {} ms did not fire", self.now)));
                }
                self.apply(events)?;
                continue;
            }
            let Some(Reverse((_, _, e))) = self.heap.pop() else { break };
            self.handle(e)?;
        }
        let end = self.now;
        for a in &mut self.agents {
            a.advance(end);
        }
        for c in self.contacts.values() {
            if !matches!(c.phase, Phase::Handling { .. })
                && let Some(r) = self.streams.get_mut(c.stream)
            {
                r.unanswered += 1;
            }
        }
        Ok(())
    }

    fn handle(&mut self, e: Event) -> Result<(), Error> {
        let now = at(self.now);
        match e {
            Event::Arrival(s) => {
                let n = self.arrived;
                self.arrived += 1;
                let stream = self.sc.streams.get(s).ok_or_else(|| Error::not_found("stream", s))?;
                let queue = self.queues.get(s).cloned().ok_or_else(|| Error::not_found("stream", s))?;
                if let Some(r) = self.streams.get_mut(s) {
                    r.offered += 1;
                }
                if self.sc.record_waits {
                    self.waits.push(f64::NAN);
                }
                self.contacts.insert(n, Contact { stream: s, phase: Phase::Waiting });
                if let Some(p) = &stream.patience {
                    let patience = to_ms(p.sample(&mut self.patience_rng));
                    self.schedule(self.now.saturating_add(patience), Event::Abandon(n));
                }
                if self.sc.max_arrivals.is_none_or(|m| self.arrived < m) {
                    self.next_arrival(s);
                }
                let mut item = WorkItem::new(item_id(n), stream.channel.clone(), now).in_queue(queue);
                for (skill, level) in &stream.skills {
                    item = item.with_skill(skill.as_str(), *level);
                }
                let decision = self.router.submit(item, now)?;
                self.router_calls += 1;
                self.apply(decision.events)
            }
            Event::Abandon(n) => {
                let waiting = self.contacts.get(&n).is_some_and(|c| !matches!(c.phase, Phase::Handling { .. }));
                if !waiting {
                    return Ok(());
                }
                let events = self.router.withdraw(item_id(n), now)?;
                self.router_calls += 1;
                if let Some(c) = self.contacts.remove(&n)
                    && let Some(r) = self.streams.get_mut(c.stream)
                {
                    r.abandoned += 1;
                }
                self.offers.remove(&n);
                self.apply(events)
            }
            Event::Accept(n, a) => {
                let open = self.offers.get(&n).is_some_and(|v| v.contains(&a));
                if !open {
                    return Ok(());
                }
                let agent = self.agents.get(a).map(|x| x.id.clone()).ok_or_else(|| Error::not_found("agent", a))?;
                let events = self.router.accept(item_id(n), &agent, now)?;
                self.router_calls += 1;
                self.apply(events)
            }
            Event::Complete(n) => {
                let Some(c) = self.contacts.remove(&n) else { return Ok(()) };
                let Phase::Handling { agent, since } = c.phase else {
                    return Err(Error::Refused(format!("contact {n} completed without an agent")));
                };
                if let Some(a) = self.agents.get_mut(agent) {
                    a.advance(self.now);
                    a.load = a.load.saturating_sub(1);
                }
                if let Some(r) = self.streams.get_mut(c.stream) {
                    r.total_handle += (self.now - since) as f64 / 1000.0;
                }
                let events = self.router.complete(item_id(n), now)?;
                self.router_calls += 1;
                self.apply(events)
            }
        }
    }

    fn apply(&mut self, events: Vec<RoutingEvent>) -> Result<(), Error> {
        for e in events {
            match e {
                RoutingEvent::Assigned { item, agent, wait, .. } => self.assigned(number_of(item), &agent, wait)?,
                RoutingEvent::Offered { item, agents, .. } => {
                    let n = number_of(item);
                    for agent in agents {
                        let a = *self.agent_index.get(&agent).ok_or_else(|| Error::not_found("agent", &agent))?;
                        self.offers.entry(n).or_default().push(a);
                        if let Some(o) = &self.sc.offers {
                            let delay = to_ms(o.accept_delay.sample(&mut self.accept_rng));
                            self.schedule(self.now.saturating_add(delay), Event::Accept(n, a));
                        }
                    }
                    if let Some(c) = self.contacts.get_mut(&n) {
                        c.phase = Phase::Offered;
                    }
                }
                RoutingEvent::OfferExpired { item, agent } => {
                    self.offers_expired += 1;
                    self.drop_offer(number_of(item), &agent);
                }
                RoutingEvent::OfferRescinded { item, agent } | RoutingEvent::Declined { item, agent } => {
                    self.drop_offer(number_of(item), &agent);
                }
                RoutingEvent::TimedOut { item, action, reason } => {
                    return Err(Error::Refused(format!(
                        "item {item} left routing ({action:?}: {reason}); the scenario sets no such policy"
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn drop_offer(&mut self, n: u64, agent: &AgentId) {
        let Some(&a) = self.agent_index.get(agent) else { return };
        if let Some(v) = self.offers.get_mut(&n) {
            v.retain(|x| *x != a);
            if v.is_empty() {
                self.offers.remove(&n);
                if let Some(c) = self.contacts.get_mut(&n)
                    && c.phase == Phase::Offered
                {
                    c.phase = Phase::Waiting;
                }
            }
        }
    }

    fn assigned(&mut self, n: u64, agent: &AgentId, wait: TimeDelta) -> Result<(), Error> {
        let a = *self.agent_index.get(agent).ok_or_else(|| Error::not_found("agent", agent))?;
        self.offers.remove(&n);
        let c = self.contacts.get_mut(&n).ok_or_else(|| Error::not_found("contact", n))?;
        c.phase = Phase::Handling { agent: a, since: self.now };
        let s = c.stream;
        let stream = self.sc.streams.get(s).ok_or_else(|| Error::not_found("stream", s))?;
        let wait = wait.num_milliseconds() as f64 / 1000.0;
        if let Some(r) = self.streams.get_mut(s) {
            r.handled += 1;
            r.total_wait += wait;
            if wait <= stream.answer_target {
                r.within_target += 1;
            }
        }
        if let Some(w) = self.waits.get_mut(n as usize) {
            *w = wait;
        }
        if let Some(x) = self.agents.get_mut(a) {
            x.advance(self.now);
            x.load += 1;
            if let Some(h) = x.handled.get_mut(s) {
                *h += 1;
            }
        }
        let handle = to_ms(stream.handle.sample(&mut self.handle_rng)).max(1);
        self.schedule(self.now.saturating_add(handle), Event::Complete(n));
        Ok(())
    }

    fn report(mut self) -> Report {
        let end = self.now as f64 / 1000.0;
        for (s, stream) in self.sc.streams.iter().enumerate() {
            let slots: f64 = self
                .sc
                .groups
                .iter()
                .filter(|g| g.queues.iter().any(|m| m.queue == stream.queue))
                .map(|g| {
                    let limit = g.channels.iter().filter(|(c, _)| *c == stream.channel).map(|(_, n)| *n).sum::<u32>();
                    f64::from(limit) * f64::from(g.count)
                })
                .sum();
            if let Some(r) = self.streams.get_mut(s) {
                r.slot_seconds = slots * end;
            }
        }
        let groups = self
            .sc
            .groups
            .iter()
            .enumerate()
            .map(|(g, group)| {
                let members = self.agents.iter().filter(|a| a.group == g);
                let mut per_stream = vec![0u64; self.sc.streams.len()];
                let (mut busy, mut load, mut slots) = (0i64, 0i64, 0i64);
                for a in members {
                    (busy, load, slots) = (busy + a.busy_ms, load + a.load_ms, slots + i64::from(a.slots));
                    per_stream.iter_mut().zip(&a.handled).for_each(|(t, h)| *t += h);
                }
                let span = self.now as f64;
                GroupReport {
                    name: group.name.clone(),
                    agents: group.count,
                    handled: per_stream.iter().sum(),
                    handled_per_stream: per_stream,
                    occupancy: ratio(busy as f64, span * f64::from(group.count)),
                    slot_use: ratio(load as f64, span * slots as f64),
                }
            })
            .collect();
        Report {
            seed: self.sc.seed,
            hours: self.sc.hours,
            end,
            streams: self.streams,
            groups,
            offers_expired: self.offers_expired,
            router_calls: self.router_calls,
            waits: self.waits,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// M/M/c against Erlang C
// ---------------------------------------------------------------------------------------------

/// The most independent replications of one M/M/c run (each runs on its own thread).
pub const MAX_REPLICATIONS: u32 = 64;

/// An M/M/c run: rates per hour, `agents` servers, `customers` measured after `warmup`, in
/// `replications` independent runs (seeds `seed`, `seed + 1`, …).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MmcConfig {
    /// The seed of the first replication.
    pub seed: u64,
    /// λ, arrivals per hour.
    pub arrivals_per_hour: f64,
    /// μ, contacts one agent finishes per hour (mean handle time 3600/μ s).
    pub services_per_hour: f64,
    /// c, agents.
    pub agents: u32,
    /// Contacts measured per replication.
    pub customers: u64,
    /// Contacts simulated first in each replication and not measured (the queue starts empty).
    pub warmup: u64,
    /// Batches per replication for the batch-means standard errors (contiguous runs of
    /// contacts in arrival order; their means are nearly independent when each batch spans many
    /// busy periods).
    pub batches: u32,
    /// The service-level threshold T, seconds.
    pub answer_target: f64,
    /// Independent replications, run in parallel and pooled.
    pub replications: u32,
}

impl MmcConfig {
    /// λ, μ and c with the defaults: one replication of 200 000 contacts after 10 000
    /// warm-up, 20 batches, T = 20 s.
    pub fn new(seed: u64, arrivals_per_hour: f64, services_per_hour: f64, agents: u32) -> Self {
        MmcConfig {
            seed,
            arrivals_per_hour,
            services_per_hour,
            agents,
            customers: 200_000,
            warmup: 10_000,
            batches: 20,
            answer_target: 20.0,
            replications: 1,
        }
    }
}

/// A simulated figure with its standard error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The mean over all measured contacts.
    pub mean: f64,
    /// The standard error of that mean.
    pub std_error: f64,
}

impl Estimate {
    /// Mean and batch-means standard error of `values` in `batches` contiguous batches (a
    /// remainder shorter than a batch counts in the mean only).
    pub fn batch_means(values: &[f64], batches: u32) -> Estimate {
        let n = values.len();
        let b = (batches as usize).clamp(2, n.max(2));
        let mean = ratio(values.iter().sum(), n as f64);
        let size = n / b;
        if size == 0 {
            return Estimate { mean, std_error: f64::NAN };
        }
        let means: Vec<f64> = values.chunks_exact(size).take(b).map(|c| c.iter().sum::<f64>() / size as f64).collect();
        let m = means.iter().sum::<f64>() / b as f64;
        let var = means.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (b as f64 - 1.0);
        Estimate { mean, std_error: (var / b as f64).sqrt() }
    }

    /// The average of independent estimates of equal weight, with its standard error.
    pub fn pool(estimates: &[Estimate]) -> Estimate {
        let k = estimates.len() as f64;
        let mean = ratio(estimates.iter().map(|e| e.mean).sum(), k);
        let var: f64 = estimates.iter().map(|e| e.std_error * e.std_error).sum();
        Estimate { mean, std_error: ratio(var.sqrt(), k) }
    }

    /// `(mean − exact) / exact`.
    pub fn relative_error(&self, exact: f64) -> f64 {
        (self.mean - exact) / exact
    }
}

/// One replication's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Replication {
    /// Its seed.
    pub seed: u64,
    /// Mean wait in queue, seconds.
    pub mean_wait: Estimate,
    /// Probability of waiting at all (a wait above 0 ms).
    pub prob_wait: Estimate,
    /// Probability of an answer within T.
    pub service_level: Estimate,
    /// Fraction of the run the agents were busy (whole run, warm-up and drain included).
    pub occupancy: f64,
    /// The underlying report (one queue, one channel).
    pub run: Report,
}

/// Simulated M/M/c figures beside Erlang C's.
#[derive(Debug, Clone, PartialEq)]
pub struct MmcReport {
    /// What ran.
    pub config: MmcConfig,
    /// The exact figures.
    pub erlang: ErlangC,
    /// Each replication, in seed order.
    pub replications: Vec<Replication>,
    /// Mean wait, pooled over the replications.
    pub mean_wait: Estimate,
    /// P(wait > 0), pooled.
    pub prob_wait: Estimate,
    /// Service level, pooled.
    pub service_level: Estimate,
    /// Occupancy, averaged.
    pub occupancy: f64,
}

fn replicate(config: &MmcConfig, seed: u64) -> Result<Replication, Error> {
    let run = run(&Scenario::mmc(&MmcConfig { seed, ..*config }))?;
    let measured = run.waits.get(config.warmup as usize..).unwrap_or_default();
    if measured.len() as u64 != config.customers {
        return Err(Error::invalid(
            "customers",
            format!("only {} contacts arrived within {MAX_HOURS} h; raise λ or lower --customers", measured.len()),
        ));
    }
    if measured.iter().any(|w| w.is_nan()) {
        return Err(Error::Refused("some measured contacts were never answered".into()));
    }
    let indicator = |test: &dyn Fn(f64) -> bool| measured.iter().map(|w| f64::from(u8::from(test(*w)))).collect();
    let waited: Vec<f64> = indicator(&|w| w > 0.0);
    let within: Vec<f64> = indicator(&|w| w <= config.answer_target);
    Ok(Replication {
        seed,
        mean_wait: Estimate::batch_means(measured, config.batches),
        prob_wait: Estimate::batch_means(&waited, config.batches),
        service_level: Estimate::batch_means(&within, config.batches),
        occupancy: run.groups.first().map_or(0.0, |g| g.occupancy),
        run,
    })
}

/// Simulates the M/M/c queue through the router (replications in parallel, one thread each)
/// and sets it beside Erlang C. Refused when the queue is unstable (λ ≥ cμ) or the sizes are
/// out of range.
pub fn run_mmc(config: MmcConfig) -> Result<MmcReport, Error> {
    let erlang = ErlangC::new(config.agents, config.arrivals_per_hour / 3600.0, config.services_per_hour / 3600.0)?;
    if config.batches < 2 || u64::from(config.batches) > config.customers {
        return Err(Error::invalid("batches", "must be at least 2 and at most the number of customers"));
    }
    if config.replications == 0 || config.replications > MAX_REPLICATIONS {
        return Err(Error::invalid("replications", format!("must be 1 to {MAX_REPLICATIONS}")));
    }
    let seeds: Vec<u64> = (0..u64::from(config.replications)).map(|k| config.seed.wrapping_add(k)).collect();
    let results: Vec<Result<Replication, Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = seeds
            .iter()
            .map(|&seed| std::thread::Builder::new().spawn_scoped(scope, move || replicate(&config, seed)))
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h.join().unwrap_or_else(|_| Err(Error::Refused("a replication panicked".into()))),
                Err(e) => Err(Error::Refused(format!("cannot start a replication thread: {e}"))),
            })
            .collect()
    });
    let replications = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let pool = |f: fn(&Replication) -> Estimate| Estimate::pool(&replications.iter().map(f).collect::<Vec<_>>());
    Ok(MmcReport {
        config,
        erlang,
        mean_wait: pool(|r| r.mean_wait),
        prob_wait: pool(|r| r.prob_wait),
        service_level: pool(|r| r.service_level),
        occupancy: ratio(replications.iter().map(|r| r.occupancy).sum(), replications.len() as f64),
        replications,
    })
}

impl fmt::Display for MmcReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let e = &self.erlang;
        writeln!(
            f,
            "M/M/c through the router: λ = {}/h, μ = {}/h (mean handle {:.0} s), c = {}, ρ = {:.3}",
            c.arrivals_per_hour,
            c.services_per_hour,
            3600.0 / c.services_per_hour,
            c.agents,
            e.utilisation()
        )?;
        writeln!(
            f,
            "{} replication(s) from seed {}, each {} contacts measured after {} warm-up; \
             standard errors from {} batch means each",
            c.replications, c.seed, c.customers, c.warmup, c.batches
        )?;
        writeln!(f)?;
        writeln!(f, "{:<24} {:>22} {:>12} {:>9} {:>8}", "", "simulated ± s.e.", "Erlang C", "error", "error/se")?;
        let target = format!("service level ({} s)", c.answer_target);
        let rows = [
            ("mean wait (s)", self.mean_wait, e.mean_wait, 2),
            ("P(wait > 0)", self.prob_wait, e.prob_wait, 4),
            (target.as_str(), self.service_level, e.service_level(c.answer_target), 4),
        ];
        for (name, sim, exact, digits) in rows {
            writeln!(
                f,
                "{:<24} {:>12.digits$} ± {:<7.digits$} {:>12.digits$} {:>8.2}% {:>8.2}",
                name,
                sim.mean,
                sim.std_error,
                exact,
                100.0 * sim.relative_error(exact),
                (sim.mean - exact) / sim.std_error,
            )?;
        }
        write!(f, "{:<24} {:>12.4} {:>12} {:>12.4}", "occupancy", self.occupancy, "", e.utilisation())?;
        if self.replications.len() > 1 {
            writeln!(f)?;
            writeln!(f)?;
            write!(f, "{:<8} {:>22} {:>18}", "seed", "mean wait error", "P(wait > 0) error")?;
            for r in &self.replications {
                write!(
                    f,
                    "\n{:<8} {:>8.2}% ({:>5.2} se) {:>8.2}% ({:>5.2} se)",
                    r.seed,
                    100.0 * r.mean_wait.relative_error(e.mean_wait),
                    (r.mean_wait.mean - e.mean_wait) / r.mean_wait.std_error,
                    100.0 * r.prob_wait.relative_error(e.prob_wait),
                    (r.prob_wait.mean - e.prob_wait) / r.prob_wait.std_error,
                )?;
            }
        }
        Ok(())
    }
}
