//! The VMM in the HVM test machine (QEMU TCG with AMD-V, Debian's cloud kernel with kvm-amd as
//! L1): the micro kernel boots to the agent, ELF and bzImage both boot, bad kernels are refused,
//! a panicking guest is reported with its console, a hanging one is stopped at the timeout.
//!
//! In the same L1 session (see [`memory_and_devices`]): guest RAM backed by transparent huge
//! pages and by hugetlbfs is 2 MiB-aligned and on huge pages, and the micro kernel boots to its
//! agent within the exit and nested-page-fault budget (small pages: without); the result leaves
//! through the virtio console for a handful of exits (or, without the console, through the
//! serial port, said in the result); the disk is found exactly once with `--acpi auto`, `on` and
//! `off`, and by the `micro-acpi` kernel (ACPI only, as Firecracker's guest configs), which runs
//! the I/O workloads on it.
//!
//! Slow (it may build the micro kernel, ~5 min, then one emulated L1 session of a few minutes), so
//! it is `#[ignore]`d in a plain `cargo test`; CI runs it with `--ignored`. Needs the agent built
//! in the same target directory: `cargo build -p workloads --bin isolab-agent`.
//! Times seen here are emulated: correctness only.

mod common;

use std::time::Duration;

use common::{agent_result, example, report, run_session, words};
use serde_json::Value;
use vm_backend::hvm::{HvmCommandOutput, HvmFile, HvmMachine, HvmOutput, HvmSession};
use vm_backend::image::initramfs::agent_image;
use vm_backend::kernel::build::{ensure, ensure_micro, BuildOptions, Variant};
use workloads::kernels::io::{IoRandParams, IoSeqParams};
use workloads::protocol::parse_framed_result;
use workloads::Workload;

fn progress(msg: &str) {
    eprintln!("[hvm test] {msg}");
}

fn spec_words(kind: &str) -> String {
    words(
        Workload::default_of_kind(kind).expect("known workload"),
        None,
    )
}

fn host_boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
#[ignore = "boots the emulated HVM test machine (minutes); run with --ignored (CI does)"]
fn micro_kernel_boots_to_the_agent_in_the_hvm_test_machine() {
    let mut say = progress;
    let kernel = ensure_micro(BuildOptions::default(), &mut say).expect("micro kernel");
    progress(&format!("micro kernel: {}", kernel.dir.display()));
    let acpi_only =
        ensure(Variant::MicroAcpi, BuildOptions::default(), &mut say).expect("micro-acpi kernel");
    progress(&format!("micro-acpi kernel: {}", acpi_only.dir.display()));
    let agent = workloads::locate::locate_agent(None).expect("agent binary");
    let agent_cpio = agent_image(std::fs::read(&agent).expect("read agent")).to_bytes();
    let machine = HvmMachine::prepare(&mut say).expect("HVM test machine");
    progress(&format!(
        "L1 kernel: {} {}",
        machine.l1.package, machine.l1.version
    ));

    let bz = std::fs::read(&kernel.bz_image).expect("bzImage");
    let mut garbage = vec![0u8; 64 * 1024];
    for (i, b) in garbage.iter_mut().enumerate() {
        *b = (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3];
    }
    let files = vec![
        HvmFile::from_host("/hvm/vmm-run", &example("vmm-run"), 0o755).expect("vmm-run"),
        HvmFile::bytes("/hvm/bzImage", bz.clone(), 0o644),
        HvmFile::from_host("/hvm/vmlinux", &kernel.vmlinux, 0o644).expect("vmlinux"),
        HvmFile::bytes("/hvm/agent.cpio", agent_cpio, 0o644),
        HvmFile::bytes("/hvm/garbage", garbage, 0o644),
        HvmFile::bytes("/hvm/truncated", bz[..bz.len() / 2].to_vec(), 0o644),
        HvmFile::from_host("/hvm/micro-acpi", &acpi_only.bz_image, 0o644).expect("micro-acpi"),
    ];
    let run = |kernel: &str, timeout: u32, append: &str| {
        format!(
            "/hvm/vmm-run --kernel {kernel} --initrd /hvm/agent.cpio --mem 256 --timeout-s {timeout} --append '{append}'"
        )
    };
    let commands = vec![
        /* 0 */ run("/hvm/bzImage", 180, &spec_words("noop")),
        /* 1 */ run("/hvm/bzImage", 180, &spec_words("inspect")),
        /* 2 */ run("/hvm/vmlinux", 180, &spec_words("noop")),
        /* 3 */ run("/hvm/garbage", 30, &spec_words("noop")),
        /* 4 */ run("/hvm/truncated", 30, &spec_words("noop")),
        /* 5 */ run("/hvm/bzImage", 180, "rdinit=/nowhere init=/nowhere"),
        /* 6 */ run("/hvm/bzImage", 20, "rdinit=/nowhere init=/nowhere panic=0"),
        /* 7 */ "cat /proc/sys/kernel/random/boot_id; uname -r".to_owned(),
    ];
    let mut commands = commands;
    commands.extend(memory_and_devices::commands());
    let session = HvmSession {
        files,
        commands,
        timeout: Duration::from_secs(2100),
        huge_pages_2m: memory_and_devices::HUGE_PAGES,
        ..HvmSession::default()
    };
    let out = run_session(&machine, &session, "hvm-l1-console.log", progress);

    // 0, 1, 2: the agent ran and reported; the guest's reboot ended the VM cleanly.
    let mut noop_exits = None;
    for (i, format) in [(0usize, "bzImage"), (1, "bzImage"), (2, "ELF vmlinux")] {
        let c = &out.commands[i];
        assert_eq!(c.status, Some(0), "command {i} failed:\n{}", c.output);
        let r = report(&c.output)
            .unwrap_or_else(|| panic!("no report from command {i}:\n{}", c.output));
        assert_eq!(r["kernel_format"], format);
        assert_eq!(r["stop_kind"], "guest_reset", "{i}: {}", r["stop"]);
        let console = r["console"].as_str().expect("console");
        assert!(
            console.contains("Linux version 6.1"),
            "console capture: {console}"
        );
        let result = agent_result(&r).unwrap_or_else(|e| panic!("{i}: {e}\n{console}"));
        // The result came through the virtio console, not the serial port.
        assert!(
            parse_framed_result(console).is_err(),
            "{i}: the result line is on the serial console"
        );
        assert_eq!(
            result.route.as_ref().map(|r| r.channel.as_str()),
            Some("virtio-console"),
            "{i}: {:?}",
            result.route
        );
        assert!(result.was_pid1, "the agent ran as /init");
        assert_eq!(
            result.outcome,
            workloads::result::Outcome::Ok,
            "{i}: {result:?}"
        );
        let markers: Vec<u64> = r["markers"]
            .as_array()
            .expect("markers")
            .iter()
            .map(|m| m[0].as_u64().unwrap_or(0))
            .collect();
        assert!(markers.starts_with(&[1, 2, 3]), "{i}: markers {markers:?}");
        assert!(r["exits_to_first_marker"].is_object(), "{i}");
        let mem = &r["memory"];
        assert!(mem["guest_ram_resident"].as_u64().unwrap_or(0) > 0);
        assert_eq!(
            r["after_teardown"]["threads"], 1,
            "{i}: the vCPU thread is gone"
        );
        progress(&format!(
            "command {i} ({format}): exits to agent start {}, whole run {}, memory {}",
            r["exits_to_first_marker"], r["exits"], mem
        ));
        if i == 0 {
            noop_exits = Some(r["exits_to_first_marker"].clone());
        }
        if i == 1 {
            let inspect = result.inspect.expect("inspect report");
            let l1_id = out.commands[7]
                .output
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned();
            assert!(inspect.kernel_release.starts_with("6.1."), "{inspect:?}");
            let host_release =
                std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            assert_ne!(inspect.kernel_release, host_release.trim());
            assert_eq!(inspect.boot_id.len(), 36, "{inspect:?}");
            assert_ne!(inspect.boot_id, host_boot_id());
            assert_ne!(inspect.boot_id, l1_id);
            assert_eq!(inspect.cpus, 1);
        }
    }
    assert!(noop_exits.is_some());

    // 3, 4: refused before any KVM call, with a message that says what it is.
    let c = &out.commands[3];
    assert_eq!(c.status, Some(2), "{}", c.output);
    assert!(c.output.contains("is not a Linux kernel"), "{}", c.output);
    let c = &out.commands[4];
    assert_eq!(c.status, Some(2), "{}", c.output);
    assert!(c.output.contains("truncated"), "{}", c.output);

    // 5: a panicking guest reboots (panic=1) and the report shows the panic on the console.
    let r = report(&out.commands[5].output).expect("report from the panicking guest");
    assert_eq!(r["kernel_panicked"], true, "{}", r["console"]);
    assert!(parse_framed_result(r["console"].as_str().unwrap_or("")).is_err());

    // 6: a guest that hangs (panic=0 spins forever) is stopped at the timeout.
    let r = report(&out.commands[6].output).expect("report from the hanging guest");
    assert_eq!(r["stop_kind"], "timeout", "{}", r["stop"]);
    assert_eq!(
        r["after_teardown"]["threads"], 1,
        "the kicked vCPU thread is gone"
    );
    assert_eq!(r["kernel_panicked"], true);
    // Where it hung: panic() spins in mdelay (runnable, never halted), in the kernel image, with
    // its callers' return addresses on the stack (resolved with `nm vmlinux` they read
    // delay_tsc <- panic <- prepare_namespace <- kernel_init).
    let states = r["vcpu_states"].as_array().expect("vcpu_states");
    assert_eq!(states.len(), 1, "{states:?}");
    let state = states[0].as_str().unwrap_or("");
    assert!(
        state.starts_with("vCPU 0: runnable, rip 0xffffffff8")
            && state.contains("kernel addresses on the stack: 0xffffffff8"),
        "{state}"
    );

    memory_and_devices::check(&out, 8);
}

/// Guest RAM backings, the result channel and device discovery: commands appended to the boot
/// session, and their checks.
mod memory_and_devices {
    use super::*;

    /// 2 MiB pages L1 reserves: the 128 MiB guest of the hugetlbfs run and a few spare.
    pub const HUGE_PAGES: u64 = 68;
    /// The raw disk image the device runs use, made in L1.
    const DISK: &str = "/tmp/disk.img";
    /// KVM exits from the first KVM_RUN to the agent's start, at most (noop, micro kernel, quiet
    /// console, huge pages): the issue's target, against about 10,500 with small pages.
    pub const MAX_EXITS_TO_AGENT: u64 = 3_000;
    /// Nested page faults to the agent's start, at most (against about 8,800 with small pages).
    pub const MAX_NPF_TO_AGENT: u64 = 1_000;

    /// A quiet noop of the micro kernel with 128 MiB backed as `memory`, and `extra` options.
    fn noop(kernel: &str, memory: &str, extra: &str) -> String {
        format!(
            "/hvm/vmm-run --kernel {kernel} --initrd /hvm/agent.cpio --mem 128 --quiet --timeout-s 180 --memory {memory}{extra} --append '{}'",
            spec_words("noop")
        )
    }

    /// A quiet run of `workload` with the raw disk, devices described as `acpi` says.
    fn with_disk(kernel: &str, acpi: &str, workload: Workload, disk: Option<&str>) -> String {
        format!(
            "/hvm/vmm-run --kernel {kernel} --initrd /hvm/agent.cpio --mem 128 --quiet --timeout-s 300 --acpi {acpi} --disk {DISK} --append '{}'",
            words(workload, disk)
        )
    }

    fn rand() -> Workload {
        Workload::IoRand(IoRandParams {
            path: "/unused".into(),
            file_mib: 8,
            ops: 100,
            ..IoRandParams::default()
        })
    }

    fn seq() -> Workload {
        Workload::IoSeq(IoSeqParams {
            path: "/unused".into(),
            size_mib: 4,
        })
    }

    /// The commands, in order (the checks below count on it).
    pub fn commands() -> Vec<String> {
        vec![
            /* +0 */ noop("/hvm/bzImage", "thp", ""),
            /* +1 */ noop("/hvm/vmlinux", "thp", ""),
            /* +2 */ noop("/hvm/bzImage", "hugetlbfs", ""),
            /* +3 */ noop("/hvm/vmlinux", "hugetlbfs", ""),
            /* +4 */ noop("/hvm/bzImage", "small", ""),
            /* +5 */ noop("/hvm/bzImage", "thp", " --no-channel"),
            /* +6 */ noop("/hvm/bzImage", "thp", " --acpi off"),
            /* +7 */ format!("dd if=/dev/zero of={DISK} bs=1M count=16 2>&1 | tail -1"),
            /* +8 */ with_disk("/hvm/bzImage", "auto", Workload::Inspect, None),
            /* +9 */ with_disk("/hvm/bzImage", "on", Workload::Inspect, None),
            /* +10 */ with_disk("/hvm/bzImage", "off", Workload::Inspect, None),
            /* +11 */ with_disk("/hvm/micro-acpi", "auto", Workload::Inspect, None),
            /* +12 */ with_disk("/hvm/micro-acpi", "auto", rand(), Some("raw")),
            /* +13 */ with_disk("/hvm/micro-acpi", "auto", seq(), Some("raw")),
        ]
    }

    fn run_report(c: &HvmCommandOutput, what: &str) -> Value {
        assert_eq!(c.status, Some(0), "{what}: vmm-run failed:\n{}", c.output);
        let r = report(&c.output).unwrap_or_else(|| panic!("{what}: no report:\n{}", c.output));
        assert_eq!(r["stop_kind"], "guest_reset", "{what}: {}", r["stop"]);
        r
    }

    fn count(v: &Value) -> u64 {
        v.as_u64().unwrap_or(0)
    }

    fn total(v: &Value) -> u64 {
        v.as_object()
            .map_or(0, |m| m.values().map(|x| x.as_u64().unwrap_or(0)).sum())
    }

    /// KVM's exits and nested page faults to the agent's start, the exits that reached the VMM in
    /// the whole run, and the huge share of guest RAM.
    struct Boot {
        exits_to_agent: u64,
        npf_to_agent: u64,
        vmm_exits: u64,
        resident: u64,
        huge: u64,
    }

    fn boot(r: &Value, what: &str) -> Boot {
        let kvm = &r["kvm_stats_to_first_marker"];
        assert!(
            kvm["pf_taken"].is_u64(),
            "{what}: L1's KVM reports no pf_taken: {kvm}"
        );
        let b = Boot {
            exits_to_agent: count(&kvm["exits"]),
            npf_to_agent: count(&kvm["pf_taken"]),
            vmm_exits: total(&r["exits"]),
            resident: count(&r["memory"]["guest_ram_resident"]),
            huge: count(&r["memory"]["guest_ram_huge"]),
        };
        progress(&format!(
            "{what}: KVM exits to agent start {}, nested page faults {} (pf_fixed {}); exits reaching the VMM, whole run {} ({}); guest RAM touched {} KiB, on huge pages {} KiB; agent start {:.2} s after VMM start (emulated)",
            b.exits_to_agent,
            b.npf_to_agent,
            kvm["pf_fixed"],
            b.vmm_exits,
            r["exits"],
            b.resident >> 10,
            b.huge >> 10,
            count(&r["markers"][0][1]) as f64 / 1e9,
        ));
        b
    }

    fn aligned(r: &Value, what: &str) {
        let ranges = r["guest_ram_host_ranges"].as_array().expect("host ranges");
        assert!(!ranges.is_empty(), "{what}");
        for range in ranges {
            let addr = count(&range[0]);
            assert_eq!(addr % (2 << 20), 0, "{what}: guest RAM at {addr:#x}");
        }
    }

    fn device<'a>(r: &'a Value, name: &str) -> &'a Value {
        r["devices"]
            .as_array()
            .and_then(|d| d.iter().find(|x| x["name"] == name))
            .unwrap_or_else(|| panic!("no {name} in {}", r["devices"]))
    }

    pub fn check(out: &HvmOutput, first: usize) {
        let cmd = |i: usize| &out.commands[first + i];
        assert!(
            out.console.contains(&format!("HVM-HUGEPAGES:{HUGE_PAGES}")),
            "L1 did not reserve {HUGE_PAGES} huge pages"
        );
        // Huge pages, both kinds, ELF and bzImage: within the exit and fault budget, aligned,
        // and backed by huge pages; the result through the virtio console.
        //
        // The nested page faults are the guest's own (about 30 every time); the exits besides
        // them are not all: when the emulated machine runs slowly (a busy host), timer
        // interrupts pile up during the boot and KVM takes interrupt-window and emulation exits
        // for them (one run measured 17,495 exits with 32 nested page faults, the same kernel's
        // next boot 1,719). So every boot must stay within the fault budget, and each kernel
        // format's best huge-page boot (of two) within the exit budget.
        let mut best_exits = std::collections::BTreeMap::new();
        for (i, what) in [
            (0, "thp, bzImage"),
            (1, "thp, ELF"),
            (2, "hugetlbfs, bzImage"),
            (3, "hugetlbfs, ELF"),
        ] {
            let r = run_report(cmd(i), what);
            let b = boot(&r, what);
            aligned(&r, what);
            let format = what.split(", ").nth(1).unwrap_or(what);
            best_exits
                .entry(format)
                .and_modify(|e: &mut u64| *e = (*e).min(b.exits_to_agent))
                .or_insert(b.exits_to_agent);
            assert!(
                b.npf_to_agent <= MAX_NPF_TO_AGENT,
                "{what}: {} nested page faults to the agent's start (at most {MAX_NPF_TO_AGENT})",
                b.npf_to_agent
            );
            // Most of what the guest touched is on huge pages (hugetlbfs: all of it).
            assert!(
                b.huge * 2 >= b.resident,
                "{what}: {} of {} bytes huge",
                b.huge,
                b.resident
            );
            if what.starts_with("hugetlbfs") {
                assert_eq!(b.huge, b.resident, "{what}");
            }
            assert_eq!(r["memory_backing"], what.split(',').next().unwrap_or(""));
            // Torn down with the VM: hugetlbfs pages back in the pool for the next one.
            assert_eq!(
                r["after_teardown"]["guest_ram_mapped"], false,
                "{what}: guest RAM still mapped after the VM"
            );
            let result = agent_result(&r).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(
                result.route.map(|x| x.channel),
                Some("virtio-console".into())
            );
            assert!(
                b.vmm_exits <= MAX_VMM_EXITS_NOOP,
                "{what}: {} exits reached the VMM in the whole noop trial (at most {MAX_VMM_EXITS_NOOP}): {}",
                b.vmm_exits,
                r["exits"]
            );
        }
        for (format, exits) in &best_exits {
            assert!(
                *exits <= MAX_EXITS_TO_AGENT,
                "{format}: {exits} KVM exits to the agent's start in its best huge-page boot (at most {MAX_EXITS_TO_AGENT})"
            );
        }
        assert_eq!(best_exits.len(), 2, "{best_exits:?}");
        // Small pages: what the guest costs without huge pages (today's counts).
        let r = run_report(cmd(4), "small");
        let small = boot(&r, "small");
        assert_eq!(small.huge, 0, "small pages only");
        assert!(
            small.npf_to_agent >= MIN_NPF_SMALL && small.exits_to_agent > MAX_EXITS_TO_AGENT,
            "small pages: {} nested page faults, {} exits to the agent's start: huge pages should make the difference",
            small.npf_to_agent,
            small.exits_to_agent
        );
        // Without the console device the agent falls back to the serial port, says so, and the
        // result costs an exit per byte.
        let r = run_report(cmd(5), "no channel");
        let serial = boot(&r, "no channel");
        let result = agent_result(&r).expect("result on the serial console");
        let route = result.route.expect("route");
        assert_eq!(route.channel, "stdout");
        assert!(
            route
                .fallback
                .as_deref()
                .is_some_and(|f| f.contains("/dev/hvc0")),
            "{route:?}"
        );
        assert!(
            serial.vmm_exits > MAX_VMM_EXITS_NOOP + 300,
            "the serial result costs exits: {}",
            serial.vmm_exits
        );
        // The micro kernel without ACPI tables (MP table, devices on the command line): what
        // ACPI costs it.
        let thp = boot(&run_report(cmd(0), "thp"), "thp, bzImage (again)");
        let r = run_report(cmd(6), "acpi off");
        let off = boot(&r, "acpi off");
        assert!(agent_result(&r).is_ok());
        progress(&format!(
            "the micro kernel with ACPI tables: {} KVM exits to the agent's start, {} exits reaching the VMM in the whole run; without (MP table, command line): {} and {}",
            thp.exits_to_agent, thp.vmm_exits, off.exits_to_agent, off.vmm_exits,
        ));
        assert_eq!(cmd(7).status, Some(0), "{}", cmd(7).output);
        // The disk is found exactly once however it is described, and on the kernel that knows
        // only ACPI.
        for (i, what, via, channel) in [
            (8, "micro, acpi auto", None, "virtio-console"),
            (9, "micro, acpi on", Some("acpi"), "virtio-console"),
            (
                10,
                "micro, acpi off",
                Some("command line"),
                "virtio-console",
            ),
            (11, "micro-acpi, acpi auto", Some("acpi"), "stdout"),
        ] {
            let r = run_report(cmd(i), what);
            let result = agent_result(&r).unwrap_or_else(|e| panic!("{what}: {e}"));
            let inspect = result.inspect.expect("inspect report");
            let disks: Vec<&String> = inspect
                .block_devices
                .iter()
                .filter(|d| d.starts_with("vd"))
                .collect();
            assert_eq!(disks, ["vda"], "{what}: {:?}", inspect.block_devices);
            let blk = device(&r, "virtio-blk");
            progress(&format!(
                "{what}: the guest found the disk through {} ({:#x}), the console through {}; result via {:?}",
                blk["found_via"],
                count(&blk["base"]),
                device(&r, "virtio-console")["found_via"],
                result.route
            ));
            if let Some(via) = via {
                assert_eq!(blk["found_via"], via, "{what}");
            } else {
                assert_ne!(blk["found_via"], "not found", "{what}");
            }
            assert_eq!(
                result.route.as_ref().map(|x| x.channel.as_str()),
                Some(channel),
                "{what}"
            );
        }
        // The kernel without a console says why its result took the serial port.
        let r = run_report(cmd(11), "micro-acpi");
        let route = agent_result(&r).expect("result").route.expect("route");
        assert!(
            route
                .fallback
                .is_some_and(|f| f.contains("CONFIG_VIRTIO_CONSOLE")),
            "the fallback is said"
        );
        for (i, what) in [
            (12, "micro-acpi io-rand raw"),
            (13, "micro-acpi io-seq raw"),
        ] {
            let r = run_report(cmd(i), what);
            let result = agent_result(&r).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(
                result.outcome,
                workloads::result::Outcome::Ok,
                "{what}: {:?}",
                result.outcome
            );
            assert!(count(&r["disk"]["requests"]) > 0, "{what}: {}", r["disk"]);
            assert_eq!(count(&r["disk"]["io_errors"]), 0, "{what}");
            assert_eq!(device(&r, "virtio-blk")["found_via"], "acpi", "{what}");
        }
    }

    /// Exits reaching the VMM in a whole quiet noop trial with the result channel, at most: the
    /// floor measured, 313 (the same in every run: 250 serial exits for the UART's probe and the
    /// kernel's two lines no `quiet` silences, 54 for the console: 50 to set it up at boot and 4
    /// for the result; 4 markers, 2 for the reset, 3 port probes), plus a margin.
    pub const MAX_VMM_EXITS_NOOP: u64 = 350;
    /// Nested page faults to the agent's start with small pages, at least.
    pub const MIN_NPF_SMALL: u64 = 4_000;
}
