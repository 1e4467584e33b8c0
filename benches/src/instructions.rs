//! Instruction counts: reading callgrind's output, the baseline file and the
//! regression check.
//!
//! The baseline (`benches/baseline/instructions.json`) is a flat JSON
//! object, benchmark name -> instructions, one per line in report order.
//! A fresh count more than [`TOLERANCE_PCT_DEFAULT`] percent above its
//! baseline is a regression; counts below pass and suggest updating the
//! baseline, which is always a deliberate step
//! (`benches/instructions.sh --update-baseline`).

use std::collections::BTreeMap;

/// How far above its baseline a count may go before the check fails.
pub const TOLERANCE_PCT_DEFAULT: f64 = 5.0;

/// The symbol callgrind toggles collection on (see
/// [`crate::micro::keel_microbench_measured`]).
pub const MEASURED_SYMBOL: &str = "keel_microbench_measured";

/// The total `Ir` of a callgrind output file: its `totals:` line (or
/// `summary:` in older formats).
pub fn parse_callgrind_total(text: &str) -> Option<u64> {
    let mut summary = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("totals:") {
            return rest.split_whitespace().next()?.parse().ok();
        }
        if let Some(rest) = line.strip_prefix("summary:") {
            summary = rest.split_whitespace().next().and_then(|n| n.parse().ok());
        }
    }
    summary
}

/// Counts by benchmark name, in the order given.
pub type Counts = Vec<(String, u64)>;

/// The baseline file's text for `counts`.
pub fn render_json(counts: &Counts) -> String {
    let lines: Vec<String> = counts
        .iter()
        .map(|(name, count)| format!("  \"{name}\": {count}"))
        .collect();
    format!("{{\n{}\n}}\n", lines.join(",\n"))
}

/// Reads a flat `{"name": count, ...}` object (what [`render_json`] writes;
/// names are plain identifiers, so no escapes).
pub fn parse_json(text: &str) -> Result<Counts, String> {
    let body = text
        .trim()
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .ok_or("baseline is not a JSON object")?;
    let mut counts = Vec::new();
    for member in body.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let (name, count) = member
            .split_once(':')
            .ok_or_else(|| format!("bad baseline member {member:?}"))?;
        let name = name
            .trim()
            .strip_prefix('"')
            .and_then(|n| n.strip_suffix('"'))
            .ok_or_else(|| format!("bad baseline name {name:?}"))?;
        let count = count
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("bad count for {name}: {count:?}"))?;
        counts.push((name.to_string(), count));
    }
    Ok(counts)
}

/// What one benchmark's fresh count says against its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the tolerance either way.
    Same,
    /// Cheaper by more than the tolerance: passes, baseline could be updated.
    Improved,
    /// Costlier by more than the tolerance: the check fails.
    Regressed,
    /// No baseline yet: passes, baseline should be updated.
    New,
    /// In the baseline but not measured: passes, baseline should be updated.
    Gone,
}

/// One row of the comparison table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub baseline: Option<u64>,
    pub now: Option<u64>,
    /// (now - baseline) / baseline, in percent, when both exist.
    pub change_pct: Option<f64>,
    pub verdict: Verdict,
}

/// Compares fresh counts with the baseline, rows in `now`'s order, then
/// baseline-only names.
pub fn compare(baseline: &Counts, now: &Counts, tolerance_pct: f64) -> Vec<Row> {
    let baseline_by_name: BTreeMap<&str, u64> = baseline
        .iter()
        .map(|(name, count)| (name.as_str(), *count))
        .collect();
    let mut rows: Vec<Row> = now
        .iter()
        .map(|(name, count)| {
            let base = baseline_by_name.get(name.as_str()).copied();
            let change_pct =
                base.map(|base| (*count as f64 - base as f64) / (base.max(1) as f64) * 100.0);
            let verdict = match change_pct {
                None => Verdict::New,
                Some(pct) if pct > tolerance_pct => Verdict::Regressed,
                Some(pct) if pct < -tolerance_pct => Verdict::Improved,
                Some(_) => Verdict::Same,
            };
            Row {
                name: name.clone(),
                baseline: base,
                now: Some(*count),
                change_pct,
                verdict,
            }
        })
        .collect();
    for (name, count) in baseline {
        if !now.iter().any(|(measured, _)| measured == name) {
            rows.push(Row {
                name: name.clone(),
                baseline: Some(*count),
                now: None,
                change_pct: None,
                verdict: Verdict::Gone,
            });
        }
    }
    rows
}

/// The comparison as an aligned text table.
pub fn render_table(rows: &[Row]) -> String {
    let width = rows
        .iter()
        .map(|row| row.name.len())
        .max()
        .unwrap_or(4)
        .max(9);
    let count = |value: Option<u64>| value.map_or("-".to_string(), group_thousands);
    let mut out = format!(
        "{:<width$}  {:>14}  {:>14}  {:>9}  verdict\n",
        "benchmark", "baseline", "now", "change"
    );
    for row in rows {
        let change = row
            .change_pct
            .map_or("-".to_string(), |pct| format!("{pct:+.2}%"));
        let verdict = match row.verdict {
            Verdict::Same => "ok",
            Verdict::Improved => "improved",
            Verdict::Regressed => "REGRESSED",
            Verdict::New => "new",
            Verdict::Gone => "gone",
        };
        out.push_str(&format!(
            "{:<width$}  {:>14}  {:>14}  {change:>9}  {verdict}\n",
            row.name,
            count(row.baseline),
            count(row.now)
        ));
    }
    out
}

/// `1234567` -> `1,234,567`.
pub fn group_thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> Counts {
        pairs.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    #[test]
    fn callgrind_totals_are_read() {
        let text = "version: 1\ncmd: x\nevents: Ir\nfn=(1) f\n3 10\nsummary: 1234\ntotals: 1234\n";
        assert_eq!(parse_callgrind_total(text), Some(1234));
        assert_eq!(parse_callgrind_total("events: Ir\nsummary: 77\n"), Some(77));
        assert_eq!(parse_callgrind_total("events: Ir\n"), None);
    }

    #[test]
    fn baseline_round_trips() {
        let original = counts(&[("noop", 12), ("engine_put_1000", 4_567_890)]);
        let text = render_json(&original);
        assert_eq!(parse_json(&text).unwrap(), original);
        assert_eq!(parse_json("{}").unwrap(), Vec::new());
        assert!(parse_json("[1]").is_err());
        assert!(parse_json("{\"a\": x}").is_err());
    }

    #[test]
    fn regressions_fail_and_improvements_pass() {
        let baseline = counts(&[("a", 1000), ("b", 1000), ("c", 1000), ("gone", 5)]);
        let now = counts(&[("a", 1050), ("b", 1051), ("c", 900), ("new", 7)]);
        let rows = compare(&baseline, &now, 5.0);
        let verdicts: Vec<(&str, Verdict)> = rows
            .iter()
            .map(|row| (row.name.as_str(), row.verdict))
            .collect();
        assert_eq!(
            verdicts,
            vec![
                ("a", Verdict::Same),
                ("b", Verdict::Regressed),
                ("c", Verdict::Improved),
                ("new", Verdict::New),
                ("gone", Verdict::Gone),
            ]
        );
        assert!((rows[1].change_pct.unwrap() - 5.1).abs() < 1e-9);
        let table = render_table(&rows);
        assert!(table.contains("REGRESSED"), "{table}");
        assert!(table.contains("+5.10%"), "{table}");
        assert!(table.contains("1,051"), "{table}");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(12_345_678), "12,345,678");
    }
}
