//! The namespaces a container is made of, and the two settings inside them the runtime makes
//! before exec: the hostname (UTS) and loopback up (network).
//!
//! All namespaces are created by the one `clone3` call in [`crate::process`]: one system call
//! instead of `unshare` plus a fork, which is where a runtime like `unshare(1)` spends its second
//! exec. The cgroup namespace is the exception on cgroup v1: it must be entered after the child
//! joined its cgroups, so that the container sees its own cgroup as `/`.

use std::ffi::CString;

use crate::error::ContainerError;

/// New namespaces every container gets from `clone3`.
pub(crate) const CLONE_NAMESPACES: u64 = (libc::CLONE_NEWPID
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWNET) as u64;

/// The cgroup namespace flag (at clone time on v2, by `unshare` after the join on v1).
pub(crate) const CLONE_NEWCGROUP: u64 = libc::CLONE_NEWCGROUP as u64;

/// Namespaces the runtime needs, as named in `/proc/self/ns`, with the kernel option that
/// provides each.
pub const REQUIRED_NAMESPACES: [(&str, &str); 6] = [
    ("pid", "CONFIG_PID_NS"),
    ("mnt", "CONFIG_NAMESPACES"),
    ("uts", "CONFIG_UTS_NS"),
    ("ipc", "CONFIG_IPC_NS"),
    ("net", "CONFIG_NET_NS"),
    ("cgroup", "CONFIG_CGROUPS"),
];

/// Checks that the kernel has every namespace type the runtime creates.
pub fn check_namespaces() -> Result<(), ContainerError> {
    for (namespace, config) in REQUIRED_NAMESPACES {
        if !std::path::Path::new("/proc/self/ns")
            .join(namespace)
            .exists()
        {
            return Err(ContainerError::NamespaceMissing { namespace, config });
        }
    }
    Ok(())
}

/// What the child needs to set up its UTS and network namespaces, built before clone so the child
/// allocates nothing.
#[derive(Debug)]
pub(crate) struct NamespaceSetup {
    hostname: CString,
}

impl NamespaceSetup {
    pub(crate) fn new(hostname: &str) -> Result<Self, ContainerError> {
        let hostname =
            CString::new(hostname).map_err(|_| ContainerError::NulByte(hostname.to_owned()))?;
        Ok(Self { hostname })
    }

    /// The request that sets `lo` up. Built on the stack (no allocation), so the child can call it.
    fn loopback_request() -> libc::ifreq {
        // SAFETY: ifreq is plain old data (a name array and a union of integers and a pointer);
        // all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        req
    }

    /// Sets the hostname in the new UTS namespace. Child side: async-signal-safe.
    pub(crate) fn set_hostname(&self) -> Result<(), i32> {
        let name = self.hostname.as_bytes();
        // SAFETY: the pointer and length describe the bytes of a live CString.
        let r = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
        if r == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    }

    /// Brings `lo` up in the new network namespace (an ioctl: no netlink message to build).
    /// Child side: async-signal-safe.
    pub(crate) fn loopback_up(&self) -> Result<(), i32> {
        // SAFETY: plain socket creation; the fd is closed below on every path.
        let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if sock < 0 {
            return Err(errno());
        }
        let mut req = Self::loopback_request();
        // SAFETY: SIOCSIFFLAGS reads a valid ifreq naming `lo`; `req` lives across the call.
        let r = unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS, &mut req) };
        let err = errno();
        // SAFETY: `sock` is the fd opened above and not used after.
        unsafe { libc::close(sock) };
        if r == 0 {
            Ok(())
        } else {
            Err(err)
        }
    }
}

/// The calling thread's errno. Async-signal-safe.
pub(crate) fn errno() -> i32 {
    // SAFETY: __errno_location returns the calling thread's errno slot, always valid.
    unsafe { *libc::__errno_location() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_kernel_has_the_namespaces() {
        check_namespaces().expect("a container host needs these namespaces");
    }

    #[test]
    fn hostname_with_nul_is_refused() {
        assert!(matches!(
            NamespaceSetup::new("a\0b"),
            Err(ContainerError::NulByte(_))
        ));
        NamespaceSetup::new("isolab").expect("valid");
        let req = NamespaceSetup::loopback_request();
        assert_eq!(req.ifr_name[0], b'l' as libc::c_char);
        assert_eq!(req.ifr_name[2], 0);
    }
}
