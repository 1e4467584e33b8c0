//! The one table from keel's internal errors to etcd's gRPC status.
//!
//! Clients match on code and message (the Go clientv3 turns these messages
//! back into its `rpctypes` errors), so the texts are etcd's, word for word.

use keel_engine::MvccError;
use keel_raft_shim::ApplyError;

use crate::grpc::{Code, Status};

/// Errors a request can meet on a shard core, before or after the raft core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    EmptyKey,
    InvalidSortOption,
    ValueProvided,
    LeaseProvided,
    RequestTooLarge,
    TooManyOps,
    DuplicateKey,
    /// An empty op in a txn (etcd's answer to it).
    KeyNotFound,
    /// A lease grant's TTL is over etcd's maximum.
    LeaseTtlTooLarge,
    /// A lease the request names does not exist.
    LeaseNotFound,
    /// MoveLeader to a member that is not in the cluster.
    BadLeaderTransferee,
    /// The backend is over `--quota-backend-bytes`.
    NoSpace,
    /// etcd's `concurrency.ErrSessionExpired` (its lock key vanished).
    ConcurrencySessionExpired,
    /// etcd's `concurrency.ErrElectionNotLeader`.
    ElectionNotLeader,
    /// etcd's `concurrency.ErrElectionNoLeader`.
    ElectionNoLeader,
    /// The defrag failed (its error's text).
    Defrag(String),
    /// A request keel does not serve yet.
    Unsupported,
    Mvcc(MvccError),
    Apply(ApplyError),
    /// The raft core is gone (the server is stopping).
    Stopped,
}

pub fn to_status(error: &RequestError) -> Status {
    if let RequestError::Defrag(text) = error {
        return Status::new(Code::Unknown, text.clone());
    }
    let (code, message) = match error {
        RequestError::EmptyKey => (Code::InvalidArgument, "etcdserver: key is not provided"),
        RequestError::InvalidSortOption => {
            (Code::InvalidArgument, "etcdserver: invalid sort option")
        }
        RequestError::ValueProvided => (Code::InvalidArgument, "etcdserver: value is provided"),
        RequestError::LeaseProvided => (Code::InvalidArgument, "etcdserver: lease is provided"),
        RequestError::RequestTooLarge => {
            (Code::InvalidArgument, "etcdserver: request is too large")
        }
        RequestError::TooManyOps => (
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request",
        ),
        RequestError::DuplicateKey => (
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request",
        ),
        RequestError::KeyNotFound | RequestError::Apply(ApplyError::KeyNotFound) => {
            (Code::InvalidArgument, "etcdserver: key not found")
        }
        RequestError::Mvcc(MvccError::Compacted)
        | RequestError::Apply(ApplyError::Mvcc(MvccError::Compacted)) => (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted",
        ),
        RequestError::Mvcc(MvccError::FutureRevision)
        | RequestError::Apply(ApplyError::Mvcc(MvccError::FutureRevision)) => (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision",
        ),
        RequestError::LeaseTtlTooLarge => (Code::OutOfRange, "etcdserver: too large lease TTL"),
        RequestError::LeaseNotFound | RequestError::Apply(ApplyError::LeaseNotFound) => {
            (Code::NotFound, "etcdserver: requested lease not found")
        }
        RequestError::Apply(ApplyError::LeaseExists) => {
            (Code::FailedPrecondition, "etcdserver: lease already exists")
        }
        // The concurrency recipes' errors reach clients as grpc-go's
        // Unknown status with the error's text.
        RequestError::Defrag(_) => unreachable!("answered above"),
        RequestError::ConcurrencySessionExpired => (Code::Unknown, "session expired"),
        RequestError::ElectionNotLeader => (Code::Unknown, "election: not leader"),
        RequestError::ElectionNoLeader => (Code::Unknown, "election: no leader"),
        RequestError::BadLeaderTransferee => (
            Code::FailedPrecondition,
            "etcdserver: bad leader transferee",
        ),
        RequestError::NoSpace | RequestError::Apply(ApplyError::NoSpace) => (
            Code::ResourceExhausted,
            "etcdserver: mvcc: database space exceeded",
        ),
        RequestError::Apply(ApplyError::Unsupported) | RequestError::Unsupported => {
            (Code::Unimplemented, "keel: request kind not supported yet")
        }
        RequestError::Apply(ApplyError::NotLeader) => {
            (Code::FailedPrecondition, "etcdserver: not leader")
        }
        RequestError::Apply(ApplyError::ProposalDropped) => {
            (Code::Unavailable, "etcdserver: request timed out")
        }
        RequestError::Apply(ApplyError::Stopping) | RequestError::Stopped => {
            (Code::Unavailable, "etcdserver: server stopped")
        }
    };
    Status::new(code, message)
}

impl From<RequestError> for Status {
    fn from(error: RequestError) -> Status {
        to_status(&error)
    }
}

/// grpc-go's answer for a path naming no known service or method.
pub fn unknown_method(path: &str) -> Status {
    let Some(rest) = path.strip_prefix('/') else {
        return Status::new(
            Code::Unimplemented,
            format!("malformed method name: {path:?}"),
        );
    };
    match rest.rsplit_once('/') {
        Some((service, method)) if keel_proto::methods::is_known_service(service) => Status::new(
            Code::Unimplemented,
            format!("unknown method {method} for service {service}"),
        ),
        Some((service, _)) => {
            Status::new(Code::Unimplemented, format!("unknown service {service}"))
        }
        None => Status::new(
            Code::Unimplemented,
            format!("malformed method name: {path:?}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mvcc_errors_read_as_etcd() {
        let status = to_status(&RequestError::Mvcc(MvccError::Compacted));
        assert_eq!(status.code, Code::OutOfRange);
        assert_eq!(
            status.message,
            "etcdserver: mvcc: required revision has been compacted"
        );
        let status = to_status(&RequestError::EmptyKey);
        assert_eq!(
            (status.code, status.message.as_str()),
            (Code::InvalidArgument, "etcdserver: key is not provided")
        );
    }

    #[test]
    fn unknown_paths_read_as_grpc_go() {
        assert_eq!(
            unknown_method("/etcdserverpb.KV/Nope").message,
            "unknown method Nope for service etcdserverpb.KV"
        );
        assert_eq!(
            unknown_method("/no.Such/Thing").message,
            "unknown service no.Such"
        );
        assert_eq!(unknown_method("bad").code, Code::Unimplemented);
    }
}
