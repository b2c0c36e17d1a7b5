//! The VMM's thread lifetimes and error paths, with tiny hand-made guests on this host's
//! /dev/kvm (these few instructions run under PVM as well as on hardware KVM; no Linux guest is
//! needed): each start-up stage failing in turn (vCPU thread spawn, device thread spawn,
//! KVM_RUN), an exit the VMM does not expect, a disk that blocks 10 s per request and a hung
//! guest. After each run the process has exactly the threads it had before, and the report (or
//! the error) says what happened.
//!
//! One test function runs every case in turn, so that no other test's threads move the count.
//! Needs /dev/kvm: without it the test fails with a message (CI must have it).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::tiny::{tiny_elf, Code, BLOCK_MMIO, ENTRY, MARKER_PORT, QUEUE};
use vm_backend::vmm::{run, DiskConfig, Fault, StopReason, VmConfig, VmReport, STOP_GRACE};
use vm_backend::VmError;

/// Writes a marker, then resets through the i8042 (what Linux's `reboot=k` does).
fn resetting_guest() -> Vec<u8> {
    Code::default()
        .out8(MARKER_PORT, 1)
        .out8(0x64, 0xfe)
        .spin()
        .0
}

/// Spins for ever after its marker.
fn spinning_guest() -> Vec<u8> {
    Code::default().out8(MARKER_PORT, 1).spin().0
}

/// Sets up the virtio-blk device the way a driver does (status, features with VERSION_1, one
/// queue of 16 at [`QUEUE`], DRIVER_OK) with one read request already in the avail ring: the
/// device thread takes it at activation. With `reset`, the guest then waits a moment (2^30 TSC
/// cycles, for the device thread to take the request), resets the device (Status = 0) while
/// the request is in progress, writes marker 2, then spins.
fn disk_guest(reset: bool) -> Vec<u8> {
    let desc = QUEUE;
    let avail = QUEUE + 0x100;
    let used = QUEUE + 0x200;
    let hdr = QUEUE + 0x400;
    let data = QUEUE + 0x3000;
    let status = QUEUE + 0x500;
    let pd = ENTRY + 0x2000;
    let code = Code::default()
        .out8(MARKER_PORT, 1)
        .map_mmio_hole(pd)
        .base(BLOCK_MMIO)
        .mmio_write(0x70, 1)
        .mmio_write(0x70, 3)
        .mmio_write(0x24, 1) // DriverFeaturesSel = 1
        .mmio_write(0x20, 1) // VIRTIO_F_VERSION_1
        .mmio_write(0x70, 11)
        .mmio_write(0x30, 0)
        .mmio_write(0x38, 16)
        .mmio_write(0x80, desc as u32)
        .mmio_write(0x84, 0)
        .mmio_write(0x90, avail as u32)
        .mmio_write(0x94, 0)
        .mmio_write(0xa0, used as u32)
        .mmio_write(0xa4, 0)
        .mmio_write(0x44, 1)
        .mmio_write(0x70, 15);
    let code = if reset {
        code.delay(1 << 30)
            .base(BLOCK_MMIO)
            .mmio_write(0x70, 0)
            .out8(MARKER_PORT, 2)
    } else {
        code
    }
    .spin()
    .0;
    let mut image = vec![0u8; 0x3000];
    assert!(code.len() < 0x1000);
    image[..code.len()].copy_from_slice(&code);
    let put = |image: &mut Vec<u8>, at: u64, bytes: &[u8]| {
        let o = (at - ENTRY) as usize;
        image[o..o + bytes.len()].copy_from_slice(bytes);
    };
    let d = |addr: u64, len: u32, flags: u16, next: u16| {
        let mut v = addr.to_le_bytes().to_vec();
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(&flags.to_le_bytes());
        v.extend_from_slice(&next.to_le_bytes());
        v
    };
    put(&mut image, desc, &d(hdr, 16, 1, 1));
    put(&mut image, desc + 16, &d(data, 512, 3, 2));
    put(&mut image, desc + 32, &d(status, 1, 2, 0));
    // avail: flags 0, idx 1, ring[0] = 0.
    put(&mut image, avail, &[0, 0, 1, 0, 0, 0]);
    // header: IN, sector 0.
    put(&mut image, hdr, &[0; 16]);
    put(&mut image, status, &[0xff]);
    // A 2 MiB page for the device's register block (entry 128 of the directory for 3-4 GiB).
    let entry = (BLOCK_MMIO & !0x1f_ffff) | 0x83;
    put(
        &mut image,
        pd + 8 * ((BLOCK_MMIO - 0xc000_0000) >> 21),
        &entry.to_le_bytes(),
    );
    image
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

fn temp(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("isolab-lifecycle-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).expect("write temp file");
    p
}

fn config(kernel: &Path, vcpus: u8, timeout: Duration) -> VmConfig {
    let mut c = VmConfig::new(kernel, 64);
    c.vcpus = vcpus;
    c.timeout = timeout;
    c
}

/// Runs `config`, checks that no thread is left, and returns what `run` returned with how long
/// it took.
fn run_counted(what: &str, config: &VmConfig) -> (Result<VmReport, VmError>, Duration) {
    let before = threads();
    let start = Instant::now();
    let out = run(config, Instant::now());
    let took = start.elapsed();
    let after = threads();
    eprintln!(
        "[lifecycle] {what}: {:.2} s, threads {before} -> {after}: {}",
        took.as_secs_f64(),
        match &out {
            Ok(r) => format!("report, stop: {}", r.stop),
            Err(e) => format!("error: {e}"),
        }
    );
    assert_eq!(after, before, "{what}: threads left behind");
    (out, took)
}

#[test]
fn every_thread_is_joined_and_every_failure_named_on_every_path() {
    assert!(
        Path::new("/dev/kvm").exists(),
        "/dev/kvm is missing: this test needs KVM (hardware KVM or PVM)"
    );
    let resetting = temp("reset", &tiny_elf(&resetting_guest()));
    let spinning = temp("spin", &tiny_elf(&spinning_guest()));
    let disk_kernel = temp("disk", &tiny_elf(&disk_guest(false)));
    let resetting_disk_kernel = temp("disk-reset", &tiny_elf(&disk_guest(true)));
    let image = temp("disk.img", &vec![0x5a; 64 << 10]);

    // The plain case first: the guest resets, one report, nothing left.
    let (out, _) = run_counted("reset", &config(&resetting, 1, Duration::from_secs(30)));
    let r = out.expect("report");
    assert_eq!(r.stop, StopReason::GuestReset);
    assert_eq!(r.markers.len(), 1);
    assert!(r.teardown_problems.is_empty(), "{:?}", r.teardown_problems);

    // vCPU 1's thread cannot be spawned while vCPU 0 already runs: vCPU 0 is stopped and joined.
    let mut c = config(&spinning, 2, Duration::from_secs(30));
    c.fault = Some(Fault::SpawnVcpu(1));
    let (out, took) = run_counted("vCPU 1 spawn fails", &c);
    let e = out.expect_err("spawn failure is an error");
    assert!(
        matches!(e, VmError::VcpuThread(_)) && e.to_string().contains("vCPU 1"),
        "{e}"
    );
    assert!(took < STOP_GRACE, "{took:?}");

    // The device thread cannot be spawned.
    let mut c = config(&resetting, 1, Duration::from_secs(30));
    c.disk = Some(DiskConfig {
        path: image.clone(),
        read_only: false,
    });
    c.fault = Some(Fault::SpawnDeviceThread);
    let (out, _) = run_counted("device thread spawn fails", &c);
    let e = out.expect_err("spawn failure is an error");
    assert!(e.to_string().contains("device thread"), "{e}");

    // KVM_RUN fails on vCPU 1 of 2 (vCPU 0 spins): a report naming it.
    let mut c = config(&spinning, 2, Duration::from_secs(30));
    c.fault = Some(Fault::KvmRun(1));
    let (out, took) = run_counted("KVM_RUN fails on vCPU 1", &c);
    let r = out.expect("a report");
    match &r.stop {
        StopReason::VmmError(m) => assert!(m.contains("KVM_RUN failed on vCPU 1"), "{m}"),
        other => panic!("{other}"),
    }
    assert!(took < Duration::from_secs(10), "{took:?}");

    // An exit the VMM never asks for stops the VM with its name.
    let mut c = config(&resetting, 1, Duration::from_secs(30));
    c.fault = Some(Fault::SingleStep);
    let (out, _) = run_counted("single-step exit", &c);
    match out {
        Ok(r) => match &r.stop {
            StopReason::UnexpectedExit(m) => {
                assert!(m.contains("KVM_EXIT_DEBUG") && m.contains("rip"), "{m}")
            }
            other => panic!("{other}"),
        },
        // A KVM without guest debugging refuses to set it up: that too is named, and the
        // thread count above still held.
        Err(e) => assert!(e.to_string().contains("single-stepping"), "{e}"),
    }

    // A hung guest is stopped at its timeout, with where each vCPU was.
    let (out, took) = run_counted(
        "hung guest",
        &config(&spinning, 2, Duration::from_millis(500)),
    );
    let r = out.expect("report");
    assert_eq!(r.stop, StopReason::Timeout(Duration::from_millis(500)));
    assert_eq!(r.vcpu_states.len(), 2, "{:?}", r.vcpu_states);
    assert!(took < Duration::from_millis(500) + STOP_GRACE, "{took:?}");

    // A disk that blocks 10 s per request while the guest resets the device (a vCPU writing
    // the status register must not wait for the device thread): the VMM stops at its timeout
    // and hands back its report within the grace period, the request given up, every thread
    // joined.
    // 3 s: time for the guest's delay and reset even on a busy host, and still well inside
    // the request's 10 s (with a vCPU waiting for the request, the stop would miss the grace
    // period by 2 s).
    let slow_timeout = Duration::from_secs(3);
    let mut c = config(&resetting_disk_kernel, 1, slow_timeout);
    c.disk = Some(DiskConfig {
        path: image.clone(),
        read_only: false,
    });
    c.fault = Some(Fault::SlowDisk(Duration::from_secs(10)));
    let (out, took) = run_counted("disk blocking 10 s per request", &c);
    let r = out.expect("report");
    assert_eq!(r.stop, StopReason::Timeout(slow_timeout));
    let disk = r.disk.as_ref().expect("disk report");
    assert_eq!(
        (disk.stats.requests, disk.stats.abandoned),
        (1, 1),
        "{disk:?}"
    );
    assert!(
        !disk.thread_left_running && r.teardown_problems.is_empty(),
        "{:?}",
        r.teardown_problems
    );
    // The guest got past its reset write (marker 2) while the request was blocked.
    assert_eq!(
        r.markers.iter().map(|m| m.byte).collect::<Vec<_>>(),
        [1, 2],
        "{:?}",
        r.markers
    );
    assert!(took < slow_timeout + STOP_GRACE, "{took:?}");
    let stop = r.at("stop_requested").expect("stop");
    let down = r.at("torn_down").expect("torn down");
    eprintln!(
        "[lifecycle] slow disk: stop to torn down {:.3} s",
        (down - stop) as f64 / 1e9
    );

    // And the same guest with an ordinary disk: its request is served.
    let mut c = config(&disk_kernel, 1, Duration::from_secs(1));
    c.disk = Some(DiskConfig {
        path: image.clone(),
        read_only: false,
    });
    let (out, _) = run_counted("disk", &c);
    let r = out.expect("report");
    let disk = r.disk.as_ref().expect("disk report");
    assert_eq!((disk.stats.requests, disk.stats.reads), (1, 1), "{disk:?}");

    for p in [
        resetting,
        spinning,
        disk_kernel,
        resetting_disk_kernel,
        image,
    ] {
        let _ = std::fs::remove_file(p);
    }
}
