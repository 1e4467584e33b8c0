//! The append-only, copy-on-write B+tree.
//!
//! One file of fixed-size 4 KiB pages (`page.rs` documents every layout).
//! The whole tree lives in memory as `Arc` nodes (`node.rs`); a write batch
//! copies the path it changes, so published read views keep their nodes.
//! [`file::TreeFile::persist`] appends the nodes changed since the last
//! persist plus a checksummed commit record; recovery takes the last valid
//! commit record and loads the tree it points at. Pages are never
//! overwritten, so the file only grows until a defrag rewrites it:
//! [`copy::write_tree_copy`] writes a tree out whole as a new file with only
//! its live nodes (also the form of a backend snapshot), and
//! [`file::TreeFile::defrag`] (`defrag.rs`) swaps such a copy in for the
//! file itself by rename, moving the in-memory nodes' pages to it. Each
//! clean node also knows how many pages its subtree spans, so a persist
//! learns how much of the file its commit references
//! ([`file::TreeFile::size_in_use_bytes`]) by visiting only what it writes.
//! Range scans, in either direction, use [`cursor::Cursor`].
//!
//! The commit record reserves a second root (`history_root_page`) for the
//! revision-ordered history tree that compaction and watch replay will use.

mod appender;
pub mod branch;
pub mod copy;
pub mod cursor;
pub mod defrag;
mod entry;
pub mod file;
mod heads;
mod insert;
pub mod leaf;
pub mod node;
pub mod order;
pub mod page;
mod remove;
mod tail;
#[cfg(test)]
mod test_random;
#[cfg(test)]
mod test_tree;

pub use copy::{
    part_file_path, write_tree_copy, write_tree_copy_in, write_tree_copy_to, PART_FILE_SUFFIX,
};
pub use cursor::Cursor;
pub use defrag::{defrag_file_path, DEFRAG_FILE_SUFFIX};
pub use entry::{Entry, EntryRef};
pub use file::{CommitMeta, DroppedCommit, Recovered, TreeFile};
pub use insert::{insert, insert_built, insert_parts, insert_run};
pub use leaf::Leaf;
pub use node::{fit_changed, Node, NodeBody};
pub use page::PAGE_SIZE_BYTES;
pub use remove::{merge_changed, remove_sorted};
