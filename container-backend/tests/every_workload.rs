//! `--backend container` must run every workload of the default suite: each kind with its default
//! parameters (I/O pointed at the scratch mount) ends with a valid, successful result; with a
//! user namespace too (`isolab run --userns`). The network workloads talk to a peer on the host
//! side, which the harness runs in its lab network: bench-harness/tests/net.rs runs them in
//! containers.

mod common;

use common::*;
use container_backend::{Runtime, UserNamespace};
use workloads::protocol::parse_framed_result;
use workloads::result::Outcome;
use workloads::spec::WORKLOAD_KINDS;
use workloads::Workload;

fn run_every_kind(rt: &Runtime) {
    let mut failed = Vec::new();
    for kind in WORKLOAD_KINDS {
        let mut w = Workload::default_of_kind(kind).expect("listed kind");
        if w.peer().is_some() {
            continue;
        }
        w.set_io_path(container_backend::SCRATCH_MOUNT);
        let report = rt.run(&agent_request(w)).expect("running the container");
        assert_clean(&report, rt);
        match parse_framed_result(&report.stdout) {
            Ok(r) if r.outcome == Outcome::Ok => {}
            Ok(r) => failed.push(format!("{kind}: {:?}", r.outcome)),
            Err(e) => failed.push(format!(
                "{kind}: {e}; {}; oom {}; {}",
                report.exit, report.out_of_memory, report.stderr_tail
            )),
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn every_workload_kind_runs_in_a_container() {
    let (rt, dir) = agent_runtime("every");
    run_every_kind(&rt);
    finish(rt, dir);
}

#[test]
fn every_workload_kind_runs_in_a_user_namespace() {
    require_root();
    let dir = test_dir("every-userns");
    let ns = UserNamespace::for_current_user();
    // The container's root is an unprivileged id on the host: the scratch directory is its.
    nix::unistd::chown(
        &dir.join("scratch"),
        Some(nix::unistd::Uid::from_raw(ns.uid)),
        Some(nix::unistd::Gid::from_raw(ns.gid)),
    )
    .expect("handing the scratch directory to the container's root");
    let mut c = config(agent(), &dir);
    c.user_namespace = Some(ns);
    let rt = Runtime::new(c).expect("preparing the container runtime with a user namespace");
    run_every_kind(&rt);
    finish(rt, dir);
}
