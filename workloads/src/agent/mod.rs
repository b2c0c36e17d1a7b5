//! The agent's duties around a workload: finding its spec, markers, PID-1 housekeeping, reporting.
//! (Being written.)
