//! A cursor over the leaves of a tree, in both directions.
//!
//! [`Cursor::seek`] descends once from the root to the first entry >= a key
//! and [`Cursor::seek_before`] to the last entry < a key ([`Cursor::last`]
//! to the last entry of all); [`Cursor::next`] and [`Cursor::prev`] move
//! along the leaf and climb only when a leaf ends, so a range scan costs
//! O(log n + entries visited) either way. A cursor that runs off either end
//! of the tree stays there: [`Cursor::current`] is `None` from then on.

use super::entry::EntryRef;
use super::leaf::Leaf;
use super::node::{Node, NodeBody, TREE_DEPTH_MAX};
use std::sync::Arc;

/// Where a cursor past either end stands.
static NO_ENTRIES: Leaf = Leaf::new();

/// A position in a tree borrowed from its root.
pub struct Cursor<'a> {
    /// Branch children lists on the path and the index taken in each.
    stack: Vec<(&'a [Arc<Node>], usize)>,
    leaf: &'a Leaf,
    position: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the first entry whose key is >= `key`.
    pub fn seek(root: &'a Node, key: &[u8]) -> Cursor<'a> {
        let (mut cursor, leaf) = Cursor::descend_to_leaf(root, key);
        cursor.position = leaf.entry_index(key);
        if cursor.position == cursor.leaf.len() {
            cursor.next_leaf();
        }
        cursor
    }

    /// A cursor at the last entry whose key is < `key` (reverse scans
    /// start here and go on with [`Cursor::prev`]).
    pub fn seek_before(root: &'a Node, key: &[u8]) -> Cursor<'a> {
        let (mut cursor, leaf) = Cursor::descend_to_leaf(root, key);
        match leaf.entry_index(key) {
            0 => cursor.prev_leaf(),
            below => cursor.position = below - 1,
        }
        cursor
    }

    /// A cursor at the last entry of the tree.
    pub fn last(root: &'a Node) -> Cursor<'a> {
        let mut cursor = Cursor {
            stack: Vec::new(),
            leaf: &NO_ENTRIES,
            position: 0,
        };
        if !cursor.descend_rightmost(root) {
            cursor.prev_leaf();
        }
        cursor
    }

    /// The leaf whose key range holds `key`, with the path to it stacked
    /// (the position is left for the caller).
    fn descend_to_leaf(root: &'a Node, key: &[u8]) -> (Cursor<'a>, &'a Node) {
        let mut stack = Vec::new();
        let mut node = root;
        loop {
            assert!(stack.len() < TREE_DEPTH_MAX);
            match &node.body {
                NodeBody::Leaf(leaf) => {
                    let cursor = Cursor {
                        stack,
                        leaf,
                        position: 0,
                    };
                    return (cursor, node);
                }
                NodeBody::Branch { children, .. } => {
                    let index = node.child_index(key);
                    stack.push((children.as_slice(), index));
                    node = &children[index];
                }
            }
        }
    }

    /// The entry under the cursor, `None` past either end.
    pub fn current(&self) -> Option<EntryRef<'a>> {
        self.leaf.get(self.position)
    }

    /// Moves to the next entry.
    pub fn next(&mut self) {
        if self.position < self.leaf.len() {
            self.position += 1;
        }
        if self.position >= self.leaf.len() {
            self.next_leaf();
        }
    }

    /// Moves to the previous entry.
    pub fn prev(&mut self) {
        if self.position >= self.leaf.len() {
            // Past an end already: stay there.
            return;
        }
        if self.position > 0 {
            self.position -= 1;
        } else {
            self.prev_leaf();
        }
    }

    fn next_leaf(&mut self) {
        while let Some((children, index)) = self.stack.pop() {
            if index + 1 < children.len() {
                self.stack.push((children, index + 1));
                let mut node: &'a Node = &children[index + 1];
                loop {
                    assert!(self.stack.len() < TREE_DEPTH_MAX);
                    match &node.body {
                        NodeBody::Leaf(leaf) => {
                            self.leaf = leaf;
                            self.position = 0;
                            if leaf.is_empty() {
                                break;
                            }
                            return;
                        }
                        NodeBody::Branch { children, .. } => {
                            self.stack.push((children.as_slice(), 0));
                            node = &children[0];
                        }
                    }
                }
            }
        }
        self.leaf = &NO_ENTRIES;
        self.position = 0;
    }

    /// Moves to the last entry of the previous non-empty leaf, or past the
    /// beginning when there is none.
    fn prev_leaf(&mut self) {
        while let Some((children, index)) = self.stack.pop() {
            if index > 0 {
                self.stack.push((children, index - 1));
                if self.descend_rightmost(&children[index - 1]) {
                    return;
                }
            }
        }
        self.leaf = &NO_ENTRIES;
        self.position = 0;
    }

    /// Descends from `node` along last children to a leaf and stands on
    /// its last entry; false when that leaf is empty (the path stays
    /// stacked, so [`Cursor::prev_leaf`] goes on from it).
    fn descend_rightmost(&mut self, node: &'a Node) -> bool {
        let mut node = node;
        loop {
            assert!(self.stack.len() < TREE_DEPTH_MAX);
            match &node.body {
                NodeBody::Leaf(leaf) => {
                    self.leaf = leaf;
                    self.position = leaf.len().saturating_sub(1);
                    return !leaf.is_empty();
                }
                NodeBody::Branch { children, .. } => {
                    let last = children.len() - 1;
                    self.stack.push((children.as_slice(), last));
                    node = &children[last];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::insert::insert;
    use super::*;

    #[test]
    fn seek_and_scan() {
        let mut root = Node::empty();
        for number in 0..2000u32 {
            insert(
                &mut root,
                format!("k{:05}", number * 2).as_bytes(),
                &[1u8; 64],
            );
        }
        let mut cursor = Cursor::seek(&root, b"k00101");
        assert_eq!(cursor.current().unwrap().key(), b"k00102");
        let mut seen = 0;
        while let Some(entry) = cursor.current() {
            assert!(entry.key() >= b"k00102".as_slice());
            seen += 1;
            cursor.next();
        }
        assert_eq!(seen, 2000 - 51);
        assert!(Cursor::seek(&root, b"z").current().is_none());
        assert!(Cursor::seek(&Node::empty(), b"").current().is_none());
        assert_eq!(Cursor::seek(&root, b"").current().unwrap().key(), b"k00000");
    }

    /// Every key from `cursor` on, moving with `step`.
    fn walk<'a>(mut cursor: Cursor<'a>, step: fn(&mut Cursor<'a>)) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        while let Some(entry) = cursor.current() {
            keys.push(entry.key().to_vec());
            step(&mut cursor);
        }
        keys
    }

    #[test]
    fn reverse_scans_match_a_model() {
        use super::super::remove::remove_sorted;
        use std::collections::BTreeSet;
        let mut root = Node::empty();
        let mut model = BTreeSet::new();
        // Deterministic pseudo-random keys of varied lengths, then removals
        // that thin and drop whole leaves.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next_random = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5000 {
            let number = next_random() % 20_000;
            let key = format!("k{number:05}{}", "x".repeat((number % 7) as usize));
            insert(&mut root, key.as_bytes(), &[2u8; 40]);
            model.insert(key.into_bytes());
        }
        let doomed: Vec<Vec<u8>> = model
            .iter()
            .filter(|key| {
                key[5] % 3 == 0
                    || (b"k05000".as_slice()..b"k09000".as_slice()).contains(&key.as_slice())
            })
            .cloned()
            .collect();
        let doomed_refs: Vec<&[u8]> = doomed.iter().map(Vec::as_slice).collect();
        assert_eq!(remove_sorted(&mut root, &doomed_refs), doomed.len());
        for key in &doomed {
            model.remove(key);
        }
        let everything: Vec<Vec<u8>> = model.iter().cloned().collect();
        assert_eq!(walk(Cursor::seek(&root, b""), Cursor::next), everything);
        let reversed: Vec<Vec<u8>> = everything.iter().rev().cloned().collect();
        assert_eq!(walk(Cursor::last(&root), Cursor::prev), reversed);
        for probe in [
            b"".as_slice(),
            b"k",
            b"k00000",
            b"k05000",
            b"k07000x",
            b"k09000",
            b"k12345xx",
            b"k19999xxxxxxx",
            b"z",
        ] {
            let below: Vec<Vec<u8>> = model.range(..probe.to_vec()).rev().cloned().collect();
            assert_eq!(
                walk(Cursor::seek_before(&root, probe), Cursor::prev),
                below,
                "below {probe:?}"
            );
        }
        // Changing direction: seek, step back one, forward again.
        let mut cursor = Cursor::seek(&root, b"k10000");
        let at = cursor.current().unwrap().key().to_vec();
        cursor.prev();
        let before = model.range(..at.clone()).next_back().unwrap();
        assert_eq!(cursor.current().unwrap().key(), before.as_slice());
        cursor.next();
        assert_eq!(cursor.current().unwrap().key(), at.as_slice());
        // Off the front, a cursor stays off.
        let mut first = Cursor::seek(&root, b"");
        first.prev();
        assert!(first.current().is_none());
        first.prev();
        first.next();
        assert!(first.current().is_none());
        assert!(Cursor::last(&Node::empty()).current().is_none());
        assert!(Cursor::seek_before(&Node::empty(), b"k")
            .current()
            .is_none());
    }

    #[test]
    fn reverse_scans_skip_empty_leaves() {
        let leaf = |keys: &[&str]| {
            Arc::new(Node::new(NodeBody::Leaf(Leaf::from_entries(
                keys.iter().map(|key| EntryRef::new(key.as_bytes(), b"")),
            ))))
        };
        let separator = |key: &str| -> Arc<[u8]> { key.as_bytes().into() };
        let root = Node::new(NodeBody::Branch {
            keys: vec![separator("c"), separator("e"), separator("g")],
            children: vec![leaf(&["a", "b"]), leaf(&[]), leaf(&["e", "f"]), leaf(&[])],
        });
        assert_eq!(
            walk(Cursor::last(&root), Cursor::prev),
            [b"f".to_vec(), b"e".to_vec(), b"b".to_vec(), b"a".to_vec()]
        );
        assert_eq!(
            walk(Cursor::seek_before(&root, b"e"), Cursor::prev),
            [b"b".to_vec(), b"a".to_vec()]
        );
        assert_eq!(
            walk(Cursor::seek_before(&root, b"zz"), Cursor::prev).len(),
            4
        );
        assert_eq!(
            walk(Cursor::seek(&root, b"c"), Cursor::next),
            [b"e".to_vec(), b"f".to_vec()]
        );
    }
}
