//! CSV of every sample: one row per sample and metric, with its column's label and factor values
//! (`userns=on;vcpus=2`). A sample without metrics (a failed trial)
//! still gets one row, with empty metric columns, so no trial disappears from the file.

use std::fmt::Write as _;

use super::View;

/// The header line's columns.
pub(crate) const COLUMNS: [&str; 17] = [
    "run_id",
    "trial",
    "backend",
    "column",
    "factors",
    "workload",
    "kind",
    "repetition",
    "warmup",
    "emulated",
    "started_at",
    "failure",
    "metric",
    "unit",
    "better",
    "value",
    "measured_ok",
];

/// Quotes a field per RFC 4180 when it needs it.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

pub(crate) fn render(view: &View<'_>) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    let run_id = field(&view.manifest().run_id);
    for s in &view.run.samples {
        let failure = s
            .failure
            .as_ref()
            .map(|f| field(&f.to_string()))
            .unwrap_or_default();
        let factors: Vec<String> = s.factors.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let head = format!(
            "{run_id},{},{},{},{},{},{},{},{},{},{},{failure}",
            s.trial,
            field(&s.backend),
            field(&s.label()),
            field(&factors.join(";")),
            field(&s.workload),
            field(&s.kind),
            s.repetition,
            s.warmup,
            s.emulated,
            field(&s.started_at),
        );
        let ok = s.is_measured_ok();
        if s.metrics.is_empty() {
            let _ = writeln!(out, "{head},,,,,{ok}");
        }
        for m in &s.metrics {
            let better = match m.better {
                workloads::Better::Higher => "higher",
                workloads::Better::Lower => "lower",
            };
            let value = if m.value.is_finite() {
                format!("{}", m.value)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "{head},{},{},{better},{value},{ok}",
                field(&m.name),
                field(&m.unit)
            );
        }
    }
    out
}
