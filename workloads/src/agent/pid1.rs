//! Duties of the agent as PID 1 (a container's init or a VM's `/init`): mount the pseudo
//! filesystems the workloads read, bring up loopback, reap orphans, and end the sandbox.
//!
//! Nothing here may panic or give up: init that panics or returns takes a VM's kernel down with
//! it. Failures become warnings on stderr; a workload that needed the missing piece then fails
//! with its own, more specific error.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::os::fd::{IntoRawFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::errno::Errno;
use nix::kmod::{finit_module, ModuleInitFlags};
use nix::mount::{mount, MsFlags};
use nix::sys::reboot::{reboot, RebootMode};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::kernels::net_loopback::loopback_flags;
use crate::protocol::{DiskMode, VM_DISK_DEVICE, VM_DISK_MOUNT, VM_MODULES_DIR};

/// The inode number of the initial PID namespace (`PROC_PID_INIT_INO` in the kernel): how init can
/// tell a VM (the initial namespace) from a container (any other).
const INITIAL_PID_NS_INO: u64 = 0xEFFF_FFFC;

/// One pseudo filesystem init provides.
struct Pseudo {
    fstype: &'static str,
    target: &'static str,
    flags: MsFlags,
}

const PROC: Pseudo = Pseudo {
    fstype: "proc",
    target: "/proc",
    flags: MsFlags::MS_NOSUID
        .union(MsFlags::MS_NODEV)
        .union(MsFlags::MS_NOEXEC),
};

const OTHERS: [Pseudo; 3] = [
    Pseudo {
        fstype: "sysfs",
        target: "/sys",
        flags: MsFlags::MS_NOSUID
            .union(MsFlags::MS_NODEV)
            .union(MsFlags::MS_NOEXEC),
    },
    Pseudo {
        fstype: "devtmpfs",
        target: "/dev",
        flags: MsFlags::MS_NOSUID,
    },
    Pseudo {
        fstype: "tmpfs",
        target: "/tmp",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
    },
];

/// Mounts /proc unless it is there (a container runtime may have mounted it already).
pub fn mount_proc(warnings: &mut Vec<String>) {
    if !Path::new("/proc/self/mounts").exists() {
        mount_one(&PROC, warnings);
    }
}

/// Mounts /sys, /dev and /tmp where missing and brings `lo` up.
pub fn setup(warnings: &mut Vec<String>) {
    let mounted = mounted_targets();
    for fs in &OTHERS {
        if mounted.contains(fs.target) {
            continue;
        }
        let mut failures = Vec::new();
        mount_one(fs, &mut failures);
        // A container runtime may have prepared /dev as a plain directory of bind-mounted nodes
        // and forbid devtmpfs; that /dev is fine as it is. (A VM image's static /dev/console
        // alone is not: the block devices the I/O workloads use come from devtmpfs.)
        if fs.target != "/dev" || !Path::new("/dev/null").exists() {
            warnings.append(&mut failures);
        }
    }
    ensure_stdio(warnings);
    if let Err(e) = bring_loopback_up() {
        warnings.push(format!(
            "could not bring the loopback interface up ({e}); net-loopback will fail"
        ));
    }
}

fn mount_one(fs: &Pseudo, warnings: &mut Vec<String>) {
    if let Err(e) = std::fs::create_dir_all(fs.target) {
        warnings.push(format!("cannot create {}: {e}", fs.target));
        return;
    }
    match mount(
        Some(fs.fstype),
        fs.target,
        Some(fs.fstype),
        fs.flags,
        None::<&str>,
    ) {
        // EBUSY: already mounted by someone before us, which is all we wanted.
        Ok(()) | Err(Errno::EBUSY) => {}
        Err(e) => warnings.push(format!(
            "cannot mount {} on {}: {e} (workloads that read it will see nothing)",
            fs.fstype, fs.target
        )),
    }
}

/// Mount points listed in /proc/self/mounts (empty if unreadable, so everything is attempted).
fn mounted_targets() -> HashSet<String> {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect()
}

/// Gives init a stdin/stdout/stderr on /dev/console if the kernel could not (an initramfs without
/// /dev/console starts init with fds 0-2 closed, and the result line would go nowhere).
fn ensure_stdio(warnings: &mut Vec<String>) {
    // SAFETY: F_GETFD on an integer fd touches no memory; a closed fd yields EBADF.
    let closed = |fd: RawFd| unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0;
    if !(0..=2).any(closed) {
        return;
    }
    let console = match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/console")
    {
        Ok(f) => f.into_raw_fd(),
        Err(e) => {
            warnings.push(format!(
                "stdout is closed and /dev/console cannot be opened ({e}); the result line will be lost"
            ));
            return;
        }
    };
    for fd in 0..=2 {
        if fd != console && closed(fd) {
            // SAFETY: dup2 onto a closed descriptor number; no Rust object owns fds 0-2 here.
            unsafe { libc::dup2(console, fd) };
        }
    }
    if console > 2 {
        // SAFETY: `console` came from into_raw_fd above and is closed exactly once, here.
        unsafe { libc::close(console) };
    }
}

/// Sets IFF_UP on `lo` (a new network namespace or a VM starts with it down); the kernel then
/// assigns 127.0.0.1 itself.
fn bring_loopback_up() -> Result<(), std::io::Error> {
    let flags = loopback_flags(None)?;
    let up = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    if flags & up != up {
        loopback_flags(Some(flags | up))?;
    }
    Ok(())
}

/// Loads the kernel modules the VM's initramfs carries, in the order its
/// `VM_MODULES_DIR/order` file gives (a stock kernel's virtio drivers, dependencies first).
/// Returns one message per module that failed, naming it. A module that is already there (built
/// in or loaded: EEXIST) is fine. Without the order file, or outside a VM, it does nothing: a
/// container's init must never load modules into its host's kernel.
pub fn load_modules() -> Vec<String> {
    let dir = Path::new(VM_MODULES_DIR);
    let Ok(order) = std::fs::read_to_string(dir.join("order")) else {
        return Vec::new();
    };
    if !in_initial_pid_namespace() {
        return Vec::new();
    }
    let mut failures = Vec::new();
    for name in order.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let loaded = std::fs::File::open(dir.join(name))
            .map_err(|e| e.to_string())
            .and_then(
                |file| match finit_module(&file, c"", ModuleInitFlags::empty()) {
                    Ok(()) | Err(Errno::EEXIST) => Ok(()),
                    Err(e) => Err(e.to_string()),
                },
            );
        if let Err(e) = loaded {
            failures.push(format!("kernel module {name} did not load: {e}"));
        }
    }
    failures
}

/// Prepares the VM's virtio-blk disk for the I/O workloads as `mode` asks and returns the path
/// they must use: the device for `raw`; for `ext4`, the mount point after mounting the device
/// there. Waits briefly for the device node, which devtmpfs creates when the driver probes.
pub fn prepare_disk(mode: DiskMode) -> Result<&'static str, String> {
    let dev = Path::new(VM_DISK_DEVICE);
    let mut waited = 0;
    while !dev.exists() {
        if waited >= 200 {
            return Err(format!(
                "{VM_DISK_DEVICE} did not appear (isolab.disk={}): the VM has no virtio-blk disk, \
                 the kernel lacks CONFIG_VIRTIO_BLK / CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES, or (a \
                 stock kernel) its virtio modules did not load or the VM has no ACPI tables",
                mode.name()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        waited += 1;
    }
    match mode {
        DiskMode::Raw => Ok(VM_DISK_DEVICE),
        DiskMode::Ext4 => {
            std::fs::create_dir_all(VM_DISK_MOUNT)
                .map_err(|e| format!("cannot create {VM_DISK_MOUNT}: {e}"))?;
            match mount(
                Some(VM_DISK_DEVICE),
                VM_DISK_MOUNT,
                Some("ext4"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                None::<&str>,
            ) {
                Ok(()) | Err(Errno::EBUSY) => Ok(VM_DISK_MOUNT),
                Err(e) => Err(format!(
                    "cannot mount {VM_DISK_DEVICE} as ext4 on {VM_DISK_MOUNT}: {e}; give the VM \
                     an image made with `mkfs.ext4 -F -q IMAGE SIZE`, or use isolab.disk=raw"
                )),
            }
        }
    }
}

/// Unmounts the ext4 disk so its journal is clean on the host afterwards (best effort: the sync
/// before the reboot already wrote the data).
pub fn release_disk() {
    if mounted_targets().contains(VM_DISK_MOUNT) {
        let _ = nix::mount::umount(VM_DISK_MOUNT);
    }
}

/// Reaps every child that has exited (orphans re-parented to init included); never blocks.
pub fn reap_all() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// Ends the sandbox: reap, sync, reboot. In a VM booted with `reboot=k` the reboot reaches the
/// VMM as an i8042 reset; in a container's PID namespace it ends the namespace (the runtime sees
/// its child killed by SIGHUP). Never returns.
pub fn shutdown(code: i32) -> ! {
    reap_all();
    let own_kernel = in_initial_pid_namespace();
    if own_kernel {
        // A VM: our kernel's page cache dies with it, so write it back first.
        nix::unistd::sync();
        release_disk();
    }
    // In a container the host kernel owns the page cache and writes it back itself; a sync()
    // there would flush the whole host (about 250 ms measured) into every trial.
    let Err(e) = reboot(RebootMode::RB_AUTOBOOT);
    if !own_kernel {
        // A runtime that withheld CAP_SYS_BOOT (EPERM, expected): exiting init ends the
        // namespace just as well, and is harmless there.
        if e != nix::errno::Errno::EPERM {
            eprintln!("isolab-agent: reboot as PID 1 failed: {e}");
        }
        std::process::exit(code);
    }
    eprintln!("isolab-agent: reboot as PID 1 failed: {e}");
    // Returning from the real init panics the kernel; wait to be killed instead.
    loop {
        nix::unistd::pause();
    }
}

/// Whether this process lives in the initial PID namespace (true in a VM). Unknown counts as
/// yes, which errs on the side of never exiting init.
fn in_initial_pid_namespace() -> bool {
    std::fs::metadata("/proc/self/ns/pid").map_or(true, |m| m.ino() == INITIAL_PID_NS_INO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounted_targets_include_root_and_proc() {
        let m = mounted_targets();
        assert!(m.contains("/") && m.contains("/proc"), "{m:?}");
    }

    #[test]
    fn this_test_runs_in_a_known_pid_namespace() {
        // The check must give a definite answer where /proc is mounted; which one depends on
        // whether the tests themselves run inside a container.
        let ino = std::fs::metadata("/proc/self/ns/pid").unwrap().ino();
        assert_eq!(in_initial_pid_namespace(), ino == INITIAL_PID_NS_INO);
    }

    #[test]
    fn without_an_order_file_no_module_is_loaded() {
        // The test host has no /lib/modules/isolab; and were it there, a test process outside
        // the initial PID namespace would still load nothing.
        if !Path::new(VM_MODULES_DIR).exists() {
            assert!(load_modules().is_empty());
        }
    }

    #[test]
    fn reaping_collects_exited_children_without_blocking() {
        let child = std::process::Command::new("/bin/true").spawn().unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        // Wait until it has exited without reaping it, then let reap_all collect it.
        let mut waited = 0;
        while std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z"))
            .unwrap_or(false)
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
            waited += 1;
            assert!(waited < 1000, "child never exited");
        }
        reap_all();
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
        std::mem::forget(child);
    }
}
