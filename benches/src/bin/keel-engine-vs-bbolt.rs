//! keel-engine-vs-bbolt: keel's storage engine against bbolt (etcd's
//! backend store) doing the same work in the same run. `benches/bbolt.sh`
//! builds both sides and runs it; see `benches/README.md`.
//!
//! keel's side is timed here with `keel_benches::engines::KeelEngine`;
//! bbolt's side is the Go program `benches/bbolt/main.go` (path given with
//! `--bbolt`), which does the redb column of `engines.rs` on bbolt and
//! prints one JSON line per operation. Both use the same timing scheme:
//! per operation, one untimed warm-up round, then up to `--rounds` rounds of
//! a fixed number of iterations, stopping early (after at least one round)
//! once the operation has taken `--max-secs` of wall time; the result is
//! the median round's time per iteration.
//!
//! Prints a markdown table (op, keel, bbolt, keel/bbolt) and writes it to
//! `--out` (default `bench-results/engine-vs-bbolt.md`).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keel_benches::engines::{
    self, fsync_reaches_disk, KeelEngine, Sync, BATCH_KEYS, COMPACT_KEYS, POINT_GETS, STORE_KEYS,
    VALUE_BYTES,
};

const USAGE: &str = "\
usage: keel-engine-vs-bbolt --bbolt PATH [--rounds N] [--max-secs F] [--out PATH]
                            [--only OP] [--bbolt-version TEXT]";

/// Iterations per round, the same numbers as `benches/bbolt/main.go`.
const PUT_MEMORY_ITERS: u64 = 50;
const PUT_FSYNC_ITERS: u64 = 20;
const GET_ITERS: u64 = 1000;
const RANGE_ITERS: u64 = 200;

/// The operations, in the order both sides run them.
const OPS: [&str; 6] = [
    "put_1000/memory",
    "put_1000/fsync",
    "get_100",
    "range_1000",
    "compact_10k/memory",
    "compact_10k/fsync",
];

struct Options {
    bbolt: PathBuf,
    rounds: usize,
    max_secs: f64,
    out: PathBuf,
    only: Option<String>,
    bbolt_version: Option<String>,
}

/// One operation's result on one side.
#[derive(Clone, Debug)]
struct Measured {
    op: String,
    ns_per_iter: f64,
    iters: u64,
}

fn main() {
    let options = parse_options().unwrap_or_else(|message| fail(&message));
    let temp_dir = std::env::temp_dir();
    let on_disk = fsync_reaches_disk(&temp_dir);
    if !on_disk {
        eprintln!(
            "keel-engine-vs-bbolt: WARNING: {} is tmpfs: the fsync rows measure no disk (set TMPDIR)",
            temp_dir.display()
        );
    }

    eprintln!("keel-engine-vs-bbolt: timing keel's engine");
    let keel = keel_side(&options);
    eprintln!(
        "keel-engine-vs-bbolt: timing bbolt ({})",
        options.bbolt.display()
    );
    let (bbolt, bbolt_options) = bbolt_side(&options);

    let report = render(&options, &keel, &bbolt, &bbolt_options, &temp_dir, on_disk);
    print!("{report}");
    if let Some(parent) = options.out.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).unwrap_or_else(|error| {
                fail(&format!("cannot create {}: {error}", parent.display()))
            });
        }
    }
    std::fs::write(&options.out, &report)
        .unwrap_or_else(|error| fail(&format!("cannot write {}: {error}", options.out.display())));
    eprintln!("keel-engine-vs-bbolt: wrote {}", options.out.display());
}

fn wanted(options: &Options, op: &str) -> bool {
    options.only.as_deref().is_none_or(|only| only == op)
}

/// Runs `round` (which returns the time its `iters_per_round` iterations
/// took) as the scheme says: a warm-up, then up to `rounds` rounds within
/// `max_secs`, the median round kept.
fn measure(
    options: &Options,
    op: &str,
    iters_per_round: u64,
    mut round: impl FnMut() -> Duration,
) -> Measured {
    let started = Instant::now();
    round(); // warm-up
    let mut per_iter: Vec<f64> = Vec::with_capacity(options.rounds);
    while per_iter.len() < options.rounds {
        let elapsed = round();
        per_iter.push(elapsed.as_nanos() as f64 / iters_per_round as f64);
        if started.elapsed().as_secs_f64() > options.max_secs {
            break;
        }
    }
    per_iter.sort_by(f64::total_cmp);
    let middle = per_iter.len() / 2;
    let median = if per_iter.len().is_multiple_of(2) {
        (per_iter[middle - 1] + per_iter[middle]) / 2.0
    } else {
        per_iter[middle]
    };
    Measured {
        op: op.to_string(),
        ns_per_iter: median,
        iters: per_iter.len() as u64 * iters_per_round,
    }
}

fn keel_side(options: &Options) -> Vec<Measured> {
    let mut results = Vec::new();
    let windows: Vec<Vec<Vec<u8>>> = (0..STORE_KEYS / BATCH_KEYS)
        .map(|window| engines::key_range(window * BATCH_KEYS, BATCH_KEYS))
        .collect();
    let value = engines::value();
    for (op, sync, iters) in [
        ("put_1000/memory", Sync::Memory, PUT_MEMORY_ITERS),
        ("put_1000/fsync", Sync::Fsync, PUT_FSYNC_ITERS),
    ] {
        if !wanted(options, op) {
            continue;
        }
        let mut keel = KeelEngine::filled(STORE_KEYS);
        let mut next_window = 0;
        results.push(measure(options, op, iters, || {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let keys = &windows[next_window % windows.len()];
                next_window += 1;
                let start = Instant::now();
                keel.put_batch(keys, &value, sync);
                elapsed += start.elapsed();
            }
            // Untimed: compact the history the batches left, and persist.
            keel.trim();
            elapsed
        }));
    }

    if wanted(options, "get_100") || wanted(options, "range_1000") {
        let keel = KeelEngine::filled(STORE_KEYS);
        if wanted(options, "get_100") {
            let keys = engines::point_get_keys();
            results.push(measure(options, "get_100", GET_ITERS, || {
                let start = Instant::now();
                for _ in 0..GET_ITERS {
                    assert_eq!(keel.get_many(&keys), POINT_GETS * VALUE_BYTES);
                }
                start.elapsed()
            }));
        }
        if wanted(options, "range_1000") {
            let (first, end) = engines::range_bounds();
            results.push(measure(options, "range_1000", RANGE_ITERS, || {
                let start = Instant::now();
                for _ in 0..RANGE_ITERS {
                    assert_eq!(keel.range(&first, &end), BATCH_KEYS);
                }
                start.elapsed()
            }));
        }
    }

    for (op, sync) in [
        ("compact_10k/memory", Sync::Memory),
        ("compact_10k/fsync", Sync::Fsync),
    ] {
        if !wanted(options, op) {
            continue;
        }
        results.push(measure(options, op, 1, || {
            let mut keel = KeelEngine::with_history(COMPACT_KEYS);
            let start = Instant::now();
            let removed = keel.compact(sync);
            let elapsed = start.elapsed();
            assert_eq!(removed, COMPACT_KEYS as u64);
            elapsed
        }));
    }
    results
}

/// Runs the Go program; returns its results and the bbolt options it
/// reports.
fn bbolt_side(options: &Options) -> (Vec<Measured>, String) {
    let mut command = Command::new(&options.bbolt);
    command
        .arg("-rounds")
        .arg(options.rounds.to_string())
        .arg("-max-secs")
        .arg(options.max_secs.to_string());
    if let Some(only) = &options.only {
        command.arg("-only").arg(only);
    }
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|error| fail(&format!("cannot run {}: {error}", options.bbolt.display())));
    if !output.status.success() {
        fail(&format!(
            "{} failed ({})",
            options.bbolt.display(),
            output.status
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut results = Vec::new();
    let mut bbolt_options = String::new();
    for line in stdout.lines() {
        if let Some(text) = json_field(line, "options") {
            bbolt_options = text.to_string();
            continue;
        }
        let (Some(op), Some(ns), Some(iters)) = (
            json_field(line, "op"),
            json_field(line, "ns_per_iter"),
            json_field(line, "iters"),
        ) else {
            fail(&format!("unexpected line from the bbolt program: {line}"));
        };
        let (Ok(ns_per_iter), Ok(iters)) = (ns.parse::<f64>(), iters.parse::<u64>()) else {
            fail(&format!("bad numbers from the bbolt program: {line}"));
        };
        results.push(Measured {
            op: op.to_string(),
            ns_per_iter,
            iters,
        });
    }
    (results, bbolt_options)
}

/// The value of `"name":` in one flat JSON object line (a string without
/// escapes, or a number).
fn json_field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let pattern = format!("\"{name}\":");
    let rest = &line[line.find(&pattern)? + pattern.len()..];
    if let Some(string) = rest.strip_prefix('"') {
        string.find('"').map(|end| &string[..end])
    } else {
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim())
    }
}

fn render(
    options: &Options,
    keel: &[Measured],
    bbolt: &[Measured],
    bbolt_options: &str,
    temp_dir: &std::path::Path,
    on_disk: bool,
) -> String {
    let mut out = String::new();
    out.push_str("# keel's engine vs bbolt (same run)\n\n");
    out.push_str(&format!(
        "Median time per operation over up to {} rounds after a warm-up round, \
         each operation capped at {} s (`benches/bbolt.sh`). keel/bbolt below 1 \
         means keel is faster.\n\n",
        options.rounds, options.max_secs
    ));
    out.push_str("| op | keel | bbolt | keel/bbolt |\n| --- | ---: | ---: | ---: |\n");
    for op in OPS {
        let keel = keel.iter().find(|m| m.op == op);
        let bbolt = bbolt.iter().find(|m| m.op == op);
        if keel.is_none() && bbolt.is_none() {
            continue;
        }
        let ratio = match (keel, bbolt) {
            (Some(k), Some(b)) if b.ns_per_iter > 0.0 => {
                format!("{:.2}", k.ns_per_iter / b.ns_per_iter)
            }
            _ => "-".to_string(),
        };
        out.push_str(&format!(
            "| {op} | {} | {} | {ratio} |\n",
            keel.map_or("-".to_string(), |m| human(m.ns_per_iter)),
            bbolt.map_or("-".to_string(), |m| human(m.ns_per_iter)),
        ));
    }
    out.push('\n');
    let iters = |side: &[Measured]| {
        side.iter()
            .map(|m| format!("{} {}", m.op, m.iters))
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push_str(&format!("- iterations timed, keel: {}\n", iters(keel)));
    out.push_str(&format!("- iterations timed, bbolt: {}\n", iters(bbolt)));
    if let Some(version) = &options.bbolt_version {
        out.push_str(&format!("- bbolt: {version}\n"));
    }
    out.push_str(&format!("- bbolt options (etcd's): {bbolt_options}\n"));
    out.push_str(&format!(
        "- files under {}{}\n",
        temp_dir.display(),
        if on_disk {
            ""
        } else {
            " (tmpfs: fsync rows measure no disk)"
        }
    ));
    out
}

/// Nanoseconds as µs or ms with three significant digits or so.
fn human(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        bbolt: PathBuf::new(),
        rounds: 7,
        max_secs: 10.0,
        out: PathBuf::from("bench-results/engine-vs-bbolt.md"),
        only: None,
        bbolt_version: None,
    };
    let mut bbolt = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--bbolt" => bbolt = Some(PathBuf::from(value()?)),
            "--rounds" => {
                options.rounds = value()?
                    .parse()
                    .ok()
                    .filter(|&n: &usize| n >= 1)
                    .ok_or("--rounds needs a whole number of at least 1")?
            }
            "--max-secs" => {
                options.max_secs = value()?
                    .parse()
                    .ok()
                    .filter(|&s: &f64| s.is_finite() && s >= 0.0)
                    .ok_or("--max-secs needs a number of seconds")?
            }
            "--out" => options.out = PathBuf::from(value()?),
            "--only" => {
                let op = value()?;
                if !OPS.contains(&op.as_str()) {
                    return Err(format!("--only: unknown op {op}; ops: {}", OPS.join(", ")));
                }
                options.only = Some(op);
            }
            "--bbolt-version" => options.bbolt_version = Some(value()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {arg}\n{USAGE}")),
        }
    }
    options.bbolt = bbolt.ok_or_else(|| format!("--bbolt is required\n{USAGE}"))?;
    Ok(options)
}

fn fail(message: &str) -> ! {
    eprintln!("keel-engine-vs-bbolt: {message}");
    std::process::exit(2);
}
