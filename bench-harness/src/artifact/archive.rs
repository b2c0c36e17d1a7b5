//! The bundle file: a gzip-compressed tar written deterministically (sorted entries, fixed
//! times, owners and modes, so the same inputs give the same bytes), and read back defensively
//! (plain files and folders only, no path leaving the destination, bounded sizes, every file
//! checked against `SHA256SUMS`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

use super::ArtifactError;

/// The checksum list, `sha256sum -c` compatible.
pub(crate) const SUMS_FILE: &str = "SHA256SUMS";
/// Unpacking stops beyond this many bytes: a bundle is a run's data, reports and source, far
/// below it; anything larger is not a bundle of isolab's.
pub(crate) const MAX_UNPACKED_BYTES: u64 = 4 << 30;
/// Nor more files than this.
const MAX_FILES: usize = 100_000;

/// Hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `SHA256SUMS` text for `files` (path relative to the bundle's top folder → contents).
pub(crate) fn sums(files: &BTreeMap<String, (Vec<u8>, u32)>) -> String {
    files
        .iter()
        .map(|(path, (bytes, _))| format!("{}  {path}\n", sha256_hex(bytes)))
        .collect()
}

/// Writes `files` (relative path → contents and mode) under `top/` into a .tar.gz at `out`,
/// through a temporary file renamed into place, so a failed pack leaves nothing half-written.
pub(crate) fn write(
    out: &Path,
    top: &str,
    files: &BTreeMap<String, (Vec<u8>, u32)>,
) -> Result<u64, ArtifactError> {
    let write_err = |source: std::io::Error| ArtifactError::Write {
        path: out.to_path_buf(),
        source,
    };
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".isolab-pack-")
        .tempfile_in(dir)
        .map_err(write_err)?;
    {
        let gz = GzEncoder::new(tmp.as_file_mut(), Compression::best());
        let mut tar = tar::Builder::new(gz);
        tar.mode(tar::HeaderMode::Deterministic);
        for (path, (bytes, mode)) in files {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(bytes.len() as u64);
            header.set_mode(*mode);
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            tar.append_data(&mut header, format!("{top}/{path}"), bytes.as_slice())
                .map_err(write_err)?;
        }
        let gz = tar.into_inner().map_err(write_err)?;
        gz.finish().map_err(write_err)?.flush().map_err(write_err)?;
    }
    tmp.as_file().sync_all().map_err(write_err)?;
    let size = tmp.as_file().metadata().map_err(write_err)?.len();
    // A bundle is meant to be shared: readable by all, like any file a user writes.
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(write_err)?;
    tmp.persist_noclobber(out).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            ArtifactError::Exists(out.to_path_buf())
        } else {
            write_err(e.error)
        }
    })?;
    Ok(size)
}

/// Unpacks the .tar.gz `bundle` into `dest` (which must not exist, or be empty), dropping the
/// bundle's top folder, then checks every file against `SHA256SUMS` and that the `required`
/// files are there. Returns the files, relative to `dest`. On any error, what was written is
/// removed again.
pub(crate) fn unpack(
    bundle: &Path,
    dest: &Path,
    required: &[&str],
) -> Result<Vec<String>, ArtifactError> {
    let created = match std::fs::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ArtifactError::NotEmpty(dest.to_path_buf()));
            }
            false
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(source) => {
            return Err(ArtifactError::Write {
                path: dest.to_path_buf(),
                source,
            })
        }
    };
    let result = unpack_into(bundle, dest).and_then(|files| {
        if let Some(r) = required.iter().find(|r| !files.iter().any(|f| f == *r)) {
            return Err(ArtifactError::NotABundle {
                path: bundle.to_path_buf(),
                why: format!("it has no {r}"),
            });
        }
        verify(dest, &files)?;
        Ok(files)
    });
    if result.is_err() {
        // Leave the destination as it was found.
        if created {
            let _ = std::fs::remove_dir_all(dest);
        } else if let Ok(entries) = std::fs::read_dir(dest) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
    }
    result
}

fn unpack_into(bundle: &Path, dest: &Path) -> Result<Vec<String>, ArtifactError> {
    let bad = |why: String| ArtifactError::NotABundle {
        path: bundle.to_path_buf(),
        why,
    };
    let file = File::open(bundle).map_err(|e| bad(e.to_string()))?;
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    std::fs::create_dir_all(dest).map_err(|source| ArtifactError::Write {
        path: dest.to_path_buf(),
        source,
    })?;
    let mut top: Option<std::ffi::OsString> = None;
    let mut files = Vec::new();
    let mut total = 0u64;
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(bad(format!(
                "it holds a {kind:?} entry; a bundle holds plain files and folders only"
            )));
        }
        let path = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let mut parts = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(p) => parts.push(p.to_owned()),
                Component::CurDir => {}
                _ => {
                    return Err(bad(format!(
                        "entry {} leaves the bundle's folder",
                        path.display()
                    )))
                }
            }
        }
        let Some((first, rest)) = parts.split_first() else {
            continue;
        };
        match &top {
            None => top = Some(first.clone()),
            Some(t) if t == first => {}
            Some(_) => {
                return Err(bad(format!(
                    "entry {} is outside the bundle's one top folder",
                    path.display()
                )))
            }
        }
        let rel: PathBuf = rest.iter().collect();
        if rel.as_os_str().is_empty() || kind.is_dir() {
            continue;
        }
        if files.len() >= MAX_FILES {
            return Err(bad(format!("more than {MAX_FILES} files")));
        }
        let size = entry.header().size().map_err(|e| bad(e.to_string()))?;
        total = total.saturating_add(size);
        if total > MAX_UNPACKED_BYTES {
            return Err(bad(format!(
                "more than {} GiB unpacked",
                MAX_UNPACKED_BYTES >> 30
            )));
        }
        let target = dest.join(&rel);
        let write_err = |source| ArtifactError::Write {
            path: target.clone(),
            source,
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(write_err)?;
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(write_err)?;
        let copied = std::io::copy(&mut (&mut entry).take(size), &mut out).map_err(write_err)?;
        if copied != size {
            return Err(bad(format!("{} is cut short", rel.display())));
        }
        let mode = entry.header().mode().unwrap_or(0o644);
        let mode = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
        std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .map_err(write_err)?;
        files.push(rel.to_string_lossy().into_owned());
    }
    if files.is_empty() {
        return Err(bad("it holds no file".into()));
    }
    files.sort();
    Ok(files)
}

/// Every file listed in `SHA256SUMS` exists with that checksum, and no other file is there.
fn verify(dest: &Path, files: &[String]) -> Result<(), ArtifactError> {
    let corrupt = |why: String| ArtifactError::Corrupt {
        path: dest.to_path_buf(),
        why,
    };
    let text = std::fs::read_to_string(dest.join(SUMS_FILE))
        .map_err(|e| corrupt(format!("{SUMS_FILE}: {e}")))?;
    let mut listed = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (sum, path) = line
            .split_once("  ")
            .ok_or_else(|| corrupt(format!("{SUMS_FILE}: bad line {line:?}")))?;
        listed.insert(path.to_owned(), sum.to_owned());
    }
    for f in files.iter().filter(|f| f.as_str() != SUMS_FILE) {
        let Some(sum) = listed.remove(f) else {
            return Err(corrupt(format!("{f} is not listed in {SUMS_FILE}")));
        };
        let bytes = std::fs::read(dest.join(f)).map_err(|e| corrupt(format!("{f}: {e}")))?;
        if sha256_hex(&bytes) != sum {
            return Err(corrupt(format!(
                "{f} does not match its checksum in {SUMS_FILE}"
            )));
        }
    }
    if let Some(f) = listed.keys().next() {
        return Err(corrupt(format!("{f} is listed in {SUMS_FILE} but missing")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(
        dir: &Path,
        files: &[(&str, &[u8], u32)],
    ) -> (PathBuf, BTreeMap<String, (Vec<u8>, u32)>) {
        let mut map: BTreeMap<String, (Vec<u8>, u32)> = files
            .iter()
            .map(|(p, b, m)| ((*p).to_owned(), (b.to_vec(), *m)))
            .collect();
        map.insert(SUMS_FILE.into(), (sums(&map).into_bytes(), 0o644));
        let out = dir.join("b.tar.gz");
        write(&out, "top", &map).unwrap();
        (out, map)
    }

    #[test]
    fn the_same_files_give_the_same_bytes_and_come_back_checked() {
        let d = tempfile::tempdir().unwrap();
        let files: &[(&str, &[u8], u32)] =
            &[("b/x.txt", b"x", 0o644), ("a.sh", b"#!/bin/sh\n", 0o755)];
        let (out, _) = bundle(d.path(), files);
        let first = std::fs::read(&out).unwrap();
        std::fs::remove_file(&out).unwrap();
        let (out, _) = bundle(d.path(), files);
        assert_eq!(first, std::fs::read(&out).unwrap(), "deterministic bytes");
        // Not over an existing file.
        assert!(matches!(
            write(&out, "top", &BTreeMap::new()),
            Err(ArtifactError::Exists(_))
        ));
        let dest = d.path().join("u");
        let got = unpack(&out, &dest, &["a.sh"]).unwrap();
        assert_eq!(got, vec!["SHA256SUMS", "a.sh", "b/x.txt"]);
        assert_eq!(std::fs::read(dest.join("b/x.txt")).unwrap(), b"x");
        let mode = |p: &str| {
            std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(dest.join(p)).unwrap().permissions(),
            ) & 0o777
        };
        assert_eq!((mode("a.sh"), mode("b/x.txt")), (0o755, 0o644));
        // Not into a folder with something in it.
        assert!(matches!(
            unpack(&out, &dest, &[]),
            Err(ArtifactError::NotEmpty(_))
        ));
    }

    #[test]
    fn a_changed_file_is_refused_and_nothing_is_left() {
        let d = tempfile::tempdir().unwrap();
        let mut map: BTreeMap<String, (Vec<u8>, u32)> = BTreeMap::new();
        map.insert("data".into(), (b"good".to_vec(), 0o644));
        let mut sums_text = sums(&map);
        map.insert("data".into(), (b"evil".to_vec(), 0o644));
        map.insert(
            SUMS_FILE.into(),
            (std::mem::take(&mut sums_text).into_bytes(), 0o644),
        );
        let out = d.path().join("b.tar.gz");
        write(&out, "top", &map).unwrap();
        let dest = d.path().join("u");
        let e = unpack(&out, &dest, &[]).unwrap_err().to_string();
        assert!(e.contains("does not match"), "{e}");
        assert!(!dest.exists(), "a refused bundle leaves nothing behind");
    }

    #[test]
    fn entries_leaving_the_folder_or_not_plain_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let write_raw = |name: &str, build: &dyn Fn(&mut tar::Builder<GzEncoder<File>>)| {
            let path = d.path().join(name);
            let gz = GzEncoder::new(File::create(&path).unwrap(), Compression::fast());
            let mut tar = tar::Builder::new(gz);
            build(&mut tar);
            tar.into_inner().unwrap().finish().unwrap();
            path
        };
        let escape = write_raw("escape.tar.gz", &|t| {
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_entry_type(tar::EntryType::Regular);
            // The tar crate refuses to write `..` through set_path; write the name directly.
            let name = b"top/../../evil";
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_cksum();
            t.append(&h, &b"x"[..]).unwrap();
        });
        let e = unpack(&escape, &d.path().join("u1"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("leaves the bundle's folder"), "{e}");
        assert!(!d.path().join("evil").exists());
        let link = write_raw("link.tar.gz", &|t| {
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            h.set_entry_type(tar::EntryType::Symlink);
            t.append_link(&mut h, "top/l", "/etc/passwd").unwrap();
        });
        let e = unpack(&link, &d.path().join("u2"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("plain files and folders only"), "{e}");
        assert!(!d.path().join("u2").exists());
    }
}
