//! isolab's container runtime: a process as PID 1 of new PID, mount, UTS, IPC, network and cgroup
//! namespaces, on a read-only rootfs that holds nothing but `/init`, limited and accounted by
//! cgroups (v1 or v2), with a start timeline on the host clock.
//!
//! The runtime is deliberately small: one `clone3` creates every namespace (and on cgroup v2 puts
//! the child into its cgroup at birth), the child enters a copy of the runtime's template mount
//! namespace (the read-only rootfs as its root, prepared once), mounts a handful of filesystems,
//! drops its capabilities and execs. No shelling out, no daemons, no image layers: a start costs
//! about what the kernel charges for the namespaces themselves.
//!
//! ```no_run
//! use container_backend::{ContainerConfig, RunRequest, Runtime};
//! # fn main() -> Result<(), container_backend::ContainerError> {
//! let mut rt = Runtime::new(ContainerConfig::new("/path/to/isolab-agent".into()))?;
//! let report = rt.run(&RunRequest::default())?;
//! println!("ready after {:?} ns", report.timeline.start_to_ready_ns());
//! rt.cleanup()?;
//! # Ok(())
//! # }
//! ```
//!
//! Layout mirrors the machine: [`namespaces`], [`rootfs`], [`cgroups`] (one module per
//! controller), [`capabilities`], [`process`] (clone, exec, watch, reap), [`timeline`], [`error`].
//! With [`ContainerConfig::user_namespace`] the container also gets a user namespace ([`userns`]):
//! its root is an unprivileged id outside, and isolab can run without root (then without cgroups,
//! which the report says: [`RunWarning::CgroupsUnavailable`]).
//!
//! Host checks for `isolab doctor` are [`check_host`]; leftovers of a killed isolab are removed by
//! [`clean_leftovers`]; Ctrl-C handling calls [`interrupt_all`].

pub mod capabilities;
pub mod cgroups;
pub mod confine;
pub mod error;
pub mod floor;
mod host;
mod leftovers;
pub mod namespaces;
pub mod process;
pub mod rootfs;
mod running;
pub mod seccomp;
mod seccomp_tree;
pub mod timeline;
pub mod userns;

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::wait::WaitStatus;
use serde::{Deserialize, Serialize};

pub use capabilities::Capabilities;
pub use cgroups::run::{RunCgroup, SiblingCgroup, RUN_CGROUP_PREFIX};
pub use cgroups::{
    CgroupLimits, CgroupSettings, CgroupVersion, CpuTime, IoBytes, MemoryBreakdown, ResourceUsage,
};
pub use error::ContainerError;
pub use host::{check_host, HostProblem};
pub use leftovers::{clean_leftovers, CleanReport};
pub use process::{SetupStep, MARKER_FD};
pub use rootfs::SCRATCH_MOUNT;
pub use running::{CgroupMemory, Finished, MarkerRead, RunningContainer};
pub use seccomp::SeccompProfile;
pub use timeline::{Marker, Phase, Timeline};
pub use userns::{check_unprivileged_user_namespaces, UserNamespace, ROOT_MAPPED_ID};

use capabilities::CapabilityDrop;
use cgroups::{Hierarchy, MemoryBreakdown as Breakdown};
use confine::ConfinePlan;
use namespaces::NamespaceSetup;
use process::{CgroupJoin, ChildIo, ChildPlan, WatchOptions};
use rootfs::{MountPlan, Rootfs};
use seccomp::SeccompFilters;
use userns::IdMaps;

/// Where rootfs directories live unless configured otherwise; `isolab doctor --clean` looks here.
pub const DEFAULT_STATE_DIR: &str = "/run/isolab/container";
/// Hostname inside every container unless configured otherwise.
pub const DEFAULT_HOSTNAME: &str = "isolab-container";

/// How to build and run containers. [`ContainerConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    /// The static binary that becomes `/init` (the isolab agent).
    pub init: PathBuf,
    /// Where the rootfs directory is created.
    pub state_dir: PathBuf,
    /// Host directory bind-mounted read-write at [`SCRATCH_MOUNT`]; `None` leaves it empty.
    pub scratch: Option<PathBuf>,
    /// cgroup limits of every container.
    pub limits: CgroupLimits,
    /// Which cgroup hierarchy to use.
    pub cgroups: CgroupSettings,
    /// Hostname inside.
    pub hostname: String,
    /// Capabilities the init keeps (default: none).
    pub keep_capabilities: Capabilities,
    /// A container running longer is killed and reported as timed out.
    pub timeout: Duration,
    /// Copy the init's stderr to ours as it arrives.
    pub echo_stderr: bool,
    /// Also a user namespace, container root mapped to these host ids (default: none). Needed to
    /// run without root; as root it makes root inside an unprivileged id outside
    /// ([`UserNamespace::for_current_user`] picks the right mapping for both). The I/O scratch
    /// directory must then be writable by the mapped uid.
    pub user_namespace: Option<UserNamespace>,
    /// The system-call filter of the init (default: Docker's profile).
    pub seccomp: SeccompProfile,
    /// For tests only: the parent waits this long before it writes a container's cgroup limits,
    /// to show that the container cannot get ahead of them (default: none).
    #[doc(hidden)]
    pub delay_limits_for_tests: Option<Duration>,
}

impl ContainerConfig {
    /// Defaults: state in [`DEFAULT_STATE_DIR`], no scratch, no limits, cgroup version detected,
    /// no capabilities, 60 s timeout.
    pub fn new(init: PathBuf) -> Self {
        Self {
            init,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            scratch: None,
            limits: CgroupLimits::default(),
            cgroups: CgroupSettings::default(),
            hostname: DEFAULT_HOSTNAME.to_owned(),
            keep_capabilities: Capabilities::none(),
            timeout: Duration::from_secs(60),
            echo_stderr: false,
            user_namespace: None,
            seccomp: SeccompProfile::Docker,
            delay_limits_for_tests: None,
        }
    }
}

/// One run: arguments after `/init` and the environment (nothing else is passed in).
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// `argv[1..]`.
    pub args: Vec<String>,
    /// The complete environment of the init.
    pub env: Vec<(String, String)>,
    /// Join this network namespace (made and set up by the caller: a veth pair's inner end, or
    /// isolab's lab namespace for `--container-net host`) instead of making a fresh one with
    /// only `lo`. The fd must stay open until [`Runtime::run`] returns. Not with a user
    /// namespace (the kernel refuses to join a namespace its owner did not make).
    pub netns: Option<std::os::fd::RawFd>,
}

/// How the container's init ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum ExitKind {
    /// Exited with a status code.
    Exited(i32),
    /// Ended by a signal. SIGHUP is what a PID-namespace init's `reboot(RB_AUTOBOOT)` looks like
    /// from outside: a normal end for the isolab agent.
    Signaled(i32),
}

impl ExitKind {
    /// A clean end: exit 0, or the SIGHUP of an init that rebooted its namespace.
    pub fn is_clean(self) -> bool {
        matches!(self, ExitKind::Exited(0) | ExitKind::Signaled(libc::SIGHUP))
    }
}

impl std::fmt::Display for ExitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ExitKind::Exited(c) => write!(f, "exit status {c}"),
            ExitKind::Signaled(s) => {
                let name = nix::sys::signal::Signal::try_from(s)
                    .map(|s| s.as_str())
                    .unwrap_or("unknown signal");
                write!(f, "killed by {name} ({s})")
            }
        }
    }
}

/// Why the runtime killed a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KillReason {
    /// It ran past [`ContainerConfig::timeout`].
    Timeout,
    /// [`interrupt_all`] was called (Ctrl-C).
    Interrupted,
}

/// Something a run did differently from a default run, which its numbers must be read with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunWarning {
    /// No trial cgroup: no memory, CPU or pids limit, and no accounting (every usage number of
    /// the report is 0). Happens when isolab runs unprivileged with a user namespace.
    CgroupsUnavailable {
        /// Why, and what to do for limits and accounting.
        reason: String,
    },
}

impl std::fmt::Display for RunWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunWarning::CgroupsUnavailable { reason } => {
                write!(f, "no cgroup limits or accounting: {reason}")
            }
        }
    }
}

/// Everything one container run produced. A crash, an OOM kill or a timeout is a report, not an
/// error.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Phases and marker bytes on the host clock.
    pub timeline: Timeline,
    /// How the init ended.
    pub exit: ExitKind,
    /// Set when the runtime killed it.
    pub killed: Option<KillReason>,
    /// The memory cgroup's OOM killer killed a process of the container.
    pub out_of_memory: bool,
    /// The init's stdout (up to 16 MiB).
    pub stdout: String,
    /// The last 64 KiB of its stderr.
    pub stderr_tail: String,
    /// What the cgroup accounted.
    pub usage: ResourceUsage,
    /// The hierarchy used (without cgroups, see `warnings`: the host's).
    pub cgroup_version: CgroupVersion,
    /// The root was entered with MS_MOVE + chroot because the host root is an initramfs.
    pub root_moved: bool,
    /// Removing the cgroup failed (the run's data is still valid; `isolab doctor --clean` removes
    /// the rest).
    pub cleanup_error: Option<String>,
    /// The init's pid on the host (reaped: for checks that it is gone).
    pub init_pid: i32,
    /// The trial cgroup's directories (removed: for checks that they are gone). Empty without
    /// cgroups.
    pub cgroup_dirs: Vec<PathBuf>,
    /// What makes this run differ from a default one (empty for a default run as root).
    pub warnings: Vec<RunWarning>,
}

/// A container cloned into its namespaces and cgroup, not yet watched.
struct Launched {
    id: u64,
    spawned: process::Spawned,
    cg: Option<cgroups::TrialCgroup>,
    timeline: Timeline,
}

/// How a reaped init ended.
fn exit_kind(status: WaitStatus) -> ExitKind {
    match status {
        WaitStatus::Exited(_, code) => ExitKind::Exited(code),
        WaitStatus::Signaled(_, sig, _) => ExitKind::Signaled(sig as i32),
        // waitpid without WUNTRACED/WCONTINUED reports only ends.
        _ => ExitKind::Exited(-1),
    }
}

/// Containers running now, so Ctrl-C handling can kill them from another thread.
struct Live {
    id: u64,
    pidfd: i32,
    interrupted: Arc<AtomicBool>,
}

static LIVE: Mutex<Vec<Live>> = Mutex::new(Vec::new());
static STOPPING: AtomicBool = AtomicBool::new(false);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Container starts in progress in this process (between the cgroup's creation and the clone's
/// return, or the limits' writing after it).
static STARTING: AtomicUsize = AtomicUsize::new(0);

/// Counts one start in [`STARTING`] while it lives.
struct Starting {
    alone: bool,
}

impl Starting {
    fn begin() -> Self {
        Self {
            alone: STARTING.fetch_add(1, Ordering::SeqCst) == 0,
        }
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        STARTING.fetch_sub(1, Ordering::SeqCst);
    }
}

fn live() -> std::sync::MutexGuard<'static, Vec<Live>> {
    // A panic while holding the lock cannot leave the list inconsistent (push/retain only).
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Kills every running container of this process (SIGKILL to each init, which ends its PID
/// namespace) and makes later [`Runtime::run`] calls fail with [`ContainerError::Interrupted`]
/// until [`clear_interrupt`]. Each interrupted run still reaps its init, removes its cgroup and
/// returns a report with [`KillReason::Interrupted`]. Safe to call from a Ctrl-C handler thread
/// (not from an async signal handler: it takes a lock). Returns how many containers were killed.
pub fn interrupt_all() -> usize {
    STOPPING.store(true, Ordering::SeqCst);
    let list = live();
    for l in list.iter() {
        l.interrupted.store(true, Ordering::SeqCst);
        process::kill_pidfd(l.pidfd);
    }
    list.len()
}

/// Allows runs again after [`interrupt_all`].
pub fn clear_interrupt() {
    STOPPING.store(false, Ordering::SeqCst);
}

/// Number of containers of this process running now.
pub fn running_containers() -> usize {
    live().len()
}

/// A prepared container runtime: the rootfs exists, the cgroup hierarchy is checked. Runs may be
/// made from several threads at once; each gets its own cgroup.
#[derive(Debug)]
pub struct Runtime {
    config: ContainerConfig,
    /// `None` when cgroups cannot be used (unprivileged), with the reason in `no_cgroups`.
    hierarchy: Option<Hierarchy>,
    no_cgroups: Option<String>,
    id_maps: Option<IdMaps>,
    rootfs: Option<Rootfs>,
    mounts: MountPlan,
    namespaces: NamespaceSetup,
    caps: CapabilityDrop,
    seccomp: SeccompFilters,
    dev_null: OwnedFd,
    name_prefix: String,
}

impl Runtime {
    /// Checks the host and the inputs, and builds the rootfs. On error nothing is left behind.
    pub fn new(config: ContainerConfig) -> Result<Self, ContainerError> {
        let euid = nix::unistd::geteuid().as_raw();
        let id_maps = match config.user_namespace {
            // Without a user namespace, every namespace and mount needs root.
            None if euid != 0 => return Err(ContainerError::NotRoot { euid }),
            None => None,
            Some(ns) => {
                if euid != 0 {
                    userns::check_unprivileged_user_namespaces()?;
                }
                Some(IdMaps::new(ns)?)
            }
        };
        namespaces::check_namespaces()?;
        if !config.init.is_file() {
            return Err(ContainerError::InitMissing {
                path: config.init.clone(),
            });
        }
        if let Some(s) = &config.scratch {
            if !s.is_dir() {
                return Err(ContainerError::ScratchMissing { path: s.clone() });
            }
            if let Some(ns) = config.user_namespace {
                check_scratch_writable(s, ns)?;
            }
        }
        let pid = std::process::id();
        let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (hierarchy, no_cgroups) = if euid == 0 {
            let h = Hierarchy::detect(&config.cgroups, &config.limits, true)?
                .share_devices(&format!("{}{pid}-{n}-devices", cgroups::CGROUP_PREFIX))?;
            (Some(h), None)
        } else {
            // Creating cgroups needs root (or a delegated cgroup2 subtree, which the runtime does
            // not look for): run without, and say so in every report.
            let reason = format!(
                "isolab runs unprivileged (euid {euid}) and cannot create cgroups; run as root \
                 for limits and accounting"
            );
            (None, Some(reason))
        };
        let namespaces = NamespaceSetup::new(&config.hostname)?;
        let dev_null = std::fs::File::open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| ContainerError::Sys {
                what: "open /dev/null",
                source: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT)),
                hint: "the host needs a /dev/null",
            })?;
        let rootfs = Rootfs::build(&config.state_dir, &format!("{pid}-{n}"), &config.init)?;
        let bind_dev = id_maps.is_some();
        // Only root outside a user namespace may raise a hard limit.
        let nofile = confine::nofile_limit(euid == 0 && id_maps.is_none());
        let dev_writable = config.keep_capabilities.contains(Capabilities::MKNOD);
        // As root without a user namespace, children start from a template mount namespace
        // (rootfs::Template); the paths they mount on are then the container's own.
        let template = id_maps.is_none();
        let confine_root = MountPlan::confine_root(&rootfs, template);
        let planned = ConfinePlan::new(&confine_root, nofile, id_maps.is_none())
            .map(|c| c.with_mask_atime(rootfs::atime_flags(rootfs.dir())))
            .and_then(|c| {
                MountPlan::new(
                    &rootfs,
                    config.scratch.as_deref(),
                    bind_dev,
                    dev_writable,
                    c,
                    template,
                )
            });
        let planned = planned.and_then(|m| Ok((m, SeccompFilters::compile(config.seccomp)?)));
        let (mounts, seccomp) = match planned {
            Ok(m) => m,
            Err(e) => {
                let _ = rootfs.remove();
                return Err(e);
            }
        };
        Ok(Self {
            caps: CapabilityDrop::new(config.keep_capabilities),
            seccomp,
            name_prefix: format!("{}{pid}-", cgroups::CGROUP_PREFIX),
            config,
            hierarchy,
            no_cgroups,
            id_maps,
            rootfs: Some(rootfs),
            mounts,
            namespaces,
            dev_null,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ContainerConfig {
        &self.config
    }

    /// The cgroup hierarchy version in use (without cgroups, the host's).
    pub fn cgroup_version(&self) -> CgroupVersion {
        match &self.hierarchy {
            Some(h) => h.version(),
            None => cgroups::detect_version(&self.config.cgroups.v2_root),
        }
    }

    /// Why runs of this runtime go without cgroup limits and accounting, if they do.
    pub fn cgroups_unavailable(&self) -> Option<&str> {
        self.no_cgroups.as_deref()
    }

    /// The cgroup directories the runtime holds for all its containers (v1: the devices cgroup
    /// they share), removed by [`Runtime::cleanup`].
    pub fn shared_cgroup_dirs(&self) -> Vec<PathBuf> {
        self.hierarchy
            .as_ref()
            .and_then(Hierarchy::shared_devices_dir)
            .map(Path::to_path_buf)
            .into_iter()
            .collect()
    }

    /// The rootfs directory on the host (while prepared).
    pub fn rootfs_dir(&self) -> Option<&Path> {
        self.rootfs.as_ref().map(Rootfs::dir)
    }

    /// The resource limits the init runs with (`RLIMIT_NOFILE` as set, the rest inherited), as
    /// `(name, "soft:hard")`, for the run's manifest.
    pub fn resource_limits(&self) -> Vec<(&'static str, String)> {
        confine::resource_limits(self.mounts.confine.nofile())
    }

    /// BPF instructions of the seccomp filter (0 with [`SeccompProfile::Off`]).
    pub fn seccomp_instructions(&self) -> usize {
        self.seccomp.instructions()
    }

    /// Runs `/init` once in a fresh container and tears it down. Errors are for containers that
    /// could not be made (setup failed, cgroup could not be created); what the init did is in the
    /// report. Whatever happens, the cgroup is removed and no process is left.
    pub fn run(&self, req: &RunRequest) -> Result<RunReport, ContainerError> {
        let (mut parent_io, child_io) = process::make_io(&self.dev_null)?;
        let launched = self.launch(req, child_io)?;
        let Launched {
            id,
            spawned,
            mut cg,
            mut timeline,
        } = launched;
        let mut sampled = Breakdown::default();
        let ran = self.watch_and_reap(
            id,
            &spawned,
            &mut parent_io,
            cg.as_ref(),
            &mut timeline,
            &mut sampled,
        );
        let cgroup_dirs = cg.as_ref().map(|c| c.dirs().to_vec()).unwrap_or_default();
        let usage = cg.as_ref().map(|c| c.usage(sampled)).unwrap_or_default();
        let removal = cg.as_ref().map_or(Ok(()), |c| c.remove());
        cg.take();
        timeline.mark(Phase::CleanedUp);
        let (status, watched, root_moved, init_pid, proc_io) = ran?;
        let mut usage = usage;
        usage.io = usage.io.max(proc_io);
        let exit = exit_kind(status);
        Ok(RunReport {
            timeline,
            exit,
            killed: if watched.interrupted {
                Some(KillReason::Interrupted)
            } else if watched.timed_out {
                Some(KillReason::Timeout)
            } else {
                None
            },
            out_of_memory: usage.oom_kills > 0,
            stdout: String::from_utf8_lossy(&watched.stdout).into_owned(),
            stderr_tail: String::from_utf8_lossy(&watched.stderr).into_owned(),
            usage,
            cgroup_version: self.cgroup_version(),
            root_moved,
            cleanup_error: removal.err().map(|e| e.to_string()),
            init_pid,
            cgroup_dirs,
            warnings: self.warnings(),
        })
    }

    /// Starts `/init` in a fresh container and returns while it runs: the caller watches its
    /// marker pipe ([`RunningContainer::marker_fd`]), and ends it with
    /// [`RunningContainer::kill`] and [`RunningContainer::finish`] (reap, remove the cgroup).
    /// For instances that stay up (`isolab density`): no timeout applies and nothing is read from
    /// the init's output, which goes to `stdout` and `stderr` (`None`: /dev/null). A container
    /// that is dropped without `finish` is killed, reaped and removed all the same.
    /// [`interrupt_all`] kills it too.
    ///
    /// The child dies with the *thread* that started it (`PR_SET_PDEATHSIG` is per thread): start
    /// it from a thread that lives as long as the container.
    pub fn start(
        &self,
        req: &RunRequest,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
    ) -> Result<RunningContainer, ContainerError> {
        let (marker, child_io) = process::make_io_to(&self.dev_null, stdout, stderr)?;
        let Launched {
            id,
            spawned,
            mut cg,
            timeline,
        } = self.launch(req, child_io)?;
        // The child has joined (or was born in) its cgroup before it execs: the join fds are
        // not needed any more, and a thousand instances would otherwise hold five each (v1).
        if let Some(c) = cg.as_mut() {
            c.close_join_fds();
        }
        let interrupted = Arc::new(AtomicBool::new(false));
        live().push(Live {
            id,
            pidfd: std::os::fd::AsRawFd::as_raw_fd(&spawned.pidfd),
            interrupted: interrupted.clone(),
        });
        let running = RunningContainer {
            id,
            spawned: Some(spawned),
            cg,
            timeline,
            marker: Some(marker),
            version: self.cgroup_version(),
        };
        if STOPPING.load(Ordering::SeqCst) {
            running.kill();
        }
        Ok(running)
    }

    fn warnings(&self) -> Vec<RunWarning> {
        self.no_cgroups
            .iter()
            .map(|reason| RunWarning::CgroupsUnavailable {
                reason: reason.clone(),
            })
            .collect()
    }

    /// Makes the cgroup, clones the child into its namespaces (and cgroup) and lets it run its
    /// setup up to exec. On error nothing of it is left.
    fn launch(&self, req: &RunRequest, child_io: ChildIo) -> Result<Launched, ContainerError> {
        if self.rootfs.is_none() {
            return Err(ContainerError::RootfsUnfit {
                path: self.config.state_dir.clone(),
                why: "the runtime was cleaned up; create a new one".into(),
            });
        }
        if STOPPING.load(Ordering::SeqCst) {
            return Err(ContainerError::Interrupted);
        }
        if req.netns.is_some() && self.id_maps.is_some() {
            return Err(ContainerError::NetnsWithUserNamespace);
        }
        let init = process::c_string("/init")?;
        let mut argv = vec![init.clone()];
        for a in &req.args {
            argv.push(process::c_string(a)?);
        }
        let mut envp = Vec::with_capacity(req.env.len());
        for (k, v) in &req.env {
            envp.push(process::c_string(format!("{k}={v}"))?);
        }
        let mut timeline = Timeline::start();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}{id}", self.name_prefix);
        // Made before the clone: on v2 the child is born inside, on v1 it writes itself into the
        // `tasks` fds first thing. (Making it while the child sets up its namespaces, behind a
        // gate the child waited at, cost more on a loaded host than it overlapped: the child's
        // wake-up at the gate.)
        // Overlapping the limits with the child's setup needs the parent's thread free to run
        // as soon as the child has joined. In a storm of starts (`isolab density --parallel`)
        // it is not: its wake-up waits behind the other starts, and the child at its gate with
        // it, which lengthened the storm's tail. There the limits are written before the clone.
        let starting = Starting::begin();
        let cg = match &self.hierarchy {
            Some(h) => {
                // Limits are written below, before the clone or once the child has joined.
                let cg = h.create_for_container(&name)?;
                timeline.mark(Phase::CgroupCreated);
                Some(cg)
            }
            None => None,
        };
        let join = match &cg {
            Some(c) if !c.join_fds().is_empty() => CgroupJoin::Early(c.join_fds()),
            _ => CgroupJoin::AtBirth,
        };
        let remove = |cg: &Option<cgroups::TrialCgroup>| {
            if let Some(c) = cg {
                let _ = c.remove();
            }
        };
        // Only a child that joins by itself (v1) tells the parent when it is in; one born in its
        // cgroup (v2) must be limited from its first instruction.
        let limits_after_join = starting.alone && matches!(join, CgroupJoin::Early(_));
        let write_limits = |c: &cgroups::TrialCgroup| {
            if let Some(d) = self.config.delay_limits_for_tests {
                std::thread::sleep(d);
            }
            c.write_limits(&self.config.limits)
        };
        if let (false, Some(c)) = (limits_after_join, &cg) {
            if let Err(e) = write_limits(c) {
                remove(&cg);
                return Err(e);
            }
        }
        // A fresh copy of the scratch folder's mount for this trial (the child attaches it).
        let scratch_tree = match self.mounts.scratch_tree() {
            Ok(t) => t,
            Err(e) => {
                remove(&cg);
                return Err(e);
            }
        };
        let plan = ChildPlan {
            init,
            argv,
            envp,
            namespaces: &self.namespaces,
            mounts: &self.mounts,
            caps: self.caps,
            seccomp: &self.seccomp,
            scratch_tree: scratch_tree.as_ref().map(std::os::fd::AsRawFd::as_raw_fd),
            join,
            no_cgroup: self.hierarchy.is_none(),
            user_namespace: self.id_maps.as_ref(),
            netns: req.netns,
            limits_after_join,
        };
        let into = cg
            .as_ref()
            .and_then(|c| c.clone_into())
            .map(|fd| fd.as_fd());
        let spawned = match process::spawn(&plan, child_io, into) {
            Ok(s) => s,
            Err(e) => {
                remove(&cg);
                return Err(e);
            }
        };
        timeline.mark(Phase::CloneReturned);
        if let (true, Some(c)) = (limits_after_join, &cg) {
            // The child's join and these writes would contend for the cgroup locks: write once
            // it is in. A child that failed first is reported by its setup failure.
            let written = if spawned.wait_joined() {
                write_limits(c)
            } else {
                Ok(())
            };
            if let Err(e) = written {
                spawned.kill();
                let _ = spawned.reap();
                remove(&cg);
                return Err(e);
            }
            spawned.release_after_limits();
        }
        Ok(Launched {
            id,
            spawned,
            cg,
            timeline,
        })
    }

    fn watch_and_reap(
        &self,
        id: u64,
        spawned: &process::Spawned,
        parent_io: &mut process::ParentIo,
        cg: Option<&cgroups::TrialCgroup>,
        timeline: &mut Timeline,
        sampled: &mut Breakdown,
    ) -> Result<(WaitStatus, process::Watched, bool, i32, IoBytes), ContainerError> {
        let interrupted = Arc::new(AtomicBool::new(false));
        live().push(Live {
            id,
            pidfd: std::os::fd::AsRawFd::as_raw_fd(&spawned.pidfd),
            interrupted: interrupted.clone(),
        });
        // interrupt_all sets STOPPING before scanning the list: either it saw our entry or we see
        // the flag here.
        if STOPPING.load(Ordering::SeqCst) {
            interrupted.store(true, Ordering::SeqCst);
            spawned.kill();
        }
        let opts = WatchOptions {
            timeout: self.config.timeout,
            echo_stderr: self.config.echo_stderr,
        };
        let is_interrupted = || interrupted.load(Ordering::SeqCst);
        let mut sample = || {
            if let Some(cg) = cg {
                *sampled = sampled.max(cg.sample_memory());
            }
        };
        let mut watched = process::watch(
            spawned,
            parent_io,
            opts,
            &is_interrupted,
            timeline,
            &mut sample,
        );
        // Deregister before reaping: once reaped, the pid could be reused (the pidfd could not,
        // but its number could be after we close it).
        live().retain(|l| l.id != id);
        watched.interrupted |= interrupted.load(Ordering::SeqCst);
        let proc_io = spawned.proc_io();
        let status = spawned.reap();
        timeline.mark(Phase::Reaped);
        let failure = spawned.collect_child_report(timeline);
        let status = status?;
        if let Some((step, errno)) = failure {
            return Err(ContainerError::Setup { step, errno });
        }
        Ok((
            status,
            watched,
            spawned.root_moved(),
            spawned.pid.as_raw(),
            proc_io,
        ))
    }

    /// Removes the rootfs and the cgroup the runtime's containers share. Idempotent; runs in
    /// progress on other threads must have ended.
    pub fn cleanup(&mut self) -> Result<(), ContainerError> {
        if let Some(r) = &self.rootfs {
            r.remove().map_err(|source| ContainerError::Rootfs {
                path: r.dir().to_path_buf(),
                source,
            })?;
        }
        self.mounts.release_template();
        self.rootfs = None;
        if let Some(h) = &mut self.hierarchy {
            h.release_shared_devices()?;
        }
        Ok(())
    }
}

/// With a user namespace the container's root is `ns.uid` on the host: the I/O workloads write
/// to the scratch directory as that user, so it must be allowed to, or they would fail later with
/// a bare EACCES.
fn check_scratch_writable(dir: &Path, ns: UserNamespace) -> Result<(), ContainerError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).map_err(|_| ContainerError::ScratchMissing {
        path: dir.to_path_buf(),
    })?;
    let mode = meta.mode();
    // Permission bits only (no ACLs): the class that applies decides, as the kernel does.
    let writable = if meta.uid() == ns.uid {
        mode & 0o300 == 0o300
    } else if meta.gid() == ns.gid {
        mode & 0o030 == 0o030
    } else {
        mode & 0o003 == 0o003
    };
    if writable {
        Ok(())
    } else {
        Err(ContainerError::ScratchNotWritable {
            path: dir.to_path_buf(),
            uid: ns.uid,
            gid: ns.gid,
        })
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Best effort: an explicit cleanup() reports errors; a drop can only try.
        let _ = self.cleanup();
    }
}
