//! A tree entry: a key and its value, owned ([`Entry`], one allocation)
//! or borrowed from a leaf's buffer ([`EntryRef`]).

use super::leaf::ENTRY_HEADER_BYTES;
use super::node::{KEY_BYTES_MAX, VALUE_BYTES_MAX};
use std::sync::Arc;

/// A key and its value in one allocation.
#[derive(Clone, Debug)]
pub struct Entry {
    bytes: Arc<[u8]>,
    key_len: u32,
}

impl Entry {
    /// Builds an entry.
    pub fn new(key: &[u8], value: &[u8]) -> Entry {
        assert!(key.len() <= KEY_BYTES_MAX, "key of {} bytes", key.len());
        assert!(
            value.len() <= VALUE_BYTES_MAX,
            "value of {} bytes",
            value.len()
        );
        Entry::from_parts(key, &[value])
    }

    /// Builds an entry whose value is `value_parts` one after the other,
    /// in one allocation (no intermediate buffer).
    pub fn from_parts(key: &[u8], value_parts: &[&[u8]]) -> Entry {
        let value_len: usize = value_parts.iter().map(|part| part.len()).sum();
        assert!(key.len() <= KEY_BYTES_MAX, "key of {} bytes", key.len());
        assert!(value_len <= VALUE_BYTES_MAX, "value of {value_len} bytes");
        let mut bytes = Arc::<[u8]>::new_uninit_slice(key.len() + value_len);
        let slots = Arc::get_mut(&mut bytes).expect("a fresh Arc is unique");
        let mut at = 0;
        for part in std::iter::once(&key).chain(value_parts) {
            let destination = &mut slots[at..at + part.len()];
            // SAFETY: `MaybeUninit<u8>` has the layout of `u8`;
            // `destination` is exactly `part.len()` slots of a fresh
            // allocation this function owns alone, so the copy stays in
            // bounds and cannot overlap `part`.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    part.as_ptr(),
                    destination.as_mut_ptr().cast::<u8>(),
                    part.len(),
                );
            }
            at += part.len();
        }
        assert_eq!(at, slots.len(), "every byte written");
        // SAFETY: the copies above wrote every one of the slice's
        // `key.len() + value_len` bytes (checked just above), so the whole
        // slice is initialized.
        let bytes = unsafe { bytes.assume_init() };
        Entry {
            bytes,
            key_len: key.len() as u32,
        }
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        &self.bytes[..self.key_len as usize]
    }

    /// The value.
    pub fn value(&self) -> &[u8] {
        &self.bytes[self.key_len as usize..]
    }

    /// The entry borrowed, as a leaf hands its entries out.
    pub fn as_entry_ref(&self) -> EntryRef<'_> {
        EntryRef::new(self.key(), self.value())
    }
}

/// A key and its value inside a leaf (or an [`Entry`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRef<'a> {
    pub(super) key: &'a [u8],
    pub(super) value: &'a [u8],
}

impl<'a> EntryRef<'a> {
    /// An entry of `key` and `value`.
    pub fn new(key: &'a [u8], value: &'a [u8]) -> EntryRef<'a> {
        EntryRef { key, value }
    }

    /// The key.
    pub fn key(&self) -> &'a [u8] {
        self.key
    }

    /// The value.
    pub fn value(&self) -> &'a [u8] {
        self.value
    }

    /// An owned copy (one allocation).
    pub fn to_entry(&self) -> Entry {
        Entry::new(self.key, self.value)
    }

    /// Bytes the entry takes in a leaf payload.
    pub fn encoded_len(&self) -> usize {
        ENTRY_HEADER_BYTES + self.key.len() + self.value.len()
    }
}
