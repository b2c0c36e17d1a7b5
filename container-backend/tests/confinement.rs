//! OCI-default confinement, checked from inside by a probe running as the container's init (this
//! test executable, static like the agent): every masked path fails to open, every read-only
//! path and every file of /proc/sys fails to open for writing, only null, zero and urandom are
//! usable devices, the open-files limit is 1024:1024, no supplementary group is left, the session
//! keyring is new, every writable mount has nosuid and nodev, and the seccomp filter is on.
//! For the default container and with a user namespace; the device filter also for cgroup v2
//! (a BPF program, on the cgroup2 hierarchy of this host) and at the level of the cgroup alone.
//! Needs root; nothing is skipped.

mod common;

use std::path::PathBuf;

use common::*;
use container_backend::cgroups::devices::DeviceFilterProgram;
use container_backend::confine::{MASKED_PATHS, READONLY_PATHS};
use container_backend::{
    Capabilities, CgroupSettings, CgroupVersion, ContainerConfig, RunReport, SeccompProfile,
};

/// Inside a container (with ISOLAB_TEST_PROBE set) this test is the probe; elsewhere it passes.
#[test]
fn probe() {
    if let Ok(what) = std::env::var(PROBE_ENV) {
        common::probe(&what);
    }
}

fn lines<'a>(r: &'a RunReport, key: &str) -> Vec<&'a str> {
    r.stdout
        .lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .collect()
}

/// The session keyring of this (host) process.
fn host_session_keyring() -> i64 {
    // SAFETY: keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 1): integer arguments.
    unsafe { libc::syscall(libc::SYS_keyctl, 0, -3i64, 1) }
}

/// The checks every confined container passes, whatever its variant.
fn assert_confined(r: &RunReport, seccomp: bool) {
    let out = &r.stdout;
    let ctx = format!("stdout:\n{out}\nstderr:\n{}", r.stderr_tail);
    for p in MASKED_PATHS {
        let v = lines(r, "MASKED")
            .into_iter()
            .find_map(|l| l.strip_prefix(p)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no MASKED line for {p}: {ctx}"));
        assert!(
            v == "EACCES" || v == "absent",
            "{p} can be opened ({v}): {ctx}"
        );
    }
    // Those the kernel of every supported host has must be there, masked (not merely absent).
    for p in ["/proc/keys", "/proc/timer_list", "/sys/firmware"] {
        assert!(
            lines(r, "MASKED").contains(&format!("{p} EACCES").as_str()),
            "{p}: {ctx}"
        );
    }
    for p in READONLY_PATHS {
        let v = lines(r, "READONLY")
            .into_iter()
            .find_map(|l| l.strip_prefix(p)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no READONLY line for {p}: {ctx}"));
        assert!(
            v == "EROFS" || v == "absent",
            "{p} is writable ({v}): {ctx}"
        );
    }
    let files: usize = probe_value(r, "PROC_SYS_FILES")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        files > 100,
        "the probe walked only {files} files of /proc/sys: {ctx}"
    );
    assert_eq!(probe_value(r, "PROC_SYS_WRITABLE"), Some(""), "{ctx}");
    // Read-only (EROFS); in a user namespace the permission check comes first (EACCES).
    let core = probe_value(r, "CORE_PATTERN");
    assert!(matches!(core, Some("EROFS" | "EACCES")), "{ctx}");
    for d in ["null", "zero", "urandom"] {
        assert!(
            lines(r, "DEV_RW").contains(&format!("{d} ok").as_str()),
            "{d}: {ctx}"
        );
    }
    assert_eq!(probe_value(r, "NOFILE"), Some("1024:1024"), "{ctx}");
    assert_eq!(probe_value(r, "GROUPS"), Some(""), "{ctx}");
    assert_eq!(probe_value(r, "NONEWPRIVS"), Some("1"), "{ctx}");
    let session = probe_value(r, "SESSION_KEYRING").unwrap_or_else(|| panic!("{ctx}"));
    if seccomp {
        // Docker's profile refuses keyctl altogether.
        assert_eq!(session, "EPERM", "{ctx}");
        assert_eq!(probe_value(r, "SECCOMP"), Some("2"), "filter mode: {ctx}");
        assert_eq!(probe_value(r, "IO_URING"), Some("EPERM"), "{ctx}");
    } else {
        let serial: i64 = session.parse().unwrap_or_else(|_| panic!("{ctx}"));
        assert!(serial > 0, "{ctx}");
        assert_ne!(
            serial,
            host_session_keyring(),
            "the keyring is the host's: {ctx}"
        );
        assert_eq!(probe_value(r, "SECCOMP"), Some("0"), "{ctx}");
    }
    // Every writable mount: nosuid and nodev (and noexec where nothing is executed).
    for m in lines(r, "MOUNT_RW") {
        let (point, opts) = m.split_once(' ').unwrap_or((m, ""));
        let has = |o: &str| opts.split(',').any(|x| x == o);
        let dev_node_mount = point.starts_with("/dev/") && point.len() > 5;
        assert!(has("nosuid"), "{point} lacks nosuid ({opts}): {ctx}");
        if !dev_node_mount {
            assert!(
                has("nodev") || point == "/dev",
                "{point} lacks nodev ({opts}): {ctx}"
            );
        }
        if matches!(point, "/tmp" | "/scratch" | "/dev") {
            assert!(has("noexec"), "{point} lacks noexec ({opts}): {ctx}");
        }
    }
    assert_eq!(
        r.root_moved,
        container_backend::rootfs::root_is_initramfs(),
        "pivot_root's fallback (MS_MOVE + chroot) is for an initramfs root, and only for it"
    );
}

fn confined_run(test: &str, tweak: impl FnOnce(&mut ContainerConfig)) -> (RunReport, PathBuf) {
    let (rt, dir) = probe_runtime(test, tweak);
    let r = run_probe(&rt, "confine");
    finish(rt, dir.clone());
    (r, dir)
}

#[test]
fn the_default_container_is_confined_like_an_oci_runtime() {
    let (r, _) = confined_run("confine-default", |_| {});
    assert_confined(&r, true);
    // /dev is read-only once its three nodes exist, and no device node can be made.
    assert_eq!(probe_value(&r, "DEV_WRITE"), Some("EROFS"), "{}", r.stdout);
    let mknod = probe_value(&r, "MKNOD_C_1_7");
    assert!(matches!(mknod, Some("EROFS" | "EPERM")), "{}", r.stdout);
    assert!(lines(&r, "MOUNT_RW")
        .iter()
        .all(|m| !m.starts_with("/dev ")));
}

#[test]
fn a_user_namespaced_container_is_confined_too() {
    let (r, _) = confined_run("confine-userns", with_userns);
    assert_confined(&r, true);
    assert_eq!(probe_value(&r, "DEV_WRITE"), Some("EROFS"), "{}", r.stdout);
}

#[test]
fn without_seccomp_the_paths_stay_masked_and_the_keyring_is_new() {
    let (r, _) = confined_run("confine-noseccomp", |c| c.seccomp = SeccompProfile::Off);
    assert_confined(&r, false);
    assert_ne!(probe_value(&r, "IO_URING"), Some("EPERM"), "{}", r.stdout);
}

/// With `CAP_MKNOD` kept, /dev stays writable: the device cgroup is then what refuses every node
/// but null, zero and urandom. `settings` picks the hierarchy.
fn device_filter_in_a_container(test: &str, settings: CgroupSettings, version: CgroupVersion) {
    let (rt, dir) = probe_runtime(test, |c| {
        c.keep_capabilities = Capabilities::none().with(Capabilities::MKNOD);
        c.cgroups = settings;
        if version == CgroupVersion::V2 {
            // The hybrid host's cgroup2 has no controllers: no limits there.
            c.limits = container_backend::CgroupLimits::default();
        }
    });
    assert_eq!(rt.cgroup_version(), version);
    let r = run_probe(&rt, "confine");
    let ctx = format!("stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr_tail);
    assert_eq!(probe_value(&r, "DEV_WRITE"), Some("writable"), "{ctx}");
    assert_eq!(
        probe_value(&r, "MKNOD_C_1_3"),
        Some("ok"),
        "null is allowed: {ctx}"
    );
    for key in ["MKNOD_C_1_7", "MKNOD_C_1_1", "MKNOD_C_5_0", "MKNOD_B_8_0"] {
        assert_eq!(probe_value(&r, key), Some("EPERM"), "{key}: {ctx}");
    }
    finish(rt, dir);
}

#[test]
fn the_v1_devices_controller_refuses_other_devices() {
    require_root();
    device_filter_in_a_container(
        "devices-v1",
        CgroupSettings {
            version: Some(CgroupVersion::V1),
            ..CgroupSettings::default()
        },
        CgroupVersion::V1,
    );
}

/// A cgroup2 hierarchy: the host's own when it is pure v2, else its hybrid one.
fn cgroup2_root() -> PathBuf {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.controllers").exists())
        .expect("no cgroup2 hierarchy is mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified")
}

#[test]
fn the_v2_device_program_refuses_other_devices() {
    require_root();
    device_filter_in_a_container(
        "devices-v2",
        CgroupSettings {
            version: Some(CgroupVersion::V2),
            v2_root: cgroup2_root(),
            v2_allow_missing_controllers: true,
            ..CgroupSettings::default()
        },
        CgroupVersion::V2,
    );
}

/// The BPF program alone, on opens of the host's device nodes: a child moved into a cgroup2
/// directory with the program attached may open null, zero and urandom and nothing else.
#[test]
fn the_device_program_decides_opens_of_host_nodes() {
    require_root();
    let dir = cgroup2_root().join(format!("isolab-devtest-{}", std::process::id()));
    std::fs::create_dir(&dir).expect("cgroup");
    let fd = std::fs::File::open(&dir).expect("open cgroup");
    let program = DeviceFilterProgram::load().expect("load");
    program.attach(&fd).expect("attach");
    let procs = dir.join("cgroup.procs");
    let nodes = [
        "/dev/null",
        "/dev/zero",
        "/dev/urandom",
        "/dev/full",
        "/dev/random",
    ];
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}; for n in {}; do if true < $n 2>/dev/null; then echo $n ok; else echo $n denied; fi; done",
            procs.display(),
            nodes.join(" ")
        ))
        .output()
        .expect("shell");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = std::fs::remove_dir(&dir);
    for n in ["/dev/null", "/dev/zero", "/dev/urandom"] {
        assert!(text.contains(&format!("{n} ok")), "{text}");
    }
    for n in ["/dev/full", "/dev/random"] {
        assert!(text.contains(&format!("{n} denied")), "{text}");
    }
}
