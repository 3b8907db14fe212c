//! Routing claims shared between processes: the [`AssignmentLedger`] seam.
//!
//! A [`Router`](super::Router) keeps its state in memory, per process. When several processes
//! (or machines) route work for the same agents, each router only sees its own assignments: two
//! of them could give the same conversation to two agents, or fill an agent past its capacity.
//! The ledger is the one place they agree on. Its [`claim`](AssignmentLedger::claim) is atomic:
//! it is granted only if the item is not assigned yet **and** the agent's load on that channel
//! plus the claim's cost stays within the claim's limit; otherwise it is refused, with a
//! [`Refusal`] that says which.
//!
//! [`InMemoryLedger`] (always compiled) serves one process and tests; the PostgreSQL ledger
//! (`touchpoint::store::postgres::PostgresLedger`, feature `postgres`) serves many.
//!
//! # Using it with the Router
//!
//! * On `RoutingEvent::Assigned` (direct assignment), or before calling
//!   [`Router::accept`](super::Router::accept) for an offer, **claim**: the item, the agent, the
//!   item's channel, a cost of 1 and the agent's limit on that channel
//!   ([`Capacity::limit_of`](super::Capacity::limit_of); `u32::MAX` when it has none). That is
//!   the router's own rule: a per-channel limit counts items. An offer the router refuses to
//!   accept after a granted claim (it expired meanwhile) is released at once.
//! * **Refused** — another process assigned the item or filled the agent: give the work back to
//!   this router with [`Router::decline`](super::Router::decline) (an offer) or
//!   [`Router::requeue`](super::Router::requeue) (an assignment, excluding the agent), or
//!   withdraw the item if another process owns it.
//! * On `RoutingEvent::Completed` (or `Withdrawn`, `TimedOut`, `Transferred`, a requeue away
//!   from the agent), **release** the item — only if this process's claim of it was granted,
//!   never after a refusal — for the agent it was granted to: the agent's load goes down by the
//!   claim's cost. A release names the agent, so it cannot free another agent's claim of the
//!   item; a process that releases after being refused could still free another process's
//!   claim of the same agent, which is why it must not. After `Transferred` to an agent, claim
//!   again on the `Assigned` that follows.
//!
//! What the ledger does not share: an agent's [`total`](super::Capacity::total) budget across
//! channels and its interruption rules hold within each router only. A claim has no lease: a
//! process that loses its router state (a crash) must release what it held
//! ([`assignment`](AssignmentLedger::assignment) tells whom an item is with).
//!
//! ```
//! use touchpoint::model::{AgentId, ChannelKind, TenantId};
//! use touchpoint::routing::{AssignmentLedger, Claim, ClaimOutcome, InMemoryLedger, Refusal, WorkItemId};
//! # futures::executor::block_on(async {
//! let ledger = InMemoryLedger::new();
//! let tenant = TenantId::new("acme").unwrap();
//! let ana = AgentId::new("ana").unwrap();
//! let claim = |n| Claim::new(WorkItemId::from_u128(n), ana.clone(), ChannelKind::WebChat, 1, 2);
//! assert_eq!(ledger.claim(&tenant, &claim(1)).await.unwrap(), ClaimOutcome::Granted);
//! assert_eq!(ledger.claim(&tenant, &claim(2)).await.unwrap(), ClaimOutcome::Granted);
//! // A third chat would put ana over her limit of 2.
//! assert_eq!(
//!     ledger.claim(&tenant, &claim(3)).await.unwrap(),
//!     ClaimOutcome::Refused(Refusal::OverCapacity { load: 2, cost: 1, limit: 2 })
//! );
//! // Only ana's own release frees her claim.
//! let bo = AgentId::new("bo").unwrap();
//! assert_eq!(ledger.release(&tenant, WorkItemId::from_u128(1), &bo).await.unwrap(), None);
//! ledger.release(&tenant, WorkItemId::from_u128(1), &ana).await.unwrap();
//! assert_eq!(ledger.load(&tenant, &ana, &ChannelKind::WebChat).await.unwrap(), 1);
//! # });
//! ```

use super::WorkItemId;
use crate::model::{AgentId, ChannelKind, TenantId};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A request to assign a work item to an agent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Claim {
    /// The work item.
    pub item: WorkItemId,
    /// The agent who would handle it.
    pub agent: AgentId,
    /// The channel whose capacity it uses.
    pub channel: ChannelKind,
    /// How much of the agent's capacity on `channel` it uses (usually 1).
    pub cost: u32,
    /// The agent's limit on `channel`: the claim is granted only if load + cost ≤ limit.
    pub limit: u32,
}

impl Claim {
    /// A claim of `item` for `agent` on `channel`, costing `cost` of the agent's `limit`.
    pub fn new(item: WorkItemId, agent: AgentId, channel: ChannelKind, cost: u32, limit: u32) -> Self {
        Claim { item, agent, channel, cost, limit }
    }
}

/// A granted claim, as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Assignment {
    /// The work item.
    pub item: WorkItemId,
    /// The agent handling it.
    pub agent: AgentId,
    /// The channel whose capacity it uses.
    pub channel: ChannelKind,
    /// The capacity it uses.
    pub cost: u32,
}

/// Why a claim was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Refusal {
    /// The item is already assigned (to `agent`; that may be the claiming agent itself, when
    /// a claim is retried after its answer was lost).
    AlreadyAssigned {
        /// The agent holding it.
        agent: AgentId,
    },
    /// The agent's load on the channel plus the claim's cost exceeds the limit.
    OverCapacity {
        /// The agent's load on the channel when the claim was judged.
        load: u32,
        /// The claim's cost.
        cost: u32,
        /// The claim's limit.
        limit: u32,
    },
}

/// The answer to [`AssignmentLedger::claim`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClaimOutcome {
    /// The item is now assigned to the agent, and the agent's load includes its cost.
    Granted,
    /// Nothing changed; the refusal says why.
    Refused(Refusal),
}

/// Assignments and agent loads shared by every router that routes for the same agents.
/// Object safe (`Arc<dyn AssignmentLedger>`); every call is scoped to one tenant.
#[async_trait]
pub trait AssignmentLedger: Send + Sync + std::fmt::Debug {
    /// Atomically assigns `claim.item` to `claim.agent` if the item is not assigned yet and the
    /// agent's load on `claim.channel` plus `claim.cost` is at most `claim.limit`; otherwise
    /// changes nothing and says why (an already assigned item is reported first).
    async fn claim(&self, tenant: &TenantId, claim: &Claim) -> crate::Result<ClaimOutcome>;

    /// Releases the item's assignment to `agent` (the agent's load goes down by its cost) and
    /// returns it; `None`, changing nothing, if the item is not assigned to `agent` (not
    /// assigned, or assigned to another agent by another process).
    async fn release(&self, tenant: &TenantId, item: WorkItemId, agent: &AgentId) -> crate::Result<Option<Assignment>>;

    /// The agent's load on the channel: the sum of the costs of its assignments there.
    async fn load(&self, tenant: &TenantId, agent: &AgentId, channel: &ChannelKind) -> crate::Result<u32>;

    /// The item's assignment, if it has one.
    async fn assignment(&self, tenant: &TenantId, item: WorkItemId) -> crate::Result<Option<Assignment>>;
}

#[derive(Debug, Default)]
struct TenantLedger {
    assignments: HashMap<WorkItemId, Assignment>,
    loads: HashMap<(AgentId, ChannelKind), u32>,
}

/// An [`AssignmentLedger`] in memory: for one process, and for tests. Cloning gives another
/// handle to the same ledger.
#[derive(Debug, Default, Clone)]
pub struct InMemoryLedger {
    tenants: Arc<Mutex<HashMap<TenantId, TenantLedger>>>,
}

impl InMemoryLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, tenant: &TenantId, f: impl FnOnce(&mut TenantLedger) -> R) -> R {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        f(tenants.entry(tenant.clone()).or_default())
    }
}

#[async_trait]
impl AssignmentLedger for InMemoryLedger {
    async fn claim(&self, tenant: &TenantId, claim: &Claim) -> crate::Result<ClaimOutcome> {
        Ok(self.with(tenant, |l| {
            if let Some(held) = l.assignments.get(&claim.item) {
                return ClaimOutcome::Refused(Refusal::AlreadyAssigned { agent: held.agent.clone() });
            }
            let load = l.loads.get(&(claim.agent.clone(), claim.channel.clone())).copied().unwrap_or(0);
            if u64::from(load) + u64::from(claim.cost) > u64::from(claim.limit) {
                return ClaimOutcome::Refused(Refusal::OverCapacity { load, cost: claim.cost, limit: claim.limit });
            }
            l.loads.insert((claim.agent.clone(), claim.channel.clone()), load + claim.cost);
            let assignment = Assignment {
                item: claim.item,
                agent: claim.agent.clone(),
                channel: claim.channel.clone(),
                cost: claim.cost,
            };
            l.assignments.insert(claim.item, assignment);
            ClaimOutcome::Granted
        }))
    }

    async fn release(&self, tenant: &TenantId, item: WorkItemId, agent: &AgentId) -> crate::Result<Option<Assignment>> {
        Ok(self.with(tenant, |l| {
            if l.assignments.get(&item).is_none_or(|held| held.agent != *agent) {
                return None;
            }
            let held = l.assignments.remove(&item)?;
            if let Some(load) = l.loads.get_mut(&(held.agent.clone(), held.channel.clone())) {
                *load = load.saturating_sub(held.cost);
            }
            Some(held)
        }))
    }

    async fn load(&self, tenant: &TenantId, agent: &AgentId, channel: &ChannelKind) -> crate::Result<u32> {
        Ok(self.with(tenant, |l| l.loads.get(&(agent.clone(), channel.clone())).copied().unwrap_or(0)))
    }

    async fn assignment(&self, tenant: &TenantId, item: WorkItemId) -> crate::Result<Option<Assignment>> {
        Ok(self.with(tenant, |l| l.assignments.get(&item).cloned()))
    }
}

/// The conformance checks every [`AssignmentLedger`] must pass (feature `testkit`). Each check
/// works in a fresh random tenant, so a shared database can be reused. Not covered by semver.
///
/// ```
/// use std::sync::Arc;
/// use touchpoint::routing::{InMemoryLedger, ledger::conformance};
/// # futures::executor::block_on(async {
/// conformance::run_all(&InMemoryLedger::new()).await;
/// # });
/// conformance::concurrent_claims(Arc::new(InMemoryLedger::new()), 4);
/// ```
#[cfg(feature = "testkit")]
pub mod conformance {
    #![allow(clippy::missing_panics_doc)]

    use super::*;
    use std::collections::HashSet;

    fn tenant() -> TenantId {
        TenantId::new(format!("t-{}", uuid::Uuid::now_v7().simple())).expect("valid tenant")
    }

    fn agent(name: &str) -> AgentId {
        AgentId::new(name).expect("valid agent")
    }

    fn item() -> WorkItemId {
        WorkItemId::random()
    }

    /// A granted claim assigns the item and adds its cost to the agent's load on that channel
    /// only; release takes both back and is idempotent.
    pub async fn claim_and_release(ledger: &dyn AssignmentLedger) {
        let t = tenant();
        let (ana, x) = (agent("ana"), item());
        let claim = Claim::new(x, ana.clone(), ChannelKind::WebChat, 2, 3);
        assert_eq!(ledger.claim(&t, &claim).await.expect("claim"), ClaimOutcome::Granted);
        assert_eq!(ledger.load(&t, &ana, &ChannelKind::WebChat).await.expect("load"), 2);
        assert_eq!(ledger.load(&t, &ana, &ChannelKind::Email).await.expect("load"), 0);
        let held = Assignment { item: x, agent: ana.clone(), channel: ChannelKind::WebChat, cost: 2 };
        assert_eq!(ledger.assignment(&t, x).await.expect("assignment"), Some(held.clone()));
        // Another agent's release (a process that was refused the item) frees nothing.
        assert_eq!(ledger.release(&t, x, &agent("bo")).await.expect("release by another"), None);
        assert_eq!(ledger.load(&t, &ana, &ChannelKind::WebChat).await.expect("load"), 2);
        assert_eq!(ledger.release(&t, x, &ana).await.expect("release"), Some(held));
        assert_eq!(ledger.release(&t, x, &ana).await.expect("release again"), None);
        assert_eq!(ledger.load(&t, &ana, &ChannelKind::WebChat).await.expect("load"), 0);
        assert_eq!(ledger.assignment(&t, x).await.expect("assignment"), None);
    }

    /// An item is assigned once: a second claim (by anyone) is refused and names the holder.
    pub async fn items_are_assigned_once(ledger: &dyn AssignmentLedger) {
        let t = tenant();
        let (ana, bo, x) = (agent("ana"), agent("bo"), item());
        let first = Claim::new(x, ana.clone(), ChannelKind::Sms, 1, 5);
        assert_eq!(ledger.claim(&t, &first).await.expect("claim"), ClaimOutcome::Granted);
        for by in [&bo, &ana] {
            let again = Claim::new(x, by.clone(), ChannelKind::Sms, 1, 5);
            assert_eq!(
                ledger.claim(&t, &again).await.expect("claim"),
                ClaimOutcome::Refused(Refusal::AlreadyAssigned { agent: ana.clone() })
            );
        }
        assert_eq!(ledger.load(&t, &bo, &ChannelKind::Sms).await.expect("load"), 0);
        assert_eq!(ledger.load(&t, &ana, &ChannelKind::Sms).await.expect("load"), 1);
        // Once released, the item can be claimed again.
        ledger.release(&t, x, &ana).await.expect("release");
        let other = Claim::new(x, bo.clone(), ChannelKind::Sms, 1, 5);
        assert_eq!(ledger.claim(&t, &other).await.expect("claim"), ClaimOutcome::Granted);
    }

    /// A claim that would exceed the limit is refused with the load it saw, and changes nothing.
    pub async fn capacity_is_never_exceeded(ledger: &dyn AssignmentLedger) {
        let t = tenant();
        let ana = agent("ana");
        let (a, b, c) = (item(), item(), item());
        assert_eq!(
            ledger.claim(&t, &Claim::new(a, ana.clone(), ChannelKind::Voice, 2, 3)).await.expect("claim"),
            ClaimOutcome::Granted
        );
        assert_eq!(
            ledger.claim(&t, &Claim::new(b, ana.clone(), ChannelKind::Voice, 2, 3)).await.expect("claim"),
            ClaimOutcome::Refused(Refusal::OverCapacity { load: 2, cost: 2, limit: 3 })
        );
        assert_eq!(ledger.assignment(&t, b).await.expect("assignment"), None);
        // A cost above the limit never fits, even for an idle agent.
        let bo = agent("bo");
        assert_eq!(
            ledger.claim(&t, &Claim::new(c, bo.clone(), ChannelKind::Voice, 4, 3)).await.expect("claim"),
            ClaimOutcome::Refused(Refusal::OverCapacity { load: 0, cost: 4, limit: 3 })
        );
        assert_eq!(
            ledger.claim(&t, &Claim::new(b, ana.clone(), ChannelKind::Voice, 1, 3)).await.expect("claim"),
            ClaimOutcome::Granted
        );
        assert_eq!(ledger.load(&t, &ana, &ChannelKind::Voice).await.expect("load"), 3);
    }

    /// Nothing of one tenant is visible or changed from another.
    pub async fn tenants_are_isolated(ledger: &dyn AssignmentLedger) {
        let (t1, t2) = (tenant(), tenant());
        let (ana, x) = (agent("ana"), item());
        let claim = Claim::new(x, ana.clone(), ChannelKind::Email, 1, 1);
        assert_eq!(ledger.claim(&t1, &claim).await.expect("claim"), ClaimOutcome::Granted);
        assert_eq!(ledger.assignment(&t2, x).await.expect("assignment"), None);
        assert_eq!(ledger.load(&t2, &ana, &ChannelKind::Email).await.expect("load"), 0);
        assert_eq!(ledger.release(&t2, x, &ana).await.expect("release"), None);
        assert_eq!(ledger.claim(&t2, &claim).await.expect("claim"), ClaimOutcome::Granted);
        assert_eq!(ledger.load(&t1, &ana, &ChannelKind::Email).await.expect("load"), 1);
    }

    /// Every check above.
    pub async fn run_all(ledger: &dyn AssignmentLedger) {
        claim_and_release(ledger).await;
        items_are_assigned_once(ledger).await;
        capacity_is_never_exceeded(ledger).await;
        tenants_are_isolated(ledger).await;
    }

    /// `threads` OS threads claim the same items for the same three agents at once, completing
    /// (releasing) every other grant as they go. A shared record of what each thread holds
    /// checks that no item is ever granted while another thread holds it and that no agent
    /// ever holds more than its limit; afterwards each agent's load is exactly the cost of the
    /// items the ledger says it holds.
    pub fn concurrent_claims(ledger: Arc<dyn AssignmentLedger>, threads: usize) {
        const LIMIT: u32 = 3;
        #[derive(Default)]
        struct Held {
            items: HashSet<WorkItemId>,
            loads: HashMap<AgentId, u32>,
            grants: usize,
        }
        let t = tenant();
        let agents: Vec<AgentId> = ["ana", "bo", "cy"].into_iter().map(agent).collect();
        let items: Vec<WorkItemId> = (0..40).map(|_| item()).collect();
        let held = Arc::new(Mutex::new(Held::default()));
        let handles: Vec<_> = (0..threads)
            .map(|n| {
                let (ledger, t, agents, items, held) =
                    (ledger.clone(), t.clone(), agents.clone(), items.clone(), held.clone());
                std::thread::spawn(move || {
                    futures::executor::block_on(async move {
                        let mut mine = 0usize;
                        for (i, x) in items.iter().enumerate() {
                            let who = &agents[(i + n) % agents.len()];
                            let claim = Claim::new(*x, who.clone(), ChannelKind::WebChat, 1, LIMIT);
                            if ledger.claim(&t, &claim).await.expect("claim") != ClaimOutcome::Granted {
                                continue;
                            }
                            {
                                let mut h = held.lock().expect("held");
                                assert!(h.items.insert(*x), "item {x} was granted while another thread held it");
                                let load = h.loads.entry(who.clone()).or_default();
                                *load += 1;
                                assert!(*load <= LIMIT, "{who} holds {load} items, over the limit of {LIMIT}");
                                h.grants += 1;
                            }
                            mine += 1;
                            if mine.is_multiple_of(2) {
                                // Forget it first: the ledger may grant it again once released.
                                {
                                    let mut h = held.lock().expect("held");
                                    h.items.remove(x);
                                    if let Some(load) = h.loads.get_mut(who) {
                                        *load -= 1;
                                    }
                                }
                                let released = ledger.release(&t, *x, who).await.expect("release");
                                assert_eq!(released.map(|a| a.agent), Some(who.clone()));
                            }
                        }
                    })
                })
            })
            .collect();
        for h in handles {
            h.join().expect("a claiming thread failed");
        }
        let held = held.lock().expect("held");
        assert!(held.grants > 0, "no claim was granted");
        futures::executor::block_on(async {
            let mut by_agent: HashMap<AgentId, u32> = HashMap::new();
            for x in &items {
                if let Some(a) = ledger.assignment(&t, *x).await.expect("assignment") {
                    assert!(held.items.contains(x), "the ledger holds {x}, no thread does");
                    *by_agent.entry(a.agent).or_default() += a.cost;
                }
            }
            for who in &agents {
                let load = ledger.load(&t, who, &ChannelKind::WebChat).await.expect("load");
                assert_eq!(load, by_agent.get(who).copied().unwrap_or(0), "{who}'s load is not the sum of its items");
                assert!(load <= LIMIT, "{who} ended over capacity");
            }
        });
    }
}
