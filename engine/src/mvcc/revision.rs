//! etcd's revision: a main revision per write transaction and a sub
//! revision per change inside it.

/// A (main, sub) revision; ordered by main, then sub.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    /// The transaction's revision (the store's revision after it).
    pub main: i64,
    /// The change's position inside the transaction, from 0.
    pub sub: i64,
}

impl Revision {
    /// A revision; both parts must be non-negative.
    pub fn new(main: i64, sub: i64) -> Revision {
        assert!(
            main >= 0 && sub >= 0,
            "revision ({main}, {sub}) is negative"
        );
        Revision { main, sub }
    }
}
