//! keel's flags, named as etcd names them (`--name value` or `--name=value`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

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
        Ok(Config {
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
