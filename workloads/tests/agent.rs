//! The agent binary end to end, as the harness's native backend runs it: spec in through the
//! environment or arguments, markers on an inherited pipe, one framed result on stdout.
//!
//! Needs the agent built first (`cargo build -p workloads --bin isolab-agent`); without it these
//! tests fail with the locator's advice rather than skip.

// Helpers outside `#[test]` functions are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use workloads::kernels::cpu::CpuParams;
use workloads::kernels::io::{IoFsyncParams, IoRandParams, IoSeqParams};
use workloads::kernels::mem_bw::MemBwParams;
use workloads::kernels::mem_lat::MemLatParams;
use workloads::kernels::net::NetStreamParams;
use workloads::kernels::net_loopback::NetLoopbackParams;
use workloads::kernels::page_fault::PageFaultParams;
use workloads::kernels::random_access::RandomAccessParams;
use workloads::kernels::spawn::SpawnParams;
use workloads::kernels::syscall::SyscallParams;
use workloads::kernels::timer::TimerParams;
use workloads::protocol::{
    encode_spec, parse_framed_result, MarkerEvent, WorkloadPhase, MARKER_ENV, SPEC_ENV,
};
use workloads::result::Outcome;
use workloads::spec::WORKLOAD_KINDS;
use workloads::{Workload, WorkloadResult, WorkloadSpec};

/// Held while a pipe's write end is inheritable, so an agent started by a parallel test does not
/// inherit it too and delay our end-of-file.
static SPAWN_LOCK: Mutex<()> = Mutex::new(());

fn agent() -> PathBuf {
    workloads::locate::locate_agent(None).unwrap_or_else(|e| panic!("{e}"))
}

/// Every workload with parameters small enough for a debug build to finish in milliseconds.
fn small(kind: &str) -> Workload {
    let io = "/var/tmp".to_owned();
    match kind {
        "cpu" => Workload::Cpu(CpuParams {
            hash_mib: 1,
            matrix_n: 32,
        }),
        "mem-bw" => Workload::MemBw(MemBwParams {
            array_mib: 2,
            passes: 1,
        }),
        "mem-lat" => Workload::MemLat(MemLatParams {
            working_set_kib: 64,
            accesses: 10_000,
        }),
        "page-fault" => Workload::PageFault(PageFaultParams { mib: 2 }),
        "random-access" => Workload::RandomAccess(RandomAccessParams {
            table_mib: 1,
            updates_per_entry: 4,
            verify: true,
        }),
        "syscall" => Workload::Syscall(SyscallParams { iterations: 1000 }),
        "spawn" => Workload::Spawn(SpawnParams { count: 2 }),
        "io-seq" => Workload::IoSeq(IoSeqParams {
            path: io,
            size_mib: 2,
        }),
        "io-rand" => Workload::IoRand(IoRandParams {
            path: io,
            file_mib: 1,
            ops: 20,
            ..Default::default()
        }),
        "io-fsync" => Workload::IoFsync(IoFsyncParams { path: io, ops: 5 }),
        "net-loopback" => Workload::NetLoopback(NetLoopbackParams {
            mib: 1,
            round_trips: 10,
        }),
        "timer" => Workload::Timer(TimerParams {
            calls: 1000,
            sleeps: 2,
        }),
        other => {
            let mut w = Workload::default_of_kind(other).unwrap();
            if w.peer().is_some() {
                w = match w {
                    Workload::NetStream(_) => Workload::NetStream(NetStreamParams {
                        peer: peer(),
                        mib: 1,
                    }),
                    mut w => {
                        if let Workload::NetRr(p) | Workload::NetCrr(p) | Workload::NetUdpRr(p) =
                            &mut w
                        {
                            p.transactions = 20;
                        }
                        w.set_peer(&peer());
                        w
                    }
                };
            }
            w
        }
    }
}

/// The network workloads' peer: this agent with `--peer 0` on the host's loopback, started once
/// and ended when the test process ends (its stdin closes).
fn peer() -> String {
    static PEER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PEER.get_or_init(|| {
        let mut child = Command::new(agent())
            .args(["--peer", "0"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let port = line
            .trim()
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("{line:?}"));
        // The child and its stdin live as long as the test process.
        std::mem::forget(child);
        format!("127.0.0.1:{port}")
    })
    .clone()
}

fn encoded(w: Workload) -> String {
    encode_spec(&WorkloadSpec::new(w)).unwrap()
}

struct Run {
    code: Option<i32>,
    signal: Option<i32>,
    pid: u32,
    stdout: String,
    stderr: String,
    markers: Vec<u8>,
}

impl Run {
    fn result(&self) -> WorkloadResult {
        parse_framed_result(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}; stdout {:?}, stderr {:?}", self.stdout, self.stderr))
    }
}

/// Runs the agent with `args` and, if given, `ISOLAB_SPEC=env_spec`, with a marker pipe.
fn run(args: &[&str], env_spec: Option<&str>) -> Run {
    run_under(&[], args, env_spec)
}

/// As [`run`], with the agent started by `wrapper` (a program and its arguments) if not empty.
fn run_under(wrapper: &[&str], args: &[&str], env_spec: Option<&str>) -> Run {
    let guard = SPAWN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
    fcntl(&w, FcntlArg::F_SETFD(FdFlag::empty())).unwrap();
    let agent = agent();
    let mut cmd = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(&agent);
            c
        }
        None => Command::new(&agent),
    };
    cmd.args(args)
        .env_remove(SPEC_ENV)
        .env(MARKER_ENV, format!("fd:{}", w.as_raw_fd()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(s) = env_spec {
        cmd.env(SPEC_ENV, s);
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
    drop(w);
    drop(guard);
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let mut markers = Vec::new();
    std::fs::File::from(r).read_to_end(&mut markers).unwrap();
    Run {
        code: out.status.code(),
        signal: std::os::unix::process::ExitStatusExt::signal(&out.status),
        pid,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        markers,
    }
}

fn assert_ok(run: &Run, kind: &str) -> WorkloadResult {
    assert_eq!(run.code, Some(0), "{kind}: stderr {}", run.stderr);
    let r = run.result();
    assert_eq!(r.workload, kind);
    assert_eq!(r.outcome, Outcome::Ok, "{kind}");
    // The I/O workloads announce their phases between start and end (io-rand prefills its
    // scratch file first).
    let phases: &[WorkloadPhase] = match kind {
        "io-rand" => &[
            WorkloadPhase::Prefill,
            WorkloadPhase::Read,
            WorkloadPhase::Write,
        ],
        "io-seq" => &[WorkloadPhase::Write, WorkloadPhase::Read],
        _ => &[],
    };
    let expected: Vec<u8> = [MarkerEvent::AgentStart, MarkerEvent::WorkloadStart]
        .into_iter()
        .chain(phases.iter().map(|&p| MarkerEvent::Phase(p)))
        .chain([MarkerEvent::WorkloadEnd, MarkerEvent::ResultWritten])
        .map(MarkerEvent::byte)
        .collect();
    assert_eq!(run.markers, expected, "{kind}: markers out of order");
    assert!(!r.was_pid1);
    let c = r.clock;
    assert!(
        c.agent_start_ns > 0
            && c.agent_start_ns <= c.workload_start_ns
            && c.workload_start_ns <= c.workload_end_ns,
        "{kind}: {c:?}"
    );
    assert!(
        r.memory_inside.is_some_and(|m| m.mem_total_kib > 0),
        "{kind}"
    );
    if kind != "noop" {
        assert!(!r.metrics.is_empty(), "{kind} reported no metrics");
    }
    for m in &r.metrics {
        assert!(m.value.is_finite() && m.value >= 0.0, "{kind}: {m:?}");
    }
    r
}

fn scratch_left(pid: u32) -> Vec<String> {
    ["io-seq", "io-rand", "io-fsync"]
        .iter()
        .map(|k| format!("/var/tmp/isolab-{k}-{pid}.dat"))
        .filter(|p| Path::new(p).exists())
        .collect()
}

#[test]
fn every_workload_runs_from_the_environment_with_markers_in_order() {
    for kind in WORKLOAD_KINDS {
        let run = run(&[], Some(&encoded(small(kind))));
        assert_ok(&run, kind);
        assert!(
            scratch_left(run.pid).is_empty(),
            "{kind} left a scratch file"
        );
    }
}

#[test]
fn spec_is_taken_from_arguments_and_files() {
    let spec = encoded(small("syscall"));
    assert_ok(&run(&["--spec", &spec], None), "syscall");
    assert_ok(&run(&[&format!("--spec={spec}")], None), "syscall");
    // An argument wins over the environment.
    assert_ok(
        &run(&["--spec", &spec], Some(&encoded(Workload::Noop))),
        "syscall",
    );

    let file = std::env::temp_dir().join(format!("isolab-agent-test-{}.spec", std::process::id()));
    std::fs::write(&file, &spec).unwrap();
    let r = run(&["--spec-file", file.to_str().unwrap()], None);
    std::fs::remove_file(&file).unwrap();
    assert_ok(&r, "syscall");
}

#[test]
fn a_bad_or_missing_spec_exits_3_with_a_reason() {
    for (args, env, needle) in [
        (vec!["--spec", "not*base64"], None, "base64url"),
        (vec![], Some("bm9wZQ"), "not valid"),
        (vec![], None, "no workload spec"),
        (vec!["--bogus"], None, "unknown argument"),
    ] {
        let r = run(&args, env);
        assert_eq!(r.code, Some(3), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{args:?}: stderr {:?}", r.stderr);
        let result = r.result();
        assert!(
            matches!(&result.outcome, Outcome::Error { message } if message.contains(needle)),
            "{result:?}"
        );
        assert_eq!(r.markers, [1, 4], "{args:?}");
    }
}

#[test]
fn a_failing_workload_exits_2_and_says_what_to_do() {
    let w = Workload::IoSeq(IoSeqParams {
        path: "/nonexistent/isolab".into(),
        size_mib: 1,
    });
    let r = run(&[], Some(&encoded(w)));
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert_eq!(r.markers, [1, 2, 3, 4]);
    let result = r.result();
    assert_eq!(result.workload, "io-seq");
    assert!(result.metrics.is_empty());
    match result.outcome {
        Outcome::Error { message } => assert!(message.contains("block device"), "{message}"),
        Outcome::Ok => panic!("a missing target must fail"),
    }
}

#[test]
fn inspect_sees_this_kernel_and_boot() {
    let r = run(&[], Some(&encoded(Workload::Inspect)));
    let result = assert_ok(&r, "inspect");
    let report = result.inspect.expect("inspect must fill its report");
    let uname = nix::sys::utsname::uname().unwrap();
    assert_eq!(report.kernel_release, uname.release().to_str().unwrap());
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert_eq!(report.boot_id, boot_id.trim());
    assert_eq!(report.pid, r.pid);
    assert!(report.visible_processes >= 2, "{report:?}");
    assert!(report.interfaces.contains(&"lo".to_owned()), "{report:?}");
    assert_eq!(result.metrics.len(), 4);
}

#[test]
fn exit_immediately_and_help() {
    let r = run(&["--exit-immediately"], Some(&encoded(Workload::Noop)));
    assert_eq!(r.code, Some(0));
    assert!(
        r.stdout.is_empty() && r.markers.is_empty(),
        "{:?} {:?}",
        r.stdout,
        r.markers
    );

    let r = run(&["--help"], None);
    assert_eq!(r.code, Some(0));
    assert!(r.stdout.contains("usage: isolab-agent"), "{}", r.stdout);
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The agent as PID 1 of new PID, network and mount namespaces, as the container backend starts
/// it: it must mount what is missing, bring `lo` up, report, and end the namespace by reboot(2).
#[test]
fn as_pid1_it_brings_lo_up_reports_and_ends_the_namespace() {
    assert!(
        euid() == 0,
        "this test starts the agent as PID 1 in new namespaces and needs root (CI runs it as root); \
         run `cargo test -p workloads` as root"
    );
    let unshare = [
        "unshare",
        "--pid",
        "--fork",
        "--net",
        "--mount",
        "--mount-proc",
    ];
    for (workload, kind) in [
        (Workload::Inspect, "inspect"),
        (small("net-loopback"), "net-loopback"),
    ] {
        let r = run_under(&unshare, &[], Some(&encoded(workload)));
        // reboot(2) in a PID namespace kills its init with SIGHUP; unshare(1) passes the signal on.
        // Exit 0 is the fallback when the runtime withholds CAP_SYS_BOOT.
        assert!(
            r.signal == Some(libc::SIGHUP) || r.code == Some(0),
            "{kind}: code {:?} signal {:?}, stderr {}",
            r.code,
            r.signal,
            r.stderr
        );
        let result = r.result();
        assert_eq!(result.outcome, Outcome::Ok, "{kind}: {}", r.stderr);
        assert!(result.was_pid1, "{kind}");
        assert_eq!(r.markers, [1, 2, 3, 4], "{kind}");
        if let Some(report) = result.inspect {
            assert_eq!(report.pid, 1);
            assert_eq!(report.visible_processes, 1, "{report:?}");
            assert_eq!(report.interfaces, ["lo"], "{report:?}");
        }
    }
}

/// Reads marker bytes from `r` until `want` arrives (or the pipe ends), with a deadline.
fn markers_until(r: &std::os::fd::OwnedFd, want: u8) -> Vec<u8> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut got = Vec::new();
    let mut buf = [0u8; 16];
    while !got.contains(&want) && std::time::Instant::now() < deadline {
        let mut pfd = libc::pollfd {
            fd: r.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for an fd we own.
        if unsafe { libc::poll(&mut pfd, 1, 100) } <= 0 {
            continue;
        }
        match nix::unistd::read(r, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// The density instance: working set written, result reported, `Waiting` sent, then it stays
/// until told to exit: by SIGTERM, or by the end of its stdin when stdin is a pipe (and not by a
/// stdin of /dev/null, which ends at once).
#[test]
fn wait_reports_ready_and_stays_until_told_to_exit() {
    use workloads::kernels::wait::WaitParams;
    let spec = encoded(Workload::Wait(WaitParams {
        working_set_kib: 8 << 10,
    }));
    for by_stdin in [false, true] {
        let guard = SPAWN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        fcntl(&w, FcntlArg::F_SETFD(FdFlag::empty())).unwrap();
        let mut child = Command::new(agent())
            .env(SPEC_ENV, &spec)
            .env(MARKER_ENV, format!("fd:{}", w.as_raw_fd()))
            .stdin(if by_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(w);
        drop(guard);
        let markers = markers_until(&r, MarkerEvent::Waiting.byte());
        let expected: Vec<u8> = [
            MarkerEvent::AgentStart,
            MarkerEvent::WorkloadStart,
            MarkerEvent::WorkloadEnd,
            MarkerEvent::ResultWritten,
            MarkerEvent::Waiting,
        ]
        .into_iter()
        .map(MarkerEvent::byte)
        .collect();
        assert_eq!(markers, expected, "stdin pipe: {by_stdin}");
        // The working set is resident while it waits.
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        let rss_kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap();
        assert!(rss_kib >= 8 << 10, "RssAnon {rss_kib} KiB");
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(child.try_wait().unwrap().is_none(), "it must keep waiting");
        if by_stdin {
            drop(child.stdin.take());
        } else {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            )
            .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result = parse_framed_result(&String::from_utf8_lossy(&out.stdout)).unwrap();
        assert_eq!(result.workload, "wait");
        let ws = result
            .metrics
            .iter()
            .find(|m| m.name == "working_set")
            .unwrap();
        assert_eq!(ws.value, 8.0);
    }
}
