//! A durable [`Store`] on SQLite (feature `sqlite`): bundled SQLite through `rusqlite`, WAL,
//! group commit, versioned schema migrations embedded in the crate.
//!
//! ```
//! use std::sync::Arc;
//! use touchpoint::Engine;
//! use touchpoint::model::*;
//! use touchpoint::store::{SqliteStore, Store};
//! # fn main() -> touchpoint::Result<()> {
//! # futures::executor::block_on(async {
//! let path = std::env::temp_dir().join(format!("touchpoint-doc-{}.db", uuid::Uuid::new_v4().simple()));
//! let tenant = TenantId::new("acme")?;
//! let engine = Engine::builder(Arc::new(SqliteStore::open(&path)?)).build();
//! let sms = InboundMessage::new(
//!     ChannelKind::Sms,
//!     EndpointId::new("sms-support")?,
//!     Address::phone("+14155550123"),
//!     "SM1",
//!     Content::text("Where is my parcel?"),
//! );
//! let outcome = engine.ingest(&tenant, sms).await?;
//! drop(engine); // closes the database
//!
//! let store = SqliteStore::open(&path)?;
//! let stored = store.message_by_external_id(&tenant, &ChannelKind::Sms, "SM1").await?;
//! assert_eq!(stored.map(|m| m.id), Some(outcome.message));
//! # drop(store);
//! # for suffix in ["", "-wal", "-shm"] {
//! #     let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
//! # }
//! # Ok(())
//! # })
//! # }
//! ```
//!
//! # How it works
//!
//! * **Threads, not a runtime.** One writer thread owns the write connection; reader threads
//!   own read connections (WAL lets them read while the writer writes). Every `Store` call queues
//!   a job and awaits the answer on a `futures::channel::oneshot`, so the caller's executor never
//!   blocks on disk, whichever executor it is.
//! * **Group commit.** The writer takes every change set queued while it was busy (up to
//!   [`SqliteOptions::max_batch`]) and applies them in one transaction with one `COMMIT` (one
//!   fsync). Each change set stays all-or-nothing: it is checked completely before it writes
//!   anything, so one that conflicts changes nothing and the others commit; should one fail
//!   half-way through its writes (an I/O error), the batch is rolled back and run again with a
//!   `SAVEPOINT` around each change set. Answers go out only after `COMMIT` returned, so an `Ok`
//!   is as durable as [`SqliteOptions::synchronous`] makes it (`FULL` by default: it survives a
//!   power cut). Throughput grows with the number of commits in flight, not with fsyncs. The
//!   writer only checks and writes: records are encoded to JSON on the caller's thread, and WAL
//!   checkpoints run on a checkpointer thread of their own, every 32 MiB of new WAL (the `-wal`
//!   file grows to about that size between checkpoints; the writer checkpoints itself at 128 MiB
//!   should the checkpointer fall behind).
//! * **WAL writes gathered per commit.** SQLite writes each WAL frame as two system calls (its
//!   header, then its page). With `synchronous = FULL` or `EXTRA` the writer's connection goes
//!   through a thin VFS over the platform's default one that holds a commit's WAL writes in
//!   memory and hands them to the OS in 64 KiB writes when SQLite syncs the WAL, before the
//!   commit is published to other connections (the writer spends about a tenth less CPU per
//!   message in the `sqlite` bench). With `NORMAL` or `OFF` there is no sync to wait for, and
//!   the writer uses the default VFS as it is (so does a database opened with `psow=0`).
//! * **Same semantics as [`InMemoryStore`](crate::store::InMemoryStore).** The checks of the
//!   store contract — the same code for every backend — run in the writer's transaction against
//!   the state before the change set (versions, unique keys, link keys, active owners) and are
//!   backed by unique indexes.
//! * **Schema.** Records are stored as JSON next to the columns they are searched by; every key
//!   starts with the tenant. The schema is a list of migrations in the crate, tracked with
//!   `PRAGMA user_version` ([`SqliteStore::SCHEMA_VERSION`]); opening an older file migrates it in
//!   one transaction, opening a file of a newer build (or another application) is refused.
//! * **Erasure.** `secure_delete` is on by default, so deleted records are overwritten in the
//!   database file instead of lingering in free pages, and a commit that erases a customer is
//!   followed by a `TRUNCATE` checkpoint so the old page images leave the `-wal` file too (best
//!   effort while a long read holds them; closing the store checkpoints and empties the WAL).
//!
//! * **Memory statistics.** SQLite counts its allocations under one process-wide mutex, which
//!   the writer and reader threads contend for. A host that does not need SQLite's memory
//!   statistics turns them off once at the start of `main` with [`disable_memory_statistics`]
//!   (8–10 % more durable ingest in the `sqlite` bench).
//!
//! One `SqliteStore` should own a database file: open it once per process and share it
//! (cloning is cheap). Several processes writing the same file stay correct (every batch is a
//! `BEGIN IMMEDIATE` transaction), but wait for each other.

mod read;
mod schema;
mod statements;
mod wal_buffer;
mod worker;
mod write;

use super::{ChangeSet, Committed, CustomerSnapshot, LinkKey, MessageQuery, Store, ThreadKey};
use crate::events::StoredEvent;
use crate::model::{
    AddressKind, ChannelKind, Conversation, ConversationId, Customer, CustomerId, Identity, IdentityId, Message,
    MessageId, NormalizedAddress, TenantId, Verification,
};
use crate::{Error, Result};
use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use worker::Workers;

/// WAL pages written since the last checkpoint at which the checkpointer copies the WAL back
/// (32 MiB of 4 KiB pages). A checkpoint copies each page once however often it was written
/// since the last one, so copying seldom costs less per message than SQLite's default of 1000
/// pages: the pages of busy customers and conversations are written again and again (in the
/// `sqlite` bench, 32 MiB instead of 16 cut what the checkpointer copies from about 7.7 to 6 KiB a
/// message, and its CPU time from 11 to 7 µs).
const CHECKPOINT_PAGES: std::ffi::c_int = 8192;

/// How hard SQLite works to make a commit survive a crash (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// No fsync: a commit survives the process crashing, not the machine losing power.
    Off,
    /// In WAL mode, fsync at checkpoints only: a power cut can lose the latest commits, never
    /// corrupt the database.
    Normal,
    /// fsync the WAL at every commit (every batch): an acknowledged commit survives a power cut.
    #[default]
    Full,
    /// Like `Full`, and also fsync the directory after the WAL is reset.
    Extra,
}

impl Synchronous {
    fn pragma_value(self) -> &'static str {
        match self {
            Synchronous::Off => "OFF",
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
            Synchronous::Extra => "EXTRA",
        }
    }
}

/// Settings of a [`SqliteStore`]. `Default` is durable: `synchronous = FULL`, group commit of
/// up to 1024 change sets per transaction, two reader threads.
///
/// ```
/// use touchpoint::store::sqlite::{SqliteOptions, Synchronous};
/// let options = SqliteOptions::default().with_max_batch(1).with_synchronous(Synchronous::Normal);
/// assert_eq!(options.max_batch, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// Durability of each commit (default [`Synchronous::Full`]).
    pub synchronous: Synchronous,
    /// Most change sets applied in one transaction (default 1024; 1 = one transaction, one
    /// fsync, per change set). Allowed: 1 to 65 536.
    pub max_batch: usize,
    /// Reader threads, each with its own connection (default 2; 0 = the writer thread serves
    /// reads too). Allowed: 0 to 64. In-memory databases always use 0.
    pub readers: usize,
    /// How long a connection waits for a lock held by another process before failing with a
    /// temporary backend error (default 5 s). Allowed: up to `i32::MAX` milliseconds (about
    /// 24.8 days), what SQLite takes.
    pub busy_timeout: Duration,
    /// Overwrite deleted content in the database file (`PRAGMA secure_delete`, default on), so
    /// an erased customer's data does not linger in free pages.
    pub secure_delete: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            max_batch: 1024,
            readers: 2,
            busy_timeout: Duration::from_secs(5),
            secure_delete: true,
        }
    }
}

impl SqliteOptions {
    /// Sets [`synchronous`](Self::synchronous).
    pub fn with_synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Sets [`max_batch`](Self::max_batch).
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch;
        self
    }

    /// Sets [`readers`](Self::readers).
    pub fn with_readers(mut self, readers: usize) -> Self {
        self.readers = readers;
        self
    }

    /// Sets [`busy_timeout`](Self::busy_timeout).
    pub fn with_busy_timeout(mut self, busy_timeout: Duration) -> Self {
        self.busy_timeout = busy_timeout;
        self
    }

    /// Sets [`secure_delete`](Self::secure_delete).
    pub fn with_secure_delete(mut self, secure_delete: bool) -> Self {
        self.secure_delete = secure_delete;
        self
    }

    fn validate(&self) -> Result<()> {
        if !(1..=65_536).contains(&self.max_batch) {
            return Err(Error::invalid("max_batch", format!("is {}, allowed are 1 to 65536", self.max_batch)));
        }
        if self.readers > 64 {
            return Err(Error::invalid("readers", format!("is {}, allowed are 0 to 64", self.readers)));
        }
        if self.busy_timeout.as_millis() > i32::MAX as u128 {
            return Err(Error::invalid(
                "busy_timeout",
                format!("is {:?}, allowed is up to {} ms (about 24.8 days)", self.busy_timeout, i32::MAX),
            ));
        }
        Ok(())
    }
}

/// A durable [`Store`] on a SQLite database file (or an in-memory database, for tests).
///
/// Cloning gives another handle to the same database. Dropping the last handle waits for the
/// worker threads to finish the jobs already queued and closes the connections (checkpointing
/// the WAL into the database file). See the [module docs](self) for how it works.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: Option<PathBuf>,
    options: SqliteOptions,
    workers: Workers,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.inner.path).field("options", &self.inner.options).finish()
    }
}

impl SqliteStore {
    /// The schema version this build writes (the number of embedded migrations).
    pub const SCHEMA_VERSION: u32 = schema::VERSION;

    /// Opens (creating if needed) the database file at `path` with default options: WAL,
    /// `synchronous = FULL`, group commit. Migrates an older schema.
    ///
    /// Fails with [`Error::InvalidInput`] for an empty path, `:memory:` (use
    /// [`open_in_memory`](Self::open_in_memory)) or a SQLite URI (`file:…`), and with [`Error::Backend`] when the file
    /// cannot be opened, is not a touchpoint database, or was written by a newer build.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens the database file at `path` with `options`.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<SqliteStore> {
        options.validate()?;
        let path = path.as_ref();
        if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
            return Err(Error::invalid(
                "path",
                "names no file; use SqliteStore::open_in_memory for an in-memory database",
            ));
        }
        // The bundled SQLite reads a name starting with `file:` as a URI (`file::memory:`,
        // `?mode=memory`, `?vfs=`, `?nolock=1`), not as the file it names: acknowledged commits
        // could be gone on close.
        if path.as_os_str().as_encoded_bytes().starts_with(b"file:") {
            return Err(Error::invalid(
                "path",
                "is a SQLite URI (`file:`); pass the path of the file (`./file:…` for a file so named)",
            ));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let open = |flags| Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e));
        // With a sync at every commit the writer's WAL writes can be gathered into a few large
        // writes per commit (see `wal_buffer`); without one, other connections could be told of
        // frames not yet written.
        let gather = matches!(options.synchronous, Synchronous::Full | Synchronous::Extra) && wal_buffer::register();
        let mut writer = if gather {
            Connection::open_with_flags_and_vfs(path, flags, wal_buffer::NAME).map_err(|e| open_error(path, e))?
        } else {
            open(flags)?
        };
        configure(&writer, &options)?;
        // Refuse a file of another application before writing anything to it (the journal
        // mode below is written into the file).
        schema::check_owner(&writer)?;
        // WAL lets readers read while the writer writes; the mode is stored in the file.
        let mode: String =
            writer.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(backend_error)?;
        writer.pragma_update(None, "synchronous", options.synchronous.pragma_value()).map_err(backend_error)?;
        schema::migrate(&writer)?;
        // Without WAL a reader would block the writer: serve reads from the writer instead.
        let readers = if mode.eq_ignore_ascii_case("wal") { options.readers } else { 0 };
        let mut reader_connections = Vec::with_capacity(readers);
        for _ in 0..readers {
            let conn = open(flags)?;
            configure(&conn, &options)?;
            conn.pragma_update(None, "query_only", true).map_err(backend_error)?;
            reader_connections.push(conn);
        }
        // Checkpoints run on their own thread: the writer's WAL hook only asks for them.
        let checkpoints = if mode.eq_ignore_ascii_case("wal") {
            let (ask, requests) = std::sync::mpsc::channel::<()>();
            writer
                .wal_hook(Some({
                    // WAL size when the checkpointer was last asked (the WAL starts over at 0
                    // once a checkpoint has copied all of it back).
                    let mut asked_at: std::ffi::c_int = 0;
                    move |wal: &mut rusqlite::hooks::Wal, pages: std::ffi::c_int| {
                        let new = if pages < asked_at { pages } else { pages - asked_at };
                        if new >= CHECKPOINT_PAGES {
                            asked_at = pages;
                            let _ = ask.send(());
                        }
                        // Should the checkpointer fall far behind, the writer copies the WAL itself.
                        if pages >= 4 * CHECKPOINT_PAGES {
                            let _ = wal.checkpoint(); // PASSIVE
                        }
                        // Never an error: it would make the committed transaction report a failure.
                        Ok(())
                    }
                }))
                .map_err(backend_error)?;
            let checkpointer = open(flags)?;
            configure(&checkpointer, &options)?;
            checkpointer
                .pragma_update(None, "synchronous", options.synchronous.pragma_value())
                .map_err(backend_error)?;
            Some((checkpointer, requests))
        } else {
            None
        };
        let workers = Workers::start(writer, reader_connections, checkpoints, options.max_batch)?;
        Ok(SqliteStore { inner: Arc::new(Inner { path: Some(path.to_owned()), options, workers }) })
    }

    /// A private in-memory database with default options (gone when the store is dropped).
    /// Reads and writes share one connection on the writer thread.
    pub fn open_in_memory() -> Result<SqliteStore> {
        Self::open_in_memory_with(SqliteOptions::default())
    }

    /// A private in-memory database with `options` (`readers` is ignored: always 0).
    pub fn open_in_memory_with(options: SqliteOptions) -> Result<SqliteStore> {
        options.validate()?;
        let options = options.with_readers(0);
        let conn = Connection::open_in_memory().map_err(backend_error)?;
        configure(&conn, &options)?;
        schema::migrate(&conn)?;
        let workers = Workers::start(conn, Vec::new(), None, options.max_batch)?;
        Ok(SqliteStore { inner: Arc::new(Inner { path: None, options, workers }) })
    }

    /// The database file (`None` for an in-memory database).
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &SqliteOptions {
        &self.inner.options
    }

    /// The schema version of the open database (equal to [`Self::SCHEMA_VERSION`] once opened).
    pub async fn schema_version(&self) -> Result<u32> {
        self.inner
            .workers
            .read(|sql| {
                let v: i64 =
                    sql.conn().pragma_query_value(None, "user_version", |r| r.get(0)).map_err(backend_error)?;
                u32::try_from(v).map_err(|_| corrupt("schema version", format!("{v} is out of range")))
            })
            .await
    }

    /// Runs SQLite's `PRAGMA integrity_check` over the whole database. `Ok(())` when it reports
    /// `ok`; otherwise a non-temporary [`Error::Backend`] listing the problems found.
    pub async fn integrity_check(&self) -> Result<()> {
        self.inner
            .workers
            .read(|sql| {
                let mut stmt = sql.conn().prepare("PRAGMA integrity_check").map_err(backend_error)?;
                let problems: Vec<String> = stmt
                    .query_map([], |r| r.get::<_, String>(0))
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(backend_error)?;
                if problems.iter().map(String::as_str).eq(["ok"]) {
                    Ok(())
                } else {
                    Err(Error::Backend {
                        message: format!("SQLite integrity check failed: {}", problems.join("; ")),
                        temporary: false,
                        source: None,
                    })
                }
            })
            .await
    }
}

/// Turns SQLite's memory statistics off for the whole process (`SQLITE_CONFIG_MEMSTATUS`, which
/// SQLite's own list of recommended compile-time options turns off too). They take one
/// process-wide mutex on every SQLite allocation, which a store's writer and reader threads
/// contend for: in the `sqlite` bench, durable ingest was 8–10 % faster without them (see the
/// README's performance section). Without them, `sqlite3_memory_used`, `sqlite3_status64` and
/// SQLite's soft and hard heap limits stop working.
///
/// Answers whether SQLite took the setting: it takes it only before it is initialised (before
/// the first connection of the process opens); later, the call changes nothing, answers `false`
/// and SQLite reports the misuse to a log callback, if the host set one.
///
/// # Safety
///
/// SQLite's configuration is not thread-safe: no other thread may use SQLite (open a
/// connection, a `SqliteStore`, or anything else built on SQLite) while this runs. Call it at
/// the start of `main`, before any thread that could.
///
/// ```
/// // At the start of main, before anything opens SQLite:
/// let off = unsafe { touchpoint::store::sqlite::disable_memory_statistics() };
/// # let _ = off;
/// ```
#[allow(unsafe_code)]
pub unsafe fn disable_memory_statistics() -> bool {
    // SAFETY: `SQLITE_CONFIG_MEMSTATUS` takes one `int`, passed as one; the caller guarantees no
    // other thread uses SQLite meanwhile.
    let rc = unsafe { rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int) };
    rc == rusqlite::ffi::SQLITE_OK
}

/// Settings every connection gets.
fn configure(conn: &Connection, options: &SqliteOptions) -> Result<()> {
    conn.set_prepared_statement_cache_capacity(64);
    conn.busy_timeout(options.busy_timeout).map_err(backend_error)?;
    // 16 MiB of page cache per connection. No memory map: the file grows with every checkpoint,
    // and each growth makes every connection unmap and map it again (and fault its pages in).
    conn.pragma_update(None, "cache_size", -16_384).map_err(backend_error)?;
    // The per-change-set savepoints journal the pages they touch: keep that journal in memory.
    conn.pragma_update(None, "temp_store", "MEMORY").map_err(backend_error)?;
    conn.pragma_update(None, "mmap_size", 0).map_err(backend_error)?;
    conn.pragma_update(None, "secure_delete", options.secure_delete).map_err(backend_error)?;
    Ok(())
}

fn open_error(path: &Path, e: rusqlite::Error) -> Error {
    Error::Backend {
        message: format!("cannot open SQLite database {}: {e}", path.display()),
        temporary: false,
        source: Some(Box::new(e)),
    }
}

/// A SQLite failure. Busy and locked databases are worth retrying.
pub(super) fn backend_error(e: rusqlite::Error) -> Error {
    let temporary =
        matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked));
    Error::Backend { message: format!("SQLite: {e}"), temporary, source: Some(Box::new(e)) }
}

fn corrupt(what: &str, reason: String) -> Error {
    Error::Backend { message: format!("stored {what} cannot be read: {reason}"), temporary: false, source: None }
}

/// The `channel` column: the channel's name; a custom channel is prefixed with `x-` so that it
/// never collides with a built-in one.
pub(super) fn channel_key(channel: &ChannelKind) -> Cow<'_, str> {
    match channel {
        ChannelKind::Custom(name) => Cow::Owned(format!("x-{name}")),
        other => Cow::Borrowed(other.as_str()),
    }
}

/// The `address_kind` column.
pub(super) fn kind_key(kind: AddressKind) -> &'static str {
    match kind {
        AddressKind::Phone => "phone",
        AddressKind::Email => "email",
        AddressKind::Platform => "platform",
    }
}

/// The `verification` column: ordered like [`Verification`].
pub(super) fn verification_rank(v: Verification) -> i64 {
    match v {
        Verification::Unverified => 0,
        Verification::CarrierAsserted => 1,
        Verification::Verified => 2,
    }
}

pub(super) fn verification_from_rank(rank: i64) -> Result<Verification> {
    match rank {
        0 => Ok(Verification::Unverified),
        1 => Ok(Verification::CarrierAsserted),
        2 => Ok(Verification::Verified),
        other => Err(corrupt("verification", format!("unknown level {other}"))),
    }
}

pub(super) fn decode_id(bytes: [u8; 16]) -> uuid::Uuid {
    uuid::Uuid::from_bytes(bytes)
}

/// `value` as JSON. Written into a buffer the thread keeps, then copied into a string of just
/// the right size: one allocation per record, where growing the string as it is written would
/// take several (records run to a kilobyte).
pub(super) fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<String> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let failed = |e: serde_json::Error| Error::invalid(what, format!("cannot be stored as JSON: {e}"));
    SCRATCH.with(|scratch| {
        let Ok(mut buf) = scratch.try_borrow_mut() else { return serde_json::to_string(value).map_err(failed) };
        buf.clear();
        let written = serde_json::to_writer(&mut *buf, value).map_err(failed);
        let json = written.and_then(|()| {
            std::str::from_utf8(&buf).map(str::to_owned).map_err(|e| Error::invalid(what, format!("is not UTF-8: {e}")))
        });
        // Keep a few records' worth, not the largest ever written.
        if buf.capacity() > 64 << 10 {
            *buf = Vec::new();
        }
        json
    })
}

pub(super) fn decode<T: DeserializeOwned>(what: &'static str, json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| corrupt(what, e.to_string()))
}

#[async_trait]
impl Store for SqliteStore {
    async fn customer(&self, tenant: &TenantId, id: CustomerId) -> Result<Option<Customer>> {
        let t = tenant.clone();
        self.inner.workers.read(move |c| read::customer(c, t.as_str(), id)).await
    }

    async fn customer_by_external_id(&self, tenant: &TenantId, external_id: &str) -> Result<Option<Customer>> {
        let (t, x) = (tenant.clone(), external_id.to_owned());
        self.inner.workers.read(move |c| read::customer_by_external_id(c, t.as_str(), &x)).await
    }

    async fn identity(&self, tenant: &TenantId, id: IdentityId) -> Result<Option<Identity>> {
        let t = tenant.clone();
        self.inner.workers.read(move |c| read::identity(c, t.as_str(), id)).await
    }

    async fn identity_by_address(
        &self,
        tenant: &TenantId,
        channel: &ChannelKind,
        address: &NormalizedAddress,
    ) -> Result<Option<Identity>> {
        let (t, ch, a) = (tenant.clone(), channel.clone(), address.clone());
        self.inner.workers.read(move |c| read::identity_by_address(c, t.as_str(), &ch, &a)).await
    }

    async fn identities_of(&self, tenant: &TenantId, customer: CustomerId) -> Result<Vec<Identity>> {
        let t = tenant.clone();
        self.inner.workers.read(move |c| read::identities_of(c, t.as_str(), customer)).await
    }

    async fn customers_by_address(&self, tenant: &TenantId, key: &LinkKey) -> Result<Vec<(CustomerId, Verification)>> {
        let (t, k) = (tenant.clone(), key.clone());
        self.inner.workers.read(move |c| read::customers_by_address(c, t.as_str(), &k)).await
    }

    async fn conversation(&self, tenant: &TenantId, id: ConversationId) -> Result<Option<Conversation>> {
        let t = tenant.clone();
        self.inner.workers.read(move |c| read::conversation(c, t.as_str(), id)).await
    }

    async fn conversation_by_thread_key(&self, tenant: &TenantId, key: &ThreadKey) -> Result<Option<ConversationId>> {
        let (t, k) = (tenant.clone(), key.clone());
        self.inner.workers.read(move |c| read::conversation_by_thread_key(c, t.as_str(), &k)).await
    }

    async fn conversations_of(&self, tenant: &TenantId, customer: CustomerId) -> Result<Vec<Conversation>> {
        let t = tenant.clone();
        self.inner.workers.read(move |c| read::conversations_of(c, t.as_str(), customer)).await
    }

    async fn message(&self, tenant: &TenantId, id: MessageId) -> Result<Option<Message>> {
        let t = tenant.clone();
        self.inner.workers.read(move |c| read::message(c, t.as_str(), id)).await
    }

    async fn message_by_external_id(
        &self,
        tenant: &TenantId,
        channel: &ChannelKind,
        external_id: &str,
    ) -> Result<Option<Message>> {
        let (t, ch, x) = (tenant.clone(), channel.clone(), external_id.to_owned());
        self.inner.workers.read(move |c| read::message_by_external_id(c, t.as_str(), &ch, &x)).await
    }

    async fn messages(&self, tenant: &TenantId, query: &MessageQuery) -> Result<Vec<Message>> {
        let (t, q) = (tenant.clone(), *query);
        self.inner.workers.read(move |c| read::messages(c, t.as_str(), &q)).await
    }

    /// One read transaction: WAL gives it one snapshot of the database throughout.
    async fn customer_snapshot(&self, tenant: &TenantId, customer: CustomerId) -> Result<Option<CustomerSnapshot>> {
        let t = tenant.clone();
        self.inner
            .workers
            .read(move |c| {
                // Dropped at the end: rolled back, which ends a read-only transaction.
                let _snapshot = c.conn().unchecked_transaction().map_err(backend_error)?;
                read::customer_snapshot(c, t.as_str(), customer)
            })
            .await
    }

    async fn commit(&self, tenant: &TenantId, changes: ChangeSet) -> Result<Committed> {
        let answer = self.inner.workers.commit(tenant.clone(), changes)?;
        let answer = answer.await.map_err(|_| Error::Backend {
            message: "the SQLite store stopped before answering".into(),
            temporary: false,
            source: None,
        })?;
        answer.result
    }

    async fn events_after(&self, tenant: &TenantId, after: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        let t = tenant.clone();
        self.inner.workers.read(move |c| read::events_after(c, &t, after, limit)).await
    }
}
