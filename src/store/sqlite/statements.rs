//! Prepared statements kept per connection.
//!
//! rusqlite's own statement cache clears the bindings of a statement when it takes it back, and
//! SQLite expires any statement whose plan looked at a bound value (statements with `ORDER BY`,
//! aggregates or a bound `LIMIT`) when its bindings are cleared: every use would compile the
//! statement again. This cache keeps statements as they are and rebinds every parameter on the
//! next use.

use rusqlite::{Connection, Statement};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A connection with its prepared statements. Lives on the thread that owns the connection.
pub(super) struct Sql<'c> {
    conn: &'c Connection,
    /// Keyed by the address and length of the SQL text: every statement is a `'static` literal.
    cache: RefCell<HashMap<(usize, usize), Statement<'c>, BuildHasherDefault<KeyHasher>>>,
}

/// Hashes a statement key (the address and length of a literal) with a multiply-fold instead
/// of the default SipHash: every read and write of the store looks a statement up, and the keys
/// are addresses in the binary, not input an attacker chooses.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        let product = u128::from(self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (product as u64) ^ ((product >> 64) as u64)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(29) ^ n;
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

impl<'c> Sql<'c> {
    pub(super) fn new(conn: &'c Connection) -> Self {
        Sql { conn, cache: RefCell::new(HashMap::default()) }
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
