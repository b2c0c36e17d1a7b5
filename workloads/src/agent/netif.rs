//! A VM's network interface, set up by the agent as PID 1 before a network workload: the address
//! the harness put on the kernel command line (`isolab.net=ADDR/PREFIX`), then up. Plain ioctls
//! (SIOCSIFADDR, SIOCSIFNETMASK, SIOCSIFFLAGS), as `ifconfig` does: no netlink, no tool in the
//! guest. The connected route the kernel adds with the address is the only one needed: the peer
//! is on the same /30.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// How long the interface may take to appear (the driver probes while init already runs).
const APPEAR: Duration = Duration::from_secs(3);

/// Parses `ADDR/PREFIX` (prefix 1..=30).
pub fn parse(value: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, prefix) = value.split_once('/')?;
    let prefix: u8 = prefix.parse().ok()?;
    (1..=30)
        .contains(&prefix)
        .then_some(())
        .and(addr.parse().ok().map(|a| (a, prefix)))
}

/// Sets `ADDR/PREFIX` on `name` and brings it up, waiting briefly for it to appear. The error
/// says what to do.
pub fn configure_from(value: &str, name: &str) -> Result<(), String> {
    let (addr, prefix) = parse(value).ok_or_else(|| {
        format!("isolab.net={value} is not ADDR/PREFIX with a prefix of 1..=30; fix the VM's command line")
    })?;
    configure(name, addr, prefix, APPEAR)
}

fn request(name: &str) -> Result<libc::ifreq, String> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(format!("{name:?} is not an interface name"));
    }
    // SAFETY: ifreq is a plain C struct for which all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

fn sockaddr(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size (16 bytes); every bit pattern is a
    // valid sockaddr.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn ioctl(sock: &OwnedFd, op: libc::c_ulong, req: &mut libc::ifreq) -> std::io::Result<()> {
    // SAFETY: the SIOC[GS]IF* requests read and write only inside `req`, a live ifreq with a
    // NUL-terminated name; the socket is open for the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), op, req as *mut libc::ifreq) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sets `addr/prefix` on `name` and brings it up, waiting up to `appear` for it to exist.
pub fn configure(name: &str, addr: Ipv4Addr, prefix: u8, appear: Duration) -> Result<(), String> {
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("a socket to set up {name}: {e}"))?;
    let mut req = request(name)?;
    let start = Instant::now();
    loop {
        match ioctl(&sock, libc::SIOCGIFFLAGS, &mut req) {
            Ok(()) => break,
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) && start.elapsed() < appear => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => {
                return Err(format!(
                    "the network interface {name} is missing ({e}): the VM has no virtio-net \
                     device, or its kernel no virtio_net driver (CONFIG_VIRTIO_NET, or the \
                     virtio_net module in the initramfs)"
                ))
            }
        }
    }
    let set = |op: libc::c_ulong, what: &str, req: &mut libc::ifreq| {
        ioctl(&sock, op, req).map_err(|e| format!("{what} of {name}: {e}"))
    };
    req.ifr_ifru.ifru_addr = sockaddr(addr);
    set(libc::SIOCSIFADDR, "setting the address", &mut req)?;
    let mask = Ipv4Addr::from(u32::MAX << (32 - u32::from(prefix)));
    req.ifr_ifru.ifru_netmask = sockaddr(mask);
    set(libc::SIOCSIFNETMASK, "setting the netmask", &mut req)?;
    set(libc::SIOCGIFFLAGS, "reading the flags", &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    set(libc::SIOCSIFFLAGS, "bringing up", &mut req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_nonsense_is_refused() {
        assert_eq!(
            parse("10.77.0.2/30"),
            Some((Ipv4Addr::new(10, 77, 0, 2), 30))
        );
        for bad in [
            "10.77.0.2",
            "10.77.0.2/31",
            "10.77.0.2/0",
            "x/30",
            "10.77.0.2/",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert!(configure_from("nope", "eth0")
            .unwrap_err()
            .contains("ADDR/PREFIX"));
    }

    /// In a fresh network namespace (a thread of its own) with a veth `eth0`: the address and
    /// the up flag are set. Needs root and iproute2; the namespace and its links end with the thread.
    #[test]
    fn an_interface_gets_its_address_and_comes_up_in_a_fresh_namespace() {
        assert!(
            // SAFETY: geteuid has no arguments and cannot fail.
            unsafe { libc::geteuid() } == 0,
            "this test makes a network namespace: run it as root"
        );
        std::thread::spawn(|| {
            // SAFETY: unshare takes a flag and changes only this thread's namespace.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
            let addr = Ipv4Addr::new(10, 77, 0, 2);
            let missing = configure("eth0", addr, 30, Duration::from_millis(50)).unwrap_err();
            assert!(missing.contains("virtio_net"), "{missing}");
            let ok = std::process::Command::new("ip")
                .args([
                    "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
                ])
                .status()
                .expect("iproute2's ip");
            assert!(ok.success(), "ip link add eth0 type veth (modprobe veth?)");
            configure("eth0", addr, 30, APPEAR).unwrap();
            let out = std::process::Command::new("ip")
                .args(["-o", "-4", "addr", "show", "dev", "eth0"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("10.77.0.2/30"), "{text}");
            let link = std::process::Command::new("ip")
                .args(["-o", "link", "show", "dev", "eth0"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&link.stdout);
            assert!(text.contains(",UP"), "{text}");
        })
        .join()
        .expect("the namespace thread");
    }
}
