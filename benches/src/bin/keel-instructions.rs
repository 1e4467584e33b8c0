//! keel-instructions: counts every micro benchmark's instructions under
//! valgrind's callgrind and checks them against the committed baseline.
//! `benches/instructions.sh` builds and runs it; see that script for usage.
//!
//! Exit status: 0 when no benchmark costs more than the tolerance over its
//! baseline (or with `--update-baseline`), 1 on a regression, 2 when the
//! counts cannot be taken (no valgrind, a benchmark crashed, bad flags).

use std::path::{Path, PathBuf};
use std::process::Command;

use keel_benches::instructions::{
    compare, group_thousands, parse_callgrind_total, parse_json, render_json, render_table, Counts,
    Verdict, MEASURED_SYMBOL, TOLERANCE_PCT_DEFAULT,
};
use keel_benches::micro::BENCHMARKS;

const USAGE: &str = "\
usage: keel-instructions [--microbench PATH] [--baseline PATH] [--out-dir DIR]
                         [--update-baseline] [--tolerance-pct F] [--runs N] [--only A,B]";

struct Options {
    microbench: PathBuf,
    baseline: PathBuf,
    out_dir: PathBuf,
    update_baseline: bool,
    tolerance_pct: f64,
    runs: usize,
    only: Option<Vec<String>>,
}

fn main() {
    let options = parse_options().unwrap_or_else(|message| fail(&message));
    std::fs::create_dir_all(&options.out_dir).unwrap_or_else(|error| {
        fail(&format!(
            "cannot create {}: {error}",
            options.out_dir.display()
        ))
    });
    let names: Vec<&str> = BENCHMARKS
        .iter()
        .map(|benchmark| benchmark.name)
        .filter(|name| {
            options
                .only
                .as_ref()
                .is_none_or(|only| only.iter().any(|o| o == name))
        })
        .collect();
    let mut counts: Counts = Vec::new();
    let mut spread_seen = false;
    for name in &names {
        let runs: Vec<u64> = (0..options.runs)
            .map(|run| count_instructions(&options, name, run))
            .collect();
        let least = *runs.iter().min().expect("at least one run");
        let most = *runs.iter().max().expect("at least one run");
        if options.runs > 1 {
            eprintln!(
                "{name}: {} runs, min {} max {} spread {}",
                runs.len(),
                group_thousands(least),
                group_thousands(most),
                group_thousands(most - least)
            );
            spread_seen |= most != least;
        }
        counts.push((name.to_string(), least));
    }
    if options.runs > 1 && !spread_seen {
        eprintln!(
            "every benchmark counted the same in all {} runs",
            options.runs
        );
    }
    let fresh = options.out_dir.join("instructions.json");
    write_file(&fresh, &render_json(&counts));

    if options.update_baseline {
        let previous = std::fs::read_to_string(&options.baseline)
            .ok()
            .and_then(|text| parse_json(&text).ok())
            .unwrap_or_default();
        write_file(&options.baseline, &render_json(&counts));
        print!(
            "{}",
            render_table(&compare(&previous, &counts, options.tolerance_pct))
        );
        println!("baseline written to {}", options.baseline.display());
        return;
    }
    let baseline = match std::fs::read_to_string(&options.baseline) {
        Ok(text) => parse_json(&text).unwrap_or_else(|message| {
            fail(&format!("{}: {message}", options.baseline.display()))
        }),
        Err(error) => fail(&format!(
            "cannot read the baseline {}: {error} (create it with benches/instructions.sh --update-baseline)",
            options.baseline.display()
        )),
    };
    // A partial run (--only) compares only what it measured.
    let baseline: Counts = match &options.only {
        Some(_) => baseline
            .into_iter()
            .filter(|(name, _)| names.contains(&name.as_str()))
            .collect(),
        None => baseline,
    };
    let rows = compare(&baseline, &counts, options.tolerance_pct);
    print!("{}", render_table(&rows));
    let has = |verdict: Verdict| rows.iter().any(|row| row.verdict == verdict);
    if has(Verdict::Improved) || has(Verdict::New) || has(Verdict::Gone) {
        println!(
            "hint: the baseline is out of date (improved, new or removed benchmarks); \
             if that is intended, run `bash benches/instructions.sh --update-baseline` and commit \
             benches/baseline/instructions.json"
        );
    }
    if has(Verdict::Regressed) {
        println!(
            "FAIL: a benchmark costs more than {}% over its baseline (fresh counts in {})",
            options.tolerance_pct,
            fresh.display()
        );
        std::process::exit(1);
    }
    println!(
        "ok: no benchmark costs more than {}% over its baseline",
        options.tolerance_pct
    );
}

/// Runs `name` once under callgrind and returns its measured instructions.
fn count_instructions(options: &Options, name: &str, run: usize) -> u64 {
    let out_file = options.out_dir.join(format!("callgrind.{name}.{run}.out"));
    let output = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(format!("--toggle-collect={MEASURED_SYMBOL}"))
        .arg("--collect-atstart=no")
        .arg("--dump-instr=no")
        .arg("-q")
        .arg(&options.microbench)
        .arg(name)
        .output()
        .unwrap_or_else(|error| fail(&format!("cannot run valgrind: {error}")));
    if !output.status.success() {
        fail(&format!(
            "{name} failed under valgrind ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let text = std::fs::read_to_string(&out_file)
        .unwrap_or_else(|error| fail(&format!("cannot read {}: {error}", out_file.display())));
    match parse_callgrind_total(&text) {
        Some(0) | None => fail(&format!(
            "{name}: callgrind counted nothing; is `{MEASURED_SYMBOL}` in {}?",
            options.microbench.display()
        )),
        Some(total) => total,
    }
}

fn parse_options() -> Result<Options, String> {
    let here = std::env::current_exe().map_err(|error| format!("current exe: {error}"))?;
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut options = Options {
        microbench: here.with_file_name("keel-microbench"),
        baseline: crate_dir.join("baseline").join("instructions.json"),
        out_dir: here
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
            .join("instructions"),
        update_baseline: false,
        tolerance_pct: TOLERANCE_PCT_DEFAULT,
        runs: 1,
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--microbench" => options.microbench = value()?.into(),
            "--baseline" => options.baseline = value()?.into(),
            "--out-dir" => options.out_dir = value()?.into(),
            "--update-baseline" => options.update_baseline = true,
            "--tolerance-pct" => {
                options.tolerance_pct = value()?
                    .parse()
                    .map_err(|_| "--tolerance-pct needs a number".to_string())?
            }
            "--runs" => {
                options.runs = value()?
                    .parse()
                    .ok()
                    .filter(|&runs| runs >= 1)
                    .ok_or("--runs needs a number >= 1")?
            }
            "--only" => options.only = Some(value()?.split(',').map(str::to_string).collect()),
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    Ok(options)
}

fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text)
        .unwrap_or_else(|error| fail(&format!("cannot write {}: {error}", path.display())));
}

fn fail(message: &str) -> ! {
    eprintln!("keel-instructions: {message}");
    std::process::exit(2);
}
