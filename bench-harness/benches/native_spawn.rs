//! The baseline every backend's start-up is compared with: the native backend starting the agent
//! for `noop`, waiting for its result, and reaping it (one full trial).
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use bench_harness::backend::{Backend, PrepareContext, SandboxLimits, Trial};
use bench_harness::backends::native::NativeBackend;
use criterion::{criterion_group, criterion_main, Criterion};
use workloads::{Workload, WorkloadSpec};

fn bench(c: &mut Criterion) {
    let agent = workloads::locate::locate_agent(None).unwrap_or_else(|e| panic!("{e}"));
    let scratch = std::env::temp_dir();
    let mut backend = NativeBackend::default();
    backend
        .prepare(&PrepareContext {
            agent,
            work_dir: scratch.clone(),
            io_scratch_dir: scratch,
            limits: SandboxLimits::default(),
            trial_timeout: Duration::from_secs(30),
            live_console: false,
            ..PrepareContext::default()
        })
        .unwrap();
    let trial = Trial {
        index: 0,
        repetition: 0,
        warmup: false,
        spec: WorkloadSpec::new(Workload::Noop),
    };
    let mut group = c.benchmark_group("native");
    group
        .sample_size(100)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("spawn_noop_trial", |b| {
        b.iter(|| {
            let outcome = backend.run_trial(&trial);
            assert!(outcome.result.is_ok(), "{:?}", outcome.result);
        })
    });
    group.finish();
    backend.cleanup().unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
