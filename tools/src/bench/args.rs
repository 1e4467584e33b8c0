//! keel-bench's flags: etcd `benchmark`'s names and defaults (where keel-bench
//! differs, `USAGE` says so). Tests: tools/tests/flags.rs.

use std::time::Duration;

use crate::command::{Command, MvccEngineOptions};
use crate::endpoint::Endpoint;
use crate::go_format::parse_duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    pub endpoints: Vec<Endpoint>,
    pub conns: usize,
    pub clients: usize,
    pub client_cores: usize,
    pub json: bool,
    /// Numbers in full precision (Go's `%g`) instead of four decimals.
    pub precise: bool,
    /// Print the per-second series after each summary.
    pub sample: bool,
    /// How long connecting (TCP, HTTP/2, first PING answered) may take;
    /// zero: no limit.
    pub dial_timeout: Duration,
    /// Find the leader among the endpoints (Status) and use only it.
    pub target_leader: bool,
    /// `--user name:password`: authenticate and send the token.
    pub user: Option<Credentials>,
    /// `--cacert/--cert/--key/--insecure-skip-tls-verify`, if any was
    /// given (then a bare `host:port` endpoint is TLS too).
    pub tls: Option<TlsFiles>,
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub name: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsFiles {
    pub ca_cert: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub insecure_skip_verify: bool,
}

/// keel-bench's default `--dial-timeout` (etcd's is 0, a dial that does not
/// wait; keel-bench waits for the connection, so it needs a bound).
pub const DIAL_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

pub const USAGE: &str = "\
usage: keel-bench [global flags] COMMAND [flags]

global flags (as etcd's benchmark):
  --endpoints URLS     comma-separated gRPC endpoints (default 127.0.0.1:2379):
                       http://IP:PORT plaintext, https://IP:PORT TLS, a bare IP:PORT
                       TLS when a TLS flag is given (host: an IP address or localhost)
  --conns N            total number of gRPC connections (default 1)
  --clients N          total number of gRPC clients (default 1)
  --target-leader      connect only to the leader (asks each endpoint's Status)
  --dial-timeout D     limit on connecting, incl. the server answering an HTTP/2
                       PING (Go duration; default 30s, 0 = none; etcd's default is 0)
  --precise            print numbers in full precision (Go %g) instead of 4 decimals
  --sample             print the per-second series (min/avg/max latency, count)
  --user NAME:PASSWORD authenticate (Auth.Authenticate) and send the token; keel
                       has no auth yet, so against keel this fails with its error
  --cacert FILE        TLS: verify servers with this CA bundle (PEM; default: the
                       system's, SSL_CERT_FILE or /etc/ssl/certs/ca-certificates.crt);
                       the certificate must name the endpoint's host (IPs as IP SANs)
  --cert FILE --key FILE
                       TLS client certificate and its private key (PEM), for servers
                       that require one (etcd --client-cert-auth); give both or neither
  --insecure-skip-tls-verify
                       TLS without verifying the server's certificate (testing only)
  --client-cores N     load-generator executors (keel-bench's own; default: one per CPU)
  --json               print the result as JSON

commands and their flags (defaults in parentheses):
  put:    --total N (10000) --key-size N (8) --val-size N (8) --sequential-keys --key-space-size N (1)
          --rate N (0: no limit) --compact-interval D (0: never) --compact-index-delta N (1000)
  range KEY [END]:  --total N (10000) --consistency l|s (l) --limit N (0)
  txn-put:    --total N (10000) --key-size N (8) --val-size N (8) --txn-ops N (1) --key-space-size N (1)
  txn-mixed:  --total N (10000) --key-size N (8) --val-size N (8) --rw-ratio F (1)
              --consistency l|s (l) --key-space-size N (1) --limit N (1000) --end-key KEY
  lease-keepalive:  --total N (10000)
  watch-latency:    --put-total N (1000; --total is etcd 3.4's name) --put-rate N (100)
              --key-size N (32) --val-size N (32) --streams N (10) --watchers-per-stream N (10) --prevkv
  watch:      --streams N (10) --watch-per-stream N (100) --watched-key-total N (1) --put-total N (1000)
              --put-rate N (0: no limit) --key-size N (32) --key-space-size N (1) --sequential-keys
              (event latency: put response to event arrival, matched by revision; etcd's
              own times only its client's event processing)
  watch-get:  --watchers N (10000) --streams N (1) --events N (8)
  mvcc put:   --total N (100) --key-size N (64) --value-size N (64) --txn --txn-ops N (1)
              --batch-interval MS (100) --batch-limit N (10000)   [keel's engine, in-process]
  mvcc range: --total N (100) --key-size N (64) --value-size N (64) --key-space-size N (10000)
              --limit N (0: one key per read) --batch-interval MS --batch-limit N   [keel-bench's own]
";

#[derive(Debug, PartialEq, Eq)]
pub struct ArgsError(pub String);

impl std::fmt::Display for ArgsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every flag as given, before it is resolved per command.
#[derive(Default)]
struct Given {
    total: Option<usize>,
    key_size: Option<usize>,
    val_size: Option<usize>,
    sequential_keys: bool,
    key_space_size: Option<usize>,
    serializable: bool,
    limit: Option<i64>,
    txn_ops: Option<usize>,
    txn: bool,
    rw_ratio: Option<f64>,
    end_key: Vec<u8>,
    put_total: Option<usize>,
    put_rate: Option<usize>,
    rate: usize,
    streams: Option<usize>,
    watchers_per_stream: Option<usize>,
    watch_per_stream: Option<usize>,
    watched_key_total: Option<usize>,
    watchers: Option<usize>,
    events: Option<usize>,
    prev_kv: bool,
    compact_interval: Option<Duration>,
    compact_index_delta: Option<i64>,
    batch_interval_ms: Option<u64>,
    batch_limit: Option<u64>,
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
    let mut precise = false;
    let mut sample = false;
    let mut dial_timeout = DIAL_TIMEOUT_DEFAULT;
    let mut target_leader = false;
    let mut user = None;
    let mut tls = TlsFiles::default();
    let mut given = Given::default();
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
        let duration = |text: String| parse_duration(&text).map_err(ArgsError);
        // A boolean flag takes an optional `=true`/`=false`, as Go's.
        let boolean = |inline: &Option<String>| match inline.as_deref() {
            None | Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(ArgsError(format!("invalid boolean {other:?}"))),
        };
        match flag.as_str() {
            "endpoints" => endpoints = value()?.split(',').map(str::to_string).collect(),
            "conns" => conns = number(value()?)?,
            "clients" => clients = number(value()?)?,
            "client-cores" => client_cores = number(value()?)?,
            "json" => json = boolean(&inline)?,
            "precise" => precise = boolean(&inline)?,
            "sample" => sample = boolean(&inline)?,
            "dial-timeout" => dial_timeout = duration(value()?)?,
            "target-leader" => target_leader = boolean(&inline)?,
            "user" => user = Some(credentials(&value()?)?),
            "cacert" => tls.ca_cert = Some(value()?),
            "cert" => tls.cert = Some(value()?),
            "key" => tls.key = Some(value()?),
            "insecure-skip-tls-verify" => tls.insecure_skip_verify = boolean(&inline)?,
            "total" => given.total = Some(number(value()?)?),
            "key-size" => given.key_size = Some(number(value()?)?),
            "val-size" | "value-size" => given.val_size = Some(number(value()?)?),
            "sequential-keys" => given.sequential_keys = boolean(&inline)?,
            "key-space-size" => given.key_space_size = Some(number(value()?)?),
            "limit" => given.limit = Some(number(value()?)? as i64),
            "txn-ops" => given.txn_ops = Some(number(value()?)?),
            "txn" => given.txn = boolean(&inline)?,
            "rw-ratio" => {
                let text = value()?;
                given.rw_ratio = Some(
                    text.parse::<f64>()
                        .ok()
                        .filter(|ratio| ratio.is_finite() && *ratio >= 0.0)
                        .ok_or_else(|| ArgsError(format!("invalid ratio {text:?}")))?,
                )
            }
            "end-key" => given.end_key = value()?.into_bytes(),
            "put-total" => given.put_total = Some(number(value()?)?),
            "put-rate" => given.put_rate = Some(number(value()?)?),
            "rate" => given.rate = number(value()?)?,
            "streams" => given.streams = Some(number(value()?)?),
            "watchers-per-stream" => given.watchers_per_stream = Some(number(value()?)?),
            "watch-per-stream" => given.watch_per_stream = Some(number(value()?)?),
            "watched-key-total" => given.watched_key_total = Some(number(value()?)?),
            "watchers" => given.watchers = Some(number(value()?)?),
            "events" => given.events = Some(number(value()?)?),
            "prevkv" => given.prev_kv = boolean(&inline)?,
            "compact-interval" => {
                let interval = duration(value()?)?;
                given.compact_interval = (!interval.is_zero()).then_some(interval);
            }
            "compact-index-delta" => {
                let text = value()?;
                given.compact_index_delta = Some(
                    text.parse::<i64>()
                        .ok()
                        .filter(|delta| *delta >= 0)
                        .ok_or_else(|| ArgsError(format!("invalid delta {text:?}")))?,
                )
            }
            "batch-interval" => given.batch_interval_ms = Some(number(value()?)? as u64),
            "batch-limit" => given.batch_limit = Some(number(value()?)? as u64),
            "consistency" => {
                given.serializable = match value()?.as_str() {
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
    if conns == 0 || clients == 0 || client_cores == 0 || given.key_space_size == Some(0) {
        return Err(ArgsError(
            "--conns, --clients, --client-cores and --key-space-size must be at least 1".into(),
        ));
    }
    let command = resolve(command.as_deref(), &positional, given)?;
    if tls.cert.is_some() != tls.key.is_some() {
        return Err(ArgsError(
            "--cert and --key go together: give both or neither".into(),
        ));
    }
    let tls = (tls != TlsFiles::default()).then_some(tls);
    let endpoints = endpoints
        .iter()
        .map(|endpoint| Endpoint::parse(endpoint, tls.is_some()).map_err(ArgsError))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Args {
        endpoints,
        conns,
        clients,
        client_cores,
        json,
        precise,
        sample,
        dial_timeout,
        target_leader,
        user,
        tls,
        command,
    })
}

/// `name:password` (etcd prompts when the password is left out; keel-bench
/// does not prompt).
fn credentials(text: &str) -> Result<Credentials, ArgsError> {
    match text.split_once(':') {
        Some((name, password)) if !name.is_empty() => Ok(Credentials {
            name: name.to_string(),
            password: password.to_string(),
        }),
        _ => Err(ArgsError(format!(
            "--user needs NAME:PASSWORD (keel-bench does not prompt), got {text:?}"
        ))),
    }
}

fn at_least_one(values: &[(&str, usize)]) -> Result<(), ArgsError> {
    match values.iter().find(|(_, value)| *value == 0) {
        Some((flag, _)) => Err(ArgsError(format!("--{flag} must be at least 1"))),
        None => Ok(()),
    }
}

/// The command named `name` with the flags that apply to it.
fn resolve(name: Option<&str>, positional: &[String], given: Given) -> Result<Command, ArgsError> {
    let requests = given.total.unwrap_or(10_000);
    let key_space_size = given.key_space_size.unwrap_or(1);
    let txn_ops = given.txn_ops.unwrap_or(1);
    let engine = MvccEngineOptions {
        batch_interval: given
            .batch_interval_ms
            .map(Duration::from_millis)
            .unwrap_or(MvccEngineOptions::default().batch_interval),
        batch_limit: given
            .batch_limit
            .unwrap_or(MvccEngineOptions::default().batch_limit),
    };
    let command = match name {
        Some("put") => Command::Put {
            total: requests,
            key_size: given.key_size.unwrap_or(8),
            val_size: given.val_size.unwrap_or(8),
            sequential_keys: given.sequential_keys,
            key_space_size,
            rate: given.rate,
            compact_interval: given.compact_interval,
            compact_index_delta: given.compact_index_delta.unwrap_or(1000),
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
                serializable: given.serializable,
                limit: given.limit.unwrap_or(0),
            }
        }
        Some("txn-put") => {
            at_least_one(&[("txn-ops", txn_ops)])?;
            Command::TxnPut {
                total: requests,
                key_size: given.key_size.unwrap_or(8),
                val_size: given.val_size.unwrap_or(8),
                txn_ops,
                key_space_size,
            }
        }
        Some("txn-mixed") => Command::TxnMixed {
            total: requests,
            key_size: given.key_size.unwrap_or(8),
            val_size: given.val_size.unwrap_or(8),
            rw_ratio: given.rw_ratio.unwrap_or(1.0),
            serializable: given.serializable,
            key_space_size,
            limit: given.limit.unwrap_or(1000),
            end_key: given.end_key,
        },
        Some("lease-keepalive") => Command::LeaseKeepalive { total: requests },
        Some("watch-latency") => {
            let command = Command::WatchLatency {
                put_total: given.put_total.or(given.total).unwrap_or(1000),
                put_rate: given.put_rate.unwrap_or(100),
                key_size: given.key_size.unwrap_or(32),
                val_size: given.val_size.unwrap_or(32),
                streams: given.streams.unwrap_or(10),
                watchers_per_stream: given.watchers_per_stream.unwrap_or(10),
                prev_kv: given.prev_kv,
            };
            if let Command::WatchLatency {
                put_rate,
                streams,
                watchers_per_stream,
                ..
            } = &command
            {
                at_least_one(&[
                    ("put-rate", *put_rate),
                    ("streams", *streams),
                    ("watchers-per-stream", *watchers_per_stream),
                ])?;
            }
            command
        }
        Some("watch") => {
            let streams = given.streams.unwrap_or(10);
            let watch_per_stream = given.watch_per_stream.unwrap_or(100);
            let watched_key_total = given.watched_key_total.unwrap_or(1);
            at_least_one(&[
                ("streams", streams),
                ("watch-per-stream", watch_per_stream),
                ("watched-key-total", watched_key_total),
            ])?;
            Command::Watch {
                streams,
                watch_per_stream,
                watched_key_total,
                put_rate: given.put_rate.unwrap_or(0),
                put_total: given.put_total.unwrap_or(1000),
                key_size: given.key_size.unwrap_or(32),
                key_space_size,
                sequential_keys: given.sequential_keys,
            }
        }
        Some("watch-get") => {
            let watchers = given.watchers.unwrap_or(10_000);
            let streams = given.streams.unwrap_or(1);
            let events = given.events.unwrap_or(8);
            at_least_one(&[
                ("watchers", watchers),
                ("streams", streams),
                ("events", events),
            ])?;
            Command::WatchGet {
                watchers,
                streams,
                events,
            }
        }
        Some("mvcc") => {
            let total = given.total.unwrap_or(100);
            let key_size = given.key_size.unwrap_or(64);
            let value_size = given.val_size.unwrap_or(64);
            match positional.first().map(String::as_str) {
                Some("put") => {
                    at_least_one(&[("txn-ops", txn_ops)])?;
                    Command::MvccPut {
                        total,
                        key_size,
                        value_size,
                        txn: given.txn,
                        txn_ops,
                        engine,
                    }
                }
                Some("range") => {
                    at_least_one(&[("key-size", key_size)])?;
                    Command::MvccRange {
                        total,
                        key_size,
                        value_size,
                        key_space_size: given.key_space_size.unwrap_or(10_000),
                        limit: given.limit.unwrap_or(0),
                        engine,
                    }
                }
                _ => return Err(ArgsError("mvcc needs put or range".into())),
            }
        }
        Some(other) => return Err(ArgsError(format!("unknown command {other:?}\n{USAGE}"))),
        None => return Err(ArgsError(USAGE.to_string())),
    };
    Ok(command)
}
