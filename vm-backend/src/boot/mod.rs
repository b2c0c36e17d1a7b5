//! Booting Linux: recognising and loading the kernel, the command line, the boot parameters.

pub mod cmdline;
pub mod loader;
pub mod params;
