//! `isolab run`: prepares the backends, runs the plan, stores every sample as it is taken, and
//! summarises from what was stored.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use thiserror::Error;

use crate::backend::{Backend, BackendError, BackendKind, PrepareContext, Trial, TrialFailure};
use crate::manifest::{self, BackendState, HostInfo, Manifest, RunStatus};
use crate::plan;
use crate::run_places::{Registry, RunPlaces};
use crate::sample::Sample;
use crate::store::{self, RunWriter, StoreError};
use crate::suite::Suite;
use crate::summary::{self, Summary};
use crate::timefmt;

/// Everything `isolab run` needs.
pub struct RunOptions {
    /// The suite, after command-line overrides.
    pub suite: Suite,
    /// Parent directory of the run directory.
    pub out: PathBuf,
    /// The agent binary.
    pub agent: PathBuf,
    /// Directory on a disk-backed filesystem for I/O targets and backend work files.
    pub scratch_parent: PathBuf,
    /// Seed for the backend shuffle.
    pub seed: u64,
    /// Per-trial timeout.
    pub trial_timeout: Duration,
    /// Show consoles live.
    pub live_console: bool,
    /// Draw a progress bar.
    pub progress: bool,
    /// The command line, for the manifest.
    pub command: Vec<String>,
    /// Makes backends; the real ones by default, fakes in tests.
    pub make_backend: Box<dyn Fn(BackendKind) -> Box<dyn Backend>>,
    /// Where the run records its places, and finds those of killed runs.
    pub registry: Registry,
    /// Where the run's state folder (the container's rootfs) is made.
    pub state_parent: PathBuf,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("suite", &self.suite.source)
            .field("out", &self.out)
            .finish_non_exhaustive()
    }
}

/// What a finished (or interrupted) run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The run directory.
    pub dir: PathBuf,
    /// How it ended.
    pub status: RunStatus,
    /// The summary, computed from the stored samples.
    pub summary: Summary,
    /// Wall time.
    pub wall: Duration,
    /// Backends that could not run, with the reason.
    pub unavailable: Vec<(BackendKind, String)>,
}

/// Errors that stop a run before or while it runs.
#[derive(Debug, Error)]
pub enum RunError {
    /// The scratch directory is missing or unusable.
    #[error("the I/O scratch directory {path} cannot be used: {why}. Pass an existing directory on a disk-backed filesystem with --io-dir")]
    Scratch {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Reading or writing results.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run's folders could not be made.
    #[error(transparent)]
    Places(#[from] crate::run_places::PlacesError),
}

/// Backends prepared for a run, cleaned up when dropped.
struct Prepared(Vec<(BackendKind, Box<dyn Backend>)>);

impl Drop for Prepared {
    fn drop(&mut self) {
        for (kind, b) in &mut self.0 {
            if let Err(e) = b.cleanup() {
                eprintln!("warning: {kind}: {e}");
            }
        }
    }
}

fn check_scratch_parent(p: &Path) -> Result<(), RunError> {
    let scratch = |why: String| RunError::Scratch {
        path: p.to_path_buf(),
        why,
    };
    let meta = std::fs::metadata(p).map_err(|e| scratch(e.to_string()))?;
    if !meta.is_dir() {
        return Err(scratch("not a directory".into()));
    }
    Ok(())
}

/// Runs a suite to the end or to Ctrl-C.
pub fn execute(opts: &RunOptions) -> Result<RunOutcome, RunError> {
    let started = Instant::now();
    check_scratch_parent(&opts.scratch_parent)?;
    let mut run_id = timefmt::run_id_now();
    for n in 2.. {
        if !opts.out.join(&run_id).exists() {
            break;
        }
        run_id = format!("{}-{n}", timefmt::run_id_now());
    }
    // What a killed isolab left is reported and removed before this run makes its own.
    report_leftovers(&opts.registry);
    let mut writer = RunWriter::create(&opts.out, &run_id)?;
    // Every place the run makes is recorded as it is made, and removed when `places` drops
    // (also on error, Ctrl-C, SIGTERM and SIGHUP).
    let places = RunPlaces::create(
        &run_id,
        &opts.scratch_parent,
        &opts.state_parent,
        opts.registry.clone(),
        &container_backend::CgroupSettings::default(),
    )?;
    if let Some(note) = &places.cgroup_note {
        eprintln!("note: trials run without a run cgroup: {note}");
    }
    let io_dir = places.io_dir.clone();

    let trials = plan::plan(&opts.suite, opts.seed);
    let mut manifest = Manifest {
        run_id: run_id.clone(),
        started_at: timefmt::now_rfc3339(),
        ended_at: None,
        wall_s: None,
        status: RunStatus::Running,
        isolab_version: env!("CARGO_PKG_VERSION").into(),
        git_commit: manifest::GIT_COMMIT.into(),
        command: opts.command.clone(),
        agent_sha256: manifest::file_sha256(&opts.agent),
        agent_path: opts.agent.display().to_string(),
        host: HostInfo::collect(),
        suite: opts.suite.clone(),
        seed: opts.seed,
        planned_trials: trials.len(),
        backends: BTreeMap::new(),
    };
    writer.write_manifest(&manifest)?;

    let ctx = PrepareContext {
        agent: opts.agent.clone(),
        work_dir: places.work_dir.clone(),
        io_scratch_dir: io_dir.clone(),
        limits: opts.suite.limits,
        trial_timeout: opts.trial_timeout,
        live_console: opts.live_console,
        state_dir: places.state_dir.clone(),
        run_cgroup: places.cgroup.clone(),
    };
    let mut prepared = Prepared(Vec::new());
    let mut unavailable: BTreeMap<BackendKind, TrialFailure> = BTreeMap::new();
    let mut note_unavailable = |kind: BackendKind, e: &BackendError, manifest: &mut Manifest| {
        let (reason, fix) = match e {
            BackendError::Unavailable { reason, fix, .. } => (reason.clone(), fix.clone()),
            other => (other.to_string(), "see `isolab doctor`".into()),
        };
        eprintln!("{kind}: unavailable: {reason}\n  fix: {fix}");
        unavailable.insert(
            kind,
            TrialFailure::Unavailable {
                reason: reason.clone(),
                fix: fix.clone(),
            },
        );
        manifest.backends.insert(
            kind.name().into(),
            BackendState {
                available: false,
                note: Some(format!("{reason}. Fix: {fix}")),
                facts: BTreeMap::new(),
            },
        );
    };
    for &kind in &opts.suite.backends {
        if crate::interrupt::requested() {
            break;
        }
        let mut backend = (opts.make_backend)(kind);
        match backend.prepare(&ctx) {
            Ok(()) => {
                manifest.backends.insert(
                    kind.name().into(),
                    BackendState {
                        available: true,
                        note: None,
                        facts: backend.facts(),
                    },
                );
                prepared.0.push((kind, backend));
            }
            Err(e) => note_unavailable(kind, &e, &mut manifest),
        }
    }
    // Backends that run their trials as one batch do it now.
    let mut index = 0;
    while index < prepared.0.len() && !crate::interrupt::requested() {
        let (kind, backend) = &mut prepared.0[index];
        let kind = *kind;
        let mine: Vec<Trial> = trials
            .iter()
            .filter(|t| t.backend == kind)
            .map(|t| trial_of(opts, t, &io_dir))
            .collect();
        match backend.plan_trials(&mine) {
            Ok(()) => index += 1,
            Err(e) => {
                note_unavailable(kind, &e, &mut manifest);
                let (_, mut backend) = prepared.0.remove(index);
                if let Err(e) = backend.cleanup() {
                    eprintln!("warning: {kind}: {e}");
                }
            }
        }
    }
    writer.write_manifest(&manifest)?;

    let bar = progress_bar(trials.len() as u64, opts.progress);
    let mut status = RunStatus::Complete;
    for planned in &trials {
        if crate::interrupt::requested() {
            status = RunStatus::Interrupted;
            break;
        }
        let entry = &opts.suite.workloads[planned.workload];
        bar.set_message(format!(
            "{}{} on {}",
            entry.name,
            if planned.warmup { " (warm-up)" } else { "" },
            planned.backend
        ));
        let started_at = timefmt::now_rfc3339();
        let base = Sample {
            trial: planned.index,
            backend: planned.backend.name().into(),
            workload: entry.name.clone(),
            kind: entry.workload.kind().into(),
            repetition: planned.repetition,
            warmup: planned.warmup,
            started_at,
            failure: None,
            emulated: false,
            metrics: Vec::new(),
            timeline: Vec::new(),
            agent: None,
            log_tail: None,
        };
        let sample = if let Some(f) = unavailable.get(&planned.backend) {
            Sample {
                failure: Some(f.clone()),
                ..base
            }
        } else if let Some((_, backend)) =
            prepared.0.iter_mut().find(|(k, _)| *k == planned.backend)
        {
            let trial = trial_of(opts, planned, &io_dir);
            let outcome = backend.run_trial(&trial);
            if crate::interrupt::requested() && outcome.result.is_err() {
                // The trial was cut short by Ctrl-C: its numbers mean nothing; do not store it.
                status = RunStatus::Interrupted;
                break;
            }
            let (agent, failure) = match outcome.result {
                Ok(r) => (Some(r), None),
                Err(f) => (None, Some(f)),
            };
            let mut metrics = agent
                .as_ref()
                .map(|r| r.metrics.clone())
                .unwrap_or_default();
            metrics.extend(outcome.host_metrics);
            Sample {
                failure,
                emulated: outcome.emulated,
                metrics,
                timeline: outcome.timeline,
                agent,
                log_tail: (!outcome.log_tail.is_empty()).then_some(outcome.log_tail),
                ..base
            }
        } else {
            continue; // Not prepared because Ctrl-C came during preparation.
        };
        if let Some(f) = &sample.failure {
            if !matches!(f, TrialFailure::Unavailable { .. }) {
                bar.suspend(|| {
                    eprintln!(
                        "trial {} ({} on {}): {f}",
                        planned.index, entry.name, planned.backend
                    )
                });
            }
        }
        writer.append(&sample)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    drop(prepared);
    drop(ctx);
    drop(places);

    let wall = started.elapsed();
    manifest.status = status;
    manifest.ended_at = Some(timefmt::now_rfc3339());
    manifest.wall_s = Some(wall.as_secs_f64());
    writer.write_manifest(&manifest)?;

    // Summarise from the file, not from memory: `isolab report` then prints the same numbers.
    let stored = store::load_run(writer.dir())?;
    let order: Vec<String> = stored
        .manifest
        .suite
        .workloads
        .iter()
        .map(|w| w.name.clone())
        .collect();
    let summary = summary::summarise(&stored.samples, &order);
    Ok(RunOutcome {
        dir: writer.dir().to_path_buf(),
        status,
        summary,
        wall,
        unavailable: unavailable
            .into_iter()
            .map(|(k, f)| (k, f.to_string()))
            .collect(),
    })
}

/// Reports and removes the places of runs whose isolab was killed.
fn report_leftovers(registry: &Registry) {
    for run in registry.clean_dead().cleaned {
        eprintln!(
            "found leftovers of run {} (isolab pid {} is gone): removed {} place(s){}",
            run.run_id,
            run.pid,
            run.removed.len(),
            if run.kept.is_empty() {
                String::new()
            } else {
                format!("; left alone: {}", run.kept.join("; "))
            }
        );
        for p in &run.removed {
            eprintln!("  removed {}", p.display());
        }
    }
}

/// The trial a backend gets for a planned one: the suite entry's spec, I/O aimed at the scratch
/// directory.
fn trial_of(opts: &RunOptions, planned: &plan::PlannedTrial, io_dir: &Path) -> Trial {
    let entry = &opts.suite.workloads[planned.workload];
    let mut spec = workloads::WorkloadSpec::new(entry.workload.clone());
    if spec.workload.io_path().is_some() {
        spec.workload.set_io_path(&io_dir.display().to_string());
    }
    Trial {
        index: planned.index,
        repetition: planned.repetition,
        warmup: planned.warmup,
        spec,
    }
}

fn progress_bar(len: u64, visible: bool) -> ProgressBar {
    if !visible || !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} trials · ETA {eta} · {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
