//! `keel`: start-up. Parses etcd's flags, opens the raft core (backend and
//! WAL), starts one pinned executor for it and one per shard core, and
//! reports readiness once every shard core listens.

mod config;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use glommio::channels::shared_channel;
use glommio::{LocalExecutorBuilder, Placement};
use keel_net::{check_address_free, run_shard, MemberConfig, ServeConfig, ShardSetup};
use keel_raft_shim::message::{PROPOSAL_QUEUE_MAX, REPLY_QUEUE_MAX};
use keel_raft_shim::{RaftConfig, RaftCore};

use crate::config::{Config, ConfigError, USAGE};

/// io_uring buffer memory per executor (glommio registers it; it counts
/// against RLIMIT_MEMLOCK).
const EXECUTOR_IO_MEMORY_BYTES: usize = 1 << 20;
/// How long an idle raft core polls before it sleeps. Waking a parked
/// executor costs ~100 µs on the VMs we measured, three times per write; a
/// short spin catches the next proposal without that wake-up.
const RAFT_SPIN_BEFORE_PARK: Duration = Duration::from_micros(150);
/// How long an idle shard core polls before it sleeps (catches the raft
/// core's reply and the client's next request). Longer spins took CPU from
/// the other cores and lowered throughput on a 2-core machine.
const SHARD_SPIN_BEFORE_PARK: Duration = Duration::from_micros(300);
/// How long start-up waits for a listen address still held by a process
/// that has exited (see `main`) before it fails as taken.
const PORT_RELEASE_WAIT: Duration = Duration::from_secs(5);

fn main() {
    let config = match Config::from_sources(std::env::args().skip(1), std::env::vars()) {
        Ok(config) => config,
        Err(ConfigError::HelpRequested) => {
            print!("{USAGE}");
            return;
        }
        Err(ConfigError::VersionRequested) => {
            println!(
                "keel Version: {}\netcd API Version: 3.5",
                env!("CARGO_PKG_VERSION")
            );
            return;
        }
        Err(error) => {
            eprintln!("keel: {error}\n{USAGE}");
            std::process::exit(2);
        }
    };
    raise_memlock_limit();
    // As etcd, before the data dir is opened: a port another process
    // listens on is an error, even one this user's keel holds. A keel
    // killed a moment ago may still hold its port: the kernel tears down
    // its io_uring, and the sockets in it, after the process is gone.
    for addr in config.listen_addrs().iter().chain(&config.metrics_addrs()) {
        let started = Instant::now();
        while let Err(error) = check_address_free(*addr) {
            if error.kind() != std::io::ErrorKind::AddrInUse
                || started.elapsed() >= PORT_RELEASE_WAIT
            {
                eprintln!("keel: cannot listen on {addr}: {error}");
                std::process::exit(1);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if started.elapsed() >= Duration::from_millis(10) {
            eprintln!(
                "keel: waited {} ms for {addr} to be released",
                started.elapsed().as_millis()
            );
        }
    }

    let raft_config = RaftConfig {
        data_dir: config.data_dir.clone(),
        member_id: config.member_id(),
        cluster_id: config.cluster_id(),
        auto_compaction: config.auto_compaction,
    };
    let (core, reader, status) = match RaftCore::open(&raft_config) {
        Ok(opened) => opened,
        Err(error) => {
            eprintln!(
                "keel: cannot open data dir {}: {error}",
                config.data_dir.display()
            );
            std::process::exit(1);
        }
    };

    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let raft_cpu = cpus - 1;
    let serve_config = ServeConfig {
        listen: config.listen_addrs(),
        metrics_listen: config.metrics_addrs(),
        max_request_bytes: config.max_request_bytes,
        max_txn_ops: config.max_txn_ops,
        watch_progress_notify_interval: config.watch_progress_notify_interval,
        snapshot_dir: config.data_dir.join("member").join("snap"),
        quota_backend_bytes: config.quota_backend_bytes,
        member: MemberConfig {
            name: config.name.clone(),
            peer_urls: config.initial_advertise_peer_urls.clone(),
            client_urls: config.advertise_client_urls.clone(),
        },
    };

    let metrics: std::sync::Arc<[std::sync::Arc<keel_net::metrics::ShardMetrics>]> = (0..config
        .shard_cores)
        .map(|_| std::sync::Arc::new(keel_net::metrics::ShardMetrics::default()))
        .collect();
    let mut inboxes = Vec::new();
    let mut replies = Vec::new();
    let mut shard_setups = Vec::new();
    for shard in 0..config.shard_cores {
        let (to_raft, inbox) = shared_channel::new_bounded(PROPOSAL_QUEUE_MAX);
        let (reply, from_raft) = shared_channel::new_bounded(REPLY_QUEUE_MAX);
        inboxes.push(inbox);
        replies.push(reply);
        shard_setups.push(ShardSetup {
            id: shard,
            metrics: metrics.clone(),
            config: serve_config.clone(),
            reader: reader.clone(),
            status: status.clone(),
            to_raft,
            from_raft,
        });
    }

    let raft_executor = LocalExecutorBuilder::new(Placement::Fixed(raft_cpu))
        .name("keel-raft")
        .io_memory(EXECUTOR_IO_MEMORY_BYTES)
        .spin_before_park(RAFT_SPIN_BEFORE_PARK)
        .spawn(move || async move {
            let mut connected_inboxes = Vec::new();
            for inbox in inboxes {
                connected_inboxes.push(inbox.connect().await);
            }
            let mut connected_replies = Vec::new();
            for reply in replies {
                connected_replies.push(reply.connect().await);
            }
            core.run(connected_inboxes, connected_replies).await;
        })
        .unwrap_or_else(|error| {
            eprintln!("keel: cannot start the raft core: {error}");
            std::process::exit(1);
        });

    let (bound_tx, bound_rx) = mpsc::channel();
    let mut shard_executors = Vec::new();
    for setup in shard_setups {
        let bound_tx = bound_tx.clone();
        let cpu = setup.id % cpus;
        let executor = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("keel-shard-{}", setup.id))
            .io_memory(EXECUTOR_IO_MEMORY_BYTES)
            .spin_before_park(SHARD_SPIN_BEFORE_PARK)
            .spawn(move || async move {
                run_shard(setup, move |outcome| {
                    let _ = bound_tx.send(outcome);
                })
                .await;
            })
            .unwrap_or_else(|error| {
                eprintln!("keel: cannot start a shard core: {error}");
                std::process::exit(1);
            });
        shard_executors.push(executor);
    }
    drop(bound_tx);
    for _ in 0..config.shard_cores {
        match bound_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err((addr, error))) => {
                eprintln!("keel: cannot listen on {addr}: {error}");
                std::process::exit(1);
            }
            Err(_) => {
                eprintln!("keel: a shard core stopped during start-up");
                std::process::exit(1);
            }
        }
    }
    eprintln!(
        "keel: member {} ({:016x}) ready to serve client requests on {} with {} shard core(s), data dir {}",
        config.name,
        config.member_id(),
        config.listen_client_urls.join(","),
        config.shard_cores,
        config.data_dir.display()
    );
    let _ = raft_executor.join();
    for executor in shard_executors {
        let _ = executor.join();
    }
}

/// glommio registers io_uring buffers, which count as locked memory; lift
/// the soft limit to the hard one when we may.
fn raise_memlock_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; RLIMIT_MEMLOCK is valid.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return;
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the struct we own; failure leaves the old limit.
        unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) };
    }
}
