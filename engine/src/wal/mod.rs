//! The write-ahead log: preallocated segment files of checksummed records.
//!
//! The raft core appends records in memory ([`Wal::append`]) and makes the
//! whole batch durable with [`Wal::sync`]: one io_uring write linked with one
//! fdatasync (`uring.rs`). When a batch does not fit in the active segment a
//! new preallocated segment is created first (a batch larger than a segment
//! gets a segment of its own size). On [`Wal::open`] every record is read
//! back; a torn tail in the last segment is cut off as etcd cuts it
//! (`torn.rs` says exactly when a bad record counts as torn), any other bad
//! record, a bad header, another format version or a hole in the segment
//! sequence is an error naming the file (and byte offset). Segments whose
//! records are all below the backend's persisted index are deleted with
//! [`Wal::release_before`].
//!
//! Formats: `segment.rs` (file header, naming) and `record.rs` (records).

mod record;
mod segment;
mod torn;

pub use record::{WalRecord, RECORD_PAYLOAD_BYTES_MAX};
pub use segment::{SEGMENT_FORMAT_VERSION, SEGMENT_HEADER_BYTES};

use crate::error::WalError;
use crate::uring::SyncRing;
use record::{BadRecord, Decoded};
use segment::{
    check_header, create_segment, parse_segment_file_name, sync_dir, SEGMENT_SUFFIX,
    SEGMENT_TMP_SUFFIX,
};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Default segment size: 64 MiB, as etcd.
pub const SEGMENT_SIZE_BYTES_DEFAULT: u64 = 64 << 20;
/// Smallest segment size accepted in [`WalOptions`].
pub const SEGMENT_SIZE_BYTES_MIN: u64 = 4096;
/// Most segment files one WAL directory may hold at open.
pub const SEGMENT_COUNT_MAX: usize = 1 << 20;

/// Tuning of a [`Wal`].
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// Size each new segment is preallocated to.
    pub segment_size_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions {
            segment_size_bytes: SEGMENT_SIZE_BYTES_DEFAULT,
        }
    }
}

#[derive(Debug)]
struct SegmentMeta {
    seq: u64,
    path: PathBuf,
    /// Index of the last record in the segment; `None` when it has none.
    last_index: Option<u64>,
}

/// The write-ahead log (single owner).
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    options: WalOptions,
    /// Oldest first; the last one is the active segment.
    segments: Vec<SegmentMeta>,
    active_file: File,
    /// Where the next record goes in the active segment.
    active_offset_bytes: u64,
    active_size_bytes: u64,
    /// Encoded records not yet written.
    buffer: Vec<u8>,
    buffer_last_index: Option<u64>,
    /// Index of the last appended record (buffered or durable).
    last_index: Option<u64>,
    ring: SyncRing,
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Wal {
    /// Opens (creating if missing) the WAL in `dir`, returns every record in
    /// the surviving segments in append order.
    ///
    /// A torn tail in the last segment (`torn.rs`: cut short, or a failed
    /// checksum over a zeroed sector, as etcd judges it) is cut off and the
    /// space zeroed. Any other bad record (one flipped bit anywhere in a
    /// record included), a bad segment header or another format version is
    /// an error naming the file and byte offset; a missing segment between
    /// two present ones is an error naming it.
    pub fn open(dir: &Path, options: WalOptions) -> Result<(Wal, Vec<WalRecord>), WalError> {
        assert!(
            options.segment_size_bytes >= SEGMENT_SIZE_BYTES_MIN,
            "segment_size_bytes below {SEGMENT_SIZE_BYTES_MIN}"
        );
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let mut seqs = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
            let entry = entry.map_err(io_error(dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(SEGMENT_TMP_SUFFIX) {
                // A segment whose creation did not finish: never used.
                std::fs::remove_file(entry.path()).map_err(io_error(&entry.path()))?;
            } else if name.ends_with(SEGMENT_SUFFIX) {
                let seq = parse_segment_file_name(name)
                    .ok_or_else(|| WalError::BadSegmentName { path: entry.path() })?;
                seqs.push(seq);
            }
        }
        assert!(seqs.len() <= SEGMENT_COUNT_MAX, "too many wal segments");
        seqs.sort_unstable();
        for pair in seqs.windows(2) {
            if pair[1] != pair[0] + 1 {
                // Released segments go oldest first, so a hole means lost
                // records, not a release.
                return Err(WalError::MissingSegment {
                    path: dir.join(segment::segment_file_name(pair[0] + 1)),
                    next: dir.join(segment::segment_file_name(pair[1])),
                });
            }
        }

        let mut records = Vec::new();
        let mut segments = Vec::with_capacity(seqs.len() + 1);
        let mut last_index: Option<u64> = None;
        let mut active_offset_bytes = SEGMENT_HEADER_BYTES;
        for (position, &seq) in seqs.iter().enumerate() {
            let is_last = position + 1 == seqs.len();
            let path = dir.join(segment::segment_file_name(seq));
            let bytes = std::fs::read(&path).map_err(io_error(&path))?;
            check_header(&path, &bytes, seq)?;
            let mut offset = SEGMENT_HEADER_BYTES as usize;
            let mut segment_last_index = None;
            loop {
                match record::decode(&bytes, offset) {
                    Decoded::End => break,
                    Decoded::Record(record, next) => {
                        if last_index.is_some_and(|last| record.index < last) {
                            return Err(WalError::Corrupt {
                                path,
                                offset: offset as u64,
                                reason: "record index lower than the previous record's",
                            });
                        }
                        last_index = Some(record.index);
                        segment_last_index = Some(record.index);
                        records.push(record);
                        offset = next;
                    }
                    Decoded::Bad(bad) => {
                        let repairable = if is_last {
                            torn::is_torn(&bytes, offset, bad)
                        } else {
                            // Earlier segments are never written again: only
                            // damage in their unused rest is harmless.
                            !matches!(bad, BadRecord::Padding)
                                && torn::in_free_space(&bytes, offset)
                        };
                        if !repairable {
                            return Err(WalError::Corrupt {
                                path,
                                offset: offset as u64,
                                reason: bad.reason(),
                            });
                        }
                        if is_last {
                            Self::cut_torn_tail(&path, offset as u64, bytes.len() as u64)?;
                        }
                        break;
                    }
                }
            }
            if is_last {
                active_offset_bytes = offset as u64;
            }
            segments.push(SegmentMeta {
                seq,
                path,
                last_index: segment_last_index,
            });
        }

        let active_file = match segments.last() {
            Some(active) => OpenOptions::new()
                .read(true)
                .write(true)
                .open(&active.path)
                .map_err(io_error(&active.path))?,
            None => {
                let (path, file) = create_segment(dir, 0, options.segment_size_bytes)?;
                segments.push(SegmentMeta {
                    seq: 0,
                    path,
                    last_index: None,
                });
                active_offset_bytes = SEGMENT_HEADER_BYTES;
                file
            }
        };
        let active_path = &segments.last().expect("an active segment").path;
        let active_size_bytes = active_file.metadata().map_err(io_error(active_path))?.len();
        assert!(active_offset_bytes <= active_size_bytes);
        let ring = SyncRing::new().map_err(io_error(dir))?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            options,
            segments,
            active_file,
            active_offset_bytes,
            active_size_bytes,
            buffer: Vec::new(),
            buffer_last_index: None,
            last_index,
            ring,
        };
        Ok((wal, records))
    }

    /// Cuts the last segment at `offset`: truncates (dropping the torn bytes)
    /// and re-extends to its preallocated size with zeros.
    fn cut_torn_tail(path: &Path, offset: u64, size_bytes: u64) -> Result<(), WalError> {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_error(path))?;
        file.set_len(offset).map_err(io_error(path))?;
        crate::io::allocate_file(&file, size_bytes).map_err(io_error(path))?;
        file.sync_all().map_err(io_error(path))
    }

    /// Buffers one record in memory; [`Wal::sync`] makes it durable.
    pub fn append(&mut self, kind: u8, index: u64, payload: &[u8]) {
        assert!(
            self.last_index.is_none_or(|last| index >= last),
            "wal index {index} below the previous {:?}",
            self.last_index
        );
        record::encode(&mut self.buffer, kind, index, payload);
        self.buffer_last_index = Some(index);
        self.last_index = Some(index);
    }

    /// Bytes appended but not yet synced (encoded size).
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.len()
    }

    /// Writes all buffered records with ONE io_uring write + ONE fdatasync,
    /// rotating to a new preallocated segment first if they don't fit.
    pub fn sync(&mut self) -> Result<(), WalError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let batch_bytes = self.buffer.len() as u64;
        if self.active_offset_bytes + batch_bytes > self.active_size_bytes {
            self.rotate(batch_bytes)?;
        }
        assert!(self.active_offset_bytes + batch_bytes <= self.active_size_bytes);
        let active = self.segments.last_mut().expect("an active segment");
        self.ring
            .write_and_sync(
                self.active_file.as_raw_fd(),
                &self.buffer,
                self.active_offset_bytes,
            )
            .map_err(|source| WalError::Io {
                path: active.path.clone(),
                source,
            })?;
        self.active_offset_bytes += batch_bytes;
        active.last_index = self.buffer_last_index.or(active.last_index);
        self.buffer.clear();
        self.buffer_last_index = None;
        Ok(())
    }

    fn rotate(&mut self, batch_bytes: u64) -> Result<(), WalError> {
        let seq = self.segments.last().expect("an active segment").seq + 1;
        let size_bytes = self
            .options
            .segment_size_bytes
            .max(SEGMENT_HEADER_BYTES + batch_bytes);
        let (path, file) = create_segment(&self.dir, seq, size_bytes)?;
        self.segments.push(SegmentMeta {
            seq,
            path,
            last_index: None,
        });
        self.active_file = file;
        self.active_offset_bytes = SEGMENT_HEADER_BYTES;
        self.active_size_bytes = size_bytes;
        Ok(())
    }

    /// Deletes whole segments all of whose records have index < `index`
    /// (oldest first, never the active segment).
    pub fn release_before(&mut self, index: u64) -> Result<(), WalError> {
        let mut removed = 0;
        while self.segments.len() - removed > 1 {
            let segment = &self.segments[removed];
            if segment.last_index.is_some_and(|last| last >= index) {
                break;
            }
            std::fs::remove_file(&segment.path).map_err(io_error(&segment.path))?;
            removed += 1;
        }
        if removed > 0 {
            self.segments.drain(..removed);
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Number of segment files (the active one included).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Paths of the segment files, oldest first.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments
            .iter()
            .map(|segment| segment.path.clone())
            .collect()
    }

    /// Index of the last appended record, if any.
    pub fn last_index(&self) -> Option<u64> {
        self.last_index
    }
}
