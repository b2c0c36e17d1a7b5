//! Fuzzes what a hostile guest controls in the virtio-net device. The body lives in the library
//! (`vm_backend::devices::virtio::testing::fuzz_virtio_net`, where its modes and what counts as a
//! finding are described) so that `cargo test` replays generated inputs through exactly this
//! code; this file only hands libFuzzer's inputs to it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vm_backend::devices::virtio::testing::fuzz_virtio_net;

fuzz_target!(|data: &[u8]| fuzz_virtio_net(data));
