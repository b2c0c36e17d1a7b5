//! Building isolab's own guest kernels from Debian's `linux-source-6.1` package: the `micro`
//! kernel (the fragment in `vm-backend/kernel/micro.config`) and its `micro-acpi` variant (the
//! same plus `vm-backend/kernel/micro-acpi.config`: ACPI only, as Firecracker's published guest
//! configs are), see [`Variant`].
//!
//! Steps (each skipped when its result is cached): install build dependencies from apt if missing;
//! `apt-get download linux-source-6.1`; `dpkg-deb -x` and untar it under `<cache>/src/<version>/`;
//! `make tinyconfig`, merge the fragment, `make olddefconfig`, check every option of the fragment
//! took; `nice -n 15 make -j2 bzImage` in `<cache>/build/micro-<version>/`; copy `bzImage`,
//! `vmlinux` and `.config` to `<cache>/kernels/micro-<version>-<hash>/`.
//!
//! Every build happens in one tree per source version, `<cache>/build/micro-<version>/`: kbuild
//! recompiles only the objects that use an option the new configuration changes, so a variant
//! built after the micro kernel costs a link and a few files instead of a second full build (which
//! matters to CI on a fresh machine), and so does an edit of a fragment.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use super::fetch::{apt_install, candidate_version, download_deb, extract_deb, run_captured};
use super::{cache_err, cache_root, KernelError, Result};

/// The configuration fragment, applied on top of `make tinyconfig`.
pub const MICRO_CONFIG: &str = include_str!("../../kernel/micro.config");
/// The `micro-acpi` variant's fragment, applied on top of [`MICRO_CONFIG`].
pub const MICRO_ACPI_CONFIG: &str = include_str!("../../kernel/micro-acpi.config");

/// isolab's own guest kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The default: everything built in, devices from ACPI and from the command line, the virtio
    /// console.
    Micro,
    /// `micro` configured as Firecracker's published x86_64 guest configs are: ACPI on, no
    /// virtio-mmio command-line devices, no virtio console.
    MicroAcpi,
}

impl Variant {
    /// Its name (`isolab run --kernel NAME`, the cache directory's prefix).
    pub fn name(self) -> &'static str {
        match self {
            Variant::Micro => "micro",
            Variant::MicroAcpi => "micro-acpi",
        }
    }

    /// The whole fragment: micro's, then the variant's (later lines win).
    pub fn fragment(self) -> String {
        match self {
            Variant::Micro => MICRO_CONFIG.to_owned(),
            Variant::MicroAcpi => format!("{MICRO_CONFIG}\n{MICRO_ACPI_CONFIG}"),
        }
    }

    /// The kernel whose build tree this one starts from.
    fn base(self) -> Option<Variant> {
        match self {
            Variant::Micro => None,
            Variant::MicroAcpi => Some(Variant::Micro),
        }
    }
}
/// The Debian source package.
pub const SOURCE_PACKAGE: &str = "linux-source-6.1";
/// Bumped when the build recipe (not the fragment) changes in a way that changes the kernel.
const RECIPE: &str = "isolab-micro-recipe-1";

/// How to build.
#[derive(Debug, Clone, Copy)]
pub struct BuildOptions {
    /// Rebuild even when a cached kernel exists.
    pub force: bool,
    /// `make -j` (the machines have 2 cores shared with others).
    pub jobs: u32,
    /// `nice -n` for the compiler.
    pub niceness: i32,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            force: false,
            jobs: 2,
            niceness: 15,
        }
    }
}

/// A built kernel in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelArtifacts {
    /// The cache directory holding it.
    pub dir: PathBuf,
    /// `bzImage`.
    pub bz_image: PathBuf,
    /// `vmlinux` (ELF).
    pub vmlinux: PathBuf,
    /// The full `.config` it was built with.
    pub config: PathBuf,
    /// Debian source package version, e.g. `6.1.192-2`.
    pub source_version: String,
    /// Hash of the fragment and the recipe (16 hex digits).
    pub config_hash: String,
}

/// Hash of a fragment (and the recipe version): the cache key's second half.
pub fn config_hash(fragment: &str) -> String {
    let digest = Sha256::new()
        .chain_update(RECIPE.as_bytes())
        .chain_update(b"\n")
        .chain_update(fragment.as_bytes())
        .finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn kernels_dir() -> PathBuf {
    cache_root().join("kernels")
}

fn artifacts_in(dir: &Path, version: &str, hash: &str) -> Option<KernelArtifacts> {
    let a = KernelArtifacts {
        dir: dir.to_owned(),
        bz_image: dir.join("bzImage"),
        vmlinux: dir.join("vmlinux"),
        config: dir.join("config"),
        source_version: version.to_owned(),
        config_hash: hash.to_owned(),
    };
    (a.bz_image.is_file() && a.vmlinux.is_file()).then_some(a)
}

/// The cached micro kernel for the current fragment, from any source version (newest name
/// first). Makes no apt or network call.
pub fn find_cached_micro() -> Option<KernelArtifacts> {
    find_cached(Variant::Micro)
}

/// The cached kernel of `variant` for the current fragments, from any source version (newest
/// name first). Makes no apt or network call.
pub fn find_cached(variant: Variant) -> Option<KernelArtifacts> {
    let hash = config_hash(&variant.fragment());
    let prefix = format!("{}-", variant.name());
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(kernels_dir())
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            let version = name
                .strip_prefix(&prefix)?
                .strip_suffix(&format!("-{hash}"))?
                .to_owned();
            // `micro-acpi-6.1...` also starts with `micro-`: a version begins with a digit.
            if !version.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
            Some((version, e.path()))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .rev()
        .find_map(|(v, dir)| artifacts_in(&dir, &v, &hash))
}

/// Which build tools are missing, as Debian package names.
pub fn missing_build_deps() -> Vec<&'static str> {
    let have_cmd = |c: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {c}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut missing = Vec::new();
    for (cmd, pkg) in [
        ("make", "make"),
        ("gcc", "gcc"),
        ("flex", "flex"),
        ("bison", "bison"),
        ("bc", "bc"),
        ("perl", "perl"),
        ("xz", "xz-utils"),
        ("dpkg-deb", "dpkg"),
    ] {
        if !have_cmd(cmd) {
            missing.push(pkg);
        }
    }
    for (header, pkg) in [
        ("/usr/include/libelf.h", "libelf-dev"),
        ("/usr/include/openssl/opensslv.h", "libssl-dev"),
    ] {
        if !Path::new(header).exists() {
            missing.push(pkg);
        }
    }
    missing
}

/// An exclusive lock on a file in the cache, so two builds do not race. Held until dropped
/// (closing the file releases it).
struct CacheLock {
    _file: File,
}

impl CacheLock {
    fn acquire(path: &Path, progress: &mut dyn FnMut(&str)) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(cache_err(dir))?;
        }
        let file = File::create(path).map_err(cache_err(path))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            progress("another isolab process is building this kernel; waiting for it");
            // SAFETY: as above, now blocking until the other holder releases the lock.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(cache_err(path)(std::io::Error::last_os_error()));
            }
        }
        Ok(Self { _file: file })
    }
}

/// The unpacked kernel source tree for `version` (`<cache>/src/<version>/linux-source-6.1`).
fn ensure_source(version: &str, progress: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let root = cache_root().join("src").join(version);
    let tree = root.join("linux-source-6.1");
    if root.join(".complete").is_file() && tree.join("Makefile").is_file() {
        return Ok(tree);
    }
    let deb = download_deb(SOURCE_PACKAGE, version, progress)?;
    let pkg = cache_root().join("src").join(format!("{version}-pkg"));
    progress(&format!("unpacking {}", deb.display()));
    extract_deb(&deb, &pkg)?;
    let tarball = pkg.join("usr/src/linux-source-6.1.tar.xz");
    if !tarball.is_file() {
        return Err(KernelError::Missing(format!(
            "{} has no usr/src/linux-source-6.1.tar.xz",
            deb.display()
        )));
    }
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).map_err(cache_err(&root))?;
    progress("extracting the kernel source (about a minute)");
    run_captured(
        Command::new("tar")
            .arg("-xf")
            .arg(&tarball)
            .arg("-C")
            .arg(&root),
        "tar",
    )?;
    let _ = std::fs::remove_dir_all(&pkg);
    std::fs::write(root.join(".complete"), version).map_err(cache_err(&root))?;
    Ok(tree)
}

/// The `CONFIG_X=y` and `# CONFIG_X is not set` lines of a fragment.
pub fn fragment_options(fragment: &str) -> Vec<(String, bool)> {
    fragment
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            if let Some(rest) = l.strip_prefix("# ") {
                rest.strip_suffix(" is not set")
                    .filter(|n| n.starts_with("CONFIG_"))
                    .map(|n| (n.to_owned(), false))
            } else {
                l.strip_suffix("=y")
                    .filter(|n| n.starts_with("CONFIG_"))
                    .map(|n| (n.to_owned(), true))
            }
        })
        .collect()
}

/// Options of the fragment the final `.config` does not have as asked (an option the fragment
/// sets twice is asked as its last line says, as merge_config.sh applies it).
pub fn unmet_options(fragment: &str, config: &str) -> Vec<String> {
    let mut asked: Vec<(String, bool)> = Vec::new();
    for (name, on) in fragment_options(fragment) {
        asked.retain(|(n, _)| *n != name);
        asked.push((name, on));
    }
    asked
        .into_iter()
        .filter(|(name, on)| {
            let set = config.lines().any(|l| l == format!("{name}=y"));
            set != *on
        })
        .map(|(name, on)| format!("{name}={}", if on { "y" } else { "n" }))
        .collect()
}

fn make(tree: &Path, out: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("make");
    c.arg("-C")
        .arg(tree)
        .arg(format!("O={}", out.display()))
        .args(args);
    c
}

/// Builds (or finds in the cache) the micro kernel. `progress` gets human-readable steps.
pub fn ensure_micro(opts: BuildOptions, progress: &mut dyn FnMut(&str)) -> Result<KernelArtifacts> {
    ensure(Variant::Micro, opts, progress)
}

/// Builds (or finds in the cache) the kernel of `variant`; a variant first needs its base
/// kernel's build tree (built too if missing). `progress` gets human-readable steps.
pub fn ensure(
    variant: Variant,
    opts: BuildOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<KernelArtifacts> {
    if !opts.force {
        if let Some(a) = find_cached(variant) {
            return Ok(a);
        }
    }
    let fragment_text = variant.fragment();
    let hash = config_hash(&fragment_text);
    let version = candidate_version(SOURCE_PACKAGE)?;
    // The base's build tree must be complete before a variant copies it.
    // A variant is built after its base (in the same tree, see `build_dir`), so that the base is
    // cached too and the variant costs only what its options change.
    if let Some(base) = variant.base() {
        ensure(
            base,
            BuildOptions {
                force: false,
                ..opts
            },
            progress,
        )?;
    }
    let key = format!("{}-{version}-{hash}", variant.name());
    let dest = kernels_dir().join(&key);
    let out = build_dir(&version);
    // One build at a time in the tree.
    let _lock = CacheLock::acquire(
        &cache_root()
            .join("locks")
            .join(format!("micro-{version}-tree.lock")),
        progress,
    )?;
    if !opts.force {
        if let Some(a) = artifacts_in(&dest, &version, &hash) {
            return Ok(a);
        }
    }
    let missing = missing_build_deps();
    apt_install(&missing, progress)?;
    let tree = ensure_source(&version, progress)?;
    std::fs::create_dir_all(&out).map_err(cache_err(&out))?;
    progress(&format!(
        "configuring {} in {}: tinyconfig + vm-backend/kernel/micro.config{}",
        variant.name(),
        out.display(),
        variant
            .base()
            .map(|_| format!(" + vm-backend/kernel/{}.config", variant.name()))
            .unwrap_or_default()
    ));
    run_captured(&mut make(&tree, &out, &["tinyconfig"]), "make")?;
    merge_fragment(&tree, &out, &fragment_text)?;
    run_captured(&mut make(&tree, &out, &["olddefconfig"]), "make")?;
    let config_text =
        std::fs::read_to_string(out.join(".config")).map_err(cache_err(out.join(".config")))?;
    let unmet = unmet_options(&fragment_text, &config_text);
    if !unmet.is_empty() {
        return Err(KernelError::Missing(format!(
            "Kconfig did not accept these options of the {} kernel's fragments in vm-backend/kernel/ (a dependency is missing from the fragment): {}",
            variant.name(),
            unmet.join(", ")
        )));
    }
    compile(&tree, &out, opts, progress)?;
    progress(&format!("storing the kernel in {}", dest.display()));
    install_artifacts(
        &out.join("arch/x86/boot/bzImage"),
        &out.join("vmlinux"),
        &out.join(".config"),
        &dest,
    )?;
    artifacts_in(&dest, &version, &hash).ok_or_else(|| {
        KernelError::Missing(format!("the build left no kernel in {}", dest.display()))
    })
}

/// The build tree of isolab's kernels from source `version`: one for the micro kernel and its
/// variants, whatever their fragments. Each build reconfigures it, and kbuild recompiles only what
/// the options that changed touch (a tree copied or renamed elsewhere would recompile
/// everything, so it stays where it is).
fn build_dir(version: &str) -> PathBuf {
    cache_root().join("build").join(format!("micro-{version}"))
}

/// Merges `fragment` into `out/.config` (merge_config.sh, later lines win).
fn merge_fragment(tree: &Path, out: &Path, fragment: &str) -> Result<()> {
    let file = out.join("isolab-fragment.config");
    std::fs::write(&file, fragment).map_err(cache_err(&file))?;
    run_captured(
        Command::new(tree.join("scripts/kconfig/merge_config.sh"))
            .arg("-m")
            .arg("-O")
            .arg(out)
            .arg(out.join(".config"))
            .arg(&file)
            .current_dir(tree),
        "make",
    )?;
    Ok(())
}

/// `nice make bzImage` in `out`, with progress every 250 files and the log's tail on failure.
fn compile(
    tree: &Path,
    out: &Path,
    opts: BuildOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    progress(&format!(
        "compiling with nice -n {} make -j{} bzImage (about 5 minutes on 2 cores for a whole kernel)",
        opts.niceness, opts.jobs
    ));
    let log_path = out.join("build.log");
    let log = File::create(&log_path).map_err(cache_err(&log_path))?;
    let mut child = Command::new("nice")
        .arg("-n")
        .arg(opts.niceness.to_string())
        .arg("make")
        .arg("-C")
        .arg(tree)
        .arg(format!("O={}", out.display()))
        .arg(format!("-j{}", opts.jobs.max(1)))
        .arg("bzImage")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|source| KernelError::Spawn {
            command: "nice make".into(),
            package: "make".into(),
            source,
        })?;
    let mut compiled = 0u64;
    let mut last_lines: Vec<String> = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout)
            .lines()
            .map_while(std::result::Result::ok)
        {
            if line.trim_start().starts_with("CC ") {
                compiled += 1;
                if compiled.is_multiple_of(250) {
                    progress(&format!("compiled {compiled} files ({})", line.trim()));
                }
            }
            last_lines.push(line);
            if last_lines.len() > 20 {
                last_lines.remove(0);
            }
        }
    }
    let status = child.wait().map_err(cache_err(out))?;
    if !status.success() {
        let err_tail = std::fs::read_to_string(&log_path).unwrap_or_default();
        let err_tail: Vec<&str> = err_tail.lines().rev().take(20).collect();
        return Err(KernelError::Command {
            command: "make bzImage".into(),
            status: status.to_string(),
            tail: format!(
                ":\n{}\n{}\n(full log: {})",
                last_lines.join("\n"),
                err_tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                log_path.display()
            ),
        });
    }
    progress(&format!("compiled {compiled} files"));
    Ok(())
}

/// Copies a built kernel into its cache directory (atomically: a partial copy is never seen).
pub fn install_artifacts(
    bz_image: &Path,
    vmlinux: &Path,
    config: &Path,
    dest: &Path,
) -> Result<()> {
    let tmp = dest.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(cache_err(&tmp))?;
    for (from, name) in [
        (bz_image, "bzImage"),
        (vmlinux, "vmlinux"),
        (config, "config"),
    ] {
        std::fs::copy(from, tmp.join(name)).map_err(cache_err(from))?;
    }
    let _ = std::fs::remove_dir_all(dest);
    std::fs::rename(&tmp, dest).map_err(cache_err(dest))
}

/// The cache directory the micro kernel built from `version` goes to.
pub fn micro_dir(version: &str) -> PathBuf {
    kernels_dir().join(format!("micro-{version}-{}", config_hash(MICRO_CONFIG)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_sensitive() {
        let a = config_hash("CONFIG_A=y\n");
        assert_eq!(a.len(), 16);
        assert_eq!(a, config_hash("CONFIG_A=y\n"));
        assert_ne!(a, config_hash("CONFIG_A=y\nCONFIG_B=y\n"));
    }

    #[test]
    fn fragment_options_are_read_and_checked() {
        let frag = "# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\n";
        assert_eq!(
            fragment_options(frag),
            vec![
                ("CONFIG_A".into(), true),
                ("CONFIG_B".into(), false),
                ("CONFIG_C".into(), true)
            ]
        );
        let config = "CONFIG_A=y\n# CONFIG_B is not set\n# CONFIG_C is not set\n";
        assert_eq!(unmet_options(frag, config), vec!["CONFIG_C=y".to_owned()]);
        // The real fragment asks for what the agent needs.
        let opts = fragment_options(MICRO_CONFIG);
        for needed in [
            "CONFIG_SERIAL_8250_CONSOLE",
            "CONFIG_BLK_DEV_INITRD",
            "CONFIG_DEVTMPFS",
            "CONFIG_KVM_GUEST",
        ] {
            assert!(opts.contains(&(needed.to_owned(), true)), "{needed}");
        }
        assert!(opts.contains(&("CONFIG_MODULES".to_owned(), false)));
    }

    #[test]
    fn the_acpi_variant_is_micro_without_command_line_devices_or_console() {
        let micro = fragment_options(&Variant::Micro.fragment());
        for needed in [
            "CONFIG_ACPI",
            "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES",
            "CONFIG_VIRTIO_CONSOLE",
        ] {
            assert!(micro.contains(&(needed.to_owned(), true)), "{needed}");
        }
        // The variant's fragment is micro's with its own lines after: they win.
        let acpi = Variant::MicroAcpi.fragment();
        assert!(acpi.starts_with(MICRO_CONFIG));
        let config =
            "CONFIG_ACPI=y\nCONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y\nCONFIG_VIRTIO_CONSOLE=y\n";
        let unmet = unmet_options(&acpi, config);
        assert!(
            unmet.contains(&"CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=n".to_owned())
                && unmet.contains(&"CONFIG_VIRTIO_CONSOLE=n".to_owned())
                && !unmet.iter().any(|u| u.starts_with("CONFIG_ACPI=")),
            "{unmet:?}"
        );
        assert_ne!(config_hash(&acpi), config_hash(MICRO_CONFIG));
        assert_eq!(Variant::MicroAcpi.base(), Some(Variant::Micro));
        assert_eq!(Variant::Micro.base(), None);
    }
}
