//! Seccomp: the system calls a container's program may make. The default, [`SeccompProfile::Docker`],
//! is Docker's (Moby's) default profile as it applies on x86_64 to a container with no
//! capabilities (isolab's containers keep none): an allow list of about 300 calls, every other call
//! failing with `EPERM`, and `clone3` failing with `ENOSYS` so that glibc falls back to `clone`,
//! whose namespace flags are refused. [`SeccompProfile::Off`] installs nothing, so the cost of the
//! filter can be measured (`isolab run --seccomp off`).
//!
//! The rules are written with rust-vmm's `seccompiler` types (`docker_rules`); the program the
//! child installs is one filter that searches the system-call number's intervals
//! (`seccomp_tree`) instead of seccompiler's linear chain, because installing a long
//! linear filter costs about 1 ms of CPU per container start (the kernel emulates it for every
//! system-call number to build its action cache). A test checks that both programs give the
//! same verdict for every number and argument edge. The program is built in the parent, before
//! the clone, and installed by the child as its very last step before `execve` (one `seccomp`
//! call: async-signal-safe). It then holds for the init and everything it starts.
//!
//! Source of the rules: `moby/profiles` seccomp v0.2.3 (`default.json`, as vendored by Moby in
//! 2026): its unconditional allow list, the `minKernel 4.8` list (isolab needs Linux 5.7), the
//! argument rules for `socket` (no `AF_ALG` 38, no `AF_VSOCK` 40), `personality` (the five values
//! Docker allows) and `clone` (no namespace flags), the `amd64` rules (`arch_prctl`,
//! `modify_ldt`), and the `clone3` `ENOSYS` rule of a container without `CAP_SYS_ADMIN`. Rules
//! that need a capability the container lacks are left out, as Docker leaves them out. Names that
//! are not x86_64 system calls (the 32-bit `*32`, `*64` and `*_time64` variants, `socketcall`,
//! ...) have no number here and are skipped, as libseccomp skips them.
//!
//! Refused, among others: every `io_uring_*` call, `keyctl`, `add_key`, `request_key`, `bpf`,
//! `mount`, `unshare`, `setns`, `reboot`, `init_module`, `perf_event_open`. Allowed although
//! sometimes thought dangerous: `ptrace` and `process_vm_readv` (Docker allows them on kernels
//! ≥ 4.8, whose ptrace can no longer bypass seccomp). No workload may depend on a refused call.

use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};
use serde::{Deserialize, Serialize};

use crate::error::ContainerError;

/// Which system-call filter the container's program runs under.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompProfile {
    /// Docker's default profile (the default).
    #[default]
    Docker,
    /// No filter: every system call the capabilities allow.
    Off,
}

impl SeccompProfile {
    /// Every profile, default first.
    pub const ALL: [SeccompProfile; 2] = [SeccompProfile::Docker, SeccompProfile::Off];

    /// The name on the command line and in manifests.
    pub fn name(self) -> &'static str {
        match self {
            SeccompProfile::Docker => "docker",
            SeccompProfile::Off => "off",
        }
    }

    /// Parses a name ([`SeccompProfile::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl std::fmt::Display for SeccompProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Docker's unconditional x86_64 allow list, as `libc::SYS_*` names.
macro_rules! syscalls {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), libc::$name as i64)),*]
    };
}

/// x86_64 system calls of the list that the `libc` crate has no constant for yet, with their
/// numbers from the kernel's `arch/x86/entry/syscalls/syscall_64.tbl`.
const ALLOW_BY_NUMBER: [(&str, i64); 13] = [
    ("io_pgetevents", 333),
    ("uretprobe", 335),
    ("cachestat", 451),
    ("map_shadow_stack", 453),
    ("futex_wake", 454),
    ("futex_wait", 455),
    ("futex_requeue", 456),
    ("statmount", 457),
    ("listmount", 458),
    ("setxattrat", 463),
    ("getxattrat", 464),
    ("listxattrat", 465),
    ("removexattrat", 466),
];

/// Allowed whatever their arguments.
const ALLOW: &[(&str, i64)] = syscalls![
    SYS_accept,
    SYS_accept4,
    SYS_access,
    SYS_adjtimex,
    SYS_alarm,
    SYS_bind,
    SYS_brk,
    SYS_capget,
    SYS_capset,
    SYS_chdir,
    SYS_chmod,
    SYS_chown,
    SYS_clock_adjtime,
    SYS_clock_getres,
    SYS_clock_gettime,
    SYS_clock_nanosleep,
    SYS_close,
    SYS_close_range,
    SYS_connect,
    SYS_copy_file_range,
    SYS_creat,
    SYS_dup,
    SYS_dup2,
    SYS_dup3,
    SYS_epoll_create,
    SYS_epoll_create1,
    SYS_epoll_ctl,
    SYS_epoll_ctl_old,
    SYS_epoll_pwait,
    SYS_epoll_pwait2,
    SYS_epoll_wait,
    SYS_epoll_wait_old,
    SYS_eventfd,
    SYS_eventfd2,
    SYS_execve,
    SYS_execveat,
    SYS_exit,
    SYS_exit_group,
    SYS_faccessat,
    SYS_faccessat2,
    SYS_fadvise64,
    SYS_fallocate,
    SYS_fanotify_mark,
    SYS_fchdir,
    SYS_fchmod,
    SYS_fchmodat,
    SYS_fchmodat2,
    SYS_fchown,
    SYS_fchownat,
    SYS_fcntl,
    SYS_fdatasync,
    SYS_fgetxattr,
    SYS_flistxattr,
    SYS_flock,
    SYS_fork,
    SYS_fremovexattr,
    SYS_fsetxattr,
    SYS_fstat,
    SYS_fstatfs,
    SYS_fsync,
    SYS_ftruncate,
    SYS_futex,
    SYS_futex_waitv,
    SYS_futimesat,
    SYS_getcpu,
    SYS_getcwd,
    SYS_getdents,
    SYS_getdents64,
    SYS_getegid,
    SYS_geteuid,
    SYS_getgid,
    SYS_getgroups,
    SYS_getitimer,
    SYS_getpeername,
    SYS_getpgid,
    SYS_getpgrp,
    SYS_getpid,
    SYS_getppid,
    SYS_getpriority,
    SYS_getrandom,
    SYS_getresgid,
    SYS_getresuid,
    SYS_getrlimit,
    SYS_get_robust_list,
    SYS_getrusage,
    SYS_getsid,
    SYS_getsockname,
    SYS_getsockopt,
    SYS_get_thread_area,
    SYS_gettid,
    SYS_gettimeofday,
    SYS_getuid,
    SYS_getxattr,
    SYS_inotify_add_watch,
    SYS_inotify_init,
    SYS_inotify_init1,
    SYS_inotify_rm_watch,
    SYS_io_cancel,
    SYS_ioctl,
    SYS_io_destroy,
    SYS_io_getevents,
    SYS_ioprio_get,
    SYS_ioprio_set,
    SYS_io_setup,
    SYS_io_submit,
    SYS_kill,
    SYS_landlock_add_rule,
    SYS_landlock_create_ruleset,
    SYS_landlock_restrict_self,
    SYS_lchown,
    SYS_lgetxattr,
    SYS_link,
    SYS_linkat,
    SYS_listen,
    SYS_listxattr,
    SYS_llistxattr,
    SYS_lremovexattr,
    SYS_lseek,
    SYS_lsetxattr,
    SYS_lstat,
    SYS_madvise,
    SYS_membarrier,
    SYS_memfd_create,
    SYS_memfd_secret,
    SYS_mincore,
    SYS_mkdir,
    SYS_mkdirat,
    SYS_mknod,
    SYS_mknodat,
    SYS_mlock,
    SYS_mlock2,
    SYS_mlockall,
    SYS_mmap,
    SYS_mprotect,
    SYS_mq_getsetattr,
    SYS_mq_notify,
    SYS_mq_open,
    SYS_mq_timedreceive,
    SYS_mq_timedsend,
    SYS_mq_unlink,
    SYS_mremap,
    SYS_mseal,
    SYS_msgctl,
    SYS_msgget,
    SYS_msgrcv,
    SYS_msgsnd,
    SYS_msync,
    SYS_munlock,
    SYS_munlockall,
    SYS_munmap,
    SYS_name_to_handle_at,
    SYS_nanosleep,
    SYS_newfstatat,
    SYS_open,
    SYS_openat,
    SYS_openat2,
    SYS_pause,
    SYS_pidfd_open,
    SYS_pidfd_send_signal,
    SYS_pipe,
    SYS_pipe2,
    SYS_pkey_alloc,
    SYS_pkey_free,
    SYS_pkey_mprotect,
    SYS_poll,
    SYS_ppoll,
    SYS_prctl,
    SYS_pread64,
    SYS_preadv,
    SYS_preadv2,
    SYS_prlimit64,
    SYS_process_mrelease,
    SYS_pselect6,
    SYS_pwrite64,
    SYS_pwritev,
    SYS_pwritev2,
    SYS_read,
    SYS_readahead,
    SYS_readlink,
    SYS_readlinkat,
    SYS_readv,
    SYS_recvfrom,
    SYS_recvmmsg,
    SYS_recvmsg,
    SYS_remap_file_pages,
    SYS_removexattr,
    SYS_rename,
    SYS_renameat,
    SYS_renameat2,
    SYS_restart_syscall,
    SYS_rmdir,
    SYS_rseq,
    SYS_rt_sigaction,
    SYS_rt_sigpending,
    SYS_rt_sigprocmask,
    SYS_rt_sigqueueinfo,
    SYS_rt_sigreturn,
    SYS_rt_sigsuspend,
    SYS_rt_sigtimedwait,
    SYS_rt_tgsigqueueinfo,
    SYS_sched_getaffinity,
    SYS_sched_getattr,
    SYS_sched_getparam,
    SYS_sched_get_priority_max,
    SYS_sched_get_priority_min,
    SYS_sched_getscheduler,
    SYS_sched_rr_get_interval,
    SYS_sched_setaffinity,
    SYS_sched_setattr,
    SYS_sched_setparam,
    SYS_sched_setscheduler,
    SYS_sched_yield,
    SYS_seccomp,
    SYS_select,
    SYS_semctl,
    SYS_semget,
    SYS_semop,
    SYS_semtimedop,
    SYS_sendfile,
    SYS_sendmmsg,
    SYS_sendmsg,
    SYS_sendto,
    SYS_setfsgid,
    SYS_setfsuid,
    SYS_setgid,
    SYS_setgroups,
    SYS_setitimer,
    SYS_setpgid,
    SYS_setpriority,
    SYS_setregid,
    SYS_setresgid,
    SYS_setresuid,
    SYS_setreuid,
    SYS_setrlimit,
    SYS_set_robust_list,
    SYS_setsid,
    SYS_setsockopt,
    SYS_set_thread_area,
    SYS_set_tid_address,
    SYS_setuid,
    SYS_setxattr,
    SYS_shmat,
    SYS_shmctl,
    SYS_shmdt,
    SYS_shmget,
    SYS_shutdown,
    SYS_sigaltstack,
    SYS_signalfd,
    SYS_signalfd4,
    SYS_socketpair,
    SYS_splice,
    SYS_stat,
    SYS_statfs,
    SYS_statx,
    SYS_symlink,
    SYS_symlinkat,
    SYS_sync,
    SYS_sync_file_range,
    SYS_syncfs,
    SYS_sysinfo,
    SYS_tee,
    SYS_tgkill,
    SYS_time,
    SYS_timer_create,
    SYS_timer_delete,
    SYS_timer_getoverrun,
    SYS_timer_gettime,
    SYS_timer_settime,
    SYS_timerfd_create,
    SYS_timerfd_gettime,
    SYS_timerfd_settime,
    SYS_times,
    SYS_tkill,
    SYS_truncate,
    SYS_umask,
    SYS_uname,
    SYS_unlink,
    SYS_unlinkat,
    SYS_utime,
    SYS_utimensat,
    SYS_utimes,
    SYS_vfork,
    SYS_vmsplice,
    SYS_wait4,
    SYS_waitid,
    SYS_write,
    SYS_writev,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_ptrace,
];

/// `AF_ALG` and `AF_VSOCK`: the socket families Docker's profile refuses.
const AF_ALG: u64 = 38;
const AF_VSOCK: u64 = 40;
/// The `personality` values Docker allows: `PER_LINUX`, `UNAME26`, `PER_LINUX32`,
/// `UNAME26|PER_LINUX32` and the query `0xffffffff`.
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];
/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
/// CLONE_NEWNET`: `clone` is allowed only with none of these (Docker's mask 2114060288).
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// The compiled program of a profile, installed by the child before exec.
#[derive(Debug, Clone, Default)]
pub(crate) struct SeccompFilters {
    /// The allow list with its argument rules, `ENOSYS` for `clone3`, `EPERM` for everything
    /// else: one filter (none with [`SeccompProfile::Off`]).
    program: Option<BpfProgram>,
}

fn compile_error(e: impl std::fmt::Display) -> ContainerError {
    ContainerError::Seccomp { why: e.to_string() }
}

fn condition(arg: u8, len: SeccompCmpArgLen, op: SeccompCmpOp, value: u64) -> SeccompCondition {
    // Argument indexes 0..=5 are all valid; only an index above 5 makes `new` fail.
    SeccompCondition::new(arg, len, op, value).unwrap_or_else(|_| unreachable!("arg {arg} <= 5"))
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, ContainerError> {
    SeccompRule::new(conditions).map_err(compile_error)
}

/// The allow list's rules: syscall number to rules (an empty list allows every argument).
pub(crate) fn docker_rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, ContainerError> {
    use SeccompCmpArgLen::{Dword, Qword};
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &(_, nr) in ALLOW.iter().chain(ALLOW_BY_NUMBER.iter()) {
        rules.insert(nr, Vec::new());
    }
    // amd64-only rules of the profile.
    rules.insert(libc::SYS_arch_prctl, Vec::new());
    rules.insert(libc::SYS_modify_ldt, Vec::new());
    rules.insert(
        libc::SYS_socket,
        vec![
            rule(vec![condition(0, Dword, SeccompCmpOp::Lt, AF_ALG)])?,
            rule(vec![condition(0, Dword, SeccompCmpOp::Eq, AF_ALG + 1)])?,
            rule(vec![condition(0, Dword, SeccompCmpOp::Gt, AF_VSOCK)])?,
        ],
    );
    rules.insert(
        libc::SYS_personality,
        PERSONALITIES
            .iter()
            .map(|&p| rule(vec![condition(0, Qword, SeccompCmpOp::Eq, p)]))
            .collect::<Result<_, _>>()?,
    );
    rules.insert(
        libc::SYS_clone,
        vec![rule(vec![condition(
            0,
            Qword,
            SeccompCmpOp::MaskedEq(CLONE_NAMESPACE_FLAGS),
            0,
        )])?],
    );
    Ok(rules)
}

/// seccompiler's linear programs of the same rules, as the kernel would run them: the allow
/// list (`EPERM` for the rest), and a second filter for `clone3`'s `ENOSYS`. The tests hold the
/// installed program to their verdicts.
#[cfg(test)]
pub(crate) fn seccompiler_programs() -> Result<[BpfProgram; 2], ContainerError> {
    use seccompiler::{SeccompAction, SeccompFilter, TargetArch};
    let arch = TargetArch::x86_64;
    let allow = SeccompFilter::new(
        docker_rules()?,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )
    .and_then(BpfProgram::try_from)
    .map_err(compile_error)?;
    let enosys = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .and_then(BpfProgram::try_from)
    .map_err(compile_error)?;
    Ok([allow, enosys])
}

/// Docker's profile as one search over system-call numbers (see [`crate::seccomp_tree`]).
fn docker_program() -> BpfProgram {
    use crate::seccomp_tree::{self as tree, Verdict};
    let eperm = tree::errno(libc::EPERM);
    let allow = Verdict::Return(libc::SECCOMP_RET_ALLOW);
    let mut rules: BTreeMap<u32, Verdict> = BTreeMap::new();
    for &(_, nr) in ALLOW.iter().chain(ALLOW_BY_NUMBER.iter()) {
        rules.insert(nr as u32, allow.clone());
    }
    rules.insert(libc::SYS_arch_prctl as u32, allow.clone());
    rules.insert(libc::SYS_modify_ldt as u32, allow);
    rules.insert(
        libc::SYS_socket as u32,
        tree::dword_outside(AF_ALG as u32, AF_ALG as u32 + 1, AF_VSOCK as u32, eperm),
    );
    rules.insert(
        libc::SYS_personality as u32,
        tree::qword_one_of(&PERSONALITIES, eperm),
    );
    rules.insert(
        libc::SYS_clone as u32,
        tree::qword_none_of(CLONE_NAMESPACE_FLAGS as u32, eperm),
    );
    rules.insert(
        libc::SYS_clone3 as u32,
        Verdict::Return(tree::errno(libc::ENOSYS)),
    );
    tree::program(&rules, eperm)
}

impl SeccompFilters {
    /// Compiles the program of `profile` (none for [`SeccompProfile::Off`]).
    pub(crate) fn compile(profile: SeccompProfile) -> Result<Self, ContainerError> {
        if profile == SeccompProfile::Off {
            return Ok(Self::default());
        }
        // The rules must still be valid seccompiler rules (what the tests compare against).
        docker_rules()?;
        Ok(Self {
            program: Some(docker_program()),
        })
    }

    /// Number of BPF instructions installed (0 when off), for the manifest.
    pub(crate) fn instructions(&self) -> usize {
        self.program.as_ref().map_or(0, Vec::len)
    }

    /// Child side, the last step before `execve`: installs the program. `no_new_privs` is
    /// already set. Async-signal-safe: one `seccomp` call on memory built before the clone.
    pub(crate) fn install(&self) -> Result<(), i32> {
        for program in self.program.iter() {
            if let Err(e) = seccompiler::apply_filter(program) {
                let errno = match e {
                    seccompiler::Error::Seccomp(io) | seccompiler::Error::Prctl(io) => {
                        io.raw_os_error().unwrap_or(libc::EINVAL)
                    }
                    _ => libc::EINVAL,
                };
                return Err(errno);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in SeccompProfile::ALL {
            assert_eq!(SeccompProfile::from_name(p.name()), Some(p));
        }
        assert_eq!(SeccompProfile::from_name("strict"), None);
        assert_eq!(SeccompProfile::default(), SeccompProfile::Docker);
    }

    #[test]
    fn docker_rules_allow_the_common_calls_and_refuse_the_dangerous_ones() {
        let rules = docker_rules().expect("rules");
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_openat,
            libc::SYS_execve,
            libc::SYS_getppid,
            libc::SYS_clock_nanosleep,
            libc::SYS_exit_group,
            libc::SYS_wait4,
            libc::SYS_mmap,
        ] {
            assert_eq!(rules.get(&nr), Some(&Vec::new()), "{nr} must be allowed");
        }
        for nr in [
            libc::SYS_io_uring_setup,
            libc::SYS_io_uring_enter,
            libc::SYS_keyctl,
            libc::SYS_add_key,
            libc::SYS_bpf,
            libc::SYS_mount,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_reboot,
            libc::SYS_init_module,
            libc::SYS_clone3,
            libc::SYS_perf_event_open,
        ] {
            assert!(!rules.contains_key(&nr), "{nr} must be refused");
        }
        assert_eq!(rules[&libc::SYS_socket].len(), 3);
        assert_eq!(rules[&libc::SYS_personality].len(), 5);
        assert_eq!(rules[&libc::SYS_clone].len(), 1);
        // Every number is an x86_64 system call (the table ends at 466 today).
        assert!(rules.keys().all(|&nr| (0..=466).contains(&nr)));
        assert!(rules.len() > 290, "{}", rules.len());
    }

    #[test]
    fn programs_compile_and_off_has_none() {
        let docker = SeccompFilters::compile(SeccompProfile::Docker).expect("compile");
        // A search, not a chain: a fraction of seccompiler's 1605 instructions.
        assert!(
            (100..400).contains(&docker.instructions()),
            "{}",
            docker.instructions()
        );
        assert_eq!(
            SeccompFilters::compile(SeccompProfile::Off)
                .expect("off")
                .instructions(),
            0
        );
    }

    /// The kernel's verdict with seccompiler's two filters: the most recently installed
    /// (`enosys`) runs first; the higher precedence wins, and between equal precedences the one
    /// that ran first.
    fn reference(programs: &[BpfProgram; 2], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        let precedence = |r: u32| match r & libc::SECCOMP_RET_ACTION_FULL {
            libc::SECCOMP_RET_KILL_PROCESS => 7,
            libc::SECCOMP_RET_KILL_THREAD => 6,
            libc::SECCOMP_RET_TRAP => 5,
            libc::SECCOMP_RET_ERRNO => 4,
            libc::SECCOMP_RET_TRACE => 2,
            libc::SECCOMP_RET_LOG => 1,
            _ => 0,
        };
        let second = crate::seccomp_tree::interpret(&programs[1], nr, arch, args);
        let first = crate::seccomp_tree::interpret(&programs[0], nr, arch, args);
        if precedence(first) > precedence(second) {
            first
        } else {
            second
        }
    }

    /// The installed search program decides exactly as seccompiler's linear filters: every
    /// system-call number, x32 and impossible numbers, the wrong architecture, and argument
    /// values around every rule's edges (both 32-bit halves).
    #[test]
    fn the_search_program_decides_like_seccompiler() {
        let tree = docker_program();
        let linear = seccompiler_programs().expect("seccompiler");
        let mut args_to_try: Vec<u64> = vec![
            0,
            1,
            7,
            8,
            9,
            37,
            38,
            39,
            40,
            41,
            0x20000,
            0x20008,
            0x20009,
            0xffff_fffe,
            0xffff_ffff,
            1 << 32,
            (1 << 32) | 8,
            u64::MAX,
        ];
        for bit in 0..32 {
            args_to_try.push(1 << bit);
            args_to_try.push(CLONE_NAMESPACE_FLAGS ^ (1 << bit));
            args_to_try.push((1u64 << 32) | (1 << bit));
        }
        let mut numbers: Vec<u32> = (0..1024).collect();
        numbers.extend([0x4000_0000, 0x4000_0001, 0x4000_0029, 0x7fff_ffff, u32::MAX]);
        let mut checked = 0;
        for arch in [crate::seccomp_tree::AUDIT_ARCH_X86_64, 0x4000_0003] {
            for &nr in &numbers {
                let with_rules = [libc::SYS_socket, libc::SYS_personality, libc::SYS_clone]
                    .contains(&i64::from(nr));
                let tries: &[u64] = if with_rules {
                    &args_to_try
                } else {
                    &[0, u64::MAX]
                };
                for &a0 in tries {
                    let args = [a0, a0 ^ 1, 0, 0, 0, 0];
                    assert_eq!(
                        crate::seccomp_tree::interpret(&tree, nr, arch, args),
                        reference(&linear, nr, arch, args),
                        "nr {nr} arch {arch:#x} arg0 {a0:#x}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 4000);
        // And it is much shorter than the chains.
        assert!(
            tree.len() * 4 < linear[0].len() + linear[1].len(),
            "{}",
            tree.len()
        );
    }

    /// Installs the profile in a forked child and checks the kernel's answers: an allowed call
    /// works, a refused one fails with EPERM, clone3 with ENOSYS, and a clone with a namespace
    /// flag with EPERM.
    #[test]
    fn the_kernel_enforces_the_profile() {
        let filters = SeccompFilters::compile(SeccompProfile::Docker).expect("compile");
        // SAFETY: the child only makes raw system calls and _exits; it touches no lock or
        // allocator (the programs were built before the fork).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            // SAFETY: prctl with integer arguments; then raw system calls with null or integer
            // arguments; _exit ends the child.
            unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                if filters.install().is_err() {
                    libc::_exit(10);
                }
                let errno = || *libc::__errno_location();
                if libc::syscall(libc::SYS_getppid) <= 0 {
                    libc::_exit(11);
                }
                if libc::syscall(libc::SYS_io_uring_setup, 1, std::ptr::null::<u8>()) != -1
                    || errno() != libc::EPERM
                {
                    libc::_exit(12);
                }
                if libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0) != -1
                    || errno() != libc::ENOSYS
                {
                    libc::_exit(13);
                }
                if libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUTS) != -1
                    || errno() != libc::EPERM
                {
                    libc::_exit(14);
                }
                if libc::syscall(libc::SYS_socket, AF_VSOCK, libc::SOCK_STREAM, 0) != -1
                    || errno() != libc::EPERM
                {
                    libc::_exit(15);
                }
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "status {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "see the _exit codes above");
    }
}
