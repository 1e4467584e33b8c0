//! keel-bench's flags: etcd `benchmark`'s names and defaults.

use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    pub endpoints: Vec<SocketAddr>,
    pub conns: usize,
    pub clients: usize,
    pub client_cores: usize,
    pub json: bool,
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Put {
        total: usize,
        key_size: usize,
        val_size: usize,
        sequential_keys: bool,
        key_space_size: usize,
    },
    Range {
        key: Vec<u8>,
        end: Vec<u8>,
        total: usize,
        serializable: bool,
        limit: i64,
    },
    /// Txns of `txn_ops` puts each (etcd: `txn-put`).
    TxnPut {
        total: usize,
        key_size: usize,
        val_size: usize,
        txn_ops: usize,
        key_space_size: usize,
    },
    /// Txns of one op each: a range with probability rw/(1+rw), else a put
    /// (etcd: `txn-mixed`).
    TxnMixed {
        total: usize,
        key_size: usize,
        val_size: usize,
        rw_ratio: f64,
        serializable: bool,
        key_space_size: usize,
        limit: i64,
        end_key: Vec<u8>,
    },
    /// Each client grants a lease, then renews it `total` times overall
    /// (etcd: `lease-keepalive`).
    LeaseKeepalive { total: usize },
    /// `streams` watch streams with `watchers_per_stream` watchers on one
    /// key; one more connection puts the key `put_total` times at
    /// `put_rate`/s (etcd: `watch-latency`).
    WatchLatency {
        put_total: usize,
        put_rate: usize,
        key_size: usize,
        val_size: usize,
        streams: usize,
        watchers_per_stream: usize,
        prev_kv: bool,
    },
}

impl Command {
    /// Requests (put, range, txn, keep-alive) or puts (watch-latency).
    pub fn total(&self) -> usize {
        match self {
            Command::Put { total, .. }
            | Command::Range { total, .. }
            | Command::TxnPut { total, .. }
            | Command::TxnMixed { total, .. }
            | Command::LeaseKeepalive { total } => *total,
            Command::WatchLatency { put_total, .. } => *put_total,
        }
    }

    /// Results a complete run records: requests, or puts plus one event
    /// per put per watcher.
    pub fn expected_results(&self) -> usize {
        match self {
            Command::WatchLatency {
                put_total,
                streams,
                watchers_per_stream,
                ..
            } => put_total * (1 + streams * watchers_per_stream),
            other => other.total(),
        }
    }

    /// (JSON key, text title) of each report the command prints.
    pub fn report_names(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Command::TxnMixed { .. } => &[("read", "Read summary"), ("write", "Write summary")],
            Command::WatchLatency { .. } => {
                &[("put", "Put summary"), ("watch", "Watch events summary")]
            }
            _ => &[("", "Summary")],
        }
    }
}

pub const USAGE: &str = "\
usage: keel-bench [global flags] COMMAND [flags]

global flags (as etcd's benchmark):
  --endpoints URLS     comma-separated gRPC endpoints (default 127.0.0.1:2379)
  --conns N            total number of gRPC connections (default 1)
  --clients N          total number of gRPC clients (default 1)
  --client-cores N     load-generator executors (keel-bench's own; default: one per CPU)
  --json               print the result as JSON

commands and their flags (defaults in parentheses):
  put:    --total N (10000) --key-size N (8) --val-size N (8) --sequential-keys --key-space-size N (1)
  range KEY [END]:  --total N (10000) --consistency l|s (l) --limit N (0)
  txn-put:    --total N (10000) --key-size N (8) --val-size N (8) --txn-ops N (1) --key-space-size N (1)
  txn-mixed:  --total N (10000) --key-size N (8) --val-size N (8) --rw-ratio F (1)
              --consistency l|s (l) --key-space-size N (1) --limit N (1000) --end-key KEY
  lease-keepalive:  --total N (10000)
  watch-latency:    --put-total N (1000; --total is etcd 3.4's name) --put-rate N (100)
              --key-size N (32) --val-size N (32) --streams N (10) --watchers-per-stream N (10) --prevkv
";

#[derive(Debug, PartialEq, Eq)]
pub struct ArgsError(pub String);

impl std::fmt::Display for ArgsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, ArgsError> {
    let mut endpoints = vec!["127.0.0.1:2379".to_string()];
    let mut conns = 1;
    let mut clients = 1;
    // As etcd's benchmark (GOMAXPROCS = every CPU): one executor per CPU.
    let mut client_cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut json = false;
    let mut total: Option<usize> = None;
    let mut key_size: Option<usize> = None;
    let mut val_size: Option<usize> = None;
    let mut sequential_keys = false;
    let mut key_space_size = 1;
    let mut serializable = false;
    let mut limit: Option<i64> = None;
    let mut txn_ops = 1;
    let mut rw_ratio = 1.0f64;
    let mut end_key = Vec::new();
    let mut put_total: Option<usize> = None;
    let mut put_rate = 100;
    let mut streams = 10;
    let mut watchers_per_stream = 10;
    let mut prev_kv = false;
    let mut command: Option<String> = None;
    let mut positional: Vec<String> = Vec::new();

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--") else {
            if command.is_none() {
                command = Some(arg);
            } else {
                positional.push(arg);
            }
            continue;
        };
        let (flag, inline) = match flag.split_once('=') {
            Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
            None => (flag.to_string(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| ArgsError(format!("flag needs an argument: --{flag}")))
        };
        let number = |text: String| {
            text.parse::<usize>()
                .map_err(|_| ArgsError(format!("invalid number {text:?}")))
        };
        match flag.as_str() {
            "endpoints" => endpoints = value()?.split(',').map(str::to_string).collect(),
            "conns" => conns = number(value()?)?,
            "clients" => clients = number(value()?)?,
            "client-cores" => client_cores = number(value()?)?,
            "json" => json = true,
            "total" => total = Some(number(value()?)?),
            "key-size" => key_size = Some(number(value()?)?),
            "val-size" => val_size = Some(number(value()?)?),
            "sequential-keys" => sequential_keys = true,
            "key-space-size" => key_space_size = number(value()?)?,
            "limit" => limit = Some(number(value()?)? as i64),
            "txn-ops" => txn_ops = number(value()?)?,
            "rw-ratio" => {
                let text = value()?;
                rw_ratio = text
                    .parse::<f64>()
                    .ok()
                    .filter(|ratio| ratio.is_finite() && *ratio >= 0.0)
                    .ok_or_else(|| ArgsError(format!("invalid ratio {text:?}")))?
            }
            "end-key" => end_key = value()?.into_bytes(),
            "put-total" => put_total = Some(number(value()?)?),
            "put-rate" => put_rate = number(value()?)?,
            "streams" => streams = number(value()?)?,
            "watchers-per-stream" => watchers_per_stream = number(value()?)?,
            "prevkv" => prev_kv = true,
            "consistency" => {
                serializable = match value()?.as_str() {
                    "l" => false,
                    "s" => true,
                    other => {
                        return Err(ArgsError(format!(
                            "consistency must be l or s, got {other:?}"
                        )))
                    }
                }
            }
            "help" => return Err(ArgsError(USAGE.to_string())),
            _ => return Err(ArgsError(format!("unknown flag: --{flag}"))),
        }
    }
    if conns == 0 || clients == 0 || client_cores == 0 || key_space_size == 0 {
        return Err(ArgsError(
            "--conns, --clients, --client-cores and --key-space-size must be at least 1".into(),
        ));
    }
    let requests = total.unwrap_or(10_000);
    let command = match command.as_deref() {
        Some("put") => Command::Put {
            total: requests,
            key_size: key_size.unwrap_or(8),
            val_size: val_size.unwrap_or(8),
            sequential_keys,
            key_space_size,
        },
        Some("range") => {
            let key = positional
                .first()
                .ok_or_else(|| ArgsError("range needs a KEY".into()))?
                .as_bytes()
                .to_vec();
            let end = positional
                .get(1)
                .map(|end| end.as_bytes().to_vec())
                .unwrap_or_default();
            Command::Range {
                key,
                end,
                total: requests,
                serializable,
                limit: limit.unwrap_or(0),
            }
        }
        Some("txn-put") => {
            if txn_ops == 0 {
                return Err(ArgsError("--txn-ops must be at least 1".into()));
            }
            Command::TxnPut {
                total: requests,
                key_size: key_size.unwrap_or(8),
                val_size: val_size.unwrap_or(8),
                txn_ops,
                key_space_size,
            }
        }
        Some("txn-mixed") => Command::TxnMixed {
            total: requests,
            key_size: key_size.unwrap_or(8),
            val_size: val_size.unwrap_or(8),
            rw_ratio,
            serializable,
            key_space_size,
            limit: limit.unwrap_or(1000),
            end_key,
        },
        Some("lease-keepalive") => Command::LeaseKeepalive { total: requests },
        Some("watch-latency") => {
            if put_rate == 0 || streams == 0 || watchers_per_stream == 0 {
                return Err(ArgsError(
                    "--put-rate, --streams and --watchers-per-stream must be at least 1".into(),
                ));
            }
            Command::WatchLatency {
                put_total: put_total.or(total).unwrap_or(1000),
                put_rate,
                key_size: key_size.unwrap_or(32),
                val_size: val_size.unwrap_or(32),
                streams,
                watchers_per_stream,
                prev_kv,
            }
        }
        Some(other) => return Err(ArgsError(format!("unknown command {other:?}\n{USAGE}"))),
        None => return Err(ArgsError(USAGE.to_string())),
    };
    let endpoints = endpoints
        .iter()
        .map(|endpoint| {
            let bare = endpoint.trim_start_matches("http://").trim_end_matches('/');
            let bare = bare.replace("localhost", "127.0.0.1");
            bare.parse::<SocketAddr>()
                .map_err(|_| ArgsError(format!("bad endpoint {endpoint:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Args {
        endpoints,
        conns,
        clients,
        client_cores,
        json,
        command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
                key_space_size: 100000
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
}
