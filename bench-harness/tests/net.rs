//! The network workloads across the isolation boundary: native over the lab namespace's loopback,
//! the container over a veth pair and over the lab itself, all against one peer; afterwards no
//! namespace, interface or process of the run is left, also after `kill -9` and `doctor --clean`.
//! Needs root (network namespaces, veth pairs, containers) and iproute2's `ip`; never skips.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{agent, serial};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bench_harness::run_places::{RunRecord, DEFAULT_REGISTRY};

const ISOLAB: &str = env!("CARGO_BIN_EXE_isolab");

fn require_root() {
    common::require_root("these tests make network namespaces, veth pairs and containers");
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Small sizes: the point is that every path works and leaves nothing, not the figures.
fn suite(dir: &Path, transactions: u32) -> PathBuf {
    let p = dir.join(format!("net-{transactions}.toml"));
    std::fs::write(
        &p,
        format!(
            "reps = 1\nwarmup = 0\nbackends = [\"native\", \"container\"]\n\
             [factors]\ncontainer-net = [\"host\", \"veth\"]\n\
             [[workload]]\nkind = \"net-stream\"\nmib = 16\n\
             [[workload]]\nkind = \"net-rr\"\ntransactions = {transactions}\n\
             [[workload]]\nkind = \"net-crr\"\ntransactions = 100\n\
             [[workload]]\nkind = \"net-udp-rr\"\ntransactions = 200\n"
        ),
    )
    .unwrap();
    p
}

fn run_cmd(suite: &Path, out: &Path, io: &Path) -> Command {
    common::isolab_run(suite, out, io, 5)
}

/// The network interfaces of the host's namespace (ours: the test runs in it).
fn host_links() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Processes in the network namespace with `inode`, or holding it open.
fn holders_of(inode: &str) -> Vec<String> {
    let target = format!("net:[{inode}]");
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if std::fs::read_link(e.path().join("ns/net")).is_ok_and(|l| l.to_string_lossy() == target)
        {
            found.push(format!("process {pid} is in it"));
        }
        if let Ok(fds) = std::fs::read_dir(e.path().join("fd")) {
            for fd in fds.flatten() {
                if std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == target) {
                    found.push(format!("process {pid} holds it open"));
                }
            }
        }
    }
    found
}

fn manifest(out: &Path) -> serde_json::Value {
    let run = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .next()
        .expect("a run folder")
        .path();
    serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap()
}

fn samples(out: &Path) -> Vec<serde_json::Value> {
    let run = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .next()
        .expect("a run folder")
        .path();
    std::fs::read_to_string(run.join("samples.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The check on this host: native and container (veth and host) give results for every
/// network workload with ratios to native, and leave no namespace, interface or process behind.
#[test]
fn native_and_container_over_veth_and_host_reach_the_peer_and_leave_nothing() {
    let _one = serial();
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let links_before = host_links();
    let out = tmp.path().join("out");
    let o = run_cmd(&suite(tmp.path(), 500), &out, tmp.path())
        .output()
        .unwrap();
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{}\n{stdout}", text(&o.stderr));
    let samples = samples(&out);
    // Three columns (native, container host, container veth) times four workloads.
    assert_eq!(samples.len(), 12, "{samples:#?}");
    for s in &samples {
        let metrics = s["metrics"].as_array().unwrap_or_else(|| panic!("{s:#}"));
        assert!(
            s.get("failure").is_none_or(serde_json::Value::is_null) && !metrics.is_empty(),
            "{s:#}"
        );
        for m in metrics {
            let v = m["value"].as_f64().unwrap();
            assert!(v.is_finite() && v >= 0.0, "{m} in {s:#}");
        }
    }
    // Both container paths appear, each with a ratio to native.
    for label in ["container-net=host", "container-net=veth"] {
        assert!(stdout.contains(label), "{stdout}");
    }
    assert!(
        stdout.contains("rr_latency") && stdout.contains("tx_throughput"),
        "{stdout}"
    );

    let lab = &manifest(&out)["lab_network"];
    let inode = lab["netns_inode"].as_str().expect("the lab's inode");
    let holders = holders_of(inode);
    assert!(
        holders.is_empty(),
        "the lab namespace lives on: {holders:?}"
    );
    let peer = lab["peer_pid"].as_str().unwrap();
    assert!(
        !Path::new(&format!("/proc/{peer}")).exists()
            || !std::fs::read_to_string(format!("/proc/{peer}/cmdline"))
                .unwrap_or_default()
                .contains("--peer"),
        "the peer {peer} still runs"
    );
    assert_eq!(
        host_links(),
        links_before,
        "an interface appeared on the host"
    );
}

/// `kill -9` of isolab in the middle of a network trial, then `isolab doctor --clean`: the peer
/// and every process in the lab namespace are gone, and so is the namespace.
#[test]
fn kill_9_mid_network_trial_then_doctor_clean_leaves_no_namespace() {
    let _one = serial();
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let links_before = host_links();
    let mut child = run_cmd(
        &suite(tmp.path(), 5_000_000),
        &tmp.path().join("out"),
        tmp.path(),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let pid = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(60);
    // Wait for the lab's peer to be recorded, and for a trial to be talking to it.
    let record: RunRecord = loop {
        let found = std::fs::read_dir(DEFAULT_REGISTRY)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                serde_json::from_slice::<RunRecord>(&std::fs::read(e.path()).ok()?).ok()
            })
            .find(|r| r.pid == pid && !r.processes.is_empty());
        if let Some(r) = found {
            break r;
        }
        assert!(Instant::now() < deadline, "the run never recorded its peer");
        std::thread::sleep(Duration::from_millis(20));
    };
    let peer = record.processes[0].pid;
    let inode = std::fs::read_link(format!("/proc/{peer}/ns/net"))
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("net:[")
        .trim_end_matches(']')
        .to_owned();
    std::thread::sleep(Duration::from_millis(1500));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
    let _ = child.wait();
    let o = Command::new(ISOLAB)
        .args(["doctor", "--clean"])
        .env("ISOLAB_AGENT", agent())
        .output()
        .unwrap();
    // Processes take a moment to be reaped after SIGKILL.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut holders = holders_of(&inode);
    while !holders.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        holders = holders_of(&inode);
    }
    assert!(
        holders.is_empty(),
        "the lab namespace lives on: {holders:?}\n{}",
        text(&o.stdout)
    );
    let entry = Path::new(DEFAULT_REGISTRY).join(format!("{}.json", record.id));
    assert!(!entry.exists(), "{}", text(&o.stdout));
    assert_eq!(
        host_links(),
        links_before,
        "an interface appeared on the host"
    );
}

/// Without iproute2 the network workloads fail with the fix, the others run, and nothing is left.
#[test]
fn without_ip_network_trials_fail_with_the_fix_the_rest_runs_and_nothing_is_left() {
    let _one = serial();
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let suite = tmp.path().join("mixed.toml");
    std::fs::write(
        &suite,
        "reps = 1\nwarmup = 0\nbackends = [\"native\", \"container\"]\n\
         [[workload]]\nkind = \"noop\"\n[[workload]]\nkind = \"net-rr\"\ntransactions = 10\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = run_cmd(&suite, &out, tmp.path())
        .env("PATH", tmp.path().join("empty"))
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("iproute2"), "{err}");
    let samples = samples(&out);
    assert_eq!(samples.len(), 4, "{samples:#?}");
    for s in &samples {
        let failure = s["failure"].to_string();
        if s["workload"] == "net-rr" {
            assert!(failure.contains("apt-get install iproute2"), "{s:#}");
        } else {
            assert_eq!(failure, "null", "{s:#}");
        }
    }
    let lab = manifest(&out)["lab_network"]["error"].to_string();
    assert!(lab.contains("iproute2"), "{lab}");
    let peers: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| text(&c))
        .filter(|c| c.contains(&agent().display().to_string()) && c.contains("--peer"))
        .collect();
    assert!(peers.is_empty(), "a peer lives on: {peers:?}");
    let left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("isolab-"))
        .collect();
    assert!(left.is_empty(), "a run folder is left: {left:?}");
}

/// A VM's tap: made in the lab (tun ioctls, persistent, `.1/30`, up), attached by a VMM's
/// `Tap::open_in` through the lab's namespace path with the virtio net header, and gone with the
/// lab. The frame a guest would send reaches the lab: an ARP request for the tap's address from
/// the guest's address is answered by the lab's kernel, behind a virtio net header.
#[test]
fn a_vm_tap_is_made_in_the_lab_answers_a_guest_frame_and_goes_with_it() {
    require_root();
    let _one = serial();
    let lab = bench_harness::lab_net::LabNet::create(&agent(), |_| {}).unwrap();
    let tap = lab.tap().unwrap();
    let dev = std::fs::read_to_string(tap.netns.parent().unwrap().join("../net/dev")).unwrap();
    assert!(dev.contains(&format!("{}:", tap.name)), "{dev}");
    assert!(
        !host_links().contains(&tap.name),
        "the tap is in the lab only"
    );
    let mut t = vm_backend::devices::virtio::net::Tap::open_in(Some(&tap.netns), &tap.name)
        .unwrap_or_else(|e| panic!("{e}"));
    use vm_backend::devices::virtio::net::{NetBackend, GUEST_MAC, MAX_PACKET, VNET_HDR_LEN};
    let ip = |s: &str| -> [u8; 4] {
        let a: std::net::Ipv4Addr = s.split(['/', ':']).next().unwrap().parse().unwrap();
        a.octets()
    };
    let (guest, host) = (ip(&tap.guest), ip(&tap.peer));
    let mut frame = vec![0u8; VNET_HDR_LEN];
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&GUEST_MAC);
    frame.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    frame.extend_from_slice(&GUEST_MAC);
    frame.extend_from_slice(&guest);
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&host);
    let mut buf = vec![0u8; MAX_PACKET];
    let until = Instant::now() + Duration::from_secs(5);
    let mut answered = false;
    let mut sent_at = None::<Instant>;
    while Instant::now() < until && !answered {
        // Asked again every 200 ms, as a guest's ARP does: until the kernel has seen the tap's
        // carrier come up (its link watch runs up to a second after the attach), replies are
        // dropped by the tap's not yet active queue.
        if sent_at.is_none_or(|at| at.elapsed() > Duration::from_millis(200)) {
            t.send(&frame).unwrap();
            sent_at = Some(Instant::now());
        }
        match t.recv(&mut buf).unwrap() {
            // An ARP reply (opcode 2) to the guest's MAC address.
            Some(n) if n >= VNET_HDR_LEN + 42 => {
                let f = &buf[VNET_HDR_LEN..n];
                answered = f[..6] == GUEST_MAC && f[12..14] == [8, 6] && f[20..22] == [0, 2];
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    assert!(answered, "no ARP reply from the lab for {:?}", tap.peer);
    drop(t);
    let peer = lab.peer_pid();
    drop(lab);
    let until = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{peer}")).exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!Path::new(&format!("/proc/{peer}")).exists());
    assert!(!host_links().contains(&tap.name));
}
