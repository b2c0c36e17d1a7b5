//! Bad input and a broken host: clear typed errors, and nothing left behind.

mod common;

use std::path::PathBuf;

use common::*;
use container_backend::{
    check_host, clean_leftovers, CgroupSettings, CgroupVersion, ContainerError, Runtime,
};

fn assert_state_dir_empty(dir: &std::path::Path) {
    let state = dir.join("state");
    let left: Vec<_> = std::fs::read_dir(&state)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Re-run of this test binary as an unprivileged user (see `not_root_is_a_typed_error`).
#[test]
fn probe() {
    if std::env::var(PROBE_ENV).as_deref() == Ok("not-root") {
        nix::unistd::setresuid(
            nix::unistd::Uid::from_raw(65534),
            nix::unistd::Uid::from_raw(65534),
            nix::unistd::Uid::from_raw(65534),
        )
        .expect("dropping to uid 65534");
        let dir = std::env::temp_dir().join("isolab-ct-not-root");
        match Runtime::new(config(PathBuf::from("/bin/true"), &dir)) {
            Err(e @ ContainerError::NotRoot { .. }) => println!("\nERROR {e}"),
            Err(e) => println!("\nOTHER {e}"),
            Ok(_) => println!("\nACCEPTED"),
        }
        let problems = check_host();
        println!(
            "DOCTOR {}",
            problems
                .iter()
                .any(|p| p.is_fatal() && p.fix().contains("root"))
        );
        println!("LEFT {}", dir.exists());
        std::process::exit(0);
    }
}

#[test]
fn not_root_is_a_typed_error() {
    require_root();
    let out = std::process::Command::new(std::env::current_exe().expect("test executable"))
        .args(["probe", "--exact", "--nocapture", "--test-threads=1"])
        .env(PROBE_ENV, "not-root")
        .output()
        .expect("running the unprivileged probe");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("{k} missing in {text}"))
            .to_owned()
    };
    let err = line("ERROR ");
    assert!(err.contains("needs root") && err.contains("sudo"), "{err}");
    assert_eq!(line("DOCTOR "), "true");
    assert_eq!(line("LEFT "), "false");
}

#[test]
fn a_missing_agent_is_a_typed_error_naming_the_fix() {
    require_root();
    let dir = test_dir("no-agent");
    let err = Runtime::new(config(PathBuf::from("/nonexistent/isolab-agent"), &dir)).unwrap_err();
    assert!(matches!(err, ContainerError::InitMissing { .. }), "{err}");
    assert!(err.to_string().contains("cargo build"), "{err}");
    assert_state_dir_empty(&dir);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn a_missing_scratch_directory_is_a_typed_error() {
    require_root();
    let dir = test_dir("no-scratch");
    let mut c = config(agent(), &dir);
    c.scratch = Some(dir.join("does-not-exist"));
    let err = Runtime::new(c).unwrap_err();
    assert!(
        matches!(err, ContainerError::ScratchMissing { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("mkdir"), "{err}");
    assert_state_dir_empty(&dir);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn a_missing_cgroup_controller_is_a_typed_error() {
    require_root();
    let dir = test_dir("no-controller");
    // A cgroup2 hierarchy that offers no controllers (as /sys/fs/cgroup/unified on a hybrid host).
    let fake = dir.join("fake-cgroup2");
    std::fs::create_dir_all(&fake).expect("mkdir");
    std::fs::write(fake.join("cgroup.controllers"), "\n").expect("write");
    let mut c = config(agent(), &dir);
    c.cgroups = CgroupSettings {
        version: Some(CgroupVersion::V2),
        v2_root: fake,
        v2_allow_missing_controllers: false,
        ..Default::default()
    };
    let err = Runtime::new(c).unwrap_err();
    match &err {
        ContainerError::MissingController {
            controller,
            version,
            ..
        } => {
            assert_eq!(*controller, "memory");
            assert_eq!(*version, CgroupVersion::V2);
        }
        other => panic!("expected MissingController, got {other}"),
    }
    assert_state_dir_empty(&dir);
    // The real hybrid-host case, where it exists.
    let unified = PathBuf::from("/sys/fs/cgroup/unified");
    if unified.join("cgroup.controllers").exists()
        && std::fs::read_to_string(unified.join("cgroup.controllers"))
            .unwrap_or_default()
            .trim()
            .is_empty()
    {
        let mut c = config(agent(), &dir);
        c.cgroups = CgroupSettings {
            version: Some(CgroupVersion::V2),
            v2_root: unified,
            v2_allow_missing_controllers: true,
            ..Default::default()
        };
        let err = Runtime::new(c).unwrap_err();
        assert!(
            matches!(err, ContainerError::MissingController { .. }),
            "{err}"
        );
        assert_state_dir_empty(&dir);
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn this_host_passes_the_doctor_check() {
    require_root();
    let fatal: Vec<String> = check_host()
        .into_iter()
        .filter(|p| p.is_fatal())
        .map(|p| format!("{p}: {}", p.fix()))
        .collect();
    assert!(fatal.is_empty(), "{fatal:?}");
}

#[test]
fn leftovers_of_a_dead_isolab_are_cleaned() {
    require_root();
    let dir = test_dir("leftovers");
    // pid 999999999 is above any pid_max: its owner is certainly dead.
    let name = "isolab-999999999-1";
    let mut made = Vec::new();
    for h in ["memory", "pids", "cpu"] {
        let d = PathBuf::from("/sys/fs/cgroup").join(h).join(name);
        if d.parent().is_some_and(|p| p.join("cgroup.procs").exists()) {
            std::fs::create_dir(&d).expect("creating a fake leftover cgroup");
            made.push(d);
        }
    }
    let state = dir.join("state");
    let rootfs = state.join("rootfs-999999999-1");
    std::fs::create_dir_all(rootfs.join("proc")).expect("fake rootfs");
    std::fs::write(rootfs.join("init"), b"x").expect("fake init");
    let report = clean_leftovers(&state).expect("clean");
    for d in &made {
        assert!(!d.exists(), "{} survived", d.display());
        assert!(report.cgroups_removed.contains(d));
    }
    assert!(!rootfs.exists());
    assert_eq!(report.rootfs_removed, [rootfs]);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn a_setup_failure_inside_the_child_is_typed_and_leaves_nothing() {
    require_root();
    let dir = test_dir("setup-fails");
    let mut rt = Runtime::new(config(agent(), &dir)).expect("runtime");
    // The scratch directory vanishes between prepare and run: the child's bind mount fails.
    std::fs::remove_dir(dir.join("scratch")).expect("removing scratch");
    let err = rt
        .run(&agent_request(workloads::Workload::Noop))
        .expect_err("a run without its scratch directory");
    match &err {
        ContainerError::Setup { step, .. } => {
            assert_eq!(*step, container_backend::SetupStep::BindScratch, "{err}")
        }
        other => panic!("expected a setup error, got {other}"),
    }
    assert!(err.to_string().contains("scratch"), "{err}");
    let prefix = format!("isolab-{}-", std::process::id());
    for h in ["memory", "cpu", "cpuacct", "pids", "blkio"] {
        let root = PathBuf::from("/sys/fs/cgroup").join(h);
        let left: Vec<_> = std::fs::read_dir(&root)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
    assert_eq!(container_backend::running_containers(), 0);
    rt.cleanup().expect("cleanup");
    assert_state_dir_empty(&dir);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
