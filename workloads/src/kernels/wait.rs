//! `wait`: one instance of a density run (`isolab density`). It sets up a working set, reports,
//! announces that it is ready and waits until it is told to exit.
//!
//! - **Working set**: anonymous private memory, every 4 KiB page written with a value of its own
//!   (the page's index mixed with a per-process nonce), so no two pages are equal, neither within
//!   an instance nor across instances: the kernel's zero page and KSM cannot share them, as they
//!   could not share a real program's data. No huge-page advice is given, so the host's THP
//!   policy decides, as it does for any program. `working_set_kib = 0` is an idle instance.
//! - **Ready**: after its result line, the agent sends the `Waiting` marker
//!   ([`crate::protocol::MarkerEvent::Waiting`]): the harness's end point of "started".
//! - **Told to exit**: SIGTERM, SIGINT, SIGHUP or SIGUSR1 (handlers are installed, so this also
//!   works for a PID 1, which the kernel shields from signals it has no handler for), or the end
//!   of stdin when stdin is a pipe or a socket (a harness that holds the other end and closes it,
//!   or dies). A stdin that is a file or `/dev/null` is not watched: it would end the wait at
//!   once. A harness may also just kill the instance, which is what `isolab density` does (its
//!   teardown is "first kill to last reap"). A VM's agent is ended with its VMM process.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};
use serde::{Deserialize, Serialize};

use crate::kernels::{check_range, WorkloadError};
use crate::result::Metric;

/// Parameters of `wait`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WaitParams {
    /// KiB of anonymous memory written before the instance reports ready (0: idle).
    pub working_set_kib: u64,
}

const KIND: &str = "wait";
/// 64 GiB: far above any sandbox isolab sizes, low enough that a typo is caught.
const MAX_KIB: u64 = 64 << 20;
const PAGE: usize = 4096;

/// The instance's working set: mapped and written, unmapped when dropped.
#[derive(Debug)]
pub struct WorkingSet {
    ptr: Option<std::ptr::NonNull<std::ffi::c_void>>,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone; nothing else holds the pointer.
unsafe impl Send for WorkingSet {}

impl WorkingSet {
    /// Bytes mapped and written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the instance is idle (nothing mapped).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for WorkingSet {
    fn drop(&mut self) {
        if let Some(p) = self.ptr.take() {
            // SAFETY: exactly the mapping made in `prepare`, with its length; no reference into
            // it outlives `self`.
            let _ = unsafe { munmap(p, self.len) };
        }
    }
}

/// Maps and writes the working set. Returns its metrics and the mapping, which must stay alive
/// while the instance waits.
pub fn prepare(params: &WaitParams) -> Result<(Vec<Metric>, WorkingSet), WorkloadError> {
    check_range(KIND, "working_set_kib", params.working_set_kib, 0, MAX_KIB)?;
    let started = Instant::now();
    let len = usize::try_from(params.working_set_kib * 1024)
        .map_err(|_| WorkloadError::BadParameter {
            workload: KIND,
            name: "working_set_kib",
            why: "does not fit this machine's address space".into(),
        })?
        .next_multiple_of(PAGE);
    let mut set = WorkingSet { ptr: None, len: 0 };
    if let Some(nz) = NonZeroUsize::new(len) {
        // SAFETY: a fresh anonymous private mapping at an address the kernel picks cannot alias
        // any memory Rust knows about.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                nz,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE,
            )
        }
        .map_err(|e| {
            WorkloadError::sys(format!("mmap of {} KiB", params.working_set_kib), e.into())
        })?;
        set = WorkingSet {
            ptr: Some(ptr),
            len,
        };
        // SAFETY: the mapping is `len` bytes, readable and writable, and owned by `set` alone;
        // the slice lives only inside this block.
        let mem = unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr().cast::<u8>(), len) };
        fill_distinct(mem, nonce());
    }
    let setup_ms = started.elapsed().as_secs_f64() * 1e3;
    let metrics = vec![
        Metric::lower("working_set", "MiB", len as f64 / f64::from(1u32 << 20)),
        Metric::lower("working_set_setup", "ms", setup_ms),
    ];
    Ok((metrics, set))
}

/// A value that differs between processes started at different moments.
fn nonce() -> u64 {
    let t = crate::agent::monotonic_ns();
    let pid = u64::from(std::process::id());
    t.rotate_left(17) ^ pid.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Writes the first 8 bytes of every page with a value no other page (of this or another
/// instance) has; returns the number of pages written.
fn fill_distinct(mem: &mut [u8], nonce: u64) -> usize {
    let mut pages = 0u64;
    for page in mem.chunks_mut(PAGE) {
        let value = nonce ^ pages.wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ pages;
        let bytes = value.to_ne_bytes();
        let n = page.len().min(bytes.len());
        page[..n].copy_from_slice(&bytes[..n]);
        pages += 1;
    }
    std::hint::black_box(&mut *mem);
    usize::try_from(pages).unwrap_or(usize::MAX)
}

/// How the wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitEnd {
    /// This signal arrived.
    Signal(i32),
    /// stdin (a pipe or socket) reached its end.
    StdinClosed,
}

/// The signal that ended the wait (0: none yet). Written by the handler, read by the loop.
static TOLD: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    TOLD.store(sig, Ordering::SeqCst);
}

/// The signals that tell an instance to exit.
const EXIT_SIGNALS: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1];

/// Whether stdin is a pipe or a socket (whose end means "exit").
fn stdin_is_a_channel() -> bool {
    // SAFETY: fstat on fd 0 writes into a zeroed stat of the right type; a closed fd gives EBADF.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(0, &mut st) } != 0 {
        return false;
    }
    let kind = st.st_mode & libc::S_IFMT;
    kind == libc::S_IFIFO || kind == libc::S_IFSOCK
}

/// Waits until the instance is told to exit (see the module's documentation). Never returns an
/// error: a wait that cannot be set up waits for a signal without a handler, which is still the
/// instance being killed.
pub fn until_told_to_exit() -> WaitEnd {
    // SAFETY: sigset_t is plain data; zeroed then sigemptyset is a valid empty set. sigaction
    // installs a handler that only stores into an atomic (async-signal-safe). sigprocmask gets
    // valid sets. The exit signals are blocked between checks and unblocked only atomically
    // inside ppoll/sigsuspend, so none is lost between the check and the sleep.
    unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        for sig in EXIT_SIGNALS {
            libc::sigaddset(&mut block, sig);
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
        let mut waiting: libc::sigset_t = std::mem::zeroed();
        libc::sigprocmask(libc::SIG_BLOCK, &block, &mut waiting);
        for sig in EXIT_SIGNALS {
            libc::sigdelset(&mut waiting, sig);
        }
        let watch_stdin = stdin_is_a_channel();
        let mut buf = [0u8; 256];
        loop {
            let sig = TOLD.load(Ordering::SeqCst);
            if sig != 0 {
                return WaitEnd::Signal(sig);
            }
            if watch_stdin {
                let mut pfd = libc::pollfd {
                    fd: 0,
                    events: libc::POLLIN,
                    revents: 0,
                };
                let n = libc::ppoll(&mut pfd, 1, std::ptr::null(), &waiting);
                if n > 0 {
                    let got = libc::read(0, buf.as_mut_ptr().cast(), buf.len());
                    // End of the channel (0) or an error on it: the harness is gone.
                    if got <= 0 {
                        return WaitEnd::StdinClosed;
                    }
                }
            } else {
                libc::sigsuspend(&waiting);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_gets_a_value_of_its_own() {
        let mut mem = vec![0u8; 64 * PAGE];
        assert_eq!(fill_distinct(&mut mem, 42), 64);
        let firsts: std::collections::HashSet<[u8; 8]> = mem
            .chunks(PAGE)
            .map(|p| p[..8].try_into().expect("8 bytes"))
            .collect();
        assert_eq!(firsts.len(), 64, "no two pages are equal");
        let mut other = vec![0u8; 64 * PAGE];
        fill_distinct(&mut other, 43);
        assert!(mem
            .chunks(PAGE)
            .zip(other.chunks(PAGE))
            .all(|(a, b)| a != b));
    }

    #[test]
    fn idle_and_sized_working_sets() {
        let (m, set) = prepare(&WaitParams::default()).expect("idle");
        assert!(set.is_empty());
        assert_eq!(m[0].value, 0.0);
        let (m, set) = prepare(&WaitParams {
            working_set_kib: 1025,
        })
        .expect("sized");
        // Rounded up to whole pages.
        assert_eq!(set.len(), 1028 * 1024);
        assert!((m[0].value - 1028.0 / 1024.0).abs() < 1e-9);
        assert!(prepare(&WaitParams {
            working_set_kib: MAX_KIB + 1
        })
        .is_err());
    }
}
