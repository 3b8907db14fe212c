//! The schema, as an ordered list of migrations embedded in the crate.
//!
//! `touchpoint_schema_version` holds one row per applied migration. Connecting takes a
//! transaction-level advisory lock (keyed by the schema's name), creates the schema if needed,
//! applies the missing migrations and records them, all in one transaction: of several
//! processes starting together one migrates, the others wait for it and then find nothing to
//! do. A schema that a newer build migrated further than this build knows is refused.
//! Migrations are append-only: never edit a released one, add a new one.

use super::{client, pg_error};
use crate::Error;
use deadpool_postgres::Pool;

/// First key of the advisory lock that serialises migrations (`"TPT1"`); the second key is a
/// hash of the schema's name.
const LOCK_CLASS: i32 = 0x5450_5431;

/// The migrations, oldest first. Index `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the context model, and the routing ledger. Every key starts with the tenant. Records
    // are JSON (`record`) with the columns the store searches, checks or orders by beside them.
    // Strings chosen by callers (provider ids, addresses, thread keys, channel names) are
    // `bytea`, so any string (even one with a NUL) round-trips exactly.
    r#"
    CREATE TABLE tenants (
        tenant        text   PRIMARY KEY,
        last_seq      bigint NOT NULL DEFAULT 0,
        last_event_id uuid
    );

    CREATE TABLE customers (
        tenant      text   NOT NULL,
        id          uuid   NOT NULL,
        external_id bytea,
        version     bigint NOT NULL,
        record      text   NOT NULL,
        PRIMARY KEY (tenant, id)
    );
    CREATE UNIQUE INDEX customers_by_external_id ON customers (tenant, external_id)
        WHERE external_id IS NOT NULL;

    CREATE TABLE identities (
        seq          bigint GENERATED ALWAYS AS IDENTITY,
        tenant       text   NOT NULL,
        id           uuid   NOT NULL,
        customer     uuid   NOT NULL,
        customer_ord bigint NOT NULL,
        channel      bytea  NOT NULL,
        address_kind text   NOT NULL,
        address      bytea  NOT NULL,
        version      bigint NOT NULL,
        record       text   NOT NULL,
        PRIMARY KEY (tenant, id)
    );
    -- Serves both the (channel, address) unique key and link-key lookups (any channel).
    CREATE UNIQUE INDEX identities_by_address ON identities (tenant, address_kind, address, channel);
    CREATE INDEX identities_by_customer ON identities (tenant, customer, customer_ord);

    CREATE TABLE conversations (
        tenant   text   NOT NULL,
        id       uuid   NOT NULL,
        customer uuid   NOT NULL,
        version  bigint NOT NULL,
        record   text   NOT NULL,
        PRIMARY KEY (tenant, id)
    );
    CREATE INDEX conversations_by_customer ON conversations (tenant, customer);

    CREATE TABLE thread_keys (
        tenant       text  NOT NULL,
        key          bytea NOT NULL,
        conversation uuid  NOT NULL,
        PRIMARY KEY (tenant, key)
    );
    CREATE INDEX thread_keys_by_conversation ON thread_keys (tenant, conversation);

    CREATE TABLE messages (
        tenant       text   NOT NULL,
        id           uuid   NOT NULL,
        conversation uuid   NOT NULL,
        channel      bytea  NOT NULL,
        external_id  bytea,
        version      bigint NOT NULL,
        record       text   NOT NULL,
        PRIMARY KEY (tenant, id)
    );
    CREATE UNIQUE INDEX messages_by_external_id ON messages (tenant, channel, external_id)
        WHERE external_id IS NOT NULL;
    CREATE INDEX messages_by_conversation ON messages (tenant, conversation, id);

    CREATE TABLE events (
        tenant text   NOT NULL,
        seq    bigint NOT NULL,
        record text   NOT NULL,
        PRIMARY KEY (tenant, seq)
    );

    -- The routing ledger: one row per assigned work item, and each agent's load per channel.
    CREATE TABLE ledger_assignments (
        tenant  text   NOT NULL,
        item    uuid   NOT NULL,
        agent   text   NOT NULL,
        channel bytea  NOT NULL,
        cost    bigint NOT NULL,
        record  text   NOT NULL,
        PRIMARY KEY (tenant, item)
    );
    CREATE TABLE ledger_loads (
        tenant  text   NOT NULL,
        agent   text   NOT NULL,
        channel bytea  NOT NULL,
        load    bigint NOT NULL CHECK (load >= 0),
        PRIMARY KEY (tenant, agent, channel)
    );
    "#,
];

/// The schema version this build writes.
pub(super) const VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the schema to [`VERSION`] (creating it first if `schema` names one).
pub(super) async fn migrate(pool: &Pool, schema: Option<&str>) -> crate::Result<()> {
    let mut c = client(pool).await?;
    let tx = c.transaction().await.map_err(pg_error)?;
    let name = match schema {
        Some(s) => s.to_owned(),
        None => tx
            .query_one("SELECT current_schema()::text", &[])
            .await
            .map_err(pg_error)?
            .get::<_, Option<String>>(0)
            .unwrap_or_default(),
    };
    tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&LOCK_CLASS, &name]).await.map_err(pg_error)?;
    if let Some(s) = schema {
        // The name was checked to be a plain identifier (PostgresConfig::validate).
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{s}\"")).await.map_err(pg_error)?;
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS touchpoint_schema_version (
             version    integer     PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(pg_error)?;
    let applied: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM touchpoint_schema_version", &[])
        .await
        .map_err(pg_error)?
        .get(0);
    let applied = usize::try_from(applied).unwrap_or(0);
    if applied > MIGRATIONS.len() {
        return Err(Error::Backend {
            message: format!(
                "the database has schema version {applied}, newer than the {VERSION} this build of touchpoint knows; \
                 connect with a newer build"
            ),
            temporary: false,
            source: None,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
        tx.batch_execute(sql).await.map_err(|e| {
            let mut err = pg_error(e);
            if let Error::Backend { message, .. } = &mut err {
                *message = format!("migration {version} failed: {message}");
            }
            err
        })?;
        tx.execute("INSERT INTO touchpoint_schema_version (version) VALUES ($1)", &[&version])
            .await
            .map_err(pg_error)?;
    }
    tx.commit().await.map_err(pg_error)
}

/// The highest migration applied.
pub(super) async fn current_version(c: &tokio_postgres::Client) -> crate::Result<u32> {
    let v: i32 = c
        .query_one("SELECT COALESCE(MAX(version), 0) FROM touchpoint_schema_version", &[])
        .await
        .map_err(pg_error)?
        .get(0);
    u32::try_from(v).map_err(|_| super::corrupt("schema version", format!("{v} is out of range")))
}
