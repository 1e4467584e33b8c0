//! Guards compatibility with Debian's `etcdctl`: the same commands against
//! keel and against Debian's etcd, started side by side, print the same
//! output (cluster/member ids and raft terms aside). Skips loudly when the
//! packages cannot be installed.

mod common;

use std::path::Path;
use std::process::Command;

use common::{ensure_debian_tool, Etcd, Keel};

fn etcdctl(binary: &Path, endpoint: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(binary)
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "--command-timeout", "10s"])
        .args(args)
        .output()
        .expect("run etcdctl");
    let mut text = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() {
        text.push_str(&String::from_utf8_lossy(&output.stderr));
    }
    (output.status.success(), normalize(&text))
}

/// Removes what legitimately differs between two servers: their ids and terms.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = ["\"cluster_id\":", "\"member_id\":", "\"raft_term\":"]
        .iter()
        .filter_map(|field| rest.find(field).map(|i| (i, field.len())))
        .min()
    {
        let (start, len) = at;
        out.push_str(&rest[..start + len]);
        rest = &rest[start + len..];
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        out.push('N');
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

#[test]
fn etcdctl_prints_the_same_against_keel_and_etcd() {
    let Some(etcdctl_bin) = ensure_debian_tool("etcdctl", "client") else {
        return;
    };
    let Some(etcd) = Etcd::start("etcdctl-etcd") else {
        return;
    };
    let keel = Keel::start("etcdctl-keel");
    let script: &[&[&str]] = &[
        &["get", "missing"],
        &["put", "foo", "bar"],
        &["get", "foo"],
        &["put", "foo", "baz", "--prev-kv"],
        &["get", "foo", "-w", "json"],
        &["put", "foo/a", "1"],
        &["put", "foo/b", "2"],
        &["put", "zeta", "last"],
        &["get", "foo", "--prefix"],
        &["get", "foo", "--prefix", "--keys-only"],
        &["get", "foo", "--prefix", "--limit", "1", "-w", "json"],
        &["get", "foo/", "--from-key"],
        &["get", "foo", "--rev", "2"],
        &["get", "foo", "--prefix", "--count-only", "-w", "json"],
        &["get", "foo", "--consistency", "s"],
        &[
            "get",
            "foo",
            "--prefix",
            "--order",
            "DESCEND",
            "--sort-by",
            "MODIFY",
        ],
        &["del", "foo/a"],
        &["del", "foo", "--prefix", "--prev-kv"],
        &["del", "nothing"],
        &["get", "", "--prefix", "-w", "json"],
        &["put", "big", "v", "-w", "json"],
    ];
    let mut compared = 0;
    for args in script {
        let from_etcd = etcdctl(&etcdctl_bin, &etcd.endpoint(), args);
        let from_keel = etcdctl(&etcdctl_bin, &keel.endpoint(), args);
        assert_eq!(
            from_keel, from_etcd,
            "etcdctl {args:?} differs (left keel, right etcd)"
        );
        compared += 1;
    }
    assert_eq!(compared, script.len());
}

#[test]
fn normalize_hides_ids_only() {
    assert_eq!(
        normalize(r#"{"header":{"cluster_id":123,"member_id":45,"revision":7,"raft_term":2}}"#),
        r#"{"header":{"cluster_id":N,"member_id":N,"revision":7,"raft_term":N}}"#
    );
}
