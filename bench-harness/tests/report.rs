//! Reports, charts and comparisons on synthetic runs with every backend, emulated VM samples,
//! failed trials, partial runs and missing backends.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use bench_harness::backend::{BackendKind, Phase, TrialFailure};
use bench_harness::host::{CgroupLayout, KvmFlavour};
use bench_harness::manifest::{BackendState, HostInfo, Manifest, RunStatus};
use bench_harness::report::{
    build_charts, compare, render_report, write_charts, CompareFormat, ReportFormat,
};
use bench_harness::sample::Sample;
use bench_harness::store::StoredRun;
use bench_harness::suite::Suite;
use workloads::Metric;

const SUITE: &str = r#"
reps = 8
warmup = 1
backends = ["native", "container", "vm"]
[[workload]]
kind = "noop"
[[workload]]
kind = "cpu"
[[workload]]
kind = "io-rand"
[[workload]]
kind = "io-fsync"
"#;

fn manifest(run_id: &str, kernel: &str, status: RunStatus, planned: usize) -> Manifest {
    let mut backends = BTreeMap::new();
    for b in ["native", "container", "vm"] {
        backends.insert(
            b.to_string(),
            BackendState {
                available: true,
                note: None,
                facts: BTreeMap::new(),
            },
        );
    }
    Manifest {
        run_id: run_id.into(),
        started_at: "2026-11-26T07:00:00Z".into(),
        ended_at: Some("2026-11-26T07:10:00Z".into()),
        wall_s: Some(600.0),
        status,
        isolab_version: "0.1.0".into(),
        git_commit: "abc123".into(),
        command: vec!["isolab".into(), "run".into()],
        agent_sha256: "00ff".into(),
        agent_path: "/x/isolab-agent".into(),
        host: HostInfo {
            hostname: "testhost".into(),
            kernel: kernel.into(),
            cpu_model: "Test CPU @ 3 GHz".into(),
            cores: 2,
            memory_mib: 4096,
            cpu_governor: None,
            kvm: KvmFlavour::HardwareIntel,
            cgroups: CgroupLayout::V2,
            boot_id: "b00t".into(),
            platform: None,
        },
        suite: Suite::parse(SUITE, "test suite").unwrap(),
        seed: 42,
        planned_trials: planned,
        backends,
        columns: Vec::new(),
        until_ci: None,
        lab_network: BTreeMap::new(),
    }
}

/// Deterministic jitter of ±2% around `v`.
fn jit(v: f64, rep: u32) -> f64 {
    v * (1.0 + 0.01 * (f64::from((rep * 7) % 5) - 2.0))
}

fn ms(x: f64) -> u64 {
    (x * 1e6) as u64
}

fn timeline(backend: &str) -> Vec<Phase> {
    let phases: &[(&str, f64)] = match backend {
        "native" => &[
            ("start", 0.0),
            ("spawned", 0.6),
            ("agent_ready", 1.1),
            ("workload_start", 1.15),
            ("workload_end", 1.2),
            ("exited", 1.5),
            ("cleaned_up", 1.6),
        ],
        "container" => &[
            ("start", 0.0),
            ("clone_returned", 2.5),
            ("agent_ready", 9.0),
            ("workload_start", 9.05),
            ("workload_end", 9.1),
            ("exited", 9.8),
            ("cleaned_up", 14.0),
        ],
        _ => &[
            ("start", 0.0),
            ("first_kvm_run", 4.0),
            ("agent_ready", 95.0),
            ("workload_start", 95.1),
            ("workload_end", 95.2),
            ("exited", 101.0),
            ("cleaned_up", 103.0),
        ],
    };
    phases
        .iter()
        .map(|(n, t)| Phase {
            name: (*n).into(),
            at_ns: ms(*t),
        })
        .collect()
}

fn metrics(backend: &str, kind: &str, rep: u32, emulated: bool) -> Vec<Metric> {
    let slow = match (backend, emulated) {
        (_, true) => 20.0,
        ("native", _) => 1.0,
        ("container", _) => 1.03,
        _ => 1.15,
    };
    let mut m = Vec::new();
    match kind {
        "noop" => {
            let start = match backend {
                "native" => 1.1,
                "container" => 9.0,
                _ => 95.0,
            };
            m.push(Metric::lower(
                "host.start_to_ready",
                "ms",
                jit(start * slow, rep),
            ));
            match backend {
                "native" => m.push(Metric::lower("host.peak_rss", "MiB", jit(2.0, rep))),
                "container" => {
                    m.push(Metric::lower("host.cgroup_peak", "MiB", jit(6.0, rep)));
                    m.push(Metric::lower("host.cgroup_anon", "MiB", jit(1.5, rep)));
                    m.push(Metric::lower("host.cgroup_file", "MiB", jit(3.0, rep)));
                    m.push(Metric::lower("host.cgroup_kernel", "MiB", jit(0.8, rep)));
                }
                _ => {
                    m.push(Metric::lower("host.vmm_overhead", "MiB", jit(7.0, rep)));
                    m.push(Metric::lower(
                        "host.guest_ram_touched",
                        "MiB",
                        jit(38.0, rep),
                    ));
                    m.push(Metric::lower("exits.total", "exits", 5200.0));
                    m.push(Metric::lower("exits.io_out.serial", "exits", 3000.0));
                    m.push(Metric::lower("exits.mmio_write", "exits", 1200.0));
                    m.push(Metric::lower("exits.hlt", "exits", 800.0));
                    m.push(Metric::lower("exits.io_in", "exits", 200.0));
                    m.push(Metric::lower("exits.to_agent_start", "exits", 4000.0));
                }
            }
        }
        "cpu" => {
            m.push(Metric::higher(
                "sha256_throughput",
                "MB/s",
                jit(500.0 / slow, rep),
            ));
            m.push(Metric::higher(
                "matmul_gflops",
                "GFLOP/s",
                jit(2.0 / slow, rep),
            ));
            if backend == "vm" {
                m.push(Metric::lower("exits.total", "exits", 900.0));
                m.push(Metric::lower("exits.io_out.serial", "exits", 700.0));
                m.push(Metric::lower("exits.hlt", "exits", 200.0));
            }
        }
        "io-rand" => {
            m.push(Metric::higher(
                "rand_read_iops",
                "IOPS",
                jit(9000.0 / slow, rep),
            ));
            m.push(Metric::lower("rand_read_p50", "µs", jit(110.0 * slow, rep)));
            m.push(Metric::lower("rand_read_p99", "µs", jit(400.0 * slow, rep)));
            if backend == "vm" {
                // What the VM backend derives over the workload window.
                m.push(Metric::lower("exits.per_4k_io", "exits/op", jit(8.7, rep)));
                m.push(Metric::lower("exits.userspace_per_4k_io", "exits/op", 2.0));
            }
        }
        "io-fsync" => {
            m.push(Metric::lower("fsync_p50", "µs", jit(900.0 * slow, rep)));
            m.push(Metric::lower("fsync_p99", "µs", jit(2500.0 * slow, rep)));
        }
        _ => {}
    }
    m.push(Metric::lower("host.wall", "ms", jit(10.0 * slow, rep)));
    m
}

fn sample(trial: usize, backend: &str, kind: &str, rep: u32, warmup: bool) -> Sample {
    Sample {
        trial,
        backend: backend.into(),
        factors: BTreeMap::new(),
        workload: kind.into(),
        kind: kind.into(),
        repetition: rep,
        warmup,
        started_at: "2026-11-26T07:00:01Z".into(),
        failure: None,
        emulated: false,
        metrics: metrics(backend, kind, rep, false),
        timeline: timeline(backend),
        agent: None,
        log_tail: None,
    }
}

/// A full run: warm-up, 8 repetitions on three backends, 3 emulated VM samples per workload,
/// two failed container trials and one VM timeout.
fn full_run(run_id: &str, kernel: &str) -> StoredRun {
    let kinds = ["noop", "cpu", "io-rand", "io-fsync"];
    let mut samples = Vec::new();
    let mut t = 0;
    let mut push = |s: Sample, samples: &mut Vec<Sample>| {
        let mut s = s;
        s.trial = t;
        t += 1;
        samples.push(s);
    };
    for k in kinds {
        for b in ["native", "container", "vm"] {
            push(sample(0, b, k, 0, true), &mut samples);
        }
    }
    for rep in 0..8 {
        for k in kinds {
            for b in ["native", "container", "vm"] {
                let mut s = sample(0, b, k, rep, false);
                if b == "container" && k == "io-fsync" && rep < 2 {
                    s.failure = Some(TrialFailure::WorkloadError {
                        message: "fsync: Invalid argument, O_DIRECT on overlay".into(),
                    });
                    s.metrics.clear();
                    s.log_tail = Some("fsync failed".into());
                }
                if b == "vm" && k == "cpu" && rep == 7 {
                    s.failure = Some(TrialFailure::Timeout { after_s: 120.0 });
                    s.metrics = vec![Metric::lower("host.wall", "ms", 120_000.0)];
                }
                push(s, &mut samples);
            }
        }
    }
    for rep in 0..3 {
        for k in kinds {
            let mut s = sample(0, "vm", k, rep, false);
            s.emulated = true;
            s.metrics = metrics("vm", k, rep, true);
            push(s, &mut samples);
        }
    }
    let n = samples.len();
    StoredRun {
        dir: PathBuf::from("/results/").join(run_id),
        manifest: manifest(run_id, kernel, RunStatus::Complete, n),
        samples,
        torn_tail: false,
    }
}

const ALL: [ReportFormat; 6] = [
    ReportFormat::Term,
    ReportFormat::Md,
    ReportFormat::Html,
    ReportFormat::Csv,
    ReportFormat::Latex,
    ReportFormat::Json,
];

fn parse_xml(text: &str) {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    if let Err(e) = roxmltree::Document::parse_with_options(text, opts) {
        let line = e.pos().row as usize;
        let context: Vec<&str> = text.lines().skip(line.saturating_sub(3)).take(5).collect();
        panic!("not well-formed XML: {e}\n{}", context.join("\n"));
    }
}

#[test]
fn html_and_every_svg_are_well_formed_and_say_what_matters() {
    let run = full_run("full-1", "6.1.0-test");
    let html = render_report(&run, ReportFormat::Html).unwrap();
    parse_xml(&html);
    let doc = roxmltree::Document::parse_with_options(
        &html,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .unwrap();
    let svgs = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "svg")
        .count();
    let (charts, notes) = build_charts(&run).unwrap();
    // Every chart but the factor effects and the A/A check (a run without either). No chart
    // sets the backends' memory figures side by side: each is its own meter.
    assert_eq!(charts.len(), 5, "{notes:?}");
    assert_eq!(svgs, 5);
    assert!(charts.iter().all(|c| !c.name.contains("memory")));
    assert!(
        html.contains("own meter (host.peak_rss") && html.contains("isolab density"),
        "the caveat naming the meters is missing"
    );
    for c in &charts {
        parse_xml(&c.svg);
        assert!(c.svg.contains("<svg"), "{}", c.name);
    }
    // Methodology from the run itself, caveats, failures, environment.
    let measured = run.samples.iter().filter(|s| !s.warmup).count();
    assert!(
        html.contains(&format!("measured {measured} trials")),
        "{html}"
    );
    assert!(html.contains("shuffled"));
    assert!(html.contains("order statistics"));
    assert!(html.contains("vm (emulated)"));
    assert!(html.contains("12 samples ran the VM inside an emulated machine"));
    assert!(html.contains("O_DIRECT on overlay"));
    assert!(html.contains("killed: timeout after 120.0 s"));
    assert!(html.contains("Test CPU @ 3 GHz"));
    // Emulated samples never get a ratio.
    let json: serde_json::Value =
        serde_json::from_str(&render_report(&run, ReportFormat::Json).unwrap()).unwrap();
    for row in json["summary"]["rows"].as_array().unwrap() {
        if row["backend"] == "vm (emulated)" || row["backend"] == "native" {
            assert!(row["vs_native"].is_null(), "{row}");
        }
    }
    assert_eq!(json["failed_trials"].as_array().unwrap().len(), 3);
    assert_eq!(json["partial"], false);
    // Emulated samples are kept out of the ratio, timeline and latency charts.
    for c in &charts {
        let has = c.svg.contains("vm (emulated)");
        match c.name {
            "vm_exits" | "vm_exits_per_op" => assert!(has, "{}", c.name),
            _ => assert!(!has, "{} shows emulated samples", c.name),
        }
    }
    // Samples without reads and writes apart (a run from before the phase markers) keep their
    // mixed per-operation row.
    let per_op = charts.iter().find(|c| c.name == "vm_exits_per_op").unwrap();
    assert!(per_op.svg.contains("per 4 KiB I/O"), "{}", per_op.svg);
}

/// Splits one CSV line (RFC 4180 quoting).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            (c, _) => out.last_mut().unwrap().push(c),
        }
    }
    out
}

#[test]
fn csv_has_one_row_per_sample_and_metric() {
    let mut run = full_run("csv-1", "6.1.0-test");
    // A failure reason with a comma and a quote must survive quoting.
    run.samples[20].failure = Some(TrialFailure::Crashed {
        reason: "exit 1, said \"no\"".into(),
    });
    let csv = render_report(&run, ReportFormat::Csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    let expected: usize = run.samples.iter().map(|s| s.metrics.len().max(1)).sum();
    assert_eq!(lines.len(), 1 + expected);
    let header = csv_fields(lines[0]);
    for col in [
        "backend",
        "workload",
        "repetition",
        "warmup",
        "emulated",
        "failure",
        "metric",
        "value",
    ] {
        assert!(header.iter().any(|h| h == col), "{col} missing");
    }
    for l in &lines[1..] {
        assert_eq!(csv_fields(l).len(), header.len(), "{l}");
    }
    assert!(
        csv.contains("\"crashed: exit 1, said \"\"no\"\"\""),
        "{csv}"
    );
    // Failed trials without metrics still have their row.
    let failed_rows = lines
        .iter()
        .filter(|l| l.contains("O_DIRECT on overlay"))
        .count();
    assert_eq!(failed_rows, 2);
    assert!(lines
        .iter()
        .any(|l| l.contains(",vm,") && l.contains(",false,true,")));
}

#[test]
fn latex_is_booktabs_balanced_and_escaped() {
    let mut run = full_run("tex_1", "6.1.0-test");
    for rep in 0..3 {
        let mut s = sample(999, "native", "cpu", rep, false);
        s.workload = "odd_name 50%&#".into();
        s.metrics = vec![Metric::higher(
            "x_rate",
            "% of {max}",
            50.0 + f64::from(rep),
        )];
        run.samples.push(s);
    }
    let tex = render_report(&run, ReportFormat::Latex).unwrap();
    let pos = |s: &str| tex.find(s).unwrap_or_else(|| panic!("{s} missing:\n{tex}"));
    assert!(pos("\\toprule") < pos("\\midrule"));
    assert!(pos("\\midrule") < pos("\\bottomrule"));
    assert!(pos("\\begin{tabular}") < pos("\\toprule"));
    assert!(pos("\\bottomrule") < pos("\\end{tabular}"));
    assert!(tex.contains("odd\\_name 50\\%\\&\\#"), "{tex}");
    assert!(tex.contains("x\\_rate (\\% of \\{max\\})"), "{tex}");
    assert!(tex.contains("\\textmu{}s"));
    let mut depth = 0i32;
    let mut rows = 0;
    for line in tex.lines().filter(|l| !l.starts_with('%')) {
        let mut prev = ' ';
        for c in line.chars() {
            match c {
                '{' if prev != '\\' => depth += 1,
                '}' if prev != '\\' => depth -= 1,
                '%' | '#' | '_' => assert_eq!(prev, '\\', "unescaped {c} in {line}"),
                _ => {}
            }
            assert!(depth >= 0, "{line}");
            prev = c;
        }
        if line.ends_with("\\\\") {
            rows += 1;
            // 7 columns: 6 unescaped & separators.
            let seps = line.matches('&').count() - line.matches("\\&").count();
            assert_eq!(seps, 6, "{line}");
        }
    }
    assert_eq!(depth, 0);
    let json: serde_json::Value =
        serde_json::from_str(&render_report(&run, ReportFormat::Json).unwrap()).unwrap();
    assert_eq!(rows, 1 + json["summary"]["rows"].as_array().unwrap().len());
}

#[test]
fn markdown_and_term_have_tables_caveats_and_failures() {
    let run = full_run("md-1", "6.1.0-test");
    let md = render_report(&run, ReportFormat::Md).unwrap();
    assert!(md.contains("| Workload | Metric | Unit | Backend | n | Median | 95% CI | vs native |"));
    assert!(md.contains("## Caveats"));
    assert!(md.contains("## Failed trials"));
    assert!(md.contains("sha256\\_throughput"));
    let header_cols = md
        .lines()
        .find(|l| l.starts_with("| Workload"))
        .unwrap()
        .matches(" | ")
        .count();
    for l in md.lines().filter(|l| l.starts_with("| cpu ")) {
        assert_eq!(l.matches(" | ").count(), header_cols, "{l}");
    }
    let term = render_report(&run, ReportFormat::Term).unwrap();
    assert!(term.contains("Methodology:"));
    assert!(term.contains("Caveats:"));
    assert!(term.contains("vm (emulated)"));
}

fn tight(run_id: &str, kernel: &str, value: f64, other: f64) -> StoredRun {
    let mut samples = Vec::new();
    for rep in 0..10u32 {
        for b in ["native", "container"] {
            let mut s = sample(samples.len(), b, "cpu", rep, false);
            let d = f64::from(rep % 5) * 0.001; // ±0.2% spread
            s.metrics = vec![
                Metric::higher("sha256_throughput", "MB/s", value * (1.0 + d)),
                // Wide spread: 50..150, medians equal in both runs, intervals overlap.
                Metric::lower("host.wall", "ms", other + f64::from(rep) * 10.0),
            ];
            samples.push(s);
        }
    }
    let n = samples.len();
    StoredRun {
        dir: PathBuf::from(run_id),
        manifest: manifest(run_id, kernel, RunStatus::Complete, n),
        samples,
        torn_tail: false,
    }
}

#[test]
fn compare_gives_known_ratios_and_separation() {
    let a = tight("run-a", "6.1.0-a", 100.0, 50.0);
    let b = tight("run-b", "6.12.0-b", 110.0, 52.0);
    let json: serde_json::Value =
        serde_json::from_str(&compare(&a, &b, CompareFormat::Json).unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4); // 2 metrics x 2 backends
    let sha = rows
        .iter()
        .find(|r| r["metric"] == "sha256_throughput" && r["backend"] == "native")
        .unwrap();
    let change = sha["change"].as_f64().unwrap();
    assert!((change - 1.1).abs() < 1e-9, "{change}");
    assert_eq!(sha["separated"], true);
    assert_eq!(sha["verdict"], "better");
    let wall = rows
        .iter()
        .find(|r| r["metric"] == "host.wall" && r["backend"] == "container")
        .unwrap();
    assert!((wall["change"].as_f64().unwrap() - 97.0 / 95.0).abs() < 1e-9);
    assert_eq!(wall["separated"], false);
    assert_eq!(wall["verdict"], "same");
    let diffs = json["environment_differences"].as_array().unwrap();
    assert!(diffs
        .iter()
        .any(|d| d["field"] == "kernel" && d["a"] == "6.1.0-a" && d["b"] == "6.12.0-b"));
    // A slower B is "worse" for a higher-is-better metric.
    let c = tight("run-c", "6.1.0-a", 90.0, 50.0);
    let j: serde_json::Value =
        serde_json::from_str(&compare(&a, &c, CompareFormat::Json).unwrap()).unwrap();
    let r = &j["rows"][0];
    assert_eq!(
        (r["separated"].as_bool(), r["verdict"].as_str()),
        (Some(true), Some("worse"))
    );
    assert!(j["environment_differences"].as_array().unwrap().is_empty());

    let term = compare(&a, &b, CompareFormat::Term).unwrap();
    assert!(
        term.contains("separated") && term.contains("overlap"),
        "{term}"
    );
    assert!(term.contains("kernel: A = 6.1.0-a, B = 6.12.0-b"), "{term}");
    assert!(term.contains("1.100x"), "{term}");
    let md = compare(&a, &b, CompareFormat::Md).unwrap();
    assert!(md.contains("| Workload | Metric | Backend |"));
    // Rows found in one run only are listed, not dropped silently.
    let full = full_run("full", "6.1.0-a");
    let mixed = compare(&a, &full, CompareFormat::Term).unwrap();
    assert!(mixed.contains("Only in B:"), "{mixed}");
}

#[test]
fn partial_run_without_some_backends_reports_everything_it_has() {
    // Interrupted after a few native trials; container unavailable; vm never reached; torn tail.
    let full = full_run("partial-1", "6.1.0-test");
    let samples: Vec<Sample> = full
        .samples
        .into_iter()
        .filter(|s| s.backend == "native")
        .take(9)
        .collect();
    let mut m = manifest("partial-1", "6.1.0-test", RunStatus::Interrupted, 120);
    m.backends.insert(
        "container".into(),
        BackendState {
            available: false,
            note: Some("cgroup v2 memory controller missing; enable it".into()),
            facts: BTreeMap::new(),
        },
    );
    m.ended_at = None;
    m.wall_s = None;
    let run = StoredRun {
        dir: PathBuf::from("partial-1"),
        manifest: m,
        samples,
        torn_tail: true,
    };
    for f in ALL {
        let out = render_report(&run, f).unwrap();
        assert!(!out.is_empty());
    }
    let md = render_report(&run, ReportFormat::Md).unwrap();
    assert!(
        md.contains("Partial run: status interrupted, 9 of 120 planned trials stored"),
        "{md}"
    );
    assert!(
        md.contains(
            "Backend container has no samples in this run: cgroup v2 memory controller missing"
        ),
        "{md}"
    );
    assert!(
        md.contains("Backend vm has no samples in this run: no trial of it was stored"),
        "{md}"
    );
    assert!(md.contains("incomplete"));
    parse_xml(&render_report(&run, ReportFormat::Html).unwrap());
    let (charts, notes) = build_charts(&run).unwrap();
    // No other backend: no ratio chart, and it says so.
    assert!(charts.iter().all(|c| c.name != "ratio_to_native"));
    assert!(
        notes.iter().any(|n| n.contains("ratio_to_native")),
        "{notes:?}"
    );

    // Nothing at all stored yet.
    let empty = StoredRun {
        dir: PathBuf::from("empty"),
        manifest: manifest("empty", "6.1.0-test", RunStatus::Running, 120),
        samples: Vec::new(),
        torn_tail: false,
    };
    for f in ALL {
        render_report(&empty, f).unwrap();
    }
    parse_xml(&render_report(&empty, ReportFormat::Html).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let files = write_charts(&empty, dir.path()).unwrap();
    assert!(files.files.is_empty());
    assert_eq!(files.notes.len(), 9, "{:?}", files.notes);
}

#[test]
fn charts_are_written_as_svg_and_png() {
    // ISOLAB_REPORT_CHARTS_OUT keeps the files for looking at them.
    let keep = std::env::var_os("ISOLAB_REPORT_CHARTS_OUT").map(PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep.unwrap_or_else(|| tmp.path().to_path_buf());
    let run = full_run("charts-1", "6.1.0-test");
    let out = write_charts(&run, &dir).unwrap();
    let svgs: Vec<&PathBuf> = out
        .files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "svg"))
        .collect();
    assert_eq!(svgs.len(), 5);
    for p in &svgs {
        parse_xml(&std::fs::read_to_string(p).unwrap());
    }
    let pngs: Vec<&PathBuf> = out
        .files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    if pngs.is_empty() {
        // Only acceptable without fonts, and then it must say so.
        assert!(
            out.notes.iter().any(|n| n.contains("no font found")),
            "{:?}",
            out.notes
        );
    } else {
        assert_eq!(pngs.len(), 5, "{:?}", out.notes);
        for p in pngs {
            let bytes = std::fs::read(p).unwrap();
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        }
    }
    let _ = BackendKind::ALL; // the backend names used above are the real ones
}

#[test]
fn factor_columns_effects_and_the_aa_check_reach_every_format() {
    let run = common::with_factor_and_aa(full_run("factors-1", "6.1.0-test"), 1.02, 1.2);
    let term = render_report(&run, ReportFormat::Term).unwrap();
    for want in [
        "native A'",
        "container userns=on",
        "Factor effects",
        "off → on",
        "1.20x [1.",
        "A/A check (native A' / native A",
        "A/A [95% CI]",
    ] {
        assert!(term.contains(want), "term lacks {want:?}:\n{term}");
    }
    let md = render_report(&run, ReportFormat::Md).unwrap();
    assert!(
        md.contains("## Factor effects")
            && md.contains("## A/A check")
            && md.contains("| userns |"),
        "{md}"
    );
    let html = render_report(&run, ReportFormat::Html).unwrap();
    parse_xml(&html);
    assert!(
        html.contains("<h2>Factor effects</h2>") && html.contains("<h2>A/A check</h2>"),
        "{html}"
    );
    let (charts, notes) = build_charts(&run).unwrap();
    assert_eq!(charts.len(), 7, "{notes:?}");
    let effects = charts.iter().find(|c| c.name == "factor_effects").unwrap();
    assert!(
        effects.svg.contains("container userns: off → on"),
        "{}",
        effects.svg
    );
    let latex = render_report(&run, ReportFormat::Latex).unwrap();
    assert_eq!(
        latex.matches("\\begin{table}").count(),
        2,
        "the effects get a table of their own: {latex}"
    );
    assert!(latex.contains("off $\\rightarrow$ on"), "{latex}");
    let csv = render_report(&run, ReportFormat::Csv).unwrap();
    assert!(csv.contains(",native,native A',aa=A',"), "{csv}");
    let json: serde_json::Value =
        serde_json::from_str(&render_report(&run, ReportFormat::Json).unwrap()).unwrap();
    let effects = json["summary"]["effects"].as_array().unwrap();
    // Every metric has its effect in JSON, not only the headline ones.
    assert!(
        effects.iter().any(|e| e["metric"] == "host.wall"),
        "{effects:?}"
    );
    assert!(json["summary"]["aa"]["floor_pct"].as_f64().unwrap() > 0.0);
    assert_eq!(json["manifest"]["columns"].as_array().unwrap().len(), 5);

    // Compare works on factor columns as on backends, and quotes the noise floor.
    let other = common::with_factor_and_aa(full_run("factors-2", "6.1.0-test"), 1.02, 1.2);
    let c = compare(&run, &other, CompareFormat::Term).unwrap();
    assert!(
        c.contains("container userns=on")
            && c.contains("A/A")
            && c.contains("cannot be told from noise"),
        "{c}"
    );
}

/// Renders a real run in every format, for looking at: `ISOLAB_REPORT_RUN_DIR=results/ID
/// ISOLAB_REPORT_OUT=/tmp/out cargo test -p bench_harness --test report -- --ignored`.
#[test]
#[ignore = "needs a real run directory in ISOLAB_REPORT_RUN_DIR"]
fn real_run_renders_in_every_format() {
    let Some(dir) = std::env::var_os("ISOLAB_REPORT_RUN_DIR") else {
        panic!("set ISOLAB_REPORT_RUN_DIR to a run directory made by `isolab run`");
    };
    let out = std::env::var_os("ISOLAB_REPORT_OUT")
        .map_or_else(|| std::env::temp_dir().join("isolab-report"), PathBuf::from);
    std::fs::create_dir_all(&out).unwrap();
    let run = bench_harness::store::load_run(std::path::Path::new(&dir)).unwrap();
    for (f, ext) in ALL.iter().zip(["txt", "md", "html", "csv", "tex", "json"]) {
        let text = render_report(&run, *f).unwrap();
        if *f == ReportFormat::Html {
            parse_xml(&text);
        }
        std::fs::write(out.join(format!("report.{ext}")), text).unwrap();
    }
    let files = write_charts(&run, &out.join("charts")).unwrap();
    println!("{:?}\n{:?}", files.files, files.notes);
}

/// `full_run` as a suite that replicates Felter et al.'s Linpack row with the cpu workload.
fn replicating(mut run: StoredRun) -> StoredRun {
    run.manifest.suite.replicates = vec![bench_harness::suite::Replicate {
        study: "felter2014".into(),
        row: "linpack".into(),
        workload: "cpu".into(),
        metric: "matmul_gflops".into(),
    }];
    run
}

#[test]
fn published_ratios_sit_beside_the_measured_ones_and_absent_rows_say_so() {
    let run = replicating(full_run("felter-1", "6.1.0-test"));
    let json: serde_json::Value =
        serde_json::from_str(&render_report(&run, ReportFormat::Json).unwrap()).unwrap();
    let study = &json["published"][0];
    assert_eq!(study["id"], "felter2014");
    assert_eq!(study["sandboxes"], serde_json::json!(["Docker", "KVM"]));
    assert_eq!(study["backends"], serde_json::json!(["container", "vm"]));
    let rows = study["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 10, "every row of their table, measured or not");
    let linpack = &rows[0];
    assert_eq!(linpack["row"], "linpack");
    assert_eq!(linpack["isolab"], "cpu.matmul_gflops");
    // Theirs: Docker 290.86775 / 290.82864, KVM (tuned) 284.19874 / 290.82864.
    let theirs = |i: usize| linpack["published_ratios"][i].as_f64().unwrap();
    assert!((theirs(0) - 290.86775 / 290.82864).abs() < 1e-12);
    assert!((theirs(1) - 284.19874 / 290.82864).abs() < 1e-12);
    // Ours: the synthetic container is 1.03x slower, the VM 1.15x, at every repetition; the VM's
    // emulated samples and its one timeout stay out.
    let ours = |i: usize| &linpack["ratios"][i]["value"];
    assert!((ours(0)["value"].as_f64().unwrap() - 1.0 / 1.03).abs() < 1e-9);
    assert_eq!(ours(0)["n"], 8);
    assert!((ours(1)["value"].as_f64().unwrap() - 1.0 / 1.15).abs() < 1e-9);
    assert_eq!(ours(1)["n"], 7);
    assert_eq!(linpack["native"]["value"]["n"], 8);
    // A row the run lacks: nothing invented, it says so.
    let gups = rows.iter().find(|r| r["row"] == "randomaccess").unwrap();
    assert!(gups["isolab"].is_null());
    for cell in [&gups["native"], &gups["ratios"][0], &gups["ratios"][1]] {
        assert_eq!(cell["missing"]["why"], "not measured in this run", "{cell}");
    }
    // A published value that does not exist stays empty.
    let rr = rows.iter().find(|r| r["row"] == "netperf-tcp-rr").unwrap();
    assert!(rr["published_ratios"][0].is_null());

    let md = render_report(&run, ReportFormat::Md).unwrap();
    assert!(md.contains("## Felter et al. 2014 beside this run"), "{md}");
    assert!(md.contains("they were not measured on this host"));
    let line = |needle: &str| {
        md.lines()
            .find(|l| l.starts_with("| ") && l.contains(needle))
            .unwrap_or_else(|| panic!("no table line with {needle}:\n{md}"))
            .to_owned()
    };
    let linpack_line = line("Linpack");
    assert!(
        linpack_line.contains("| 1.000x | 0.9772x |"),
        "{linpack_line}"
    );
    assert!(linpack_line.contains("| 0.9709x ["), "{linpack_line}");
    assert!(linpack_line.contains("] n=8 | 0.8696x ["), "{linpack_line}");
    assert!(line("RandomAccess").contains("not measured in this run"));
    assert!(md.contains("linpack.xlsx"), "the source is cited");
    assert!(md.contains("IBM Research Report RC25482"));
    let term = render_report(&run, ReportFormat::Term).unwrap();
    assert!(term.contains("Felter et al. 2014 beside this run"));
    assert!(term.contains("not measured in this run"));
    let html = render_report(&run, ReportFormat::Html).unwrap();
    parse_xml(&html);
    assert!(html.contains("id=\"published-felter2014\""));
    let tex = render_report(&run, ReportFormat::Latex).unwrap();
    assert!(
        tex.contains("\\label{tab:isolab-published-felter2014}"),
        "{tex}"
    );
    assert!(
        tex.contains("Linpack & 1.000x & 0.9772x & cpu.matmul\\_gflops & 0.9709"),
        "{tex}"
    );

    // A run without the VM, or with it emulated only: said, never a ratio.
    let mut no_vm = replicating(full_run("felter-2", "6.1.0-test"));
    no_vm.samples.retain(|s| s.backend != "vm" || s.emulated);
    let md = render_report(&no_vm, ReportFormat::Md).unwrap();
    assert!(line_of(&md, "Linpack").contains("vm ran emulated"), "{md}");
    no_vm.samples.retain(|s| s.backend != "vm");
    no_vm.manifest.backends.insert(
        "vm".into(),
        BackendState {
            available: false,
            note: Some("no /dev/kvm".into()),
            facts: BTreeMap::new(),
        },
    );
    let md = render_report(&no_vm, ReportFormat::Md).unwrap();
    assert!(
        line_of(&md, "Linpack").contains("not measured in this run (vm unavailable: no /dev/kvm)"),
        "{md}"
    );
    // A suite that replicates nothing shows no such section.
    let plain = full_run("plain", "6.1.0-test");
    assert!(!render_report(&plain, ReportFormat::Md)
        .unwrap()
        .contains("beside this run"));
}

fn line_of(md: &str, needle: &str) -> String {
    md.lines()
        .find(|l| l.starts_with("| ") && l.contains(needle))
        .unwrap_or_else(|| panic!("no table line with {needle}:\n{md}"))
        .to_owned()
}

/// `full_run` on a host whose VM is unavailable: every VM trial fails for one reason.
fn run_with_vm_unavailable() -> StoredRun {
    let mut run = full_run("novm-1", "6.1.0-test");
    const REASON: &str = "/dev/kvm is served by PVM (kvm_pvm)";
    run.samples.retain(|s| !(s.backend == "vm" && s.emulated));
    for s in run.samples.iter_mut().filter(|s| s.backend == "vm") {
        s.failure = Some(TrialFailure::Unavailable {
            reason: REASON.into(),
            fix: "run on a host with hardware KVM".into(),
        });
        s.metrics.clear();
        s.timeline.clear();
    }
    run
}

#[test]
fn a_reason_shared_by_many_trials_is_said_once_with_its_count() {
    let run = run_with_vm_unavailable();
    let failed_vm = run
        .samples
        .iter()
        .filter(|s| s.backend == "vm" && !s.warmup)
        .count();
    let html = render_report(&run, ReportFormat::Html).unwrap();
    parse_xml(&html);
    // The "Read this first" box: one line for the VM, with the number of trials it covers.
    let start = html.find("Read this first").unwrap();
    let end = start + html[start..].find("</div>").unwrap();
    let box_text = &html[start..end];
    assert_eq!(
        box_text.matches("served by PVM").count(),
        1,
        "the reason is repeated: {box_text}"
    );
    assert!(
        box_text.contains(&format!(
            "vm: {failed_vm} trials (noop, cpu, io-rand, io-fsync) not run"
        )),
        "{box_text}"
    );
    // The failed-trials table: one row per backend and reason, with the trials it covers.
    let table_start = html.find("<h2>Failed trials</h2>").unwrap();
    let table = &html[table_start..];
    let table = &table[..table.find("</table>").unwrap()];
    assert_eq!(table.matches("served by PVM").count(), 1, "{table}");
    assert!(
        table.contains(&format!("<td class=\"num\">{failed_vm}</td>")),
        "{table}"
    );
    // Over the whole page, a handful of times (caveat, table, environment), never per trial.
    assert!(html.matches("served by PVM").count() <= 3, "{html}");
    for format in [ReportFormat::Md, ReportFormat::Term] {
        let text = render_report(&run, format).unwrap();
        assert!(
            text.matches("served by PVM").count() <= 3,
            "{format:?} repeats it: {text}"
        );
    }
}

/// The text of every `<text>` element of an SVG.
fn svg_texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).unwrap();
    doc.descendants()
        .filter(|n| n.tag_name().name() == "text")
        .map(|n| n.text().unwrap_or("").trim().to_owned())
        .collect()
}

#[test]
fn charts_agree_with_the_text_and_label_their_axes_below_one() {
    let run = full_run("full-2", "6.1.0-test");
    let (charts, _) = build_charts(&run).unwrap();
    let chart = |name: &str| charts.iter().find(|c| c.name == name).unwrap();
    // The ratio axis has labels on both sides of 1 (the container is faster on some metric
    // here, so the axis reaches below 1).
    let ticks: Vec<f64> = svg_texts(&chart("ratio_to_native").svg)
        .iter()
        .filter_map(|t| t.parse::<f64>().ok())
        .collect();
    assert!(ticks.iter().any(|t| *t < 1.0), "no tick below 1: {ticks:?}");
    assert!(ticks.iter().any(|t| *t > 1.0), "no tick above 1: {ticks:?}");
    assert!(ticks.contains(&1.0), "{ticks:?}");
    // The start timeline quotes the summary's start-to-ready median, interval and n: what the
    // text beside it says.
    let view = bench_harness::summary::summarise_run(&run);
    let texts = svg_texts(&chart("start_timeline").svg);
    for b in ["native", "container", "vm"] {
        let row = view
            .rows
            .iter()
            .find(|r| r.backend == b && r.workload == "noop" && r.metric == "host.start_to_ready")
            .unwrap();
        let n = format!("n = {}", row.median.n);
        assert!(
            texts
                .iter()
                .any(|t| t.starts_with("ready: ") && t.contains('[') && t.contains(&n)),
            "{b}: {texts:?}"
        );
    }
}

#[test]
fn an_emulated_time_carries_its_label_in_its_own_cell() {
    let run = full_run("full-3", "6.1.0-test");
    let md = render_report(&run, ReportFormat::Md).unwrap();
    let tex = render_report(&run, ReportFormat::Latex).unwrap();
    let term = render_report(&run, ReportFormat::Term).unwrap();
    let mut checked = 0;
    for line in md.lines().filter(|l| l.contains("| vm (emulated) |")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        // | workload | metric | unit | backend | n | median | CI | vs native |
        let unit = cells[2];
        // Times, times per something (`ns/call`), rates (`…/s`) and IOPS are the clock's.
        let timed = ["ms", "µs", "ns", "IOPS"]
            .iter()
            .any(|t| unit.starts_with(t));
        if timed || unit.contains("/s") {
            assert!(
                cells[5].contains("(emulated time)") && cells[6].contains("(emulated time)"),
                "{line}"
            );
            checked += 1;
        } else {
            assert!(
                !line.contains("(emulated time)"),
                "a count is not a time: {line}"
            );
        }
    }
    assert!(checked > 0, "no emulated time row: {md}");
    let tex_rows: Vec<&str> = tex
        .lines()
        .filter(|l| l.contains("vm (emulated)") && l.contains("(ms)"))
        .collect();
    assert!(!tex_rows.is_empty(), "{tex}");
    for l in tex_rows {
        assert_eq!(l.matches("\\textit{(emulated)}").count(), 2, "{l}");
    }
    assert!(
        term.lines()
            .filter(|l| l.contains("vm (emulated)") && l.contains("ms"))
            .all(|l| l.contains("(emulated time)")),
        "{term}"
    );
}

/// The terminal and HTML reports in French: French words and numbers, `lang="fr"`, well-formed;
/// and in the pseudo-locale, no plain English word that is not the run's own data (every
/// generated text comes from the catalogue), factor effects and the A/A check included.
#[test]
fn terminal_and_html_reports_in_french_and_in_the_pseudo_locale() {
    use bench_harness::i18n::Lang;
    use bench_harness::report::render_report_in;
    let run = common::with_factor_and_aa(full_run("20261126-fr", "6.1.0-test"), 1.01, 1.1);
    let term = render_report_in(&run, ReportFormat::Term, Lang::Fr).unwrap();
    for french in [
        "médiane",
        "IC à 95\u{202f}%",
        "Méthodologie",
        "Effets des facteurs",
    ] {
        assert!(term.contains(french), "no {french:?} in:\n{term}");
    }
    assert!(
        term.bytes()
            .collect::<Vec<_>>()
            .windows(3)
            .any(|w| w[0].is_ascii_digit() && w[1] == b',' && w[2].is_ascii_digit()),
        "no decimal comma in:\n{term}"
    );
    let html = render_report_in(&run, ReportFormat::Html, Lang::Fr).unwrap();
    parse_xml(&html);
    assert!(html.contains("lang=\"fr\"") && html.contains("<h2>Méthodologie</h2>"));
    // The charts `isolab report --lang fr --charts DIR` writes are French too.
    let (charts, _) = bench_harness::report::build_charts_in(&run, Lang::Fr).unwrap();
    let ratios = &charts
        .iter()
        .find(|c| c.name == "ratio_to_native")
        .unwrap()
        .svg;
    assert!(ratios.contains("rapport"), "{ratios}");
    // The pseudo-locale: strip tags, code, styles and the published study's section (its labels
    // are the study's, see the book's test of that exception); what is left must be accented or
    // data of the run.
    // A failed trial's reason (`TrialFailure`'s text, "killed: timeout after 120 s") is quoted as
    // the run recorded it, like a backend's note: not yet from the catalogue.
    let reasons: String = run
        .samples
        .iter()
        .filter_map(|s| s.failure.as_ref().map(|f| format!("{f} ")))
        .collect();
    // A chart's name is its file's stem (`net_latency.svg`), an identifier like the run's own
    // data, quoted as is in "chart NAME not drawn".
    let chart_names = "start_timeline ratio_to_native factor_effects aa_check io_latency \
                       net_latency net_throughput vm_exits vm_exits_per_op";
    let data = serde_json::to_string(&run.samples).unwrap()
        + &serde_json::to_string(&run.manifest).unwrap()
        + &reasons
        + chart_names;
    let data = common::data_words(&data);
    for format in [ReportFormat::Term, ReportFormat::Html] {
        let text = render_report_in(&run, format, Lang::Pseudo).unwrap();
        let escaped = common::escaped_words(&text, format == ReportFormat::Html, &data);
        assert!(
            escaped.is_empty(),
            "{format:?} report: generated text outside the catalogue: {escaped:?}"
        );
    }
}

/// The host-memory meters of a run's samples, each with the words a chart names it by. A trial's
/// memory figures are each backend's own meter: native's peak RSS, the container's memory cgroup,
/// the VM's guest RAM and VMM process.
const MEMORY_METERS: [(&str, &[&str]); 3] = [
    ("the process's peak RSS", &["peak RSS", "peak_rss"]),
    (
        "the sandbox's memory cgroup",
        &["cgroup", "anonymous memory", "page cache", "kernel memory"],
    ),
    (
        "the VM's guest RAM and VMM",
        &["guest RAM", "guest_ram", "VMM overhead", "vmm_overhead"],
    ),
];

#[test]
fn no_run_chart_sets_different_memory_meters_side_by_side() {
    // Every backend of this run has host memory figures, each on its own meter: a chart that
    // drew them together would compare three meters as one quantity. A chart of memory must
    // name exactly one meter (memory on one meter for every backend is `isolab density`'s).
    let run = full_run("full-4", "6.1.0-test");
    let (charts, _) = build_charts(&run).unwrap();
    assert!(!charts.is_empty());
    for c in &charts {
        let texts = svg_texts(&c.svg).join("\n");
        let text = format!("{}\n{texts}", c.title);
        let draws_memory = text.contains("MiB") || text.to_lowercase().contains("memory");
        if !draws_memory {
            continue;
        }
        let meters: Vec<&str> = MEMORY_METERS
            .iter()
            .filter(|(_, words)| words.iter().any(|w| text.contains(w)))
            .map(|(meter, _)| *meter)
            .collect();
        assert_eq!(
            meters.len(),
            1,
            "chart {} draws memory on {} meters {meters:?}: {text}",
            c.name,
            meters.len()
        );
    }
}

/// The network workloads that cross the boundary get their own charts: request/response latency
/// and throughput per backend with intervals; `net-loopback` (inside the sandbox only) is not
/// among them, nor is an emulated VM's time.
#[test]
fn network_latency_and_throughput_are_charted_per_backend() {
    let mut samples = Vec::new();
    for rep in 0..6u32 {
        for b in ["native", "container", "vm"] {
            let x = 1.0 + f64::from(rep) * 0.01;
            let scale = if b == "native" { 1.0 } else { 1.2 };
            let mut rr = sample(samples.len(), b, "net-rr", rep, false);
            rr.metrics = vec![
                Metric::lower("rr_latency", "µs", 9.0 * scale * x),
                Metric::lower("rr_latency_p99", "µs", 20.0 * scale * x),
                Metric::higher("rr_tps", "1/s", 100_000.0 / (scale * x)),
            ];
            let mut stream = sample(samples.len() + 1, b, "net-stream", rep, false);
            stream.metrics = vec![
                Metric::higher("tx_throughput", "Gbit/s", 20.0 / (scale * x)),
                Metric::higher("rx_throughput", "Gbit/s", 18.0 / (scale * x)),
            ];
            let mut inside = sample(samples.len() + 2, b, "net-loopback", rep, false);
            inside.metrics = vec![Metric::lower("tcp_rtt_latency", "µs", 5.0 * x)];
            if b == "vm" {
                for s in [&mut rr, &mut stream, &mut inside] {
                    s.emulated = true;
                }
            }
            samples.extend([rr, stream, inside]);
        }
    }
    let n = samples.len();
    let run = StoredRun {
        dir: PathBuf::from("/results/net"),
        manifest: manifest("net", "6.1.0-test", RunStatus::Complete, n),
        samples,
        torn_tail: false,
    };
    let (charts, notes) = build_charts(&run).unwrap();
    let chart = |name: &str| {
        charts
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} chart: {notes:?}"))
    };
    let latency = chart("net_latency");
    let throughput = chart("net_throughput");
    for c in [latency, throughput] {
        parse_xml(&c.svg);
        assert!(
            c.svg.contains("native") && c.svg.contains("container"),
            "{}",
            c.name
        );
        assert!(
            !c.svg.contains("emulated"),
            "{} shows emulated times",
            c.name
        );
        assert!(
            !c.svg.contains("net-loopback"),
            "{} shows net-loopback",
            c.name
        );
    }
    assert!(latency.svg.contains("rr_latency_p99") && latency.svg.contains("µs"));
    assert!(!latency.svg.contains("rr_tps"), "one unit per chart");
    assert!(throughput.svg.contains("tx_throughput") && throughput.svg.contains("rx_throughput"));
    assert!(latency.title.contains("whiskers") && throughput.title.contains("whiskers"));
}
