//! The optional user namespace: the container's root (uid/gid 0 inside) is an unprivileged id
//! outside, so a process that escapes its other namespaces is nobody in particular on the host;
//! and an unprivileged user can start containers at all (rootless use).
//!
//! The kernel creates the user namespace first in the same `clone3` as every other namespace, so
//! they are all owned by it: the child has every capability over its own PID, mount, UTS, IPC and
//! network namespaces, and none over the host's. What it cannot do there:
//! - `mknod`: device nodes are bind-mounted from the host's `/dev` instead ([`crate::rootfs`]);
//! - create cgroups when isolab is not root: the run goes without limits and accounting and the
//!   report says so ([`crate::RunWarning::CgroupsUnavailable`]).
//!
//! The id maps can only be written from outside, by the parent, after the clone: the child waits
//! on a pipe until they are in place (before that its ids inside are the overflow id 65534 and
//! any file it creates would fail with `EOVERFLOW`), then switches to uid/gid 0 inside.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::unistd::Pid;

use crate::error::ContainerError;
use crate::namespaces::errno;

/// The host id the container's root maps to when isolab runs as root: the start of the range
/// `/etc/subuid` conventionally gives the first user, far from any system or login account.
pub const ROOT_MAPPED_ID: u32 = 100_000;

/// Where the kernel allows or forbids user namespaces for unprivileged users.
const MAX_USER_NAMESPACES: &str = "/proc/sys/user/max_user_namespaces";
/// Debian and Ubuntu kernels' switch for unprivileged user namespaces.
const UNPRIVILEGED_USERNS_CLONE: &str = "/proc/sys/kernel/unprivileged_userns_clone";
/// Ubuntu 23.10+: AppArmor forbids unprivileged user namespaces to unconfined programs.
const APPARMOR_RESTRICT: &str = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns";

/// A user namespace for the container: uid and gid 0 inside are `uid` and `gid` outside (one id
/// each; no other id is mapped, so files of any other owner appear as 65534 inside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserNamespace {
    /// The host uid of the container's root.
    pub uid: u32,
    /// The host gid of the container's root.
    pub gid: u32,
}

impl UserNamespace {
    /// The mapping for whoever runs isolab: as root, container root is [`ROOT_MAPPED_ID`] outside
    /// (root inside is not root outside, the point of the option); as any other user, it is that
    /// user's effective uid and gid (the only mapping the kernel lets an unprivileged user write).
    pub fn for_current_user() -> Self {
        let euid = nix::unistd::geteuid().as_raw();
        if euid == 0 {
            Self {
                uid: ROOT_MAPPED_ID,
                gid: ROOT_MAPPED_ID,
            }
        } else {
            Self {
                uid: euid,
                gid: nix::unistd::getegid().as_raw(),
            }
        }
    }
}

/// Checks that this kernel lets the calling (unprivileged) user create a user namespace, reading
/// the sysctls that forbid it. Root is never refused by them.
pub fn check_unprivileged_user_namespaces() -> Result<(), ContainerError> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    if read(MAX_USER_NAMESPACES) == Some(0) {
        return Err(ContainerError::UserNamespaceUnavailable {
            why: format!("{MAX_USER_NAMESPACES} is 0"),
            fix: "allow them with `sysctl -w user.max_user_namespaces=15000` (as root)".into(),
        });
    }
    if read(UNPRIVILEGED_USERNS_CLONE) == Some(0) {
        return Err(ContainerError::UserNamespaceUnavailable {
            why: format!("{UNPRIVILEGED_USERNS_CLONE} is 0"),
            fix: "allow them with `sysctl -w kernel.unprivileged_userns_clone=1` (as root)".into(),
        });
    }
    if read(APPARMOR_RESTRICT) == Some(1) {
        return Err(ContainerError::UserNamespaceUnavailable {
            why: format!("{APPARMOR_RESTRICT} is 1"),
            fix: "allow them with `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` \
                  (as root) or give isolab an AppArmor profile with `userns,`"
                .into(),
        });
    }
    Ok(())
}

/// What the parent writes into `/proc/<pid>/` right after clone, built before it.
#[derive(Debug, Clone)]
pub(crate) struct IdMaps {
    uid_map: String,
    gid_map: String,
    /// An unprivileged writer may only write gid_map after denying setgroups(2) in the namespace
    /// (otherwise the container could drop a group that denies it access on the host).
    deny_setgroups: bool,
}

impl IdMaps {
    /// Validates the mapping for the calling user: an unprivileged user can map only its own ids.
    pub(crate) fn new(ns: UserNamespace) -> Result<Self, ContainerError> {
        let euid = nix::unistd::geteuid().as_raw();
        let egid = nix::unistd::getegid().as_raw();
        let privileged = euid == 0;
        if !privileged && (ns.uid != euid || ns.gid != egid) {
            return Err(ContainerError::IdMapNotPermitted {
                uid: ns.uid,
                gid: ns.gid,
                euid,
                egid,
            });
        }
        Ok(Self {
            uid_map: format!("0 {} 1\n", ns.uid),
            gid_map: format!("0 {} 1\n", ns.gid),
            deny_setgroups: !privileged,
        })
    }

    /// Whether the child may (and so must) clear its supplementary groups: root's groups would
    /// otherwise still grant host access (as gid 0) to the container.
    pub(crate) fn child_clears_groups(&self) -> bool {
        !self.deny_setgroups
    }

    /// Parent side: writes setgroups, gid_map and uid_map of the child `pid` (each one `write`,
    /// as the kernel requires).
    pub(crate) fn write(&self, pid: Pid) -> Result<(), ContainerError> {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        let mut files: Vec<(&'static str, &str)> = Vec::with_capacity(3);
        if self.deny_setgroups {
            files.push(("setgroups", "deny\n"));
        }
        files.push(("gid_map", &self.gid_map));
        files.push(("uid_map", &self.uid_map));
        for (file, content) in files {
            let path = dir.join(file);
            std::fs::write(&path, content).map_err(|source| {
                let hint = match source.raw_os_error() {
                    Some(libc::EPERM) | Some(libc::EACCES) => {
                        "an unprivileged user may only map its own uid and gid, and isolab must \
                         be dumpable (not started through a setuid change without \
                         PR_SET_DUMPABLE); run as root or with the default mapping"
                    }
                    _ => {
                        "run `isolab doctor`; the kernel needs user namespace support \
                          (CONFIG_USER_NS)"
                    }
                };
                ContainerError::IdMap {
                    path,
                    content: content.trim_end().to_owned(),
                    source,
                    hint,
                }
            })?;
        }
        Ok(())
    }
}

/// The pipe the child waits on until its maps are written: the parent writes one byte when they
/// are, and closing the write end without it (the parent failed or died) ends the child.
#[derive(Debug)]
pub(crate) struct MapSync {
    pub(crate) read: OwnedFd,
    pub(crate) write: OwnedFd,
}

impl MapSync {
    /// Parent side: the maps are written; let the child go on.
    pub(crate) fn release(self) -> Result<(), ContainerError> {
        let r = nix::unistd::write(&self.write, b"1").map_err(|source| ContainerError::Sys {
            what: "waking the container after writing its id maps",
            source,
            hint: "the container's init died before it started; run `isolab doctor`",
        })?;
        if r != 1 {
            return Err(ContainerError::Sys {
                what: "waking the container after writing its id maps",
                source: nix::errno::Errno::EIO,
                hint: "the container's init died before it started; run `isolab doctor`",
            });
        }
        Ok(())
    }

    /// The fd numbers for the child, which closes its copies with a plain close(2); the
    /// `OwnedFd`s stay with the parent.
    pub(crate) fn raw(&self) -> (RawFd, RawFd) {
        (self.read.as_raw_fd(), self.write.as_raw_fd())
    }
}

/// Child side, first thing after clone: waits until the parent wrote the maps, then becomes root
/// of the namespace (uid/gid 0 inside; the credentials the clone copied are the parent's, which,
/// for a root parent, are host root ids unmapped inside). Async-signal-safe: raw system calls
/// only (glibc's set*id wrappers would try to signal the parent's other threads).
pub(crate) fn child_enter(sync: (RawFd, RawFd), clear_groups: bool) -> Result<(), i32> {
    let (read_fd, write_fd) = sync;
    // Our copy of the write end must go, or a parent that dies would leave us waiting forever.
    // SAFETY: closes an fd number this process holds (a copy of the parent's pipe end).
    unsafe { libc::close(write_fd) };
    let mut byte = 0u8;
    let n = loop {
        // SAFETY: reads at most one byte into a live stack variable.
        let n = unsafe { libc::read(read_fd, std::ptr::addr_of_mut!(byte).cast(), 1) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        break n;
    };
    // SAFETY: closes our copy of the read end; it is not used after.
    unsafe { libc::close(read_fd) };
    if n != 1 {
        // EOF: the parent could not write the maps and closed the pipe.
        return Err(if n < 0 { errno() } else { libc::EPIPE });
    }
    if clear_groups {
        // SAFETY: setgroups with an empty list and a null pointer, as the kernel allows.
        if unsafe { libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) }
            != 0
        {
            return Err(errno());
        }
    }
    // SAFETY: integer arguments only.
    if unsafe { libc::syscall(libc::SYS_setresgid, 0u32, 0u32, 0u32) } != 0 {
        return Err(errno());
    }
    // SAFETY: integer arguments only. Moving from ids unmapped inside to 0 inside keeps the full
    // capability set the new namespace gave us (the kernel only clears it when leaving uid 0).
    if unsafe { libc::syscall(libc::SYS_setresuid, 0u32, 0u32, 0u32) } != 0 {
        return Err(errno());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_single_lines_and_unprivileged_users_only_map_themselves() {
        let me = UserNamespace::for_current_user();
        let maps = IdMaps::new(me).expect("the default mapping is always permitted");
        assert_eq!(maps.uid_map, format!("0 {} 1\n", me.uid));
        assert_eq!(maps.gid_map, format!("0 {} 1\n", me.gid));
        if nix::unistd::geteuid().is_root() {
            assert_eq!(
                me.uid, ROOT_MAPPED_ID,
                "root inside must not be root outside"
            );
            assert!(maps.child_clears_groups());
        } else {
            assert!(!maps.child_clears_groups());
            let other = UserNamespace {
                uid: me.uid.wrapping_add(1),
                gid: me.gid,
            };
            assert!(matches!(
                IdMaps::new(other),
                Err(ContainerError::IdMapNotPermitted { .. })
            ));
        }
    }
}
