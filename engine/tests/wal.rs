//! Guards the WAL: records survive reopen, a torn tail is cut off, damage
//! before the tail is an error naming file and offset, rotation and release.

use keel_engine::{Wal, WalError, WalOptions, WalRecord};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

const SMALL_SEGMENT_BYTES: u64 = 4096;

fn small() -> WalOptions {
    WalOptions {
        segment_size_bytes: SMALL_SEGMENT_BYTES,
    }
}

fn record(index: u64, payload_len: usize) -> WalRecord {
    WalRecord {
        kind: (index % 3) as u8,
        index,
        payload: vec![index as u8; payload_len],
    }
}

fn append_all(wal: &mut Wal, records: &[WalRecord]) {
    for record in records {
        wal.append(record.kind, record.index, &record.payload);
    }
}

fn flip_byte(path: &Path, offset: u64) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset).unwrap();
    byte[0] ^= 0x40;
    file.write_all_at(&byte, offset).unwrap();
}

#[test]
fn append_sync_reopen_returns_records() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, existing) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert!(existing.is_empty());
    let records: Vec<_> = (1..=50)
        .map(|index| record(index, index as usize * 7))
        .collect();
    append_all(&mut wal, &records[..20]);
    assert!(wal.buffered_bytes() > 0);
    wal.sync().unwrap();
    assert_eq!(wal.buffered_bytes(), 0);
    append_all(&mut wal, &records[20..]);
    wal.sync().unwrap();
    wal.append(9, 99, b"never synced");
    drop(wal);
    let (_wal, reopened) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(reopened, records);
}

#[test]
fn segment_is_preallocated_and_named_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let paths = wal.segment_paths();
    assert_eq!(paths.len(), 1);
    assert_eq!(paths[0].file_name().unwrap(), "0000000000000000.wal");
    assert_eq!(std::fs::metadata(&paths[0]).unwrap().len(), 64 << 20);
}

/// Writes records 1..=10 in one segment and returns its path and the
/// offsets where record 10 starts and ends.
fn ten_records(dir: &Path) -> (std::path::PathBuf, u64, u64) {
    let (mut wal, _) = Wal::open(dir, WalOptions::default()).unwrap();
    append_all(
        &mut wal,
        &(1..=9).map(|i| record(i, 30)).collect::<Vec<_>>(),
    );
    wal.sync().unwrap();
    let before_last = 32 + 9 * 48;
    wal.append(1, 10, &[10u8; 30]);
    wal.sync().unwrap();
    (
        wal.segment_paths()[0].clone(),
        before_last,
        before_last + 48,
    )
}

#[test]
fn torn_tail_truncated_mid_record_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let (path, last_start, last_end) = ten_records(dir.path());
    // A power cut that kept only part of the last record: the rest of the
    // preallocated file reads as zeros.
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(last_start + 20).unwrap();
    file.set_len(64 << 20).unwrap();
    drop(file);
    let (mut wal, records) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(records.len(), 9);
    assert_eq!(records.last().unwrap().index, 9);
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes[last_start as usize..last_end as usize]
        .iter()
        .all(|&b| b == 0));
    wal.append(2, 10, b"again");
    wal.sync().unwrap();
    drop(wal);
    let (_, records) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(records.len(), 10);
    assert_eq!(records[9].payload, b"again");
}

#[test]
fn torn_tail_flipped_byte_in_last_record_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (path, last_start, _) = ten_records(dir.path());
    flip_byte(&path, last_start + 25);
    let (mut wal, records) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(records.len(), 9);
    wal.append(0, 11, b"after repair");
    wal.sync().unwrap();
    drop(wal);
    let (_, records) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(
        records.iter().map(|r| r.index).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 11]
    );
}

#[test]
fn file_truncated_inside_last_record_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (path, last_start, _) = ten_records(dir.path());
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(last_start + 11)
        .unwrap();
    let (_, records) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(records.len(), 9);
}

#[test]
fn rotation_then_corruption_in_earlier_segment_names_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), small()).unwrap();
    // 1000-byte payloads: three records fit a 4 KiB segment, so syncing one
    // at a time rotates.
    for index in 1..=10 {
        wal.append(1, index, &[index as u8; 1000]);
        wal.sync().unwrap();
    }
    assert!(wal.segment_count() >= 3, "{} segments", wal.segment_count());
    let paths = wal.segment_paths();
    drop(wal);
    let (_, records) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(
        records.iter().map(|r| r.index).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    // Damage the second record of the first segment.
    let second_record_offset = 32 + 1024;
    flip_byte(&paths[0], second_record_offset + 100);
    let error = Wal::open(dir.path(), small()).unwrap_err();
    match &error {
        WalError::Corrupt { path, offset, .. } => {
            assert_eq!(path, &paths[0]);
            assert_eq!(*offset, second_record_offset);
        }
        other => panic!("unexpected error {other}"),
    }
    let text = error.to_string();
    assert!(
        text.contains("0000000000000000.wal") && text.contains("1056"),
        "{text}"
    );
}

#[test]
fn bad_header_and_other_version_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    let path = wal.segment_paths()[0].clone();
    drop(wal);
    // Version 2 with a valid checksum.
    let mut header = std::fs::read(&path).unwrap()[..32].to_vec();
    header[8] = 2;
    let crc = crc32c::crc32c(&header[..24]);
    header[24..28].copy_from_slice(&crc.to_le_bytes());
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(&header, 0)
        .unwrap();
    assert!(matches!(
        Wal::open(dir.path(), small()).unwrap_err(),
        WalError::UnsupportedVersion {
            found: 2,
            offset: 8,
            ..
        }
    ));
    flip_byte(&path, 2);
    assert!(matches!(
        Wal::open(dir.path(), small()).unwrap_err(),
        WalError::Corrupt { offset: 0, .. }
    ));
}

#[test]
fn batch_larger_than_segment_gets_its_own_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), small()).unwrap();
    wal.append(1, 1, &[1u8; 10_000]);
    wal.append(1, 2, &[2u8; 10_000]);
    wal.sync().unwrap();
    let paths = wal.segment_paths();
    assert_eq!(paths.len(), 2);
    assert!(std::fs::metadata(&paths[1]).unwrap().len() >= 20_000);
    wal.append(1, 3, b"small");
    wal.sync().unwrap();
    drop(wal);
    let (_, records) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[1].payload, vec![2u8; 10_000]);
}

#[test]
fn release_before_deletes_only_whole_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), small()).unwrap();
    for index in 1..=12 {
        wal.append(1, index, &[0u8; 1000]);
        wal.sync().unwrap();
    }
    // Segments hold indexes {1,2,3} {4,5,6} {7,8,9} {10,11,12}.
    assert_eq!(wal.segment_count(), 4);
    wal.release_before(6).unwrap();
    assert_eq!(wal.segment_count(), 3, "index 6 still needed");
    wal.release_before(7).unwrap();
    assert_eq!(wal.segment_count(), 2);
    wal.release_before(1_000).unwrap();
    assert_eq!(wal.segment_count(), 1, "the active segment stays");
    wal.append(1, 13, b"x");
    wal.sync().unwrap();
    drop(wal);
    let (_, records) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(
        records.iter().map(|r| r.index).collect::<Vec<_>>(),
        [10, 11, 12, 13]
    );
}
