//! The read side of the store: one function per `Store` lookup, run on a reader connection.

use super::statements::Sql;
use super::write::{EventIn, version_from_sql};
use super::{backend_error, channel_key, decode, decode_id, kind_key, verification_from_rank};
use crate::Result;
use crate::events::StoredEvent;
use crate::model::{
    AddressKind, ChannelKind, Conversation, ConversationId, Customer, CustomerId, Identity, IdentityId, Message,
    MessageId, NormalizedAddress, TenantId, Verification,
};
use crate::store::{CustomerSnapshot, LinkKey, MessageQuery, MessageScope, ThreadKey};
use rusqlite::{OptionalExtension, Params, params};
use serde::de::DeserializeOwned;

/// The first column of the single row `sql` returns, decoded as JSON.
fn one<T: DeserializeOwned>(
    sql: &Sql<'_>,
    what: &'static str,
    query: &'static str,
    p: impl Params,
) -> Result<Option<T>> {
    sql.with(query, |stmt| {
        let mut rows = stmt.query(p)?;
        Ok(match rows.next()? {
            Some(row) => Some(decode(what, row.get_ref(0)?.as_str()?)),
            None => None,
        })
    })
    .map_err(backend_error)?
    .transpose()
}

/// The first column of every row `sql` returns, decoded as JSON.
fn all<T: DeserializeOwned>(sql: &Sql<'_>, what: &'static str, query: &'static str, p: impl Params) -> Result<Vec<T>> {
    sql.with(query, |stmt| {
        let mut rows = stmt.query(p)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(decode(what, row.get_ref(0)?.as_str()?));
        }
        Ok(out)
    })
    .map_err(backend_error)?
    .into_iter()
    .collect()
}

/// SQLite `LIMIT` from a page size.
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn customer(sql: &Sql<'_>, tenant: &str, id: CustomerId) -> Result<Option<Customer>> {
    one(sql, "customer", "SELECT record FROM customers WHERE tenant = ?1 AND id = ?2", params![tenant, id.0.as_bytes()])
}

pub(super) fn customer_by_external_id(sql: &Sql<'_>, tenant: &str, external_id: &str) -> Result<Option<Customer>> {
    one(
        sql,
        "customer",
        "SELECT record FROM customers WHERE tenant = ?1 AND external_id = ?2",
        params![tenant, external_id],
    )
}

pub(super) fn identity(sql: &Sql<'_>, tenant: &str, id: IdentityId) -> Result<Option<Identity>> {
    one(
        sql,
        "identity",
        "SELECT record FROM identities WHERE tenant = ?1 AND id = ?2",
        params![tenant, id.0.as_bytes()],
    )
}

pub(super) fn identity_by_address(
    sql: &Sql<'_>,
    tenant: &str,
    channel: &ChannelKind,
    address: &NormalizedAddress,
) -> Result<Option<Identity>> {
    one(
        sql,
        "identity",
        "SELECT record FROM identities WHERE tenant = ?1 AND channel = ?2 AND address_kind = ?3 AND address = ?4",
        params![tenant, channel_key(channel), kind_key(address.kind), address.value],
    )
}

pub(super) fn identities_of(sql: &Sql<'_>, tenant: &str, customer: CustomerId) -> Result<Vec<Identity>> {
    all(
        sql,
        "identity",
        "SELECT record FROM identities WHERE tenant = ?1 AND customer = ?2 ORDER BY customer_ord",
        params![tenant, customer.0.as_bytes()],
    )
}

pub(super) fn customers_by_address(
    sql: &Sql<'_>,
    tenant: &str,
    key: &LinkKey,
) -> Result<Vec<(CustomerId, Verification)>> {
    // Platform ids are scoped to one channel and never link across channels.
    if key.0.kind == AddressKind::Platform {
        return Ok(Vec::new());
    }
    // In the order the identities were inserted (`seq`).
    let mut found = sql
        .with(
            "SELECT seq, customer, verification FROM identities WHERE tenant = ?1 AND address_kind = ?2 AND address = ?3",
            |s| {
                s.query_map(params![tenant, kind_key(key.0.kind), key.0.value], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, [u8; 16]>(1)?, r.get::<_, i64>(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            },
        )
        .map_err(backend_error)?;
    found.sort_unstable_by_key(|(seq, ..)| *seq);
    let mut out: Vec<(CustomerId, Verification)> = Vec::new();
    for (_, customer, rank) in found {
        let (customer, verification) = (CustomerId(decode_id(customer)), verification_from_rank(rank)?);
        match out.iter_mut().find(|(c, _)| *c == customer) {
            Some((_, v)) => *v = (*v).max(verification),
            None => out.push((customer, verification)),
        }
    }
    Ok(out)
}

pub(super) fn conversation(sql: &Sql<'_>, tenant: &str, id: ConversationId) -> Result<Option<Conversation>> {
    one(
        sql,
        "conversation",
        "SELECT record FROM conversations WHERE tenant = ?1 AND id = ?2",
        params![tenant, id.0.as_bytes()],
    )
}

pub(super) fn conversation_by_thread_key(
    sql: &Sql<'_>,
    tenant: &str,
    key: &ThreadKey,
) -> Result<Option<ConversationId>> {
    let key = super::encode("thread key", key)?;
    sql.with("SELECT conversation FROM thread_keys WHERE tenant = ?1 AND key = ?2", |s| {
        s.query_row(params![tenant, key], |r| r.get::<_, [u8; 16]>(0)).optional()
    })
    .map_err(backend_error)
    .map(|o| o.map(|b| ConversationId(decode_id(b))))
}

pub(super) fn conversations_of(sql: &Sql<'_>, tenant: &str, customer: CustomerId) -> Result<Vec<Conversation>> {
    let mut v: Vec<Conversation> = all(
        sql,
        "conversation",
        "SELECT record FROM conversations WHERE tenant = ?1 AND customer = ?2",
        params![tenant, customer.0.as_bytes()],
    )?;
    v.sort_by(|a, b| b.last_activity_at.cmp(&a.last_activity_at).then(b.id.cmp(&a.id)));
    Ok(v)
}

pub(super) fn message(sql: &Sql<'_>, tenant: &str, id: MessageId) -> Result<Option<Message>> {
    one(sql, "message", "SELECT record FROM messages WHERE tenant = ?1 AND id = ?2", params![tenant, id.0.as_bytes()])
}

pub(super) fn message_by_external_id(
    sql: &Sql<'_>,
    tenant: &str,
    channel: &ChannelKind,
    external_id: &str,
) -> Result<Option<Message>> {
    one(
        sql,
        "message",
        "SELECT record FROM messages WHERE tenant = ?1 AND channel = ?2 AND external_id = ?3",
        params![tenant, channel_key(channel), external_id],
    )
}

pub(super) fn messages(sql: &Sql<'_>, tenant: &str, query: &MessageQuery) -> Result<Vec<Message>> {
    if query.limit == 0 {
        return Ok(Vec::new());
    }
    let n = limit(query.limit);
    match (query.scope, query.before) {
        (MessageScope::Conversation(c), None) => all(
            sql,
            "message",
            "SELECT record FROM messages WHERE tenant = ?1 AND conversation = ?2 ORDER BY id DESC LIMIT ?3",
            params![tenant, c.0.as_bytes(), n],
        ),
        (MessageScope::Conversation(c), Some(before)) => all(
            sql,
            "message",
            "SELECT record FROM messages WHERE tenant = ?1 AND conversation = ?2 AND id < ?3 \
             ORDER BY id DESC LIMIT ?4",
            params![tenant, c.0.as_bytes(), before.0.as_bytes(), n],
        ),
        // The page's ids come from the customer's conversations (outer loop, forced by CROSS
        // JOIN) and the (tenant, conversation, id) index alone; only the page's records are read.
        (MessageScope::Customer(c), None) => all(
            sql,
            "message",
            "SELECT record FROM messages WHERE tenant = ?1 AND id IN ( \
                 SELECT m.id FROM conversations c CROSS JOIN messages m \
                     ON m.tenant = c.tenant AND m.conversation = c.id \
                 WHERE c.tenant = ?1 AND c.customer = ?2 ORDER BY m.id DESC LIMIT ?3) \
             ORDER BY id DESC",
            params![tenant, c.0.as_bytes(), n],
        ),
        (MessageScope::Customer(c), Some(before)) => all(
            sql,
            "message",
            "SELECT record FROM messages WHERE tenant = ?1 AND id IN ( \
                 SELECT m.id FROM conversations c CROSS JOIN messages m \
                     ON m.tenant = c.tenant AND m.conversation = c.id \
                 WHERE c.tenant = ?1 AND c.customer = ?2 AND m.id < ?3 ORDER BY m.id DESC LIMIT ?4) \
             ORDER BY id DESC",
            params![tenant, c.0.as_bytes(), before.0.as_bytes(), n],
        ),
    }
}

/// Everything about a customer, read on one connection (the caller holds a read transaction
/// around it, so it is one snapshot).
pub(super) fn customer_snapshot(sql: &Sql<'_>, tenant: &str, id: CustomerId) -> Result<Option<CustomerSnapshot>> {
    let Some(customer) = self::customer(sql, tenant, id)? else { return Ok(None) };
    let query = MessageQuery { scope: MessageScope::Customer(id), before: None, limit: usize::MAX };
    let mut messages = self::messages(sql, tenant, &query)?;
    messages.reverse();
    Ok(Some(CustomerSnapshot {
        customer,
        identities: identities_of(sql, tenant, id)?,
        conversations: conversations_of(sql, tenant, id)?,
        messages,
    }))
}

pub(super) fn events_after(sql: &Sql<'_>, tenant: &TenantId, after: u64, n: usize) -> Result<Vec<StoredEvent>> {
    let Ok(after) = i64::try_from(after) else { return Ok(Vec::new()) };
    if n == 0 {
        return Ok(Vec::new());
    }
    let rows = sql
        .with("SELECT seq, record FROM events WHERE tenant = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3", |s| {
            let mut rows = s.query(params![tenant.as_str(), after, limit(n)])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let seq: i64 = row.get(0)?;
                out.push((seq, decode::<EventIn>("event", row.get_ref(1)?.as_str()?)));
            }
            Ok(out)
        })
        .map_err(backend_error)?;
    rows.into_iter().map(|(seq, e)| Ok(e?.into_stored(tenant.clone(), version_from_sql(seq)))).collect()
}
