//! How the VMM's report crosses the pipe: the names the VMM uses as `&'static str` (timeline
//! points, exit reasons, vCPU states) are read back as the same kind of name ([`intern`]). The set of names
//! is small and fixed by the VMM's code; a VMM process that sent endless new names (it runs a
//! hostile guest, so the host does not trust it) gets them folded into one after
//! [`MAX_NAMES`], so the host's memory stays bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// Most distinct names the host keeps.
pub const MAX_NAMES: usize = 1024;
/// Longest name kept; longer ones are cut.
pub const MAX_NAME_LEN: usize = 64;
/// What a name past [`MAX_NAMES`] becomes.
pub const OTHER_NAME: &str = "other";

static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

/// The `&'static str` for `name`: one leaked copy per distinct name, at most [`MAX_NAMES`].
pub fn intern(name: &str) -> &'static str {
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    intern_into(&mut names, name, MAX_NAMES)
}

fn intern_into(names: &mut BTreeSet<&'static str>, name: &str, max: usize) -> &'static str {
    let name = match name.char_indices().nth(MAX_NAME_LEN) {
        Some((cut, _)) => &name[..cut],
        None => name,
    };
    if let Some(known) = names.get(name) {
        return known;
    }
    if names.len() >= max {
        return OTHER_NAME;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// `#[serde(with)]` for a map keyed by `&'static str` names.
pub mod static_keys {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes the map.
    pub fn serialize<S: Serializer>(
        v: &BTreeMap<&'static str, u64>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    /// Reads it back with interned keys (counts of folded names add up).
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<&'static str, u64>, D::Error> {
        let raw = BTreeMap::<String, u64>::deserialize(d)?;
        Ok(super::fold(raw))
    }
}

fn fold(raw: BTreeMap<String, u64>) -> BTreeMap<&'static str, u64> {
    let mut out = BTreeMap::new();
    for (k, v) in raw {
        let e: &mut u64 = out.entry(intern(&k)).or_insert(0);
        *e = e.saturating_add(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_interned_once_and_bounded() {
        let a = intern("io_out.serial");
        let b = intern(&String::from("io_out.serial"));
        assert!(std::ptr::eq(a, b));
        let long = "x".repeat(500);
        assert_eq!(intern(&long).len(), MAX_NAME_LEN);
        let folded = fold(BTreeMap::from([
            ("mmio_read".to_owned(), 2),
            ("mmio_read".to_owned() + "", 3),
        ]));
        assert_eq!(folded.get("mmio_read"), Some(&3));
        // A flood of distinct names, on a set of its own (the process-wide one stays usable).
        let mut names = BTreeSet::new();
        for i in 0..20 {
            let _ = intern_into(&mut names, &format!("flood-{i}"), 8);
        }
        assert_eq!(names.len(), 8);
        assert_eq!(intern_into(&mut names, "flood-0", 8), "flood-0");
        assert_eq!(intern_into(&mut names, "flood-19", 8), OTHER_NAME);
    }
}
