//! Containers that stay up (`Runtime::start`, what `isolab density` uses) and the floor processes
//! they are measured against: several at once, each ready with its working set, then killed,
//! reaped and removed with nothing left. Needs root; never skips.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use container_backend::floor::Floor;
use container_backend::{CgroupSettings, MarkerRead, RunCgroup};
use workloads::kernels::wait::WaitParams;
use workloads::protocol::{encode_spec, MarkerEvent, MARKER_ENV, SPEC_ENV};
use workloads::{Workload, WorkloadSpec};

const WAITING: u8 = 5;

/// `running_containers()` counts every container of this process, so the tests that start
/// containers take turns: a count checked by one must not include another's.
static CONTAINER_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    CONTAINER_TESTS.lock().unwrap_or_else(|e| e.into_inner())
}

fn wait_env(kib: u64) -> Vec<(String, String)> {
    vec![
        (
            SPEC_ENV.to_owned(),
            encode_spec(&WorkloadSpec::new(Workload::Wait(WaitParams {
                working_set_kib: kib,
            })))
            .unwrap(),
        ),
        (MARKER_ENV.to_owned(), "fd:3".to_owned()),
    ]
}

/// Polls until `ready` says every item has sent `Waiting`, or 30 s.
fn until_all<T>(items: &mut [T], mut read: impl FnMut(&mut T) -> MarkerRead, want: usize) {
    let mut seen = vec![Vec::<u8>::new(); items.len()];
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.iter().filter(|s| s.contains(&WAITING)).count() < want {
        assert!(Instant::now() < deadline, "not all ready: {seen:?}");
        for (i, it) in items.iter_mut().enumerate() {
            match read(it) {
                MarkerRead::Bytes(b) => seen[i].extend(b),
                MarkerRead::Closed => {
                    assert!(
                        seen[i].contains(&WAITING),
                        "instance {i} ended: {:?}",
                        seen[i]
                    )
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(MarkerEvent::Waiting.byte(), WAITING);
}

#[test]
fn started_containers_wait_until_killed_and_leave_nothing() {
    let _turn = one_at_a_time();
    let (rt, dir) = common::agent_runtime("running");
    let req = container_backend::RunRequest {
        args: Vec::new(),
        env: wait_env(4 << 10),
        netns: None,
    };
    let shared = rt.shared_cgroup_dirs();
    if rt.cgroup_version() == container_backend::CgroupVersion::V1 {
        // One devices cgroup with the rules, made once for every container of the runtime.
        assert_eq!(shared.len(), 1, "{shared:?}");
        let rules = std::fs::read_to_string(shared[0].join("devices.list")).unwrap();
        let mut rules: Vec<&str> = rules.lines().collect();
        rules.sort_unstable();
        assert_eq!(rules, ["c 1:3 rwm", "c 1:5 rwm", "c 1:9 rwm"]);
    }
    let mut started: Vec<_> = (0..4)
        .map(|_| rt.start(&req, None, None).unwrap())
        .collect();
    assert_eq!(container_backend::running_containers(), 4);
    until_all(&mut started, |c| c.read_markers(), 4);
    for c in &started {
        let procs = c.processes();
        assert_eq!(procs, [c.pid()], "the init is the container's only process");
        let mem = c.cgroup_memory().expect("a cgroup");
        assert!(mem.charged_bytes >= 4 << 20, "{mem:?}");
        let t = c.timeline();
        assert!(t.start_to_ready_ns().is_some());
        assert!(t.at(container_backend::Phase::Exec).is_some(), "{t:?}");
        assert!(c.cgroup_dirs().iter().all(|d| d.is_dir()));
        let cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", c.pid())).unwrap();
        for d in &shared {
            let name = d.file_name().unwrap().to_string_lossy();
            assert!(
                cgroups
                    .lines()
                    .any(|l| l.contains(":devices:") && l.ends_with(&*name)),
                "not in the shared devices cgroup {name}: {cgroups}"
            );
        }
    }
    let dirs: Vec<_> = started.iter().flat_map(|c| c.cgroup_dirs()).collect();
    let pids: Vec<_> = started.iter().map(|c| c.pid()).collect();
    for c in &started {
        c.kill();
    }
    for c in started {
        let f = c.finish().unwrap();
        assert!(f.cleanup_error.is_none(), "{:?}", f.cleanup_error);
        assert_eq!(f.exit, container_backend::ExitKind::Signaled(libc::SIGKILL));
        assert!(f.setup_failure.is_none());
    }
    assert_eq!(container_backend::running_containers(), 0);
    for d in dirs {
        assert!(!d.exists(), "{} left", d.display());
    }
    for p in pids {
        assert!(!std::path::Path::new(&format!("/proc/{p}")).exists());
    }
    // The runtime still holds its shared cgroup for the containers it may start next.
    assert!(shared.iter().all(|d| d.is_dir()));
    // Dropped without finish: killed, reaped and removed all the same.
    let c = rt.start(&req, None, None).unwrap();
    let dirs = c.cgroup_dirs();
    drop(c);
    assert!(dirs.iter().all(|d| !d.exists()));
    common::finish(rt, dir);
}

/// On v1 the parent writes a container's limits while the child sets up (once it has joined its
/// cgroups): however late they come, the workload's first instruction comes after them.
#[test]
fn a_container_execs_only_once_its_limits_are_written() {
    let _turn = one_at_a_time();
    common::require_root();
    let dir = common::test_dir("late-limits");
    let mut config = common::config(common::agent(), &dir);
    let delay = Duration::from_millis(150);
    config.delay_limits_for_tests = Some(delay);
    config.limits.pids_max = Some(77);
    let rt = container_backend::Runtime::new(config).unwrap();
    let req = container_backend::RunRequest {
        args: Vec::new(),
        env: wait_env(0),
        netns: None,
    };
    let mut c = rt.start(&req, None, None).unwrap();
    until_all(std::slice::from_mut(&mut c), |c| c.read_markers(), 1);
    let t = c.timeline();
    let exec = t.at(container_backend::Phase::Exec).expect("an exec phase");
    assert!(
        exec >= delay.as_nanos() as u64,
        "exec {exec} ns after the start, before the limits (written {delay:?} after it): {t:?}"
    );
    let pids = c
        .cgroup_dirs()
        .into_iter()
        .find(|d| d.join("pids.max").exists())
        .expect("a pids cgroup");
    assert_eq!(
        std::fs::read_to_string(pids.join("pids.max"))
            .unwrap()
            .trim(),
        "77"
    );
    c.kill();
    let f = c.finish().unwrap();
    assert!(f.cleanup_error.is_none(), "{:?}", f.cleanup_error);
    common::finish(rt, dir);
}

#[test]
fn floor_processes_wait_in_their_own_namespaces_and_cgroups() {
    common::require_root();
    let name = format!("isolab-run-floortest-{}", std::process::id());
    let run = Arc::new(RunCgroup::create(&name, &CgroupSettings::default()).unwrap());
    let floor = Floor::new(&common::agent(), &wait_env(2 << 10), Some(run.clone())).unwrap();
    let mut kids: Vec<_> = (0..3).map(|_| floor.start(None, None).unwrap()).collect();
    until_all(&mut kids, |k| k.read_markers(), 3);
    let host_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    for k in &kids {
        assert_eq!(k.processes(), [k.pid()]);
        assert!(k.first_marker_ns.is_some());
        let net = std::fs::read_link(format!("/proc/{}/ns/net", k.pid())).unwrap();
        assert_ne!(net, host_net, "a network namespace of its own");
        let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", k.pid())).unwrap();
        assert!(cg.contains(&name), "{cg}");
    }
    let dirs: Vec<_> = kids.iter().flat_map(|k| k.cgroup_dirs()).collect();
    for k in &kids {
        k.kill();
    }
    for k in kids {
        let (exit, cleanup) = k.finish().unwrap();
        assert_eq!(exit, container_backend::ExitKind::Signaled(libc::SIGKILL));
        assert!(cleanup.is_none(), "{cleanup:?}");
    }
    assert!(dirs.iter().all(|d| !d.exists()));
    run.remove().unwrap();
}

#[test]
fn handles_move_between_threads() {
    fn send<T: Send>() {}
    send::<container_backend::RunningContainer>();
    send::<container_backend::floor::FloorChild>();
    fn sync<T: Sync + Send>() {}
    sync::<container_backend::Runtime>();
    sync::<Floor>();
}

/// A runtime that runs many containers holds many descriptors, and every child holds a copy of
/// them until it execs: the container's own open-files limit (1024) must not stop its setup.
#[test]
fn a_container_starts_while_its_parent_holds_thousands_of_descriptors() {
    let _turn = one_at_a_time();
    let (rt, dir) = common::agent_runtime("many-fds");
    let mut was = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut was) }, 0);
    assert!(
        was.rlim_max >= 4096,
        "this test needs a hard open-files limit of 4096 (is {})",
        was.rlim_max
    );
    let raised = libc::rlimit {
        rlim_cur: was.rlim_max,
        rlim_max: was.rlim_max,
    };
    // SAFETY: setrlimit reads one rlimit struct that lives for the call.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) }, 0);
    let held: Vec<std::fs::File> = (0..2000)
        .map(|_| std::fs::File::open("/dev/null").unwrap())
        .collect();
    let (report, result) = common::run_agent(&rt, Workload::Noop);
    drop(held);
    // SAFETY: as above.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &was) };
    assert!(result.is_ok(), "{:?}\n{}", report.exit, report.stderr_tail);
    common::finish(rt, dir);
}
