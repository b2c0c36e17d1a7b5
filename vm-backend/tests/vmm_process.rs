//! The VMM in its own process (`isolab-vmm`), with tiny hand-made guests on this host's
//! /dev/kvm (PVM runs them as hardware KVM does): a VM from start request to report under the
//! seccomp filters; a VM that holds until the host stops it, measured from outside meanwhile; a
//! device thread that makes a forbidden system call (the process dies of SIGSYS and the host
//! learns which thread made which call, and goes on); a jailed VMM that describes what it sees
//! from inside; a VMM whose starting thread ends (it dies with it); a VMM that gives no report
//! (killed at the host's deadline).
//!
//! Needs /dev/kvm and root (namespaces, mounts, setuid): without them the tests fail with a
//! message (CI must have them).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::tiny::{tiny_elf, Code, MARKER_PORT};
use vm_backend::process::client::{self, Exit, Placement, Spawn, VmmFailure, VmmProcess};
use vm_backend::process::protocol::{JailConfig, StartRequest, VmmMessage};
use vm_backend::process::server::monotonic_ns;
use vm_backend::seccomp::SeccompMode;
use vm_backend::vmm::{DiskConfig, Fault, StopReason, VmConfig};

const VMM: &str = env!("CARGO_BIN_EXE_isolab-vmm");

fn need_kvm_and_root() {
    assert!(
        Path::new("/dev/kvm").exists(),
        "these tests need /dev/kvm (hardware KVM or PVM)"
    );
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "these tests need root (namespaces, mounts, a uid change)"
    );
}

fn temp_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("vmm-process-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A guest that writes markers 1 and 2, then resets (Linux's `reboot=k`).
fn resetting() -> Vec<u8> {
    Code::default()
        .out8(MARKER_PORT, 1)
        .out8(MARKER_PORT, 2)
        .out8(0x64, 0xfe)
        .spin()
        .0
}

/// A guest that writes marker 1 and spins for ever.
fn spinning() -> Vec<u8> {
    Code::default().out8(MARKER_PORT, 1).spin().0
}

fn config(dir: &Path, code: &[u8], timeout: Duration) -> VmConfig {
    let kernel = dir.join("vmlinux");
    std::fs::write(&kernel, tiny_elf(code)).expect("kernel");
    let mut c = VmConfig::new(&kernel, 64);
    c.timeout = timeout;
    c
}

fn with_disk(mut c: VmConfig, dir: &Path) -> VmConfig {
    let img = dir.join("disk.img");
    std::fs::write(&img, vec![0u8; 1 << 20]).expect("disk image");
    c.disk = Some(DiskConfig {
        path: img,
        read_only: false,
    });
    c
}

fn request(config: VmConfig, seccomp: SeccompMode) -> StartRequest {
    StartRequest {
        config,
        origin_mono_ns: monotonic_ns(),
        seccomp,
        jail: None,
        hold: false,
        probe_jail: false,
    }
}

fn spawn(namespaces: bool) -> Spawn<'static> {
    Spawn {
        binary: PathBuf::from(VMM),
        namespaces,
        placement: Placement::default(),
        live_stderr: false,
    }
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            state != Some("Z")
        })
        .unwrap_or(false)
}

#[test]
fn a_vm_runs_in_its_own_process_under_its_filters_and_reports_back() {
    need_kvm_and_root();
    let dir = temp_dir("plain");
    let req = request(
        with_disk(config(&dir, &resetting(), Duration::from_secs(20)), &dir),
        SeccompMode::On,
    );
    let run = client::run(&spawn(false), &req, Duration::from_secs(60), &|| false);
    let report = run
        .report
        .unwrap_or_else(|| panic!("{:?}\nstderr:\n{}", run.failure, run.stderr));
    assert_eq!(report.stop, StopReason::GuestReset, "{}", run.stderr);
    assert_eq!(run.exit.map(|e| e.0), Some(Exit::Code(0)));
    assert!(
        report.teardown_problems.is_empty(),
        "{:?}",
        report.teardown_problems
    );
    let bytes: Vec<u8> = report.markers.iter().map(|m| m.byte).collect();
    assert_eq!(bytes, [1, 2]);
    // The process's own start is on the host's clock, before the VM's points.
    let (started, read) = run.ready.expect("ready");
    let spawned = run.spawned_ns.expect("spawned");
    let created = report.at("vm_created").expect("vm_created");
    assert!(
        spawned <= started && started <= read && read <= created,
        "{spawned} {started} {read} {created}"
    );
    assert!(report.at("first_kvm_run").is_some());
    assert!(run.reaped_ns.expect("reaped") >= report.at("torn_down").expect("torn down"));
    let (_, guest_ram) = run.running.expect("running");
    assert_eq!(guest_ram.iter().map(|r| r.1).sum::<u64>(), 64 << 20);
    // Its memory: guest RAM apart from the VMM's own, by PSS, measured in the VMM process.
    let mem = report.memory.expect("memory");
    assert!(mem.guest_ram_pss > 0 && mem.other_pss > 0, "{mem:?}");
    assert!(mem.other_pss < 64 << 20, "{mem:?}");
    // Not this process: its pid is another.
    assert_ne!(run.inner_pid, Some(std::process::id() as i32));
    assert!(run.exit.expect("exit").1.user_us + run.exit.expect("exit").1.sys_us > 0);
}

#[test]
fn a_held_vm_runs_until_the_host_stops_it_and_is_measured_from_outside() {
    need_kvm_and_root();
    let dir = temp_dir("hold");
    let mut req = request(
        config(&dir, &spinning(), Duration::from_secs(1)),
        SeccompMode::On,
    );
    req.hold = true;
    let mut p = VmmProcess::spawn(&spawn(false)).expect("spawn");
    p.start(&req).expect("start");
    let deadline = Some(Instant::now() + Duration::from_secs(30));
    let mut guest_ram = None;
    let mut marked = false;
    // The guest's marker comes as it is written (the vCPU may write it before the main thread
    // says the VM runs); the VM outlives its (ignored) 1 s timeout.
    while guest_ram.is_none() || !marked {
        match p.next(deadline).expect("a message") {
            Some(VmmMessage::Running { guest_ram: r, .. }) => guest_ram = Some(r),
            Some(VmmMessage::Marker(m)) if m.byte == 1 => marked = true,
            Some(VmmMessage::Report(r)) => panic!("stopped by itself: {:?}", r.stop),
            Some(_) => {}
            None => panic!("ended: {}", p.stderr()),
        }
    }
    std::thread::sleep(Duration::from_millis(1500));
    let ranges = guest_ram.expect("guest RAM reported");
    let mem = vm_backend::vstate::memory::measure_pid(p.pid(), &ranges).expect("smaps");
    assert!(mem.guest_ram_pss > 0 && mem.other_pss > 0, "{mem:?}");
    p.stop();
    let report = loop {
        match p.next(deadline).expect("a message") {
            Some(VmmMessage::Report(r)) => break r,
            Some(_) => {}
            None => panic!("ended without a report: {}", p.stderr()),
        }
    };
    assert_eq!(report.stop, StopReason::HostRequest);
    assert_eq!(
        p.wait(Instant::now() + Duration::from_secs(10)).0,
        Exit::Code(0)
    );
}

#[test]
fn a_forbidden_system_call_kills_the_vmm_with_sigsys_and_names_the_thread_and_call() {
    need_kvm_and_root();
    let dir = temp_dir("sigsys");
    let mut c = with_disk(config(&dir, &resetting(), Duration::from_secs(20)), &dir);
    c.fault = Some(Fault::ForbiddenSyscall);
    let run = client::run(
        &spawn(false),
        &request(c.clone(), SeccompMode::On),
        Duration::from_secs(60),
        &|| false,
    );
    assert!(run.report.is_none(), "the VM ran: the call was not refused");
    assert_eq!(
        run.exit.map(|e| e.0),
        Some(Exit::Signal(libc::SIGSYS)),
        "{}",
        run.stderr
    );
    match &run.failure {
        Some(VmmFailure::Seccomp(call)) => {
            assert_eq!(call.thread, "virtio-blk");
            assert_eq!(call.name.as_deref(), Some("socket"));
            assert_eq!(call.syscall, libc::SYS_socket);
        }
        other => panic!("{other:?}\n{}", run.stderr),
    }
    let text = run.failure.expect("failure").to_string();
    assert!(
        text.contains("SIGSYS")
            && text.contains("virtio-blk device thread")
            && text.contains("socket"),
        "{text}"
    );
    // Without the filter the same device thread opens its socket and the VM runs: the refusal
    // above is the filter's doing. In log mode the call is let through too (and logged by the
    // kernel's audit, when it is on).
    for mode in [SeccompMode::Off, SeccompMode::Log] {
        let run = client::run(
            &spawn(false),
            &request(c.clone(), mode),
            Duration::from_secs(60),
            &|| false,
        );
        assert_eq!(
            run.report.map(|r| r.stop),
            Some(StopReason::GuestReset),
            "{mode:?}: {:?} {}",
            run.failure,
            run.stderr
        );
    }
}

#[test]
fn a_jailed_vmm_sees_only_its_jail_as_an_unprivileged_user() {
    need_kvm_and_root();
    let dir = temp_dir("jail");
    let c = with_disk(config(&dir, &resetting(), Duration::from_secs(20)), &dir);
    let root = dir.join("jail");
    std::fs::create_dir(&root).expect("jail folder");
    let mut req = request(c, SeccompMode::On);
    req.jail = Some(JailConfig {
        root: root.clone(),
        uid: 123_456,
        gid: 123_457,
    });
    req.probe_jail = true;
    let run = client::run(&spawn(true), &req, Duration::from_secs(60), &|| false);
    let report = run
        .report
        .unwrap_or_else(|| panic!("{:?}\nstderr:\n{}", run.failure, run.stderr));
    assert_eq!(report.stop, StopReason::GuestReset);
    assert!(report.at("jail_entered").is_some() && report.at("privileges_dropped").is_some());
    let probe = run.jail_probe.expect("the probe");
    // Its whole world: the kernel and the disk image, nothing else.
    assert_eq!(probe.root, ["f /disk.img", "f /kernel"], "{probe:?}");
    assert_eq!(
        (probe.pid, probe.ppid),
        (1, 0),
        "init of its own PID namespace"
    );
    assert_eq!(probe.uids, [123_456; 3]);
    assert_eq!(probe.gids, [123_457; 3]);
    assert!(probe.groups.is_empty());
    assert_eq!(probe.caps, [0, 0, 0], "no capability");
    assert_eq!((probe.cap_bounding, probe.cap_ambient), (0, 0));
    assert!(probe.no_new_privs);
    assert!(
        probe.interfaces.iter().all(|i| i == "lo"),
        "only its own namespace's loopback: {:?}",
        probe.interfaces
    );
    for path in [
        "/dev/kvm",
        "/proc/self/status",
        "/etc/passwd",
        "/sys/kernel",
    ] {
        assert!(
            probe.refused.iter().any(|(p, _)| p == path),
            "{path} was reachable: {probe:?}"
        );
    }
    for (ns, id) in &probe.namespaces {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        match ns.as_str() {
            "mnt" | "pid" | "net" => assert_ne!(&host, id, "{ns} is the host's"),
            _ => {}
        }
    }
    assert!(probe.namespaces.iter().any(|(n, _)| n == "net"));
    // On the host the jail holds two empty files (the mount points), nothing mounted.
    let mut left: Vec<_> = std::fs::read_dir(&root)
        .expect("jail")
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().map(|m| m.len()).unwrap_or(1),
            )
        })
        .collect();
    left.sort();
    assert_eq!(left, [("disk.img".to_owned(), 0), ("kernel".to_owned(), 0)]);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(&root.display().to_string()),
        "a jail mount leaked to the host"
    );
}

#[test]
fn a_vmm_dies_with_the_thread_that_started_it_and_one_without_a_report_is_killed() {
    need_kvm_and_root();
    let dir = temp_dir("death");
    // Started from a thread that then ends, without stopping it: the parent-death signal.
    let mut req = request(
        config(&dir, &spinning(), Duration::from_secs(60)),
        SeccompMode::On,
    );
    req.hold = true;
    let pid = std::thread::spawn(move || {
        let p = VmmProcess::spawn(&spawn(true)).expect("spawn");
        p.start(&req).expect("start");
        let pid = p.pid();
        // Wait until it runs, then leave it behind.
        let deadline = Some(Instant::now() + Duration::from_secs(30));
        while !matches!(p.next(deadline), Ok(Some(VmmMessage::Running { .. }))) {}
        std::mem::forget(p);
        pid
    })
    .join()
    .expect("thread");
    // It must end by itself, at once: reaped within 10 s, or killed here and the test fails.
    let mut status = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    let reaped = loop {
        // SAFETY: reaping our own child, without blocking.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break true;
        }
        if Instant::now() >= deadline {
            // SAFETY: killing and reaping our own child that outlived its starter.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        reaped,
        "the VMM process outlived the thread that started it"
    );
    assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
    assert!(!alive(pid));

    // A VM whose own timeout is past the host's deadline: killed at the deadline, reported so.
    let start = Instant::now();
    let run = client::run(
        &spawn(false),
        &request(
            config(&dir, &spinning(), Duration::from_secs(600)),
            SeccompMode::On,
        ),
        Duration::from_secs(2),
        &|| false,
    );
    assert_eq!(
        run.failure,
        Some(VmmFailure::TimedOut(Duration::from_secs(2)))
    );
    assert_eq!(run.exit.map(|e| e.0), Some(Exit::Signal(libc::SIGKILL)));
    assert!(start.elapsed() < Duration::from_secs(10));
}
