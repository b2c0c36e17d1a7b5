//! What the HVM tests share: the `vmm-run` example they put into L1, the kernel command-line words
//! that hand the agent its workload (and offer it the virtio console for its result, as the
//! harness does), running a session in L1, the VMM's report as `vmm-run` prints it, and the
//! agent's result from it.
// Each test binary uses its own subset.
#![allow(dead_code)]

pub mod tiny;

use std::path::PathBuf;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use vm_backend::hvm::{HvmMachine, HvmOutput, HvmSession};
use workloads::protocol::{
    encode_spec, parse_framed_result, FrameError, MARKER_PORT, RESULT_CMDLINE_KEY,
    RESULT_VIRTIO_CONSOLE,
};
use workloads::{Workload, WorkloadResult, WorkloadSpec};

/// An example binary built next to this test (`cargo test` builds them).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join("examples").join(name);
    assert!(
        p.is_file(),
        "{} is missing: build it with `cargo build -p vm_backend --example {name}`",
        p.display()
    );
    p
}

/// A binary of the workspace built next to this test's folder (`target/<profile>/NAME`, as
/// `cargo build --workspace --bins` leaves it; `./run-tests` does that first), without its debug
/// information (L1 unpacks everything it gets under emulation), in the test's temp folder.
pub fn workspace_binary_stripped(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} is missing: build the workspace's binaries first (`cargo build --workspace --bins`)",
        p.display()
    );
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-stripped"));
    let ok = std::process::Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out)
        .arg(&p)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        out
    } else {
        p
    }
}

/// The kernel command-line words for the agent: the marker port, the result channel, the disk
/// mode if any, the spec.
pub fn words(workload: Workload, disk: Option<&str>) -> String {
    let spec = WorkloadSpec::new(workload);
    format!(
        "isolab.marker=port:{MARKER_PORT:#x} {RESULT_CMDLINE_KEY}={RESULT_VIRTIO_CONSOLE}{} isolab.spec={}",
        disk.map(|d| format!(" isolab.disk={d}"))
            .unwrap_or_default(),
        encode_spec(&spec).expect("encode")
    )
}

/// The JSON report `vmm-run` printed (`ISOLAB-VMM-REPORT:<len>:<base64url>`), checked for damage
/// on L1's console.
pub fn report(output: &str) -> Option<Value> {
    let line = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("ISOLAB-VMM-REPORT:"))?;
    let (len, b64) = line.split_once(':')?;
    let json = URL_SAFE_NO_PAD.decode(b64.trim()).ok()?;
    assert_eq!(json.len(), len.parse::<usize>().ok()?, "report damaged");
    serde_json::from_slice(&json).ok()
}

/// The agent's result in a `vmm-run` report: from the virtio console, else (a kernel without
/// one) from the serial console.
pub fn agent_result(r: &Value) -> Result<WorkloadResult, FrameError> {
    let channel = r["channel"]["text"].as_str().unwrap_or("");
    parse_framed_result(channel)
        .or_else(|_| parse_framed_result(r["console"].as_str().unwrap_or("")))
}

/// Runs `session` in L1 and saves L1's console as `log_name` in the target's temp folder (for
/// reading after a failure), then checks that kvm-amd loaded and that every command ran, showing
/// the console's tail if not.
pub fn run_session(
    machine: &HvmMachine,
    session: &HvmSession,
    log_name: &str,
    progress: impl Fn(&str),
) -> HvmOutput {
    let mut out = machine.run(session).expect("QEMU ran");
    if let Some(why) = &out.gave_up {
        // A stall of QEMU's emulation (L1 took neither its pending timer interrupt nor an NMI),
        // not of the VMM under test: its state is kept, and the session runs once more.
        let first = log_name.replace(".log", "-stalled.log");
        let _ = std::fs::write(
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&first),
            &out.console,
        );
        progress(&format!(
            "the emulated machine stalled ({why}); its console and state are in {first}; \
             booting it once more"
        ));
        out = machine.run(session).expect("QEMU ran");
    }
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(log_name);
    if std::fs::write(&log, &out.console).is_ok() {
        progress(&format!("L1 console saved to {}", log.display()));
    }
    progress(&format!(
        "L1 session: {:.1} s (emulated), completed={}, kvm={}",
        out.duration.as_secs_f64(),
        out.completed,
        out.kvm_ready
    ));
    for stall in &out.stalls {
        progress(&format!(
            "L1 stalled: {}",
            stall.lines().next().unwrap_or_default()
        ));
    }
    let dump = || {
        let tail: Vec<&str> = out.console.lines().rev().take(80).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    };
    assert!(out.kvm_ready, "kvm-amd did not load in L1:\n{}", dump());
    assert!(
        out.completed,
        "L1 did not finish its commands{}:\n{}",
        out.gave_up
            .as_ref()
            .map_or(String::new(), |why| format!(" (ended early: {why})")),
        dump()
    );
    out
}

/// An empty ext4 image of `mib` MiB made on the host with mkfs.ext4, gzip-compressed (it is mostly
/// zeros) to ship into L1 and unpack there; `name` keeps the files of each test apart.
pub fn ext4_image_gz(name: &str, mib: u64) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let img = dir.join(format!("{name}.img"));
    let _ = std::fs::remove_file(&img);
    let st = std::process::Command::new("mkfs.ext4")
        .args(["-F", "-q"])
        .arg(&img)
        .arg(format!("{mib}M"))
        .status()
        .expect("mkfs.ext4 runs (apt-get install e2fsprogs)");
    assert!(st.success(), "mkfs.ext4 failed");
    let gz = dir.join(format!("{name}.img.gz"));
    let _ = std::fs::remove_file(&gz);
    let st = std::process::Command::new("gzip")
        .args(["-k", "-f"])
        .arg(&img)
        .status()
        .expect("gzip runs");
    assert!(st.success());
    std::fs::read(&gz).expect("read image")
}

/// An ELF vmlinux with one PT_LOAD: `image` loaded at `paddr` and entered there, `memsz` bytes
/// of guest memory (tests that craft kernels, or tiny guests whose code they write).
pub fn elf_kernel(paddr: u64, image: &[u8], memsz: u64) -> Vec<u8> {
    let mut b = vec![0u8; 64 + 56];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[6] = 1;
    b[0x10..0x12].copy_from_slice(&2u16.to_le_bytes());
    b[0x12..0x14].copy_from_slice(&62u16.to_le_bytes());
    b[0x14..0x18].copy_from_slice(&1u32.to_le_bytes());
    b[0x18..0x20].copy_from_slice(&paddr.to_le_bytes());
    b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
    b[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
    b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    b[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
    let p = 64;
    b[p..p + 4].copy_from_slice(&1u32.to_le_bytes());
    b[p + 4..p + 8].copy_from_slice(&7u32.to_le_bytes());
    b[p + 0x8..p + 0x10].copy_from_slice(&120u64.to_le_bytes());
    b[p + 0x10..p + 0x18].copy_from_slice(&paddr.to_le_bytes());
    b[p + 0x18..p + 0x20].copy_from_slice(&paddr.to_le_bytes());
    b[p + 0x20..p + 0x28].copy_from_slice(&(image.len() as u64).to_le_bytes());
    b[p + 0x28..p + 0x30].copy_from_slice(&memsz.to_le_bytes());
    b.extend_from_slice(image);
    b
}
