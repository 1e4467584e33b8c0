//! Parsing flag values as etcd does: compaction retention, Go durations,
//! client URLs and bounded numbers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use keel_raft_shim::AutoCompaction;

use super::ConfigError;

/// `--auto-compaction-mode` values (etcd's `CompactorModePeriodic`/`Revision`).
pub const COMPACTION_MODE_PERIODIC: &str = "periodic";
pub const COMPACTION_MODE_REVISION: &str = "revision";

/// etcd's `parseCompactionRetention`: a bare non-negative integer is hours
/// (periodic) or revisions (revision); anything else is a Go duration.
/// A zero retention turns auto-compaction off.
pub(super) fn parse_compaction(
    mode: &str,
    retention: &str,
) -> Result<Option<AutoCompaction>, String> {
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
pub(super) fn parse_go_duration(text: &str) -> Result<Duration, String> {
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

pub(super) fn split_urls(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_string)
        .collect()
}

pub(super) fn parse_number(
    flag: &str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<usize, ConfigError> {
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
