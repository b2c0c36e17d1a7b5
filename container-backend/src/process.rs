//! Spawning and watching: one `clone3` into new namespaces (on cgroup v2 also into the trial
//! cgroup), the child's setup up to `execve`, and the parent's watch over the running container:
//! marker bytes, output, exit, timeout, interruption.
//!
//! Between clone and exec the child is a copy of a possibly multi-threaded parent: it may only make
//! async-signal-safe calls (no allocation, no locks, no panics). Everything it needs (paths,
//! argv, envp, fds, the capability mask) is built before clone, and it reports through a shared
//! anonymous page (phase times and, on failure, the step and errno) instead of a pipe the parent
//! would have to wake up for.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{pipe2, Pid};

use crate::capabilities::CapabilityDrop;
use crate::error::ContainerError;
use crate::namespaces::{errno, NamespaceSetup, CLONE_NAMESPACES, CLONE_NEWCGROUP};
use crate::rootfs::MountPlan;
use crate::timeline::{monotonic_ns, Phase, Timeline};
use crate::userns::{IdMaps, MapSync};

/// The fd number the init process finds its marker pipe on (`ISOLAB_MARKER=fd:3`).
pub const MARKER_FD: RawFd = 3;

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
/// clone3's flag for a child born in the cgroup `CloneArgs::cgroup` names (Linux 5.7).
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
/// Keep at most this much of the init's stdout (the framed result is one line).
const STDOUT_CAP: usize = 16 << 20;
/// Keep the last this-many bytes of stderr for failure reports.
const STDERR_TAIL: usize = 64 << 10;

/// The steps of the child's setup, to say which one failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum SetupStep {
    /// Writing itself into the v1 cgroups.
    JoinCgroup = 1,
    /// `unshare(CLONE_NEWCGROUP)` after the v1 join.
    EnterCgroupNamespace,
    /// `sethostname` in the new UTS namespace.
    SetHostname,
    /// Bringing `lo` up in the new network namespace.
    LoopbackUp,
    /// Making the copied mount table private.
    MakeMountsPrivate,
    /// Bind-mounting the rootfs directory onto itself.
    BindRootfs,
    /// Remounting the rootfs read-only.
    RootReadOnly,
    /// Mounting /proc.
    MountProc,
    /// Mounting /sys.
    MountSys,
    /// Mounting the tmpfs for /dev.
    MountDev,
    /// Creating /dev/null, /dev/zero, /dev/urandom.
    MakeDevNodes,
    /// Mounting /tmp.
    MountTmp,
    /// Bind-mounting the scratch directory.
    BindScratch,
    /// Entering the new root.
    PivotRoot,
    /// Detaching the host's root.
    DetachOldRoot,
    /// Putting stdin/stdout/stderr/marker on fds 0-3.
    SetupFds,
    /// Dropping capabilities.
    DropCapabilities,
    /// `PR_SET_NO_NEW_PRIVS`.
    NoNewPrivs,
    /// `execve("/init")`.
    Exec,
    /// Waiting for the id maps and becoming uid/gid 0 of the user namespace.
    EnterUserNamespace,
    /// Covering the masked paths (`/proc/kcore`, `/sys/firmware`, ...).
    MaskPaths,
    /// Making `/proc/sys` and the other read-only paths read-only.
    ReadOnlyPaths,
    /// Clearing the supplementary groups.
    ClearGroups,
    /// Joining a new session keyring.
    SessionKeyring,
    /// Setting `RLIMIT_NOFILE`.
    ResourceLimits,
    /// Remounting /dev read-only once its nodes exist.
    DevReadOnly,
    /// Installing the seccomp filter.
    Seccomp,
    /// Joining the network namespace the runtime was given (a veth's, or the lab's).
    JoinNetwork,
}

impl SetupStep {
    const ALL: [SetupStep; 28] = [
        SetupStep::JoinCgroup,
        SetupStep::EnterCgroupNamespace,
        SetupStep::SetHostname,
        SetupStep::LoopbackUp,
        SetupStep::MakeMountsPrivate,
        SetupStep::BindRootfs,
        SetupStep::RootReadOnly,
        SetupStep::MountProc,
        SetupStep::MountSys,
        SetupStep::MountDev,
        SetupStep::MakeDevNodes,
        SetupStep::MountTmp,
        SetupStep::BindScratch,
        SetupStep::PivotRoot,
        SetupStep::DetachOldRoot,
        SetupStep::SetupFds,
        SetupStep::DropCapabilities,
        SetupStep::NoNewPrivs,
        SetupStep::Exec,
        SetupStep::EnterUserNamespace,
        SetupStep::MaskPaths,
        SetupStep::ReadOnlyPaths,
        SetupStep::ClearGroups,
        SetupStep::SessionKeyring,
        SetupStep::ResourceLimits,
        SetupStep::DevReadOnly,
        SetupStep::Seccomp,
        SetupStep::JoinNetwork,
    ];

    fn from_u32(n: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|s| *s as u32 == n)
    }

    /// What to do when this step fails.
    pub fn hint(self) -> &'static str {
        match self {
            SetupStep::JoinCgroup | SetupStep::EnterCgroupNamespace => {
                "check that the cgroup controllers are usable (`isolab doctor`)"
            }
            SetupStep::SetHostname | SetupStep::LoopbackUp => {
                "the UTS or network namespace is not usable; run `isolab doctor`"
            }
            SetupStep::BindScratch => {
                "the I/O scratch directory must exist and be a directory on a local filesystem"
            }
            SetupStep::PivotRoot | SetupStep::DetachOldRoot => {
                "the state directory must be on a normal filesystem (not a network or overlay \
                 mount shared with another namespace)"
            }
            SetupStep::EnterUserNamespace => {
                "the parent could not write the container's uid/gid maps (its error says why), \
                 or the kernel refused uid/gid 0 inside; run `isolab doctor`"
            }
            SetupStep::MaskPaths | SetupStep::ReadOnlyPaths | SetupStep::DevReadOnly => {
                "the kernel refused a mount over /proc, /sys or /dev inside the container; run \
                 `isolab doctor` and report the kernel version if it says the host is fine"
            }
            SetupStep::SessionKeyring => {
                "the kernel refused a new session keyring (the user's key quota, \
                 /proc/sys/kernel/keys/maxkeys, may be full); run `isolab doctor --clean`"
            }
            SetupStep::Seccomp => {
                "the kernel refused the seccomp filter (a kernel without CONFIG_SECCOMP_FILTER?); \
                 run with `--seccomp off` to measure without it"
            }
            SetupStep::JoinNetwork => {
                "the network namespace given to the container is gone or not one (the run's \
                 lab namespace ended?); run `isolab doctor --clean` and try again"
            }
            SetupStep::Exec => {
                "the init binary must be a static executable for this machine (build the agent \
                 for x86_64-unknown-linux-gnu with +crt-static, as the workspace does)"
            }
            _ => "run as root on a kernel with mount namespaces; `isolab doctor` checks this host",
        }
    }

    fn name(self) -> &'static str {
        match self {
            SetupStep::JoinCgroup => "join cgroup",
            SetupStep::EnterCgroupNamespace => "enter cgroup namespace",
            SetupStep::SetHostname => "set hostname",
            SetupStep::LoopbackUp => "loopback up",
            SetupStep::MakeMountsPrivate => "make mounts private",
            SetupStep::BindRootfs => "bind rootfs",
            SetupStep::RootReadOnly => "remount rootfs read-only",
            SetupStep::MountProc => "mount /proc",
            SetupStep::MountSys => "mount /sys",
            SetupStep::MountDev => "mount /dev",
            SetupStep::MakeDevNodes => "create /dev nodes",
            SetupStep::MountTmp => "mount /tmp",
            SetupStep::BindScratch => "bind-mount scratch directory",
            SetupStep::PivotRoot => "pivot_root",
            SetupStep::DetachOldRoot => "detach old root",
            SetupStep::SetupFds => "set up stdio and marker fds",
            SetupStep::DropCapabilities => "drop capabilities",
            SetupStep::NoNewPrivs => "set no_new_privs",
            SetupStep::Exec => "execve /init",
            SetupStep::EnterUserNamespace => "enter user namespace",
            SetupStep::JoinNetwork => "join network namespace",
            SetupStep::MaskPaths => "mask paths",
            SetupStep::ReadOnlyPaths => "make paths read-only",
            SetupStep::ClearGroups => "clear supplementary groups",
            SetupStep::SessionKeyring => "join a new session keyring",
            SetupStep::ResourceLimits => "set RLIMIT_NOFILE",
            SetupStep::DevReadOnly => "remount /dev read-only",
            SetupStep::Seccomp => "install the seccomp filter",
        }
    }
}

impl std::fmt::Display for SetupStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// [`ChildReport::joined`]: in the cgroups.
const JOINED: u32 = 1;
/// [`ChildReport::joined`]: the child failed before joining (or after) and is ending.
const GAVE_UP: u32 = 2;

/// Sleeps while `word` holds `expected`, at most `timeout` (`None`: until woken). The word is in
/// a shared mapping the parent and the child both see, so the futex is not process-private.
/// Async-signal-safe.
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<&libc::timespec>) {
    // SAFETY: FUTEX_WAIT reads the aligned u32 behind `word`, which lives in the shared report
    // page for the whole call, and a timespec that outlives the call (or null).
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            timeout.map_or(std::ptr::null(), |t| t as *const libc::timespec),
        )
    };
}

/// Wakes every waiter on `word`. Async-signal-safe.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address of `word` as a key.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX) };
}

/// Child phases reported through the shared page, in slot order.
const CHILD_PHASES: [Phase; 5] = [
    Phase::CgroupJoined,
    Phase::NamespacesReady,
    Phase::RootPivoted,
    Phase::Exec,
    Phase::ChildStarted,
];

/// The page the child reports through.
#[repr(C)]
struct ChildReport {
    phases: [AtomicU64; 5],
    failed_step: AtomicU32,
    errno: AtomicI32,
    /// [`JOINED`] once the child is in its v1 cgroups, [`GAVE_UP`] if it failed first (a futex
    /// word: the parent waits on it to write the limits, see [`ChildPlan::limits_after_join`]).
    joined: AtomicU32,
    /// Set to 1 by the parent once the limits are written; the child waits for it before its
    /// last steps (a futex word).
    limits_written: AtomicU32,
    moved_root: AtomicU32,
}

/// An anonymous shared mapping holding a [`ChildReport`]; it stays shared across the clone.
struct SharedReport {
    ptr: NonNull<ChildReport>,
}

// SAFETY: the page is owned by this value (unmapped only in its Drop) and only ever accessed
// through atomics, so moving the owner to another thread is sound; a started container's handle
// moves from the thread that started it to the one that watches it.
unsafe impl Send for SharedReport {}

impl std::fmt::Debug for SharedReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedReport")
    }
}

const REPORT_LEN: usize = 4096;
const _: () = assert!(std::mem::size_of::<ChildReport>() <= REPORT_LEN);

impl SharedReport {
    fn new() -> Result<Self, ContainerError> {
        // SAFETY: an anonymous shared mapping of one page, no fd, no fixed address.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                REPORT_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(ContainerError::Sys {
                what: "mmap of the child report page",
                source: Errno::last(),
                hint: "the host is out of memory or address space",
            });
        }
        // Zero-filled by the kernel, which is a valid ChildReport (all atomics 0).
        NonNull::new(p.cast())
            .map(|ptr| Self { ptr })
            .ok_or(ContainerError::Sys {
                what: "mmap of the child report page",
                source: Errno::EFAULT,
                hint: "the host is out of memory or address space",
            })
    }

    fn get(&self) -> &ChildReport {
        // SAFETY: the mapping is page-aligned, zero-initialised (a valid ChildReport of atomics),
        // and lives until Drop; only atomic accesses are made through it.
        unsafe { self.ptr.as_ref() }
    }
}

impl Drop for SharedReport {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no reference outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), REPORT_LEN) };
    }
}

/// Makes sure an fd is at least 4 so dup2-ing the child's fds to 0..=3 never overwrites another
/// of them.
pub(crate) fn high_fd(fd: OwnedFd) -> Result<OwnedFd, ContainerError> {
    if fd.as_raw_fd() > MARKER_FD {
        return Ok(fd);
    }
    let n = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(MARKER_FD + 1)).map_err(|source| {
        ContainerError::Sys {
            what: "fcntl(F_DUPFD_CLOEXEC)",
            source,
            hint: "raise the open-files limit (ulimit -n)",
        }
    })?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new fd we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), ContainerError> {
    let (r, w) = pipe2(OFlag::O_CLOEXEC).map_err(|source| ContainerError::Sys {
        what: "pipe2",
        source,
        hint: "raise the open-files limit (ulimit -n)",
    })?;
    Ok((high_fd(r)?, high_fd(w)?))
}

/// The parent's ends of the child's stdio and marker pipes.
#[derive(Debug)]
pub(crate) struct ParentIo {
    marker: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
}

/// The child's ends, closed in the parent right after clone.
#[derive(Debug)]
pub(crate) struct ChildIo {
    stdin: OwnedFd,
    marker: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    /// With a user namespace: both ends of the pipe the child waits on for its id maps (owned by
    /// the parent's `MapSync`; the child closes its copies).
    map_sync: Option<(RawFd, RawFd)>,
}

/// Creates the pipes; `stdin` is the host's /dev/null.
pub(crate) fn make_io(dev_null: &OwnedFd) -> Result<(ParentIo, ChildIo), ContainerError> {
    let (marker_r, marker_w) = pipe()?;
    let (stdout_r, stdout_w) = pipe()?;
    let (stderr_r, stderr_w) = pipe()?;
    let stdin = high_fd(dev_null.try_clone().map_err(|e| ContainerError::Sys {
        what: "dup of /dev/null",
        source: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EMFILE)),
        hint: "raise the open-files limit (ulimit -n)",
    })?)?;
    Ok((
        ParentIo {
            marker: Some(marker_r),
            stdout: Some(stdout_r),
            stderr: Some(stderr_r),
        },
        ChildIo {
            stdin,
            marker: marker_w,
            stdout: stdout_w,
            stderr: stderr_w,
            map_sync: None,
        },
    ))
}

/// For a container that stays up (`Runtime::start`): only the marker pipe comes back to the
/// parent (its read end, non-blocking); the child's stdout and stderr go to the given files, or
/// to /dev/null.
pub(crate) fn make_io_to(
    dev_null: &OwnedFd,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
) -> Result<(OwnedFd, ChildIo), ContainerError> {
    let (marker_r, marker_w) = pipe()?;
    fcntl(&marker_r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(|source| {
        ContainerError::Sys {
            what: "fcntl(O_NONBLOCK) on the marker pipe",
            source,
            hint: "a pipe refused O_NONBLOCK; run `isolab doctor`",
        }
    })?;
    let null = || {
        dev_null.try_clone().map_err(|e| ContainerError::Sys {
            what: "dup of /dev/null",
            source: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EMFILE)),
            hint: "raise the open-files limit (ulimit -n)",
        })
    };
    let stdout = high_fd(match stdout {
        Some(f) => f,
        None => null()?,
    })?;
    let stderr = high_fd(match stderr {
        Some(f) => f,
        None => null()?,
    })?;
    Ok((
        marker_r,
        ChildIo {
            stdin: high_fd(null()?)?,
            marker: marker_w,
            stdout,
            stderr,
            map_sync: None,
        },
    ))
}

/// Everything the child needs, built before clone.
#[derive(Debug)]
pub(crate) struct ChildPlan<'a> {
    pub(crate) init: CString,
    pub(crate) argv: Vec<CString>,
    pub(crate) envp: Vec<CString>,
    pub(crate) namespaces: &'a NamespaceSetup,
    pub(crate) mounts: &'a MountPlan,
    pub(crate) caps: CapabilityDrop,
    /// Installed last, right before `execve`.
    pub(crate) seccomp: &'a crate::seccomp::SeccompFilters,
    /// This trial's detached copy of the scratch folder's mount, to attach.
    pub(crate) scratch_tree: Option<RawFd>,
    /// How the child gets into its cgroup.
    pub(crate) join: CgroupJoin,
    /// No trial cgroup (rootless): the cgroup namespace is made at clone, nothing is joined.
    pub(crate) no_cgroup: bool,
    /// The id maps of a user namespace; `None` makes none (the default).
    pub(crate) user_namespace: Option<&'a IdMaps>,
    /// A network namespace to join instead of making a fresh one.
    pub(crate) netns: Option<RawFd>,
    /// v1: the parent writes the cgroup's limits once the child has joined, while the child
    /// sets up its namespaces and mounts; the child waits for them before it drops its
    /// capabilities and execs ([`Spawned::wait_joined`], [`Spawned::release_after_limits`]).
    pub(crate) limits_after_join: bool,
}

/// How the child gets into the trial cgroup.
#[derive(Debug)]
pub(crate) enum CgroupJoin {
    /// Nothing to do: born inside (v2, `CLONE_INTO_CGROUP`) or no cgroup at all (rootless).
    AtBirth,
    /// v1, cgroup made before the clone: write `0` to these `tasks` fds first thing.
    Early(Vec<RawFd>),
}

/// Builds a NUL-terminated C string, refusing interior NULs.
pub(crate) fn c_string(s: impl AsRef<OsStr>) -> Result<CString, ContainerError> {
    let bytes = s.as_ref().as_bytes();
    CString::new(bytes).map_err(|_| ContainerError::NulByte(String::from_utf8_lossy(bytes).into()))
}

/// A child that was cloned.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) pid: Pid,
    pub(crate) pidfd: OwnedFd,
    report: SharedReport,
}

/// `struct clone_args` of clone3 (Linux 5.7 layout, with `cgroup`).
#[repr(C)]
#[derive(Debug, Default)]
#[allow(missing_docs)]
pub struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

/// `clone3(args)`: the child's pid in the parent, 0 in the child, -1 with errno on failure.
///
/// # Safety
///
/// Without `CLONE_VM` and with a zero stack the child runs on a copy of this address space, as
/// after `fork`: in a multi-threaded process it may only make async-signal-safe calls until it
/// execs or `_exit`s, and must never return into the caller's frames (it must end in `execve`
/// or `_exit`). Every pointer in `args` must be valid for the call.
pub unsafe fn clone3(args: &CloneArgs) -> libc::c_long {
    // SAFETY: the caller upholds the contract above; `args` is a valid clone_args of its size.
    unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::from_ref(args),
            std::mem::size_of::<CloneArgs>(),
        )
    }
}

/// Pins the calling thread to the CPU it runs on for the duration of the clone, so the child is
/// born on this CPU's run queue: the parent blocks in `poll` right after, and the child then runs
/// at once instead of queueing behind whatever occupies another CPU (on a busy 2-CPU host that
/// wait was the largest part of a start). The child restores the original mask first thing.
pub(crate) struct PinForClone {
    pub(crate) original: Option<libc::cpu_set_t>,
}

impl PinForClone {
    pub(crate) fn new() -> Self {
        // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
        let mut original: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: `original` is a writable cpu_set_t of `size` bytes.
        if unsafe { libc::sched_getaffinity(0, size, &mut original) } != 0 {
            return Self { original: None };
        }
        // SAFETY: sched_getcpu takes no arguments.
        let cpu = unsafe { libc::sched_getcpu() };
        if cpu < 0 {
            return Self { original: None };
        }
        if cpu as usize >= libc::CPU_SETSIZE as usize {
            return Self { original: None };
        }
        // SAFETY: cpu_set_t is plain data (zeroed is the empty set), and CPU_SET writes inside
        // it for a cpu below CPU_SETSIZE, checked above.
        let one = unsafe {
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu as usize, &mut one);
            one
        };
        // SAFETY: `one` is a valid cpu_set_t of `size` bytes.
        if unsafe { libc::sched_setaffinity(0, size, &one) } != 0 {
            return Self { original: None };
        }
        Self {
            original: Some(original),
        }
    }
}

impl Drop for PinForClone {
    fn drop(&mut self) {
        if let Some(set) = &self.original {
            // SAFETY: restores the mask read in `new`, a valid cpu_set_t.
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) };
        }
    }
}

/// Child side: back to the parent's CPU mask. Async-signal-safe.
pub(crate) fn unpin(original: Option<&libc::cpu_set_t>) {
    if let Some(set) = original {
        // SAFETY: a valid cpu_set_t copied before clone.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) };
    }
}

/// Clones the child into new namespaces (and, given `cgroup_dir`, into that v2 cgroup with its own
/// cgroup namespace). The child runs [`child_main`] and never returns here.
pub(crate) fn spawn(
    plan: &ChildPlan<'_>,
    mut io: ChildIo,
    cgroup_dir: Option<BorrowedFd<'_>>,
) -> Result<Spawned, ContainerError> {
    let report = SharedReport::new()?;
    // Only with a user namespace: the default path pays for no extra pipe.
    let sync = match plan.user_namespace {
        Some(_) => {
            let (read, write) = pipe()?;
            Some(MapSync { read, write })
        }
        None => None,
    };
    // Pointer arrays for execve, built here: the child must not allocate.
    let argv: Vec<*const libc::c_char> = plan
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = plan
        .envp
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: CLONE_NAMESPACES | CLONE_PIDFD | CLONE_CLEAR_SIGHAND,
        pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if plan.mounts.template().is_some() {
        // The child makes its mount namespace from the template instead (MountPlan::enter):
        // a copy of the host's table here would only be dropped again.
        args.flags &= !(libc::CLONE_NEWNS as u64);
    }
    if plan.netns.is_some() {
        args.flags &= !(libc::CLONE_NEWNET as u64);
    }
    if let Some(dir) = cgroup_dir {
        args.flags |= CLONE_INTO_CGROUP | CLONE_NEWCGROUP;
        args.cgroup = dir.as_raw_fd() as u64;
    } else if plan.no_cgroup {
        args.flags |= CLONE_NEWCGROUP;
    }
    if plan.user_namespace.is_some() {
        // Created first by the kernel, so it owns every other namespace of this clone.
        args.flags |= libc::CLONE_NEWUSER as u64;
    }
    io.map_sync = sync.as_ref().map(MapSync::raw);
    let pin = PinForClone::new();
    // SAFETY: clone3 with a zero stack behaves like fork: the child gets a copy of this address
    // space and returns here with 0. It then runs only `child_main`, which makes async-signal-safe
    // calls on data built above and ends in execve or _exit, never returning.
    let ret = unsafe { clone3(&args) };
    if ret == 0 {
        child_main(plan, &io, &argv, &envp, report.get(), pin.original.as_ref());
    }
    drop(pin);
    if ret < 0 {
        let source = Errno::last();
        let hint = match source {
            Errno::EPERM if plan.user_namespace.is_some() => {
                "the kernel refused a user namespace: unprivileged user namespaces may be \
                 disabled (user.max_user_namespaces, kernel.unprivileged_userns_clone, AppArmor) \
                 or isolab runs in a chroot; run as root or allow them"
            }
            Errno::EPERM => "creating namespaces needs root (CAP_SYS_ADMIN)",
            Errno::ENOSYS | Errno::E2BIG => {
                "this kernel is too old: isolab needs Linux 5.7 or newer"
            }
            Errno::ENOSPC | Errno::EUSERS => {
                "a namespace limit is reached; check /proc/sys/user/max_*_namespaces"
            }
            Errno::EBUSY => {
                "the v2 cgroup cannot take processes (its controllers are in threaded mode?)"
            }
            _ => "run `isolab doctor` to check namespaces and cgroups",
        };
        return Err(ContainerError::Sys {
            what: "clone3 into new namespaces",
            source,
            hint,
        });
    }
    drop(io);
    // SAFETY: CLONE_PIDFD stored a new pidfd we now own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let spawned = Spawned {
        pid: Pid::from_raw(ret as libc::pid_t),
        pidfd,
        report,
    };
    if let (Some(maps), Some(sync)) = (plan.user_namespace, sync) {
        // The child waits on `sync` until this is done; on failure it is killed and reaped here,
        // so the caller has nothing to clean but its cgroup.
        if let Err(e) = maps.write(spawned.pid).and_then(|()| sync.release()) {
            spawned.kill();
            let _ = spawned.reap();
            return Err(e);
        }
    }
    Ok(spawned)
}

/// Makes the cgroup the child just joined the root of its view. Async-signal-safe.
fn enter_cgroup_namespace(report: &ChildReport) {
    // SAFETY: unshare takes flags only.
    if unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } != 0 {
        fail(report, SetupStep::EnterCgroupNamespace, errno());
    }
}

/// Records a failed step and ends the child. Async-signal-safe.
fn fail(report: &ChildReport, step: SetupStep, err: i32) -> ! {
    report.errno.store(err, Ordering::Release);
    report.failed_step.store(step as u32, Ordering::Release);
    // A parent waiting for the join must not wait for a child that is ending.
    report.joined.store(GAVE_UP, Ordering::Release);
    futex_wake(&report.joined);
    // SAFETY: _exit ends this process without running any of the parent's atexit handlers or
    // destructors, which must not run in the child.
    unsafe { libc::_exit(127) }
}

fn stamp(report: &ChildReport, slot: usize) {
    if let Some(p) = report.phases.get(slot) {
        p.store(monotonic_ns(), Ordering::Release);
    }
}

/// The child between clone and exec. Async-signal-safe only: no allocation, no locks, no panics.
fn child_main(
    plan: &ChildPlan<'_>,
    io: &ChildIo,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    report: &ChildReport,
    cpus: Option<&libc::cpu_set_t>,
) -> ! {
    stamp(report, 4);
    // If the isolab thread that started us dies, so does the container (and with PID 1, all of
    // it): no orphaned containers after a crash of the harness.
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    unpin(cpus);
    // Before anything that creates files or needs ids: until the maps are written we are the
    // overflow id inside.
    if let (Some(maps), Some(sync)) = (plan.user_namespace, io.map_sync) {
        if let Err(e) = crate::userns::child_enter(sync, maps.child_clears_groups()) {
            fail(report, SetupStep::EnterUserNamespace, e);
        }
        // Changing ids cleared the parent-death signal; set it again.
        // SAFETY: prctl with integer arguments.
        unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
    }
    // The parent thread's signal mask is inherited and would survive exec; start clean. Handlers
    // were reset by CLONE_CLEAR_SIGHAND; SIGPIPE is ignored by Rust's runtime and an ignored
    // disposition survives exec, so it is reset by hand as std::process::Command does.
    // SAFETY: sigset and sigprocmask/signal are async-signal-safe and get valid arguments.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        // Exact modes for the device nodes we create; restored before exec.
        libc::umask(0);
    }
    match &plan.join {
        // Without a trial cgroup (rootless) nothing was joined: no `cgroup_joined` phase.
        CgroupJoin::AtBirth => {
            if !plan.no_cgroup {
                stamp(report, 0);
            }
        }
        CgroupJoin::Early(fds) => {
            for &fd in fds {
                // SAFETY: writes one byte from a static buffer to an fd the parent opened for us.
                if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
                    fail(report, SetupStep::JoinCgroup, errno());
                }
            }
            stamp(report, 0);
            if plan.limits_after_join {
                report.joined.store(JOINED, Ordering::Release);
                futex_wake(&report.joined);
            }
            enter_cgroup_namespace(report);
        }
    }
    if let Err(e) = plan.namespaces.set_hostname() {
        fail(report, SetupStep::SetHostname, e);
    }
    if let Some(fd) = plan.netns {
        // Set up by whoever made it (isolab's lab network): nothing to change inside.
        // SAFETY: setns with an fd the parent keeps open for the clone and a flag.
        if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
            fail(report, SetupStep::JoinNetwork, errno());
        }
    } else if let Err(e) = plan.namespaces.loopback_up() {
        fail(report, SetupStep::LoopbackUp, e);
    }
    stamp(report, 1);
    match plan.mounts.enter(plan.scratch_tree) {
        Ok(moved) => report.moved_root.store(u32::from(moved), Ordering::Release),
        Err((step, e)) => fail(report, step, e),
    }
    stamp(report, 2);
    let pairs = [
        (io.stdin.as_raw_fd(), 0),
        (io.stdout.as_raw_fd(), 1),
        (io.stderr.as_raw_fd(), 2),
        (io.marker.as_raw_fd(), MARKER_FD),
    ];
    for (from, to) in pairs {
        // SAFETY: both are valid fd numbers; every `from` is above MARKER_FD (see `high_fd`), so
        // no dup2 overwrites a later source.
        if unsafe { libc::dup2(from, to) } < 0 {
            fail(report, SetupStep::SetupFds, errno());
        }
    }
    // Whatever else the parent had open without O_CLOEXEC must not leak into the container.
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags; ENOSYS (Linux < 5.11) leaves
    // them as they are, which Rust's own O_CLOEXEC default makes acceptable.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            (MARKER_FD + 1) as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    // Groups, keyring and the open-files limit, before the capabilities go. After the mounts:
    // until exec the child holds a copy of every descriptor of its parent (close-on-exec), and
    // an isolab that runs a thousand containers holds thousands, so under a limit of 1024 the
    // mounts could open nothing more (EMFILE).
    if let Err((step, e)) = plan.mounts.confine.apply_process() {
        fail(report, step, e);
    }
    // The limits must hold before the workload's first instruction; the parent has written
    // them by now unless it was slow (it kills the child if it could not).
    if plan.limits_after_join {
        while report.limits_written.load(Ordering::Acquire) == 0 {
            futex_wait(&report.limits_written, 0, None);
        }
    }
    // A session of its own: a Ctrl-C on isolab's terminal goes to isolab, which then ends the
    // container deliberately (`interrupt_all`), instead of reaching the workload's children.
    // SAFETY: setsid takes no arguments; the child is not a process-group leader, so it succeeds.
    unsafe { libc::setsid() };
    if let Err((step, e)) = plan.caps.apply() {
        fail(report, step, e);
    }
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) } != 0 {
        fail(report, SetupStep::NoNewPrivs, errno());
    }
    // SAFETY: umask takes a mode.
    unsafe { libc::umask(0o022) };
    stamp(report, 3);
    // Last: from here on only execve is made, which the filter allows.
    if let Err(e) = plan.seccomp.install() {
        fail(report, SetupStep::Seccomp, e);
    }
    // SAFETY: `init` is a C string; `argv` and `envp` are null-terminated arrays of pointers to C
    // strings owned by `plan`, alive until exec replaces this image.
    unsafe { libc::execve(plan.init.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    fail(report, SetupStep::Exec, errno())
}

impl Spawned {
    /// Copies the child's phase times into the timeline; returns its setup failure, if any.
    pub(crate) fn collect_child_report(
        &self,
        timeline: &mut Timeline,
    ) -> Option<(SetupStep, Errno)> {
        let r = self.report.get();
        for (slot, phase) in r.phases.iter().zip(CHILD_PHASES) {
            let t = slot.load(Ordering::Acquire);
            if t != 0 {
                timeline.mark_at(phase, t);
            }
        }
        let step = r.failed_step.load(Ordering::Acquire);
        SetupStep::from_u32(step).map(|s| (s, Errno::from_raw(r.errno.load(Ordering::Acquire))))
    }

    /// Waits until the child is in its v1 cgroups (see [`ChildPlan::limits_after_join`]).
    /// Returns false if it failed or died first (its setup failure or exit tells why).
    pub(crate) fn wait_joined(&self) -> bool {
        let joined = &self.report.get().joined;
        // A child killed by a signal sets nothing: look at its pidfd between short waits.
        let slice = libc::timespec {
            tv_sec: 0,
            tv_nsec: 2_000_000,
        };
        loop {
            match joined.load(Ordering::Acquire) {
                JOINED => return true,
                GAVE_UP => return false,
                _ => {}
            }
            futex_wait(joined, 0, Some(&slice));
            if joined.load(Ordering::Acquire) == 0 && self.has_exited() {
                return false;
            }
        }
    }

    /// Lets the child go on past its wait for the limits.
    pub(crate) fn release_after_limits(&self) {
        let word = &self.report.get().limits_written;
        word.store(1, Ordering::Release);
        futex_wake(word);
    }

    /// Whether the child has ended (its pidfd is readable), without reaping it.
    fn has_exited(&self) -> bool {
        let mut fds = [PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
    }

    /// Whether the root was entered by MS_MOVE + chroot (initramfs host) instead of pivot_root.
    pub(crate) fn root_moved(&self) -> bool {
        self.report.get().moved_root.load(Ordering::Acquire) != 0
    }

    /// Storage bytes of the init and the children it reaped, from `/proc/<pid>/io`, which stays
    /// readable while the init is a zombie (so call this before [`Spawned::reap`]).
    pub(crate) fn proc_io(&self) -> crate::cgroups::IoBytes {
        let text = std::fs::read_to_string(format!("/proc/{}/io", self.pid)).unwrap_or_default();
        crate::cgroups::io::parse_proc_io(&text)
    }

    /// SIGKILLs the container's init (and with it the whole PID namespace).
    pub(crate) fn kill(&self) {
        kill_pidfd(self.pidfd.as_raw_fd());
    }

    /// Collects the exit status.
    pub(crate) fn reap(&self) -> Result<WaitStatus, ContainerError> {
        loop {
            match waitpid(self.pid, None) {
                Err(Errno::EINTR) => continue,
                Err(source) => {
                    return Err(ContainerError::Sys {
                        what: "waitpid on the container's init",
                        source,
                        hint: "something else in this process reaped the child (a SIGCHLD \
                               handler with waitpid(-1)?); do not reap children you did not start",
                    })
                }
                Ok(status) => return Ok(status),
            }
        }
    }
}

/// Sends SIGKILL through a pidfd: immune to pid reuse. Errors mean the process is gone.
pub(crate) fn kill_pidfd(pidfd: RawFd) {
    // SAFETY: pidfd_send_signal with a pidfd number, a signal, no siginfo and no flags.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
}

/// What the watch saw.
#[derive(Debug, Default)]
pub(crate) struct Watched {
    pub(crate) timed_out: bool,
    pub(crate) interrupted: bool,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

/// Options of the watch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WatchOptions {
    pub(crate) timeout: Duration,
    pub(crate) echo_stderr: bool,
}

fn read_some(fd: &OwnedFd, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        match nix::unistd::read(fd, buf) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// How often memory is sampled while the init runs. The memory.stat breakdown is a gauge, and a
/// workload frees its memory before it reports; sampling keeps the largest values. Each sample is
/// two small file reads (about 30 µs), well under 1% of a CPU at this period.
const SAMPLE_EVERY_NS: u64 = 20_000_000;

/// Watches a running container until its init exits: timestamps marker bytes, collects output,
/// kills it on timeout or interruption. `sample` runs after each batch of markers and every
/// [`SAMPLE_EVERY_NS`] after the first marker (the runtime samples memory there).
pub(crate) fn watch(
    sp: &Spawned,
    io: &mut ParentIo,
    opts: WatchOptions,
    interrupted: &dyn Fn() -> bool,
    timeline: &mut Timeline,
    sample: &mut dyn FnMut(),
) -> Watched {
    let mut w = Watched::default();
    let deadline =
        timeline.start_monotonic_ns + opts.timeout.as_nanos().min(u64::MAX as u128) as u64;
    let mut killed = false;
    let mut buf = [0u8; 16 << 10];
    // Sampling starts with the first marker: before it, the init is not running yet.
    let mut next_sample = u64::MAX;
    loop {
        let now = monotonic_ns();
        if now >= next_sample {
            sample();
            next_sample = now + SAMPLE_EVERY_NS;
        }
        let wait = if killed {
            PollTimeout::from(100u16)
        } else {
            let until = deadline.min(next_sample);
            let left_ms = until.saturating_sub(now).div_ceil(1_000_000);
            PollTimeout::try_from(left_ms.min(60_000) as i32).unwrap_or(PollTimeout::MAX)
        };
        // Order: markers before output before exit, so a batch that arrives together is recorded
        // in causal order.
        let slots = [
            Some(&sp.pidfd),
            io.marker.as_ref(),
            io.stdout.as_ref(),
            io.stderr.as_ref(),
        ];
        let mut pfds: Vec<PollFd<'_>> = Vec::with_capacity(4);
        let mut which: Vec<usize> = Vec::with_capacity(4);
        for (i, fd) in slots.iter().enumerate() {
            if let Some(fd) = fd {
                pfds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                which.push(i);
            }
        }
        // poll on our own valid fds fails otherwise only for lack of memory: a timeout tick.
        if let Err(Errno::EINTR) = poll(&mut pfds, wait) {
            continue;
        }
        let now = monotonic_ns();
        let ready: Vec<usize> = pfds
            .iter()
            .zip(&which)
            .filter(|(p, _)| p.revents().is_some_and(|r| !r.is_empty()))
            .map(|(_, &i)| i)
            .collect();
        drop(pfds);
        let mut exited = false;
        for i in [1usize, 2, 3, 0] {
            if !ready.contains(&i) {
                continue;
            }
            match i {
                0 => exited = true,
                1 => {
                    let Some(fd) = io.marker.as_ref() else {
                        continue;
                    };
                    match read_some(fd, &mut buf) {
                        Ok(0) | Err(_) => io.marker = None,
                        Ok(n) => {
                            for &b in buf.iter().take(n) {
                                if timeline.markers.is_empty() {
                                    timeline.mark_at(Phase::InitReady, now);
                                }
                                timeline.marker(b, now);
                            }
                            sample();
                            next_sample = monotonic_ns() + SAMPLE_EVERY_NS;
                        }
                    }
                }
                2 => {
                    let Some(fd) = io.stdout.as_ref() else {
                        continue;
                    };
                    match read_some(fd, &mut buf) {
                        Ok(0) | Err(_) => io.stdout = None,
                        Ok(n) => {
                            let room = STDOUT_CAP.saturating_sub(w.stdout.len());
                            w.stdout.extend_from_slice(&buf[..n.min(room)]);
                        }
                    }
                }
                _ => {
                    let Some(fd) = io.stderr.as_ref() else {
                        continue;
                    };
                    match read_some(fd, &mut buf) {
                        Ok(0) | Err(_) => io.stderr = None,
                        Ok(n) => {
                            if opts.echo_stderr {
                                use std::io::Write as _;
                                let _ = std::io::stderr().write_all(&buf[..n]);
                            }
                            w.stderr.extend_from_slice(&buf[..n]);
                            if w.stderr.len() > 2 * STDERR_TAIL {
                                let cut = w.stderr.len() - STDERR_TAIL;
                                w.stderr.drain(..cut);
                            }
                        }
                    }
                }
            }
        }
        if exited {
            timeline.mark_at(Phase::Exited, now);
            break;
        }
        if !killed && interrupted() {
            w.interrupted = true;
            sp.kill();
            killed = true;
        }
        if !killed && now >= deadline {
            w.timed_out = true;
            sp.kill();
            killed = true;
        }
    }
    // Everything in the PID namespace died with its init, so the pipes reach EOF now; the bound
    // only guards against a writer we do not know of.
    drain(io, &mut w, &mut buf);
    if w.stderr.len() > STDERR_TAIL {
        let cut = w.stderr.len() - STDERR_TAIL;
        w.stderr.drain(..cut);
    }
    w
}

fn drain(io: &mut ParentIo, w: &mut Watched, buf: &mut [u8]) {
    let end = monotonic_ns() + 200_000_000;
    for (fd, out, cap) in [
        (io.stdout.take(), &mut w.stdout, STDOUT_CAP),
        (io.stderr.take(), &mut w.stderr, usize::MAX),
    ] {
        let Some(fd) = fd else { continue };
        while monotonic_ns() < end {
            let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut p, PollTimeout::from(50u16)) {
                Ok(0) => break,
                Err(Errno::EINTR) => continue,
                Err(_) => break,
                Ok(_) => {}
            }
            match read_some(&fd, buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = cap.saturating_sub(out.len());
                    out.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
    }
    io.marker = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_round_trip_through_their_numbers() {
        for s in SetupStep::ALL {
            assert_eq!(SetupStep::from_u32(s as u32), Some(s));
            assert!(!s.hint().is_empty());
        }
        assert_eq!(SetupStep::from_u32(0), None);
    }

    #[test]
    fn high_fds_stay_clear_of_the_child_slots() {
        let devnull = OwnedFd::from(std::fs::File::open("/dev/null").expect("/dev/null"));
        let (p, c) = make_io(&devnull).expect("pipes");
        for fd in [&c.stdin, &c.stdout, &c.stderr, &c.marker] {
            assert!(fd.as_raw_fd() > MARKER_FD);
        }
        drop((p, c));
    }
}
