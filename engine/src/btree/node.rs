//! In-memory B+tree nodes and copy-on-write insertion and removal.
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
use super::entry::{Entry, EntryRef};
use super::heads::Heads;
use super::leaf::{Leaf, FULL_LEAF_CAPACITY_BYTES};
use super::order;
use super::page::{node_page_count, NODE_HEADER_BYTES, PAGE_SIZE_BYTES};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Nodes split when their payload passes this size, so most span two
/// pages. Against one page: a batch copies, splits, cuts back and frees
/// half as many leaves (1000 sequential puts in memory -12%, compaction
/// -19% instructions), branches fan out twice as wide, and a persist of
/// 1000 random puts writes 9.2 instead of 6.7 MiB (each changed leaf is
/// written whole) yet takes about as long (8.9-10.1 against 9.0-9.3 ms).
pub const NODE_PAYLOAD_BYTES_TARGET: usize = 2 * PAGE_SIZE_BYTES as usize - NODE_HEADER_BYTES;
/// Fewest children a branch must have before it may split (each half keeps 2).
const BRANCH_SPLIT_CHILDREN_MIN: usize = 4;
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
    /// Payload size on disk of `body`, kept in step by every change in
    /// this file (the only code that changes a body), so the split check of
    /// every insert is O(1) instead of a sum over the node's entries.
    payload_len: usize,
    /// The heads (`heads.rs`) of a branch's separators or a leaf's entry
    /// keys, kept in step with them like `payload_len`.
    heads: Heads,
    /// Contents. Read anywhere; changed only here, which keeps
    /// `payload_len` and `heads` true.
    pub body: NodeBody,
}

impl Clone for Node {
    /// A copy is a new, dirty node. Copies are what a batch changes (the
    /// path `Arc::make_mut` copies), so each list gets room for a few more
    /// items: the first insert into a copy would otherwise reallocate it.
    fn clone(&self) -> Node {
        let body = match &self.body {
            NodeBody::Leaf(leaf) => NodeBody::Leaf(leaf.copy_with_room(copy_room(leaf.len()))),
            NodeBody::Branch { keys, children } => NodeBody::Branch {
                keys: copy_with_room(keys),
                children: copy_with_room(children),
            },
        };
        Node {
            page: AtomicU64::new(0),
            subtree_pages: AtomicU64::new(0),
            payload_len: self.payload_len,
            heads: self.heads.copy_with_room(copy_room(self.heads.len())),
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
fn copy_room(len: usize) -> usize {
    COPY_ROOM_ITEMS_MIN.max(len / 2)
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
    use super::super::test_tree::{checked_keys, collect, leaves_of, visit};
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
        assert!(leaves_of(&root).iter().all(|leaf| spare_bytes(leaf) <= 64));
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
        assert!(leaves_of(&root).iter().all(|leaf| spare_bytes(leaf) <= 64));
        let mut after = Vec::new();
        collect(&published, &mut after);
        assert_eq!(after, expected, "the published tree is untouched");
        let mut keys = Vec::new();
        checked_keys(&root, None, None, true, &mut keys);
        assert_eq!(keys.len(), 1500 + 200);
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
