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

#![no_main]

use libfuzzer_sys::fuzz_target;
use vm_backend::devices::virtio::testing::fuzz_virtio_blk;

fuzz_target!(|data: &[u8]| {
    fuzz_virtio_blk(data);
});
