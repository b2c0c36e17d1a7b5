//! The VMM in the HVM test machine (QEMU TCG with AMD-V, Debian's cloud kernel with kvm-amd as
//! L1): the micro kernel boots to the agent, ELF and bzImage both boot, bad kernels are refused,
//! a panicking guest is reported with its console, a hanging one is stopped at the timeout.
//!
//! Slow (it may build the micro kernel, ~5 min, then one emulated L1 session of a few minutes), so
//! it is `#[ignore]`d in a plain `cargo test`; CI runs it with `--ignored`. Needs the agent built
//! in the same target directory: `cargo build -p workloads --bin isolab-agent`.
//! Times seen here are emulated: correctness only.

mod common;

use std::time::Duration;

use common::{example, report, run_session, words};
use vm_backend::hvm::{HvmFile, HvmMachine, HvmSession};
use vm_backend::image::initramfs::agent_image;
use vm_backend::kernel::build::{ensure_micro, BuildOptions};
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
    let session = HvmSession {
        files,
        commands,
        timeout: Duration::from_secs(1500),
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
        let result = parse_framed_result(console).unwrap_or_else(|e| panic!("{i}: {e}\n{console}"));
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
}
