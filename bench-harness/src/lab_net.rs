//! The run's lab network: a network namespace made for the run, holding the network workloads'
//! peer and the host ends of every sandbox's link. Every packet of the network workloads stays in
//! namespaces isolab made: the lab has its loopback and the veth pairs' host ends, no route out
//! and no address of the host's own interfaces.
//!
//! The lab is the peer's own namespace: the peer (`isolab-agent --peer`) is started with
//! `unshare(CLONE_NEWNET)` before exec and with a parent-death signal, so it ends with isolab,
//! and the namespace ends with the last process in it. The peer's pid and start time are recorded
//! in the run's registry entry, so `isolab doctor --clean` ends it after a `kill -9` (whatever
//! else was in the lab, native trials, containers and VMMs, is in the run's cgroup and goes with
//! it).
//!
//! - Native (and a container with `--container-net host`) joins the lab itself and reaches the
//!   peer on the lab's `127.0.0.1`.
//! - A container with `--container-net veth` (the default, Docker's bridge path without the
//!   bridge) gets a fresh namespace per trial holding `eth0`, the inner end of a veth pair whose
//!   outer end is in the lab; each pair has its own /30 (`.1` in the lab, `.2` inside) and the
//!   sandbox's default route leads to the lab, which routes nowhere.
//!
//! - A VM gets a tap device `tapN` in the lab (`.1/30` on it), which its VMM attaches to its
//!   virtio-net card; the guest's `eth0` gets `.2/30` from the command line (`isolab.net=`).
//!
//! Links are set up with iproute2's `ip`, run in the namespace concerned.

use std::io::{BufRead, BufReader, Write as _};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use thiserror::Error;
use workloads::kernels::net::PEER_PORT;

/// How long the peer may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Subnets the lab may use, one /16 each; the first that no route of the host's touches is taken.
const LAB_SUBNETS: [[u8; 2]; 4] = [[10, 77], [10, 78], [172, 30], [192, 168]];

/// How a container reaches the network (`--container-net`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ContainerNet {
    /// Its own network namespace with a veth pair into the lab: the path of Docker's bridge
    /// network, without the bridge.
    #[default]
    Veth,
    /// No network namespace of its own: it shares the lab's, as native does (Docker's
    /// `--network host`, but in the lab, never the host's).
    Host,
}

impl ContainerNet {
    /// Both, in the order `--container-net` lists them.
    pub const ALL: [ContainerNet; 2] = [ContainerNet::Host, ContainerNet::Veth];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            ContainerNet::Veth => "veth",
            ContainerNet::Host => "host",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// Why the lab network could not be made or used. Nothing is left behind by a failed step.
#[derive(Debug, Error)]
pub enum LabError {
    /// The peer could not start or did not become ready.
    #[error("the network workloads' peer did not start: {0}")]
    Peer(String),
    /// Every candidate subnet is in use on the host.
    #[error(
        "every subnet the lab network may use (10.77/16, 10.78/16, 172.30/16, 192.168/16) is routed \
         on this host; the lab never uses the host's own addresses: free one of them"
    )]
    NoSubnet,
    /// A link could not be made.
    #[error("{what}: {why}")]
    Link {
        /// What was being done.
        what: String,
        /// What went wrong and the fix.
        why: String,
    },
}

/// The run's lab network namespace and its peer.
#[derive(Debug)]
pub struct LabNet {
    peer: Child,
    ns: OwnedFd,
    ns_inode: u64,
    subnet: [u8; 2],
    next_link: AtomicU32,
}

/// A fresh network namespace with a veth pair's inner end (`eth0`) set up, for one sandbox.
/// Dropping it releases the namespace; the kernel then deletes the pair, both ends.
#[derive(Debug)]
pub struct VethNetns {
    ns: OwnedFd,
    /// The peer's address from inside (`ADDR:PORT`).
    pub peer: String,
    /// The outer end's name in the lab.
    pub host_end: String,
}

/// A tap device in the lab for one VM backend's VMs (one at a time): the VMM attaches to it by
/// name from the lab namespace. It goes with the lab.
#[derive(Debug, Clone)]
pub struct LabTap {
    /// Its name in the lab.
    pub name: String,
    /// The peer's address from the guest (`ADDR:PORT`, the tap's own address).
    pub peer: String,
    /// The guest's address and prefix (`ADDR/30`), for `isolab.net=`.
    pub guest: String,
    /// The lab namespace, as a path the VMM process can open (`/proc/PID/ns/net` of the peer).
    pub netns: std::path::PathBuf,
}

impl VethNetns {
    /// The namespace, to join.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.ns.as_fd()
    }
}

/// Whether `a.b.0.0/16` overlaps a route of this namespace (from /proc/net/route).
fn subnet_routed(subnet: [u8; 2]) -> bool {
    let Ok(routes) = std::fs::read_to_string("/proc/net/route") else {
        return false;
    };
    let ours = u32::from_be_bytes([subnet[0], subnet[1], 0, 0]);
    routes.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let hex = |i: usize| {
            f.get(i)
                .and_then(|v| u32::from_str_radix(v, 16).ok())
                .map(u32::from_le)
                .map(u32::swap_bytes)
        };
        match (hex(1), hex(7)) {
            // The default route (mask 0) overlaps everything but leads out: not an address use.
            (Some(_), Some(0)) | (None, _) | (_, None) => false,
            (Some(dest), Some(mask)) => {
                let common = mask & 0xffff_0000;
                dest & common == ours & common
            }
        }
    })
}

/// Runs `ip -batch -` with `commands` (one command: `ip` with its words), in the namespace of the calling thread or, given `ns`, in
/// that one.
fn ip_batch(commands: &str, ns: Option<BorrowedFd<'_>>, what: &str) -> Result<(), LabError> {
    let mut cmd = Command::new("ip");
    // One command runs without -batch, which busybox's ip (the emulated machine's) lacks.
    match commands.trim().lines().collect::<Vec<_>>()[..] {
        [one] => cmd.args(one.split_whitespace()),
        _ => cmd.args(["-batch", "-"]),
    }
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if let Some(ns) = ns {
        let fd = ns.as_raw_fd();
        // SAFETY: setns is async-signal-safe; the fd stays open in the parent until spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let fail = |why: String| LabError::Link {
        what: what.to_owned(),
        why,
    };
    let mut child = cmd.spawn().map_err(|e| {
        fail(if e.kind() == std::io::ErrorKind::NotFound {
            "iproute2's `ip` is not installed; install it (apt-get install iproute2)".into()
        } else {
            format!("cannot run `ip`: {e}")
        })
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(commands.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("`ip`: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let fix = if stderr.contains("/dev/net/tun") || stderr.contains("tuntap") {
        "; this host has no tun device: `modprobe tun` (CONFIG_TUN)"
    } else if stderr.contains("Unknown device type") || stderr.contains("not supported") {
        "; this kernel lacks veth support: `modprobe veth` (CONFIG_VETH)"
    } else if stderr.contains("File exists") {
        "; a link of that name exists in the lab already (run `isolab doctor --clean`)"
    } else {
        ""
    };
    Err(fail(format!("`ip` said: {stderr}{fix}")))
}

impl LabNet {
    /// Starts the peer in a fresh network namespace (the lab). `record` is called with the
    /// peer's pid as soon as it exists, before anything else can fail, so it can be registered.
    pub fn create(agent: &Path, record: impl FnOnce(i32)) -> Result<Self, LabError> {
        let subnet = LAB_SUBNETS
            .into_iter()
            .find(|s| !subnet_routed(*s))
            .ok_or(LabError::NoSubnet)?;
        let mut cmd = Command::new(agent);
        cmd.args([workloads::agent::PEER_FLAG, &PEER_PORT.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: prctl and unshare take integers and are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                    || libc::unshare(libc::CLONE_NEWNET) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut peer = cmd.spawn().map_err(|e| {
            LabError::Peer(format!(
                "{} --peer: {e}{}",
                agent.display(),
                if e.raw_os_error() == Some(libc::EPERM) {
                    "; a network namespace needs root (CAP_SYS_ADMIN)"
                } else {
                    ""
                }
            ))
        })?;
        let pid = peer.id() as i32;
        record(pid);
        let kill = |peer: &mut Child, why: String| {
            let _ = peer.kill();
            let _ = peer.wait();
            LabError::Peer(why)
        };
        let Some(stdout) = peer.stdout.take() else {
            return Err(kill(&mut peer, "no stdout".into()));
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) if line.trim() == format!("ready {PEER_PORT}") => {}
            other => {
                let _ = peer.kill();
                let mut stderr = String::new();
                if let Some(mut e) = peer.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
                }
                let _ = peer.wait();
                return Err(LabError::Peer(format!(
                    "{} (its stderr: {})",
                    match other {
                        Ok(l) => format!("it said {:?} instead of `ready {PEER_PORT}`", l.trim()),
                        Err(_) => format!("not ready within {READY_TIMEOUT:?}"),
                    },
                    stderr.trim()
                )));
            }
        }
        let ns = match std::fs::File::open(format!("/proc/{pid}/ns/net")) {
            Ok(f) => OwnedFd::from(f),
            Err(e) => return Err(kill(&mut peer, format!("its namespace: {e}"))),
        };
        let ns_inode = std::fs::metadata(format!("/proc/{pid}/ns/net"))
            .map(|m| m.ino())
            .unwrap_or(0);
        let lab = Self {
            peer,
            ns,
            ns_inode,
            subnet,
            next_link: AtomicU32::new(0),
        };
        // Links are made with `ip`: a host without it learns so now, not at the first container.
        ip_batch(
            "link set lo up\n",
            Some(lab.ns_fd()),
            "checking iproute2 in the lab",
        )?;
        Ok(lab)
    }

    /// The lab namespace, to join.
    pub fn ns_fd(&self) -> BorrowedFd<'_> {
        self.ns.as_fd()
    }

    /// The lab namespace's inode (what `/proc/PID/ns/net` of a process in it links to).
    pub fn ns_inode(&self) -> u64 {
        self.ns_inode
    }

    /// The peer's pid.
    pub fn peer_pid(&self) -> i32 {
        self.peer.id() as i32
    }

    /// The peer's address on the lab's loopback.
    pub fn loopback_peer(&self) -> String {
        format!("127.0.0.1:{PEER_PORT}")
    }

    /// The lab's subnet, `a.b.0.0/16`.
    pub fn subnet(&self) -> String {
        format!("{}.{}.0.0/16", self.subnet[0], self.subnet[1])
    }

    /// Makes a tap device `tapN` in the lab with `.1/30` on it, up, with the virtio net header
    /// (`vnet_hdr`), for a VM whose guest takes `.2/30`.
    pub fn tap(&self) -> Result<LabTap, LabError> {
        let n = self.next_link.fetch_add(1, Ordering::Relaxed) % (1 << 14);
        let (c, d) = ((n / 64) as u8, (n % 64 * 4) as u8);
        let [a, b] = self.subnet;
        let name = format!("tap{n}");
        let netns: std::path::PathBuf = format!("/proc/{}/ns/net", self.peer_pid()).into();
        // Made with the tun ioctls (no `ip tuntap`, which busybox's ip, in the emulated
        // machine, lacks), persistent so the VMMs attach to it by name.
        let made = vm_backend::devices::virtio::net::Tap::open_in(Some(&netns), &name)
            .and_then(|t| t.make_persistent());
        made.map_err(|e| LabError::Link {
            what: "the VM's tap device".into(),
            why: e.to_string(),
        })?;
        for cmd in [
            format!("addr add {a}.{b}.{c}.{}/30 dev {name}", d + 1),
            format!("link set {name} up"),
        ] {
            ip_batch(&cmd, Some(self.ns_fd()), "the VM's tap device")?;
        }
        Ok(LabTap {
            name,
            peer: format!("{a}.{b}.{c}.{}:{PEER_PORT}", d + 1),
            guest: format!("{a}.{b}.{c}.{}/30", d + 2),
            netns,
        })
    }

    /// Makes a fresh namespace for one sandbox with a veth pair into the lab: `eth0` inside with
    /// `.2/30` and a default route to `.1`, the outer end `vethN` in the lab with `.1/30`. On
    /// an error nothing is left (the half-made namespace is released and its links with it).
    pub fn veth_netns(&self) -> Result<VethNetns, LabError> {
        let n = self.next_link.fetch_add(1, Ordering::Relaxed) % (1 << 14);
        let (c, d) = ((n / 64) as u8, (n % 64 * 4) as u8);
        let [a, b] = self.subnet;
        let host_end = format!("veth{n}");
        let peer_pid = self.peer_pid();
        let inner = format!(
            "link add eth0 type veth peer name {host_end} netns {peer_pid}\n\
             addr add {a}.{b}.{c}.{}/30 dev eth0\n\
             link set lo up\n\
             link set eth0 up\n\
             route add default via {a}.{b}.{c}.{}\n",
            d + 2,
            d + 1
        );
        let outer = format!(
            "addr add {a}.{b}.{c}.{}/30 dev {host_end}\nlink set {host_end} up\n",
            d + 1
        );
        // A thread of its own makes the namespace (network namespaces are per thread) and runs
        // the inner `ip` from there; it ends right after, the fd keeps the namespace.
        let ns = std::thread::scope(|s| {
            s.spawn(|| -> Result<OwnedFd, LabError> {
                // SAFETY: unshare takes a flag; it changes only this thread's namespace.
                if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                    return Err(LabError::Link {
                        what: "a network namespace for the sandbox".into(),
                        why: format!(
                            "{}; it needs root (CAP_SYS_ADMIN)",
                            std::io::Error::last_os_error()
                        ),
                    });
                }
                let ns = std::fs::File::open("/proc/thread-self/ns/net")
                    .map(OwnedFd::from)
                    .map_err(|e| LabError::Link {
                        what: "opening the sandbox's network namespace".into(),
                        why: e.to_string(),
                    })?;
                ip_batch(&inner, None, "the veth pair")?;
                Ok(ns)
            })
            .join()
            .unwrap_or_else(|_| {
                Err(LabError::Link {
                    what: "the veth pair".into(),
                    why: "its thread panicked".into(),
                })
            })
        })?;
        ip_batch(&outer, Some(self.ns_fd()), "the veth pair's outer end")?;
        Ok(VethNetns {
            ns,
            peer: format!("{a}.{b}.{c}.{}:{PEER_PORT}", d + 1),
            host_end,
        })
    }
}

impl Drop for LabNet {
    fn drop(&mut self) {
        // Closing its stdin ends the peer; the kill is for one that does not listen.
        drop(self.peer.stdin.take());
        let _ = self.peer.kill();
        let _ = self.peer.wait();
    }
}
