//! The harness cannot be turned against its host: a local user who prepares the I/O folder, a
//! second run started at the same time, and `kill -9` of isolab mid-run leave nothing changed
//! outside isolab's own folders and nothing of isolab's behind. Needs root (containers, cgroups).
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{agent, serial};
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bench_harness::run_places::{RunRecord, DEFAULT_REGISTRY};

const ISOLAB: &str = env!("CARGO_BIN_EXE_isolab");
const NOBODY: u32 = 65534;

fn require_root() {
    common::require_root("these tests run containers and make cgroups");
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn suite(dir: &Path, reps: u32) -> PathBuf {
    let p = dir.join(format!("suite-{reps}.toml"));
    std::fs::write(
        &p,
        format!(
            "reps = {reps}\nwarmup = 0\nbackends = [\"native\", \"container\"]\n\
             [[workload]]\nkind = \"noop\"\n\
             [[workload]]\nkind = \"io-seq\"\nsize_mib = 1\n"
        ),
    )
    .unwrap();
    p
}

fn run_cmd(suite: &Path, out: &Path, io: &Path) -> Command {
    common::isolab_run(suite, out, io, 7)
}

/// Every path below `dir` with its content (files), link target (links) or nothing (folders).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut m = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return m;
    };
    for e in rd.flatten() {
        let p = e.path();
        let t = e.file_type().unwrap();
        if t.is_symlink() {
            m.insert(
                p.clone(),
                format!("-> {}", std::fs::read_link(&p).unwrap().display()),
            );
        } else if t.is_dir() {
            m.insert(p.clone(), "dir".into());
            m.extend(snapshot(&p));
        } else {
            m.insert(p.clone(), text(&std::fs::read(&p).unwrap_or_default()));
        }
    }
    m
}

fn records() -> Vec<RunRecord> {
    std::fs::read_dir(DEFAULT_REGISTRY)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_prepared_io_folder_and_a_concurrent_run_change_nothing_outside_isolab() {
    let _one = serial();
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    // Like /var/tmp: anyone may reach it and create in it (sticky).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let io = tmp.path().join("io-parent");
    std::fs::create_dir(&io).unwrap();
    std::fs::set_permissions(&io, std::fs::Permissions::from_mode(0o1777)).unwrap();
    // The local user's bait: a precious file, folders with the names older isolab versions used
    // (`isolab-<timestamp>`), world-writable, with links to the precious file where isolab used
    // to write (owner.pid, disk images, the --userns folder) and a link `io` to elsewhere.
    let precious_dir = tmp.path().join("precious");
    std::fs::create_dir(&precious_dir).unwrap();
    let precious = precious_dir.join("passwd");
    std::fs::write(&precious, "root:x:0:0\n").unwrap();
    let now = bench_harness::timefmt::run_id_now();
    for name in [
        format!("isolab-{now}"),
        "isolab-run".into(),
        "isolab-aaaaaaaaaaaa".into(),
    ] {
        let bait = io.join(&name);
        std::fs::create_dir(&bait).unwrap();
        std::os::unix::fs::symlink(&precious, bait.join("owner.pid")).unwrap();
        std::os::unix::fs::symlink(&precious_dir, bait.join("io")).unwrap();
        std::os::unix::fs::symlink(&precious, bait.join("vm-disk-0.img")).unwrap();
        std::fs::set_permissions(&bait, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let s = suite(tmp.path(), 3);
    let before = snapshot(tmp.path());

    // Two runs at the same moment, same --io-dir, different --out; a local user (uid 65534)
    // tries to plant a link inside whatever run folder appears while they run.
    let outs = [tmp.path().join("out-a"), tmp.path().join("out-b")];
    let mut runs: Vec<_> = outs
        .iter()
        .map(|o| {
            run_cmd(&s, o, &io)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut planted = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let known: Vec<PathBuf> = before.keys().cloned().collect();
    while Instant::now() < deadline && planted.len() < 20 {
        for e in std::fs::read_dir(&io).unwrap().flatten() {
            let p = e.path();
            if known.contains(&p) {
                continue;
            }
            let target = p.join("io").join("planted");
            let link_from = precious.clone();
            // SAFETY: the closure only calls setgroups/setgid/setuid wrappers before exec.
            let out = unsafe {
                Command::new("/bin/ln")
                    .arg("-s")
                    .arg(&link_from)
                    .arg(&target)
                    .pre_exec(|| {
                        nix::unistd::setgroups(&[]).map_err(std::io::Error::from)?;
                        nix::unistd::setgid(nix::unistd::Gid::from_raw(NOBODY))
                            .map_err(std::io::Error::from)?;
                        nix::unistd::setuid(nix::unistd::Uid::from_raw(NOBODY))
                            .map_err(std::io::Error::from)
                    })
                    .output()
                    .unwrap()
            };
            planted.push((p, out.status.success(), text(&out.stderr)));
        }
        if planted.len() >= 2
            || runs
                .iter_mut()
                .all(|c| c.try_wait().ok().flatten().is_some())
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let outputs: Vec<Output> = runs
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for o in &outputs {
        assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    }
    assert!(
        !planted.is_empty(),
        "no run folder was seen while the runs ran"
    );
    for (folder, ok, err) in &planted {
        assert!(!ok, "uid 65534 planted a link in {}", folder.display());
        assert!(err.contains("Permission denied"), "{err}");
    }
    // Both runs measured everything, each in its own folder.
    for out in &outs {
        let run_dir = std::fs::read_dir(out)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let samples = std::fs::read_to_string(run_dir.join("samples.jsonl")).unwrap();
        assert_eq!(samples.lines().count(), 3 * 2 * 2, "{samples}");
        for line in samples.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v["failure"].is_null(), "{line}");
        }
    }
    // Outside isolab's own (now removed) folders, nothing changed: the bait is as it was.
    let mut after = snapshot(tmp.path());
    after.retain(|p, _| !outs.iter().any(|o| p.starts_with(o)));
    assert_eq!(before, after);
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "root:x:0:0\n");
}

/// What of a run is still on the host: its cgroup directories, its folders, its processes (by
/// cgroup), mounts of its folders, its registry entry.
fn leftovers_of(record: &RunRecord) -> Vec<String> {
    let mut left = Vec::new();
    for p in record.cgroups.iter().chain(&record.folders) {
        if p.exists() {
            left.push(format!("{} exists", p.display()));
        }
    }
    let name = format!("isolab-run-{}", record.id);
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cg) = std::fs::read_to_string(e.path().join("cgroup")) {
            if cg.contains(&name) {
                left.push(format!(
                    "process {} is in {name}",
                    e.file_name().to_string_lossy()
                ));
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for f in &record.folders {
        if mounts.contains(&*f.to_string_lossy()) {
            left.push(format!("a mount of {} is on the host", f.display()));
        }
    }
    for ext in ["json", "json.new"] {
        let entry = Path::new(DEFAULT_REGISTRY).join(format!("{}.{ext}", record.id));
        if entry.exists() {
            left.push(format!("{}", entry.display()));
        }
    }
    left
}

/// `kill -9` of isolab at random moments of a run of container (and native) trials, then
/// `isolab doctor --clean` (and once, the next `isolab run`): nothing of the killed run is left.
/// `ISOLAB_KILL_LOOPS` sets the number of kills (default 3).
#[test]
fn kill_9_then_doctor_clean_leaves_nothing() {
    let _one = serial();
    require_root();
    let loops: u32 = std::env::var("ISOLAB_KILL_LOOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let tmp = tempfile::tempdir().unwrap();
    let s = suite(tmp.path(), 200);
    let small = suite(tmp.path(), 1);
    let mut seed = std::process::id() as u64;
    for i in 0..loops {
        let mut child = run_cmd(&s, &tmp.path().join("out"), tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // Wait until the run is recorded, then a random 0-800 ms more.
        let deadline = Instant::now() + Duration::from_secs(30);
        let record = loop {
            if let Some(r) = records().into_iter().find(|r| r.pid == pid) {
                break r;
            }
            assert!(Instant::now() < deadline, "run {i} never recorded itself");
            std::thread::sleep(Duration::from_millis(5));
        };
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis((seed >> 33) % 800));
        // The freshest record: the cgroup may have been added meanwhile.
        let record = records()
            .into_iter()
            .find(|r| r.pid == pid)
            .unwrap_or(record);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
        let _ = child.wait();
        let record = records()
            .into_iter()
            .find(|r| r.pid == pid)
            .unwrap_or(record);
        let last = i + 1 == loops;
        let cleaner = if last {
            // The next run reports and removes what the killed one left.
            let o = run_cmd(&small, &tmp.path().join("out-next"), tmp.path())
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", text(&o.stderr));
            let err = text(&o.stderr);
            assert!(
                err.contains(&format!("found leftovers of run {}", record.run_id)),
                "{err}"
            );
            err
        } else {
            let o = Command::new(ISOLAB)
                .args(["doctor", "--clean"])
                .env("ISOLAB_AGENT", agent())
                .output()
                .unwrap();
            text(&o.stdout)
        };
        let left = leftovers_of(&record);
        assert!(left.is_empty(), "kill {i}: left {left:?}\n{cleaner}");
    }
}

/// SIGTERM and SIGHUP are handled like Ctrl-C: the trial in progress is ended, the run is marked
/// interrupted, and every place of the run is removed by isolab itself (no `doctor --clean`).
#[test]
fn sigterm_and_sighup_clean_up_like_ctrl_c() {
    let _one = serial();
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let s = suite(tmp.path(), 200);
    for sig in [nix::sys::signal::SIGTERM, nix::sys::signal::SIGHUP] {
        let out = tmp.path().join(format!("out-{sig}"));
        let child = run_cmd(&s, &out, tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(30);
        // Once its cgroup is recorded, the run is under way.
        let record = loop {
            if let Some(r) = records()
                .into_iter()
                .find(|r| r.pid == pid && !r.cgroups.is_empty())
            {
                break r;
            }
            assert!(Instant::now() < deadline, "the run never recorded itself");
            std::thread::sleep(Duration::from_millis(5));
        };
        std::thread::sleep(Duration::from_millis(300));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(130), "{sig}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains("interrupted"),
            "{}",
            text(&o.stderr)
        );
        let left = leftovers_of(&record);
        assert!(left.is_empty(), "{sig}: left {left:?}");
        let run_dir = std::fs::read_dir(&out)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let manifest = std::fs::read_to_string(run_dir.join("manifest.json")).unwrap();
        assert!(manifest.contains("\"interrupted\""), "{manifest}");
    }
}
