//! Fuzzes what a hostile guest controls in the virtio-blk device. The body lives in the library
//! (`vm_backend::devices::virtio::testing::fuzz_virtio_blk`, where its modes and what counts as a
//! finding are described) so that `cargo test` replays generated inputs through exactly this
//! code; this file only hands libFuzzer's inputs to it.
//!
//! Modes (control byte 0): 0, the queue handling and request parser fed a fuzzed queue state;
//! 1, the virtio-mmio transport driven through its registers; 2 and 3, two threads, a
//! well-behaved driver publishing while the device serves. Accesses outside guest RAM do not
//! crash anything (vm-memory checks every one and returns an error); what the target catches is
//! a panic, an assertion (an unbounded pass, a request the device let through unchecked to the
//! in-memory disk, which panics on it, a device that gives up on a good driver or loses a
//! request) and a hang (libFuzzer's -timeout).
//!
//! `ISOLAB_FUZZ_MODES=single` keeps to modes 0 and 1, `=threads` to the two-thread modes (a
//! two-thread execution costs a thread and a race, about a hundred times a single one, so a
//! long campaign runs them apart); unset, every mode.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vm_backend::devices::virtio::testing::{fuzz_virtio_blk, FUZZ_CTL};

/// Bits of control byte 0 forced on and off by ISOLAB_FUZZ_MODES.
fn mode_mask() -> (u8, u8) {
    static MASK: OnceLock<(u8, u8)> = OnceLock::new();
    *MASK.get_or_init(|| match std::env::var("ISOLAB_FUZZ_MODES").as_deref() {
        Ok("single") => (0, 2),
        Ok("threads") => (2, 0),
        _ => (0, 0),
    })
}

fuzz_target!(|data: &[u8]| {
    let (on, off) = mode_mask();
    if (on, off) == (0, 0) || data.len() < FUZZ_CTL {
        fuzz_virtio_blk(data);
    } else {
        let mut input = data.to_vec();
        input[0] = (input[0] | on) & !off;
        fuzz_virtio_blk(&input);
    }
});
