//! Typed errors of the container runtime. Every message says what to do about it.

use std::path::PathBuf;

use thiserror::Error;

use crate::cgroups::CgroupVersion;
use crate::process::SetupStep;

/// Why a container could not be prepared, started or cleaned up.
///
/// A container that started and then misbehaved (crashed, ran out of memory, timed out) is not an
/// error: it is a [`crate::RunReport`] that says so.
#[derive(Debug, Error)]
pub enum ContainerError {
    /// Creating namespaces, mounting and cgroups need root.
    #[error(
        "the container runtime needs root (effective uid is {euid}); run isolab with sudo or as root"
    )]
    NotRoot {
        /// The effective uid we run with.
        euid: u32,
    },
    /// The kernel lacks a namespace type.
    #[error(
        "this kernel has no {namespace} namespace (/proc/self/ns/{namespace} is missing); \
         use a kernel built with {config}"
    )]
    NamespaceMissing {
        /// Namespace name as in /proc/self/ns.
        namespace: &'static str,
        /// Kernel option that provides it.
        config: &'static str,
    },
    /// No usable cgroup hierarchy was found.
    #[error(
        "no cgroup hierarchy is mounted at {path} ({why}); mount cgroup2 at /sys/fs/cgroup \
         (`mount -t cgroup2 none /sys/fs/cgroup`) or the v1 controllers under it"
    )]
    CgroupNotMounted {
        /// Where we looked.
        path: PathBuf,
        /// What was wrong there.
        why: String,
    },
    /// A cgroup controller the runtime needs is not available.
    #[error("the cgroup {version} controller `{controller}` is not available: {fix}")]
    MissingController {
        /// Controller name (`memory`, `cpu`, `pids`, ...).
        controller: &'static str,
        /// Hierarchy version in use.
        version: CgroupVersion,
        /// What to do.
        fix: String,
    },
    /// The binary to run as `/init` does not exist or is not a file.
    #[error(
        "the init binary {path:?} is missing or not a regular file; build the agent with \
         `cargo build -p workloads --bin isolab-agent` or point --agent / ISOLAB_AGENT at it"
    )]
    InitMissing {
        /// The configured path.
        path: PathBuf,
    },
    /// The host directory to bind-mount as scratch space does not exist.
    #[error(
        "the I/O scratch directory {path:?} does not exist or is not a directory; create it \
         (`mkdir -p {path:?}`) or pass another one"
    )]
    ScratchMissing {
        /// The configured path.
        path: PathBuf,
    },
    /// With a user namespace, the container's root (an unprivileged id on the host) cannot write
    /// the I/O scratch directory.
    #[error(
        "the I/O scratch directory {path:?} is not writable by the container's root, which is \
         uid {uid} / gid {gid} on the host with a user namespace; `chown {uid}:{gid}` it (or a \
         directory made for the container) or pass another one"
    )]
    ScratchNotWritable {
        /// The configured path.
        path: PathBuf,
        /// Host uid of the container's root.
        uid: u32,
        /// Host gid of the container's root.
        gid: u32,
    },
    /// The runtime's state directory (rootfs lives there) could not be used.
    #[error(
        "the container state directory {path:?} cannot be used: {source}; make it writable by \
         root or choose another one"
    )]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The state directory is on a filesystem mounted `noexec` or otherwise unfit for a rootfs.
    #[error("the container rootfs at {path:?} cannot hold an executable /init: {why}")]
    RootfsUnfit {
        /// The rootfs directory.
        path: PathBuf,
        /// What is wrong and what to do.
        why: String,
    },
    /// Building the rootfs directory failed.
    #[error("building the container rootfs at {path:?} failed: {source}; check free space and permissions")]
    Rootfs {
        /// The file or directory being created.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A cgroup file operation failed.
    #[error("cgroup operation `{action}` on {path:?} failed: {source}; {hint}")]
    Cgroup {
        /// What we tried (`create`, `write memory.max`, `remove`, ...).
        action: String,
        /// The cgroup file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
        /// What to do.
        hint: &'static str,
    },
    /// A system call in the runtime (not in the container) failed.
    #[error("{what} failed: {source}; {hint}")]
    Sys {
        /// The call and its purpose.
        what: &'static str,
        /// The errno.
        source: nix::Error,
        /// What to do.
        hint: &'static str,
    },
    /// The container's setup (between clone and exec) failed at a step.
    #[error("setting up the container failed at `{step}`: {errno}; {}", step.hint())]
    Setup {
        /// Which step failed.
        step: SetupStep,
        /// The errno the step returned.
        errno: nix::Error,
    },
    /// An argument or environment entry for the container holds a NUL byte.
    #[error("argument or environment entry {0:?} contains a NUL byte; remove it")]
    NulByte(String),
    /// The kernel forbids the calling unprivileged user to create a user namespace.
    #[error(
        "this kernel does not allow unprivileged user namespaces ({why}); {fix}, or run isolab \
         as root"
    )]
    UserNamespaceUnavailable {
        /// The setting that forbids them.
        why: String,
        /// What to do.
        fix: String,
    },
    /// An unprivileged user asked for a mapping other than its own ids.
    #[error(
        "an unprivileged user (uid {euid}, gid {egid}) can map the container's root only to its \
         own ids, not to uid {uid} / gid {gid}; use `UserNamespace::for_current_user()` or run \
         isolab as root"
    )]
    IdMapNotPermitted {
        /// The requested host uid.
        uid: u32,
        /// The requested host gid.
        gid: u32,
        /// Our effective uid.
        euid: u32,
        /// Our effective gid.
        egid: u32,
    },
    /// Writing the container's uid/gid map (or its setgroups switch) failed.
    #[error("writing {content:?} to {path:?} failed: {source}; {hint}")]
    IdMap {
        /// The /proc file.
        path: PathBuf,
        /// What was written.
        content: String,
        /// The underlying error.
        source: std::io::Error,
        /// What to do.
        hint: &'static str,
    },
    /// The seccomp profile could not be compiled.
    #[error(
        "compiling the seccomp filter failed: {why}; run with `--seccomp off` and report this"
    )]
    Seccomp {
        /// What seccompiler said.
        why: String,
    },
    /// The cgroup v2 device program could not be loaded or attached.
    #[error("{what} failed: {source}; {hint}")]
    DeviceFilter {
        /// What was done.
        what: &'static str,
        /// The errno.
        source: nix::Error,
        /// What to do.
        hint: &'static str,
    },
    /// A run cgroup isolab is asked to create exists already (it never adopts one).
    #[error(
        "the run cgroup {path:?} exists already; isolab creates a fresh one for every run and \
         never adopts an existing one. If a killed isolab left it, `isolab doctor --clean` removes it"
    )]
    RunCgroupExists {
        /// The directory.
        path: PathBuf,
    },
    /// A network namespace to join was given with a user namespace.
    #[error(
        "a container with a user namespace cannot join isolab's lab network (the kernel refuses \
         to let it enter a namespace owned by the host's root); run the network workloads \
         without --userns"
    )]
    NetnsWithUserNamespace,
    /// The run was interrupted (Ctrl-C) before the container started.
    #[error("interrupted before the container started; nothing is left behind")]
    Interrupted,
}

impl ContainerError {
    /// The errno behind the error and what was being done, for errors that come from a system
    /// call (a caller may match it to a host limit: EMFILE, EAGAIN, ENOSPC, ...).
    pub fn errno(&self) -> Option<(i32, String)> {
        match self {
            ContainerError::Sys { what, source, .. } => Some((*source as i32, (*what).to_owned())),
            ContainerError::Cgroup { action, source, .. } => source
                .raw_os_error()
                .map(|e| (e, format!("{action} cgroup"))),
            ContainerError::Setup { step, errno } => Some((*errno as i32, step.to_string())),
            _ => None,
        }
    }

    pub(crate) fn cgroup(
        action: impl Into<String>,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        let hint = match source.kind() {
            std::io::ErrorKind::PermissionDenied => "run as root",
            std::io::ErrorKind::NotFound => {
                "the controller or file is missing; run `isolab doctor` to see what this host supports"
            }
            _ => "run `isolab doctor --clean` to remove leftovers and try again",
        };
        ContainerError::Cgroup {
            action: action.into(),
            path: path.into(),
            source,
            hint,
        }
    }
}
