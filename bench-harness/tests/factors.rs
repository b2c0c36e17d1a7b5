//! Factors, `--until-ci` and `--aa` through the whole run pipeline, with a synthetic backend
//! whose values follow from its column's settings and a fixed seed: the factorial plan, the
//! interleaving, the stopping rule and the A/A arithmetic are checked against known values.
#![allow(missing_docs, clippy::unwrap_used)]

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use bench_harness::backend::{
    Backend, BackendError, BackendKind, PrepareContext, Trial, TrialOutcome,
};
use bench_harness::backends::BackendOptions;
use bench_harness::manifest::{RunStatus, StopReason};
use bench_harness::run::{execute, MakeBackend, RunOptions};
use bench_harness::sample::Sample;
use bench_harness::stats::{self, SplitMix64};
use bench_harness::store::{load_run, StoredRun};
use bench_harness::suite::Suite;
use bench_harness::summary::{self, within_rule, LEVEL};
use workloads::result::{AgentClock, Outcome};
use workloads::{Metric, WorkloadResult, PROTOCOL_VERSION};

/// How a synthetic backend's values scatter.
#[derive(Clone, Copy)]
enum Noise {
    /// Uniform in ±`0` (a fraction) around the value.
    Uniform(f64),
    /// 100 times the value in odd repetitions: an interval that never narrows.
    Bimodal,
}

/// A backend whose metric `t` is 100 × 1.5 with a user namespace ÷ its vCPUs × `scale`, with
/// noise from its own fixed seed; metric `noisy` follows `noisy` noise.
struct Synth {
    kind: BackendKind,
    userns: bool,
    vcpus: u32,
    scale: f64,
    noise: Noise,
    noisy: Noise,
    rng: SplitMix64,
}

impl Synth {
    fn draw(&mut self, noise: Noise, repetition: u32) -> f64 {
        match noise {
            Noise::Uniform(w) => {
                let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                1.0 + w * (2.0 * u - 1.0)
            }
            Noise::Bimodal => {
                if repetition.is_multiple_of(2) {
                    1.0
                } else {
                    100.0
                }
            }
        }
    }
}

impl Backend for Synth {
    fn kind(&self) -> BackendKind {
        self.kind
    }
    fn prepare(&mut self, ctx: &PrepareContext) -> Result<(), BackendError> {
        // The column's sandbox size arrives with the context.
        self.vcpus = ctx.limits.vcpus;
        assert!(ctx.work_dir.is_dir() && ctx.io_scratch_dir.is_dir());
        Ok(())
    }
    fn run_trial(&mut self, trial: &Trial) -> TrialOutcome {
        let mut value = 100.0 * self.scale / f64::from(self.vcpus);
        if self.userns {
            value *= 1.5;
        }
        let t = value * self.draw(self.noise, trial.repetition);
        let noisy = 7.0 * self.draw(self.noisy, trial.repetition);
        TrialOutcome {
            result: Ok(WorkloadResult {
                protocol: PROTOCOL_VERSION,
                workload: trial.spec.workload.kind().into(),
                outcome: Outcome::Ok,
                metrics: vec![
                    Metric::lower("t", "ns", t),
                    Metric::lower("noisy", "ns", noisy),
                ],
                inspect: None,
                clock: AgentClock::default(),
                memory_inside: None,
                was_pid1: false,
                route: None,
            }),
            timeline: Vec::new(),
            host_metrics: Vec::new(),
            log_tail: String::new(),
            emulated: false,
        }
    }
    fn cleanup(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
}

/// Makes synthetic backends: the n-th instance made (columns are prepared in plan order) gets
/// `scales[n]` (1 beyond the list) and a seed of its own; `noisy` noise for workloads' `noisy`.
fn maker(scales: Vec<f64>, noise: Noise, noisy: Noise, same_seed: bool) -> MakeBackend {
    let made = Rc::new(Cell::new(0usize));
    Box::new(move |kind, options| {
        let n = made.get();
        made.set(n + 1);
        Box::new(Synth {
            kind,
            userns: options.user_namespace,
            vcpus: 1,
            scale: scales.get(n).copied().unwrap_or(1.0),
            noise,
            noisy,
            rng: SplitMix64::new(if same_seed { 7 } else { 1000 + n as u64 }),
        })
    })
}

fn run(
    suite: &str,
    make: MakeBackend,
) -> (StoredRun, bench_harness::run::RunOutcome, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let scratch = out.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let opts = RunOptions {
        suite: Suite::parse(suite, "test").unwrap(),
        out: out.path().join("results"),
        agent: "/bin/true".into(),
        scratch_parent: scratch.clone(),
        seed: 11,
        trial_timeout: Duration::from_secs(5),
        live_console: false,
        progress: false,
        command: vec!["test".into()],
        options: BackendOptions::default(),
        make_backend: make,
        registry: bench_harness::run_places::Registry::at(out.path().join("registry")),
        state_parent: out.path().join("state"),
    };
    let outcome = execute(&opts).unwrap();
    assert_eq!(outcome.status, RunStatus::Complete);
    // Every column's folders are gone with the run's scratch area.
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
    (load_run(&outcome.dir).unwrap(), outcome, out)
}

fn column_labels(run: &StoredRun) -> Vec<&str> {
    run.manifest
        .columns
        .iter()
        .map(|c| c.column.label.as_str())
        .collect()
}

fn values<'a>(
    samples: &'a [Sample],
    label: &'a str,
    workload: &'a str,
    metric: &'a str,
) -> impl Iterator<Item = f64> + 'a {
    samples
        .iter()
        .filter(move |s| s.is_measured_ok() && s.label() == label && s.workload == workload)
        .flat_map(move |s| s.metrics.iter().filter(move |m| m.name == metric))
        .map(|m| m.value)
}

#[test]
fn two_factors_make_a_factorial_plan_interleaved_with_labelled_columns_and_effects() {
    let suite = "reps = 6\nwarmup = 1\nbackends = [\"native\", \"container\"]\n\
                 [factors]\nuserns = [\"off\", \"on\"]\nvcpus = [1, 2]\n\
                 [[workload]]\nkind = \"noop\"\nprimary = [\"t\"]\n\
                 [[workload]]\nkind = \"syscall\"\nprimary = [\"t\"]\n";
    let (run, outcome, _tmp) = run(
        suite,
        maker(Vec::new(), Noise::Uniform(0.0), Noise::Uniform(0.0), false),
    );
    let labels = column_labels(&run);
    // userns applies to the container only; vcpus to the container (and the VM): native is
    // not crossed with either. The file's order of factors is kept: userns varies slowest.
    assert_eq!(
        labels,
        [
            "native",
            "container userns=off vcpus=1",
            "container userns=off vcpus=2",
            "container userns=on vcpus=1",
            "container userns=on vcpus=2",
        ]
    );
    assert!(run.manifest.columns.iter().all(|c| c.available));
    let cols = labels.len();
    assert_eq!(run.samples.len(), (6 + 1) * 2 * cols);
    assert_eq!(run.manifest.planned_trials, run.samples.len());
    // Warm-up first; then per repetition and workload every column once, in a block.
    let mut firsts = std::collections::BTreeSet::new();
    for (i, block) in run.samples.chunks(cols).enumerate() {
        assert_eq!(block.iter().all(|s| s.warmup), i < 2, "block {i}");
        let mut seen: Vec<String> = block.iter().map(Sample::label).collect();
        firsts.insert(seen[0].clone());
        seen.sort();
        let mut want: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        want.sort();
        assert_eq!(seen, want, "block {i}");
        assert!(block.iter().all(|s| s.workload == block[0].workload));
        assert!(block
            .iter()
            .all(|s| s.repetition == block[0].repetition && s.warmup == block[0].warmup));
    }
    assert!(firsts.len() >= 4, "the order is not shuffled: {firsts:?}");
    // Each trial went to its column's own instance: the values follow its settings.
    for s in &run.samples {
        let mut want = 100.0;
        if s.factors.get("userns").map(String::as_str) == Some("on") {
            want *= 1.5;
        }
        if s.factors.get("vcpus").map(String::as_str) == Some("2") {
            want /= 2.0;
        }
        assert_eq!(s.metrics[0].value, want, "{}", s.label());
    }
    // Effects: userns off → on is 1.5 at both vCPU counts; vcpus 1 → 2 halves, at both userns.
    let effects = &outcome.summary.effects;
    let find = |factor: &str, with: &str| {
        effects
            .iter()
            .find(|e| {
                e.factor == factor && e.with == with && e.workload == "noop" && e.metric == "t"
            })
            .unwrap_or_else(|| panic!("no effect {factor} with {with}: {effects:?}"))
    };
    for with in ["vcpus=1", "vcpus=2"] {
        let e = find("userns", with);
        assert_eq!((e.from.as_str(), e.to.as_str()), ("off", "on"));
        assert_eq!(e.ratio.ratio, 1.5);
        assert_eq!((e.n_from, e.n_to), (6, 6));
        assert!(e.headline);
    }
    for with in ["userns=off", "userns=on"] {
        assert_eq!(find("vcpus", with).ratio.ratio, 0.5);
    }
    // 2 factors × 2 settings of the other × 2 workloads × 2 metrics.
    assert_eq!(effects.len(), 16);
    let scope = &outcome.summary.factors;
    assert_eq!(scope[0].factor, "userns");
    assert_eq!(scope[0].backends, ["container"]);
    assert_eq!(scope[0].not_applied, ["native"]);
    let table = summary::render_table(&outcome.summary);
    for want in [
        "container userns=on vcpus=2",
        "Factor effects",
        "userns (off, on) on container, not crossed with native",
        "off → on",
        "1.50x [1.50, 1.50]",
    ] {
        assert!(table.contains(want), "{want:?} missing from:\n{table}");
    }
    // The report recomputes the same from the stored run.
    assert_eq!(summary::summarise_run(&run), outcome.summary);
}

#[test]
fn until_ci_stops_when_every_headline_interval_meets_the_rule_and_not_before() {
    let suite = "reps = 5\nwarmup = 0\nbackends = [\"native\", \"container\"]\n\
                 until_ci = \"4%\"\nmax_reps = 200\n\
                 [[workload]]\nkind = \"noop\"\nprimary = [\"t\"]\n\
                 [[workload]]\nkind = \"cpu\"\nprimary = [\"t\"]\n";
    // ±15% uniform noise: about 20 repetitions to get the interval within ±4%; the
    // non-headline metric is noisier and does not hold the run.
    let (run, outcome, _tmp) = run(
        suite,
        maker(Vec::new(), Noise::Uniform(0.15), Noise::Bimodal, false),
    );
    let u = run.manifest.until_ci.clone().unwrap();
    assert_eq!(u.stopped, StopReason::Converged);
    assert!(u.extra_rounds > 0, "converged without a round: {u:?}");
    for (w, reps) in &u.repetitions {
        assert!(*reps > 5 && *reps < 200, "{w}: {reps}");
        for label in ["native", "container"] {
            let all: Vec<f64> = values(&run.samples, label, w, "t").collect();
            assert_eq!(all.len() as u32, *reps, "{w} on {label}");
            let m = stats::median_ci(&all, LEVEL).unwrap();
            assert!(within_rule(&m, 4.0), "{w} on {label} stopped wide: {m:?}");
        }
        // One repetition fewer, some column was still wider than the rule: that round was
        // needed.
        let wider_before = ["native", "container"].iter().any(|label| {
            let before: Vec<f64> = run
                .samples
                .iter()
                .filter(|s| s.label() == *label && s.workload == *w && s.repetition + 1 < *reps)
                .map(|s| s.metrics[0].value)
                .collect();
            !within_rule(&stats::median_ci(&before, LEVEL).unwrap(), 4.0)
        });
        assert!(wider_before, "{w}: the last round was not needed");
    }
    // Workloads converge apart: rounds after one converged do not repeat it.
    let counts: Vec<u32> = u.repetitions.values().copied().collect();
    assert_eq!(
        run.samples.len() as u32,
        2 * counts.iter().sum::<u32>(),
        "{counts:?}"
    );
    let p = outcome.summary.precision.as_ref().unwrap();
    assert!(p.from_rule && p.threshold_pct == 4.0);
    assert_eq!(p.wide().count(), 0);
    assert_eq!(p.checks.len(), 4);
    // Non-headline rows wider than the rule are flagged all the same.
    assert!(outcome
        .summary
        .rows
        .iter()
        .any(|r| r.metric == "noisy" && r.wide));
    let table = summary::render_table(&outcome.summary);
    assert!(
        table.contains("every headline interval met the rule"),
        "{table}"
    );
}

#[test]
fn until_ci_stops_at_the_repetition_cap_and_names_what_did_not_converge() {
    let suite = "reps = 4\nwarmup = 0\nbackends = [\"native\"]\n\
                 until_ci = \"5%\"\nmax_reps = 13\n\
                 [[workload]]\nkind = \"noop\"\nprimary = [\"noisy\"]\n\
                 [[workload]]\nkind = \"cpu\"\nprimary = [\"t\"]\n";
    let (run, outcome, _tmp) = run(
        suite,
        maker(Vec::new(), Noise::Uniform(0.0), Noise::Bimodal, false),
    );
    let u = run.manifest.until_ci.clone().unwrap();
    assert_eq!(u.stopped, StopReason::RepetitionCap);
    // The bimodal headline metric never narrows: it ran to the cap; the exact one converged
    // at once and got no round.
    assert_eq!(u.repetitions["noop"], 13);
    assert_eq!(u.repetitions["cpu"], 4);
    assert_eq!(u.extra_rounds, 9);
    assert_eq!(values(&run.samples, "native", "noop", "noisy").count(), 13);
    let p = outcome.summary.precision.as_ref().unwrap();
    let wide: Vec<_> = p
        .wide()
        .map(|c| (c.workload.as_str(), c.metric.as_str()))
        .collect();
    assert_eq!(wide, [("noop", "noisy")]);
    let table = summary::render_table(&outcome.summary);
    for want in [
        "stopped at the repetition cap",
        "Did not converge: noop noisy",
        "1 of 2 headline intervals",
        "~",
    ] {
        assert!(table.contains(want), "{want:?} missing from:\n{table}");
    }
}

#[test]
fn until_ci_stops_at_the_wall_clock_cap() {
    let suite = "reps = 3\nwarmup = 0\nbackends = [\"native\"]\n\
                 until_ci = \"5%\"\nmax_wall = \"1ns\"\n\
                 [[workload]]\nkind = \"noop\"\nprimary = [\"noisy\"]\n";
    let (run, _outcome, _tmp) = run(
        suite,
        maker(Vec::new(), Noise::Uniform(0.0), Noise::Bimodal, false),
    );
    let u = run.manifest.until_ci.unwrap();
    assert_eq!(u.stopped, StopReason::WallCap);
    assert_eq!((u.extra_rounds, u.repetitions["noop"]), (0, 3));
    assert_eq!(run.samples.len(), 3);
}

#[test]
fn aa_reports_the_copy_over_the_original_with_its_interval() {
    // The copy (second native instance) measures 5% more than the original, on the same noise
    // sequence: A'/A must be 1.05, not 1/1.05, with an interval around it.
    let suite = "reps = 12\nwarmup = 1\nbackends = [\"native\", \"container\"]\naa = \"native\"\n\
                 [factors]\nuserns = [\"off\", \"on\"]\n\
                 [[workload]]\nkind = \"noop\"\nprimary = [\"t\"]\n\
                 [[workload]]\nkind = \"cpu\"\nprimary = [\"t\", \"noisy\"]\n";
    let (run, outcome, _tmp) = run(
        suite,
        maker(
            vec![1.0, 1.05],
            Noise::Uniform(0.02),
            Noise::Uniform(0.10),
            true,
        ),
    );
    let labels = column_labels(&run);
    assert_eq!(
        labels,
        [
            "native A",
            "native A'",
            "container userns=off",
            "container userns=on"
        ]
    );
    let aa = outcome.summary.aa.as_ref().unwrap();
    assert_eq!((aa.a.as_str(), aa.b.as_str()), ("native A", "native A'"));
    for w in ["noop", "cpu"] {
        let a: Vec<f64> = values(&run.samples, "native A", w, "t").collect();
        let b: Vec<f64> = values(&run.samples, "native A'", w, "t").collect();
        assert_eq!((a.len(), b.len()), (12, 12));
        let row = aa.row(w, "t").unwrap();
        let by_hand = stats::ratio_ci(&b, &a, LEVEL).unwrap();
        assert_eq!(row.ratio, by_hand);
        assert!((row.ratio.ratio - 1.05).abs() < 1e-9, "{row:?}");
        assert!(row.ratio.lo <= 1.05 && row.ratio.hi >= 1.05, "{row:?}");
        // The interval lies above 1: it reaches from 1 as far as its upper end.
        assert!(row.ratio.lo > 1.0, "{row:?}");
        assert!(
            (row.resolution_pct - 100.0 * (row.ratio.hi - 1.0)).abs() < 1e-9,
            "{row:?}"
        );
        // The copy's ratio to native is the A/A ratio: native A is the baseline.
        let vs = outcome
            .summary
            .rows
            .iter()
            .find(|r| r.backend == "native A'" && r.workload == w && r.metric == "t")
            .unwrap()
            .vs_native
            .unwrap();
        assert_eq!(vs, row.ratio);
    }
    // The floor is the median of the headline metrics' resolutions (3 headline rows).
    let mut res: Vec<f64> = aa
        .rows
        .iter()
        .filter(|r| r.headline)
        .map(|r| r.resolution_pct)
        .collect();
    assert_eq!(res.len(), 3);
    res.sort_by(f64::total_cmp);
    assert_eq!(aa.floor_pct, Some(res[1]));
    assert_eq!(aa.widest.as_ref().unwrap().2, res[2]);
    // The copy takes no part in effects; the A/A interval stands beside each effect.
    assert!(outcome.summary.effects.iter().all(|e| e.factor == "userns"));
    let table = summary::render_table(&outcome.summary);
    for want in [
        "A/A check (native A' / native A",
        "cannot be told from noise",
        "A/A [95% CI]",
        "1.05x [",
    ] {
        assert!(table.contains(want), "{want:?} missing from:\n{table}");
    }
}

#[test]
fn old_runs_without_factors_load_and_summarise_as_before() {
    // A sample line and manifest as written before factors existed.
    let suite = "reps = 3\nwarmup = 0\nbackends = [\"native\"]\n[[workload]]\nkind = \"noop\"\n";
    let (run, outcome, tmp) = run(
        suite,
        maker(Vec::new(), Noise::Uniform(0.0), Noise::Uniform(0.0), false),
    );
    let line = std::fs::read_to_string(run.dir.join("samples.jsonl")).unwrap();
    assert!(!line.contains("\"factors\""), "empty factors are written");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.dir.join("manifest.json")).unwrap())
            .unwrap();
    let obj = manifest.as_object_mut().unwrap();
    obj.remove("columns");
    for w in obj["suite"]["workloads"].as_array_mut().unwrap() {
        w.as_object_mut().unwrap().remove("primary");
    }
    std::fs::write(
        run.dir.join("manifest.json"),
        serde_json::to_string(&manifest).unwrap(),
    )
    .unwrap();
    let old = load_run(&run.dir).unwrap();
    assert!(old.manifest.columns.is_empty());
    let s = summary::summarise_run(&old);
    assert_eq!(s.rows, outcome.summary.rows);
    assert!(s.effects.is_empty() && s.aa.is_none());
    drop(tmp);
}
