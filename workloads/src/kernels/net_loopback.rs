//! Networking: TCP over the sandbox's own loopback (throughput, round-trip latency).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::kernels::io::percentile;

use crate::kernels::{check_range, WorkloadError};
use crate::result::Metric;

/// Parameters of `net-loopback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetLoopbackParams {
    /// MiB streamed over TCP loopback.
    pub mib: u32,
    /// One-byte ping-pongs timed.
    pub round_trips: u32,
}

impl Default for NetLoopbackParams {
    fn default() -> Self {
        Self {
            mib: 64,
            round_trips: 2000,
        }
    }
}

const KIND: &str = "net-loopback";
const MAX_MIB: u64 = 1024 * 1024;
const MAX_ROUND_TRIPS: u64 = 100_000_000;
/// Chunk written per call while streaming.
const CHUNK: usize = 128 * 1024;
/// No single read may stall longer than this: a hung peer must end in an error, not a hang.
const STALL: Duration = Duration::from_secs(30);

/// Runs `net-loopback`: streams `mib` MiB to a peer thread over 127.0.0.1 (timed until the peer
/// acknowledges the last byte), then `round_trips` one-byte ping-pongs with TCP_NODELAY.
pub fn run(params: &NetLoopbackParams) -> Result<Vec<Metric>, WorkloadError> {
    check_range(KIND, "mib", params.mib.into(), 1, MAX_MIB)?;
    check_range(
        KIND,
        "round_trips",
        params.round_trips.into(),
        1,
        MAX_ROUND_TRIPS,
    )?;
    let bytes = u64::from(params.mib) * 1024 * 1024;
    let round_trips = params.round_trips;

    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(lo_err("bind 127.0.0.1:0"))?;
    let addr = listener.local_addr().map_err(lo_err("getsockname"))?;
    // Connect before starting the peer: the kernel completes the handshake from the backlog, and
    // if it fails no thread is left blocked in accept().
    let mut client = connect(addr)?;
    let peer = std::thread::spawn(move || peer(listener, bytes, round_trips));

    let client_result = drive(&mut client, bytes, round_trips);
    drop(client);
    let peer_result = peer.join().map_err(|_| {
        WorkloadError::sys(
            "the loopback peer thread",
            std::io::Error::other("it panicked"),
        )
    })?;
    let (stream_secs, mut rtts) = client_result?;
    peer_result?;

    rtts.sort_by(f64::total_cmp);
    Ok(vec![
        Metric::higher("tcp_throughput", "MB/s", bytes as f64 / 1e6 / stream_secs),
        Metric::lower("tcp_rtt", "µs", percentile(&rtts, 50.0).unwrap_or(f64::NAN)),
        Metric::lower(
            "tcp_rtt_p99",
            "µs",
            percentile(&rtts, 99.0).unwrap_or(f64::NAN),
        ),
    ])
}

fn connect(addr: SocketAddr) -> Result<TcpStream, WorkloadError> {
    let s = TcpStream::connect(addr).map_err(lo_err("connect to 127.0.0.1"))?;
    s.set_nodelay(true).map_err(lo_err("TCP_NODELAY"))?;
    s.set_read_timeout(Some(STALL))
        .map_err(lo_err("SO_RCVTIMEO"))?;
    Ok(s)
}

/// The client side: stream, wait for the acknowledgement, then ping-pong. Returns the stream
/// time in seconds and every round trip in µs.
fn drive(
    s: &mut TcpStream,
    bytes: u64,
    round_trips: u32,
) -> Result<(f64, Vec<f64>), WorkloadError> {
    let chunk = vec![0x5au8; CHUNK];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(CHUNK as u64) as usize;
        s.write_all(&chunk[..n]).map_err(lo_err("stream write"))?;
        sent += n as u64;
    }
    let mut ack = [0u8; 1];
    s.read_exact(&mut ack)
        .map_err(lo_err("waiting for the stream acknowledgement"))?;
    let stream_secs = start.elapsed().as_secs_f64();

    let mut rtts = Vec::with_capacity(round_trips as usize);
    let mut byte = [1u8; 1];
    for _ in 0..round_trips {
        let t = Instant::now();
        s.write_all(&byte).map_err(lo_err("ping"))?;
        s.read_exact(&mut byte)
            .map_err(lo_err("waiting for pong"))?;
        rtts.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok((stream_secs, rtts))
}

/// The peer thread: accept, swallow `bytes` and acknowledge, then echo `round_trips` bytes.
fn peer(listener: TcpListener, bytes: u64, round_trips: u32) -> Result<(), WorkloadError> {
    let (mut s, _) = listener.accept().map_err(lo_err("accept"))?;
    s.set_nodelay(true).map_err(lo_err("TCP_NODELAY"))?;
    s.set_read_timeout(Some(STALL))
        .map_err(lo_err("SO_RCVTIMEO"))?;
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    while got < bytes {
        let n = s.read(&mut buf).map_err(lo_err("stream read"))?;
        if n == 0 {
            return Err(lo_err("stream read")(
                std::io::ErrorKind::UnexpectedEof.into(),
            ));
        }
        got += n as u64;
    }
    s.write_all(&[1])
        .map_err(lo_err("stream acknowledgement"))?;
    let mut byte = [0u8; 1];
    for _ in 0..round_trips {
        s.read_exact(&mut byte)
            .map_err(lo_err("waiting for ping"))?;
        s.write_all(&byte).map_err(lo_err("pong"))?;
    }
    Ok(())
}

/// Wraps a socket error; when `lo` is down (a fresh network namespace or VM whose init did not
/// bring it up) says so, because the raw errno (EADDRNOTAVAIL, ENETUNREACH) does not.
fn lo_err(what: &'static str) -> impl Fn(std::io::Error) -> WorkloadError {
    move |e| {
        let what = if loopback_down() {
            format!(
                "{what} (the loopback interface `lo` is down: the agent brings it up when it runs \
                 as PID 1; otherwise run `ip link set lo up` in this network namespace)"
            )
        } else {
            format!("{what} on the loopback interface")
        };
        WorkloadError::sys(what, e)
    }
}

/// Whether `lo` lacks IFF_UP in this network namespace; unknown counts as not down.
fn loopback_down() -> bool {
    loopback_flags(None).is_ok_and(|flags| flags & libc::IFF_UP as libc::c_short == 0)
}

/// Reads the IFF_* flags of `lo` in this process's network namespace, first setting them to `set`
/// if given. An ioctl rather than /sys/class/net: a container may see the host's /sys.
pub fn loopback_flags(set: Option<libc::c_short>) -> std::io::Result<libc::c_short> {
    use std::os::fd::AsRawFd;
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is a plain C struct (a name array and a union of integers and addresses) for
    // which all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    if let Some(flags) = set {
        req.ifr_ifru.ifru_flags = flags;
        // SAFETY: SIOCSIFFLAGS reads the NUL-terminated name and the flags from `req`, a live,
        // properly sized ifreq; the socket is open for the call's duration.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags inside `req`, as above.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
    Ok(unsafe { req.ifr_ifru.ifru_flags })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_run_reports_throughput_and_rtt() {
        let m = run(&NetLoopbackParams {
            mib: 4,
            round_trips: 100,
        })
        .unwrap();
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["tcp_throughput", "tcp_rtt", "tcp_rtt_p99"]);
        // 1 MB/s .. 1 TB/s; an RTT of 0.5 µs .. 100 ms.
        assert!(m[0].value > 1.0 && m[0].value < 1e6, "{m:?}");
        assert!(
            m[1].value > 0.5 && m[1].value < 1e5 && m[2].value >= m[1].value,
            "{m:?}"
        );
    }

    #[test]
    fn loopback_flags_are_read_in_this_namespace() {
        let flags = loopback_flags(None).unwrap();
        assert!(
            flags & libc::IFF_LOOPBACK as libc::c_short != 0,
            "{flags:#x}"
        );
        assert!(!loopback_down());
    }

    #[test]
    fn zero_sizes_are_refused() {
        assert!(run(&NetLoopbackParams {
            mib: 0,
            round_trips: 1
        })
        .is_err());
        assert!(run(&NetLoopbackParams {
            mib: 1,
            round_trips: 0
        })
        .is_err());
    }
}
