//! The schema, as an ordered list of migrations embedded in the crate.
//!
//! `PRAGMA user_version` holds the number of migrations applied; `PRAGMA application_id` marks
//! the file as a touchpoint database. Opening a database runs the missing migrations in one
//! transaction; a database written by a newer build (a higher version than this build knows) is
//! refused rather than guessed at. Migrations are append-only: never edit a released one, add a
//! new one.

use super::backend_error;
use rusqlite::Connection;

/// `"TPT1"`: marks the file as a touchpoint store.
pub(super) const APPLICATION_ID: i32 = 0x5450_5431;

/// The migrations, oldest first. Index `i` brings the schema from version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the context model. Every key starts with the tenant. Records are JSON (`record`), with
    // the columns the store searches, checks or orders by kept beside them. Ids are 16-byte
    // UUID blobs, so byte order is id order (UUID v7: record time).
    r#"
    CREATE TABLE customers (
        tenant      TEXT    NOT NULL,
        id          BLOB    NOT NULL,
        external_id TEXT,
        state       TEXT    NOT NULL,
        version     INTEGER NOT NULL,
        record      TEXT    NOT NULL,
        PRIMARY KEY (tenant, id)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX customers_by_external_id ON customers (tenant, external_id)
        WHERE external_id IS NOT NULL;

    CREATE TABLE identities (
        seq          INTEGER PRIMARY KEY,
        tenant       TEXT    NOT NULL,
        id           BLOB    NOT NULL,
        customer     BLOB    NOT NULL,
        customer_ord INTEGER NOT NULL,
        channel      TEXT    NOT NULL,
        address_kind TEXT    NOT NULL,
        address      TEXT    NOT NULL,
        verification INTEGER NOT NULL,
        version      INTEGER NOT NULL,
        record       TEXT    NOT NULL
    );
    CREATE UNIQUE INDEX identities_by_id ON identities (tenant, id);
    -- Serves both the (channel, address) unique key and link-key lookups (any channel).
    CREATE UNIQUE INDEX identities_by_address ON identities (tenant, address_kind, address, channel);
    CREATE INDEX identities_by_customer ON identities (tenant, customer, customer_ord);

    CREATE TABLE conversations (
        tenant   TEXT    NOT NULL,
        id       BLOB    NOT NULL,
        customer BLOB    NOT NULL,
        version  INTEGER NOT NULL,
        record   TEXT    NOT NULL,
        PRIMARY KEY (tenant, id)
    );
    CREATE INDEX conversations_by_customer ON conversations (tenant, customer);

    CREATE TABLE thread_keys (
        tenant       TEXT NOT NULL,
        key          TEXT NOT NULL,
        conversation BLOB NOT NULL,
        PRIMARY KEY (tenant, key)
    ) WITHOUT ROWID;
    CREATE INDEX thread_keys_by_conversation ON thread_keys (tenant, conversation);

    CREATE TABLE messages (
        tenant       TEXT    NOT NULL,
        id           BLOB    NOT NULL,
        conversation BLOB    NOT NULL,
        channel      TEXT    NOT NULL,
        external_id  TEXT,
        version      INTEGER NOT NULL,
        record       TEXT    NOT NULL,
        PRIMARY KEY (tenant, id)
    );
    CREATE UNIQUE INDEX messages_by_external_id ON messages (tenant, channel, external_id)
        WHERE external_id IS NOT NULL;
    CREATE INDEX messages_by_conversation ON messages (tenant, conversation, id);

    CREATE TABLE events (
        tenant TEXT    NOT NULL,
        seq    INTEGER NOT NULL,
        record TEXT    NOT NULL,
        PRIMARY KEY (tenant, seq)
    ) WITHOUT ROWID;
    "#,
];

/// The schema version this build writes.
pub(super) const VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the database to [`VERSION`], refusing files that are not touchpoint stores or that a
/// newer build wrote.
pub(super) fn migrate(conn: &Connection) -> crate::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(backend_error)?;
    match migrate_in_transaction(conn) {
        Ok(()) => conn.execute_batch("COMMIT").map_err(backend_error),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Whether the file can be a touchpoint store of this build: a touchpoint store of this or an
/// older schema, or an empty database. Only reads, so a refused file is left as it was: run it
/// before anything writes (such as switching the file to WAL). Answers the migrations applied.
pub(super) fn check_owner(conn: &Connection) -> crate::Result<usize> {
    let application_id: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0)).map_err(backend_error)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(backend_error)?;
    if application_id != 0 && application_id != APPLICATION_ID {
        return Err(refused(format!(
            "the file is not a touchpoint store (application_id {application_id:#x}, expected {APPLICATION_ID:#x})"
        )));
    }
    // Tables, views, indexes or triggers: anything in the schema of an unmarked file is someone
    // else's (a database of views alone holds no table).
    let objects: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0)).map_err(backend_error)?;
    if application_id == 0 && objects > 0 {
        return Err(refused("the file already holds tables or views of another application".into()));
    }
    // touchpoint marks a file as its own in the transaction that applies its first migration:
    // an unmarked file with a schema version was versioned by someone else.
    if application_id == 0 && version != 0 {
        return Err(refused(format!(
            "the file is not a touchpoint store (schema version {version} without touchpoint's application_id)"
        )));
    }
    let applied = usize::try_from(version).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(refused(format!(
            "the database has schema version {version}, newer than the {VERSION} this build of touchpoint knows; \
             open it with a newer build"
        )));
    }
    Ok(applied)
}

fn migrate_in_transaction(conn: &Connection) -> crate::Result<()> {
    let application_id: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0)).map_err(backend_error)?;
    let applied = check_owner(conn)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        conn.execute_batch(sql).map_err(|e| {
            let mut err = backend_error(e);
            if let crate::Error::Backend { message, .. } = &mut err {
                *message = format!("migration {} failed: {message}", i + 1);
            }
            err
        })?;
        conn.pragma_update(None, "user_version", i as i64 + 1).map_err(backend_error)?;
    }
    if application_id == 0 {
        conn.pragma_update(None, "application_id", APPLICATION_ID).map_err(backend_error)?;
    }
    Ok(())
}

fn refused(message: String) -> crate::Error {
    crate::Error::Backend { message, temporary: false, source: None }
}
