//! Key order for the tree's searches.
//!
//! The tree's keys are short (an MVCC key is the user key, a terminator and
//! a 17-byte revision suffix), and a descent compares a probe key with a
//! dozen separators and entries. `<[u8]>::cmp` calls libc's `memcmp` for
//! each of them; the call, not the bytes, was the larger part of every
//! insert's cost. [`compare`] gives the same order (bytewise, a prefix
//! before a longer key) inline, eight bytes at a time.

use std::cmp::Ordering;

/// Bytes compared per step.
const WORD_BYTES: usize = 8;

/// The order of `a` and `b`: exactly `a.cmp(b)` for byte slices.
#[inline]
pub fn compare(a: &[u8], b: &[u8]) -> Ordering {
    let common = a.len().min(b.len());
    let mut at = 0;
    while at + WORD_BYTES <= common {
        let left = u64::from_be_bytes(a[at..at + WORD_BYTES].try_into().expect("8 bytes"));
        let right = u64::from_be_bytes(b[at..at + WORD_BYTES].try_into().expect("8 bytes"));
        if left != right {
            // Big-endian words order as their bytes do.
            return left.cmp(&right);
        }
        at += WORD_BYTES;
    }
    while at < common {
        if a[at] != b[at] {
            return a[at].cmp(&b[at]);
        }
        at += 1;
    }
    a.len().cmp(&b.len())
}

/// `a < b` in the order of [`compare`].
#[inline]
pub fn less(a: &[u8], b: &[u8]) -> bool {
    compare(a, b) == Ordering::Less
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::test_random::XorShift;

    /// A key of up to 40 bytes drawn from a small alphabet, so long
    /// shared prefixes and prefixes of one another are common.
    fn random_key(random: &mut XorShift) -> Vec<u8> {
        let len = random.below(41) as usize;
        (0..len).map(|_| random.below(3) as u8 + 0x7f).collect()
    }

    #[test]
    fn orders_exactly_as_slices_do() {
        let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200_000 {
            let a = random_key(&mut random);
            let mut b = random_key(&mut random);
            if random.next().is_multiple_of(4) {
                // Often a copy of `a`, cut short or changed in one byte.
                b = a.clone();
                match random.next() % 3 {
                    0 => b.truncate((random.next() % (a.len() as u64 + 1)) as usize),
                    1 if !b.is_empty() => {
                        let at = (random.next() % b.len() as u64) as usize;
                        b[at] = b[at].wrapping_add(1 + (random.next() % 255) as u8);
                    }
                    _ => b.push(random.next() as u8),
                }
            }
            assert_eq!(compare(&a, &b), a.cmp(&b), "{a:?} against {b:?}");
            assert_eq!(less(&a, &b), a < b);
        }
    }

    #[test]
    fn edge_cases() {
        assert_eq!(compare(b"", b""), Ordering::Equal);
        assert_eq!(compare(b"", b"a"), Ordering::Less);
        assert_eq!(compare(b"abcdefgh", b"abcdefgh\0"), Ordering::Less);
        assert_eq!(compare(b"abcdefgi", b"abcdefgh\xff"), Ordering::Greater);
        assert_eq!(compare(b"\xff", b"\x00\x00"), Ordering::Greater);
    }
}
