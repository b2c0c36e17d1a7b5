//! The floor a container is measured against: the least a process in a container's namespaces
//! can cost. One `clone3` with the container's namespace flags (pid, mount, UTS, IPC, network,
//! cgroup) into a cgroup of its own (a sibling in the run's cgroup, with the same CPU weight and
//! no limits), the mounts made private (without it a mount the agent makes would propagate to
//! the host), and `execve` of the same agent binary from the host's filesystem. No rootfs, no
//! pivot_root, no masked paths, no capability drop, no seccomp filter, no limits.
//!
//! Whatever isolab's container costs above this floor, in start time or in memory, is its
//! runtime's own doing; what the floor costs above a plain process is the kernel's price of the
//! namespaces and the cgroup. [`Floor::plain`] starts that plain process the same way (no
//! namespaces, no mount change, all in one given cgroup): the native instance of a density run. `isolab density` measures it beside the container with the same
//! meter, and `container-backend/benches/start-references.sh` times its start with the same end
//! point as isolab's start figure (the agent's first instruction).

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::cgroups::run::{RunCgroup, SiblingCgroup};
use crate::error::ContainerError;
use crate::namespaces::{CLONE_NAMESPACES, CLONE_NEWCGROUP};
use crate::process::{self, CloneArgs, PinForClone, CLONE_INTO_CGROUP, MARKER_FD};
use crate::running::MarkerRead;
use crate::timeline::monotonic_ns;
use crate::{exit_kind, ExitKind};

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;

static NEXT: AtomicU64 = AtomicU64::new(1);

/// Starts floor processes: the agent, by its host path, in fresh namespaces and a cgroup of its
/// own below a run's cgroup (or in isolab's cgroup without one); or, made with [`Floor::plain`],
/// plain processes in one shared cgroup.
#[derive(Debug)]
pub struct Floor {
    agent: CString,
    envp: Vec<CString>,
    /// The container's namespaces (and private mounts), or none.
    namespaces: bool,
    cgroups: Cgroups,
    dev_null: OwnedFd,
}

/// Where a started process's cgroup comes from.
#[derive(Debug)]
enum Cgroups {
    /// It stays in the caller's.
    None,
    /// A fresh sibling below the run's cgroup per process.
    PerProcess(Arc<RunCgroup>),
    /// One cgroup every process joins.
    Shared(Arc<SiblingCgroup>),
}

/// One floor process, running. Dropping it kills and reaps it and removes its cgroup.
#[derive(Debug)]
pub struct FloorChild {
    pid: Pid,
    pidfd: OwnedFd,
    marker: Option<OwnedFd>,
    cgroup: Option<SiblingCgroup>,
    /// CLOCK_MONOTONIC when its start began (before its cgroup was made).
    pub started_ns: u64,
    /// When the first marker byte arrived, ns after `started_ns`.
    pub first_marker_ns: Option<u64>,
    /// Marker bytes with their arrival, ns after `started_ns`.
    pub markers: Vec<(u8, u64)>,
    reaped: bool,
}

impl Floor {
    /// A floor for `agent` with this environment (the spec and `ISOLAB_MARKER=fd:3`). With `run`,
    /// each process gets a cgroup below it; without, it stays in the caller's cgroup.
    pub fn new(
        agent: &Path,
        env: &[(String, String)],
        run: Option<Arc<RunCgroup>>,
    ) -> Result<Self, ContainerError> {
        let cgroups = run.map_or(Cgroups::None, Cgroups::PerProcess);
        Self::make(agent, env, true, cgroups)
    }

    /// Plain processes (no namespaces) of `agent`, all in `cgroup` (or the caller's): a native
    /// instance, started the same way as the floor's so the two compare.
    pub fn plain(
        agent: &Path,
        env: &[(String, String)],
        cgroup: Option<Arc<SiblingCgroup>>,
    ) -> Result<Self, ContainerError> {
        let cgroups = cgroup.map_or(Cgroups::None, Cgroups::Shared);
        Self::make(agent, env, false, cgroups)
    }

    fn make(
        agent: &Path,
        env: &[(String, String)],
        namespaces: bool,
        cgroups: Cgroups,
    ) -> Result<Self, ContainerError> {
        if !agent.is_file() {
            return Err(ContainerError::InitMissing {
                path: agent.to_path_buf(),
            });
        }
        let agent = CString::new(agent.as_os_str().as_bytes())
            .map_err(|_| ContainerError::NulByte(agent.display().to_string()))?;
        let envp = env
            .iter()
            .map(|(k, v)| process::c_string(format!("{k}={v}")))
            .collect::<Result<_, _>>()?;
        let dev_null = std::fs::File::open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| ContainerError::Sys {
                what: "open /dev/null",
                source: Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT)),
                hint: "the host needs a /dev/null",
            })?;
        Ok(Self {
            agent,
            envp,
            namespaces,
            cgroups,
            dev_null,
        })
    }

    /// Starts one process; returns once it is cloned (it signals readiness on its marker pipe).
    /// Its stdout and stderr go to the given files or /dev/null. It dies with the calling thread
    /// (`PR_SET_PDEATHSIG`).
    pub fn start(
        &self,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
    ) -> Result<FloorChild, ContainerError> {
        let started_ns = monotonic_ns();
        let cgroup = match &self.cgroups {
            Cgroups::PerProcess(run) => {
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                Some(run.create_sibling(&format!("floor-{}-{n}", std::process::id()))?)
            }
            Cgroups::None | Cgroups::Shared(_) => None,
        };
        let join = match &self.cgroups {
            Cgroups::Shared(c) => Some(&**c),
            _ => cgroup.as_ref(),
        };
        let result = self.clone_child(join, stdout, stderr);
        match result {
            Ok((pid, pidfd, marker)) => Ok(FloorChild {
                pid,
                pidfd,
                marker: Some(marker),
                cgroup,
                started_ns,
                first_marker_ns: None,
                markers: Vec::new(),
                reaped: false,
            }),
            Err(e) => {
                if let Some(c) = cgroup {
                    let _ = c.remove();
                }
                Err(e)
            }
        }
    }

    fn clone_child(
        &self,
        cgroup: Option<&SiblingCgroup>,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
    ) -> Result<(Pid, OwnedFd, OwnedFd), ContainerError> {
        let (marker_r, marker_w) = process::pipe()?;
        nix::fcntl::fcntl(
            &marker_r,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .map_err(|source| ContainerError::Sys {
            what: "fcntl(O_NONBLOCK)",
            source,
            hint: "a pipe refused O_NONBLOCK; run `isolab doctor`",
        })?;
        let dup_null = || {
            self.dev_null.try_clone().map_err(|e| ContainerError::Sys {
                what: "dup of /dev/null",
                source: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EMFILE)),
                hint: "raise the open-files limit (ulimit -n)",
            })
        };
        let stdin = process::high_fd(dup_null()?)?;
        let stdout = process::high_fd(match stdout {
            Some(f) => f,
            None => dup_null()?,
        })?;
        let stderr = process::high_fd(match stderr {
            Some(f) => f,
            None => dup_null()?,
        })?;
        let tasks: Vec<RawFd> = cgroup.map(SiblingCgroup::tasks_fds).unwrap_or_default();
        let into = cgroup.and_then(SiblingCgroup::clone_into);
        let argv: [*const libc::c_char; 2] = [self.agent.as_ptr(), std::ptr::null()];
        let envp: Vec<*const libc::c_char> = self
            .envp
            .iter()
            .map(|e| e.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let mut pidfd: libc::c_int = -1;
        let namespaces = if self.namespaces {
            CLONE_NAMESPACES | CLONE_NEWCGROUP
        } else {
            0
        };
        let mut args = CloneArgs {
            flags: namespaces | CLONE_PIDFD | CLONE_CLEAR_SIGHAND,
            pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
            exit_signal: libc::SIGCHLD as u64,
            ..CloneArgs::default()
        };
        if let Some(dir) = into {
            args.flags |= CLONE_INTO_CGROUP;
            args.cgroup = dir.as_raw_fd() as u64;
        }
        let fds = [
            (stdin.as_raw_fd(), 0),
            (stdout.as_raw_fd(), 1),
            (stderr.as_raw_fd(), 2),
            (marker_w.as_raw_fd(), MARKER_FD),
        ];
        let pin = PinForClone::new();
        // SAFETY: clone3 with a zero stack behaves like fork. The child runs only `child` (async-
        // signal-safe calls on data built above) and ends in execve or _exit.
        let ret = unsafe { process::clone3(&args) };
        if ret == 0 {
            child(
                &tasks,
                &fds,
                self.namespaces,
                (&self.agent, &argv, &envp),
                pin.original.as_ref(),
            );
        }
        drop(pin);
        if ret < 0 {
            return Err(ContainerError::Sys {
                what: "clone3 of a floor process into new namespaces",
                source: Errno::last(),
                hint: "a namespace or process limit is reached, or namespaces need root; run \
                       `isolab doctor`",
            });
        }
        // SAFETY: CLONE_PIDFD stored a new pidfd we now own.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        Ok((Pid::from_raw(ret as libc::pid_t), pidfd, marker_r))
    }
}

/// The floor child between clone and exec. Async-signal-safe only.
fn child(
    tasks: &[RawFd],
    fds: &[(RawFd, RawFd); 4],
    private_mounts: bool,
    (agent, argv, envp): (&CString, &[*const libc::c_char; 2], &[*const libc::c_char]),
    cpus: Option<&libc::cpu_set_t>,
) -> ! {
    // SAFETY: prctl, write, mount, dup2, fcntl, sigprocmask, signal, execve and _exit are
    // async-signal-safe; every pointer points to data built before the clone that lives in this
    // copy of the address space; fds are valid (the `from` fds are above MARKER_FD).
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        process::unpin(cpus);
        for &fd in tasks {
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                libc::_exit(126);
            }
        }
        // The copied mount table shares propagation with the host's: make it private first.
        if private_mounts
            && libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
        {
            libc::_exit(125);
        }
        for &(from, to) in fds {
            if libc::dup2(from, to) < 0 {
                libc::_exit(124);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::execve(agent.as_ptr(), argv.as_ptr(), envp.as_ptr());
        libc::_exit(127)
    }
}

impl FloorChild {
    /// The process's pid on the host.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// The read end of its marker pipe (non-blocking), to poll; `None` once closed.
    pub fn marker_fd(&self) -> Option<BorrowedFd<'_>> {
        self.marker.as_ref().map(AsFd::as_fd)
    }

    /// Reads the marker bytes that have arrived and stamps them now. Never blocks.
    pub fn read_markers(&mut self) -> MarkerRead {
        let Some(fd) = self.marker.as_ref() else {
            return MarkerRead::Closed;
        };
        let (got, closed) = crate::running::read_available(fd);
        let at = monotonic_ns().saturating_sub(self.started_ns);
        if !got.is_empty() {
            self.first_marker_ns.get_or_insert(at);
        }
        self.markers.extend(got.iter().map(|&b| (b, at)));
        if closed {
            self.marker = None;
            if got.is_empty() {
                return MarkerRead::Closed;
            }
        }
        MarkerRead::Bytes(got)
    }

    /// Its processes now: the agent alone (it starts none).
    pub fn processes(&self) -> Vec<i32> {
        vec![self.pid()]
    }

    /// Its own cgroup's directories (none for a plain process in a shared cgroup).
    pub fn cgroup_dirs(&self) -> Vec<std::path::PathBuf> {
        self.cgroup
            .as_ref()
            .map(|c| c.dirs().to_vec())
            .unwrap_or_default()
    }

    /// SIGKILLs it (and its PID namespace). Does not wait.
    pub fn kill(&self) {
        process::kill_pidfd(self.pidfd.as_raw_fd());
    }

    /// Waits for it to end (kill it first), reaps it and removes its cgroup.
    pub fn finish(mut self) -> Result<(ExitKind, Option<String>), ContainerError> {
        self.end()
    }

    fn end(&mut self) -> Result<(ExitKind, Option<String>), ContainerError> {
        self.reaped = true;
        self.marker = None;
        let status = loop {
            match waitpid(self.pid, None) {
                Err(Errno::EINTR) => continue,
                other => break other,
            }
        };
        let removal = self.cgroup.take().map_or(Ok(()), |c| c.remove());
        let status = status.map_err(|source| ContainerError::Sys {
            what: "waitpid on a floor process",
            source,
            hint: "something else in this process reaped the child",
        })?;
        Ok((exit_kind(status), removal.err().map(|e| e.to_string())))
    }
}

impl Drop for FloorChild {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            let _ = self.end();
        }
    }
}
