//! The native backend: the agent as a plain child process. The baseline every other backend is a
//! ratio of, so it does as little as possible around the agent: spawn, wait, reap.
//!
//! Fairness: native trials run in a cgroup below the run's cgroup (`native-<pid>`), a sibling of
//! the container trials' with the same CPU weight and no limit, so under load from outside the run
//! native and container get the same share of the CPU. It is made once, when the backend is
//! prepared, and reused by every native trial (on this project's v1 host, joining a fresh cpu
//! cgroup cost a median 1.3 ms against 0.2 ms for one joined before; native needs no per-trial
//! accounting). On v1 the child joins it before it execs the agent (`0` written to each hierarchy's `tasks`,
//! about 20 µs, which takes no global lock); on v2 it is born there (`clone3` with
//! `CLONE_INTO_CGROUP`, as the container's init is: v2 has no lock-free join, a write to
//! `cgroup.procs` waits for an RCU grace period). Either way the agent is accounted there from its
//! first instruction. Without a run cgroup (unprivileged, or in tests) it stays in isolab's.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use container_backend::{CgroupVersion, RunCgroup, SiblingCgroup};

use workloads::protocol::{encode_spec, MarkerEvent, MARKER_ENV, SPEC_ENV};
use workloads::Metric;

use crate::backend::{
    Backend, BackendError, BackendKind, Phase, PrepareContext, Trial, TrialFailure, TrialOutcome,
};
use crate::backends::child::{self, ChildEnd, LOG_TAIL_BYTES, STDOUT_LIMIT};
use crate::timefmt::monotonic_ns;

/// The fd number the agent finds its marker pipe on.
const MARKER_FD: i32 = 3;

/// Runs the agent as a plain child process.
#[derive(Debug, Default)]
pub struct NativeBackend {
    agent: Option<PathBuf>,
    timeout: Duration,
    /// The native trials' cgroup below the run's, when there is one.
    slot: Option<TrialSlot>,
    /// The run's lab network: network workloads join its namespace and reach the peer on its
    /// loopback (never the host's).
    lab: Option<std::sync::Arc<crate::lab_net::LabNet>>,
    /// Why there is no lab network.
    lab_unavailable: Option<String>,
}

/// Numbers the native cgroups of this process.
static NEXT_SLOT: AtomicU64 = AtomicU64::new(1);

/// The native trials' cgroup and how a child gets into it.
#[derive(Debug)]
struct TrialSlot {
    cgroup: SiblingCgroup,
    /// v1: the `tasks` files the child writes `0` to before exec.
    join: Vec<RawFd>,
    /// v2: born inside with `clone3(CLONE_INTO_CGROUP)`.
    born_inside: bool,
}

impl TrialSlot {
    fn new(run: &RunCgroup) -> Result<Self, String> {
        let n = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
        let name = format!("native-{}-{n}", std::process::id());
        let cgroup = run.create_sibling(&name).map_err(|e| e.to_string())?;
        Ok(Self {
            join: cgroup.tasks_fds(),
            born_inside: run.version() == CgroupVersion::V2,
            cgroup,
        })
    }
}

use container_backend::process::{CloneArgs, CLONE_INTO_CGROUP};

/// An fd moved above the child's slots 0..=3 (so the child's dup2s never overwrite a source).
fn above_slots(fd: OwnedFd) -> Result<OwnedFd, String> {
    if fd.as_raw_fd() > MARKER_FD {
        return Ok(fd);
    }
    nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(MARKER_FD + 1))
        // SAFETY: F_DUPFD_CLOEXEC returned a new fd we now own.
        .map(|n| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(n) })
        .map_err(|e| format!("fcntl: {e}"))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot create a pipe: {e}"))?;
    Ok((above_slots(r)?, above_slots(w)?))
}

/// What [`spawn_born_inside`] hands back: the pid and the read ends of stdout and stderr.
struct BornInside {
    pid: i32,
    stdout: std::fs::File,
    stderr: std::fs::File,
}

/// cgroup v2: starts the agent with `clone3(CLONE_INTO_CGROUP)` into `cgroup`, with the same
/// stdio, marker fd and environment `Command` gives it on v1. An exec failure comes back through
/// a close-on-exec pipe, as `Command` reports it.
fn spawn_born_inside(
    agent: &std::path::Path,
    env: &[(&str, String)],
    marker_write: &OwnedFd,
    cgroup: std::os::fd::BorrowedFd<'_>,
    netns: Option<RawFd>,
) -> Result<BornInside, String> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |b: &[u8]| CString::new(b).map_err(|_| "a NUL byte in the command".to_string());
    let path = c(agent.as_os_str().as_bytes())?;
    let argv_c = [path.clone()];
    let mut env_c = Vec::new();
    for (k, v) in std::env::vars_os() {
        if env.iter().any(|(ours, _)| k.as_bytes() == ours.as_bytes()) {
            continue;
        }
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        env_c.push(c(&kv)?);
    }
    for (k, v) in env {
        env_c.push(c(format!("{k}={v}").as_bytes())?);
    }
    let ptrs = |v: &[CString]| -> Vec<*const libc::c_char> {
        v.iter()
            .map(|s| s.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    let (argv, envp) = (ptrs(&argv_c), ptrs(&env_c));
    let null = std::fs::File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    let null = above_slots(OwnedFd::from(null))?;
    let marker = marker_write.as_raw_fd();
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (exec_r, exec_w) = pipe()?;
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    let slots = [
        (null.as_raw_fd(), 0),
        (out_w.as_raw_fd(), 1),
        (err_w.as_raw_fd(), 2),
    ];
    // SAFETY: clone3 without CLONE_VM behaves like fork. The child only makes async-signal-safe
    // calls (sigprocmask, signal, dup2, fcntl, execve, write, _exit) on data built above, and
    // ends in execve or _exit.
    let ret = unsafe { container_backend::process::clone3(&args) };
    if ret == 0 {
        // SAFETY: see above; all fds are valid in the child, all pointers point to C strings
        // and null-terminated arrays that live in this copy of the address space.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            let mut ok = netns.is_none_or(|fd| libc::setns(fd, libc::CLONE_NEWNET) == 0);
            ok &= slots.iter().all(|&(from, to)| libc::dup2(from, to) >= 0);
            ok &= if marker == MARKER_FD {
                libc::fcntl(marker, libc::F_SETFD, 0) >= 0
            } else {
                libc::dup2(marker, MARKER_FD) >= 0
            };
            if ok {
                libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            }
            let errno = *libc::__errno_location();
            libc::write(exec_w.as_raw_fd(), std::ptr::addr_of!(errno).cast(), 4);
            libc::_exit(127);
        }
    }
    if ret < 0 {
        return Err(format!(
            "clone3 into the trial's cgroup: {}",
            std::io::Error::last_os_error()
        ));
    }
    drop((out_w, err_w, exec_w));
    let pid = ret as i32;
    let mut errno = [0u8; 4];
    let mut exec_r = std::fs::File::from(exec_r);
    if let Ok(4) = std::io::Read::read(&mut exec_r, &mut errno) {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        return Err(std::io::Error::from_raw_os_error(i32::from_ne_bytes(errno)).to_string());
    }
    Ok(BornInside {
        pid,
        stdout: std::fs::File::from(out_r),
        stderr: std::fs::File::from(err_r),
    })
}

fn err(message: String) -> BackendError {
    BackendError::Prepare {
        backend: BackendKind::Native,
        message,
    }
}

impl Backend for NativeBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Native
    }

    fn prepare(&mut self, ctx: &PrepareContext) -> Result<(), BackendError> {
        let meta = std::fs::metadata(&ctx.agent).map_err(|e| {
            err(format!(
                "agent {} is not readable ({e}); build it with \
                 `cargo build --release -p workloads --bin isolab-agent`",
                ctx.agent.display()
            ))
        })?;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(err(format!(
                "agent {} is not an executable file",
                ctx.agent.display()
            )));
        }
        self.cleanup()?;
        if let Some(run) = &ctx.run_cgroup {
            self.slot = Some(
                TrialSlot::new(run)
                    .map_err(|e| err(format!("cannot create the native trials' cgroup: {e}")))?,
            );
        }
        self.agent = Some(ctx.agent.clone());
        self.timeout = ctx.trial_timeout;
        self.lab = ctx.lab.clone();
        self.lab_unavailable = ctx.lab_unavailable.clone();
        Ok(())
    }

    fn run_trial(&mut self, trial: &Trial) -> TrialOutcome {
        let crashed = |reason: String| TrialOutcome {
            result: Err(TrialFailure::Crashed { reason }),
            timeline: Vec::new(),
            host_metrics: Vec::new(),
            log_tail: String::new(),
            emulated: false,
        };
        let Some(agent) = self.agent.clone() else {
            return crashed("native backend used before prepare()".into());
        };
        let mut spec = trial.spec.clone();
        let netns = match (spec.workload.peer().is_some(), &self.lab) {
            (false, _) => None,
            (true, Some(lab)) => {
                spec.workload.set_peer(&lab.loopback_peer());
                Some(lab.ns_fd().as_raw_fd())
            }
            (true, None) => return crate::backend::no_lab_outcome(self.lab_unavailable.as_deref()),
        };
        let spec = match encode_spec(&spec) {
            Ok(s) => s,
            Err(e) => return crashed(e.to_string()),
        };
        let (marker_read, marker_write) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok(p) => p,
            Err(e) => return crashed(format!("cannot create the marker pipe: {e}")),
        };
        let write_fd = marker_write.as_raw_fd();
        let slot = self.slot.as_ref();
        let join: Vec<RawFd> = slot.map(|s| s.join.clone()).unwrap_or_default();
        let env = [(SPEC_ENV, spec), (MARKER_ENV, format!("fd:{MARKER_FD}"))];
        let mut cmd = Command::new(&agent);
        cmd.envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the forked child before exec and calls only setns, write,
        // dup2 and fcntl, which are async-signal-safe; it reads only its own copies of integers (the
        // vector was built before the fork and is not resized).
        unsafe {
            cmd.pre_exec(move || {
                if let Some(fd) = netns {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for &fd in &join {
                    if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if write_fd == MARKER_FD {
                    // dup2 onto itself would keep O_CLOEXEC; clear it instead.
                    if libc::fcntl(write_fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(write_fd, MARKER_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let born_inside = slot
            .filter(|s| s.born_inside)
            .and_then(|s| s.cgroup.clone_into());
        let start = monotonic_ns();
        let spawned = match born_inside {
            Some(cg) => spawn_born_inside(&agent, &env, &marker_write, cg, netns),
            None => cmd.spawn().map_err(|e| e.to_string()).and_then(|mut c| {
                Ok(BornInside {
                    pid: i32::try_from(c.id()).map_err(|e| e.to_string())?,
                    stdout: c
                        .stdout
                        .take()
                        .map(OwnedFd::from)
                        .map(std::fs::File::from)
                        .ok_or("no stdout")?,
                    stderr: c
                        .stderr
                        .take()
                        .map(OwnedFd::from)
                        .map(std::fs::File::from)
                        .ok_or("no stderr")?,
                })
            }),
        };
        // The parent's copy of the write end must close, or the marker reader never sees EOF.
        drop(marker_write);
        let child = match spawned {
            Ok(c) => c,
            Err(e) => return crashed(format!("cannot start {}: {e}", agent.display())),
        };
        let spawned_at = monotonic_ns();
        let markers = child::spawn_marker_reader(marker_read);
        let stdout = Some(child::spawn_capture(child.stdout, STDOUT_LIMIT, false));
        let stderr = Some(child::spawn_capture(child.stderr, LOG_TAIL_BYTES, true));
        let pid = child.pid;
        let (end, usage, reaped_at) = child::wait_with_timeout(pid, self.timeout);
        let markers = markers.join().unwrap_or_default();
        let stdout = stdout.and_then(|h| h.join().ok()).unwrap_or_default();
        let log_tail =
            String::from_utf8_lossy(&stderr.and_then(|h| h.join().ok()).unwrap_or_default())
                .into_owned();
        let cleaned_at = monotonic_ns();

        let rel = |t: u64| t.saturating_sub(start);
        let mut timeline = vec![
            Phase {
                name: "start".into(),
                at_ns: 0,
            },
            Phase {
                name: "spawned".into(),
                at_ns: rel(spawned_at),
            },
        ];
        // Workload phases stay off the timeline: its charts stack the start-up phases.
        timeline.extend(
            markers
                .iter()
                .filter(|m| !matches!(m.event, MarkerEvent::Phase(_)))
                .map(|m| Phase {
                    name: m.event.name().into(),
                    at_ns: rel(m.at_ns),
                }),
        );
        timeline.push(Phase {
            name: "exited".into(),
            at_ns: rel(reaped_at),
        });
        timeline.push(Phase {
            name: "cleaned_up".into(),
            at_ns: rel(cleaned_at),
        });

        let result = child::agent_result(end, &stdout, &log_tail, self.timeout);
        let agent_ready = match &result {
            Ok(r) => child::apply_agent_clock(&mut timeline, r, start),
            Err(_) => None,
        };
        let ms = |ns: u64| ns as f64 / 1e6;
        let mut host_metrics = vec![
            Metric::lower("host.wall", "ms", ms(reaped_at - start)),
            Metric::lower("host.peak_rss", "MiB", usage.max_rss_kib as f64 / 1024.0),
            Metric::lower("host.cpu_user", "ms", usage.user_us as f64 / 1e3),
            Metric::lower("host.cpu_sys", "ms", usage.sys_us as f64 / 1e3),
            // As for the container: from the agent's exit to everything released.
            Metric::lower(
                "host.teardown",
                "ms",
                ms(cleaned_at.saturating_sub(reaped_at)),
            ),
        ];
        let marker_ready = markers
            .iter()
            .find(|m| m.event == MarkerEvent::AgentStart)
            .map(|m| m.at_ns - start);
        if let Some(ready) = agent_ready.or(marker_ready) {
            host_metrics.push(Metric::lower("host.start_to_ready", "ms", ms(ready)));
        }
        let keep_log = result.is_err() || matches!(end, ChildEnd::Signaled(_));
        TrialOutcome {
            result,
            timeline,
            host_metrics,
            log_tail: if keep_log { log_tail } else { String::new() },
            emulated: false,
        }
    }

    fn cleanup(&mut self) -> Result<(), BackendError> {
        if let Some(slot) = self.slot.take() {
            slot.cgroup.remove().map_err(|e| BackendError::Cleanup {
                backend: BackendKind::Native,
                message: e.to_string(),
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use container_backend::CgroupSettings;
    use std::sync::Arc;
    use workloads::{Workload, WorkloadSpec};

    /// What the agent, run natively below `run`, reports as its cgroups.
    fn agent_cgroups(run: Arc<RunCgroup>) -> String {
        let agent = workloads::locate::locate_agent(None).unwrap_or_else(|e| panic!("{e}"));
        let mut b = NativeBackend::default();
        b.prepare(&PrepareContext {
            agent,
            trial_timeout: Duration::from_secs(30),
            run_cgroup: Some(run.clone()),
            ..PrepareContext::default()
        })
        .expect("prepare");
        let o = b.run_trial(&Trial {
            index: 0,
            repetition: 0,
            warmup: false,
            spec: WorkloadSpec::new(Workload::Inspect),
        });
        let r = o.result.unwrap_or_else(|e| panic!("{e}: {}", o.log_tail));
        // One cgroup for every native trial, removed at cleanup.
        let native_dirs = || -> Vec<PathBuf> {
            run.dirs()
                .iter()
                .filter_map(|d| std::fs::read_dir(d).ok())
                .flat_map(|rd| rd.flatten().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect()
        };
        assert!(!native_dirs().is_empty());
        b.cleanup().expect("cleanup");
        assert!(native_dirs().is_empty(), "{:?}", native_dirs());
        r.inspect.expect("inspect report").cgroup
    }

    /// A native trial runs in its own cgroup below the run's: joined before exec on v1, born
    /// there with clone3 on v2 (this host's cgroup2 hierarchy, with or without controllers).
    /// Needs root and the agent; never skips.
    #[test]
    fn native_trials_run_in_a_sibling_cgroup_on_v1_and_v2() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "cgroups need root; run the tests as root"
        );
        let pid = std::process::id();
        let name = format!("isolab-run-native-unit-{pid}");
        let host = Arc::new(RunCgroup::create(&name, &CgroupSettings::default()).expect("run"));
        let seen = agent_cgroups(host.clone());
        host.remove().expect("remove");
        assert!(seen.contains(&format!("/{name}/native-{pid}-")), "{seen}");
        let v2_root = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.join("cgroup.controllers").exists())
            .expect("a cgroup2 hierarchy");
        let settings = CgroupSettings {
            version: Some(CgroupVersion::V2),
            v2_root,
            v2_allow_missing_controllers: true,
            ..CgroupSettings::default()
        };
        let name = format!("isolab-run-native-unit2-{pid}");
        let v2 = Arc::new(RunCgroup::create(&name, &settings).expect("v2 run"));
        let seen = agent_cgroups(v2.clone());
        v2.remove().expect("remove");
        assert!(
            seen.split("; ")
                .any(|l| l.starts_with("0::/") && l.contains(&format!("/{name}/native-{pid}-"))),
            "{seen}"
        );
    }
}
