//! Wall-clock and monotonic time helpers.

use std::time::SystemTime;

/// Now on CLOCK_MONOTONIC, in nanoseconds. The same clock (and the same function) the agent
/// uses, natively and in a container, so host and agent timestamps share one timeline.
pub use workloads::agent::monotonic_ns;

/// Current UTC time as RFC 3339 with seconds, e.g. `2026-12-06T07:19:07Z`.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// A run identifier `<prefix><time>` for a folder that does not exist yet in `out`
/// (`<prefix><time>-2`, `-3`, ... when runs start in the same second).
pub fn fresh_run_id(out: &std::path::Path, prefix: &str) -> String {
    let mut id = format!("{prefix}{}", run_id_now());
    for n in 2.. {
        if !out.join(&id).exists() {
            break;
        }
        id = format!("{prefix}{}-{n}", run_id_now());
    }
    id
}

/// A run identifier from the current UTC time, usable as a directory name: `20261206-071907`.
pub fn run_id_now() -> String {
    now_rfc3339()
        .chars()
        .filter_map(|c| match c {
            '-' | ':' | 'Z' => None,
            'T' => Some('-'),
            c => Some(c),
        })
        .collect()
}
