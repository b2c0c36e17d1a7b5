//! The cgroup cannot be created: a typed error, and nothing left behind. On cgroup v1 (as root)
//! the cgroup is made after the clone while the child sets itself up, so this is the path where
//! the parent must abort the child waiting at the gate and reap it.
//!
//! Its own test binary (its own pid, so its own cgroup names): it blocks every cgroup name this
//! process could use, which would break any other test running beside it.

mod common;

use std::path::PathBuf;

use common::*;
use container_backend::{CgroupVersion, ContainerError, Runtime};

#[test]
fn a_cgroup_that_cannot_be_created_is_a_typed_error_and_leaves_nothing() {
    require_root();
    let dir = test_dir("cgroup-create-fails");
    let mut rt = Runtime::new(config(agent(), &dir)).expect("runtime");
    // Occupy the names this process's next runs would take, in the pids hierarchy (v1) or the
    // unified one (v2): creating the trial cgroup then fails with EEXIST.
    let root = match rt.cgroup_version() {
        CgroupVersion::V1 => PathBuf::from("/sys/fs/cgroup/pids"),
        CgroupVersion::V2 => PathBuf::from("/sys/fs/cgroup"),
    };
    let prefix = format!("isolab-{}-", std::process::id());
    let blockers: Vec<PathBuf> = (0..64).map(|n| root.join(format!("{prefix}{n}"))).collect();
    for b in &blockers {
        std::fs::create_dir(b).expect("creating a blocking cgroup");
    }
    let result = rt.run(&agent_request(workloads::Workload::Noop));
    for b in &blockers {
        std::fs::remove_dir(b).expect("removing a blocking cgroup");
    }
    let err = result.expect_err("a run whose cgroup cannot be created");
    assert!(
        matches!(err, ContainerError::Cgroup { .. }),
        "expected a cgroup error, got {err}"
    );
    assert!(err.to_string().contains(&prefix), "names the cgroup: {err}");
    // The child (on v1 already cloned and waiting at the gate) is gone, and so is every
    // directory the failed creation made in the other hierarchies.
    assert_eq!(container_backend::running_containers(), 0);
    for h in ["memory", "cpu", "cpuacct", "pids", "blkio", ""] {
        let hier = PathBuf::from("/sys/fs/cgroup").join(h);
        let left: Vec<_> = std::fs::read_dir(&hier)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
    // No child of ours is left, not even a zombie: no process has us as its parent.
    let me = std::process::id().to_string();
    let children: Vec<String> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter(|status| {
            status
                .lines()
                .any(|l| l.strip_prefix("PPid:").is_some_and(|p| p.trim() == me))
        })
        .collect();
    assert!(children.is_empty(), "children left: {children:?}");
    // And the runtime still works once the names are free again.
    let ok = rt.run(&agent_request(workloads::Workload::Noop));
    assert!(ok.is_ok(), "a run after the failure: {:?}", ok.err());
    rt.cleanup().expect("cleanup");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
