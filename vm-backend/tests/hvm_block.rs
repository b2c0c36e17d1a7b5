//! The virtio-blk disk in the HVM test machine (QEMU TCG with AMD-V as L1): io-seq, io-rand and
//! io-fsync on the raw device and on ext4; the pattern io-seq writes and flushes is on the
//! host-side image byte for byte afterwards; a read-only image gives the guest errors and the
//! VMM a clean exit. Prints exits, notifications and interrupts per request.
//!
//! The same L1 session also kills `isolab run --backend vm --vm-jail` with `kill -9` while a
//! VMM process runs: that VMM process dies with isolab (its parent-death signal), and
//! `isolab doctor --clean` then leaves no run folder, state folder (with its jail), cgroup or
//! registry entry. (Needs the workspace's binaries built: `cargo build --workspace --bins`.)
//!
//! Slow (one emulated L1 session of several minutes), so `#[ignore]`d; run with
//! `cargo test -p vm_backend --test hvm_block -- --ignored --nocapture`. Needs the agent built in
//! the same target directory (`cargo build -p workloads --bin isolab-agent`) and `mkfs.ext4`
//! (e2fsprogs) on the host: the ext4 image is made on the host, the raw one in L1.
//! Times seen here are emulated: correctness and counts only.

mod common;

use std::time::Duration;

use common::{
    agent_result, example, ext4_image_gz, report, run_session, words, workspace_binary_stripped,
};
use sha2::{Digest, Sha256};
use vm_backend::hvm::{HvmFile, HvmMachine, HvmSession};
use vm_backend::image::initramfs::agent_image;
use vm_backend::kernel::build::{ensure_micro, BuildOptions};
use workloads::kernels::io::{IoFsyncParams, IoRandParams, IoSeqParams};
use workloads::protocol::{encode_spec, MARKER_PORT};
use workloads::{Workload, WorkloadSpec};

const IMAGE_MIB: u64 = 32;
const SEQ_MIB: u32 = 8;
const RAND_OPS: u32 = 200;
const FSYNC_OPS: u32 = 40;

fn progress(msg: &str) {
    eprintln!("[hvm block] {msg}");
}

fn seq() -> Workload {
    Workload::IoSeq(IoSeqParams {
        path: "/unused".into(),
        size_mib: SEQ_MIB,
    })
}

fn rand() -> Workload {
    Workload::IoRand(IoRandParams {
        path: "/unused".into(),
        file_mib: SEQ_MIB,
        ops: RAND_OPS,
        ..Default::default()
    })
}

fn fsync(ops: u32) -> Workload {
    Workload::IoFsync(IoFsyncParams {
        path: "/unused".into(),
        ops,
    })
}

/// The bytes io-seq leaves on a raw device: its 1 MiB buffer, byte i = (i as u8) | 1, written
/// `SEQ_MIB` times from offset 0.
fn expected_seq_sha() -> String {
    let block: Vec<u8> = (0..1usize << 20).map(|i| (i as u8) | 1).collect();
    let mut h = Sha256::new();
    for _ in 0..SEQ_MIB {
        h.update(&block);
    }
    format!("{:x}", h.finalize())
}

#[test]
#[ignore = "boots the emulated HVM test machine (minutes); run with --ignored"]
fn virtio_blk_serves_io_workloads_in_the_hvm_test_machine() {
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
            ext4_image_gz("hvm-block-ext4", IMAGE_MIB),
            0o644,
        ),
        HvmFile::from_host("/hvm/isolab", &workspace_binary_stripped("isolab"), 0o755)
            .expect("isolab"),
        HvmFile::from_host(
            "/hvm/isolab-vmm",
            &workspace_binary_stripped("isolab-vmm"),
            0o755,
        )
        .expect("isolab-vmm"),
        HvmFile::from_host(
            "/hvm/isolab-agent",
            &workspace_binary_stripped("isolab-agent"),
            0o755,
        )
        .expect("isolab-agent"),
    ];
    let run = |disk: &str, ro: bool, append: &str| {
        format!(
            "/hvm/vmm-run --kernel /hvm/bzImage --initrd /hvm/agent.cpio --mem 256 --timeout-s 600 --quiet --disk {disk}{} --append '{append}'",
            if ro { " --disk-read-only" } else { "" }
        )
    };
    let noop = WorkloadSpec::new(Workload::Noop);
    let noop_words = format!(
        "isolab.marker=port:{MARKER_PORT:#x} isolab.spec={}",
        encode_spec(&noop).expect("encode")
    );
    let seq_bytes = u64::from(SEQ_MIB) << 20;
    let commands = vec![
        /* 0 */
        format!("dd if=/dev/zero of=/tmp/raw.img bs=1M count={IMAGE_MIB} 2>&1 && gunzip -c /hvm/ext4.img.gz > /tmp/ext4.img && ls -l /tmp/*.img"),
        /* 1 */ run("/tmp/raw.img", false, &words(seq(), Some("raw"))),
        /* 2 */ format!("head -c {seq_bytes} /tmp/raw.img | sha256sum"),
        /* 3 */ run("/tmp/raw.img", false, &words(rand(), Some("raw"))),
        /* 4 */ run("/tmp/raw.img", false, &words(fsync(FSYNC_OPS), Some("raw"))),
        /* 5 */ run("/tmp/ext4.img", false, &words(seq(), Some("ext4"))),
        /* 6 */ run("/tmp/ext4.img", false, &words(rand(), Some("ext4"))),
        /* 7 */ run("/tmp/ext4.img", false, &words(fsync(FSYNC_OPS), Some("ext4"))),
        /* 8 */ "sha256sum /tmp/raw.img".to_owned(),
        /* 9 */ run("/tmp/raw.img", true, &words(fsync(5), Some("raw"))),
        /* 10 */ "sha256sum /tmp/raw.img".to_owned(),
        /* 11 */ format!("/hvm/vmm-run --kernel /hvm/bzImage --initrd /hvm/agent.cpio --mem 256 --timeout-s 300 --quiet --append '{noop_words}'"),
        /* 12 */ run("/tmp/raw.img", false, &noop_words),
        /* 13 */ KILL_AND_CLEAN.to_owned(),
    ];
    let session = HvmSession {
        files,
        commands,
        timeout: Duration::from_secs(2400),
        ..HvmSession::default()
    };
    let out = run_session(&machine, &session, "hvm-block-l1-console.log", progress);
    assert_eq!(
        out.commands[0].status,
        Some(0),
        "{}",
        out.commands[0].output
    );

    let mut failures = Vec::new();
    for (i, name) in [
        (1usize, "io-seq raw"),
        (3, "io-rand raw"),
        (4, "io-fsync raw"),
        (5, "io-seq ext4"),
        (6, "io-rand ext4"),
        (7, "io-fsync ext4"),
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
        let disk = &r["disk"];
        let n = |k: &str| disk[k].as_u64().unwrap_or(0);
        let exits = |k: &str| r["exits"][k].as_u64().unwrap_or(0);
        let mmio = exits("mmio_read.virtio_blk") + exits("mmio_write.virtio_blk");
        let req = n("requests").max(1) as f64;
        progress(&format!(
            "{name}: outcome {:?}; requests {} (reads {}, writes {}, flushes {}, get_id {}), \
             bytes read {} written {}, io_errors {}; virtio MMIO exits to userspace {} = {:.2}/request, \
             notifies (ioeventfd exits) {} = {:.2}/request, interrupts {} = {:.2}/request; \
             VMM non-guest RSS {} KiB; stop {}",
            result.outcome,
            n("requests"),
            n("reads"),
            n("writes"),
            n("flushes"),
            n("get_ids"),
            n("bytes_read"),
            n("bytes_written"),
            n("io_errors"),
            mmio,
            mmio as f64 / req,
            n("notifies"),
            n("notifies") as f64 / req,
            n("interrupts"),
            n("interrupts") as f64 / req,
            r["memory"]["other_resident"].as_u64().unwrap_or(0) / 1024,
            r["stop_kind"],
        ));
        if result.outcome != workloads::result::Outcome::Ok {
            failures.push(format!("{name}: {:?}", result.outcome));
        }
        for m in &result.metrics {
            if !(m.value.is_finite() && m.value > 0.0) {
                failures.push(format!("{name}: metric {} = {}", m.name, m.value));
            }
        }
        if r["stop_kind"] != "guest_reset" || r["after_teardown"]["threads"] != 1 {
            failures.push(format!(
                "{name}: stop {} threads {}",
                r["stop"], r["after_teardown"]["threads"]
            ));
        }
        if n("io_errors") != 0 || !disk["broken"].is_null() || n("unanswerable") != 0 {
            failures.push(format!("{name}: disk errors {disk}"));
        }
        if name.starts_with("io-fsync") && n("flushes") < u64::from(FSYNC_OPS) {
            failures.push(format!(
                "{name}: {} flushes for {FSYNC_OPS} fsyncs",
                n("flushes")
            ));
        }
        if name == "io-seq raw" && (n("flushes") == 0 || n("bytes_written") < seq_bytes) {
            failures.push(format!("{name}: the write was not flushed: {disk}"));
        }
    }

    // The pattern io-seq wrote and flushed is on the image byte for byte.
    let sha = out.commands[2]
        .output
        .split_whitespace()
        .next()
        .unwrap_or("");
    let want = expected_seq_sha();
    progress(&format!(
        "raw image after io-seq: sha256 {sha}, expected {want}"
    ));
    if sha != want {
        failures.push(format!(
            "raw image holds other bytes than io-seq wrote: {sha} != {want}"
        ));
    }

    // Read-only image: the guest's writes fail, the VMM exits cleanly, the image is unchanged.
    let c = &out.commands[9];
    match report(&c.output) {
        Some(r) => {
            let outcome = agent_result(&r).map(|res| res.outcome);
            progress(&format!(
                "read-only image: outcome {outcome:?}, stop {}, disk {}",
                r["stop_kind"], r["disk"]
            ));
            if !matches!(outcome, Ok(workloads::result::Outcome::Error { .. })) {
                failures.push(format!(
                    "read-only: the guest's writes did not fail: {outcome:?}"
                ));
            }
            if r["stop_kind"] != "guest_reset" || r["after_teardown"]["threads"] != 1 {
                failures.push(format!("read-only: unclean exit {}", r["stop"]));
            }
            if r["disk"]["writes"].as_u64() != Some(0) {
                failures.push(format!("read-only: writes reached the image {}", r["disk"]));
            }
        }
        None => failures.push(format!("read-only: no report\n{}", c.output)),
    }
    let before = out.commands[8]
        .output
        .split_whitespace()
        .next()
        .unwrap_or("x");
    let after = out.commands[10]
        .output
        .split_whitespace()
        .next()
        .unwrap_or("y");
    if before != after {
        failures.push("read-only: the image changed".to_owned());
    }

    // The VMM's memory overhead with and without the disk (noop workload).
    let rss = |i: usize| {
        report(&out.commands[i].output).map(|r| {
            (
                r["memory"]["other_resident"].as_u64().unwrap_or(0) / 1024,
                r["disk"]["requests"].as_u64().unwrap_or(0),
            )
        })
    };
    progress(&format!(
        "VMM non-guest RSS (KiB, requests): noop without disk {:?}, noop with disk {:?}",
        rss(11),
        rss(12)
    ));

    // kill -9 of isolab during a VM trial: nothing of the run is left once doctor has cleaned.
    let c = &out.commands[13];
    progress(&format!(
        "kill -9 of isolab during a jailed VM trial:\n{}",
        c.output
    ));
    let count = |key: &str| -> Option<u64> {
        c.output
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{key}=")))
            .and_then(|v| v.trim().parse().ok())
    };
    let want = [
        ("KILL-VMM-SEEN", 1..=1),
        ("KILL-JAIL-SEEN", 1..=1),
        ("KILL-VMM-LEFT", 0..=0),
        ("KILL-PLACES-BEFORE", 3..=u64::MAX),
        ("KILL-PLACES-AFTER", 0..=0),
        ("KILL-VMM-AFTER", 0..=0),
    ];
    for (key, range) in want {
        if !count(key).is_some_and(|n| range.contains(&n)) {
            failures.push(format!(
                "kill -9: {key} = {:?}, expected {range:?}",
                count(key)
            ));
        }
    }

    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// In L1: `isolab run` of jailed VMs, killed with `kill -9` once a VMM process runs; then the
/// VMM processes left (none: they die with isolab), the run's places (its run folder, state
/// folder, cgroup), `isolab doctor --clean`, and what is left after it (nothing).
const KILL_AND_CLEAN: &str = r#"mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null; mkdir -p /var/tmp /run
/hvm/isolab run --backend vm --workload noop --reps 50 --warmup 0 --kernel /hvm/bzImage --agent /hvm/isolab-agent --out /tmp/k --io-dir /var/tmp --vm-jail --timeout 120 --seed 1 >/tmp/k.log 2>&1 &
P=$!
vmm() { for c in /proc/[0-9]*/comm; do [ "$(cat $c 2>/dev/null)" = isolab-vmm ] && echo $c; done; }
i=0; while [ $i -lt 1200 ] && [ -z "$(vmm)" ]; do sleep 0.1; i=$((i+1)); done
echo KILL-VMM-SEEN=$(vmm | wc -l)
echo KILL-JAIL-SEEN=$(ls -d /run/isolab/state-*/jail-* 2>/dev/null | wc -l)
kill -9 $P; wait $P 2>/dev/null; sleep 2
echo KILL-VMM-LEFT=$(vmm | wc -l)
echo KILL-PLACES-BEFORE=$(ls -d /run/isolab/state-* /var/tmp/isolab-* /sys/fs/cgroup/isolab-run-* 2>/dev/null | wc -l)
/hvm/isolab doctor --clean 2>&1 | grep -E 'removed|nothing to clean|left alone|kept'
echo KILL-PLACES-AFTER=$(ls -d /run/isolab/state-* /var/tmp/isolab-* /sys/fs/cgroup/isolab-run-* /run/isolab/runs/*.json 2>/dev/null | wc -l)
echo KILL-VMM-AFTER=$(vmm | wc -l)
tail -3 /tmp/k.log"#;
