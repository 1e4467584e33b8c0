//! The raft core's lease duties: answering lease questions from the table
//! in memory, picking ids, and proposing revokes for expired leases.

use super::*;

impl RaftCore {
    /// Answers a lease question from the table in memory.
    pub(super) fn answer_lease(&mut self, query: LeaseQuery) -> LeaseAnswer {
        let now = Instant::now();
        match query {
            LeaseQuery::Renew { id } => LeaseAnswer::Renewed(self.leases.renew(id, now)),
            LeaseQuery::TimeToLive { id, keys } => {
                LeaseAnswer::TimeToLive(self.leases.time_to_live(id, keys, now))
            }
            LeaseQuery::List => LeaseAnswer::List(self.leases.ids()),
        }
    }

    /// An id for a grant that left it to the server (etcd's `reqIDGen`:
    /// member bits, then time and a counter), positive and not in use.
    pub(super) fn pick_lease_id(&mut self) -> i64 {
        loop {
            let id = self.next_lease_id & i64::MAX;
            self.next_lease_id = self.next_lease_id.wrapping_add(1);
            if id != 0 && !self.leases.contains(id) {
                return id;
            }
        }
    }

    /// The leader proposes a revoke for every expired lease (a bounded
    /// number per tick), as etcd's lessor does; nobody waits for them.
    pub(super) fn revoke_expired(&mut self) {
        if self.node.raft.state != StateRole::Leader {
            return;
        }
        for lease_id in self
            .leases
            .expired(Instant::now(), EXPIRED_REVOKES_PER_TICK_MAX)
        {
            let id = self.next_proposal_id;
            self.next_proposal_id += 1;
            let internal = InternalRequest {
                id,
                request: Some(Request::LeaseRevoke(LeaseRevokeRequest { id: lease_id })),
            };
            if let Err(error) = self.node.propose(Vec::new(), internal.encode_to_vec()) {
                eprintln!("keel: warning: revoke of expired lease {lease_id:x} dropped: {error}");
            }
        }
    }
}
