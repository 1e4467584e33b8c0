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
}

impl Command {
    pub fn total(&self) -> usize {
        match self {
            Command::Put { total, .. } | Command::Range { total, .. } => *total,
        }
    }
}

pub const USAGE: &str = "\
usage: keel-bench [global flags] put|range [flags]

global flags (as etcd's benchmark):
  --endpoints URLS     comma-separated gRPC endpoints (default 127.0.0.1:2379)
  --conns N            total number of gRPC connections (default 1)
  --clients N          total number of gRPC clients (default 1)
  --client-cores N     load-generator executors (keel-bench's own; default: one per CPU)
  --json               print the result as JSON

put:    --total N (10000) --key-size N (8) --val-size N (8) --sequential-keys --key-space-size N (1)
range KEY [END]:  --total N (10000) --consistency l|s (l) --limit N (0)
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
    let mut total = 10_000;
    let mut key_size = 8;
    let mut val_size = 8;
    let mut sequential_keys = false;
    let mut key_space_size = 1;
    let mut serializable = false;
    let mut limit = 0i64;
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
            "total" => total = number(value()?)?,
            "key-size" => key_size = number(value()?)?,
            "val-size" => val_size = number(value()?)?,
            "sequential-keys" => sequential_keys = true,
            "key-space-size" => key_space_size = number(value()?)?,
            "limit" => limit = number(value()?)? as i64,
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
    let command = match command.as_deref() {
        Some("put") => Command::Put {
            total,
            key_size,
            val_size,
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
                total,
                serializable,
                limit,
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
    fn bad_flags_are_refused() {
        assert!(parse_str("--nope put").is_err());
        assert!(parse_str("put --total").is_err());
        assert!(parse_str("range").is_err());
        assert!(parse_str("--conns 0 put").is_err());
        assert!(parse_str("range k --consistency x").is_err());
    }
}
