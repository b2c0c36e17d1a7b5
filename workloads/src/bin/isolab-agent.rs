//! isolab-agent: runs one workload and reports. (Being written.)
fn main() {}
