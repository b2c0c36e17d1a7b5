//! The container's root filesystem: a directory holding `/init` and empty mount points, built once
//! per runtime, and the mount sequence the child runs to make it its root.
//!
//! The directory on the host is never written by a container: it is bind-mounted read-only inside
//! the container's own mount namespace, so every run of a runtime shares it and nothing a
//! container mounts is visible on the host (the namespace dies with its last process, and its
//! mounts with it: nothing to unmount at teardown).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::ContainerError;
use crate::namespaces::errno;
use crate::process::SetupStep;

/// Where the I/O scratch directory appears inside the container.
pub const SCRATCH_MOUNT: &str = "/scratch";
/// Prefix of rootfs directories in the state directory (for `doctor --clean`).
pub const ROOTFS_PREFIX: &str = "rootfs-";

/// Mount points created in the rootfs.
const MOUNT_POINTS: [&str; 5] = ["proc", "sys", "dev", "tmp", "scratch"];

/// A rootfs directory on the host.
#[derive(Debug)]
pub(crate) struct Rootfs {
    dir: PathBuf,
}

impl Rootfs {
    /// Builds `<state_dir>/rootfs-<name>` with `/init` (a hard link to `init` when on the same
    /// filesystem, else a copy) and empty mount points.
    pub(crate) fn build(state_dir: &Path, name: &str, init: &Path) -> Result<Self, ContainerError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(state_dir)
            .map_err(|source| ContainerError::StateDir {
                path: state_dir.to_path_buf(),
                source,
            })?;
        let dir = state_dir.join(format!("{ROOTFS_PREFIX}{name}"));
        let rootfs = Rootfs { dir };
        // From here on, a failure removes what was made (Drop is not used: removal is explicit so
        // its error can be reported).
        match rootfs.fill(init) {
            Ok(()) => Ok(rootfs),
            Err(e) => {
                let _ = rootfs.remove();
                Err(e)
            }
        }
    }

    fn fill(&self, init: &Path) -> Result<(), ContainerError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ContainerError::Rootfs { path, source }
        };
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&self.dir)
            .map_err(err(&self.dir))?;
        for m in MOUNT_POINTS {
            let p = self.dir.join(m);
            std::fs::DirBuilder::new()
                .mode(0o755)
                .create(&p)
                .map_err(err(&p))?;
        }
        let target = self.dir.join("init");
        if std::fs::hard_link(init, &target).is_err() {
            // Another filesystem (EXDEV) or a hard-link protection: a copy is as good, once.
            std::fs::copy(init, &target).map_err(err(&target))?;
        }
        let mut perm = std::fs::metadata(&target)
            .map_err(err(&target))?
            .permissions();
        if perm.mode() & 0o111 == 0 {
            perm.set_mode(0o755);
            std::fs::set_permissions(&target, perm).map_err(err(&target))?;
        }
        Ok(())
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes the directory. Idempotent. Only our own files are in it: the container's mounts
    /// lived in its mount namespace, never on the host.
    pub(crate) fn remove(&self) -> std::io::Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn cpath(p: &Path) -> Result<CString, ContainerError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| ContainerError::NulByte(p.display().to_string()))
}

fn cstr(s: &str) -> CString {
    // Only called with literals of this module, which hold no NUL.
    CString::new(s).unwrap_or_default()
}

/// Every path and string the child's mount sequence uses, built before clone.
#[derive(Debug)]
pub(crate) struct MountPlan {
    root: CString,
    proc_: CString,
    sys: CString,
    dev: CString,
    dev_nodes: [(CString, u32, u32); 3],
    /// The host's nodes, bind-mounted over empty files instead of `mknod` (which a user
    /// namespace forbids), in the order of `dev_nodes`.
    host_dev_nodes: [CString; 3],
    /// Set with a user namespace: bind the host's nodes.
    bind_dev_nodes: bool,
    tmp: CString,
    scratch: Option<(CString, CString)>,
    slash: CString,
    dot: CString,
    fs_proc: CString,
    fs_sysfs: CString,
    fs_tmpfs: CString,
    dev_opts: CString,
    tmp_opts: CString,
}

impl MountPlan {
    /// `bind_dev_nodes`: make /dev's nodes by bind-mounting the host's (for a user namespace,
    /// where `mknod` is refused) instead of `mknod`.
    pub(crate) fn new(
        rootfs: &Rootfs,
        scratch: Option<&Path>,
        bind_dev_nodes: bool,
    ) -> Result<Self, ContainerError> {
        let r = rootfs.dir();
        Ok(Self {
            root: cpath(r)?,
            proc_: cpath(&r.join("proc"))?,
            sys: cpath(&r.join("sys"))?,
            dev: cpath(&r.join("dev"))?,
            // Character devices 1:3, 1:5 and 1:9: the three a workload may open. No tty, no
            // block device, nothing to escape through.
            dev_nodes: [
                (cpath(&r.join("dev/null"))?, 1, 3),
                (cpath(&r.join("dev/zero"))?, 1, 5),
                (cpath(&r.join("dev/urandom"))?, 1, 9),
            ],
            host_dev_nodes: [cstr("/dev/null"), cstr("/dev/zero"), cstr("/dev/urandom")],
            bind_dev_nodes,
            tmp: cpath(&r.join("tmp"))?,
            scratch: match scratch {
                Some(s) => Some((cpath(s)?, cpath(&r.join("scratch"))?)),
                None => None,
            },
            slash: cstr("/"),
            dot: cstr("."),
            fs_proc: cstr("proc"),
            fs_sysfs: cstr("sysfs"),
            fs_tmpfs: cstr("tmpfs"),
            dev_opts: cstr("mode=755,size=64k"),
            tmp_opts: cstr("mode=1777"),
        })
    }

    /// Child side, between clone and exec: mounts the rootfs and makes it the root. Returns
    /// whether the root was entered by `MS_MOVE` + `chroot` (when the host's root is an
    /// initramfs, which `pivot_root` cannot leave). Async-signal-safe: system calls on prepared
    /// strings only.
    pub(crate) fn enter(&self) -> Result<bool, (SetupStep, i32)> {
        let null = std::ptr::null::<libc::c_char>();
        let nodata = std::ptr::null::<libc::c_void>();
        let mount = |step: SetupStep,
                     src: *const libc::c_char,
                     target: &CString,
                     fstype: *const libc::c_char,
                     flags: libc::c_ulong,
                     data: *const libc::c_void| {
            // SAFETY: every pointer is null or points to a NUL-terminated string owned by `self`,
            // which outlives the call.
            let r = unsafe { libc::mount(src, target.as_ptr(), fstype, flags, data) };
            if r == 0 {
                Ok(())
            } else {
                Err((step, errno()))
            }
        };
        let nosuid_nodev_noexec = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

        // Our copy of the host's mount table must not propagate back to it (or receive from it).
        mount(
            SetupStep::MakeMountsPrivate,
            null,
            &self.slash,
            null,
            libc::MS_REC | libc::MS_PRIVATE,
            nodata,
        )?;
        // pivot_root needs the new root to be a mount point; non-recursive, so nothing mounted
        // below the directory on the host comes along.
        mount(
            SetupStep::BindRootfs,
            self.root.as_ptr(),
            &self.root,
            null,
            libc::MS_BIND,
            nodata,
        )?;
        // Read-only and nosuid/nodev. Not noexec: /init runs from here. Setting the flags
        // explicitly also clears a `noexec` the state directory's filesystem may carry.
        mount(
            SetupStep::RootReadOnly,
            null,
            &self.root,
            null,
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
            nodata,
        )?;
        // Mounted by the child, which is PID 1 of the new PID namespace: /proc shows its own
        // processes only.
        mount(
            SetupStep::MountProc,
            self.fs_proc.as_ptr(),
            &self.proc_,
            self.fs_proc.as_ptr(),
            nosuid_nodev_noexec,
            nodata,
        )?;
        // sysfs mounted from the new network namespace lists its interfaces only (lo).
        mount(
            SetupStep::MountSys,
            self.fs_sysfs.as_ptr(),
            &self.sys,
            self.fs_sysfs.as_ptr(),
            nosuid_nodev_noexec | libc::MS_RDONLY,
            nodata,
        )?;
        mount(
            SetupStep::MountDev,
            self.fs_tmpfs.as_ptr(),
            &self.dev,
            self.fs_tmpfs.as_ptr(),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            self.dev_opts.as_ptr().cast(),
        )?;
        if self.bind_dev_nodes {
            for ((path, _, _), host) in self.dev_nodes.iter().zip(&self.host_dev_nodes) {
                // An empty file as the mount point (the tmpfs is ours, so creating in it works
                // inside the user namespace), then the host's node over it: a bind mount of a
                // node keeps its host superblock, where devices may be opened.
                // SAFETY: `path` is a NUL-terminated string owned by `self`; the fd is closed
                // right after.
                let fd = unsafe {
                    libc::open(
                        path.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                        0o666 as libc::c_uint,
                    )
                };
                if fd < 0 {
                    return Err((SetupStep::MakeDevNodes, errno()));
                }
                // SAFETY: `fd` was opened above and is not used after.
                unsafe { libc::close(fd) };
                mount(
                    SetupStep::MakeDevNodes,
                    host.as_ptr(),
                    path,
                    null,
                    libc::MS_BIND,
                    nodata,
                )?;
            }
        }
        for (path, major, minor) in self.dev_nodes.iter().filter(|_| !self.bind_dev_nodes) {
            // SAFETY: `path` is a NUL-terminated string owned by `self`.
            let r = unsafe {
                libc::mknod(
                    path.as_ptr(),
                    libc::S_IFCHR | 0o666,
                    libc::makedev(*major, *minor),
                )
            };
            if r != 0 {
                return Err((SetupStep::MakeDevNodes, errno()));
            }
        }
        mount(
            SetupStep::MountTmp,
            self.fs_tmpfs.as_ptr(),
            &self.tmp,
            self.fs_tmpfs.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            self.tmp_opts.as_ptr().cast(),
        )?;
        if let Some((src, target)) = &self.scratch {
            mount(
                SetupStep::BindScratch,
                src.as_ptr(),
                target,
                null,
                libc::MS_BIND,
                nodata,
            )?;
        }
        // SAFETY: `root` is a NUL-terminated path owned by `self`.
        if unsafe { libc::chdir(self.root.as_ptr()) } != 0 {
            return Err((SetupStep::PivotRoot, errno()));
        }
        // pivot_root(".", "."): the old root ends up stacked on the new one and is detached at
        // once, so no directory for it is needed in the rootfs.
        // SAFETY: both arguments are the NUL-terminated string ".".
        let r =
            unsafe { libc::syscall(libc::SYS_pivot_root, self.dot.as_ptr(), self.dot.as_ptr()) };
        let moved = if r == 0 {
            // SAFETY: "." is a NUL-terminated string owned by `self`.
            if unsafe { libc::umount2(self.dot.as_ptr(), libc::MNT_DETACH) } != 0 {
                return Err((SetupStep::DetachOldRoot, errno()));
            }
            false
        } else if errno() == libc::EINVAL {
            // The host root is an initramfs (rootfs cannot be pivoted away from): move our root
            // over "/" and chroot into it instead, as runc's --no-pivot does.
            mount(
                SetupStep::PivotRoot,
                self.dot.as_ptr(),
                &self.slash,
                null,
                libc::MS_MOVE,
                nodata,
            )?;
            // SAFETY: "." is a NUL-terminated string owned by `self`.
            if unsafe { libc::chroot(self.dot.as_ptr()) } != 0 {
                return Err((SetupStep::PivotRoot, errno()));
            }
            true
        } else {
            return Err((SetupStep::PivotRoot, errno()));
        };
        // SAFETY: "/" is a NUL-terminated string owned by `self`.
        if unsafe { libc::chdir(self.slash.as_ptr()) } != 0 {
            return Err((SetupStep::PivotRoot, errno()));
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootfs_has_init_and_mount_points_and_is_removed() {
        let state = std::env::temp_dir().join(format!("isolab-rootfs-test-{}", std::process::id()));
        let exe = std::env::current_exe().expect("test executable");
        let r = Rootfs::build(&state, "t1", &exe).expect("build");
        for m in MOUNT_POINTS {
            assert!(r.dir().join(m).is_dir(), "{m}");
        }
        let init = std::fs::metadata(r.dir().join("init")).expect("init");
        assert!(init.permissions().mode() & 0o111 != 0);
        MountPlan::new(&r, Some(Path::new("/tmp")), false).expect("plan");
        MountPlan::new(&r, None, true).expect("plan with a user namespace");
        r.remove().expect("remove");
        r.remove().expect("idempotent");
        assert!(!r.dir().exists());
        let _ = std::fs::remove_dir(&state);
    }

    #[test]
    fn missing_init_leaves_nothing() {
        let state = std::env::temp_dir().join(format!("isolab-rootfs-miss-{}", std::process::id()));
        let err = Rootfs::build(&state, "t2", Path::new("/nonexistent/init")).unwrap_err();
        assert!(matches!(err, ContainerError::Rootfs { .. }), "{err}");
        assert!(!state.join("rootfs-t2").exists());
        let _ = std::fs::remove_dir(&state);
    }
}
