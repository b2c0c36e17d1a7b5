//! `isolab density`: how many instances fit on this host, measured with one memory meter for
//! every backend, and how fast they start together.
//!
//! For each backend and each N (`--count 1,10,100,1000`, ascending) it runs rounds
//! (`round.rs`): read the host, start N instances of the `wait` workload (each sets up its working
//! set, reports ready and waits), read the host again and every instance's PSS once they have
//! settled, start a few more one at a time beside them, tear everything down and wait until the
//! host's memory is back. What the rounds mean is in [`analysis`]; the meter in [`meter`]; the
//! instances behind one interface in [`instance`] (native, container, the container's floor;
//! the VM when it runs in its own VMM process).
//!
//! Safety: before each N the run estimates what it needs from what it measured so far and
//! refuses an N that would leave less than the headroom; while starting it stops adding
//! instances when MemAvailable falls under the floor; host limits are checked first and a start
//! that hits one anyway says which. Every place it makes is in the run's registry entry (issue
//! 10's run folder and cgroup; KSM's switch when `--ksm` changes it), so Ctrl-C, SIGTERM or a
//! `kill -9` followed by `isolab doctor --clean` leave nothing behind.

pub mod analysis;
mod charts;
pub mod container;
pub mod emulated;
pub mod floor;
pub mod instance;
pub mod ksm;
pub mod limits;
pub mod meter;
pub mod native;
pub mod record;
pub mod render;
mod round;
pub mod vm;

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use thiserror::Error;
use workloads::kernels::wait::WaitParams;
use workloads::protocol::{encode_spec, MARKER_ENV, SPEC_ENV};
use workloads::{Workload, WorkloadSpec};

use crate::backend::{PrepareContext, SandboxLimits};
use crate::manifest::{self, HostInfo, RunStatus};
use crate::run_places::{Registry, RunPlaces};
use crate::store::StoreError;
use crate::timefmt;
use instance::{Kind, Launcher};
use ksm::{KsmMode, KsmState};
use record::{BackendEntry, DensityManifest, Parallel, RoundWriter, Stop};

pub(crate) use charts::{
    components as charts_components, memory as charts_memory, start as charts_start,
};

/// Everything `isolab density` needs.
#[derive(Debug, Clone)]
pub struct DensityOptions {
    /// Backends in the order asked (`floor` may be among them).
    pub backends: Vec<Kind>,
    /// Add the container's floor after the container (when the container is asked).
    pub with_floor: bool,
    /// The Ns, ascending, distinct.
    pub counts: Vec<usize>,
    /// Rounds per N.
    pub rounds: u32,
    /// How many start at once.
    pub parallel: Parallel,
    /// Working set of each instance, KiB.
    pub working_set_kib: u64,
    /// One more started beside N, per round.
    pub beside: u32,
    /// Headroom for "instances that fit", percent of MemTotal.
    pub headroom_pct: f64,
    /// Stop adding instances under this MemAvailable, percent of MemTotal.
    pub floor_pct: f64,
    /// KSM for the run.
    pub ksm: KsmMode,
    /// Wait after the last ready before reading the host.
    pub settle: Duration,
    /// At most this long for KSM to settle (`--ksm on`).
    pub ksm_settle: Duration,
    /// At most this long for MemAvailable to come back after a teardown.
    pub recovery_limit: Duration,
    /// An instance not ready after this long has failed.
    pub ready_timeout: Duration,
    /// Samples per reading of the host.
    pub samples: u32,
    /// Time between two samples of a reading.
    pub sample_every: Duration,
    /// The container's sandbox (its cgroup's limits).
    pub limits: SandboxLimits,
    /// The container's seccomp filter.
    pub seccomp: container_backend::SeccompProfile,
    /// Where run folders go.
    pub out: PathBuf,
    /// The agent.
    pub agent: PathBuf,
    /// Where the run's private folder is made.
    pub io_parent: PathBuf,
    /// The run registry.
    pub registry: Registry,
    /// Where the state folder is made.
    pub state_parent: PathBuf,
    /// The command line, for the manifest.
    pub command: Vec<String>,
    /// Progress on the terminal.
    pub progress: bool,
    /// Starter threads (default: min(P, 16)).
    pub starters: Option<usize>,
    /// The VMs' guest kernel (default: the micro kernel).
    pub kernel: Option<PathBuf>,
    /// Run the VMs inside the emulated machine (one boot of it for all their rounds).
    pub vm_in_emulator: bool,
    /// Print every round, and the manifest at the end, framed on stdout (the run inside the
    /// emulated machine, for the host that started it).
    pub emit_rounds: bool,
}

/// What a density run produced.
#[derive(Debug)]
pub struct DensityOutcome {
    /// The run folder.
    pub dir: PathBuf,
    /// How it ended.
    pub status: RunStatus,
    /// The summary, recomputed from the stored files.
    pub summary: analysis::Summary,
    /// Wall time.
    pub wall: Duration,
}

/// Errors that stop a density run.
#[derive(Debug, Error)]
pub enum DensityError {
    /// A bad option.
    #[error("{0}")]
    Usage(String),
    /// Reading or writing the run folder.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run's places.
    #[error(transparent)]
    Places(#[from] crate::run_places::PlacesError),
}

struct Terminal {
    bar: ProgressBar,
}

impl round::Progress for Terminal {
    fn note(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }
    fn starting(&self, ready: usize, of: usize) {
        self.bar.set_length(of as u64);
        self.bar.set_position(ready as u64);
    }
    fn interrupted(&self) -> bool {
        crate::interrupt::requested()
    }
}

/// The workload every instance runs.
fn instance_spec(working_set_kib: u64) -> WorkloadSpec {
    WorkloadSpec::new(Workload::Wait(WaitParams { working_set_kib }))
}

/// The spec every instance runs, with the marker on fd 3.
fn instance_env(working_set_kib: u64) -> Result<Vec<(String, String)>, DensityError> {
    let spec = encode_spec(&instance_spec(working_set_kib))
        .map_err(|e| DensityError::Usage(e.to_string()))?;
    Ok(vec![
        (SPEC_ENV.to_owned(), spec),
        (
            MARKER_ENV.to_owned(),
            format!("fd:{}", container_backend::MARKER_FD),
        ),
    ])
}

/// The launcher of one backend.
fn launcher(
    kind: Kind,
    opts: &DensityOptions,
    ctx: &PrepareContext,
) -> Result<Arc<dyn Launcher>, String> {
    let env = instance_env(opts.working_set_kib).map_err(|e| e.to_string())?;
    Ok(match kind {
        Kind::Native => Arc::new(native::NativeLauncher::new(
            &opts.agent,
            &env,
            ctx.run_cgroup.as_deref(),
        )?),
        Kind::Container => Arc::new(container::ContainerLauncher::new(ctx, env, opts.seccomp)?),
        Kind::Floor => Arc::new(floor::FloorLauncher::new(
            &opts.agent,
            &env,
            ctx.run_cgroup.clone(),
        )?),
        Kind::Vm => Arc::new(vm::VmLauncher::new(
            ctx,
            opts.kernel.as_deref(),
            &instance_spec(opts.working_set_kib),
            opts.ksm == KsmMode::On,
        )?),
    })
}

/// What one more instance needs, KiB, from the rounds of one N: the largest of the medians of
/// its PSS, its cgroup's charge and (from N = 50 on, where a busy host's noise is spread over
/// enough instances) its share of the MemAvailable drop, plus a quarter; at least 64 KiB.
fn estimate_kib(rounds: &[record::RoundRecord]) -> Option<f64> {
    let med = |v: Vec<f64>| crate::stats::median_sorted(&crate::stats::sorted_finite(&v));
    let ready: Vec<&record::RoundRecord> = rounds.iter().filter(|r| r.ready > 0).collect();
    if ready.is_empty() {
        return None;
    }
    let pss = med(ready
        .iter()
        .filter_map(|r| Some(r.pss_total_kib()? as f64 / r.ready as f64))
        .collect());
    let cg = med(ready
        .iter()
        .filter_map(|r| Some(r.cgroup?.charged_kib as f64 / r.ready as f64))
        .collect());
    let drop = med(ready
        .iter()
        .filter(|r| r.ready >= 50)
        .filter_map(|r| Some(r.drop_kib()?.max(0) as f64 / r.ready as f64))
        .collect());
    let most = [pss, cg, drop]
        .into_iter()
        .flatten()
        .fold(64.0f64, f64::max);
    Some(1.25 * most)
}

/// Runs a density measurement to its end or to Ctrl-C.
pub fn execute(opts: &DensityOptions) -> Result<DensityOutcome, DensityError> {
    let started = Instant::now();
    if opts.counts.is_empty() || opts.rounds == 0 {
        return Err(DensityError::Usage(
            "give at least one count (--count 1,10,100) and one round".into(),
        ));
    }
    if !opts.io_parent.is_dir() {
        return Err(DensityError::Usage(format!(
            "--io-dir {}: not a directory",
            opts.io_parent.display()
        )));
    }
    let run_id = timefmt::fresh_run_id(&opts.out, "density-");
    crate::run::report_leftovers(&opts.registry);
    let mut writer = RoundWriter::create(&opts.out, &run_id)?;
    let mut places = RunPlaces::create(
        &run_id,
        &opts.io_parent,
        &opts.state_parent,
        opts.registry.clone(),
        &container_backend::CgroupSettings::default(),
    )?;
    if let Some(note) = &places.cgroup_note {
        eprintln!("note: instances run without a run cgroup: {note}");
    }
    let log = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(writer.dir().join(record::LOG_FILE))
        .map(Arc::new)
        .map_err(|source| StoreError::Write {
            path: writer.dir().join(record::LOG_FILE),
            source,
        })?;
    let ksm_host = KsmState::read();
    // VMs in the emulated machine use its KSM (the run there sets it); this host's is changed
    // only when instances run here.
    let on_this_host = opts
        .backends
        .iter()
        .any(|k| *k != Kind::Vm || !opts.vm_in_emulator);
    if let Some(v) = opts.ksm.run_value().filter(|_| on_this_host) {
        if ksm_host.is_none() {
            return Err(DensityError::Usage(
                "--ksm on|off: this kernel has no KSM (/sys/kernel/mm/ksm); leave --ksm out".into(),
            ));
        }
        places.change_host_setting(std::path::Path::new(ksm::KSM_RUN), v)?;
    }
    let open_files = limits::raise_open_files();
    let host = HostInfo::collect();
    let total_kib = host.memory_mib * 1024;
    let mut kinds = opts.backends.clone();
    if opts.with_floor && kinds.contains(&Kind::Container) && !kinds.contains(&Kind::Floor) {
        let at = kinds
            .iter()
            .position(|k| *k == Kind::Container)
            .unwrap_or(0);
        kinds.insert(at + 1, Kind::Floor);
    }
    let mut manifest = DensityManifest {
        kind: record::DENSITY_KIND.into(),
        run_id: run_id.clone(),
        started_at: timefmt::now_rfc3339(),
        ended_at: None,
        wall_s: None,
        status: RunStatus::Running,
        isolab_version: env!("CARGO_PKG_VERSION").into(),
        git_commit: manifest::GIT_COMMIT.into(),
        command: opts.command.clone(),
        agent_sha256: manifest::file_sha256(&opts.agent),
        host,
        backends: kinds
            .iter()
            .map(|&backend| BackendEntry {
                backend,
                available: false,
                note: Some("not started".into()),
                facts: Default::default(),
            })
            .collect(),
        counts: opts.counts.clone(),
        rounds: opts.rounds,
        parallel: opts.parallel,
        working_set_kib: opts.working_set_kib,
        beside: opts.beside,
        headroom_pct: opts.headroom_pct,
        floor_pct: opts.floor_pct,
        settle_s: opts.settle.as_secs_f64(),
        ksm: opts.ksm,
        ksm_host,
        limits: opts.limits,
        open_files,
        stops: Vec::new(),
        places: places
            .record()
            .folders
            .iter()
            .chain(&places.record().cgroups)
            .cloned()
            .collect(),
    };
    writer.write_manifest(&manifest)?;
    let ctx = PrepareContext {
        agent: opts.agent.clone(),
        work_dir: places.work_dir.clone(),
        io_scratch_dir: places.io_dir.clone(),
        limits: opts.limits,
        trial_timeout: opts.ready_timeout,
        live_console: false,
        state_dir: places.state_dir.clone(),
        run_cgroup: places.cgroup.clone(),
        // Density instances run no network workload: no lab network.
        lab: None,
        lab_unavailable: None,
    };
    let bar = if opts.progress && std::io::stderr().is_terminal() {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} ready · {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.enable_steady_tick(Duration::from_millis(200));
        b
    } else {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
    };
    let term = Terminal { bar };
    let progress: &dyn round::Progress = &term;
    let mut status = RunStatus::Complete;
    'backends: for (bi, &kind) in kinds.iter().enumerate() {
        if crate::interrupt::requested() {
            status = RunStatus::Interrupted;
            break;
        }
        if kind == Kind::Vm && opts.vm_in_emulator {
            let note = |line: &str| progress.note(line);
            let vms =
                emulated::run_vms(opts, &places.work_dir.join("emulated"), &mut writer, &note)?;
            let entry = &mut manifest.backends[bi];
            match &vms.manifest {
                Some(inner) => {
                    if let Some(e) = inner.backends.iter().find(|b| b.backend == Kind::Vm) {
                        entry.available = e.available;
                        entry.note = e.note.clone();
                        entry.facts = e.facts.clone();
                    }
                    entry
                        .facts
                        .insert(render::EMULATED_FACT.into(), "true".into());
                    entry.facts.insert(
                        "emulated_machine".into(),
                        format!(
                            "{} MiB, kernel {}",
                            inner.host.memory_mib, inner.host.kernel
                        ),
                    );
                    manifest.stops.extend(emulated::stops_of(inner));
                    if inner.status == RunStatus::Interrupted {
                        status = RunStatus::Interrupted;
                    }
                }
                None => {
                    entry.available = vms.rounds > 0;
                    entry.note = vms.problem.clone();
                    entry
                        .facts
                        .insert(render::EMULATED_FACT.into(), "true".into());
                }
            }
            if let Some(why) = vms.problem {
                progress.note(&format!("vm (emulated): {why}"));
                manifest.stops.push(Stop {
                    backend: kind,
                    count: opts.counts[0],
                    kind: if crate::interrupt::requested() {
                        "interrupted".into()
                    } else {
                        "failed".into()
                    },
                    reason: why,
                    limit: None,
                });
            }
            writer.write_manifest(&manifest)?;
            continue;
        }
        let launcher = match launcher(kind, opts, &ctx) {
            Ok(l) => l,
            Err(why) => {
                progress.note(&format!("{}: unavailable: {why}", kind.label()));
                manifest.backends[bi].note = Some(why.clone());
                manifest.stops.push(Stop {
                    backend: kind,
                    count: opts.counts[0],
                    kind: "unavailable".into(),
                    reason: why,
                    limit: None,
                });
                writer.write_manifest(&manifest)?;
                continue;
            }
        };
        manifest.backends[bi].available = true;
        manifest.backends[bi].note = None;
        manifest.backends[bi].facts = launcher.facts();
        writer.write_manifest(&manifest)?;
        let largest = opts.counts.iter().copied().max().unwrap_or(1);
        let threads = opts
            .starters
            .unwrap_or_else(|| opts.parallel.for_count(largest).min(16))
            .max(1);
        let pool = match round::Pool::new(launcher.clone(), threads, Some(log.clone())) {
            Ok(p) => p,
            Err(e) => {
                manifest.backends[bi].note = Some(format!("starter threads: {e}"));
                continue;
            }
        };
        let mut estimate: Option<f64> = None;
        for &count in &opts.counts {
            let mut this_count = Vec::new();
            if crate::interrupt::requested() {
                status = RunStatus::Interrupted;
                break 'backends;
            }
            let fd_soft = manifest.open_files.0;
            if let Err(limit) = limits::precheck(count as u64, launcher.needs(), fd_soft) {
                let reason = format!("{count} instances would pass a host limit: {limit}");
                progress.note(&format!("{}: {reason}", kind.label()));
                manifest.stops.push(Stop {
                    backend: kind,
                    count,
                    kind: "limit".into(),
                    reason,
                    limit: Some(limit),
                });
                writer.write_manifest(&manifest)?;
                break;
            }
            let available = meter::Meminfo::read().map_or(0, |m| m.mem_available);
            let headroom = (total_kib as f64 * opts.headroom_pct / 100.0) as u64;
            if let Some(per) = estimate {
                let need = per * count as f64;
                if available as f64 - need < headroom as f64 {
                    let reason = format!(
                        "refused: {count} instances need about {:.0} MiB ({count} × {:.2} MiB: \
                         the previous N's PSS, cgroup charge or MemAvailable drop per instance, \
                         plus 25%), MemAvailable is {} MiB and the headroom is {} MiB ({}% of \
                         {} MiB); use a smaller --count or a lower --headroom",
                        need / 1024.0,
                        per / 1024.0,
                        available / 1024,
                        headroom / 1024,
                        opts.headroom_pct,
                        total_kib / 1024
                    );
                    progress.note(&format!("{}: {reason}", kind.label()));
                    manifest.stops.push(Stop {
                        backend: kind,
                        count,
                        kind: "refused".into(),
                        reason,
                        limit: None,
                    });
                    writer.write_manifest(&manifest)?;
                    break;
                }
            }
            for r in 0..opts.rounds {
                let parallel = opts.parallel.for_count(count);
                term.bar.set_message(format!(
                    "{} N={count} round {}/{} ({} at once)",
                    kind.label(),
                    r + 1,
                    opts.rounds,
                    parallel
                ));
                let plan = round::RoundPlan {
                    backend: kind,
                    count,
                    round: r,
                    parallel,
                    floor_kib: (total_kib as f64 * opts.floor_pct / 100.0) as u64,
                    settle: opts.settle,
                    ksm_settle: (opts.ksm == KsmMode::On).then_some(opts.ksm_settle),
                    beside: opts.beside,
                    ready_timeout: opts.ready_timeout,
                    recovery_limit: opts.recovery_limit,
                    samples: opts.samples,
                    sample_every: opts.sample_every,
                };
                let rec = round::run(&pool, &plan, progress);
                writer.append(&rec)?;
                if opts.emit_rounds {
                    emulated::emit(emulated::ROUND_PREFIX, &rec);
                }
                progress.note(&round_line(&rec));
                if !rec.left_behind.is_empty() {
                    progress.note(&format!(
                        "warning: the teardown left: {}",
                        rec.left_behind.join("; ")
                    ));
                }
                if let Some(stop) = rec.stopped {
                    if stop.kind == "interrupted" {
                        status = RunStatus::Interrupted;
                    } else {
                        progress.note(&format!("{}: {}", kind.label(), stop.reason));
                    }
                    manifest.stops.push(stop);
                    writer.write_manifest(&manifest)?;
                    if status == RunStatus::Interrupted {
                        break 'backends;
                    }
                    continue 'backends;
                }
                this_count.push(rec);
            }
            if let Some(e) = estimate_kib(&this_count) {
                estimate = Some(e);
            }
        }
        drop(pool);
    }
    term.bar.finish_and_clear();
    if crate::interrupt::requested() {
        status = RunStatus::Interrupted;
    }
    let restore = places.remove();
    drop(places);
    if let Err(e) = restore {
        eprintln!("warning: {e}");
    }
    let wall = started.elapsed();
    manifest.status = status;
    manifest.ended_at = Some(timefmt::now_rfc3339());
    manifest.wall_s = Some(wall.as_secs_f64());
    writer.write_manifest(&manifest)?;
    if opts.emit_rounds {
        emulated::emit(emulated::MANIFEST_PREFIX, &manifest);
    }
    let stored = record::load(writer.dir())?;
    Ok(DensityOutcome {
        dir: writer.dir().to_path_buf(),
        status,
        summary: analysis::summarise(&stored),
        wall,
    })
}

/// One line of progress after a round.
fn round_line(r: &record::RoundRecord) -> String {
    let mut s = format!(
        "{} N={} round {}: {} ready",
        r.backend.label(),
        r.count,
        r.round + 1,
        r.ready
    );
    if let Some(d) = r.drop_kib() {
        s.push_str(&format!(
            ", MemAvailable drop {:.1} MiB ({:.2} MiB each)",
            d as f64 / 1024.0,
            d as f64 / 1024.0 / r.ready.max(1) as f64
        ));
    }
    if let Some(p) = r.pss_total_kib() {
        s.push_str(&format!(
            ", PSS {:.2} MiB each",
            p as f64 / 1024.0 / r.pss_kib.len().max(1) as f64
        ));
    }
    let ready: Vec<f64> = r.starts.iter().filter_map(|s| s.ready_ms).collect();
    if let Some(p) = analysis::Percentiles::of(&ready, None) {
        s.push_str(&format!(", start p50 {:.2} ms p99 {:.2} ms", p.p50, p.p99));
    }
    if let Some(t) = r.teardown_ms {
        s.push_str(&format!(", teardown {t:.0} ms"));
    }
    s
}

/// Parses `--working-set`: `idle` (or 0), or a size with a unit: `64MiB`, `512KiB`, `1GiB`
/// (`K`, `M`, `G` and `KB`, `MB`, `GB` mean the same powers of 1024). Returns KiB.
pub fn parse_working_set(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("idle") || t == "0" {
        return Ok(0);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size; write idle, 512KiB, 64MiB or 1GiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "k" | "kb" | "kib" => 0,
        "m" | "mb" | "mib" => 10,
        "g" | "gb" | "gib" => 20,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?}; write idle, 512KiB, 64MiB or 1GiB"
            ))
        }
    };
    n.checked_shl(shift)
        .filter(|k| k >> shift == n)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses a percentage from 0 (inclusive) to 100 (exclusive): `10%` or `10`.
pub fn parse_share(text: &str, what: &str) -> Result<f64, String> {
    let t = text.trim();
    let v: f64 = t
        .strip_suffix('%')
        .unwrap_or(t)
        .trim()
        .parse()
        .map_err(|_| format!("{what} {text:?} is not a percentage; write e.g. 10%"))?;
    if !(0.0..100.0).contains(&v) {
        return Err(format!("{what} {text:?} must be from 0% to under 100%"));
    }
    Ok(v)
}

/// Parses `--parallel`: a number (1 = one after another) or `all` (the boot storm).
pub fn parse_parallel(text: &str) -> Result<Parallel, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("all") {
        return Ok(Parallel::All);
    }
    match t.parse::<usize>() {
        Ok(p) if p > 0 => Ok(Parallel::At(p)),
        _ => Err(format!(
            "--parallel {text:?}: write a number of instances started at once (1 = one after \
             another) or `all`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_sets_parse_with_units() {
        assert_eq!(parse_working_set("idle"), Ok(0));
        assert_eq!(parse_working_set("64MiB"), Ok(64 << 10));
        assert_eq!(parse_working_set("512KiB"), Ok(512));
        assert_eq!(parse_working_set("1g"), Ok(1 << 20));
        assert!(parse_working_set("64").is_err(), "a size needs its unit");
        assert!(parse_working_set("lots").is_err());
        assert!(parse_working_set("99999999999999999999G").is_err());
    }

    #[test]
    fn shares_and_parallel() {
        assert_eq!(parse_share("10%", "--headroom"), Ok(10.0));
        assert_eq!(parse_share("0", "--headroom"), Ok(0.0));
        assert!(parse_share("100%", "--headroom").is_err());
        assert!(parse_share("x", "--headroom").is_err());
        assert_eq!(parse_parallel("all"), Ok(Parallel::All));
        assert_eq!(parse_parallel("8"), Ok(Parallel::At(8)));
        assert!(parse_parallel("0").is_err());
        assert_eq!(Parallel::At(8).for_count(3), 3);
        assert_eq!(Parallel::All.for_count(1000), 1000);
    }

    fn round(ready: usize, drop_kib: u64, pss_each: u64) -> record::RoundRecord {
        use meter::{Meminfo, Reading};
        let reading = |available: u64| Reading {
            meminfo: Meminfo {
                mem_available: available,
                ..Meminfo::default()
            },
            available_range: (available, available),
            samples: 1,
            at_s: 0.0,
        };
        record::RoundRecord {
            ready,
            loaded: Some(reading(10_000_000 - drop_kib)),
            pss_kib: vec![pss_each; ready],
            ..record::RoundRecord::empty(Kind::Container, ready, 0, 1, reading(10_000_000))
        }
    }

    #[test]
    fn the_estimate_ignores_a_noisy_drop_at_small_n() {
        // 200 MiB of someone else's memory at N = 10 is not 20 MiB per instance.
        let small = [
            round(10, 200 << 10, 250),
            round(10, 0, 250),
            round(10, 0, 250),
        ];
        assert_eq!(estimate_kib(&small), Some(1.25 * 250.0));
        // From N = 50 on the drop counts, by its median over the rounds.
        let large = [
            round(100, 100 << 10, 250),
            round(100, 60 << 10, 250),
            round(100, 500 << 10, 250),
        ];
        assert_eq!(estimate_kib(&large), Some(1.25 * 1024.0));
        assert_eq!(estimate_kib(&[round(0, 0, 0)]), None);
    }
}
