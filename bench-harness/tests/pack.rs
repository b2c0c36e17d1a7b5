//! `isolab pack` and `isolab unpack` on a real run: a small native run is packed, unpacked in a
//! fresh folder and rebuilt by the bundle's own `rebuild.sh` with this isolab binary; every
//! table and chart (SVG, CSV, Markdown, LaTeX, JSON, HTML, text, and PNG with the bundled font)
//! must come out identical byte for byte. The same run packed twice gives the same bundle; a run
//! whose source is not exact is refused without --allow-dirty.
//!
//! Needs root only for what `isolab run` needs natively (nothing), the agent built, git, `sh`
//! and `diff`, and Debian's fonts-dejavu-core (`./run-tests` installs it).
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bench_harness::artifact::{DEFAULT_FONT, DEFAULT_FONT_LICENSE, REPORT_FILES};

const ISOLAB: &str = env!("CARGO_BIN_EXE_isolab");

fn agent() -> PathBuf {
    workloads::locate::locate_agent(None).unwrap_or_else(|e| panic!("{e}"))
}

fn isolab(args: &[&str], cwd: &Path) -> Output {
    Command::new(ISOLAB)
        .args(args)
        .current_dir(cwd)
        .env("ISOLAB_AGENT", agent())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed\nstdout:\n{}\nstderr:\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// Every file under `dir`, by relative path.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// A small native run of a few workloads, replicating one of Felter et al.'s rows so that the
/// published table is in every report too.
fn small_run(tmp: &Path) -> PathBuf {
    let suite = tmp.join("suite.toml");
    std::fs::write(
        &suite,
        "reps = 3\nwarmup = 0\nbackends = [\"native\"]\n\
         [[workload]]\nkind = \"noop\"\n\
         [[workload]]\nname = \"linpack\"\nkind = \"cpu\"\nhash_mib = 1\nmatrix_n = 64\n\
         [[workload]]\nkind = \"random-access\"\ntable_mib = 4\nupdates_per_entry = 1\n\
         [[workload]]\nkind = \"io-rand\"\nfile_mib = 1\nops = 50\n\
         [replicates.felter2014]\nlinpack = \"linpack.matmul_gflops\"\n\
         randomaccess = \"random-access.gups\"\n",
    )
    .unwrap();
    let out = tmp.join("results");
    ok(
        &isolab(
            &[
                "run",
                "--suite",
                suite.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--io-dir",
                tmp.to_str().unwrap(),
                "--seed",
                "18",
            ],
            tmp,
        ),
        "isolab run",
    );
    std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

#[test]
fn a_packed_run_unpacks_elsewhere_and_rebuilds_every_figure_byte_for_byte() {
    for (f, what) in [(DEFAULT_FONT, "font"), (DEFAULT_FONT_LICENSE, "licence")] {
        assert!(
            Path::new(f).is_file(),
            "the {what} {f} is missing: apt-get install fonts-dejavu-core (./run-tests does)"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = small_run(tmp.path());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    let commit = manifest["git_commit"].as_str().unwrap().to_owned();
    let run_id = manifest["run_id"].as_str().unwrap().to_owned();
    // This isolab made the run, so it is the renderer too: the same commit, dirty or not.
    let dirty = commit.ends_with("-dirty");
    let pack = |out: &Path| {
        let mut args = vec![
            "pack",
            run.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ];
        if dirty {
            args.push("--allow-dirty");
        }
        ok(&isolab(&args, tmp.path()), "isolab pack")
    };
    let bundle = tmp.path().join("a.tar.gz");
    let said = pack(&bundle);
    assert!(said.contains("rebuild.sh"), "{said}");

    // Deterministic: packed again, the same bytes.
    let again = tmp.path().join("b.tar.gz");
    pack(&again);
    assert!(
        std::fs::read(&bundle).unwrap() == std::fs::read(&again).unwrap(),
        "packing the same run twice gave different bundles"
    );

    // Unpacked in a fresh folder elsewhere, rebuilt with this binary by the bundle's script.
    let elsewhere = tempfile::tempdir().unwrap();
    let dir = elsewhere.path().join("artifact");
    ok(
        &isolab(
            &["unpack", bundle.to_str().unwrap(), dir.to_str().unwrap()],
            elsewhere.path(),
        ),
        "isolab unpack",
    );
    let unpacked = files(&dir);
    for f in [
        "README.md",
        "rebuild.sh",
        "SHA256SUMS",
        "font/DejaVuSans.ttf",
        "font/LICENSE",
    ] {
        assert!(
            unpacked.contains_key(f),
            "{f} missing: {:?}",
            unpacked.keys()
        );
    }
    assert_eq!(
        unpacked[&format!("run/{run_id}/samples.jsonl")],
        std::fs::read(run.join("samples.jsonl")).unwrap(),
        "the samples travel unchanged"
    );
    let reports: Vec<&String> = unpacked
        .keys()
        .filter(|k| k.starts_with("reports/"))
        .collect();
    for (f, _) in REPORT_FILES {
        assert!(
            reports.contains(&&format!("reports/{f}")),
            "{f}: {reports:?}"
        );
    }
    let svgs = reports.iter().filter(|r| r.ends_with(".svg")).count();
    let pngs = reports.iter().filter(|r| r.ends_with(".png")).count();
    assert!(
        svgs >= 2 && pngs == svgs,
        "{svgs} SVG, {pngs} PNG: {reports:?}"
    );
    let md = text(&unpacked["reports/report.md"]);
    assert!(md.contains("Felter et al. 2014 beside this run"), "{md}");
    assert!(md.contains("not measured in this run"));

    let readme = text(&unpacked["README.md"]);
    for section in ["## Available", "## Functional", "## Results reproduced"] {
        assert!(readme.contains(section), "{section} missing:\n{readme}");
    }
    // The environment record travels with the run: the platform settings were recorded, and the
    // README's environment table shows them.
    let platform = &manifest["host"]["platform"];
    assert!(platform["kernel_cmdline"].is_string(), "{platform}");
    assert!(
        platform["mitigations"]
            .as_object()
            .is_some_and(|m| !m.is_empty()),
        "{platform}"
    );
    for row in [
        "| microcode |",
        "| CPU vulnerabilities |",
        "| kernel command line |",
    ] {
        assert!(readme.contains(row), "{row} missing:\n{readme}");
    }
    let short = &commit[..12];
    let source = format!("source/isolab-{short}.tar");
    assert!(
        unpacked.contains_key(&source),
        "{source}: {:?}",
        unpacked.keys()
    );
    if dirty {
        assert!(readme.contains("**not exact**"), "{readme}");
    } else {
        // The exact commit, with the commit written into bench-harness/COMMIT by git archive,
        // so a build from it knows which it is.
        let listing = Command::new("tar")
            .args(["-xOf", &dir.join(&source).to_string_lossy()])
            .arg(format!("isolab-{short}/bench-harness/COMMIT"))
            .output()
            .unwrap();
        assert_eq!(text(&listing.stdout).trim(), commit);
        assert!(!readme.contains("not exact"), "{readme}");
    }

    let rebuild = Command::new(dir.join("rebuild.sh"))
        .current_dir(elsewhere.path())
        .env("ISOLAB", ISOLAB)
        .env_remove("ISOLAB_FONT_DIR")
        .output()
        .unwrap();
    let said = ok(&rebuild, "rebuild.sh");
    assert!(said.contains("identical"), "{said}");
    let rebuilt = files(&dir.join("rebuilt"));
    let original: BTreeMap<String, Vec<u8>> = unpacked
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("reports/")?.to_owned(), v.clone())))
        .collect();
    assert_eq!(
        rebuilt.keys().collect::<Vec<_>>(),
        original.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &original {
        assert!(&rebuilt[name] == bytes, "{name} differs after the rebuild");
    }
}

#[test]
fn a_run_without_its_exact_source_is_refused_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let run = small_run(tmp.path());
    // The run as if it had been made by a build with uncommitted changes.
    let path = run.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let commit = m["git_commit"]
        .as_str()
        .unwrap()
        .trim_end_matches("-dirty")
        .to_owned();
    m["git_commit"] = format!("{commit}-dirty").into();
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let out = tmp.path().join("x.tar.gz");
    let o = isolab(
        &[
            "pack",
            run.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("uncommitted changes") && err.contains("--allow-dirty"),
        "{err}"
    );
    assert!(!out.exists(), "a refused pack leaves no file");
    let o = isolab(
        &[
            "pack",
            run.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--allow-dirty",
        ],
        tmp.path(),
    );
    ok(&o, "isolab pack --allow-dirty");
    assert!(text(&o.stderr).contains("warning: the isolab that measured the run"));
    // A bundle is never unpacked over something.
    let dest = tmp.path().join("occupied");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("keep"), "mine").unwrap();
    let o = isolab(
        &["unpack", out.to_str().unwrap(), dest.to_str().unwrap()],
        tmp.path(),
    );
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("not empty"));
    assert_eq!(std::fs::read_to_string(dest.join("keep")).unwrap(), "mine");
}

#[test]
fn the_png_charts_are_drawn_with_the_given_font_and_no_other() {
    let mono = Path::new(DEFAULT_FONT).with_file_name("DejaVuSansMono.ttf");
    assert!(
        mono.is_file(),
        "{} is missing: apt-get install fonts-dejavu-core",
        mono.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let run = bench_harness::store::load_run(&small_run(tmp.path())).unwrap();
    let draw = |font: &Path, dir: &str| {
        let d = tmp.path().join(dir);
        bench_harness::report::write_charts_with_font(&run, &d, font).unwrap();
        files(&d)
    };
    let sans = draw(Path::new(DEFAULT_FONT), "sans");
    let sans_again = draw(Path::new(DEFAULT_FONT), "sans-again");
    let other = draw(&mono, "mono");
    assert_eq!(sans, sans_again, "the same font gives the same bytes");
    assert!(sans.keys().any(|k| k.ends_with(".png")));
    for (name, bytes) in &sans {
        if name.ends_with(".svg") {
            assert_eq!(
                bytes, &other[name],
                "{name}: the SVG does not depend on the font"
            );
        } else {
            assert_ne!(
                bytes, &other[name],
                "{name}: drawn without the font it was given"
            );
        }
    }
    let e = bench_harness::report::write_charts_with_font(
        &run,
        &tmp.path().join("none"),
        &tmp.path().join("no-such.ttf"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no-such.ttf"), "{e}");
}
