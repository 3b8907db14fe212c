//! The threads that own the connections: one writer doing group commit, and readers.
//!
//! Callers never block: they queue a job and await a `futures::channel::oneshot` answer, so the
//! store works on any executor (or none: `futures::executor::block_on`).

use super::statements::Sql;
use super::write::{self, Encoded};
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
    pub(super) tenant: TenantId,
    pub(super) changes: ChangeSet,
    pub(super) json: Encoded,
    pub(super) reply: oneshot::Sender<Result<Committed>>,
}

/// What the writer thread is asked to do.
pub(super) enum WriterJob {
    Commit(Box<CommitJob>),
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
            workers
                .threads
                .push(spawn("touchpoint-sqlite-checkpoint".into(), move || run_checkpoints(&conn, &requests))?);
        }
        let (tx, rx) = std::sync::mpsc::channel::<WriterJob>();
        workers.threads.push(spawn("touchpoint-sqlite-writer".into(), move || run_writer(writer, rx, max_batch))?);
        workers.writer = Some(tx);
        if !readers.is_empty() {
            let (tx, rx) = std::sync::mpsc::channel::<ReadJob>();
            let rx = Arc::new(Mutex::new(rx));
            for (i, conn) in readers.into_iter().enumerate() {
                let rx = rx.clone();
                // On failure, `workers` is dropped: the queues close and started threads end.
                workers.threads.push(spawn(format!("touchpoint-sqlite-reader-{i}"), move || run_reader(conn, &rx))?);
            }
            workers.readers = Some(tx);
        }
        Ok(workers)
    }

    /// Queues a change set for the writer.
    pub(super) fn commit(&self, tenant: TenantId, changes: ChangeSet) -> Result<oneshot::Receiver<Result<Committed>>> {
        let json = Encoded::new(&changes)?;
        let (reply, rx) = oneshot::channel();
        let job = WriterJob::Commit(Box::new(CommitJob { tenant, changes, json, reply }));
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
    let max_batch = max_batch.max(1);
    while let Ok(first) = jobs.recv() {
        let mut commits = Vec::new();
        let mut reads = Vec::new();
        let mut next = Some(first);
        // Group commit: everything queued while the previous batch was being made durable goes
        // into the next transaction, up to `max_batch` change sets.
        while let Some(job) = next {
            match job {
                WriterJob::Commit(c) => commits.push(*c),
                WriterJob::Read(r) => reads.push(r),
            }
            next = if commits.len() < max_batch { jobs.try_recv().ok() } else { None };
        }
        if !commits.is_empty() && catch_unwind(AssertUnwindSafe(|| commit_batch(&sql, commits))).is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for read in reads {
            let _ = catch_unwind(AssertUnwindSafe(|| read(&sql)));
        }
    }
}

/// The same failure for every change set of a batch that could not be made durable.
fn batch_failure(e: &rusqlite::Error) -> Error {
    let temporary =
        matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked));
    Error::Backend { message: format!("SQLite commit failed: {e}"), temporary, source: None }
}

/// One transaction for the batch, one savepoint per change set: a change set that fails rolls
/// back only itself. Answers go out after `COMMIT` returns, so an `Ok` is durable (as far as the
/// `synchronous` setting makes it so).
fn commit_batch(sql: &Sql<'_>, jobs: Vec<CommitJob>) {
    if let Err(e) = sql.run("BEGIN IMMEDIATE") {
        for job in jobs {
            let _ = job.reply.send(Err(batch_failure(&e)));
        }
        return;
    }
    let mut answers = Vec::with_capacity(jobs.len());
    let mut broken = None;
    for CommitJob { tenant, changes, json, reply } in jobs {
        if let Some(e) = &broken {
            answers.push((reply, Err(batch_failure(e))));
            continue;
        }
        if let Err(e) = sql.run("SAVEPOINT change_set") {
            answers.push((reply, Err(batch_failure(&e))));
            broken = Some(e);
            continue;
        }
        let result = write::commit(sql, &tenant, &changes, &json);
        let end = if result.is_ok() {
            sql.run("RELEASE change_set")
        } else {
            sql.run("ROLLBACK TO change_set").and_then(|()| sql.run("RELEASE change_set"))
        };
        match end {
            Ok(()) => answers.push((reply, result)),
            Err(e) => {
                answers.push((reply, Err(batch_failure(&e))));
                broken = Some(e);
            }
        }
    }
    let outcome = match broken {
        Some(e) => Err(e),
        None => sql.run("COMMIT"),
    };
    match outcome {
        Ok(()) => {
            for (reply, result) in answers {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            let _ = sql.conn().execute_batch("ROLLBACK");
            for (reply, result) in answers {
                let _ = reply.send(match result {
                    Ok(_) => Err(batch_failure(&e)),
                    Err(other) => Err(other),
                });
            }
        }
    }
}
