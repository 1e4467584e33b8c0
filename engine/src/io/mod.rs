//! The file I/O trait at the bottom of the engine.
//!
//! Everything above this module (the B+tree file in particular) reads and
//! writes through [`StorageFile`], so tests can swap in
//! [`FaultInjectingFile`] to fail or tear a chosen write and check what
//! recovery makes of it. The WAL's hot path goes through `uring.rs` instead
//! (one linked write + fdatasync); its recovery reads use plain std I/O.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Longest a call held by [`FaultPlan::pause`] waits for
/// [`FaultPlan::resume`]; then it fails, so a test that forgets to resume
/// fails instead of hanging.
pub const PAUSE_WAIT_MAX: Duration = Duration::from_secs(30);

/// Positional file I/O: the only operations the engine's files need.
pub trait StorageFile: Send + Sync {
    /// Fills `buf` from `offset`; a short file is an `UnexpectedEof` error.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// fdatasync.
    fn sync_data(&self) -> io::Result<()>;
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Truncates or extends (with zeros) to `len_bytes`.
    fn set_len(&self, len_bytes: u64) -> io::Result<()>;
    /// Reserves disk blocks up to `len_bytes` (extends the length if shorter).
    fn allocate(&self, len_bytes: u64) -> io::Result<()>;
    /// True when the file has no bytes.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// [`StorageFile`] over a `std::fs::File`.
#[derive(Debug)]
pub struct StdFile {
    file: File,
}

impl StdFile {
    /// Wraps an open file (it must be readable and writable).
    pub fn new(file: File) -> StdFile {
        StdFile { file }
    }

    /// The wrapped file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl StorageFile for StdFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.file.set_len(len_bytes)
    }

    fn allocate(&self, len_bytes: u64) -> io::Result<()> {
        allocate_file(&self.file, len_bytes)
    }
}

/// Preallocates `len_bytes` of `file` with fallocate(2), falling back to
/// `set_len` on file systems that do not support it.
pub fn allocate_file(file: &File, len_bytes: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len_bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length exceeds off_t"))?;
    // SAFETY: fallocate only reads its integer arguments; the fd is owned by
    // `file`, which outlives the call.
    let result = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
    if result == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => {
            if file.metadata()?.len() < len_bytes {
                file.set_len(len_bytes)?;
            }
            Ok(())
        }
        _ => Err(error),
    }
}

/// What a [`FaultInjectingFile`] does to the write it is armed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteFault {
    /// The write returns an error and changes nothing.
    Fail,
    /// Only the first `keep_bytes` reach the file, then the write errors
    /// (a torn write, as after a power cut).
    Tear { keep_bytes: usize },
}

/// Shared control of a [`FaultInjectingFile`]: tests keep a clone and arm it.
#[derive(Debug, Default)]
pub struct FaultPlan {
    writes_seen: AtomicU64,
    armed: Mutex<Option<(u64, WriteFault)>>,
    paused: Mutex<bool>,
    resumed: Condvar,
    calls_held: AtomicU64,
}

impl FaultPlan {
    /// A plan with nothing armed.
    pub fn new() -> Arc<FaultPlan> {
        Arc::new(FaultPlan::default())
    }

    /// Applies `fault` to the write `writes_from_now` calls ahead
    /// (0 = the next `write_at`). Later writes fail too, as a dead disk
    /// would, until [`FaultPlan::disarm`].
    pub fn arm(&self, writes_from_now: u64, fault: WriteFault) {
        let seen = self.writes_seen.load(Ordering::SeqCst);
        *self.armed.lock().expect("fault plan lock") = Some((seen + writes_from_now, fault));
    }

    /// Stops injecting faults.
    pub fn disarm(&self) {
        *self.armed.lock().expect("fault plan lock") = None;
    }

    /// Number of `write_at` calls seen so far.
    pub fn writes_seen(&self) -> u64 {
        self.writes_seen.load(Ordering::SeqCst)
    }

    /// Holds every later call on the file (reads, writes, syncs, length
    /// changes) until [`FaultPlan::resume`], as a stalled disk would; tests
    /// use it to keep a persist in flight. A call held longer than
    /// [`PAUSE_WAIT_MAX`] fails.
    pub fn pause(&self) {
        *self.paused.lock().expect("fault plan lock") = true;
    }

    /// Releases the calls [`FaultPlan::pause`] holds.
    pub fn resume(&self) {
        *self.paused.lock().expect("fault plan lock") = false;
        self.resumed.notify_all();
    }

    /// Number of calls held by [`FaultPlan::pause`] right now.
    pub fn calls_held(&self) -> u64 {
        self.calls_held.load(Ordering::SeqCst)
    }

    fn wait_while_paused(&self) -> io::Result<()> {
        let deadline = Instant::now() + PAUSE_WAIT_MAX;
        let mut paused = self.paused.lock().expect("fault plan lock");
        if !*paused {
            return Ok(());
        }
        self.calls_held.fetch_add(1, Ordering::SeqCst);
        while *paused {
            let now = Instant::now();
            if now >= deadline {
                self.calls_held.fetch_sub(1, Ordering::SeqCst);
                return Err(io::Error::other("paused file call never resumed"));
            }
            paused = self
                .resumed
                .wait_timeout(paused, deadline - now)
                .expect("fault plan lock")
                .0;
        }
        self.calls_held.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A test wrapper that fails or tears the Nth write (see [`FaultPlan`]).
/// After the faulty write every later write and sync fails, so the state on
/// disk is exactly what a crash at that moment would leave. It can also
/// hold every call while the plan is paused.
pub struct FaultInjectingFile {
    inner: Box<dyn StorageFile>,
    plan: Arc<FaultPlan>,
}

impl FaultInjectingFile {
    /// Wraps `inner`, obeying `plan`.
    pub fn new(inner: Box<dyn StorageFile>, plan: Arc<FaultPlan>) -> FaultInjectingFile {
        FaultInjectingFile { inner, plan }
    }

    fn injected() -> io::Error {
        io::Error::other("injected fault")
    }

    fn tripped(&self, call: u64) -> Option<WriteFault> {
        let armed = *self.plan.armed.lock().expect("fault plan lock");
        match armed {
            Some((at, fault)) if call == at => Some(fault),
            Some((at, _)) if call > at => Some(WriteFault::Fail),
            _ => None,
        }
    }

    fn dead(&self) -> bool {
        let armed = *self.plan.armed.lock().expect("fault plan lock");
        matches!(armed, Some((at, _)) if self.plan.writes_seen() > at)
    }
}

impl StorageFile for FaultInjectingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.plan.wait_while_paused()?;
        self.inner.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.plan.wait_while_paused()?;
        let call = self.plan.writes_seen.fetch_add(1, Ordering::SeqCst);
        match self.tripped(call) {
            None => self.inner.write_at(buf, offset),
            Some(WriteFault::Fail) => Err(Self::injected()),
            Some(WriteFault::Tear { keep_bytes }) => {
                let keep = keep_bytes.min(buf.len());
                self.inner.write_at(&buf[..keep], offset)?;
                Err(Self::injected())
            }
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        self.plan.wait_while_paused()?;
        if self.dead() {
            return Err(Self::injected());
        }
        self.inner.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        self.plan.wait_while_paused()?;
        self.inner.len()
    }

    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.plan.wait_while_paused()?;
        if self.dead() {
            return Err(Self::injected());
        }
        self.inner.set_len(len_bytes)
    }

    fn allocate(&self, len_bytes: u64) -> io::Result<()> {
        self.plan.wait_while_paused()?;
        if self.dead() {
            return Err(Self::injected());
        }
        self.inner.allocate(len_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_std_file() -> (tempfile::TempDir, StdFile) {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        (dir, StdFile::new(file))
    }

    #[test]
    fn tear_keeps_prefix_and_kills_later_writes() {
        let (_dir, file) = temp_std_file();
        let plan = FaultPlan::new();
        let faulty = FaultInjectingFile::new(Box::new(file), plan.clone());
        faulty.write_at(b"aaaa", 0).unwrap();
        plan.arm(1, WriteFault::Tear { keep_bytes: 2 });
        faulty.write_at(b"bbbb", 4).unwrap();
        assert!(faulty.write_at(b"cccc", 8).is_err());
        assert!(faulty.write_at(b"dddd", 12).is_err());
        assert!(faulty.sync_data().is_err());
        let mut buf = [0u8; 10];
        faulty.read_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"aaaabbbbcc");
        assert_eq!(faulty.len().unwrap(), 10);
    }

    #[test]
    fn pause_holds_calls_until_resume() {
        let (_dir, file) = temp_std_file();
        let plan = FaultPlan::new();
        let faulty = Arc::new(FaultInjectingFile::new(Box::new(file), plan.clone()));
        plan.pause();
        let writer = {
            let faulty = faulty.clone();
            std::thread::spawn(move || faulty.write_at(b"late", 0))
        };
        for _ in 0..10_000 {
            if plan.calls_held() == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(plan.calls_held(), 1);
        assert_eq!(faulty.inner.len().unwrap(), 0, "the write is held");
        plan.resume();
        writer.join().unwrap().unwrap();
        assert_eq!(plan.calls_held(), 0);
        assert_eq!(faulty.len().unwrap(), 4);
    }

    #[test]
    fn allocate_extends() {
        let (_dir, file) = temp_std_file();
        file.allocate(8192).unwrap();
        assert_eq!(file.len().unwrap(), 8192);
    }
}
