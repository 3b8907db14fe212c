//! A VFS that hands SQLite's write-ahead log to the operating system in a few large writes
//! per commit.
//!
//! SQLite writes every WAL frame as two `pwrite`s (a 24-byte header, then the page), so a
//! group commit of a few hundred pages makes close to a thousand system calls, and the kernel
//! prepares each 4 KiB page of the file several times over. This VFS wraps the platform's
//! default one; for WAL files only, it gathers consecutive writes in memory and writes them
//! out, 64 KiB a call, when SQLite syncs, reads what is held, truncates, asks the size of,
//! controls or closes the file (or when 4 MiB have gathered). Every other file is the default
//! VFS's own, untouched.
//!
//! This is only sound when every commit syncs the WAL (`synchronous = FULL` or `EXTRA`) after
//! its last frame: SQLite publishes a commit's frames to other connections (the wal-index in
//! shared memory) after that sync, so by then they are in the file. With `NORMAL` or `OFF`
//! there is no sync at commit, and other connections could be told of frames still held here:
//! the store uses this VFS for its writer connection with `FULL` and `EXTRA` only. A database
//! opened without power-safe overwrite (the URI parameter `psow=0`) pads each commit to a
//! sector boundary and writes the last padding after its sync: its WAL is passed through
//! unwrapped. Frames a transaction spilled before it rolled back are held too; the writer
//! drops them ([`discard_held`]) when its transaction ends, before another connection may
//! write there. A crash loses the held writes, which is the same as the process dying before
//! SQLite wrote them: the commit they belong to was never acknowledged, and SQLite's recovery
//! ignores a WAL's unfinished tail.

#![allow(unsafe_code)]

use rusqlite::ffi;
use std::ffi::{CStr, c_int, c_void};
use std::sync::OnceLock;

/// The name connections open with to use this VFS.
pub(super) const NAME: &CStr = c"touchpoint-wal-buffer";

/// Held bytes past which a write first sends what is held to the file.
const CAPACITY: usize = 4 << 20;

/// The most one call to the default VFS writes: the unix VFS writes no more than 128 KiB less
/// one byte a call, and a whole multiple of 128 KiB not at all.
const PIECE: usize = 64 << 10;

/// Registers the VFS once per process (idempotent); false if SQLite has no default VFS to wrap.
pub(super) fn register() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        // SAFETY: `sqlite3_vfs_find(NULL)` returns the default VFS, which lives as long as the
        // process (VFSes are never freed); the copy made here is leaked, as SQLite requires a
        // registered VFS to stay valid for the rest of the process.
        unsafe {
            let inner = ffi::sqlite3_vfs_find(std::ptr::null());
            if inner.is_null() {
                return false;
            }
            let Ok(()) = INNER.set(Inner(inner)) else { return true };
            let mut vfs: ffi::sqlite3_vfs = std::ptr::read(inner);
            vfs.pNext = std::ptr::null_mut();
            vfs.zName = NAME.as_ptr();
            vfs.szOsFile = (*inner).szOsFile.max(std::mem::size_of::<WalFile>() as c_int);
            vfs.xOpen = Some(open);
            let vfs = Box::leak(Box::new(vfs));
            ffi::sqlite3_vfs_register(vfs, 0) == ffi::SQLITE_OK
        }
    })
}

/// Drops the WAL writes `conn` holds for a transaction that ended without a commit (frames it
/// spilled before rolling back), so that they are never written over frames another writer
/// commits at the same place. Does nothing while a transaction is open, or for a connection
/// not on this VFS.
pub(super) fn discard_held(conn: &rusqlite::Connection) {
    if !conn.is_autocommit() {
        return;
    }
    if let Some(file) = held_wal_file(conn) {
        // SAFETY: a file `open` set up with `WAL_METHODS`, open, used on `conn`'s thread.
        unsafe { wal(file).held.clear() };
    }
}

/// `conn`'s WAL file if it is one this VFS holds writes for.
fn held_wal_file(conn: &rusqlite::Connection) -> Option<*mut ffi::sqlite3_file> {
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: `SQLITE_FCNTL_JOURNAL_POINTER` stores the `sqlite3_file*` of the connection's
    // WAL (or rollback journal) into the pointer it is given; the handle is `conn`'s, used on
    // the thread that owns `conn`.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_JOURNAL_POINTER,
            (&raw mut file).cast(),
        )
    };
    // SAFETY: a non-null file from its connection is open; its methods pointer is readable.
    let ours = rc == ffi::SQLITE_OK && !file.is_null() && std::ptr::eq(unsafe { (*file).pMethods }, &WAL_METHODS);
    ours.then_some(file)
}

/// The wrapped default VFS.
struct Inner(*mut ffi::sqlite3_vfs);
// SAFETY: a registered VFS is immutable and meant to be used from every thread.
unsafe impl Send for Inner {}
// SAFETY: as above.
unsafe impl Sync for Inner {}

static INNER: OnceLock<Inner> = OnceLock::new();

/// An open WAL file: SQLite's file header, the default VFS's file it wraps, and the writes held.
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    /// Held bytes, to be written at `at`.
    held: Vec<u8>,
    at: i64,
}

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let Some(Inner(inner)) = INNER.get() else { return ffi::SQLITE_ERROR };
    let inner = *inner;
    // SAFETY: `inner` is the default VFS; `file` points at `szOsFile` bytes SQLite allocated
    // for this file, at least the default VFS's size and at least a `WalFile`.
    unsafe {
        let Some(inner_open) = (*inner).xOpen else { return ffi::SQLITE_ERROR };
        // Without power-safe overwrite SQLite writes part of a commit after its sync.
        let padded = !name.is_null() && ffi::sqlite3_uri_boolean(name, c"psow".as_ptr(), 1) == 0;
        if flags & ffi::SQLITE_OPEN_WAL == 0 || padded {
            // Any other file is the default VFS's own, in the memory SQLite gave.
            return inner_open(inner, name, file, flags, out_flags);
        }
        let size = usize::try_from((*inner).szOsFile).unwrap_or(0).max(std::mem::size_of::<ffi::sqlite3_file>());
        let real = ffi::sqlite3_malloc64(size as u64).cast::<ffi::sqlite3_file>();
        if real.is_null() {
            (*file).pMethods = std::ptr::null();
            return ffi::SQLITE_NOMEM;
        }
        std::ptr::write_bytes(real.cast::<u8>(), 0, size);
        let rc = inner_open(inner, name, real, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            // A file the default VFS set methods on must be closed even though opening failed.
            if let Some(m) = (*real).pMethods.as_ref()
                && let Some(close) = m.xClose
            {
                close(real);
            }
            ffi::sqlite3_free(real.cast());
            (*file).pMethods = std::ptr::null();
            return rc;
        }
        std::ptr::write(
            file.cast::<WalFile>(),
            WalFile { base: ffi::sqlite3_file { pMethods: &WAL_METHODS }, inner: real, held: Vec::new(), at: 0 },
        );
        ffi::SQLITE_OK
    }
}

/// The `WalFile` SQLite passes back to a method of [`WAL_METHODS`].
///
/// # Safety
/// `file` must be a file [`open`] set up with [`WAL_METHODS`], used by one thread at a time (as
/// SQLite does with one connection's files).
unsafe fn wal<'a>(file: *mut ffi::sqlite3_file) -> &'a mut WalFile {
    // SAFETY: as the caller guarantees.
    unsafe { &mut *file.cast::<WalFile>() }
}

/// The default VFS's methods of the wrapped file.
fn methods(w: &WalFile) -> &ffi::sqlite3_io_methods {
    // SAFETY: the default VFS set `pMethods` when it opened the file, and keeps it until close.
    unsafe { &*(*w.inner).pMethods }
}

/// Writes what is held, in as few calls as the default VFS takes (it writes at most 128 KiB a
/// call). What was held is dropped either way: it is never part of a published commit (those
/// were written at their sync), and SQLite fails the transaction the failed write belongs to.
fn flush(w: &mut WalFile) -> c_int {
    let rc = write_through(w, w.at, &w.held);
    w.held.clear();
    rc
}

/// Writes `bytes` at `at` to the wrapped file, in pieces the default VFS accepts.
fn write_through(w: &WalFile, mut at: i64, bytes: &[u8]) -> c_int {
    let Some(write) = methods(w).xWrite else { return ffi::SQLITE_IOERR_WRITE };
    for piece in bytes.chunks(PIECE) {
        // SAFETY: `piece` is `piece.len()` (≤ 64 KiB) initialized bytes; the wrapped file is open.
        let rc = unsafe { write(w.inner, piece.as_ptr().cast(), piece.len() as c_int, at) };
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        at += piece.len() as i64;
    }
    ffi::SQLITE_OK
}

/// Whether `[at, at + len)` overlaps what is held.
fn overlaps_held(w: &WalFile, at: i64, len: i64) -> bool {
    !w.held.is_empty() && at < w.at + w.held.len() as i64 && w.at < at + len
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls this once, last, on a file `open` set up.
    unsafe {
        let w = wal(file);
        let flushed = flush(w);
        let closed = methods(w).xClose.map_or(ffi::SQLITE_OK, |close| close(w.inner));
        ffi::sqlite3_free(w.inner.cast());
        std::ptr::drop_in_place(file.cast::<WalFile>());
        (*file).pMethods = std::ptr::null();
        if flushed != ffi::SQLITE_OK { flushed } else { closed }
    }
}

unsafe extern "C" fn read(file: *mut ffi::sqlite3_file, buf: *mut c_void, amount: c_int, at: i64) -> c_int {
    // SAFETY: a file `open` set up; `buf` holds `amount` bytes (SQLite's contract).
    unsafe {
        let w = wal(file);
        if overlaps_held(w, at, i64::from(amount)) {
            let rc = flush(w);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        match methods(w).xRead {
            Some(read) => read(w.inner, buf, amount, at),
            None => ffi::SQLITE_IOERR_READ,
        }
    }
}

unsafe extern "C" fn write(file: *mut ffi::sqlite3_file, data: *const c_void, amount: c_int, at: i64) -> c_int {
    // SAFETY: a file `open` set up; `data` holds `amount` bytes (SQLite's contract).
    unsafe {
        let w = wal(file);
        let Ok(len) = usize::try_from(amount) else { return ffi::SQLITE_IOERR_WRITE };
        let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len);
        let end = w.at + w.held.len() as i64;
        if !w.held.is_empty() && at >= w.at && at + len as i64 <= end {
            // A frame of this transaction written again (SQLite rewrites a page it spilled).
            let from = (at - w.at) as usize;
            w.held[from..from + len].copy_from_slice(bytes);
            return ffi::SQLITE_OK;
        }
        let appends = at == end && w.held.len() + len <= CAPACITY;
        if !appends || w.held.try_reserve(len).is_err() {
            let rc = flush(w);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            // Past the capacity, or out of memory: straight to the file.
            if len > CAPACITY || w.held.try_reserve(len).is_err() {
                return write_through(w, at, bytes);
            }
            w.at = at;
        }
        w.held.extend_from_slice(bytes);
        ffi::SQLITE_OK
    }
}

/// Runs `f` on the wrapped file once what is held has been written.
///
/// # Safety
/// As [`wal`].
unsafe fn after_flush(
    file: *mut ffi::sqlite3_file,
    f: impl FnOnce(&ffi::sqlite3_io_methods, *mut ffi::sqlite3_file) -> c_int,
) -> c_int {
    // SAFETY: as the caller guarantees.
    let w = unsafe { wal(file) };
    let rc = flush(w);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    f(methods(w), w.inner)
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    // SAFETY: a file `open` set up, whose wrapped file is open.
    unsafe { after_flush(file, |m, f| m.xTruncate.map_or(ffi::SQLITE_IOERR_TRUNCATE, |t| t(f, size))) }
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    // SAFETY: as above.
    unsafe { after_flush(file, |m, f| m.xSync.map_or(ffi::SQLITE_IOERR_FSYNC, |s| s(f, flags))) }
}

unsafe extern "C" fn file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    // SAFETY: as above; `size` is SQLite's out-parameter.
    unsafe { after_flush(file, |m, f| m.xFileSize.map_or(ffi::SQLITE_IOERR_FSTAT, |s| s(f, size))) }
}

unsafe extern "C" fn file_control(file: *mut ffi::sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    // SAFETY: as above; `arg` is passed on as SQLite gave it.
    unsafe { after_flush(file, |m, f| m.xFileControl.map_or(ffi::SQLITE_NOTFOUND, |c| c(f, op, arg))) }
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: a file `open` set up, whose wrapped file is open.
    unsafe {
        let w = wal(file);
        methods(w).xLock.map_or(ffi::SQLITE_OK, |l| l(w.inner, level))
    }
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: as above.
    unsafe {
        let w = wal(file);
        methods(w).xUnlock.map_or(ffi::SQLITE_OK, |u| u(w.inner, level))
    }
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    // SAFETY: as above; `out` is SQLite's out-parameter.
    unsafe {
        let w = wal(file);
        methods(w).xCheckReservedLock.map_or(ffi::SQLITE_OK, |c| c(w.inner, out))
    }
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: as above.
    unsafe {
        let w = wal(file);
        methods(w).xSectorSize.map_or(4096, |s| s(w.inner))
    }
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: as above.
    unsafe {
        let w = wal(file);
        methods(w).xDeviceCharacteristics.map_or(0, |d| d(w.inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, OpenFlags};
    use std::path::{Path, PathBuf};

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn dir(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("touchpoint-walbuf-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&d).expect("temp dir");
        Dir(d)
    }

    /// A connection through this VFS, in WAL mode with a sync at every commit, and no
    /// checkpoints, so that every commit stays in the WAL.
    fn writer(path: &Path, cache_pages: i64) -> Connection {
        assert!(register());
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        let conn = Connection::open_with_flags_and_vfs(path, flags, NAME).expect("open");
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0)).expect("wal");
        conn.pragma_update(None, "synchronous", "FULL").expect("synchronous");
        conn.pragma_update(None, "wal_autocheckpoint", 0).expect("no checkpoints");
        conn.pragma_update(None, "cache_size", cache_pages).expect("cache");
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)").expect("table");
        conn
    }

    /// Rows `from..from + n`, valued `{fill}{k}`, in the transaction open on `conn` (if any).
    fn put(conn: &Connection, from: i64, n: i64, fill: &str) {
        for k in from..from + n {
            conn.execute("INSERT OR REPLACE INTO t VALUES (?1, ?2)", rusqlite::params![k, format!("{fill}{k}")])
                .expect("write");
        }
    }

    /// [`put`] in a transaction of its own, committed.
    fn insert(conn: &Connection, from: i64, n: i64, fill: &str) {
        let tx = conn.unchecked_transaction().expect("begin");
        put(&tx, from, n, fill);
        tx.commit().expect("commit");
    }

    /// What a process that died right now would leave: the database file and its WAL, copied
    /// while the writer is still open (so nothing it holds back is in the copy), opened fresh,
    /// which makes SQLite recover the WAL from the file alone (checking every frame's checksum).
    fn recovered_copy(from: &Path, to: &Path) -> Connection {
        std::fs::copy(from, to).expect("copy db");
        let mut wal = from.as_os_str().to_owned();
        wal.push("-wal");
        let mut copy_wal = to.as_os_str().to_owned();
        copy_wal.push("-wal");
        std::fs::copy(&wal, &copy_wal).expect("copy wal");
        Connection::open(to).expect("open copy")
    }

    fn assert_intact(conn: &Connection) {
        let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("check");
        assert_eq!(ok, "ok");
    }

    fn rows(conn: &Connection) -> (i64, String) {
        conn.query_row("SELECT count(*), coalesce(max(v), '') FROM t", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("count")
    }

    #[test]
    fn every_commit_is_in_the_wal_file_when_commit_returns() {
        let d = dir("commits");
        let path = d.0.join("w.db");
        let conn = writer(&path, -16_384);
        assert!(held_wal_file(&conn).is_some(), "the writer's WAL goes through this VFS");
        for batch in 0..5 {
            insert(&conn, batch * 1_000, 1_000, "row-");
            let copy = recovered_copy(&path, &d.0.join(format!("copy{batch}.db")));
            assert_eq!(rows(&copy).0, (batch + 1) * 1_000, "after commit {batch}");
            assert_intact(&copy);
        }
        // Another connection of this process (the default VFS) reads it all too.
        let reader = Connection::open(&path).expect("reader");
        assert_eq!(rows(&reader).0, 5_000);
    }

    #[test]
    fn a_transaction_larger_than_the_page_cache_rewrites_its_spilled_frames_and_survives() {
        let d = dir("spill");
        let path = d.0.join("w.db");
        // Ten pages of cache: the transaction spills pages to the WAL before it commits, then
        // changes some of them again (SQLite overwrites those frames and rewrites checksums).
        let conn = writer(&path, 10);
        let tx = conn.unchecked_transaction().expect("begin");
        for round in 0..3 {
            put(&tx, 0, 2_000, &format!("round{round}-{}", "0".repeat(200)));
        }
        tx.commit().expect("commit");
        let copy = recovered_copy(&path, &d.0.join("copy.db"));
        let (n, max) = rows(&copy);
        assert_eq!(n, 2_000);
        assert!(max.starts_with("round2-"), "the last round's values: {max}");
        assert_intact(&copy);
    }

    #[test]
    fn a_commit_larger_than_what_is_held_at_once_arrives_whole() {
        let d = dir("large");
        let path = d.0.join("w.db");
        let conn = writer(&path, -65_536);
        // About 12 MiB of rows in one commit: past CAPACITY, written out in several goes.
        let fill = "x".repeat(3_000);
        insert(&conn, 0, 4_000, &fill);
        let copy = recovered_copy(&path, &d.0.join("copy.db"));
        assert_eq!(rows(&copy).0, 4_000);
    }

    #[test]
    fn frames_of_a_rolled_back_transaction_are_dropped_not_written_over_another_writers_commit() {
        let d = dir("rollback");
        let path = d.0.join("w.db");
        let a = writer(&path, 10);
        let b = Connection::open(&path).expect("second writer");
        b.busy_timeout(std::time::Duration::from_secs(5)).expect("busy timeout");
        // A spills frames past the WAL's end, then rolls back: they stay held.
        let tx = a.unchecked_transaction().expect("begin");
        put(&tx, 0, 2_000, &"0".repeat(300));
        tx.rollback().expect("rollback");
        discard_held(&a);
        // B commits where A's frames were; then A reads those pages and commits a row.
        insert(&b, 10_000, 500, "b-");
        assert_eq!(rows(&a).0, 500);
        insert(&a, 20_000, 1, "a-");
        let copy = recovered_copy(&path, &d.0.join("copy.db"));
        assert_eq!(rows(&copy).0, 501);
        assert_intact(&copy);
    }

    #[test]
    fn a_database_without_power_safe_overwrite_keeps_the_default_wal_file() {
        let d = dir("psow");
        let uri = format!("file:{}?psow=0", d.0.join("w.db").display());
        assert!(register());
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags_and_vfs(&uri, flags, NAME).expect("open");
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0)).expect("wal");
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)").expect("table");
        assert!(held_wal_file(&conn).is_none(), "psow=0 must not be held back");
        insert(&conn, 0, 10, "x");
        assert_eq!(rows(&conn).0, 10);
    }

    /// Drives the VFS's file methods directly, as SQLite would on a WAL file.
    struct Raw {
        file: Vec<u64>,
    }

    impl Raw {
        fn open(path: &Path) -> Raw {
            assert!(register());
            // SAFETY: a NUL-terminated name; SQLite is initialized by `register`.
            let vfs = unsafe { ffi::sqlite3_vfs_find(NAME.as_ptr()) };
            assert!(!vfs.is_null());
            let name = std::ffi::CString::new(path.to_str().expect("utf-8 path")).expect("path");
            // SAFETY: `vfs` is this module's VFS; the buffer is `szOsFile` bytes, 8-aligned.
            unsafe {
                let mut file = vec![0u64; usize::try_from((*vfs).szOsFile).expect("size").div_ceil(8)];
                let flags = ffi::SQLITE_OPEN_WAL | ffi::SQLITE_OPEN_CREATE | ffi::SQLITE_OPEN_READWRITE;
                let rc = open(vfs, name.as_ptr(), file.as_mut_ptr().cast(), flags, std::ptr::null_mut());
                assert_eq!(rc, ffi::SQLITE_OK);
                Raw { file }
            }
        }

        fn ptr(&mut self) -> *mut ffi::sqlite3_file {
            self.file.as_mut_ptr().cast()
        }

        fn write(&mut self, at: i64, bytes: &[u8]) {
            // SAFETY: an open file of this VFS; `bytes` is `len` bytes.
            let rc = unsafe { write(self.ptr(), bytes.as_ptr().cast(), bytes.len() as c_int, at) };
            assert_eq!(rc, ffi::SQLITE_OK);
        }

        fn read(&mut self, at: i64, len: usize) -> Vec<u8> {
            let mut out = vec![0u8; len];
            // SAFETY: as above; `out` holds `len` bytes.
            let rc = unsafe { read(self.ptr(), out.as_mut_ptr().cast(), len as c_int, at) };
            assert_eq!(rc, ffi::SQLITE_OK);
            out
        }

        fn sync(&mut self) {
            // SAFETY: as above.
            assert_eq!(unsafe { sync(self.ptr(), ffi::SQLITE_SYNC_NORMAL) }, ffi::SQLITE_OK);
        }

        fn held(&mut self) -> usize {
            // SAFETY: as above.
            unsafe { wal(self.ptr()).held.len() }
        }
    }

    impl Drop for Raw {
        fn drop(&mut self) {
            // SAFETY: an open file of this VFS, closed once.
            unsafe { close(self.ptr()) };
        }
    }

    #[test]
    fn writes_are_held_patched_in_place_and_written_out_at_sync_or_on_a_read_of_them() {
        let d = dir("raw");
        // The default VFS gives a WAL file its database file's permissions: it must exist.
        std::fs::write(d.0.join("f"), b"").expect("database file");
        let path = d.0.join("f-wal");
        let mut f = Raw::open(&path);
        f.write(0, &[1; 100]);
        f.write(100, &[2; 100]);
        assert_eq!(f.held(), 200, "consecutive writes are held");
        assert_eq!(std::fs::read(&path).expect("file").len(), 0, "nothing written yet");
        // Rewriting part of what is held changes it where it is.
        f.write(50, &[3; 10]);
        assert_eq!(f.held(), 200);
        f.sync();
        assert_eq!(f.held(), 0);
        let mut want = vec![1u8; 100];
        want.extend([2u8; 100]);
        want[50..60].fill(3);
        assert_eq!(std::fs::read(&path).expect("file"), want);
        // A write elsewhere sends what is held first; a read of held bytes sees them.
        f.write(200, &[4; 50]);
        f.write(10, &[5; 5]);
        assert_eq!(f.held(), 5);
        assert_eq!(std::fs::read(&path).expect("file").len(), 250);
        assert_eq!(f.read(8, 4), vec![1, 1, 5, 5]);
        assert_eq!(f.held(), 0);
        // More than CAPACITY at once goes straight through, in pieces the default VFS takes.
        let big: Vec<u8> = (0..CAPACITY + 200_000).map(|i| (i % 251) as u8).collect();
        f.write(250, &big);
        assert_eq!(f.held(), 0);
        assert_eq!(f.read(250, big.len()), big);
    }
}
