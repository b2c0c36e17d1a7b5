//! Factors: the settings a run can vary side by side, and the columns they make.
//!
//! A *column* of a run is a backend plus the values of its factors (`container userns=on
//! vcpus=2`). The harness makes one backend instance per column from that column's
//! [`BackendOptions`] and [`SandboxLimits`], prepares it once and routes the column's trials to
//! it, so every column is measured in the same run, interleaved and shuffled like backends
//! (Hoefler and Belli, SC'15: name every factor; Felter et al.: pinning and NAT as named variants
//! of one run, not separate runs with the machine's drift between them).
//!
//! [`REGISTRY`] lists every setting isolab has: its name (the spelling of `--factor NAME=...` and
//! of the suite's `[factors]` table), its values, the backends it applies to, how it sets a
//! column's options or limits, and, for the settings that cannot differ between the columns of
//! one run, why not. A factor is crossed only with the backends it applies to: a native column
//! has no `userns` value.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use workloads::protocol::DiskMode;

use crate::backend::{BackendKind, SandboxLimits};
use crate::backends::BackendOptions;

/// The pseudo-factor that marks the two copies of an A/A check (`--aa`): value [`AA_FIRST`] on
/// the column compared with others, [`AA_SECOND`] on its identical copy.
pub const AA_FACTOR: &str = "aa";
/// The A/A value of the original column.
pub const AA_FIRST: &str = "A";
/// The A/A value of the copy.
pub const AA_SECOND: &str = "A'";

/// What a column's backend is made from: the backend options and the sandbox size.
#[derive(Debug, Clone, Default)]
pub struct ColumnSettings {
    /// Options of the backend instance ([`crate::backends::make_with`]).
    pub options: BackendOptions,
    /// Sandbox size (the container's cgroup limits, the VM's size).
    pub limits: SandboxLimits,
}

/// The values a factor takes.
#[derive(Debug, Clone, Copy)]
pub enum Values {
    /// One of these words; the first spelling of each group is the canonical one, the others
    /// are accepted synonyms (`on` for `true`).
    Words(&'static [&'static [&'static str]]),
    /// An integer in a range, inclusive.
    Integer {
        /// Smallest value.
        min: u64,
        /// Largest value.
        max: u64,
    },
    /// A guest kernel: `micro`, `debian` or the path of a kernel file.
    Kernel,
    /// The path of an existing file or directory.
    Path,
}

impl Values {
    fn describe(&self) -> String {
        match self {
            Values::Words(groups) => groups.iter().map(|g| g[0]).collect::<Vec<_>>().join(" | "),
            Values::Integer { min, max } => format!("an integer from {min} to {max}"),
            Values::Kernel => "micro | debian | PATH of a bzImage or ELF vmlinux".into(),
            Values::Path => "PATH".into(),
        }
    }

    /// The canonical spelling of `value`, or `None` when it is not one of the values.
    fn canonical(&self, value: &str) -> Option<String> {
        let value = value.trim();
        match self {
            Values::Words(groups) => groups
                .iter()
                .find(|g| g.iter().any(|w| w.eq_ignore_ascii_case(value)))
                .map(|g| g[0].to_owned()),
            Values::Integer { min, max } => value
                .parse::<u64>()
                .ok()
                .filter(|v| (*min..=*max).contains(v))
                .map(|v| v.to_string()),
            Values::Kernel => match value {
                "micro" | "debian" => Some(value.to_owned()),
                path if Path::new(path).is_file() => Some(path.to_owned()),
                _ => None,
            },
            Values::Path => Path::new(value).exists().then(|| value.to_owned()),
        }
    }
}

/// One setting isolab has.
#[derive(Debug, Clone, Copy)]
pub struct Factor {
    /// The name in `--factor NAME=...`, in suites and in column labels.
    pub name: &'static str,
    /// What it sets, for `--help` and errors.
    pub about: &'static str,
    /// Its values.
    pub values: Values,
    /// The backends it applies to; other backends are not crossed with it.
    pub applies_to: &'static [BackendKind],
    /// `None` when the columns of one run may differ in it; else why they may not, and what to
    /// do instead.
    pub fixed: Option<&'static str>,
    /// Sets a column's options or limits to a (canonical) value.
    apply: fn(&str, &mut ColumnSettings),
}

const CONTAINER: &[BackendKind] = &[BackendKind::Container];
const VM: &[BackendKind] = &[BackendKind::Vm];
const SANDBOXES: &[BackendKind] = &[
    BackendKind::Container,
    BackendKind::Vm,
    BackendKind::QemuTcg,
];
const ALL: &[BackendKind] = &BackendKind::ALL;

/// Every setting isolab has, in the order column labels name them.
pub const REGISTRY: &[Factor] = &[
    Factor {
        name: "seccomp",
        about: "the container's system-call filter: Docker's default profile, or none; \
                `--seccomp`",
        values: Values::Words(&[&["docker"], &["off"]]),
        applies_to: CONTAINER,
        fixed: None,
        apply: |v, s| {
            s.options.seccomp = container_backend::SeccompProfile::from_name(v)
                .unwrap_or(container_backend::SeccompProfile::Docker)
        },
    },
    Factor {
        name: "container-net",
        about: "how a container's network workloads reach the peer: a veth pair into its own \
                network namespace (Docker's bridge path) or the lab namespace itself (no \
                namespace of its own, like native); `--container-net`",
        values: Values::Words(&[&["veth"], &["host"]]),
        applies_to: CONTAINER,
        fixed: None,
        apply: |v, s| {
            s.options.container_net = crate::lab_net::ContainerNet::from_name(v).unwrap_or_default()
        },
    },
    Factor {
        name: "userns",
        about: "containers in a user namespace (root inside is an unprivileged id outside); \
                `--userns`",
        values: Values::Words(&[&["off", "false", "no", "0"], &["on", "true", "yes", "1"]]),
        applies_to: CONTAINER,
        fixed: None,
        apply: |v, s| s.options.user_namespace = v == "on",
    },
    Factor {
        name: "vcpus",
        about: "vCPUs of each VM and CPU limit (cores) of each container; `--vcpus`",
        values: Values::Integer { min: 1, max: 64 },
        applies_to: SANDBOXES,
        fixed: None,
        apply: |v, s| {
            if let Ok(n) = v.parse() {
                s.limits.vcpus = n;
            }
        },
    },
    Factor {
        name: "memory-mib",
        about: "RAM of each VM and memory limit of each container, MiB; `--memory-mib`",
        values: Values::Integer {
            min: 64,
            max: 1 << 20,
        },
        applies_to: SANDBOXES,
        fixed: None,
        apply: |v, s| {
            if let Ok(n) = v.parse() {
                s.limits.memory_mib = n;
            }
        },
    },
    Factor {
        name: "pids-max",
        about: "process limit of each container (pids controller); the suite's `limits.pids_max`",
        values: Values::Integer {
            min: 16,
            max: 1 << 22,
        },
        applies_to: CONTAINER,
        fixed: None,
        apply: |v, s| {
            if let Ok(n) = v.parse() {
                s.limits.pids_max = n;
            }
        },
    },
    Factor {
        name: "vm-disk",
        about: "how the VM's I/O workloads use their virtio-blk disk (ext4 on it, or the raw \
                device); `--vm-disk`",
        values: Values::Words(&[&["ext4"], &["raw"]]),
        applies_to: VM,
        fixed: None,
        apply: |v, s| s.options.vm_disk = DiskMode::parse(v),
    },
    Factor {
        name: "vm-seccomp",
        about: "the VMM process's seccomp filters (one per thread kind), or none; `--vm-seccomp`",
        values: Values::Words(&[&["on"], &["off"], &["log"]]),
        applies_to: VM,
        fixed: None,
        apply: |v, s| {
            s.options.vm_seccomp = vm_backend::seccomp::SeccompMode::parse(v).unwrap_or_default()
        },
    },
    Factor {
        name: "vm-jail",
        about: "each VMM process in a jail (namespaces, chroot, own cgroup, unprivileged user); \
                `--vm-jail`",
        values: Values::Words(&[&["off", "false", "no", "0"], &["on", "true", "yes", "1"]]),
        applies_to: VM,
        fixed: None,
        apply: |v, s| s.options.vm_jail = v == "on",
    },
    Factor {
        name: "vm-memory",
        about: "how the VM's guest RAM is backed on the host: transparent huge pages \
                (2 MiB-aligned), reserved hugetlbfs pages, or small pages only; `--vm-memory`",
        values: Values::Words(&[&["thp"], &["hugetlbfs"], &["small"]]),
        applies_to: VM,
        fixed: None,
        apply: |v, s| s.options.vm_memory = vm_backend::vstate::memory::MemoryBacking::parse(v),
    },
    Factor {
        name: "vm-acpi",
        about: "how the VM describes its devices to the guest kernel: ACPI tables and the \
                command line, ACPI only, or the command line only; `--vm-acpi`",
        values: Values::Words(&[&["auto"], &["on"], &["off"]]),
        applies_to: VM,
        fixed: None,
        apply: |v, s| s.options.vm_acpi = vm_backend::vmm::AcpiMode::parse(v),
    },
    Factor {
        name: "vm-net-offload",
        about: "checksum and TCP segmentation offloads offered by the VM's virtio-net card (and \
                set on its tap), or none; `--vm-net-offload`",
        values: Values::Words(&[&["on", "true", "yes", "1"], &["off", "false", "no", "0"]]),
        applies_to: VM,
        fixed: None,
        apply: |v, s| s.options.vm_net_offload = Some(matches!(v, "on" | "true" | "yes" | "1")),
    },
    Factor {
        name: "kernel",
        about: "the VM's guest kernel; `--kernel`",
        values: Values::Kernel,
        applies_to: VM,
        fixed: None,
        apply: |v, s| {
            s.options.vm_kernel = (v != "micro").then(|| PathBuf::from(v));
        },
    },
    Factor {
        name: "vm-in-emulator",
        about: "run the VM inside the emulated AMD-V machine; `--vm-in-emulator`",
        values: Values::Words(&[&["off", "false", "no", "0"], &["on", "true", "yes", "1"]]),
        applies_to: VM,
        fixed: Some(
            "emulated VM samples are correctness data whose times are not performance figures, so \
             an emulated column and a real VM column have no meaningful ratio; run the VM in the \
             emulator with `--vm-in-emulator` in a run of its own",
        ),
        apply: |v, s| s.options.vm_in_emulator = v == "on",
    },
    Factor {
        name: "agent",
        about: "the agent binary; `--agent`",
        values: Values::Path,
        applies_to: ALL,
        fixed: Some(
            "a different agent is a different build of the workloads, and every column of a run \
             runs the same agent (its hash is in the manifest); make one run per build and \
             compare them with `isolab compare`",
        ),
        apply: |_, _| {},
    },
    Factor {
        name: "io-dir",
        about: "the filesystem of the I/O workloads' files; `--io-dir`",
        values: Values::Path,
        applies_to: ALL,
        fixed: Some(
            "the I/O scratch filesystem is host-wide state shared by every column of a run (it \
             is also where the VM's disk images live); make one run per filesystem and compare \
             them with `isolab compare`",
        ),
        apply: |_, _| {},
    },
    Factor {
        name: "console",
        about: "show the sandboxes' consoles live; `--console`",
        values: Values::Words(&[&["off"], &["on"]]),
        applies_to: ALL,
        fixed: Some("the console is a display option, not a setting that changes a measurement"),
        apply: |_, _| {},
    },
];

/// The factor named `name`.
pub fn find(name: &str) -> Option<&'static Factor> {
    REGISTRY.iter().find(|f| f.name == name)
}

/// The factors that can vary within a run, one line each, for `--help` and errors.
pub fn describe_registry() -> String {
    let mut o = String::new();
    for f in REGISTRY.iter().filter(|f| f.fixed.is_none()) {
        let backends: Vec<&str> = f.applies_to.iter().map(|b| b.name()).collect();
        let _ = writeln!(
            o,
            "  {}={} ({}): {}",
            f.name,
            f.values.describe(),
            backends.join(", "),
            f.about
        );
    }
    o
}

/// A factor and the values a run gives it; the first value is the reference level of the
/// factor's effects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactorLevels {
    /// The factor's name ([`Factor::name`]).
    pub name: String,
    /// Its values, canonical spelling, in the order given.
    pub values: Vec<String>,
}

/// A factor specification that cannot be used. Messages say what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FactorError {
    /// Not `NAME=V1,V2`.
    #[error("--factor {0:?}: write NAME=VALUE[,VALUE...], e.g. --factor userns=off,on")]
    Syntax(String),
    /// No such setting.
    #[error("unknown factor {name:?}; the settings a run can vary are:\n{known}")]
    Unknown {
        /// The name given.
        name: String,
        /// The registry, one line per factor.
        known: String,
    },
    /// A setting that cannot differ between the columns of one run.
    #[error("{name} cannot vary within one run: {why}")]
    Fixed {
        /// The factor.
        name: String,
        /// Why not, and what to do.
        why: String,
    },
    /// A value the factor does not take.
    #[error("factor {name}: {value:?} is not a value of it; use {expected}")]
    BadValue {
        /// The factor.
        name: String,
        /// The value given.
        value: String,
        /// What it takes.
        expected: String,
    },
    /// The same factor twice, or the same value twice.
    #[error(
        "factor {name} is given more than once{detail}; give each factor once with all its values"
    )]
    Duplicate {
        /// The factor.
        name: String,
        /// Which value was repeated, if that was it.
        detail: String,
    },
    /// None of the run's backends has the setting.
    #[error("factor {name} applies to {applies} only, and this run has none of them (its backends: {run}); add one with --backend")]
    NotApplicable {
        /// The factor.
        name: String,
        /// The backends it applies to.
        applies: String,
        /// The run's backends.
        run: String,
    },
    /// `--aa` names no column of the run.
    #[error("--aa {spec:?}: {why}")]
    Aa {
        /// The specification given.
        spec: String,
        /// What is wrong.
        why: String,
    },
    /// More columns than a run can sensibly interleave.
    #[error("{0} columns: more than {MAX_COLUMNS}; vary fewer factors or fewer values at once")]
    TooMany(usize),
}

/// The most columns one run may have (each is a prepared backend instance, and every repetition
/// runs every column once per workload).
pub const MAX_COLUMNS: usize = 64;

/// Parses `NAME=V1,V2,...` (the `--factor` argument) and checks it against the registry.
pub fn parse_arg(arg: &str) -> Result<FactorLevels, FactorError> {
    let (name, values) = arg
        .split_once('=')
        .ok_or_else(|| FactorError::Syntax(arg.to_owned()))?;
    let values: Vec<String> = values.split(',').map(|v| v.trim().to_owned()).collect();
    if name.trim().is_empty() || values.iter().any(String::is_empty) {
        return Err(FactorError::Syntax(arg.to_owned()));
    }
    check(&FactorLevels {
        name: name.trim().to_owned(),
        values,
    })
}

/// Checks a factor against the registry: it exists, may vary within a run, and every value is
/// one of its values (given once). Returns the canonical spelling.
pub fn check(levels: &FactorLevels) -> Result<FactorLevels, FactorError> {
    let name = levels.name.clone();
    let Some(f) = find(&name) else {
        return Err(FactorError::Unknown {
            name,
            known: describe_registry(),
        });
    };
    if let Some(why) = f.fixed {
        return Err(FactorError::Fixed {
            name,
            why: why.into(),
        });
    }
    if levels.values.is_empty() {
        return Err(FactorError::Syntax(format!("{name}=")));
    }
    let mut values: Vec<String> = Vec::new();
    for v in &levels.values {
        let c = f.values.canonical(v).ok_or_else(|| FactorError::BadValue {
            name: name.clone(),
            value: v.clone(),
            expected: f.values.describe(),
        })?;
        if values.contains(&c) {
            return Err(FactorError::Duplicate {
                name: name.clone(),
                detail: format!(" (value {c} twice)"),
            });
        }
        values.push(c);
    }
    Ok(FactorLevels { name, values })
}

/// Checks a run's factors together: each known, variable, given once, and applying to at least
/// one of `backends`.
pub fn check_all(
    factors: &[FactorLevels],
    backends: &[BackendKind],
) -> Result<Vec<FactorLevels>, FactorError> {
    let mut out: Vec<FactorLevels> = Vec::new();
    for levels in factors {
        let c = check(levels)?;
        if out.iter().any(|o| o.name == c.name) {
            return Err(FactorError::Duplicate {
                name: c.name,
                detail: String::new(),
            });
        }
        let f = find(&c.name).ok_or_else(|| FactorError::Syntax(c.name.clone()))?;
        if !backends.iter().any(|b| f.applies_to.contains(b)) {
            return Err(FactorError::NotApplicable {
                name: c.name,
                applies: names(f.applies_to),
                run: names(backends),
            });
        }
        out.push(c);
    }
    Ok(out)
}

fn names(kinds: &[BackendKind]) -> String {
    kinds
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether factor `name` applies to `backend` (the A/A marker applies to every backend).
pub fn applies(name: &str, backend: BackendKind) -> bool {
    name == AA_FACTOR || find(name).is_some_and(|f| f.applies_to.contains(&backend))
}

/// One column of a run: a backend and the values of its factors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// `container userns=on vcpus=2` ([`label`]).
    pub label: String,
    /// The backend.
    pub backend: BackendKind,
    /// Its factor values (only the factors that apply to its backend, plus [`AA_FACTOR`] for the
    /// two copies of an A/A check).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub factors: BTreeMap<String, String>,
}

impl Column {
    /// The settings of this column: `base` with its factor values applied.
    pub fn settings(&self, base: &ColumnSettings) -> ColumnSettings {
        let mut s = base.clone();
        for (name, value) in &self.factors {
            if let Some(f) = find(name) {
                (f.apply)(value, &mut s);
            }
        }
        s
    }

    /// Whether this is the copy of an A/A check (left out of factor effects).
    pub fn is_aa_copy(&self) -> bool {
        self.factors.get(AA_FACTOR).map(String::as_str) == Some(AA_SECOND)
    }
}

/// The label of a column: the backend, then `name=value` for each factor (by name), then `A` or
/// `A'` for the copies of an A/A check. The label alone identifies a column in samples, reports
/// and comparisons.
pub fn label(backend: &str, factors: &BTreeMap<String, String>) -> String {
    let mut s = backend.to_owned();
    for (k, v) in factors.iter().filter(|(k, _)| *k != AA_FACTOR) {
        let _ = write!(s, " {k}={v}");
    }
    if let Some(a) = factors.get(AA_FACTOR) {
        let _ = write!(s, " {a}");
    }
    s
}

/// The columns of a run: for each backend (in the order given) every combination of the values
/// of the factors that apply to it (the first factor varying slowest), then the A/A copy after
/// the column `aa` names.
pub fn columns(
    backends: &[BackendKind],
    factors: &[FactorLevels],
    aa: Option<&str>,
) -> Result<Vec<Column>, FactorError> {
    let mut cols = Vec::new();
    for &b in backends {
        let mine: Vec<&FactorLevels> = factors.iter().filter(|f| applies(&f.name, b)).collect();
        let mut combos: Vec<BTreeMap<String, String>> = vec![BTreeMap::new()];
        for f in &mine {
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    f.values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.insert(f.name.clone(), v.clone());
                        c
                    })
                })
                .collect();
        }
        cols.extend(combos.into_iter().map(|factors| Column {
            label: label(b.name(), &factors),
            backend: b,
            factors,
        }));
    }
    if let Some(spec) = aa {
        add_aa_copy(&mut cols, factors, spec)?;
    }
    if cols.len() > MAX_COLUMNS {
        return Err(FactorError::TooMany(cols.len()));
    }
    Ok(cols)
}

/// Marks the column `spec` names as A and inserts its copy A' after it. `spec` is `BACKEND` or
/// `BACKEND:NAME=VALUE[,NAME=VALUE]`; factors it leaves out take their first value.
fn add_aa_copy(
    cols: &mut Vec<Column>,
    factors: &[FactorLevels],
    spec: &str,
) -> Result<(), FactorError> {
    let err = |why: String| FactorError::Aa {
        spec: spec.to_owned(),
        why,
    };
    let (backend, rest) = spec.split_once(':').unwrap_or((spec, ""));
    let kind = BackendKind::from_name(backend.trim()).ok_or_else(|| {
        err(format!(
            "unknown backend {backend:?}; write BACKEND or BACKEND:FACTOR=VALUE,..., e.g. --aa native"
        ))
    })?;
    let mut want: BTreeMap<String, String> = BTreeMap::new();
    for f in factors.iter().filter(|f| applies(&f.name, kind)) {
        if let Some(first) = f.values.first() {
            want.insert(f.name.clone(), first.clone());
        }
    }
    for pair in rest.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| err(format!("{pair:?} is not FACTOR=VALUE")))?;
        let name = name.trim();
        let f = factors.iter().find(|f| f.name == name).ok_or_else(|| {
            err(format!(
                "{name} is not a factor of this run; name a column by the factors given with --factor"
            ))
        })?;
        if !applies(name, kind) {
            return Err(err(format!("{name} does not apply to {kind}")));
        }
        let value = find(name)
            .and_then(|d| d.values.canonical(value))
            .filter(|v| f.values.contains(v))
            .ok_or_else(|| {
                err(format!(
                    "{name}={value} is not one of this run's values ({})",
                    f.values.join(", ")
                ))
            })?;
        want.insert(name.to_owned(), value);
    }
    let pos = cols
        .iter()
        .position(|c| c.backend == kind && c.factors == want)
        .ok_or_else(|| {
            err(format!(
                "the run has no {kind} column; add it with --backend"
            ))
        })?;
    let mut a = cols[pos].clone();
    a.factors.insert(AA_FACTOR.into(), AA_FIRST.into());
    a.label = label(kind.name(), &a.factors);
    let mut copy = a.clone();
    copy.factors.insert(AA_FACTOR.into(), AA_SECOND.into());
    copy.label = label(kind.name(), &copy.factors);
    cols[pos] = a;
    cols.insert(pos + 1, copy);
    Ok(())
}

/// Which factors apply to which backend of a run, for the summary: `(factor, values, backends)`.
pub fn scope(
    factors: &[FactorLevels],
    backends: &[BackendKind],
) -> Vec<(String, Vec<String>, Vec<String>)> {
    factors
        .iter()
        .map(|f| {
            let on: Vec<String> = backends
                .iter()
                .filter(|b| applies(&f.name, **b))
                .map(|b| b.name().to_owned())
                .collect();
            (f.name.clone(), f.values.clone(), on)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(name: &str, values: &[&str]) -> FactorLevels {
        FactorLevels {
            name: name.into(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    #[test]
    fn arguments_parse_to_canonical_values() {
        assert_eq!(
            parse_arg("userns=false,true").unwrap(),
            lv("userns", &["off", "on"])
        );
        assert_eq!(parse_arg("vcpus=1, 2").unwrap(), lv("vcpus", &["1", "2"]));
        assert_eq!(
            parse_arg("vm-disk=raw,ext4").unwrap(),
            lv("vm-disk", &["raw", "ext4"])
        );
        assert!(matches!(parse_arg("vcpus"), Err(FactorError::Syntax(_))));
        assert!(matches!(parse_arg("vcpus=1,"), Err(FactorError::Syntax(_))));
        let e = parse_arg("seccompx=on").unwrap_err();
        assert!(e.to_string().contains("userns=off | on"), "{e}");
        assert!(matches!(
            parse_arg("vcpus=0,2"),
            Err(FactorError::BadValue { .. })
        ));
        assert!(matches!(
            parse_arg("userns=on,true"),
            Err(FactorError::Duplicate { .. })
        ));
        assert!(matches!(
            parse_arg("kernel=micro,/nonexistent/bzImage"),
            Err(FactorError::BadValue { .. })
        ));
    }

    #[test]
    fn settings_that_cannot_vary_are_refused_with_the_reason() {
        for (arg, why) in [
            ("vm-in-emulator=off,on", "emulated"),
            ("agent=/a,/b", "build"),
            ("io-dir=/a,/b", "host-wide"),
            ("console=off,on", "display"),
        ] {
            let e = parse_arg(arg).unwrap_err();
            assert!(matches!(e, FactorError::Fixed { .. }), "{arg}: {e}");
            assert!(e.to_string().contains(why), "{arg}: {e}");
        }
    }

    /// The two-factor check: seccomp and userns on the container give four columns, each
    /// with its settings.
    #[test]
    fn seccomp_and_userns_make_four_container_columns() {
        use container_backend::SeccompProfile;
        let f = vec![
            parse_arg("seccomp=docker,off").unwrap(),
            parse_arg("userns=off,on").unwrap(),
        ];
        let b = [BackendKind::Native, BackendKind::Container];
        let cols = columns(&b, &check_all(&f, &b).unwrap(), None).unwrap();
        let labels: Vec<&str> = cols.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "native",
                "container seccomp=docker userns=off",
                "container seccomp=docker userns=on",
                "container seccomp=off userns=off",
                "container seccomp=off userns=on",
            ]
        );
        let base = ColumnSettings::default();
        assert_eq!(
            cols[1].settings(&base).options.seccomp,
            SeccompProfile::Docker
        );
        let off = cols[4].settings(&base);
        assert_eq!(off.options.seccomp, SeccompProfile::Off);
        assert!(off.options.user_namespace);
        assert!(parse_arg("seccomp=strict").is_err());
    }

    #[test]
    fn factors_cross_only_with_the_backends_they_apply_to() {
        let f = vec![lv("userns", &["off", "on"]), lv("vcpus", &["1", "2"])];
        let all = [BackendKind::Native, BackendKind::Container, BackendKind::Vm];
        let cols = columns(&all, &check_all(&f, &all).unwrap(), None).unwrap();
        let labels: Vec<&str> = cols.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "native",
                "container userns=off vcpus=1",
                "container userns=off vcpus=2",
                "container userns=on vcpus=1",
                "container userns=on vcpus=2",
                "vm vcpus=1",
                "vm vcpus=2",
            ]
        );
        let base = ColumnSettings::default();
        let s = cols[4].settings(&base);
        assert!(s.options.user_namespace);
        assert_eq!(s.limits.vcpus, 2);
        let s = cols[5].settings(&base);
        assert!(!s.options.user_namespace);
        assert_eq!(s.limits.vcpus, 1);
        let e = check_all(&[lv("userns", &["on"])], &[BackendKind::Native]).unwrap_err();
        assert!(e.to_string().contains("container"), "{e}");
        let e = check_all(
            &[lv("vcpus", &["1"]), lv("vcpus", &["2"])],
            &[BackendKind::Vm],
        )
        .unwrap_err();
        assert!(matches!(e, FactorError::Duplicate { .. }), "{e}");
    }

    #[test]
    fn aa_copies_the_named_column_next_to_it() {
        let f = vec![lv("userns", &["off", "on"])];
        let b = [BackendKind::Native, BackendKind::Container];
        let cols = columns(&b, &f, Some("native")).unwrap();
        let labels: Vec<&str> = cols.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "native A",
                "native A'",
                "container userns=off",
                "container userns=on"
            ]
        );
        assert!(cols[1].is_aa_copy() && !cols[0].is_aa_copy());
        let cols = columns(&b, &f, Some("container:userns=on")).unwrap();
        assert_eq!(cols[2].label, "container userns=on A");
        assert_eq!(cols[3].label, "container userns=on A'");
        // Unnamed factors take their first value.
        let cols = columns(&b, &f, Some("container")).unwrap();
        assert_eq!(cols[1].label, "container userns=off A");
        for bad in [
            "vm",
            "container:userns=maybe",
            "container:vcpus=2",
            "docker",
        ] {
            assert!(
                matches!(columns(&b, &f, Some(bad)), Err(FactorError::Aa { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn too_many_columns_are_refused() {
        let f = vec![
            lv("vcpus", &["1", "2", "3", "4", "5", "6", "7", "8"]),
            lv("memory-mib", &["64", "128", "256", "512", "1024"]),
            lv("userns", &["off", "on"]),
        ];
        let e = columns(&[BackendKind::Container], &f, None).unwrap_err();
        assert_eq!(e, FactorError::TooMany(80));
    }
}
