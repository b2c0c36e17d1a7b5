//! Several vCPUs and KVM's statistics in the HVM test machine (QEMU TCG with AMD-V as L1): with
//! `--vcpus 2` the guest boots, sees two CPUs, runs a cpu workload and io-rand / io-seq on a raw
//! virtio-blk disk; every report has per-vCPU exits, KVM's statistics (whole run and workload
//! window); `--vcpus 1` gives the same statistics; `--vcpus 65` is refused. io-rand at queue
//! depth 32 (Linux AIO in the guest) on 2 vCPUs, on a raw disk and on ext4, reads back and checks
//! every block it wrote (its verify phase), and the raw image's sha256 afterwards is the one the
//! host computes from the offsets io-rand writes. Prints exits per 4 KiB random I/O (at depth 1
//! and 32), per MiB of sequential I/O and interrupts per request.
//!
//! Slow (one emulated L1 session of a few minutes), so `#[ignore]`d; run with
//! `cargo test -p vm_backend --test hvm_smp -- --ignored --nocapture`. Needs the agent built in the
//! same target directory (`cargo build -p workloads --bin isolab-agent`).
//! Times seen here are emulated: correctness and counts only.

mod common;

use std::time::Duration;

use common::{agent_result, example, ext4_image_gz, report, run_session, words};
use serde_json::Value;
use sha2::{Digest, Sha256};
use vm_backend::hvm::{HvmFile, HvmMachine, HvmSession};
use vm_backend::image::initramfs::agent_image;
use vm_backend::kernel::build::{ensure_micro, BuildOptions};
use workloads::kernels::cpu::CpuParams;
use workloads::kernels::io::{IoRandParams, IoSeqParams};
use workloads::Workload;

const IMAGE_MIB: u64 = 16;
const SEQ_MIB: u32 = 8;
const RAND_OPS: u32 = 200;
/// The queue depth of the deep io-rand runs.
const DEPTH: u32 = 32;

/// The sha256 of a zeroed raw image of `IMAGE_MIB` after `params`' writes: each written block
/// holds io-rand's pattern for its offset, whatever order the requests completed in.
fn expected_rand_sha(params: &IoRandParams) -> String {
    let mut image = vec![0u8; (IMAGE_MIB << 20) as usize];
    for off in workloads::kernels::io::rand::write_offsets(params) {
        let o = off as usize;
        workloads::kernels::io::rand::fill_block(off, &mut image[o..o + 4096]);
    }
    format!("{:x}", Sha256::digest(&image))
}

fn progress(msg: &str) {
    eprintln!("[hvm smp] {msg}");
}

fn total(v: &Value) -> u64 {
    v.as_object()
        .map(|o| o.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

#[test]
#[ignore = "boots the emulated HVM test machine (minutes); run with --ignored"]
fn two_vcpus_boot_run_workloads_and_report_kvm_statistics_in_the_hvm_test_machine() {
    let mut say = progress;
    let kernel = ensure_micro(BuildOptions::default(), &mut say).expect("micro kernel");
    let agent = workloads::locate::locate_agent(None).expect("agent binary");
    let agent_cpio = agent_image(std::fs::read(&agent).expect("read agent")).to_bytes();
    let machine = HvmMachine::prepare(&mut say).expect("HVM test machine");
    let files = vec![
        HvmFile::from_host("/hvm/vmm-run", &example("vmm-run"), 0o755).expect("vmm-run"),
        HvmFile::from_host("/hvm/bzImage", &kernel.bz_image, 0o644).expect("bzImage"),
        HvmFile::bytes("/hvm/agent.cpio", agent_cpio, 0o644),
        HvmFile::bytes(
            "/hvm/ext4.img.gz",
            ext4_image_gz("hvm-smp-ext4", IMAGE_MIB),
            0o644,
        ),
    ];
    let run_on = |vcpus: u32, disk: Option<&str>, append: &str| {
        format!(
            "/hvm/vmm-run --kernel /hvm/bzImage --initrd /hvm/agent.cpio --mem 256 --vcpus {vcpus} --timeout-s 300 --quiet{} --append '{append}'",
            disk.map(|d| format!(" --disk {d}")).unwrap_or_default()
        )
    };
    let run = |vcpus: u32, disk: bool, append: &str| {
        run_on(vcpus, disk.then_some("/tmp/raw.img"), append)
    };
    // Small enough for emulation: the point is the counts, not the speed.
    let cpu = Workload::Cpu(CpuParams {
        hash_mib: 4,
        matrix_n: 64,
    });
    let rand = Workload::IoRand(IoRandParams {
        path: "/unused".into(),
        file_mib: SEQ_MIB,
        ops: RAND_OPS,
        ..Default::default()
    });
    let deep_params = IoRandParams {
        path: "/unused".into(),
        file_mib: SEQ_MIB,
        ops: RAND_OPS,
        depth: DEPTH,
        verify: true,
    };
    let deep = Workload::IoRand(deep_params.clone());
    let seq = Workload::IoSeq(IoSeqParams {
        path: "/unused".into(),
        size_mib: SEQ_MIB,
    });
    let commands = vec![
        /* 0 */
        format!("dd if=/dev/zero of=/tmp/raw.img bs=1M count={IMAGE_MIB} 2>&1"),
        /* 1 */ run(2, false, &words(Workload::Inspect, None)),
        /* 2 */ run(2, false, &words(cpu, None)),
        /* 3 */ run(2, true, &words(rand.clone(), Some("raw"))),
        /* 4 */ run(2, true, &words(seq.clone(), Some("raw"))),
        /* 5 */ run(1, true, &words(rand, Some("raw"))),
        /* 6 */ run(1, true, &words(seq, Some("raw"))),
        /* 7 */ run(65, false, &words(Workload::Noop, None)),
        /* 8 */
        format!("dd if=/dev/zero of=/tmp/deep.img bs=1M count={IMAGE_MIB} 2>&1 && gunzip -c /hvm/ext4.img.gz > /tmp/ext4.img"),
        /* 9 */ run_on(2, Some("/tmp/deep.img"), &words(deep.clone(), Some("raw"))),
        /* 10 */ "sha256sum /tmp/deep.img".to_owned(),
        /* 11 */ run_on(2, Some("/tmp/ext4.img"), &words(deep, Some("ext4"))),
    ];
    let session = HvmSession {
        files,
        commands,
        timeout: Duration::from_secs(1200),
        ..HvmSession::default()
    };
    let out = run_session(&machine, &session, "hvm-smp-l1-console.log", progress);
    assert_eq!(
        out.commands[0].status,
        Some(0),
        "{}",
        out.commands[0].output
    );

    let mut failures = Vec::new();
    let mut kvm_names = Vec::new();
    for (i, name, vcpus) in [
        (1usize, "inspect, 2 vCPUs", 2u64),
        (2, "cpu, 2 vCPUs", 2),
        (3, "io-rand raw, 2 vCPUs", 2),
        (4, "io-seq raw, 2 vCPUs", 2),
        (5, "io-rand raw, 1 vCPU", 1),
        (6, "io-seq raw, 1 vCPU", 1),
        (9, "io-rand depth 32 raw, 2 vCPUs", 2),
        (11, "io-rand depth 32 ext4, 2 vCPUs", 2),
    ] {
        let c = &out.commands[i];
        let Some(r) = report(&c.output) else {
            failures.push(format!("{name}: no report:\n{}", c.output));
            continue;
        };
        let console = r["console"].as_str().unwrap_or("");
        let result = match agent_result(&r) {
            Ok(res) => res,
            Err(e) => {
                failures.push(format!("{name}: {e}\n{console}"));
                continue;
            }
        };
        if result.outcome != workloads::result::Outcome::Ok {
            failures.push(format!("{name}: {:?}", result.outcome));
        }
        if r["stop_kind"] != "guest_reset" || r["after_teardown"]["threads"] != 1 {
            failures.push(format!(
                "{name}: stop {} threads after teardown {} (all vCPU threads must be gone)",
                r["stop"], r["after_teardown"]["threads"]
            ));
        }
        if r["vcpus"].as_u64() != Some(vcpus) {
            failures.push(format!("{name}: report says {} vCPUs", r["vcpus"]));
        }
        let per_vcpu = r["exits_per_vcpu"].as_array().cloned().unwrap_or_default();
        if per_vcpu.len() as u64 != vcpus || per_vcpu.iter().any(|e| total(e) == 0) {
            failures.push(format!(
                "{name}: per-vCPU exits {per_vcpu:?} (every vCPU must have run)"
            ));
        }
        let kvm = &r["kvm_stats"];
        let kvm_per_vcpu = r["kvm_stats_per_vcpu"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let kvm_window = &r["kvm_stats_workload"];
        let kvm_n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
        if kvm_n(kvm, "exits") == 0
            || kvm_per_vcpu.len() as u64 != vcpus
            || kvm_per_vcpu.iter().any(|v| kvm_n(v, "exits") == 0)
        {
            failures.push(format!(
                "{name}: KVM statistics missing: {kvm} per vCPU {kvm_per_vcpu:?} unavailable {}",
                r["kvm_stats_unavailable"]
            ));
        }
        if kvm_n(kvm_window, "exits") == 0 || !r["exits_workload"].is_object() {
            failures.push(format!(
                "{name}: no workload-window statistics: {kvm_window} / {}",
                r["exits_workload"]
            ));
        }
        if kvm_names.is_empty() {
            kvm_names = kvm
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
        }
        let window_exits = kvm_n(kvm_window, "exits");
        let disk = &r["disk"];
        let d = |k: &str| disk[k].as_u64().unwrap_or(0);
        let per = |n: u64, ops: f64| n as f64 / ops.max(1.0);
        let figure = if name.starts_with("io-rand") {
            // The timed reads and writes: the read and write phases (the verify phase of the
            // deep runs is not counted).
            let phase = |byte: u64| {
                r["workload_phases"]
                    .as_array()
                    .and_then(|a| a.iter().find(|p| p["byte"].as_u64() == Some(byte)))
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            let (rd, wr) = (phase(17), phase(18));
            let ops = 2.0 * f64::from(RAND_OPS);
            let userspace = total(&rd["exits"]) + total(&wr["exits"]);
            let requests = rd["disk"]["requests"].as_u64().unwrap_or(0)
                + wr["disk"]["requests"].as_u64().unwrap_or(0);
            let kvm_rw = kvm_n(&rd["kvm_stats"], "exits") + kvm_n(&wr["kvm_stats"], "exits");
            format!(
                "KVM exits per 4 KiB random I/O (reads and writes) {:.1}, userspace exits per 4 KiB I/O {:.2}, per disk request {:.2} ({requests} requests), irq injections per 4 KiB I/O {:.1}",
                per(kvm_rw, ops),
                per(userspace, ops),
                per(userspace, requests as f64),
                per(kvm_n(kvm_window, "irq_injections"), ops),
            )
        } else if name.starts_with("io-seq") {
            let mib = 2.0 * f64::from(SEQ_MIB);
            format!(
                "KVM exits per MiB of sequential I/O (written then read) {:.1}, userspace exits per MiB {:.2}",
                per(window_exits, mib),
                per(total(&r["exits_workload"]), mib),
            )
        } else {
            format!(
                "KVM exits in the workload {window_exits}, per s (emulated) {:.0}",
                window_exits as f64 * 1e9 / r["workload_window_ns"].as_f64().unwrap_or(1.0)
            )
        };
        let disk_figure = if disk.is_object() {
            format!(
                "; disk requests {} (reads {}, writes {}), interrupts {} = {:.2}/request, notifies {} = {:.2}/request",
                d("requests"),
                d("reads"),
                d("writes"),
                d("interrupts"),
                per(d("interrupts"), d("requests") as f64),
                d("notifies"),
                per(d("notifies"), d("requests") as f64),
            )
        } else {
            String::new()
        };
        progress(&format!(
            "{name}: {figure}{disk_figure}; KVM window: exits {} io_exits {} mmio_exits {} halt_exits {} irq_exits {} irq_injections {} signal_exits {} insn_emulation {}; userspace window exits {}; per-vCPU userspace exits {:?}",
            window_exits,
            kvm_n(kvm_window, "io_exits"),
            kvm_n(kvm_window, "mmio_exits"),
            kvm_n(kvm_window, "halt_exits"),
            kvm_n(kvm_window, "irq_exits"),
            kvm_n(kvm_window, "irq_injections"),
            kvm_n(kvm_window, "signal_exits"),
            kvm_n(kvm_window, "insn_emulation"),
            r["exits_workload"],
            per_vcpu.iter().map(total).collect::<Vec<_>>(),
        ));
        if i == 1 {
            match result.inspect {
                Some(inspect) if inspect.cpus == 2 => {}
                other => failures.push(format!("inspect with 2 vCPUs saw {other:?}")),
            }
        }
        if disk.is_object() && (d("io_errors") != 0 || !disk["broken"].is_null()) {
            failures.push(format!("{name}: disk errors {disk}"));
        }
    }
    progress(&format!("KVM statistics offered: {}", kvm_names.join(" ")));

    // The raw image after io-rand at depth 32: exactly the blocks it wrote, with their pattern.
    let sha = out.commands[10]
        .output
        .split_whitespace()
        .next()
        .unwrap_or("");
    let want = expected_rand_sha(&deep_params);
    progress(&format!(
        "raw image after io-rand at depth {DEPTH}: sha256 {sha}, expected {want}"
    ));
    if sha != want {
        failures.push(format!(
            "the raw image after io-rand at depth {DEPTH} holds other bytes than it wrote: {sha} != {want}"
        ));
    }

    // 65 vCPUs: refused before KVM, with the limits in the message.
    let c = &out.commands[7];
    if c.status != Some(2) || !c.output.contains("1 to 64") {
        failures.push(format!("--vcpus 65 not refused clearly: {}", c.output));
    }

    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
