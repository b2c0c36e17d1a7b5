//! Fuzzes what a hostile guest controls in the virtio-blk device: guest memory (rings,
//! descriptors, request headers, buffers) and the queue state (size, ring addresses, indices,
//! event index), fed straight into the queue handling and request parser (mode 0), or written
//! through the virtio-mmio registers by a driver-like init sequence followed by arbitrary
//! register writes (mode 1). Any panic, or any access outside guest RAM (caught as a crash by
//! the mapping layout: RAM is two regions with a hole), is a bug.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use virtio_bindings::virtio_mmio::*;
use virtio_queue::{Queue, QueueState};
use vm_backend::devices::virtio::block::{process_queue, Block, BlockStats, MemDisk};
use vm_backend::devices::virtio::mmio::MmioTransport;
use vm_backend::devices::virtio::Interrupt;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Control bytes at the start of the input; guest memory contents follow.
const CTL: usize = 64;
const LOW: usize = 32 << 10;
const HIGH_START: u64 = 48 << 10;
const HIGH: usize = 16 << 10;

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// A ring address: mostly inside the 64 KiB guest address space, sometimes anywhere.
fn addr(b: &[u8], i: usize) -> u64 {
    let raw = u32_at(b, i);
    if raw & 0x8000_0000 != 0 {
        u64::from(raw) << 32 | u64::from(raw.rotate_left(7))
    } else {
        u64::from(raw & 0xffff)
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < CTL {
        return;
    }
    let (ctl, body) = data.split_at(CTL);
    let Ok(mem) = GuestMemoryMmap::<()>::from_ranges(&[
        (GuestAddress(0), LOW),
        (GuestAddress(HIGH_START), HIGH),
    ]) else {
        return;
    };
    let n = body.len().min(LOW);
    if mem.write_slice(&body[..n], GuestAddress(0)).is_err() {
        return;
    }
    if body.len() > LOW {
        let m = (body.len() - LOW).min(HIGH);
        if mem
            .write_slice(&body[LOW..LOW + m], GuestAddress(HIGH_START))
            .is_err()
        {
            return;
        }
    }
    let flags = ctl[0];
    let read_only = flags & 2 != 0;
    let event_idx = flags & 4 != 0;
    let disk = MemDisk::new(64 * 512, read_only);

    if flags & 1 == 0 {
        // Mode 0: the queue state as a (validated) transport would hand it over, except that
        // the rings need not be inside RAM: the handling must cope either way.
        let state = QueueState {
            max_size: 256,
            next_avail: u16_at(ctl, 2),
            next_used: u16_at(ctl, 4),
            event_idx_enabled: event_idx,
            size: 1 << (ctl[1] % 9),
            ready: true,
            desc_table: addr(ctl, 6) & !0xf,
            avail_ring: addr(ctl, 10) & !0x1,
            used_ring: addr(ctl, 14) & !0x3,
        };
        let Ok(mut queue) = Queue::try_from(state) else {
            return;
        };
        let mut disk = disk;
        let mut stats = BlockStats::default();
        for _ in 0..=(ctl[18] % 4) {
            let _ = process_queue(&mut queue, &mem, &mut disk, &mut stats);
        }
        assert_eq!(disk.data.len(), 64 * 512);
        assert!(!read_only || stats.writes == 0);
    } else {
        // Mode 1: through the registers, with fuzzed features, queue size and addresses.
        let irq = Arc::new(Interrupt::new(None));
        let dev = Block::new(Box::new(disk), Arc::clone(&irq));
        let worker = dev.worker();
        let mut t = MmioTransport::new(Box::new(dev), mem.clone(), irq, None);
        let mut w = |reg: u32, v: u32| t.write(u64::from(reg), &v.to_le_bytes());
        w(VIRTIO_MMIO_STATUS, 1);
        w(VIRTIO_MMIO_STATUS, 3);
        w(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
        w(VIRTIO_MMIO_DRIVER_FEATURES, u32_at(ctl, 2) & 0x3);
        w(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
        w(VIRTIO_MMIO_DRIVER_FEATURES, u32_at(ctl, 6));
        w(VIRTIO_MMIO_STATUS, 11);
        w(VIRTIO_MMIO_QUEUE_SEL, u32::from(ctl[10] & 1));
        w(VIRTIO_MMIO_QUEUE_NUM, u32::from(u16_at(ctl, 11)));
        for (i, reg) in [
            VIRTIO_MMIO_QUEUE_DESC_LOW,
            VIRTIO_MMIO_QUEUE_AVAIL_LOW,
            VIRTIO_MMIO_QUEUE_USED_LOW,
        ]
        .into_iter()
        .enumerate()
        {
            let a = addr(ctl, 13 + 4 * i);
            w(reg, a as u32);
            w(reg + 4, (a >> 32) as u32);
        }
        w(VIRTIO_MMIO_QUEUE_READY, 1);
        w(VIRTIO_MMIO_STATUS, 15);
        // Then arbitrary register writes (offset, value) from the rest of the control bytes,
        // with queue processing in between.
        for op in ctl[25..].chunks_exact(5) {
            let off = u64::from(op[0]) * 4;
            t.write(off, &op[1..5]);
            let mut r = [0u8; 4];
            t.read(off, &mut r);
            if op[0] & 0x40 != 0 {
                let mut guard = worker.lock().unwrap_or_else(|p| p.into_inner());
                guard.notified(1);
            }
        }
        worker.lock().unwrap_or_else(|p| p.into_inner()).notified(1);
    }
});
