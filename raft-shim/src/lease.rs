//! The lease table (etcd's lessor): pure logic, no I/O, driven by the
//! raft core.
//!
//! Grants and revokes arrive through raft and are applied here and in the
//! backend's lease records in the same write batch; which keys a lease
//! holds follows from the applied events ([`Lessor::track`]), so it is
//! never stored. Expiry times live only in memory, as in etcd: after a
//! restart every lease gets its whole TTL again (etcd's `Promote`), which
//! is at least the remaining TTL etcd promises. Keep-alives renew in
//! memory on the leader without raft. The raft core asks
//! [`Lessor::expired`] each tick and proposes revokes for what it returns.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use keel_engine::{Event, EventKind, LeaseRecord};

/// etcd's `MaxLeaseTTL`: nine billion seconds.
pub const LEASE_TTL_MAX_SECONDS: i64 = 9_000_000_000;
/// Most expired leases proposed for revocation per tick (etcd revokes at
/// most 1000 per second by default; keel ticks every 100 ms).
pub const EXPIRED_REVOKES_PER_TICK_MAX: usize = 100;
/// A revoke proposed for an expired lease that has not applied after this
/// long is proposed again.
pub const REVOKE_RETRY_AFTER: Duration = Duration::from_secs(3);

#[derive(Debug)]
struct Lease {
    ttl_seconds: i64,
    expires_at: Instant,
    keys: BTreeSet<Vec<u8>>,
    /// When a revoke for its expiry was proposed.
    revoke_proposed_at: Option<Instant>,
}

/// A lease as TimeToLive reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub id: i64,
    /// Seconds left, truncated (etcd: `int64(Remaining().Seconds())`).
    pub remaining_seconds: i64,
    pub granted_ttl_seconds: i64,
    pub keys: Vec<Vec<u8>>,
}

#[derive(Debug)]
pub struct Lessor {
    leases: HashMap<i64, Lease>,
    /// (expiry, id) of every lease, for the expiry scan.
    by_expiry: BTreeMap<(Instant, i64), ()>,
    min_ttl_seconds: i64,
}

impl Lessor {
    /// A table holding `records` (from the backend), each with its whole
    /// TTL from `now`.
    pub fn new(records: &[LeaseRecord], min_ttl_seconds: i64, now: Instant) -> Lessor {
        let mut lessor = Lessor {
            leases: HashMap::with_capacity(records.len()),
            by_expiry: BTreeMap::new(),
            min_ttl_seconds,
        };
        for record in records {
            lessor.grant(record.id, record.ttl_seconds, now);
        }
        lessor
    }

    /// The TTL a grant of `requested` seconds gets (etcd raises it to the
    /// minimum, 1.5 election timeouts rounded up).
    pub fn granted_ttl(&self, requested_seconds: i64) -> i64 {
        requested_seconds.max(self.min_ttl_seconds)
    }

    pub fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    /// Applies a grant of an id not yet in the table.
    pub fn grant(&mut self, id: i64, ttl_seconds: i64, now: Instant) {
        debug_assert!(!self.leases.contains_key(&id));
        let expires_at = now + Duration::from_secs(ttl_seconds.max(0) as u64);
        self.leases.insert(
            id,
            Lease {
                ttl_seconds,
                expires_at,
                keys: BTreeSet::new(),
                revoke_proposed_at: None,
            },
        );
        self.by_expiry.insert((expires_at, id), ());
    }

    /// Applies a revoke; returns the keys the lease held (the caller
    /// deletes them in the same revision), or `None` if it does not exist.
    pub fn revoke(&mut self, id: i64) -> Option<Vec<Vec<u8>>> {
        let lease = self.leases.remove(&id)?;
        self.by_expiry.remove(&(lease.expires_at, id));
        Some(lease.keys.into_iter().collect())
    }

    /// The keys lease `id` holds, in key order.
    pub fn keys(&self, id: i64) -> Option<Vec<Vec<u8>>> {
        self.leases
            .get(&id)
            .map(|lease| lease.keys.iter().cloned().collect())
    }

    /// Keep-alive: a live lease's expiry moves to `now` + its TTL; returns
    /// the TTL, or `None` for a missing or already expired lease.
    pub fn renew(&mut self, id: i64, now: Instant) -> Option<i64> {
        let lease = self.leases.get_mut(&id)?;
        if lease.expires_at <= now {
            return None;
        }
        self.by_expiry.remove(&(lease.expires_at, id));
        lease.expires_at = now + Duration::from_secs(lease.ttl_seconds.max(0) as u64);
        lease.revoke_proposed_at = None;
        self.by_expiry.insert((lease.expires_at, id), ());
        Some(lease.ttl_seconds)
    }

    pub fn time_to_live(&self, id: i64, with_keys: bool, now: Instant) -> Option<LeaseInfo> {
        let lease = self.leases.get(&id)?;
        let remaining = lease.expires_at.saturating_duration_since(now);
        Some(LeaseInfo {
            id,
            remaining_seconds: remaining.as_secs() as i64,
            granted_ttl_seconds: lease.ttl_seconds,
            keys: if with_keys {
                lease.keys.iter().cloned().collect()
            } else {
                Vec::new()
            },
        })
    }

    /// Every lease id, ascending.
    pub fn ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.leases.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Leases past their expiry with no revoke in flight (or one proposed
    /// longer than [`REVOKE_RETRY_AFTER`] ago), at most `max`; they are
    /// marked as proposed.
    pub fn expired(&mut self, now: Instant, max: usize) -> Vec<i64> {
        let mut due = Vec::new();
        for &(expires_at, id) in self.by_expiry.keys() {
            if expires_at > now || due.len() >= max {
                break;
            }
            let lease = self.leases.get(&id).expect("indexed leases exist");
            let retry = lease
                .revoke_proposed_at
                .is_none_or(|at| now.duration_since(at) >= REVOKE_RETRY_AFTER);
            if retry {
                due.push(id);
            }
        }
        for id in &due {
            if let Some(lease) = self.leases.get_mut(id) {
                lease.revoke_proposed_at = Some(now);
            }
        }
        due
    }

    /// Follows applied events: a put attaches its key to its lease (and
    /// detaches it from the previous one), a delete detaches it.
    pub fn track(&mut self, events: &[Event]) {
        for event in events {
            let previous = event.prev_lease();
            let current = match event.kind {
                EventKind::Put => event.lease(),
                EventKind::Delete => 0,
            };
            if previous == current {
                continue;
            }
            if previous != 0 {
                if let Some(lease) = self.leases.get_mut(&previous) {
                    lease.keys.remove(event.key());
                }
            }
            if current != 0 {
                self.attach(current, event.key());
            }
        }
    }

    /// Attaches `key` to lease `id` (start-up, from the live keys).
    pub fn attach(&mut self, id: i64, key: &[u8]) {
        if let Some(lease) = self.leases.get_mut(&id) {
            lease.keys.insert(key.to_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_engine::KeyValue;

    fn put(key: &[u8], lease: i64, prev_lease: Option<i64>) -> Event {
        Event::new(
            EventKind::Put,
            KeyValue {
                key: key.to_vec(),
                lease,
                ..KeyValue::default()
            },
            prev_lease.map(|lease| KeyValue {
                key: key.to_vec(),
                lease,
                ..KeyValue::default()
            }),
        )
    }

    #[test]
    fn grant_renew_expire_revoke() {
        let start = Instant::now();
        let mut lessor = Lessor::new(&[], 2, start);
        assert_eq!(lessor.granted_ttl(1), 2);
        assert_eq!(lessor.granted_ttl(60), 60);
        lessor.grant(7, 5, start);
        assert_eq!(
            lessor
                .time_to_live(7, false, start)
                .unwrap()
                .remaining_seconds,
            5
        );
        assert!(lessor
            .expired(start + Duration::from_secs(4), 10)
            .is_empty());
        assert_eq!(lessor.renew(7, start + Duration::from_secs(4)), Some(5));
        assert!(lessor
            .expired(start + Duration::from_secs(6), 10)
            .is_empty());
        let late = start + Duration::from_secs(10);
        assert_eq!(lessor.expired(late, 10), vec![7]);
        // Proposed once; not again until the retry interval passes.
        assert!(lessor.expired(late, 10).is_empty());
        assert_eq!(lessor.expired(late + REVOKE_RETRY_AFTER, 10), vec![7]);
        assert_eq!(
            lessor.renew(7, late),
            None,
            "an expired lease is not renewed"
        );
        assert_eq!(lessor.revoke(7), Some(Vec::new()));
        assert_eq!(lessor.revoke(7), None);
        assert!(lessor.is_empty());
    }

    #[test]
    fn keys_follow_events() {
        let now = Instant::now();
        let mut lessor = Lessor::new(
            &[
                LeaseRecord {
                    id: 1,
                    ttl_seconds: 10,
                },
                LeaseRecord {
                    id: 2,
                    ttl_seconds: 10,
                },
            ],
            2,
            now,
        );
        lessor.track(&[put(b"a", 1, None), put(b"b", 1, None)]);
        assert_eq!(lessor.keys(1).unwrap(), vec![b"a".to_vec(), b"b".to_vec()]);
        // b moves to lease 2; a loses its lease; c was never leased.
        lessor.track(&[
            put(b"b", 2, Some(1)),
            put(b"a", 0, Some(1)),
            put(b"c", 0, None),
        ]);
        assert!(lessor.keys(1).unwrap().is_empty());
        assert_eq!(lessor.keys(2).unwrap(), vec![b"b".to_vec()]);
        let delete = Event::new(
            EventKind::Delete,
            KeyValue {
                key: b"b".to_vec(),
                ..KeyValue::default()
            },
            Some(KeyValue {
                key: b"b".to_vec(),
                lease: 2,
                ..KeyValue::default()
            }),
        );
        lessor.track(&[delete]);
        assert!(lessor.keys(2).unwrap().is_empty());
        assert_eq!(lessor.ids(), vec![1, 2]);
    }

    #[test]
    fn expiry_scan_is_bounded() {
        let now = Instant::now();
        let records: Vec<LeaseRecord> = (1..=10)
            .map(|id| LeaseRecord { id, ttl_seconds: 1 })
            .collect();
        let mut lessor = Lessor::new(&records, 1, now);
        let later = now + Duration::from_secs(2);
        assert_eq!(lessor.expired(later, 4).len(), 4);
        assert_eq!(lessor.expired(later, 100).len(), 6);
    }
}
