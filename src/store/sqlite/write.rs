//! `Store::commit` on SQLite: the checks of the store contract, then the writes, on the writer
//! connection inside the caller's transaction (a savepoint of the batch).
//!
//! The checks are the ones every backend runs ([`rules::check`](crate::store::rules)), answered
//! from SQL rows; everything is judged against the state before the change set, then applied
//! (conversation deletes, identity deletes, customers, conversations, identities, messages,
//! thread keys, events: no write depends on another of the same change set but the deletes,
//! which come first). The unique indexes of the schema back the checks up; a violation that
//! slipped past them is reported as a conflict as well.
//!
//! A change set without deletes first gets an optimistic pass: the checks take the versions it
//! expects of the records it writes for granted, and the writes verify them instead (an update
//! names the expected version and keys in its `WHERE`, an insert fails on the primary key), which
//! saves a `SELECT` for each. The writes go customers, conversations, then identities, so that a
//! stale version is usually found before anything is written: then the change set simply runs
//! again with every check answered from SQL, which gives the precise answer exactly as if there
//! had been no optimistic pass. A mismatch found after a write is a
//! failure while writing, which the writer handles by running the batch again with savepoints.

use super::statements::Sql;
use super::{backend_error, channel_key, decode_id, encode, kind_key, verification_rank};
use crate::events::{Event, StoredEvent};
use crate::idgen::IdGen;
use crate::model::{
    ChannelKind, ConversationId, CustomerId, CustomerState, EventId, IdentityId, MessageId, NormalizedAddress,
    TenantId, Verification,
};
use crate::store::rules::{Lookup, Standing, check};
use crate::store::{ChangeSet, Committed, ThreadKeyClaim, Write};
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::collections::HashMap;

fn conflict(what: String) -> Error {
    Error::Conflict(what)
}

/// The JSON of every record a change set writes, made on the caller's thread so that the
/// writer thread (the one serial part of the store) only checks and writes.
pub(super) struct Encoded {
    customers: Vec<String>,
    identities: Vec<String>,
    conversations: Vec<String>,
    messages: Vec<String>,
    thread_keys: Vec<String>,
    /// The change set's time, as JSON.
    at: String,
    /// Each event, as JSON; the writer wraps it into an [`EventOut`] once it has its id.
    events: Vec<String>,
}

/// An event as stored: the sequence number and the tenant are columns. The writer builds this
/// JSON from parts ([`Encoded::event`]); the type pins the format down for the tests.
#[cfg(test)]
#[derive(Serialize)]
struct EventOut<'a> {
    id: EventId,
    at: DateTime<Utc>,
    event: &'a Event,
}

/// An event as read back.
#[derive(Deserialize)]
pub(super) struct EventIn {
    id: EventId,
    at: DateTime<Utc>,
    event: Event,
}

impl EventIn {
    pub(super) fn into_stored(self, tenant: TenantId, seq: u64) -> StoredEvent {
        StoredEvent { seq, id: self.id, tenant, at: self.at, event: self.event }
    }
}

impl Encoded {
    /// Encodes the records of `changes`.
    pub(super) fn new(changes: &ChangeSet) -> Result<Encoded> {
        fn all<T: Serialize>(what: &'static str, records: &[Write<T>]) -> Result<Vec<String>> {
            records.iter().map(|w| encode(what, &w.record)).collect()
        }
        Ok(Encoded {
            customers: all("customer", &changes.customers)?,
            identities: all("identity", &changes.identities)?,
            conversations: all("conversation", &changes.conversations)?,
            messages: all("message", &changes.messages)?,
            thread_keys: changes.thread_keys.iter().map(|c| encode("thread key", &c.key)).collect::<Result<_>>()?,
            at: encode("event time", &changes.at)?,
            events: changes.events.iter().map(|e| encode("event", e)).collect::<Result<_>>()?,
        })
    }

    /// The stored JSON of event `i`: what serde makes of an [`EventOut`] with this id, built
    /// from the parts encoded on the caller's thread.
    fn event(&self, i: usize, id: EventId) -> Option<String> {
        let event = self.events.get(i)?;
        let mut uuid = uuid::Uuid::encode_buffer();
        let id = id.0.hyphenated().encode_lower(&mut uuid);
        let mut out = String::with_capacity(event.len() + self.at.len() + id.len() + 24);
        for part in ["{\"id\":\"", id, "\",\"at\":", &self.at, ",\"event\":", event, "}"] {
            out.push_str(part);
        }
        Some(out)
    }
}

/// Why a change set was not applied.
pub(super) enum Failure {
    /// It failed its checks and wrote nothing.
    Refused(Error),
    /// It failed while writing: what it wrote must be rolled back.
    HalfWritten(Error),
}

/// The next event sequence number of each tenant written in the open transaction, so that
/// only a tenant's first change set of a batch asks the events table. Valid for one
/// transaction (the batch holds the write lock throughout): start a new one with each batch.
#[derive(Default)]
pub(super) struct Sequences(HashMap<TenantId, u64>);

/// Checks one change set, then applies it (`json` is its [`Encoded`] form). `seqs` learns the
/// sequence numbers it used only when it succeeds. `careful` skips the optimistic pass.
pub(super) fn commit(
    sql: &Sql<'_>,
    ids: &IdGen,
    seqs: &mut Sequences,
    tenant: &TenantId,
    changes: &ChangeSet,
    json: &Encoded,
    careful: bool,
) -> std::result::Result<Committed, Failure> {
    let optimistic = !careful && changes.conversation_deletes.is_empty() && changes.identity_deletes.is_empty();
    let first = optimistic.then(|| attempt(sql, ids, seqs, tenant, changes, json, Some(changes)));
    let result = match first {
        // Refused, or a mismatch before anything was written: ask SQL for the answer (unless
        // the transaction is gone, below).
        Some(Err(Failure::Refused(_))) if !sql.conn().is_autocommit() => {
            attempt(sql, ids, seqs, tenant, changes, json, None)
        }
        Some(done) => done,
        None => attempt(sql, ids, seqs, tenant, changes, json, None),
    };
    match result {
        // SQLite rolled the whole transaction back itself (an I/O error, a full disk, a
        // trigger's `RAISE(ROLLBACK)`): whatever the batch wrote is gone, and anything run now
        // would commit statement by statement. The batch has to start again.
        Err(Failure::Refused(e) | Failure::HalfWritten(e)) if sql.conn().is_autocommit() => {
            Err(Failure::HalfWritten(e))
        }
        other => other,
    }
}

/// One pass of [`commit`]: optimistic when `optimistic` is the change set.
fn attempt<'s>(
    sql: &'s Sql<'_>,
    ids: &'s IdGen,
    seqs: &mut Sequences,
    tenant: &'s TenantId,
    changes: &'s ChangeSet,
    json: &Encoded,
    optimistic: Option<&'s ChangeSet>,
) -> std::result::Result<Committed, Failure> {
    let mut db = Db { sql, ids, tenant: tenant.as_str(), absent_key: None, optimistic, wrote: Cell::new(false) };
    let checked = (|| {
        if let Some(key) = &changes.dedupe {
            if let Some(existing) = db.message_by_key(&key.channel, &key.external_id)? {
                return Ok(Some(Committed::Duplicate { message: existing }));
            }
            db.absent_key = Some((&key.channel, &key.external_id));
        }
        check(&db, tenant, changes)?;
        Ok(None)
    })();
    match checked {
        Ok(Some(duplicate)) => Ok(duplicate),
        Ok(None) => {
            let next_seq = match seqs.0.get(tenant) {
                Some(next) => *next,
                None => db.next_event_seq().map_err(Failure::HalfWritten)?,
            };
            let committed = db.apply(changes, json, next_seq).map_err(|e| {
                // A write that failed on its own leaves nothing behind (SQLite undoes a statement
                // that fails a check): a conflict before any write changed a row wrote nothing.
                if db.optimistic.is_some() && !db.wrote.get() && matches!(e, Error::Conflict(_)) {
                    Failure::Refused(e)
                } else {
                    Failure::HalfWritten(e)
                }
            })?;
            seqs.0.insert(tenant.clone(), next_seq + changes.events.len() as u64);
            Ok(committed)
        }
        Err(e) => Err(Failure::Refused(e)),
    }
}

/// Versions are `u64` in the model and `INTEGER` (i64) in SQLite: stored bit for bit.
pub(super) fn version_to_sql(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

pub(super) fn version_from_sql(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

struct Db<'s, 'c> {
    sql: &'s Sql<'c>,
    /// Event ids: UUID v7 from the change set's time, increasing in commit order.
    ids: &'s IdGen,
    tenant: &'s str,
    /// A message key already found free in this change set's checks (its dedupe key), so the
    /// unique-key check of its message need not ask again.
    absent_key: Option<(&'s ChannelKind, &'s str)>,
    /// In the optimistic pass, the change set: the version it expects of a record it writes is
    /// taken for granted by the checks, and checked by the write.
    optimistic: Option<&'s ChangeSet>,
    /// Whether a write of this pass changed a row.
    wrote: Cell<bool>,
}

/// An optimistic write found the stored state other than the change set expects.
fn unexpected() -> Error {
    conflict("the stored state is not what the change set expects".into())
}

impl Lookup for Db<'_, '_> {
    fn customer(&self, id: CustomerId) -> Result<Option<(u64, Standing)>> {
        if let Some(w) = self.optimistic.and_then(|c| c.customers.iter().find(|w| w.record.id == id)) {
            return Ok(w.expected.map(|v| (v, Standing::of(&w.record.state))));
        }
        let row = self
            .sql
            .with("SELECT version, state FROM customers WHERE tenant = ?1 AND id = ?2", |s| {
                s.query_row(params![self.tenant, id.0.as_bytes()], |r| {
                    Ok((version_from_sql(r.get(0)?), r.get::<_, String>(1)?))
                })
                .optional()
            })
            .map_err(backend_error)?;
        Ok(row.map(|(version, state)| {
            let standing = match state.as_str() {
                "active" => Standing::Active,
                "merged" => Standing::Merged,
                _ => Standing::Erased,
            };
            (version, standing)
        }))
    }

    fn customer_by_external_id(&self, external_id: &str) -> Result<Option<CustomerId>> {
        self.sql
            .with("SELECT id FROM customers WHERE tenant = ?1 AND external_id = ?2", |s| {
                s.query_row(params![self.tenant, external_id], |r| r.get::<_, [u8; 16]>(0)).optional()
            })
            .map_err(backend_error)
            .map(|o| o.map(|b| CustomerId(decode_id(b))))
    }

    fn identity(&self, id: IdentityId, at: Option<(&ChannelKind, &NormalizedAddress)>) -> Result<Option<(u64, bool)>> {
        if let Some(w) = self.optimistic.and_then(|c| c.identities.iter().find(|w| w.record.id == id)) {
            return Ok(w.expected.map(|v| (v, true)));
        }
        let row = self
            .sql
            .with("SELECT version, channel, address_kind, address FROM identities WHERE tenant = ?1 AND id = ?2", |s| {
                s.query_row(params![self.tenant, id.0.as_bytes()], |r| {
                    Ok((
                        version_from_sql(r.get(0)?),
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })
                .optional()
            })
            .map_err(backend_error)?;
        Ok(row.map(|(version, channel, kind, address)| {
            let same =
                at.is_none_or(|(c, a)| channel == channel_key(c) && kind == kind_key(a.kind) && address == a.value);
            (version, same)
        }))
    }

    fn identity_by_address(&self, channel: &ChannelKind, address: &NormalizedAddress) -> Result<Option<IdentityId>> {
        self.sql
            .with(
                "SELECT id FROM identities WHERE tenant = ?1 AND channel = ?2 AND address_kind = ?3 AND address = ?4",
                |s| {
                    s.query_row(
                        params![self.tenant, channel_key(channel), kind_key(address.kind), address.value],
                        |r| r.get::<_, [u8; 16]>(0),
                    )
                    .optional()
                },
            )
            .map_err(backend_error)
            .map(|o| o.map(|b| IdentityId(decode_id(b))))
    }

    /// Identities holding `address` on any channel: (identity, customer, verification), in
    /// the order they were inserted.
    ///
    /// In the optimistic pass, when every identity the change set writes on `address` is an
    /// update that keeps its customer and verification (the update checks both), the answer
    /// cannot change the verdict: the stored linking holders already belonged to one customer,
    /// the one these identities stay with. The written identities are all the checks need.
    fn link_holders(&self, address: &NormalizedAddress) -> Result<Vec<(IdentityId, CustomerId, Verification)>> {
        if self.optimistic.is_some_and(|c| {
            let mut on = c.identities.iter().filter(|w| w.record.address == *address).peekable();
            on.peek().is_some() && on.all(|w| w.expected.is_some())
        }) {
            return Ok(Vec::new());
        }
        let found = self
            .sql
            .with(
                "SELECT seq, id, customer, verification FROM identities \
                 WHERE tenant = ?1 AND address_kind = ?2 AND address = ?3",
                |s| {
                    s.query_map(params![self.tenant, kind_key(address.kind), address.value], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, [u8; 16]>(1)?,
                            r.get::<_, [u8; 16]>(2)?,
                            r.get::<_, i64>(3)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                },
            )
            .map_err(backend_error)?;
        let mut found = found;
        found.sort_unstable_by_key(|(seq, ..)| *seq);
        found
            .into_iter()
            .map(|(_, id, customer, rank)| {
                Ok((IdentityId(decode_id(id)), CustomerId(decode_id(customer)), super::verification_from_rank(rank)?))
            })
            .collect()
    }

    fn conversation(&self, id: ConversationId) -> Result<Option<(u64, CustomerId)>> {
        if let Some(w) = self.optimistic.and_then(|c| c.conversations.iter().find(|w| w.record.id == id)) {
            return Ok(w.expected.map(|v| (v, w.record.customer)));
        }
        self.sql
            .with("SELECT version, customer FROM conversations WHERE tenant = ?1 AND id = ?2", |s| {
                s.query_row(params![self.tenant, id.0.as_bytes()], |r| {
                    Ok((version_from_sql(r.get(0)?), CustomerId(decode_id(r.get(1)?))))
                })
                .optional()
            })
            .map_err(backend_error)
    }

    fn message_version(&self, id: MessageId) -> Result<Option<u64>> {
        // The primary key fails the insert if the id is taken.
        if self.optimistic.is_some_and(|c| c.messages.iter().any(|w| w.expected.is_none() && w.record.id == id)) {
            return Ok(None);
        }
        self.sql
            .with("SELECT version FROM messages WHERE tenant = ?1 AND id = ?2", |s| {
                s.query_row(params![self.tenant, id.0.as_bytes()], |r| r.get::<_, i64>(0).map(version_from_sql))
                    .optional()
            })
            .map_err(backend_error)
    }

    fn message_by_key(&self, channel: &ChannelKind, external_id: &str) -> Result<Option<MessageId>> {
        if self.absent_key.is_some_and(|(c, x)| c == channel && x == external_id) {
            return Ok(None);
        }
        self.sql
            .with("SELECT id FROM messages WHERE tenant = ?1 AND channel = ?2 AND external_id = ?3", |s| {
                s.query_row(params![self.tenant, channel_key(channel), external_id], |r| r.get::<_, [u8; 16]>(0))
                    .optional()
            })
            .map_err(backend_error)
            .map(|o| o.map(|b| MessageId(decode_id(b))))
    }
}

impl Db<'_, '_> {
    fn conversation_exists(&self, id: ConversationId) -> Result<bool> {
        self.sql
            .with("SELECT 1 FROM conversations WHERE tenant = ?1 AND id = ?2", |s| {
                s.exists(params![self.tenant, id.0.as_bytes()])
            })
            .map_err(backend_error)
    }

    /// The sequence number the tenant's next event gets.
    fn next_event_seq(&self) -> Result<u64> {
        let last: i64 = self
            .sql
            .with("SELECT COALESCE(MAX(seq), 0) FROM events WHERE tenant = ?1", |s| {
                s.query_row(params![self.tenant], |r| r.get(0))
            })
            .map_err(backend_error)?;
        Ok(version_from_sql(last) + 1)
    }

    fn exec(&self, sql: &'static str, params: impl rusqlite::Params) -> Result<usize> {
        let rows = self.sql.with(sql, |s| s.execute(params)).map_err(write_error)?;
        if rows > 0 {
            self.wrote.set(true);
        }
        Ok(rows)
    }

    /// Writes one record: `update` when the change set expects a stored version, else (or when
    /// the update found no row outside the optimistic pass) `upsert`. In the optimistic pass
    /// either must change exactly one row: anything else is a mismatch.
    fn update_or_upsert(
        &self,
        expected: bool,
        update: impl FnOnce() -> Result<usize>,
        upsert: impl FnOnce() -> Result<usize>,
    ) -> Result<()> {
        let careful = self.optimistic.is_none();
        if expected {
            match update()? {
                1 => return Ok(()),
                _ if !careful => return Err(unexpected()),
                _ => {}
            }
        }
        if upsert()? == 1 || careful { Ok(()) } else { Err(unexpected()) }
    }

    /// Writes the change set; its events are numbered from `first`. In the optimistic pass every
    /// write also checks what the checks took for granted, and fails when it does not hold.
    fn apply(&self, changes: &ChangeSet, json: &Encoded, first: u64) -> Result<Committed> {
        let t = self.tenant;
        let careful = self.optimistic.is_none();
        // A write that must change exactly one row in the optimistic pass.
        let verified = |rows: usize| if careful || rows == 1 { Ok(()) } else { Err(unexpected()) };
        for id in &changes.conversation_deletes {
            let id = id.0.as_bytes();
            self.exec("DELETE FROM conversations WHERE tenant = ?1 AND id = ?2", params![t, id])?;
            self.exec("DELETE FROM thread_keys WHERE tenant = ?1 AND conversation = ?2", params![t, id])?;
            self.exec("DELETE FROM messages WHERE tenant = ?1 AND conversation = ?2", params![t, id])?;
        }
        for (id, _) in &changes.identity_deletes {
            self.exec("DELETE FROM identities WHERE tenant = ?1 AND id = ?2", params![t, id.0.as_bytes()])?;
        }
        // External ids move between customers in one commit: release the old ones first so the
        // unique index never sees a transient duplicate (only possible with two customers).
        let moves = changes.customers.len() > 1;
        for w in changes.customers.iter().filter(|w| moves && w.expected.is_some()) {
            self.exec(
                "UPDATE customers SET external_id = NULL WHERE tenant = ?1 AND id = ?2",
                params![t, w.record.id.0.as_bytes()],
            )?;
        }
        for (Write { record, expected }, json) in changes.customers.iter().zip(&json.customers) {
            let (id, state, version) =
                (record.id.0.as_bytes(), state_key(&record.state), version_to_sql(record.version));
            let rows = match expected {
                // The checks found the stored version to be `expected` (or took it for granted).
                Some(expected) => self.exec(
                    "UPDATE customers SET external_id = ?3, state = ?4, version = ?5, record = ?6 \
                     WHERE tenant = ?1 AND id = ?2 AND version = ?7",
                    params![t, id, record.external_id, state, version, json, version_to_sql(*expected)],
                )?,
                // An insert. In the optimistic pass (`?7` false) a stored record with this id
                // makes it change nothing: a mismatch.
                None => self.exec(
                    "INSERT INTO customers (tenant, id, external_id, state, version, record) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT (tenant, id) DO UPDATE SET external_id = excluded.external_id, \
                         state = excluded.state, version = excluded.version, record = excluded.record \
                     WHERE ?7",
                    params![t, id, record.external_id, state, version, json, careful],
                )?,
            };
            verified(rows)?;
        }
        // Conversations before identities: in the optimistic pass their versions are the likeliest
        // to have moved on, and a mismatch found before any other write leaves nothing to roll
        // back. (Customers come first: one is written when a record is attached to it, and the
        // conversation it gets then is new.)
        for (Write { record, expected }, json) in changes.conversations.iter().zip(&json.conversations) {
            let (id, customer, version) =
                (record.id.0.as_bytes(), record.customer.0.as_bytes(), version_to_sql(record.version));
            self.update_or_upsert(
                expected.is_some(),
                || {
                    self.exec(
                        "UPDATE conversations SET version = ?4, record = ?5 \
                         WHERE tenant = ?1 AND id = ?2 AND customer = ?3 AND version = ?6",
                        params![t, id, customer, version, json, version_to_sql(expected.unwrap_or_default())],
                    )
                },
                || {
                    self.exec(
                        "INSERT INTO conversations (tenant, id, customer, version, record) VALUES (?1, ?2, ?3, ?4, ?5) \
                         ON CONFLICT (tenant, id) DO UPDATE SET customer = excluded.customer, \
                             version = excluded.version, record = excluded.record \
                         WHERE ?6",
                        params![t, id, customer, version, json, careful],
                    )
                },
            )?;
        }
        // Each write first tries the common case, an update that leaves every index alone. When
        // that finds no row (an insert, a record deleted earlier in this change set) or the owner
        // changed, an upsert writes the record; the keys it is found by stay those of the first
        // insert. Judged against the state before the change set, an update of a missing record
        // never gets here.
        for (Write { record, expected }, json) in changes.identities.iter().zip(&json.identities) {
            let id = record.id.0.as_bytes();
            let customer = record.customer.0.as_bytes();
            let (rank, version) = (verification_rank(record.verification), version_to_sql(record.version));
            // The update also checks what the checks found (or took for granted): the version, the
            // address and, in the optimistic pass, an unchanged verification (see `link_holders`).
            self.update_or_upsert(
                expected.is_some(),
                || {
                    self.exec(
                        "UPDATE identities SET verification = ?4, version = ?5, record = ?6 \
                         WHERE tenant = ?1 AND id = ?2 AND customer = ?3 AND version = ?7 AND channel = ?8 \
                             AND address_kind = ?9 AND address = ?10 AND (?11 OR verification = ?4)",
                        params![
                            t,
                            id,
                            customer,
                            rank,
                            version,
                            json,
                            version_to_sql(expected.unwrap_or_default()),
                            channel_key(&record.channel),
                            kind_key(record.address.kind),
                            record.address.value,
                            careful
                        ],
                    )
                },
                // A move to another customer puts the identity last in that customer's list.
                || {
                    self.exec(
                        "INSERT INTO identities (tenant, id, customer, customer_ord, channel, address_kind, address, \
                             verification, version, record) \
                         VALUES (?1, ?2, ?3, \
                             (SELECT COALESCE(MAX(customer_ord), 0) + 1 FROM identities \
                              WHERE tenant = ?1 AND customer = ?3), \
                             ?4, ?5, ?6, ?7, ?8, ?9) \
                         ON CONFLICT (tenant, id) DO UPDATE SET \
                             customer_ord = CASE WHEN customer = excluded.customer THEN customer_ord \
                                 ELSE excluded.customer_ord END, \
                             customer = excluded.customer, verification = excluded.verification, \
                             version = excluded.version, record = excluded.record \
                         WHERE ?10",
                        params![
                            t,
                            id,
                            customer,
                            channel_key(&record.channel),
                            kind_key(record.address.kind),
                            record.address.value,
                            rank,
                            version,
                            json,
                            careful
                        ],
                    )
                },
            )?;
        }
        for (Write { record, expected }, json) in changes.messages.iter().zip(&json.messages) {
            let (id, version) = (record.id.0.as_bytes(), version_to_sql(record.version));
            let updated = expected.is_some()
                && self.exec(
                    "UPDATE messages SET version = ?3, record = ?4, conversation = ?5, channel = ?6, external_id = ?7 \
                     WHERE tenant = ?1 AND id = ?2",
                    params![
                        t,
                        id,
                        version,
                        json,
                        record.conversation.0.as_bytes(),
                        channel_key(&record.channel),
                        record.external_id
                    ],
                )? == 1;
            if !updated {
                self.exec(
                    "INSERT INTO messages (tenant, id, conversation, channel, external_id, version, record) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
",
                    params![
                        t,
                        id,
                        record.conversation.0.as_bytes(),
                        channel_key(&record.channel),
                        record.external_id,
                        version,
                        json
                    ],
                )?;
            }
        }
        for (ThreadKeyClaim { conversation, replaces, .. }, key) in changes.thread_keys.iter().zip(&json.thread_keys) {
            // A conversation this change set writes exists now; any other is asked for.
            let written = changes.conversations.iter().any(|w| w.record.id == *conversation);
            if !written && !self.conversation_exists(*conversation)? {
                continue;
            }
            let conversation = conversation.0.as_bytes();
            match replaces {
                // First claim wins: a key already held stays with its holder.
                None => self.exec(
                    "INSERT INTO thread_keys (tenant, key, conversation) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (tenant, key) DO NOTHING",
                    params![t, key, conversation],
                )?,
                // Taken over only from the conversation it replaces.
                Some(old) => self.exec(
                    "INSERT INTO thread_keys (tenant, key, conversation) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (tenant, key) DO UPDATE SET conversation = excluded.conversation \
                     WHERE thread_keys.conversation = ?4 AND ?4 != ?3",
                    params![t, key, conversation, old.0.as_bytes()],
                )?,
            };
        }
        if changes.events.is_empty() {
            return Ok(Committed::Applied { first_event_seq: 0 });
        }
        for (i, seq) in (0..changes.events.len()).zip(first..) {
            let json = json
                .event(i, EventId(self.ids.next(changes.at)))
                .ok_or_else(|| backend_error(rusqlite::Error::InvalidQuery))?;
            self.exec(
                "INSERT INTO events (tenant, seq, record) VALUES (?1, ?2, ?3)",
                params![t, version_to_sql(seq), json],
            )?;
        }
        Ok(Committed::Applied { first_event_seq: first })
    }
}

/// The `state` column of a customer.
fn state_key(state: &CustomerState) -> &'static str {
    match state {
        CustomerState::Active => "active",
        CustomerState::Merged { .. } => "merged",
        CustomerState::Erased { .. } => "erased",
    }
}

/// A failed write: a unique-index violation means a concurrent writer took the key first.
fn write_error(e: rusqlite::Error) -> Error {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) {
        conflict(format!("a unique key is already taken ({e})"))
    } else {
        backend_error(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChannelKind, ConversationId, MessageId};

    /// The event JSON the writer assembles from parts is exactly what serde makes of the
    /// stored form, and reads back.
    #[test]
    fn assembled_event_json_is_the_serde_form() {
        let at = Utc::now();
        let event = Event::MessageReceived {
            conversation: ConversationId(uuid::Uuid::now_v7()),
            message: MessageId(uuid::Uuid::now_v7()),
            channel: ChannelKind::Custom("a \"quoted\" channel".into()),
        };
        let changes = ChangeSet { events: vec![event.clone()], at, ..ChangeSet::default() };
        let id = EventId(uuid::Uuid::now_v7());
        let assembled = Encoded::new(&changes).expect("encodable").event(0, id).expect("event 0");
        let serde = serde_json::to_string(&EventOut { id, at, event: &event }).expect("serde");
        assert_eq!(assembled, serde);
        let back: EventIn = serde_json::from_str(&assembled).expect("reads back");
        assert_eq!((back.id, back.at, back.event), (id, at, event));
    }
}
