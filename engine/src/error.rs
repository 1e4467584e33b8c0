//! One error enum per concern: [`WalError`] for the log, [`StoreError`] for
//! the B+tree file, [`DefragError`] for rewriting it, [`MvccError`] for
//! reads at a revision. Every error about bytes on disk names the file and
//! the byte offset.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Errors of the write-ahead log.
#[derive(Debug)]
pub enum WalError {
    /// An I/O call on `path` failed.
    Io { path: PathBuf, source: io::Error },
    /// Bytes at `offset` of `path` are not a valid header or record.
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: &'static str,
    },
    /// The segment at `path` was written by another format version.
    UnsupportedVersion {
        path: PathBuf,
        offset: u64,
        found: u32,
        expected: u32,
    },
    /// A file in the WAL directory is named like a segment but its name is
    /// not `{seq:016x}.wal`.
    BadSegmentName { path: PathBuf },
    /// The segment at `path` is missing although `next`, a later one, is
    /// there: the records it held are lost.
    MissingSegment { path: PathBuf, next: PathBuf },
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::Io { path, source } => write!(f, "wal: {}: {source}", path.display()),
            WalError::Corrupt {
                path,
                offset,
                reason,
            } => write!(
                f,
                "wal: {}: corrupt at byte offset {offset}: {reason}",
                path.display()
            ),
            WalError::UnsupportedVersion {
                path,
                offset,
                found,
                expected,
            } => write!(
                f,
                "wal: {}: format version {found} at byte offset {offset}, expected {expected}",
                path.display()
            ),
            WalError::BadSegmentName { path } => {
                write!(f, "wal: {}: unexpected segment file name", path.display())
            }
            WalError::MissingSegment { path, next } => write!(
                f,
                "wal: {}: segment missing (a hole in the sequence before {})",
                path.display(),
                next.display()
            ),
        }
    }
}

impl std::error::Error for WalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WalError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Errors of the B+tree file behind the [`crate::Store`].
#[derive(Debug)]
pub enum StoreError {
    /// An I/O call on `path` failed.
    Io { path: PathBuf, source: io::Error },
    /// Bytes at `offset` of `path` are not what the format requires.
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: &'static str,
    },
    /// The file at `path` was written by another format version.
    UnsupportedVersion {
        path: PathBuf,
        offset: u64,
        found: u32,
        expected: u32,
    },
    /// The file uses a page size this build does not.
    UnsupportedPageSize {
        path: PathBuf,
        offset: u64,
        found: u32,
        expected: u32,
    },
    /// The persister thread of the store over `path` is gone (it panicked),
    /// so nothing can be persisted any more; reopen the store.
    PersisterGone { path: PathBuf },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io { path, source } => write!(f, "store: {}: {source}", path.display()),
            StoreError::Corrupt {
                path,
                offset,
                reason,
            } => write!(
                f,
                "store: {}: corrupt at byte offset {offset}: {reason}",
                path.display()
            ),
            StoreError::UnsupportedVersion {
                path,
                offset,
                found,
                expected,
            } => write!(
                f,
                "store: {}: format version {found} at byte offset {offset}, expected {expected}",
                path.display()
            ),
            StoreError::UnsupportedPageSize {
                path,
                offset,
                found,
                expected,
            } => write!(
                f,
                "store: {}: page size {found} at byte offset {offset}, expected {expected}",
                path.display()
            ),
            StoreError::PersisterGone { path } => write!(
                f,
                "store: {}: the persister thread is gone (it panicked); nothing more can be persisted",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Errors of a defrag ([`crate::Store::start_defrag`],
/// [`crate::Store::poll_defrag`], [`crate::Store::defrag`]).
#[derive(Debug)]
pub enum DefragError {
    /// A defrag is already queued or in flight, or finished with its outcome
    /// not yet collected by [`crate::Store::poll_defrag`].
    InProgress,
    /// Writing the defragmented file failed before it replaced the old one
    /// (or the persister thread is gone). Nothing changed: the store goes on
    /// appending to the old file. The partial new file is removed (if that
    /// fails too, by the next defrag or open).
    Aborted(StoreError),
    /// The defragmented file replaced the old one (the rename happened) but
    /// fsyncing the directory at `path` failed. The store now appends to the
    /// new file; until a directory fsync succeeds a crash may bring back
    /// either file, and both hold every persisted batch. The persisted index
    /// does not advance, and the next persist fsyncs the directory before it
    /// writes anything.
    DirectorySync { path: PathBuf, source: io::Error },
}

impl fmt::Display for DefragError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DefragError::InProgress => f.write_str("defrag: a defrag is already in progress"),
            DefragError::Aborted(source) => write!(f, "defrag: aborted, nothing changed: {source}"),
            DefragError::DirectorySync { path, source } => write!(
                f,
                "defrag: {}: the new file is in place but fsyncing its directory failed: {source}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for DefragError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DefragError::InProgress => None,
            DefragError::Aborted(source) => Some(source),
            DefragError::DirectorySync { source, .. } => Some(source),
        }
    }
}

/// Errors of a read at a revision; the texts are etcd's (net/ prefixes
/// `etcdserver: `).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MvccError {
    /// The revision is below the compaction point.
    Compacted,
    /// The revision is above the store's current revision.
    FutureRevision,
}

impl fmt::Display for MvccError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MvccError::Compacted => f.write_str("mvcc: required revision has been compacted"),
            MvccError::FutureRevision => {
                f.write_str("mvcc: required revision is a future revision")
            }
        }
    }
}

impl std::error::Error for MvccError {}
