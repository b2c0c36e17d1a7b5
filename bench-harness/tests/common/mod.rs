//! What the report and book tests share: a synthetic run turned into one with factor columns and
//! an A/A check.
#![allow(missing_docs, clippy::unwrap_used, dead_code)]

pub mod browser;

use std::collections::BTreeMap;

use bench_harness::factors::FactorLevels;
use bench_harness::manifest::ColumnState;
use bench_harness::store::StoredRun;

/// `run` as `isolab run --factor userns=off,on --aa native` records it: every native sample
/// becomes column `native A` plus a copy in `native A'` whose values are `aa_scale` times as
/// large, every container sample `container userns=off` plus a copy in `container userns=on`
/// `userns_scale` times as large. Other samples stay as they are.
pub fn with_factor_and_aa(mut run: StoredRun, aa_scale: f64, userns_scale: f64) -> StoredRun {
    run.manifest.suite.factors = vec![FactorLevels {
        name: "userns".into(),
        values: vec!["off".into(), "on".into()],
    }];
    run.manifest.suite.aa = Some("native".into());
    run.manifest.columns = run
        .manifest
        .suite
        .columns()
        .unwrap()
        .into_iter()
        .map(|column| ColumnState {
            column,
            available: true,
            note: None,
            facts: BTreeMap::new(),
        })
        .collect();
    let mut samples = Vec::new();
    for mut s in std::mem::take(&mut run.samples) {
        let (name, first, second, scale) = match s.backend.as_str() {
            "native" => ("aa", "A", "A'", aa_scale),
            "container" => ("userns", "off", "on", userns_scale),
            _ => {
                samples.push(s);
                continue;
            }
        };
        s.factors.insert(name.into(), first.into());
        let mut copy = s.clone();
        copy.factors.insert(name.into(), second.into());
        for m in &mut copy.metrics {
            m.value *= scale;
        }
        samples.push(s);
        samples.push(copy);
    }
    for (i, s) in samples.iter_mut().enumerate() {
        s.trial = i;
    }
    run.manifest.planned_trials = samples.len();
    run.samples = samples;
    run
}

/// `isolab run --suite SUITE --out OUT --io-dir IO --seed SEED` with the agent of this build and
/// no stdin, as the tests that start real runs call it.
pub fn isolab_run(
    suite: &std::path::Path,
    out: &std::path::Path,
    io: &std::path::Path,
    seed: u64,
) -> std::process::Command {
    let agent = workloads::locate::locate_agent(None).unwrap_or_else(|e| panic!("{e}"));
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_isolab"));
    c.args(["run", "--suite"])
        .arg(suite)
        .arg("--out")
        .arg(out)
        .arg("--io-dir")
        .arg(io)
        .args(["--seed", &seed.to_string()])
        .env("ISOLAB_AGENT", agent)
        .stdin(std::process::Stdio::null());
    c
}
