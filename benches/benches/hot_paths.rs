//! Criterion (wall time) of every micro benchmark in `keel_benches::micro`
//! — gRPC framing and decode, proposal batching, engine put/get/range,
//! compaction, WAL codec, watch matching — the same measured calls the
//! instruction-count check counts (`benches/instructions.sh`). Each
//! iteration gets freshly prepared inputs (prepared untimed). Run with
//!
//! ```text
//! cargo bench -p keel-benches --features criterion --bench hot_paths -- --quick
//! ```

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use keel_benches::micro::BENCHMARKS;

fn hot_paths(c: &mut Criterion) {
    let mut group = c.benchmark_group("hot_paths");
    group.sample_size(10);
    for benchmark in BENCHMARKS {
        group.bench_function(benchmark.name, |b| {
            b.iter_batched(
                benchmark.prepare,
                // Returned, so its inputs are dropped outside the timing.
                |mut measured| {
                    measured();
                    measured
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, hot_paths);
criterion_main!(benches);
