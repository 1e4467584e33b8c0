//! Fault injection for crash tests: [`FaultInjectingFile`] fails or tears
//! the Nth write, [`FaultInjectingFileSystem`] hands out such files and
//! fails a chosen directory operation ([`DirOp`]), all obeying one shared
//! [`FaultPlan`]. After the fault the "disk" is dead: every later change
//! (write, sync, length change, create, rename, remove, directory fsync)
//! fails, so what is on disk is exactly what a crash at that moment would
//! leave. Reads keep working, so the test can look.

use super::{FileSystem, StdFileSystem, StorageFile};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Longest a call held by [`FaultPlan::pause`] waits for
/// [`FaultPlan::resume`]; then it fails, so a test that forgets to resume
/// fails instead of hanging.
pub const PAUSE_WAIT_MAX: Duration = Duration::from_secs(30);

/// What a [`FaultInjectingFile`] does to the write it is armed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteFault {
    /// The write returns an error and changes nothing.
    Fail,
    /// Only the first `keep_bytes` reach the file, then the write errors
    /// (a torn write, as after a power cut).
    Tear { keep_bytes: usize },
}

/// Directory operations of a [`FaultInjectingFileSystem`] that
/// [`FaultPlan::crash_at`] can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirOp {
    /// [`FileSystem::create`].
    Create,
    /// [`FileSystem::rename`]: a crash just before the rename.
    Rename,
    /// [`FileSystem::remove_file`].
    Remove,
    /// [`FileSystem::sync_parent_dir`]: after a rename, a crash just after
    /// it (the new name is in place but its fsync fails).
    SyncDir,
}

/// Shared control of [`FaultInjectingFile`]s and a
/// [`FaultInjectingFileSystem`]: tests keep a clone and arm it.
#[derive(Debug, Default)]
pub struct FaultPlan {
    writes_seen: AtomicU64,
    armed: Mutex<Option<(u64, WriteFault)>>,
    /// The directory operation [`FaultPlan::crash_at`] fails next.
    dir_fault: Mutex<Option<DirOp>>,
    syncs_seen: AtomicU64,
    /// The `sync_data` call (counted in `syncs_seen`) that fails.
    sync_armed: Mutex<Option<u64>>,
    /// Set when a sync or directory operation fault fired: the disk is dead.
    crashed: AtomicBool,
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

    /// Fails the fdatasync `syncs_from_now` calls ahead (0 = the next
    /// `sync_data`) and then, like a crash, every later change to the disk,
    /// until [`FaultPlan::disarm`].
    pub fn arm_sync(&self, syncs_from_now: u64) {
        let seen = self.syncs_seen.load(Ordering::SeqCst);
        *self.sync_armed.lock().expect("fault plan lock") = Some(seen + syncs_from_now);
    }

    /// Number of `sync_data` calls seen so far.
    pub fn syncs_seen(&self) -> u64 {
        self.syncs_seen.load(Ordering::SeqCst)
    }

    /// Fails the next `op` (without doing it) and then, like a crash, every
    /// later change to the disk, until [`FaultPlan::disarm`].
    pub fn crash_at(&self, op: DirOp) {
        *self.dir_fault.lock().expect("fault plan lock") = Some(op);
    }

    /// Stops injecting faults (armed writes and syncs, directory operation
    /// faults, and the dead disk any of them left).
    pub fn disarm(&self) {
        *self.armed.lock().expect("fault plan lock") = None;
        *self.sync_armed.lock().expect("fault plan lock") = None;
        *self.dir_fault.lock().expect("fault plan lock") = None;
        self.crashed.store(false, Ordering::SeqCst);
    }

    /// Whether a fault fired and the disk is dead (every change fails).
    pub fn dead(&self) -> bool {
        if self.crashed.load(Ordering::SeqCst) {
            return true;
        }
        let armed = *self.armed.lock().expect("fault plan lock");
        matches!(armed, Some((at, _)) if self.writes_seen() > at)
    }

    /// Fails `op` if the disk is dead or `op` is the armed directory fault
    /// (which kills the disk).
    fn check_dir_op(&self, op: DirOp) -> io::Result<()> {
        self.wait_while_paused()?;
        if self.dead() {
            return Err(injected());
        }
        let mut dir_fault = self.dir_fault.lock().expect("fault plan lock");
        if *dir_fault == Some(op) {
            *dir_fault = None;
            self.crashed.store(true, Ordering::SeqCst);
            return Err(injected());
        }
        Ok(())
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

/// A test wrapper that fails or tears the Nth write, or fails the Nth
/// fdatasync (see [`FaultPlan`]). After the fault every later write and
/// sync fails, so the state on disk is exactly what a crash at that moment
/// would leave. It can also hold every call while the plan is paused.
pub struct FaultInjectingFile {
    inner: Box<dyn StorageFile>,
    plan: Arc<FaultPlan>,
}

impl FaultInjectingFile {
    /// Wraps `inner`, obeying `plan`.
    pub fn new(inner: Box<dyn StorageFile>, plan: Arc<FaultPlan>) -> FaultInjectingFile {
        FaultInjectingFile { inner, plan }
    }

    fn tripped(&self, call: u64) -> Option<WriteFault> {
        let armed = *self.plan.armed.lock().expect("fault plan lock");
        match armed {
            Some((at, fault)) if call == at => Some(fault),
            Some((at, _)) if call > at => Some(WriteFault::Fail),
            _ if self.plan.crashed.load(Ordering::SeqCst) => Some(WriteFault::Fail),
            _ => None,
        }
    }

    fn dead(&self) -> bool {
        self.plan.dead()
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
            Some(WriteFault::Fail) => Err(injected()),
            Some(WriteFault::Tear { keep_bytes }) => {
                let keep = keep_bytes.min(buf.len());
                self.inner.write_at(&buf[..keep], offset)?;
                Err(injected())
            }
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        self.plan.wait_while_paused()?;
        if self.dead() {
            return Err(injected());
        }
        let call = self.plan.syncs_seen.fetch_add(1, Ordering::SeqCst);
        let armed = *self.plan.sync_armed.lock().expect("fault plan lock");
        if armed.is_some_and(|at| call >= at) {
            self.plan.crashed.store(true, Ordering::SeqCst);
            return Err(injected());
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
            return Err(injected());
        }
        self.inner.set_len(len_bytes)
    }

    fn allocate(&self, len_bytes: u64) -> io::Result<()> {
        self.plan.wait_while_paused()?;
        if self.dead() {
            return Err(injected());
        }
        self.inner.allocate(len_bytes)
    }
}

fn injected() -> io::Error {
    io::Error::other("injected fault")
}

/// A [`FileSystem`] whose files are [`FaultInjectingFile`]s and whose
/// directory operations fail as the shared [`FaultPlan`] says.
pub struct FaultInjectingFileSystem {
    inner: Box<dyn FileSystem>,
    plan: Arc<FaultPlan>,
}

impl FaultInjectingFileSystem {
    /// Wraps `inner`, obeying `plan`.
    pub fn new(inner: Box<dyn FileSystem>, plan: Arc<FaultPlan>) -> FaultInjectingFileSystem {
        FaultInjectingFileSystem { inner, plan }
    }

    /// Over `std::fs`.
    pub fn std(plan: Arc<FaultPlan>) -> FaultInjectingFileSystem {
        FaultInjectingFileSystem::new(Box::new(StdFileSystem), plan)
    }

    fn wrap(&self, file: Box<dyn StorageFile>) -> Box<dyn StorageFile> {
        Box::new(FaultInjectingFile::new(file, self.plan.clone()))
    }
}

impl FileSystem for FaultInjectingFileSystem {
    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.plan.wait_while_paused()?;
        Ok(self.wrap(self.inner.open(path)?))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.plan.check_dir_op(DirOp::Create)?;
        Ok(self.wrap(self.inner.create(path)?))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.plan.wait_while_paused()?;
        self.inner.exists(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.plan.check_dir_op(DirOp::Rename)?;
        self.inner.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.plan.check_dir_op(DirOp::Remove)?;
        self.inner.remove_file(path)
    }

    fn sync_parent_dir(&self, path: &Path) -> io::Result<()> {
        self.plan.check_dir_op(DirOp::SyncDir)?;
        self.inner.sync_parent_dir(path)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::temp_std_file;
    use super::*;

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
    fn dir_op_crash_kills_the_disk_until_disarm() {
        let dir = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let file_system = FaultInjectingFileSystem::std(plan.clone());
        let from = dir.path().join("a");
        let to = dir.path().join("b");
        let file = file_system.create(&from).unwrap();
        file.write_at(b"x", 0).unwrap();
        plan.crash_at(DirOp::Rename);
        assert!(file_system.rename(&from, &to).is_err());
        assert!(from.exists() && !to.exists(), "the rename did not happen");
        assert!(plan.dead());
        assert!(file.write_at(b"y", 1).is_err());
        assert!(file.sync_data().is_err());
        assert!(file_system.remove_file(&from).is_err());
        let mut buf = [0u8; 1];
        file.read_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"x");
        plan.disarm();
        file_system.rename(&from, &to).unwrap();
        file_system.sync_parent_dir(&to).unwrap();
        assert!(to.exists());
    }
}
