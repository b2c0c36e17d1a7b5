//! The host's side: starts a VMM process (in new namespaces for a jail, in the cgroup the caller
//! chose, dying with the thread that started it), talks to it, watches it, kills and reaps it.
//! [`run`] is one VM from start request to report, with every way it can end named.

use std::ffi::CString;
use std::io::{BufReader, Read};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;

use super::protocol::{
    read_message, write_message, FailureKind, HostMessage, JailProbe, StartRequest, VmmMessage,
    CHANNEL_FD, VMM_BINARY, VMM_ENV,
};
use super::server::monotonic_ns;
use crate::seccomp::{self, RefusedCall};
use crate::vmm::VmReport;

/// `CLONE_INTO_CGROUP` (Linux 5.7): the child is born in the cgroup given by fd.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
/// Most stderr bytes of a VMM process kept (its tail).
pub const STDERR_TAIL: usize = 64 << 10;

/// Why a VMM process could not be started or spoken to.
#[derive(Debug, Error)]
pub enum ProcessError {
    /// The VMM binary was not found.
    #[error("the VMM binary `{VMM_BINARY}` was not found (looked at: {0}). Build it with `cargo build --release -p vm_backend --bin {VMM_BINARY}` (`./isolab` does), or point {VMM_ENV} at it")]
    NotFound(String),
    /// A resource for the process could not be made.
    #[error("starting the VMM process: {what}: {source}")]
    Spawn {
        /// What failed.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The binary could not be executed.
    #[error("executing the VMM binary {path}: {source}")]
    Exec {
        /// The binary.
        path: PathBuf,
        /// The exec error.
        source: std::io::Error,
    },
    /// The request could not be sent.
    #[error("sending the start request to the VMM process: {0}")]
    Send(std::io::Error),
}

/// Finds the VMM binary: `$ISOLAB_VMM`, else next to the running executable, else one folder up
/// (test executables live in `target/.../deps/`).
pub fn locate_vmm() -> Result<PathBuf, ProcessError> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os(VMM_ENV) {
        candidates.push(PathBuf::from(p));
    } else if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join(VMM_BINARY));
            if let Some(up) = dir.parent() {
                candidates.push(up.join(VMM_BINARY));
            }
        }
    }
    candidates
        .iter()
        .find(|c| c.is_file())
        .cloned()
        .ok_or_else(|| {
            ProcessError::NotFound(
                candidates
                    .iter()
                    .map(|c| c.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })
}

/// Where the VMM process is accounted: born in a cgroup v2 directory, or joining cgroup v1
/// hierarchies before it execs (`0` written to each `tasks` file).
#[derive(Debug, Clone, Copy, Default)]
pub struct Placement<'a> {
    /// cgroup v2: the directory, open, for `clone3(CLONE_INTO_CGROUP)`.
    pub cgroup_dir: Option<BorrowedFd<'a>>,
    /// cgroup v1: the `tasks` files, open for writing.
    pub join_fds: &'a [RawFd],
}

/// How to start a VMM process.
#[derive(Debug, Clone)]
pub struct Spawn<'a> {
    /// The `isolab-vmm` binary ([`locate_vmm`]).
    pub binary: PathBuf,
    /// New mount, PID and network namespaces (a jail needs them).
    pub namespaces: bool,
    /// Its cgroup.
    pub placement: Placement<'a>,
    /// Copy its stderr (which carries the guest's console when it is live) to ours as it comes.
    pub live_stderr: bool,
}

/// How a VMM process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

/// CPU time and peak memory of an ended VMM process (`wait4`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// User CPU time, µs.
    pub user_us: u64,
    /// System CPU time, µs.
    pub sys_us: u64,
    /// Peak resident set, KiB.
    pub max_rss_kib: u64,
}

/// What the reader thread passes on.
enum Incoming {
    Message(VmmMessage),
    Garbled(String),
    Closed,
}

/// A running VMM process. Dropping it kills and reaps it.
#[derive(Debug)]
pub struct VmmProcess {
    pid: i32,
    channel: UnixStream,
    incoming: mpsc::Receiver<Incoming>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    exit: Option<(Exit, Usage)>,
    /// When `clone3` returned in the host, ns on CLOCK_MONOTONIC.
    pub spawned_mono_ns: u64,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Incoming::Message(_) => f.write_str("Message"),
            Incoming::Garbled(e) => write!(f, "Garbled({e})"),
            Incoming::Closed => f.write_str("Closed"),
        }
    }
}

fn spawn_err(what: &'static str) -> impl FnOnce(std::io::Error) -> ProcessError {
    move |source| ProcessError::Spawn { what, source }
}

fn cloexec_pipe() -> Result<(OwnedFd, OwnedFd), ProcessError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(spawn_err("pipe")(std::io::Error::last_os_error()));
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe {
        (
            <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[0]),
            <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[1]),
        )
    })
}

/// `struct clone_args` of clone3(2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

impl VmmProcess {
    /// Starts the VMM process. It waits for its start request ([`VmmProcess::start`]).
    pub fn spawn(how: &Spawn<'_>) -> Result<Self, ProcessError> {
        let path = CString::new(how.binary.as_os_str().as_bytes()).map_err(|_| {
            ProcessError::NotFound(format!("{} (a NUL byte)", how.binary.display()))
        })?;
        let argv = [path.as_ptr(), std::ptr::null()];
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        let (host_end, vmm_end) = UnixStream::pair().map_err(spawn_err("socketpair"))?;
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(spawn_err("/dev/null"))?;
        let (err_r, err_w) = cloexec_pipe()?;
        let (exec_r, exec_w) = cloexec_pipe()?;
        let mut flags = 0;
        if how.namespaces {
            flags |= (libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWNET) as u64;
        }
        let cgroup = match how.placement.cgroup_dir {
            Some(fd) => {
                flags |= CLONE_INTO_CGROUP;
                fd.as_raw_fd() as u64
            }
            None => 0,
        };
        let args = CloneArgs {
            flags,
            exit_signal: libc::SIGCHLD as u64,
            cgroup,
            ..CloneArgs::default()
        };
        let joins: Vec<RawFd> = how.placement.join_fds.to_vec();
        let moves = [
            (null.as_raw_fd(), 0),
            (null.as_raw_fd(), 1),
            (err_w.as_raw_fd(), 2),
            (vmm_end.as_raw_fd(), CHANNEL_FD),
        ];
        // dup2 sources must not be overwritten by an earlier dup2: every source is above the
        // targets 0..=3 unless it is one already, which the loop below handles by dup'ing
        // each source high first.
        let spawned_mono_ns = monotonic_ns();
        // SAFETY: clone3 without CLONE_VM behaves like fork. The child makes only
        // async-signal-safe calls (sigprocmask, prctl, write, fcntl, dup2, execve, _exit) on
        // data built above (no allocation), and ends in execve or _exit.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                std::ptr::addr_of!(args),
                std::mem::size_of::<CloneArgs>(),
            )
        };
        if ret == 0 {
            // SAFETY: see above: the child's whole life until execve.
            unsafe { child_exec(&path, &argv, &envp, &joins, &moves, exec_w.as_raw_fd()) }
        }
        if ret < 0 {
            return Err(spawn_err("clone3")(std::io::Error::last_os_error()));
        }
        let pid = ret as i32;
        drop((err_w, exec_w, vmm_end, null));
        let mut errno = [0u8; 4];
        let mut exec_r = std::fs::File::from(exec_r);
        if let Ok(4) = exec_r.read(&mut errno) {
            let mut status = 0;
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            return Err(ProcessError::Exec {
                path: how.binary.clone(),
                source: std::io::Error::from_raw_os_error(i32::from_ne_bytes(errno)),
            });
        }
        let stderr = spawn_stderr_reader(std::fs::File::from(err_r), how.live_stderr);
        let (tx, incoming) = mpsc::channel();
        let reader = host_end.try_clone().map_err(spawn_err("socket clone"))?;
        std::thread::Builder::new()
            .name("isolab-vmm-reader".into())
            .spawn(move || {
                let mut reader = BufReader::new(reader);
                loop {
                    let got = match read_message::<VmmMessage>(&mut reader) {
                        Ok(Some(m)) => Incoming::Message(m),
                        Ok(None) => Incoming::Closed,
                        Err(e) => Incoming::Garbled(e.to_string()),
                    };
                    let last = !matches!(got, Incoming::Message(_));
                    if tx.send(got).is_err() || last {
                        return;
                    }
                }
            })
            .map_err(spawn_err("the reader thread"))?;
        Ok(Self {
            pid,
            channel: host_end,
            incoming,
            stderr: Some(stderr),
            exit: None,
            spawned_mono_ns,
        })
    }

    /// Its pid (in the host's PID namespace).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends the start request.
    pub fn start(&self, request: &StartRequest) -> Result<(), ProcessError> {
        write_message(
            &mut &self.channel,
            &HostMessage::Start(Box::new(request.clone())),
        )
        .map_err(ProcessError::Send)
    }

    /// Asks the VM to stop (harmless when it is gone).
    pub fn stop(&self) {
        let _ = write_message(&mut &self.channel, &HostMessage::Stop);
    }

    /// The next message, waiting until `deadline` (None: for ever). `Ok(None)`: the process
    /// closed its socket (it ended); `Err`: the deadline passed, or a garbled line (the text).
    pub fn next(&self, deadline: Option<Instant>) -> Result<Option<VmmMessage>, Next> {
        let got = match deadline {
            Some(d) => self
                .incoming
                .recv_timeout(d.saturating_duration_since(Instant::now()))
                .map_err(|e| match e {
                    mpsc::RecvTimeoutError::Timeout => Next::TimedOut,
                    mpsc::RecvTimeoutError::Disconnected => Next::Closed,
                }),
            None => self.incoming.recv().map_err(|_| Next::Closed),
        };
        match got {
            Ok(Incoming::Message(m)) => Ok(Some(m)),
            Ok(Incoming::Closed) | Err(Next::Closed) => Ok(None),
            Ok(Incoming::Garbled(e)) => Err(Next::Garbled(e)),
            Err(e) => Err(e),
        }
    }

    /// Kills it (SIGKILL; harmless when it has ended).
    pub fn kill(&self) {
        if self.exit.is_none() {
            // SAFETY: kill(2) of our own unreaped child: the pid cannot have been reused.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }

    /// Waits until it ends or `deadline` passes (then kills it), and reaps it.
    pub fn wait(&mut self, deadline: Instant) -> (Exit, Usage) {
        if let Some(e) = self.exit {
            return e;
        }
        let mut killed = false;
        loop {
            let mut status = 0;
            // SAFETY: an all-zero rusage is valid; wait4 fills it.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            let flags = if killed { 0 } else { libc::WNOHANG };
            // SAFETY: wait4 on our own child with valid out pointers.
            let r = unsafe { libc::wait4(self.pid, &mut status, flags, &mut ru) };
            if r == self.pid {
                let exit = if libc::WIFSIGNALED(status) {
                    Exit::Signal(libc::WTERMSIG(status))
                } else {
                    Exit::Code(libc::WEXITSTATUS(status))
                };
                let us = |t: libc::timeval| {
                    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000
                        + u64::try_from(t.tv_usec).unwrap_or(0)
                };
                let usage = Usage {
                    user_us: us(ru.ru_utime),
                    sys_us: us(ru.ru_stime),
                    max_rss_kib: u64::try_from(ru.ru_maxrss).unwrap_or(0),
                };
                self.exit = Some((exit, usage));
                return (exit, usage);
            }
            if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                // Not our child any more (cannot happen while we own it): nothing to reap.
                let gone = (Exit::Signal(libc::SIGKILL), Usage::default());
                self.exit = Some(gone);
                return gone;
            }
            if !killed && Instant::now() >= deadline {
                self.kill();
                killed = true;
                continue;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The tail of what it wrote on stderr (complete once it has ended).
    pub fn stderr(&mut self) -> String {
        let bytes = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Why [`VmmProcess::next`] had no message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The deadline passed.
    TimedOut,
    /// The socket closed.
    Closed,
    /// A line that was no message.
    Garbled(String),
}

impl Drop for VmmProcess {
    fn drop(&mut self) {
        if self.exit.is_none() {
            self.kill();
            let _ = self.wait(Instant::now());
        }
    }
}

/// The child between clone3 and execve: signals back to default, dies with the thread that
/// started it, joins its cgroup (v1), gets its fds, execs. Never returns.
///
/// # Safety
/// Only in the child of a fork-like clone: every call is async-signal-safe and nothing
/// allocates.
unsafe fn child_exec(
    path: &CString,
    argv: &[*const libc::c_char; 2],
    envp: &[*const libc::c_char; 1],
    joins: &[RawFd],
    moves: &[(RawFd, RawFd); 4],
    exec_w: RawFd,
) -> ! {
    /// Hands errno to the parent through the exec pipe and ends.
    unsafe fn fail(exec_w: RawFd) -> ! {
        // SAFETY: errno is thread-local and valid; write and _exit are async-signal-safe.
        unsafe {
            let errno = *libc::__errno_location();
            libc::write(exec_w, std::ptr::addr_of!(errno).cast(), 4);
            libc::_exit(127)
        }
    }
    // SAFETY: the caller's contract: async-signal-safe calls on valid fds and C strings.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in [libc::SIGPIPE, libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::signal(sig, libc::SIG_DFL);
        }
        // Dies with the thread that started it: after a kill -9 of isolab nothing runs on.
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
            fail(exec_w);
        }
        for &fd in joins {
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                fail(exec_w);
            }
        }
        // Sources first moved above the targets (F_DUPFD_CLOEXEC from 10), so no dup2 below
        // overwrites a source not yet moved.
        let mut high = [0; 4];
        for (i, (from, _)) in moves.iter().enumerate() {
            high[i] = libc::fcntl(*from, libc::F_DUPFD_CLOEXEC, 10);
            if high[i] < 0 {
                fail(exec_w);
            }
        }
        for (i, (_, to)) in moves.iter().enumerate() {
            if libc::dup2(high[i], *to) < 0 {
                fail(exec_w);
            }
        }
        libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
        fail(exec_w)
    }
}

fn spawn_stderr_reader(mut file: std::fs::File, live: bool) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut tail = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if live {
                        use std::io::Write;
                        let _ = std::io::stderr().write_all(&buf[..n]);
                    }
                    tail.extend_from_slice(&buf[..n]);
                    if tail.len() > STDERR_TAIL {
                        let cut = tail.len() - STDERR_TAIL;
                        tail.drain(..cut);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        tail
    })
}

/// Why a VM run in its own process has no report.
#[derive(Debug, Clone, PartialEq)]
pub enum VmmFailure {
    /// The process could not be started.
    Spawn(String),
    /// It could not set the VM up, and said why.
    Failed {
        /// Its message.
        message: String,
        /// What kind of failure.
        kind: FailureKind,
    },
    /// A thread made a system call its seccomp filter refuses: the process died of `SIGSYS`.
    Seccomp(RefusedCall),
    /// It was killed by a signal (other than a seccomp refusal).
    Signal(i32),
    /// It exited without a report.
    Exited(i32),
    /// It gave no report by the deadline and was killed.
    TimedOut(Duration),
    /// It sent something that is not a message.
    Protocol(String),
}

impl std::fmt::Display for VmmFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VmmFailure::Spawn(e) => write!(f, "the VMM process could not be started: {e}"),
            VmmFailure::Failed { message, .. } => write!(f, "the VMM process failed: {message}"),
            VmmFailure::Seccomp(call) => write!(
                f,
                "the VMM process was killed by SIGSYS: {call}, which that thread's seccomp filter refuses"
            ),
            VmmFailure::Signal(s) => write!(f, "the VMM process was killed by signal {s}"),
            VmmFailure::Exited(c) => {
                write!(f, "the VMM process exited with status {c} without a report")
            }
            VmmFailure::TimedOut(d) => write!(
                f,
                "the VMM process gave no report within {:.1} s and was killed",
                d.as_secs_f64()
            ),
            VmmFailure::Protocol(e) => write!(f, "the VMM process broke the protocol: {e}"),
        }
    }
}

/// Everything one VM run in its own process left.
#[derive(Debug)]
pub struct VmmRun {
    /// The report, when the VM ran.
    pub report: Option<VmReport>,
    /// Why there is none.
    pub failure: Option<VmmFailure>,
    /// When `clone3` returned, ns since the origin.
    pub spawned_ns: Option<u64>,
    /// When its `main` began and when it had read the request, ns since the origin.
    pub ready: Option<(u64, u64)>,
    /// Its pid as it saw it (1 in its own PID namespace).
    pub inner_pid: Option<i32>,
    /// When its vCPUs ran, and guest RAM's place in its memory.
    pub running: Option<(u64, Vec<(u64, u64)>)>,
    /// What it saw inside its jail, when asked.
    pub jail_probe: Option<JailProbe>,
    /// How it ended, and its CPU time.
    pub exit: Option<(Exit, Usage)>,
    /// When it was reaped, ns since the origin.
    pub reaped_ns: Option<u64>,
    /// The tail of its stderr.
    pub stderr: String,
}

/// Runs one VM in its own process: spawn, start, collect until the report (stopping the VM
/// when `stop_requested` says so), reap. The process is killed when it gives no report within
/// `timeout` (of the request; a VM's own timeout plus its grace should be shorter).
pub fn run(
    how: &Spawn<'_>,
    request: &StartRequest,
    timeout: Duration,
    stop_requested: &dyn Fn() -> bool,
) -> VmmRun {
    let origin = request.origin_mono_ns;
    let since = |mono: u64| mono.saturating_sub(origin);
    let mut out = VmmRun {
        report: None,
        failure: None,
        spawned_ns: None,
        ready: None,
        inner_pid: None,
        running: None,
        jail_probe: None,
        exit: None,
        reaped_ns: None,
        stderr: String::new(),
    };
    let mut process = match VmmProcess::spawn(how) {
        Ok(p) => p,
        Err(e) => {
            out.failure = Some(VmmFailure::Spawn(e.to_string()));
            return out;
        }
    };
    out.spawned_ns = Some(since(process.spawned_mono_ns));
    let deadline = Instant::now() + timeout;
    if let Err(e) = process.start(request) {
        out.failure = Some(VmmFailure::Spawn(e.to_string()));
    }
    let mut stop_sent = false;
    while out.failure.is_none() && out.report.is_none() {
        let step = Instant::now() + Duration::from_millis(50);
        match process.next(Some(step.min(deadline))) {
            Ok(Some(VmmMessage::Ready {
                pid,
                started_ns,
                at_ns,
            })) => {
                out.ready = Some((started_ns, at_ns));
                out.inner_pid = Some(pid);
            }
            Ok(Some(VmmMessage::JailProbe(p))) => out.jail_probe = Some(*p),
            Ok(Some(VmmMessage::Running { guest_ram, at_ns })) => {
                out.running = Some((at_ns, guest_ram));
            }
            Ok(Some(VmmMessage::Marker(_))) => {}
            Ok(Some(VmmMessage::Report(r))) => out.report = Some(*r),
            Ok(Some(VmmMessage::Failed { message, kind })) => {
                out.failure = Some(VmmFailure::Failed { message, kind });
            }
            // Ended without a word: how, once it is reaped.
            Ok(None) => break,
            Err(Next::Garbled(e)) => out.failure = Some(VmmFailure::Protocol(e)),
            Err(Next::TimedOut | Next::Closed) => {
                if Instant::now() >= deadline {
                    out.failure = Some(VmmFailure::TimedOut(timeout));
                    process.kill();
                } else if !stop_sent && stop_requested() {
                    process.stop();
                    stop_sent = true;
                }
            }
        }
    }
    if matches!(out.failure, Some(VmmFailure::Protocol(_))) {
        process.kill();
    }
    // After its report (or failure) the process only exits; give it a moment.
    let exit = process.wait(Instant::now() + Duration::from_secs(5).min(timeout));
    out.reaped_ns = Some(since(monotonic_ns()));
    out.stderr = process.stderr();
    out.exit = Some(exit);
    if out.report.is_none() && out.failure.is_none() {
        out.failure = Some(match exit.0 {
            Exit::Signal(libc::SIGSYS) => match seccomp::parse_report(&out.stderr) {
                Some(call) => VmmFailure::Seccomp(call),
                None => VmmFailure::Signal(libc::SIGSYS),
            },
            Exit::Signal(s) => VmmFailure::Signal(s),
            Exit::Code(c) => VmmFailure::Exited(c),
        });
    }
    out
}
