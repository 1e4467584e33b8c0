//! WAL segment files: naming, the header, creation and scanning.
//!
//! A segment is `{seq:016x}.wal` (lexical order = append order), created as
//! `{seq:016x}.wal.tmp`, preallocated, given its header, synced and renamed,
//! so a file with the `.wal` name always has a complete header.
//!
//! ```text
//! header (32 bytes)
//! 0   8  magic    b"KEELWAL\0"
//! 8   4  version  u32 LE (SEGMENT_FORMAT_VERSION)
//! 12  4  reserved (zero)
//! 16  8  seq      u64 LE, equal to the file name's
//! 24  4  crc      u32 LE: crc32c of bytes 0..24
//! 28  4  reserved (zero, checked)
//! 32  .. records (see record.rs), then zeros
//! ```

use crate::error::WalError;
use crate::io::allocate_file;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Segment header size; records start here.
pub const SEGMENT_HEADER_BYTES: u64 = 32;
/// Segment magic.
pub const SEGMENT_MAGIC: [u8; 8] = *b"KEELWAL\0";
/// The only format version this build reads and writes.
pub const SEGMENT_FORMAT_VERSION: u32 = 1;
/// File name suffix of a segment.
pub const SEGMENT_SUFFIX: &str = ".wal";
/// Suffix of a segment being created.
pub const SEGMENT_TMP_SUFFIX: &str = ".wal.tmp";

const _: () = assert!(SEGMENT_HEADER_BYTES.is_multiple_of(8));

/// `{seq:016x}.wal`.
pub fn segment_file_name(seq: u64) -> String {
    format!("{seq:016x}{SEGMENT_SUFFIX}")
}

/// Parses a segment file name back to its sequence number.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
    if stem.len() != 16 || !stem.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(stem, 16).ok()
}

/// Encodes the header of segment `seq`.
pub fn encode_header(seq: u64) -> [u8; SEGMENT_HEADER_BYTES as usize] {
    let mut header = [0u8; SEGMENT_HEADER_BYTES as usize];
    header[0..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32c::crc32c(&header[0..24]);
    header[24..28].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Checks the header of the segment at `path` whose name says `seq`.
pub fn check_header(path: &Path, bytes: &[u8], seq: u64) -> Result<(), WalError> {
    let corrupt = |offset: u64, reason: &'static str| WalError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    if bytes.len() < SEGMENT_HEADER_BYTES as usize {
        return Err(corrupt(0, "segment shorter than its header"));
    }
    if bytes[0..8] != SEGMENT_MAGIC {
        return Err(corrupt(0, "bad segment magic"));
    }
    let stored_crc = u32::from_le_bytes(bytes[24..28].try_into().expect("4 bytes"));
    if crc32c::crc32c(&bytes[0..24]) != stored_crc {
        return Err(corrupt(24, "segment header checksum mismatch"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != SEGMENT_FORMAT_VERSION {
        return Err(WalError::UnsupportedVersion {
            path: path.to_path_buf(),
            offset: 8,
            found: version,
            expected: SEGMENT_FORMAT_VERSION,
        });
    }
    let header_seq = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    if header_seq != seq {
        return Err(corrupt(16, "segment header sequence differs from its name"));
    }
    // Bytes 12..16 are under the checksum; 28..32 are not.
    if let Some(at) = bytes[28..SEGMENT_HEADER_BYTES as usize]
        .iter()
        .position(|&byte| byte != 0)
    {
        return Err(corrupt(
            28 + at as u64,
            "non-zero reserved segment header bytes",
        ));
    }
    Ok(())
}

/// Creates segment `seq` in `dir`, preallocated to `size_bytes`, header
/// written and synced, and returns it opened for reading and writing.
pub fn create_segment(dir: &Path, seq: u64, size_bytes: u64) -> Result<(PathBuf, File), WalError> {
    assert!(size_bytes >= SEGMENT_HEADER_BYTES);
    let path = dir.join(segment_file_name(seq));
    let tmp_path = dir.join(format!("{seq:016x}{SEGMENT_TMP_SUFFIX}"));
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source: io::Error| WalError::Io { path, source }
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp_path)
        .map_err(io_error(&tmp_path))?;
    allocate_file(&file, size_bytes).map_err(io_error(&tmp_path))?;
    file.write_all_at(&encode_header(seq), 0)
        .map_err(io_error(&tmp_path))?;
    file.sync_all().map_err(io_error(&tmp_path))?;
    std::fs::rename(&tmp_path, &path).map_err(io_error(&path))?;
    sync_dir(dir)?;
    Ok((path, file))
}

/// fsyncs a directory so renames and unlinks in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|source| WalError::Io {
            path: dir.to_path_buf(),
            source,
        })
}
