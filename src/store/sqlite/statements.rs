//! Prepared statements kept per connection.
//!
//! rusqlite's own statement cache clears the bindings of a statement when it takes it back, and
//! SQLite expires any statement whose plan looked at a bound value (statements with `ORDER BY`,
//! aggregates or a bound `LIMIT`) when its bindings are cleared: every use would compile the
//! statement again. This cache keeps statements as they are and rebinds every parameter on the
//! next use.

use crate::hash::IdMap;
use rusqlite::{Connection, Statement};
use std::cell::RefCell;

/// A connection with its prepared statements. Lives on the thread that owns the connection.
pub(super) struct Sql<'c> {
    conn: &'c Connection,
    /// Keyed by the address and length of the SQL text: every statement is a `'static` literal
    /// (addresses in the binary, not input anyone chooses, so the crate's unkeyed hash serves).
    cache: RefCell<IdMap<(usize, usize), Statement<'c>>>,
}

impl<'c> Sql<'c> {
    pub(super) fn new(conn: &'c Connection) -> Self {
        Sql { conn, cache: RefCell::new(IdMap::default()) }
    }

    /// The connection.
    pub(super) fn conn(&self) -> &'c Connection {
        self.conn
    }

    /// Runs `f` with the statement for `sql`, prepared on first use. The statement is taken out
    /// of the cache while `f` runs, so `f` may use other statements (even the same SQL, which
    /// then gets a second, temporary statement).
    pub(super) fn with<T>(
        &self,
        sql: &'static str,
        f: impl FnOnce(&mut Statement<'c>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let key = (sql.as_ptr() as usize, sql.len());
        let cached = self.cache.borrow_mut().remove(&key);
        let mut stmt = match cached {
            Some(stmt) => stmt,
            None => self.conn.prepare(sql)?,
        };
        let result = f(&mut stmt);
        self.cache.borrow_mut().insert(key, stmt);
        result
    }

    /// Runs a statement without parameters.
    pub(super) fn run(&self, sql: &'static str) -> rusqlite::Result<()> {
        self.with(sql, |s| s.execute([]).map(|_| ()))
    }
}
