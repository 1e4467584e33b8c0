//! Copy-on-write removal of sorted keys from the tree, and the merging of
//! the nodes it thins or a batch leaves small (insertion and the node
//! itself are in `node.rs`).

use super::node::{Node, NodeBody, NODE_PAYLOAD_BYTES_TARGET, TREE_DEPTH_MAX};
use super::order;
use std::sync::Arc;

/// Removes every key of `sorted_keys` (ascending, no duplicates) present in
/// the tree under `root` (copy-on-write, as [`super::insert`]); returns how many
/// were present. Only subtrees whose key range holds a key of the list are
/// copied and marked dirty (callers pass keys they found in the tree), plus
/// the siblings merged into them.
///
/// Removal rebalances so a tree thinned by compaction does not keep a page
/// per nearly empty node: after removing from a child, while that child or
/// its neighbour is underfull (payload below `NODE_PAYLOAD_BYTES_UNDERFULL`)
/// and the two fit in one node ([`NODE_PAYLOAD_BYTES_TARGET`], the payload
/// a page holds), they are merged, with the right neighbour first and then
/// the left one. Runs of thinned nodes thus coalesce into nodes up to a
/// page full, while the halves of a split (about half a page each) merge
/// again only once one of them is below a quarter page, so keys inserted
/// and removed around one place do not split and merge nodes by turns.
/// Leaves merge with leaves and branches with branches,
/// the parent's separator between them moving down into the merged branch;
/// nodes that cannot merge keep their entries (nothing is redistributed).
/// Leaves that become empty leave their parent; a branch left with one
/// child that could not merge, and a root left with one child, is
/// replaced by it. Separators stay valid bounds throughout (every key of
/// child i + 1 is >= `keys[i]`, every key of child i is below it), though
/// after removals `keys[i]` need not be present in child i + 1.
///
/// A merge changes only the unique copy `Arc::make_mut` gives of the kept
/// node and takes the other node's entries out of the parent (moving them
/// when nothing else holds that node, cloning them otherwise), so a clone
/// of any earlier root still reads its own nodes and pages.
pub fn remove_sorted(root: &mut Arc<Node>, sorted_keys: &[&[u8]]) -> usize {
    debug_assert!(sorted_keys.windows(2).all(|pair| pair[0] < pair[1]));
    if sorted_keys.is_empty() {
        return 0;
    }
    let removed = remove_from(root, sorted_keys, 0);
    collapse_root(root);
    if node_is_empty(root) {
        *root = Node::empty();
    }
    removed
}

/// Merges neighbouring nodes under `root` that the batch being committed
/// changed (both unique to the writer's tree, so no published node is
/// copied) while one of them is underfull and the two fit in one node, as
/// removal does (`merge_wanted`); a branch left with one child is
/// replaced by it, as is a root. Run at commit, before the changed leaves
/// are cut back to fit.
///
/// Insertion alone leaves such nodes: an entry that sorts just below a
/// full leaf's upper bound is appended to it, and the split that follows
/// moves that entry alone into a new leaf (as it should for keys written
/// in ascending order, which fill it), but the next key written may fall
/// past the bound, into the neighbour. A key's new revision sorts just
/// before its older ones, so rewriting a range of keys left one leaf of a
/// single entry in front of each leaf the range started, each a page of
/// its own on disk.
pub fn merge_changed(root: &mut Arc<Node>) {
    merge_changed_under(root, 0);
    collapse_root(root);
}

/// Replaces a root branch of one child by that child, level by level.
fn collapse_root(root: &mut Arc<Node>) {
    // Bounded by the depth: each step takes a level off.
    for _ in 0..TREE_DEPTH_MAX {
        match only_child(root) {
            Some(only_child) => *root = only_child,
            None => break,
        }
    }
}

/// The only child of `node` if it is a branch with one child: its bounds
/// are the branch's, so it can take the branch's place.
fn only_child(node: &Node) -> Option<Arc<Node>> {
    match &node.body {
        NodeBody::Branch { children, .. } if children.len() == 1 => Some(children[0].clone()),
        _ => None,
    }
}

fn merge_changed_under(node: &mut Arc<Node>, depth: usize) {
    assert!(depth < TREE_DEPTH_MAX, "tree deeper than {TREE_DEPTH_MAX}");
    let Some(node) = Arc::get_mut(node) else {
        return;
    };
    let NodeBody::Branch { keys, children } = &mut node.body else {
        return;
    };
    for child in children.iter_mut() {
        merge_changed_under(child, depth + 1);
        if let Some(only_child) = only_child(child) {
            *child = only_child;
        }
    }
    let mut merged = false;
    // Right to left: a merge takes away only children right of `index`.
    for index in (0..children.len().saturating_sub(1)).rev() {
        while index + 1 < children.len()
            && is_changed(&mut children[index])
            && is_changed(&mut children[index + 1])
            && merge_wanted(&children[index], &children[index + 1], &keys[index])
        {
            merge_with_right(keys, children, index);
            merged = true;
        }
    }
    if merged {
        node.recount_payload_len();
    }
}

/// Whether nothing but the writer's tree holds `node` (the batch changed it).
fn is_changed(node: &mut Arc<Node>) -> bool {
    Arc::get_mut(node).is_some()
}

/// Nodes whose payload is below this are underfull: removal merges them
/// with a neighbour when the two fit in one node.
pub const NODE_PAYLOAD_BYTES_UNDERFULL: usize = NODE_PAYLOAD_BYTES_TARGET / 4;

const _: () = assert!(NODE_PAYLOAD_BYTES_UNDERFULL > 0);
const _: () = assert!(2 * NODE_PAYLOAD_BYTES_UNDERFULL < NODE_PAYLOAD_BYTES_TARGET);

fn node_is_empty(node: &Node) -> bool {
    match &node.body {
        NodeBody::Leaf(leaf) => leaf.is_empty(),
        NodeBody::Branch { children, .. } => children.is_empty(),
    }
}

fn remove_from(node: &mut Arc<Node>, sorted_keys: &[&[u8]], depth: usize) -> usize {
    assert!(depth < TREE_DEPTH_MAX, "tree deeper than {TREE_DEPTH_MAX}");
    let shared = Arc::get_mut(node).is_none();
    if let (true, NodeBody::Leaf(leaf)) = (shared, &node.body) {
        // A leaf a view holds: copy only what stays, instead of copying it
        // whole to remove from the copy.
        let Some((kept, removed)) = leaf.without_sorted(sorted_keys) else {
            return 0;
        };
        *node = Arc::new(Node::new(NodeBody::Leaf(kept)));
        return removed;
    }
    let present = match &node.body {
        NodeBody::Leaf(leaf) => sorted_keys.iter().any(|key| {
            leaf.get(node.entry_index(key))
                .is_some_and(|entry| entry.key() == *key)
        }),
        NodeBody::Branch { .. } => true,
    };
    if !present {
        return 0;
    }
    let node_mut = Arc::make_mut(node);
    node_mut.set_page(None);
    let mut removed = 0;
    match &mut node_mut.body {
        NodeBody::Leaf(leaf) => {
            let mut next = 0;
            removed = leaf.retain(|entry| {
                while next < sorted_keys.len() && order::less(sorted_keys[next], entry.key()) {
                    next += 1;
                }
                !(next < sorted_keys.len() && sorted_keys[next] == entry.key())
            });
        }
        NodeBody::Branch { keys, children } => {
            // The child after the next one to visit; right to left, so
            // removing or merging children keeps the indexes ahead valid.
            let mut child_end = children.len();
            let mut rest = sorted_keys;
            while child_end > 0 && !rest.is_empty() {
                let child_index = child_end - 1;
                let lower = (child_index > 0).then(|| keys[child_index - 1].clone());
                let split = match &lower {
                    Some(lower) => rest.partition_point(|key| order::less(key, lower)),
                    None => 0,
                };
                let mine = &rest[split..];
                rest = &rest[..split];
                if mine.is_empty() {
                    child_end = child_index;
                    continue;
                }
                let removed_here = remove_from(&mut children[child_index], mine, depth + 1);
                removed += removed_here;
                if removed_here == 0 {
                    child_end = child_index;
                    continue;
                }
                if node_is_empty(&children[child_index]) {
                    children.remove(child_index);
                    if !keys.is_empty() {
                        keys.remove(child_index.saturating_sub(1));
                    }
                    child_end = child_index;
                    // The neighbours it leaves side by side may merge; the
                    // left one is visited next, wherever it ends up.
                    if child_index > 0 && child_index < children.len() {
                        child_end = rebalance_child(keys, children, child_index - 1) + 1;
                    }
                    continue;
                }
                // A child merged into its left neighbour is visited again
                // there, for the keys of `rest` in its range.
                let merged_index = rebalance_child(keys, children, child_index);
                child_end = if merged_index < child_index {
                    merged_index + 1
                } else {
                    child_index
                };
            }
            assert_eq!(keys.len() + 1, children.len().max(1));
        }
    }
    node_mut.recount_payload_len();
    removed
}

/// Merges `children[child_index]` with its right, then its left neighbours
/// while [`merge_wanted`], then replaces it by its only child if it is a
/// branch with one left; returns where it ends up.
fn rebalance_child(
    keys: &mut Vec<Arc<[u8]>>,
    children: &mut Vec<Arc<Node>>,
    child_index: usize,
) -> usize {
    assert_eq!(keys.len() + 1, children.len());
    let mut index = child_index;
    // Each merge takes a child away: bounded by the children.
    while index + 1 < children.len()
        && merge_wanted(&children[index], &children[index + 1], &keys[index])
    {
        merge_with_right(keys, children, index);
    }
    while index > 0 && merge_wanted(&children[index - 1], &children[index], &keys[index - 1]) {
        merge_with_right(keys, children, index - 1);
        index -= 1;
    }
    if let Some(only_child) = only_child(&children[index]) {
        children[index] = only_child;
    }
    index
}

/// Whether two neighbours (of one parent, `separator` between them) should
/// be merged: one of them is underfull and together they fit one node.
pub(super) fn merge_wanted(left: &Node, right: &Node, separator: &[u8]) -> bool {
    let (left_len, right_len) = (left.encoded_payload_len(), right.encoded_payload_len());
    let merged_len = match (&left.body, &right.body) {
        (NodeBody::Leaf(_), NodeBody::Leaf(_)) => left_len + right_len,
        // The separator comes down (length u32 and bytes) in front of the
        // right node's first child page, already counted in its payload.
        (NodeBody::Branch { .. }, NodeBody::Branch { .. }) => {
            left_len + right_len + 4 + separator.len()
        }
        _ => return false,
    };
    let underfull =
        left_len < NODE_PAYLOAD_BYTES_UNDERFULL || right_len < NODE_PAYLOAD_BYTES_UNDERFULL;
    underfull && merged_len <= NODE_PAYLOAD_BYTES_TARGET
}

/// Merges `children[left_index + 1]` into `children[left_index]`, dropping
/// the separator between them from `keys` (a branch takes it as the key
/// between the two halves of its children). Only the unique copy of the
/// left node is changed.
fn merge_with_right(keys: &mut Vec<Arc<[u8]>>, children: &mut Vec<Arc<Node>>, left_index: usize) {
    assert!(left_index + 1 < children.len());
    let separator = keys.remove(left_index);
    let right = children.remove(left_index + 1);
    // Moves the entries when nothing else holds the node, copies otherwise.
    let right_body = Arc::unwrap_or_clone(right).body;
    let left = Arc::make_mut(&mut children[left_index]);
    left.set_page(None);
    match (&mut left.body, right_body) {
        (NodeBody::Leaf(left_entries), NodeBody::Leaf(right_entries)) => {
            debug_assert!(match (left_entries.last(), right_entries.first()) {
                (Some(last), Some(first)) =>
                    last.key() < separator.as_ref() && separator.as_ref() <= first.key(),
                _ => true,
            });
            left_entries.append(&right_entries);
        }
        (
            NodeBody::Branch {
                keys: left_keys,
                children: left_children,
            },
            NodeBody::Branch {
                keys: right_keys,
                children: right_children,
            },
        ) => {
            left_keys.push(separator);
            left_keys.extend(right_keys);
            left_children.extend(right_children);
            assert_eq!(left_keys.len() + 1, left_children.len());
        }
        _ => unreachable!("merge_wanted merges nodes of one kind"),
    }
    left.recount_payload_len();
    debug_assert!(left.encoded_payload_len() <= NODE_PAYLOAD_BYTES_TARGET);
}

#[cfg(test)]
mod tests {
    use super::super::entry::EntryRef;
    use super::super::insert::insert;
    use super::super::node::fit_changed;
    use super::super::test_random::XorShift;
    use super::super::test_tree::{
        checked_keys, collect, leaf, leaf_count, leaves_of, mark_written, pages_of, separator,
        visit,
    };
    use super::*;

    #[test]
    fn remove_sorted_keeps_order_old_roots_and_untouched_pages() {
        let key = |number: u32| format!("key{number:06}").into_bytes();
        for pattern in 0..4u32 {
            let mut root = Node::empty();
            for number in 0..3000u32 {
                insert(&mut root, &key(number), &[7u8; 100]);
            }
            root.set_page(Some(1));
            if let NodeBody::Branch { children, .. } = &root.body {
                for child in children {
                    child.set_page(Some(2));
                }
            }
            let snapshot = root.clone();
            let doomed: Vec<u32> = (0..3000u32)
                .filter(|number| match pattern {
                    0 => number % 2 == 0,
                    1 => (1000..2000).contains(number),
                    2 => true,
                    _ => *number == 2999,
                })
                .collect();
            let doomed_keys: Vec<Vec<u8>> = doomed.iter().map(|&n| key(n)).collect();
            let doomed_refs: Vec<&[u8]> = doomed_keys.iter().map(Vec::as_slice).collect();
            assert_eq!(remove_sorted(&mut root, &doomed_refs), doomed.len());
            let mut all = Vec::new();
            collect(&root, &mut all);
            let expected: Vec<Vec<u8>> = (0..3000u32)
                .filter(|number| !doomed.contains(number))
                .map(key)
                .collect();
            let keys: Vec<Vec<u8>> = all.into_iter().map(|(key, _)| key).collect();
            assert_eq!(keys, expected, "pattern {pattern}");
            let mut old = Vec::new();
            collect(&snapshot, &mut old);
            assert_eq!(old.len(), 3000);
            // Seeks still land right, and inserts still work after removal.
            let cursor = super::super::cursor::Cursor::seek(&root, &key(1000));
            assert_eq!(
                cursor.current().map(|entry| entry.key().to_vec()),
                expected
                    .iter()
                    .find(|k| k.as_slice() >= key(1000).as_slice())
                    .cloned()
            );
            insert(&mut root, &key(1500), b"back");
            let mut again = Vec::new();
            collect(&root, &mut again);
            assert!(again.windows(2).all(|pair| pair[0].0 < pair[1].0));
            if pattern == 3 {
                // Only the last leaf's path was copied: the first child kept its page.
                let NodeBody::Branch { children, .. } = &root.body else {
                    panic!("still a branch")
                };
                assert_eq!(children[0].page(), Some(2));
            }
        }
    }

    #[test]
    fn random_inserts_and_removals_match_a_model_and_keep_old_roots() {
        use std::collections::BTreeMap;
        let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut root = Node::empty();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        // Older roots with what they held and the pages their nodes had.
        type Snapshot = (
            Arc<Node>,
            Vec<(Vec<u8>, Vec<u8>)>,
            Vec<(usize, Option<u64>)>,
        );
        let mut snapshots: Vec<Snapshot> = Vec::new();
        let mut next_page = 1;
        let mut merged_leaves_seen = false;
        for round in 0..120u64 {
            // Key space and sizes vary by phase: growth, thinning, churn;
            // long keys make branches merge too, and an occasional value
            // larger than a page makes multi-page leaves.
            let key_space = 1 + random.below(20_000);
            let inserts = match round % 3 {
                0 => random.below(3000),
                1 => random.below(50),
                _ => random.below(500),
            };
            for _ in 0..inserts {
                let number = random.below(key_space);
                let key = format!("k{number:06}{}", "x".repeat((number % 40) as usize));
                let value_len = match random.below(200) {
                    0 => 5000,
                    draw => draw as usize % 120,
                };
                let value = vec![(number % 251) as u8; value_len];
                insert(&mut root, key.as_bytes(), &value);
                model.insert(key.into_bytes(), value);
            }
            let removal_per_mille = match round % 3 {
                1 => 900 + random.below(101),
                _ => random.below(400),
            };
            let mut doomed: Vec<Vec<u8>> = model
                .keys()
                .filter(|_| random.below(1000) < removal_per_mille)
                .cloned()
                .collect();
            // Some absent keys too: they are skipped and not counted.
            let absent: Vec<Vec<u8>> = (0..random.below(20))
                .map(|_| format!("k{:06}absent", random.below(key_space)).into_bytes())
                .collect();
            let present = doomed.len();
            doomed.extend(absent);
            doomed.sort();
            doomed.dedup();
            let leaves_before = leaf_count(&root);
            let doomed_refs: Vec<&[u8]> = doomed.iter().map(Vec::as_slice).collect();
            assert_eq!(
                remove_sorted(&mut root, &doomed_refs),
                present,
                "round {round}"
            );
            for key in &doomed {
                model.remove(key);
            }
            merged_leaves_seen |= leaf_count(&root) < leaves_before / 2;

            let mut keys = Vec::new();
            checked_keys(&root, None, None, true, &mut keys);
            let expected: Vec<Vec<u8>> = model.keys().cloned().collect();
            assert_eq!(keys, expected, "round {round}");
            let mut contents = Vec::new();
            collect(&root, &mut contents);
            assert!(contents
                .iter()
                .zip(&model)
                .all(|((_, value), (_, expected))| value == expected));
            for probe in [0, key_space / 3, key_space - 1] {
                let probe = format!("k{probe:06}");
                assert_eq!(
                    super::super::cursor::Cursor::seek(&root, probe.as_bytes())
                        .current()
                        .map(|entry| entry.key().to_vec()),
                    model
                        .range(probe.into_bytes()..)
                        .next()
                        .map(|(key, _)| key.clone())
                );
            }

            // Every older root reads what it held, with the pages it had.
            for (index, (old_root, old_contents, old_pages)) in snapshots.iter().enumerate() {
                let mut now = Vec::new();
                collect(old_root, &mut now);
                assert!(
                    now == *old_contents,
                    "snapshot {index} changed in round {round}"
                );
                assert!(
                    pages_of(old_root) == *old_pages,
                    "snapshot {index} pages changed"
                );
            }
            // Half the rounds persist (nodes get pages) before the next.
            if round % 2 == 0 {
                mark_written(&root, &mut next_page);
            }
            if round % 10 == 0 {
                snapshots.push((root.clone(), contents, pages_of(&root)));
            }
        }
        assert!(merged_leaves_seen, "no round merged leaves");
    }

    #[test]
    fn thinning_packs_leaves_and_branches() {
        let key = |number: u32| format!("key{number:06}").into_bytes();
        let mut root = Node::empty();
        for number in 0..100_000u32 {
            insert(&mut root, &key(number), &[7u8; 64]);
        }
        let mut next_page = 1;
        mark_written(&root, &mut next_page);
        let snapshot = root.clone();
        let snapshot_pages = pages_of(&snapshot);
        let leaves_full = leaf_count(&root);
        // Removes 95% in batches, keeping every 20th key.
        let doomed: Vec<Vec<u8>> = (0..100_000u32).filter(|n| n % 20 != 0).map(key).collect();
        for chunk in doomed.chunks(5_000) {
            let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            assert_eq!(remove_sorted(&mut root, &refs), chunk.len());
        }
        let mut keys = Vec::new();
        checked_keys(&root, None, None, true, &mut keys);
        let expected: Vec<Vec<u8>> = (0..100_000u32).filter(|n| n % 20 == 0).map(key).collect();
        assert_eq!(keys, expected);
        assert!(
            pages_of(&snapshot) == snapshot_pages,
            "the old root changed"
        );

        let payload_total: usize = keys.len() * EntryRef::new(&key(0), &[7u8; 64]).encoded_len();
        let leaves_needed = payload_total.div_ceil(NODE_PAYLOAD_BYTES_TARGET);
        let leaves = leaf_count(&root);
        let mut nodes = 0;
        visit(&root, &mut |_| nodes += 1);
        assert!(
            leaves <= 2 * leaves_needed,
            "{leaves} leaves for {leaves_needed} pages of entries (of {leaves_full} before)"
        );
        // No two neighbours are left that removal would merge.
        visit(&root, &mut |node| {
            if let NodeBody::Branch { keys, children } = &node.body {
                for (index, pair) in children.windows(2).enumerate() {
                    assert!(!merge_wanted(&pair[0], &pair[1], &keys[index]));
                }
            }
        });
        assert!(
            nodes < leaves + leaves / 4 + 2,
            "{nodes} nodes for {leaves} leaves"
        );
    }

    #[test]
    fn merges_copy_shared_siblings_and_keep_separators() {
        let left_leaf = leaf(&["a", "b"]);
        let middle_leaf = leaf(&["d", "e"]);
        let right_leaf = leaf(&["g", "h"]);
        let mut root = Arc::new(Node::new(NodeBody::Branch {
            // Separators below the smallest keys, as removals leave them.
            keys: vec![separator("c"), separator("f")],
            children: vec![left_leaf.clone(), middle_leaf.clone(), right_leaf.clone()],
        }));
        let mut next_page = 1;
        mark_written(&root, &mut next_page);
        let old_root = root.clone();
        let old_pages = pages_of(&old_root);
        assert_eq!(remove_sorted(&mut root, &[b"e"]), 1);
        // All three fit one leaf: the removal merged them into one root leaf.
        let NodeBody::Leaf(entries) = &root.body else {
            panic!("one leaf left")
        };
        let keys: Vec<&[u8]> = entries.iter().map(|entry| entry.key()).collect();
        assert_eq!(keys, [b"a", b"b", b"d", b"g", b"h"]);
        assert!(root.page().is_none());
        // The shared leaves were copied, not changed.
        assert!(pages_of(&old_root) == old_pages);
        for (leaf, expected) in [(&left_leaf, 2), (&middle_leaf, 2), (&right_leaf, 2)] {
            let NodeBody::Leaf(entries) = &leaf.body else {
                unreachable!()
            };
            assert_eq!(entries.len(), expected);
            assert!(leaf.page().is_some());
        }
        // Inserts after the merge go where the separators said.
        insert(&mut root, b"c", b"v");
        insert(&mut root, b"f", b"v");
        let mut keys = Vec::new();
        checked_keys(&root, None, None, true, &mut keys);
        assert_eq!(keys.len(), 7);
    }

    /// Leaves whose payload is below removal's underfull mark.
    fn small_leaves(root: &Arc<Node>) -> usize {
        leaves_of(root)
            .iter()
            .filter(|leaf| leaf.encoded_payload_len() < NODE_PAYLOAD_BYTES_UNDERFULL)
            .count()
    }

    #[test]
    fn rewriting_keys_leaves_small_leaves_until_merge_changed_packs_them() {
        // As MVCC lays out a key's revisions: the new one ("/0") sorts just
        // before the old ("/1").
        let key = |number: u32, version: u8| format!("key{number:06}/{version}").into_bytes();
        let mut root = Node::empty();
        for number in 0..10_000u32 {
            insert(&mut root, &key(number, 1), &[7u8; 256]);
        }
        merge_changed(&mut root);
        fit_changed(&mut root);
        assert_eq!(small_leaves(&root), 0, "ascending keys fill their leaves");
        let published = root.clone();
        let mut expected_published = Vec::new();
        collect(&published, &mut expected_published);
        for number in 0..10_000u32 {
            insert(&mut root, &key(number, 0), &[8u8; 256]);
        }
        // Each new revision that lands last in a full leaf is split off
        // into a leaf of its own, which the next key's (in the neighbour)
        // never joins.
        let small_before = small_leaves(&root);
        let leaves_before = leaf_count(&root);
        assert!(small_before > 100, "{small_before} small leaves");
        merge_changed(&mut root);
        fit_changed(&mut root);
        let leaves = leaf_count(&root);
        let mut branches = 0;
        visit(&root, &mut |node| {
            if matches!(node.body, NodeBody::Branch { .. }) {
                branches += 1
            }
        });
        // Only siblings merge: a small leaf first or last under its branch
        // may stay, next to a cousin.
        let small = small_leaves(&root);
        assert!(
            small <= branches,
            "{small} small leaves of {leaves}, {branches} branches"
        );
        // And the leaves are about as few as could hold the entries.
        let payload_total: usize = leaves_of(&root)
            .iter()
            .map(|leaf| leaf.encoded_payload_len())
            .sum();
        let leaves_fewest = payload_total.div_ceil(NODE_PAYLOAD_BYTES_TARGET);
        assert!(
            leaves * 10 <= leaves_fewest * 11,
            "{leaves} leaves (of {leaves_before} before merging) where {leaves_fewest} would do"
        );
        // Nothing is left that removal would merge, keys and separators
        // hold, and the published tree is untouched.
        visit(&root, &mut |node| {
            if let NodeBody::Branch { keys, children } = &node.body {
                for (index, pair) in children.windows(2).enumerate() {
                    assert!(!merge_wanted(&pair[0], &pair[1], &keys[index]));
                }
            }
        });
        let mut keys = Vec::new();
        checked_keys(&root, None, None, true, &mut keys);
        let expected: Vec<Vec<u8>> = (0..10_000u32)
            .flat_map(|number| [key(number, 0), key(number, 1)])
            .collect();
        assert_eq!(keys, expected);
        let mut after = Vec::new();
        collect(&published, &mut after);
        assert_eq!(after, expected_published, "the published tree is untouched");
    }

    #[test]
    fn merge_changed_merges_only_what_the_batch_changed_and_collapses_the_root() {
        let branch = |keys: &[&str], children: Vec<Arc<Node>>| {
            Arc::new(Node::new(NodeBody::Branch {
                keys: keys.iter().map(|key| separator(key)).collect(),
                children,
            }))
        };
        // A shared leaf between changed ones: nothing merges across it.
        let shared = leaf(&["d"]);
        let mut root = branch(
            &["c", "f"],
            vec![leaf(&["a"]), shared.clone(), leaf(&["g"])],
        );
        merge_changed(&mut root);
        let mut keys = Vec::new();
        checked_keys(&root, None, None, true, &mut keys);
        assert_eq!(leaf_count(&root), 3);
        assert!(Arc::ptr_eq(&leaves_of(&root)[1], &shared));
        drop(shared);
        // Changed all through: the leaves merge into one, the branches
        // above it go, and the root is that leaf.
        let mut root = branch(
            &["m"],
            vec![root, branch(&["p"], vec![leaf(&["n"]), leaf(&["q"])])],
        );
        merge_changed(&mut root);
        let NodeBody::Leaf(entries) = &root.body else {
            panic!("one leaf left")
        };
        let keys: Vec<&[u8]> = entries.iter().map(|entry| entry.key()).collect();
        assert_eq!(keys, [b"a", b"d", b"g", b"n", b"q"]);
    }
}
