//! The guest image: an initramfs with the agent as `/init`.

pub mod initramfs;
