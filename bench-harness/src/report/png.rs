//! PNG from the SVG charts with resvg (pure Rust), using fonts found in the system font folders,
//! or one given font file alone: then the same charts give the same PNG bytes on any machine
//! (what `isolab pack` relies on).

use std::path::Path;
use std::sync::Arc;

use resvg::{tiny_skia, usvg};

/// A rasteriser with the system fonts loaded once.
pub(crate) struct Rasteriser {
    options: usvg::Options<'static>,
}

/// Families tried, in order, for the SVG's generic `sans-serif`.
const SANS: [&str; 5] = [
    "DejaVu Sans",
    "Liberation Sans",
    "Noto Sans",
    "FreeSans",
    "Arial",
];

impl Rasteriser {
    /// Loads the system fonts. Fails with an explanation when there is none, since text would be
    /// missing from every chart.
    pub(crate) fn new() -> Result<Self, String> {
        let mut db = usvg::fontdb::Database::new();
        db.load_system_fonts();
        if let Ok(dir) = std::env::var("ISOLAB_FONT_DIR") {
            db.load_fonts_dir(dir);
        }
        if db.is_empty() {
            return Err(
                "no font found in the system font folders; install one (e.g. \
                        `apt-get install fonts-dejavu-core`) or point ISOLAB_FONT_DIR at a folder \
                        of .ttf files. The SVG files are complete without it"
                    .into(),
            );
        }
        let families: Vec<String> = db
            .faces()
            .flat_map(|f| f.families.iter().map(|(n, _)| n.clone()))
            .collect();
        let sans = SANS
            .iter()
            .map(|s| (*s).to_owned())
            .find(|s| families.contains(s))
            .or_else(|| families.first().cloned())
            .unwrap_or_default();
        db.set_sans_serif_family(sans.clone());
        let options = usvg::Options {
            font_family: sans,
            fontdb: Arc::new(db),
            ..usvg::Options::default()
        };
        Ok(Self { options })
    }

    /// Loads `font` (a .ttf or .otf file) and no other: every text of every chart is drawn with
    /// it, whatever fonts this machine has.
    pub(crate) fn with_font_file(font: &Path) -> Result<Self, String> {
        let data = std::fs::read(font)
            .map_err(|e| format!("cannot read the font {}: {e}", font.display()))?;
        let mut db = usvg::fontdb::Database::new();
        db.load_font_data(data);
        let family = db
            .faces()
            .next()
            .and_then(|f| f.families.first().map(|(n, _)| n.clone()))
            .ok_or_else(|| {
                format!(
                    "{} is not a font resvg can use; pass a TrueType or OpenType file",
                    font.display()
                )
            })?;
        db.set_sans_serif_family(family.clone());
        db.set_serif_family(family.clone());
        db.set_monospace_family(family.clone());
        Ok(Self {
            options: usvg::Options {
                font_family: family,
                fontdb: Arc::new(db),
                ..usvg::Options::default()
            },
        })
    }

    /// Renders one SVG document to PNG bytes at twice its size (sharp on high-density screens).
    pub(crate) fn render(&self, svg: &str) -> Result<Vec<u8>, String> {
        let tree = usvg::Tree::from_str(svg, &self.options).map_err(|e| e.to_string())?;
        let scale = 2.0f32;
        let size = tree
            .size()
            .to_int_size()
            .scale_by(scale)
            .ok_or("chart too large")?;
        let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
            .ok_or("chart has zero or too large size")?;
        pixmap.fill(tiny_skia::Color::WHITE);
        resvg::render(
            &tree,
            tiny_skia::Transform::from_scale(scale, scale),
            &mut pixmap.as_mut(),
        );
        pixmap.encode_png().map_err(|e| e.to_string())
    }
}
