//! The I/O layer at the bottom of the engine.
//!
//! Everything above this module (the B+tree file in particular) reads and
//! writes through [`StorageFile`], and creates, renames and removes files
//! through [`FileSystem`], so tests can swap in [`FaultInjectingFile`] and
//! [`FaultInjectingFileSystem`] to fail or tear a chosen write, or crash at a
//! rename or a directory fsync, and check what recovery makes of it
//! (`fault.rs`). The WAL's hot path goes through `uring.rs` instead (one
//! linked write + fdatasync); its recovery reads use plain std I/O.

mod fault;
mod file_system;

pub use fault::{
    DirOp, FaultInjectingFile, FaultInjectingFileSystem, FaultPlan, WriteFault, PAUSE_WAIT_MAX,
};
pub use file_system::{sync_parent_dir, FileSystem, StdFileSystem};

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocate_extends() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        let file = StdFile::new(file);
        file.allocate(8192).unwrap();
        assert_eq!(file.len().unwrap(), 8192);
    }
}
