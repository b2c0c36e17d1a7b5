//! Isolation, limits and cleanup, with real namespaces and cgroups (run as root).

mod common;

use std::time::{Duration, Instant};

use common::*;
use container_backend::{KillReason, Phase};
use workloads::result::Outcome;
use workloads::Workload;

/// Inside a container (with ISOLAB_TEST_PROBE set) this test is the probe; elsewhere it passes.
#[test]
fn probe() {
    if let Ok(what) = std::env::var(PROBE_ENV) {
        common::probe(&what);
    }
}

fn host_boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("boot_id")
        .trim()
        .to_owned()
}

#[test]
fn inspect_sees_only_itself_its_hostname_lo_and_the_host_kernel() {
    let (rt, dir) = agent_runtime("inspect");
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
    let host_release = nix::sys::utsname::uname()
        .expect("uname")
        .release()
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        i.kernel_release, host_release,
        "a container shares the host's kernel"
    );
    assert_eq!(i.boot_id, host_boot_id(), "and its boot");
    // The cgroup namespace is rooted at the trial cgroup.
    assert!(
        i.cgroup.split("; ").all(|l| l.ends_with(":/")),
        "cgroup view {:?}",
        i.cgroup
    );
    assert!(report.exit.is_clean(), "{}", report.exit);
    // The clone pins the calling thread to one CPU for a moment; both it and the container end up
    // with every CPU again.
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").expect("online CPUs");
    let ours = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).expect("affinity");
    let count = (0..nix::sched::CpuSet::count())
        .filter(|&c| ours.is_set(c).unwrap_or(false))
        .count();
    assert_eq!(
        i.cpus as usize, count,
        "container CPUs vs ours (online: {online})"
    );
    assert!(count >= 1);
    finish(rt, dir);
}

#[test]
fn noop_has_a_full_timeline_and_accounting() {
    let (rt, dir) = agent_runtime("noop");
    let (report, result) = run_agent(&rt, Workload::Noop);
    let result = result.unwrap_or_else(|e| panic!("no result ({e}): {}", report.stderr_tail));
    assert_eq!(result.outcome, Outcome::Ok);
    let t = &report.timeline;
    // Two chains run side by side: the parent makes the cgroup (on v1 while the child sets up),
    // the child makes its namespaces and root; both meet at the join, before exec.
    let chains: [&[Phase]; 4] = [
        &[
            Phase::Start,
            Phase::CgroupCreated,
            Phase::CgroupJoined,
            Phase::Exec,
        ],
        &[
            Phase::Start,
            Phase::NamespacesReady,
            Phase::RootPivoted,
            Phase::Exec,
        ],
        // Inside the cgroup before the mounts: their kernel memory is the container's.
        &[Phase::CgroupJoined, Phase::RootPivoted],
        &[
            Phase::Exec,
            Phase::InitReady,
            Phase::Exited,
            Phase::Reaped,
            Phase::CleanedUp,
        ],
    ];
    for order in chains {
        let times: Vec<u64> = order
            .iter()
            .map(|p| {
                t.at(*p)
                    .unwrap_or_else(|| panic!("phase {p:?} missing: {t:?}"))
            })
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "{order:?} {times:?}"
        );
    }
    assert!(t.at(Phase::CloneReturned).is_some());
    let bytes: Vec<u8> = t.markers.iter().map(|m| m.byte).collect();
    assert_eq!(bytes, [1, 2, 3, 4], "the agent's four markers");
    // The agent's own clock is the host's: its start lies between exec and the first marker.
    let agent_start = result.clock.agent_start_ns - t.start_monotonic_ns;
    assert!(
        agent_start >= t.at(Phase::Exec).unwrap_or(0)
            && agent_start <= t.at(Phase::InitReady).unwrap_or(0)
    );
    assert!(report.usage.peak_memory_bytes > 0, "{:?}", report.usage);
    assert!(report.usage.cpu.total_ns > 0, "{:?}", report.usage);
    finish(rt, dir);
}

#[test]
fn host_files_are_unreachable_root_is_read_only_and_capabilities_are_gone() {
    let (rt, dir) = probe_runtime("look", |_| {});
    let r = run_probe(&rt, "look");
    assert_eq!(
        probe_value(&r, "ROOT"),
        Some("dev,init,proc,scratch,sys,tmp"),
        "stdout: {}\nstderr: {}",
        r.stdout,
        r.stderr_tail
    );
    for p in [
        "/etc", "/usr", "/home", "/root", "/work", "/bin", "/run", "/var",
    ] {
        assert_eq!(probe_value(&r, &format!("EXISTS{p}")), Some("false"), "{p}");
    }
    assert_eq!(probe_value(&r, "ROOT_READ_ONLY"), Some("true"));
    assert_eq!(probe_value(&r, "TMP_WRITABLE"), Some("true"));
    assert_eq!(probe_value(&r, "SCRATCH_WRITABLE"), Some("true"));
    assert_eq!(probe_value(&r, "DEV"), Some("null,urandom,zero"));
    assert_eq!(probe_value(&r, "CAPEFF"), Some("0000000000000000"));
    assert_eq!(probe_value(&r, "CAPBND"), Some("0000000000000000"));
    assert_eq!(probe_value(&r, "NONEWPRIVS"), Some("1"));
    assert_eq!(probe_value(&r, "MKNOD_REFUSED"), Some("true"));
    // The scratch directory is the host's.
    let written = std::fs::read_to_string(dir.join("scratch/probe.txt")).expect("scratch file");
    assert_eq!(written, "from inside");
    finish(rt, dir);
}

/// The `MOUNTPOINT` lines of a `mounts` probe, sorted.
fn mount_points(r: &container_backend::RunReport) -> Vec<String> {
    let mut m: Vec<String> = r
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("MOUNTPOINT "))
        .map(|l| l.split(' ').next().unwrap_or("").to_owned())
        .collect();
    m.sort();
    m
}

/// Each container's mount namespace is its own copy of the runtime's template (rootfs::Template):
/// it holds the rootfs and the container's own mounts and nothing of the host's, and what one
/// container mounted is not in the next one's (the child unshares its copy before mounting: a
/// child that mounted in the shared template would leave its /proc, /sys, ... to every later
/// container, stacked).
#[test]
fn every_container_has_its_own_mount_namespace_without_host_mounts() {
    let (rt, dir) = probe_runtime("mounts", |_| {});
    let first = run_probe(&rt, "mounts");
    let second = run_probe(&rt, "mounts");
    let points = mount_points(&first);
    let ctx = format!("stdout:\n{}\nstderr:\n{}", first.stdout, first.stderr_tail);
    assert_eq!(points.iter().filter(|p| *p == "/").count(), 1, "{ctx}");
    for p in &points {
        let inside = ["/proc", "/sys", "/dev", "/tmp", "/scratch"]
            .iter()
            .any(|top| p == top || p.starts_with(&format!("{top}/")));
        assert!(
            p == "/" || inside,
            "a mount that is not the container's: {p}: {ctx}"
        );
    }
    for top in ["/proc", "/sys", "/dev", "/tmp", "/scratch"] {
        assert_eq!(
            points.iter().filter(|p| *p == top).count(),
            1,
            "{top} must be mounted once: {ctx}"
        );
    }
    assert_eq!(
        points,
        mount_points(&second),
        "the second container's mounts differ from the first's:\n{}",
        second.stdout
    );
    // MS_MOVE + chroot instead of pivot_root on an initramfs root only (the HVM test machine).
    let initramfs = container_backend::rootfs::root_is_initramfs();
    assert_eq!(
        (first.root_moved, second.root_moved),
        (initramfs, initramfs)
    );
    finish(rt, dir);
}

#[test]
fn memory_hog_above_the_limit_is_killed_and_reported_as_oom() {
    let (mut rt, dir) = agent_runtime("oom");
    rt.cleanup().expect("cleanup");
    let mut cfg = rt.config().clone();
    cfg.limits.memory_bytes = Some(64 << 20);
    let rt = container_backend::Runtime::new(cfg).expect("runtime");
    let started = Instant::now();
    let (report, result) = run_agent(&rt, workload(r#"{"kind":"page-fault","mib":256}"#));
    assert!(
        result.is_err(),
        "a 256 MiB hog under a 64 MiB limit produced a result"
    );
    assert!(report.out_of_memory, "{report:?}");
    assert!(report.usage.oom_kills >= 1);
    assert!(report.killed.is_none());
    assert_eq!(
        report.exit,
        container_backend::ExitKind::Signaled(libc::SIGKILL)
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "it must not hang"
    );
    assert!(report.usage.peak_memory_bytes <= 64 << 20);
    finish(rt, dir);
}

#[test]
fn fork_bomb_stops_at_the_pids_limit_and_the_host_stays_responsive() {
    let (rt, dir) = probe_runtime("forkbomb", |c| c.limits.pids_max = Some(32));
    let r = run_probe(&rt, "forkbomb");
    let forks: u32 = probe_value(&r, "FORKS")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("stdout {} stderr {}", r.stdout, r.stderr_tail));
    assert!(forks < 32, "forks {forks} got past pids.max 32");
    assert_eq!(probe_value(&r, "FORK_ERROR"), Some("EAGAIN"));
    assert!(r.usage.pids_limit_hits >= 1, "{:?}", r.usage);
    // The host still creates processes at once.
    let t = Instant::now();
    let ok = std::process::Command::new("/bin/true")
        .status()
        .expect("host can still fork");
    assert!(ok.success() && t.elapsed() < Duration::from_secs(2));
    finish(rt, dir);
}

#[test]
fn spawn_under_a_pids_limit_of_one_fails_cleanly() {
    let (mut rt, dir) = agent_runtime("spawn-pids");
    rt.cleanup().expect("cleanup");
    let mut cfg = rt.config().clone();
    cfg.limits.pids_max = Some(1);
    let rt = container_backend::Runtime::new(cfg).expect("runtime");
    let (report, result) = run_agent(&rt, workload(r#"{"kind":"spawn","count":1000}"#));
    let result = result.unwrap_or_else(|e| panic!("no result ({e}): {}", report.stderr_tail));
    assert!(
        matches!(result.outcome, Outcome::Error { .. }),
        "{:?}",
        result.outcome
    );
    assert!(report.usage.pids_limit_hits >= 1, "{:?}", report.usage);
    finish(rt, dir);
}

#[test]
fn a_trial_past_its_timeout_is_killed_and_reported() {
    let (rt, dir) = probe_runtime("timeout", |c| c.timeout = Duration::from_millis(500));
    let t = Instant::now();
    let r = run_probe(&rt, "sleep");
    assert_eq!(r.killed, Some(KillReason::Timeout));
    assert_eq!(r.exit, container_backend::ExitKind::Signaled(libc::SIGKILL));
    assert!(t.elapsed() < Duration::from_secs(5));
    finish(rt, dir);
}

#[test]
fn a_crash_is_a_report_with_its_signal_and_output() {
    let (rt, dir) = probe_runtime("crash", |_| {});
    let r = run_probe(&rt, "crash");
    // abort()'s SIGABRT is ignored by a PID-namespace init (it sent it to itself), so glibc ends it
    // with a faulting instruction: some signal other than the clean SIGHUP.
    assert!(
        matches!(r.exit, container_backend::ExitKind::Signaled(s) if s != libc::SIGHUP),
        "{}",
        r.exit
    );
    assert!(
        r.stderr_tail.contains("crashing on purpose"),
        "{}",
        r.stderr_tail
    );
    assert!(!r.exit.is_clean());
    finish(rt, dir);
}

#[test]
fn io_workload_writes_to_the_scratch_mount() {
    let (rt, dir) = agent_runtime("io");
    let (report, result) = run_agent(
        &rt,
        workload(r#"{"kind":"io-seq","path":"/scratch","size_mib":8}"#),
    );
    let result = result.unwrap_or_else(|e| panic!("no result ({e}): {}", report.stderr_tail));
    assert_eq!(result.outcome, Outcome::Ok, "{}", report.stderr_tail);
    // O_DIRECT writes reach the block device and are charged to the trial cgroup.
    assert!(report.usage.io.write >= 8 << 20, "{:?}", report.usage.io);
    finish(rt, dir);
}

#[test]
fn loopback_works_inside() {
    let (rt, dir) = agent_runtime("net");
    let (report, result) = run_agent(
        &rt,
        workload(r#"{"kind":"net-loopback","mib":4,"round_trips":100}"#),
    );
    let result = result.unwrap_or_else(|e| panic!("no result ({e}): {}", report.stderr_tail));
    assert_eq!(result.outcome, Outcome::Ok, "{}", report.stderr_tail);
    finish(rt, dir);
}

#[test]
fn parallel_runs_on_one_runtime_do_not_interfere() {
    let (rt, dir) = agent_runtime("parallel");
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| run_agent(&rt, Workload::Noop)))
            .collect();
        for h in handles {
            let (report, result) = h.join().expect("thread");
            assert!(result.is_ok(), "{}", report.stderr_tail);
        }
    });
    finish(rt, dir);
}

/// The cgroup v2 path (clone3 with CLONE_INTO_CGROUP | CLONE_NEWCGROUP: born in the cgroup, which
/// is the root of its view) on this host's cgroup2 mount. A hybrid host's cgroup2 has no
/// controllers, so no limits here: the point is the join at birth and the accounting cgroup2
/// keeps by itself. On a pure v2 host the default settings take this path in every other test.
#[test]
fn cgroup_v2_join_at_birth() {
    require_root();
    let v2_root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.join("cgroup.controllers").exists())
        .expect("no cgroup2 hierarchy is mounted: mount one at /sys/fs/cgroup/unified or /sys/fs/cgroup");
    let dir = test_dir("v2");
    let mut cfg = config(agent(), &dir);
    cfg.limits = container_backend::CgroupLimits::default();
    cfg.cgroups = container_backend::CgroupSettings {
        version: Some(container_backend::CgroupVersion::V2),
        v2_root: v2_root.clone(),
        v2_allow_missing_controllers: true,
        ..Default::default()
    };
    let rt = container_backend::Runtime::new(cfg).expect("runtime on cgroup v2");
    assert_eq!(rt.cgroup_version(), container_backend::CgroupVersion::V2);
    let (report, result) = run_agent(&rt, Workload::Inspect);
    let result = result.unwrap_or_else(|e| panic!("no result ({e}): {}", report.stderr_tail));
    let i = result.inspect.expect("inspect");
    assert_eq!(i.visible_processes, 1);
    assert!(i.cgroup.contains("0::/"), "{}", i.cgroup);
    assert!(report.cgroup_dirs.iter().all(|d| d.starts_with(&v2_root)));
    // cpu.stat of the trial cgroup counted the container: it was inside from its birth.
    assert!(report.usage.cpu.total_ns > 0, "{:?}", report.usage);
    assert!(report.timeline.at(Phase::CgroupJoined) <= report.timeline.at(Phase::NamespacesReady));
    finish(rt, dir);
}
