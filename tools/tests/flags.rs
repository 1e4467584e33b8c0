//! Guards keel-bench's flags: etcd `benchmark`'s names and defaults for
//! every command, the global flags (`--target-leader`, `--dial-timeout`,
//! `--precise`, `--sample`, `--user`, TLS), and refusals of bad values.

use std::time::Duration;

use keel_tools::args::{parse, Args, ArgsError, Credentials, DIAL_TIMEOUT_DEFAULT};
use keel_tools::command::{Command, MvccEngineOptions};

fn parse_str(line: &str) -> Result<Args, ArgsError> {
    parse(line.split_whitespace().map(str::to_string))
}

#[test]
fn etcd_benchmark_flags_parse() {
    let args = parse_str(
        "--endpoints=http://127.0.0.1:2379 --conns 100 --clients 1000 put --total 5000 --key-size 8 --val-size 256 --sequential-keys --key-space-size 100000",
    )
    .unwrap();
    assert_eq!((args.conns, args.clients), (100, 1000));
    assert_eq!(
        args.command,
        Command::Put {
            total: 5000,
            key_size: 8,
            val_size: 256,
            sequential_keys: true,
            key_space_size: 100000,
            rate: 0,
            compact_interval: None,
            compact_index_delta: 1000,
        }
    );
    let args = parse_str("range foo fop --consistency s --total 7").unwrap();
    assert_eq!(
        args.command,
        Command::Range {
            key: b"foo".to_vec(),
            end: b"fop".to_vec(),
            total: 7,
            serializable: true,
            limit: 0
        }
    );
}

#[test]
fn txn_put_flags_parse() {
    let args = parse_str(
        "--conns 2 --clients 4 txn-put --total 300 --key-size 16 --val-size 64 --txn-ops 8 --key-space-size 50",
    )
    .unwrap();
    assert_eq!(
        args.command,
        Command::TxnPut {
            total: 300,
            key_size: 16,
            val_size: 64,
            txn_ops: 8,
            key_space_size: 50
        }
    );
    let defaults = parse_str("txn-put").unwrap().command;
    assert_eq!(
        defaults,
        Command::TxnPut {
            total: 10000,
            key_size: 8,
            val_size: 8,
            txn_ops: 1,
            key_space_size: 1
        }
    );
    assert!(parse_str("txn-put --txn-ops 0").is_err());
}

#[test]
fn txn_mixed_flags_parse() {
    let args = parse_str(
        "txn-mixed --total 500 --key-size 10 --val-size 20 --rw-ratio 3.5 --consistency s --key-space-size 1000 --limit 50 --end-key zz",
    )
    .unwrap();
    assert_eq!(
        args.command,
        Command::TxnMixed {
            total: 500,
            key_size: 10,
            val_size: 20,
            rw_ratio: 3.5,
            serializable: true,
            key_space_size: 1000,
            limit: 50,
            end_key: b"zz".to_vec()
        }
    );
    let Command::TxnMixed {
        rw_ratio,
        serializable,
        limit,
        ..
    } = parse_str("txn-mixed").unwrap().command
    else {
        panic!("not txn-mixed");
    };
    assert_eq!((rw_ratio, serializable, limit), (1.0, false, 1000));
    assert!(parse_str("txn-mixed --rw-ratio -1").is_err());
    assert!(parse_str("txn-mixed --rw-ratio x").is_err());
}

#[test]
fn lease_keepalive_flags_parse() {
    let args = parse_str("--clients 10 lease-keepalive --total 77").unwrap();
    assert_eq!(args.command, Command::LeaseKeepalive { total: 77 });
    assert_eq!(
        parse_str("lease-keepalive").unwrap().command,
        Command::LeaseKeepalive { total: 10000 }
    );
}

#[test]
fn watch_latency_flags_parse() {
    let args = parse_str(
        "--conns 2 --clients 2 watch-latency --put-total 40 --put-rate 200 --key-size 8 --val-size 16 --streams 3 --watchers-per-stream 5 --prevkv",
    )
    .unwrap();
    let command = Command::WatchLatency {
        put_total: 40,
        put_rate: 200,
        key_size: 8,
        val_size: 16,
        streams: 3,
        watchers_per_stream: 5,
        prev_kv: true,
    };
    assert_eq!(args.command, command);
    assert_eq!(command.total(), 40);
    assert_eq!(command.expected_results(), 40 * 16);
    assert_eq!(
        parse_str("watch-latency").unwrap().command,
        Command::WatchLatency {
            put_total: 1000,
            put_rate: 100,
            key_size: 32,
            val_size: 32,
            streams: 10,
            watchers_per_stream: 10,
            prev_kv: false,
        }
    );
    // etcd 3.4 called the number of puts --total.
    assert_eq!(
        parse_str("watch-latency --total 9")
            .unwrap()
            .command
            .total(),
        9
    );
    assert!(parse_str("watch-latency --streams 0").is_err());
    assert!(parse_str("watch-latency --put-rate 0").is_err());
}

#[test]
fn bad_flags_are_refused() {
    assert!(parse_str("--nope put").is_err());
    assert!(parse_str("put --total").is_err());
    assert!(parse_str("range").is_err());
    assert!(parse_str("--conns 0 put").is_err());
    assert!(parse_str("range k --consistency x").is_err());
    assert!(parse_str("lease-keepalive --total x").is_err());
    assert!(parse_str("txn-mix").is_err());
}

#[test]
fn global_flags_parse() {
    let defaults = parse_str("put").unwrap();
    assert!(!defaults.precise && !defaults.sample && !defaults.target_leader);
    assert_eq!(defaults.dial_timeout, DIAL_TIMEOUT_DEFAULT);
    assert_eq!(defaults.dial_timeout, Duration::from_secs(30));
    assert_eq!((defaults.user, defaults.tls), (None, None));

    let args = parse_str(
        "--precise --sample --target-leader --dial-timeout 1m30s --user root:s3cr:et put",
    )
    .unwrap();
    assert!(args.precise && args.sample && args.target_leader);
    assert_eq!(args.dial_timeout, Duration::from_secs(90));
    assert_eq!(
        args.user,
        Some(Credentials {
            name: "root".into(),
            password: "s3cr:et".into()
        })
    );
    // Go-style booleans and durations.
    let args = parse_str("--sample=false --precise=true --dial-timeout=250ms put").unwrap();
    assert!(!args.sample && args.precise);
    assert_eq!(args.dial_timeout, Duration::from_millis(250));
    assert_eq!(
        parse_str("--dial-timeout 0 put").unwrap().dial_timeout,
        Duration::ZERO
    );
    assert!(parse_str("--dial-timeout 5 put").is_err());
    assert!(parse_str("--sample=maybe put").is_err());
    // No prompting: the password must be given.
    assert!(parse_str("--user root put").is_err());
    assert!(parse_str("--user :pw put").is_err());
}

#[test]
fn tls_flags_are_accepted_and_kept() {
    let args = parse_str("--cacert ca.pem --cert c.pem --key k.pem put").unwrap();
    let tls = args.tls.unwrap();
    assert_eq!(tls.ca_cert.as_deref(), Some("ca.pem"));
    assert_eq!(tls.cert.as_deref(), Some("c.pem"));
    assert_eq!(tls.key.as_deref(), Some("k.pem"));
    assert!(parse_str("--insecure-skip-tls-verify put")
        .unwrap()
        .tls
        .is_some());
    // One without the other is refused.
    assert!(parse_str("--cert c.pem put").is_err());
    assert!(parse_str("--key k.pem put").is_err());
}

#[test]
fn endpoints_are_tls_by_scheme_or_by_the_tls_flags() {
    let tls_of = |line: &str| -> Vec<bool> {
        parse_str(line)
            .unwrap()
            .endpoints
            .iter()
            .map(|endpoint| endpoint.tls)
            .collect()
    };
    assert_eq!(tls_of("put"), [false]);
    assert_eq!(tls_of("--cacert ca.pem put"), [true]);
    assert_eq!(
        tls_of("--endpoints https://127.0.0.1:1,http://127.0.0.1:2,127.0.0.1:3 put"),
        [true, false, false]
    );
    let args = parse_str("--endpoints https://localhost:2379 put").unwrap();
    assert_eq!(args.endpoints[0].host, "localhost");
    assert_eq!(args.endpoints[0].addr.to_string(), "127.0.0.1:2379");
    assert!(parse_str("--endpoints unix://x:1 put").is_err());
}

#[test]
fn put_compaction_and_rate_flags_parse() {
    let args = parse_str("put --compact-interval 5s --compact-index-delta 200 --rate 50").unwrap();
    let Command::Put {
        rate,
        compact_interval,
        compact_index_delta,
        ..
    } = args.command
    else {
        panic!("not put");
    };
    assert_eq!(rate, 50);
    assert_eq!(compact_interval, Some(Duration::from_secs(5)));
    assert_eq!(compact_index_delta, 200);
    // etcd: 0 (the default) never compacts.
    let Command::Put {
        compact_interval, ..
    } = parse_str("put --compact-interval 0s").unwrap().command
    else {
        panic!("not put");
    };
    assert_eq!(compact_interval, None);
    assert!(parse_str("put --compact-index-delta -1").is_err());
}

#[test]
fn watch_flags_parse_with_etcd_defaults() {
    assert_eq!(
        parse_str("watch").unwrap().command,
        Command::Watch {
            streams: 10,
            watch_per_stream: 100,
            watched_key_total: 1,
            put_rate: 0,
            put_total: 1000,
            key_size: 32,
            key_space_size: 1,
            sequential_keys: false,
        }
    );
    let command = parse_str(
        "watch --streams 4 --watch-per-stream 5 --watched-key-total 3 --put-rate 7 --put-total 9 --key-size 8 --key-space-size 100 --sequential-keys",
    )
    .unwrap()
    .command;
    assert_eq!(
        command,
        Command::Watch {
            streams: 4,
            watch_per_stream: 5,
            watched_key_total: 3,
            put_rate: 7,
            put_total: 9,
            key_size: 8,
            key_space_size: 100,
            sequential_keys: true,
        }
    );
    assert_eq!(command.watchers(), 20);
    assert!(parse_str("watch --watch-per-stream 0").is_err());
    assert!(parse_str("watch --watched-key-total 0").is_err());
}

#[test]
fn watch_get_flags_parse_with_etcd_defaults() {
    assert_eq!(
        parse_str("watch-get").unwrap().command,
        Command::WatchGet {
            watchers: 10000,
            streams: 1,
            events: 8
        }
    );
    let command = parse_str("watch-get --watchers 30 --streams 3 --events 2")
        .unwrap()
        .command;
    assert_eq!(
        command,
        Command::WatchGet {
            watchers: 30,
            streams: 3,
            events: 2
        }
    );
    assert_eq!(command.expected_results(), 60);
    assert!(parse_str("watch-get --events 0").is_err());
}

#[test]
fn mvcc_flags_parse_with_etcd_defaults() {
    assert_eq!(
        parse_str("mvcc put").unwrap().command,
        Command::MvccPut {
            total: 100,
            key_size: 64,
            value_size: 64,
            txn: false,
            txn_ops: 1,
            engine: MvccEngineOptions {
                batch_interval: Duration::from_millis(100),
                batch_limit: 10000
            },
        }
    );
    let command =
        parse_str("mvcc put --total 5 --key-size 16 --value-size 32 --txn --txn-ops 4 --batch-interval 10 --batch-limit 500")
            .unwrap()
            .command;
    assert_eq!(
        command,
        Command::MvccPut {
            total: 5,
            key_size: 16,
            value_size: 32,
            txn: true,
            txn_ops: 4,
            engine: MvccEngineOptions {
                batch_interval: Duration::from_millis(10),
                batch_limit: 500
            },
        }
    );
    assert!(command.is_mvcc());
    assert_eq!(
        parse_str("mvcc range --total 7 --key-space-size 50 --limit 3")
            .unwrap()
            .command,
        Command::MvccRange {
            total: 7,
            key_size: 64,
            value_size: 64,
            key_space_size: 50,
            limit: 3,
            engine: MvccEngineOptions::default(),
        }
    );
    assert!(parse_str("mvcc").is_err());
    assert!(parse_str("mvcc get").is_err());
    assert!(parse_str("mvcc put --txn-ops 0").is_err());
}

#[test]
fn help_lists_every_command_and_says_what_keel_lacks() {
    let ArgsError(usage) = parse_str("--help").unwrap_err();
    for command in [
        "put:",
        "range KEY",
        "txn-put:",
        "txn-mixed:",
        "lease-keepalive:",
        "watch-latency:",
        "watch:",
        "watch-get:",
        "mvcc put:",
        "mvcc range:",
    ] {
        assert!(usage.contains(command), "{command} missing from usage");
    }
    assert!(
        usage.contains("keel\n                       has no auth yet"),
        "{usage}"
    );
    for tls_flag in [
        "--cacert FILE",
        "--cert FILE --key FILE",
        "--insecure-skip-tls-verify",
    ] {
        assert!(usage.contains(tls_flag), "{tls_flag} missing from usage");
    }
    assert!(usage.contains("https://IP:PORT TLS"), "{usage}");
}
