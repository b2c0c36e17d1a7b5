//! `inspect`: what the inside looks like. (Not written yet.)

use crate::kernels::WorkloadError;
use crate::result::{InspectReport, Metric};

/// Collects the report.
pub fn run() -> Result<InspectReport, WorkloadError> {
    Ok(InspectReport::default())
}

/// The numeric parts of the report as metrics, so they are summarised like any other.
pub fn metrics(report: &InspectReport) -> Vec<Metric> {
    let _ = report;
    Vec::new()
}
