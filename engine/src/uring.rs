//! The engine's only io_uring code: a two-entry ring that writes a buffer at
//! an offset LINKED (`IOSQE_IO_LINK`) with an fdatasync
//! (`IORING_OP_FSYNC` + `FsyncFlags::DATASYNC`) and waits for both.
//!
//! A short write breaks the link (the kernel cancels the fsync with
//! `ECANCELED`); the remainder is then resubmitted with a fresh linked
//! fdatasync, so the common case is exactly one write + one fdatasync.

use io_uring::{opcode, squeue, types, IoUring};
use std::io;
use std::os::unix::io::RawFd;

/// Entries in the ring: one write + one fsync.
const RING_ENTRIES: u32 = 2;
/// Resubmissions allowed for short writes / `EINTR` / `EAGAIN` before giving up.
const WRITE_ATTEMPTS_MAX: u32 = 64;
/// The largest single write the kernel accepts in one SQE (`len` is u32);
/// keep below `MAX_RW_COUNT` (2 GiB - 4 KiB).
const WRITE_CHUNK_BYTES_MAX: usize = 1 << 30;

const USER_DATA_WRITE: u64 = 1;
const USER_DATA_FSYNC: u64 = 2;

/// A small ring for durable positional writes.
pub struct SyncRing {
    ring: IoUring,
}

impl std::fmt::Debug for SyncRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncRing").finish_non_exhaustive()
    }
}

impl SyncRing {
    /// Creates the ring.
    pub fn new() -> io::Result<SyncRing> {
        Ok(SyncRing {
            ring: IoUring::new(RING_ENTRIES)?,
        })
    }

    /// Writes all of `buf` at `offset` of `fd` and makes it durable with
    /// fdatasync; returns once both have completed.
    pub fn write_and_sync(&mut self, fd: RawFd, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut written = 0usize;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            if attempts > WRITE_ATTEMPTS_MAX {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "io_uring write made no progress",
                ));
            }
            let remaining = &buf[written..];
            let chunk_len = remaining.len().min(WRITE_CHUNK_BYTES_MAX);
            let chunk_len_u32 = u32::try_from(chunk_len).expect("chunk bounded by 1 GiB");
            let write = opcode::Write::new(types::Fd(fd), remaining.as_ptr(), chunk_len_u32)
                .offset(offset + written as u64)
                .build()
                .flags(squeue::Flags::IO_LINK)
                .user_data(USER_DATA_WRITE);
            let fsync = opcode::Fsync::new(types::Fd(fd))
                .flags(types::FsyncFlags::DATASYNC)
                .build()
                .user_data(USER_DATA_FSYNC);
            {
                let mut submission = self.ring.submission();
                // SAFETY: the buffer `remaining` lives until both entries have
                // completed: we wait for both completions below before
                // returning or touching `buf` again, and the fd stays open
                // (borrowed by the caller for the whole call).
                unsafe {
                    submission
                        .push(&write)
                        .map_err(|_| io::Error::other("io_uring submission queue full"))?;
                    submission
                        .push(&fsync)
                        .map_err(|_| io::Error::other("io_uring submission queue full"))?;
                }
            }
            let mut write_result: Option<i32> = None;
            let mut fsync_result: Option<i32> = None;
            let mut submitted = false;
            while write_result.is_none() || fsync_result.is_none() {
                let want = if submitted { 1 } else { 2 };
                match self.ring.submit_and_wait(want) {
                    Ok(_) => submitted = true,
                    Err(error) if error.raw_os_error() == Some(libc::EINTR) => {
                        submitted = true;
                        continue;
                    }
                    Err(error) => return Err(error),
                }
                for entry in self.ring.completion() {
                    match entry.user_data() {
                        USER_DATA_WRITE => write_result = Some(entry.result()),
                        USER_DATA_FSYNC => fsync_result = Some(entry.result()),
                        other => unreachable!("unknown io_uring user_data {other}"),
                    }
                }
            }
            let write_result = write_result.expect("loop waits for the write");
            let fsync_result = fsync_result.expect("loop waits for the fsync");
            if write_result < 0 {
                let errno = -write_result;
                if errno == libc::EINTR || errno == libc::EAGAIN {
                    continue;
                }
                return Err(io::Error::from_raw_os_error(errno));
            }
            let wrote = usize::try_from(write_result).expect("non-negative");
            assert!(wrote <= chunk_len, "kernel wrote more than asked");
            written += wrote;
            if written == buf.len() {
                if fsync_result < 0 {
                    return Err(io::Error::from_raw_os_error(-fsync_result));
                }
                return Ok(());
            }
            if wrote == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "io_uring write wrote zero bytes",
                ));
            }
            // Short write (or a chunked one): the fsync was cancelled or ran
            // early; go round again with the rest and a new linked fsync.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::io::AsRawFd;

    #[test]
    fn write_and_sync_writes_at_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let mut ring = SyncRing::new().unwrap();
        ring.write_and_sync(file.as_raw_fd(), b"hello", 3).unwrap();
        ring.write_and_sync(file.as_raw_fd(), b"abc", 0).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abchello");
    }
}
