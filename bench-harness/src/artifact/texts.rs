//! The bundle's README (laid out after the ACM artifact badges: available, functional,
//! reproduced) and its `rebuild.sh`.

use std::fmt::Write as _;

use super::source::Source;
use super::{FONT_FILE, FONT_LICENSE_FILE, REPORTS_DIR, REPORT_FILES};
use crate::manifest::Manifest;
use crate::report::markdown_cell;

/// What the texts need to know about the bundle.
pub(crate) struct Context<'a> {
    pub manifest: &'a Manifest,
    /// `run/<run-id>`.
    pub run_path: String,
    pub samples: usize,
    pub sources: &'a [Source],
    /// The source that renders the reports (its archive, if any, is what `rebuild.sh` builds).
    pub renderer: &'a Source,
    /// isolab's version and commit that packed the bundle.
    pub packed_by: String,
    /// The charts' file names.
    pub charts: &'a [String],
    /// The environment rows of the reports.
    pub environment: Vec<(String, String)>,
    /// The font's name, for people.
    pub font_name: String,
}

/// `rebuild.sh`: one command that rebuilds every table and chart and compares them.
pub(crate) fn rebuild_script(c: &Context<'_>) -> String {
    let mut s = String::from("#!/bin/sh\n");
    let _ = writeln!(
        s,
        "# Rebuilds every table and chart of this artifact from {run}/samples.jsonl and\n\
         # manifest.json with isolab {commit}, into rebuilt/, and checks that every file is\n\
         # identical, byte for byte, to the one in {REPORTS_DIR}/.\n#",
        run = c.run_path,
        commit = c.renderer.recorded
    );
    match &c.renderer.archive {
        Some((tar, _)) => {
            let _ = writeln!(
                s,
                "#   ./rebuild.sh                         builds isolab from {tar} (Rust and\n\
                 #                                        crates.io needed), then rebuilds\n\
                 #   ISOLAB=/path/to/isolab ./rebuild.sh  uses that isolab binary (of commit\n\
                 #                                        {commit}) instead of building one",
                commit = c.renderer.recorded
            );
        }
        None => {
            let _ = writeln!(
                s,
                "#   ISOLAB=/path/to/isolab ./rebuild.sh  this bundle holds no source to build\n\
                 #                                        isolab from (see README.md): give an\n\
                 #                                        isolab binary of commit {}",
                c.renderer.recorded
            );
        }
    }
    s.push_str("set -eu\nhere=$(cd \"$(dirname \"$0\")\" && pwd)\ncd \"$here\"\n");
    s.push_str(
        "command -v diff >/dev/null || { echo \"rebuild.sh: diff not found; install diffutils\" \
         >&2; exit 1; }\n",
    );
    s.push_str("if [ -z \"${ISOLAB:-}\" ]; then\n");
    match &c.renderer.archive {
        Some((tar, _)) => {
            let folder = tar
                .trim_start_matches("source/")
                .trim_end_matches(".tar")
                .to_owned();
            let _ = writeln!(
                s,
                "  command -v cargo >/dev/null || {{ echo \"rebuild.sh: cargo not found; install \
                 Rust (https://rustup.rs), or set ISOLAB to an isolab binary\" >&2; exit 1; }}\n  \
                 mkdir -p build\n  [ -d build/{folder} ] || tar -xf {tar} -C build\n  \
                 echo \"rebuild.sh: building isolab {commit} (cargo build --release --locked; the \
                 first build takes minutes)\" >&2\n  \
                 (cd build/{folder} && CARGO_TARGET_DIR=\"$here/build/target\" cargo build \
                 --release --locked -p bench_harness --bin isolab)\n  \
                 ISOLAB=\"$here/build/target/x86_64-unknown-linux-gnu/release/isolab\"",
                commit = c.renderer.recorded
            );
        }
        None => {
            s.push_str(
                "  echo \"rebuild.sh: this bundle has no source to build isolab from (README.md \
                 says why); set ISOLAB to an isolab binary\" >&2\n  exit 1\n",
            );
        }
    }
    s.push_str("fi\nrm -rf rebuilt\nmkdir -p rebuilt\n");
    for (file, format) in REPORT_FILES {
        let name = clap::ValueEnum::to_possible_value(&format)
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "\"$ISOLAB\" report {} --format {name} --output rebuilt/{file}",
            c.run_path
        );
    }
    let _ = writeln!(
        s,
        "\"$ISOLAB\" report {} --format json --output /dev/null --charts rebuilt/charts --font \
         {FONT_FILE}",
        c.run_path
    );
    let _ = writeln!(
        s,
        "if diff -r {REPORTS_DIR} rebuilt; then\n  \
         echo \"rebuild.sh: every table and chart in rebuilt/ is identical to {REPORTS_DIR}/\"\n\
         else\n  echo \"rebuild.sh: rebuilt/ differs from {REPORTS_DIR}/ (above)\" >&2\n  exit 1\nfi"
    );
    s
}

/// `README.md`.
pub(crate) fn readme(c: &Context<'_>) -> String {
    let m = c.manifest;
    let mut r = String::new();
    let _ = writeln!(
        r,
        "# Artifact of isolab run {id}\n\n\
         Everything needed to check the figures of isolab run `{id}` ({status}, started \
         {started}, {samples} samples): the raw samples and the environment they were measured \
         in, every report rendered from them, the isolab source that rendered them, and one \
         command that rebuilds every table and chart from the samples and checks that each file \
         comes out identical, byte for byte. Packed by isolab {packed}.\n\n\
         The sections follow the ACM artifact badges: *available*, *functional*, *results \
         reproduced*.",
        id = m.run_id,
        status = crate::report::status_word(m.status),
        started = m.started_at,
        samples = c.samples,
        packed = c.packed_by
    );
    let _ = writeln!(
        r,
        "\n## Contents\n\n| path | what |\n|---|---|\n\
         | `{run}/samples.jsonl` | every trial's sample, one JSON object per line, as written during the run |\n\
         | `{run}/manifest.json` | the environment, the suite as run, the command line, the versions |\n\
         | `{REPORTS_DIR}/` | the reports: `summary.txt` (terminal), `report.md`, `report.html`, `samples.csv`, `tables.tex` (LaTeX, booktabs), `report.json`, and `charts/` (SVG and PNG) |\n\
         | `source/` | the isolab source (`git archive` of a commit), or a note of why it is missing |\n\
         | `{FONT_FILE}`, `{FONT_LICENSE_FILE}` | the font the PNG charts are drawn with, and its licence |\n\
         | `rebuild.sh` | rebuilds `{REPORTS_DIR}/` into `rebuilt/` and compares |\n\
         | `SHA256SUMS` | checksums of every file (`sha256sum -c SHA256SUMS`) |",
        run = c.run_path
    );

    r.push_str("\n## Available\n\n");
    let _ = writeln!(
        r,
        "- **Data**: `{run}/samples.jsonl` and `{run}/manifest.json`, unchanged from the run \
         folder. Every number in the reports is computed from these two files.",
        run = c.run_path
    );
    for s in c.sources {
        let roles = s.roles.join(" and ");
        match (&s.archive, s.exact) {
            (Some((tar, _)), true) => {
                let _ = writeln!(
                    r,
                    "- **Source** of the isolab that {roles}: `{tar}`, `git archive` of commit \
                     `{}` (licence: Apache-2.0, as its Cargo.toml declares).",
                    s.recorded
                );
            }
            (Some((tar, _)), false) => {
                let _ = writeln!(
                    r,
                    "- **Source** of the isolab that {roles}: `{tar}`, **not exact**: {}.",
                    s.why.as_deref().unwrap_or("it is not the exact source")
                );
            }
            (None, _) => {
                let _ = writeln!(
                    r,
                    "- **Source** of the isolab that {roles} (`{}`): **not in this bundle**: {}.",
                    s.recorded,
                    s.why.as_deref().unwrap_or("unknown reason")
                );
            }
        }
    }
    r.push_str(
        "- **Dependencies**: the crates are pinned, with checksums, by the source's `Cargo.lock` \
         and come from crates.io, which never deletes a published version.\n\
         - **Archival**: the *available* badge asks for a permanent archive with a DOI (Zenodo, \
         figshare, a university repository). Deposit this file there; a DOI is not something a \
         tool can mint.\n",
    );

    r.push_str("\n## Functional\n\n");
    match &c.renderer.archive {
        Some((tar, _)) => {
            let _ = writeln!(
                r,
                "Needs Linux on x86_64, Rust (`rustup`; the source's `rust-toolchain.toml` pins \
                 the version), network access to crates.io, and `sh`, `tar`, `diff`. Then:\n\n\
                 ```sh\n./rebuild.sh\n```\n\n\
                 It unpacks `{tar}`, builds isolab (`cargo build --release --locked`; minutes on \
                 a laptop), runs `isolab report` on `{run}` in every format with the charts, into \
                 `rebuilt/`, and compares `rebuilt/` with `{REPORTS_DIR}/`. Expected output, last \
                 line: `rebuild.sh: every table and chart in rebuilt/ is identical to \
                 {REPORTS_DIR}/`. With an isolab binary of the same commit at hand, skip the \
                 build: `ISOLAB=/path/to/isolab ./rebuild.sh` (seconds).",
                run = c.run_path
            );
        }
        None => {
            let _ = writeln!(
                r,
                "This bundle does not carry the source that rendered its reports (see above), so \
                 `rebuild.sh` needs an isolab binary of commit `{}`: \
                 `ISOLAB=/path/to/isolab ./rebuild.sh`.",
                c.renderer.recorded
            );
        }
    }
    let _ = writeln!(
        r,
        "\nWhat makes the rebuild identical: the reports contain no time of rendering, no host \
         name or path of the machine that renders them (only what the manifest recorded), every \
         table is in a fixed order, the bootstrap intervals use a fixed seed, and the PNG charts \
         are drawn with `{FONT_FILE}` ({font}) and no other font. The same source and \
         `Cargo.lock` give the same renderer.",
        font = c.font_name
    );

    r.push_str("\n## Results reproduced\n\n");
    let _ = writeln!(
        r,
        "The tables and charts are `{REPORTS_DIR}/*`; the charts: {}. `report.md` and \
         `report.html` state for each figure its n, its median and 95% interval, and its \
         method.\n\n\
         To measure your own host the same way, build the source and run the command this run \
         was made with (`isolab run` makes a new run folder; compare the two with \
         `isolab compare {} NEW_RUN`):\n\n```sh\n{}\n```\n\n\
         Expect other absolute values on another host: compare ratios to native, and read the \
         environment below first. Times measured inside an emulated machine (samples labelled \
         `vm (emulated)`) are never performance figures.",
        if c.charts.is_empty() {
            "none (the run had no data for one)".to_owned()
        } else {
            c.charts
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        c.run_path,
        m.command.join(" ")
    );
    r.push_str("\n### The environment of the run\n\n| | |\n|---|---|\n");
    for (k, v) in &c.environment {
        let _ = writeln!(r, "| {} | {} |", markdown_cell(k), markdown_cell(v));
    }
    let _ = writeln!(
        r,
        "\n## Licences\n\nisolab: Apache-2.0. The font: {font}, redistributed unmodified under \
         the licence in `{FONT_LICENSE_FILE}`.",
        font = c.font_name
    );
    r
}
