//! Progress markers: one byte per [`MarkerEvent`] to an inherited fd or an I/O port, so the host
//! timestamps the agent's progress on its own clock. A marker is best effort: failing to send one
//! must never stop the workload, so problems become warnings.

use crate::protocol::{cmdline_value, MarkerEvent, MarkerSink, MARKER_CMDLINE_KEY, MARKER_ENV};

/// Where markers go, once validated; `None` sends nothing.
#[derive(Debug)]
pub struct Marker {
    sink: Option<MarkerSink>,
}

impl Marker {
    /// A marker that sends nothing.
    pub fn none() -> Self {
        Self { sink: None }
    }

    /// Reads `ISOLAB_MARKER`, or as PID 1 `isolab.marker=` on the kernel command line (a dotted
    /// parameter never reaches init's environment), and prepares the sink.
    pub fn from_environment(pid1: bool, warnings: &mut Vec<String>) -> Self {
        let text = std::env::var(MARKER_ENV).ok().or_else(|| {
            pid1.then(|| std::fs::read_to_string("/proc/cmdline").ok())
                .flatten()
                .and_then(|c| cmdline_value(&c, MARKER_CMDLINE_KEY).map(str::to_owned))
        });
        let Some(text) = text else {
            return Self::none();
        };
        match MarkerSink::parse(text.trim()) {
            Ok(sink) => match prepare(sink) {
                Ok(()) => Self { sink: Some(sink) },
                Err(e) => {
                    warnings.push(format!("markers disabled: {e}"));
                    Self::none()
                }
            },
            Err(e) => {
                warnings.push(format!("markers disabled: {e}"));
                Self::none()
            }
        }
    }

    /// Sends one event; errors are ignored (the host sees a missing marker, which is the report).
    pub fn send(&self, event: MarkerEvent) {
        match self.sink {
            None => {}
            Some(MarkerSink::Fd(fd)) => {
                let byte = [event.byte()];
                // SAFETY: the buffer is one valid byte; an fd that is not open fails with EBADF
                // without touching any memory.
                let _ = unsafe { libc::write(fd, byte.as_ptr().cast(), 1) };
            }
            Some(MarkerSink::Port(port)) => outb(port, event.byte()),
        }
    }
}

/// Checks the sink and makes it usable: the fd must be open (and is made close-on-exec so the
/// `spawn` workload's children do not hold the host's pipe open); the port needs ioperm.
fn prepare(sink: MarkerSink) -> Result<(), String> {
    match sink {
        MarkerSink::Fd(fd) => {
            // SAFETY: fcntl on an integer fd touches no memory; a closed fd yields EBADF.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            if flags < 0 {
                return Err(format!(
                    "fd {fd} is not open ({}); pass the write end of a pipe the agent inherits",
                    std::io::Error::last_os_error()
                ));
            }
            // SAFETY: as above.
            unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
            Ok(())
        }
        MarkerSink::Port(port) => enable_port(port),
    }
}

#[cfg(target_arch = "x86_64")]
fn enable_port(port: u16) -> Result<(), String> {
    // SAFETY: ioperm only changes this thread's I/O permission bitmap; no memory is involved.
    let rc = unsafe { libc::ioperm(libc::c_ulong::from(port), 1, 1) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "ioperm for port {port:#x} failed ({}); port markers need CAP_SYS_RAWIO, i.e. the \
             agent as init of a VM",
            std::io::Error::last_os_error()
        ))
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn enable_port(port: u16) -> Result<(), String> {
    Err(format!(
        "port {port:#x} markers exist only on x86_64; use an fd marker"
    ))
}

#[cfg(target_arch = "x86_64")]
fn outb(port: u16, value: u8) {
    // SAFETY: `enable_port` succeeded for exactly this port before a Port sink was stored, so the
    // instruction cannot fault; `out` writes to the I/O bus only (the VMM's marker device), never
    // to memory, and clobbers no registers besides its operands.
    unsafe {
        std::arch::asm!(
            "out dx, al",
            in("dx") port,
            in("al") value,
            options(nomem, nostack, preserves_flags)
        );
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn outb(_port: u16, _value: u8) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    #[test]
    fn fd_marker_writes_the_event_bytes_and_sets_cloexec() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let sink = MarkerSink::Fd(w.as_raw_fd());
        prepare(sink).unwrap();
        // SAFETY: querying flags of an fd we own.
        let flags = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_GETFD) };
        assert!(flags & libc::FD_CLOEXEC != 0);
        let m = Marker { sink: Some(sink) };
        m.send(MarkerEvent::AgentStart);
        m.send(MarkerEvent::ResultWritten);
        drop(w);
        let mut got = Vec::new();
        std::fs::File::from(r).read_to_end(&mut got).unwrap();
        assert_eq!(got, [1, 4]);
    }

    #[test]
    fn a_closed_fd_is_refused_with_advice() {
        let err = prepare(MarkerSink::Fd(999_999)).unwrap_err();
        assert!(err.contains("pipe"), "{err}");
    }
}
