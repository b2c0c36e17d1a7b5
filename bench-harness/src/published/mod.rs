//! Published figures that isolab's suites replicate, with their sources.
//!
//! A suite says which of its workloads stands for which row of a published table
//! (`[replicates.felter2014]`, see `suites/felter.toml`); the reports then print the published
//! ratios to native beside the ones measured in the run ([`crate::report`]). The published numbers
//! are quoted from their authors' own data, cited to the file and cell, and never presented as
//! measurements of this host.

mod felter2014;

use serde::Serialize;
use workloads::{Better, Workload};

use crate::backend::BackendKind;

pub use felter2014::FELTER_2014;

/// A published comparison of native, container and VM execution.
#[derive(Debug, Serialize)]
pub struct Study {
    /// The name suites use (`[replicates.felter2014]`).
    pub id: &'static str,
    /// Short citation for table captions.
    pub short: &'static str,
    /// The full reference.
    pub citation: &'static str,
    /// Where the figures were taken from, to the commit.
    pub data_source: &'static str,
    /// What the study ran, for the reader who compares.
    pub setup: &'static str,
    /// The study's two sandboxes and the isolab backends that stand for them, in that order.
    pub sandboxes: [(&'static str, BackendKind); 2],
    /// The rows of its table, in its order.
    pub rows: &'static [Row],
}

/// One published benchmark result: native and the two sandboxes.
#[derive(Debug, Serialize)]
pub struct Row {
    /// The name suites use (`linpack = "cpu.matmul_gflops"`).
    pub id: &'static str,
    /// Its short name in tables (`Linpack`, `fio rand. read QD128`).
    pub name: &'static str,
    /// What was measured, as the study ran it.
    pub benchmark: &'static str,
    /// Unit of the published values.
    pub unit: &'static str,
    /// Which direction is better.
    pub better: Better,
    /// Native.
    pub native: f64,
    /// The two sandboxes (`None`: the study's data has no value).
    pub sandboxes: [Option<f64>; 2],
    /// The file and cells the values come from.
    pub source: &'static str,
    /// What a reader must know about the values (which variant, what is missing).
    pub note: &'static str,
    /// isolab workload kinds that can stand for it.
    pub kinds: &'static [&'static str],
    /// The metric of those workloads that corresponds, as a hint for suite authors.
    pub metric_hint: &'static str,
    /// Parameters the isolab workload must have to stand for it (name, value).
    pub requires: &'static [(&'static str, u64)],
}

impl Row {
    /// The published ratio of sandbox `i` (0 or 1) to native.
    pub fn ratio(&self, i: usize) -> Option<f64> {
        self.sandboxes
            .get(i)
            .copied()
            .flatten()
            .map(|v| v / self.native)
    }

    /// Why `workload` cannot stand for this row, or `Ok` if it can.
    pub fn check_workload(&self, workload: &Workload) -> Result<(), String> {
        let kind = workload.kind();
        if !self.kinds.contains(&kind) {
            return Err(format!(
                "row {} ({}) needs a workload of kind {}, not {kind}",
                self.id,
                self.benchmark,
                self.kinds.join(" or ")
            ));
        }
        let params = serde_json::to_value(workload).unwrap_or_default();
        for (name, value) in self.requires {
            match params.get(name).and_then(serde_json::Value::as_u64) {
                Some(v) if v == *value => {}
                Some(v) => {
                    return Err(format!(
                        "row {} was measured with {name} = {value}; this {kind} has {name} = {v}: \
                         set {name} = {value}",
                        self.id
                    ))
                }
                None => {
                    return Err(format!(
                        "row {} was measured with {name} = {value}, and {kind} has no `{name}` \
                         parameter in this isolab",
                        self.id
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Every study isolab knows.
pub const STUDIES: &[&Study] = &[&FELTER_2014];

/// The study named `id`.
pub fn study(id: &str) -> Option<&'static Study> {
    STUDIES.iter().copied().find(|s| s.id == id)
}

impl Study {
    /// The row named `id`.
    pub fn row(&self, id: &str) -> Option<&'static Row> {
        self.rows.iter().find(|r| r.id == id)
    }

    /// The row names, for error messages.
    pub fn row_ids(&self) -> String {
        self.rows
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use workloads::kernels::io::IoRandParams;

    #[test]
    fn felter_rows_are_unique_and_ratios_are_theirs() {
        let s = study("felter2014").unwrap();
        let mut ids: Vec<&str> = s.rows.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), s.rows.len());
        // The figures the design notes quote, recomputed as ratios.
        let fio = s.row("fio-rand-read-qd128").unwrap();
        assert!((fio.ratio(1).unwrap() - 46_173.0 / 84_044.0).abs() < 1e-12);
        let rr = s.row("netperf-tcp-rr").unwrap();
        assert_eq!(
            rr.ratio(0),
            None,
            "no Docker value in their data: none invented"
        );
        assert_eq!(rr.better, Better::Lower);
    }

    #[test]
    fn a_row_checks_the_kind_and_the_required_parameters() {
        let s = study("felter2014").unwrap();
        let cpu = Workload::default_of_kind("cpu").unwrap();
        assert!(s.row("linpack").unwrap().check_workload(&cpu).is_ok());
        let e = s
            .row("stream-triad")
            .unwrap()
            .check_workload(&cpu)
            .unwrap_err();
        assert!(e.contains("mem-bw"), "{e}");
        // io-rand at this isolab's queue depth cannot stand for their QD 128.
        let e = s
            .row("fio-rand-read-qd128")
            .unwrap()
            .check_workload(&Workload::IoRand(IoRandParams::default()))
            .unwrap_err();
        assert!(e.contains("depth = 128"), "{e}");
    }
}
