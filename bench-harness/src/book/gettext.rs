//! The book's translations: gettext catalogues (`book/po/LANG.po`) made and applied the way the
//! mdBook ecosystem does it (Google's mdbook-i18n-helpers, used here as a library so `isolab
//! book --lang fr` needs nothing installed): [`write_template`] extracts every paragraph, heading,
//! list item and table cell of the English sources into a template (`messages.pot`, as
//! `mdbook-xgettext` would), translators fill a copy per language, and [`translate`] swaps each
//! message for its translation before the placeholders are filled (as `mdbook-gettext` would).
//! Placeholders (`{{isolab:...}}`) stay inside the messages: a translation keeps them as they are.

use std::path::{Path, PathBuf};

use mdbook::book::Book;
use polib::catalog::Catalog;
use polib::message::{Message, MessageMutView};
use polib::metadata::CatalogMetadata;

use super::BookError;
use crate::i18n::Lang;

/// The header fields a catalogue must have (gettext's standard header).
const HEADER_FIELDS: [&str; 9] = [
    "Project-Id-Version",
    "POT-Creation-Date",
    "PO-Revision-Date",
    "Language-Team",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Language",
    "Plural-Forms",
];

/// The folder of the catalogues, inside the book's sources.
pub const PO_DIR: &str = "po";

/// The catalogue file of `lang` (`po/fr.po`), or `None` for English (the source) and the
/// pseudo-locale (English Markdown; only the generated text is accented).
pub fn catalogue_path(book_src: &Path, lang: Lang) -> Option<PathBuf> {
    match lang {
        Lang::Fr => Some(book_src.join(PO_DIR).join("fr.po")),
        Lang::En | Lang::Pseudo => None,
    }
}

/// Reads the catalogue of `lang`; `None` when the language is the source's.
pub fn load(book_src: &Path, lang: Lang) -> Result<Option<Catalog>, BookError> {
    let Some(path) = catalogue_path(book_src, lang) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).map_err(super::io_err("cannot read", &path))?;
    // polib panics on a header without one of these fields: say which is missing instead.
    let missing: Vec<&str> = HEADER_FIELDS
        .iter()
        .copied()
        .filter(|f| !text.contains(&format!("\"{f}:")))
        .collect();
    if !missing.is_empty() {
        return Err(BookError::Catalogue(
            path,
            format!(
                "its header (the first msgstr) lacks {}; copy the header of book/po/fr.po",
                missing.join(", ")
            ),
        ));
    }
    let mut catalog = polib::po_file::parse(&path)
        .map_err(|e| BookError::Catalogue(path.clone(), e.to_string()))?;
    mdbook_i18n_helpers::gettext::add_stripped_summary_translations(&mut catalog);
    Ok(Some(catalog))
}

/// Translates every chapter and title of `book` with `catalog`. A message the catalogue lacks
/// (or marks fuzzy) stays English, as with `mdbook-gettext`; `./run-tests` refuses a catalogue
/// with such messages, so a release never has them.
pub fn translate(catalog: &Catalog, book: &mut Book) -> Result<(), BookError> {
    mdbook_i18n_helpers::gettext::translate_book(catalog, book)
        .map_err(|e| BookError::Mdbook(format!("translating the book: {e:#}")))
}

/// The chapter files of the book in the order of its `SUMMARY.md`, the summary first.
fn sources_in_order(book_src: &Path) -> Result<Vec<PathBuf>, BookError> {
    let src = book_src.join("src");
    let summary_path = src.join("SUMMARY.md");
    let summary = std::fs::read_to_string(&summary_path)
        .map_err(super::io_err("cannot read", &summary_path))?;
    let mut files = vec![PathBuf::from("SUMMARY.md")];
    for line in summary.lines() {
        if let Some(target) = line
            .split("](")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .filter(|t| t.ends_with(".md"))
        {
            let p = PathBuf::from(target);
            if !files.contains(&p) {
                files.push(p);
            }
        }
    }
    Ok(files)
}

/// The template of every message of the book's English sources, with where each comes from
/// (`src/03-container.md:12`), in the book's order.
pub fn template(book_src: &Path) -> Result<Catalog, BookError> {
    let mut metadata = CatalogMetadata::new();
    metadata.project_id_version = "isolab book".into();
    metadata.mime_version = "1.0".into();
    metadata.content_type = "text/plain; charset=UTF-8".into();
    metadata.content_transfer_encoding = "8bit".into();
    let mut catalog = Catalog::new(metadata);
    for rel in sources_in_order(book_src)? {
        let path = book_src.join("src").join(&rel);
        let text = std::fs::read_to_string(&path).map_err(super::io_err("cannot read", &path))?;
        let messages = mdbook_i18n_helpers::extract_messages(&text).map_err(|e| {
            BookError::Mdbook(format!(
                "extracting the messages of {}: {e}",
                path.display()
            ))
        })?;
        for (line, m) in messages {
            let msgid = if rel.as_os_str() == "SUMMARY.md" {
                strip_link(&m.message)
            } else {
                m.message
            };
            let source = format!("src/{}:{line}", rel.display());
            match catalog.find_message_mut(None, &msgid, None) {
                Some(mut existing) => {
                    let s = existing.source_mut();
                    s.push('\n');
                    s.push_str(&source);
                }
                None => catalog.append_or_update(
                    Message::build_singular()
                        .with_source(source)
                        .with_msgid(msgid)
                        .with_comments(m.comment)
                        .done(),
                ),
            }
        }
    }
    Ok(catalog)
}

/// `[Foo *Bar*](foo-bar.md)` → `Foo *Bar*`: the summary's entries are links, their titles are
/// what is translated (as mdbook-xgettext does).
fn strip_link(text: &str) -> String {
    match text.strip_prefix('[').and_then(|t| t.rsplit_once("](")) {
        Some((title, rest)) if rest.ends_with(')') => title.to_owned(),
        _ => text.to_owned(),
    }
}

/// Writes the template ([`template`]) to `out` (`book/po/messages.pot`).
pub fn write_template(book_src: &Path, out: &Path) -> Result<usize, BookError> {
    let catalog = template(book_src)?;
    polib::po_file::write(&catalog, out).map_err(super::io_err("cannot write", out))?;
    Ok(catalog.count())
}
