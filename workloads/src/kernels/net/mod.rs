//! Network I/O across the sandbox's boundary: the agent is the client, the peer ([`peer`]) runs
//! on the host side, in the lab network namespace isolab makes for the run. Modelled on netperf's
//! tests: `net-stream` (TCP_STREAM both ways), `net-rr` (TCP_RR), `net-crr` (TCP_CRR) and
//! `net-udp-rr` (UDP_RR), one-byte requests and responses.
//!
//! The harness points every network workload at the peer it started (`peer = "ADDR:PORT"`): the
//! lab namespace's loopback natively, the host end of the veth pair from a container, the tap
//! from a VM. A spec without a peer is refused: there is nothing to talk to.

pub mod peer;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::kernels::io::percentile;
use crate::kernels::{check_range, WorkloadError};
use crate::result::Metric;

pub use peer::{PeerReport, PEER_PORT};

/// Parameters of `net-stream`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetStreamParams {
    /// The peer, `ADDR:PORT` (the harness sets it).
    pub peer: String,
    /// MiB sent in each direction.
    pub mib: u32,
}

impl Default for NetStreamParams {
    fn default() -> Self {
        Self {
            peer: String::new(),
            mib: 256,
        }
    }
}

/// Parameters of `net-rr`, `net-crr` and `net-udp-rr`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetRrParams {
    /// The peer, `ADDR:PORT` (the harness sets it).
    pub peer: String,
    /// Transactions timed (one-byte request, one-byte response).
    pub transactions: u32,
}

impl Default for NetRrParams {
    fn default() -> Self {
        Self {
            peer: String::new(),
            transactions: 10_000,
        }
    }
}

/// Chunk written or read per call while streaming.
pub(crate) const CHUNK: usize = 128 * 1024;
/// No single socket operation may stall longer than this: a hung peer ends in an error.
pub(crate) const STALL: Duration = Duration::from_secs(30);
const MAX_MIB: u64 = 64 * 1024;
const MAX_TRANSACTIONS: u64 = 100_000_000;

fn peer_addr(kind: &'static str, peer: &str) -> Result<SocketAddr, WorkloadError> {
    if peer.is_empty() {
        return Err(WorkloadError::BadParameter {
            workload: kind,
            name: "peer",
            why: "no peer: network workloads talk to the peer `isolab run` starts in its lab \
                  network namespace; run them through `isolab run`"
                .into(),
        });
    }
    peer.parse().map_err(|e| WorkloadError::BadParameter {
        workload: kind,
        name: "peer",
        why: format!("{peer:?} is not ADDR:PORT ({e})"),
    })
}

fn net_err(what: &'static str, addr: SocketAddr) -> impl Fn(std::io::Error) -> WorkloadError {
    move |e| WorkloadError::sys(format!("{what} (peer {addr})"), e)
}

fn connect(addr: SocketAddr) -> Result<TcpStream, WorkloadError> {
    let s = TcpStream::connect_timeout(&addr, STALL).map_err(net_err("connect", addr))?;
    s.set_nodelay(true).map_err(net_err("TCP_NODELAY", addr))?;
    s.set_read_timeout(Some(STALL))
        .map_err(net_err("SO_RCVTIMEO", addr))?;
    s.set_write_timeout(Some(STALL))
        .map_err(net_err("SO_SNDTIMEO", addr))?;
    Ok(s)
}

/// The request header: an operation byte and its argument.
pub(crate) fn header(op: u8, arg: u64) -> [u8; 9] {
    let mut h = [0u8; 9];
    h[0] = op;
    h[1..].copy_from_slice(&arg.to_le_bytes());
    h
}

/// Runs `net-stream`: `mib` MiB from the sandbox to the peer (timed until the peer has read the
/// last byte and says so), then `mib` MiB from the peer to the sandbox (timed until the last
/// byte arrived). The peer measures the host's CPU (from /proc/stat) and its own over each
/// transfer, so the cost per Gbit is the host's, with the peer's own part apart.
pub fn stream(p: &NetStreamParams) -> Result<Vec<Metric>, WorkloadError> {
    const KIND: &str = "net-stream";
    check_range(KIND, "mib", p.mib.into(), 1, MAX_MIB)?;
    let addr = peer_addr(KIND, &p.peer)?;
    let bytes = u64::from(p.mib) << 20;
    let gbit = bytes as f64 * 8.0 / 1e9;
    let mut metrics = Vec::new();

    // Sandbox to host.
    let mut s = connect(addr)?;
    let chunk = vec![0x5au8; CHUNK];
    let start = Instant::now();
    s.write_all(&header(peer::OP_TO_PEER, bytes))
        .map_err(net_err("stream header", addr))?;
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(CHUNK as u64) as usize;
        s.write_all(&chunk[..n])
            .map_err(net_err("stream write", addr))?;
        sent += n as u64;
    }
    let report = PeerReport::read_from(&mut s).map_err(net_err("the peer's report", addr))?;
    let secs = start.elapsed().as_secs_f64();
    metrics.push(Metric::higher("tx_throughput", "Gbit/s", gbit / secs));
    metrics.extend(report.per_gbit("tx", gbit));
    drop(s);

    // Host to sandbox.
    let mut s = connect(addr)?;
    let mut buf = vec![0u8; CHUNK];
    let start = Instant::now();
    s.write_all(&header(peer::OP_FROM_PEER, bytes))
        .map_err(net_err("stream header", addr))?;
    let mut got = 0u64;
    while got < bytes {
        let n = s.read(&mut buf).map_err(net_err("stream read", addr))?;
        if n == 0 {
            return Err(net_err("stream read", addr)(
                std::io::ErrorKind::UnexpectedEof.into(),
            ));
        }
        got += n as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    s.write_all(&[1]).map_err(net_err("stream ack", addr))?;
    let report = PeerReport::read_from(&mut s).map_err(net_err("the peer's report", addr))?;
    metrics.push(Metric::higher("rx_throughput", "Gbit/s", gbit / secs));
    metrics.extend(report.per_gbit("rx", gbit));
    Ok(metrics)
}

/// The latency percentiles and rate of timed transactions (µs each, `total` seconds in all).
fn rr_metrics(prefix: &str, mut lat_us: Vec<f64>, total_s: f64) -> Vec<Metric> {
    lat_us.sort_by(f64::total_cmp);
    let n = lat_us.len() as f64;
    vec![
        Metric::lower(
            &format!("{prefix}_latency"),
            "µs",
            percentile(&lat_us, 50.0).unwrap_or(f64::NAN),
        ),
        Metric::lower(
            &format!("{prefix}_latency_p99"),
            "µs",
            percentile(&lat_us, 99.0).unwrap_or(f64::NAN),
        ),
        Metric::higher(&format!("{prefix}_tps"), "1/s", n / total_s),
    ]
}

fn check_rr(kind: &'static str, p: &NetRrParams) -> Result<SocketAddr, WorkloadError> {
    check_range(
        kind,
        "transactions",
        p.transactions.into(),
        1,
        MAX_TRANSACTIONS,
    )?;
    peer_addr(kind, &p.peer)
}

/// Runs `net-rr` (netperf's TCP_RR): one connection, `transactions` one-byte requests each
/// answered by one byte, TCP_NODELAY.
pub fn rr(p: &NetRrParams) -> Result<Vec<Metric>, WorkloadError> {
    let addr = check_rr("net-rr", p)?;
    let mut s = connect(addr)?;
    s.write_all(&header(peer::OP_RR, p.transactions.into()))
        .map_err(net_err("rr header", addr))?;
    let mut lat = Vec::with_capacity(p.transactions as usize);
    let mut byte = [1u8; 1];
    let start = Instant::now();
    for _ in 0..p.transactions {
        let t = Instant::now();
        s.write_all(&byte).map_err(net_err("request", addr))?;
        s.read_exact(&mut byte)
            .map_err(net_err("waiting for the response", addr))?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(rr_metrics("rr", lat, start.elapsed().as_secs_f64()))
}

/// Runs `net-crr` (netperf's TCP_CRR): per transaction connect, one-byte request, one-byte
/// response, close.
pub fn crr(p: &NetRrParams) -> Result<Vec<Metric>, WorkloadError> {
    let addr = check_rr("net-crr", p)?;
    let mut lat = Vec::with_capacity(p.transactions as usize);
    let mut request = [0u8; 10];
    request[..9].copy_from_slice(&header(peer::OP_CRR, 0));
    let start = Instant::now();
    for _ in 0..p.transactions {
        let t = Instant::now();
        let mut s = connect(addr)?;
        s.write_all(&request).map_err(net_err("request", addr))?;
        let mut byte = [0u8; 1];
        s.read_exact(&mut byte)
            .map_err(net_err("waiting for the response", addr))?;
        drop(s);
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(rr_metrics("crr", lat, start.elapsed().as_secs_f64()))
}

/// Runs `net-udp-rr` (netperf's UDP_RR): one-byte datagrams each answered by one. A datagram
/// lost (no answer within the stall limit) fails the workload: over these links none should be.
pub fn udp_rr(p: &NetRrParams) -> Result<Vec<Metric>, WorkloadError> {
    let addr = check_rr("net-udp-rr", p)?;
    let any: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal address")
    } else {
        "[::]:0".parse().expect("literal address")
    };
    let s = UdpSocket::bind(any).map_err(net_err("udp bind", addr))?;
    s.connect(addr).map_err(net_err("udp connect", addr))?;
    s.set_read_timeout(Some(STALL))
        .map_err(net_err("SO_RCVTIMEO", addr))?;
    let mut lat = Vec::with_capacity(p.transactions as usize);
    let mut byte = [1u8; 1];
    let start = Instant::now();
    for _ in 0..p.transactions {
        let t = Instant::now();
        s.send(&byte).map_err(net_err("udp request", addr))?;
        let n = s
            .recv(&mut byte)
            .map_err(net_err("waiting for the udp response", addr))?;
        if n != 1 {
            return Err(net_err("udp response", addr)(std::io::Error::other(
                format!("{n} bytes instead of 1"),
            )));
        }
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(rr_metrics("udp_rr", lat, start.elapsed().as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer on 127.0.0.1 (an ephemeral port) in this test process.
    fn local_peer() -> String {
        let (tcp, udp) = peer::bind("127.0.0.1:0".parse().unwrap()).expect("bind");
        let addr = tcp.local_addr().unwrap();
        std::thread::spawn(move || peer::serve(tcp, udp));
        addr.to_string()
    }

    #[test]
    fn stream_reports_both_directions_with_host_cpu_per_gbit() {
        let m = stream(&NetStreamParams {
            peer: local_peer(),
            mib: 8,
        })
        .unwrap();
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "tx_throughput",
                "tx_host_cpu_per_gbit",
                "tx_peer_cpu_per_gbit",
                "rx_throughput",
                "rx_host_cpu_per_gbit",
                "rx_peer_cpu_per_gbit"
            ]
        );
        for m in &m {
            assert!(m.value.is_finite() && m.value >= 0.0, "{m:?}");
        }
        // Between 1 Mbit/s and 10 Tbit/s; the peer did work.
        assert!(m[0].value > 1e-3 && m[0].value < 1e4, "{m:?}");
        assert!(m[2].value > 0.0 && m[5].value > 0.0, "{m:?}");
    }

    #[test]
    fn rr_crr_and_udp_rr_report_latency_and_rate() {
        let peer = local_peer();
        for (run, prefix) in [
            (rr as fn(&NetRrParams) -> _, "rr"),
            (crr, "crr"),
            (udp_rr, "udp_rr"),
        ] {
            let m = run(&NetRrParams {
                peer: peer.clone(),
                transactions: 200,
            })
            .unwrap();
            assert_eq!(m[0].name, format!("{prefix}_latency"));
            assert!(m[0].value > 0.1 && m[1].value >= m[0].value, "{m:?}");
            // The rate and the median agree roughly: one transaction at a time.
            assert!(m[2].value > 1.0 && m[2].value < 1e7, "{m:?}");
        }
    }

    #[test]
    fn no_peer_or_a_bad_one_is_a_clear_error() {
        let e = rr(&NetRrParams::default()).unwrap_err().to_string();
        assert!(e.contains("isolab run"), "{e}");
        let e = stream(&NetStreamParams {
            peer: "nowhere".into(),
            mib: 1,
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("ADDR:PORT"), "{e}");
        assert!(udp_rr(&NetRrParams {
            peer: "127.0.0.1:9".into(),
            transactions: 0
        })
        .is_err());
    }
}
