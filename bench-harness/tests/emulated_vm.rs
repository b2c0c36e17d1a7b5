//! `isolab run --vm-in-emulator` as a user runs it: every workload, I/O included (on ext4 on the
//! VM's virtio-blk disk), in the VM inside the HVM test machine (QEMU TCG with AMD-V, kvm-amd in
//! L1) gives a valid result, labelled emulated, with the guest's own kernel; `--console` shows the
//! guests' consoles live; the reports label the samples.
//!
//! Slow (one emulated L1 boot, a few minutes), so `#[ignore]`d in a plain `cargo test`;
//! `./run-tests` runs it with `--ignored`. Needs root (the native backend beside it is plain, but
//! the suite's scratch folders are in /var/tmp) and the micro kernel (built on first use).
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use bench_harness::store;

const ISOLAB: &str = env!("CARGO_BIN_EXE_isolab");

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn emulated_suite() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/suites/emulated.toml"))
}

#[test]
#[ignore = "boots the emulated HVM test machine (minutes); run with --ignored (./run-tests does)"]
fn every_workload_runs_in_the_emulated_vm() {
    let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
    let out = tmp.path().join("results");
    let suite = emulated_suite();
    let agent = workloads::locate::locate_agent(None).unwrap_or_else(|e| panic!("{e}"));
    let o = Command::new(ISOLAB)
        .args([
            "run",
            "--backend",
            "native,vm",
            "--vm-in-emulator",
            "--console",
        ])
        .arg("--suite")
        .arg(&suite)
        .arg("--out")
        .arg(&out)
        .arg("--io-dir")
        .arg(tmp.path())
        .args(["--seed", "7", "--timeout", "300"])
        .env("ISOLAB_AGENT", &agent)
        .output()
        .unwrap();
    let stderr = text(&o.stderr);
    let stdout = text(&o.stdout);
    assert!(
        o.status.success(),
        "isolab run failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // --console: the guests' consoles came through L1's console as they ran.
    assert!(
        stderr.contains("[L1]") && stderr.contains("Linux version 6.1"),
        "no live console:\n{stderr}"
    );
    let run_dir = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .expect("a run folder")
        .unwrap()
        .path();
    let run = store::load_run(&run_dir).unwrap();
    let vm: Vec<_> = run.samples.iter().filter(|s| s.backend == "vm").collect();
    let native: Vec<_> = run
        .samples
        .iter()
        .filter(|s| s.backend == "native")
        .collect();
    assert_eq!(vm.len(), 13, "one VM trial per workload");
    assert_eq!(native.len(), 13);
    assert!(native.iter().all(|s| !s.emulated && s.failure.is_none()));
    let host_release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let host_boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    for s in &vm {
        assert!(s.emulated, "{}: not labelled emulated", s.workload);
        assert!(
            s.failure.is_none(),
            "{} failed in the VM: {:?}\n{}",
            s.workload,
            s.failure,
            s.log_tail.as_deref().unwrap_or("")
        );
        let agent = s.agent.as_ref().expect("agent result");
        assert!(agent.was_pid1, "{}: the agent was /init", s.workload);
        assert!(!agent.metrics.is_empty() || s.kind == "noop" || s.kind == "inspect");
        let names: Vec<&str> = s.timeline.iter().map(|p| p.name.as_str()).collect();
        for phase in ["first_kvm_run", "agent_ready", "cleaned_up"] {
            assert!(names.contains(&phase), "{}: timeline {names:?}", s.workload);
        }
        assert!(
            s.metrics.iter().any(|m| m.name == "exits.to_agent_start"),
            "{}",
            s.workload
        );
        if s.kind == "inspect" {
            let inspect = agent.inspect.as_ref().expect("inspect report");
            assert!(inspect.kernel_release.starts_with("6.1."), "{inspect:?}");
            assert_ne!(inspect.kernel_release, host_release.trim());
            assert_eq!(inspect.boot_id.len(), 36);
            assert_ne!(inspect.boot_id, host_boot_id.trim());
        }
    }
    // The summary gives emulated samples no ratio to native, and says why.
    assert!(stdout.contains("vm (emulated)"), "{stdout}");
    assert!(stdout.contains("correctness only"), "{stdout}");
    let md = Command::new(ISOLAB)
        .args(["report", "--format", "md"])
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(md.status.success(), "{}", text(&md.stderr));
    assert!(text(&md.stdout).contains("vm (emulated)"));
}
