//! Copy-on-write insertion into the tree (`node.rs` has the nodes):
//! one entry per descent ([`insert`], [`insert_parts`], [`insert_built`]),
//! or an ascending run appended a leaf's worth per descent
//! ([`insert_run`]), splitting nodes that overfill on the way back up.

use super::branch::branch_key_len;
use super::entry::{Entry, EntryRef};
use super::heads::Heads;
use super::leaf::{Leaf, FULL_LEAF_CAPACITY_BYTES};
use super::node::{copy_room, Node, NodeBody, NODE_PAYLOAD_BYTES_TARGET, TREE_DEPTH_MAX};
use super::order;
use std::sync::Arc;

/// Fewest children a branch must have before it may split (each half keeps 2).
const BRANCH_SPLIT_CHILDREN_MIN: usize = 4;

/// Inserts or replaces `key` in the tree under `root` (copy-on-write);
/// returns the replaced value's entry if the key was present.
///
/// With [`remove_sorted`], the only code that changes a node: it changes
/// (and marks dirty) only nodes `Arc::make_mut` finds unique on the path
/// from `root`, so a clone of any root (a read view, a persist in flight)
/// never sees a change, and its pages are never cleared from here.
///
/// [`remove_sorted`]: super::remove_sorted
pub fn insert(root: &mut Arc<Node>, key: &[u8], value: &[u8]) -> Option<Entry> {
    insert_parts(root, key, &[value])
}

/// [`insert`] of a value made of `value_parts` one after the other
/// (copied into the leaf; nothing is allocated for the entry itself).
pub fn insert_parts(root: &mut Arc<Node>, key: &[u8], value_parts: &[&[u8]]) -> Option<Entry> {
    let incoming = Parts {
        key,
        parts: value_parts,
        run: false,
    };
    let (replaced, split) =
        insert_into(root, incoming, true, 0).expect("an entry is inserted wherever it goes");
    grow_root(root, split);
    replaced
}

/// Puts a new root above `root` and the node split off it, if one was.
fn grow_root(root: &mut Arc<Node>, split: Option<Split>) {
    if let Some((separator, right)) = split {
        let left = std::mem::replace(root, Node::empty());
        *root = Arc::new(Node::new(NodeBody::Branch {
            keys: vec![separator],
            children: vec![left, right],
        }));
    }
}

type Split = (Arc<[u8]>, Arc<Node>);

/// What [`insert_into`] puts in the tree: an entry whose value is a head
/// and then tail parts, the head made at the leaf, possibly from the
/// entry that will follow it ([`insert_built`]).
trait Incoming<'p> {
    /// What the value starts with.
    type Head: AsRef<[u8]>;
    /// The key the entry will have.
    fn key(&self) -> &'p [u8];
    /// Whether [`Incoming::value`] needs the following entry (an insert
    /// that cannot see it then changes nothing).
    fn needs_next(&self) -> bool;
    /// Whether the entry heads an ascending run of entries to come after
    /// it ([`insert_run`]): a leaf it overfills is cut right after it.
    fn in_run(&self) -> bool {
        false
    }
    /// The value's head and tail parts, given the entry that will follow
    /// it in key order (`None` when none does); `next` is meaningful only
    /// if [`Incoming::needs_next`].
    fn value(self, next: Option<EntryRef<'_>>) -> (Self::Head, &'p [&'p [u8]]);
}

/// A value given whole, as parts.
struct Parts<'p> {
    key: &'p [u8],
    parts: &'p [&'p [u8]],
    /// See [`Incoming::in_run`].
    run: bool,
}

impl<'p> Incoming<'p> for Parts<'p> {
    type Head = [u8; 0];
    fn key(&self) -> &'p [u8] {
        self.key
    }
    fn needs_next(&self) -> bool {
        false
    }
    fn in_run(&self) -> bool {
        self.run
    }
    fn value(self, _next: Option<EntryRef<'_>>) -> ([u8; 0], &'p [&'p [u8]]) {
        ([], self.parts)
    }
}

/// A value whose head `build` makes at the leaf, followed by `tail`.
struct Built<'p, F> {
    key: &'p [u8],
    tail: &'p [&'p [u8]],
    build: F,
}

impl<'p, H: AsRef<[u8]>, F: FnOnce(Option<EntryRef<'_>>) -> H> Incoming<'p> for Built<'p, F> {
    type Head = H;
    fn key(&self) -> &'p [u8] {
        self.key
    }
    fn needs_next(&self) -> bool {
        true
    }
    fn value(self, next: Option<EntryRef<'_>>) -> (H, &'p [&'p [u8]]) {
        ((self.build)(next), self.tail)
    }
}

/// [`insert_parts`] of an entry whose value is the head `build` makes,
/// given the entry that will follow it in key order (`None` when no entry
/// follows), then `tail`'s parts, in one descent: for a writer that
/// derives the new entry from its successor, as a put does from a key's
/// newest revision. Only the leaf `key` falls in is looked at; when `key`
/// goes after its last entry and the leaf is not the tree's last one, the
/// successor is in another leaf: nothing is inserted, `build` is not
/// called, and `None` is returned (the nodes on the path are copied and
/// marked dirty as for an insert there, nothing else changes), for the
/// caller to look the successor up and insert the entry with
/// [`insert_parts`]. Otherwise returns `Some` of what [`insert_parts`]
/// returns.
pub fn insert_built<H: AsRef<[u8]>>(
    root: &mut Arc<Node>,
    key: &[u8],
    tail: &[&[u8]],
    build: impl FnOnce(Option<EntryRef<'_>>) -> H,
) -> Option<Option<Entry>> {
    let (replaced, split) = insert_into(root, Built { key, tail, build }, true, 0)?;
    grow_root(root, split);
    Some(replaced)
}

/// Inserts `incoming` under `node`, the last node of its level when
/// `last`; `None` (nothing inserted) only when `incoming` needs its
/// successor and the successor is in another leaf.
fn insert_into<'p>(
    node: &mut Arc<Node>,
    incoming: impl Incoming<'p>,
    last: bool,
    depth: usize,
) -> Option<(Option<Entry>, Option<Split>)> {
    assert!(depth < TREE_DEPTH_MAX, "tree deeper than {TREE_DEPTH_MAX}");
    let node = Arc::make_mut(node);
    node.set_page(None);
    match &mut node.body {
        NodeBody::Leaf(leaf) => {
            let key = incoming.key();
            let in_run = incoming.in_run();
            let below = node.heads.count_below(key, false, |index| leaf.key(index));
            let found = match leaf.get(below) {
                Some(entry) if entry.key() == key => Ok(below),
                _ => Err(below),
            };
            debug_assert_eq!(
                found,
                match leaf.iter().position(|entry| !order::less(entry.key(), key)) {
                    Some(index) if leaf.key(index) == key => Ok(index),
                    Some(index) => Err(index),
                    None => Err(leaf.len()),
                }
            );
            let after = match found {
                Ok(position) => position + 1,
                Err(position) => position,
            };
            if incoming.needs_next() && after == leaf.len() && !last {
                return None;
            }
            let (head, tail) = incoming.value(leaf.get(after));
            let replaced = match found {
                Ok(position) => {
                    let replaced = leaf.remove(position);
                    leaf.insert(position, key, head.as_ref(), tail);
                    Some(replaced)
                }
                Err(position) => {
                    let counted = leaf
                        .first()
                        .is_some_and(|first| node.heads.insert(position, key, first.key()));
                    leaf.insert(position, key, head.as_ref(), tail);
                    if !counted {
                        node.heads =
                            Heads::of(leaf.len(), copy_room(leaf.len()), |index| leaf.key(index));
                    }
                    None
                }
            };
            let entry_count = leaf.len();
            let appended = replaced.is_none() && after + 1 == entry_count;
            let position = match found {
                Ok(position) | Err(position) => position,
            };
            node.payload_len = leaf.payload().len();
            let split = (entry_count >= 2 && node.payload_len > NODE_PAYLOAD_BYTES_TARGET)
                .then(|| split_leaf(node, appended, in_run.then_some(position)));
            Some((replaced, split))
        }
        NodeBody::Branch { keys, children } => {
            let position = node
                .heads
                .count_below(incoming.key(), true, |index| &keys[index]);
            debug_assert_eq!(
                position,
                keys.partition_point(|separator| !order::less(incoming.key(), separator))
            );
            let last = last && position + 1 == children.len();
            let (replaced, child_split) =
                insert_into(&mut children[position], incoming, last, depth + 1)?;
            if let Some((separator, right)) = child_split {
                node.payload_len += branch_key_len(&separator);
                let counted = keys
                    .first()
                    .is_some_and(|first| node.heads.insert(position, &separator, first));
                keys.insert(position, separator);
                children.insert(position + 1, right);
                if !counted {
                    node.heads = Heads::of(keys.len(), copy_room(keys.len()), |index| &keys[index]);
                }
            }
            let child_count = children.len();
            let split = (child_count >= BRANCH_SPLIT_CHILDREN_MIN
                && node.payload_len > NODE_PAYLOAD_BYTES_TARGET)
                .then(|| split_branch(node));
            Some((replaced, split))
        }
    }
}

/// Inserts every entry of `run` (ascending keys, none of them in the
/// tree), as [`insert_parts`] would one by one, but appending to a leaf in
/// one descent as many as go after its last entry, below its upper bound,
/// and fit it; the entry that does not (a leaf about to split, or a key
/// that is not an append) goes through [`insert_parts`]. For a writer
/// whose keys come in order past everything near them, as revision index
/// entries do: a run of them then costs a descent per leaf, not per entry.
pub fn insert_run(root: &mut Arc<Node>, run: &Leaf) {
    let mut next = 0;
    // Each round inserts at least one entry: bounded by the run.
    while next < run.len() {
        let appended = append_run(root, run, next, None, 0);
        if appended > 0 {
            next += appended;
            continue;
        }
        let entry = run.entry(next);
        let incoming = Parts {
            key: entry.key(),
            parts: &[entry.value()],
            run: true,
        };
        let (replaced, split) =
            insert_into(root, incoming, true, 0).expect("an entry is inserted wherever it goes");
        grow_root(root, split);
        assert!(replaced.is_none(), "a run's keys are not in the tree");
        next += 1;
    }
}

/// Appends entries `from..` of `run` to the end of the leaf under `node`
/// that entry `from` falls in (`upper` bounds `node`'s keys from above),
/// while they go after its last entry, below its bound, and fit its page;
/// returns how many. The path is copied as an insert's would be.
fn append_run(
    node: &mut Arc<Node>,
    run: &Leaf,
    from: usize,
    upper: Option<&[u8]>,
    depth: usize,
) -> usize {
    assert!(depth < TREE_DEPTH_MAX, "tree deeper than {TREE_DEPTH_MAX}");
    let first = run.key(from);
    let node = Arc::make_mut(node);
    let appended = match &mut node.body {
        NodeBody::Branch { keys, children } => {
            let position = node.heads.count_below(first, true, |index| &keys[index]);
            let child_upper = keys.get(position).map(AsRef::as_ref).or(upper);
            append_run(&mut children[position], run, from, child_upper, depth + 1)
        }
        NodeBody::Leaf(leaf) => {
            let mut count = 0;
            let mut payload_len = node.payload_len;
            while let Some(entry) = run.get(from + count) {
                let fits = payload_len + entry.encoded_len() <= NODE_PAYLOAD_BYTES_TARGET;
                // The run ascends: only its first entry can fall before
                // the leaf's last.
                let after_last =
                    count > 0 || leaf.last().is_none_or(|last| last.key() < entry.key());
                let below_upper = upper.is_none_or(|upper| entry.key() < upper);
                if !(fits && after_last && below_upper) {
                    break;
                }
                payload_len += entry.encoded_len();
                count += 1;
            }
            // One copy of the entries' bytes, then their heads.
            let old_len = leaf.len();
            leaf.append_run(run, from, from + count);
            let counted = (old_len..leaf.len()).all(|position| {
                position > 0 && node.heads.insert(position, leaf.key(position), leaf.key(0))
            });
            if !counted {
                node.heads = Heads::of(leaf.len(), copy_room(leaf.len()), |index| leaf.key(index));
            }
            node.payload_len = leaf.payload().len();
            count
        }
    };
    if appended > 0 {
        node.set_page(None);
    }
    appended
}

/// Splits an overfull leaf in two by payload, or, when the entry that made
/// it overfull was `appended` after all the others, moves only that entry
/// to the new leaf: keys written in ascending order (revision index
/// entries always are) then fill leaves to a page instead of leaving each
/// half empty. When that entry, at `run_at`, heads a run ([`insert_run`])
/// but landed among other entries, the cut goes right after it, so the
/// rest of the run appends.
fn split_leaf(node: &mut Node, appended: bool, run_at: Option<usize>) -> Split {
    let payload_len = node.payload_len;
    let NodeBody::Leaf(leaf) = &mut node.body else {
        unreachable!("split_leaf on a branch")
    };
    assert!(leaf.len() >= 2);
    let last_len = leaf.encoded_len(leaf.len() - 1);
    // A run's entry goes last in the old leaf (or first in the new one,
    // if the old one would not fit a page): the run then appends behind
    // it, apart from the entries that followed it.
    let run_cut = run_at.and_then(|position| {
        [position + 1, position].into_iter().find(|&cut| {
            (1..leaf.len()).contains(&cut)
                && payload_len - leaf.bytes_from(cut) <= NODE_PAYLOAD_BYTES_TARGET
        })
    });
    let cut = if appended && payload_len - last_len <= NODE_PAYLOAD_BYTES_TARGET {
        leaf.len() - 1
    } else if let Some(cut) = run_cut {
        cut
    } else {
        let mut left_bytes = 0;
        let mut cut = 0;
        while cut < leaf.len() - 1 && left_bytes < payload_len / 2 {
            left_bytes += leaf.encoded_len(cut);
            cut += 1;
        }
        cut.max(1)
    };
    // The new leaf gets a whole leaf's buffer, like a copy (`leaf.rs`).
    let right = leaf.split_off(cut, FULL_LEAF_CAPACITY_BYTES);
    let separator: Arc<[u8]> = right.key(0).into();
    node.recount_payload_len();
    (separator, Arc::new(Node::new(NodeBody::Leaf(right))))
}

fn split_branch(node: &mut Node) -> Split {
    let NodeBody::Branch { keys, children } = &mut node.body else {
        unreachable!("split_branch on a leaf")
    };
    assert!(children.len() >= BRANCH_SPLIT_CHILDREN_MIN);
    let middle = children.len() / 2;
    let right_children = children.split_off(middle);
    let mut right_keys = keys.split_off(middle - 1);
    let separator = right_keys.remove(0);
    assert_eq!(keys.len() + 1, children.len());
    assert_eq!(right_keys.len() + 1, right_children.len());
    node.recount_payload_len();
    (
        separator,
        Arc::new(Node::new(NodeBody::Branch {
            keys: right_keys,
            children: right_children,
        })),
    )
}

#[cfg(test)]
mod tests {
    use super::super::test_random::XorShift;
    use super::super::test_tree::{checked_keys, collect, visit};
    use super::*;

    #[test]
    fn insert_built_sees_the_next_entry_or_changes_nothing() {
        use std::collections::BTreeMap;
        let mut random = XorShift(0x2545_F491_4F6C_DD1D);
        let mut root = Node::empty();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let (mut built, mut deferred) = (0, 0);
        for round in 0..6000u64 {
            let key = format!("k{:05}", random.below(3000)).into_bytes();
            let value = vec![b'v'; 40 + random.below(200) as usize];
            let expected_next = model
                .range::<[u8], _>((
                    std::ops::Bound::Excluded(&key[..]),
                    std::ops::Bound::Unbounded,
                ))
                .next()
                .map(|(key, _)| key.clone());
            let before = root.clone();
            let mut seen = None;
            // The value goes in two parts: a head built at the leaf, the
            // rest given.
            let (head, tail) = value.split_at(value.len() / 2);
            let result = insert_built(&mut root, &key, &[tail], |next: Option<EntryRef<'_>>| {
                seen = Some(next.map(|next| next.key().to_vec()));
                head.to_vec()
            });
            match result {
                Some(replaced) => {
                    built += 1;
                    assert_eq!(seen, Some(expected_next), "round {round}");
                    assert_eq!(
                        replaced.map(|entry| entry.value().to_vec()),
                        model.insert(key.clone(), value.clone())
                    );
                }
                None => {
                    deferred += 1;
                    assert_eq!(seen, None, "build is not called");
                    assert!(expected_next.is_some(), "only a later leaf defers");
                    let mut unchanged = Vec::new();
                    collect(&root, &mut unchanged);
                    let mut earlier = Vec::new();
                    collect(&before, &mut earlier);
                    assert_eq!(unchanged, earlier);
                    insert(&mut root, &key, &value);
                    model.insert(key.clone(), value.clone());
                }
            }
        }
        let mut held = Vec::new();
        collect(&root, &mut held);
        assert_eq!(held, model.into_iter().collect::<Vec<_>>());
        assert!(
            built > 1000 && deferred > 10,
            "both paths taken: {built} / {deferred}"
        );
    }

    #[test]
    fn insert_many_keeps_order_and_old_roots() {
        let mut root = Node::empty();
        let mut snapshot = None;
        for number in (0..3000u32).rev() {
            let key = format!("key{number:06}");
            insert(&mut root, key.as_bytes(), &[7u8; 100]);
            if number == 1500 {
                snapshot = Some(root.clone());
            }
        }
        let mut all = Vec::new();
        collect(&root, &mut all);
        assert_eq!(all.len(), 3000);
        assert!(all.windows(2).all(|pair| pair[0].0 < pair[1].0));
        assert!(matches!(root.body, NodeBody::Branch { .. }));
        let mut old = Vec::new();
        collect(snapshot.as_ref().unwrap(), &mut old);
        assert_eq!(old.len(), 1500);
        let replaced = insert(&mut root, b"key000010", b"new");
        assert_eq!(replaced.unwrap().value(), &[7u8; 100]);
    }

    #[test]
    fn insert_run_matches_inserts_and_leaves_the_run_in_full_leaves_of_its_own() {
        let mut root = Node::empty();
        let mut model = std::collections::BTreeMap::new();
        // Keys above where the run goes ("c…"), then a few below it ("a…"),
        // which land in the first leaf of the others: the run starts in a
        // leaf among keys above it.
        // The keys above are large, so a split by halves lands among them
        // or among the run's, never between the two.
        for (space, count, value_len) in [("c", 500u32, 400usize), ("a", 10, 40)] {
            for number in 0..count {
                let key = format!("{space}{number:06}").into_bytes();
                insert(&mut root, &key, &vec![1u8; value_len]);
                model.insert(key, vec![1u8; value_len]);
            }
        }
        let published = root.clone();
        let mut expected_published = Vec::new();
        collect(&published, &mut expected_published);
        for round in 0..3u32 {
            let mut run = Leaf::new();
            for number in round * 1000..(round + 1) * 1000 {
                let key = format!("b{number:06}").into_bytes();
                let value = vec![2u8; 20 + (number % 7) as usize];
                run.insert(run.len(), &key, &value, &[]);
                model.insert(key, value);
            }
            insert_run(&mut root, &run);
        }
        let mut held = Vec::new();
        collect(&root, &mut held);
        assert_eq!(held, model.into_iter().collect::<Vec<_>>());
        let mut keys = Vec::new();
        checked_keys(&root, None, None, true, &mut keys);
        let mut after = Vec::new();
        collect(&published, &mut after);
        assert_eq!(after, expected_published, "the published tree is untouched");
        // No leaf holds run keys with the keys above the run (the run
        // appends after the keys below it), and the leaves of only run keys
        // are full but for the last.
        let mut fills = Vec::new();
        visit(&root, &mut |node| {
            if let NodeBody::Leaf(leaf) = &node.body {
                let space = |index: usize| leaf.key(index)[0];
                if (0..leaf.len()).any(|index| space(index) == b'b') {
                    assert!(
                        (0..leaf.len()).all(|index| space(index) != b'c'),
                        "a leaf mixes the run with the keys above it"
                    );
                    if (0..leaf.len()).all(|index| space(index) == b'b') {
                        fills.push(leaf.payload().len());
                    }
                }
            }
        });
        fills.sort_unstable();
        assert!(fills.len() > 10, "{} leaves of the run", fills.len());
        let full = &fills[1..];
        assert!(
            full.iter()
                .all(|&fill| fill > NODE_PAYLOAD_BYTES_TARGET * 9 / 10),
            "leaf payloads {fills:?}"
        );
    }
}
