//! `--backend container` must run every workload of the default suite: each kind with its default
//! parameters (I/O pointed at the scratch mount) ends with a valid, successful result.

mod common;

use common::*;
use workloads::protocol::parse_framed_result;
use workloads::result::Outcome;
use workloads::spec::WORKLOAD_KINDS;
use workloads::Workload;

#[test]
fn every_workload_kind_runs_in_a_container() {
    let (rt, dir) = agent_runtime("every");
    let mut failed = Vec::new();
    for kind in WORKLOAD_KINDS {
        let mut w = Workload::default_of_kind(kind).expect("listed kind");
        w.set_io_path(container_backend::SCRATCH_MOUNT);
        let report = rt.run(&agent_request(w)).expect("running the container");
        assert_clean(&report, &rt);
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
    finish(rt, dir);
}
