//! `noop`: starts and ends. The start-up probe: everything measured is the sandbox's cost.

use crate::result::Metric;

/// Does nothing and reports nothing.
pub fn run() -> Vec<Metric> {
    Vec::new()
}
