//! `sqlite_ingest/sqlite_floor`: the rows the engine writes for the bench's traffic, written
//! straight into SQLite (see the bench's header). Only the writes are timed; what to write is
//! worked out before.

use super::{IN_FLIGHT, SAMPLES, Samples, ingest_all, message, tenant};
use criterion::Criterion;
use rusqlite::{Connection, params};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use touchpoint::Engine;
use touchpoint::store::SqliteStore;

/// The store's tables, in the order of [`Writes::inserted`].
const TABLES: [&str; 6] = ["customers", "identities", "conversations", "messages", "thread_keys", "events"];
/// The tables whose records are updated in place (with a version), the first three of `TABLES`.
const VERSIONED: usize = 3;
/// The in-place update of each versioned table (built once: no SQL text is made while timed).
const UPDATES: [&str; VERSIONED] = [
    "UPDATE customers SET version = version + 1, record = ?3 WHERE tenant = ?1 AND id = ?2",
    "UPDATE identities SET version = version + 1, record = ?3 WHERE tenant = ?1 AND id = ?2",
    "UPDATE conversations SET version = version + 1, record = ?3 WHERE tenant = ?1 AND id = ?2",
];

/// Rows one message writes: inserted per table, and updated in place per versioned table.
#[derive(Debug, Default, Clone, Copy)]
struct Writes {
    inserted: [usize; TABLES.len()],
    updated: [usize; VERSIONED],
}

/// Row counts per table and the version of every versioned record, from a closed store's file.
struct Snapshot {
    rows: [usize; TABLES.len()],
    versions: [HashMap<Vec<u8>, i64>; VERSIONED],
}

fn snapshot(path: &Path) -> Snapshot {
    let conn = Connection::open(path).expect("open the probe file");
    let count = |t: &str| -> usize {
        conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get::<_, i64>(0)).expect("count") as usize
    };
    let versions = |t: &str| -> HashMap<Vec<u8>, i64> {
        let mut stmt = conn.prepare(&format!("SELECT id, version FROM {t}")).expect("versions");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("versions").map(|r| r.expect("row")).collect()
    };
    Snapshot { rows: TABLES.map(count), versions: [versions(TABLES[0]), versions(TABLES[1]), versions(TABLES[2])] }
}

fn writes_between(before: &Snapshot, after: &Snapshot) -> Writes {
    let mut w = Writes::default();
    for t in 0..TABLES.len() {
        w.inserted[t] = after.rows[t] - before.rows[t];
    }
    for t in 0..VERSIONED {
        w.updated[t] = before.versions[t].iter().filter(|(id, v)| after.versions[t].get(*id) != Some(v)).count();
    }
    w
}

/// Per channel of the traffic (sender `who % 3`): the rows a first contact and a follow-up
/// write, counted by ingesting them through a `SqliteStore` on `probe`.
fn probe(probe: &Path) -> [(Writes, Writes); 3] {
    let ingest = |who: u64, n: u64| {
        let engine = Engine::builder(Arc::new(SqliteStore::open(probe).expect("open the probe"))).build();
        ingest_all(&engine, &tenant(), vec![message(who, n)]);
    };
    let mut out = [(Writes::default(), Writes::default()); 3];
    ingest(6_000_000, 1); // creates the file, so every snapshot has the tables
    for (k, slot) in out.iter_mut().enumerate() {
        let who = 3_000_000 + k as u64; // `who % 3 == k`: the channel of `message`
        let s0 = snapshot(probe);
        ingest(who, 10 * who + 1);
        let s1 = snapshot(probe);
        ingest(who, 10 * who + 2);
        let s2 = snapshot(probe);
        *slot = (writes_between(&s0, &s1), writes_between(&s1, &s2));
    }
    out
}

/// What one message of the floor does: a first contact on channel `k`, or a follow-up of the
/// preloaded sender at this index.
enum Op {
    First(usize),
    FollowUp(usize),
}

struct Floor {
    conn: Connection,
    writes: [(Writes, Writes); 3],
    /// A record of each table's average size in the preloaded file.
    records: [String; TABLES.len()],
    /// Preloaded senders: customer, identity and conversation id, and the channel's index.
    senders: Vec<([Vec<u8>; VERSIONED], usize)>,
    next_seq: i64,
    next_key: u64,
}

fn new_id() -> Vec<u8> {
    uuid::Uuid::now_v7().as_bytes().to_vec()
}

impl Floor {
    fn open(path: &Path, writes: [(Writes, Writes); 3]) -> Floor {
        let conn = Connection::open(path).expect("open the floor file");
        // The store's settings (see `SqliteStore::open`), and no automatic checkpoint.
        conn.pragma_update(None, "synchronous", "FULL").expect("pragma");
        conn.pragma_update(None, "cache_size", -16_384).expect("pragma");
        conn.pragma_update(None, "secure_delete", true).expect("pragma");
        conn.pragma_update(None, "wal_autocheckpoint", 0).expect("pragma");
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("journal mode");
        assert_eq!(mode, "wal", "the store left the file in WAL mode");
        // (`thread_keys` rows have no record.)
        let records = TABLES.map(|t| {
            let sql = format!("SELECT coalesce(avg(length(record)), 0) FROM {t}");
            let len: f64 =
                if t == "thread_keys" { 0.0 } else { conn.query_row(&sql, [], |r| r.get(0)).expect("sizes") };
            "r".repeat(len as usize)
        });
        let sizes: Vec<String> = TABLES.iter().zip(&records).map(|(t, r)| format!("{t} {}", r.len())).collect();
        eprintln!("floor: average record bytes: {}", sizes.join(", "));
        let senders = {
            let mut stmt = conn
                .prepare(
                    "SELECT i.customer, i.id, c.id, i.channel FROM identities i \
                     JOIN conversations c ON c.tenant = i.tenant AND c.customer = i.customer",
                )
                .expect("senders");
            let channels = ["whatsapp", "sms", "email"];
            stmt.query_map([], |r| {
                let channel: String = r.get(3)?;
                Ok(([r.get(0)?, r.get(1)?, r.get(2)?], channels.iter().position(|c| *c == channel).unwrap_or(0)))
            })
            .expect("senders")
            .map(|r| r.expect("row"))
            .collect()
        };
        let next_seq = conn.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0)).expect("seq");
        Floor { conn, writes, records, senders, next_seq, next_key: 0 }
    }

    fn plan(&self, rng: &mut super::Rng, n: u64) -> Vec<Op> {
        (0..n)
            .map(|i| {
                if rng.below(10) < 7 {
                    Op::FollowUp(rng.below(self.senders.len() as u64) as usize)
                } else {
                    Op::First(i as usize % 3)
                }
            })
            .collect()
    }

    fn write(&mut self, ops: &[Op]) {
        for chunk in ops.chunks(IN_FLIGHT) {
            self.conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
            for op in chunk {
                self.write_one(op);
            }
            self.conn.execute_batch("COMMIT").expect("commit");
        }
    }

    fn write_one(&mut self, op: &Op) {
        // Records a message updates are the sender's; records it inserts are new.
        let (writes, ids) = match op {
            Op::First(k) => (self.writes[*k].0, [new_id(), new_id(), new_id()]),
            Op::FollowUp(i) => (self.writes[self.senders[*i].1].1, self.senders[*i].0.clone()),
        };
        let fresh = [new_id(), new_id(), new_id()];
        let new = |t: usize| if matches!(op, Op::First(_)) { &ids[t] } else { &fresh[t] };
        let customer = &ids[0];
        // The conversation the message joins: the sender's, or the one it opens.
        let conversation = if writes.inserted[2] > 0 { new(2) } else { &ids[2] };
        let (tenant, r) = (tenant(), &self.records);
        let tenant = tenant.as_str();
        let c = &self.conn;
        let run = |sql: &str, p: &[&dyn rusqlite::ToSql]| {
            c.prepare_cached(sql).expect("prepare").execute(p).expect("write");
        };
        for (t, n) in writes.updated.iter().enumerate() {
            for _ in 0..*n {
                run(UPDATES[t], params![tenant, ids[t], r[t]]);
            }
        }
        for _ in 0..writes.inserted[0] {
            run(
                "INSERT INTO customers (tenant, id, external_id, state, version, record) VALUES (?1, ?2, NULL, 'active', 1, ?3)",
                params![tenant, new(0), r[0]],
            );
        }
        for _ in 0..writes.inserted[1] {
            self.next_key += 1;
            run(
                "INSERT INTO identities (tenant, id, customer, customer_ord, channel, address_kind, address, verification, \
                 version, record) VALUES (?1, ?2, ?3, 0, 'floor', 'floor', ?4, 0, 1, ?5)",
                params![tenant, new(1), customer, format!("floor-{}", self.next_key), r[1]],
            );
        }
        for _ in 0..writes.inserted[2] {
            run(
                "INSERT INTO conversations (tenant, id, customer, version, record) VALUES (?1, ?2, ?3, 1, ?4)",
                params![tenant, new(2), customer, r[2]],
            );
        }
        for _ in 0..writes.inserted[3] {
            self.next_key += 1;
            run(
                "INSERT INTO messages (tenant, id, conversation, channel, external_id, version, record) \
                 VALUES (?1, ?2, ?3, 'floor', ?4, 1, ?5)",
                params![tenant, new_id(), conversation, format!("floor-{}", self.next_key), r[3]],
            );
        }
        for _ in 0..writes.inserted[4] {
            self.next_key += 1;
            run(
                "INSERT INTO thread_keys (tenant, key, conversation) VALUES (?1, ?2, ?3)",
                params![tenant, format!("floor-{}", self.next_key), conversation],
            );
        }
        for _ in 0..writes.inserted[5] {
            self.next_seq += 1;
            run("INSERT INTO events (tenant, seq, record) VALUES (?1, ?2, ?3)", params![tenant, self.next_seq, r[5]]);
        }
    }
}

/// Runs the floor on `path` (a preloaded store file, closed) and answers its median
/// messages/s; `probe_path` is a scratch file for counting the rows a message writes.
pub fn bench(c: &mut Criterion, path: &Path, probe_path: &Path) -> Option<f64> {
    let writes = probe(probe_path);
    for (k, (first, follow_up)) in writes.iter().enumerate() {
        eprintln!("floor: channel {k}: rows written by a first contact {first:?}, by a follow-up {follow_up:?}");
    }
    let mut floor = Floor::open(path, writes);
    let mut rng = super::Rng(1);
    let mut samples = Samples::default();
    let mut group = super::ingest_group(c);
    group.bench_function("sqlite_floor", |b| {
        b.iter_custom(|iters| {
            let ops = floor.plan(&mut rng, iters);
            floor.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").expect("checkpoint");
            let start = Instant::now();
            floor.write(&ops);
            let elapsed = start.elapsed();
            samples.push(elapsed, iters);
            elapsed
        })
    });
    group.finish();
    samples.median(SAMPLES).map(|ns| 1e9 / ns)
}
