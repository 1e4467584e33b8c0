//! Corruption tests for the B+tree file: a flipped bit in any page the last
//! commit reaches (file header, node, commit record) is refused at open
//! with the file and a byte offset inside the damaged node or page, except
//! in the nodes the last persist wrote, where it is what a crash before
//! that persist's fdatasync can leave and the store opens the commit
//! before it, reporting the damage with its offset; a flipped bit in a
//! superseded page is ignored and the store serves exactly its committed
//! data; a file cut at any length opens at one whole earlier
//! commit or is refused; a commit record of another format version is
//! refused.

mod common;

use common::{everything, put_range};
use keel_engine::{RangeResult, Store, StoreError, StoreOptions};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

const PAGE_BYTES: u64 = keel_engine::btree::PAGE_SIZE_BYTES;

/// What a committed state looks like from outside.
#[derive(Debug, PartialEq)]
struct State {
    applied_index: u64,
    revision: i64,
    data: RangeResult,
}

fn state(store: &Store) -> State {
    State {
        applied_index: store.applied_index(),
        revision: store.revision(),
        data: everything(store),
    }
}

fn open(path: &Path) -> Result<Store, StoreError> {
    Store::open(path, StoreOptions::default())
}

/// A tree file of several persists whose last commit reaches nodes of
/// every persist (interleaved with superseded ones), one node spanning
/// three pages; returns the state of each commit, oldest first.
fn layered_file(path: &Path) -> Vec<State> {
    let mut store = open(path).unwrap();
    let mut states = Vec::new();
    put_range(&mut store, "a", 0..120, &[b'a'; 100]);
    put_range(&mut store, "b", 0..1, &[b'B'; 9000]);
    store.persist().unwrap();
    states.push(state(&store));
    put_range(&mut store, "c", 0..60, &[b'c'; 100]);
    store.persist().unwrap();
    states.push(state(&store));
    // Changes only some leaves: the rest stay where the first persists
    // wrote them.
    put_range(&mut store, "a", 0..3, &[b'x'; 50]);
    put_range(&mut store, "c", 50..52, &[b'y'; 50]);
    store.persist().unwrap();
    states.push(state(&store));
    states
}

/// Where each page's object starts and how many pages it spans, read off
/// the file the way recovery sees it (header, node frames, commit pages).
fn objects(bytes: &[u8]) -> Vec<(u64, u64)> {
    let pages = bytes.len() as u64 / PAGE_BYTES;
    let mut extents = vec![(0, 1)];
    let mut page = 1;
    while page < pages {
        let at = (page * PAGE_BYTES) as usize;
        let span = if &bytes[at..at + 4] == b"KNOD" {
            u64::from(u32::from_le_bytes(
                bytes[at + 8..at + 12].try_into().unwrap(),
            ))
        } else {
            // A commit record, or a zero page a persist wrote to end on a
            // 4 KiB block (`appender.rs`).
            assert!(
                &bytes[at..at + 8] == b"KEELCMIT"
                    || bytes[at..at + PAGE_BYTES as usize].iter().all(|&b| b == 0),
                "page {page}"
            );
            1
        };
        for _ in 0..span {
            extents.push((page, span));
        }
        page += span;
    }
    extents
}

/// The byte offset a refusal names, or panics if the error is not about
/// bytes of `path`.
fn refused_at(error: &StoreError, path: &Path) -> u64 {
    let (at, offset) = match error {
        StoreError::Corrupt { path, offset, .. }
        | StoreError::UnsupportedVersion { path, offset, .. }
        | StoreError::UnsupportedPageSize { path, offset, .. } => (path, *offset),
        other => panic!("not a refusal naming bytes: {other}"),
    };
    assert_eq!(at, path);
    let text = error.to_string();
    assert!(
        text.contains(&path.display().to_string()) && text.contains(&offset.to_string()),
        "{text}"
    );
    offset
}

/// Byte offsets to flip a bit of in a page: every byte of the first 128
/// (every header field of every page kind), the last bytes of the page,
/// and a spread through the rest, each at a different bit.
fn probe_offsets() -> Vec<u64> {
    let mut offsets: Vec<u64> = (0..128).collect();
    offsets.extend((128..PAGE_BYTES).step_by(157));
    offsets.extend(PAGE_BYTES - 3..PAGE_BYTES);
    offsets
}

/// The byte offset a dropped commit's damage names.
fn dropped_at(store: &Store, path: &Path) -> u64 {
    let dropped = store.dropped_commit().expect("a dropped commit");
    assert!(
        dropped.damage.contains(&path.display().to_string()),
        "{}",
        dropped.damage
    );
    assert!(
        dropped.damage.contains(&dropped.damage_offset.to_string()),
        "{}",
        dropped.damage
    );
    dropped.damage_offset
}

#[test]
fn every_flipped_bit_in_a_reachable_page_is_refused_or_drops_the_last_persist_and_others_are_ignored(
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let states = layered_file(&path);
    let (last, previous) = (&states[states.len() - 1], &states[states.len() - 2]);
    let original = std::fs::read(&path).unwrap();
    let pages = original.len() as u64 / PAGE_BYTES;
    let extents = objects(&original);
    let in_use_pages = open(&path).unwrap().size_in_use_bytes() / PAGE_BYTES;
    assert!(pages > in_use_pages + 4, "superseded pages exist");
    assert!(
        extents.iter().any(|&(_, span)| span > 1),
        "a multi-page node"
    );
    // The pages the last persist wrote before its commit record: damage
    // there is what a crash before that persist's fdatasync returned can
    // leave, so the store opens the commit before it.
    let commit_pages: Vec<u64> = (1..pages)
        .filter(|&page| &original[(page * PAGE_BYTES) as usize..][..8] == b"KEELCMIT")
        .collect();
    let last_persist = commit_pages[commit_pages.len() - 2] + 1..pages - 1;
    assert!(last_persist.end > last_persist.start + 1);
    let zero_page = |page: u64| {
        original[(page * PAGE_BYTES) as usize..][..PAGE_BYTES as usize]
            .iter()
            .all(|&b| b == 0)
    };
    // Its zero pages before the record are reached by nothing.
    let last_persist_padding = last_persist.clone().filter(|&page| zero_page(page)).count() as u64;

    let (mut refused_pages, mut dropping_pages) = (0, 0);
    for page in 0..pages {
        let (start, span) = extents[page as usize];
        let object = start * PAGE_BYTES..(start + span) * PAGE_BYTES;
        let (mut refused, mut dropped, mut served) = (0, 0, 0);
        for (probe, &offset_in_page) in probe_offsets().iter().enumerate() {
            let offset = page * PAGE_BYTES + offset_in_page;
            let mut damaged = original.clone();
            damaged[offset as usize] ^= 1 << (probe % 8);
            std::fs::write(&path, &damaged).unwrap();
            match open(&path) {
                Err(error) => {
                    let at = refused_at(&error, &path);
                    assert!(
                        object.contains(&at),
                        "flip at {offset} refused at {at}, outside {object:?}"
                    );
                    refused += 1;
                }
                Ok(store) if store.dropped_commit().is_some() => {
                    assert!(
                        last_persist.contains(&page),
                        "flip at {offset} dropped a commit"
                    );
                    let at = dropped_at(&store, &path);
                    assert!(
                        object.contains(&at),
                        "flip at {offset} found at {at}, outside {object:?}"
                    );
                    assert!(
                        &state(&store) == previous,
                        "flip at {offset} served other data"
                    );
                    dropped += 1;
                }
                Ok(store) => {
                    assert!(
                        &state(&store) == last,
                        "flip at {offset} (page {page}) served other data"
                    );
                    served += 1;
                }
            }
        }
        let outcomes = [refused, dropped, served];
        assert_eq!(
            outcomes.iter().filter(|&&count| count > 0).count(),
            1,
            "page {page}: {refused} flips refused, {dropped} dropped the last persist, \
             {served} ignored"
        );
        refused_pages += u64::from(refused > 0);
        dropping_pages += u64::from(dropped > 0);
    }
    // Every page the last persist wrote drops it; every other page the
    // last commit references is refused.
    assert_eq!(
        dropping_pages,
        last_persist.end - last_persist.start - last_persist_padding
    );
    assert_eq!(refused_pages + dropping_pages, in_use_pages);
    std::fs::write(&path, &original).unwrap();
    assert!(&state(&open(&path).unwrap()) == last);
}

#[test]
fn flipped_bit_in_the_only_commit_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut store = open(&path).unwrap();
    put_range(&mut store, "k", 0..10, b"v");
    store.persist().unwrap();
    drop(store);
    let original = std::fs::read(&path).unwrap();
    let commit_offset = original.len() as u64 - PAGE_BYTES;
    for byte in [
        0,
        7,
        16,
        24,
        32,
        48,
        56,
        64,
        80,
        119,
        120,
        123,
        124,
        PAGE_BYTES - 1,
    ] {
        let mut damaged = original.clone();
        damaged[(commit_offset + byte) as usize] ^= 0x10;
        std::fs::write(&path, &damaged).unwrap();
        let error = open(&path).unwrap_err();
        assert_eq!(refused_at(&error, &path), commit_offset + byte, "{error}");
    }
}

#[test]
fn cut_at_any_length_opens_one_whole_earlier_commit_or_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let states = layered_file(&path);
    let original = std::fs::read(&path).unwrap();
    let extents = objects(&original);
    // The commit pages, in order, and the state each holds.
    let commit_pages: Vec<u64> = (1..extents.len() as u64)
        .filter(|&page| &original[(page * PAGE_BYTES) as usize..][..8] == b"KEELCMIT")
        .collect();
    assert_eq!(commit_pages.len(), states.len());
    let mut cuts: Vec<u64> = (0..=original.len() as u64)
        .step_by(PAGE_BYTES as usize)
        .collect();
    cuts.extend([1, 27, 4095, 4097, 3 * PAGE_BYTES + 100]);
    cuts.extend(commit_pages.iter().map(|page| page * PAGE_BYTES + 124));
    for cut in cuts {
        std::fs::write(&path, &original[..cut as usize]).unwrap();
        let opened = open(&path);
        if cut == 0 {
            // Created without its header by no one but a truncation.
            let error = opened.unwrap_err();
            assert_eq!(refused_at(&error, &path), 0);
            continue;
        }
        if cut < PAGE_BYTES {
            let error = opened.unwrap_err();
            assert_eq!(refused_at(&error, &path), cut, "{error}");
            continue;
        }
        let store = opened.unwrap();
        // The newest commit whose page survived whole, as it was.
        let whole = commit_pages
            .iter()
            .rposition(|page| (page + 1) * PAGE_BYTES <= cut);
        match whole {
            Some(index) => assert_eq!(state(&store), states[index], "cut at {cut}"),
            None => assert_eq!(
                (store.applied_index(), everything(&store).count),
                (0, 0),
                "cut at {cut}"
            ),
        }
    }
}

#[test]
fn commit_record_of_another_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    layered_file(&path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let commit_offset = file.metadata().unwrap().len() - PAGE_BYTES;
    let mut record = [0u8; 124];
    file.read_exact_at(&mut record, commit_offset).unwrap();
    let salt = {
        let mut header = [0u8; 8];
        file.read_exact_at(&mut header, 16).unwrap();
        header
    };
    // Version 4, checksum recomputed as a newer build would write it:
    // crc32c(salt ++ bytes 0..120).
    record[8..12].copy_from_slice(&4u32.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&salt), &record[..120]);
    record[120..124].copy_from_slice(&crc.to_le_bytes());
    file.write_all_at(&record, commit_offset).unwrap();
    match open(&path).unwrap_err() {
        StoreError::UnsupportedVersion {
            path: at,
            offset,
            found: 4,
            expected: 3,
        } => assert_eq!((at, offset), (path.clone(), commit_offset + 8)),
        other => panic!("unexpected {other}"),
    }
}
