//! The container backend: the agent as PID 1 of a container made by isolab's own runtime
//! (`container_backend`): new namespaces, a read-only rootfs holding only the agent, the I/O
//! scratch directory bind-mounted at [`SCRATCH_MOUNT`], cgroup limits sized like the VM.
//!
//! This file only translates: the harness's [`PrepareContext`] into a runtime configuration, a
//! [`Trial`] into a run request, and the runtime's report into a [`TrialOutcome`] with `host.*`
//! metrics. The runtime itself lives in `container-backend/`.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use container_backend::cgroups::ResourceUsage;
use container_backend::{
    CgroupLimits, ContainerConfig, ContainerError, KillReason, RunReport, RunRequest, Runtime,
    SeccompProfile, UserNamespace, MARKER_FD, SCRATCH_MOUNT,
};
use workloads::protocol::{encode_spec, parse_framed_result, MarkerEvent, MARKER_ENV, SPEC_ENV};
use workloads::result::Outcome;
use workloads::Metric;

use crate::backend::{
    Backend, BackendError, BackendKind, Phase, PrepareContext, Timeline, Trial, TrialFailure,
    TrialOutcome,
};
use crate::backends::{child, tail_lines};
use crate::lab_net::ContainerNet;

pub use container_backend::{
    check_host, clean_leftovers, interrupt_all, CleanReport, HostProblem, DEFAULT_STATE_DIR,
};

/// Lines of the agent's stderr kept in a sample's log tail.
const LOG_TAIL_LINES: usize = 40;

/// Runs trials in containers. Create with [`ContainerBackend::new`]; on Ctrl-C call
/// [`interrupt_all`] (kills running containers; the trial in progress returns an outcome) and then
/// [`Backend::cleanup`].
#[derive(Debug)]
pub struct ContainerBackend {
    state_dir: PathBuf,
    runtime: Option<Runtime>,
    scratch_host: PathBuf,
    /// Run containers in a user namespace too (`isolab run --userns`).
    user_namespace: bool,
    /// With a user namespace: the directory under the scratch directory made for the container's
    /// root (an unprivileged id on the host), bind-mounted as the scratch mount; removed at
    /// cleanup.
    userns_scratch: Option<PathBuf>,
    /// The system-call filter of the agent (`isolab run --seccomp`).
    seccomp: SeccompProfile,
    /// How the network workloads reach the peer (`--container-net`).
    net: ContainerNet,
    /// The run's lab network, when a network workload is planned.
    lab: Option<std::sync::Arc<crate::lab_net::LabNet>>,
    /// Why there is no lab network.
    lab_unavailable: Option<String>,
}

impl Default for ContainerBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl ContainerBackend {
    /// A backend keeping its rootfs under [`DEFAULT_STATE_DIR`] (where `isolab doctor --clean`
    /// looks for leftovers).
    pub fn new() -> Self {
        Self::with_state_dir(PathBuf::from(DEFAULT_STATE_DIR))
    }

    /// A backend keeping its rootfs under `state_dir`.
    pub fn with_state_dir(state_dir: PathBuf) -> Self {
        Self {
            state_dir,
            runtime: None,
            scratch_host: PathBuf::new(),
            user_namespace: false,
            userns_scratch: None,
            seccomp: SeccompProfile::Docker,
            net: ContainerNet::default(),
            lab: None,
            lab_unavailable: None,
        }
    }

    /// How the network workloads' containers reach the peer (default: a veth pair into their
    /// own namespace).
    pub fn with_network(mut self, net: ContainerNet) -> Self {
        self.net = net;
        self
    }

    /// The agent's system-call filter (default: Docker's profile). Takes effect at the next
    /// [`Backend::prepare`].
    pub fn with_seccomp(mut self, profile: SeccompProfile) -> Self {
        self.seccomp = profile;
        self
    }

    /// Also a user namespace for every container (`isolab run --userns`): the container's root is
    /// uid/gid [`container_backend::ROOT_MAPPED_ID`] on the host when isolab runs as root, and
    /// the invoking user otherwise. Without root, containers run without cgroup limits and
    /// accounting (the `host.*` usage metrics are then absent from samples), which
    /// [`ContainerBackend::cgroups_unavailable`] and each trial's log tail say. Takes effect at
    /// the next [`Backend::prepare`].
    pub fn with_user_namespace(mut self, on: bool) -> Self {
        self.user_namespace = on;
        self
    }

    /// Whether containers get a user namespace.
    pub fn user_namespace(&self) -> bool {
        self.user_namespace
    }

    /// After [`Backend::prepare`]: why trials run without cgroup limits and accounting, if they
    /// do (rootless `--userns`). For a note in the run's output and report.
    pub fn cgroups_unavailable(&self) -> Option<String> {
        self.runtime
            .as_ref()
            .and_then(|r| r.cgroups_unavailable().map(str::to_owned))
    }

    /// With a user namespace, the container's root writes the scratch area as an unprivileged id:
    /// a directory of its own under the harness's scratch directory (which isolab does not chown),
    /// made fresh (an existing one is refused) and handed over through a descriptor, so a link
    /// put in its place cannot redirect the chown.
    fn make_userns_scratch(
        &mut self,
        ctx: &PrepareContext,
        ns: UserNamespace,
    ) -> Result<PathBuf, BackendError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = ctx
            .io_scratch_dir
            .join(format!(".isolab-userns-{}", std::process::id()));
        let fail = |what: &str, e: &dyn std::fmt::Display| BackendError::Prepare {
            backend: BackendKind::Container,
            message: format!(
                "{what} {} for the user-namespaced container failed: {e}; make the I/O scratch \
                 directory {} writable by isolab or pass another one",
                dir.display(),
                ctx.io_scratch_dir.display()
            ),
        };
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| fail("creating", &e))?;
        // Recorded before the chown so a failure still removes it.
        self.userns_scratch = Some(dir.clone());
        if nix::unistd::geteuid().is_root() {
            let fd = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&dir)
                .map_err(|e| fail("opening", &e))?;
            nix::unistd::fchown(
                &fd,
                Some(nix::unistd::Uid::from_raw(ns.uid)),
                Some(nix::unistd::Gid::from_raw(ns.gid)),
            )
            .map_err(|e| fail("handing over", &e))?;
        }
        Ok(dir)
    }

    fn config(&self, ctx: &PrepareContext) -> ContainerConfig {
        let mut c = ContainerConfig::new(ctx.agent.clone());
        // The run's own state folder when the harness made one.
        c.state_dir = if ctx.state_dir.as_os_str().is_empty() {
            self.state_dir.clone()
        } else {
            ctx.state_dir.clone()
        };
        // Trials go below the run's cgroup, beside the native trials.
        if let Some(run) = &ctx.run_cgroup {
            c.cgroups = run.settings();
        }
        c.seccomp = self.seccomp;
        c.scratch = Some(ctx.io_scratch_dir.clone());
        // The same sizes a VM trial gets, so the comparison is fair.
        c.limits = CgroupLimits {
            memory_bytes: Some(ctx.limits.memory_mib.saturating_mul(1 << 20)),
            cpus: Some(f64::from(ctx.limits.vcpus.max(1))),
            pids_max: Some(ctx.limits.pids_max),
        };
        c.timeout = ctx.trial_timeout;
        c.echo_stderr = ctx.live_console;
        c
    }

    /// Where an I/O path the harness set (on the host, under the scratch directory) is inside.
    fn inside_path(&self, host_path: &str) -> String {
        match Path::new(host_path).strip_prefix(&self.scratch_host) {
            Ok(rest) if !rest.as_os_str().is_empty() => {
                Path::new(SCRATCH_MOUNT).join(rest).display().to_string()
            }
            _ => SCRATCH_MOUNT.to_owned(),
        }
    }
}

fn prepare_error(e: ContainerError) -> BackendError {
    let backend = BackendKind::Container;
    match &e {
        ContainerError::NotRoot { .. } => BackendError::Unavailable {
            backend,
            reason: e.to_string(),
            fix: "run isolab as root (sudo), or with --userns for a rootless run without cgroup \
                  limits and accounting"
                .into(),
        },
        ContainerError::UserNamespaceUnavailable { fix, .. } => BackendError::Unavailable {
            backend,
            reason: e.to_string(),
            fix: format!("{fix}, or run isolab as root"),
        },
        ContainerError::NamespaceMissing { config, .. } => BackendError::Unavailable {
            backend,
            reason: e.to_string(),
            fix: format!("use a kernel built with {config}"),
        },
        ContainerError::MissingController { fix, .. } => BackendError::Unavailable {
            backend,
            reason: e.to_string(),
            fix: fix.clone(),
        },
        ContainerError::CgroupNotMounted { .. } => BackendError::Unavailable {
            backend,
            reason: e.to_string(),
            fix: "mount cgroups at /sys/fs/cgroup; `isolab doctor` shows what is missing".into(),
        },
        _ => BackendError::Prepare {
            backend,
            message: e.to_string(),
        },
    }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

/// The runtime's phases and the agent's markers as the harness's timeline.
fn harness_timeline(report: &RunReport) -> Timeline {
    let mut t: Timeline = report
        .timeline
        .phases
        .iter()
        .map(|&(p, at)| Phase {
            name: p.name().to_owned(),
            at_ns: at,
        })
        .collect();
    let mut seen = Vec::new();
    for m in &report.timeline.markers {
        // AgentStart is the runtime's own `agent_ready` phase already; workload phases stay off
        // the timeline, whose charts stack the start-up phases.
        let Some(ev) = MarkerEvent::from_byte(m.byte) else {
            continue;
        };
        if matches!(ev, MarkerEvent::AgentStart | MarkerEvent::Phase(_)) || seen.contains(&ev) {
            continue;
        }
        seen.push(ev);
        t.push(Phase {
            name: ev.name().to_owned(),
            at_ns: m.at_ns,
        });
    }
    t.sort_by_key(|p| p.at_ns);
    t
}

fn host_metrics(report: &RunReport) -> Vec<Metric> {
    let mut m = Vec::new();
    if let Some(ns) = report.timeline.start_to_ready_ns() {
        m.push(Metric::lower("host.start_to_ready", "ms", ms(ns)));
    }
    if let Some(ns) = report.timeline.teardown_ns() {
        m.push(Metric::lower("host.teardown", "ms", ms(ns)));
    }
    let u = &report.usage;
    // Storage bytes come from /proc/PID/io as well as the cgroup: measured either way.
    let io = [
        Metric::lower("host.io_read", "MiB", mib(u.io.read)),
        Metric::lower("host.io_write", "MiB", mib(u.io.write)),
    ];
    if report.cgroup_dirs.is_empty() {
        // No cgroup (rootless): memory and CPU were not measured, so they are absent, not 0.
        m.extend(io);
        return m;
    }
    m.extend(cgroup_metrics(u));
    m.extend(io);
    m
}

/// The container's cgroup figures, each named as the cgroup's view (`host.cgroup_*`), so that no
/// summary row or ratio puts one beside another meter's figure of the same name:
/// - memory: what the memory cgroup charged to the container (its peak moves in per-CPU charge
///   batches, 64 pages on v1), not what the host lost; `isolab density` measures that, with one
///   meter for every backend;
/// - CPU: the cgroup's CPU accounting (cpuacct on v1, whose user/system split is sampled per
///   tick, or v2's cpu.stat), while native's and the VM's `host.cpu_*` are their process's
///   rusage.
fn cgroup_metrics(u: &ResourceUsage) -> [Metric; 7] {
    [
        Metric::lower("host.cgroup_peak", "MiB", mib(u.peak_memory_bytes)),
        Metric::lower("host.cgroup_anon", "MiB", mib(u.memory.anon)),
        Metric::lower("host.cgroup_file", "MiB", mib(u.memory.file)),
        Metric::lower("host.cgroup_kernel", "MiB", mib(u.memory.kernel)),
        Metric::lower("host.cgroup_cpu_user", "ms", ms(u.cpu.user_ns)),
        Metric::lower("host.cgroup_cpu_sys", "ms", ms(u.cpu.system_ns)),
        Metric::lower("host.cgroup_cpu_total", "ms", ms(u.cpu.total_ns)),
    ]
}

/// Decides what a finished container run means for the trial.
fn classify(report: &RunReport, timeout_s: f64) -> Result<workloads::WorkloadResult, TrialFailure> {
    match report.killed {
        Some(KillReason::Timeout) => return Err(TrialFailure::Timeout { after_s: timeout_s }),
        Some(KillReason::Interrupted) => {
            return Err(TrialFailure::Crashed {
                reason: "interrupted (Ctrl-C): the container was killed".into(),
            })
        }
        None => {}
    }
    match parse_framed_result(&report.stdout) {
        Ok(result) => match &result.outcome {
            Outcome::Ok => Ok(result),
            Outcome::Error { message } => Err(TrialFailure::WorkloadError {
                message: message.clone(),
            }),
        },
        // No valid result: the cgroup's OOM counter says whether the kernel killed it for memory.
        Err(_) if report.out_of_memory => Err(TrialFailure::OutOfMemory),
        Err(frame) => Err(TrialFailure::Crashed {
            reason: format!(
                "{} ({frame}); last output: {}",
                report.exit,
                tail_lines(&report.stderr_tail, 5)
            ),
        }),
    }
}

impl Backend for ContainerBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Container
    }

    fn prepare(&mut self, ctx: &PrepareContext) -> Result<(), BackendError> {
        self.cleanup()?;
        self.lab = ctx.lab.clone();
        self.lab_unavailable = ctx.lab_unavailable.clone();
        let mut config = self.config(ctx);
        if self.user_namespace {
            let ns = UserNamespace::for_current_user();
            let scratch = self.make_userns_scratch(ctx, ns)?;
            config.scratch = Some(scratch);
            config.user_namespace = Some(ns);
            // The container's root (an unprivileged id on the host) mounts its rootfs by path:
            // it needs search permission on the run's state folder (not read: no listing).
            if !ctx.state_dir.as_os_str().is_empty() {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&ctx.state_dir, std::fs::Permissions::from_mode(0o711))
                    .map_err(|e| BackendError::Prepare {
                        backend: BackendKind::Container,
                        message: format!("{}: {e}", ctx.state_dir.display()),
                    })?;
            }
        }
        let runtime = match Runtime::new(config) {
            Ok(r) => r,
            Err(e) => {
                // Nothing of this prepare may stay: the scratch directory made above goes too.
                let _ = self.cleanup();
                return Err(prepare_error(e));
            }
        };
        self.scratch_host = ctx.io_scratch_dir.clone();
        self.runtime = Some(runtime);
        Ok(())
    }

    fn facts(&self) -> std::collections::BTreeMap<String, String> {
        let mut f = std::collections::BTreeMap::new();
        if let Some(r) = &self.runtime {
            f.insert("cgroup_version".into(), format!("{:?}", r.cgroup_version()));
            if let Some(why) = r.cgroups_unavailable() {
                f.insert("cgroups".into(), format!("none: {why}"));
            }
        }
        f.insert("user_namespace".into(), self.user_namespace.to_string());
        f.insert("seccomp".into(), self.seccomp.name().into());
        if let Some(r) = &self.runtime {
            f.insert(
                "seccomp_bpf_instructions".into(),
                r.seccomp_instructions().to_string(),
            );
            for (name, value) in r.resource_limits() {
                f.insert(format!("rlimit.{name}"), value);
            }
            f.insert(
                "masked_paths".into(),
                container_backend::confine::MASKED_PATHS.join(" "),
            );
            f.insert(
                "read_only_paths".into(),
                container_backend::confine::READONLY_PATHS.join(" "),
            );
            f.insert(
                "devices".into(),
                "c 1:3, c 1:5, c 1:9 (null, zero, urandom); v1: devices controller, v2: BPF \
                 device program"
                    .into(),
            );
        }
        f
    }

    fn run_trial(&mut self, trial: &Trial) -> TrialOutcome {
        let failed = |reason: String| TrialOutcome {
            result: Err(TrialFailure::Crashed { reason }),
            timeline: Vec::new(),
            host_metrics: Vec::new(),
            log_tail: String::new(),
            emulated: false,
        };
        let Some(runtime) = self.runtime.as_ref() else {
            return failed("the container backend was not prepared".into());
        };
        let mut spec = trial.spec.clone();
        if let Some(p) = spec.workload.io_path() {
            let inside = self.inside_path(p);
            spec.workload.set_io_path(&inside);
        }
        // A network workload joins the lab (host) or a fresh namespace with a veth pair into it,
        // which lives until the container has ended.
        let mut veth = None;
        let netns = match (spec.workload.peer().is_some(), &self.lab, self.net) {
            (false, _, _) => None,
            (true, None, _) => {
                return crate::backend::no_lab_outcome(self.lab_unavailable.as_deref())
            }
            (true, Some(lab), ContainerNet::Host) => {
                spec.workload.set_peer(&lab.loopback_peer());
                Some(lab.ns_fd().as_raw_fd())
            }
            (true, Some(lab), ContainerNet::Veth) => match lab.veth_netns() {
                Ok(v) => {
                    spec.workload.set_peer(&v.peer);
                    let fd = v.fd().as_raw_fd();
                    veth = Some(v);
                    Some(fd)
                }
                Err(e) => return failed(e.to_string()),
            },
        };
        let encoded = match encode_spec(&spec) {
            Ok(e) => e,
            Err(e) => return failed(e.to_string()),
        };
        let req = RunRequest {
            args: Vec::new(),
            env: vec![
                (SPEC_ENV.to_owned(), encoded),
                (MARKER_ENV.to_owned(), format!("fd:{MARKER_FD}")),
            ],
            netns,
        };
        let ran = runtime.run(&req);
        drop(veth);
        match ran {
            Err(e) => failed(e.to_string()),
            Ok(report) => {
                let timeout_s = runtime.config().timeout.as_secs_f64();
                let mut log_tail = tail_lines(&report.stderr_tail, LOG_TAIL_LINES);
                if let Some(e) = &report.cleanup_error {
                    log_tail.push_str(&format!("\n[isolab] cleanup: {e}"));
                }
                for w in &report.warnings {
                    log_tail.push_str(&format!("\n[isolab] warning: {w}"));
                }
                let result = classify(&report, timeout_s);
                let mut timeline = harness_timeline(&report);
                let mut host_metrics = host_metrics(&report);
                // The agent shares the host's clock: its own stamps beat a late pipe read.
                if let Ok(r) = &result {
                    let start = report.timeline.start_monotonic_ns;
                    if let Some(ready) = child::apply_agent_clock(&mut timeline, r, start) {
                        let ready_ms = ready as f64 / 1e6;
                        match host_metrics
                            .iter_mut()
                            .find(|m| m.name == "host.start_to_ready")
                        {
                            Some(m) => m.value = ready_ms,
                            None => host_metrics.push(Metric::lower(
                                "host.start_to_ready",
                                "ms",
                                ready_ms,
                            )),
                        }
                    }
                }
                TrialOutcome {
                    result,
                    timeline,
                    host_metrics,
                    log_tail,
                    emulated: false,
                }
            }
        }
    }

    fn cleanup(&mut self) -> Result<(), BackendError> {
        if let Some(mut rt) = self.runtime.take() {
            if let Err(e) = rt.cleanup() {
                return Err(BackendError::Cleanup {
                    backend: BackendKind::Container,
                    message: e.to_string(),
                });
            }
        }
        if let Some(dir) = self.userns_scratch.take() {
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(BackendError::Cleanup {
                        backend: BackendKind::Container,
                        message: format!(
                            "removing the user-namespaced scratch directory {} failed: {e}; \
                             remove it by hand",
                            dir.display()
                        ),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::SandboxLimits;
    use std::time::Duration;
    use workloads::{Workload, WorkloadSpec};

    fn trial(spec_json: &str) -> Trial {
        let workload: Workload = serde_json::from_str(spec_json).expect("test workload");
        Trial {
            index: 0,
            repetition: 0,
            warmup: false,
            spec: WorkloadSpec::new(workload),
        }
    }

    #[test]
    fn workload_phases_and_unknown_bytes_stay_off_the_timeline() {
        use container_backend::{CgroupVersion, ExitKind, Marker, Phase as Step, Timeline};
        let marker = |byte, at_ns| Marker { byte, at_ns };
        let report = RunReport {
            timeline: Timeline {
                start_monotonic_ns: 0,
                phases: vec![
                    (Step::Start, 0),
                    (Step::InitReady, 100),
                    (Step::Reaped, 900),
                ],
                markers: vec![
                    marker(1, 100),
                    marker(2, 200),
                    marker(16, 250),
                    marker(17, 300),
                    marker(18, 400),
                    marker(200, 450),
                    marker(3, 500),
                    marker(3, 550),
                    marker(4, 600),
                ],
            },
            exit: ExitKind::Exited(0),
            killed: None,
            out_of_memory: false,
            stdout: String::new(),
            stderr_tail: String::new(),
            usage: Default::default(),
            cgroup_version: CgroupVersion::V2,
            root_moved: false,
            cleanup_error: None,
            init_pid: 1,
            cgroup_dirs: Vec::new(),
            warnings: Vec::new(),
        };
        let t = harness_timeline(&report);
        let names: Vec<&str> = t.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "start",
                "agent_ready",
                "workload_start",
                "workload_end",
                "result_written",
                "reaped"
            ]
        );
    }

    /// The cgroup's view never takes the name of a process's meter (native's and the VM's
    /// `host.cpu_*` and `host.peak_rss` are their process's rusage): a shared name would make
    /// the summary print one row of two meters and a ratio between them.
    #[test]
    fn the_cgroup_view_never_takes_a_process_meters_name() {
        let u = ResourceUsage {
            peak_memory_bytes: 3 << 20,
            cpu: container_backend::cgroups::CpuTime {
                user_ns: 5_000_000,
                system_ns: 2_000_000,
                total_ns: 7_000_000,
            },
            ..ResourceUsage::default()
        };
        let m = cgroup_metrics(&u);
        for x in &m {
            assert!(
                x.name.starts_with("host.cgroup_"),
                "{} is not named as the cgroup's view",
                x.name
            );
        }
        let get = |n: &str| m.iter().find(|x| x.name == n).map(|x| x.value);
        assert_eq!(get("host.cgroup_cpu_user"), Some(5.0));
        assert_eq!(get("host.cgroup_cpu_total"), Some(7.0));
        assert_eq!(get("host.cgroup_peak"), Some(3.0));
    }

    /// Through the Backend trait, with real namespaces and cgroups: needs root and the agent
    /// binary (`cargo build -p workloads --bin isolab-agent`); fails, never skips, without them.
    #[test]
    fn trials_through_the_backend_trait() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the container backend test needs root (namespaces, cgroups); run the tests as root"
        );
        let agent = workloads::locate::locate_agent(None).unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().expect("temp dir");
        let scratch = dir.path().join("scratch");
        std::fs::create_dir_all(&scratch).expect("scratch");
        let ctx = PrepareContext {
            agent,
            work_dir: dir.path().join("work"),
            io_scratch_dir: scratch.clone(),
            limits: SandboxLimits {
                memory_mib: 64,
                vcpus: 1,
                pids_max: 64,
            },
            trial_timeout: Duration::from_secs(60),
            live_console: false,
            ..PrepareContext::default()
        };
        let mut b = ContainerBackend::with_state_dir(dir.path().join("state"));
        b.prepare(&ctx).expect("prepare");

        let noop = b.run_trial(&trial(r#"{"kind":"noop"}"#));
        assert!(noop.result.is_ok(), "{:?} {}", noop.result, noop.log_tail);
        let names: Vec<&str> = noop.timeline.iter().map(|p| p.name.as_str()).collect();
        for want in [
            "start",
            "clone_returned",
            "cgroup_joined",
            "namespaces_ready",
            "root_pivoted",
            "exec",
            "agent_ready",
            "workload_start",
            "workload_end",
            "exited",
            "reaped",
            "cleaned_up",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        assert!(noop.timeline.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
        let metric = |o: &TrialOutcome, n: &str| {
            o.host_metrics
                .iter()
                .find(|m| m.name == n)
                .map(|m| m.value)
                .unwrap_or_else(|| panic!("{n} missing"))
        };
        assert!(metric(&noop, "host.start_to_ready") > 0.0);
        assert!(metric(&noop, "host.teardown") > 0.0);
        assert!(metric(&noop, "host.cgroup_peak") > 0.0);

        let hog = b.run_trial(&trial(r#"{"kind":"page-fault","mib":256}"#));
        assert_eq!(
            hog.result,
            Err(TrialFailure::OutOfMemory),
            "{}",
            hog.log_tail
        );
        assert_eq!(
            hog.result.as_ref().map(|_| ()).unwrap_err().to_string(),
            "killed: out of memory"
        );

        // The harness points I/O at the host scratch directory; inside it is /scratch.
        let io_json = format!(
            r#"{{"kind":"io-seq","path":{:?},"size_mib":4}}"#,
            scratch.display().to_string()
        );
        let io = b.run_trial(&trial(&io_json));
        assert!(io.result.is_ok(), "{:?} {}", io.result, io.log_tail);

        b.cleanup().expect("cleanup");
        b.cleanup().expect("cleanup is idempotent");
        let left: Vec<_> = std::fs::read_dir(dir.path().join("state"))
            .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
    }

    /// `isolab run --userns` as root: the same trials work, the container's root writes its own
    /// directory under the scratch directory, and cleanup removes it. Needs root; never skips.
    #[test]
    fn trials_in_a_user_namespace_through_the_backend_trait() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the container backend test needs root (namespaces, cgroups); run the tests as root"
        );
        let agent = workloads::locate::locate_agent(None).unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().expect("temp dir");
        let scratch = dir.path().join("scratch");
        std::fs::create_dir_all(&scratch).expect("scratch");
        let ctx = PrepareContext {
            agent,
            work_dir: dir.path().join("work"),
            io_scratch_dir: scratch.clone(),
            limits: SandboxLimits {
                memory_mib: 64,
                vcpus: 1,
                pids_max: 64,
            },
            trial_timeout: Duration::from_secs(60),
            live_console: false,
            // A state folder of mode 0700, as a run makes: the backend lets the mapped root
            // through (search only), or it could not reach its rootfs.
            state_dir: {
                use std::os::unix::fs::DirBuilderExt;
                let d = dir.path().join("run-state");
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&d)
                    .expect("state");
                d
            },
            ..PrepareContext::default()
        };
        let mut b =
            ContainerBackend::with_state_dir(dir.path().join("state")).with_user_namespace(true);
        assert!(b.user_namespace());
        b.prepare(&ctx).expect("prepare");
        assert_eq!(b.cgroups_unavailable(), None, "root keeps its cgroups");
        let noop = b.run_trial(&trial(r#"{"kind":"noop"}"#));
        assert!(noop.result.is_ok(), "{:?} {}", noop.result, noop.log_tail);
        let io_json = format!(
            r#"{{"kind":"io-seq","path":{:?},"size_mib":4}}"#,
            scratch.display().to_string()
        );
        let io = b.run_trial(&trial(&io_json));
        assert!(io.result.is_ok(), "{:?} {}", io.result, io.log_tail);
        b.cleanup().expect("cleanup");
        let left: Vec<_> = std::fs::read_dir(&scratch)
            .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left in the scratch directory: {left:?}");
    }

    #[test]
    fn io_paths_are_moved_under_the_scratch_mount() {
        let mut b = ContainerBackend::with_state_dir("/tmp/x".into());
        b.scratch_host = PathBuf::from("/data/scratch");
        assert_eq!(b.inside_path("/data/scratch"), "/scratch");
        assert_eq!(b.inside_path("/data/scratch/file.bin"), "/scratch/file.bin");
        assert_eq!(b.inside_path("/elsewhere"), "/scratch");
    }
}
