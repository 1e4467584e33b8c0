//! Property test: random puts, deletes and range deletes against a model
//! (a BTreeMap per revision), reading at random past revisions in both key
//! orders (`range`, `range_descending`) with every limit/count option,
//! before and after persist + reopen and after compaction.

use keel_engine::{Detail, EventKind, RangeOptions, Store, StoreOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

/// The model: user key -> (create, mod, version, value).
type Model = BTreeMap<Vec<u8>, (i64, i64, i64, Vec<u8>)>;

const KEY_SPACE: u32 = 60;
const ROUNDS: usize = 400;

fn random_key(rng: &mut StdRng) -> Vec<u8> {
    let number = rng.random_range(0..KEY_SPACE);
    if number % 7 == 0 {
        vec![b'k', 0, number as u8]
    } else {
        format!("k{number:03}").into_bytes()
    }
}

/// Reads at random revisions from `oldest_revision` on, in both key
/// orders with random limit/keys_only/count_only/stop_after_limit, and
/// compares each with the model's answer.
fn check(store: &Store, history: &[Model], oldest_revision: i64, rng: &mut StdRng, reads: usize) {
    let view = store.reader().view();
    for _ in 0..reads {
        let revision = rng.random_range(oldest_revision..history.len() as i64);
        let model = &history[revision as usize];
        let mut start = random_key(rng);
        let mut end = random_key(rng);
        if start > end {
            std::mem::swap(&mut start, &mut end);
        }
        let (start, end) = match rng.random_range(0..5) {
            0 => (start, Vec::new()),
            1 => (start, vec![0]),
            2 => (vec![0], vec![0]),
            // The empty key: every MVCC key, none of the lease records
            // that sort just below them.
            3 => (Vec::new(), vec![0]),
            _ => (start, end),
        };
        let options = RangeOptions {
            key: &start,
            range_end: &end,
            revision,
            limit: if rng.random_bool(0.4) {
                rng.random_range(1..5)
            } else {
                0
            },
            keys_only: rng.random_bool(0.2),
            count_only: rng.random_bool(0.1),
            stop_after_limit: rng.random_bool(0.2),
        };
        let descending = rng.random_bool(0.5);
        let result = if descending {
            view.range_descending(&options).unwrap()
        } else {
            view.range(&options).unwrap()
        };
        let mut expected: Vec<_> = model
            .iter()
            .filter(|(key, _)| {
                if end.is_empty() {
                    **key == start
                } else if end == [0] {
                    **key >= start
                } else {
                    **key >= start && **key < end
                }
            })
            .collect();
        if descending {
            expected.reverse();
        }
        let what =
            format!("rev {revision} [{start:?}, {end:?}) descending {descending} {options:?}");
        let limit = usize::try_from(options.limit).unwrap();
        let shown = if options.count_only {
            0
        } else if limit > 0 {
            expected.len().min(limit)
        } else {
            expected.len()
        };
        // With stop_after_limit the scan stops at the first match past the
        // limit, so the count is at most limit + 1.
        let count = if options.stop_after_limit && limit > 0 && !options.count_only {
            expected.len().min(limit + 1)
        } else {
            expected.len()
        };
        assert_eq!(result.count, count as i64, "{what}");
        assert_eq!(result.kvs.len(), shown, "{what}");
        assert_eq!(
            result.more,
            limit > 0 && !options.count_only && shown < expected.len(),
            "{what}"
        );
        assert_eq!(result.revision, store.revision());
        for (kv, (key, (create, modified, version, value))) in result.kvs.iter().zip(&expected) {
            assert_eq!(&kv.key, *key, "{what}");
            let value: &[u8] = if options.keys_only { &[] } else { value };
            assert_eq!(
                (
                    kv.create_revision,
                    kv.mod_revision,
                    kv.version,
                    &kv.value[..]
                ),
                (*create, *modified, *version, value),
                "key {key:?}: {what}"
            );
        }
    }
}

/// Seeds the model test runs (each well under 20 ms in a debug build).
const SEEDS: u64 = 32;

#[test]
fn random_ops_match_model_at_past_revisions() {
    for seed in 0..SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut store = Store::open(&path, StoreOptions::default()).unwrap();
        // history[r] is the model at revision r; revision 1 is empty.
        let mut history: Vec<Model> = vec![Model::new(), Model::new()];
        let mut applied = 1;
        // Lease records sort just below every MVCC key: scans in either
        // direction must never meet them.
        let mut batch = store.write_batch();
        for id in [1, 7, i64::MAX] {
            batch.put_lease(id, 60);
        }
        batch.commit(applied);
        for round in 0..ROUNDS {
            let mut model = history.last().unwrap().clone();
            let main = store.revision() + 1;
            let mut batch = store.write_batch();
            let mut txn = batch.txn();
            let mut changed = false;
            for _ in 0..rng.random_range(1..4) {
                let key = random_key(&mut rng);
                match rng.random_range(0..10) {
                    0..=5 => {
                        let value = format!("v{round}-{}", rng.random_range(0..1000)).into_bytes();
                        txn.put(&key, &value, 0);
                        model_put(&mut model, key, main, value);
                        changed = true;
                    }
                    6..=8 => {
                        let deleted = txn.delete_range(&key, b"");
                        assert_eq!(deleted.len(), usize::from(model.remove(&key).is_some()));
                        changed |= !deleted.is_empty();
                    }
                    _ => {
                        let mut end = key.clone();
                        end.push(b'5');
                        let deleted = txn.delete_range(&key, &end);
                        let doomed: Vec<_> = model
                            .range(key.clone()..end.clone())
                            .map(|(key, _)| key.clone())
                            .collect();
                        assert_eq!(deleted.len(), doomed.len());
                        for key in doomed {
                            model.remove(&key);
                        }
                        changed |= !deleted.is_empty();
                    }
                }
            }
            txn.end();
            applied += 1;
            batch.commit(applied);
            if changed {
                history.push(model);
            }
            assert_eq!(store.revision(), history.len() as i64 - 1);
            if round % 97 == 0 {
                store.persist().unwrap();
            }
            if round % 50 == 0 {
                check(&store, &history, 1, &mut rng, 20);
            }
        }
        check(&store, &history, 1, &mut rng, 300);
        store.persist().unwrap();
        drop(store);
        let mut store = Store::open(&path, StoreOptions::default()).unwrap();
        assert_eq!(store.revision(), history.len() as i64 - 1);
        check(&store, &history, 1, &mut rng, 300);
        // Compaction drops superseded entries; reads at or after its
        // revision see the same in both orders.
        let compact_revision = history.len() as i64 / 2;
        let mut batch = store.write_batch();
        batch.compact(compact_revision).unwrap();
        applied += 1;
        batch.commit(applied);
        check(&store, &history, compact_revision, &mut rng, 300);
    }
}

/// A put of `key` at main revision `main` in the model (version up by
/// one, create revision kept, both fresh for a new key); returns the
/// key's (create, version).
fn model_put(model: &mut Model, key: Vec<u8>, main: i64, value: Vec<u8>) -> (i64, i64) {
    let (create, version) = match model.get(&key) {
        Some((create, _, version, _)) => (*create, version + 1),
        None => (main, 1),
    };
    model.insert(key, (create, main, version, value));
    (create, version)
}

/// The state a model gives `key`: (create, mod, version, value).
fn model_kv(model: &Model, key: &[u8]) -> Option<keel_engine::KeyValue> {
    model
        .get(key)
        .map(|(create, modified, version, value)| keel_engine::KeyValue {
            key: key.to_vec(),
            create_revision: *create,
            mod_revision: *modified,
            version: *version,
            value: value.clone(),
            lease: 0,
        })
}

/// Batches of many txns, as raft applies them: each put must see the
/// key's newest state whether an earlier txn of the batch, an earlier op
/// of its own txn, or an earlier batch wrote it; reads and deletes inside
/// a txn must see the batch's writes (and the revision index entries the
/// batch holds back); a compaction or persist in the middle of a batch
/// must take them in; and a batch dropped without commit is published by
/// the next.
#[test]
fn batches_of_many_txns_match_the_model() {
    for seed in 0..SEEDS / 2 {
        let mut rng = StdRng::seed_from_u64(1000 + seed);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut store = Store::open(&path, StoreOptions::default()).unwrap();
        let mut history: Vec<Model> = vec![Model::new(), Model::new()];
        let mut applied = 0;
        let mut oldest = 1;
        for round in 0..60 {
            let mut batch = store.write_batch();
            // Half the batches keep events as for watchers, half only for
            // leases (none here): what a put reports must not change.
            let detail = if rng.random_bool(0.5) {
                Detail::Full
            } else {
                Detail::Leases
            };
            batch.set_event_detail(detail);
            for _ in 0..rng.random_range(1..40) {
                let mut model = history.last().unwrap().clone();
                let main = history.len() as i64;
                let mut txn = batch.txn();
                let mut changed = false;
                let mut expected_events = Vec::new();
                for _ in 0..rng.random_range(1..4) {
                    let key = random_key(&mut rng);
                    match rng.random_range(0..12) {
                        0..=6 => {
                            let value = format!("v{round}-{}", rng.random_range(0..1000));
                            let previous = model_kv(&model, &key);
                            if rng.random_bool(0.5) {
                                let got = txn.put_with_previous(&key, value.as_bytes(), 0);
                                assert_eq!(got, previous, "{key:?}");
                            } else {
                                txn.put(&key, value.as_bytes(), 0);
                            }
                            model_put(&mut model, key.clone(), main, value.into_bytes());
                            expected_events.push((
                                EventKind::Put,
                                model_kv(&model, &key),
                                previous,
                            ));
                            changed = true;
                        }
                        7..=8 => {
                            let deleted = txn.delete_range(&key, b"");
                            let previous = model_kv(&model, &key);
                            assert_eq!(deleted.first().cloned(), previous);
                            if model.remove(&key).is_some() {
                                changed = true;
                                let tombstone = keel_engine::KeyValue {
                                    key: key.clone(),
                                    mod_revision: main,
                                    ..Default::default()
                                };
                                expected_events.push((
                                    EventKind::Delete,
                                    Some(tombstone),
                                    previous,
                                ));
                            }
                        }
                        _ => {
                            // A read inside the txn sees the batch so far.
                            let read = txn
                                .range(&RangeOptions {
                                    key: &key,
                                    ..RangeOptions::default()
                                })
                                .unwrap();
                            assert_eq!(read.kvs.first().cloned(), model_kv(&model, &key));
                            let all = txn
                                .range(&RangeOptions {
                                    key: b"k",
                                    range_end: b"l",
                                    count_only: true,
                                    ..RangeOptions::default()
                                })
                                .unwrap();
                            assert_eq!(
                                all.count as usize,
                                model.range(b"k".to_vec()..b"l".to_vec()).count()
                            );
                        }
                    }
                }
                let events: Vec<_> = txn
                    .end()
                    .iter()
                    .map(|event| (event.kind, Some(event.kv()), event.prev_kv()))
                    .collect();
                if detail == Detail::Full {
                    assert_eq!(events, expected_events);
                } else {
                    assert_eq!(events, [], "no change involves a lease");
                }
                if changed {
                    history.push(model);
                }
                if rng.random_range(0..30) == 0 {
                    // Compaction in the middle of the batch.
                    let target = rng.random_range(oldest..history.len() as i64);
                    if target > oldest {
                        batch.compact(target).unwrap();
                        oldest = target;
                    }
                }
            }
            applied += 1;
            // Every eleventh batch is dropped without commit (at the end of
            // this block): the next batch's commit publishes it.
            if round % 11 != 5 {
                batch.commit(applied);
            }
            assert_eq!(store.revision(), history.len() as i64 - 1);
            if round % 13 == 0 {
                store.persist().unwrap();
            }
            if round % 11 != 5 {
                check(&store, &history, oldest, &mut rng, 30);
            }
        }
        let batch = store.write_batch();
        applied += 1;
        batch.commit(applied);
        check(&store, &history, oldest, &mut rng, 200);
        store.persist().unwrap();
        drop(store);
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        assert_eq!(store.revision(), history.len() as i64 - 1);
        check(&store, &history, oldest, &mut rng, 200);
    }
}
