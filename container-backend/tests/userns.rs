//! The optional user namespace, with real namespaces (run as root): as root, container root is
//! an unprivileged id outside; unprivileged (uid 65534), a container still starts, runs `noop`
//! and cleans up, without cgroups and saying so. Missing privileges or a kernel that forbids
//! unprivileged user namespaces fail the tests with what to do; nothing is skipped.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use container_backend::{ContainerError, RunWarning, Runtime, UserNamespace, ROOT_MAPPED_ID};
use workloads::result::Outcome;
use workloads::Workload;

/// The unprivileged user of the rootless test.
const NOBODY: u32 = 65534;
/// Where the rootless re-run finds its prepared directory.
const DIR_ENV: &str = "ISOLAB_TEST_ROOTLESS_DIR";

/// Tests of this file look at "a child of ours in another user namespace" from outside: one at
/// a time, so that child is the test's own container.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Inside a container (with ISOLAB_TEST_PROBE set) this test is the probe; for the rootless test
/// it is the unprivileged re-run of this binary; elsewhere it passes.
#[test]
fn probe() {
    match std::env::var(PROBE_ENV).as_deref() {
        Ok("rootless") => rootless_run(),
        Ok(what) => common::probe(what),
        Err(_) => {}
    }
}

#[test]
fn inspect_works_in_a_user_namespace_as_root() {
    let _one = serial();
    require_root();
    let dir = test_dir("userns-inspect");
    let mut c = config(agent(), &dir);
    with_userns(&mut c);
    let rt = Runtime::new(c).expect("preparing the container runtime with a user namespace");
    assert!(rt.cgroups_unavailable().is_none(), "root keeps its cgroups");
    let (report, result) = run_agent(&rt, Workload::Inspect);
    let result = result.unwrap_or_else(|e| {
        panic!(
            "no result ({e}); exit {} stderr {}",
            report.exit, report.stderr_tail
        )
    });
    assert_eq!(result.outcome, Outcome::Ok);
    assert!(result.was_pid1);
    let i = result.inspect.expect("inspect report");
    assert_eq!(i.pid, 1);
    assert_eq!(i.visible_processes, 1, "only the container's own process");
    assert_eq!(i.hostname, container_backend::DEFAULT_HOSTNAME);
    assert_eq!(i.interfaces, ["lo"]);
    assert!(
        i.cgroup.split("; ").all(|l| l.ends_with(":/")),
        "cgroup view {:?}",
        i.cgroup
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert!(report.exit.is_clean(), "{}", report.exit);
    // Limits still apply: the run was accounted in its cgroup.
    assert!(report.usage.peak_memory_bytes > 0);
    finish(rt, dir);
}

/// Our children in a user namespace other than ours, with their /proc status.
fn children_in_other_user_namespace() -> Vec<(i32, String)> {
    let ours = std::fs::read_link("/proc/self/ns/user").expect("our user namespace");
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let ppid = status.lines().find_map(|l| l.strip_prefix("PPid:"));
        if ppid.map(str::trim) != Some(me.as_str()) {
            continue;
        }
        match std::fs::read_link(e.path().join("ns/user")) {
            Ok(ns) if ns != ours => found.push((pid, status)),
            _ => {}
        }
    }
    found
}

fn status_ids(status: &str, key: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect()
}

#[test]
fn root_inside_is_an_unprivileged_id_outside() {
    let _one = serial();
    require_root();
    let (rt, dir) = probe_runtime("userns-ids", with_userns);
    let seen = std::thread::scope(|s| {
        let run = s.spawn(|| run_probe(&rt, "ids"));
        // Watch from the host while the probe sleeps: its ids once it is root inside.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = None;
        while seen.is_none() && Instant::now() < deadline && !run.is_finished() {
            for (pid, status) in children_in_other_user_namespace() {
                let uids = status_ids(&status, "Uid:");
                if uids.first() == Some(&ROOT_MAPPED_ID) {
                    let map =
                        std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap_or_default();
                    seen = Some((pid, uids, status_ids(&status, "Gid:"), map));
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (seen, run.join().expect("the run thread"))
    });
    let (seen, report) = seen;
    let stdout = &report.stdout;
    let (pid, uids, gids, map) = seen.unwrap_or_else(|| {
        panic!(
            "the container's init was never seen from the host with uid {ROOT_MAPPED_ID}; \
             stdout {stdout} stderr {}",
            report.stderr_tail
        )
    });
    assert_eq!(
        pid, report.init_pid,
        "the process seen is the container's init"
    );
    assert_eq!(
        uids, [ROOT_MAPPED_ID; 4],
        "real, effective, saved, fs uid on the host"
    );
    assert_eq!(
        gids, [ROOT_MAPPED_ID; 4],
        "real, effective, saved, fs gid on the host"
    );
    let map: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(
        map,
        ["0", &ROOT_MAPPED_ID.to_string(), "1"],
        "uid_map from the host"
    );
    // From inside: root, mapped to the unprivileged id, with no supplementary group left over
    // from the host's root.
    assert_eq!(probe_value(&report, "UID"), Some("0"), "{stdout}");
    assert_eq!(probe_value(&report, "GID"), Some("0"), "{stdout}");
    let want = format!("0 {ROOT_MAPPED_ID} 1");
    assert_eq!(
        probe_value(&report, "UID_MAP"),
        Some(want.as_str()),
        "{stdout}"
    );
    assert_eq!(
        probe_value(&report, "GID_MAP"),
        Some(want.as_str()),
        "{stdout}"
    );
    assert_eq!(probe_value(&report, "GROUPS"), Some(""), "{stdout}");
    assert!(
        report.exit.is_clean(),
        "{} {}",
        report.exit,
        report.stderr_tail
    );
    finish(rt, dir);
}

#[test]
fn a_user_namespace_still_isolates_and_drops_capabilities() {
    let _one = serial();
    require_root();
    let (rt, dir) = probe_runtime("userns-look", with_userns);
    let report = run_probe(&rt, "look");
    let v = |k: &str| probe_value(&report, k).map(str::to_owned);
    let out = &report.stdout;
    assert_eq!(
        v("ROOT").as_deref(),
        Some("dev,init,proc,scratch,sys,tmp"),
        "{out}"
    );
    assert_eq!(v("DEV").as_deref(), Some("null,urandom,zero"), "{out}");
    assert_eq!(v("ROOT_READ_ONLY").as_deref(), Some("true"), "{out}");
    assert_eq!(v("TMP_WRITABLE").as_deref(), Some("true"), "{out}");
    assert_eq!(v("SCRATCH_WRITABLE").as_deref(), Some("true"), "{out}");
    assert_eq!(v("CAPEFF").as_deref(), Some("0000000000000000"), "{out}");
    assert_eq!(v("NONEWPRIVS").as_deref(), Some("1"), "{out}");
    assert_eq!(v("MKNOD_REFUSED").as_deref(), Some("true"), "{out}");
    // The file the probe wrote in /scratch belongs to the mapped id on the host.
    let meta = std::fs::metadata(dir.join("scratch/probe.txt")).expect("probe.txt");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), ROOT_MAPPED_ID);
    finish(rt, dir);
}

#[test]
fn a_scratch_directory_the_mapped_root_cannot_write_is_a_typed_error() {
    require_root();
    let dir = test_dir("userns-scratch");
    let mut c = config(agent(), &dir);
    c.user_namespace = Some(UserNamespace::for_current_user());
    let err = Runtime::new(c).unwrap_err();
    assert!(
        matches!(err, ContainerError::ScratchNotWritable { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chown"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.join("state"))
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// How many processes have `ppid` as their parent.
fn children_of(ppid: u32) -> usize {
    let want = format!("PPid:\t{ppid}\n");
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("status"))
                        .is_ok_and(|s| s.contains(&want))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Fails, with what to do, when this kernel does not let an unprivileged user make a user
/// namespace.
fn require_unprivileged_user_namespaces() {
    if let Err(e) = container_backend::check_unprivileged_user_namespaces() {
        panic!("the rootless container test needs unprivileged user namespaces: {e}");
    }
}

#[test]
fn rootless_noop_runs_without_cgroups_and_says_so() {
    require_root();
    require_unprivileged_user_namespaces();
    let dir = test_dir("rootless");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // The agent where uid 65534 can read and run it.
    let agent_copy = dir.join("isolab-agent");
    std::fs::copy(agent(), &agent_copy).expect("copying the agent");
    std::fs::set_permissions(&agent_copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for sub in ["state", "scratch"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).expect("mkdir");
        nix::unistd::chown(
            &p,
            Some(nix::unistd::Uid::from_raw(NOBODY)),
            Some(nix::unistd::Gid::from_raw(NOBODY)),
        )
        .expect("chown to 65534");
    }
    let out = std::process::Command::new(std::env::current_exe().expect("test executable"))
        .args(["probe", "--exact", "--nocapture", "--test-threads=1"])
        .env(PROBE_ENV, "rootless")
        .env(DIR_ENV, &dir)
        .output()
        .expect("running the unprivileged re-run");
    // Removed before the checks, so a failing check leaves nothing either.
    std::fs::remove_dir_all(&dir).expect("removing the test directory");
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    let line = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("{k} missing in:\n{text}\nstderr:\n{err}"))
            .to_owned()
    };
    assert_eq!(line("EUID "), NOBODY.to_string());
    assert!(
        text.lines().all(|l| !l.starts_with("ERROR ")),
        "the rootless run failed:\n{text}\nstderr:\n{err}"
    );
    let map_error = line("MAP_ERROR ");
    assert!(
        map_error.starts_with("writing") && map_error.contains("dumpable"),
        "{map_error}"
    );
    assert_eq!(line("CHILDREN_LEFT "), "0", "{text}");
    assert_eq!(line("OUTCOME "), "ok", "{text}");
    let warning = line("WARNING ");
    assert!(
        warning.contains("no cgroup limits or accounting") && warning.contains("run as root"),
        "{warning}"
    );
    assert_eq!(line("UNAVAILABLE "), "true");
    assert_eq!(line("CGROUP_DIRS "), "0");
    assert_eq!(line("INIT_GONE "), "true");
    assert_eq!(line("MOUNT_LEFT "), "false");
    assert_eq!(line("STATE_LEFT "), "0");
    assert!(out.status.success(), "{text}\n{err}");
}

/// The unprivileged side of `rootless_noop_runs_without_cgroups_and_says_so`: drops to uid and
/// gid 65534, runs `noop` and prints `KEY value` lines. Never returns.
fn rootless_run() -> ! {
    println!();
    let dir = PathBuf::from(std::env::var_os(DIR_ENV).expect("the test directory"));
    let nobody_g = nix::unistd::Gid::from_raw(NOBODY);
    let nobody_u = nix::unistd::Uid::from_raw(NOBODY);
    nix::unistd::setgroups(&[]).expect("clearing groups");
    nix::unistd::setresgid(nobody_g, nobody_g, nobody_g).expect("dropping to gid 65534");
    nix::unistd::setresuid(nobody_u, nobody_u, nobody_u).expect("dropping to uid 65534");
    println!("EUID {}", nix::unistd::geteuid());
    let mut c = config(dir.join("isolab-agent"), &dir);
    c.user_namespace = Some(UserNamespace::for_current_user());
    let mut rt = match Runtime::new(c) {
        Ok(rt) => rt,
        Err(e) => {
            println!("ERROR {e}");
            std::process::exit(0);
        }
    };
    // The change of ids above made this process undumpable, which makes its child's /proc files
    // (uid_map among them) root's: the maps cannot be written. That failure after the clone must
    // be a typed error that leaves no process behind.
    match rt.run(&agent_request(Workload::Noop)) {
        Err(e @ ContainerError::IdMap { .. }) => println!("MAP_ERROR {e}"),
        Err(e) => println!("MAP_ERROR other: {e}"),
        Ok(r) => println!("MAP_ERROR none: ran with exit {}", r.exit),
    }
    println!("CHILDREN_LEFT {}", children_of(std::process::id()));
    // A user who starts isolab directly is dumpable.
    nix::sys::prctl::set_dumpable(true).expect("PR_SET_DUMPABLE");
    println!("UNAVAILABLE {}", rt.cgroups_unavailable().is_some());
    let root = rt.rootfs_dir().map(Path::to_path_buf);
    match rt.run(&agent_request(Workload::Noop)) {
        Err(e) => println!("ERROR {e}"),
        Ok(report) => {
            match workloads::protocol::parse_framed_result(&report.stdout) {
                Ok(r) if r.outcome == Outcome::Ok => println!("OUTCOME ok"),
                Ok(r) => println!("OUTCOME {:?}", r.outcome),
                Err(e) => println!(
                    "OUTCOME none ({e}); stderr {}",
                    report.stderr_tail.replace('\n', " | ")
                ),
            }
            for w in &report.warnings {
                assert!(matches!(w, RunWarning::CgroupsUnavailable { .. }));
                println!("WARNING {w}");
            }
            println!("CGROUP_DIRS {}", report.cgroup_dirs.len());
            let gone = !Path::new(&format!("/proc/{}", report.init_pid)).exists()
                || std::fs::read_to_string(format!("/proc/{}/status", report.init_pid))
                    .map(|s| !s.contains(&format!("PPid:\t{}", std::process::id())))
                    .unwrap_or(true);
            println!("INIT_GONE {gone}");
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let left = root.is_some_and(|r| mounts.contains(&*r.to_string_lossy()));
    println!("MOUNT_LEFT {left}");
    if let Err(e) = rt.cleanup() {
        println!("ERROR cleanup: {e}");
    }
    let state_left = std::fs::read_dir(dir.join("state"))
        .map(|rd| rd.count())
        .unwrap_or(0);
    println!("STATE_LEFT {state_left}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    std::process::exit(0)
}
