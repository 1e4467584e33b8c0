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

/// The command line as (flag, value) pairs, `--flag value` or `--flag=value`.
fn parse_command_line(args: impl IntoIterator<Item = String>) -> Result<Vec<Setting>, ConfigError> {
    let mut settings = Vec::new();
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
        if !SETTINGS.contains(&flag.as_str()) {
            return Err(ConfigError::UnknownFlag(flag));
        }
        let value = inline
            .or_else(|| args.next())
            .ok_or_else(|| ConfigError::MissingValue(flag.clone()))?;
        settings.push((flag, value));
    }
    Ok(settings)
}

/// `ETCD_<FLAG>` variables for the settings the command line leaves unset.
/// Unknown `ETCD_*` variables are ignored, as etcd does (it only warns).
fn env_settings(
    env: impl IntoIterator<Item = (String, String)>,
    command_line: &[Setting],
) -> Vec<Setting> {
    let mut settings: Vec<Setting> = env
        .into_iter()
        .filter_map(|(key, value)| {
            let flag = key
                .strip_prefix("ETCD_")?
                .to_ascii_lowercase()
                .replace('_', "-");
            let known = SETTINGS.contains(&flag.as_str()) && flag != "config-file";
            let on_command_line = command_line.iter().any(|(set, _)| *set == flag);
            (known && !on_command_line).then_some((flag, value))
        })
        .collect();
    settings.sort(); // the environment's order is arbitrary; make it stable
    settings
}

/// etcd's YAML configuration file: top-level keys named as the flags.
/// Keys keel does not know are ignored, as etcd's loader ignores them.
fn read_config_file(path: &str) -> Result<Vec<Setting>, ConfigError> {
    use yaml_rust2::{Yaml, YamlLoader};
    let failed = |reason: String| ConfigError::ConfigFile {
        path: path.to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|error| failed(error.to_string()))?;
    let documents = YamlLoader::load_from_str(&text).map_err(|error| failed(error.to_string()))?;
    let Some(document) = documents.into_iter().next() else {
        return Ok(Vec::new()); // an empty file: every default
    };
    let Yaml::Hash(entries) = document else {
        return Err(failed("the top level is not a mapping of settings".into()));
    };
    let mut settings = Vec::new();
    for (key, value) in entries {
        let Some(key) = key.as_str().map(str::to_string) else {
            return Err(failed(format!("a key is not a string: {key:?}")));
        };
        if !SETTINGS.contains(&key.as_str()) || key == "config-file" {
            continue;
        }
        let value = match value {
            Yaml::String(text) | Yaml::Real(text) => text,
            Yaml::Integer(number) => number.to_string(),
            Yaml::Boolean(flag) => flag.to_string(),
            Yaml::Null => continue, // `key:` with no value keeps the default
            other => return Err(failed(format!("{key}: not a single value: {other:?}"))),
        };
        settings.push((key, value));
    }
    Ok(settings)
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
