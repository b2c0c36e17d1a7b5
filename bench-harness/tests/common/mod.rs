//! What the report and book tests share: a synthetic run turned into one with factor columns and
//! an A/A check.
#![allow(missing_docs, clippy::unwrap_used, dead_code)]

pub mod browser;

/// The tests of one file that start isolab runs go one at a time: every run cleans what dead runs
/// left (and the density runs switch KSM, host-wide), so two at once would see each other's.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds the file's one-at-a-time lock (a test that failed while holding it does not block the rest).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Fails, saying `why` root is needed, unless the test runs as root.
pub fn require_root(why: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "{why}: run the tests as root"
    );
}

/// The agent this build made (`ISOLAB_AGENT`, else next to the test's executables).
pub fn agent() -> std::path::PathBuf {
    workloads::locate::locate_agent(None).unwrap_or_else(|e| panic!("{e}"))
}

use std::collections::BTreeMap;

use bench_harness::factors::FactorLevels;
use bench_harness::manifest::ColumnState;
use bench_harness::store::StoredRun;

/// `run` as `isolab run --factor userns=off,on --aa native` records it: every native sample
/// becomes column `native A` plus a copy in `native A'` whose values are `aa_scale` times as
/// large, every container sample `container userns=off` plus a copy in `container userns=on`
/// `userns_scale` times as large. Other samples stay as they are.
pub fn with_factor_and_aa(mut run: StoredRun, aa_scale: f64, userns_scale: f64) -> StoredRun {
    run.manifest.suite.factors = vec![FactorLevels {
        name: "userns".into(),
        values: vec!["off".into(), "on".into()],
    }];
    run.manifest.suite.aa = Some("native".into());
    run.manifest.columns = run
        .manifest
        .suite
        .columns()
        .unwrap()
        .into_iter()
        .map(|column| ColumnState {
            column,
            available: true,
            note: None,
            facts: BTreeMap::new(),
        })
        .collect();
    let mut samples = Vec::new();
    for mut s in std::mem::take(&mut run.samples) {
        let (name, first, second, scale) = match s.backend.as_str() {
            "native" => ("aa", "A", "A'", aa_scale),
            "container" => ("userns", "off", "on", userns_scale),
            _ => {
                samples.push(s);
                continue;
            }
        };
        s.factors.insert(name.into(), first.into());
        let mut copy = s.clone();
        copy.factors.insert(name.into(), second.into());
        for m in &mut copy.metrics {
            m.value *= scale;
        }
        samples.push(s);
        samples.push(copy);
    }
    for (i, s) in samples.iter_mut().enumerate() {
        s.trial = i;
    }
    run.manifest.planned_trials = samples.len();
    run.samples = samples;
    run
}

/// What a synthetic density run's backends cost: (kind, KiB per instance, PSS KiB per instance,
/// start ms).
pub const DENSITY_COSTS: [(bench_harness::density::instance::Kind, f64, u64, f64); 3] = [
    (
        bench_harness::density::instance::Kind::Native,
        400.0,
        150,
        1.0,
    ),
    (
        bench_harness::density::instance::Kind::Container,
        900.0,
        300,
        3.0,
    ),
    (
        bench_harness::density::instance::Kind::Floor,
        850.0,
        280,
        1.6,
    ),
];

/// A density run as `isolab density --count 1,10,100 --rounds 3` stores it, written to
/// `dir/<id>` and read back: every backend of [`DENSITY_COSTS`] costs exactly its KiB per
/// instance plus 2000 KiB fixed, with ±300 KiB of host noise per round that does not grow with N,
/// while the host drifts by 1000 KiB per second on its own (which the analysis must take out).
pub fn density_run(dir: &std::path::Path) -> bench_harness::density::record::DensityRun {
    use bench_harness::backend::SandboxLimits;
    use bench_harness::density::ksm::KsmMode;
    use bench_harness::density::meter::{Meminfo, Reading};
    use bench_harness::density::record::*;
    use bench_harness::host::{CgroupLayout, KvmFlavour};
    use bench_harness::manifest::{HostInfo, RunStatus};

    let id = "density-20261201-000000";
    let mut w = RoundWriter::create(dir, id).unwrap();
    let manifest = DensityManifest {
        kind: DENSITY_KIND.into(),
        run_id: id.into(),
        started_at: "2026-12-01T00:00:00Z".into(),
        ended_at: Some("2026-12-01T00:10:00Z".into()),
        wall_s: Some(600.0),
        status: RunStatus::Complete,
        isolab_version: "0.1.0".into(),
        git_commit: "abc".into(),
        command: vec!["isolab".into(), "density".into()],
        agent_sha256: "00".into(),
        host: HostInfo {
            hostname: "testhost".into(),
            kernel: "6.1.0-host".into(),
            cpu_model: "Test CPU".into(),
            cores: 4,
            memory_mib: 16384,
            cpu_governor: None,
            kvm: KvmFlavour::Pvm,
            cgroups: CgroupLayout::V2,
            boot_id: "b00t".into(),
            platform: None,
        },
        backends: DENSITY_COSTS
            .iter()
            .map(|c| BackendEntry {
                backend: c.0,
                available: true,
                note: None,
                facts: BTreeMap::new(),
            })
            .collect(),
        counts: vec![1, 10, 100],
        rounds: 3,
        parallel: Parallel::At(1),
        working_set_kib: 0,
        beside: 2,
        headroom_pct: 10.0,
        floor_pct: 10.0,
        settle_s: 2.0,
        ksm: KsmMode::Host,
        ksm_host: None,
        limits: SandboxLimits::default(),
        open_files: (20000, 20000),
        stops: Vec::new(),
        places: Vec::new(),
    };
    w.write_manifest(&manifest).unwrap();
    let reading = |available: f64, anon: f64, at_s: f64| Reading {
        meminfo: Meminfo {
            mem_total: 16384 * 1024,
            mem_available: available.round() as u64,
            anon: anon.round() as u64,
            slab_unreclaimable: 50_000,
            ..Meminfo::default()
        },
        available_range: (available as u64 - 100, available as u64 + 100),
        samples: 5,
        at_s,
    };
    let mut t = 100.0;
    for &(kind, per, pss, start_ms) in &DENSITY_COSTS {
        for count in [1usize, 10, 100] {
            for round in 0..3u32 {
                let noise = [-300.0, 0.0, 300.0][round as usize];
                let base = 12_000_000.0 + 1000.0 * t;
                let took = per * count as f64 + 2000.0 + noise;
                // Read 1 s after the baseline, the after 2 s later: the host gave back 1000
                // KiB a second meanwhile.
                let loaded = reading(base + 1000.0 - took, 800_000.0 + took, t + 1.0);
                let rec = RoundRecord {
                    ready: count,
                    loaded: Some(loaded),
                    after: Some(reading(base + 3000.0, 800_000.0, t + 3.0)),
                    settled_s: 2.0,
                    pss_kib: vec![pss; count],
                    instances_anon_kib: Some(per as u64 * count as u64),
                    cgroup: (kind == bench_harness::density::instance::Kind::Container).then(
                        || CgroupTotals {
                            charged_kib: 256 * count as u64,
                            anon_kib: 100 * count as u64,
                            file_kib: 0,
                            kernel_kib: 156 * count as u64,
                        },
                    ),
                    starts: (0..count)
                        .map(|i| StartRecord {
                            ready_ms: Some(start_ms + 0.01 * i as f64),
                            since_storm_ms: Some((start_ms + 0.5) * (i + 1) as f64),
                            phases: vec![
                                ("exec".into(), start_ms * 0.5),
                                ("waiting".into(), start_ms + 0.01 * i as f64),
                            ],
                            failure: None,
                        })
                        .collect(),
                    storm_ms: Some((start_ms + 0.5) * count as f64),
                    beside_ms: vec![start_ms * 1.1, start_ms * 1.2],
                    teardown_ms: Some(0.3 * count as f64),
                    recovery_ms: Some(120.0),
                    ..RoundRecord::empty(kind, count, round, 1, reading(base, 800_000.0, t))
                };
                w.append(&rec).unwrap();
                t += 10.0;
            }
        }
    }
    bench_harness::density::record::load(&dir.join(id)).unwrap()
}

/// A synthetic density run of VMs with `--ksm on`, from [`density_run`]'s native rounds: each
/// VM's VMM process holds 30 MiB of guest RAM and 2 MiB of its own (PSS), its guest says it uses
/// 20 MiB of the 120 MiB its kernel manages, and KSM merges 1000 pages per VM beyond the first
/// into 500 (and found 7 shared pages of someone else's before the round).
#[allow(dead_code)]
pub fn density_vm_run(dir: &std::path::Path) -> bench_harness::density::record::DensityRun {
    use bench_harness::density::instance::Kind;
    use bench_harness::density::ksm::{KsmMode, KsmSettled, KsmState};
    use bench_harness::density::record::*;
    use workloads::result::MemoryInside;
    let scratch = tempfile::tempdir().unwrap();
    let base = density_run(scratch.path());
    let mut manifest = base.manifest.clone();
    manifest.run_id = "density-20261201-000001".into();
    manifest.ksm = KsmMode::On;
    manifest.backends.retain(|b| b.backend == Kind::Native);
    manifest.backends[0].backend = Kind::Vm;
    manifest.backends[0]
        .facts
        .insert("emulated".into(), "true".into());
    let mut w = RoundWriter::create(dir, &manifest.run_id).unwrap();
    w.write_manifest(&manifest).unwrap();
    let ksm = |shared: u64, sharing: u64| KsmState {
        run: 1,
        pages_shared: shared,
        pages_sharing: sharing,
        full_scans: 3,
    };
    for r in base.rounds.iter().filter(|r| r.backend == Kind::Native) {
        let mut r = r.clone();
        r.backend = Kind::Vm;
        // Measured in an emulated machine of 4 GiB.
        for reading in [Some(&mut r.baseline), r.loaded.as_mut(), r.after.as_mut()]
            .into_iter()
            .flatten()
        {
            reading.meminfo.mem_total = 4 << 20;
        }
        let mut t = VmMemoryTotals::default();
        for _ in 0..r.ready {
            t.add(VmMemory {
                guest_ram_kib: 30 * 1024,
                vmm_overhead_kib: 2 * 1024,
            });
            t.add_inside(MemoryInside {
                mem_total_kib: 120 * 1024,
                mem_available_kib: 100 * 1024,
            });
        }
        r.vm_memory = Some(t);
        r.ksm_before = Some(ksm(7, 7));
        let merged = 1000 * (r.ready as u64 - 1);
        r.ksm = Some(KsmSettled {
            state: ksm(7 + merged / 2, 7 + merged / 2),
            waited_ms: 4000,
            settled: r.round != 2,
        });
        w.append(&r).unwrap();
    }
    load(&dir.join(&manifest.run_id)).unwrap()
}

/// [`density_run`] with the VMs of [`density_vm_run`] in the same run, as `isolab density
/// --backend native,container,vm --vm-in-emulator --ksm on` makes it: the host's rounds, then the
/// VMs' rounds from the emulated machine; same id as [`density_run`].
#[allow(dead_code)]
pub fn density_run_with_vms(dir: &std::path::Path) -> bench_harness::density::record::DensityRun {
    use bench_harness::density::ksm::KsmMode;
    use bench_harness::density::record::*;
    let scratch = tempfile::tempdir().unwrap();
    let host = density_run(&scratch.path().join("host"));
    let vms = density_vm_run(&scratch.path().join("vms"));
    let mut manifest = host.manifest.clone();
    manifest.ksm = KsmMode::On;
    manifest.backends.extend(vms.manifest.backends.clone());
    let mut w = RoundWriter::create(dir, &manifest.run_id).unwrap();
    w.write_manifest(&manifest).unwrap();
    for r in host.rounds.iter().chain(&vms.rounds) {
        w.append(r).unwrap();
    }
    load(&dir.join(&manifest.run_id)).unwrap()
}

/// `isolab run --suite SUITE --out OUT --io-dir IO --seed SEED` with the agent of this build and
/// no stdin, as the tests that start real runs call it.
pub fn isolab_run(
    suite: &std::path::Path,
    out: &std::path::Path,
    io: &std::path::Path,
    seed: u64,
) -> std::process::Command {
    let agent = workloads::locate::locate_agent(None).unwrap_or_else(|e| panic!("{e}"));
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_isolab"));
    c.args(["run", "--suite"])
        .arg(suite)
        .arg("--out")
        .arg(out)
        .arg("--io-dir")
        .arg(io)
        .args(["--seed", &seed.to_string()])
        .env("ISOLAB_AGENT", agent)
        .stdin(std::process::Stdio::null());
    c
}
