//! In-memory B+tree nodes: their bodies, the bookkeeping kept beside them,
//! and their payload on disk. Insertion is in `insert.rs`, removal in
//! `remove.rs`.
//!
//! Nodes are shared through `Arc`: a published read view keeps the root it
//! was given, and the writer changes the tree with [`insert`] and
//! [`remove_sorted`] (which merges thinned nodes), which go down the path
//! with `Arc::make_mut`. A node shared with a view is copied
//! (the copy is dirty: not on disk yet); a node already copied in this batch
//! is unique and is changed in place. Every node on a changed path is
//! marked dirty, so a dirty node's ancestors are dirty too and `persist`
//! only visits dirty subtrees.
//!
//! [`insert`]: super::insert
//! [`remove_sorted`]: super::remove_sorted
//!
//! A leaf keeps its entries in one buffer in the payload's own layout
//! (`leaf.rs`). Node payload on disk (inside the frame of page.rs),
//! little-endian:
//!
//! ```text
//! leaf:   entry_count x { key_len u32, value_len u32, key, value }
//! branch: child_page u64, then entry_count x { key_len u32, key, child_page u64 }
//!         (every key of child i + 1 is >= key i, every key of child i
//!         is below it)
//! ```

use super::branch::{branch_key_len, encode_branch, BRANCH_FIRST_CHILD_BYTES};
use super::heads::Heads;
use super::leaf::Leaf;
use super::order;
use super::page::{node_page_count, NODE_HEADER_BYTES};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Nodes split when their payload passes this size (8 KiB with the
/// header). Against 4 KiB: a batch copies, splits, cuts back and frees
/// half as many leaves (1000 sequential puts in memory -12%, compaction
/// -19% instructions), branches fan out twice as wide, and a persist of
/// 1000 random puts writes 9.2 instead of 6.7 MiB (each changed leaf is
/// written whole) yet takes about as long (8.9-10.1 against 9.0-9.3 ms).
pub const NODE_PAYLOAD_BYTES_TARGET: usize = (8 << 10) - NODE_HEADER_BYTES;
/// The largest key the tree accepts.
pub const KEY_BYTES_MAX: usize = 64 << 10;
/// The largest value the tree accepts (etcd's request limit is 1.5 MiB).
pub const VALUE_BYTES_MAX: usize = 64 << 20;
/// The tree never gets deeper than this (assertion bound on recursion).
pub const TREE_DEPTH_MAX: usize = 32;

/// What a node holds.
#[derive(Clone, Debug)]
pub enum NodeBody {
    /// Sorted entries.
    Leaf(Leaf),
    /// `keys.len() + 1 == children.len()`; every key in `children[i + 1]`
    /// is >= `keys[i]` and every key in `children[i]` is below it (after
    /// removals `keys[i]` need not be present).
    Branch {
        /// Separator keys.
        keys: Vec<Arc<[u8]>>,
        /// Subtrees.
        children: Vec<Arc<Node>>,
    },
}

/// A tree node and where it is on disk.
///
/// `page` and `subtree_pages` are written only by persister jobs (and
/// cleared by the writer on nodes unique to it); see `mvcc/persister.rs`.
#[derive(Debug)]
pub struct Node {
    /// First page on disk; 0 = dirty (not written since its last change).
    /// Atomic so `persist` can record it on nodes shared with read views.
    page: AtomicU64,
    /// Pages of this node and every node below it on disk; meaningful only
    /// while `page` is set (a clean node's subtree is clean). Lets a
    /// persist count the pages its commit references by visiting only the
    /// nodes it writes.
    subtree_pages: AtomicU64,
    /// Payload size on disk of `body`, kept in step by every change to a
    /// body (here and in `insert.rs`, which change them step by step, and
    /// through [`Node::recount_payload_len`] in `remove.rs`), so the split
    /// check of every insert is O(1) instead of a sum over the node's
    /// entries.
    pub(super) payload_len: usize,
    /// The heads (`heads.rs`) of a branch's separators or a leaf's entry
    /// keys, kept in step with them like `payload_len`.
    pub(super) heads: Heads,
    /// Contents. Read anywhere; changed only by this file, `insert.rs` and
    /// `remove.rs`, which keep `payload_len` and `heads` true.
    pub body: NodeBody,
}

impl Clone for Node {
    /// A copy is a new, dirty node. Copies are what a batch changes (the
    /// path `Arc::make_mut` copies), so each list gets room for a few more
    /// items: the first insert into a copy would otherwise reallocate it.
    fn clone(&self) -> Node {
        let (body, room) = match &self.body {
            NodeBody::Leaf(leaf) => {
                let room = leaf_copy_room(leaf.len(), self.payload_len);
                (NodeBody::Leaf(leaf.copy_with_room(room)), room)
            }
            NodeBody::Branch { keys, children } => (
                NodeBody::Branch {
                    keys: copy_with_room(keys),
                    children: copy_with_room(children),
                },
                copy_room(keys.len()),
            ),
        };
        Node {
            page: AtomicU64::new(0),
            subtree_pages: AtomicU64::new(0),
            payload_len: self.payload_len,
            heads: self.heads.copy_with_room(room),
            body,
        }
    }
}

/// Items a copied node's lists have room for beyond their length, at
/// least; a copy gets room for half its length more, so a batch that
/// inserts into every leaf of a key range (one new revision per key)
/// rarely reallocates a leaf before it splits.
const COPY_ROOM_ITEMS_MIN: usize = 4;

/// Room a copy of a list of `len` items gets.
pub(super) fn copy_room(len: usize) -> usize {
    COPY_ROOM_ITEMS_MIN.max(len / 2)
}

/// Entries a copied leaf of `len` entries and `payload_len` bytes gets
/// room for: as many more as fit before it splits, if they are the size
/// of its own on average, and at most `len` (a near-empty leaf is not
/// given room for a whole leaf). Less room than that and a batch
/// inserting into every key of a leaf reallocates its entry starts and
/// heads on the way (glibc's `realloc` takes the slow path).
fn leaf_copy_room(len: usize, payload_len: usize) -> usize {
    let at_split = (len * NODE_PAYLOAD_BYTES_TARGET)
        .checked_div(payload_len)
        .unwrap_or(0);
    at_split
        .saturating_sub(len)
        .clamp(COPY_ROOM_ITEMS_MIN, len.max(COPY_ROOM_ITEMS_MIN))
}

fn copy_with_room<T: Clone>(items: &[T]) -> Vec<T> {
    let room = copy_room(items.len());
    let mut copy = Vec::with_capacity(items.len() + room);
    copy.extend_from_slice(items);
    copy
}

impl Node {
    /// A dirty node.
    pub fn new(body: NodeBody) -> Node {
        Node {
            page: AtomicU64::new(0),
            subtree_pages: AtomicU64::new(0),
            payload_len: payload_len_of(&body),
            heads: heads_of(&body),
            body,
        }
    }

    /// A node read from `page`.
    pub fn loaded(body: NodeBody, page: u64) -> Node {
        assert!(page > 0, "page 0 is the file header");
        Node {
            page: AtomicU64::new(page),
            subtree_pages: AtomicU64::new(0),
            payload_len: payload_len_of(&body),
            heads: heads_of(&body),
            body,
        }
    }

    /// An empty leaf.
    pub fn empty() -> Arc<Node> {
        Arc::new(Node::new(NodeBody::Leaf(Leaf::new())))
    }

    /// The node's first page, or `None` when dirty.
    pub fn page(&self) -> Option<u64> {
        match self.page.load(Ordering::Acquire) {
            0 => None,
            page => Some(page),
        }
    }

    /// Records where the node was written.
    pub fn set_page(&self, page: Option<u64>) {
        self.page.store(page.unwrap_or(0), Ordering::Release);
    }

    /// Records where the node was written and how many pages its subtree
    /// spans on disk (its own plus every descendant's).
    pub fn set_written(&self, page: u64, subtree_pages: u64) {
        assert!(page > 0, "page 0 is the file header");
        assert!(subtree_pages > 0, "a node spans a page at least");
        self.subtree_pages.store(subtree_pages, Ordering::Release);
        self.page.store(page, Ordering::Release);
    }

    /// Pages this node's subtree spans on disk, `None` when the node is
    /// dirty (or its page was set without a count).
    pub fn subtree_pages(&self) -> Option<u64> {
        self.page()?;
        match self.subtree_pages.load(Ordering::Acquire) {
            0 => None,
            pages => Some(pages),
        }
    }

    /// Pages this node alone spans on disk.
    pub fn own_page_count(&self) -> u64 {
        node_page_count(self.encoded_payload_len())
    }

    /// Payload size on disk.
    pub fn encoded_payload_len(&self) -> usize {
        debug_assert_eq!(self.payload_len, payload_len_of(&self.body));
        self.payload_len
    }

    /// Recomputes the payload size after a change to the body that is not
    /// counted step by step (splits, removals, merges).
    pub(super) fn recount_payload_len(&mut self) {
        self.payload_len = payload_len_of(&self.body);
        self.heads = heads_of(&self.body);
    }

    /// For a branch, the index of the child whose key range holds `key`
    /// (the number of separators at or below it); 0 for a leaf.
    pub fn child_index(&self, key: &[u8]) -> usize {
        match &self.body {
            NodeBody::Branch { keys, .. } => {
                let index = self.heads.count_below(key, true, |index| &keys[index]);
                debug_assert_eq!(
                    index,
                    keys.partition_point(|separator| !order::less(key, separator))
                );
                index
            }
            NodeBody::Leaf(_) => 0,
        }
    }

    /// For a leaf, the number of its entries whose keys are below `key`
    /// (where `key` is or would be); 0 for a branch.
    pub fn entry_index(&self, key: &[u8]) -> usize {
        match &self.body {
            NodeBody::Leaf(leaf) => {
                let index = self.heads.count_below(key, false, |index| leaf.key(index));
                debug_assert_eq!(
                    index,
                    leaf.iter()
                        .filter(|entry| order::less(entry.key(), key))
                        .count()
                );
                index
            }
            NodeBody::Branch { .. } => 0,
        }
    }

    /// Encodes the payload into `out`, which must be exactly
    /// [`Node::encoded_payload_len`] bytes, with `child_page(index, child)`
    /// as each child's page (a branch's; a leaf never calls it): the
    /// child's own page for a persist, another for writers that place nodes
    /// in another file. Returns the entry count. A leaf's payload is its
    /// buffer, copied; a branch's is encoded in place.
    pub fn encode_payload_into(
        &self,
        out: &mut [u8],
        mut child_page: impl FnMut(usize, &Arc<Node>) -> u64,
    ) -> u32 {
        debug_assert_eq!(out.len(), self.encoded_payload_len());
        let count = match &self.body {
            NodeBody::Leaf(leaf) => {
                out.copy_from_slice(leaf.payload());
                leaf.len()
            }
            NodeBody::Branch { keys, children } => {
                let pages = children
                    .iter()
                    .enumerate()
                    .map(|(index, child)| child_page(index, child));
                encode_branch(keys, pages, out);
                keys.len()
            }
        };
        u32::try_from(count).expect("entry count fits u32")
    }
}

/// The heads of a branch's separators or of a leaf's entry keys.
fn heads_of(body: &NodeBody) -> Heads {
    match body {
        NodeBody::Branch { keys, .. } => Heads::of(keys.len(), 0, |index| &keys[index]),
        NodeBody::Leaf(leaf) => Heads::of(leaf.len(), 0, |index| leaf.key(index)),
    }
}

/// Payload size on disk of `body`, counted entry by entry.
fn payload_len_of(body: &NodeBody) -> usize {
    match body {
        NodeBody::Leaf(leaf) => leaf.payload().len(),
        NodeBody::Branch { keys, .. } => {
            BRANCH_FIRST_CHILD_BYTES + keys.iter().map(|key| branch_key_len(key)).sum::<usize>()
        }
    }
}

/// A payload that could not be decoded: (offset in the payload, problem).
pub type PayloadProblem = (usize, &'static str);

/// Cuts back to fit every leaf changed since `root` was last published
/// (or handed to a persist): those are the nodes nothing else holds, found
/// without visiting a shared subtree, where nothing changed. For the writer
/// before it publishes a batch (see `leaf.rs`).
pub fn fit_changed(node: &mut Arc<Node>) {
    fn fit(node: &mut Arc<Node>, depth: usize) {
        assert!(depth < TREE_DEPTH_MAX, "tree deeper than {TREE_DEPTH_MAX}");
        let Some(node) = Arc::get_mut(node) else {
            return;
        };
        match &mut node.body {
            NodeBody::Leaf(leaf) => leaf.fit(),
            NodeBody::Branch { children, .. } => {
                for child in children {
                    fit(child, depth + 1);
                }
            }
        }
    }
    fit(node, 0);
}

#[cfg(test)]
mod tests {
    use super::super::entry::EntryRef;
    use super::super::insert::insert;
    use super::super::leaf::FIT_SLACK_BYTES;
    use super::super::test_tree::{checked_keys, collect, leaves_of};
    use super::*;

    #[test]
    fn payload_roundtrip() {
        let node = Node::new(NodeBody::Leaf(Leaf::from_entries([
            EntryRef::new(b"a", b"1"),
            EntryRef::new(b"b", b""),
        ])));
        let mut payload = vec![0; node.encoded_payload_len()];
        let count = node.encode_payload_into(&mut payload, |_, _| unreachable!("a leaf"));
        let entries = Leaf::decode(&payload, count).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries.key(1), b"b");
        assert!(Leaf::decode(&payload[..payload.len() - 1], count).is_err());
    }

    fn spare_bytes(node: &Node) -> usize {
        match &node.body {
            NodeBody::Leaf(leaf) => leaf.spare_bytes(),
            NodeBody::Branch { .. } => unreachable!("a leaf"),
        }
    }

    #[test]
    fn fit_changed_cuts_back_only_what_changed_since_a_clone() {
        let key = |number: u32| format!("key{number:06}").into_bytes();
        let mut root = Node::empty();
        for number in (0..3000u32).step_by(2) {
            insert(&mut root, &key(number), &[7u8; 100]);
        }
        // Leaves grow in whole-leaf buffers until fitted.
        assert!(leaves_of(&root).iter().any(|leaf| spare_bytes(leaf) > 1024));
        fit_changed(&mut root);
        assert!(leaves_of(&root)
            .iter()
            .all(|leaf| spare_bytes(leaf) <= FIT_SLACK_BYTES));
        let published = root.clone();
        let published_leaves = leaves_of(&published);
        let mut expected = Vec::new();
        collect(&published, &mut expected);
        for number in (1001..1400u32).step_by(2) {
            insert(&mut root, &key(number), &[8u8; 100]);
        }
        let changed: Vec<Arc<Node>> = leaves_of(&root)
            .into_iter()
            .filter(|leaf| !published_leaves.iter().any(|old| Arc::ptr_eq(old, leaf)))
            .collect();
        assert!(changed.iter().any(|leaf| spare_bytes(leaf) > 1024));
        drop(changed);
        // Shared with `published`: nothing is visited or changed there.
        let mut clone = published.clone();
        fit_changed(&mut clone);
        assert!(Arc::ptr_eq(&clone, &published));
        fit_changed(&mut root);
        assert!(leaves_of(&root)
            .iter()
            .all(|leaf| spare_bytes(leaf) <= FIT_SLACK_BYTES));
        let mut after = Vec::new();
        collect(&published, &mut after);
        assert_eq!(after, expected, "the published tree is untouched");
        let mut keys = Vec::new();
        checked_keys(&root, None, None, true, &mut keys);
        assert_eq!(keys.len(), 1500 + 200);
    }
}
