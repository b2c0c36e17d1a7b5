//! Seccomp filters for the VMM process, one per kind of thread, as Firecracker confines its own
//! (its `resources/seccomp/*.json`: a filter per thread kind, built with rust-vmm's seccompiler,
//! installed by each thread before it does anything a guest can influence).
//!
//! | thread | what it may do once confined |
//! |---|---|
//! | main | wait for the vCPUs, kick them (`tgkill` with the kick signal only), read KVM's statistics and its own memory map through descriptors it already holds, tear the VM down (`munmap`, `close`), send the report |
//! | vCPU | `KVM_RUN` and the four vCPU ioctls a stop at the timeout reads the state with, read KVM's statistics, raise interrupts and console output (`write`) |
//! | virtio-blk | wait on its eventfds (`epoll_wait`), move data between the disk image and guest memory (`lseek`, `read`, `write`, `fdatasync`) |
//! | virtio-net | wait on its eventfds and the tap (`epoll_wait`), move frames between the tap and guest memory (`read`, `write`), set the tap's offloads (`ioctl` `TUNSETOFFLOAD` only); the tap was opened before any filter or jail |
//! | control | read the host's requests from its socket (`recvfrom`/`read`) |
//!
//! Every thread may also use memory (`brk`, anonymous private `mmap` read-write, `mremap`,
//! `munmap`, `madvise(MADV_DONTNEED)`), wait and wake (`futex` with the wait and wake operations
//! only), read the clock and sleep, end itself, return from a signal handler, and abort
//! (`tgkill` and `rt_sigaction` with `SIGABRT` only). Everything else (opening a file, a socket,
//! `execve`, `ptrace`, `mount`, another ioctl, ...) is refused: in [`SeccompMode::On`] the
//! kernel sends the thread `SIGSYS`, whose handler writes one line naming the thread and the call
//! on stderr ([`REPORT_PREFIX`]) and lets the process die of that `SIGSYS`; the host reads the
//! line back ([`parse_report`]). [`SeccompMode::Log`] allows every call but has the kernel log the
//! refused ones (`dmesg`, audit type 1326): the way to find what a new kernel or libc needs.
//!
//! What differs from Firecracker's list comes from glibc (static) rather than musl, from Rust's
//! standard library (`sched_yield` in channels, `sigaltstack` at thread exit) and from what this
//! VMM does differently (no API thread; a control thread instead; KVM's binary statistics read
//! with `pread64`; the disk with `lseek` + `read`/`write`). The VMM sets `M_ARENA_MAX=1` first, so
//! glibc's malloc never makes a per-thread arena (which needs `mprotect`).

mod names;

use std::cell::Cell;
use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::hooks::VmmThread;

/// How the VMM process's threads are filtered (`isolab run --vm-seccomp`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompMode {
    /// A filter per thread kind; a refused call kills the VMM process with `SIGSYS` and a report
    /// of which thread made which call (the default).
    #[default]
    On,
    /// No filter: to measure what the filters cost.
    Off,
    /// The filters, but a refused call is allowed and logged by the kernel (audit, `dmesg`):
    /// for finding what a new guest kernel or host libc needs.
    Log,
}

impl SeccompMode {
    /// Every mode, default first.
    pub const ALL: [SeccompMode; 3] = [SeccompMode::On, SeccompMode::Off, SeccompMode::Log];

    /// The name on the command line and in manifests.
    pub fn name(self) -> &'static str {
        match self {
            SeccompMode::On => "on",
            SeccompMode::Off => "off",
            SeccompMode::Log => "log",
        }
    }

    /// Parses [`SeccompMode::name`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// The kinds of thread the VMM process has, each with its own filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ThreadKind {
    /// The thread that built the VM and tears it down.
    Main,
    /// A vCPU thread.
    Vcpu,
    /// The virtio-blk device thread.
    VirtioBlk,
    /// The virtio-net device thread.
    VirtioNet,
    /// The VMM process's thread that reads the host's requests.
    Control,
}

impl ThreadKind {
    /// Every kind.
    pub const ALL: [ThreadKind; 5] = [
        ThreadKind::Main,
        ThreadKind::Vcpu,
        ThreadKind::VirtioBlk,
        ThreadKind::VirtioNet,
        ThreadKind::Control,
    ];

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            ThreadKind::Main => "main",
            ThreadKind::Vcpu => "vcpu",
            ThreadKind::VirtioBlk => "virtio-blk",
            ThreadKind::VirtioNet => "virtio-net",
            ThreadKind::Control => "control",
        }
    }

    /// The kind of a VM thread; None for a thread no filter was written for (a new device
    /// thread must get its own filter before it can run confined).
    pub fn of(thread: VmmThread) -> Option<Self> {
        match thread {
            VmmThread::Main => Some(ThreadKind::Main),
            VmmThread::Vcpu(_) => Some(ThreadKind::Vcpu),
            VmmThread::Device("virtio-blk") => Some(ThreadKind::VirtioBlk),
            VmmThread::Device("virtio-net") => Some(ThreadKind::VirtioNet),
            VmmThread::Device(_) => None,
        }
    }
}

/// Why the filters could not be built or installed.
#[derive(Debug, Error)]
pub enum SeccompError {
    /// seccompiler refused a rule or the filter (a bug in the tables below).
    #[error("building the {kind} thread's seccomp filter: {source}")]
    Build {
        /// Which filter.
        kind: &'static str,
        /// seccompiler's reason.
        source: seccompiler::BackendError,
    },
    /// The filter could not be compiled to BPF.
    #[error("compiling the {kind} thread's seccomp filter: {source}")]
    Compile {
        /// Which filter.
        kind: &'static str,
        /// seccompiler's reason.
        source: seccompiler::BackendError,
    },
    /// The kernel refused the filter.
    #[error("installing the {kind} thread's seccomp filter: {source}. The host kernel needs seccomp filters (CONFIG_SECCOMP_FILTER); `--vm-seccomp off` runs without them")]
    Install {
        /// Which filter.
        kind: &'static str,
        /// seccompiler's reason.
        source: seccompiler::Error,
    },
    /// A thread asked for a filter nobody wrote.
    #[error("{0} has no seccomp filter; a new VMM thread needs its own filter in vm_backend::seccomp before it can run confined")]
    NoFilter(String),
    /// The SIGSYS handler could not be installed.
    #[error("installing the SIGSYS handler: {0}")]
    Handler(std::io::Error),
}

/// One allowance: a system call, when its arguments are what the VMM passes, and why.
#[derive(Debug, Clone, Copy)]
pub struct Allow {
    /// The call's name.
    pub call: &'static str,
    /// Its x86_64 number.
    pub nr: i64,
    /// Conditions on its arguments: for each (argument index, allowed values), the argument
    /// (compared as 32 bits, as the kernel reads these `int` arguments) must be one of the values.
    /// Empty: any arguments.
    pub args: &'static [(u8, &'static [u64])],
    /// Why the VMM needs it.
    pub why: &'static str,
}

const fn allow(call: &'static str, nr: i64, why: &'static str) -> Allow {
    Allow {
        call,
        nr,
        args: &[],
        why,
    }
}

const fn allow_if(
    call: &'static str,
    nr: i64,
    args: &'static [(u8, &'static [u64])],
    why: &'static str,
) -> Allow {
    Allow {
        call,
        nr,
        args,
        why,
    }
}

/// `_IOC(dir, 0xAE (KVMIO), nr, size)`: a KVM ioctl request number.
const fn kvm_ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (0xAE << 8) | nr
}
const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;

/// `KVM_RUN`, `_IO(KVMIO, 0x80)`.
pub const KVM_RUN: u64 = kvm_ioc(0, 0x80, 0);
/// `KVM_GET_REGS`, `_IOR(KVMIO, 0x81, struct kvm_regs)`.
pub const KVM_GET_REGS: u64 = kvm_ioc(IOC_READ, 0x81, size_of::<kvm_bindings::kvm_regs>());
/// `KVM_GET_SREGS`, `_IOR(KVMIO, 0x83, struct kvm_sregs)`.
pub const KVM_GET_SREGS: u64 = kvm_ioc(IOC_READ, 0x83, size_of::<kvm_bindings::kvm_sregs>());
/// `KVM_TRANSLATE`, `_IOWR(KVMIO, 0x85, struct kvm_translation)`.
pub const KVM_TRANSLATE: u64 = kvm_ioc(
    IOC_READ | IOC_WRITE,
    0x85,
    size_of::<kvm_bindings::kvm_translation>(),
);
/// `KVM_GET_MP_STATE`, `_IOR(KVMIO, 0x98, struct kvm_mp_state)`.
pub const KVM_GET_MP_STATE: u64 = kvm_ioc(IOC_READ, 0x98, size_of::<kvm_bindings::kvm_mp_state>());

/// The fd the VMM process's socket to the host is on ([`crate::process::protocol::CHANNEL_FD`]):
/// `recvfrom` is allowed on it only (messages to the host go out with `write`).
const CHANNEL: &[u64] = &[crate::process::protocol::CHANNEL_FD as u64];

/// `futex` operations Rust's and glibc's locks, condition variables, channels and thread joins
/// use: WAIT, WAKE, WAIT_BITSET, WAKE_BITSET, each private or not, and WAIT_BITSET on
/// CLOCK_REALTIME (glibc's `pthread_join`) (never REQUEUE, the PI operations or WAKE_OP).
const FUTEX_OPS: &[u64] = &[0, 1, 9, 10, 128, 129, 137, 138, 265, 393];
/// `MAP_PRIVATE | MAP_ANONYMOUS`, and with `MAP_NORESERVE` or `MAP_STACK`.
const ANON_MAPS: &[u64] = &[0x22, 0x4022, 0x20022];
/// `PROT_READ | PROT_WRITE`: no executable memory is ever made once a thread is confined.
const PROT_RW: &[u64] = &[3];

/// What every thread may do.
pub const COMMON: &[Allow] = &[
    allow(
        "write",
        libc::SYS_write,
        "stderr (the SIGSYS report, panics), eventfds, the host socket",
    ),
    allow(
        "close",
        libc::SYS_close,
        "a thread drops the descriptors it owns when it ends",
    ),
    allow_if(
        "fcntl",
        libc::SYS_fcntl,
        &[(1, &[libc::F_GETFD as u64])],
        "Rust's debug builds check that a descriptor is open before closing it",
    ),
    allow_if(
        "futex",
        libc::SYS_futex,
        &[(1, FUTEX_OPS)],
        "locks, condition variables, channels, joins",
    ),
    allow(
        "clock_gettime",
        libc::SYS_clock_gettime,
        "timestamps (when the vDSO cannot serve them, as under emulation)",
    ),
    allow(
        "clock_nanosleep",
        libc::SYS_clock_nanosleep,
        "sleeps while stopping threads",
    ),
    allow(
        "nanosleep",
        libc::SYS_nanosleep,
        "sleeps while stopping threads",
    ),
    allow(
        "sched_yield",
        libc::SYS_sched_yield,
        "Rust's channels back off with it",
    ),
    allow("exit", libc::SYS_exit, "a thread ends"),
    allow("exit_group", libc::SYS_exit_group, "the process ends"),
    allow(
        "rt_sigreturn",
        libc::SYS_rt_sigreturn,
        "return from the vCPU kick signal's handler",
    ),
    allow(
        "rt_sigprocmask",
        libc::SYS_rt_sigprocmask,
        "glibc blocks signals while a thread ends",
    ),
    allow(
        "sigaltstack",
        libc::SYS_sigaltstack,
        "Rust removes a thread's signal stack when it ends",
    ),
    allow("brk", libc::SYS_brk, "the heap"),
    allow_if(
        "mmap",
        libc::SYS_mmap,
        &[(2, PROT_RW), (3, ANON_MAPS)],
        "large heap blocks: anonymous, private, read-write only",
    ),
    allow("mremap", libc::SYS_mremap, "growing large heap blocks"),
    allow(
        "munmap",
        libc::SYS_munmap,
        "freeing large heap blocks and, at teardown, guest RAM",
    ),
    allow_if(
        "madvise",
        libc::SYS_madvise,
        &[(2, &[libc::MADV_DONTNEED as u64])],
        "glibc gives back an ended thread's stack and freed heap",
    ),
    allow(
        "getpid",
        libc::SYS_getpid,
        "glibc's abort and pthread_kill ask for it",
    ),
    allow("gettid", libc::SYS_gettid, "glibc's abort asks for it"),
    allow_if(
        "tgkill",
        libc::SYS_tgkill,
        &[(2, &[libc::SIGABRT as u64])],
        "abort() on a fatal Rust error",
    ),
    allow_if(
        "rt_sigaction",
        libc::SYS_rt_sigaction,
        &[(0, &[libc::SIGABRT as u64])],
        "abort() resets SIGABRT",
    ),
];

/// The main thread, once every other thread runs. The kick signal's `tgkill` is added at build
/// time (its number is glibc's SIGRTMIN, read at run time).
pub const MAIN: &[Allow] = &[
    allow("pread64", libc::SYS_pread64, "KVM's binary statistics (stats fds) and /proc/self/smaps, through descriptors opened before"),
    allow("read", libc::SYS_read, "/proc/self/smaps through its open descriptor"),
    allow("lseek", libc::SYS_lseek, "rewinding /proc/self/smaps"),
];

/// A vCPU thread.
pub const VCPU: &[Allow] = &[
    allow_if(
        "ioctl",
        libc::SYS_ioctl,
        &[(
            1,
            &[
                KVM_RUN,
                KVM_GET_REGS,
                KVM_GET_SREGS,
                KVM_GET_MP_STATE,
                KVM_TRANSLATE,
            ],
        )],
        "KVM_RUN; where the vCPU was when it is stopped at the timeout",
    ),
    allow(
        "pread64",
        libc::SYS_pread64,
        "KVM's statistics at the agent's markers",
    ),
];

/// The virtio-blk device thread.
pub const VIRTIO_BLK: &[Allow] = &[
    allow(
        "epoll_wait",
        libc::SYS_epoll_wait,
        "waiting for a queue notification, a control message or the stop",
    ),
    allow(
        "epoll_pwait",
        libc::SYS_epoll_pwait,
        "the same, as some libcs call it",
    ),
    allow(
        "read",
        libc::SYS_read,
        "eventfd counters; the disk image into guest memory",
    ),
    allow("lseek", libc::SYS_lseek, "the disk image's request offset"),
    allow("fdatasync", libc::SYS_fdatasync, "a guest FLUSH"),
];

/// The virtio-net device thread: no open, no socket, no connect: only the tap it was given.
pub const VIRTIO_NET: &[Allow] = &[
    allow(
        "epoll_wait",
        libc::SYS_epoll_wait,
        "waiting for a queue notification, a frame on the tap, a control message or the stop",
    ),
    allow(
        "epoll_pwait",
        libc::SYS_epoll_pwait,
        "the same, as some libcs call it",
    ),
    allow(
        "read",
        libc::SYS_read,
        "eventfd counters; frames from the tap",
    ),
    allow_if(
        "ioctl",
        libc::SYS_ioctl,
        &[(1, &[crate::devices::virtio::net::TUNSETOFFLOAD_REQUEST])],
        "TUNSETOFFLOAD when the driver accepts offloads",
    ),
];

/// The control thread.
pub const CONTROL: &[Allow] = &[
    allow_if(
        "recvfrom",
        libc::SYS_recvfrom,
        &[(0, CHANNEL)],
        "the host's requests",
    ),
    allow("read", libc::SYS_read, "the host's requests"),
];

/// The allowances of one kind of thread, besides [`COMMON`].
pub fn allowances(kind: ThreadKind) -> &'static [Allow] {
    match kind {
        ThreadKind::Main => MAIN,
        ThreadKind::Vcpu => VCPU,
        ThreadKind::VirtioBlk => VIRTIO_BLK,
        ThreadKind::VirtioNet => VIRTIO_NET,
        ThreadKind::Control => CONTROL,
    }
}

/// The rules of one kind of thread, for seccompiler: each allowance with conditions becomes one
/// rule per combination of allowed values.
fn rules(
    kind: ThreadKind,
    kick_signal: i32,
) -> Result<BTreeMap<i64, Vec<SeccompRule>>, SeccompError> {
    let build = |source| SeccompError::Build {
        kind: kind.name(),
        source,
    };
    let mut map: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let mut add = |a: &Allow| -> Result<(), SeccompError> {
        let mut combos: Vec<Vec<(u8, u64)>> = vec![Vec::new()];
        for (index, values) in a.args {
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.push((*index, *v));
                        c
                    })
                })
                .collect();
        }
        let entry = map.entry(a.nr).or_default();
        if a.args.is_empty() {
            // Unconditional: seccompiler matches a call with no rules whatever its arguments.
            entry.clear();
            return Ok(());
        }
        for combo in combos {
            let conditions = combo
                .iter()
                .map(|(index, v)| {
                    SeccompCondition::new(*index, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, *v)
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(build)?;
            entry.push(SeccompRule::new(conditions).map_err(build)?);
        }
        Ok(())
    };
    for a in COMMON.iter().chain(allowances(kind)) {
        add(a)?;
    }
    if kind == ThreadKind::Main {
        // Kicking a vCPU out of KVM_RUN: a second alternative beside COMMON's SIGABRT.
        let kick = SeccompCondition::new(
            2,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            u64::try_from(kick_signal).unwrap_or(0),
        )
        .map_err(build)?;
        map.entry(libc::SYS_tgkill)
            .or_default()
            .push(SeccompRule::new(vec![kick]).map_err(build)?);
    }
    Ok(map)
}

/// The compiled filters of every thread kind, ready to install.
#[derive(Debug, Clone)]
pub struct ThreadFilters {
    mode: SeccompMode,
    programs: BTreeMap<ThreadKind, BpfProgram>,
}

impl ThreadFilters {
    /// Compiles every kind's filter for `mode` ([`SeccompMode::Off`]: none). `kick_signal` is the
    /// signal the main thread kicks vCPUs with.
    pub fn compile(mode: SeccompMode, kick_signal: i32) -> Result<Self, SeccompError> {
        let mut programs = BTreeMap::new();
        let mismatch = match mode {
            SeccompMode::Off => {
                return Ok(Self { mode, programs });
            }
            SeccompMode::On => SeccompAction::Trap,
            SeccompMode::Log => SeccompAction::Log,
        };
        for kind in ThreadKind::ALL {
            let filter = SeccompFilter::new(
                rules(kind, kick_signal)?,
                mismatch.clone(),
                SeccompAction::Allow,
                TargetArch::x86_64,
            )
            .map_err(|source| SeccompError::Build {
                kind: kind.name(),
                source,
            })?;
            let program: BpfProgram =
                filter.try_into().map_err(|source| SeccompError::Compile {
                    kind: kind.name(),
                    source,
                })?;
            programs.insert(kind, program);
        }
        Ok(Self { mode, programs })
    }

    /// The mode they were compiled for.
    pub fn mode(&self) -> SeccompMode {
        self.mode
    }

    /// BPF instructions of each kind's filter (none when off).
    pub fn instructions(&self) -> BTreeMap<ThreadKind, usize> {
        self.programs.iter().map(|(k, p)| (*k, p.len())).collect()
    }

    /// Installs `kind`'s filter on the calling thread, which `label` names in a SIGSYS report
    /// (`vcpu0`, `virtio-blk`, ...). Nothing when off.
    pub fn apply(&self, kind: ThreadKind, label: &str) -> Result<(), SeccompError> {
        let Some(program) = self.programs.get(&kind) else {
            return Ok(());
        };
        set_thread_label(label);
        seccompiler::apply_filter(program).map_err(|source| SeccompError::Install {
            kind: kind.name(),
            source,
        })
    }

    /// Installs the filter of a VM thread (see [`ThreadKind::of`]).
    pub fn apply_vm_thread(&self, thread: VmmThread) -> Result<(), SeccompError> {
        if self.mode == SeccompMode::Off {
            return Ok(());
        }
        let kind =
            ThreadKind::of(thread).ok_or_else(|| SeccompError::NoFilter(thread.to_string()))?;
        let label = match thread {
            VmmThread::Vcpu(i) => format!("vcpu{i}"),
            _ => kind.name().to_owned(),
        };
        self.apply(kind, &label)
    }
}

/// The start of the line the SIGSYS handler writes on stderr:
/// `ISOLAB-VMM-SECCOMP thread=<label> syscall=<number> name=<name or ?> args=<a0>,<a1>,<a2>,<a3>`
/// (the first four arguments in hex: what an argument rule would have to allow).
pub const REPORT_PREFIX: &str = "ISOLAB-VMM-SECCOMP";

/// A refused call, as the SIGSYS handler reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedCall {
    /// The thread (`main`, `vcpu0`, `virtio-blk`, `control`).
    pub thread: String,
    /// The system call's number.
    pub syscall: i64,
    /// Its name, when known.
    pub name: Option<String>,
    /// Its first four arguments, when reported.
    #[serde(default)]
    pub args: Vec<u64>,
}

impl std::fmt::Display for RefusedCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let thread = match self.thread.as_str() {
            "main" => "the VMM's main thread".to_owned(),
            "control" => "the VMM's control thread".to_owned(),
            t if t.starts_with("vcpu") => format!("the thread of vCPU {}", &t[4..]),
            t => format!("the {t} device thread"),
        };
        match &self.name {
            Some(n) => write!(f, "{thread} made the system call {n} ({})", self.syscall)?,
            None => write!(f, "{thread} made system call {}", self.syscall)?,
        }
        if !self.args.is_empty() {
            let args: Vec<String> = self.args.iter().map(|a| format!("{a:#x}")).collect();
            write!(f, " with arguments {}", args.join(", "))?;
        }
        Ok(())
    }
}

/// Finds the SIGSYS handler's line in the VMM process's stderr.
pub fn parse_report(stderr: &str) -> Option<RefusedCall> {
    let line = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix(REPORT_PREFIX))?;
    let mut thread = None;
    let mut syscall = None;
    let mut name = None;
    let mut args = Vec::new();
    for word in line.split_ascii_whitespace() {
        match word.split_once('=') {
            Some(("thread", t)) => thread = Some(t.to_owned()),
            Some(("syscall", n)) => syscall = n.parse().ok(),
            Some(("name", n)) if n != "?" => name = Some(n.to_owned()),
            Some(("args", a)) => {
                args = a
                    .split(',')
                    .filter_map(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok())
                    .collect()
            }
            _ => {}
        }
    }
    Some(RefusedCall {
        thread: thread?,
        syscall: syscall?,
        name,
        args,
    })
}

/// The name of an x86_64 system call.
pub fn syscall_name(nr: i64) -> Option<&'static str> {
    usize::try_from(nr)
        .ok()
        .and_then(|i| names::NAMES.get(i))
        .copied()
        .filter(|n| !n.is_empty())
}

/// Longest thread label kept for the SIGSYS report.
const LABEL_MAX: usize = 24;

thread_local! {
    /// The calling thread's label for the SIGSYS report: plain bytes, so the handler reads it
    /// without allocating or locking.
    static LABEL: Cell<([u8; LABEL_MAX], usize)> = const { Cell::new(([0; LABEL_MAX], 0)) };
}

fn set_thread_label(label: &str) {
    let mut buf = [0u8; LABEL_MAX];
    let n = label.len().min(LABEL_MAX);
    buf[..n].copy_from_slice(&label.as_bytes()[..n]);
    LABEL.with(|l| l.set((buf, n)));
}

/// A system call number no filter allows and no kernel implements: the handler makes it to be
/// trapped a second time while `SIGSYS` is blocked, which makes the kernel reset `SIGSYS` to its
/// default action and kill the process with it.
const TRAP_AGAIN: libc::c_long = 1023;

/// Byte offset of `si_syscall` in the x86_64 `siginfo_t` of a seccomp `SIGSYS`
/// (`si_signo`, `si_errno`, `si_code`, padding, then `_sigsys { void *_call_addr; int _syscall;
/// unsigned int _arch; }`).
const SI_SYSCALL_OFFSET: usize = 24;

/// Appends `bytes` to `buf` at `*at`, as far as it fits.
fn put(buf: &mut [u8], at: &mut usize, bytes: &[u8]) {
    for b in bytes {
        if let Some(slot) = buf.get_mut(*at) {
            *slot = *b;
            *at += 1;
        }
    }
}

/// Appends `0x` and a number in hex.
fn put_hex(buf: &mut [u8], at: &mut usize, v: u64) {
    put(buf, at, b"0x");
    let mut digits = [0u8; 16];
    let mut v = v;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[(v & 15) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    put(buf, at, &digits[i..]);
}

/// Appends a decimal number.
fn put_number(buf: &mut [u8], at: &mut usize, n: i64) {
    if n < 0 {
        put(buf, at, b"-");
    }
    let mut digits = [0u8; 20];
    let mut v = n.unsigned_abs();
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    put(buf, at, &digits[i..]);
}

/// The line the handler writes for thread `label`, call `nr` and its first arguments (no
/// allocation).
fn report_line(buf: &mut [u8; 256], label: &[u8], nr: i64, args: &[u64]) -> usize {
    let mut at = 0;
    put(buf, &mut at, REPORT_PREFIX.as_bytes());
    put(buf, &mut at, b" thread=");
    put(buf, &mut at, label);
    put(buf, &mut at, b" syscall=");
    put_number(buf, &mut at, nr);
    put(buf, &mut at, b" name=");
    put(
        buf,
        &mut at,
        syscall_name(nr).map_or(b"?".as_slice(), str::as_bytes),
    );
    if !args.is_empty() {
        put(buf, &mut at, b" args=");
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                put(buf, &mut at, b",");
            }
            put_hex(buf, &mut at, *a);
        }
    }
    put(buf, &mut at, b"\n");
    at
}

extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // Only async-signal-safe work: read the siginfo and the saved registers, format into a
    // stack buffer, one write(2).
    // SAFETY: the kernel passes a valid siginfo_t for a SA_SIGINFO handler; si_syscall lies
    // inside it (siginfo_t is 128 bytes) for every signal, read unaligned to be safe.
    let nr =
        unsafe { std::ptr::read_unaligned(info.cast::<u8>().add(SI_SYSCALL_OFFSET).cast::<i32>()) };
    // SAFETY: for a SA_SIGINFO handler the third argument is the interrupted context, a valid
    // ucontext_t; the x86_64 system call arguments are in rdi, rsi, rdx and r10.
    let args = unsafe {
        let gregs = &(*ctx.cast::<libc::ucontext_t>()).uc_mcontext.gregs;
        [libc::REG_RDI, libc::REG_RSI, libc::REG_RDX, libc::REG_R10]
            .map(|r| gregs[r as usize] as u64)
    };
    let (label, len) = LABEL.with(Cell::get);
    let label = if len == 0 {
        b"unnamed".as_slice()
    } else {
        &label[..len]
    };
    let mut buf = [0u8; 256];
    let n = report_line(&mut buf, label, i64::from(nr), &args);
    // SAFETY: write(2) of a stack buffer to stderr; make a call no filter allows (trapped again
    // while SIGSYS is blocked in this handler: the kernel kills the process with SIGSYS);
    // _exit(2) only if that ever returned.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), n);
        libc::syscall(TRAP_AGAIN);
        libc::_exit(128 + libc::SIGSYS);
    }
}

/// Installs the process's SIGSYS handler (before any filter in [`SeccompMode::On`]).
pub fn install_sigsys_handler() -> Result<(), SeccompError> {
    // SAFETY: a zeroed sigaction with a handler of the SA_SIGINFO signature, an empty mask; the
    // handler is async-signal-safe (see `on_sigsys`).
    let rc = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigsys as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(SeccompError::Handler(std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_compiles_and_the_ioctl_numbers_are_kvms() {
        assert_eq!(KVM_RUN, 0xae80);
        assert_eq!(KVM_GET_REGS, 0x8090_ae81);
        assert_eq!(KVM_GET_SREGS, 0x8138_ae83);
        assert_eq!(KVM_TRANSLATE, 0xc018_ae85);
        assert_eq!(KVM_GET_MP_STATE, 0x8004_ae98);
        for mode in [SeccompMode::On, SeccompMode::Log] {
            let f = ThreadFilters::compile(mode, 34).expect("compile");
            let n = f.instructions();
            assert_eq!(n.len(), ThreadKind::ALL.len());
            assert!(n.values().all(|n| *n > 20 && *n < 1000), "{n:?}");
        }
        assert!(ThreadFilters::compile(SeccompMode::Off, 34)
            .expect("off")
            .instructions()
            .is_empty());
    }

    /// Runs `body` in a forked child under `kind`'s filter with the SIGSYS handler, its stderr
    /// on a pipe; returns how the child ended and what it wrote.
    fn in_child(filters: &ThreadFilters, kind: ThreadKind, body: fn()) -> (i32, String) {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two fds into the array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child only makes async-signal-safe calls (dup2, sigaction, prctl,
        // seccomp, the calls of `body`) and ends in _exit or a signal; the filters were
        // compiled before the fork.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: see above.
            unsafe {
                libc::dup2(fds[1], 2);
                if install_sigsys_handler().is_err() || filters.apply(kind, "probe").is_err() {
                    libc::_exit(99);
                }
                body();
                libc::_exit(0);
            }
        }
        // SAFETY: closing our copy of the write end; reaping our child.
        let status = unsafe {
            libc::close(fds[1]);
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            status
        };
        let mut out = Vec::new();
        // SAFETY: the read end is ours; File takes ownership.
        let mut r = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fds[0]) };
        let _ = std::io::Read::read_to_end(&mut r, &mut out);
        (status, String::from_utf8_lossy(&out).into_owned())
    }

    /// The kernel enforces each kind's filter: what the thread needs goes through, anything
    /// else kills the process with SIGSYS after the handler named the thread and the call.
    #[test]
    fn the_kernel_enforces_each_threads_filter() {
        let filters = ThreadFilters::compile(SeccompMode::On, 34).expect("compile");
        let died_of_sigsys = |(status, _): &(i32, String)| {
            libc::WIFSIGNALED(*status) && libc::WTERMSIG(*status) == libc::SIGSYS
        };
        // A vCPU thread: its ioctls pass the filter (and fail on a bad fd), a file open does not.
        let out = in_child(&filters, ThreadKind::Vcpu, || {
            // SAFETY: ioctl on an fd that is not open: EBADF, no effect.
            unsafe { libc::ioctl(-1, KVM_RUN as libc::c_ulong, 0) };
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: clock_gettime into a local.
            unsafe { libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC, &mut ts) };
            // SAFETY: openat of a constant path: refused by the filter.
            unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, c"/etc/passwd".as_ptr(), 0) };
        });
        assert!(died_of_sigsys(&out), "{out:?}");
        let call = parse_report(&out.1).expect("the handler's line");
        assert_eq!(
            (call.thread.as_str(), call.name.as_deref()),
            ("probe", Some("openat"))
        );
        // The same vCPU filter refuses another ioctl (KVM_CREATE_VM).
        let out = in_child(&filters, ThreadKind::Vcpu, || {
            // SAFETY: ioctl on a bad fd; refused before the kernel looks at the fd.
            unsafe { libc::ioctl(-1, 0xae01 as libc::c_ulong, 0) };
        });
        assert!(died_of_sigsys(&out), "{out:?}");
        assert_eq!(
            parse_report(&out.1).expect("line").args.get(1),
            Some(&0xae01)
        );
        // The device thread may not open a socket; the main thread may not execve.
        let out = in_child(&filters, ThreadKind::VirtioBlk, || {
            // SAFETY: socket(2) with constant arguments, refused.
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        });
        assert_eq!(
            parse_report(&out.1).and_then(|c| c.name),
            Some("socket".into())
        );
        // The network device thread may set the tap's offloads, and nothing else by ioctl; it
        // may not open a socket either (its frames only go to the tap it was given).
        let out = in_child(&filters, ThreadKind::VirtioNet, || {
            // SAFETY: ioctl on a bad fd: EBADF, no effect (the filter lets TUNSETOFFLOAD by).
            unsafe {
                libc::ioctl(
                    -1,
                    crate::devices::virtio::net::TUNSETOFFLOAD_REQUEST as libc::c_ulong,
                    0,
                )
            };
            // SAFETY: ioctl on a bad fd; refused before the kernel looks at the fd.
            unsafe { libc::ioctl(-1, 0x4004_54ca as libc::c_ulong, 0) };
        });
        assert_eq!(
            parse_report(&out.1).and_then(|c| c.args.get(1).copied()),
            Some(0x4004_54ca),
            "TUNSETIFF refused, TUNSETOFFLOAD allowed: {out:?}"
        );
        let out = in_child(&filters, ThreadKind::Main, || {
            let argv: [*const libc::c_char; 1] = [std::ptr::null()];
            // SAFETY: execve of a constant path with empty argument lists, refused.
            unsafe { libc::execve(c"/bin/true".as_ptr(), argv.as_ptr(), argv.as_ptr()) };
        });
        assert_eq!(
            parse_report(&out.1).and_then(|c| c.name),
            Some("execve".into())
        );
        // What every thread needs passes: it ends normally.
        let out = in_child(&filters, ThreadKind::Control, || {
            // SAFETY: write of a constant to stderr, a futex wake on a local, getpid.
            unsafe {
                libc::write(2, b"ok".as_ptr().cast(), 2);
                let word = 0u32;
                libc::syscall(libc::SYS_futex, &word, 129, 1, 0, 0, 0);
            }
        });
        assert!(
            libc::WIFEXITED(out.0) && libc::WEXITSTATUS(out.0) == 0,
            "{out:?}"
        );
        // Off installs nothing.
        let off = ThreadFilters::compile(SeccompMode::Off, 34).expect("off");
        let out = in_child(&off, ThreadKind::Vcpu, || {
            // SAFETY: socket(2) with constant arguments; closed at process exit.
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        });
        assert!(
            libc::WIFEXITED(out.0) && libc::WEXITSTATUS(out.0) == 0,
            "{out:?}"
        );
    }

    #[test]
    fn the_handlers_line_is_parsed_back() {
        let mut buf = [0u8; 256];
        let n = report_line(&mut buf, b"virtio-blk", 41, &[2, 1, 0, u64::MAX]);
        let text = std::str::from_utf8(&buf[..n]).expect("utf8");
        assert_eq!(
            text,
            "ISOLAB-VMM-SECCOMP thread=virtio-blk syscall=41 name=socket args=0x2,0x1,0x0,0xffffffffffffffff\n"
        );
        let got = parse_report(&format!("noise\n{text}more noise\n")).expect("found");
        assert_eq!(got.thread, "virtio-blk");
        assert_eq!(got.syscall, 41);
        assert_eq!(got.name.as_deref(), Some("socket"));
        assert_eq!(got.args, [2, 1, 0, u64::MAX]);
        assert_eq!(
            got.to_string(),
            "the virtio-blk device thread made the system call socket (41) with arguments 0x2, 0x1, 0x0, 0xffffffffffffffff"
        );
        let n = report_line(&mut buf, b"vcpu1", 999, &[]);
        let got = parse_report(std::str::from_utf8(&buf[..n]).expect("utf8")).expect("found");
        assert_eq!(got.name, None);
        assert_eq!(got.to_string(), "the thread of vCPU 1 made system call 999");
        assert!(parse_report("ISOLAB-VMM-SECCOMP thread=x").is_none());
        assert_eq!(syscall_name(0), Some("read"));
        assert_eq!(syscall_name(-1), None);
        assert_eq!(syscall_name(100_000), None);
    }
}
