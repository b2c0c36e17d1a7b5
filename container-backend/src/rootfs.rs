//! The container's root filesystem: a directory holding `/init` and empty mount points, built once
//! per runtime, and the mount sequence the child runs to make it its root.
//!
//! The directory on the host is never written by a container: it is bind-mounted read-only inside
//! the container's own mount namespace, so every run of a runtime shares it and nothing a
//! container mounts is visible on the host (the namespace dies with its last process, and its
//! mounts with it: nothing to unmount at teardown).
//!
//! As root without a user namespace the read-only root is prepared once per runtime, in a
//! template mount namespace (`Template`: rootfs bound read-only, pivoted into, host root
//! detached, and a read-only /dev with its three nodes); each child enters it and unshares its
//! own copy, then mounts /proc, /sys, /tmp and the scratch folder and applies the masks. With a
//! user namespace (whose children may not enter a namespace the host's user namespace owns) the
//! child does it all itself: it binds the rootfs in the copy of the host's table it got at clone
//! and pivots into it, and makes its own /dev.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::confine::ConfinePlan;
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
        // Bound over the masked files inside; an empty file no one without capabilities may open.
        let mask = self.dir.join(crate::confine::MASK_FILE);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o000)
            .open(&mask)
            .map_err(err(&mask))?;
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

/// The scratch directory of a runtime.
#[derive(Debug)]
struct Scratch {
    /// Opened once, without following a symbolic link.
    dir: OwnedFd,
    /// Its path, for the rootless fallback (an unprivileged parent cannot clone a mount).
    path: CString,
    /// The mount point in the rootfs.
    target: CString,
    /// Its mount's atime flags (kept on the fallback's remount).
    atime: libc::c_ulong,
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
#[derive(Default)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
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
    /// The atime flags of the host's /dev mount (kept on the remount of those binds).
    dev_atime: libc::c_ulong,
    tmp: CString,
    /// The scratch directory, opened once when the runtime was made: every trial mounts a copy
    /// of it made from this descriptor ([`MountPlan::scratch_tree`]), never looking its path up
    /// again, so the folder cannot be swapped for another between trials.
    scratch: Option<Scratch>,
    /// The rootfs's mount's atime flags (kept on its read-only remount).
    root_atime: libc::c_ulong,
    /// Keep /dev writable (a container that keeps `CAP_MKNOD`: the device cgroup is then what
    /// stops a node from being used); otherwise it is read-only once its three nodes exist.
    dev_writable: bool,
    /// Masks, read-only paths and process limits of the OCI default spec.
    pub(crate) confine: ConfinePlan,
    /// The host's root is an initramfs (rootfs or ramfs on `/`), which `pivot_root` cannot
    /// leave: only then is the root entered with `MS_MOVE` + `chroot`.
    initramfs_root: bool,
    /// The template mount namespace (see [`Template`]); with it every other path of this plan
    /// is the container's own (`/proc`, not `<rootfs>/proc`).
    template: Option<Template>,
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
    /// where `mknod` is refused) instead of `mknod`. The scratch directory is opened here, once,
    /// without following a symbolic link. `template`: make the [`Template`] mount namespace
    /// now, and let each child start from a copy of it (root only, without a user namespace,
    /// whose children could not enter a namespace the host's user namespace owns); `confine`
    /// must then be planned on the container's paths ([`MountPlan::confine_root`]).
    pub(crate) fn new(
        rootfs: &Rootfs,
        scratch: Option<&Path>,
        bind_dev_nodes: bool,
        dev_writable: bool,
        confine: ConfinePlan,
        template: bool,
    ) -> Result<Self, ContainerError> {
        let root = cpath(rootfs.dir())?;
        let root_atime = atime_flags(rootfs.dir());
        let initramfs_root = root_is_initramfs();
        let container_root = Self::confine_root(rootfs, template);
        let r = container_root.as_path();
        let scratch = match scratch {
            Some(s) => {
                let dir = open_dir_nofollow(s)?;
                Some(Scratch {
                    dir,
                    path: cpath(s)?,
                    target: cpath(&r.join("scratch"))?,
                    atime: atime_flags(s),
                })
            }
            None => None,
        };
        let mut plan = Self {
            root,
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
            dev_atime: atime_flags(Path::new("/dev/null")),
            tmp: cpath(&r.join("tmp"))?,
            scratch,
            root_atime,
            dev_writable,
            confine,
            initramfs_root,
            template: None,
            slash: cstr("/"),
            dot: cstr("."),
            fs_proc: cstr("proc"),
            fs_sysfs: cstr("sysfs"),
            fs_tmpfs: cstr("tmpfs"),
            dev_opts: cstr("mode=755,size=64k"),
            tmp_opts: cstr("mode=1777"),
        };
        if template {
            // A read-only /dev of mknod-made nodes is the same in every container: made once,
            // in the template, it costs a start no tmpfs, no mknod and no remount.
            let dev = (!dev_writable && !bind_dev_nodes).then(|| plan.dev_plan());
            let t = Template::make(
                &plan.root,
                plan.root_atime,
                plan.initramfs_root,
                dev.as_ref(),
            )?;
            plan.template = Some(t);
        }
        Ok(plan)
    }

    fn dev_plan(&self) -> DevPlan<'_> {
        DevPlan {
            dev: &self.dev,
            nodes: &self.dev_nodes,
            fs_tmpfs: &self.fs_tmpfs,
            opts: &self.dev_opts,
        }
    }

    /// Where the paths of the plan (and of its [`ConfinePlan`]) start: the rootfs on the host,
    /// or the container's own `/` when the child starts from the [`Template`].
    pub(crate) fn confine_root(rootfs: &Rootfs, template: bool) -> PathBuf {
        if template {
            PathBuf::from("/")
        } else {
            rootfs.dir().to_path_buf()
        }
    }

    /// The template's mount namespace, when the child starts from one (it is then cloned
    /// without `CLONE_NEWNS` and makes its own copy in [`MountPlan::enter`]).
    pub(crate) fn template(&self) -> Option<BorrowedFd<'_>> {
        self.template.as_ref().map(|t| t.ns.as_fd())
    }

    /// Closes the template namespace (the runtime is cleaned up; no child will start).
    pub(crate) fn release_template(&mut self) {
        self.template = None;
    }

    /// Parent side, before each clone: a detached copy of the scratch folder's mount made from
    /// the descriptor opened once (`open_tree(OPEN_TREE_CLONE)`), already nosuid, nodev and
    /// noexec, for the child to attach with `move_mount`. (A bind from `/proc/self/fd/N` would not
    /// do: the kernel refuses a bind whose source is in another mount namespace, and the child's
    /// is new.) `None` without a scratch folder, or when isolab is unprivileged and may not clone
    /// mounts: the child then binds the folder by its path.
    pub(crate) fn scratch_tree(&self) -> Result<Option<OwnedFd>, ContainerError> {
        let Some(s) = &self.scratch else {
            return Ok(None);
        };
        let sys = |what: &'static str| ContainerError::Sys {
            what,
            source: nix::errno::Errno::last(),
            hint: "isolab needs Linux 5.12 or newer (open_tree, mount_setattr)",
        };
        // SAFETY: open_tree on a directory fd we own, an empty path and flags; returns a new fd.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_open_tree,
                s.dir.as_raw_fd(),
                c"".as_ptr(),
                OPEN_TREE_CLONE
                    | libc::O_CLOEXEC as libc::c_uint
                    | libc::AT_EMPTY_PATH as libc::c_uint,
            )
        };
        if fd < 0 {
            if nix::errno::Errno::last() == nix::errno::Errno::EPERM
                && !nix::unistd::geteuid().is_root()
            {
                return Ok(None);
            }
            return Err(sys("open_tree of the scratch folder"));
        }
        // SAFETY: the kernel returned a new fd nothing else owns.
        let tree = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
            ..MountAttr::default()
        };
        // SAFETY: mount_setattr on the detached tree's fd, an empty path, and a mount_attr that
        // lives for the call, with its size.
        let r = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                tree.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_EMPTY_PATH as libc::c_uint,
                std::ptr::addr_of!(attr),
                std::mem::size_of::<MountAttr>(),
            )
        };
        if r != 0 {
            return Err(sys("mount_setattr on the scratch folder's copy"));
        }
        Ok(Some(tree))
    }

    /// Child side, between clone and exec: mounts the rootfs and makes it the root. Returns
    /// whether the root was entered by `MS_MOVE` + `chroot` (when the host's root is an
    /// initramfs, which `pivot_root` cannot leave). `scratch_tree`: from
    /// [`MountPlan::scratch_tree`]. Async-signal-safe: system calls on prepared strings only.
    pub(crate) fn enter(&self, scratch_tree: Option<RawFd>) -> Result<bool, (SetupStep, i32)> {
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

        let from_template = match &self.template {
            Some(t) => {
                // The template's root is the rootfs, read-only, with the host's root detached:
                // enter it and make this container's own copy (a copy of one mount, where a
                // pivot_root here would have to detach the copied host table, which costs a
                // grace period of RCU per container).
                // SAFETY: setns with a namespace fd the runtime keeps open, and its type.
                if unsafe { libc::setns(t.ns.as_raw_fd(), libc::CLONE_NEWNS) } != 0 {
                    return Err((SetupStep::PivotRoot, errno()));
                }
                // SAFETY: unshare takes flags only.
                if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
                    return Err((SetupStep::MakeMountsPrivate, errno()));
                }
                Some(t.moved)
            }
            None => {
                // Our copy of the host's mount table must not propagate back to it (or receive
                // from it).
                mount(
                    SetupStep::MakeMountsPrivate,
                    null,
                    &self.slash,
                    null,
                    libc::MS_REC | libc::MS_PRIVATE,
                    nodata,
                )?;
                // pivot_root needs the new root to be a mount point; non-recursive, so nothing
                // mounted below the directory on the host comes along.
                mount(
                    SetupStep::BindRootfs,
                    self.root.as_ptr(),
                    &self.root,
                    null,
                    libc::MS_BIND,
                    nodata,
                )?;
                // Read-only and nosuid/nodev. Not noexec: /init runs from here. Setting the
                // flags explicitly also clears a `noexec` the state directory's filesystem may
                // carry.
                mount(
                    SetupStep::RootReadOnly,
                    null,
                    &self.root,
                    null,
                    libc::MS_REMOUNT
                        | libc::MS_BIND
                        | libc::MS_RDONLY
                        | libc::MS_NOSUID
                        | libc::MS_NODEV
                        | self.root_atime,
                    nodata,
                )?;
                None
            }
        };
        // The mask file, opened here (in this mount namespace) before /proc hides it.
        let mask = self.confine.open_mask_file()?;
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
        // /dev: already in the template's copy (read-only, its three nodes), or made here.
        let dev_from_template = self.template.as_ref().is_some_and(|t| t.dev);
        let dev = self.dev_plan();
        if !dev_from_template {
            dev.mount_tmpfs()?;
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
                    // Like every mount the container can write through: nosuid, noexec.
                    mount(
                        SetupStep::MakeDevNodes,
                        null,
                        path,
                        null,
                        libc::MS_BIND
                            | libc::MS_REMOUNT
                            | libc::MS_NOSUID
                            | libc::MS_NOEXEC
                            | self.dev_atime,
                        nodata,
                    )?;
                }
            } else {
                dev.make_nodes()?;
            }
        }
        mount(
            SetupStep::MountTmp,
            self.fs_tmpfs.as_ptr(),
            &self.tmp,
            self.fs_tmpfs.as_ptr(),
            nosuid_nodev_noexec,
            self.tmp_opts.as_ptr().cast(),
        )?;
        match (&self.scratch, scratch_tree) {
            (Some(s), Some(tree)) => {
                // SAFETY: move_mount of a detached tree fd onto a NUL-terminated target path.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_move_mount,
                        tree,
                        c"".as_ptr(),
                        libc::AT_FDCWD,
                        s.target.as_ptr(),
                        MOVE_MOUNT_F_EMPTY_PATH,
                    )
                };
                if r != 0 {
                    return Err((SetupStep::BindScratch, errno()));
                }
            }
            (Some(s), None) => {
                mount(
                    SetupStep::BindScratch,
                    s.path.as_ptr(),
                    &s.target,
                    null,
                    libc::MS_BIND,
                    nodata,
                )?;
                // A bind mount takes flags only on a remount: no set-uid program, device node
                // or executable of the scratch folder works inside.
                mount(
                    SetupStep::BindScratch,
                    null,
                    &s.target,
                    null,
                    libc::MS_BIND | libc::MS_REMOUNT | nosuid_nodev_noexec | s.atime,
                    nodata,
                )?;
            }
            (None, _) => {}
        }
        if !self.dev_writable && !dev_from_template {
            dev.remount_read_only()?;
        }
        let masked = self.confine.apply_mounts(mask);
        // SAFETY: closes the fd opened above; not used after.
        unsafe { libc::close(mask) };
        masked?;
        if let Some(moved) = from_template {
            return Ok(moved);
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
        } else if errno() == libc::EINVAL && self.initramfs_root {
            // The host root is an initramfs (rootfs cannot be pivoted away from): move our root
            // over "/" and chroot into it instead, as runc's --no-pivot does. Any other EINVAL
            // is an error: a chroot would leave the host's root reachable.
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

/// A mount namespace made once per runtime whose root is the rootfs (bound read-only, nosuid,
/// nodev), with the host's root detached. Each child enters it and unshares a copy of it, which
/// holds one mount, instead of copying the host's whole mount table at clone and detaching it
/// again after `pivot_root`: that detach waits for a grace period of RCU (about 0.5 ms of a
/// start on a loaded host, measured with `perf trace`). The confinement is the same: the child
/// ends in a mount namespace of its own whose root is the read-only rootfs and in which no
/// host mount is reachable.
#[derive(Debug)]
struct Template {
    /// `/proc/thread-self/ns/mnt` of the thread that made it: keeps the namespace alive.
    ns: OwnedFd,
    /// The root was entered with `MS_MOVE` + `chroot` (initramfs host).
    moved: bool,
    /// `/dev` is mounted in the template, read-only with its three nodes (when /dev stays
    /// read-only): each child's copy has it, as it has the root.
    dev: bool,
}

impl Template {
    /// Makes the namespace on a thread of its own (`unshare(CLONE_NEWNS)` gives that thread
    /// alone a new mount namespace and root; the thread then ends, the namespace stays with
    /// the returned fd).
    ///
    /// `dev`: also mount the read-only `/dev` of [`MountPlan::dev_nodes`] (see
    /// [`Template::dev`]).
    fn make(
        root: &CString,
        root_atime: libc::c_ulong,
        initramfs_root: bool,
        dev: Option<&DevPlan<'_>>,
    ) -> Result<Self, ContainerError> {
        let made = std::thread::scope(|s| {
            s.spawn(|| Self::make_here(root, root_atime, initramfs_root, dev))
                .join()
        });
        match made {
            Ok(Ok(t)) => Ok(t),
            Ok(Err((what, errno))) => Err(ContainerError::Sys {
                what,
                source: nix::errno::Errno::from_raw(errno),
                hint: "the state directory must be on a normal filesystem (not a network or \
                       overlay mount shared with another namespace); run `isolab doctor`",
            }),
            Err(_) => Err(ContainerError::Sys {
                what: "the thread making the template mount namespace",
                source: nix::errno::Errno::EINVAL,
                hint: "run `isolab doctor`",
            }),
        }
    }

    /// On the calling thread, which it moves into the new namespace for good.
    fn make_here(
        root: &CString,
        root_atime: libc::c_ulong,
        initramfs_root: bool,
        dev: Option<&DevPlan<'_>>,
    ) -> Result<Self, (&'static str, i32)> {
        let null = std::ptr::null::<libc::c_char>();
        let nodata = std::ptr::null::<libc::c_void>();
        let fail = |what: &'static str| Err((what, errno()));
        // SAFETY: unshare takes flags only; CLONE_NEWNS (which implies CLONE_FS) affects this
        // thread alone.
        if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
            return fail("unshare(CLONE_NEWNS) for the template mount namespace");
        }
        // SAFETY: open of a NUL-terminated path; the fd is owned below.
        let fd = unsafe {
            libc::open(
                c"/proc/thread-self/ns/mnt".as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return fail("open /proc/thread-self/ns/mnt");
        }
        // SAFETY: `fd` was just opened and is owned by nothing else.
        let ns = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: every pointer is null or a NUL-terminated string that outlives the call (the
        // same holds for the mounts below).
        let private = unsafe {
            libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                nodata,
            )
        };
        if private != 0 {
            return fail("making the template's mounts private");
        }
        // SAFETY: see above.
        if unsafe { libc::mount(root.as_ptr(), root.as_ptr(), null, libc::MS_BIND, nodata) } != 0 {
            return fail("bind-mounting the rootfs in the template");
        }
        let ro = libc::MS_REMOUNT
            | libc::MS_BIND
            | libc::MS_RDONLY
            | libc::MS_NOSUID
            | libc::MS_NODEV
            | root_atime;
        // SAFETY: see above.
        if unsafe { libc::mount(null, root.as_ptr(), null, ro, nodata) } != 0 {
            return fail("remounting the template's rootfs read-only");
        }
        // SAFETY: a NUL-terminated path.
        if unsafe { libc::chdir(root.as_ptr()) } != 0 {
            return fail("chdir into the rootfs");
        }
        // SAFETY: both arguments are ".".
        let r = unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) };
        let moved = if r == 0 {
            // SAFETY: a NUL-terminated path.
            if unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) } != 0 {
                return fail("detaching the host's root from the template");
            }
            false
        } else if errno() == libc::EINVAL && initramfs_root {
            // As in `MountPlan::enter`: an initramfs root cannot be pivoted away from.
            // SAFETY: see above.
            if unsafe { libc::mount(c".".as_ptr(), c"/".as_ptr(), null, libc::MS_MOVE, nodata) }
                != 0
            {
                return fail("moving the rootfs over / in the template");
            }
            // SAFETY: a NUL-terminated path.
            if unsafe { libc::chroot(c".".as_ptr()) } != 0 {
                return fail("chroot into the template's rootfs");
            }
            true
        } else {
            return fail("pivot_root into the template's rootfs");
        };
        if let Some(d) = dev {
            // Exact modes for the nodes. This thread's umask is its own: unshare(CLONE_NEWNS)
            // above implies CLONE_FS.
            // SAFETY: umask takes a mode.
            unsafe { libc::umask(0) };
            d.mount_tmpfs()
                .and_then(|()| d.make_nodes())
                .and_then(|()| d.remount_read_only())
                .map_err(|(_, e)| ("mounting /dev in the template", e))?;
        }
        Ok(Self {
            ns,
            moved,
            dev: dev.is_some(),
        })
    }
}

/// What a read-only `/dev` is made of: a small tmpfs (nosuid, noexec) holding the three nodes,
/// then remounted read-only. Paths are the container's own.
struct DevPlan<'a> {
    dev: &'a CString,
    nodes: &'a [(CString, u32, u32); 3],
    fs_tmpfs: &'a CString,
    opts: &'a CString,
}

impl DevPlan<'_> {
    /// The tmpfs. Async-signal-safe, as the two below (a child without the template calls them).
    fn mount_tmpfs(&self) -> Result<(), (SetupStep, i32)> {
        // SAFETY: every pointer is a NUL-terminated string owned by the plan, alive for the call.
        let r = unsafe {
            libc::mount(
                self.fs_tmpfs.as_ptr(),
                self.dev.as_ptr(),
                self.fs_tmpfs.as_ptr(),
                libc::MS_NOSUID | libc::MS_NOEXEC,
                self.opts.as_ptr().cast(),
            )
        };
        if r != 0 {
            return Err((SetupStep::MountDev, errno()));
        }
        Ok(())
    }

    /// The three nodes, mode 0666 less the umask (the caller's is 0).
    fn make_nodes(&self) -> Result<(), (SetupStep, i32)> {
        for (path, major, minor) in self.nodes {
            // SAFETY: `path` is a NUL-terminated string owned by the plan.
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
        Ok(())
    }

    fn remount_read_only(&self) -> Result<(), (SetupStep, i32)> {
        // SAFETY: a null source and type, the target and options owned by the plan.
        let r = unsafe {
            libc::mount(
                std::ptr::null(),
                self.dev.as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NOEXEC,
                self.opts.as_ptr().cast(),
            )
        };
        if r != 0 {
            return Err((SetupStep::DevReadOnly, errno()));
        }
        Ok(())
    }
}

/// The access-time flags of the mount `path` is on, for a remount of a bind of it: in a user
/// namespace they are locked, and a remount that names other ones (the default is relatime) is
/// refused.
pub(crate) fn atime_flags(path: &Path) -> libc::c_ulong {
    let Ok(c) = cpath(path) else {
        return libc::MS_RELATIME;
    };
    // SAFETY: statvfs is plain data; zeroed is a valid value to be overwritten.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated; `st` is a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return libc::MS_RELATIME;
    }
    let f = st.f_flag;
    let mut flags = 0;
    if f & libc::ST_NOATIME != 0 {
        flags |= libc::MS_NOATIME;
    } else if f & libc::ST_RELATIME != 0 {
        flags |= libc::MS_RELATIME;
    } else {
        flags |= libc::MS_STRICTATIME;
    }
    if f & libc::ST_NODIRATIME != 0 {
        flags |= libc::MS_NODIRATIME;
    }
    flags
}

/// Opens a directory once, refusing a symbolic link as its last component.
fn open_dir_nofollow(dir: &Path) -> Result<OwnedFd, ContainerError> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .map(OwnedFd::from)
        .map_err(|_| ContainerError::ScratchMissing {
            path: dir.to_path_buf(),
        })
}

/// Whether `/` of this mount namespace is an initramfs: the last mount on `/` in
/// /proc/self/mountinfo is of type `rootfs` or `ramfs`. Containers of such a host enter their
/// root with `MS_MOVE` + `chroot` ([`crate::RunReport::root_moved`]) instead of `pivot_root`.
pub fn root_is_initramfs() -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    initramfs_in_mountinfo(&info)
}

fn initramfs_in_mountinfo(info: &str) -> bool {
    let fstype = info
        .lines()
        .rev()
        .filter(|l| l.split(' ').nth(4) == Some("/"))
        .find_map(|l| l.split(" - ").nth(1)?.split(' ').next());
    matches!(fstype, Some("rootfs" | "ramfs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_rootfs_or_ramfs_root_counts_as_initramfs() {
        let disk = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n";
        assert!(!initramfs_in_mountinfo(disk));
        let initramfs = "1 1 0:2 / / rw shared:1 - rootfs rootfs rw\n";
        assert!(initramfs_in_mountinfo(initramfs));
        let switched = format!("{initramfs}30 1 254:0 / / rw - ext4 /dev/vda rw\n");
        assert!(!initramfs_in_mountinfo(&switched));
        assert!(!initramfs_in_mountinfo(""));
        assert!(!root_is_initramfs(), "this host's root is a disk");
    }

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
        let confine = || ConfinePlan::new(r.dir(), (1024, 1024), true).expect("confine");
        MountPlan::new(&r, Some(Path::new("/tmp")), false, false, confine(), false).expect("plan");
        MountPlan::new(&r, None, true, false, confine(), false)
            .expect("plan with a user namespace");
        assert!(matches!(
            MountPlan::new(
                &r,
                Some(Path::new("/nonexistent")),
                false,
                false,
                confine(),
                false
            ),
            Err(ContainerError::ScratchMissing { .. })
        ));
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
