//! The devices of an isolab microVM, the port-I/O bus and the MMIO bus that route guest accesses
//! to them.
//!
//! Everything here runs on the vCPU thread, on a VM exit, with values the guest chose: every port,
//! size and byte is checked, and nothing a guest does can make these functions panic.

pub mod cmos;
pub mod i8042;
pub mod marker;
pub mod serial;
pub mod slots;
pub mod virtio;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use cmos::{Cmos, CMOS_DATA_PORT, CMOS_INDEX_PORT};
use i8042::I8042;
use marker::MarkerPort;
use serial::Serial;
use virtio::mmio::MmioTransport;

/// First port of COM1.
pub const SERIAL_PORT_BASE: u16 = 0x3f8;
/// Number of COM1 registers.
pub const SERIAL_PORT_LEN: u16 = 8;
/// The i8042 data port.
pub const I8042_DATA_PORT: u16 = 0x60;
/// The i8042 command/status port.
pub const I8042_COMMAND_PORT: u16 = 0x64;

/// What the bus asks of the run loop after a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusAction {
    /// Nothing: go on running the guest.
    Continue,
    /// The guest asked for a reset (i8042 0xFE): stop the VM.
    Reset,
}

/// Port-I/O devices of one VM.
#[derive(Debug)]
pub struct PioBus {
    /// COM1, the console.
    pub serial: Serial,
    /// The keyboard controller, used only for its reset line.
    pub i8042: I8042,
    /// The CMOS real-time clock.
    pub cmos: Cmos,
    /// The marker port the agent writes progress bytes to.
    pub marker: MarkerPort,
    /// Accesses to ports no device claims (probes); answered with all ones.
    pub unclaimed: u64,
}

impl PioBus {
    /// A bus with these devices.
    pub fn new(serial: Serial, marker: MarkerPort) -> Self {
        Self {
            serial,
            i8042: I8042::default(),
            cmos: Cmos::default(),
            marker,
            unclaimed: 0,
        }
    }

    /// A guest `in`: fills `data`. Byte-wide devices answer each byte in turn (a `rep insb` arrives
    /// as several bytes); accesses no device claims are answered with all ones.
    pub fn read(&mut self, port: u16, data: &mut [u8]) {
        if let Some(offset) = serial_offset(port) {
            data.iter_mut().for_each(|b| *b = self.serial.read(offset));
        } else if port == I8042_DATA_PORT || port == I8042_COMMAND_PORT {
            data.iter_mut().for_each(|b| *b = self.i8042.read(port));
        } else if port == CMOS_INDEX_PORT || port == CMOS_DATA_PORT {
            data.iter_mut().for_each(|b| *b = self.cmos.read(port));
        } else {
            if port != self.marker.port() {
                // The marker port is write-only and reads like an empty bus; anything else is a
                // probe of a device this VM does not have.
                self.unclaimed += 1;
            }
            data.fill(0xff);
        }
    }

    /// A guest `out`. Byte-wide devices take each byte in turn (a `rep outsb` arrives as several
    /// bytes); the marker port takes only single-byte writes.
    pub fn write(&mut self, port: u16, data: &[u8]) -> BusAction {
        if port == self.marker.port() {
            self.marker.write(data);
        } else if let Some(offset) = serial_offset(port) {
            data.iter().for_each(|b| self.serial.write(offset, *b));
        } else if port == I8042_DATA_PORT || port == I8042_COMMAND_PORT {
            for b in data {
                if self.i8042.write(port, *b) == BusAction::Reset {
                    return BusAction::Reset;
                }
            }
        } else if port == CMOS_INDEX_PORT || port == CMOS_DATA_PORT {
            data.iter().for_each(|b| self.cmos.write(port, *b));
        } else {
            self.unclaimed += 1;
        }
        BusAction::Continue
    }
}

/// Which of a device's two windows the guest claimed (see [`slots`]): none yet, its own window
/// (described in ACPI), or its alias (on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowClaim {
    /// The guest has not touched the device.
    None,
    /// The guest uses the device at its own window.
    Own,
    /// The guest uses the device at its alias window.
    Alias,
}

impl WindowClaim {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Own,
            2 => Self::Alias,
            _ => Self::None,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Own => 1,
            Self::Alias => 2,
        }
    }
}

/// The claim two windows of one device share: the first window the guest touches owns the
/// device, the other reads as an empty slot from then on.
#[derive(Debug, Clone, Default)]
pub struct SharedClaim(Arc<AtomicU8>);

impl SharedClaim {
    /// The window claimed so far.
    pub fn get(&self) -> WindowClaim {
        WindowClaim::from_u8(self.0.load(Ordering::Acquire))
    }

    /// Claims the device for `window` unless the other window has it; true when `window` owns it.
    fn claim(&self, window: WindowClaim) -> bool {
        match self.0.compare_exchange(
            WindowClaim::None.as_u8(),
            window.as_u8(),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => true,
            Err(current) => current == window.as_u8(),
        }
    }
}

/// One device on the MMIO bus.
#[derive(Debug, Clone)]
struct MmioSlot {
    base: u64,
    len: u64,
    read_reason: &'static str,
    write_reason: &'static str,
    transport: Arc<Mutex<MmioTransport>>,
    /// For a device shown at two windows: the shared claim and which window this slot is.
    claim: Option<(SharedClaim, WindowClaim)>,
}

/// MMIO devices of one VM (virtio-mmio register blocks). Cloneable: each vCPU thread gets a
/// handle, the devices sit behind locks.
#[derive(Debug, Clone, Default)]
pub struct MmioBus {
    slots: Vec<MmioSlot>,
}

/// What an empty virtio-mmio slot answers: the magic value and version (so a driver does not
/// complain) and device id 0, which drivers skip.
fn empty_slot_read(offset: u64, data: &mut [u8]) {
    use virtio::mmio::{MMIO_MAGIC, MMIO_VERSION};
    let value = match offset {
        0x000 => MMIO_MAGIC,
        0x004 => MMIO_VERSION,
        _ => 0,
    };
    if data.len() == 4 {
        data.copy_from_slice(&value.to_le_bytes());
    } else {
        data.fill(0);
    }
}

impl MmioBus {
    /// An empty bus: every access is unclaimed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a virtio-mmio device at `[base, base + len)`; its exits are counted under
    /// `read_reason` / `write_reason` (e.g. `mmio_read.virtio_blk`).
    pub fn add(
        &mut self,
        base: u64,
        len: u64,
        reasons: (&'static str, &'static str),
        transport: Arc<Mutex<MmioTransport>>,
    ) {
        self.slots.push(MmioSlot {
            base,
            len,
            read_reason: reasons.0,
            write_reason: reasons.1,
            transport,
            claim: None,
        });
    }

    /// Adds a virtio-mmio device at `[base, base + len)` and, with an `alias`, also at `[alias,
    /// alias + len)` (see [`slots`]): the first window the guest touches gets the device, the
    /// other reads as an empty slot. Returns the claim, which says afterwards which window the
    /// guest used (or that it never touched the device).
    pub fn add_device(
        &mut self,
        base: u64,
        alias: Option<u64>,
        len: u64,
        reasons: (&'static str, &'static str),
        transport: Arc<Mutex<MmioTransport>>,
    ) -> SharedClaim {
        let claim = SharedClaim::default();
        let windows =
            std::iter::once((base, WindowClaim::Own)).chain(alias.map(|a| (a, WindowClaim::Alias)));
        for (at, window) in windows {
            self.slots.push(MmioSlot {
                base: at,
                len,
                read_reason: reasons.0,
                write_reason: reasons.1,
                transport: Arc::clone(&transport),
                claim: Some((claim.clone(), window)),
            });
        }
        claim
    }

    fn find(&self, addr: u64) -> Option<(&MmioSlot, u64)> {
        self.slots.iter().find_map(|s| {
            let off = addr.checked_sub(s.base)?;
            (off < s.len).then_some((s, off))
        })
    }

    /// A guest read at `addr`: fills `data` and returns the exit reason, or None when no device
    /// claims the address (then `data` reads as all ones, like an empty bus).
    pub fn read(&self, addr: u64, data: &mut [u8]) -> Option<&'static str> {
        let Some((slot, off)) = self.find(addr) else {
            data.fill(0xff);
            return None;
        };
        match &slot.claim {
            Some((claim, window)) if !claim.claim(*window) => empty_slot_read(off, data),
            _ => virtio::lock(&slot.transport).read(off, data),
        }
        Some(slot.read_reason)
    }

    /// A guest write at `addr`; returns the exit reason, or None when no device claims it.
    pub fn write(&self, addr: u64, data: &[u8]) -> Option<&'static str> {
        let (slot, off) = self.find(addr)?;
        match &slot.claim {
            // Writes to the window the guest does not use go nowhere.
            Some((claim, window)) if !claim.claim(*window) => {}
            _ => virtio::lock(&slot.transport).write(off, data),
        }
        Some(slot.write_reason)
    }
}

fn serial_offset(port: u16) -> Option<u8> {
    port.checked_sub(SERIAL_PORT_BASE)
        .filter(|o| *o < SERIAL_PORT_LEN)
        .map(|o| o as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn bus() -> PioBus {
        PioBus::new(
            Serial::new(None, serial::ConsoleLog::new(1 << 16), false).expect("serial"),
            MarkerPort::new(0x490, Instant::now()),
        )
    }

    #[test]
    fn routes_ports_and_answers_unknown_ones_with_ones() {
        let mut b = bus();
        assert_eq!(b.write(0x3f8, b"A"), BusAction::Continue);
        assert_eq!(b.serial.console().text(), "A");
        let mut d = [0u8; 1];
        b.read(0x3fd, &mut d); // LSR: transmitter empty
        assert_ne!(d[0] & 0x20, 0);
        let mut d = [0u8; 4];
        b.read(0x2f8, &mut d);
        assert_eq!(d, [0xff; 4]);
        assert_eq!(b.unclaimed, 1);
        assert_eq!(b.write(0x490, &[1]), BusAction::Continue);
        assert_eq!(b.marker.events().len(), 1);
        assert_eq!(b.write(0x64, &[0xfe]), BusAction::Reset);
    }

    #[test]
    fn string_io_reaches_byte_devices_byte_by_byte() {
        let mut b = bus();
        assert_eq!(b.write(0x3f8, b"hello"), BusAction::Continue);
        assert_eq!(b.serial.console().text(), "hello");
        // A reset buried in a `rep outsb` to the i8042 still resets.
        assert_eq!(b.write(0x64, &[0xaa, 0xfe]), BusAction::Reset);
        // Markers are single bytes only.
        b.write(0x490, &[1, 2]);
        assert!(b.marker.events().is_empty());
        assert_eq!(b.marker.dropped(), 1);
    }

    fn block_transport() -> Arc<Mutex<MmioTransport>> {
        use virtio::block::{Block, MemDisk};
        use virtio::Interrupt;
        let irq = Arc::new(Interrupt::new(None));
        let dev = Block::new(
            Box::new(MemDisk::new(8 * 512, false)),
            Arc::clone(&irq),
            None,
        );
        let mem = vm_memory::GuestMemoryMmap::from_ranges(&[(vm_memory::GuestAddress(0), 1 << 20)])
            .expect("mem");
        Arc::new(Mutex::new(MmioTransport::new(
            Box::new(dev),
            mem,
            irq,
            None,
        )))
    }

    fn read32(bus: &MmioBus, addr: u64) -> u32 {
        let mut d = [0u8; 4];
        bus.read(addr, &mut d).expect("claimed address");
        u32::from_le_bytes(d)
    }

    #[test]
    fn a_device_at_two_windows_belongs_to_the_first_one_probed() {
        const MAGIC: u64 = 0x000;
        const DEVICE_ID: u64 = 0x008;
        const STATUS: u64 = 0x070;
        for (first, second, claimed) in [
            (0xd000_0000u64, 0xd010_0000u64, WindowClaim::Own),
            (0xd010_0000, 0xd000_0000, WindowClaim::Alias),
        ] {
            let mut bus = MmioBus::new();
            let t = block_transport();
            let claim = bus.add_device(
                0xd000_0000,
                Some(0xd010_0000),
                0x1000,
                ("mmio_read.virtio_blk", "mmio_write.virtio_blk"),
                Arc::clone(&t),
            );
            assert_eq!(claim.get(), WindowClaim::None);
            // The probe of the first window: a block device.
            assert_eq!(read32(&bus, first + MAGIC), 0x7472_6976);
            assert_eq!(read32(&bus, first + DEVICE_ID), 2);
            assert_eq!(claim.get(), claimed);
            bus.write(first + STATUS, &1u32.to_le_bytes());
            // The other window: an empty slot (device id 0, which Linux skips) whose writes go
            // nowhere, so a second driver can neither see nor reset the device.
            assert_eq!(read32(&bus, second + MAGIC), 0x7472_6976);
            assert_eq!(read32(&bus, second + 0x004), 2);
            assert_eq!(read32(&bus, second + DEVICE_ID), 0);
            assert_eq!(read32(&bus, second + STATUS), 0);
            bus.write(second + STATUS, &0u32.to_le_bytes());
            assert_eq!(read32(&bus, first + STATUS), 1, "the device was not reset");
            assert_eq!(claim.get(), claimed);
            let mut odd = [0u8; 3];
            assert!(bus.read(second + 1, &mut odd).is_some());
        }
        // A device with one window is claimed by its first access too.
        let mut bus = MmioBus::new();
        let claim = bus.add_device(0xd000_1000, None, 0x1000, ("r", "w"), block_transport());
        assert!(bus.read(0xd010_1000, &mut [0u8; 4]).is_none());
        assert_eq!(claim.get(), WindowClaim::None);
        assert_eq!(read32(&bus, 0xd000_1000 + DEVICE_ID), 2);
        assert_eq!(claim.get(), WindowClaim::Own);
    }

    #[test]
    fn odd_sizes_never_panic() {
        let mut b = bus();
        for port in [0x3f8u16, 0x3ff, 0x400, 0x60, 0x64, 0x490, 0, u16::MAX] {
            for len in [0usize, 1, 2, 3, 4, 8] {
                let mut d = vec![0u8; len];
                b.read(port, &mut d);
                let _ = b.write(port, &d);
            }
        }
    }
}
