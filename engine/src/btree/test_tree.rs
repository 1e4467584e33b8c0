//! Helpers the tree's unit tests share (`node.rs`, `remove.rs`): building
//! small nodes, walking a tree, checking its order and separators, and
//! marking nodes written as a persist would.

use super::entry::EntryRef;
use super::leaf::Leaf;
use super::node::{Node, NodeBody};
use std::sync::Arc;

pub fn collect(node: &Node, out: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    match &node.body {
        NodeBody::Leaf(entries) => out.extend(
            entries
                .iter()
                .map(|e| (e.key().to_vec(), e.value().to_vec())),
        ),
        NodeBody::Branch { children, .. } => {
            for child in children {
                collect(child, out)
            }
        }
    }
}

/// Checks the tree under `node` against the separators around it
/// (`lower` <= every key < `upper`) and returns its keys in order:
/// branches have two children at least and one key fewer, separators
/// ascend inside the bounds, leaves below the root are not empty, and
/// a clean node has only clean children.
pub fn checked_keys(
    node: &Node,
    lower: Option<&[u8]>,
    upper: Option<&[u8]>,
    is_root: bool,
    out: &mut Vec<Vec<u8>>,
) {
    let in_bounds = |key: &[u8]| {
        lower.is_none_or(|lower| lower <= key) && upper.is_none_or(|upper| key < upper)
    };
    match &node.body {
        NodeBody::Leaf(entries) => {
            assert!(is_root || !entries.is_empty(), "empty leaf below the root");
            for entry in entries.iter() {
                assert!(in_bounds(entry.key()), "leaf key outside its separators");
                assert!(out.last().is_none_or(|last| last.as_slice() < entry.key()));
                out.push(entry.key().to_vec());
            }
        }
        NodeBody::Branch { keys, children } => {
            assert!(children.len() >= 2, "branch of {} children", children.len());
            assert_eq!(keys.len() + 1, children.len());
            assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
            for (index, child) in children.iter().enumerate() {
                if node.page().is_some() {
                    assert!(child.page().is_some(), "dirty child of a clean node");
                }
                let child_lower = if index == 0 {
                    lower
                } else {
                    Some(keys[index - 1].as_ref())
                };
                let child_upper = keys.get(index).map(AsRef::as_ref).or(upper);
                if let Some(child_lower) = child_lower {
                    assert!(in_bounds(child_lower) || Some(child_lower) == lower);
                }
                checked_keys(child, child_lower, child_upper, false, out);
            }
        }
    }
}

/// Every node of the tree, once per path to it.
pub fn visit(node: &Arc<Node>, each: &mut impl FnMut(&Arc<Node>)) {
    each(node);
    if let NodeBody::Branch { children, .. } = &node.body {
        for child in children {
            visit(child, each);
        }
    }
}

/// What a persist does to the nodes: gives every dirty one a page.
pub fn mark_written(node: &Arc<Node>, next_page: &mut u64) {
    if node.page().is_some() {
        return;
    }
    if let NodeBody::Branch { children, .. } = &node.body {
        for child in children {
            mark_written(child, next_page);
        }
    }
    node.set_page(Some(*next_page));
    *next_page += 1;
}

/// (node address, page) of every node, to see that none changed.
pub fn pages_of(root: &Arc<Node>) -> Vec<(usize, Option<u64>)> {
    let mut pages = Vec::new();
    visit(root, &mut |node| {
        pages.push((Arc::as_ptr(node) as usize, node.page()))
    });
    pages
}

pub fn leaf_count(root: &Arc<Node>) -> usize {
    let mut leaves = 0;
    visit(root, &mut |node| {
        if matches!(node.body, NodeBody::Leaf(_)) {
            leaves += 1
        }
    });
    leaves
}

pub fn leaves_of(root: &Arc<Node>) -> Vec<Arc<Node>> {
    let mut leaves = Vec::new();
    visit(root, &mut |node| {
        if matches!(node.body, NodeBody::Leaf(_)) {
            leaves.push(node.clone())
        }
    });
    leaves
}

/// A new leaf of `keys`, each with the value "v".
pub fn leaf(keys: &[&str]) -> Arc<Node> {
    Arc::new(Node::new(NodeBody::Leaf(Leaf::from_entries(
        keys.iter().map(|key| EntryRef::new(key.as_bytes(), b"v")),
    ))))
}

pub fn separator(key: &str) -> Arc<[u8]> {
    key.as_bytes().into()
}
