//! The peer of the network workloads: a TCP and UDP server on the host side. `isolab run` starts
//! it (`isolab-agent --peer PORT`) as the first process of the run's lab network namespace;
//! every backend's agent talks to it.
//!
//! Protocol (TCP): a 9-byte header, an operation byte and a little-endian u64 argument, then:
//! - [`OP_TO_PEER`]: the client sends `arg` bytes; the peer answers with a [`PeerReport`];
//! - [`OP_FROM_PEER`]: the peer sends `arg` bytes; the client answers one byte; the peer answers
//!   with a [`PeerReport`];
//! - [`OP_RR`]: `arg` one-byte requests, each echoed;
//! - [`OP_CRR`]: one request byte, one response byte, then the peer closes.
//!
//! UDP on the same port: every datagram is echoed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};

use super::{CHUNK, STALL};
use crate::result::Metric;

/// The port the peer listens on inside the lab namespace (nothing else lives there).
pub const PEER_PORT: u16 = 7077;
/// Stream from the client to the peer.
pub const OP_TO_PEER: u8 = b'S';
/// Stream from the peer to the client.
pub const OP_FROM_PEER: u8 = b'R';
/// Request/response on one connection.
pub const OP_RR: u8 = b'r';
/// One request/response per connection.
pub const OP_CRR: u8 = b'c';

/// What the peer measured over one stream: the host's busy CPU time (all CPUs, from
/// /proc/stat's first line: user, nice, system, irq, softirq, steal) and its own thread's CPU
/// time, over the same window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerReport {
    /// Host CPU busy time over the transfer, ns (every process's, the peer's and softirqs
    /// included).
    pub host_busy_ns: u64,
    /// The peer thread's own CPU time (user + system) over the transfer, ns.
    pub peer_cpu_ns: u64,
}

impl PeerReport {
    fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.host_busy_ns.to_le_bytes());
        b[8..].copy_from_slice(&self.peer_cpu_ns.to_le_bytes());
        b
    }

    /// Reads a report sent by the peer.
    pub fn read_from(r: &mut impl Read) -> std::io::Result<Self> {
        let mut b = [0u8; 16];
        r.read_exact(&mut b)?;
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(w)
        };
        Ok(Self {
            host_busy_ns: word(0),
            peer_cpu_ns: word(8),
        })
    }

    /// The host's CPU per Gbit without the peer, and the peer's apart (ms of CPU per Gbit).
    pub fn per_gbit(self, direction: &str, gbit: f64) -> Vec<Metric> {
        let ms = |ns: u64| ns as f64 / 1e6 / gbit;
        vec![
            Metric::lower(
                &format!("{direction}_host_cpu_per_gbit"),
                "ms/Gbit",
                ms(self.host_busy_ns.saturating_sub(self.peer_cpu_ns)),
            ),
            Metric::lower(
                &format!("{direction}_peer_cpu_per_gbit"),
                "ms/Gbit",
                ms(self.peer_cpu_ns),
            ),
        ]
    }
}

/// The host's busy CPU time so far, ns, from /proc/stat (0 when unreadable: the peer must go on
/// serving; a report of 0 then reads as "no CPU measured" only if the host has no /proc).
pub fn host_busy_ns() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let f: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 = [0usize, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| f.get(i).copied().unwrap_or(0))
        .sum();
    // SAFETY: sysconf takes a constant and touches no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    busy.saturating_mul(1_000_000_000 / hz)
}

/// This thread's CPU time (user + system), ns.
fn thread_cpu_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(0, |t| {
        u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
            + u64::try_from(t.tv_nsec()).unwrap_or(0)
    })
}

/// A window of host and peer CPU time.
struct CpuWindow {
    host: u64,
    peer: u64,
}

impl CpuWindow {
    fn open() -> Self {
        Self {
            host: host_busy_ns(),
            peer: thread_cpu_ns(),
        }
    }

    fn close(self) -> PeerReport {
        PeerReport {
            host_busy_ns: host_busy_ns().saturating_sub(self.host),
            peer_cpu_ns: thread_cpu_ns().saturating_sub(self.peer),
        }
    }
}

/// Binds the peer's TCP listener and UDP socket on `addr`.
pub fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, UdpSocket)> {
    let tcp = TcpListener::bind(addr)?;
    let udp = UdpSocket::bind(tcp.local_addr()?)?;
    Ok((tcp, udp))
}

/// Serves forever: UDP echo on one thread, each TCP connection on its own.
pub fn serve(tcp: TcpListener, udp: UdpSocket) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(&buf[..n], from);
        }
    });
    for conn in tcp.incoming() {
        match conn {
            Ok(s) => {
                std::thread::spawn(move || {
                    if let Err(e) = handle(s) {
                        eprintln!("isolab peer: a connection failed: {e}");
                    }
                });
            }
            // The client's backlog entry went away (reset): keep serving.
            Err(_) => continue,
        }
    }
}

fn handle(mut s: TcpStream) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(STALL))?;
    s.set_write_timeout(Some(STALL))?;
    let mut h = [0u8; 9];
    s.read_exact(&mut h)?;
    let mut arg = [0u8; 8];
    arg.copy_from_slice(&h[1..]);
    let arg = u64::from_le_bytes(arg);
    match h[0] {
        OP_TO_PEER => {
            let window = CpuWindow::open();
            let mut buf = vec![0u8; CHUNK];
            let mut got = 0u64;
            while got < arg {
                let want = (arg - got).min(CHUNK as u64) as usize;
                let n = s.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                got += n as u64;
            }
            s.write_all(&window.close().to_bytes())
        }
        OP_FROM_PEER => {
            let window = CpuWindow::open();
            let chunk = vec![0xa5u8; CHUNK];
            let mut sent = 0u64;
            while sent < arg {
                let n = (arg - sent).min(CHUNK as u64) as usize;
                s.write_all(&chunk[..n])?;
                sent += n as u64;
            }
            let mut ack = [0u8; 1];
            s.read_exact(&mut ack)?;
            s.write_all(&window.close().to_bytes())
        }
        OP_RR => {
            let mut byte = [0u8; 1];
            for _ in 0..arg {
                s.read_exact(&mut byte)?;
                s.write_all(&byte)?;
            }
            Ok(())
        }
        OP_CRR => {
            let mut byte = [0u8; 1];
            s.read_exact(&mut byte)?;
            s.write_all(&byte)
        }
        other => Err(std::io::Error::other(format!(
            "unknown operation {other:#04x}: the agent and the peer are different versions"
        ))),
    }
}
