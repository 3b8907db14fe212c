//! A durable [`Store`] on PostgreSQL (feature `postgres`): `tokio-postgres` with a
//! `deadpool-postgres` pool on a small tokio runtime the store owns, versioned migrations
//! embedded in the crate, and the cross-process routing ledger [`PostgresLedger`].
//!
//! ```
//! use std::sync::Arc;
//! use touchpoint::Engine;
//! use touchpoint::model::*;
//! use touchpoint::store::Store;
//! use touchpoint::store::postgres::{PostgresConfig, PostgresStore};
//! # fn main() -> touchpoint::Result<()> {
//! # // Runs where a server is configured (CI sets TOUCHPOINT_PG_URL), in a schema of its own.
//! # let Ok(url) = std::env::var("TOUCHPOINT_PG_URL") else { return Ok(()) };
//! # let schema = format!("tp_doc_{}", uuid::Uuid::new_v4().simple());
//! # futures::executor::block_on(async {
//! // url: "postgres://touchpoint:secret@127.0.0.1/touchpoint"
//! let store = PostgresStore::connect_with(PostgresConfig::new(url).with_schema(schema)).await?;
//! let engine = Engine::builder(Arc::new(store.clone())).build();
//! let tenant = TenantId::new("acme")?;
//! let sms = InboundMessage::new(
//!     ChannelKind::Sms,
//!     EndpointId::new("sms-support")?,
//!     Address::phone("+14155550123"),
//!     "SM1",
//!     Content::text("Where is my parcel?"),
//! );
//! let outcome = engine.ingest(&tenant, sms).await?;
//! let stored = store.message_by_external_id(&tenant, &ChannelKind::Sms, "SM1").await?;
//! assert_eq!(stored.map(|m| m.id), Some(outcome.message));
//! # drop(engine);
//! # store.drop_schema().await?;
//! # Ok(())
//! # })
//! # }
//! ```
//!
//! # How it works
//!
//! * **No runtime leaks to the caller.** The store owns a tokio runtime with a few worker
//!   threads ([`PostgresConfig::runtime_threads`]). Every `Store` call hands its work to that
//!   runtime and awaits the answer on a `futures::channel::oneshot`, so the store works from
//!   `futures::executor::block_on`, from a tokio runtime of the host's, or from any other
//!   executor. A call whose future is dropped still runs to its end while the store lives;
//!   dropping the store ends its runtime, and a transaction cut off there is rolled back by the
//!   server, so a commit is never left half-way.
//! * **One transaction per commit, serialised per tenant.** A commit first locks its tenant's
//!   row in `tenants` (which also holds the tenant's event counter), then checks the change set
//!   and writes it. Commits of one tenant therefore apply one after another, in every process
//!   that shares the database, while tenants never wait for each other. The checks are those of
//!   [`InMemoryStore`](crate::store::InMemoryStore), run against the records the change set
//!   touches (loaded inside the transaction); unique indexes on external ids, identity addresses
//!   and message provider ids back them up, and a violation is reported as
//!   [`Error::Conflict`]. Thread-key claims are one conditional
//!   `INSERT … ON CONFLICT … DO UPDATE … WHERE` statement each.
//! * **Events** are numbered from the tenant's counter row in the same transaction, so they are
//!   consecutive per tenant in commit order across processes; their ids increase in commit
//!   order too (UUID v7 from the change set's time, never below the tenant's last event id).
//! * **Schema.** Records are JSON (`text`) next to the columns they are searched by; every key
//!   starts with the tenant, and caller-chosen strings (provider ids, addresses, thread keys)
//!   are `bytea` so any string round-trips. The migrations are listed in the crate and recorded
//!   in `touchpoint_schema_version`; connecting applies the missing ones in one transaction
//!   under a transaction-level advisory lock, so several processes starting together do not
//!   race. A schema written by a newer build is refused ([`PostgresStore::SCHEMA_VERSION`]).
//! * **Schemas.** [`PostgresConfig::schema`] puts the tables in a schema of their own (created
//!   if missing, set as the connections' `search_path`): one database can hold several
//!   independent stores, and each test run can use a fresh one.
//!
//! # Choosing between SQLite and PostgreSQL
//!
//! `SqliteStore` (feature `sqlite`) is one file and no server: the fastest choice for
//! one process (group commit, no network round trips). Use `PostgresStore` when several
//! processes or machines serve the same tenants: they share one database, commits of a tenant
//! are serialised by the database, and routing claims across processes go through
//! [`PostgresLedger`].

mod ledger;
mod read;
mod schema;
mod write;

pub use ledger::PostgresLedger;

use super::{ChangeSet, Committed, CustomerSnapshot, LinkKey, MessageQuery, Store, ThreadKey};
use crate::events::StoredEvent;
use crate::idgen::IdGen;
use crate::model::{
    AddressKind, ChannelKind, Conversation, ConversationId, Customer, CustomerId, Identity, IdentityId, Message,
    MessageId, NormalizedAddress, TenantId, Verification,
};
use crate::{Error, Result};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures::channel::oneshot;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::error::SqlState;

/// Settings of a [`PostgresStore`]. Only the URL is required.
///
/// ```
/// use touchpoint::store::postgres::PostgresConfig;
/// let config = PostgresConfig::new("postgres://app:secret@db.internal/helpdesk")
///     .with_schema("touchpoint")
///     .with_pool_size(8);
/// assert_eq!(config.pool_size, 8);
/// assert!(!format!("{config:?}").contains("secret")); // the password is never printed
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresConfig {
    /// The connection URL (`postgres://user:password@host:port/database?…`) or a libpq
    /// key-value string (`host=… user=…`).
    pub url: String,
    /// The schema that holds the tables (`None`: the server's default `search_path`, usually
    /// `public`). Lowercase ASCII letters, digits and `_`, starting with a letter or `_`, at most
    /// 63 characters, and not `pg_…` or `information_schema` (PostgreSQL's own). Created if
    /// missing; quoted wherever it is used, so a keyword (`user`, `order`) is a name like any
    /// other.
    pub schema: Option<String>,
    /// Most connections open at once (default 4). Allowed: 1 to 256.
    pub pool_size: usize,
    /// Worker threads of the store's runtime (default 2). Allowed: 1 to 16.
    pub runtime_threads: usize,
    /// How long opening one connection may take (default 10 s).
    pub connect_timeout: Duration,
    /// How long a call waits for a connection of the pool when every one is busy (default 30 s);
    /// then it fails with a temporary [`Error::Backend`] instead of waiting on.
    pub wait_timeout: Duration,
    /// How long a statement waits for a row lock another session holds (default 10 s; the
    /// server's `lock_timeout`), then fails with a temporary [`Error::Backend`]: a process that
    /// stalls inside a commit holds its tenant's row, and every other process's commits of that
    /// tenant would wait for as long. Allowed: 1 ms to `i32::MAX` ms. The sessions also end a
    /// transaction left idle for a minute (`idle_in_transaction_session_timeout`), so a stalled
    /// process lets go of its locks.
    pub lock_timeout: Duration,
}

/// A session's transaction left idle this long (a process stalled inside a commit) is ended by
/// the server, which frees the rows it locked.
const IDLE_IN_TRANSACTION_MS: u32 = 60_000;

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redacted(&self.url))
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("runtime_threads", &self.runtime_threads)
            .field("connect_timeout", &self.connect_timeout)
            .field("wait_timeout", &self.wait_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .finish()
    }
}

/// The connection string without its password, wherever it was written (after `user:`, as a
/// `password` key, in the query string): what is shown is rebuilt from the parsed settings that
/// carry no secret. A string that does not parse is not shown at all.
fn redacted(url: &str) -> String {
    let Ok(pg) = url.parse::<tokio_postgres::Config>() else {
        return "the connection string (not shown: it may hold a password)".to_owned();
    };
    let hosts: Vec<String> = pg
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = pg.get_ports().iter().map(u16::to_string).collect();
    let mut shown = format!("host={}", hosts.join(","));
    if !ports.is_empty() {
        shown.push_str(&format!(" port={}", ports.join(",")));
    }
    if let Some(user) = pg.get_user() {
        shown.push_str(&format!(" user={user}"));
    }
    if let Some(db) = pg.get_dbname() {
        shown.push_str(&format!(" dbname={db}"));
    }
    if pg.get_password().is_some() {
        shown.push_str(" password=***");
    }
    shown
}

impl PostgresConfig {
    /// Default settings for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            schema: None,
            pool_size: 4,
            runtime_threads: 2,
            connect_timeout: Duration::from_secs(10),
            wait_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(10),
        }
    }

    /// Sets [`schema`](Self::schema).
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Sets [`pool_size`](Self::pool_size).
    pub fn with_pool_size(mut self, pool_size: usize) -> Self {
        self.pool_size = pool_size;
        self
    }

    /// Sets [`runtime_threads`](Self::runtime_threads).
    pub fn with_runtime_threads(mut self, runtime_threads: usize) -> Self {
        self.runtime_threads = runtime_threads;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn with_connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.connect_timeout = connect_timeout;
        self
    }

    /// Sets [`wait_timeout`](Self::wait_timeout).
    pub fn with_wait_timeout(mut self, wait_timeout: Duration) -> Self {
        self.wait_timeout = wait_timeout;
        self
    }

    /// Sets [`lock_timeout`](Self::lock_timeout).
    pub fn with_lock_timeout(mut self, lock_timeout: Duration) -> Self {
        self.lock_timeout = lock_timeout;
        self
    }

    fn validate(&self) -> Result<tokio_postgres::Config> {
        if !(1..=256).contains(&self.pool_size) {
            return Err(Error::invalid("pool_size", format!("is {}, allowed are 1 to 256", self.pool_size)));
        }
        if self.connect_timeout.is_zero() {
            return Err(Error::invalid("connect_timeout", "must be above zero"));
        }
        if self.wait_timeout.is_zero() {
            return Err(Error::invalid("wait_timeout", "must be above zero"));
        }
        if self.lock_timeout.as_millis() == 0 || self.lock_timeout.as_millis() > i32::MAX as u128 {
            return Err(Error::invalid(
                "lock_timeout",
                format!("is {:?}, allowed are 1 ms to {} ms", self.lock_timeout, i32::MAX),
            ));
        }
        if !(1..=16).contains(&self.runtime_threads) {
            return Err(Error::invalid("runtime_threads", format!("is {}, allowed are 1 to 16", self.runtime_threads)));
        }
        if let Some(schema) = &self.schema {
            let first_ok = schema.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
            let rest_ok = schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !first_ok || !rest_ok || schema.len() > 63 {
                return Err(Error::invalid(
                    "schema",
                    format!(
                        "{schema:?} is not a plain schema name (lowercase ASCII letters, digits and `_`, \
                         starting with a letter or `_`, at most 63 characters)"
                    ),
                ));
            }
            // PostgreSQL keeps these for itself: `pg_…` cannot be created, and the catalog's
            // own schemas are not a store's to hold (or to drop).
            if schema.starts_with("pg_") || schema == "information_schema" {
                return Err(Error::invalid("schema", format!("{schema:?} is a name PostgreSQL reserves for itself")));
            }
        }
        let mut pg: tokio_postgres::Config = self.url.parse().map_err(|e| {
            Error::invalid("url", format!("{} is not a PostgreSQL connection string: {e}", redacted(&self.url)))
        })?;
        // The store connects without TLS: a connection string that demands it could never
        // connect, and retrying would not help.
        if !matches!(
            pg.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable | tokio_postgres::config::SslMode::Prefer
        ) {
            return Err(Error::invalid(
                "url",
                format!(
                    "{} requires TLS (sslmode=require), which this store does not speak; connect through a \
                     TLS-terminating proxy or with sslmode=prefer on a trusted network",
                    redacted(&self.url)
                ),
            ));
        }
        // The store's session settings first (the URL's own options may change them), the
        // schema last.
        let mut options = format!(
            "-c lock_timeout={} -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}",
            self.lock_timeout.as_millis()
        );
        if let Some(o) = pg.get_options().filter(|o| !o.is_empty()) {
            options = format!("{options} {o}");
        }
        if let Some(schema) = &self.schema {
            options = format!("{options} -c search_path=\"{schema}\"");
        }
        pg.options(options);
        if pg.get_application_name().is_none() {
            pg.application_name("touchpoint");
        }
        pg.connect_timeout(self.connect_timeout);
        Ok(pg)
    }
}

/// A durable [`Store`] on PostgreSQL. Cloning gives another handle to the same pool.
///
/// See the [module docs](self) for how it works. Dropping the last handle closes the
/// connections and stops the store's runtime (without blocking the caller).
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: PostgresConfig,
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    pool: Pool,
    ids: Arc<IdGen>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Never blocks, and is allowed inside another runtime (a host's tokio runtime).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("config", &self.inner.config).finish()
    }
}

impl PostgresStore {
    /// The schema version this build writes (the number of embedded migrations).
    pub const SCHEMA_VERSION: u32 = schema::VERSION;

    /// Connects with default settings ([`PostgresConfig::new`]) and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<PostgresStore> {
        Self::connect_with(PostgresConfig::new(url)).await
    }

    /// Connects with `config`: starts the store's runtime, opens one connection, creates the
    /// schema if it is missing and applies the missing migrations.
    ///
    /// Fails with [`Error::InvalidInput`] for a malformed URL or setting, and with a
    /// [`Error::Backend`] when the server cannot be reached (temporary), refuses the login, or
    /// holds a schema of a newer build (not temporary).
    pub async fn connect_with(config: PostgresConfig) -> Result<PostgresStore> {
        let pg = config.validate()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.runtime_threads)
            .thread_name("tp-postgres")
            .enable_all()
            .build()
            .map_err(|e| Error::Backend {
                message: format!("cannot start the PostgreSQL store's runtime: {e}"),
                temporary: true,
                source: Some(Box::new(e)),
            })?;
        let manager =
            Manager::from_config(pg, tokio_postgres::NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(config.connect_timeout))
            .wait_timeout(Some(config.wait_timeout))
            .build()
            .map_err(|e| Error::Backend {
                message: format!("cannot build the PostgreSQL connection pool: {e}"),
                temporary: false,
                source: Some(Box::new(e)),
            })?;
        let handle = runtime.handle().clone();
        let store = PostgresStore {
            inner: Arc::new(Inner { config, runtime: Some(runtime), handle, pool, ids: Arc::new(IdGen::new()) }),
        };
        let schema_name = store.inner.config.schema.clone();
        store.run(move |pool| async move { schema::migrate(&pool, schema_name.as_deref()).await }).await?;
        Ok(store)
    }

    /// The settings the store was connected with.
    pub fn config(&self) -> &PostgresConfig {
        &self.inner.config
    }

    /// The schema version of the connected database (equal to [`Self::SCHEMA_VERSION`] once
    /// connected).
    pub async fn schema_version(&self) -> Result<u32> {
        self.run(|pool| async move { schema::current_version(&**client(&pool).await?).await }).await
    }

    /// A routing ledger on this store's database and connection pool (see [`PostgresLedger`]).
    pub fn ledger(&self) -> PostgresLedger {
        PostgresLedger::new(self.clone())
    }

    /// Drops the store's schema with every table and record in it, and closes this handle.
    /// Meant for tests that create a schema per run. Refused ([`Error::Refused`]) when the
    /// store uses the server's default schema (no [`PostgresConfig::schema`]) or names
    /// `public`, the schema every database starts with and other applications share: dropping
    /// it would take their tables too.
    pub async fn drop_schema(self) -> Result<()> {
        let schema = own_schema(self.inner.config.schema.as_deref())?.to_owned();
        self.run(move |pool| async move {
            let c = client(&pool).await?;
            c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await.map_err(pg_error)
        })
        .await
    }

    /// Runs `work` on the store's runtime with the pool, and awaits its answer from any executor.
    async fn run<T, F, Fut>(&self, work: F) -> Result<T>
    where
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = work(self.inner.pool.clone());
        drop(self.inner.handle.spawn(async move {
            let _ = reply.send(job.await);
        }));
        answer.await.map_err(|_| Error::Backend {
            message: "the PostgreSQL store stopped before answering".into(),
            temporary: false,
            source: None,
        })?
    }
}

/// A connection from the pool. A server that cannot be reached or a pool that timed out is
/// worth retrying; a refused login (wrong password, unknown user or database) is not, and its
/// error says what the server said.
async fn client(pool: &Pool) -> Result<deadpool_postgres::Object> {
    pool.get().await.map_err(|e| match e {
        deadpool_postgres::PoolError::Backend(e) => match pg_error(e) {
            Error::Backend { message, temporary, source } => {
                Error::Backend { message: format!("cannot get a PostgreSQL connection: {message}"), temporary, source }
            }
            other => other,
        },
        e => {
            let temporary = matches!(e, deadpool_postgres::PoolError::Timeout(_));
            let message = format!("cannot get a PostgreSQL connection: {e}");
            Error::Backend { message, temporary, source: Some(Box::new(e)) }
        }
    })
}

/// A PostgreSQL failure. A unique-index violation means a concurrent writer took the key
/// first, and a deadlock or serialization failure that another transaction got in the way:
/// both are conflicts the engine retries. A lost connection is worth retrying too.
/// The schema [`PostgresStore::drop_schema`] may drop: the store's own, never the server's
/// default nor `public`.
fn own_schema(schema: Option<&str>) -> Result<&str> {
    match schema {
        None => Err(Error::Refused("the store has no schema of its own to drop".into())),
        Some("public") => Err(Error::Refused(
            "the store's schema is `public`, which other applications share; drop its tables instead".into(),
        )),
        Some(schema) => Ok(schema),
    }
}

pub(super) fn pg_error(e: tokio_postgres::Error) -> Error {
    let text = match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({}): {detail}", db.message(), db.code().code()),
            None => format!("{} ({})", db.message(), db.code().code()),
        },
        None => e.to_string(),
    };
    match e.code() {
        Some(code) if *code == SqlState::UNIQUE_VIOLATION => {
            Error::Conflict(format!("a unique key is already taken ({text})"))
        }
        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED => {
            Error::Conflict(format!("a concurrent transaction got in the way ({text})"))
        }
        code => {
            let temporary = e.is_closed()
                || code.is_none()
                || code.is_some_and(|c| {
                    // Class 08: the connection failed (as the server reports it).
                    c.code().starts_with("08")
                        || [
                            SqlState::TOO_MANY_CONNECTIONS,
                            SqlState::ADMIN_SHUTDOWN,
                            SqlState::CRASH_SHUTDOWN,
                            SqlState::CANNOT_CONNECT_NOW,
                            SqlState::IDLE_SESSION_TIMEOUT,
                            SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
                            SqlState::LOCK_NOT_AVAILABLE,
                            // A statement timeout or a cancel: the transaction rolled back.
                            SqlState::QUERY_CANCELED,
                            // Writes refused by a standby (a failover in progress).
                            SqlState::READ_ONLY_SQL_TRANSACTION,
                            // The commit's fate is unknown: a retry finds what it did (every
                            // write is checked against versions, keys and claims).
                            SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN,
                        ]
                        .contains(c)
                });
            Error::Backend { message: format!("PostgreSQL: {text}"), temporary, source: Some(Box::new(e)) }
        }
    }
}

/// Column `i` of `row`; a type mismatch means the schema is not what this build expects.
fn col<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a tokio_postgres::Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(|e| corrupt("column", e.to_string()))
}

fn corrupt(what: &str, reason: String) -> Error {
    Error::Backend { message: format!("stored {what} cannot be read: {reason}"), temporary: false, source: None }
}

/// The `channel` column: the channel's name; a custom channel is prefixed with `x-` so that it
/// never collides with a built-in one.
fn channel_key(channel: &ChannelKind) -> Cow<'_, str> {
    match channel {
        ChannelKind::Custom(name) => Cow::Owned(format!("x-{name}")),
        other => Cow::Borrowed(other.as_str()),
    }
}

/// The `address_kind` column.
fn kind_key(kind: AddressKind) -> &'static str {
    match kind {
        AddressKind::Phone => "phone",
        AddressKind::Email => "email",
        AddressKind::Platform => "platform",
    }
}

fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::invalid(what, format!("cannot be stored as JSON: {e}")))
}

fn decode<T: DeserializeOwned>(what: &'static str, json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| corrupt(what, e.to_string()))
}

/// Page sizes and versions are `u64`/`usize` in the model and `bigint` in PostgreSQL.
fn to_sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[async_trait]
impl Store for PostgresStore {
    async fn customer(&self, tenant: &TenantId, id: CustomerId) -> Result<Option<Customer>> {
        let t = tenant.clone();
        self.run(move |pool| async move { read::customer(&client(&pool).await?, &t, id).await }).await
    }

    async fn customer_by_external_id(&self, tenant: &TenantId, external_id: &str) -> Result<Option<Customer>> {
        let (t, x) = (tenant.clone(), external_id.to_owned());
        self.run(move |pool| async move { read::customer_by_external_id(&client(&pool).await?, &t, &x).await }).await
    }

    async fn identity(&self, tenant: &TenantId, id: IdentityId) -> Result<Option<Identity>> {
        let t = tenant.clone();
        self.run(move |pool| async move { read::identity(&client(&pool).await?, &t, id).await }).await
    }

    async fn identity_by_address(
        &self,
        tenant: &TenantId,
        channel: &ChannelKind,
        address: &NormalizedAddress,
    ) -> Result<Option<Identity>> {
        let (t, ch, a) = (tenant.clone(), channel.clone(), address.clone());
        self.run(move |pool| async move { read::identity_by_address(&client(&pool).await?, &t, &ch, &a).await }).await
    }

    async fn identities_of(&self, tenant: &TenantId, customer: CustomerId) -> Result<Vec<Identity>> {
        let t = tenant.clone();
        self.run(move |pool| async move { read::identities_of(&client(&pool).await?, &t, customer).await }).await
    }

    async fn customers_by_address(&self, tenant: &TenantId, key: &LinkKey) -> Result<Vec<(CustomerId, Verification)>> {
        let (t, k) = (tenant.clone(), key.clone());
        self.run(move |pool| async move { read::customers_by_address(&client(&pool).await?, &t, &k).await }).await
    }

    async fn conversation(&self, tenant: &TenantId, id: ConversationId) -> Result<Option<Conversation>> {
        let t = tenant.clone();
        self.run(move |pool| async move { read::conversation(&client(&pool).await?, &t, id).await }).await
    }

    async fn conversation_by_thread_key(&self, tenant: &TenantId, key: &ThreadKey) -> Result<Option<ConversationId>> {
        let (t, k) = (tenant.clone(), key.clone());
        self.run(move |pool| async move { read::conversation_by_thread_key(&client(&pool).await?, &t, &k).await }).await
    }

    async fn conversations_of(&self, tenant: &TenantId, customer: CustomerId) -> Result<Vec<Conversation>> {
        let t = tenant.clone();
        self.run(move |pool| async move { read::conversations_of(&client(&pool).await?, &t, customer).await }).await
    }

    async fn message(&self, tenant: &TenantId, id: MessageId) -> Result<Option<Message>> {
        let t = tenant.clone();
        self.run(move |pool| async move { read::message(&client(&pool).await?, &t, id).await }).await
    }

    async fn message_by_external_id(
        &self,
        tenant: &TenantId,
        channel: &ChannelKind,
        external_id: &str,
    ) -> Result<Option<Message>> {
        let (t, ch, x) = (tenant.clone(), channel.clone(), external_id.to_owned());
        self.run(move |pool| async move { read::message_by_external_id(&client(&pool).await?, &t, &ch, &x).await })
            .await
    }

    async fn messages(&self, tenant: &TenantId, query: &MessageQuery) -> Result<Vec<Message>> {
        let (t, q) = (tenant.clone(), *query);
        self.run(move |pool| async move { read::messages(&client(&pool).await?, &t, &q).await }).await
    }

    async fn customer_snapshot(&self, tenant: &TenantId, customer: CustomerId) -> Result<Option<CustomerSnapshot>> {
        let t = tenant.clone();
        self.run(move |pool| async move {
            let mut c = client(&pool).await?;
            // REPEATABLE READ: every read of the transaction sees the database as of its first.
            let tx = c
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(pg_error)?;
            let snapshot = read::customer_snapshot(&tx, &t, customer).await?;
            tx.commit().await.map_err(pg_error)?;
            Ok(snapshot)
        })
        .await
    }

    async fn commit(&self, tenant: &TenantId, changes: ChangeSet) -> Result<Committed> {
        let (t, ids) = (tenant.clone(), self.inner.ids.clone());
        self.run(move |pool| async move { write::commit(&pool, &ids, &t, changes).await }).await
    }

    async fn events_after(&self, tenant: &TenantId, after: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        let t = tenant.clone();
        self.run(move |pool| async move { read::events_after(&client(&pool).await?, &t, after, limit).await }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_schema_of_the_stores_own_may_be_dropped() {
        assert_eq!(own_schema(Some("tp_test_1")).unwrap(), "tp_test_1");
        for shared in [None, Some("public")] {
            let err = own_schema(shared).unwrap_err();
            assert!(matches!(err, Error::Refused(_)), "{shared:?}: {err:?}");
        }
        assert!(own_schema(Some("public")).unwrap_err().to_string().contains("`public`"));
    }
}
