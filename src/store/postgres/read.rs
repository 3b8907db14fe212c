//! The read side of the store: one function per `Store` lookup.

use super::{channel_key, col, decode, encode, kind_key, pg_error, to_sql_int};
use crate::Result;
use crate::events::StoredEvent;
use crate::model::{
    AddressKind, ChannelKind, Conversation, ConversationId, Customer, CustomerId, Identity, IdentityId, Message,
    MessageId, NormalizedAddress, TenantId, Verification,
};
use crate::store::{CustomerSnapshot, LinkKey, MessageQuery, MessageScope, ThreadKey};
use deadpool_postgres::{Client, GenericClient};
use serde::de::DeserializeOwned;
use tokio_postgres::types::ToSql;

/// The JSON `record` (first column) of the row `sql` returns, if any.
async fn one<T: DeserializeOwned>(
    c: &impl GenericClient,
    what: &'static str,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<T>> {
    let stmt = c.prepare_cached(sql).await.map_err(pg_error)?;
    match c.query_opt(&stmt, params).await.map_err(pg_error)? {
        Some(row) => Ok(Some(decode(what, col::<&str>(&row, 0)?)?)),
        None => Ok(None),
    }
}

/// The JSON `record` (first column) of every row `sql` returns.
pub(super) async fn all<T: DeserializeOwned>(
    c: &impl GenericClient,
    what: &'static str,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<T>> {
    let stmt = c.prepare_cached(sql).await.map_err(pg_error)?;
    let rows = c.query(&stmt, params).await.map_err(pg_error)?;
    rows.iter().map(|row| decode(what, col::<&str>(row, 0)?)).collect()
}

pub(super) async fn customer(c: &impl GenericClient, t: &TenantId, id: CustomerId) -> Result<Option<Customer>> {
    one(c, "customer", "SELECT record FROM customers WHERE tenant = $1 AND id = $2", &[&t.as_str(), &id.0]).await
}

pub(super) async fn customer_by_external_id(c: &Client, t: &TenantId, x: &str) -> Result<Option<Customer>> {
    one(
        c,
        "customer",
        "SELECT record FROM customers WHERE tenant = $1 AND external_id = $2",
        &[&t.as_str(), &x.as_bytes()],
    )
    .await
}

pub(super) async fn identity(c: &Client, t: &TenantId, id: IdentityId) -> Result<Option<Identity>> {
    one(c, "identity", "SELECT record FROM identities WHERE tenant = $1 AND id = $2", &[&t.as_str(), &id.0]).await
}

pub(super) async fn identity_by_address(
    c: &Client,
    t: &TenantId,
    channel: &ChannelKind,
    address: &NormalizedAddress,
) -> Result<Option<Identity>> {
    one(
        c,
        "identity",
        "SELECT record FROM identities WHERE tenant = $1 AND address_kind = $2 AND address = $3 AND channel = $4",
        &[&t.as_str(), &kind_key(address.kind), &address.value.as_bytes(), &channel_key(channel).as_bytes()],
    )
    .await
}

pub(super) async fn identities_of(c: &impl GenericClient, t: &TenantId, customer: CustomerId) -> Result<Vec<Identity>> {
    all(
        c,
        "identity",
        "SELECT record FROM identities WHERE tenant = $1 AND customer = $2 ORDER BY customer_ord",
        &[&t.as_str(), &customer.0],
    )
    .await
}

pub(super) async fn customers_by_address(
    c: &Client,
    t: &TenantId,
    key: &LinkKey,
) -> Result<Vec<(CustomerId, Verification)>> {
    // Platform ids are scoped to one channel and never link across channels.
    if key.0.kind == AddressKind::Platform {
        return Ok(Vec::new());
    }
    // In the order the identities were inserted (`seq`).
    let found: Vec<Identity> = all(
        c,
        "identity",
        "SELECT record FROM identities WHERE tenant = $1 AND address_kind = $2 AND address = $3 ORDER BY seq",
        &[&t.as_str(), &kind_key(key.0.kind), &key.0.value.as_bytes()],
    )
    .await?;
    let mut out: Vec<(CustomerId, Verification)> = Vec::new();
    for i in found {
        match out.iter_mut().find(|(c, _)| *c == i.customer) {
            Some((_, v)) => *v = (*v).max(i.verification),
            None => out.push((i.customer, i.verification)),
        }
    }
    Ok(out)
}

pub(super) async fn conversation(c: &Client, t: &TenantId, id: ConversationId) -> Result<Option<Conversation>> {
    one(c, "conversation", "SELECT record FROM conversations WHERE tenant = $1 AND id = $2", &[&t.as_str(), &id.0])
        .await
}

pub(super) async fn conversation_by_thread_key(
    c: &Client,
    t: &TenantId,
    key: &ThreadKey,
) -> Result<Option<ConversationId>> {
    let key = encode("thread key", key)?;
    let stmt = c
        .prepare_cached("SELECT conversation FROM thread_keys WHERE tenant = $1 AND key = $2")
        .await
        .map_err(pg_error)?;
    match c.query_opt(&stmt, &[&t.as_str(), &key.as_bytes()]).await.map_err(pg_error)? {
        Some(row) => Ok(Some(ConversationId(col(&row, 0)?))),
        None => Ok(None),
    }
}

pub(super) async fn conversations_of(
    c: &impl GenericClient,
    t: &TenantId,
    customer: CustomerId,
) -> Result<Vec<Conversation>> {
    let mut v: Vec<Conversation> = all(
        c,
        "conversation",
        "SELECT record FROM conversations WHERE tenant = $1 AND customer = $2",
        &[&t.as_str(), &customer.0],
    )
    .await?;
    v.sort_by(|a, b| b.last_activity_at.cmp(&a.last_activity_at).then(b.id.cmp(&a.id)));
    Ok(v)
}

pub(super) async fn message(c: &Client, t: &TenantId, id: MessageId) -> Result<Option<Message>> {
    one(c, "message", "SELECT record FROM messages WHERE tenant = $1 AND id = $2", &[&t.as_str(), &id.0]).await
}

pub(super) async fn message_by_external_id(
    c: &Client,
    t: &TenantId,
    channel: &ChannelKind,
    x: &str,
) -> Result<Option<Message>> {
    one(
        c,
        "message",
        "SELECT record FROM messages WHERE tenant = $1 AND channel = $2 AND external_id = $3",
        &[&t.as_str(), &channel_key(channel).as_bytes(), &x.as_bytes()],
    )
    .await
}

pub(super) async fn messages(c: &impl GenericClient, t: &TenantId, query: &MessageQuery) -> Result<Vec<Message>> {
    if query.limit == 0 {
        return Ok(Vec::new());
    }
    let n = to_sql_int(query.limit as u64);
    let before = query.before.map(|b| b.0);
    match query.scope {
        MessageScope::Conversation(conv) => {
            all(
                c,
                "message",
                "SELECT record FROM messages WHERE tenant = $1 AND conversation = $2 \
                 AND ($3::uuid IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
                &[&t.as_str(), &conv.0, &before, &n],
            )
            .await
        }
        MessageScope::Customer(customer) => {
            all(
                c,
                "message",
                "SELECT m.record FROM conversations c JOIN messages m ON m.tenant = c.tenant AND m.conversation = c.id \
                 WHERE c.tenant = $1 AND c.customer = $2 AND ($3::uuid IS NULL OR m.id < $3) \
                 ORDER BY m.id DESC LIMIT $4",
                &[&t.as_str(), &customer.0, &before, &n],
            )
            .await
        }
    }
}

/// The customer with everything stored about them, read through `c` (a transaction, so that
/// every read sees the same moment).
pub(super) async fn customer_snapshot(
    c: &impl GenericClient,
    t: &TenantId,
    id: CustomerId,
) -> Result<Option<CustomerSnapshot>> {
    let Some(customer) = self::customer(c, t, id).await? else { return Ok(None) };
    let query = MessageQuery { scope: MessageScope::Customer(id), before: None, limit: usize::MAX };
    let mut messages = self::messages(c, t, &query).await?;
    messages.reverse();
    let identities = identities_of(c, t, id).await?;
    let conversations = conversations_of(c, t, id).await?;
    Ok(Some(CustomerSnapshot { customer, identities, conversations, messages }))
}

pub(super) async fn events_after(c: &Client, t: &TenantId, after: u64, n: usize) -> Result<Vec<StoredEvent>> {
    let Ok(after) = i64::try_from(after) else { return Ok(Vec::new()) };
    if n == 0 {
        return Ok(Vec::new());
    }
    all(
        c,
        "event",
        "SELECT record FROM events WHERE tenant = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        &[&t.as_str(), &after, &to_sql_int(n as u64)],
    )
    .await
}
