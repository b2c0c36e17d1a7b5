//! Capabilities: what the container's root may still do. By default nothing: every capability is
//! dropped from the bounding, ambient, effective, permitted and inheritable sets before exec, and
//! `no_new_privs` is set, so uid 0 inside is a plain process that happens to own its files.
//!
//! A root process gets its bounding set back as permitted capabilities at exec; dropping the
//! bounding set is what makes the drop survive the exec.

use crate::namespaces::errno;
use crate::process::SetupStep;

/// A set of Linux capabilities, as a bit mask of capability numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Capabilities(u64);

impl Capabilities {
    /// `CAP_NET_ADMIN`: configure interfaces.
    pub const NET_ADMIN: u32 = 12;
    /// `CAP_MKNOD`: create device nodes (then /dev stays writable and the device cgroup is what
    /// stops a node from being used).
    pub const MKNOD: u32 = 27;
    /// `CAP_SYS_ADMIN`: mount and much else.
    pub const SYS_ADMIN: u32 = 21;
    /// `CAP_SYS_BOOT`: in a PID namespace, `reboot()` ends the namespace's init (never the host).
    pub const SYS_BOOT: u32 = 22;

    /// No capability at all (the default).
    pub const fn none() -> Self {
        Self(0)
    }

    /// This set plus capability number `cap` (0..=63).
    pub const fn with(self, cap: u32) -> Self {
        if cap < 64 {
            Self(self.0 | (1 << cap))
        } else {
            self
        }
    }

    /// Whether capability number `cap` is in the set.
    pub const fn contains(self, cap: u32) -> bool {
        cap < 64 && self.0 & (1 << cap) != 0
    }

    /// The raw mask.
    pub const fn bits(self) -> u64 {
        self.0
    }
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The drop the child performs, with the kernel's highest capability number read before clone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CapabilityDrop {
    keep: Capabilities,
    last_cap: u32,
}

impl CapabilityDrop {
    pub(crate) fn new(keep: Capabilities) -> Self {
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            // 63 covers any kernel; dropping a number the kernel does not know fails with EINVAL,
            // which is ignored below.
            .unwrap_or(63);
        Self { keep, last_cap }
    }

    /// Child side: drops everything not kept. Async-signal-safe.
    pub(crate) fn apply(&self) -> Result<(), (SetupStep, i32)> {
        for cap in 0..=self.last_cap.min(63) {
            if self.keep.contains(cap) {
                continue;
            }
            // SAFETY: PR_CAPBSET_DROP takes a capability number and no pointers.
            let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if r != 0 && errno() != libc::EINVAL {
                return Err((SetupStep::DropCapabilities, errno()));
            }
        }
        // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes no pointers. Kernels before 4.3 have no ambient
        // set and return EINVAL, which leaves nothing to clear.
        unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
        let bits = self.keep.bits();
        let low = bits as u32;
        let high = (bits >> 32) as u32;
        let mut header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let data = [
            CapData {
                effective: low,
                permitted: low,
                inheritable: 0,
            },
            CapData {
                effective: high,
                permitted: high,
                inheritable: 0,
            },
        ];
        // SAFETY: capset reads a version-3 header and two data structs, both live for the call.
        let r = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
        if r != 0 {
            return Err((SetupStep::DropCapabilities, errno()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_hold_what_was_added() {
        let c = Capabilities::none().with(Capabilities::SYS_BOOT);
        assert!(c.contains(22));
        assert!(!c.contains(21));
        assert_eq!(c.bits(), 1 << 22);
        assert_eq!(Capabilities::none().with(99), Capabilities::none());
        assert!(!Capabilities::none().contains(64));
    }
}
