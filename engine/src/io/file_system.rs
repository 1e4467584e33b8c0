//! The directory operations the engine needs: open, create, rename, remove,
//! and fsync of a directory, behind the [`FileSystem`] trait so crash tests
//! can fail them (`fault.rs`) exactly as they fail writes.
//!
//! Rename is the commit point of every file replacement the engine makes
//! (new tree files, defrag): write the new file under a temporary name,
//! fdatasync it, rename it over the final name, then fsync the directory
//! so the new name survives a crash.

use super::{StdFile, StorageFile};
use std::fs::OpenOptions;
use std::io;
use std::path::Path;

/// Creating, renaming and removing files, and syncing directories.
pub trait FileSystem: Send + Sync {
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Creates `path` for reading and writing, emptying it if it exists.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Whether anything is at `path`.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// rename(2): atomically replaces `to` with `from`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file at `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// fsyncs the directory holding `path`, so names changed in it (a
    /// create, a rename) are durable.
    fn sync_parent_dir(&self, path: &Path) -> io::Result<()>;
}

/// [`FileSystem`] over `std::fs`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdFileSystem;

impl FileSystem for StdFileSystem {
    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(StdFile::new(file)))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(StdFile::new(file)))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_parent_dir(&self, path: &Path) -> io::Result<()> {
        sync_parent_dir(path)
    }
}

/// fsyncs the directory holding `path` (`.` for a bare file name).
pub fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)?.sync_all()
}
