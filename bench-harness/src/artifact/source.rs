//! The isolab source a bundle carries: `git archive` of the commit a binary was built from, when
//! that commit is exact and in the repository; otherwise which commit, and why its source is not
//! in the bundle or not exact.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What a bundle says about one source revision.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The commit as recorded (`<sha>`, `<sha>-dirty` or `unknown`).
    pub recorded: String,
    /// The commit alone, when one is known.
    pub commit: Option<String>,
    /// What this revision did: measured the run, rendered the reports, or both.
    pub roles: Vec<&'static str>,
    /// `source/isolab-<sha12>.tar` and its bytes, when the commit is in the repository.
    pub archive: Option<(String, Vec<u8>)>,
    /// Whether the archive is exactly the source that was built (no `-dirty`).
    pub exact: bool,
    /// Why the source is missing or not exact.
    pub why: Option<String>,
}

/// Runs git in `repo`; its standard output, or what went wrong.
fn git(repo: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git ({e}); install git"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// The repository to take sources from: `explicit`, else the one this binary was built in, else
/// the current directory's.
pub(crate) fn locate_repo(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    [Some(built_in), std::env::current_dir().ok()]
        .into_iter()
        .flatten()
        .find(|d| git(d, &["rev-parse", "--git-dir"]).is_ok())
}

/// The source of the build recorded as `recorded`, with `roles`.
pub(crate) fn source_of(repo: Option<&Path>, recorded: &str, roles: Vec<&'static str>) -> Source {
    let (commit, dirty) = match recorded.strip_suffix("-dirty") {
        Some(c) => (c, true),
        None => (recorded, false),
    };
    let mut s = Source {
        recorded: recorded.to_owned(),
        commit: None,
        roles,
        archive: None,
        exact: false,
        why: None,
    };
    if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        s.why = Some(format!(
            "the build recorded no commit ({recorded:?}): it was not built from a git checkout"
        ));
        return s;
    }
    s.commit = Some(commit.to_owned());
    let Some(repo) = repo else {
        s.why = Some(format!(
            "no git repository was found to take commit {commit} from; pass --repo with a clone \
             that has it"
        ));
        return s;
    };
    if let Err(e) = git(repo, &["cat-file", "-e", &format!("{commit}^{{commit}}")]) {
        s.why = Some(format!(
            "commit {commit} is not in the repository {} ({e}); fetch it, or pass --repo with a \
             clone that has it",
            repo.display()
        ));
        return s;
    }
    let short = &commit[..12];
    match git(
        repo,
        &[
            "archive",
            "--format=tar",
            &format!("--prefix=isolab-{short}/"),
            commit,
        ],
    ) {
        Ok(bytes) => s.archive = Some((format!("source/isolab-{short}.tar"), bytes)),
        Err(e) => {
            s.why = Some(format!("`git archive {commit}` failed: {e}"));
            return s;
        }
    }
    if dirty {
        s.why = Some(format!(
            "the build had uncommitted changes ({recorded}): source/isolab-{short}.tar is commit \
             {commit} without them, so it is not exactly what ran"
        ));
    } else {
        s.exact = true;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_without_a_commit_or_repository_says_why() {
        let s = source_of(None, "unknown", vec!["measured the run"]);
        assert!(!s.exact && s.archive.is_none());
        assert!(s.why.unwrap().contains("no commit"));
        let c = "0123456789abcdef0123456789abcdef01234567";
        let s = source_of(None, &format!("{c}-dirty"), vec!["measured the run"]);
        assert_eq!(s.commit.as_deref(), Some(c));
        assert!(!s.exact);
        assert!(s.why.unwrap().contains("--repo"));
    }
}
