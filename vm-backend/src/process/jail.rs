//! The VMM process's jail, entered by the process itself, as Firecracker's jailer prepares
//! Firecracker's: new mount, PID and network namespaces (the host starts the process in them),
//! a root that holds only the kernel, the initramfs and the disk image (bind mounts into a fresh
//! folder the host made), its own cgroup (the host's placement), and an unprivileged user once
//! its inputs are open.
//!
//! Order, each step before the next:
//!
//! 1. mounts made private, so nothing done here reaches the host's mount table;
//! 2. the jail folder bound onto itself (a mount point to pivot to), and each input bound onto
//!    an empty file in it (`kernel`, `initrd`, `disk.img`; read-only, `nosuid,nodev,noexec`,
//!    the disk writable unless it is read-only);
//! 3. `/dev/kvm` and `/proc/self/smaps` opened (the jail has neither `/dev` nor `/proc`);
//! 4. `pivot_root` into the folder, the old root detached (on a host whose root is an
//!    initramfs, as in the HVM test machine, the folder is moved over `/` and chrooted into),
//!    the new root made read-only;
//! 5. the VMM opens its inputs at their jail paths and loads the guest
//!    ([`crate::hooks::VmmHooks::inputs_opened`]), then [`drop_privileges`]: every capability
//!    gone (bounding and ambient sets too), no new privileges, supplementary groups cleared,
//!    uid and gid the unprivileged ones the host chose;
//! 6. only then do the VM's threads start, each under its seccomp filter.
//!
//! The mounts live in the process's own mount namespace: they vanish with it, and on the host the
//! jail folder holds three empty files, removed with the run's state folder.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use kvm_ioctls::Kvm;
use thiserror::Error;

use super::protocol::{JailConfig, JailProbe};
use crate::vmm::VmConfig;

/// Why the jail could not be entered.
#[derive(Debug, Error)]
pub enum JailError {
    /// A system call of the jail's set-up failed.
    #[error("entering the jail: {what}: {source}")]
    Step {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The process was not started as the jail needs.
    #[error("entering the jail: {0}")]
    Precondition(String),
}

/// What the VMM keeps from outside its jail.
#[derive(Debug)]
pub struct Entered {
    /// `/dev/kvm`, opened before the jail.
    pub kvm: Kvm,
    /// `/proc/self/smaps`, opened before the jail.
    pub smaps: File,
    /// `/proc/self/ns`, when the jail is to be probed.
    pub ns_dir: Option<File>,
}

fn step(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> JailError {
    let what = what.into();
    move |source| JailError::Step { what, source }
}

fn cstr(p: &Path) -> Result<CString, JailError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| JailError::Precondition(format!("{} holds a NUL byte", p.display())))
}

fn check(rc: libc::c_int, what: impl Into<String>) -> Result<(), JailError> {
    if rc != 0 {
        return Err(step(what)(std::io::Error::last_os_error()));
    }
    Ok(())
}

fn mount(
    source: Option<&Path>,
    target: &Path,
    flags: libc::c_ulong,
    what: impl Into<String>,
) -> Result<(), JailError> {
    let src = source.map(cstr).transpose()?;
    let dst = cstr(target)?;
    // SAFETY: mount(2) with NUL-terminated paths that live across the call, no file system type
    // and no data (binds, remounts and propagation changes only).
    let rc = unsafe {
        libc::mount(
            src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            dst.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    };
    check(rc, what)
}

/// The jail path of each input, and whether it is bound read-only.
fn inputs(config: &VmConfig) -> Vec<(PathBuf, &'static str, bool)> {
    let mut v = vec![(config.kernel.clone(), "kernel", true)];
    if let Some(i) = &config.initrd {
        v.push((i.clone(), "initrd", true));
    }
    if let Some(d) = &config.disk {
        v.push((d.path.clone(), "disk.img", d.read_only));
    }
    v
}

/// Enters the jail (steps 1 to 4 above) and points `config` at the inputs' jail paths.
pub fn enter(jail: &JailConfig, config: &mut VmConfig, probe: bool) -> Result<Entered, JailError> {
    // SAFETY: getpid has no preconditions.
    if unsafe { libc::getpid() } != 1 {
        return Err(JailError::Precondition(
            "the VMM process was not started in a PID namespace of its own (it must be its \
             init); the host starts it with CLONE_NEWPID, CLONE_NEWNS and CLONE_NEWNET"
                .into(),
        ));
    }
    let root = &jail.root;
    let meta = std::fs::symlink_metadata(root).map_err(step(format!("{}", root.display())))?;
    if !meta.is_dir() {
        return Err(JailError::Precondition(format!(
            "{} is not a directory",
            root.display()
        )));
    }
    if std::fs::read_dir(root)
        .map_err(step(format!("listing {}", root.display())))?
        .next()
        .is_some()
    {
        return Err(JailError::Precondition(format!(
            "{} is not empty; the jail must be a fresh folder",
            root.display()
        )));
    }
    mount(
        None,
        Path::new("/"),
        libc::MS_REC | libc::MS_PRIVATE,
        "making every mount private",
    )?;
    mount(
        Some(root),
        root,
        libc::MS_BIND,
        "binding the jail folder onto itself",
    )?;
    for (source, name, read_only) in inputs(config) {
        let target = root.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&target)
            .map_err(step(format!("creating {}", target.display())))?;
        mount(
            Some(&source),
            &target,
            libc::MS_BIND,
            format!("binding {} to {}", source.display(), target.display()),
        )?;
        let mut flags =
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        if read_only {
            flags |= libc::MS_RDONLY;
        }
        mount(
            None,
            &target,
            flags,
            format!("making {} read-only", target.display()),
        )?;
    }
    let kvm_fd = Kvm::open_with_cloexec(true)
        .map_err(|e| step("opening /dev/kvm")(std::io::Error::from_raw_os_error(e.errno())))?;
    // SAFETY: the fd was just opened on /dev/kvm and is owned by nobody else.
    let kvm = unsafe { <Kvm as std::os::fd::FromRawFd>::from_raw_fd(kvm_fd) };
    let smaps = File::open("/proc/self/smaps").map_err(step("opening /proc/self/smaps"))?;
    let ns_dir = if probe {
        Some(File::open("/proc/self/ns").map_err(step("opening /proc/self/ns"))?)
    } else {
        None
    };
    let initramfs = root_is_initramfs();
    std::env::set_current_dir(root).map_err(step(format!("entering {}", root.display())))?;
    let dot = CString::from(c".");
    // SAFETY: pivot_root(".", ".") stacks the old root on the new one (the documented way
    // without a put_old folder); both arguments are valid C strings.
    let rc = unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) };
    if rc == 0 {
        // SAFETY: umount2 of the old root, now stacked on ".", detached (lazily unmounted).
        let rc = unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) };
        check(rc, "detaching the host's root")?;
    } else if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) && initramfs {
        // The host's root is an initramfs (as in the HVM test machine), which pivot_root cannot
        // leave: the jail is moved over "/" and chrooted into instead (runc's --no-pivot). Any
        // other EINVAL is an error. Without CAP_SYS_CHROOT (dropped below) there is no way out.
        mount(
            Some(Path::new(".")),
            Path::new("/"),
            libc::MS_MOVE,
            "moving the jail over /",
        )?;
        // SAFETY: chroot(".") with a valid C string.
        let rc = unsafe { libc::chroot(dot.as_ptr()) };
        check(rc, "chroot into the jail")?;
    } else {
        return Err(step("pivot_root into the jail")(
            std::io::Error::last_os_error(),
        ));
    }
    std::env::set_current_dir("/").map_err(step("entering the new root"))?;
    mount(
        None,
        Path::new("/"),
        libc::MS_BIND
            | libc::MS_REMOUNT
            | libc::MS_RDONLY
            | libc::MS_NOSUID
            | libc::MS_NODEV
            | libc::MS_NOEXEC,
        "making the jail's root read-only",
    )?;
    config.kernel = PathBuf::from("/kernel");
    if config.initrd.is_some() {
        config.initrd = Some(PathBuf::from("/initrd"));
    }
    if let Some(d) = &mut config.disk {
        d.path = PathBuf::from("/disk.img");
    }
    Ok(Entered { kvm, smaps, ns_dir })
}

/// Whether `/` of this mount namespace is an initramfs (the last mount on `/` in
/// /proc/self/mountinfo is `rootfs` or `ramfs`), which pivot_root cannot leave.
fn root_is_initramfs() -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let fstype = info
        .lines()
        .rev()
        .filter(|l| l.split(' ').nth(4) == Some("/"))
        .find_map(|l| l.split(" - ").nth(1)?.split(' ').next());
    matches!(fstype, Some("rootfs" | "ramfs"))
}

/// Capabilities Linux has at most (the bounding set is dropped for all of them).
const CAP_COUNT: libc::c_ulong = 64;
/// `_LINUX_CAPABILITY_VERSION_3`.
const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// (effective, permitted, inheritable) of the calling thread.
fn capabilities() -> Result<[u64; 3], std::io::Error> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget with a v3 header and room for its two data structs.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok([
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
        join(data[0].inheritable, data[1].inheritable),
    ])
}

/// Step 5: becomes `uid`/`gid` with no capability left and no way to gain one, and asks again to
/// die with its parent (a credential change clears that request).
pub fn drop_privileges(uid: u32, gid: u32) -> Result<(), JailError> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, "setting no_new_privs")?;
    for cap in 0..CAP_COUNT {
        // SAFETY: prctl with integer arguments; EINVAL past the kernel's last capability.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if rc != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return Err(step(format!(
                "dropping capability {cap} from the bounding set"
            ))(std::io::Error::last_os_error()));
        }
    }
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
        "clearing the ambient capabilities",
    )?;
    // SAFETY: setgroups with an empty list.
    let rc = unsafe { libc::setgroups(0, std::ptr::null()) };
    check(rc, "clearing the supplementary groups")?;
    // SAFETY: setresgid with plain ids; the process has one thread here, so glibc's broadcast
    // to other threads has nothing to do.
    let rc = unsafe { libc::setresgid(gid, gid, gid) };
    check(rc, format!("becoming gid {gid}"))?;
    // SAFETY: as above.
    let rc = unsafe { libc::setresuid(uid, uid, uid) };
    check(rc, format!("becoming uid {uid}"))?;
    // Leaving uid 0 cleared the permitted and effective sets; the inheritable one goes too.
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: capset with a v3 header and two zeroed data structs (lowering only).
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    check(i32::from(rc != 0), "clearing the capabilities")?;
    let caps = capabilities().map_err(step("reading the capabilities back"))?;
    if caps != [0, 0, 0] {
        return Err(JailError::Precondition(format!(
            "capabilities left after the drop: {caps:x?}"
        )));
    }
    prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        0,
        "asking again to die with the host's isolab",
    )?;
    Ok(())
}

/// prctl(2) with integer arguments.
fn prctl(
    op: libc::c_int,
    arg2: libc::c_ulong,
    arg3: libc::c_ulong,
    what: &str,
) -> Result<(), JailError> {
    // SAFETY: prctl with integer arguments only (no pointers).
    let rc = unsafe { libc::prctl(op, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    check(rc, what)
}

/// Lists `dir` and below (at most `depth` levels), each entry as `<type letter> <path>`.
fn list_tree(dir: &Path, depth: usize, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let kind = match e.file_type() {
            Ok(t) if t.is_dir() => "d",
            Ok(t) if t.is_symlink() => "l",
            Ok(t) if t.is_file() => "f",
            _ => "?",
        };
        out.push(format!("{kind} {}", path.display()));
        if kind == "d" && depth > 0 {
            list_tree(&path, depth - 1, out);
        }
    }
}

/// What the process sees from where it is (called inside the jail, after the drop).
pub fn probe(ns_dir: Option<&File>) -> JailProbe {
    let mut p = JailProbe::default();
    list_tree(Path::new("/"), 3, &mut p.root);
    if let Some(dir) = ns_dir {
        for ns in ["mnt", "pid", "net", "uts", "ipc", "user", "cgroup"] {
            let name = CString::new(ns).unwrap_or_default();
            let mut buf = [0u8; 64];
            // SAFETY: readlinkat relative to an open directory fd into a buffer of its length.
            let n = unsafe {
                libc::readlinkat(
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if let Ok(n) = usize::try_from(n) {
                p.namespaces.push((
                    ns.to_owned(),
                    String::from_utf8_lossy(&buf[..n]).into_owned(),
                ));
            }
        }
    }
    // SAFETY: getpid, getppid, getresuid, getresgid, getgroups and prctl with valid out
    // pointers and buffer sizes.
    unsafe {
        p.pid = libc::getpid();
        p.ppid = libc::getppid();
        let (mut r, mut e, mut s) = (0, 0, 0);
        libc::getresuid(&mut r, &mut e, &mut s);
        p.uids = [r, e, s];
        libc::getresgid(&mut r, &mut e, &mut s);
        p.gids = [r, e, s];
        let mut groups = [0 as libc::gid_t; 64];
        let n = libc::getgroups(groups.len() as libc::c_int, groups.as_mut_ptr());
        p.groups = groups[..usize::try_from(n).unwrap_or(0)].to_vec();
        for cap in 0..CAP_COUNT {
            if libc::prctl(libc::PR_CAPBSET_READ, cap, 0, 0, 0) == 1 {
                p.cap_bounding |= 1 << cap;
            }
            if libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1 {
                p.cap_ambient |= 1 << cap;
            }
        }
        p.no_new_privs = libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1;
        let names = libc::if_nameindex();
        if !names.is_null() {
            let mut i = 0;
            loop {
                let entry = &*names.add(i);
                if entry.if_index == 0 || entry.if_name.is_null() {
                    break;
                }
                p.interfaces.push(
                    std::ffi::CStr::from_ptr(entry.if_name)
                        .to_string_lossy()
                        .into_owned(),
                );
                i += 1;
            }
            libc::if_freenameindex(names);
        }
    }
    p.caps = capabilities().unwrap_or([u64::MAX; 3]);
    for path in [
        "/dev/kvm",
        "/proc/self/status",
        "/etc/passwd",
        "/sys/kernel",
        "/kernel",
    ] {
        match std::fs::OpenOptions::new().read(true).open(path) {
            Ok(f) => {
                // Opened: not refused (the kernel is in the jail, so `/kernel` opens: the
                // probe shows that this is the only kind of thing that does).
                drop(f);
            }
            Err(e) => p.refused.push((path.to_owned(), e.to_string())),
        }
    }
    p
}
