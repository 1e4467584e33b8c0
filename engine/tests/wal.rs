//! Guards the WAL: records survive reopen, a torn tail is cut off as etcd
//! cuts it, any flipped bit in a record, header or segment sequence is an
//! error naming file and offset (damage in unused space loses nothing),
//! rotation and release.

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
fn torn_tail_cut_at_a_sector_boundary_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let (path, last_start, _) = ten_records(dir.path());
    // An eleventh record, 464 + 48 = 512 .. 1136, spanning sectors 1 and 2.
    let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    wal.append(1, 11, &[11u8; 600]);
    wal.sync().unwrap();
    drop(wal);
    let eleventh_start = last_start + 48;
    assert_eq!(eleventh_start, 512);
    // A power cut that kept only the record's first sector: the rest of
    // the preallocated file reads as zeros.
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(1024).unwrap();
    file.set_len(64 << 20).unwrap();
    drop(file);
    let (mut wal, records) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(records.len(), 10);
    assert_eq!(records.last().unwrap().index, 10);
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes[512..2048].iter().all(|&b| b == 0), "tail zeroed");
    wal.append(2, 11, b"again");
    wal.sync().unwrap();
    drop(wal);
    let (_, records) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(records.len(), 11);
    assert_eq!(records[10].payload, b"again");
}

#[test]
fn record_cut_inside_one_sector_is_refused_as_etcd_does() {
    // Disks write a 512-byte sector whole, so a record whose sector holds
    // part of it and then zeros was not torn by a crash: etcd refuses it
    // (crc mismatch), and so does keel.
    let dir = tempfile::tempdir().unwrap();
    let (path, last_start, _) = ten_records(dir.path());
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(last_start + 20).unwrap();
    file.set_len(64 << 20).unwrap();
    drop(file);
    match Wal::open(dir.path(), WalOptions::default()).unwrap_err() {
        WalError::Corrupt {
            path: at, offset, ..
        } => assert_eq!((at, offset), (path, last_start)),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn flipped_byte_in_last_record_is_refused_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (path, last_start, _) = ten_records(dir.path());
    flip_byte(&path, last_start + 25);
    match Wal::open(dir.path(), WalOptions::default()).unwrap_err() {
        WalError::Corrupt {
            path: at, offset, ..
        } => assert_eq!((at, offset), (path.clone(), last_start)),
        other => panic!("unexpected {other}"),
    }
    // Nothing was cut: flipped back, every record is there.
    flip_byte(&path, last_start + 25);
    let (_, records) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(records.len(), 10);
}

#[test]
fn torn_sector_in_last_record_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    append_all(
        &mut wal,
        &(1..=3).map(|i| record(i, 30)).collect::<Vec<_>>(),
    );
    wal.sync().unwrap();
    // One batch of a record spanning sectors 0..3 of the file.
    wal.append(1, 4, &[4u8; 1500]);
    wal.sync().unwrap();
    let path = wal.segment_paths()[0].clone();
    drop(wal);
    // A power cut that wrote the batch's first and last sectors only.
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(&[0u8; 512], 512)
        .unwrap();
    let (mut wal, records) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(
        records.iter().map(|r| r.index).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        bytes[32 + 3 * 48..2048].iter().all(|&b| b == 0),
        "tail zeroed"
    );
    wal.append(2, 4, b"again");
    wal.sync().unwrap();
    drop(wal);
    let (_, records) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(records[3].payload, b"again");
}

/// Eight 1000-byte records synced one at a time into 4 KiB segments:
/// {1,2,3} {4,5,6} {7,8}; even indexes carry zeros, so those records span
/// an all-zero sector (etcd would take a checksum failure there for a torn
/// write). Returns the segment paths.
fn eight_records_in_three_segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let (mut wal, _) = Wal::open(dir, small()).unwrap();
    for index in 1..=8u64 {
        let byte = if index % 2 == 0 { 0 } else { index as u8 };
        wal.append(1, index, &[byte; 1000]);
        wal.sync().unwrap();
    }
    assert_eq!(wal.segment_count(), 3);
    wal.segment_paths()
}

#[test]
fn every_flipped_bit_in_a_record_is_refused_naming_file_and_record_offset() {
    let dir = tempfile::tempdir().unwrap();
    let paths = eight_records_in_three_segments(dir.path());
    let record_bytes = 1024u64;
    for (segment, records) in [(0usize, 3u64), (2, 2)] {
        let path = &paths[segment];
        let original = std::fs::read(path).unwrap();
        for record in 0..records {
            let start = 32 + record * record_bytes;
            // Every byte of the frame and the kind/index, a spread through
            // the payload, every padding byte.
            let offsets = (0..24)
                .chain((24..1017).step_by(61))
                .chain(1017..1024)
                .map(|in_record| start + in_record);
            for (probe, offset) in offsets.enumerate() {
                let mut damaged = original.clone();
                damaged[offset as usize] ^= 1 << (probe % 8);
                std::fs::write(path, &damaged).unwrap();
                match Wal::open(dir.path(), small()) {
                    Err(WalError::Corrupt {
                        path: at,
                        offset: reported,
                        ..
                    }) => assert_eq!(
                        (&at, reported),
                        (path, start),
                        "segment {segment} flip at {offset}"
                    ),
                    Err(other) => panic!("flip at {offset}: unexpected {other}"),
                    Ok(_) => panic!("segment {segment} flip at {offset} was accepted"),
                }
            }
        }
        std::fs::write(path, &original).unwrap();
    }
    let (_, records) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(records.len(), 8);
}

#[test]
fn flipped_bit_in_unused_segment_space_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let paths = eight_records_in_three_segments(dir.path());
    // After record 3 of the first segment, after record 8 of the last:
    // length, checksum and deeper bytes of the zeros there.
    for (path, free) in [(&paths[0], 32 + 3 * 1024), (&paths[2], 32 + 2 * 1024)] {
        for (in_free, bit) in [(0, 7), (2, 0), (3, 4), (5, 1), (8, 3), (300, 6)] {
            flip_byte_bit(path, free + in_free, bit);
            let (_, records) = Wal::open(dir.path(), small())
                .unwrap_or_else(|error| panic!("{}+{in_free}: {error}", path.display()));
            assert_eq!(
                records.iter().map(|r| r.index).collect::<Vec<_>>(),
                (1..=8).collect::<Vec<_>>()
            );
            // Earlier segments are left as they are; the last one's tail
            // was zeroed where the repair cut it. Undo what is left.
            let left = std::fs::read(path).unwrap()[(free + in_free) as usize];
            if left != 0 {
                flip_byte_bit(path, free + in_free, bit);
            }
        }
    }
    let (_, records) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(records.len(), 8);
    for path in &paths {
        let bytes = std::fs::read(path).unwrap();
        let end = if path == &paths[2] {
            32 + 2 * 1024
        } else {
            32 + 3 * 1024
        };
        assert!(bytes[end..].iter().all(|&b| b == 0), "{}", path.display());
    }
}

fn flip_byte_bit(path: &Path, offset: u64, bit: u32) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset).unwrap();
    byte[0] ^= 1 << bit;
    file.write_all_at(&byte, offset).unwrap();
}

#[test]
fn missing_segment_in_the_middle_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let paths = eight_records_in_three_segments(dir.path());
    std::fs::remove_file(&paths[1]).unwrap();
    let error = Wal::open(dir.path(), small()).unwrap_err();
    match &error {
        WalError::MissingSegment { path, next } => {
            assert_eq!((path, next), (&paths[1], &paths[2]));
        }
        other => panic!("unexpected {other}"),
    }
    assert!(
        error.to_string().contains("0000000000000001.wal"),
        "{error}"
    );
    // Released from the front is no hole.
    std::fs::remove_file(&paths[0]).unwrap();
    let (_, records) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(records.iter().map(|r| r.index).collect::<Vec<_>>(), [7, 8]);
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
    flip_byte(&path, 2);
    // Every header byte is checked: the checksum's, and the reserved ones
    // after it.
    for offset in [12, 16, 24, 28, 31] {
        flip_byte(&path, offset);
        assert!(
            matches!(
                Wal::open(dir.path(), small()),
                Err(WalError::Corrupt { .. } | WalError::UnsupportedVersion { .. })
            ),
            "header byte {offset}"
        );
        flip_byte(&path, offset);
    }
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
