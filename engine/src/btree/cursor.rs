//! A forward cursor over the leaves of a tree.
//!
//! [`Cursor::seek`] descends once from the root to the first entry >= a key;
//! [`Cursor::next`] moves along the leaf and climbs only when a leaf ends, so
//! a range scan costs O(log n + entries visited).

use super::node::{Entry, Node, NodeBody, TREE_DEPTH_MAX};
use std::sync::Arc;

/// A position in a tree borrowed from its root.
pub struct Cursor<'a> {
    /// Branch children lists on the path and the index taken in each.
    stack: Vec<(&'a [Arc<Node>], usize)>,
    leaf: &'a [Entry],
    position: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the first entry whose key is >= `key`.
    pub fn seek(root: &'a Node, key: &[u8]) -> Cursor<'a> {
        let mut stack = Vec::new();
        let mut node = root;
        loop {
            assert!(stack.len() < TREE_DEPTH_MAX);
            match &node.body {
                NodeBody::Leaf(entries) => {
                    let position = entries.partition_point(|entry| entry.key() < key);
                    let mut cursor = Cursor {
                        stack,
                        leaf: entries,
                        position,
                    };
                    if position == entries.len() {
                        cursor.next_leaf();
                    }
                    return cursor;
                }
                NodeBody::Branch { keys, children } => {
                    let index = keys.partition_point(|separator| separator.as_ref() <= key);
                    stack.push((children.as_slice(), index));
                    node = &children[index];
                }
            }
        }
    }

    /// The entry under the cursor, `None` past the end.
    pub fn current(&self) -> Option<&'a Entry> {
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

    fn next_leaf(&mut self) {
        while let Some((children, index)) = self.stack.pop() {
            if index + 1 < children.len() {
                self.stack.push((children, index + 1));
                let mut node: &'a Node = &children[index + 1];
                loop {
                    match &node.body {
                        NodeBody::Leaf(entries) => {
                            self.leaf = entries;
                            self.position = 0;
                            if entries.is_empty() {
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
        self.leaf = &[];
        self.position = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::super::node::insert;
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
}
