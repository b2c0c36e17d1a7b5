//! virtio-console: the channel the agent's result leaves the guest through (`/dev/hvc0` in the
//! guest), a page per queue notification instead of one VM exit per byte on the serial port.
//!
//! One port, no multiport, no resize: the device has a receive queue (host to guest, which
//! isolab never uses; its few buffers just stay with the device) and a transmit queue (guest to
//! host). Linux's driver (`virtio_console`, the hvc console port) sends up to a page per buffer
//! and spins until the buffer is used, so the device serves the transmit queue at once, on the
//! vCPU thread whose QueueNotify write exited to the VMM: no device thread, no ioeventfd, and the
//! guest never waits for another thread to be scheduled. One exit per page of output.
//!
//! Why virtio-console and not virtio-vsock (which Firecracker uses for host-guest traffic): the
//! result is a one-way stream of a few KiB, which is exactly what a console port is. vsock needs
//! three queues, a connection state machine (request, response, credit updates, shutdown, reset)
//! in the VMM and an answer from the host before the guest can send a byte (an interrupt and its
//! acknowledgement, at least two more exits to the VMM); the rust-vmm crates give its packet
//! layout but not that state machine, so the part that must be robust against a hostile guest
//! would be ours either way, and it is much smaller here: copy readable buffers into a bounded
//! log.
//!
//! Everything in the transmit queue comes from the guest: descriptors must be device-readable
//! and inside guest RAM; at most [`MAX_BYTES_PER_BUFFER`] of one buffer and [`TX_QUEUE_SIZE`]
//! chains are taken per notification; the log keeps the last bytes up to its capacity; a broken
//! ring marks the device `DEVICE_NEEDS_RESET`.

use std::sync::Arc;

use virtio_bindings::virtio_mmio::VIRTIO_MMIO_INT_VRING;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestMemoryMmap};

use super::{lock, ActivateError, Interrupt, Shared, VirtioDevice, VIRTIO_F_VERSION_1};
use crate::devices::serial::ConsoleLog;

/// The virtio device id of a console.
pub const VIRTIO_ID_CONSOLE: u32 = virtio_bindings::virtio_ids::VIRTIO_ID_CONSOLE;
/// Size of the receive queue: Linux fills it with one page per entry at probe, which the guest
/// must touch; isolab never sends, so two entries are plenty.
pub const RX_QUEUE_SIZE: u16 = 2;
/// Size of the transmit queue.
pub const TX_QUEUE_SIZE: u16 = 16;
/// Most bytes taken from one buffer (Linux sends at most a page; the rest of a larger buffer is
/// counted as dropped, so a guest cannot make one notification copy its whole RAM).
pub const MAX_BYTES_PER_BUFFER: u32 = 64 << 10;
/// The transmit queue's index.
const TX_QUEUE: u32 = 1;

/// What the console did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ConsoleStats {
    /// Transmit-queue notifications served.
    pub notifies: u64,
    /// Buffers (chains) the guest sent.
    pub chains: u64,
    /// Bytes kept in the log.
    pub bytes: u64,
    /// Bytes not taken (past [`MAX_BYTES_PER_BUFFER`]).
    pub bytes_dropped: u64,
    /// Descriptors refused (device-writable in the transmit queue, or outside guest RAM).
    pub bad_descriptors: u64,
    /// Interrupts raised (used-buffer notifications).
    pub interrupts: u64,
}

/// The guest's output and the counters, shared by the device and the VMM that reads them after
/// the run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ConsoleOutput {
    /// What the guest wrote.
    pub log: ConsoleLog,
    /// What the device did.
    pub stats: ConsoleStats,
    /// Why the device stopped serving the queue, if it did.
    pub broken: Option<String>,
}

/// The virtio-console device model.
pub struct Console {
    config: [u8; 12],
    queue_sizes: [u16; 2],
    interrupt: Arc<Interrupt>,
    active: Option<(GuestMemoryMmap, Queue)>,
    /// The driver's queue was unusable; DEVICE_NEEDS_RESET until it resets the device.
    broken: bool,
    output: Shared<ConsoleOutput>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("active", &self.active.is_some())
            .finish()
    }
}

impl Console {
    /// A console keeping the last `capacity` bytes the guest writes, raising `interrupt`.
    pub fn new(capacity: usize, interrupt: Arc<Interrupt>) -> Self {
        Self {
            // struct virtio_console_config: cols, rows (u16), max_nr_ports, emerg_wr (u32); no
            // feature makes the driver read them.
            config: [0; 12],
            queue_sizes: [RX_QUEUE_SIZE, TX_QUEUE_SIZE],
            interrupt,
            active: None,
            broken: false,
            output: Arc::new(std::sync::Mutex::new(ConsoleOutput {
                log: ConsoleLog::new(capacity),
                stats: ConsoleStats::default(),
                broken: None,
            })),
        }
    }

    /// The output, for reading after the run.
    pub fn output(&self) -> Shared<ConsoleOutput> {
        Arc::clone(&self.output)
    }

    /// Serves the transmit queue: copies every readable buffer into the log and returns it used.
    fn drain(&mut self) {
        let Some((mem, queue)) = &mut self.active else {
            return;
        };
        let mut out = lock(&self.output);
        match drain_queue(queue, mem, &mut out) {
            Ok(notify) => {
                if notify {
                    out.stats.interrupts += 1;
                    self.interrupt.trigger(VIRTIO_MMIO_INT_VRING);
                }
            }
            Err(e) => {
                out.broken = Some(e);
                self.active = None;
                self.broken = true;
                self.interrupt
                    .trigger(virtio_bindings::virtio_mmio::VIRTIO_MMIO_INT_CONFIG);
            }
        }
    }
}

/// Takes the chains of the transmit `queue` (at most its size per call); returns whether the
/// driver wants an interrupt, or why the ring is broken.
fn drain_queue(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    out: &mut ConsoleOutput,
) -> Result<bool, String> {
    let mut used = 0u16;
    let mut buf = Vec::new();
    while used < TX_QUEUE_SIZE {
        let chain = match queue.iter(mem) {
            Ok(mut it) => it.next(),
            Err(e) => return Err(format!("the transmit queue is broken: {e}")),
        };
        let Some(chain) = chain else { break };
        let head = chain.head_index();
        out.stats.chains += 1;
        for desc in chain {
            if desc.is_write_only() {
                out.stats.bad_descriptors += 1;
                continue;
            }
            let take = desc.len().min(MAX_BYTES_PER_BUFFER);
            out.stats.bytes_dropped += u64::from(desc.len() - take);
            buf.resize(take as usize, 0);
            if mem.read_slice(&mut buf, desc.addr()).is_err() {
                out.stats.bad_descriptors += 1;
                continue;
            }
            out.log.push(&buf);
            out.stats.bytes += u64::from(take);
        }
        queue
            .add_used(mem, head, 0)
            .map_err(|e| format!("the transmit queue is broken: {e}"))?;
        used += 1;
    }
    if used == 0 {
        return Ok(false);
    }
    queue
        .needs_notification(mem)
        .map_err(|e| format!("the transmit queue is broken: {e}"))
}

impl VirtioDevice for Console {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_CONSOLE
    }

    fn features(&self) -> u64 {
        1u64 << VIRTIO_F_VERSION_1
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.config, offset, data);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {
        // Only emerg_wr is writable, and only with VIRTIO_CONSOLE_F_EMERG_WRITE, not offered.
    }

    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        mut queues: Vec<Queue>,
        _acked_features: u64,
    ) -> Result<(), ActivateError> {
        let tx = queues.pop().ok_or(ActivateError::QueueNotReady(1))?;
        self.active = Some((mem, tx));
        // Buffers queued before DRIVER_OK get no other notification.
        self.drain();
        Ok(())
    }

    fn reset(&mut self) {
        self.active = None;
        self.broken = false;
    }

    fn broken(&self) -> bool {
        self.broken
    }

    fn queue_notify(&mut self, queue: u32) -> bool {
        // The receive queue's notifications (new empty buffers) need nothing: isolab never
        // sends to the guest.
        if queue == TX_QUEUE {
            lock(&self.output).stats.notifies += 1;
            self.drain();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{Address, GuestAddress};

    const DESC: u64 = 0x1000;
    const AVAIL: u64 = 0x2000;
    const USED: u64 = 0x3000;
    const F_NEXT: u16 = 1;
    const F_WRITE: u16 = 2;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).expect("mem")
    }

    fn tx_queue(mem: &GuestMemoryMmap) -> Queue {
        let mut q = Queue::new(TX_QUEUE_SIZE).expect("queue");
        q.try_set_desc_table_address(GuestAddress(DESC))
            .expect("desc");
        q.try_set_avail_ring_address(GuestAddress(AVAIL))
            .expect("avail");
        q.try_set_used_ring_address(GuestAddress(USED))
            .expect("used");
        q.set_ready(true);
        assert!(q.is_valid(mem));
        q
    }

    fn desc(mem: &GuestMemoryMmap, idx: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = GuestAddress(DESC + 16 * u64::from(idx));
        mem.write_obj(addr, at).expect("desc");
        mem.write_obj(len, at.unchecked_add(8)).expect("desc");
        mem.write_obj(flags, at.unchecked_add(12)).expect("desc");
        mem.write_obj(next, at.unchecked_add(14)).expect("desc");
    }

    fn publish(mem: &GuestMemoryMmap, heads: &[u16]) {
        for (i, h) in heads.iter().enumerate() {
            mem.write_obj(*h, GuestAddress(AVAIL + 4 + 2 * i as u64))
                .expect("ring");
        }
        mem.write_obj(heads.len() as u16, GuestAddress(AVAIL + 2))
            .expect("idx");
    }

    fn console(mem: &GuestMemoryMmap) -> (Console, Arc<Interrupt>) {
        let irq = Arc::new(Interrupt::new(None));
        let mut c = Console::new(1 << 16, Arc::clone(&irq));
        let rx = Queue::new(RX_QUEUE_SIZE).expect("rx");
        c.activate(mem.clone(), vec![rx, tx_queue(mem)], 0)
            .expect("activate");
        (c, irq)
    }

    #[test]
    fn buffers_the_guest_sends_arrive_in_order_and_are_returned() {
        let m = mem();
        let (mut c, irq) = console(&m);
        m.write_slice(b"ISOLAB-RESULT:1:", GuestAddress(0x10000))
            .expect("data");
        m.write_slice(b"abc\n", GuestAddress(0x11000))
            .expect("data");
        desc(&m, 0, 0x10000, 16, F_NEXT, 1);
        desc(&m, 1, 0x11000, 4, 0, 0);
        desc(&m, 2, 0x11000, 4, 0, 0);
        publish(&m, &[0, 2]);
        assert!(c.queue_notify(TX_QUEUE));
        let out = lock(&c.output()).clone();
        assert_eq!(out.log.text(), "ISOLAB-RESULT:1:abc\nabc\n");
        assert_eq!(out.stats.chains, 2);
        assert_eq!(out.stats.bytes, 24);
        assert_eq!(out.stats.notifies, 1);
        // Both chains are used (used idx 2), and the driver heard about it.
        let used_idx: u16 = m.read_obj(GuestAddress(USED + 2)).expect("used idx");
        assert_eq!(used_idx, 2);
        assert_eq!(irq.status(), VIRTIO_MMIO_INT_VRING);
        assert!(!c.broken());
        // The receive queue's notifications are accepted and do nothing.
        assert!(c.queue_notify(0));
        assert_eq!(lock(&c.output()).stats.notifies, 1);
    }

    #[test]
    fn hostile_buffers_are_refused_or_bounded() {
        let m = mem();
        let (mut c, _) = console(&m);
        // Device-writable, outside RAM, and one larger than the per-buffer bound.
        desc(&m, 0, 0x10000, 8, F_WRITE, 0);
        desc(&m, 1, 0xffff_0000, 8, 0, 0);
        desc(&m, 2, 0x20000, MAX_BYTES_PER_BUFFER + 100, 0, 0);
        publish(&m, &[0, 1, 2]);
        c.queue_notify(TX_QUEUE);
        let out = lock(&c.output()).clone();
        assert_eq!(out.stats.bad_descriptors, 2);
        assert_eq!(out.stats.bytes, u64::from(MAX_BYTES_PER_BUFFER));
        assert_eq!(out.stats.bytes_dropped, 100);
        assert_eq!(out.stats.chains, 3);
        // A ring that announces more chains than the queue holds is broken: the device says so
        // and stops serving until reset.
        m.write_obj(3u16 + 200, GuestAddress(AVAIL + 2))
            .expect("idx");
        c.queue_notify(TX_QUEUE);
        assert!(c.broken());
        assert!(lock(&c.output()).broken.is_some());
        c.reset();
        assert!(!c.broken());
        assert!(
            lock(&c.output()).broken.is_some(),
            "the reason stays in the report"
        );
    }

    #[test]
    fn notifications_before_activation_and_odd_config_reads_are_harmless() {
        let irq = Arc::new(Interrupt::new(None));
        let mut c = Console::new(1024, irq);
        assert!(c.queue_notify(TX_QUEUE));
        let mut d = [0xffu8; 16];
        c.read_config(0, &mut d);
        assert_eq!(d, [0u8; 16]);
        c.read_config(u64::MAX, &mut d[..4]);
        c.write_config(0, &[1, 2, 3]);
        assert_eq!(c.device_type(), 3);
        assert_eq!(c.queue_max_sizes(), &[RX_QUEUE_SIZE, TX_QUEUE_SIZE]);
        assert!(c
            .activate(mem(), Vec::new(), 0)
            .is_err_and(|e| e == ActivateError::QueueNotReady(1)));
    }
}
