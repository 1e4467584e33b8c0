//! One keel-bench run: settles the session (`session.rs`), starts one
//! pinned-free glommio executor per client core (plus watch-latency's
//! putter), merges what they measured, prints etcd's summaries or JSON,
//! and says whether the run was complete (the exit status).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};

use crate::args::Args;
use crate::client::{run_share, split, Role, Share, ShareOutcome, WatchShared};
use crate::command::Command;
use crate::dial::Dialer;
use crate::event_latency::EventLatencies;
use crate::report::Report;
use crate::tls::TlsClient;
use crate::watch_bench::WatchPlan;
use crate::{mvcc, progress, session};

/// Runs `args`; the process exit status (0: complete and error-free).
pub fn run(args: Args) -> i32 {
    if args.command.is_mvcc() {
        return run_mvcc(&args);
    }
    let dialer = match dialer(&args) {
        Ok(dialer) => dialer,
        Err(message) => {
            eprintln!("keel-bench: {message}");
            return 2;
        }
    };
    let endpoints = match session::prepare(&args, &dialer) {
        Ok(endpoints) => endpoints,
        Err(message) => {
            eprintln!("keel-bench: {message}");
            return 1;
        }
    };
    let command = &args.command;
    let plan = matches!(command, Command::Watch { .. }).then(|| WatchPlan::new(command));
    let (expected_results, expected_events) = match (command, &plan) {
        (Command::Watch { .. }, Some(plan)) => (
            command.watchers() + plan.events_total,
            Some(plan.events_total),
        ),
        (Command::WatchLatency { put_total, .. }, _) => (
            command.expected_results(),
            Some(put_total * command.watchers()),
        ),
        _ => (command.expected_results(), None),
    };
    let put_slots = match command {
        Command::WatchLatency { put_total, .. } | Command::Watch { put_total, .. } => *put_total,
        _ => 0,
    };
    let issued = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let watch = Arc::new(WatchShared::new(put_slots));
    progress::install_interrupt_handler();
    let progress = progress::start(expected_results, completed.clone(), stop.clone());
    let cores = args.client_cores.min(args.conns).min(args.clients).max(1);
    let cpu_before = process_cpu();
    let started = Instant::now();
    let share = |role: Role, core: usize| Share {
        role,
        endpoints: endpoints.clone(),
        conns: if role == Role::Load {
            split(args.conns, cores, core)
        } else {
            0
        },
        clients: if role == Role::Load {
            split(args.clients, cores, core)
        } else {
            0
        },
        first_conn: (0..core).map(|c| split(args.conns, cores, c)).sum(),
        core,
        cores,
        command: args.command.clone(),
        dialer: dialer.clone(),
        sample: args.sample,
        started,
        issued: issued.clone(),
        completed: completed.clone(),
        stop: stop.clone(),
        watch: watch.clone(),
    };
    let mut shares: Vec<Share> = (0..cores).map(|core| share(Role::Load, core)).collect();
    if matches!(command, Command::WatchLatency { .. }) {
        shares.push(share(Role::Putter, cores));
    }
    let mut handles = Vec::new();
    for share in shares {
        let name = match share.role {
            Role::Load => format!("keel-bench-{}", share.core),
            Role::Putter => "keel-bench-putter".to_string(),
        };
        let handle = LocalExecutorBuilder::new(Placement::Unbound)
            .name(&name)
            .io_memory(1 << 20)
            .spawn(move || run_share(share))
            .unwrap_or_else(|error| {
                eprintln!("keel-bench: cannot start an executor: {error}");
                std::process::exit(1);
            });
        handles.push(handle);
    }
    let names = command.report_names();
    let mut merged: Vec<Report> = names.iter().map(|_| Report::new(args.sample)).collect();
    let mut events: Option<EventLatencies> = None;
    let mut failure = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(outcome)) => merge_outcome(&mut merged, &mut events, outcome),
            Ok(Err(message)) => failure = Some(message),
            Err(error) => failure = Some(format!("executor failed: {error}")),
        }
    }
    let interrupted = progress.finish();
    let client_cpu = process_cpu().saturating_sub(cpu_before);
    if let Some(events) = events {
        // Every put has ended or never will: settle the early events.
        let elapsed = merged.iter().map(|report| report.elapsed).max();
        let report = &mut merged[1];
        report.merge(&events.finish(&watch.ends));
        report.elapsed = elapsed.unwrap_or_default();
        report.expected = expected_events.map(|events| events as u64);
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
    print_reports(&args, names, &merged);
    let errors: u64 = merged.iter().flat_map(|r| r.errors.values()).sum();
    let complete = match command {
        // Its report counts gets; complete means every watcher caught up.
        Command::WatchGet { .. } => {
            watch.watchers_done.load(Ordering::Relaxed) >= command.watchers()
        }
        _ => {
            let results: u64 = merged.iter().map(Report::successes).sum::<u64>() + errors;
            results >= expected_results as u64
        }
    };
    if failure.is_some() || interrupted || errors > 0 || !complete {
        return 1;
    }
    0
}

/// How the run connects: TLS is set up (its files read) once, when some
/// endpoint is TLS.
fn dialer(args: &Args) -> Result<Dialer, String> {
    let tls = if args.endpoints.iter().any(|endpoint| endpoint.tls) {
        let files = args.tls.clone().unwrap_or_default();
        Some(TlsClient::new(&files).map_err(|error| error.to_string())?)
    } else {
        if args.tls.is_some() {
            eprintln!("keel-bench: every endpoint is http://; TLS flags are ignored");
        }
        None
    };
    Ok(Dialer {
        timeout: args.dial_timeout,
        tls,
    })
}

fn merge_outcome(
    merged: &mut [Report],
    events: &mut Option<EventLatencies>,
    outcome: ShareOutcome,
) {
    for (merged, report) in merged.iter_mut().zip(&outcome.reports) {
        merged.merge(report);
    }
    if let Some(theirs) = outcome.events {
        match events {
            Some(events) => events.merge(theirs),
            None => *events = Some(theirs),
        }
    }
}

fn run_mvcc(args: &Args) -> i32 {
    let cpu_before = process_cpu();
    match mvcc::run(&args.command, args.sample) {
        Ok(mut report) => {
            report.client_cpu = process_cpu().saturating_sub(cpu_before);
            print_reports(
                args,
                args.command.report_names(),
                std::slice::from_ref(&report),
            );
            i32::from(!report.errors.is_empty())
        }
        Err(message) => {
            eprintln!("keel-bench: {message}");
            1
        }
    }
}

fn print_reports(args: &Args, names: &[(&str, &str)], reports: &[Report]) {
    if args.json {
        println!("{}", render_json(names, reports));
    } else {
        print!("{}", render_text(names, reports, args.precise));
    }
}

/// etcd's text: one summary, or each under its title.
pub fn render_text(names: &[(&str, &str)], reports: &[Report], precise: bool) -> String {
    names
        .iter()
        .zip(reports)
        .map(|((_, title), report)| {
            let text = report.render_text(precise);
            if *title == "Summary" {
                return text;
            }
            format!("\n{title}:{}", text.trim_start_matches("\nSummary:"))
        })
        .collect()
}

/// One report: its JSON object; several: keyed by name.
pub fn render_json(names: &[(&str, &str)], reports: &[Report]) -> String {
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
