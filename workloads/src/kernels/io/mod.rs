//! The I/O workloads. They share the target handling (a directory gets a scratch file, a block
//! device is used as is) and O_DIRECT-aligned buffers.

pub mod fsync;
pub mod rand;
pub mod seq;

pub use fsync::IoFsyncParams;
pub use rand::IoRandParams;
pub use seq::IoSeqParams;
