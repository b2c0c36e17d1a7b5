//! Records the git commit the harness was built from, for the manifest of every run and for
//! `isolab pack` (which refuses to call a build exact when its tree had changes).
//!
//! In a git checkout: `git rev-parse HEAD`, with `-dirty` when tracked files differ from it. In a
//! source archive made by `git archive` (what `isolab pack` bundles), there is no `.git`; the file
//! `COMMIT` then holds the commit, written into it by `git archive` (`export-subst` in
//! `.gitattributes`).

use std::path::Path;
use std::process::Command;

fn main() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let archived = std::fs::read_to_string("COMMIT")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()));
    // An archive's own commit first: unpacked inside some other git checkout, `git` would name
    // that checkout's commit.
    let commit = match (archived, git(&["rev-parse", "HEAD"])) {
        (Some(archived), _) => archived,
        (None, Some(head)) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            format!("{head}{}", if dirty { "-dirty" } else { "" })
        }
        (None, None) => "unknown".into(),
    };
    println!("cargo:rustc-env=ISOLAB_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-changed=COMMIT");
    // The commit moves with HEAD and the branch it names; the dirty mark with the sources
    // watched below. Not the index (`git status` rewrites it when it refreshes file times, which
    // would rebuild the release binaries after every `git status`) and not the whole refs
    // directory (any other branch's commit, a fetch or a tag would too). The git directories are
    // asked for, since in a worktree `.git` is a file and the refs live in the common directory.
    let watch = |dir: Option<String>, files: &[&str]| {
        for f in files {
            if let Some(p) = dir
                .as_deref()
                .map(|d| Path::new(d).join(f))
                .filter(|p| p.exists())
            {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    };
    watch(git(&["rev-parse", "--git-dir"]), &["HEAD"]);
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    watch(
        git(&["rev-parse", "--git-common-dir"]),
        &[branch.as_deref().unwrap_or("HEAD"), "packed-refs"],
    );
    for path in [
        "src",
        "suites",
        "build.rs",
        "Cargo.toml",
        "../Cargo.toml",
        "../Cargo.lock",
        "../workloads/src",
        "../container-backend/src",
        "../vm-backend/src",
        "../vm-backend/kernel",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
}
