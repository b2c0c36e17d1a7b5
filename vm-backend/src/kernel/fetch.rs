//! Debian packages through apt, without installing them: `apt-get download` into the cache and
//! `dpkg-deb -x`. Used for the kernel source package and for the cloud kernel the HVM test machine
//! boots, which is also the stock `debian` guest kernel ([`super::debian`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use super::{cache_err, cache_root, KernelError, Result};

/// Runs a command, capturing its output; fails with its last lines.
pub(crate) fn run_captured(cmd: &mut Command, package: &str) -> Result<String> {
    let shown = format!("{cmd:?}").replace('"', "");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| KernelError::Spawn {
            command: shown.clone(),
            package: package.to_owned(),
            source,
        })?;
    if !out.status.success() {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(KernelError::Command {
            command: shown,
            status: out.status.to_string(),
            tail: if tail.is_empty() {
                String::new()
            } else {
                format!(":\n{}", tail.join("\n"))
            },
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

static APT_UPDATED: AtomicBool = AtomicBool::new(false);

/// `apt-get update`, at most once per process.
pub fn apt_update() -> Result<()> {
    if APT_UPDATED.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    run_captured(Command::new("apt-get").args(["update", "-q"]), "apt").map(|_| ())
}

/// Installs Debian packages (non-interactive); updates the lists first if needed.
pub fn apt_install(packages: &[&str], progress: &mut dyn FnMut(&str)) -> Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    progress(&format!("installing {} with apt-get", packages.join(" ")));
    let install = || {
        run_captured(
            Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(packages)
                .env("DEBIAN_FRONTEND", "noninteractive"),
            "apt",
        )
    };
    match install() {
        Ok(_) => Ok(()),
        Err(_) => {
            apt_update()?;
            install().map(|_| ())
        }
    }
}

/// The candidate version apt would install of `package` (updating the lists once if apt knows
/// none).
pub fn candidate_version(package: &str) -> Result<String> {
    let query = || -> Result<Option<String>> {
        let out = run_captured(Command::new("apt-cache").args(["policy", package]), "apt")?;
        Ok(out
            .lines()
            .find_map(|l| l.trim().strip_prefix("Candidate:"))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty() && v != "(none)"))
    };
    if let Some(v) = query()? {
        return Ok(v);
    }
    apt_update()?;
    query()?.ok_or_else(|| KernelError::NoPackage(package.to_owned()))
}

/// The package a meta package depends on first whose name starts with `prefix`
/// (e.g. `linux-image-cloud-amd64` -> `linux-image-6.1.0-56-cloud-amd64`).
pub fn resolve_meta(meta: &str, prefix: &str) -> Result<String> {
    candidate_version(meta)?;
    let out = run_captured(Command::new("apt-cache").args(["depends", meta]), "apt")?;
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|name| name.starts_with(prefix))
        .map(str::to_owned)
        .ok_or_else(|| KernelError::Missing(format!("{meta} depends on no {prefix}* package")))
}

/// Downloads `package=version` into `<cache>/debs/` (once) and returns the .deb.
pub fn download_deb(
    package: &str,
    version: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<PathBuf> {
    let dir = cache_root().join("debs");
    std::fs::create_dir_all(&dir).map_err(cache_err(&dir))?;
    let find = |dir: &Path| -> Option<PathBuf> {
        let file_version = version.replace(':', "%3a");
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with(&format!("{package}_{file_version}_")) && n.ends_with(".deb")
                })
            })
    };
    if let Some(p) = find(&dir) {
        return Ok(p);
    }
    progress(&format!(
        "downloading {package} {version} with apt-get download"
    ));
    let spec = format!("{package}={version}");
    if run_captured(
        Command::new("apt-get")
            .args(["download", "-q", &spec])
            .current_dir(&dir),
        "apt",
    )
    .is_err()
    {
        apt_update()?;
        run_captured(
            Command::new("apt-get")
                .args(["download", "-q", &spec])
                .current_dir(&dir),
            "apt",
        )?;
    }
    find(&dir).ok_or_else(|| {
        KernelError::Missing(format!(
            "apt-get download left no {package} .deb in {}",
            dir.display()
        ))
    })
}

/// Extracts a .deb into `dest` (created; replaced atomically when complete).
pub fn extract_deb(deb: &Path, dest: &Path) -> Result<()> {
    let tmp = dest.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(cache_err(&tmp))?;
    run_captured(
        Command::new("dpkg-deb").arg("-x").arg(deb).arg(&tmp),
        "dpkg",
    )?;
    let _ = std::fs::remove_dir_all(dest);
    std::fs::rename(&tmp, dest).map_err(cache_err(dest))
}

/// Debian's cloud kernel, unpacked: the kernel image and its modules.
#[derive(Debug, Clone)]
pub struct DebianKernel {
    /// Package name, e.g. `linux-image-6.1.0-56-cloud-amd64`.
    pub package: String,
    /// Package version, e.g. `6.1.192-2`.
    pub version: String,
    /// `boot/vmlinuz-*`.
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>/`.
    pub modules: PathBuf,
}

impl DebianKernel {
    /// A module file by its path under `kernel/` (e.g. `arch/x86/kvm/kvm-amd.ko`).
    pub fn module(&self, rel: &str) -> PathBuf {
        self.modules.join("kernel").join(rel)
    }
}

/// Fetches (once) and unpacks Debian's current cloud kernel package into
/// `<cache>/debian-kernels/<package>_<version>/`.
pub fn debian_cloud_kernel(progress: &mut dyn FnMut(&str)) -> Result<DebianKernel> {
    let package = resolve_meta("linux-image-cloud-amd64", "linux-image-")?;
    let version = candidate_version(&package)?;
    let dir = cache_root()
        .join("debian-kernels")
        .join(format!("{package}_{version}"));
    if !dir.join("boot").is_dir() {
        let deb = download_deb(&package, &version, progress)?;
        progress(&format!("unpacking {}", deb.display()));
        std::fs::create_dir_all(dir.parent().unwrap_or(&dir)).map_err(cache_err(&dir))?;
        extract_deb(&deb, &dir)?;
    }
    let first_in = |sub: &str, pred: &dyn Fn(&str) -> bool| -> Result<PathBuf> {
        let d = dir.join(sub);
        std::fs::read_dir(&d)
            .map_err(cache_err(&d))?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(pred))
            .ok_or_else(|| KernelError::Missing(format!("no kernel in {}", d.display())))
    };
    let vmlinuz = first_in("boot", &|n| n.starts_with("vmlinuz-"))?;
    let modules = first_in("lib/modules", &|_| true)?;
    Ok(DebianKernel {
        package,
        version,
        vmlinuz,
        modules,
    })
}
