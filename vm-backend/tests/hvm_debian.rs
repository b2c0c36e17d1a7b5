//! Debian's stock cloud kernel as the microVM's kernel, in the HVM test machine (QEMU TCG with
//! AMD-V as L1): ACPI tables describe the IOAPIC, COM1 and the virtio-mmio devices (the VMM's
//! default `--acpi auto` also names them on the command line, which this kernel ignores), the
//! initramfs carries the kernel's virtio modules and the agent loads them. The agent runs noop,
//! inspect (the kernel release must be Debian's, not the micro kernel's, and it sees exactly one
//! disk, `vda`), cpu, and io-rand and io-seq on the raw disk and on ext4; every result must be
//! valid and come back through the virtio console (the `virtio_console` module).
//!
//! Slow (one emulated L1 session of a few minutes), so `#[ignore]`d; run with
//! `cargo test -p vm_backend --test hvm_debian -- --ignored --nocapture`. Needs the agent and the
//! `vmm-run` example built in the same target directory (`cargo build -p workloads --bin
//! isolab-agent && cargo build -p vm_backend --example vmm-run`), apt (the kernel package is
//! fetched on first use) and `mkfs.ext4` on the host. Times seen here are emulated: correctness
//! only.

mod common;

use std::time::Duration;

use common::{agent_result, example, ext4_image_gz, report, run_session, words};
use vm_backend::hvm::{HvmFile, HvmMachine, HvmSession};
use vm_backend::image::initramfs::agent_image;
use vm_backend::kernel::debian::ensure_debian_guest;
use workloads::kernels::cpu::CpuParams;
use workloads::kernels::io::{IoRandParams, IoSeqParams};
use workloads::result::Outcome;
use workloads::Workload;

const IMAGE_MIB: u64 = 32;
const SEQ_MIB: u32 = 8;
const RAND_OPS: u32 = 200;

fn progress(msg: &str) {
    eprintln!("[hvm debian] {msg}");
}

#[test]
#[ignore = "boots the emulated HVM test machine (minutes); run with --ignored"]
fn debian_kernel_runs_every_workload_kind_with_acpi_and_modules() {
    let mut say = progress;
    let guest = ensure_debian_guest(&mut say).expect("debian guest kernel");
    progress(&format!(
        "guest kernel {} ({}), modules {:?}",
        guest.vmlinuz.display(),
        guest.release,
        guest
            .modules
            .iter()
            .filter_map(|m| m.file_name())
            .collect::<Vec<_>>()
    ));
    let agent = workloads::locate::locate_agent(None).expect("agent binary");
    let mut image = agent_image(std::fs::read(&agent).expect("read agent"));
    image.modules_from(&guest.modules).expect("modules");
    let machine = HvmMachine::prepare(&mut say).expect("HVM test machine");
    let files = vec![
        HvmFile::from_host("/hvm/vmm-run", &example("vmm-run"), 0o755).expect("vmm-run"),
        HvmFile::from_host("/hvm/vmlinuz", &guest.vmlinuz, 0o644).expect("vmlinuz"),
        HvmFile::bytes("/hvm/agent.cpio", image.to_bytes(), 0o644),
        HvmFile::bytes(
            "/hvm/ext4.img.gz",
            ext4_image_gz("hvm-debian-ext4", IMAGE_MIB),
            0o644,
        ),
    ];
    let run = |disk: Option<&str>, quiet: bool, append: &str| {
        format!(
            "/hvm/vmm-run --kernel /hvm/vmlinuz --initrd /hvm/agent.cpio --mem 256 --timeout-s 300{}{} --append '{append}'",
            if quiet { " --quiet" } else { "" },
            disk.map(|d| format!(" --disk {d}")).unwrap_or_default(),
        )
    };
    let seq = Workload::IoSeq(IoSeqParams {
        path: "/unused".into(),
        size_mib: SEQ_MIB,
    });
    let rand = Workload::IoRand(IoRandParams {
        path: "/unused".into(),
        file_mib: SEQ_MIB,
        ops: RAND_OPS,
        ..Default::default()
    });
    let cpu = Workload::Cpu(CpuParams {
        hash_mib: 4,
        matrix_n: 64,
    });
    // (name, command index) of the VM runs; index 0 makes the images.
    let runs: Vec<(&str, String)> = vec![
        // Verbose once: the console shows ACPI, the modules and the disk being found.
        (
            "noop",
            run(Some("/tmp/raw.img"), false, &words(Workload::Noop, None)),
        ),
        (
            "inspect",
            run(Some("/tmp/raw.img"), true, &words(Workload::Inspect, None)),
        ),
        ("cpu", run(None, true, &words(cpu, None))),
        (
            "io-rand raw",
            run(
                Some("/tmp/raw.img"),
                true,
                &words(rand.clone(), Some("raw")),
            ),
        ),
        (
            "io-seq raw",
            run(Some("/tmp/raw.img"), true, &words(seq.clone(), Some("raw"))),
        ),
        (
            "io-rand ext4",
            run(Some("/tmp/ext4.img"), true, &words(rand, Some("ext4"))),
        ),
        (
            "io-seq ext4",
            run(Some("/tmp/ext4.img"), true, &words(seq, Some("ext4"))),
        ),
    ];
    let mut commands = vec![format!(
        "dd if=/dev/zero of=/tmp/raw.img bs=1M count={IMAGE_MIB} 2>&1 && gunzip -c /hvm/ext4.img.gz > /tmp/ext4.img && ls -l /tmp/*.img"
    )];
    commands.extend(runs.iter().map(|(_, c)| c.clone()));
    let session = HvmSession {
        files,
        commands,
        timeout: Duration::from_secs(1800),
        ..HvmSession::default()
    };
    let out = run_session(&machine, &session, "hvm-debian-l1-console.log", progress);
    assert_eq!(
        out.commands[0].status,
        Some(0),
        "{}",
        out.commands[0].output
    );

    let mut failures = Vec::new();
    for (i, (name, _)) in runs.iter().enumerate() {
        let c = &out.commands[i + 1];
        let Some(r) = report(&c.output) else {
            failures.push(format!("{name}: no report:\n{}", c.output));
            continue;
        };
        let console = r["console"].as_str().unwrap_or("");
        let cmdline = r["cmdline"].as_str().unwrap_or("");
        if i == 0 {
            let interesting: Vec<&str> = console
                .lines()
                .filter(|l| {
                    [
                        "ACPI: ",
                        "IOAPIC",
                        "virtio",
                        "vda",
                        "serial",
                        "ttyS0",
                        "Linux version",
                    ]
                    .iter()
                    .any(|k| l.contains(k))
                })
                .take(40)
                .collect();
            progress(&format!(
                "{name}: console lines about the machine:\n{}",
                interesting.join("\n")
            ));
            if !console.contains("[vda]") {
                failures.push(format!(
                    "{name}: virtio_blk did not announce vda:\n{console}"
                ));
            }
        }
        if cmdline.contains("acpi=off") || r["acpi"] != "auto" {
            failures.push(format!(
                "{name}: command line {cmdline}, acpi {}",
                r["acpi"]
            ));
        }
        // This kernel knows only ACPI: every device it found, it found there.
        for d in r["devices"].as_array().into_iter().flatten() {
            if d["found_via"] != "acpi" {
                failures.push(format!("{name}: {d}"));
            }
        }
        let result = match agent_result(&r) {
            Ok(res) => res,
            Err(e) => {
                failures.push(format!("{name}: {e}\n{console}"));
                continue;
            }
        };
        let first_marker = r["markers"][0][1].as_u64().unwrap_or(0);
        let disk = &r["disk"];
        let n = |k: &str| disk[k].as_u64().unwrap_or(0);
        progress(&format!(
            "{name}: outcome {:?}; agent start {:.2} s after VMM start (emulated); stop {}; \
             disk requests {} (bytes read {}, written {}, io_errors {}); metrics {}",
            result.outcome,
            first_marker as f64 / 1e9,
            r["stop_kind"],
            n("requests"),
            n("bytes_read"),
            n("bytes_written"),
            n("io_errors"),
            result
                .metrics
                .iter()
                .map(|m| format!("{}={:.3}{}", m.name, m.value, m.unit))
                .collect::<Vec<_>>()
                .join(" "),
        ));
        if result.outcome != Outcome::Ok {
            failures.push(format!("{name}: {:?}\n{console}", result.outcome));
        }
        let channel = result.route.as_ref().map(|r| r.channel.as_str());
        if channel != Some("virtio-console") {
            failures.push(format!(
                "{name}: the result did not come through the virtio console: {:?}",
                result.route
            ));
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
        if r["kernel_panicked"] == true {
            failures.push(format!("{name}: the guest kernel panicked\n{console}"));
        }
        if name.starts_with("io-") {
            if n("io_errors") != 0 || !disk["broken"].is_null() || n("requests") == 0 {
                failures.push(format!("{name}: disk {disk}"));
            }
            if console.contains("did not load") {
                failures.push(format!("{name}: a module failed\n{console}"));
            }
        }
        if *name == "inspect" {
            let release = result
                .inspect
                .as_ref()
                .map(|i| i.kernel_release.clone())
                .unwrap_or_default();
            let disks = result
                .inspect
                .as_ref()
                .map(|i| i.block_devices.clone())
                .unwrap_or_default();
            progress(&format!(
                "inspect: kernel release {release}, block devices {disks:?}"
            ));
            if disks
                .iter()
                .filter(|d| d.starts_with("vd"))
                .collect::<Vec<_>>()
                != ["vda"]
            {
                failures.push(format!(
                    "inspect: block devices {disks:?}, expected one vda"
                ));
            }
            if release != guest.release || !release.ends_with("-cloud-amd64") {
                failures.push(format!(
                    "inspect: kernel release {release:?}, expected Debian's {:?}",
                    guest.release
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
