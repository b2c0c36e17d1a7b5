//! `isolab run`: prepares the backends, runs the plan, stores every sample as it is taken, and
//! summarises from what was stored.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use thiserror::Error;

use crate::backend::{Backend, BackendError, BackendKind, PrepareContext, Trial, TrialFailure};
use crate::backends::BackendOptions;
use crate::factors::{Column, ColumnSettings, FactorError};
use crate::lab_net::LabNet;
use crate::manifest::{
    self, BackendState, ColumnState, HostInfo, Manifest, RunStatus, StopReason, UntilCiOutcome,
};
use crate::plan::{self, Planner};
use crate::run_places::{Registry, RunPlaces};
use crate::sample::Sample;
use crate::stats;
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
    /// The backend settings before a column's factors are applied (the command line's).
    pub options: BackendOptions,
    /// Makes the backend instance of one column from its kind and options (its sandbox size comes
    /// with [`PrepareContext::limits`]); the real ones by default, fakes in tests.
    pub make_backend: MakeBackend,
    /// Where the run records its places, and finds those of killed runs.
    pub registry: Registry,
    /// Where the run's state folder (the container's rootfs) is made.
    pub state_parent: PathBuf,
}

/// Makes the backend instance of one column from its kind and options.
pub type MakeBackend = Box<dyn Fn(BackendKind, &BackendOptions) -> Box<dyn Backend>>;

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
    /// Columns whose backend could not run (their backend and the reason).
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
    /// The factors or the A/A column do not make a valid set of columns.
    #[error(transparent)]
    Columns(#[from] FactorError),
}

/// The backend instance of each column (by column index; `None` when it could not be prepared),
/// with the columns' labels; cleaned up when dropped.
struct Prepared(Vec<Option<Box<dyn Backend>>>, Vec<String>);

impl Drop for Prepared {
    fn drop(&mut self) {
        for (b, label) in self.0.iter_mut().zip(&self.1) {
            if let Some(b) = b {
                if let Err(e) = b.cleanup() {
                    eprintln!("warning: {label}: {e}");
                }
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
    let run_id = timefmt::fresh_run_id(&opts.out, "");
    // What a killed isolab left is reported and removed before this run makes its own.
    report_leftovers(&opts.registry);
    let mut writer = RunWriter::create(&opts.out, &run_id)?;
    // Every place the run makes is recorded as it is made, and removed when `places` drops
    // (also on error, Ctrl-C, SIGTERM and SIGHUP).
    let mut places = RunPlaces::create(
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

    let columns = opts.suite.columns().map_err(RunError::Columns)?;
    let mut planner = Planner::new(&columns, opts.seed);
    let mut trials = planner.initial(&opts.suite);
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
        columns: columns
            .iter()
            .map(|c| ColumnState {
                column: c.clone(),
                available: false,
                note: Some("not prepared".into()),
                facts: BTreeMap::new(),
            })
            .collect(),
        until_ci: None,
        lab_network: BTreeMap::new(),
    };
    // The lab network, when a workload talks to the peer: made before any backend, recorded in
    // the run's registry entry as soon as its peer exists.
    let (lab, lab_unavailable) = if opts
        .suite
        .workloads
        .iter()
        .any(|w| w.workload.peer().is_some())
    {
        let mut recorded = Ok(());
        let made = LabNet::create(&opts.agent, |pid| {
            recorded = places.record_process("lab network peer", pid);
        });
        recorded?;
        match made {
            Ok(lab) => {
                manifest.lab_network = BTreeMap::from([
                    ("subnet".to_owned(), lab.subnet()),
                    ("netns_inode".to_owned(), lab.ns_inode().to_string()),
                    ("peer_pid".to_owned(), lab.peer_pid().to_string()),
                    ("peer".to_owned(), lab.loopback_peer()),
                ]);
                (Some(Arc::new(lab)), None)
            }
            // The other workloads still run; the network ones fail with this reason.
            Err(e) => {
                eprintln!("warning: the network workloads will fail: {e}");
                manifest.lab_network = BTreeMap::from([("error".to_owned(), e.to_string())]);
                (None, Some(e.to_string()))
            }
        }
    } else {
        (None, None)
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
        lab: lab.clone(),
        lab_unavailable,
    };
    let base = ColumnSettings {
        options: opts.options.clone(),
        limits: opts.suite.limits,
    };
    let (mut prepared, mut unavailable) =
        prepare_columns(opts, &columns, &base, &ctx, &mut manifest)?;
    // Backends that run their trials as one batch get their column's trials now.
    for (i, slot) in prepared.0.iter_mut().enumerate() {
        if crate::interrupt::requested() {
            break;
        }
        let Some(backend) = slot.as_mut() else {
            continue;
        };
        let ctx_i = column_context(&ctx, i, &columns[i].settings(&base));
        let mine: Vec<Trial> = trials
            .iter()
            .filter(|t| t.column == i)
            .map(|t| trial_of(opts, t, &ctx_i.io_scratch_dir))
            .collect();
        if let Err(e) = backend.plan_trials(&mine) {
            let failure = unavailable_failure(&columns[i], &e);
            record_unavailable(&mut manifest, i, &failure);
            unavailable.insert(i, failure);
            if let Some(mut b) = slot.take() {
                if let Err(e) = b.cleanup() {
                    eprintln!("warning: {}: {e}", columns[i].label);
                }
            }
        }
    }
    writer.write_manifest(&manifest)?;

    let mut repeater = opts.suite.until_ci.map(|rule| {
        // Batched (emulated) columns ran their trials up front and give no times: they take part
        // in the suite's repetitions only.
        let eligible = (0..columns.len())
            .filter(|&i| prepared.0[i].is_some() && !is_batched(&columns[i], &base))
            .collect();
        Repeater::new(rule, &opts.suite, eligible)
    });
    if let Some(r) = &repeater {
        manifest.until_ci = Some(r.outcome(&opts.suite));
    }

    let bar = progress_bar(trials.len() as u64, opts.progress);
    let mut status = RunStatus::Complete;
    let trials_started = Instant::now();
    let mut next = 0;
    loop {
        if crate::interrupt::requested() {
            status = RunStatus::Interrupted;
            break;
        }
        if next == trials.len() {
            // The plan is done; `--until-ci` may add a round.
            let Some(r) = repeater.as_mut() else { break };
            let done = trials.len();
            let round = r.next_round(&mut planner, trials_started.elapsed(), done);
            manifest.until_ci = Some(r.outcome(&opts.suite));
            if round.is_empty() {
                break;
            }
            bar.suspend(|| eprintln!("{}", r.progress_line(&opts.suite, &round)));
            trials.extend(round);
            bar.set_length(trials.len() as u64);
            manifest.planned_trials = trials.len();
            writer.write_manifest(&manifest)?;
            continue;
        }
        let planned = trials[next].clone();
        next += 1;
        let column = &columns[planned.column];
        let entry = &opts.suite.workloads[planned.workload];
        bar.set_message(format!(
            "{}{} on {}",
            entry.name,
            if planned.warmup { " (warm-up)" } else { "" },
            column.label
        ));
        let started_at = timefmt::now_rfc3339();
        let base_sample = Sample {
            trial: planned.index,
            backend: planned.backend.name().into(),
            factors: column.factors.clone(),
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
        let sample = if let Some(f) = unavailable.get(&planned.column) {
            Sample {
                failure: Some(f.clone()),
                ..base_sample
            }
        } else if let Some(backend) = prepared.0[planned.column].as_mut() {
            let io = column_io_dir(&io_dir, planned.column);
            let trial = trial_of(opts, &planned, &io);
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
                ..base_sample
            }
        } else {
            continue; // Not prepared because Ctrl-C came during preparation.
        };
        if let Some(f) = &sample.failure {
            if !matches!(f, TrialFailure::Unavailable { .. }) {
                bar.suspend(|| {
                    eprintln!(
                        "trial {} ({} on {}): {f}",
                        planned.index, entry.name, column.label
                    )
                });
            }
        }
        writer.append(&sample)?;
        if let Some(r) = repeater.as_mut() {
            r.record(&planned, &sample);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    drop(prepared);
    drop(ctx);
    drop(lab);
    drop(places);

    let wall = started.elapsed();
    manifest.status = status;
    manifest.ended_at = Some(timefmt::now_rfc3339());
    manifest.wall_s = Some(wall.as_secs_f64());
    if let (Some(r), Some(out)) = (repeater.as_mut(), manifest.until_ci.as_mut()) {
        if status == RunStatus::Interrupted {
            r.stopped = StopReason::Interrupted;
        }
        *out = r.outcome(&opts.suite);
    }
    writer.write_manifest(&manifest)?;

    // Summarise from the file, not from memory: `isolab report` then prints the same numbers.
    let stored = store::load_run(writer.dir())?;
    let summary = summary::summarise_run(&stored);
    Ok(RunOutcome {
        dir: writer.dir().to_path_buf(),
        status,
        summary,
        wall,
        unavailable: unavailable
            .into_iter()
            .map(|(i, f)| (columns[i].backend, f.to_string()))
            .collect(),
    })
}

/// Reports and removes the places of runs whose isolab was killed.
pub(crate) fn report_leftovers(registry: &Registry) {
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

/// Makes and prepares one backend instance per column. A column whose backend cannot be prepared
/// is recorded unavailable (in the manifest, with the reason and fix), and its trials become
/// samples that say so.
fn prepare_columns(
    opts: &RunOptions,
    columns: &[Column],
    base: &ColumnSettings,
    ctx: &PrepareContext,
    manifest: &mut Manifest,
) -> Result<(Prepared, BTreeMap<usize, TrialFailure>), RunError> {
    let mut prepared = Prepared(
        Vec::new(),
        columns.iter().map(|c| c.label.clone()).collect(),
    );
    let mut unavailable = BTreeMap::new();
    for (i, column) in columns.iter().enumerate() {
        if crate::interrupt::requested() {
            prepared.0.push(None);
            continue;
        }
        let settings = column.settings(base);
        let ctx_i = column_context(ctx, i, &settings);
        for d in [&ctx_i.work_dir, &ctx_i.io_scratch_dir] {
            std::fs::create_dir_all(d).map_err(|e| RunError::Scratch {
                path: d.clone(),
                why: e.to_string(),
            })?;
        }
        let mut backend = (opts.make_backend)(column.backend, &settings.options);
        match backend.prepare(&ctx_i) {
            Ok(()) => {
                let state = BackendState {
                    available: true,
                    note: None,
                    facts: backend.facts(),
                };
                manifest
                    .backends
                    .entry(column.backend.name().into())
                    .or_insert_with(|| state.clone());
                manifest.columns[i].available = true;
                manifest.columns[i].note = None;
                manifest.columns[i].facts = state.facts;
                prepared.0.push(Some(backend));
            }
            Err(e) => {
                let failure = unavailable_failure(column, &e);
                record_unavailable(manifest, i, &failure);
                unavailable.insert(i, failure);
                prepared.0.push(None);
            }
        }
    }
    Ok((prepared, unavailable))
}

/// The failure every trial of a column gets when its backend cannot run; says so on stderr.
fn unavailable_failure(column: &Column, e: &BackendError) -> TrialFailure {
    let (reason, fix) = match e {
        BackendError::Unavailable { reason, fix, .. } => (reason.clone(), fix.clone()),
        other => (other.to_string(), "see `isolab doctor`".into()),
    };
    eprintln!("{}: unavailable: {reason}\n  fix: {fix}", column.label);
    TrialFailure::Unavailable { reason, fix }
}

fn record_unavailable(manifest: &mut Manifest, i: usize, failure: &TrialFailure) {
    let note = match failure {
        TrialFailure::Unavailable { reason, fix } => format!("{reason}. Fix: {fix}"),
        other => other.to_string(),
    };
    let column = &mut manifest.columns[i];
    column.available = false;
    column.note = Some(note.clone());
    let kind = column.column.backend.name().to_owned();
    // The backend's entry says what its first column said; a later column that fails while an
    // earlier one works is in `columns`.
    let first_of_kind = manifest
        .columns
        .iter()
        .position(|c| c.column.backend.name() == kind)
        == Some(i);
    if first_of_kind || !manifest.backends.contains_key(&kind) {
        manifest.backends.insert(
            kind,
            BackendState {
                available: false,
                note: Some(note),
                facts: BTreeMap::new(),
            },
        );
    }
}

/// Whether a column's backend runs its trials as one batch up front (the VM in the emulated
/// machine), so rounds added later cannot reach it.
fn is_batched(column: &Column, base: &ColumnSettings) -> bool {
    column.backend == BackendKind::Vm && column.settings(base).options.vm_in_emulator
}

/// The I/O scratch directory of column `i` (a folder of its own: a user-namespaced container
/// makes a directory there that only its own column may own).
fn column_io_dir(io_dir: &Path, i: usize) -> PathBuf {
    io_dir.join(format!("c{i}"))
}

/// What column `i`'s backend instance is prepared with: its own folders inside the run's, and
/// its sandbox size.
fn column_context(ctx: &PrepareContext, i: usize, settings: &ColumnSettings) -> PrepareContext {
    PrepareContext {
        work_dir: ctx.work_dir.join(format!("c{i}")),
        io_scratch_dir: column_io_dir(&ctx.io_scratch_dir, i),
        limits: settings.limits,
        ..ctx.clone()
    }
}

/// `--until-ci`: decides, after the planned trials, whether another round of repetitions is
/// needed, and for which workloads.
struct Repeater {
    rule: crate::suite::UntilCi,
    /// Headline metrics per workload index.
    primary: Vec<Vec<String>>,
    /// Columns that take part (prepared, not batched).
    eligible: Vec<usize>,
    /// Successful measured values: (column, workload, metric) -> values.
    values: BTreeMap<(usize, usize, String), Vec<f64>>,
    /// Measured repetitions planned per workload.
    reps: Vec<u32>,
    extra_rounds: u32,
    stopped: StopReason,
}

impl Repeater {
    fn new(rule: crate::suite::UntilCi, suite: &Suite, eligible: Vec<usize>) -> Self {
        Self {
            rule,
            primary: suite
                .workloads
                .iter()
                .map(|w| w.primary_metrics())
                .collect(),
            eligible,
            values: BTreeMap::new(),
            reps: vec![suite.reps; suite.workloads.len()],
            extra_rounds: 0,
            stopped: StopReason::Running,
        }
    }

    fn record(&mut self, planned: &plan::PlannedTrial, sample: &Sample) {
        if !sample.is_measured_ok() {
            return;
        }
        for m in &sample.metrics {
            if self.primary[planned.workload].contains(&m.name) {
                self.values
                    .entry((planned.column, planned.workload, m.name.clone()))
                    .or_default()
                    .push(m.value);
            }
        }
    }

    /// Workloads with a headline interval (of a taking-part column) wider than the rule.
    fn unconverged(&self) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .values
            .iter()
            .filter(|((c, _, _), _)| self.eligible.contains(c))
            .filter(|(_, v)| {
                !stats::median_ci(v, summary::LEVEL)
                    .is_some_and(|m| summary::within_rule(&m, self.rule.pct))
            })
            .map(|((_, w, _), _)| *w)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The next round, empty when the rule is met or a cap is reached (then `stopped` says
    /// which). `elapsed` and `done` (trials so far) estimate how long a round takes.
    fn next_round(
        &mut self,
        planner: &mut Planner,
        elapsed: Duration,
        done: usize,
    ) -> Vec<plan::PlannedTrial> {
        let open = self.unconverged();
        if open.is_empty() {
            self.stopped = StopReason::Converged;
            return Vec::new();
        }
        let workloads: Vec<usize> = open
            .into_iter()
            .filter(|&w| self.reps[w] < self.rule.max_reps)
            .collect();
        if workloads.is_empty() {
            self.stopped = StopReason::RepetitionCap;
            return Vec::new();
        }
        let per_trial = elapsed.as_secs_f64() / done.max(1) as f64;
        let round_len = workloads.len() * self.eligible.len();
        if elapsed.as_secs_f64() + per_trial * round_len as f64 > self.rule.max_wall_s {
            self.stopped = StopReason::WallCap;
            return Vec::new();
        }
        // Each workload's next repetition number; they may differ after some converged.
        let mut round = Vec::new();
        for &w in &workloads {
            round.extend(planner.round(&[w], &self.eligible, self.reps[w], false));
            self.reps[w] += 1;
        }
        self.extra_rounds += 1;
        round
    }

    /// What a new round does, for the terminal.
    fn progress_line(&self, suite: &Suite, round: &[plan::PlannedTrial]) -> String {
        let mut names: Vec<&str> = round
            .iter()
            .map(|t| suite.workloads[t.workload].name.as_str())
            .collect();
        names.dedup();
        format!(
            "--until-ci {}%: round {} adds {} trial(s): {} (headline intervals still wider)",
            self.rule.pct,
            self.extra_rounds,
            round.len(),
            names.join(", ")
        )
    }

    fn outcome(&self, suite: &Suite) -> UntilCiOutcome {
        UntilCiOutcome {
            rule_pct: self.rule.pct,
            max_reps: self.rule.max_reps,
            max_wall_s: self.rule.max_wall_s,
            extra_rounds: self.extra_rounds,
            repetitions: suite
                .workloads
                .iter()
                .zip(&self.reps)
                .map(|(w, r)| (w.name.clone(), *r))
                .collect(),
            stopped: self.stopped,
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
