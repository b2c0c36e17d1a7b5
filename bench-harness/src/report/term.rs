//! The terminal report: the summary table, then the run's methodology and caveats, in the
//! catalogue's language.

use std::fmt::Write as _;

use super::{methodology, View};
use crate::i18n::Catalogue;
use crate::summary;

pub(crate) fn render(view: &View<'_>, cat: &Catalogue) -> String {
    let mut out = summary::render_table_in(&view.summary, cat);
    out.push_str(&super::published::term(&super::published::comparisons(
        view,
    )));
    let m = view.manifest();
    let _ = writeln!(
        out,
        "\n{}",
        cat.tr(
            "term-run-line",
            &[
                ("run", &m.run_id),
                ("status", &cat.tr(methodology::status_id(m.status), &[])),
                ("started", &m.started_at),
                ("host", &m.host.hostname),
                ("cpu", &m.host.cpu_model),
                ("cores", &m.host.cores.to_string()),
                ("kernel", &m.host.kernel),
                ("kvm", &cat.tr(methodology::kvm_id(m.host.kvm), &[])),
            ]
        )
    );
    let _ = writeln!(
        out,
        "\n{} {}",
        cat.tr("term-methodology", &[]),
        methodology::paragraph(view, cat)
    );
    let caveats = methodology::caveats(view, cat);
    if !caveats.is_empty() {
        let _ = writeln!(out, "\n{}", cat.tr("term-caveats", &[]));
        for c in caveats {
            let _ = writeln!(out, "  - {c}");
        }
    }
    out
}
