//! Where each virtio-mmio device lives: one allocator hands every device its 4 KiB register
//! window and its interrupt line (GSI), in the order the VMM creates the devices (the disk, the
//! console, and next the network device). Nothing else in the VMM picks addresses or GSIs for
//! devices: the command line, the ACPI tables and the MMIO bus are all written from the slots.
//!
//! # How a guest kernel finds its devices
//!
//! A microVM kernel learns about virtio-mmio devices in one of two ways: from `virtio_mmio.device=`
//! words on its command line (`CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES`), or from `LNRO0005` devices in
//! the ACPI DSDT (`CONFIG_ACPI`). Which ones a kernel understands cannot be read from a bzImage
//! without decompressing it, and a kernel that understands both would register every device twice
//! if it were told twice about the same registers: two drivers on one device, each resetting it
//! under the other.
//!
//! So with [`crate::vmm::AcpiMode::Auto`] each device is shown at two windows: its own window (in
//! the DSDT) and an alias window (on the command line), [`ALIAS_OFFSET`] above it. The first window
//! the guest touches claims the device (Linux's driver reads the magic value first, in its
//! probe); from then on the other window answers as an empty virtio-mmio slot (device id 0), which
//! Linux's driver skips without a word. A kernel with only one way finds the device there; a
//! kernel with both finds it once, at whichever window it probes first. `--vm-acpi on` or `off`
//! give one window only (DSDT or command line).

use crate::error::{Result, VmError};

/// Size of one virtio-mmio register block.
pub const WINDOW_SIZE: u64 = 0x1000;
/// First device window (inside the MMIO hole below 4 GiB, clear of the IOAPIC at 0xfec0_0000 and
/// the LAPIC at 0xfee0_0000).
pub const FIRST_WINDOW: u64 = 0xd000_0000;
/// Where a device's alias window is, above its own window.
pub const ALIAS_OFFSET: u64 = 0x10_0000;
/// Device windows that fit below the alias windows.
pub const MAX_WINDOWS: u64 = ALIAS_OFFSET / WINDOW_SIZE;
/// The GSIs devices may have, in order: IOAPIC pins no other device of the microVM or legacy
/// driver uses (0-2 timer, keyboard and cascade; 3 and 4 the serial ports; 8 the RTC; 12-15 the
/// PS/2 mouse, the FPU and the IDE channels a stock kernel may still probe). Both the MP table and
/// the MADT route every one of the 24 pins.
pub const GSIS: [u32; 14] = [5, 6, 7, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23];

/// One device's place: its register window and its interrupt line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceSlot {
    /// Guest physical address of its 4 KiB register window.
    pub base: u64,
    /// Its GSI (IOAPIC pin).
    pub gsi: u32,
}

impl DeviceSlot {
    /// Where its alias window is (see the module docs).
    pub fn alias_base(&self) -> u64 {
        self.base + ALIAS_OFFSET
    }

    /// The command-line word that describes a window of this device to a kernel built with
    /// `CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES`.
    pub fn cmdline_value(&self, base: u64) -> String {
        format!("4K@{base:#x}:{}", self.gsi)
    }
}

/// Hands out device slots in order.
#[derive(Debug, Default)]
pub struct SlotAllocator {
    next: usize,
}

impl SlotAllocator {
    /// An allocator whose first slot is [`FIRST_WINDOW`] with GSI 5.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next free slot, for the device `what` (named in the error when none is left).
    pub fn allocate(&mut self, what: &str) -> Result<DeviceSlot> {
        let gsi = GSIS.get(self.next).copied().ok_or_else(|| {
            VmError::Config(format!(
                "no interrupt line left for the {what} device: a VM has at most {} virtio devices",
                GSIS.len()
            ))
        })?;
        let index = self.next as u64;
        debug_assert!(index < MAX_WINDOWS);
        self.next += 1;
        Ok(DeviceSlot {
            base: FIRST_WINDOW + index * WINDOW_SIZE,
            gsi,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::x86_64::{MMIO_GAP_END, MMIO_GAP_START};

    #[test]
    fn slots_are_consecutive_windows_with_distinct_free_gsis() {
        let mut a = SlotAllocator::new();
        let first = a.allocate("block").expect("slot");
        assert_eq!(
            first,
            DeviceSlot {
                base: 0xd000_0000,
                gsi: 5
            }
        );
        let second = a.allocate("console").expect("slot");
        assert_eq!(second.base, 0xd000_1000);
        assert_eq!(second.gsi, 6);
        assert_eq!(second.cmdline_value(second.base), "4K@0xd0001000:6");
        assert_eq!(second.alias_base(), 0xd010_1000);
        let mut all = vec![first, second];
        while let Ok(s) = a.allocate("more") {
            all.push(s);
        }
        assert_eq!(all.len(), GSIS.len());
        for s in &all {
            // Inside the MMIO hole, the alias too, and clear of the IOAPIC and LAPIC.
            assert!(s.base >= MMIO_GAP_START && s.alias_base() + WINDOW_SIZE < 0xfec0_0000);
            assert!(s.alias_base() < MMIO_GAP_END);
            assert!(![0, 1, 2, 3, 4, 8, 12, 13, 14, 15].contains(&s.gsi));
            assert!(s.gsi < 24, "an IOAPIC pin");
        }
        let mut gsis: Vec<u32> = all.iter().map(|s| s.gsi).collect();
        gsis.dedup();
        assert_eq!(gsis.len(), all.len());
        // Alias windows never overlap device windows.
        for s in &all {
            assert!(all.iter().all(|o| o.base != s.alias_base()));
        }
        let err = a.allocate("net").expect_err("full");
        assert!(err.to_string().contains("net"), "{err}");
    }
}
