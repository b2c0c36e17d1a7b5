//! `isolab pack` and `isolab unpack`: a run as one archive that rebuilds every figure
//! ([`bench_harness::artifact`]).

use std::path::PathBuf;

use anyhow::{Context, Result};
use bench_harness::artifact::{self, PackOptions, DEFAULT_FONT, DEFAULT_FONT_LICENSE};
use bench_harness::store;

/// `isolab pack`.
#[derive(clap::Args, Debug)]
pub struct PackArgs {
    /// The run folder (made by `isolab run`).
    run_dir: PathBuf,
    /// The bundle to write. Default: isolab-artifact-RUN_ID.tar.gz in the current folder.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// The git repository to take the source from. Default: the one this isolab was built in,
    /// else the current directory's.
    #[arg(long, value_name = "DIR")]
    repo: Option<PathBuf>,
    /// The font the PNG charts are drawn with (a .ttf), and nothing else, so that they rebuild
    /// identically anywhere. Shipped in the bundle with its licence.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_FONT)]
    font: PathBuf,
    /// The font's licence, shipped beside it.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_FONT_LICENSE)]
    font_license: PathBuf,
    /// Pack even when the exact source cannot be included: the run or this isolab was built from
    /// uncommitted changes (its commit ends in -dirty), or its commit is not in the repository.
    /// The bundle's README then names the commit and says why its source is missing or not exact.
    #[arg(long)]
    allow_dirty: bool,
}

/// `isolab unpack`.
#[derive(clap::Args, Debug)]
pub struct UnpackArgs {
    /// A bundle made by `isolab pack`.
    bundle: PathBuf,
    /// Where to unpack it (a new or empty folder).
    dir: PathBuf,
}

/// Runs `isolab pack`.
pub fn pack(args: PackArgs) -> Result<()> {
    let run = store::load_run(&args.run_dir)?;
    let output = args
        .output
        .unwrap_or_else(|| artifact::default_output(&run.manifest.run_id));
    let opts = PackOptions {
        repo: args.repo,
        font: args.font,
        font_license: args.font_license,
        allow_dirty: args.allow_dirty,
        ..PackOptions::new(args.run_dir, output)
    };
    let packed =
        artifact::pack(&opts).with_context(|| format!("packing {}", opts.run_dir.display()))?;
    for w in &packed.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "packed run {} into {} ({} files, {:.1} MiB). Rebuild its figures with:\n  \
         isolab unpack {} DIR && DIR/rebuild.sh",
        run.manifest.run_id,
        packed.path.display(),
        packed.files,
        packed.bytes as f64 / (1 << 20) as f64,
        packed.path.display()
    );
    Ok(())
}

/// Runs `isolab unpack`.
pub fn unpack(args: UnpackArgs) -> Result<()> {
    let u = artifact::unpack(&args.bundle, &args.dir)
        .with_context(|| format!("unpacking {}", args.bundle.display()))?;
    println!(
        "unpacked {} files into {}, every one matching SHA256SUMS. Read {}/README.md; rebuild \
         every table and chart with:\n  {}/rebuild.sh",
        u.files.len(),
        u.dir.display(),
        u.dir.display(),
        u.dir.display()
    );
    Ok(())
}
