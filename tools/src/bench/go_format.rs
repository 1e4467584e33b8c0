//! Go's text forms that etcd's `benchmark` prints or takes, so keel-bench
//! reads and writes the same: `time.ParseDuration` (`--dial-timeout 5s`,
//! `--compact-interval 1m30s`), `time.Duration.String` (the `--sample`
//! series) and `fmt`'s `%g` of a float64 (`--precise`).

use std::time::Duration;

/// Go's `time.ParseDuration`: a sequence of decimal numbers, each with a
/// unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), e.g. `300ms`, `1.5h`,
/// `2h45m`; `0` alone is allowed. Negative durations are refused (no flag
/// here means anything by them).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?}");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() || rest.starts_with('-') {
        return Err(invalid());
    }
    let mut total_ns = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("missing unit in duration {text:?}"))?;
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_ns = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            unit => return Err(format!("unknown unit {unit:?} in duration {text:?}")),
        };
        rest = &rest[unit_len..];
        total_ns += number * unit_ns;
    }
    if !total_ns.is_finite() || total_ns > u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total_ns.round() as u64))
}

/// Go's `time.Duration.String`: `0s`, `750ns`, `1.5µs`, `12.034ms`,
/// `2.5s`, `1m30s`, `1h0m0.5s`.
pub fn format_duration(duration: Duration) -> String {
    let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    const MICROSECOND_NS: u64 = 1_000;
    const MILLISECOND_NS: u64 = 1_000_000;
    const SECOND_NS: u64 = 1_000_000_000;
    match ns {
        0 => "0s".to_string(),
        1..MICROSECOND_NS => format!("{ns}ns"),
        MICROSECOND_NS..MILLISECOND_NS => format!("{}µs", decimal(ns, 3)),
        MILLISECOND_NS..SECOND_NS => format!("{}ms", decimal(ns, 6)),
        _ => {
            let hours = ns / (3600 * SECOND_NS);
            let minutes = ns / (60 * SECOND_NS) % 60;
            let seconds = decimal(ns % (60 * SECOND_NS), 9);
            if hours > 0 {
                format!("{hours}h{minutes}m{seconds}s")
            } else if minutes > 0 {
                format!("{minutes}m{seconds}s")
            } else {
                format!("{seconds}s")
            }
        }
    }
}

/// `value / 10^digits` in decimal, without trailing zeros (or a lone dot).
fn decimal(value: u64, digits: u32) -> String {
    let unit = 10u64.pow(digits);
    let fraction = format!("{:0width$}", value % unit, width = digits as usize);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{}", value / unit)
    } else {
        format!("{}.{fraction}", value / unit)
    }
}

/// Go's `%g` of a float64: the shortest digits that read back as the same
/// value, in exponent form (`5.12e-05`, `1.234567e+06`) when the exponent
/// is below -4 or at least 6 (Go's rule for the shortest precision), else
/// plain (`0.000512`, `1234.5`).
pub fn format_g(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return match value {
            v if v.is_nan() => "NaN".into(),
            v if v == f64::INFINITY => "+Inf".into(),
            v if v == f64::NEG_INFINITY => "-Inf".into(),
            _ => "0".into(),
        };
    }
    // Rust's `{:e}` is the shortest round-trip form: "1.234567e6".
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').expect("{:e} has an e");
    let exponent: i32 = exponent.parse().expect("{:e} exponent is an integer");
    if (-4..6).contains(&exponent) {
        return format!("{value}");
    }
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_go() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(ms(250)));
        assert_eq!(parse_duration("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_duration("10µs"), Ok(Duration::from_micros(10)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("3x").is_err());
    }

    #[test]
    fn durations_print_as_go() {
        let cases = [
            (0, "0s"),
            (750, "750ns"),
            (1_500, "1.5µs"),
            (1_000_000, "1ms"),
            (12_034_000, "12.034ms"),
            (2_500_000_000, "2.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_500_000_000, "1h0m0.5s"),
        ];
        for (ns, text) in cases {
            assert_eq!(format_duration(Duration::from_nanos(ns)), text, "{ns}");
        }
    }

    #[test]
    fn g_prints_as_go() {
        assert_eq!(format_g(0.0), "0");
        assert_eq!(format_g(0.000512), "0.000512");
        assert_eq!(format_g(0.0000512), "5.12e-05");
        assert_eq!(format_g(1234.5), "1234.5");
        assert_eq!(format_g(123456.0), "123456");
        assert_eq!(format_g(1234567.0), "1.234567e+06");
        assert_eq!(format_g(2.0), "2");
        assert_eq!(format_g(0.1 + 0.2), "0.30000000000000004");
    }
}
