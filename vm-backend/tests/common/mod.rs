//! What the HVM tests share: the `vmm-run` example they put into L1, the kernel command-line words
//! that hand the agent its workload, and the VMM's report as `vmm-run` prints it.
// Each test binary uses its own subset.
#![allow(dead_code)]

use std::path::PathBuf;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use workloads::protocol::{encode_spec, MARKER_PORT};
use workloads::{Workload, WorkloadSpec};

/// An example binary built next to this test (`cargo test` builds them).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join("examples").join(name);
    assert!(
        p.is_file(),
        "{} is missing: build it with `cargo build -p vm_backend --example {name}`",
        p.display()
    );
    p
}

/// The kernel command-line words for the agent: the marker port, the disk mode if any, the spec.
pub fn words(workload: Workload, disk: Option<&str>) -> String {
    let spec = WorkloadSpec::new(workload);
    format!(
        "isolab.marker=port:{MARKER_PORT:#x}{} isolab.spec={}",
        disk.map(|d| format!(" isolab.disk={d}"))
            .unwrap_or_default(),
        encode_spec(&spec).expect("encode")
    )
}

/// The JSON report `vmm-run` printed (`ISOLAB-VMM-REPORT:<len>:<base64url>`), checked for damage
/// on L1's console.
pub fn report(output: &str) -> Option<Value> {
    let line = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("ISOLAB-VMM-REPORT:"))?;
    let (len, b64) = line.split_once(':')?;
    let json = URL_SAFE_NO_PAD.decode(b64.trim()).ok()?;
    assert_eq!(json.len(), len.parse::<usize>().ok()?, "report damaged");
    serde_json::from_slice(&json).ok()
}
