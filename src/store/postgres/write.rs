//! `Store::commit` on PostgreSQL: one transaction per change set.
//!
//! 1. Lock the tenant's row in `tenants` (`SELECT … FOR UPDATE`, inserting it the first time):
//!    from here on no other commit of this tenant runs, in any process, until this one ends.
//! 2. The dedupe key: if a message holds it, answer `Duplicate` and roll back.
//! 3. Load the records the change set touches (by id and by every key it writes) into an empty
//!    in-memory tenant and run the store contract's checks (`store::rules::check`, the ones
//!    every backend runs) against it.
//! 4. Write: every statement of the change set is sent at once (pipelined on the connection, run
//!    in order by the server), then the tenant's event counter is advanced and the transaction
//!    commits. The unique indexes back the checks up: a violation is a conflict.
//!
//! Every write is an upsert (`ON CONFLICT (tenant, id) DO UPDATE`): an update rewrites the
//! record and the columns it is found by (a message's conversation, channel and provider id; a
//! customer's external id; an identity's customer, which moves it last in the new customer's
//! list), an insert of an id deleted earlier in the same change set writes it afresh.

use super::read::all;
use super::{channel_key, client, col, encode, kind_key, pg_error, to_sql_int};
use crate::events::StoredEvent;
use crate::idgen::IdGen;
use crate::model::{Conversation, Customer, EventId, Identity, Message, NormalizedAddress, TenantId};
use crate::store::memory::TenantData;
use crate::store::rules::check;
use crate::store::{ChangeSet, Committed, ThreadKeyClaim, Write};
use crate::{Error, Result};
use deadpool_postgres::{Pool, Transaction};
use futures::future::try_join_all;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

type Param = Box<dyn ToSql + Sync + Send>;

/// Statements sent together and run in order.
#[derive(Default)]
struct Batch {
    ops: Vec<(&'static str, Vec<Param>)>,
}

impl Batch {
    fn push(&mut self, sql: &'static str, params: Vec<Param>) {
        self.ops.push((sql, params));
    }

    /// Prepares the statements (cached per connection) and sends them all before awaiting the
    /// answers: one network round trip for the whole change set. The first failure is reported.
    async fn run(self, tx: &Transaction<'_>) -> Result<()> {
        let mut statements = Vec::with_capacity(self.ops.len());
        for (sql, _) in &self.ops {
            statements.push(tx.prepare_cached(sql).await.map_err(pg_error)?);
        }
        let params: Vec<Vec<&(dyn ToSql + Sync)>> =
            self.ops.iter().map(|(_, p)| p.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect()).collect();
        try_join_all(statements.iter().zip(&params).map(|(s, p)| tx.execute(s, p))).await.map_err(pg_error)?;
        Ok(())
    }
}

fn p<T: ToSql + Sync + Send + 'static>(value: T) -> Param {
    Box::new(value)
}

fn bytes(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Versions are `u64` in the model and `bigint` in PostgreSQL: stored bit for bit.
fn version_to_sql(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

/// Checks one change set and applies it in its own transaction.
pub(super) async fn commit(pool: &Pool, ids: &IdGen, tenant: &TenantId, changes: ChangeSet) -> Result<Committed> {
    let mut c = client(pool).await?;
    let tx = c.transaction().await.map_err(pg_error)?;
    let t = tenant.as_str();
    let (last_seq, last_event_id) = lock_tenant(&tx, t).await?;
    if let Some(key) = &changes.dedupe {
        let stmt = tx
            .prepare_cached("SELECT id FROM messages WHERE tenant = $1 AND channel = $2 AND external_id = $3")
            .await
            .map_err(pg_error)?;
        let channel = channel_key(&key.channel);
        let found =
            tx.query_opt(&stmt, &[&t, &channel.as_bytes(), &key.external_id.as_bytes()]).await.map_err(pg_error)?;
        if let Some(row) = found {
            return Ok(Committed::Duplicate { message: crate::model::MessageId(col(&row, 0)?) });
        }
    }
    check(&snapshot(&tx, t, &changes).await?, tenant, &changes)?;
    let committed = apply(&tx, ids, tenant, changes, last_seq, last_event_id).await?;
    tx.commit().await.map_err(|e| {
        let mut err = pg_error(e);
        if let Error::Backend { message, temporary, .. } = &mut err {
            *message = format!("the commit's outcome is unknown: {message}");
            *temporary = true;
        }
        err
    })?;
    Ok(committed)
}

/// Locks the tenant's row (creating it the first time) and returns its event counter.
async fn lock_tenant(tx: &Transaction<'_>, t: &str) -> Result<(i64, Option<Uuid>)> {
    let select = tx
        .prepare_cached("SELECT last_seq, last_event_id FROM tenants WHERE tenant = $1 FOR UPDATE")
        .await
        .map_err(pg_error)?;
    if let Some(row) = tx.query_opt(&select, &[&t]).await.map_err(pg_error)? {
        return Ok((col(&row, 0)?, col(&row, 1)?));
    }
    tx.execute("INSERT INTO tenants (tenant) VALUES ($1) ON CONFLICT (tenant) DO NOTHING", &[&t])
        .await
        .map_err(pg_error)?;
    let row = tx.query_one(&select, &[&t]).await.map_err(pg_error)?;
    Ok((col(&row, 0)?, col(&row, 1)?))
}

/// The stored records the checks of `changes` look at, in an otherwise empty tenant: records
/// by the ids it writes or deletes, the customers owning what it writes, the holders of the
/// external ids, addresses and provider ids it claims. Four queries, sent together.
async fn snapshot(tx: &Transaction<'_>, t: &str, changes: &ChangeSet) -> Result<TenantData> {
    let message_conversations: Vec<Uuid> = changes.messages.iter().map(|w| w.record.conversation.0).collect();
    let conversation_ids: Vec<Uuid> =
        changes.conversations.iter().map(|w| w.record.id.0).chain(message_conversations.iter().copied()).collect();
    let customer_ids: Vec<Uuid> = changes
        .customers
        .iter()
        .map(|w| w.record.id.0)
        .chain(changes.identities.iter().map(|w| w.record.customer.0))
        .chain(changes.conversations.iter().map(|w| w.record.customer.0))
        .collect();
    let external_ids: Vec<&[u8]> =
        changes.customers.iter().filter_map(|w| w.record.external_id.as_deref()).map(str::as_bytes).collect();
    let identity_ids: Vec<Uuid> = changes
        .identity_deletes
        .iter()
        .map(|(id, _)| id.0)
        .chain(changes.identities.iter().map(|w| w.record.id.0))
        .collect();
    // The written addresses, and the other spellings of each (one link key, see the rules).
    let spellings: Vec<NormalizedAddress> =
        changes.identities.iter().flat_map(|w| crate::identity::other_spellings(&w.record.address)).collect();
    let written_addresses = changes.identities.iter().map(|w| &w.record.address).chain(&spellings);
    let (address_kinds, addresses): (Vec<&str>, Vec<&[u8]>) =
        written_addresses.map(|a| (kind_key(a.kind), a.value.as_bytes())).unzip();
    let message_ids: Vec<Uuid> = changes.messages.iter().map(|w| w.record.id.0).collect();
    let (message_channels, message_keys): (Vec<Vec<u8>>, Vec<&[u8]>) = changes
        .messages
        .iter()
        .filter_map(|w| w.record.external_id.as_deref().map(|x| (bytes(&channel_key(&w.record.channel)), x.as_bytes())))
        .unzip();

    let p1: [&(dyn ToSql + Sync); 2] = [&t, &conversation_ids];
    let p2: [&(dyn ToSql + Sync); 4] = [&t, &customer_ids, &external_ids, &message_conversations];
    let p3: [&(dyn ToSql + Sync); 4] = [&t, &identity_ids, &address_kinds, &addresses];
    let p4: [&(dyn ToSql + Sync); 4] = [&t, &message_ids, &message_channels, &message_keys];
    let conversations = all::<Conversation>(
        tx,
        "conversation",
        "SELECT record FROM conversations WHERE tenant = $1 AND id = ANY($2)",
        &p1,
    );
    let customers = all::<Customer>(
        tx,
        "customer",
        "SELECT record FROM customers WHERE tenant = $1 AND (id = ANY($2) OR external_id = ANY($3) \
         OR id IN (SELECT customer FROM conversations WHERE tenant = $1 AND id = ANY($4)))",
        &p2,
    );
    let identities = all::<Identity>(
        tx,
        "identity",
        "SELECT record FROM identities WHERE tenant = $1 AND (id = ANY($2) \
         OR (address_kind, address) IN (SELECT * FROM UNNEST($3::text[], $4::bytea[]))) ORDER BY seq",
        &p3,
    );
    let messages = all::<Message>(
        tx,
        "message",
        "SELECT record FROM messages WHERE tenant = $1 AND (id = ANY($2) \
         OR (channel, external_id) IN (SELECT * FROM UNNEST($3::bytea[], $4::bytea[])))",
        &p4,
    );
    let (conversations, customers, identities, messages) =
        futures::future::try_join4(conversations, customers, identities, messages).await?;
    let mut data = TenantData::default();
    customers.into_iter().for_each(|r| data.put_customer(r));
    identities.into_iter().for_each(|r| data.put_identity(r));
    conversations.into_iter().for_each(|r| data.put_conversation(r));
    messages.into_iter().for_each(|r| data.put_message(r));
    Ok(data)
}

/// Writes a checked change set; returns what the commit reports.
async fn apply(
    tx: &Transaction<'_>,
    ids: &IdGen,
    tenant: &TenantId,
    changes: ChangeSet,
    last_seq: i64,
    last_event_id: Option<Uuid>,
) -> Result<Committed> {
    let t = tenant.as_str();
    let tp = || p(t.to_owned());
    let mut batch = Batch::default();
    if !changes.conversation_deletes.is_empty() {
        let doomed: Vec<Uuid> = changes.conversation_deletes.iter().map(|c| c.0).collect();
        batch.push("DELETE FROM conversations WHERE tenant = $1 AND id = ANY($2)", vec![tp(), p(doomed.clone())]);
        batch.push(
            "DELETE FROM thread_keys WHERE tenant = $1 AND conversation = ANY($2)",
            vec![tp(), p(doomed.clone())],
        );
        batch.push("DELETE FROM messages WHERE tenant = $1 AND conversation = ANY($2)", vec![tp(), p(doomed)]);
    }
    if !changes.identity_deletes.is_empty() {
        let doomed: Vec<Uuid> = changes.identity_deletes.iter().map(|(id, _)| id.0).collect();
        batch.push("DELETE FROM identities WHERE tenant = $1 AND id = ANY($2)", vec![tp(), p(doomed)]);
    }
    // External ids move between customers in one commit: release the old ones first so the
    // unique index never sees a transient duplicate (only possible with two customers).
    let updated: Vec<Uuid> = changes.customers.iter().filter(|w| w.expected.is_some()).map(|w| w.record.id.0).collect();
    if changes.customers.len() > 1 && !updated.is_empty() {
        batch
            .push("UPDATE customers SET external_id = NULL WHERE tenant = $1 AND id = ANY($2)", vec![tp(), p(updated)]);
    }
    for Write { record, .. } in &changes.customers {
        batch.push(
            "INSERT INTO customers (tenant, id, external_id, version, record) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant, id) DO UPDATE SET external_id = EXCLUDED.external_id, \
                 version = EXCLUDED.version, record = EXCLUDED.record",
            vec![
                tp(),
                p(record.id.0),
                p(record.external_id.as_deref().map(bytes)),
                p(version_to_sql(record.version)),
                p(encode("customer", record)?),
            ],
        );
    }
    for Write { record, .. } in &changes.identities {
        // A new identity, or one moved to another customer, goes last in its customer's list.
        batch.push(
            "INSERT INTO identities (tenant, id, customer, customer_ord, channel, address_kind, address, version, record) \
             VALUES ($1, $2, $3, \
                 (SELECT COALESCE(MAX(customer_ord), 0) + 1 FROM identities WHERE tenant = $1 AND customer = $3), \
                 $4, $5, $6, $7, $8) \
             ON CONFLICT (tenant, id) DO UPDATE SET \
                 customer_ord = CASE WHEN identities.customer = EXCLUDED.customer THEN identities.customer_ord \
                     ELSE EXCLUDED.customer_ord END, \
                 customer = EXCLUDED.customer, version = EXCLUDED.version, record = EXCLUDED.record",
            vec![
                tp(),
                p(record.id.0),
                p(record.customer.0),
                p(bytes(&channel_key(&record.channel))),
                p(kind_key(record.address.kind)),
                p(bytes(&record.address.value)),
                p(version_to_sql(record.version)),
                p(encode("identity", record)?),
            ],
        );
    }
    for Write { record, .. } in &changes.conversations {
        batch.push(
            "INSERT INTO conversations (tenant, id, customer, version, record) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant, id) DO UPDATE SET customer = EXCLUDED.customer, \
                 version = EXCLUDED.version, record = EXCLUDED.record",
            vec![
                tp(),
                p(record.id.0),
                p(record.customer.0),
                p(version_to_sql(record.version)),
                p(encode("conversation", record)?),
            ],
        );
    }
    for Write { record, .. } in &changes.messages {
        batch.push(
            "INSERT INTO messages (tenant, id, conversation, channel, external_id, version, record) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant, id) DO UPDATE SET version = EXCLUDED.version, record = EXCLUDED.record, \
                 conversation = EXCLUDED.conversation, channel = EXCLUDED.channel, \
                 external_id = EXCLUDED.external_id",
            vec![
                tp(),
                p(record.id.0),
                p(record.conversation.0),
                p(bytes(&channel_key(&record.channel))),
                p(record.external_id.as_deref().map(bytes)),
                p(version_to_sql(record.version)),
                p(encode("message", record)?),
            ],
        );
    }
    // Insert if nobody holds the key; take it over only from the conversation it replaces.
    // Claims for a conversation that does not exist (after this change set) are skipped.
    for ThreadKeyClaim { key, conversation, replaces } in &changes.thread_keys {
        batch.push(
            "INSERT INTO thread_keys (tenant, key, conversation) \
             SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM conversations WHERE tenant = $1 AND id = $3) \
             ON CONFLICT (tenant, key) DO UPDATE SET conversation = EXCLUDED.conversation \
             WHERE thread_keys.conversation = $4 AND thread_keys.conversation <> EXCLUDED.conversation",
            vec![tp(), p(encode("thread key", key)?.into_bytes()), p(conversation.0), p(replaces.map(|r| r.0))],
        );
    }
    let mut first_event_seq = 0;
    if !changes.events.is_empty() {
        let first = u64::try_from(last_seq).unwrap_or(0) + 1;
        let count = changes.events.len() as u64;
        let mut last_id = last_event_id;
        for (i, event) in changes.events.into_iter().enumerate() {
            let seq = first + i as u64;
            // Increasing in commit order across processes: never below the tenant's last id.
            let mut id = ids.next(changes.at);
            if let Some(last) = last_id
                && id <= last
            {
                id = Uuid::from_u128(last.as_u128().wrapping_add(1));
            }
            last_id = Some(id);
            let stored = StoredEvent { seq, id: EventId(id), tenant: tenant.clone(), at: changes.at, event };
            batch.push(
                "INSERT INTO events (tenant, seq, record) VALUES ($1, $2, $3)",
                vec![tp(), p(to_sql_int(seq)), p(encode("event", &stored)?)],
            );
        }
        let last_seq = to_sql_int(first + count - 1);
        batch.push(
            "UPDATE tenants SET last_seq = $2, last_event_id = $3 WHERE tenant = $1",
            vec![tp(), p(last_seq), p(last_id)],
        );
        first_event_seq = first;
    }
    batch.run(tx).await?;
    Ok(Committed::Applied { first_event_seq })
}
