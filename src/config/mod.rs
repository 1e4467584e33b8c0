//! keel's flags, named as etcd names them (`--name value` or `--name=value`).
//! Where settings come from is `sources.rs`; how each value parses,
//! `values.rs`.

mod sources;
mod values;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use keel_raft_shim::AutoCompaction;

use sources::{env_settings, parse_command_line, read_config_file};
pub use values::{client_url_addr, COMPACTION_MODE_PERIODIC, COMPACTION_MODE_REVISION};
use values::{parse_compaction, parse_go_duration, parse_number, split_urls};

#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_client_urls: Vec<String>,
    /// `--listen-metrics-urls`: `/metrics` and `/health` only.
    pub listen_metrics_urls: Vec<String>,
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
    /// etcd's `--experimental-watch-progress-notify-interval`.
    pub watch_progress_notify_interval: Duration,
    /// etcd's `--quota-backend-bytes` (0: 2 GiB; negative: no quota).
    pub quota_backend_bytes: Option<u64>,
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
    /// `--config-file` could not be read or is not etcd's YAML.
    ConfigFile {
        path: String,
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
            ConfigError::ConfigFile { path, reason } => {
                write!(f, "cannot load config file {path}: {reason}")
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
  --listen-metrics-urls URLS       extra URLs serving only /metrics and /health (default none)
  --quota-backend-bytes N          raise the NOSPACE alarm when the backend would pass N bytes
                                   (default 0 = 2 GiB; negative: no quota)
  --experimental-watch-progress-notify-interval D
                                   interval of periodic watch progress notifications (default 10m)
  --shard-cores N                  shard cores serving clients (default: CPUs - 1, at least 1,
                                   at most 64)
  --config-file PATH               etcd's YAML configuration file; when given, other flags and
                                   ETCD_* environment variables are ignored (as etcd)
  --version                        print the version and exit

Every flag can also be set as ETCD_<FLAG> in the environment (e.g. ETCD_DATA_DIR);
a flag on the command line wins over its variable.
";

/// Every setting, by its etcd flag name (also its config-file key and, upper-cased
/// with `_`, its `ETCD_*` variable).
pub const SETTINGS: [&str; 16] = [
    "name",
    "data-dir",
    "listen-client-urls",
    "advertise-client-urls",
    "listen-peer-urls",
    "initial-advertise-peer-urls",
    "initial-cluster-token",
    "max-request-bytes",
    "max-txn-ops",
    "auto-compaction-mode",
    "auto-compaction-retention",
    "shard-cores",
    "config-file",
    "experimental-watch-progress-notify-interval",
    "quota-backend-bytes",
    "listen-metrics-urls",
];

/// One setting from the command line, the environment or the config file.
type Setting = (String, String);

/// etcd's default for both peer URL flags.
pub const DEFAULT_PEER_URL: &str = "http://localhost:2380";

impl Config {
    /// From the command line alone (tests; no environment).
    #[cfg(test)]
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Config, ConfigError> {
        Config::from_sources(args, std::iter::empty())
    }

    /// As etcd: `--config-file` replaces the other flags and the
    /// environment; otherwise `ETCD_*` variables set what the command line
    /// does not.
    pub fn from_sources(
        args: impl IntoIterator<Item = String>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let command_line = parse_command_line(args)?;
        if let Some((_, path)) = command_line.iter().find(|(flag, _)| flag == "config-file") {
            return Config::from_settings(read_config_file(path)?);
        }
        let mut settings = env_settings(env, &command_line);
        settings.extend(command_line);
        Config::from_settings(settings)
    }

    fn from_settings(settings: Vec<Setting>) -> Result<Config, ConfigError> {
        let mut name = "default".to_string();
        let mut data_dir: Option<PathBuf> = None;
        let mut listen = vec!["http://127.0.0.1:2379".to_string()];
        let mut listen_metrics: Vec<String> = Vec::new();
        let mut advertise: Option<Vec<String>> = None;
        let mut listen_peer = vec![DEFAULT_PEER_URL.to_string()];
        let mut advertise_peer = vec![DEFAULT_PEER_URL.to_string()];
        let mut token = "etcd-cluster".to_string();
        let mut max_txn_ops = keel_net::MAX_TXN_OPS_DEFAULT;
        let mut shard_cores = default_shard_cores();
        let mut max_request_bytes = keel_net::MAX_REQUEST_BYTES_DEFAULT;
        let mut compaction_mode = COMPACTION_MODE_PERIODIC.to_string();
        let mut compaction_retention = "0".to_string();
        let mut quota_backend_bytes = Some(keel_net::QUOTA_BACKEND_BYTES_DEFAULT);
        let mut watch_progress_notify_interval = keel_net::watch::PROGRESS_NOTIFY_INTERVAL_DEFAULT;

        for (flag, setting) in settings {
            let value = || -> Result<String, ConfigError> { Ok(setting.clone()) };
            match flag.as_str() {
                "name" => name = value()?,
                "data-dir" => data_dir = Some(PathBuf::from(value()?)),
                "listen-client-urls" => listen = split_urls(&value()?),
                "listen-metrics-urls" => listen_metrics = split_urls(&value()?),
                "advertise-client-urls" => advertise = Some(split_urls(&value()?)),
                "listen-peer-urls" => listen_peer = split_urls(&value()?),
                "initial-advertise-peer-urls" => advertise_peer = split_urls(&value()?),
                "initial-cluster-token" => token = value()?,
                "max-txn-ops" => max_txn_ops = parse_number(&flag, &value()?, 1, 1 << 20)?,
                "shard-cores" => shard_cores = parse_number(&flag, &value()?, 1, 64)?,
                "quota-backend-bytes" => {
                    let text = value()?;
                    let bytes: i64 = text.trim().parse().map_err(|_| ConfigError::BadValue {
                        flag: flag.clone(),
                        value: text.clone(),
                        reason: "parse error".into(),
                    })?;
                    quota_backend_bytes = match bytes {
                        0 => Some(keel_net::QUOTA_BACKEND_BYTES_DEFAULT),
                        bytes if bytes < 0 => None,
                        bytes => Some(bytes as u64),
                    };
                }
                "experimental-watch-progress-notify-interval" => {
                    let text = value()?;
                    watch_progress_notify_interval = parse_go_duration(&text)
                        .ok()
                        .filter(|interval| !interval.is_zero())
                        .ok_or_else(|| ConfigError::BadValue {
                            flag: flag.clone(),
                            value: text.clone(),
                            reason: "invalid duration".into(),
                        })?;
                }
                "config-file" => {} // handled by from_sources
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
        for url in &listen_metrics {
            client_url_addr(url).map_err(|reason| ConfigError::BadValue {
                flag: "listen-metrics-urls".into(),
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
            listen_metrics_urls: listen_metrics,
            listen_peer_urls: listen_peer,
            initial_advertise_peer_urls: advertise_peer,
            name,
            initial_cluster_token: token,
            shard_cores,
            max_request_bytes,
            max_txn_ops,
            watch_progress_notify_interval,
            quota_backend_bytes,
        })
    }

    pub fn metrics_addrs(&self) -> Vec<SocketAddr> {
        self.listen_metrics_urls
            .iter()
            .map(|url| client_url_addr(url).expect("validated"))
            .collect()
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

    fn from(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_sources(
            args.iter().map(|s| s.to_string()),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn environment_fills_what_the_command_line_leaves() {
        let env = [
            ("ETCD_NAME", "from-env"),
            ("ETCD_DATA_DIR", "/tmp/env-dir"),
            ("ETCD_MAX_TXN_OPS", "7"),
            ("ETCDCTL_API", "3"),
            ("ETCD_UNKNOWN_THING", "x"),
        ];
        let config = from(&["--name", "from-flag"], &env).unwrap();
        assert_eq!(config.name, "from-flag", "the command line wins");
        assert_eq!(config.data_dir, PathBuf::from("/tmp/env-dir"));
        assert_eq!(config.max_txn_ops, 7);
        let bad = from(&[], &[("ETCD_MAX_TXN_OPS", "lots")]).unwrap_err();
        assert!(matches!(bad, ConfigError::BadValue { .. }), "{bad:?}");
    }

    #[test]
    fn config_file_replaces_flags_and_environment() {
        let dir = std::env::temp_dir().join(format!("keel-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keel.conf.yml");
        std::fs::write(
            &path,
            "# etcd.conf.yml keys\nname: 'from-file'\ndata-dir: /tmp/file-dir\n\
             listen-client-urls: http://127.0.0.1:23999\nmax-request-bytes: 4096\n\
             max-txn-ops: 9\nauto-compaction-mode: revision\nauto-compaction-retention: \"100\"\n\
             snapshot-count: 10000\nlisten-peer-urls:\n",
        )
        .unwrap();
        let path = path.to_str().unwrap();
        let config = from(
            &["--config-file", path, "--name", "ignored"],
            &[("ETCD_NAME", "ignored")],
        )
        .unwrap();
        assert_eq!(config.name, "from-file");
        assert_eq!(config.data_dir, PathBuf::from("/tmp/file-dir"));
        assert_eq!(
            config.listen_addrs(),
            vec!["127.0.0.1:23999".parse().unwrap()]
        );
        assert_eq!((config.max_request_bytes, config.max_txn_ops), (4096, 9));
        assert!(config.auto_compaction.is_some());
        assert_eq!(
            config.listen_peer_urls,
            vec![DEFAULT_PEER_URL.to_string()],
            "a null value keeps the default"
        );

        std::fs::write(dir.join("list.yml"), "name: [a, b]\n").unwrap();
        let list = from(
            &["--config-file", dir.join("list.yml").to_str().unwrap()],
            &[],
        )
        .unwrap_err();
        assert!(matches!(list, ConfigError::ConfigFile { .. }), "{list:?}");
        let missing = from(&["--config-file", "/nonexistent/keel.yml"], &[]).unwrap_err();
        assert!(missing
            .to_string()
            .starts_with("cannot load config file /nonexistent/keel.yml"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
