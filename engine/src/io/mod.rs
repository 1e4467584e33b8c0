//! The I/O layer at the bottom of the engine.
//!
//! Everything above this module (the B+tree file in particular) reads and
//! writes through [`StorageFile`], and creates, renames and removes files
//! through [`FileSystem`], so tests can swap in [`FaultInjectingFile`] and
//! [`FaultInjectingFileSystem`] to fail or tear a chosen write, or crash at a
//! rename or a directory fsync, and check what recovery makes of it
//! (`fault.rs`). The WAL's hot path goes through `uring.rs` instead (one
//! linked write + fdatasync); its recovery reads use plain std I/O.

mod direct;
mod fault;
mod file_system;

pub use direct::{PageBuffer, DIRECT_ALIGN_BYTES};

pub use fault::{
    DirOp, FaultInjectingFile, FaultInjectingFileSystem, FaultPlan, WriteFault, PAUSE_WAIT_MAX,
};
pub use file_system::{sync_parent_dir, FileSystem, StdFileSystem};

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Positional file I/O: the only operations the engine's files need.
pub trait StorageFile: Send + Sync {
    /// Fills `buf` from `offset`; a short file is an `UnexpectedEof` error.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`. [`StdFile`] writes whole aligned
    /// pages (a [`PageBuffer`]'s) with `O_DIRECT`.
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

/// [`StorageFile`] over a `std::fs::File`. Writes of whole pages aligned in
/// memory and in the file go through a second, `O_DIRECT` descriptor
/// (`direct.rs`); every other write, and every read, is buffered.
#[derive(Debug)]
pub struct StdFile {
    file: File,
    /// The `O_DIRECT` descriptor, opened at the first aligned write;
    /// `None` where the file system refuses it.
    direct: OnceLock<Option<File>>,
    /// Set when a direct write was refused as invalid: later writes are
    /// buffered.
    direct_refused: AtomicBool,
}

impl StdFile {
    /// Wraps an open file (it must be readable and writable).
    pub fn new(file: File) -> StdFile {
        StdFile {
            file,
            direct: OnceLock::new(),
            direct_refused: AtomicBool::new(false),
        }
    }

    /// Writes `buf` through the `O_DIRECT` descriptor; `Ok(false)` when it
    /// cannot be (not aligned, or the file system refuses direct I/O).
    fn write_direct(&self, buf: &[u8], offset: u64) -> io::Result<bool> {
        if !direct::is_direct_aligned(buf, offset) || self.direct_refused.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let Some(direct) = self.direct.get_or_init(|| direct::open_direct(&self.file)) else {
            return Ok(false);
        };
        match direct.write_all_at(buf, offset) {
            Ok(()) => Ok(true),
            // Refused before any byte moved (alignment the device does not
            // take, or no direct I/O after all): the caller writes it
            // buffered, whole.
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                self.direct_refused.store(true, Ordering::Relaxed);
                Ok(false)
            }
            Err(error) => Err(error),
        }
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
        if self.write_direct(buf, offset)? {
            return Ok(());
        }
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A new, empty [`StdFile`] in a temporary directory.
    pub(crate) fn temp_std_file() -> (tempfile::TempDir, StdFile) {
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
    fn aligned_pages_go_direct_and_read_back_with_buffered_writes_between() {
        let (dir, file) = temp_std_file();
        let mut pages = PageBuffer::with_capacity(3 * DIRECT_ALIGN_BYTES);
        pages.append(3 * DIRECT_ALIGN_BYTES).fill(0xA5);
        // Buffered, then direct over it, then buffered into the middle.
        file.write_at(&[1u8; 10_000], 0).unwrap();
        file.write_at(pages.as_slice(), 0).unwrap();
        file.write_at(b"between", 5000).unwrap();
        file.sync_data().unwrap();
        let mut expected = vec![0xA5u8; 3 * DIRECT_ALIGN_BYTES];
        expected[5000..5007].copy_from_slice(b"between");
        let mut read = vec![0u8; expected.len()];
        file.read_at(&mut read, 0).unwrap();
        assert_eq!(read, expected);
        if direct::open_direct(&file.file).is_some() {
            assert!(
                matches!(file.direct.get(), Some(Some(_))),
                "the aligned write went buffered"
            );
            assert!(!file.direct_refused.load(Ordering::Relaxed));
        } else {
            eprintln!(
                "WARNING: no O_DIRECT on {}: the direct write path went untested",
                dir.path().display()
            );
        }
    }

    #[test]
    fn allocate_extends() {
        let (_dir, file) = temp_std_file();
        file.allocate(8192).unwrap();
        assert_eq!(file.len().unwrap(), 8192);
    }
}
