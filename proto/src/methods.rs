//! The gRPC paths of every method keel serves.
//!
//! A gRPC request names its method in the HTTP/2 `:path` header as
//! `/<proto package>.<service>/<method>`; `net/` dispatches on these
//! constants. They are checked against the rpcs declared in the `.proto`
//! files by this module's tests, so a method added there and not here (or
//! misspelled here) fails the build's tests.
//!
//! Streaming methods are listed in [`CLIENT_STREAMING`] and
//! [`SERVER_STREAMING`]; every other method is unary.

// etcdserverpb.KV

/// Service `etcdserverpb.KV`.
pub const SERVICE_KV: &str = "etcdserverpb.KV";
/// `KV.Range`.
pub const KV_RANGE: &str = "/etcdserverpb.KV/Range";
/// `KV.RangeStream` (server streaming).
pub const KV_RANGE_STREAM: &str = "/etcdserverpb.KV/RangeStream";
/// `KV.Put`.
pub const KV_PUT: &str = "/etcdserverpb.KV/Put";
/// `KV.DeleteRange`.
pub const KV_DELETE_RANGE: &str = "/etcdserverpb.KV/DeleteRange";
/// `KV.Txn`.
pub const KV_TXN: &str = "/etcdserverpb.KV/Txn";
/// `KV.Compact`.
pub const KV_COMPACT: &str = "/etcdserverpb.KV/Compact";

// etcdserverpb.Watch

/// Service `etcdserverpb.Watch`.
pub const SERVICE_WATCH: &str = "etcdserverpb.Watch";
/// `Watch.Watch` (bidirectional streaming).
pub const WATCH_WATCH: &str = "/etcdserverpb.Watch/Watch";

// etcdserverpb.Lease

/// Service `etcdserverpb.Lease`.
pub const SERVICE_LEASE: &str = "etcdserverpb.Lease";
/// `Lease.LeaseGrant`.
pub const LEASE_GRANT: &str = "/etcdserverpb.Lease/LeaseGrant";
/// `Lease.LeaseRevoke`.
pub const LEASE_REVOKE: &str = "/etcdserverpb.Lease/LeaseRevoke";
/// `Lease.LeaseKeepAlive` (bidirectional streaming).
pub const LEASE_KEEP_ALIVE: &str = "/etcdserverpb.Lease/LeaseKeepAlive";
/// `Lease.LeaseTimeToLive`.
pub const LEASE_TIME_TO_LIVE: &str = "/etcdserverpb.Lease/LeaseTimeToLive";
/// `Lease.LeaseLeases`.
pub const LEASE_LEASES: &str = "/etcdserverpb.Lease/LeaseLeases";

// etcdserverpb.Cluster

/// Service `etcdserverpb.Cluster`.
pub const SERVICE_CLUSTER: &str = "etcdserverpb.Cluster";
/// `Cluster.MemberAdd`.
pub const CLUSTER_MEMBER_ADD: &str = "/etcdserverpb.Cluster/MemberAdd";
/// `Cluster.MemberRemove`.
pub const CLUSTER_MEMBER_REMOVE: &str = "/etcdserverpb.Cluster/MemberRemove";
/// `Cluster.MemberUpdate`.
pub const CLUSTER_MEMBER_UPDATE: &str = "/etcdserverpb.Cluster/MemberUpdate";
/// `Cluster.MemberList`.
pub const CLUSTER_MEMBER_LIST: &str = "/etcdserverpb.Cluster/MemberList";
/// `Cluster.MemberPromote`.
pub const CLUSTER_MEMBER_PROMOTE: &str = "/etcdserverpb.Cluster/MemberPromote";

// etcdserverpb.Maintenance

/// Service `etcdserverpb.Maintenance`.
pub const SERVICE_MAINTENANCE: &str = "etcdserverpb.Maintenance";
/// `Maintenance.Alarm`.
pub const MAINTENANCE_ALARM: &str = "/etcdserverpb.Maintenance/Alarm";
/// `Maintenance.Status`.
pub const MAINTENANCE_STATUS: &str = "/etcdserverpb.Maintenance/Status";
/// `Maintenance.Defragment`.
pub const MAINTENANCE_DEFRAGMENT: &str = "/etcdserverpb.Maintenance/Defragment";
/// `Maintenance.Hash`.
pub const MAINTENANCE_HASH: &str = "/etcdserverpb.Maintenance/Hash";
/// `Maintenance.HashKV`.
pub const MAINTENANCE_HASH_KV: &str = "/etcdserverpb.Maintenance/HashKV";
/// `Maintenance.Snapshot` (server streaming).
pub const MAINTENANCE_SNAPSHOT: &str = "/etcdserverpb.Maintenance/Snapshot";
/// `Maintenance.MoveLeader`.
pub const MAINTENANCE_MOVE_LEADER: &str = "/etcdserverpb.Maintenance/MoveLeader";
/// `Maintenance.Downgrade`.
pub const MAINTENANCE_DOWNGRADE: &str = "/etcdserverpb.Maintenance/Downgrade";

// etcdserverpb.Auth

/// Service `etcdserverpb.Auth`.
pub const SERVICE_AUTH: &str = "etcdserverpb.Auth";
/// `Auth.AuthEnable`.
pub const AUTH_ENABLE: &str = "/etcdserverpb.Auth/AuthEnable";
/// `Auth.AuthDisable`.
pub const AUTH_DISABLE: &str = "/etcdserverpb.Auth/AuthDisable";
/// `Auth.AuthStatus`.
pub const AUTH_STATUS: &str = "/etcdserverpb.Auth/AuthStatus";
/// `Auth.Authenticate`.
pub const AUTH_AUTHENTICATE: &str = "/etcdserverpb.Auth/Authenticate";
/// `Auth.UserAdd`.
pub const AUTH_USER_ADD: &str = "/etcdserverpb.Auth/UserAdd";
/// `Auth.UserGet`.
pub const AUTH_USER_GET: &str = "/etcdserverpb.Auth/UserGet";
/// `Auth.UserList`.
pub const AUTH_USER_LIST: &str = "/etcdserverpb.Auth/UserList";
/// `Auth.UserDelete`.
pub const AUTH_USER_DELETE: &str = "/etcdserverpb.Auth/UserDelete";
/// `Auth.UserChangePassword`.
pub const AUTH_USER_CHANGE_PASSWORD: &str = "/etcdserverpb.Auth/UserChangePassword";
/// `Auth.UserGrantRole`.
pub const AUTH_USER_GRANT_ROLE: &str = "/etcdserverpb.Auth/UserGrantRole";
/// `Auth.UserRevokeRole`.
pub const AUTH_USER_REVOKE_ROLE: &str = "/etcdserverpb.Auth/UserRevokeRole";
/// `Auth.RoleAdd`.
pub const AUTH_ROLE_ADD: &str = "/etcdserverpb.Auth/RoleAdd";
/// `Auth.RoleGet`.
pub const AUTH_ROLE_GET: &str = "/etcdserverpb.Auth/RoleGet";
/// `Auth.RoleList`.
pub const AUTH_ROLE_LIST: &str = "/etcdserverpb.Auth/RoleList";
/// `Auth.RoleDelete`.
pub const AUTH_ROLE_DELETE: &str = "/etcdserverpb.Auth/RoleDelete";
/// `Auth.RoleGrantPermission`.
pub const AUTH_ROLE_GRANT_PERMISSION: &str = "/etcdserverpb.Auth/RoleGrantPermission";
/// `Auth.RoleRevokePermission`.
pub const AUTH_ROLE_REVOKE_PERMISSION: &str = "/etcdserverpb.Auth/RoleRevokePermission";

// v3lockpb.Lock

/// Service `v3lockpb.Lock`.
pub const SERVICE_LOCK: &str = "v3lockpb.Lock";
/// `Lock.Lock`.
pub const LOCK_LOCK: &str = "/v3lockpb.Lock/Lock";
/// `Lock.Unlock`.
pub const LOCK_UNLOCK: &str = "/v3lockpb.Lock/Unlock";

// v3electionpb.Election

/// Service `v3electionpb.Election`.
pub const SERVICE_ELECTION: &str = "v3electionpb.Election";
/// `Election.Campaign`.
pub const ELECTION_CAMPAIGN: &str = "/v3electionpb.Election/Campaign";
/// `Election.Proclaim`.
pub const ELECTION_PROCLAIM: &str = "/v3electionpb.Election/Proclaim";
/// `Election.Leader`.
pub const ELECTION_LEADER: &str = "/v3electionpb.Election/Leader";
/// `Election.Observe` (server streaming).
pub const ELECTION_OBSERVE: &str = "/v3electionpb.Election/Observe";
/// `Election.Resign`.
pub const ELECTION_RESIGN: &str = "/v3electionpb.Election/Resign";

// grpc.health.v1.Health

/// Service `grpc.health.v1.Health`.
pub const SERVICE_HEALTH: &str = "grpc.health.v1.Health";
/// `Health.Check`.
pub const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
/// `Health.Watch` (server streaming).
pub const HEALTH_WATCH: &str = "/grpc.health.v1.Health/Watch";

/// Every service, by its fully-qualified proto name.
pub const SERVICES: &[&str] = &[
    SERVICE_KV,
    SERVICE_WATCH,
    SERVICE_LEASE,
    SERVICE_CLUSTER,
    SERVICE_MAINTENANCE,
    SERVICE_AUTH,
    SERVICE_LOCK,
    SERVICE_ELECTION,
    SERVICE_HEALTH,
];

/// Every method path, unary and streaming.
pub const ALL: &[&str] = &[
    KV_RANGE,
    KV_RANGE_STREAM,
    KV_PUT,
    KV_DELETE_RANGE,
    KV_TXN,
    KV_COMPACT,
    WATCH_WATCH,
    LEASE_GRANT,
    LEASE_REVOKE,
    LEASE_KEEP_ALIVE,
    LEASE_TIME_TO_LIVE,
    LEASE_LEASES,
    CLUSTER_MEMBER_ADD,
    CLUSTER_MEMBER_REMOVE,
    CLUSTER_MEMBER_UPDATE,
    CLUSTER_MEMBER_LIST,
    CLUSTER_MEMBER_PROMOTE,
    MAINTENANCE_ALARM,
    MAINTENANCE_STATUS,
    MAINTENANCE_DEFRAGMENT,
    MAINTENANCE_HASH,
    MAINTENANCE_HASH_KV,
    MAINTENANCE_SNAPSHOT,
    MAINTENANCE_MOVE_LEADER,
    MAINTENANCE_DOWNGRADE,
    AUTH_ENABLE,
    AUTH_DISABLE,
    AUTH_STATUS,
    AUTH_AUTHENTICATE,
    AUTH_USER_ADD,
    AUTH_USER_GET,
    AUTH_USER_LIST,
    AUTH_USER_DELETE,
    AUTH_USER_CHANGE_PASSWORD,
    AUTH_USER_GRANT_ROLE,
    AUTH_USER_REVOKE_ROLE,
    AUTH_ROLE_ADD,
    AUTH_ROLE_GET,
    AUTH_ROLE_LIST,
    AUTH_ROLE_DELETE,
    AUTH_ROLE_GRANT_PERMISSION,
    AUTH_ROLE_REVOKE_PERMISSION,
    LOCK_LOCK,
    LOCK_UNLOCK,
    ELECTION_CAMPAIGN,
    ELECTION_PROCLAIM,
    ELECTION_LEADER,
    ELECTION_OBSERVE,
    ELECTION_RESIGN,
    HEALTH_CHECK,
    HEALTH_WATCH,
];

/// Methods whose requests are a stream.
pub const CLIENT_STREAMING: &[&str] = &[WATCH_WATCH, LEASE_KEEP_ALIVE];

/// Methods whose responses are a stream.
pub const SERVER_STREAMING: &[&str] = &[
    KV_RANGE_STREAM,
    WATCH_WATCH,
    LEASE_KEEP_ALIVE,
    MAINTENANCE_SNAPSHOT,
    ELECTION_OBSERVE,
    HEALTH_WATCH,
];
/// Whether `service`, the fully-qualified name between the slashes of a
/// gRPC path (for example `"etcdserverpb.KV"`), is one keel serves.
pub fn is_known_service(service: &str) -> bool {
    SERVICES.contains(&service)
}

/// Whether `path` (for example `"/etcdserverpb.KV/Range"`) is a method keel
/// serves.
pub fn is_known_method(path: &str) -> bool {
    ALL.contains(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    include!(concat!(env!("OUT_DIR"), "/proto_methods.rs"));

    #[test]
    fn every_proto_rpc_has_a_constant_and_back() {
        for (path, _, _) in PROTO_METHODS {
            assert!(
                is_known_method(path),
                "{path} is declared in a .proto file but not in ALL"
            );
        }
        for path in ALL {
            assert!(
                PROTO_METHODS
                    .iter()
                    .any(|(proto_path, _, _)| proto_path == path),
                "{path} is in ALL but no .proto file declares it"
            );
        }
        assert_eq!(ALL.len(), PROTO_METHODS.len(), "ALL has duplicates");
    }

    #[test]
    fn streaming_lists_match_the_proto_files() {
        for (path, client_streaming, server_streaming) in PROTO_METHODS {
            assert_eq!(CLIENT_STREAMING.contains(path), *client_streaming, "{path}");
            assert_eq!(SERVER_STREAMING.contains(path), *server_streaming, "{path}");
        }
    }

    #[test]
    fn every_method_belongs_to_a_known_service() {
        for path in ALL {
            let (service, method) = path
                .strip_prefix('/')
                .and_then(|rest| rest.split_once('/'))
                .expect("a gRPC path is /service/method");
            assert!(is_known_service(service), "{path}");
            assert!(!method.is_empty(), "{path}");
        }
        assert_eq!(SERVICES.len(), 9);
    }

    #[test]
    fn known_service_rejects_strangers() {
        assert!(is_known_service("etcdserverpb.KV"));
        assert!(is_known_service("grpc.health.v1.Health"));
        assert!(!is_known_service("etcdserverpb.kv"));
        assert!(!is_known_service("/etcdserverpb.KV"));
        assert!(!is_known_service("etcdserverpb.Raft"));
        assert!(!is_known_service(""));
        assert!(!is_known_method("/etcdserverpb.KV/Nope"));
    }

    #[test]
    fn paths_are_etcds() {
        assert_eq!(KV_RANGE, "/etcdserverpb.KV/Range");
        assert_eq!(WATCH_WATCH, "/etcdserverpb.Watch/Watch");
        assert_eq!(LEASE_KEEP_ALIVE, "/etcdserverpb.Lease/LeaseKeepAlive");
        assert_eq!(MAINTENANCE_HASH_KV, "/etcdserverpb.Maintenance/HashKV");
        assert_eq!(
            AUTH_USER_CHANGE_PASSWORD,
            "/etcdserverpb.Auth/UserChangePassword"
        );
        assert_eq!(LOCK_UNLOCK, "/v3lockpb.Lock/Unlock");
        assert_eq!(ELECTION_OBSERVE, "/v3electionpb.Election/Observe");
        assert_eq!(HEALTH_CHECK, "/grpc.health.v1.Health/Check");
    }
}
