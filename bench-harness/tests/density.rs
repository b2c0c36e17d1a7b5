//! `isolab density`: the analysis and reports of a stored density run (synthetic, with known
//! costs), and a real density run of native and container instances (as root) that must leave
//! nothing behind, also when it is killed with `kill -9` (then `isolab doctor --clean`).
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{agent, serial};

use bench_harness::density::analysis;
use bench_harness::density::instance::Kind;
use bench_harness::density::render;
use bench_harness::report::ReportFormat;

/// Interrupts a run the test started when the test fails before it has ended that run itself
/// (SIGINT: the run tears down and puts this host's KSM back). Without it a failed assertion left
/// a 50-round run going with this host's KSM switched, for the next tests and the host to meet.
struct StopOnPanic(Option<i32>);

impl StopOnPanic {
    /// The test ended the run itself (its pid may be reused from now on).
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for StopOnPanic {
    fn drop(&mut self) {
        if let (Some(pid), true) = (self.0, std::thread::panicking()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGINT,
            );
        }
    }
}

#[test]
fn the_analysis_recovers_the_known_costs_with_intervals() {
    let tmp = tempfile::tempdir().unwrap();
    let run = common::density_run(tmp.path());
    let s = analysis::summarise(&run);
    for &(kind, per, pss, start) in &common::DENSITY_COSTS {
        let b = s.of(kind).unwrap();
        let m = b.marginal.unwrap();
        // The host's drift (1000 KiB/s) is taken out: the slope is the cost, exactly.
        assert!(
            (m.per_instance_kib - per).abs() < 1e-6,
            "{kind:?}: {m:?} (drift left in?)"
        );
        assert!(m.lo <= per && per <= m.hi && m.hi - m.lo < 20.0, "{m:?}");
        assert!((m.fixed_kib - 2000.0).abs() < 1e-6, "{m:?}");
        let p = b.pss_marginal.unwrap();
        assert!((p.per_instance_kib - pss as f64).abs() < 1e-6);
        let fit = b.fit.unwrap();
        // (available at the baselines − 10% of 16 GiB − fixed) ÷ marginal.
        assert!(fit.lo <= fit.instances && Some(fit.instances) <= fit.hi);
        let largest = b.counts.last().unwrap();
        assert_eq!(largest.count, 100);
        let st = largest.start.unwrap();
        assert_eq!(st.n, 300);
        assert!((st.p50 - (start + 0.49)).abs() < 0.02, "{st:?}");
        // Drop ÷ N at N = 100 is the cost plus the fixed cost's share.
        let d = largest.drop_mib.unwrap();
        assert!((d.median - (per + 20.0) / 1024.0).abs() < 1e-6, "{d:?}");
    }
    let c = s.of(Kind::Container).unwrap();
    let f = s.of(Kind::Floor).unwrap();
    // 900 against 850 KiB per instance with intervals of a few KiB: told apart.
    assert!(!analysis::agree(&c.marginal.unwrap(), &f.marginal.unwrap()));
    assert!(c.counts[2].cgroup_mib.unwrap().median == 0.25);
    assert!(s.of(Kind::Native).unwrap().counts[2].cgroup_mib.is_none());
}

#[test]
fn every_report_format_renders_a_density_run() {
    let tmp = tempfile::tempdir().unwrap();
    let run = common::density_run(tmp.path());
    let term = render::render(&run, ReportFormat::Term).unwrap();
    for want in [
        "marginal MiB/instance",
        "container floor",
        "0.8789 [",
        "instances that fit",
        "cgroup view",
        "do not agree",
    ] {
        assert!(term.contains(want), "{want} missing:\n{term}");
    }
    let html = render::render(&run, ReportFormat::Html).unwrap();
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    roxmltree::Document::parse_with_options(&html, opts).unwrap();
    for chart in [
        "Host memory per instance vs N",
        "Start latency vs N",
        "What grew",
    ] {
        assert!(html.contains(chart), "{chart} missing");
    }
    let csv = render::render(&run, ReportFormat::Csv).unwrap();
    // One line per round and one per instance start, plus the header.
    assert_eq!(csv.lines().count(), 1 + 27 + 3 * 3 * 111);
    let json: serde_json::Value =
        serde_json::from_str(&render::render(&run, ReportFormat::Json).unwrap()).unwrap();
    assert_eq!(json["manifest"]["kind"], "density");
    assert!(json["summary"]["backends"][0]["marginal"]["per_instance_kib"].is_number());
    for f in [ReportFormat::Md, ReportFormat::Latex] {
        assert!(render::render(&run, f).unwrap().contains("container"));
    }
}

const ISOLAB: &str = env!("CARGO_BIN_EXE_isolab");

fn require_root() {
    common::require_root("density runs containers and makes cgroups");
}

fn ksm_run() -> String {
    std::fs::read_to_string(bench_harness::density::ksm::KSM_RUN)
        .expect("this host has KSM (/sys/kernel/mm/ksm)")
        .trim()
        .to_owned()
}

/// The `--ksm` value that changes this host's setting (so the run must put it back).
fn flipped_ksm() -> &'static str {
    if ksm_run() == "1" {
        "off"
    } else {
        "on"
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Files and processes a run made that must be gone: its places (from the manifest), and no
/// process of the agent whose parent is gone or is the test.
fn assert_nothing_left(places: &[std::path::PathBuf]) {
    assert!(!places.is_empty(), "the manifest names the run's places");
    for p in places {
        assert!(!p.exists(), "{} was left behind", p.display());
    }
}

/// A small density run as CI makes it: native, container and the container's floor at N up to
/// 20, with KSM switched for the run. Every instance gets ready, the report has intervals, and
/// afterwards nothing is left: no folder, no cgroup, no registry entry, KSM as the host had it.
#[test]
fn a_small_density_run_measures_every_backend_and_leaves_nothing() {
    require_root();
    let _one = serial();
    let before = ksm_run();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let o = std::process::Command::new(ISOLAB)
        .args([
            "density",
            "--backend",
            "native,container",
            "--count",
            "1,20",
            "--rounds",
            "2",
            "--beside",
            "1",
            "--settle",
            "300ms",
            "--recovery",
            "2s",
            "--samples",
            "3",
            "--sample-every",
            "50ms",
            "--ksm",
            flipped_ksm(),
            "--ksm-settle",
            "2s",
            "--out",
        ])
        .arg(&out)
        .arg("--io-dir")
        .arg(tmp.path())
        .env("ISOLAB_AGENT", agent())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let stdout = text(&o.stdout);
    assert!(stdout.contains("marginal MiB/instance") && stdout.contains("container floor"));
    assert_eq!(ksm_run(), before, "KSM was not put back");
    let dir = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let run = bench_harness::density::record::load(&dir).unwrap();
    assert_eq!(run.rounds.len(), 3 * 2 * 2, "{stdout}");
    for r in &run.rounds {
        assert_eq!(
            r.ready, r.count,
            "{:?} N={}: {:?}",
            r.backend, r.count, r.stopped
        );
        assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
        assert!(r.loaded.is_some() && r.after.is_some());
        assert_eq!(r.pss_kib.len(), r.count);
        assert!(r.pss_kib.iter().all(|&p| p > 0));
        assert!(r.teardown_ms.is_some());
        assert_eq!(r.beside_ms.len(), 1);
        assert_eq!(r.cgroup.is_some(), r.backend == Kind::Container);
    }
    let s = analysis::summarise(&run);
    for k in [Kind::Native, Kind::Container, Kind::Floor] {
        let b = s.of(k).unwrap();
        let m = b.marginal.unwrap();
        assert!(
            m.lo <= m.per_instance_kib && m.per_instance_kib <= m.hi,
            "{m:?}"
        );
        let p = b.pss_marginal.unwrap();
        assert!(p.per_instance_kib > 0.0, "{p:?}");
        assert!(b.counts.iter().all(|c| c.start.is_some()));
    }
    // The container's phases are there.
    let phases = &s.of(Kind::Container).unwrap().counts[0].phases;
    assert!(
        phases.iter().any(|(n, _)| n == "root_pivoted"),
        "{phases:?}"
    );
    assert_nothing_left(&run.manifest.places);
    let registry = bench_harness::run_places::Registry::default();
    assert!(
        !registry
            .records()
            .iter()
            .any(|(_, r)| r.run_id == run.manifest.run_id),
        "the registry entry is left"
    );
    // `isolab report` renders it, charts included.
    let o = std::process::Command::new(ISOLAB)
        .args(["report", "--format", "html", "--charts"])
        .arg(tmp.path().join("charts"))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("Host memory per instance vs N"));
    assert!(tmp.path().join("charts/density_memory.svg").is_file());
}

/// `kill -9` of isolab in the middle of a density run with KSM switched: the instances die with
/// it (parent-death signal), and `isolab doctor --clean` removes what is left and puts KSM back.
#[test]
fn kill_9_then_doctor_clean_leaves_nothing_and_puts_ksm_back() {
    require_root();
    let _one = serial();
    let before = ksm_run();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let mut child = std::process::Command::new(ISOLAB)
        .args([
            "density",
            "--backend",
            "native,container",
            "--count",
            "20",
            "--rounds",
            "50",
            "--settle",
            "2s",
            "--ksm",
            flipped_ksm(),
            "--out",
        ])
        .arg(&out)
        .arg("--io-dir")
        .arg(tmp.path())
        .env("ISOLAB_AGENT", agent())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = StopOnPanic(Some(child.id() as i32));
    // Until its first round has instances up (it settles 2 s with them).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let manifest = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started"
        );
        let m = std::fs::read_dir(&out)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .and_then(|e| std::fs::read_to_string(e.path().join("manifest.json")).ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
        if let Some(m) = m.filter(|m| m["backends"][0]["available"] == true) {
            break m;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_ne!(ksm_run(), before, "the run switched KSM");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    guard.disarm();
    let places: Vec<std::path::PathBuf> = manifest["places"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().into())
        .collect();
    assert!(
        places.iter().any(|p| p.exists()),
        "a kill leaves places to clean"
    );
    let o = std::process::Command::new(ISOLAB)
        .args(["doctor", "--clean"])
        .env("ISOLAB_AGENT", agent())
        .output()
        .unwrap();
    let said = text(&o.stdout);
    assert!(said.contains("removed"), "{said}");
    assert!(said.contains("/sys/kernel/mm/ksm/run"), "{said}");
    assert_nothing_left(&places);
    assert_eq!(ksm_run(), before, "doctor --clean did not put KSM back");
}

/// A VM's memory is split into guest RAM touched and the VMM's own (per VM, PSS of its VMM
/// process) with the guest's view from inside, and KSM's sharing is what grew during the round
/// (its counters are host-wide), with the time it took and the rounds that did not settle.
#[test]
fn a_vm_density_run_shows_the_memory_split_and_what_ksm_shared() {
    let tmp = tempfile::tempdir().unwrap();
    let run = common::density_vm_run(tmp.path());
    let s = analysis::summarise(&run);
    let vm = s.of(Kind::Vm).unwrap();
    let at100 = vm.counts.iter().find(|c| c.count == 100).unwrap();
    let split = at100.vm.unwrap();
    assert_eq!(split.guest_ram_mib.median, 30.0);
    assert_eq!(split.vmm_overhead_mib.median, 2.0);
    assert_eq!(split.guest_used_mib.unwrap().median, 20.0);
    assert_eq!(split.guest_total_mib.unwrap().median, 120.0);
    let k = at100.ksm.unwrap();
    // 99 × 1000 pages merged into half as many copies; the 7 found before are not the VMs'.
    assert_eq!((k.pages_shared, k.pages_sharing), (49_500.0, 49_500.0));
    assert!(
        (k.saved_mib - 49_500.0 * 4.0 / 1024.0).abs() < 1e-9,
        "{k:?}"
    );
    assert_eq!((k.rounds, k.unsettled, k.waited_ms), (3, 1, 4000.0));
    // The headroom is 10% of the memory the VMs ran in (the emulated machine's 4 GiB).
    assert_eq!(vm.fit.unwrap().headroom_kib, (4 << 20) / 10);
    let term = render::render(&run, ReportFormat::Term).unwrap();
    for want in [
        "vm (emulated) at N = 100: per VM (MiB, PSS of its VMM process",
        "guest RAM touched 30",
        "VMM overhead 2",
        "use 20.00 [20.00, 20.00] of the 120.0",
        "KSM merged 99,000 pages into 49,500",
        "1 round(s) did not settle",
        "vm ran inside the emulated machine",
        "times are emulated, never performance figures",
    ] {
        assert!(term.contains(want), "{want} missing:\n{term}");
    }
    // Its times are emulated: the start chart leaves them out and says why.
    let (charts, notes) = render::charts(&run).unwrap();
    assert!(
        !charts.iter().any(|c| c.name == "density_start"),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("emulated start times are not performance figures")),
        "{notes:?}"
    );
    // Other backends have neither.
    let other = common::density_run(&tmp.path().join("other"));
    let s = analysis::summarise(&other);
    assert!(s
        .backends
        .iter()
        .all(|b| b.counts.iter().all(|c| c.vm.is_none() && c.ksm.is_none())));
}

/// Ctrl-C (SIGINT) in the middle of a density run: it stops, tears down every instance, keeps
/// the rounds it measured (loadable, the report renders them), says it was interrupted (never
/// that instances failed: Ctrl-C kills the containers it stops), exits with 130, puts KSM back
/// and leaves nothing behind.
#[test]
fn ctrl_c_stops_the_run_keeps_what_it_measured_and_leaves_nothing() {
    require_root();
    let _one = serial();
    let before = ksm_run();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let child = std::process::Command::new(ISOLAB)
        .args([
            "density",
            "--backend",
            "container",
            "--no-floor",
            "--count",
            "3,400",
            "--parallel",
            "50",
            "--rounds",
            "2",
            "--beside",
            "0",
            "--settle",
            "200ms",
            "--recovery",
            "1s",
            "--samples",
            "2",
            "--sample-every",
            "20ms",
            "--ksm",
            flipped_ksm(),
            "--ksm-settle",
            "500ms",
            "--out",
        ])
        .arg(&out)
        .arg("--io-dir")
        .arg(tmp.path())
        .env("ISOLAB_AGENT", agent())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = StopOnPanic(Some(child.id() as i32));
    // Until both rounds of N = 3 are stored; then the storm of 400 begins.
    let rounds_file = || {
        std::fs::read_dir(&out)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.path().join("rounds.jsonl"))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the first rounds never came"
        );
        let lines = rounds_file()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .map_or(0, |t| t.lines().count());
        if lines >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    guard.disarm();
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stdout.contains("interrupted"), "{stdout}");
    let dir = rounds_file().unwrap().parent().unwrap().to_path_buf();
    let run = bench_harness::density::record::load(&dir).unwrap();
    assert_eq!(
        run.manifest.status,
        bench_harness::manifest::RunStatus::Interrupted
    );
    let first: Vec<_> = run.rounds.iter().filter(|r| r.count == 3).collect();
    assert_eq!(first.len(), 2, "the rounds before Ctrl-C are kept");
    assert!(first.iter().all(|r| r.ready == 3 && r.stopped.is_none()));
    for s in &run.manifest.stops {
        assert_eq!(s.kind, "interrupted", "{s:?}");
    }
    for r in &run.rounds {
        assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
        if let Some(s) = &r.stopped {
            assert_eq!(s.kind, "interrupted", "{s:?}");
        }
    }
    assert_nothing_left(&run.manifest.places);
    assert_eq!(ksm_run(), before, "KSM was not put back");
    assert_eq!(
        container_backend::running_containers(),
        0,
        "this process started none"
    );
    let o = std::process::Command::new(ISOLAB)
        .args(["report", "--format", "md"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
}

/// VMs in the emulated machine (`--vm-in-emulator`, one boot for every round), N up to 4 with
/// `--ksm on`: every VM gets ready in its own VMM process, its memory is split into guest RAM
/// touched and the VMM's own (PSS), its guest says what it uses from inside, KSM shares pages
/// between the guests, nothing is left, and this host's KSM switch is not touched (the run in
/// the emulated machine switches that machine's). Slow (an emulated machine), so `#[ignore]`d;
/// `./run-tests` runs it. Needs root and the micro kernel (built on first use).
#[test]
#[ignore]
fn vms_in_the_emulated_machine_report_their_memory_split_and_what_ksm_shares() {
    require_root();
    let _one = serial();
    let before = ksm_run();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let run = std::process::Command::new(ISOLAB)
        .args([
            "density",
            "--backend",
            "vm",
            "--vm-in-emulator",
            "--count",
            "1,4",
            "--rounds",
            "1",
            "--beside",
            "1",
            "--ksm",
            "on",
            "--ksm-settle",
            "60s",
            "--out",
        ])
        .arg(&out)
        .arg("--io-dir")
        .arg(tmp.path())
        .env("ISOLAB_AGENT", agent())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // This host's KSM switch is watched for the whole run, not only compared at its end (the
    // run puts back what it changed, so the end alone would not show a switch it should not
    // have touched).
    let waiter = std::thread::spawn(move || run.wait_with_output().unwrap());
    let mut seen = Vec::new();
    while !waiter.is_finished() {
        let now = ksm_run();
        if now != before && !seen.contains(&now) {
            seen.push(now);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let o = waiter.join().unwrap();
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(
        seen.is_empty(),
        "this host's KSM was switched from {before} to {seen:?} during the run"
    );
    assert_eq!(ksm_run(), before, "this host's KSM was changed");
    let dir = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let run = bench_harness::density::record::load(&dir).unwrap();
    assert_eq!(run.rounds.len(), 2, "{stdout}\n{stderr}");
    for r in &run.rounds {
        assert_eq!(r.backend, Kind::Vm);
        assert_eq!(r.ready, r.count, "N={}: {:?}\n{stderr}", r.count, r.stopped);
        assert!(r.left_behind.is_empty(), "{:?}", r.left_behind);
        assert_eq!(r.beside_ms.len(), 1);
        let m = r.vm_memory.expect("the VMs' memory split");
        assert_eq!((m.vms, m.inside_vms), (r.count, r.count), "{m:?}");
        // An idle micro-kernel guest touches megabytes; the VMM's own is a few MiB.
        assert!(m.guest_ram_kib >= (r.count as u64) << 10, "{m:?}");
        assert!(m.vmm_overhead_kib > 0, "{m:?}");
        assert!(m.vmm_overhead_kib < (r.count as u64) * (32 << 10), "{m:?}");
        assert!(
            m.guest_used_kib > 0 && m.guest_total_kib > m.guest_used_kib,
            "{m:?}"
        );
        // PSS of the VMM processes is the split's sum (within rounding, both from smaps).
        let pss: u64 = r.pss_kib.iter().sum();
        let split = m.guest_ram_kib + m.vmm_overhead_kib;
        assert!(
            pss.abs_diff(split) <= split / 10 + 64,
            "PSS {pss} KiB, split {split} KiB"
        );
        let k = r.ksm.expect("KSM settled");
        assert_eq!(k.state.run, 1);
    }
    // Four guests booting the same kernel have pages KSM can share.
    let s = analysis::summarise(&run);
    // Labelled as emulated wherever it is shown; its times are kept off the start chart.
    assert!(s.of(Kind::Vm).unwrap().emulated);
    assert!(stdout.contains("vm (emulated)"), "{stdout}");
    let at4 = s.of(Kind::Vm).unwrap().counts.last().unwrap();
    assert_eq!(at4.count, 4);
    let k = at4.ksm.expect("KSM at N = 4");
    assert!(k.pages_sharing > 0.0, "{k:?}");
    assert!(at4.vm.is_some());
    let vm = run
        .manifest
        .backends
        .iter()
        .find(|b| b.backend == Kind::Vm)
        .unwrap();
    assert_eq!(vm.facts.get("emulated").map(String::as_str), Some("true"));
    assert!(vm.facts.contains_key("emulated_machine"), "{:?}", vm.facts);
    assert!(
        stdout.contains("ran inside the emulated machine") && stdout.contains("KSM merged"),
        "{stdout}"
    );
    assert_nothing_left(&run.manifest.places);
}

/// A run with VMs from the emulated machine beside native and container: the start chart draws
/// the real starts only and names the VMs it left out; the memory chart has them, labelled.
#[test]
fn the_start_chart_leaves_emulated_vms_out_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let run = common::density_run_with_vms(tmp.path());
    let (charts, notes) = render::charts(&run).unwrap();
    let svg = |name: &str| {
        &charts
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} missing: {notes:?}"))
            .svg
    };
    let start = svg("density_start");
    assert!(start.contains("container p50"), "{start}");
    assert!(!start.contains("vm"), "{start}");
    assert!(
        notes
            .iter()
            .any(|n| n.contains("density_start: vm (emulated) left out")),
        "{notes:?}"
    );
    assert!(svg("density_memory").contains("vm (emulated)"));
}
