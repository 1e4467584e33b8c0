//! Direct I/O for whole pages. [`StdFile`](super::StdFile) writes a buffer
//! that starts on a [`DIRECT_ALIGN_BYTES`] boundary in memory and in the
//! file, and spans whole such blocks, through a second descriptor of the
//! same file opened with `O_DIRECT`: the bytes go from our buffer to the
//! device, without a copy into the page cache first, and the fdatasync
//! that follows has less to write back. Measured here on ext4 over
//! virtio, 780 KiB of nodes then fdatasync: 322-364 us direct against
//! 451-494 buffered.
//!
//! [`PageBuffer`] is the buffer such writes come from. File systems
//! without `O_DIRECT` (tmpfs on older kernels) get buffered writes.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;

/// Alignment (memory address, file offset, length) of a direct write: a
/// page, which covers every logical block size Linux file systems use.
pub const DIRECT_ALIGN_BYTES: usize = 4096;

/// Whether `buf` at `offset` can be written with `O_DIRECT`.
pub(super) fn is_direct_aligned(buf: &[u8], offset: u64) -> bool {
    !buf.is_empty()
        && (buf.as_ptr() as usize).is_multiple_of(DIRECT_ALIGN_BYTES)
        && buf.len().is_multiple_of(DIRECT_ALIGN_BYTES)
        && offset.is_multiple_of(DIRECT_ALIGN_BYTES as u64)
}

/// A second descriptor of `file` opened with `O_DIRECT` (through
/// `/proc/self/fd`, so no path is needed), or `None` where the file
/// system refuses it.
pub(super) fn open_direct(file: &File) -> Option<File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .ok()
}

/// The least a [`PageBuffer`] grows to.
const GROWTH_MIN_BYTES: usize = 64 << 10;

/// A growable run of bytes whose start is aligned to [`DIRECT_ALIGN_BYTES`]
/// in memory. Safe code: the vector is allocated `DIRECT_ALIGN_BYTES - 1`
/// bytes larger and used from its first aligned byte; it is never grown in
/// place (growing moves to a new vector). Appended bytes hold whatever an
/// earlier use left there: callers write every byte they append.
#[derive(Debug, Default)]
pub struct PageBuffer {
    bytes: Vec<u8>,
    /// Offset of the first aligned byte in `bytes`.
    start: usize,
    /// Bytes in use from `start`.
    len: usize,
}

impl PageBuffer {
    /// An empty buffer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> PageBuffer {
        let bytes = vec![0u8; capacity + DIRECT_ALIGN_BYTES - 1];
        let start = bytes.as_ptr().align_offset(DIRECT_ALIGN_BYTES);
        PageBuffer {
            bytes,
            start,
            len: 0,
        }
    }

    /// Bytes it holds without growing.
    pub fn capacity(&self) -> usize {
        self.bytes.len() - self.start
    }

    /// Bytes in use.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no bytes are in use.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes in use.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.len]
    }

    /// Adds `count` bytes at the end (holding stale bytes); returns them
    /// for the caller to fill, all of them.
    pub fn append(&mut self, count: usize) -> &mut [u8] {
        let room = self.capacity();
        if self.len + count > room {
            let mut grown =
                PageBuffer::with_capacity((self.len + count).max(2 * room).max(GROWTH_MIN_BYTES));
            grown.bytes[grown.start..grown.start + self.len].copy_from_slice(self.as_slice());
            grown.len = self.len;
            *self = grown;
        }
        let from = self.start + self.len;
        self.len += count;
        &mut self.bytes[from..from + count]
    }

    /// Empties the buffer and keeps its room.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_buffer_stays_aligned_and_keeps_its_bytes_as_it_grows() {
        let mut buffer = PageBuffer::with_capacity(DIRECT_ALIGN_BYTES);
        for round in 0..40u8 {
            buffer.append(3 * DIRECT_ALIGN_BYTES).fill(round + 1);
            assert!(is_direct_aligned(buffer.as_slice(), 0));
        }
        assert_eq!(buffer.len(), 120 * DIRECT_ALIGN_BYTES);
        assert!(buffer.capacity() >= buffer.len());
        for (index, chunk) in buffer.as_slice().chunks(3 * DIRECT_ALIGN_BYTES).enumerate() {
            assert!(chunk.iter().all(|&byte| byte == index as u8 + 1));
        }
        let capacity = buffer.capacity();
        buffer.clear();
        assert!(buffer.is_empty());
        assert_eq!(buffer.capacity(), capacity);
    }

    #[test]
    fn only_whole_aligned_blocks_go_direct() {
        let buffer = {
            let mut buffer = PageBuffer::with_capacity(2 * DIRECT_ALIGN_BYTES);
            buffer.append(2 * DIRECT_ALIGN_BYTES);
            buffer
        };
        let pages = buffer.as_slice();
        assert!(is_direct_aligned(pages, 8192));
        assert!(!is_direct_aligned(pages, 100));
        assert!(!is_direct_aligned(&pages[..100], 0));
        assert!(!is_direct_aligned(&pages[1..4097], 0));
        assert!(!is_direct_aligned(&[], 0));
    }
}
