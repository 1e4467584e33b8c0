//! keel's flags, named as etcd names them (`--name value` or `--name=value`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use keel_raft_shim::AutoCompaction;

#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_client_urls: Vec<String>,
    pub advertise_client_urls: Vec<String>,
    /// Stored, unused until the peer transport listens.
    #[allow(dead_code)]
    pub listen_peer_urls: Vec<String>,
    pub initial_advertise_peer_urls: Vec<String>,
    pub initial_cluster_token: String,
    pub shard_cores: usize,
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    /// `--auto-compaction-mode` + `--auto-compaction-retention`; `None`
    /// when the retention is 0 (etcd's default: off).
    pub auto_compaction: Option<AutoCompaction>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// etcd's words for an unknown flag.
    UnknownFlag(String),
    MissingValue(String),
    BadValue {
        flag: String,
        value: String,
        reason: String,
    },
    HelpRequested,
    VersionRequested,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::UnknownFlag(flag) => write!(f, "flag provided but not defined: -{flag}"),
            ConfigError::MissingValue(flag) => write!(f, "flag needs an argument: -{flag}"),
            ConfigError::BadValue {
                flag,
                value,
                reason,
            } => {
                write!(f, "invalid value {value:?} for flag -{flag}: {reason}")
            }
            ConfigError::HelpRequested => write!(f, "help requested"),
            ConfigError::VersionRequested => write!(f, "version requested"),
        }
    }
}

pub const USAGE: &str = "\
usage: keel [flags]

  --name NAME                      human-readable name for this member (default \"default\")
  --data-dir DIR                   path to the data directory (default \"${name}.keel\")
  --listen-client-urls URLS        comma-separated URLs to listen on for client traffic
                                   (default \"http://127.0.0.1:2379\")
  --advertise-client-urls URLS     comma-separated client URLs to advertise (default: the listen URLs)
  --listen-peer-urls URLS          comma-separated URLs to listen on for peer traffic
                                   (default \"http://localhost:2380\"; stored, not served yet)
  --initial-advertise-peer-urls URLS
                                   this member's peer URLs to advertise (default \"http://localhost:2380\")
  --initial-cluster-token TOKEN    initial cluster token (default \"etcd-cluster\")
  --max-request-bytes N            maximum client request size in bytes (default 1572864)
  --max-txn-ops N                  maximum operations per txn request (default 128)
  --auto-compaction-mode MODE      interpret auto-compaction-retention as 'periodic' (a duration)
                                   or 'revision' (a revision count) (default \"periodic\")
  --auto-compaction-retention R    auto compaction retention: periodic: a duration like \"5m\" or
                                   a bare number of hours; revision: revisions to keep
                                   (default \"0\", off)
  --shard-cores N                  shard cores serving clients (default: CPUs - 1, at least 1)
  --version                        print the version and exit
";

/// etcd's default for both peer URL flags.
pub const DEFAULT_PEER_URL: &str = "http://localhost:2380";

impl Config {
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Config, ConfigError> {
        let mut name = "default".to_string();
        let mut data_dir: Option<PathBuf> = None;
        let mut listen = vec!["http://127.0.0.1:2379".to_string()];
        let mut advertise: Option<Vec<String>> = None;
        let mut listen_peer = vec![DEFAULT_PEER_URL.to_string()];
        let mut advertise_peer = vec![DEFAULT_PEER_URL.to_string()];
        let mut token = "etcd-cluster".to_string();
        let mut max_txn_ops = keel_net::MAX_TXN_OPS_DEFAULT;
        let mut shard_cores = default_shard_cores();
        let mut max_request_bytes = keel_net::MAX_REQUEST_BYTES_DEFAULT;
        let mut compaction_mode = COMPACTION_MODE_PERIODIC.to_string();
        let mut compaction_retention = "0".to_string();

        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                return Err(ConfigError::UnknownFlag(arg));
            };
            let (flag, inline) = match flag.split_once('=') {
                Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
                None => (flag.to_string(), None),
            };
            match flag.as_str() {
                "h" | "help" => return Err(ConfigError::HelpRequested),
                "version" => return Err(ConfigError::VersionRequested),
                _ => {}
            }
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| ConfigError::MissingValue(flag.clone()))
            };
            match flag.as_str() {
                "name" => name = value()?,
                "data-dir" => data_dir = Some(PathBuf::from(value()?)),
                "listen-client-urls" => listen = split_urls(&value()?),
                "advertise-client-urls" => advertise = Some(split_urls(&value()?)),
                "listen-peer-urls" => listen_peer = split_urls(&value()?),
                "initial-advertise-peer-urls" => advertise_peer = split_urls(&value()?),
                "initial-cluster-token" => token = value()?,
                "max-txn-ops" => max_txn_ops = parse_number(&flag, &value()?, 1, 1 << 20)?,
                "shard-cores" => shard_cores = parse_number(&flag, &value()?, 1, 256)?,
                "auto-compaction-mode" => {
                    compaction_mode = value()?;
                    if compaction_mode != COMPACTION_MODE_PERIODIC
                        && compaction_mode != COMPACTION_MODE_REVISION
                    {
                        return Err(ConfigError::BadValue {
                            flag,
                            value: compaction_mode,
                            reason: "invalid value".into(),
                        });
                    }
                }
                "auto-compaction-retention" => compaction_retention = value()?,
                "max-request-bytes" => {
                    max_request_bytes = parse_number(&flag, &value()?, 1, 1 << 30)?
                }
                _ => return Err(ConfigError::UnknownFlag(flag)),
            }
        }
        for url in &listen {
            client_url_addr(url).map_err(|reason| ConfigError::BadValue {
                flag: "listen-client-urls".into(),
                value: url.clone(),
                reason,
            })?;
        }
        let auto_compaction =
            parse_compaction(&compaction_mode, &compaction_retention).map_err(|reason| {
                ConfigError::BadValue {
                    flag: "auto-compaction-retention".into(),
                    value: compaction_retention.clone(),
                    reason,
                }
            })?;
        Ok(Config {
            auto_compaction,
            data_dir: data_dir.unwrap_or_else(|| PathBuf::from(format!("{name}.keel"))),
            advertise_client_urls: advertise.unwrap_or_else(|| listen.clone()),
            listen_client_urls: listen,
            listen_peer_urls: listen_peer,
            initial_advertise_peer_urls: advertise_peer,
            name,
            initial_cluster_token: token,
            shard_cores,
            max_request_bytes,
            max_txn_ops,
        })
    }

    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.listen_client_urls
            .iter()
            .map(|url| client_url_addr(url).expect("validated"))
            .collect()
    }

    /// A member id that is stable for the same name, token and client URLs
    /// (etcd hashes peer URLs and the token; peers arrive with clustering).
    pub fn member_id(&self) -> u64 {
        let mut hash = Fnv64::new();
        hash.write(self.initial_cluster_token.as_bytes());
        hash.write(self.name.as_bytes());
        for url in &self.advertise_client_urls {
            hash.write(url.as_bytes());
        }
        hash.finish().max(1)
    }

    pub fn cluster_id(&self) -> u64 {
        let mut hash = Fnv64::new();
        hash.write(&self.member_id().to_le_bytes());
        hash.write(self.initial_cluster_token.as_bytes());
        hash.finish().max(1)
    }
}

/// `--auto-compaction-mode` values (etcd's `CompactorModePeriodic`/`Revision`).
pub const COMPACTION_MODE_PERIODIC: &str = "periodic";
pub const COMPACTION_MODE_REVISION: &str = "revision";

/// etcd's `parseCompactionRetention`: a bare non-negative integer is hours
/// (periodic) or revisions (revision); anything else is a Go duration.
/// A zero retention turns auto-compaction off.
fn parse_compaction(mode: &str, retention: &str) -> Result<Option<AutoCompaction>, String> {
    let compaction = match retention.parse::<u64>() {
        Ok(number) if mode == COMPACTION_MODE_REVISION => {
            let revisions = i64::try_from(number).map_err(|_| "retention too large".to_string())?;
            AutoCompaction::Revision(revisions)
        }
        Ok(hours) => AutoCompaction::Periodic(Duration::from_secs(hours.saturating_mul(3600))),
        Err(_) => {
            let duration = parse_go_duration(retention)
                .map_err(|error| format!("error parsing CompactionRetention: {error}"))?;
            if mode == COMPACTION_MODE_REVISION {
                // etcd turns the duration's nanoseconds into a revision count.
                AutoCompaction::Revision(i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX))
            } else {
                AutoCompaction::Periodic(duration)
            }
        }
    };
    let off = match compaction {
        AutoCompaction::Revision(revisions) => revisions == 0,
        AutoCompaction::Periodic(period) => period.is_zero(),
    };
    Ok((!off).then_some(compaction))
}

/// Go's `time.ParseDuration` for non-negative durations ("1h30m", "2.5s",
/// "300ms"); the error text is Go's.
fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {text:?}")),
            unit => return Err(format!("time: unknown unit {unit:?} in duration {text:?}")),
        };
        rest = &rest[unit_len..];
        total_nanos += number * nanos_per_unit;
    }
    if total_nanos > u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total_nanos as u64))
}

fn default_shard_cores() -> usize {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    cpus.saturating_sub(1).max(1)
}

fn split_urls(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_number(flag: &str, value: &str, min: usize, max: usize) -> Result<usize, ConfigError> {
    let bad = |reason: String| ConfigError::BadValue {
        flag: flag.to_string(),
        value: value.to_string(),
        reason,
    };
    let number: usize = value.parse().map_err(|_| bad("not a number".into()))?;
    if !(min..=max).contains(&number) {
        return Err(bad(format!("must be between {min} and {max}")));
    }
    Ok(number)
}

/// `http://host:port` to a socket address; `localhost` means 127.0.0.1.
pub fn client_url_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = if let Some(rest) = url.strip_prefix("http://") {
        rest
    } else if url.starts_with("https://") {
        return Err("TLS client URLs are not supported yet".into());
    } else {
        return Err("URL scheme must be http".into());
    };
    let host_port = rest.trim_end_matches('/');
    let (host, port) = host_port.rsplit_once(':').ok_or("URL must have a port")?;
    let port: u16 = port.parse().map_err(|_| "bad port".to_string())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host == "localhost" {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|error| error.to_string())?
        .next()
        .ok_or_else(|| "host has no address".to_string())
}

struct Fnv64(u64);

impl Fnv64 {
    fn new() -> Fnv64 {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 ^= 0xff; // field separator
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        Config::from_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_are_etcds() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.name, "default");
        assert_eq!(config.data_dir, PathBuf::from("default.keel"));
        assert_eq!(
            config.listen_addrs(),
            vec!["127.0.0.1:2379".parse().unwrap()]
        );
        assert_eq!(config.max_request_bytes, 1536 * 1024);
        assert_eq!(config.max_txn_ops, 128);
        assert_eq!(config.initial_advertise_peer_urls, vec![DEFAULT_PEER_URL]);
        assert_eq!(config.listen_peer_urls, vec![DEFAULT_PEER_URL]);
    }

    #[test]
    fn both_flag_forms_parse() {
        let config = parse(&[
            "--name=n1",
            "--data-dir",
            "/tmp/x",
            "--listen-client-urls",
            "http://localhost:1234",
            "--max-txn-ops=7",
            "--initial-advertise-peer-urls",
            "http://10.0.0.1:2380,http://10.0.0.2:2380",
        ])
        .unwrap();
        assert_eq!(config.name, "n1");
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(
            config.listen_addrs(),
            vec!["127.0.0.1:1234".parse().unwrap()]
        );
        assert_eq!(
            config.advertise_client_urls,
            vec!["http://localhost:1234".to_string()]
        );
        assert_eq!(config.max_txn_ops, 7);
        assert_eq!(
            config.initial_advertise_peer_urls,
            vec!["http://10.0.0.1:2380", "http://10.0.0.2:2380"]
        );
    }

    #[test]
    fn auto_compaction_flags_follow_etcd() {
        assert_eq!(parse(&[]).unwrap().auto_compaction, None);
        let periodic = |retention: &str| {
            parse(&["--auto-compaction-retention", retention])
                .unwrap()
                .auto_compaction
        };
        let hour = Duration::from_secs(3600);
        assert_eq!(periodic("1"), Some(AutoCompaction::Periodic(hour)));
        assert_eq!(periodic("1h"), Some(AutoCompaction::Periodic(hour)));
        assert_eq!(periodic("30m"), Some(AutoCompaction::Periodic(hour / 2)));
        assert_eq!(
            periodic("1h30m"),
            Some(AutoCompaction::Periodic(hour * 3 / 2))
        );
        assert_eq!(
            periodic("2.5s"),
            Some(AutoCompaction::Periodic(Duration::from_millis(2500)))
        );
        assert_eq!(periodic("0"), None);
        let config = parse(&[
            "--auto-compaction-mode=revision",
            "--auto-compaction-retention=1000",
        ])
        .unwrap();
        assert_eq!(config.auto_compaction, Some(AutoCompaction::Revision(1000)));
        assert_eq!(
            parse(&["--auto-compaction-mode", "hourly"])
                .unwrap_err()
                .to_string(),
            "invalid value \"hourly\" for flag -auto-compaction-mode: invalid value"
        );
        assert_eq!(
            parse(&["--auto-compaction-retention", "abc"])
                .unwrap_err()
                .to_string(),
            "invalid value \"abc\" for flag -auto-compaction-retention: \
             error parsing CompactionRetention: time: invalid duration \"abc\""
        );
        assert_eq!(
            parse(&["--auto-compaction-retention", "5x"])
                .unwrap_err()
                .to_string(),
            "invalid value \"5x\" for flag -auto-compaction-retention: \
             error parsing CompactionRetention: time: unknown unit \"x\" in duration \"5x\""
        );
    }

    #[test]
    fn bad_flags_are_refused() {
        assert_eq!(
            parse(&["--nope"]).unwrap_err(),
            ConfigError::UnknownFlag("nope".into())
        );
        assert_eq!(
            parse(&["--name"]).unwrap_err(),
            ConfigError::MissingValue("name".into())
        );
        assert!(matches!(
            parse(&["--shard-cores", "0"]),
            Err(ConfigError::BadValue { .. })
        ));
        assert!(matches!(
            parse(&["--listen-client-urls", "ftp://x:1"]),
            Err(ConfigError::BadValue { .. })
        ));
    }
}
