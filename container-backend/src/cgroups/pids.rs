//! The pids controller: a process limit (what stops a fork bomb) and how often it was hit.

use super::{parse_flat_keyed, Write};

/// Both versions: `max N` counts forks refused at the limit.
pub(crate) const EVENTS: &str = "pids.events";

/// What to write (the same file on v1 and v2).
pub(crate) fn limit(max: u64) -> Vec<Write> {
    vec![Write::new("pids.max", max.to_string())]
}

/// Forks refused because the limit was reached.
pub(crate) fn parse_limit_hits(events: &str) -> u64 {
    parse_flat_keyed(events)
        .into_iter()
        .find(|(k, _)| *k == "max")
        .map_or(0, |(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_and_events() {
        assert_eq!(limit(64), [Write::new("pids.max", "64")]);
        assert_eq!(parse_limit_hits("max 17\n"), 17);
        assert_eq!(parse_limit_hits("max 0\nmax.imposed 0\n"), 0);
    }
}
