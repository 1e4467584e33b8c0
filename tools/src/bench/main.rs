//! keel-bench: an etcd `benchmark`-compatible load generator that speaks
//! the etcd v3 gRPC API over HTTP/2 from pinned glommio executors, so it
//! drives etcd and keel alike. This version has `put` and `range`.

mod args;
mod client;
mod report;

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};

use crate::client::{run_share, Share};
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
    let stop = Arc::new(AtomicBool::new(false));
    let cores = args.client_cores.min(args.conns).min(args.clients).max(1);
    let cpu_before = process_cpu();
    let mut handles = Vec::new();
    for core in 0..cores {
        let share = Share {
            endpoints: args.endpoints.clone(),
            conns: split(args.conns, cores, core),
            clients: split(args.clients, cores, core),
            first_conn: (0..core).map(|c| split(args.conns, cores, c)).sum(),
            command: args.command.clone(),
            issued: issued.clone(),
            stop: stop.clone(),
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
    let mut merged = Report::default();
    let mut failure = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(report)) => {
                merged.latencies_us.extend(report.latencies_us);
                for (message, count) in report.errors {
                    *merged.errors.entry(message).or_insert(0) += count;
                }
                merged.elapsed = merged.elapsed.max(report.elapsed);
            }
            Ok(Err(message)) => failure = Some(message),
            Err(error) => failure = Some(format!("executor failed: {error}")),
        }
    }
    merged.client_cpu = process_cpu().saturating_sub(cpu_before);
    if let Some(message) = &failure {
        eprintln!("keel-bench: {message}");
    }
    if args.json {
        println!("{}", merged.render_json());
    } else {
        print!("{}", merged.render_text());
    }
    let errors: u64 = merged.errors.values().sum();
    if failure.is_some() || errors > 0 || merged.latencies_us.len() < args.command.total() {
        std::process::exit(1);
    }
}

fn split(total: usize, parts: usize, index: usize) -> usize {
    total / parts + usize::from(index < total % parts)
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
