//! The VMM process's side: `isolab-vmm`'s `main`. It reads one start request from the socket on
//! fd [`CHANNEL_FD`], enters its jail if asked, runs the VM through [`vmm::run_with`] with hooks
//! that drop privileges, confine each thread and talk to the host, sends the report and exits.
//!
//! Exit status: 0 after a report, 1 after a `failed` message, 2 when started without the host's
//! socket (by hand), 3 when the host's first message was not a start request. A refused system
//! call ends the process with `SIGSYS` (see [`crate::seccomp`]).

use std::fs::File;
use std::io::{BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kvm_ioctls::Kvm;

use super::jail;
use super::protocol::{
    read_message, write_message, FailureKind, HostMessage, JailConfig, StartRequest, VmmMessage,
    CHANNEL_FD,
};
use crate::devices::marker::MarkerEvent;
use crate::error::VmError;
use crate::hooks::{StopHandle, VmmHooks, VmmThread};
use crate::seccomp::{self, SeccompMode, ThreadFilters, ThreadKind};
use crate::vmm::{self, TimePoint};
use crate::vstate::memory::{self, MemoryUsage};

/// CLOCK_MONOTONIC now, ns (the clock `Instant` reads on Linux).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0))
}

/// The `Instant` that is `origin_mono_ns` on CLOCK_MONOTONIC (now, if that lies in the future).
fn instant_at(origin_mono_ns: u64) -> Instant {
    let now = Instant::now();
    let ago = monotonic_ns().saturating_sub(origin_mono_ns);
    now.checked_sub(Duration::from_nanos(ago)).unwrap_or(now)
}

/// Runs the VMM process and exits with its status.
pub fn main() -> ! {
    std::process::exit(serve())
}

/// The channel on fd 3, if it is a socket.
fn channel() -> Result<UnixStream, String> {
    // SAFETY: fstat into a zeroed struct; a closed fd fails with EBADF.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    if unsafe { libc::fstat(CHANNEL_FD, &mut st) } != 0
        || st.st_mode & libc::S_IFMT != libc::S_IFSOCK
    {
        return Err(
            "this is isolab's VMM process; isolab starts it (`isolab run --backend vm`) with a \
             socket on fd 3, and it does nothing on its own"
                .into(),
        );
    }
    // SAFETY: fd 3 is an open socket the host handed this process, owned by nobody else here.
    Ok(UnixStream::from(unsafe {
        OwnedFd::from_raw_fd(CHANNEL_FD)
    }))
}

/// Writes a message to the host; lines never interleave (one lock, one write). A `File` on a
/// copy of the socket, so that messages leave with `write` (a `UnixStream` sends with `sendto`,
/// which no thread's filter needs otherwise); SIGPIPE is ignored, as in every Rust program.
#[derive(Debug, Clone)]
struct Sender(Arc<Mutex<File>>);

impl Sender {
    fn send(&self, msg: &VmmMessage) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // A host that went away learns nothing; the control thread sees the socket close and
        // stops the VM.
        let _ = write_message(&mut *s, msg);
        let _ = s.flush();
    }
}

fn serve() -> i32 {
    let started_mono = monotonic_ns();
    // One malloc arena for every thread: less memory per VMM, and no thread ever needs
    // mprotect for an arena of its own (its seccomp filter does not allow it).
    // SAFETY: mallopt with integer arguments, before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    let channel = match channel() {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("isolab-vmm: {msg}");
            return 2;
        }
    };
    // Reads stay on fd 3 (the control thread's filter allows `recvfrom` there only); writes go
    // through a copy.
    let writer = match channel.try_clone() {
        Ok(w) => File::from(OwnedFd::from(w)),
        Err(e) => {
            eprintln!("isolab-vmm: cannot use the host's socket: {e}");
            return 2;
        }
    };
    let sender = Sender(Arc::new(Mutex::new(writer)));
    let mut reader = BufReader::new(channel);
    let request = match read_message::<HostMessage>(&mut reader) {
        Ok(Some(HostMessage::Start(r))) => *r,
        // The host went away (or changed its mind) before asking for anything.
        Ok(None) | Ok(Some(HostMessage::Stop)) => return 0,
        Err(e) => {
            sender.send(&VmmMessage::Failed {
                message: format!("the host's start request could not be read: {e}"),
                kind: FailureKind::Protocol,
            });
            return 3;
        }
    };
    let origin_mono = request.origin_mono_ns;
    let origin = instant_at(origin_mono);
    let since = |mono: u64| mono.saturating_sub(origin_mono);
    sender.send(&VmmMessage::Ready {
        // SAFETY: getpid has no preconditions.
        pid: unsafe { libc::getpid() },
        started_ns: since(started_mono),
        at_ns: since(monotonic_ns()),
    });
    match run(request, origin, sender.clone(), reader) {
        Ok(report) => {
            sender.send(&VmmMessage::Report(Box::new(report)));
            0
        }
        Err((message, kind)) => {
            sender.send(&VmmMessage::Failed { message, kind });
            1
        }
    }
}

fn failure_kind(e: &VmError) -> FailureKind {
    match e {
        VmError::KvmOpen(_) | VmError::KvmCapability(_) => FailureKind::KvmUnavailable,
        VmError::KernelRead { .. }
        | VmError::KernelFormat { .. }
        | VmError::KernelTruncated { .. }
        | VmError::InitrdRead { .. }
        | VmError::Layout(_)
        | VmError::Cmdline(_)
        | VmError::Config(_)
        | VmError::Disk(_)
        | VmError::Net(_) => FailureKind::Config,
        _ => FailureKind::Setup,
    }
}

fn run(
    request: StartRequest,
    origin: Instant,
    sender: Sender,
    reader: BufReader<UnixStream>,
) -> Result<vmm::VmReport, (String, FailureKind)> {
    let StartRequest {
        mut config,
        seccomp: mode,
        jail: jail_config,
        hold,
        probe_jail,
        ..
    } = request;
    if hold {
        // Until the guest stops or the host says so.
        config.timeout = Duration::MAX;
    }
    let filters = ThreadFilters::compile(mode, vmm::kick_signal())
        .map_err(|e| (e.to_string(), FailureKind::Seccomp))?;
    if mode == SeccompMode::On {
        seccomp::install_sigsys_handler().map_err(|e| (e.to_string(), FailureKind::Seccomp))?;
    }
    let mut points = Vec::new();
    let mark = |points: &mut Vec<TimePoint>, name| {
        points.push(TimePoint {
            name,
            at_ns: u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX),
        });
    };
    // The network card's tap lives in the run's lab namespace: opened now, from a thread that
    // enters it, before the jail (whose own network namespace has nothing) and any filter.
    let tap = match &config.net {
        Some(n) => Some(
            crate::devices::virtio::net::Tap::open_in(n.netns.as_deref(), &n.tap)
                .map_err(|e| (e.to_string(), FailureKind::Config))?,
        ),
        None => None,
    };
    if tap.is_some() {
        mark(&mut points, "tap_opened");
    }
    let (kvm, smaps, ns_dir) = match &jail_config {
        Some(j) => {
            let entered = jail::enter(j, &mut config, probe_jail)
                .map_err(|e| (e.to_string(), FailureKind::Jail))?;
            mark(&mut points, "jail_entered");
            (Some(entered.kvm), entered.smaps, entered.ns_dir)
        }
        None => {
            let smaps = File::open("/proc/self/smaps")
                .map_err(|e| (format!("opening /proc/self/smaps: {e}"), FailureKind::Setup))?;
            (None, smaps, None)
        }
    };
    let hooks = Arc::new(ProcessHooks {
        kvm: Mutex::new(kvm),
        tap: Mutex::new(tap),
        smaps,
        filters,
        jail: jail_config,
        probe_jail,
        ns_dir,
        sender,
        reader: Mutex::new(Some(reader)),
        points: Mutex::new(points),
        origin,
    });
    let ran = vmm::run_with(&config, origin, Arc::clone(&hooks) as Arc<dyn VmmHooks>);
    match ran {
        Ok(mut report) => {
            let points =
                std::mem::take(&mut *hooks.points.lock().unwrap_or_else(|p| p.into_inner()));
            report.timeline.extend(points);
            report.timeline.sort_by_key(|p| p.at_ns);
            Ok(report)
        }
        Err(e) => Err((e.to_string(), failure_kind(&e))),
    }
}

/// How the VMM process confines and reports itself ([`VmmHooks`]).
#[derive(Debug)]
struct ProcessHooks {
    /// `/dev/kvm`, when opened before a jail.
    kvm: Mutex<Option<Kvm>>,
    /// The network card's tap, opened before any jail.
    tap: Mutex<Option<crate::devices::virtio::net::Tap>>,
    /// `/proc/self/smaps`, opened before any jail or filter.
    smaps: File,
    filters: ThreadFilters,
    jail: Option<JailConfig>,
    probe_jail: bool,
    ns_dir: Option<File>,
    sender: Sender,
    /// The host's side of the socket, for the control thread.
    reader: Mutex<Option<BufReader<UnixStream>>>,
    /// Timeline points of the process (jail, privileges).
    points: Mutex<Vec<TimePoint>>,
    origin: Instant,
}

impl ProcessHooks {
    fn mark(&self, name: &'static str) {
        let at_ns = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.points
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(TimePoint { name, at_ns });
    }
}

impl VmmHooks for ProcessHooks {
    fn open_kvm(&self) -> crate::error::Result<Kvm> {
        match self.kvm.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(kvm) => Ok(kvm),
            None => Kvm::new().map_err(VmError::KvmOpen),
        }
    }

    fn open_tap(
        &self,
        net: &vmm::NetConfig,
    ) -> crate::error::Result<crate::devices::virtio::net::Tap> {
        match self.tap.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(tap) => Ok(tap),
            None => Err(VmError::Host(format!(
                "the tap {} was not opened before the VM was set up",
                net.tap
            ))),
        }
    }

    fn inputs_opened(&self) -> crate::error::Result<()> {
        let Some(j) = &self.jail else {
            return Ok(());
        };
        jail::drop_privileges(j.uid, j.gid).map_err(|e| VmError::Host(e.to_string()))?;
        self.mark("privileges_dropped");
        if self.probe_jail {
            self.sender
                .send(&VmmMessage::JailProbe(Box::new(jail::probe(
                    self.ns_dir.as_ref(),
                ))));
        }
        Ok(())
    }

    fn thread_started(&self, thread: VmmThread) -> Result<(), String> {
        self.filters
            .apply_vm_thread(thread)
            .map_err(|e| e.to_string())
    }

    fn running(&self, guest_ram: &[(u64, u64)], stop: StopHandle) {
        self.sender.send(&VmmMessage::Running {
            guest_ram: guest_ram.to_vec(),
            at_ns: u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX),
        });
        let Some(mut reader) = self.reader.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let filters = self.filters.clone();
        // The host's stop request, or its going away, stops the VM. The thread is never joined:
        // it ends with the process.
        let spawned = std::thread::Builder::new()
            .name("isolab-vmm-ctl".into())
            .stack_size(vmm::THREAD_STACK_BYTES)
            .spawn(move || {
                if let Err(e) = filters.apply(ThreadKind::Control, "control") {
                    eprintln!("isolab-vmm: {e}; stopping the VM");
                    stop.stop();
                    return;
                }
                loop {
                    match read_message::<HostMessage>(&mut reader) {
                        Ok(Some(HostMessage::Stop)) | Ok(None) | Err(_) => {
                            stop.stop();
                            return;
                        }
                        Ok(Some(HostMessage::Start(_))) => {}
                    }
                }
            });
        if let Err(e) = spawned {
            eprintln!("isolab-vmm: the control thread could not start ({e}); the host cannot stop this VM before its timeout");
        }
    }

    fn marker(&self, event: MarkerEvent) {
        self.sender.send(&VmmMessage::Marker(event));
    }

    fn measure_memory(
        &self,
        guest_ram: &[(u64, u64)],
    ) -> Option<(MemoryUsage, Vec<(String, u64)>)> {
        // smaps is generated anew on each read from offset 0.
        let mut text = Vec::with_capacity(64 << 10);
        let mut chunk = vec![0u8; 16 << 10];
        loop {
            match self.smaps.read_at(&mut chunk, text.len() as u64) {
                Ok(0) => break,
                Ok(n) => text.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        let text = String::from_utf8_lossy(&text);
        Some((
            memory::split_smaps(&text, guest_ram),
            memory::largest_other_mappings(&text, guest_ram, 8),
        ))
    }
}
