//! The virtio-mmio transport, version 2 (virtio 1.x "modern" register layout): a 4 KiB register
//! block per device, accessed by the guest on MMIO exits of the vCPU thread.
//!
//! The driver's initialisation sequence is enforced: ACKNOWLEDGE, DRIVER, feature negotiation,
//! FEATURES_OK (refused unless the driver accepted VIRTIO_F_VERSION_1 and nothing the device did
//! not offer), queue setup (only between FEATURES_OK and DRIVER_OK), DRIVER_OK (the device starts
//! only if every queue is ready with its rings inside guest RAM). A write that breaks the rules
//! is ignored and counted; a queue setting that cannot be honoured (size not a power of two or
//! above the maximum, misaligned ring, ring outside guest RAM) sets DEVICE_NEEDS_RESET. Writing 0
//! to Status resets the device.
//!
//! Registers are 32 bits wide: other access sizes read as 0 and are ignored on write. The device
//! configuration space (from 0x100) takes any size.

use std::sync::Arc;

use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
};
use virtio_bindings::virtio_mmio::*;
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use super::{Interrupt, VirtioDevice, VIRTIO_F_VERSION_1};

/// "virt", little endian.
pub const MMIO_MAGIC: u32 = 0x7472_6976;
/// The register layout this transport implements.
pub const MMIO_VERSION: u32 = 2;
/// Vendor id reported to the guest ("ISOL", unregistered; Linux does not look at it).
pub const MMIO_VENDOR_ID: u32 = 0x4c4f_5349;
/// Offset of the QueueNotify register (where the ioeventfd is registered).
pub const QUEUE_NOTIFY_OFFSET: u64 = VIRTIO_MMIO_QUEUE_NOTIFY as u64;
/// First byte of the device configuration space.
const CONFIG_OFFSET: u64 = VIRTIO_MMIO_CONFIG as u64;

/// Counters of guest misbehaviour and userspace-handled notifications.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransportStats {
    /// Register accesses of a size other than 4 bytes, or misaligned.
    pub bad_access: u64,
    /// Writes ignored because they broke the protocol (wrong state, read-only register).
    pub ignored_writes: u64,
    /// QueueNotify writes that reached userspace (not caught by the ioeventfd).
    pub notifies_trapped: u64,
    /// Times the transport set DEVICE_NEEDS_RESET.
    pub needs_reset: u64,
}

/// One virtio-mmio device: its registers, queue configuration and the device model behind it.
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    interrupt: Arc<Interrupt>,
    notify: Option<EventFd>,
    mem: GuestMemoryMmap,
    status: u32,
    needs_reset: bool,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    queues: Vec<Queue>,
    config_generation: u32,
    /// What the guest got wrong.
    pub stats: TransportStats,
}

impl std::fmt::Debug for MmioTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmioTransport")
            .field("device_type", &self.device.device_type())
            .field("status", &format_args!("{:#x}", self.status))
            .field("needs_reset", &self.needs_reset)
            .field("stats", &self.stats)
            .finish()
    }
}

fn new_queues(sizes: &[u16]) -> Vec<Queue> {
    // Queue::new fails only for a maximum that is zero, above 32768 or not a power of two:
    // device models define their maxima as constants, so a bad one is dropped (the driver then
    // sees a queue of maximum 0, i.e. absent) rather than panicking.
    sizes.iter().filter_map(|&s| Queue::new(s).ok()).collect()
}

impl MmioTransport {
    /// A transport for `device` over guest memory `mem`. `notify` receives QueueNotify writes
    /// that reach userspace (normally KVM's ioeventfd catches them in the kernel).
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestMemoryMmap,
        interrupt: Arc<Interrupt>,
        notify: Option<EventFd>,
    ) -> Self {
        let queues = new_queues(device.queue_max_sizes());
        Self {
            device,
            interrupt,
            notify,
            mem,
            status: 0,
            needs_reset: false,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            queues,
            config_generation: 0,
            stats: TransportStats::default(),
        }
    }

    /// The Status register as the driver reads it.
    pub fn status(&self) -> u32 {
        if self.needs_reset || self.device.broken() {
            self.status | VIRTIO_CONFIG_S_NEEDS_RESET
        } else {
            self.status
        }
    }

    /// The features the driver accepted (valid once FEATURES_OK is set).
    pub fn acked_features(&self) -> u64 {
        self.driver_features
    }

    fn selected_queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    fn set_needs_reset(&mut self) {
        if !self.needs_reset {
            self.needs_reset = true;
            self.stats.needs_reset += 1;
            // Announce it the way the spec asks: a configuration-change interrupt.
            self.interrupt
                .trigger(virtio_bindings::virtio_mmio::VIRTIO_MMIO_INT_CONFIG);
        }
    }

    /// A guest read at `offset` within the register block.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG_OFFSET {
            self.device.read_config(offset - CONFIG_OFFSET, data);
            return;
        }
        if data.len() != 4 || !offset.is_multiple_of(4) {
            self.stats.bad_access += 1;
            data.fill(0);
            return;
        }
        let Ok(reg) = u32::try_from(offset) else {
            data.fill(0);
            return;
        };
        let value = match reg {
            VIRTIO_MMIO_MAGIC_VALUE => MMIO_MAGIC,
            VIRTIO_MMIO_VERSION => MMIO_VERSION,
            VIRTIO_MMIO_DEVICE_ID => self.device.device_type(),
            VIRTIO_MMIO_VENDOR_ID => MMIO_VENDOR_ID,
            VIRTIO_MMIO_DEVICE_FEATURES => match self.device_features_sel {
                0 => self.device.features() as u32,
                1 => (self.device.features() >> 32) as u32,
                _ => 0,
            },
            VIRTIO_MMIO_QUEUE_NUM_MAX => self
                .queues
                .get(self.queue_sel as usize)
                .map_or(0, |q| u32::from(q.max_size())),
            VIRTIO_MMIO_QUEUE_READY => self
                .queues
                .get(self.queue_sel as usize)
                .map_or(0, |q| u32::from(q.ready())),
            VIRTIO_MMIO_INTERRUPT_STATUS => self.interrupt.status(),
            VIRTIO_MMIO_STATUS => self.status(),
            VIRTIO_MMIO_CONFIG_GENERATION => self.config_generation,
            // Shared memory regions: none (length all ones means "no such region").
            VIRTIO_MMIO_SHM_LEN_LOW | VIRTIO_MMIO_SHM_LEN_HIGH => u32::MAX,
            _ => 0,
        };
        data.copy_from_slice(&value.to_le_bytes());
    }

    /// A guest write at `offset` within the register block.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= CONFIG_OFFSET {
            if self.status & VIRTIO_CONFIG_S_DRIVER != 0 {
                self.device.write_config(offset - CONFIG_OFFSET, data);
            } else {
                self.stats.ignored_writes += 1;
            }
            return;
        }
        let (Ok(bytes), true) = (<[u8; 4]>::try_from(data), offset.is_multiple_of(4)) else {
            self.stats.bad_access += 1;
            return;
        };
        let value = u32::from_le_bytes(bytes);
        let Ok(reg) = u32::try_from(offset) else {
            self.stats.bad_access += 1;
            return;
        };
        let features_phase = self.status & (VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK)
            == VIRTIO_CONFIG_S_DRIVER;
        let queue_phase = self.status & (VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK)
            == VIRTIO_CONFIG_S_FEATURES_OK
            && !self.needs_reset;
        match reg {
            VIRTIO_MMIO_DEVICE_FEATURES_SEL => self.device_features_sel = value,
            VIRTIO_MMIO_DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            VIRTIO_MMIO_DRIVER_FEATURES if features_phase => match self.driver_features_sel {
                0 => {
                    self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(value);
                }
                1 => {
                    self.driver_features =
                        (self.driver_features & 0xffff_ffff) | (u64::from(value) << 32);
                }
                // Feature words past 64 bits: nothing is offered there, so only zero is valid;
                // anything else is remembered as bit 63 (never offered), which makes
                // FEATURES_OK fail as it should.
                _ if value == 0 => {}
                _ => self.driver_features |= 1 << 63,
            },
            VIRTIO_MMIO_QUEUE_SEL => self.queue_sel = value,
            VIRTIO_MMIO_QUEUE_NUM if queue_phase => self.set_queue_size(value),
            VIRTIO_MMIO_QUEUE_READY if queue_phase => self.set_queue_ready(value),
            VIRTIO_MMIO_QUEUE_DESC_LOW
            | VIRTIO_MMIO_QUEUE_DESC_HIGH
            | VIRTIO_MMIO_QUEUE_AVAIL_LOW
            | VIRTIO_MMIO_QUEUE_AVAIL_HIGH
            | VIRTIO_MMIO_QUEUE_USED_LOW
            | VIRTIO_MMIO_QUEUE_USED_HIGH
                if queue_phase =>
            {
                self.set_queue_address(reg, value)
            }
            VIRTIO_MMIO_QUEUE_NOTIFY => self.queue_notify(value),
            VIRTIO_MMIO_INTERRUPT_ACK => self.interrupt.ack(value),
            VIRTIO_MMIO_STATUS => self.set_status(value),
            _ => self.stats.ignored_writes += 1,
        }
    }

    fn set_queue_size(&mut self, value: u32) {
        let ok = match (self.selected_queue(), u16::try_from(value)) {
            // Split virtqueues must be a power of two no larger than QueueNumMax; the crate
            // checks both. A ready queue keeps its size.
            (Some(q), Ok(size)) if !q.ready() => q.try_set_size(size).is_ok(),
            _ => false,
        };
        if !ok {
            self.set_needs_reset();
        }
    }

    fn set_queue_ready(&mut self, value: u32) {
        let mem = self.mem.clone();
        let ok = match self.selected_queue() {
            Some(q) if value == 0 => {
                q.set_ready(false);
                true
            }
            Some(q) if value == 1 => {
                q.set_ready(true);
                // All three rings must lie inside guest RAM before the queue may be used.
                if q.is_valid(&mem) {
                    true
                } else {
                    q.set_ready(false);
                    false
                }
            }
            _ => false,
        };
        if !ok {
            self.set_needs_reset();
        }
    }

    fn set_queue_address(&mut self, reg: u32, value: u32) {
        let ok = match self.selected_queue() {
            Some(q) if !q.ready() => {
                let merge = |old: u64, high: bool| {
                    if high {
                        (old & 0xffff_ffff) | (u64::from(value) << 32)
                    } else {
                        (old & !0xffff_ffff) | u64::from(value)
                    }
                };
                let high = matches!(
                    reg,
                    VIRTIO_MMIO_QUEUE_DESC_HIGH
                        | VIRTIO_MMIO_QUEUE_AVAIL_HIGH
                        | VIRTIO_MMIO_QUEUE_USED_HIGH
                );
                // Alignment is checked here (16, 2, 4 bytes), placement in RAM at QueueReady.
                match reg {
                    VIRTIO_MMIO_QUEUE_DESC_LOW | VIRTIO_MMIO_QUEUE_DESC_HIGH => q
                        .try_set_desc_table_address(GuestAddress(merge(q.desc_table(), high)))
                        .is_ok(),
                    VIRTIO_MMIO_QUEUE_AVAIL_LOW | VIRTIO_MMIO_QUEUE_AVAIL_HIGH => q
                        .try_set_avail_ring_address(GuestAddress(merge(q.avail_ring(), high)))
                        .is_ok(),
                    _ => q
                        .try_set_used_ring_address(GuestAddress(merge(q.used_ring(), high)))
                        .is_ok(),
                }
            }
            _ => false,
        };
        if !ok {
            self.set_needs_reset();
        }
    }

    fn queue_notify(&mut self, value: u32) {
        self.stats.notifies_trapped += 1;
        let running = self.status & VIRTIO_CONFIG_S_DRIVER_OK != 0;
        if running && (value as usize) < self.queues.len() {
            if self.device.queue_notify(value) {
                return;
            }
            if let Some(fd) = &self.notify {
                // Same path as the ioeventfd: the device thread serves it. A failed write can
                // only mean the counter is saturated, which still wakes the thread.
                let _ = fd.write(1);
            }
        } else {
            self.stats.ignored_writes += 1;
        }
    }

    fn reset(&mut self) {
        self.device.reset();
        for q in &mut self.queues {
            q.reset();
        }
        self.status = 0;
        self.needs_reset = false;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.interrupt.clear();
    }

    fn set_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        // NEEDS_RESET is the device's bit; a driver writing it back is harmless.
        let value = value & !VIRTIO_CONFIG_S_NEEDS_RESET;
        let old = self.status;
        if value & old != old {
            // Drivers only ever add bits (clearing needs a reset).
            self.stats.ignored_writes += 1;
            return;
        }
        let added = value & !old;
        if added & VIRTIO_CONFIG_S_FAILED != 0 {
            // The driver gave up on the device: record it, stop nothing (the device is idle or
            // will be reset).
            self.status |= VIRTIO_CONFIG_S_FAILED;
        }
        let mut status = old | (added & VIRTIO_CONFIG_S_FAILED);
        let steps = [
            (VIRTIO_CONFIG_S_ACKNOWLEDGE, 0),
            (VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_ACKNOWLEDGE),
            (VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_DRIVER),
            (VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK),
        ];
        let known = steps.iter().fold(VIRTIO_CONFIG_S_FAILED, |a, s| a | s.0);
        if added & !known != 0 {
            self.stats.ignored_writes += 1;
            return;
        }
        for (bit, needs) in steps {
            if added & bit == 0 {
                continue;
            }
            if status & needs != needs {
                self.stats.ignored_writes += 1;
                self.status = status;
                return;
            }
            match bit {
                VIRTIO_CONFIG_S_FEATURES_OK => {
                    let offered = self.device.features();
                    let acked = self.driver_features;
                    // Refusing = leaving the bit clear; the driver reads it back and gives up.
                    if acked & !offered != 0 || acked & (1 << VIRTIO_F_VERSION_1) == 0 {
                        self.stats.ignored_writes += 1;
                        self.status = status;
                        return;
                    }
                }
                VIRTIO_CONFIG_S_DRIVER_OK => {
                    status |= bit;
                    self.status = status;
                    self.activate();
                    return;
                }
                _ => {}
            }
            status |= bit;
        }
        self.status = status;
    }

    fn activate(&mut self) {
        if self.needs_reset {
            return;
        }
        let event_idx = self.driver_features & (1 << super::VIRTIO_RING_F_EVENT_IDX) != 0;
        let mut queues = Vec::with_capacity(self.queues.len());
        for q in &self.queues {
            if !q.ready() || !q.is_valid(&self.mem) {
                // Every queue this device has is needed; a missing one is a driver bug.
                self.set_needs_reset();
                return;
            }
            // The device works on its own copy of the queue; the transport keeps the
            // configuration for register reads.
            match Queue::try_from(q.state()) {
                Ok(mut copy) => {
                    copy.set_event_idx(event_idx);
                    queues.push(copy);
                }
                Err(_) => {
                    self.set_needs_reset();
                    return;
                }
            }
        }
        if self
            .device
            .activate(self.mem.clone(), queues, self.driver_features)
            .is_err()
        {
            self.set_needs_reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::block::{Block, MemDisk};
    use vm_memory::GuestAddress;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).expect("mem")
    }

    fn transport(ro: bool) -> MmioTransport {
        let irq = Arc::new(Interrupt::new(None));
        let dev = Block::new(Box::new(MemDisk::new(64 * 512, ro)), Arc::clone(&irq), None);
        MmioTransport::new(Box::new(dev), mem(), irq, None)
    }

    fn r(t: &mut MmioTransport, off: u32) -> u32 {
        let mut d = [0u8; 4];
        t.read(u64::from(off), &mut d);
        u32::from_le_bytes(d)
    }

    fn w(t: &mut MmioTransport, off: u32, v: u32) {
        t.write(u64::from(off), &v.to_le_bytes());
    }

    /// The Linux driver's probe up to queue setup.
    fn negotiate(t: &mut MmioTransport) {
        w(t, VIRTIO_MMIO_STATUS, 1);
        w(t, VIRTIO_MMIO_STATUS, 3);
        w(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
        let hi = r(t, VIRTIO_MMIO_DEVICE_FEATURES);
        w(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
        let lo = r(t, VIRTIO_MMIO_DEVICE_FEATURES);
        w(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
        w(t, VIRTIO_MMIO_DRIVER_FEATURES, hi);
        w(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
        w(t, VIRTIO_MMIO_DRIVER_FEATURES, lo);
        w(t, VIRTIO_MMIO_STATUS, 11);
        assert_eq!(r(t, VIRTIO_MMIO_STATUS), 11);
    }

    fn setup_queue(t: &mut MmioTransport, size: u32, desc: u64) {
        w(t, VIRTIO_MMIO_QUEUE_SEL, 0);
        w(t, VIRTIO_MMIO_QUEUE_NUM, size);
        w(t, VIRTIO_MMIO_QUEUE_DESC_LOW, desc as u32);
        w(t, VIRTIO_MMIO_QUEUE_DESC_HIGH, (desc >> 32) as u32);
        let avail = desc.wrapping_add(0x1000);
        let used = desc.wrapping_add(0x2000);
        w(t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, avail as u32);
        w(t, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (avail >> 32) as u32);
        w(t, VIRTIO_MMIO_QUEUE_USED_LOW, used as u32);
        w(t, VIRTIO_MMIO_QUEUE_USED_HIGH, (used >> 32) as u32);
        w(t, VIRTIO_MMIO_QUEUE_READY, 1);
    }

    #[test]
    fn identifies_as_a_version_2_block_device() {
        let mut t = transport(false);
        assert_eq!(r(&mut t, VIRTIO_MMIO_MAGIC_VALUE), 0x7472_6976);
        assert_eq!(r(&mut t, VIRTIO_MMIO_VERSION), 2);
        assert_eq!(r(&mut t, VIRTIO_MMIO_DEVICE_ID), 2);
        assert_eq!(r(&mut t, VIRTIO_MMIO_QUEUE_NUM_MAX), 256);
        w(&mut t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
        assert_eq!(r(&mut t, VIRTIO_MMIO_DEVICE_FEATURES), 1, "VERSION_1");
        w(&mut t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
        let lo = r(&mut t, VIRTIO_MMIO_DEVICE_FEATURES);
        assert_ne!(lo & (1 << 29), 0, "EVENT_IDX");
        assert_ne!(lo & (1 << 9), 0, "FLUSH");
        assert_eq!(lo & (1 << 5), 0, "not RO");
        // Capacity: 64 sectors, readable bytewise too.
        let mut cap = [0u8; 8];
        t.read(0x100, &mut cap);
        assert_eq!(u64::from_le_bytes(cap), 64);
        let mut b = [0u8; 1];
        t.read(0x100, &mut b);
        assert_eq!(b[0], 64);
        t.read(0xfff, &mut b);
        assert_eq!(b[0], 0);
        let mut t = transport(true);
        let lo = r(&mut t, VIRTIO_MMIO_DEVICE_FEATURES);
        assert_ne!(lo & (1 << 5), 0, "RO");
    }

    #[test]
    fn full_initialisation_activates_the_device() {
        let mut t = transport(false);
        negotiate(&mut t);
        setup_queue(&mut t, 128, 0x10000);
        assert_eq!(r(&mut t, VIRTIO_MMIO_QUEUE_READY), 1);
        w(&mut t, VIRTIO_MMIO_STATUS, 15);
        assert_eq!(r(&mut t, VIRTIO_MMIO_STATUS), 15);
        assert_eq!(t.stats, TransportStats::default());
        // Reset clears everything.
        w(&mut t, VIRTIO_MMIO_STATUS, 0);
        assert_eq!(r(&mut t, VIRTIO_MMIO_STATUS), 0);
        assert_eq!(r(&mut t, VIRTIO_MMIO_QUEUE_READY), 0);
    }

    #[test]
    fn queue_size_not_a_power_of_two_or_too_large_needs_reset() {
        for bad in [100u32, 0, 512, 0x1_0000 + 128] {
            let mut t = transport(false);
            negotiate(&mut t);
            w(&mut t, VIRTIO_MMIO_QUEUE_NUM, bad);
            assert_ne!(
                r(&mut t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET,
                0,
                "{bad}"
            );
            // Once broken, DRIVER_OK does not start the device.
            w(&mut t, VIRTIO_MMIO_STATUS, 15);
            assert_ne!(r(&mut t, VIRTIO_MMIO_STATUS) & 0x40, 0);
            // A reset recovers.
            w(&mut t, VIRTIO_MMIO_STATUS, 0);
            assert_eq!(r(&mut t, VIRTIO_MMIO_STATUS), 0);
        }
    }

    #[test]
    fn rings_outside_ram_or_misaligned_need_reset() {
        // Past the end of the 1 MiB of RAM; wrapping around 2^64; misaligned.
        for desc in [0xff000u64, 0x1_0000_0000, u64::MAX - 0xfff] {
            let mut t = transport(false);
            negotiate(&mut t);
            setup_queue(&mut t, 256, desc);
            assert_eq!(r(&mut t, VIRTIO_MMIO_QUEUE_READY), 0, "{desc:#x}");
            assert_ne!(r(&mut t, VIRTIO_MMIO_STATUS) & 0x40, 0, "{desc:#x}");
        }
        let mut t = transport(false);
        negotiate(&mut t);
        w(&mut t, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x10008);
        assert_ne!(r(&mut t, VIRTIO_MMIO_STATUS) & 0x40, 0);
    }

    #[test]
    fn driver_ok_without_a_ready_queue_needs_reset() {
        let mut t = transport(false);
        negotiate(&mut t);
        w(&mut t, VIRTIO_MMIO_STATUS, 15);
        assert_ne!(r(&mut t, VIRTIO_MMIO_STATUS) & 0x40, 0);
    }

    #[test]
    fn out_of_order_status_and_bad_features_are_refused() {
        let mut t = transport(false);
        // DRIVER_OK straight away.
        w(&mut t, VIRTIO_MMIO_STATUS, 4);
        assert_eq!(r(&mut t, VIRTIO_MMIO_STATUS), 0);
        w(&mut t, VIRTIO_MMIO_STATUS, 1);
        w(&mut t, VIRTIO_MMIO_STATUS, 3);
        // Features not offered (bit 0), and no VERSION_1: FEATURES_OK stays clear.
        w(&mut t, VIRTIO_MMIO_DRIVER_FEATURES, 1);
        w(&mut t, VIRTIO_MMIO_STATUS, 11);
        assert_eq!(r(&mut t, VIRTIO_MMIO_STATUS), 3);
        w(&mut t, VIRTIO_MMIO_DRIVER_FEATURES, 0);
        w(&mut t, VIRTIO_MMIO_STATUS, 11);
        assert_eq!(r(&mut t, VIRTIO_MMIO_STATUS), 3, "VERSION_1 is required");
        // Clearing bits without a reset.
        w(&mut t, VIRTIO_MMIO_STATUS, 1);
        assert_eq!(r(&mut t, VIRTIO_MMIO_STATUS), 3);
        // Queue setup before FEATURES_OK is ignored.
        w(&mut t, VIRTIO_MMIO_QUEUE_NUM, 16);
        w(&mut t, VIRTIO_MMIO_QUEUE_READY, 1);
        assert_eq!(r(&mut t, VIRTIO_MMIO_QUEUE_READY), 0);
        assert!(t.stats.ignored_writes >= 5, "{:?}", t.stats);
    }

    #[test]
    fn odd_access_sizes_and_offsets_never_panic() {
        let mut t = transport(false);
        for off in (0..0x1010u64).step_by(1) {
            for len in [0usize, 1, 2, 3, 4, 8] {
                let mut d = vec![0xa5u8; len];
                t.read(off, &mut d);
                t.write(off, &d);
            }
        }
        for off in [u64::MAX, u64::MAX - 3, 1 << 40] {
            let mut d = [0u8; 4];
            t.read(off, &mut d);
            t.write(off, &d);
        }
    }
}
