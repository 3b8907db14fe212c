//! The routing ledger on PostgreSQL: claims shared by every process that uses the database.

use super::{PostgresStore, client, col, decode, encode, pg_error};
use crate::model::{AgentId, ChannelKind, TenantId};
use crate::routing::{Assignment, AssignmentLedger, Claim, ClaimOutcome, Refusal, WorkItemId};
use crate::{Error, Result};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

/// An [`AssignmentLedger`] in the [`PostgresStore`]'s database (tables `ledger_assignments`
/// and `ledger_loads`), shared by every process connected to it. Get one with
/// [`PostgresStore::ledger`].
///
/// A claim is one transaction of two conditional statements: insert the assignment unless the
/// item has one (`ON CONFLICT DO NOTHING`), then add the cost to the agent's load row only if
/// the sum stays within the limit (`INSERT … ON CONFLICT DO UPDATE … WHERE load + cost <=
/// limit`, which locks that row); if either finds nothing to do, the transaction is rolled back
/// and the refusal says which. A release is one statement (delete the assignment, subtract its
/// cost), of the named agent's claim only. See [`crate::routing::ledger`] for how a host uses
/// it with the router.
#[derive(Debug, Clone)]
pub struct PostgresLedger {
    store: PostgresStore,
}

const INSERT_ASSIGNMENT: &str = "INSERT INTO ledger_assignments (tenant, item, agent, channel, cost, record) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant, item) DO NOTHING";
const SELECT_HOLDER: &str = "SELECT agent FROM ledger_assignments WHERE tenant = $1 AND item = $2";
/// Adds the cost to the agent's load only if the sum stays within the limit (locks the row).
const ADD_LOAD: &str = "INSERT INTO ledger_loads (tenant, agent, channel, load) \
     SELECT $1, $2, $3, $4::bigint WHERE $4::bigint <= $5::bigint \
     ON CONFLICT (tenant, agent, channel) DO UPDATE SET load = ledger_loads.load + EXCLUDED.load \
     WHERE ledger_loads.load + EXCLUDED.load <= $5 RETURNING load";
const SELECT_LOAD: &str = "SELECT load FROM ledger_loads WHERE tenant = $1 AND agent = $2 AND channel = $3";
/// Deletes the assignment and subtracts its cost, in one statement.
const RELEASE: &str = "WITH gone AS ( \
         DELETE FROM ledger_assignments WHERE tenant = $1 AND item = $2 AND agent = $3 \
         RETURNING agent, channel, cost, record), \
     freed AS ( \
         UPDATE ledger_loads l SET load = l.load - gone.cost FROM gone \
         WHERE l.tenant = $1 AND l.agent = gone.agent AND l.channel = gone.channel) \
     SELECT record FROM gone";
const SELECT_ASSIGNMENT: &str = "SELECT record FROM ledger_assignments WHERE tenant = $1 AND item = $2";

/// The statement for `sql`, prepared once per connection.
async fn prepared(c: &impl GenericClient, sql: &str) -> Result<tokio_postgres::Statement> {
    c.prepare_cached(sql).await.map_err(pg_error)
}

fn channel_bytes(channel: &ChannelKind) -> Vec<u8> {
    super::channel_key(channel).as_bytes().to_vec()
}

impl PostgresLedger {
    pub(super) fn new(store: PostgresStore) -> Self {
        PostgresLedger { store }
    }
}

#[async_trait]
impl AssignmentLedger for PostgresLedger {
    async fn claim(&self, tenant: &TenantId, claim: &Claim) -> Result<ClaimOutcome> {
        let (t, claim) = (tenant.clone(), claim.clone());
        self.store
            .run(move |pool| async move {
                let record = encode(
                    "assignment",
                    &Assignment {
                        item: claim.item,
                        agent: claim.agent.clone(),
                        channel: claim.channel.clone(),
                        cost: claim.cost,
                    },
                )?;
                let (agent, channel) = (claim.agent.as_str(), channel_bytes(&claim.channel));
                let (cost, limit) = (i64::from(claim.cost), i64::from(claim.limit));
                let mut c = client(&pool).await?;
                let key: [&(dyn ToSql + Sync); 3] = [&t.as_str(), &agent, &channel];
                // A holder released between our insert and our look-up: try again (bounded).
                for _ in 0..8 {
                    let tx = c.transaction().await.map_err(pg_error)?;
                    let insert = prepared(&tx, INSERT_ASSIGNMENT).await?;
                    let row: [&(dyn ToSql + Sync); 6] = [&t.as_str(), &claim.item.0, &agent, &channel, &cost, &record];
                    if tx.execute(&insert, &row).await.map_err(pg_error)? == 0 {
                        drop(tx);
                        let holder = prepared(&c, SELECT_HOLDER).await?;
                        match c.query_opt(&holder, &[&t.as_str(), &claim.item.0]).await.map_err(pg_error)? {
                            Some(row) => {
                                let agent = AgentId::new(col::<String>(&row, 0)?)?;
                                return Ok(ClaimOutcome::Refused(Refusal::AlreadyAssigned { agent }));
                            }
                            None => continue,
                        }
                    }
                    let add = prepared(&tx, ADD_LOAD).await?;
                    let fits = tx.query_opt(&add, &[key[0], key[1], key[2], &cost, &limit]).await.map_err(pg_error)?;
                    if fits.is_some() {
                        tx.commit().await.map_err(pg_error)?;
                        return Ok(ClaimOutcome::Granted);
                    }
                    // Read the load in the same transaction: ADD_LOAD locked the row it judged
                    // (ON CONFLICT DO UPDATE locks it even when its WHERE is false), so this is
                    // the load the claim was refused on, not one a later release left.
                    let select = prepared(&tx, SELECT_LOAD).await?;
                    let judged = tx.query_opt(&select, &key).await.map_err(pg_error)?;
                    drop(tx);
                    let load = match judged {
                        Some(row) => u32::try_from(col::<i64>(&row, 0)?).unwrap_or(u32::MAX),
                        None => 0,
                    };
                    let (cost, limit) = (claim.cost, claim.limit);
                    return Ok(ClaimOutcome::Refused(Refusal::OverCapacity { load, cost, limit }));
                }
                Err(Error::Conflict(format!("work item {} kept changing hands while it was claimed", claim.item)))
            })
            .await
    }

    async fn release(&self, tenant: &TenantId, item: WorkItemId, agent: &AgentId) -> Result<Option<Assignment>> {
        let (t, agent) = (tenant.clone(), agent.clone());
        self.store
            .run(move |pool| async move {
                let c = client(&pool).await?;
                let stmt = prepared(&c, RELEASE).await?;
                let row = c.query_opt(&stmt, &[&t.as_str(), &item.0, &agent.as_str()]).await.map_err(pg_error)?;
                row.map(|r| decode("assignment", col::<&str>(&r, 0)?)).transpose()
            })
            .await
    }

    async fn load(&self, tenant: &TenantId, agent: &AgentId, channel: &ChannelKind) -> Result<u32> {
        let (t, agent, channel) = (tenant.clone(), agent.clone(), channel_bytes(channel));
        self.store
            .run(move |pool| async move {
                let c = client(&pool).await?;
                let stmt = prepared(&c, SELECT_LOAD).await?;
                match c.query_opt(&stmt, &[&t.as_str(), &agent.as_str(), &channel]).await.map_err(pg_error)? {
                    Some(r) => Ok(u32::try_from(col::<i64>(&r, 0)?).unwrap_or(u32::MAX)),
                    None => Ok(0),
                }
            })
            .await
    }

    async fn assignment(&self, tenant: &TenantId, item: WorkItemId) -> Result<Option<Assignment>> {
        let t = tenant.clone();
        self.store
            .run(move |pool| async move {
                let c = client(&pool).await?;
                let stmt = prepared(&c, SELECT_ASSIGNMENT).await?;
                let row = c.query_opt(&stmt, &[&t.as_str(), &item.0]).await.map_err(pg_error)?;
                row.map(|r| decode("assignment", col::<&str>(&r, 0)?)).transpose()
            })
            .await
    }
}
