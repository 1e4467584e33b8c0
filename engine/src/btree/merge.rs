//! Merging a sorted run of new entries into the tree a leaf at a time.
//!
//! [`insert`](super::insert) puts one entry in per descent: the leaf it
//! lands in is copied whole (to a whole-leaf buffer, the first time a
//! batch touches it), the bytes after the entry move up to make room,
//! and when the batch is published the leaf is copied once more to cut
//! it back (`leaf.rs`). A batch of puts spread over a key range pays that
//! for every put: most of its time went to those copies and moves.
//!
//! [`merge_run`] takes the batch's new entries sorted and builds each
//! leaf they land in once: the old leaf's entries and the new ones, in
//! order, copied a stretch at a time into a buffer of exactly the merged
//! size (or into two, when they overfill a leaf), which replaces the old
//! leaf. Nothing moves twice and nothing is cut back later.

use super::entry::EntryRef;
use super::leaf::Leaf;
use super::node::{grow_root, Node, NodeBody, Split, NODE_PAYLOAD_BYTES_TARGET, TREE_DEPTH_MAX};
use super::order;
use std::sync::Arc;

/// Entries in ascending key order, for [`merge_run`].
pub trait SortedRun {
    /// How many.
    fn len(&self) -> usize;
    /// Entry `index` (below [`SortedRun::len`]).
    fn entry(&self, index: usize) -> EntryRef<'_>;
}

impl SortedRun for [EntryRef<'_>] {
    fn len(&self) -> usize {
        <[EntryRef<'_>]>::len(self)
    }
    fn entry(&self, index: usize) -> EntryRef<'_> {
        self[index]
    }
}

/// The entries of `run` from `from` on.
struct Rest<'r, R: ?Sized> {
    run: &'r R,
    from: usize,
}

impl<R: SortedRun + ?Sized> Rest<'_, R> {
    fn get(&self, index: usize) -> Option<EntryRef<'_>> {
        (self.from + index < self.run.len()).then(|| self.run.entry(self.from + index))
    }
    fn entry(&self, index: usize) -> EntryRef<'_> {
        self.get(index).expect("an entry of the run")
    }
}

/// Merges `run` (ascending keys, none of them in the tree) into the tree
/// under `root`, copy-on-write like [`insert`](super::insert): the
/// branches on each path are copied if shared, and each leaf that gets
/// entries is replaced by a new one (a shared leaf stays as it was for the
/// views that hold it). The tree is left as inserting the entries one by
/// one would leave it, leaf shapes aside.
pub fn merge_run<R: SortedRun + ?Sized>(root: &mut Arc<Node>, run: &R) {
    debug_assert!(
        (1..run.len()).all(|index| order::less(run.entry(index - 1).key(), run.entry(index).key()))
    );
    let mut from = 0;
    // Each round merges at least one entry: bounded by the run.
    while from < run.len() {
        let (merged, split) = merge_into(root, &Rest { run, from }, None, 0);
        assert!(merged > 0, "a round merges an entry at least");
        grow_root(root, split);
        from += merged;
    }
}

/// Merges a first stretch of `run` into the leaf under `node` that
/// `run[0]` falls in (`upper` bounds `node`'s keys from above): the
/// entries below the leaf's upper bound, as many as two leaves hold.
/// Returns how many it merged and the node split off `node`, if any.
fn merge_into<R: SortedRun + ?Sized>(
    node: &mut Arc<Node>,
    run: &Rest<'_, R>,
    upper: Option<&[u8]>,
    depth: usize,
) -> (usize, Option<Split>) {
    assert!(depth < TREE_DEPTH_MAX, "tree deeper than {TREE_DEPTH_MAX}");
    if let NodeBody::Leaf(leaf) = &node.body {
        let (merged, left, right) = merge_leaf(node, leaf, run, upper);
        *node = Arc::new(Node::new(NodeBody::Leaf(left)));
        let split = right.map(|right| {
            let separator: Arc<[u8]> = right.key(0).into();
            (separator, Arc::new(Node::new(NodeBody::Leaf(right))))
        });
        return (merged, split);
    }
    let node = Arc::make_mut(node);
    node.set_page(None);
    let position = node.child_index(run.entry(0).key());
    let NodeBody::Branch { keys, children } = &mut node.body else {
        unreachable!("a leaf returned above")
    };
    let child_upper = keys.get(position).map(AsRef::as_ref).or(upper);
    let (merged, child_split) = merge_into(&mut children[position], run, child_upper, depth + 1);
    (merged, node.take_child_split(position, child_split))
}

/// A stretch of a merged leaf: old entries `first..end`, or one new one.
enum Piece {
    Old { first: usize, end: usize },
    New(usize),
}

/// Builds the leaf (or two) that `leaf` (the body of `node`) becomes with
/// the first entries of `run` that fall below `upper`, taking one at least
/// and no more than two leaves' worth; returns how many it took, the
/// leaf, and the leaf to split off after it.
fn merge_leaf<R: SortedRun + ?Sized>(
    node: &Node,
    leaf: &Leaf,
    run: &Rest<'_, R>,
    upper: Option<&[u8]>,
) -> (usize, Leaf, Option<Leaf>) {
    let old_bytes = node.encoded_payload_len();
    let mut total = old_bytes;
    let mut taken = 0;
    // The pieces in order, with where each new entry goes among the old.
    let mut pieces = Vec::with_capacity(2 * leaf.len() + 2);
    let mut old_next = 0;
    let mut first_position = None;
    while let Some(entry) = run.get(taken) {
        let below_upper = upper.is_none_or(|upper| order::less(entry.key(), upper));
        let fits = total + entry.encoded_len() <= 2 * NODE_PAYLOAD_BYTES_TARGET;
        if taken > 0 && !(below_upper && fits) {
            break;
        }
        assert!(below_upper, "the run's entry falls in this leaf");
        let position = node.entry_index(entry.key());
        assert!(
            leaf.get(position)
                .is_none_or(|old| old.key() != entry.key()),
            "a merged key is not in the tree"
        );
        first_position.get_or_insert(position);
        if position > old_next {
            pieces.push(Piece::Old {
                first: old_next,
                end: position,
            });
            old_next = position;
        }
        pieces.push(Piece::New(taken));
        total += entry.encoded_len();
        taken += 1;
    }
    if old_next < leaf.len() {
        pieces.push(Piece::Old {
            first: old_next,
            end: leaf.len(),
        });
    }
    let count = leaf.len() + taken;
    let piece_entries = |piece: &Piece| match *piece {
        Piece::Old { first, end } => end - first,
        Piece::New(_) => 1,
    };
    let entry_len = |piece: &Piece, offset: usize| match *piece {
        Piece::Old { first, .. } => leaf.encoded_len(first + offset),
        Piece::New(index) => run.entry(index).encoded_len(),
    };
    // Where the second leaf starts (`count` for none), and the first's
    // bytes. New entries all after the old ones (keys written in
    // ascending order) fill the first leaf before the second; otherwise
    // the two halve the bytes, as a split does (`node::split_leaf`).
    let appended = first_position == Some(leaf.len());
    let (cut, left_bytes) = if count < 2 || total <= NODE_PAYLOAD_BYTES_TARGET {
        (count, total)
    } else {
        let mut cut = 0;
        let mut left_bytes = 0;
        'pieces: for piece in &pieces {
            for offset in 0..piece_entries(piece) {
                let len = entry_len(piece, offset);
                let full = if appended {
                    left_bytes + len > NODE_PAYLOAD_BYTES_TARGET
                } else {
                    left_bytes >= total / 2
                };
                if cut == count - 1 || (full && cut > 0) {
                    break 'pieces;
                }
                left_bytes += len;
                cut += 1;
            }
        }
        (cut, left_bytes)
    };
    let mut left = Leaf::with_capacity(left_bytes, cut);
    let mut right = (cut < count).then(|| Leaf::with_capacity(total - left_bytes, count - cut));
    let mut at = 0;
    for piece in &pieces {
        match *piece {
            Piece::Old { first, end } => {
                let in_left = cut.saturating_sub(at).min(end - first);
                left.append_run(leaf, first, first + in_left);
                if let Some(right) = right.as_mut() {
                    right.append_run(leaf, first + in_left, end);
                }
                at += end - first;
            }
            Piece::New(index) => {
                match right.as_mut().filter(|_| at >= cut) {
                    Some(right) => right.push(run.entry(index)),
                    None => left.push(run.entry(index)),
                }
                at += 1;
            }
        }
    }
    debug_assert_eq!(left.payload().len(), left_bytes);
    debug_assert_eq!(left.len() + right.as_ref().map_or(0, Leaf::len), count);
    (taken, left, right)
}

#[cfg(test)]
mod tests {
    use super::super::node::insert;
    use super::super::test_random::XorShift;
    use super::super::test_tree::{checked_keys, collect, leaves_of, mark_written, pages_of};
    use super::*;
    use std::collections::BTreeMap;

    /// Merges `entries` (any order, distinct, not in the tree) as a batch.
    fn merge(root: &mut Arc<Node>, entries: &BTreeMap<Vec<u8>, Vec<u8>>) {
        let run: Vec<EntryRef<'_>> = entries
            .iter()
            .map(|(key, value)| EntryRef::new(key, value))
            .collect();
        merge_run(root, run.as_slice());
    }

    fn check(root: &Arc<Node>, model: &BTreeMap<Vec<u8>, Vec<u8>>) {
        let mut keys = Vec::new();
        checked_keys(root, None, None, true, &mut keys);
        let mut held = Vec::new();
        collect(root, &mut held);
        assert_eq!(held.len(), model.len());
        assert!(held
            .iter()
            .zip(model)
            .all(|((key, value), (want_key, want_value))| key == want_key && value == want_value));
        for leaf in leaves_of(root) {
            let NodeBody::Leaf(entries) = &leaf.body else {
                unreachable!()
            };
            let largest = entries.iter().map(|entry| entry.encoded_len()).max();
            assert!(
                entries.len() < 2
                    || leaf.encoded_payload_len()
                        <= 2 * NODE_PAYLOAD_BYTES_TARGET + largest.unwrap_or(0),
                "a merged leaf holds two leaves' bytes, and one entry, at most"
            );
        }
    }

    #[test]
    fn random_batches_match_a_model_and_leave_published_trees_alone() {
        let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut root = Node::empty();
        let mut model = BTreeMap::new();
        let mut next_page = 1;
        for round in 0..60 {
            // Published: what the batch must not change.
            mark_written(&root, &mut next_page);
            let published = root.clone();
            let published_pages = pages_of(&published);
            let mut published_entries = Vec::new();
            collect(&published, &mut published_entries);
            let mut batch = BTreeMap::new();
            let size = 1 + random.below(if round % 3 == 0 { 2000 } else { 40 });
            for _ in 0..size {
                let key = format!("k{:06}", random.below(50_000)).into_bytes();
                if model.contains_key(&key) {
                    continue;
                }
                let value =
                    vec![b'v'; random.below(if round % 7 == 0 { 9000 } else { 300 }) as usize];
                batch.insert(key, value);
            }
            merge(&mut root, &batch);
            model.extend(batch);
            check(&root, &model);
            assert_eq!(pages_of(&published), published_pages, "round {round}");
            let mut still = Vec::new();
            collect(&published, &mut still);
            assert_eq!(still, published_entries, "round {round}");
        }
        assert!(model.len() > 10_000);
    }

    #[test]
    fn merged_leaves_match_inserted_ones_and_fill_on_appends() {
        // Ascending keys appended batch after batch fill each leaf to the
        // target before starting the next, as appends one by one do.
        let mut root = Node::empty();
        let mut model = BTreeMap::new();
        for batch in 0..20 {
            let entries: BTreeMap<Vec<u8>, Vec<u8>> = (0..250)
                .map(|index| {
                    (
                        format!("a{:06}", batch * 250 + index).into_bytes(),
                        vec![7; 200],
                    )
                })
                .collect();
            merge(&mut root, &entries);
            model.extend(entries);
        }
        check(&root, &model);
        let leaves = leaves_of(&root);
        let bytes: usize = leaves.iter().map(|leaf| leaf.encoded_payload_len()).sum();
        let fewest = bytes.div_ceil(NODE_PAYLOAD_BYTES_TARGET);
        assert!(
            leaves.len() <= fewest + fewest / 20 + 1,
            "{} leaves where {fewest} hold the bytes",
            leaves.len()
        );
        // Interleaved keys (a new revision before each old one, as a batch
        // rewriting a key range puts them) land among the old entries.
        let mut inserted = root.clone();
        let between: BTreeMap<Vec<u8>, Vec<u8>> = model
            .keys()
            .map(|key| {
                let mut before = key.clone();
                before.push(0);
                (before, vec![9; 200])
            })
            .collect();
        for (key, value) in &between {
            insert(&mut inserted, key, value);
        }
        merge(&mut root, &between);
        model.extend(between);
        check(&root, &model);
        let mut by_insert = Vec::new();
        collect(&inserted, &mut by_insert);
        let mut by_merge = Vec::new();
        collect(&root, &mut by_merge);
        assert_eq!(by_merge, by_insert);
        // Merged leaves are built to size: nothing to cut back.
        for leaf in leaves_of(&root) {
            let NodeBody::Leaf(entries) = &leaf.body else {
                unreachable!()
            };
            assert_eq!(entries.spare_bytes(), 0);
        }
    }

    #[test]
    fn a_large_entry_gets_a_leaf_of_its_own() {
        let mut root = Node::empty();
        let mut model = BTreeMap::new();
        let entries: BTreeMap<Vec<u8>, Vec<u8>> = [
            (b"a".to_vec(), vec![1; 100]),
            (b"b".to_vec(), vec![2; 5 * NODE_PAYLOAD_BYTES_TARGET]),
            (b"c".to_vec(), vec![3; 100]),
        ]
        .into_iter()
        .collect();
        merge(&mut root, &entries);
        model.extend(entries);
        check(&root, &model);
        assert!(leaves_of(&root).len() >= 2);
    }
}
