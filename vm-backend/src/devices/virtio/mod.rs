//! virtio devices: the virtio-mmio (version 2) transport in [`mmio`], the block device in
//! [`block`], and what they share: the device interface the transport drives
//! ([`VirtioDevice`]), the interrupt line ([`Interrupt`]) and the device thread that waits on a
//! queue's ioeventfd ([`DeviceThread`]).
//!
//! Split of work: the vCPU thread handles the register block on MMIO exits (feature
//! negotiation, queue setup, status, interrupt acknowledgement); it never serves a queue and never
//! waits for the device thread. Starting the device (DRIVER_OK) and resetting it (Status = 0) are
//! handed to the device thread as a control message. Queue notifications bypass the vCPU thread
//! (KVM signals an ioeventfd in the kernel) and wake the device thread, which processes the queue
//! in bounded passes and raises the interrupt through an irqfd. Everything the guest writes
//! (registers, rings, descriptors, request headers) is validated; a guest that breaks the rules
//! gets an error status or a device marked `DEVICE_NEEDS_RESET`, never a VMM panic and never a
//! host access outside guest RAM.
//!
//! # Locks and their order
//!
//! 1. A device's transport (`Arc<Mutex<MmioTransport>>` on the [`crate::devices::MmioBus`]):
//!    taken by a vCPU thread for one register access. Inside it, and only there, the device's
//!    control slot may be taken (2).
//! 2. Leaf locks, held for a copy or a swap, never while doing I/O and never two at once:
//!    [`block::BlockShared`]'s control slot, statistics and broken reason.
//!
//! The device thread holds no lock while it serves requests, so a slow disk or a hostile guest
//! never makes a vCPU wait, and a vCPU told to stop always gets back to its stop flag. The
//! port-I/O bus and the vCPU observer have their own locks (`vstate::vcpu`), never held together
//! with these except that the observer reads the disk's statistics lock (2) alone.

pub mod block;
pub mod console;
pub mod mmio;
pub mod net;
#[doc(hidden)]
pub mod testing;

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;
use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

/// Size of one virtio-mmio register block (where each device's block is, and its interrupt
/// line, come from [`crate::devices::slots`]).
pub const MMIO_REGION_SIZE: u64 = crate::devices::slots::WINDOW_SIZE;

/// Feature bit: the device speaks virtio 1.x (required by the version-2 MMIO transport).
pub const VIRTIO_F_VERSION_1: u32 = virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
/// Feature bit: `used_event` / `avail_event` interrupt and notification suppression.
pub const VIRTIO_RING_F_EVENT_IDX: u32 = virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;

/// Locks a mutex, recovering the data if a thread panicked while holding it: the state behind
/// these locks stays consistent between statements (every update is a plain store), and a VMM
/// that refused to tear down after a device-thread panic would leak the guest.
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A read of `data.len()` bytes at `offset` of a device's configuration space `config`, at any
/// width; bytes past its end (or an offset no index can hold) read as 0.
pub fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(i))
            .and_then(|o| config.get(o))
            .copied()
            .unwrap_or(0);
    }
}

/// Why a device could not start with the queues the driver set up.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ActivateError {
    /// The device needs more queues than the driver made ready.
    #[error("queue {0} is not ready")]
    QueueNotReady(usize),
    /// A ready queue's rings lie (partly) outside guest RAM or are misaligned.
    #[error("queue {0} has rings outside guest RAM")]
    QueueInvalid(usize),
}

/// What the transport needs from a device model.
pub trait VirtioDevice: Send {
    /// The virtio device id (block: 2).
    fn device_type(&self) -> u32;
    /// The feature bits the device offers.
    fn features(&self) -> u64;
    /// The largest size of each of its queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Reads device configuration space at `offset` (any width; bytes past its end read as 0).
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// A driver write to configuration space (ignored by devices whose config is read-only).
    fn write_config(&mut self, offset: u64, data: &[u8]);
    /// Starts the device with the driver's queues (all validated by the transport) and the
    /// negotiated features.
    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        acked_features: u64,
    ) -> Result<(), ActivateError>;
    /// Stops using the queues (driver reset). The device may be activated again.
    fn reset(&mut self);
    /// True when the device found the driver's queue unusable and stopped serving it; the
    /// transport then shows DEVICE_NEEDS_RESET in Status.
    fn broken(&self) -> bool {
        false
    }
    /// A QueueNotify write for `queue` that reached the VMM. A device without a thread of its own
    /// serves it here, on the vCPU thread, and returns true; the default (false) leaves it to the
    /// transport's notify eventfd, which the device's thread waits on.
    fn queue_notify(&mut self, _queue: u32) -> bool {
        false
    }
}

/// A device's interrupt: the InterruptStatus bits the driver reads and acknowledges, and the
/// irqfd that raises the line. Shared by the transport (vCPU thread) and the device thread.
#[derive(Debug)]
pub struct Interrupt {
    status: AtomicU32,
    irqfd: Option<EventFd>,
    raised: AtomicU64,
    errors: AtomicU64,
}

impl Interrupt {
    /// An interrupt raised through `irqfd` (an eventfd registered with KVM_IRQFD); `None` only
    /// records the status (unit tests, fuzzing).
    pub fn new(irqfd: Option<EventFd>) -> Self {
        Self {
            status: AtomicU32::new(0),
            irqfd,
            raised: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// Sets `bits` in InterruptStatus and raises the line.
    pub fn trigger(&self, bits: u32) {
        self.status.fetch_or(bits, Ordering::SeqCst);
        self.raised.fetch_add(1, Ordering::Relaxed);
        if let Some(fd) = &self.irqfd {
            if fd.write(1).is_err() {
                // The counter cannot overflow in practice (eventfd saturates at 2^64-2); an error
                // here means the fd is gone at teardown. Count it instead of failing the request.
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The InterruptStatus register.
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::SeqCst)
    }

    /// InterruptACK: clears `bits`.
    pub fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }

    /// Clears every bit (device reset).
    pub fn clear(&self) {
        self.status.store(0, Ordering::SeqCst);
    }

    /// How many times the line was raised.
    pub fn raised(&self) -> u64 {
        self.raised.load(Ordering::Relaxed)
    }
}

/// Why the device thread could not be started.
#[derive(Debug, Error)]
pub enum DeviceThreadError {
    /// An eventfd or the epoll instance could not be made.
    #[error("setting up the virtio device thread's {what}: {source}. Check the process's open-file limit (ulimit -n)")]
    Setup {
        /// What failed.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The thread could not be spawned.
    #[error("spawning the virtio device thread: {0}. Check the process's thread limit")]
    Spawn(std::io::Error),
    /// The thread's prologue (its confinement) failed: it ended before serving anything.
    #[error("starting the virtio device thread: {0}")]
    Prologue(String),
}

/// How a device thread ended when it was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadEnd {
    /// It returned and was joined (or had never been started).
    Joined,
    /// It panicked (a bug); it is gone.
    Panicked,
    /// It was still running at the deadline and was left behind (detached). It owns what it
    /// uses, guest memory included, so nothing it touches goes away under it.
    StillRunning,
}

/// The thread that serves one device's queue: it waits (epoll) on the queue's notify eventfd
/// (KVM's ioeventfd), a control eventfd (the transport asks for an activation or a reset) and a
/// stop eventfd, and calls the handler with the number of guest notifications counted since the
/// last call (0 for a control wake-up or a continuation). The handler returns true when it
/// stopped with work left (a bounded pass); it is then called again once the thread has looked
/// at its stop eventfd. [`DeviceThread::stop`] ends and joins it, within a deadline.
#[derive(Debug)]
pub struct DeviceThread {
    stop_fd: EventFd,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

const TOKEN_NOTIFY: u64 = 1;
const TOKEN_STOP: u64 = 2;
const TOKEN_CONTROL: u64 = 3;
const TOKEN_SOURCE: u64 = 4;
/// The longest the thread sleeps without looking at its stop flag (in case the stop eventfd
/// could not be written).
const IDLE_TICK_MS: i32 = 500;

impl DeviceThread {
    /// Starts a thread named `name` that first runs `prologue` (its confinement: the spawn
    /// waits for it, and its error is the spawn's), then calls `handler(notifications)` whenever
    /// `notify` or `control` is signalled, and again while it returns true. `stop` is the flag
    /// the handler's long work checks: [`DeviceThread::stop`] sets it before waking the thread.
    pub fn spawn<P, F>(
        name: &str,
        notify: EventFd,
        control: EventFd,
        stop: Arc<AtomicBool>,
        prologue: P,
        handler: F,
    ) -> Result<Self, DeviceThreadError>
    where
        P: FnOnce() -> Result<(), String> + Send + 'static,
        F: FnMut(u64) -> bool + Send + 'static,
    {
        Self::spawn_with_source(name, notify, control, None, stop, prologue, handler)
    }

    /// [`DeviceThread::spawn`], also woken (edge-triggered: once per new readiness) when
    /// `source` becomes readable, e.g. a tap with a frame waiting; the handler is then called
    /// with 0 notifications and must read the source until it would block or return true.
    /// `source` must stay open as long as the thread runs (its owner moves into the handler).
    pub fn spawn_with_source<P, F>(
        name: &str,
        notify: EventFd,
        control: EventFd,
        source: Option<std::os::fd::RawFd>,
        stop: Arc<AtomicBool>,
        prologue: P,
        mut handler: F,
    ) -> Result<Self, DeviceThreadError>
    where
        P: FnOnce() -> Result<(), String> + Send + 'static,
        F: FnMut(u64) -> bool + Send + 'static,
    {
        let setup = |what| move |source| DeviceThreadError::Setup { what, source };
        let stop_fd = EventFd::new(libc::EFD_NONBLOCK).map_err(setup("stop eventfd"))?;
        let thread_stop_fd = stop_fd.try_clone().map_err(setup("stop eventfd clone"))?;
        let epoll = Epoll::new().map_err(setup("epoll instance"))?;
        for (fd, token, what) in [
            (
                notify.as_raw_fd(),
                TOKEN_NOTIFY,
                "epoll registration of the notify eventfd",
            ),
            (
                thread_stop_fd.as_raw_fd(),
                TOKEN_STOP,
                "epoll registration of the stop eventfd",
            ),
            (
                control.as_raw_fd(),
                TOKEN_CONTROL,
                "epoll registration of the control eventfd",
            ),
        ] {
            epoll
                .ctl(
                    ControlOperation::Add,
                    fd,
                    EpollEvent::new(EventSet::IN, token),
                )
                .map_err(setup(what))?;
        }
        if let Some(fd) = source {
            epoll
                .ctl(
                    ControlOperation::Add,
                    fd,
                    EpollEvent::new(EventSet::IN | EventSet::EDGE_TRIGGERED, TOKEN_SOURCE),
                )
                .map_err(setup("epoll registration of the device's source"))?;
        }
        let thread_stop = Arc::clone(&stop);
        let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .stack_size(crate::vmm::THREAD_STACK_BYTES)
            .spawn(move || {
                // The eventfds live as long as the loop: they are moved in.
                let _stop_fd = thread_stop_fd;
                let started = prologue();
                let ok = started.is_ok();
                let _ = started_tx.send(started);
                if !ok {
                    return;
                }
                let mut events = [EpollEvent::default(); 4];
                let mut more = false;
                loop {
                    if thread_stop.load(Ordering::Acquire) {
                        return;
                    }
                    // With work left, only look (timeout 0) before going on.
                    let timeout = if more { 0 } else { IDLE_TICK_MS };
                    let n = match epoll.wait(timeout, &mut events) {
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        // epoll_wait on a valid epoll fd fails only on EINTR; anything else means
                        // the fds are gone, and the only sane thing left is to stop serving.
                        Err(_) => return,
                    };
                    let mut notifications = 0u64;
                    let mut woken = more;
                    for ev in &events[..n] {
                        match ev.data() {
                            TOKEN_STOP => return,
                            TOKEN_NOTIFY => {
                                // Nonblocking read: the count is how many notifications the
                                // guest sent since the last wakeup (they coalesce).
                                if let Ok(count) = notify.read() {
                                    notifications = notifications.saturating_add(count);
                                }
                                woken = true;
                            }
                            TOKEN_CONTROL => {
                                let _ = control.read();
                                woken = true;
                            }
                            TOKEN_SOURCE => woken = true,
                            _ => {}
                        }
                    }
                    if woken {
                        more = handler(notifications);
                    }
                }
            })
            .map_err(DeviceThreadError::Spawn)?;
        match started_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = handle.join();
                return Err(DeviceThreadError::Prologue(e));
            }
            Err(_) => {
                let _ = handle.join();
                return Err(DeviceThreadError::Prologue(
                    "the thread ended during its prologue (it panicked)".into(),
                ));
            }
        }
        Ok(Self {
            stop_fd,
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the thread: sets the stop flag (which ends a pass over the queue and a backend's
    /// long I/O at its next check), wakes it, and joins it if it ends before `deadline`.
    pub fn stop(&mut self, deadline: Instant) -> ThreadEnd {
        let Some(handle) = self.handle.take() else {
            return ThreadEnd::Joined;
        };
        self.stop.store(true, Ordering::Release);
        // A failed write (the counter saturated) still leaves the flag, seen within IDLE_TICK_MS.
        let _ = self.stop_fd.write(1);
        while !handle.is_finished() {
            if Instant::now() >= deadline {
                // Detached: joining would wait past the deadline.
                return ThreadEnd::StillRunning;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        match handle.join() {
            Ok(()) => ThreadEnd::Joined,
            Err(_) => ThreadEnd::Panicked,
        }
    }
}

impl Drop for DeviceThread {
    fn drop(&mut self) {
        // Only reached on paths that did not stop it already (an error during set-up): it has
        // served nothing slow yet, so a short deadline is plenty.
        self.stop(Instant::now() + Duration::from_secs(1));
    }
}

/// Shared handle type for device state touched by both the vCPU and the device thread.
pub type Shared<T> = Arc<Mutex<T>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn interrupt_status_is_set_acked_and_counted() {
        let fd = EventFd::new(libc::EFD_NONBLOCK).expect("eventfd");
        let probe = fd.try_clone().expect("clone");
        let irq = Interrupt::new(Some(fd));
        irq.trigger(1);
        assert_eq!(irq.status(), 1);
        assert_eq!(probe.read().expect("raised"), 1);
        irq.trigger(2);
        irq.ack(1);
        assert_eq!(irq.status(), 2);
        irq.clear();
        assert_eq!(irq.status(), 0);
        assert_eq!(irq.raised(), 2);
    }

    #[test]
    fn device_thread_serves_notifications_and_stops_cleanly() {
        let notify = EventFd::new(libc::EFD_NONBLOCK).expect("eventfd");
        let kick = notify.try_clone().expect("clone");
        let control = EventFd::new(libc::EFD_NONBLOCK).expect("eventfd");
        let poke = control.try_clone().expect("clone");
        let (tx, rx) = mpsc::channel();
        let mut continuations = 0;
        let mut t = DeviceThread::spawn(
            "isolab-test-dev",
            notify,
            control,
            Arc::new(AtomicBool::new(false)),
            || Ok(()),
            move |n| {
                let _ = tx.send(n);
                // Two passes "with work left" after the first notification: called again.
                if n == 3 && continuations == 0 {
                    continuations = 2;
                }
                if continuations > 0 {
                    continuations -= 1;
                    return true;
                }
                false
            },
        )
        .expect("spawn");
        kick.write(3).expect("kick");
        let got =
            |rx: &mpsc::Receiver<u64>| rx.recv_timeout(Duration::from_secs(5)).expect("served");
        assert_eq!(got(&rx), 3);
        assert_eq!((got(&rx), got(&rx)), (0, 0), "continued without a kick");
        // A control wake-up is no guest notification.
        poke.write(1).expect("poke");
        assert_eq!(got(&rx), 0);
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(t.stop(deadline), ThreadEnd::Joined);
        assert_eq!(
            t.stop(deadline),
            ThreadEnd::Joined,
            "stopping twice is harmless"
        );
    }

    #[test]
    fn a_handler_that_watches_the_stop_flag_is_joined_one_that_does_not_is_left() {
        for watches in [true, false] {
            let notify = EventFd::new(libc::EFD_NONBLOCK).expect("eventfd");
            let kick = notify.try_clone().expect("clone");
            let control = EventFd::new(libc::EFD_NONBLOCK).expect("eventfd");
            let stop = Arc::new(AtomicBool::new(false));
            let seen = Arc::clone(&stop);
            let (tx, rx) = mpsc::channel();
            let mut t = DeviceThread::spawn(
                "isolab-test-dev",
                notify,
                control,
                stop,
                || Ok(()),
                move |_| {
                    let _ = tx.send(());
                    // Long work (a slow disk): 3 s, checking the flag if it is well written.
                    let until = Instant::now() + Duration::from_secs(3);
                    while Instant::now() < until && !(watches && seen.load(Ordering::Acquire)) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    false
                },
            )
            .expect("spawn");
            kick.write(1).expect("kick");
            rx.recv_timeout(Duration::from_secs(5)).expect("busy");
            let start = Instant::now();
            let end = t.stop(start + Duration::from_millis(500));
            let took = start.elapsed();
            if watches {
                assert_eq!(end, ThreadEnd::Joined);
                assert!(took < Duration::from_millis(500), "{took:?}");
            } else {
                assert_eq!(end, ThreadEnd::StillRunning);
                assert!(took < Duration::from_secs(2), "the deadline held: {took:?}");
            }
        }
    }
}
