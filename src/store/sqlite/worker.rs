//! The threads that own the connections: one writer doing group commit, and readers.
//!
//! Callers never block: they queue a job and await a `futures::channel::oneshot` answer, so the
//! store works on any executor (or none: `futures::executor::block_on`).

use super::statements::Sql;
use super::write::{self, Encoded, Failure, Sequences};
use crate::idgen::IdGen;
use crate::model::TenantId;
use crate::store::{ChangeSet, Committed};
use crate::{Error, Result};
use futures::channel::oneshot;
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A read to run on some connection; it answers through the oneshot it captured.
pub(super) type ReadJob = Box<dyn for<'s, 'c> FnOnce(&'s Sql<'c>) + Send>;

/// A change set waiting for the writer.
pub(super) struct CommitJob {
    pub(super) work: Box<Work>,
    pub(super) reply: oneshot::Sender<Answer>,
}

/// What a [`CommitJob`] asks the writer to apply.
pub(super) struct Work {
    pub(super) tenant: TenantId,
    pub(super) changes: ChangeSet,
    pub(super) json: Encoded,
}

/// The writer's answer to a [`CommitJob`]. It hands the job's [`Work`] back, so that the change
/// set and its JSON are freed on the caller's thread rather than on the writer, the one serial
/// part of the store.
pub(super) struct Answer {
    pub(super) result: Result<Committed>,
    _spent: Box<Work>,
}

impl CommitJob {
    /// Answers the job with `result` (nobody hears it if the caller stopped waiting).
    fn answer(self, result: Result<Committed>) {
        let _ = self.reply.send(Answer { result, _spent: self.work });
    }
}

/// What the writer thread is asked to do.
pub(super) enum WriterJob {
    Commit(CommitJob),
    /// Reads go to the writer when there are no reader connections (in-memory databases).
    Read(ReadJob),
}

/// The queues into the threads, and the threads (joined on drop, after the queues close).
pub(super) struct Workers {
    writer: Option<Sender<WriterJob>>,
    readers: Option<Sender<ReadJob>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers").field("threads", &self.threads.len()).finish()
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(f).map_err(|e| Error::Backend {
        message: format!("cannot start a SQLite worker thread: {e}"),
        temporary: true,
        source: Some(Box::new(e)),
    })
}

fn stopped() -> Error {
    Error::Backend { message: "the SQLite store stopped before answering".into(), temporary: false, source: None }
}

impl Workers {
    /// Starts the writer on `writer`, one reader thread per connection in `readers`, and a
    /// checkpointer on `checkpoints` (a connection and the queue the writer's WAL hook feeds).
    pub(super) fn start(
        writer: Connection,
        readers: Vec<Connection>,
        checkpoints: Option<(Connection, Receiver<()>)>,
        max_batch: usize,
    ) -> Result<Workers> {
        let mut workers = Workers { writer: None, readers: None, threads: Vec::new() };
        if let Some((conn, requests)) = checkpoints {
            workers.threads.push(spawn("tp-sqlite-ckpt".into(), move || run_checkpoints(&conn, &requests))?);
        }
        let (tx, rx) = std::sync::mpsc::channel::<WriterJob>();
        workers.threads.push(spawn("tp-sqlite-writer".into(), move || run_writer(writer, rx, max_batch))?);
        workers.writer = Some(tx);
        if !readers.is_empty() {
            let (tx, rx) = std::sync::mpsc::channel::<ReadJob>();
            let rx = Arc::new(Mutex::new(rx));
            for (i, conn) in readers.into_iter().enumerate() {
                let rx = rx.clone();
                // On failure, `workers` is dropped: the queues close and started threads end.
                workers.threads.push(spawn(format!("tp-sqlite-read{i}"), move || run_reader(conn, &rx))?);
            }
            workers.readers = Some(tx);
        }
        Ok(workers)
    }

    /// Queues a change set for the writer.
    pub(super) fn commit(&self, tenant: TenantId, changes: ChangeSet) -> Result<oneshot::Receiver<Answer>> {
        let json = Encoded::new(&changes)?;
        let (reply, rx) = oneshot::channel();
        let job = WriterJob::Commit(CommitJob { work: Box::new(Work { tenant, changes, json }), reply });
        self.writer.as_ref().ok_or_else(stopped)?.send(job).map_err(|_| stopped())?;
        Ok(rx)
    }

    /// Runs `f` on a reader connection (or on the writer's, when there are no readers).
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'s, 'c> FnOnce(&'s Sql<'c>) -> Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let _ = reply.send(f(conn));
        });
        match &self.readers {
            Some(readers) => readers.send(job).map_err(|_| stopped())?,
            None => self.writer.as_ref().ok_or_else(stopped)?.send(WriterJob::Read(job)).map_err(|_| stopped())?,
        }
        rx.await.map_err(|_| stopped())?
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Closing the queues lets each thread finish the jobs already queued, then end.
        self.writer = None;
        self.readers = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Copies the WAL back into the database file whenever the writer reports it has grown, so the
/// writer thread never does it. Ends when the writer (and with it the WAL hook) is gone.
fn run_checkpoints(conn: &Connection, requests: &Receiver<()>) {
    while requests.recv().is_ok() {
        while requests.try_recv().is_ok() {}
        // PASSIVE never waits for readers or the writer; what it cannot copy now, it copies
        // next time.
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
}

fn run_reader(conn: Connection, jobs: &Mutex<Receiver<ReadJob>>) {
    let sql = Sql::new(&conn);
    loop {
        let job = {
            let queue = jobs.lock().unwrap_or_else(|p| p.into_inner());
            match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        // A panicking job drops its reply sender: its caller gets a backend error, the thread
        // lives on.
        let _ = catch_unwind(AssertUnwindSafe(|| job(&sql)));
    }
}

fn run_writer(conn: Connection, jobs: Receiver<WriterJob>, max_batch: usize) {
    let sql = Sql::new(&conn);
    let ids = IdGen::new();
    let max_batch = max_batch.max(1);
    while let Ok(first) = jobs.recv() {
        let mut commits = Vec::new();
        let mut reads = Vec::new();
        let mut next = Some(first);
        // Group commit: everything queued while the previous batch was being made durable goes
        // into the next transaction, up to `max_batch` change sets.
        while let Some(job) = next {
            match job {
                WriterJob::Commit(c) => commits.push(c),
                WriterJob::Read(r) => reads.push(r),
            }
            next = if commits.len() < max_batch { jobs.try_recv().ok() } else { None };
        }
        let erasure = commits
            .iter()
            .any(|c| c.work.changes.events.iter().any(|e| matches!(e, crate::events::Event::CustomerErased { .. })));
        if !commits.is_empty() && catch_unwind(AssertUnwindSafe(|| commit_batch(&sql, &ids, commits))).is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        // A batch that rolled back may leave WAL writes held: never write them out.
        super::wal_buffer::discard_held(&conn);
        if erasure {
            // The WAL still holds the erased records' old page images: copy it back and empty it
            // now rather than at the next routine checkpoint. (Best effort: a reader in the
            // middle of a long read keeps it; the checkpoint on close catches up.)
            truncate_wal(&conn);
        }
        for read in reads {
            let _ = catch_unwind(AssertUnwindSafe(|| read(&sql)));
        }
    }
    // Closing: copy the WAL back and empty it ourselves. SQLite's own checkpoint-on-close runs
    // only in the last connection to close, which two connections closing at once can both miss.
    truncate_wal(&conn);
}

/// `PRAGMA wal_checkpoint(TRUNCATE)`: everything in the WAL goes into the database file and the
/// WAL is cut to zero bytes. A no-op outside WAL mode.
fn truncate_wal(conn: &Connection) {
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

/// The same failure for every change set of a batch that could not be made durable.
fn batch_failure(e: &rusqlite::Error) -> Error {
    let temporary =
        matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked));
    Error::Backend { message: format!("SQLite commit failed: {e}"), temporary, source: None }
}

/// Group commit: one transaction, one `COMMIT` (one fsync) for the whole batch, and every change
/// set all-or-nothing inside it. Answers go out after `COMMIT` returns, so an `Ok` is durable
/// (as far as the `synchronous` setting makes it so).
///
/// A change set that fails its checks, or whose optimistic pass finds a version it expects
/// changed before it writes anything, needs no rollback. Only a failure while writing (an
/// optimistic write finding the state changed after an earlier write, a unique index catching
/// what the checks did not, an I/O error) leaves a change set half-written: then the whole batch
/// is rolled back and run again with a savepoint around each change set and every check answered
/// from SQL (no optimistic pass), which rolls back just the failing one.
fn commit_batch(sql: &Sql<'_>, ids: &IdGen, jobs: Vec<CommitJob>) {
    let answers = match run_batch(sql, ids, &jobs, false) {
        Err(BatchError::HalfWritten) => run_batch(sql, ids, &jobs, true),
        other => other,
    };
    let answers = answers.and_then(|answers| match sql.run("COMMIT") {
        Ok(()) => Ok(answers),
        Err(e) => Err(BatchError::Sqlite(e)),
    });
    match answers {
        Ok(answers) => {
            for (job, answer) in jobs.into_iter().zip(answers) {
                job.answer(answer);
            }
        }
        Err(e) => {
            let _ = sql.conn().execute_batch("ROLLBACK");
            let e = match e {
                BatchError::Sqlite(e) => batch_failure(&e),
                BatchError::HalfWritten => Error::Backend {
                    message: "SQLite commit failed: a change set failed half-way and could not be rolled back".into(),
                    temporary: false,
                    source: None,
                },
            };
            for job in jobs {
                job.answer(Err(Error::Backend { message: e.to_string(), temporary: e.is_temporary(), source: None }));
            }
        }
    }
}

enum BatchError {
    /// A change set failed after it had written something, outside a savepoint.
    HalfWritten,
    /// The transaction itself failed.
    Sqlite(rusqlite::Error),
}

/// Runs every change set of the batch in one open transaction (left open for the caller to
/// commit), with or without a savepoint around each.
fn run_batch(
    sql: &Sql<'_>,
    ids: &IdGen,
    jobs: &[CommitJob],
    savepoints: bool,
) -> Result<Vec<Result<Committed>>, BatchError> {
    sql.run("BEGIN IMMEDIATE").map_err(BatchError::Sqlite)?;
    let mut seqs = Sequences::default();
    let mut answers = Vec::with_capacity(jobs.len());
    for job in jobs {
        if savepoints {
            sql.run("SAVEPOINT change_set").map_err(BatchError::Sqlite)?;
        }
        let Work { tenant, changes, json } = &*job.work;
        let answer = match write::commit(sql, ids, &mut seqs, tenant, changes, json, savepoints) {
            Ok(committed) => Ok(committed),
            Err(Failure::Refused(e)) => Err(e),
            Err(Failure::HalfWritten(e)) if savepoints => {
                sql.run("ROLLBACK TO change_set").map_err(BatchError::Sqlite)?;
                Err(e)
            }
            Err(Failure::HalfWritten(_)) => {
                let _ = sql.conn().execute_batch("ROLLBACK");
                // Frames the pass spilled must not reach the file: the retry's writes, or
                // another connection's, may go where they are.
                super::wal_buffer::discard_held(sql.conn());
                return Err(BatchError::HalfWritten);
            }
        };
        if savepoints {
            sql.run("RELEASE change_set").map_err(BatchError::Sqlite)?;
        }
        answers.push(answer);
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;
    use crate::model::{Customer, CustomerId};
    use crate::store::Write;
    use chrono::Utc;

    fn job(tenant: &TenantId, changes: ChangeSet) -> (CommitJob, oneshot::Receiver<Answer>) {
        let (reply, rx) = oneshot::channel();
        let json = Encoded::new(&changes).expect("encodable");
        (CommitJob { work: Box::new(Work { tenant: tenant.clone(), changes, json }), reply }, rx)
    }

    fn customer_with_event(tenant: &TenantId) -> (CustomerId, ChangeSet) {
        let c = Customer::new(CustomerId(uuid::Uuid::now_v7()), tenant.clone(), Utc::now());
        let changes = ChangeSet {
            customers: vec![Write::insert(c.clone())],
            events: vec![Event::CustomerCreated { customer: c.id }],
            at: Utc::now(),
            ..ChangeSet::default()
        };
        (c.id, changes)
    }

    /// A change set that fails half-way through its writes (here: a trigger refuses its event
    /// after its customer row is written) is rolled back alone; the rest of the batch commits.
    #[test]
    fn a_change_set_failing_while_writing_rolls_back_alone() {
        let conn = Connection::open_in_memory().expect("open");
        super::super::schema::migrate(&conn).expect("schema");
        let tenant = TenantId::new("t").expect("tenant");
        let (bad, bad_changes) = customer_with_event(&tenant);
        conn.execute_batch(&format!(
            "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.record LIKE '%{bad}%' \
             BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END;"
        ))
        .expect("trigger");
        let sql = Sql::new(&conn);
        let mut jobs = Vec::new();
        let mut answers = Vec::new();
        let mut good = Vec::new();
        for i in 0..5 {
            let (id, changes) = if i == 2 { (bad, bad_changes.clone()) } else { customer_with_event(&tenant) };
            if i != 2 {
                good.push(id);
            }
            let (j, rx) = job(&tenant, changes);
            jobs.push(j);
            answers.push(rx);
        }
        commit_batch(&sql, &IdGen::new(), jobs);
        let results: Vec<_> =
            answers.iter_mut().map(|rx| rx.try_recv().expect("answered").expect("answer").result).collect();
        assert!(matches!(results[2], Err(Error::Conflict(_)) | Err(Error::Backend { .. })), "{:?}", results[2]);
        let firsts: Vec<u64> = results
            .iter()
            .filter_map(|r| match r {
                Ok(Committed::Applied { first_event_seq }) => Some(*first_event_seq),
                _ => None,
            })
            .collect();
        assert_eq!(firsts, vec![1, 2, 3, 4], "the other change sets committed, their events numbered without gaps");
        let count = |sql_text: &str| -> i64 { conn.query_row(sql_text, [], |r| r.get(0)).expect("count") };
        assert_eq!(count("SELECT count(*) FROM customers"), 4, "the failing change set's customer row is gone");
        assert_eq!(count("SELECT count(*) FROM events"), 4);
        let stored: i64 = conn
            .query_row("SELECT count(*) FROM customers WHERE id = ?1", [bad.0.as_bytes()], |r| r.get(0))
            .expect("count");
        assert_eq!(stored, 0);
        assert!(conn.is_autocommit(), "no transaction left open");
    }

    /// A statement that makes SQLite roll the whole transaction back itself (here a trigger's
    /// `RAISE(ROLLBACK)`; an I/O error or a full disk do the same) must not leave the rest of
    /// the batch running statement by statement outside a transaction: every answer says what
    /// was stored.
    #[test]
    fn a_transaction_sqlite_rolls_back_itself_stores_nothing_it_does_not_acknowledge() {
        let conn = Connection::open_in_memory().expect("open");
        super::super::schema::migrate(&conn).expect("schema");
        let tenant = TenantId::new("t").expect("tenant");
        // Fires while two customers are stored: once in a transaction holding two, and again
        // on statements run outside one after it.
        conn.execute_batch(
            "CREATE TRIGGER roll_back BEFORE INSERT ON customers WHEN (SELECT count(*) FROM customers) = 2 \
             BEGIN SELECT RAISE(ROLLBACK, 'rolled back by test trigger'); END;",
        )
        .expect("trigger");
        let sql = Sql::new(&conn);
        let (mut jobs, mut answers) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let (j, rx) = job(&tenant, customer_with_event(&tenant).1);
            jobs.push(j);
            answers.push(rx);
        }
        commit_batch(&sql, &IdGen::new(), jobs);
        let ok = answers
            .iter_mut()
            .map(|rx| rx.try_recv().expect("answered").expect("answer").result)
            .filter(Result::is_ok)
            .count() as i64;
        let count = |sql_text: &str| -> i64 { conn.query_row(sql_text, [], |r| r.get(0)).expect("count") };
        assert_eq!(count("SELECT count(*) FROM customers"), ok, "stored exactly what was acknowledged");
        assert_eq!(count("SELECT count(*) FROM events"), ok);
        assert!(conn.is_autocommit(), "no transaction left open");
    }
}
