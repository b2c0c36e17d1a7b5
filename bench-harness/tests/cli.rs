//! `isolab` as a user runs it: real native runs, bad input, Ctrl-C, report.
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const ISOLAB: &str = env!("CARGO_BIN_EXE_isolab");

fn agent() -> PathBuf {
    workloads::locate::locate_agent(None).unwrap_or_else(|e| panic!("{e}"))
}

fn isolab(args: &[&str]) -> Output {
    Command::new(ISOLAB)
        .args(args)
        .env("ISOLAB_AGENT", agent())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A small suite so tests stay fast.
fn small_suite(dir: &Path, extra: &str) -> PathBuf {
    let p = dir.join("suite.toml");
    let body = format!(
        "reps = 3\nwarmup = 1\nbackends = [\"native\"]\n{extra}\n\
         [[workload]]\nkind = \"noop\"\n\
         [[workload]]\nkind = \"syscall\"\niterations = 20000\n\
         [[workload]]\nkind = \"io-fsync\"\nops = 5\n"
    );
    std::fs::write(&p, body).unwrap();
    p
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn native_run_then_report_prints_the_same_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = small_suite(tmp.path(), "");
    let out = tmp.path().join("results");
    let o = isolab(&[
        "run",
        "--suite",
        suite.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--io-dir",
        tmp.path().to_str().unwrap(),
        "--seed",
        "1",
    ]);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let stdout = text(&o.stdout);
    assert!(
        stdout.contains("null_syscall") && stdout.contains("fsync_p50"),
        "{stdout}"
    );
    let run_dir = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let samples = std::fs::read_to_string(run_dir.join("samples.jsonl")).unwrap();
    assert_eq!(samples.lines().count(), (3 + 1) * 3);
    for line in samples.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["failure"].is_null(), "{line}");
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["status"], "complete");
    for key in [
        "host",
        "git_commit",
        "agent_sha256",
        "suite",
        "started_at",
        "isolab_version",
    ] {
        assert!(!manifest[key].is_null(), "manifest lacks {key}");
    }
    assert_eq!(manifest["agent_sha256"].as_str().unwrap().len(), 64);

    let r = isolab(&["report", run_dir.to_str().unwrap()]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let table = |s: &str| s.split("\nRun ").next().unwrap().to_owned();
    assert_eq!(table(&stdout), table(&text(&r.stdout)));
    // Scratch files of the I/O workload are gone.
    assert!(!std::fs::read_dir(tmp.path()).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("isolab-")));
}

#[test]
fn bad_input_is_refused_clearly_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let outs = out.to_str().unwrap();
    let io = tmp.path().to_str().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--workload".into(), "gpu".into()],
            "unknown workload \"gpu\"",
        ),
        (
            vec!["--backend".into(), "docker".into()],
            "unknown backend \"docker\"",
        ),
        (
            vec!["--agent".into(), "/nonexistent/agent".into()],
            "cargo build",
        ),
        (
            vec!["--io-dir".into(), "/nonexistent/dir".into()],
            "--io-dir",
        ),
        (
            vec!["--suite".into(), "/nonexistent.toml".into()],
            "cannot read suite file",
        ),
        (vec!["--reps".into(), "0".into()], "reps must be at least 1"),
        (
            vec!["--factor".into(), "userns=maybe".into()],
            "\"maybe\" is not a value of it; use off | on",
        ),
        (
            vec!["--factor".into(), "vm-in-emulator=off,on".into()],
            "vm-in-emulator cannot vary within one run: emulated VM samples",
        ),
        (
            vec![
                "--backend".into(),
                "native".into(),
                "--factor".into(),
                "vcpus=1,2".into(),
            ],
            "factor vcpus applies to container, vm, qemu-tcg only",
        ),
        (vec!["--aa".into(), "docker".into()], "--aa \"docker\""),
        (vec!["--max-reps".into(), "50".into()], "add --until-ci P%"),
        (
            vec!["--until-ci".into(), "lots".into()],
            "is not a percentage",
        ),
    ];
    for (extra, expect) in cases {
        let mut args: Vec<String> = vec![
            "run".into(),
            "--out".into(),
            outs.into(),
            "--io-dir".into(),
            io.into(),
        ];
        args.extend(extra);
        let o = isolab(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let err = text(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(
            err.contains(expect),
            "{args:?}: expected {expect:?} in {err}"
        );
        assert_eq!(entries(&out), 0, "{args:?} left a run directory");
    }

    // A suite with a typo names its file, line and column.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        "reps = 2\n[[workload]]\nkind = \"cpu\"\nhash_mb = 4\n",
    )
    .unwrap();
    let o = isolab(&["run", "--suite", bad.to_str().unwrap(), "--out", outs]);
    let err = text(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("bad.toml:2:1") && err.contains("hash_mb"),
        "{err}"
    );
    assert_eq!(entries(&out), 0);

    // An output folder that cannot be created.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let o = isolab(&[
        "run",
        "--workload",
        "noop",
        "--backend",
        "native",
        "--out",
        file.join("sub").to_str().unwrap(),
        "--io-dir",
        io,
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("cannot write results"),
        "{}",
        text(&o.stderr)
    );

    // report on something that is not a run.
    let o = isolab(&["report", tmp.path().to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("not an isolab run directory"),
        "{}",
        text(&o.stderr)
    );
}

fn processes_running(exe: &Path) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| std::fs::read_link(e.path().join("exe")).is_ok_and(|p| p == exe))
        .count()
}

#[test]
fn ctrl_c_keeps_valid_samples_reaps_children_and_report_works() {
    let tmp = tempfile::tempdir().unwrap();
    // A private copy of the agent, so only this test's children are counted.
    let my_agent = tmp.path().join("isolab-agent");
    std::fs::copy(agent(), &my_agent).unwrap();
    let suite = tmp.path().join("slow.toml");
    std::fs::write(
        &suite,
        // Repetitions by a rule it cannot meet, so Ctrl-C comes in a round --until-ci added.
        "reps = 3\nwarmup = 0\nbackends = [\"native\"]\nuntil_ci = \"0.001%\"\nmax_reps = 1000\n\
         [[workload]]\nkind = \"timer\"\ncalls = 1000\nsleeps = 150\n",
    )
    .unwrap();
    let out = tmp.path().join("results");
    let child = Command::new(ISOLAB)
        .args([
            "run",
            "--suite",
            suite.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args([
            "--io-dir",
            tmp.path().to_str().unwrap(),
            "--agent",
            my_agent.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until samples of an added round exist, then interrupt mid-trial.
    let start = Instant::now();
    let samples_path = || {
        std::fs::read_dir(&out)
            .ok()?
            .next()?
            .ok()
            .map(|e| e.path().join("samples.jsonl"))
    };
    loop {
        let n = samples_path()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map_or(0, |s| s.lines().count());
        if n >= 5 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no samples after 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(60));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "stderr: {}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("interrupted"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(processes_running(&my_agent), 0, "an agent outlived Ctrl-C");
    let samples = std::fs::read_to_string(samples_path().unwrap()).unwrap();
    let n = samples.lines().count();
    assert!((5..1000).contains(&n), "{n} samples");
    for line in samples.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            v["failure"].is_null(),
            "an interrupted trial was stored: {line}"
        );
    }
    let run_dir = samples_path().unwrap().parent().unwrap().to_path_buf();
    let manifest = std::fs::read_to_string(run_dir.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"interrupted\""), "{manifest}");
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(m["until_ci"]["stopped"], "interrupted", "{manifest}");
    assert!(
        m["until_ci"]["extra_rounds"].as_u64().unwrap() >= 2,
        "{manifest}"
    );
    // The trial Ctrl-C cut short was planned but not stored (unless Ctrl-C fell between trials).
    let planned = m["planned_trials"].as_u64().unwrap() as usize;
    assert!(
        (n..=n + 1).contains(&planned),
        "{planned} planned, {n} stored"
    );
    let r = isolab(&["report", run_dir.to_str().unwrap()]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert!(
        text(&r.stdout).contains("nanosleep_overshoot"),
        "{}",
        text(&r.stdout)
    );
    // The run folder (`isolab-` and 12 random characters) was removed.
    assert!(!std::fs::read_dir(tmp.path()).unwrap().any(|e| {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        name.starts_with("isolab-") && name != "isolab-agent"
    }));
}

#[test]
fn doctor_explains_and_its_exit_code_matches_its_verdict() {
    let o = isolab(&["doctor"]);
    let s = text(&o.stdout);
    assert!(s.contains("Backends:") && s.contains("/dev/kvm"), "{s}");
    let code = o.status.code().unwrap();
    assert!((0..8).contains(&code), "{code}");
    for (bit, name) in [(1, "native"), (2, "container"), (4, "vm")] {
        let line = s
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap();
        assert_eq!(
            code & bit != 0,
            line.contains("not usable"),
            "{line} vs exit {code}"
        );
    }
}
