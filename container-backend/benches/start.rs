//! Start-to-agent-ready and teardown of a container running the agent's `noop`, measured on the
//! runtime's own timeline (host CLOCK_MONOTONIC), not as wall time of the whole run: the agent's
//! own work between its start and its exit is not the runtime's cost.
//!
//! Needs root and the agent binary (`cargo build --release -p workloads --bin isolab-agent` for
//! `cargo bench`, which looks next to the bench executable, or `ISOLAB_AGENT=path`).

use std::time::Duration;

use container_backend::{CgroupLimits, ContainerConfig, RunRequest, Runtime, MARKER_FD};
use criterion::{criterion_group, criterion_main, Criterion};
use workloads::protocol::{encode_spec, MARKER_ENV, SPEC_ENV};
use workloads::{Workload, WorkloadSpec};

fn runtime() -> (Runtime, RunRequest) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the container benchmark creates namespaces and cgroups: run it as root"
    );
    let agent = workloads::locate::locate_agent(None).unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = ContainerConfig::new(agent);
    cfg.state_dir = std::env::temp_dir().join(format!("isolab-bench-{}", std::process::id()));
    // The sizes of the harness's default sandbox.
    cfg.limits = CgroupLimits {
        memory_bytes: Some(512 << 20),
        cpus: Some(1.0),
        pids_max: Some(256),
    };
    let rt = Runtime::new(cfg).unwrap_or_else(|e| panic!("{e}"));
    let spec = encode_spec(&WorkloadSpec::new(Workload::Noop)).unwrap_or_else(|e| panic!("{e}"));
    let req = RunRequest {
        args: Vec::new(),
        env: vec![
            (SPEC_ENV.to_owned(), spec),
            (MARKER_ENV.to_owned(), format!("fd:{MARKER_FD}")),
        ],
        netns: None,
    };
    (rt, req)
}

/// Runs `iters` containers and sums the span `pick` takes from each timeline.
fn span(
    rt: &Runtime,
    req: &RunRequest,
    iters: u64,
    pick: fn(&container_backend::Timeline) -> Option<u64>,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let r = rt.run(req).unwrap_or_else(|e| panic!("{e}"));
        let ns = pick(&r.timeline)
            .unwrap_or_else(|| panic!("incomplete timeline: {:?}\n{}", r.timeline, r.stderr_tail));
        total += Duration::from_nanos(ns);
    }
    total
}

fn bench(c: &mut Criterion) {
    let (mut rt, req) = runtime();
    let mut g = c.benchmark_group("container_noop");
    g.sample_size(30)
        .measurement_time(Duration::from_secs(15))
        .warm_up_time(Duration::from_secs(2));
    g.bench_function("start_to_agent_ready", |b| {
        b.iter_custom(|iters| span(&rt, &req, iters, |t| t.start_to_ready_ns()))
    });
    g.bench_function("teardown", |b| {
        b.iter_custom(|iters| span(&rt, &req, iters, |t| t.teardown_ns()))
    });
    g.finish();
    rt.cleanup().unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir(&rt.config().state_dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
