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

/// Replaces what differs between two servers in human-readable etcdctl
/// output: 12-16-hex-digit ids (leases, lock and election keys), endpoints,
/// durations and the seconds a lease has left.
fn normalize_operator(text: &str, endpoint: &str) -> String {
    let host_port = endpoint.trim_start_matches("http://");
    let text = text.replace(endpoint, "EP").replace(host_port, "EP");
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let is_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        let run = bytes[i..].iter().take_while(|&&b| is_hex(b)).count();
        let bounded = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        // Lease ids: 16 digits (%016x), or fewer in keys (%x).
        if (12..=16).contains(&run)
            && bounded
            && !bytes
                .get(i + run)
                .is_some_and(|b| b.is_ascii_alphanumeric())
        {
            out.push_str("<ID>");
            i += run;
        } else if run > 0 {
            out.push_str(&text[i..i + run]);
            i += run;
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out.lines()
        .map(|line| {
            let line = match line.find("took = ") {
                Some(at) => format!("{}took = T", &line[..at]),
                None => line.to_string(),
            };
            let line = match line.find("remaining(") {
                Some(at) => {
                    let end = line[at..].find(')').map_or(line.len(), |e| at + e + 1);
                    format!("{}remaining(R){}", &line[..at], &line[end..])
                }
                None => line,
            };
            sort_attached_keys(line)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// etcd lists a lease's attached keys from a Go map, in random order:
/// `attached keys([b a])` is sorted so the comparison does not flake.
fn sort_attached_keys(line: String) -> String {
    const OPEN: &str = "attached keys([";
    let Some(at) = line.find(OPEN) else {
        return line;
    };
    let start = at + OPEN.len();
    let Some(length) = line[start..].find(']') else {
        return line;
    };
    let mut keys: Vec<&str> = line[start..start + length].split(' ').collect();
    keys.sort_unstable();
    format!(
        "{}{}{}",
        &line[..start],
        keys.join(" "),
        &line[start + length..]
    )
}

/// Runs a long-lived etcdctl command (watch, elect, lock) for `run`, then
/// kills it and returns what it printed.
fn etcdctl_for(binary: &Path, endpoint: &str, args: &[&str], run: std::time::Duration) -> String {
    let child = Command::new(binary)
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run etcdctl");
    let pid = child.id();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(run);
        // SAFETY: kill(2) on the pid of the child we spawned; it is reaped
        // by wait_with_output below, so the pid cannot have been reused.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    });
    let output = child.wait_with_output().expect("etcdctl output");
    killer.join().unwrap();
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// The first 16-hex-digit id in `text` (a lease id etcdctl printed).
fn first_id(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .find(|word| word.len() == 16)
        .unwrap_or_else(|| panic!("no lease id in {text:?}"))
        .to_string()
}

/// The operator workflows of the seeds (lease, watch, lock, elect, defrag,
/// endpoint health, snapshot save, member list) against keel and etcd in
/// the same run, outputs compared once ids, endpoints and timings are
/// removed.
#[test]
fn operator_workflows_print_the_same_against_keel_and_etcd() {
    let Some(etcdctl_bin) = ensure_debian_tool("etcdctl", "client") else {
        return;
    };
    let Some(etcd) = Etcd::start("etcdctl-ops-etcd") else {
        return;
    };
    let keel = Keel::start("etcdctl-ops-keel");
    let scratch = common::scratch_dir("etcdctl-ops");
    let mut transcripts = Vec::new();
    for endpoint in [etcd.endpoint(), keel.endpoint()] {
        let run = |args: &[&str]| {
            let (ok, text) = etcdctl(&etcdctl_bin, &endpoint, args);
            format!(
                "$ {}\n{}{}\n",
                args.join(" "),
                if ok { "" } else { "[failed] " },
                text
            )
        };
        let mut log = String::new();
        let (_, granted) = etcdctl(&etcdctl_bin, &endpoint, &["lease", "grant", "60"]);
        log.push_str(&granted);
        let lease = first_id(&granted);
        for args in [
            &["put", "--lease", &lease, "leased/a", "1"][..],
            &["put", "leased/b", "2", "--lease", &lease],
            &["lease", "timetolive", &lease],
            &["lease", "timetolive", &lease, "--keys"],
            &["lease", "keep-alive", "--once", &lease],
            &["lease", "list"],
            &["lease", "revoke", &lease],
            &["get", "leased/", "--prefix"],
            &["lease", "timetolive", &lease],
            &["lease", "revoke", &lease],
            &["put", "--lease", "1234abcd", "x", "y"],
            &["lease", "grant", "9000000001"],
        ] {
            log.push_str(&run(args));
        }
        // Watch: history from a revision with prev_kv, then live events.
        for (key, value) in [("w/a", "1"), ("w/b", "2"), ("w/a", "3")] {
            log.push_str(&run(&["put", key, value]));
        }
        log.push_str(&run(&["del", "w/b", "--prev-kv"]));
        let watched = etcdctl_for(
            &etcdctl_bin,
            &endpoint,
            &["watch", "--prefix", "w/", "--rev", "1", "--prev-kv"],
            std::time::Duration::from_millis(1500),
        );
        log.push_str(&format!("$ watch --prefix w/ --rev 1 --prev-kv\n{watched}"));
        let watched = etcdctl_for(
            &etcdctl_bin,
            &endpoint,
            &["watch", "w/a", "w/z", "--rev", "2"],
            std::time::Duration::from_millis(1500),
        );
        log.push_str(&format!("$ watch w/a w/z --rev 2\n{watched}"));
        // Lock and election, as the seeds use them.
        log.push_str(&run(&["lock", "mylock", "echo", "held"]));
        let elected = etcdctl_for(
            &etcdctl_bin,
            &endpoint,
            &["elect", "myelection", "candidate-1"],
            std::time::Duration::from_millis(1500),
        );
        log.push_str(&format!("$ elect myelection candidate-1\n{elected}"));
        // Maintenance.
        for args in [
            &["defrag"][..],
            &["endpoint", "health"],
            &["compact", "4"],
            &["get", "w/a", "--rev", "3"],
        ] {
            log.push_str(&run(args));
        }
        // Its sizes, indexes and version differ from etcd's: check it answers.
        let (ok, status) = etcdctl(
            &etcdctl_bin,
            &endpoint,
            &["endpoint", "status", "-w", "table"],
        );
        assert!(
            ok && status.contains("IS LEADER") && status.contains("true"),
            "{status}"
        );
        let snapshot = scratch.join(format!("snap-{}.db", transcripts.len()));
        let (ok, saved) = etcdctl(
            &etcdctl_bin,
            &endpoint,
            &["snapshot", "save", snapshot.to_str().unwrap()],
        );
        assert!(ok, "snapshot save: {saved}");
        assert!(saved.contains("Snapshot saved at"), "{saved}");
        assert!(std::fs::metadata(&snapshot).unwrap().len() > 0);
        transcripts.push(normalize_operator(&log, &endpoint));
    }
    let (from_etcd, from_keel) = (&transcripts[0], &transcripts[1]);
    for (line, (e, k)) in from_etcd.lines().zip(from_keel.lines()).enumerate() {
        assert_eq!(
            k, e,
            "line {line} differs (left keel, right etcd)\nkeel:\n{from_keel}\netcd:\n{from_etcd}"
        );
    }
    assert_eq!(
        from_keel.lines().count(),
        from_etcd.lines().count(),
        "keel:\n{from_keel}\netcd:\n{from_etcd}"
    );
}
