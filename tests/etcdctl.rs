//! Guards compatibility with Debian's `etcdctl`: the same commands against
//! keel and against Debian's etcd, started side by side, print the same
//! output (cluster/member ids and raft terms aside). Skips loudly when the
//! packages cannot be installed.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{ensure_debian_tool, Etcd, Keel};

fn etcdctl(binary: &Path, endpoint: &str, args: &[&str]) -> (bool, String) {
    etcdctl_with_stdin(binary, endpoint, args, "")
}

/// Runs etcdctl with `stdin` as its input (`etcdctl txn` reads compares,
/// success ops and failure ops from it, each list ended by a blank line).
fn etcdctl_with_stdin(binary: &Path, endpoint: &str, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(binary)
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "--command-timeout", "10s"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run etcdctl");
    child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(stdin.as_bytes())
        .expect("feed etcdctl");
    let output = child.wait_with_output().expect("run etcdctl");
    let mut text = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() {
        // The client's retry log lines carry timestamps and random targets.
        for line in String::from_utf8_lossy(&output.stderr).lines() {
            if !line.starts_with("{\"level\"") {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    (output.status.success(), normalize(&text))
}

/// Removes what legitimately differs between two servers: their ids,
/// terms and (in `member list -w json`) member ids and URLs.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = [
        "\"cluster_id\":",
        "\"member_id\":",
        "\"raft_term\":",
        "\"ID\":",
    ]
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
    hide_url_lists(&out)
}

/// `"peerURLs":[...]` and `"clientURLs":[...]` become `[U]`: ports differ.
fn hide_url_lists(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = ["\"peerURLs\":[", "\"clientURLs\":["]
        .iter()
        .filter_map(|field| rest.find(field).map(|i| i + field.len()))
        .min()
    {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(']').unwrap_or(rest.len());
        out.push('U');
        rest = &rest[end..];
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
        &["compact", "3"],
        &["compact", "3"],
        &["compact", "2"],
        &["get", "foo", "--rev", "2"],
        &["get", "foo", "--rev", "3", "-w", "json"],
        &["compact", "1000"],
        &["compact", "5", "--physical"],
    ];
    // `etcdctl txn` reads compares, success ops and failure ops from stdin.
    let txn_script: &[(&[&str], &str)] = &[
        (
            &["txn"],
            "value(\"zeta\") = \"last\"\n\nput t1 a\nget zeta\n\nput t2 b\n\n",
        ),
        (
            &["txn", "-w", "json"],
            "mod(\"t1\") > \"0\"\nversion(\"zeta\") = \"1\"\n\nput t1 b --prev-kv\ndel zeta\nget t --prefix\n\nput never x\n\n",
        ),
        (
            &["txn", "-w", "json"],
            "create(\"t1\") < \"1\"\n\nput never x\n\nget t1\ndel nothing\nput t3 c\n\n",
        ),
        (
            &["txn", "-w", "json"],
            "create(\"t1\") > \"0\"\nvalue(\"missing\") != \"x\"\n\nput never x\n\nget t --prefix --count-only\n\n",
        ),
        (&["txn"], "\n\n\n"),
        (&["txn"], "\nput d 1\nput d 2\n\n\n"),
        (&["txn"], "\ndel d --prefix\nput d/x 1\n\n\n"),
        (&["txn"], "\nput \"\" x\n\n\n"),
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
    for (args, stdin) in txn_script {
        let from_etcd = etcdctl_with_stdin(&etcdctl_bin, &etcd.endpoint(), args, stdin);
        let from_keel = etcdctl_with_stdin(&etcdctl_bin, &keel.endpoint(), args, stdin);
        assert_eq!(
            from_keel, from_etcd,
            "etcdctl {args:?} with stdin {stdin:?} differs (left keel, right etcd)"
        );
        compared += 1;
    }
    // Sizes and indexes differ (`endpoint status`), ids and URLs are hidden.
    for args in [
        &["member", "list", "-w", "json"][..],
        &["alarm", "list"][..],
    ] {
        let from_etcd = etcdctl(&etcdctl_bin, &etcd.endpoint(), args);
        let from_keel = etcdctl(&etcdctl_bin, &keel.endpoint(), args);
        assert_eq!(
            from_keel, from_etcd,
            "etcdctl {args:?} differs (left keel, right etcd)"
        );
        compared += 1;
    }
    assert_eq!(compared, script.len() + txn_script.len() + 2);
}

#[test]
fn normalize_hides_ids_only() {
    assert_eq!(
        normalize(r#"{"header":{"cluster_id":123,"member_id":45,"revision":7,"raft_term":2}}"#),
        r#"{"header":{"cluster_id":N,"member_id":N,"revision":7,"raft_term":N}}"#
    );
    assert_eq!(
        normalize(
            r#"{"members":[{"ID":12,"name":"default","peerURLs":["http://a:1"],"clientURLs":["http://b:2","http://c:3"]}]}"#
        ),
        r#"{"members":[{"ID":N,"name":"default","peerURLs":[U],"clientURLs":[U]}]}"#
    );
}
