//! The harness pipeline with fake backends: deterministic, so the planning, storing and
//! summarising can be checked against known values.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use bench_harness::backend::{
    Backend, BackendError, BackendKind, PrepareContext, Trial, TrialFailure, TrialOutcome,
};
use bench_harness::backends::BackendOptions;
use bench_harness::manifest::RunStatus;
use bench_harness::run::{execute, RunOptions};
use bench_harness::store::load_run;
use bench_harness::suite::Suite;
use workloads::result::{AgentClock, Outcome};
use workloads::{Metric, WorkloadResult, PROTOCOL_VERSION};

/// Native reports 10 + repetition, container twice that; the VM is unavailable.
struct Fake(BackendKind);

impl Backend for Fake {
    fn kind(&self) -> BackendKind {
        self.0
    }
    fn prepare(&mut self, _ctx: &PrepareContext) -> Result<(), BackendError> {
        if self.0 == BackendKind::Vm {
            return Err(BackendError::Unavailable {
                backend: self.0,
                reason: "no hardware KVM".into(),
                fix: "use a host with VT-x".into(),
            });
        }
        Ok(())
    }
    fn run_trial(&mut self, trial: &Trial) -> TrialOutcome {
        let base = 10.0 + f64::from(trial.repetition);
        let value = if self.0 == BackendKind::Container {
            2.0 * base
        } else {
            base
        };
        let failed = trial.spec.workload.kind() == "timer" && self.0 == BackendKind::Container;
        TrialOutcome {
            result: if failed {
                Err(TrialFailure::OutOfMemory)
            } else {
                Ok(WorkloadResult {
                    protocol: PROTOCOL_VERSION,
                    workload: trial.spec.workload.kind().into(),
                    outcome: Outcome::Ok,
                    metrics: vec![Metric::lower("t", "ns", value)],
                    inspect: None,
                    clock: AgentClock::default(),
                    memory_inside: None,
                    was_pid1: false,
                    route: None,
                })
            },
            timeline: Vec::new(),
            host_metrics: vec![Metric::lower("host.wall", "ms", 1.0)],
            log_tail: String::new(),
            emulated: false,
        }
    }
    fn cleanup(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
}

fn make(kind: BackendKind, _options: &BackendOptions) -> Box<dyn Backend> {
    Box::new(Fake(kind))
}

#[test]
fn fake_run_is_stored_and_summarised_with_known_values() {
    let out = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let suite_text =
        "reps = 10\nwarmup = 2\n[[workload]]\nkind = \"noop\"\n[[workload]]\nkind = \"timer\"\n";
    let opts = RunOptions {
        suite: Suite::parse(suite_text, "test").unwrap(),
        out: out.path().to_path_buf(),
        agent: "/bin/true".into(),
        scratch_parent: scratch.path().to_path_buf(),
        seed: 3,
        trial_timeout: Duration::from_secs(5),
        live_console: false,
        progress: false,
        command: vec!["test".into()],
        options: BackendOptions::default(),
        make_backend: Box::new(make),
        registry: bench_harness::run_places::Registry::at(scratch.path().join("registry")),
        state_parent: scratch.path().join("state"),
    };
    let outcome = execute(&opts).unwrap();
    assert_eq!(outcome.status, RunStatus::Complete);
    let run = load_run(&outcome.dir).unwrap();
    assert_eq!(run.samples.len(), 12 * 2 * 3);
    assert_eq!(run.manifest.status, RunStatus::Complete);
    assert_eq!(run.manifest.planned_trials, 72);
    assert!(!run.manifest.backends["vm"].available);
    assert!(run.manifest.backends["vm"]
        .note
        .as_deref()
        .unwrap()
        .contains("VT-x"));
    // Every VM trial is recorded as unavailable, none silently dropped.
    let vm: Vec<_> = run.samples.iter().filter(|s| s.backend == "vm").collect();
    assert_eq!(vm.len(), 24);
    assert!(vm
        .iter()
        .all(|s| matches!(s.failure, Some(TrialFailure::Unavailable { .. }))));

    // Medians: native 10..19 -> 14.5, container 20..38 (even) -> 29, ratio 2.
    let rows = &outcome.summary.rows;
    let find = |w: &str, m: &str, b: &str| {
        rows.iter()
            .find(|r| r.workload == w && r.metric == m && r.backend == b)
            .unwrap_or_else(|| panic!("no row {w}/{m}/{b}"))
    };
    assert_eq!(find("noop", "t", "native").median.median, 14.5);
    assert_eq!(find("noop", "t", "native").median.n, 10);
    let c = find("noop", "t", "container");
    assert_eq!(c.median.median, 29.0);
    assert!((c.vs_native.unwrap().ratio - 2.0).abs() < 1e-12);
    // The container's timer trials all failed: reported, not summarised.
    assert!(!rows
        .iter()
        .any(|r| r.workload == "timer" && r.backend == "container"));
    assert!(outcome
        .summary
        .failures
        .iter()
        .any(|f| f.workload == "timer" && f.backend == "container" && f.count == 10));
    // The run folder, the state folder and the registry entry are gone.
    let left: Vec<String> = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("isolab-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        std::fs::read_dir(scratch.path().join("state"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(scratch.path().join("registry"))
            .unwrap()
            .count(),
        0
    );
}
