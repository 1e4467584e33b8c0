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
/// its neighbour is underfull (payload below [`NODE_PAYLOAD_BYTES_UNDERFULL`])
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
/// removal does ([`merge_wanted`]); a branch left with one child is
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
