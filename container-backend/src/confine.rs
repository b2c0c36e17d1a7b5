//! What an OCI runtime's default spec confines beyond namespaces and capabilities, applied by the
//! child before `pivot_root` (runc's and youki's defaults):
//!
//! - **masked paths**: kernel interfaces a container must not read (`/proc/kcore`, `/proc/keys`,
//!   `/proc/timer_list`, `/sys/firmware`, ...) are covered, a directory by an empty read-only
//!   tmpfs of mode 000, a file by an empty file of mode 000 ([`MASK_FILE`]). runc covers files
//!   with `/dev/null`, which opens and reads as empty; here an open fails outright (`EACCES`: the
//!   container's root has no `CAP_DAC_OVERRIDE`), so a probe can tell a masked path from an
//!   empty one;
//! - **read-only paths**: `/proc/sys`, `/proc/sysrq-trigger` and a few more are bind-mounted onto
//!   themselves read-only. This matters because the kernel checks sysctl writes against uid 0, not
//!   against capabilities, and some sysctls (`kernel.core_pattern`) are global: a writable
//!   `/proc/sys` lets the container's root run a program of its choice as root on the host;
//! - **resource limits**: `RLIMIT_NOFILE` is 1024:1024 as in runc's default spec; the other limits
//!   are inherited from isolab and recorded in the run's manifest ([`resource_limits`]);
//! - **supplementary groups** cleared (root's groups would otherwise still grant host access);
//! - **a new session keyring**, so the container cannot reach the keys of isolab's session.
//!
//! A path the kernel does not have (no `/proc/acpi` without ACPI) is skipped, as runc skips it.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::path::Path;

use crate::error::ContainerError;
use crate::namespaces::errno;
use crate::process::SetupStep;

/// Covered so the container cannot read them (runc's and Docker's defaults, plus
/// `/sys/kernel/debug`).
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/sys/kernel/debug",
];

/// Which of [`MASKED_PATHS`] are directories on a usual kernel (the others are files); a path
/// of the other kind is still masked, at the cost of one more call.
const MASKED_DIRS: [bool; 12] = [
    true, true, false, false, false, false, false, false, true, true, true, true,
];

/// Visible but read-only (runc's defaults).
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The empty mode-000 file bound over masked files, below the rootfs (hidden inside by /proc).
pub const MASK_FILE: &str = "proc/masked";

/// `RLIMIT_NOFILE` of a container's init, soft and hard (runc's default spec).
pub const NOFILE_LIMIT: u64 = 1024;

/// `keyctl(2)` operation: join (here: create) an anonymous session keyring.
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;

/// The limits a container's init runs with: `RLIMIT_NOFILE` as set by the runtime, every other
/// limit as isolab's own (inherited). `soft:hard`, `unlimited` for `RLIM_INFINITY`. For the run's
/// manifest.
pub fn resource_limits(nofile: (u64, u64)) -> Vec<(&'static str, String)> {
    let fmt = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            "unlimited".to_owned()
        } else {
            v.to_string()
        }
    };
    let all = [
        ("as", libc::RLIMIT_AS),
        ("core", libc::RLIMIT_CORE),
        ("cpu", libc::RLIMIT_CPU),
        ("data", libc::RLIMIT_DATA),
        ("fsize", libc::RLIMIT_FSIZE),
        ("locks", libc::RLIMIT_LOCKS),
        ("memlock", libc::RLIMIT_MEMLOCK),
        ("msgqueue", libc::RLIMIT_MSGQUEUE),
        ("nice", libc::RLIMIT_NICE),
        ("nofile", libc::RLIMIT_NOFILE),
        ("nproc", libc::RLIMIT_NPROC),
        ("rss", libc::RLIMIT_RSS),
        ("rtprio", libc::RLIMIT_RTPRIO),
        ("rttime", libc::RLIMIT_RTTIME),
        ("sigpending", libc::RLIMIT_SIGPENDING),
        ("stack", libc::RLIMIT_STACK),
    ];
    all.into_iter()
        .map(|(name, resource)| {
            if name == "nofile" {
                return (name, format!("{}:{}", nofile.0, nofile.1));
            }
            let mut l = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes one rlimit struct we own.
            let ok = unsafe { libc::getrlimit(resource, &mut l) } == 0;
            let value = if ok {
                format!("{}:{}", fmt(l.rlim_cur), fmt(l.rlim_max))
            } else {
                "unknown".to_owned()
            };
            (name, value)
        })
        .collect()
}

/// The `RLIMIT_NOFILE` the child can set: 1024:1024, or the inherited hard limit when it is lower
/// and the child cannot raise it (in a user namespace, raising a hard limit needs
/// `CAP_SYS_RESOURCE` in the host's namespace).
pub(crate) fn nofile_limit(can_raise: bool) -> (u64, u64) {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct we own.
    let hard = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } == 0 {
        l.rlim_max
    } else {
        NOFILE_LIMIT
    };
    let n = if can_raise {
        NOFILE_LIMIT
    } else {
        NOFILE_LIMIT.min(hard)
    };
    (n, n)
}

/// Every path and value the child's confinement uses, built before the clone.
#[derive(Debug)]
pub(crate) struct ConfinePlan {
    /// Masked paths below the rootfs (`<root>/proc/kcore`, ...).
    masked: Vec<CString>,
    /// Read-only paths below the rootfs.
    readonly: Vec<CString>,
    /// [`MASK_FILE`] below the rootfs, which the child opens before /proc covers it and binds
    /// from `/proc/self/fd/N` (in its own mount namespace, as a bind's source must be).
    mask_file: CString,
    /// Its mount's atime flags, kept on the read-only remount of each bind of it.
    mask_atime: libc::c_ulong,
    fs_tmpfs: CString,
    mask_opts: CString,
    nofile: (u64, u64),
    /// Clear supplementary groups here (without a user namespace; with one, entering it did).
    clear_groups: bool,
}

fn cpath(p: &Path) -> Result<CString, ContainerError> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| ContainerError::NulByte(p.display().to_string()))
}

impl ConfinePlan {
    /// The plan for a rootfs at `root`. `clear_groups`: no user namespace clears them first.
    pub(crate) fn new(
        root: &Path,
        nofile: (u64, u64),
        clear_groups: bool,
    ) -> Result<Self, ContainerError> {
        let below = |p: &str| cpath(&root.join(p.trim_start_matches('/')));
        Ok(Self {
            masked: MASKED_PATHS
                .iter()
                .map(|p| below(p))
                .collect::<Result<_, _>>()?,
            readonly: READONLY_PATHS
                .iter()
                .map(|p| below(p))
                .collect::<Result<_, _>>()?,
            mask_file: below(MASK_FILE)?,
            mask_atime: crate::rootfs::atime_flags(root),
            fs_tmpfs: CString::from(c"tmpfs"),
            mask_opts: CString::from(c"mode=000,size=4k"),
            nofile,
            clear_groups,
        })
    }

    /// The `RLIMIT_NOFILE` the child sets.
    /// The atime flags of the mount the mask file is on (the rootfs's), when the plan's root
    /// is not on the host (the child starts from the template mount namespace).
    pub(crate) fn with_mask_atime(mut self, atime: libc::c_ulong) -> Self {
        self.mask_atime = atime;
        self
    }

    pub(crate) fn nofile(&self) -> (u64, u64) {
        self.nofile
    }

    /// Child side, after the rootfs is bound and before /proc is mounted over its mount point:
    /// opens [`MASK_FILE`] (`O_PATH`). Async-signal-safe.
    pub(crate) fn open_mask_file(&self) -> Result<RawFd, (SetupStep, i32)> {
        // SAFETY: open of a NUL-terminated path owned by `self`.
        let fd = unsafe {
            libc::open(
                self.mask_file.as_ptr(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err((SetupStep::MaskPaths, errno()));
        }
        Ok(fd)
    }

    /// Child side, after /proc, /sys and /dev are mounted below the rootfs and before
    /// `pivot_root`: masks (files from `mask_fd`, see [`ConfinePlan::open_mask_file`]) and
    /// read-only binds. Async-signal-safe.
    pub(crate) fn apply_mounts(&self, mask_fd: RawFd) -> Result<(), (SetupStep, i32)> {
        let mut link_buf = [0u8; 32];
        let mask_link = fd_link(mask_fd, &mut link_buf);
        let hidden = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        // The first masked directory gets a tmpfs and the first masked file a read-only bind of
        // the mask file (a file on the host's disk, read-only like everything else the container
        // can see); later ones are binds of those mounts, which copy their flags (no remount, no
        // new superblock). No stat first: a path this kernel lacks fails with ENOENT and is
        // skipped, one of the other kind fails with ENOTDIR and is masked as that kind.
        let masked = &self.masked;
        let mut first: [Option<&CString>; 2] = [None, None];
        let mut mask_as = |i: usize, dir: bool| -> libc::c_int {
            let Some(path) = masked.get(i) else {
                return 0;
            };
            let slot = usize::from(dir);
            // SAFETY: every pointer is null or a NUL-terminated string that outlives the call.
            let r = unsafe {
                match (first[slot], dir) {
                    (Some(src), _) => libc::mount(
                        src.as_ptr(),
                        path.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    ),
                    (None, true) => libc::mount(
                        self.fs_tmpfs.as_ptr(),
                        path.as_ptr(),
                        self.fs_tmpfs.as_ptr(),
                        hidden,
                        self.mask_opts.as_ptr().cast(),
                    ),
                    (None, false) => bind_read_only(mask_link, path, 0, self.mask_atime),
                }
            };
            if r == 0 && first[slot].is_none() {
                first[slot] = Some(path);
            }
            r
        };
        for (i, dir) in MASKED_DIRS.into_iter().enumerate() {
            let mut r = mask_as(i, dir);
            if r != 0 && errno() == libc::ENOTDIR {
                r = mask_as(i, !dir);
            }
            if r != 0 && errno() != libc::ENOENT {
                return Err((SetupStep::MaskPaths, errno()));
            }
        }
        for path in &self.readonly {
            // Bind onto itself, then read-only, keeping /proc's nosuid, nodev and noexec.
            // SAFETY: NUL-terminated strings owned by `self`.
            let r = unsafe { bind_read_only(path.as_ptr(), path, libc::MS_REC, 0) };
            // A path this kernel lacks: its bind finds no source (ENOENT).
            if r != 0 && errno() != libc::ENOENT {
                return Err((SetupStep::ReadOnlyPaths, errno()));
            }
        }
        Ok(())
    }

    /// Child side, before the mounts: groups, keyring, open-files limit. Async-signal-safe (raw
    /// system calls: glibc's `setgroups` would signal the parent's other threads).
    pub(crate) fn apply_process(&self) -> Result<(), (SetupStep, i32)> {
        if self.clear_groups {
            // SAFETY: setgroups with an empty list and a null pointer, as the kernel allows.
            let r = unsafe {
                libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>())
            };
            if r != 0 {
                return Err((SetupStep::ClearGroups, errno()));
            }
        }
        // SAFETY: keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL): integer and null arguments.
        let r = unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                KEYCTL_JOIN_SESSION_KEYRING,
                std::ptr::null::<libc::c_char>(),
            )
        };
        // A kernel without keyrings (ENOSYS) has no keys to protect.
        if r < 0 && errno() != libc::ENOSYS {
            return Err((SetupStep::SessionKeyring, errno()));
        }
        let limit = libc::rlimit {
            rlim_cur: self.nofile.0,
            rlim_max: self.nofile.1,
        };
        // SAFETY: setrlimit reads one rlimit struct that lives for the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err((SetupStep::ResourceLimits, errno()));
        }
        Ok(())
    }
}

/// Binds `src` onto `target`, then makes that bind read-only, nosuid, nodev and noexec (a bind
/// takes flags only on a remount), keeping the `atime` flags of its mount. Returns mount(2)'s
/// result. Async-signal-safe.
///
/// # Safety
/// `src` must point to a NUL-terminated string.
unsafe fn bind_read_only(
    src: *const libc::c_char,
    target: &CString,
    bind_flags: libc::c_ulong,
    atime: libc::c_ulong,
) -> libc::c_int {
    let null = std::ptr::null::<libc::c_char>();
    let hidden = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    // SAFETY: `src` is NUL-terminated (the caller's promise), `target` is a CString, the other
    // pointers are null.
    let bound = unsafe {
        libc::mount(
            src,
            target.as_ptr(),
            null,
            libc::MS_BIND | bind_flags,
            std::ptr::null(),
        )
    };
    if bound != 0 {
        return bound;
    }
    // SAFETY: as above.
    unsafe {
        libc::mount(
            null,
            target.as_ptr(),
            null,
            libc::MS_BIND | libc::MS_REMOUNT | hidden | atime,
            std::ptr::null(),
        )
    }
}

/// `/proc/self/fd/<fd>` as a C string in `buf`, without allocating (async-signal-safe).
fn fd_link(fd: RawFd, buf: &mut [u8; 32]) -> *const libc::c_char {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let mut n = fd.max(0) as u32;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[PREFIX.len() + i] = digits[len - 1 - i];
    }
    buf[PREFIX.len() + len] = 0;
    buf.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn plan_paths_are_below_the_rootfs() {
        let p = ConfinePlan::new(Path::new("/r"), (1024, 1024), true).expect("plan");
        assert_eq!(p.masked.len(), MASKED_PATHS.len());
        assert!(p.masked.iter().any(|c| c.as_bytes() == b"/r/proc/kcore"));
        assert!(p.readonly.iter().any(|c| c.as_bytes() == b"/r/proc/sys"));
        assert_eq!(p.mask_file.as_bytes(), b"/r/proc/masked");
        assert_eq!(p.nofile(), (1024, 1024));
    }

    #[test]
    fn fd_links_are_formatted_without_allocating() {
        for (fd, want) in [
            (0, "/proc/self/fd/0"),
            (7, "/proc/self/fd/7"),
            (1023, "/proc/self/fd/1023"),
        ] {
            let mut buf = [0u8; 32];
            let p = fd_link(fd, &mut buf);
            // SAFETY: fd_link wrote a NUL-terminated string into `buf`, which outlives `p`.
            let s = unsafe { CStr::from_ptr(p) };
            assert_eq!(s.to_str().expect("ascii"), want);
        }
    }

    #[test]
    fn limits_list_every_resource_with_nofile_as_set() {
        let l = resource_limits((1024, 1024));
        assert_eq!(l.len(), 16);
        assert!(l.contains(&("nofile", "1024:1024".to_owned())));
        assert!(l.iter().all(|(_, v)| v.contains(':')), "{l:?}");
    }

    #[test]
    fn nofile_never_exceeds_1024() {
        assert_eq!(nofile_limit(true), (1024, 1024));
        let (s, h) = nofile_limit(false);
        assert!(s == h && h <= 1024);
    }
}
