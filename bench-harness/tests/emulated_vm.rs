//! `isolab run --vm-in-emulator` as a user runs it: every workload, I/O included (on ext4 on the
//! VM's virtio-blk disk), in the VM inside the HVM test machine (QEMU TCG with AMD-V, kvm-amd in
//! L1) gives a valid result, labelled emulated, with the guest's own kernel; on both guest
//! kernels (isolab's micro kernel and Debian's stock cloud kernel with ACPI and modules) and with
//! 1 and 2 vCPUs; `--console` shows the guests' consoles live; the reports label the samples.
//! Every VM runs in its own VMM process under its seccomp filters (the default), below a cgroup;
//! two of the four runs jail each VMM process (`--vm-jail`), one per guest kernel. The network
//! workloads reach a peer in L1's own lab namespace through the VM's virtio-net card and a tap
//! (the micro kernel's built-in driver, Debian's virtio_net module).
//!
//! Slow (four emulated L1 sessions, two at a time: one per core), so `#[ignore]`d in a plain
//! `cargo test`; `./run-tests` runs it with `--ignored`. Needs root and the guest kernels (built
//! or fetched on first use).
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bench_harness::backends::vm_emulated::RETRIED_NOTE;
use bench_harness::store::{self, StoredRun};

const ISOLAB: &str = env!("CARGO_BIN_EXE_isolab");

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn emulated_suite() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/suites/emulated.toml"))
}

/// Workloads in the emulated suite: one trial each per backend.
fn suite_workloads() -> usize {
    bench_harness::suite::Suite::from_file(&emulated_suite())
        .unwrap()
        .workloads
        .len()
}

/// One `isolab run` of the emulated suite on the VM (and native beside it, with `with_native`).
struct Variant {
    kernel: &'static str,
    vcpus: u32,
    with_native: bool,
    /// `--vm-jail`.
    jail: bool,
}

fn run_variant(v: &Variant, dir: &Path) -> (Output, Option<PathBuf>) {
    let out = dir.join("results");
    let agent = workloads::locate::locate_agent(None).unwrap_or_else(|e| panic!("{e}"));
    let backends = if v.with_native { "native,vm" } else { "vm" };
    let o = Command::new(ISOLAB)
        .args([
            "run",
            "--backend",
            backends,
            "--vm-in-emulator",
            "--console",
        ])
        .arg("--suite")
        .arg(emulated_suite())
        .args(["--kernel", v.kernel, "--vcpus", &v.vcpus.to_string()])
        .args(if v.jail { &["--vm-jail"][..] } else { &[] })
        .arg("--out")
        .arg(&out)
        .arg("--io-dir")
        .arg(dir)
        .args(["--seed", "7", "--timeout", "300"])
        .env("ISOLAB_AGENT", &agent)
        .output()
        .unwrap();
    let run_dir = std::fs::read_dir(&out)
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.path());
    (o, run_dir)
}

fn check_variant(v: &Variant, o: &Output, run_dir: Option<PathBuf>) -> StoredRun {
    let what = format!(
        "--kernel {} --vcpus {}{}",
        v.kernel,
        v.vcpus,
        if v.jail { " --vm-jail" } else { "" }
    );
    let stderr = text(&o.stderr);
    let stdout = text(&o.stdout);
    assert!(
        o.status.success(),
        "{what}: isolab run failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // --console: the guests' consoles came through L1's console as they ran.
    assert!(
        stderr.contains("[L1]") && stderr.contains("Linux version 6.1"),
        "{what}: no live console:\n{stderr}"
    );
    let run = store::load_run(&run_dir.expect("a run folder")).unwrap();
    // The manifest names the guest kernel the host handed in (its image and its configuration)
    // and the confinement the run used.
    let facts = &run.manifest.backends["vm"].facts;
    for key in ["kernel_sha256", "kernel_config_sha256"] {
        let hash = facts.get(key).map(String::as_str).unwrap_or("");
        assert!(
            hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "{what}: the manifest's {key} is {hash:?}: {facts:?}"
        );
    }
    assert_eq!(
        facts.get("vm_seccomp").map(String::as_str),
        Some("on"),
        "{what}: {facts:?}"
    );
    assert_eq!(
        facts.get("vm_jail").map(String::as_str),
        Some(if v.jail { "on" } else { "off" }),
        "{what}"
    );
    let vm: Vec<_> = run.samples.iter().filter(|s| s.backend == "vm").collect();
    assert_eq!(
        vm.len(),
        suite_workloads(),
        "{what}: one VM trial per workload"
    );
    let host_release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let host_boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    for s in &vm {
        assert!(s.emulated, "{what}: {}: not labelled emulated", s.workload);
        // A trial that hung once in the emulator and was run again (bounded by the batch) is
        // shown here, so the CI log keeps where it hung.
        if let Some(log) = s
            .log_tail
            .as_deref()
            .filter(|l| l.starts_with(RETRIED_NOTE))
        {
            eprintln!(
                "[emulated vm test] {what}: {} was retried:\n{log}",
                s.workload
            );
        }
        assert!(
            s.failure.is_none(),
            "{what}: {} failed in the VM: {:?}\n{}",
            s.workload,
            s.failure,
            s.log_tail.as_deref().unwrap_or("")
        );
        let agent = s.agent.as_ref().expect("agent result");
        assert!(
            agent.was_pid1,
            "{what}: {}: the agent was /init",
            s.workload
        );
        let names: Vec<&str> = s.timeline.iter().map(|p| p.name.as_str()).collect();
        for phase in [
            "vmm_spawned",
            "vmm_started",
            "vm_setup",
            "first_kvm_run",
            "agent_ready",
            "vmm_reaped",
            "cleaned_up",
        ] {
            assert!(
                names.contains(&phase),
                "{what}: {}: timeline {names:?}",
                s.workload
            );
        }
        // A jailed VMM entered its jail and dropped its privileges before its guest ran.
        for phase in ["jail_entered", "privileges_dropped"] {
            assert_eq!(
                names.contains(&phase),
                v.jail,
                "{what}: {}: timeline {names:?}",
                s.workload
            );
        }
        let metric = |n: &str| s.metrics.iter().find(|m| m.name == n).map(|m| m.value);
        assert!(
            metric("exits.to_agent_start").is_some(),
            "{what}: {}",
            s.workload
        );
        assert!(
            metric("kvm.exits").is_some_and(|x| x > 0.0),
            "{what}: {}: KVM's own exit count",
            s.workload
        );
        // The VMM process's own memory (PSS outside guest RAM) and its start and CPU time.
        assert!(
            metric("host.vmm_overhead").is_some_and(|x| x > 0.1 && x < 32.0)
                && metric("host.guest_ram_touched").is_some_and(|x| x > 1.0)
                && metric("host.vmm_process_start").is_some_and(|x| x > 0.0)
                && metric("host.cpu_user").is_some()
                && metric("host.cgroup_peak").is_some_and(|x| x > 1.0),
            "{what}: {}: {:?}",
            s.workload,
            s.metrics
                .iter()
                .filter(|m| m.name.starts_with("host."))
                .collect::<Vec<_>>()
        );
        assert!(metric("host.vmm_added").is_none());
        // Guest RAM on transparent huge pages (the default), nested page faults counted, and the
        // result through the virtio console (both kernels have it).
        assert!(
            metric("host.guest_ram_huge").is_some_and(|x| x > 0.0),
            "{what}: {}: guest RAM on huge pages",
            s.workload
        );
        assert!(
            metric("npf.to_agent_start").is_some_and(|x| x > 0.0),
            "{what}: {}: nested page faults to the agent's start",
            s.workload
        );
        assert_eq!(
            agent.route.as_ref().map(|r| r.channel.as_str()),
            Some("virtio-console"),
            "{what}: {}: {:?}",
            s.workload,
            agent.route
        );
        if s.kind.starts_with("io-") {
            assert!(
                metric("disk.requests").is_some_and(|x| x > 0.0),
                "{what}: {}: the I/O went through virtio-blk",
                s.workload
            );
            assert_eq!(
                metric("disk.io_errors"),
                Some(0.0),
                "{what}: {}",
                s.workload
            );
        }
        // The network workloads went through the virtio-net card and its tap in L1's lab, to
        // the peer there: frames both ways, exits per packet, nothing refused or dropped.
        if ["net-stream", "net-rr", "net-crr", "net-udp-rr"].contains(&s.kind.as_str()) {
            assert!(
                metric("net.tx_packets").is_some_and(|x| x > 0.0)
                    && metric("net.rx_packets").is_some_and(|x| x > 0.0)
                    && metric("exits.per_packet").is_some_and(|x| x > 0.0)
                    && metric("exits.userspace_per_packet").is_some()
                    && metric("net.bad_chains") == Some(0.0),
                "{what}: {}: {:?}",
                s.workload,
                s.metrics
                    .iter()
                    .filter(|m| m.name.starts_with("net.") || m.name.contains("per_packet"))
                    .collect::<Vec<_>>()
            );
            if s.kind != "net-stream" {
                assert!(
                    metric("exits.per_transaction").is_some_and(|x| x > 0.0),
                    "{what}: {}",
                    s.workload
                );
            }
        }
        // Reads and writes are counted apart (the agent's phase markers): each phase did its
        // own requests, each with its exits.
        let phases: &[(&str, &str)] = match s.kind.as_str() {
            "io-rand" => &[("4k_read", "read"), ("4k_write", "write")],
            "io-seq" => &[("mib_write", "write"), ("mib_read", "read")],
            _ => &[],
        };
        for (op, phase) in phases {
            assert!(
                metric(&format!("exits.per_{op}")).is_some_and(|x| x > 0.0)
                    && metric(&format!("disk.{phase}.requests")).is_some_and(|x| x > 0.0),
                "{what}: {}: exits per {op} and the {phase} phase's requests",
                s.workload
            );
        }
        if s.kind == "inspect" {
            let inspect = agent.inspect.as_ref().expect("inspect report");
            assert!(inspect.kernel_release.starts_with("6.1."), "{inspect:?}");
            if v.kernel == "debian" {
                assert!(
                    inspect.kernel_release.ends_with("-cloud-amd64"),
                    "{what}: Debian's kernel ran: {inspect:?}"
                );
            }
            assert_ne!(inspect.kernel_release, host_release.trim());
            assert_eq!(inspect.boot_id.len(), 36);
            assert_ne!(inspect.boot_id, host_boot_id.trim());
            assert_eq!(inspect.cpus, v.vcpus, "{what}: the guest sees its vCPUs");
        }
    }
    run
}

#[test]
#[ignore = "boots the emulated HVM test machine (minutes); run with --ignored (./run-tests does)"]
fn every_workload_runs_in_the_emulated_vm_on_both_kernels_with_1_and_2_vcpus() {
    let variants = [
        Variant {
            kernel: "micro",
            vcpus: 1,
            with_native: true,
            jail: false,
        },
        Variant {
            kernel: "debian",
            vcpus: 2,
            with_native: false,
            jail: false,
        },
        Variant {
            kernel: "micro",
            vcpus: 2,
            with_native: false,
            jail: true,
        },
        Variant {
            kernel: "debian",
            vcpus: 1,
            with_native: false,
            jail: true,
        },
    ];
    let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
    // What the parallel runs below share, made once first: QEMU and the L1 kernel (apt cannot
    // install twice at once), and the guest kernels (built or fetched once).
    vm_backend::hvm::HvmMachine::prepare(&mut |m| eprintln!("[hvm] {m}")).expect("HVM machine");
    for k in ["build", "fetch debian"] {
        let mut c = Command::new(ISOLAB);
        c.arg("kernel").args(k.split(' '));
        let o = c.output().unwrap();
        assert!(o.status.success(), "isolab kernel {k}: {}", text(&o.stderr));
    }
    let mut runs = Vec::new();
    // Two at a time: each emulated machine keeps one core busy (ISOLAB_EMULATED_AT_ONCE=1 runs
    // them one by one, on a machine shared with others).
    let at_once = std::env::var("ISOLAB_EMULATED_AT_ONCE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n: &usize| *n > 0)
        .unwrap_or(2);
    for pair in variants.chunks(at_once) {
        let results: Vec<(Output, Option<PathBuf>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = pair
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let dir = tmp.path().join(format!("{}-{}-{i}", v.kernel, v.vcpus));
                    std::fs::create_dir_all(&dir).unwrap();
                    scope.spawn(move || run_variant(v, &dir))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (v, (o, dir)) in pair.iter().zip(results) {
            eprintln!(
                "[emulated vm test] --kernel {} --vcpus {}: exit {:?}",
                v.kernel,
                v.vcpus,
                o.status.code()
            );
            runs.push((v, check_variant(v, &o, dir), text(&o.stdout)));
        }
    }
    // The first run had native beside the VM: the summary gives emulated samples no ratio to
    // native, and says why; the Markdown report labels them.
    let (_, run, stdout) = &runs[0];
    let native = run.samples.iter().filter(|s| s.backend == "native");
    assert_eq!(native.clone().count(), suite_workloads());
    assert!(native
        .into_iter()
        .all(|s| !s.emulated && s.failure.is_none()));
    assert!(stdout.contains("vm (emulated)"), "{stdout}");
    assert!(stdout.contains("correctness only"), "{stdout}");
    let md = Command::new(ISOLAB)
        .args(["report", "--format", "md"])
        .arg(&run.dir)
        .output()
        .unwrap();
    assert!(md.status.success(), "{}", text(&md.stderr));
    assert!(text(&md.stdout).contains("vm (emulated)"));
}
