//! keel-bench: an etcd `benchmark`-compatible load generator that speaks
//! the etcd v3 gRPC API over HTTP/2 from pinned glommio executors, so it
//! drives etcd and keel alike. Commands: `put`, `range`, `txn-put`,
//! `txn-mixed`, `lease-keepalive`, `watch-latency`.
//!
//! While it runs, a progress bar is drawn on stderr when stderr is a
//! terminal (`progress.rs`). Ctrl-C stops the run: partial results are
//! printed and the exit status is non-zero, as for errors.

mod args;
mod client;
mod grpc_call;
mod progress;
mod report;
mod watch;
mod workload;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};

use crate::args::Command;
use crate::client::{run_share, split, Share, WatchShared};
use crate::report::Report;

fn main() {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(2);
        }
    };
    let issued = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let watch = Arc::new(WatchShared::new(match &args.command {
        Command::WatchLatency { put_total, .. } => *put_total,
        _ => 0,
    }));
    progress::install_interrupt_handler();
    let progress = progress::start(
        args.command.expected_results(),
        completed.clone(),
        stop.clone(),
    );
    let cores = args.client_cores.min(args.conns).min(args.clients).max(1);
    let cpu_before = process_cpu();
    let mut handles = Vec::new();
    for core in 0..cores {
        let share = Share {
            endpoints: args.endpoints.clone(),
            conns: split(args.conns, cores, core),
            clients: split(args.clients, cores, core),
            first_conn: (0..core).map(|c| split(args.conns, cores, c)).sum(),
            core,
            cores,
            command: args.command.clone(),
            issued: issued.clone(),
            completed: completed.clone(),
            stop: stop.clone(),
            watch: watch.clone(),
        };
        let handle = LocalExecutorBuilder::new(Placement::Unbound)
            .name(&format!("keel-bench-{core}"))
            .io_memory(1 << 20)
            .spawn(move || run_share(share))
            .unwrap_or_else(|error| {
                eprintln!("keel-bench: cannot start an executor: {error}");
                std::process::exit(1);
            });
        handles.push(handle);
    }
    let names = args.command.report_names();
    let mut merged: Vec<Report> = names.iter().map(|_| Report::default()).collect();
    let mut watch_event_ns = Vec::new();
    let mut failure = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(outcome)) => {
                for (merged, report) in merged.iter_mut().zip(&outcome.reports) {
                    merged.merge(report);
                }
                watch_event_ns.extend(outcome.watch_event_ns);
            }
            Ok(Err(message)) => failure = Some(message),
            Err(error) => failure = Some(format!("executor failed: {error}")),
        }
    }
    let interrupted = progress.finish();
    let client_cpu = process_cpu().saturating_sub(cpu_before);
    if let Command::WatchLatency { .. } = &args.command {
        let elapsed = merged[0].elapsed;
        let put_end_ns: Vec<u64> = watch
            .put_end_ns
            .iter()
            .map(|ns| ns.load(Ordering::Relaxed))
            .collect();
        merged[1] = watch_report(&put_end_ns, &watch_event_ns);
        merged[1].elapsed = elapsed;
    }
    for report in &mut merged {
        report.client_cpu = client_cpu;
    }
    if interrupted {
        eprintln!("keel-bench: interrupted; partial results follow");
    }
    if let Some(message) = &failure {
        eprintln!("keel-bench: {message}");
    }
    if args.json {
        println!("{}", render_json(names, &merged));
    } else {
        print!("{}", render_text(names, &merged));
    }
    let errors: u64 = merged.iter().flat_map(|r| r.errors.values()).sum();
    let results: u64 = merged.iter().map(Report::successes).sum::<u64>() + errors;
    if failure.is_some()
        || interrupted
        || errors > 0
        || results < args.command.expected_results() as u64
    {
        std::process::exit(1);
    }
}

/// etcd's watch-latency arithmetic: event j of each watcher against the end
/// of put j; an event seen before its put's response counts as 0.
fn watch_report(put_end_ns: &[u64], watch_event_ns: &[Vec<u64>]) -> Report {
    let mut report = Report::default();
    for events in watch_event_ns {
        for (event_ns, put_ns) in events.iter().zip(put_end_ns) {
            if *put_ns == 0 {
                continue; // the put never completed (interrupted)
            }
            report.record(Duration::from_nanos(event_ns.saturating_sub(*put_ns)));
        }
    }
    report
}

fn render_text(names: &[(&str, &str)], reports: &[Report]) -> String {
    if let [report] = reports {
        return report.render_text();
    }
    names
        .iter()
        .zip(reports)
        .map(|((_, title), report)| {
            let text = report.render_text();
            format!("\n{title}:{}", text.trim_start_matches("\nSummary:"))
        })
        .collect()
}

/// One report: its JSON object as before; several: keyed by name.
fn render_json(names: &[(&str, &str)], reports: &[Report]) -> String {
    if let [report] = reports {
        return report.render_json();
    }
    let members: Vec<String> = names
        .iter()
        .zip(reports)
        .map(|((name, _), report)| format!("\"{name}\":{}", report.render_json()))
        .collect();
    format!("{{{}}}", members.join(","))
}

fn process_cpu() -> Duration {
    let mut usage = zeroed_rusage();
    // SAFETY: getrusage fills the struct we own; RUSAGE_SELF is valid.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |tv: libc::timeval| Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn zeroed_rusage() -> libc::rusage {
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_latency_is_event_minus_put_end() {
        let put_end_ns = [1_000_000, 2_000_000, 0];
        let events = vec![
            vec![1_500_000, 2_100_000, 9_000_000],
            vec![900_000, 3_000_000],
        ];
        let report = watch_report(&put_end_ns, &events);
        // The third put never completed; the early event counts as 0.
        assert_eq!(report.successes(), 4);
        assert_eq!(report.latencies_us.min(), 0);
        assert_eq!(report.latencies_us.max(), 1000);
    }

    #[test]
    fn several_reports_render_with_titles() {
        let names = [("read", "Read summary"), ("write", "Write summary")];
        let mut read = Report::default();
        read.record(Duration::from_millis(1));
        let reports = [read, Report::default()];
        let text = render_text(&names, &reports);
        assert!(text.contains("Read summary:\n  Total:"), "{text}");
        assert!(text.contains("Write summary:\n  No successful"), "{text}");
        let json = render_json(&names, &reports);
        assert!(json.starts_with("{\"read\":{"), "{json}");
        assert!(json.contains("\"write\":{\"total_secs\""), "{json}");
    }
}
