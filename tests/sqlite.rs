//! The SQLite store: the conformance suite on a file and in memory, durability across reopening
//! and process crashes, group commit under concurrency, schema versioning and erasure.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use touchpoint::store::sqlite::SqliteOptions;
use touchpoint::store::{SqliteStore, Store};

fn run<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("touchpoint-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn db(&self) -> PathBuf {
        self.0.join("touchpoint.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn file_database_passes_the_conformance_suite() {
    let dir = TempDir::new("conformance-file");
    let store = SqliteStore::open(dir.db()).expect("open");
    run(touchpoint::testkit::run_all(&store));
}

#[test]
fn in_memory_database_passes_the_conformance_suite() {
    let store = SqliteStore::open_in_memory().expect("open");
    run(touchpoint::testkit::run_all(&store));
}
