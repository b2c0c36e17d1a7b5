//! The terminal report: the summary table, then the run's methodology and caveats.

use std::fmt::Write as _;

use super::{methodology, View};
use crate::summary;

pub(crate) fn render(view: &View<'_>) -> String {
    let mut out = summary::render_table(&view.summary);
    out.push_str(&super::published::term(&super::published::comparisons(
        view,
    )));
    let m = view.manifest();
    let _ = writeln!(
        out,
        "\nRun {} ({}) started {} on {} ({}, {} cores, kernel {}, KVM: {}).",
        m.run_id,
        super::status_word(m.status),
        m.started_at,
        m.host.hostname,
        m.host.cpu_model,
        m.host.cores,
        m.host.kernel,
        m.host.kvm.describe()
    );
    let _ = writeln!(out, "\nMethodology: {}", methodology::paragraph(view));
    let caveats = methodology::caveats(view);
    if !caveats.is_empty() {
        let _ = writeln!(out, "\nCaveats:");
        for c in caveats {
            let _ = writeln!(out, "  - {c}");
        }
    }
    out
}
