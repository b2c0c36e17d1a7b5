//! Languages: the Rust-side message catalogue (Project Fluent) for every sentence, label and
//! figure text isolab generates into the book and the reports, and numbers written the way each
//! language writes them.
//!
//! The English catalogue (`bench-harness/i18n/en.ftl`) is the source; the French one
//! (`fr.ftl`) carries, above each message, the English text it translates (`# en: ...`). A
//! French message whose English has changed since is *fuzzy*, one missing is *untranslated*:
//! [`check`] counts both, like `msgfmt --statistics` does for the book's gettext catalogue, and
//! the tests fail on either. The pseudo-locale ([`Lang::Pseudo`]) renders every message through
//! `fluent-pseudo` (accented letters), so any plain English left in its output is text that
//! escaped the catalogue.

use std::borrow::Cow;
use std::collections::BTreeMap;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use unic_langid::LanguageIdentifier;

/// The English catalogue: the source of every generated text.
pub const EN_FTL: &str = include_str!("../i18n/en.ftl");
/// The French catalogue.
pub const FR_FTL: &str = include_str!("../i18n/fr.ftl");

/// A language isolab writes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Lang {
    /// English (the source).
    #[default]
    En,
    /// French: decimal comma, narrow no-break spaces between thousands and before units.
    Fr,
    /// For translators: English with every generated text accented (`ƒǿǿ`), so that text which
    /// escaped the catalogues stands out as plain ASCII.
    Pseudo,
}

impl Lang {
    /// The language code (`en`, `fr`, `en-XA` for the pseudo-locale), for `<html lang>` and
    /// mdBook's `book.language`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
            Lang::Pseudo => "en-XA",
        }
    }

    /// Whether numbers are written the French way.
    fn french_numbers(self) -> bool {
        self == Lang::Fr
    }
}

/// Narrow no-break space (U+202F): French thousands separator and the space before `%`, `×`
/// and units.
pub const NNBSP: char = '\u{202f}';

fn pseudo(s: &str) -> Cow<'_, str> {
    fluent_pseudo::transform(s, false, false)
}

/// The messages of one language, with its number format.
pub struct Catalogue {
    lang: Lang,
    bundle: FluentBundle<FluentResource>,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue")
            .field("lang", &self.lang)
            .finish_non_exhaustive()
    }
}

impl Catalogue {
    /// The catalogue of `lang`. The catalogues are compiled in and checked by the tests, so a
    /// syntax error in one is a build-time bug, reported here with its position.
    pub fn new(lang: Lang) -> Self {
        let (ftl, id): (&str, LanguageIdentifier) = match lang {
            Lang::En | Lang::Pseudo => (EN_FTL, "en".parse().unwrap_or_default()),
            Lang::Fr => (FR_FTL, "fr".parse().unwrap_or_default()),
        };
        let resource = match FluentResource::try_new(ftl.to_owned()) {
            Ok(r) => r,
            // Keep what parsed: the messages after a syntax error still work, and the catalogue
            // test names the error.
            Err((r, _)) => r,
        };
        let mut bundle = FluentBundle::new_concurrent(vec![id]);
        // No Unicode isolation marks around arguments: the output is Markdown, HTML and a
        // terminal, all left-to-right.
        bundle.set_use_isolating(false);
        if lang == Lang::Pseudo {
            bundle.set_transform(Some(pseudo));
        }
        // Duplicate ids are reported by the catalogue test; the first one wins here.
        let _ = bundle.add_resource(resource);
        Self { lang, bundle }
    }

    /// The language.
    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// Whether the catalogue has a message `id`.
    pub fn has(&self, id: &str) -> bool {
        self.bundle.has_message(id)
    }

    /// The message `id` with its arguments. A missing id yields the id itself in angle brackets
    /// (visible, and caught by the tests), never a panic.
    pub fn tr(&self, id: &str, args: &[(&str, &str)]) -> String {
        self.format(id, None, args)
    }

    /// [`Catalogue::tr`] with a count that selects the plural form (`$n`), given as a number so
    /// Fluent's plural rules apply (French: 0 and 1 are singular).
    pub fn tr_n(&self, id: &str, n: usize, args: &[(&str, &str)]) -> String {
        self.format(id, Some(n), args)
    }

    fn format(&self, id: &str, n: Option<usize>, args: &[(&str, &str)]) -> String {
        let Some(pattern) = self.bundle.get_message(id).and_then(|m| m.value()) else {
            return format!("⟨{id}⟩");
        };
        let mut fargs = FluentArgs::new();
        if let Some(n) = n {
            fargs.set("n", FluentValue::from(n));
        }
        for (k, v) in args {
            fargs.set(*k, FluentValue::from(*v));
        }
        let mut errors = Vec::new();
        self.bundle
            .format_pattern(pattern, Some(&fargs), &mut errors)
            .into_owned()
    }

    /// A number already formatted the English way (`1234.5`, `3.02`, `-0.5`, `1.2e-5`) rewritten
    /// for this language: French gets a decimal comma and narrow no-break spaces between groups
    /// of three digits when the integer part has five digits or more (`12 345,6`).
    pub fn num(&self, english: &str) -> String {
        if !self.lang.french_numbers() {
            return english.to_owned();
        }
        french_number(english)
    }

    /// `value unit` with the language's space before the unit (French: narrow no-break space).
    pub fn with_unit(&self, number: &str, unit: &str) -> String {
        if unit.is_empty() {
            return self.num(number);
        }
        let space = if self.lang.french_numbers() {
            NNBSP
        } else {
            ' '
        };
        format!("{}{space}{}", self.num(number), self.unit(unit))
    }

    /// A unit as the language writes it: French writes bytes as octets (`Mio`, `Go/s`).
    pub fn unit(&self, unit: &str) -> String {
        if !self.lang.french_numbers() {
            return unit.to_owned();
        }
        const OCTETS: [(&str, &str); 8] = [
            ("KiB", "Kio"),
            ("MiB", "Mio"),
            ("GiB", "Gio"),
            ("TiB", "Tio"),
            ("kB", "ko"),
            ("MB", "Mo"),
            ("GB", "Go"),
            ("TB", "To"),
        ];
        let mut out = unit.to_owned();
        for (en, fr) in OCTETS {
            out = out.replace(en, fr);
        }
        out
    }

    /// A ratio such as `1.03×` (French: `1,03×`).
    pub fn times(&self, english: &str) -> String {
        format!("{}×", self.num(english))
    }

    /// A percentage: `95%`, French `95 %`.
    pub fn percent(&self, english: &str) -> String {
        if self.lang.french_numbers() {
            format!("{}{NNBSP}%", self.num(english))
        } else {
            format!("{english}%")
        }
    }

    /// Rewrites every number inside free text (a sentence or a table cell made the English way)
    /// for this language; words, identifiers (`vcpus=2`, `io-rand`) and version strings
    /// (`6.1.0`) are left alone.
    pub fn nums_in(&self, text: &str) -> String {
        if !self.lang.french_numbers() {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len() + 8);
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let prev_word =
                i > 0 && (chars[i - 1].is_alphanumeric() || "_=.-/:".contains(chars[i - 1]));
            if c.is_ascii_digit() && !prev_word {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let mut token: String = chars[start..i].iter().collect();
                let mut tail = String::new();
                while token.ends_with('.') {
                    token.pop();
                    tail.push('.');
                }
                let glued =
                    i < chars.len() && (chars[i].is_alphabetic() || "_-/:".contains(chars[i]));
                if token.matches('.').count() > 1 || glued {
                    out.push_str(&token);
                } else {
                    out.push_str(&french_number(&token));
                    // `5%` is written `5 %` in French.
                    if tail.is_empty() && chars.get(i) == Some(&'%') {
                        out.push(NNBSP);
                    }
                }
                out.push_str(&tail);
                continue;
            }
            out.push(c);
            i += 1;
        }
        out
    }
}

/// `1234.5` → `1 234,5` only from five integer digits (`12 345,6`; `2048` stays), as French
/// typography does; exponents and signs are kept.
fn french_number(english: &str) -> String {
    let (mantissa, exponent) = match english.find(['e', 'E']) {
        Some(i) => english.split_at(i),
        None => (english, ""),
    };
    let (sign, digits) = match mantissa.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", mantissa),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let grouped = if int.len() >= 5 && int.chars().all(|c| c.is_ascii_digit()) {
        let mut g = String::new();
        for (k, c) in int.chars().enumerate() {
            if k > 0 && (int.len() - k) % 3 == 0 {
                g.push(NNBSP);
            }
            g.push(c);
        }
        g
    } else {
        int.to_owned()
    };
    match frac {
        Some(f) => format!("{sign}{grouped},{f}{exponent}"),
        None => format!("{sign}{grouped}{exponent}"),
    }
}

/// Completeness of a translated catalogue, as `msgfmt --statistics` counts a gettext one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statistics {
    /// Messages translated from the current English.
    pub translated: Vec<String>,
    /// Messages translated from an English text that has changed since (`# en:` differs).
    pub fuzzy: Vec<String>,
    /// English messages with no translation.
    pub untranslated: Vec<String>,
    /// Translations of messages the English catalogue no longer has.
    pub obsolete: Vec<String>,
    /// Syntax errors, duplicate ids, and translations that use an argument the English does not
    /// pass, or drop one it does.
    pub errors: Vec<String>,
}

impl std::fmt::Display for Statistics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} translated messages, {} fuzzy translations, {} untranslated messages, {} obsolete, {} errors.",
            self.translated.len(),
            self.fuzzy.len(),
            self.untranslated.len(),
            self.obsolete.len(),
            self.errors.len()
        )
    }
}

/// One message of a `.ftl` file as written: its id, its text (value and attributes, as in the
/// file) and the comment lines above it.
#[derive(Debug, Clone)]
struct Entry {
    text: String,
    comments: Vec<String>,
}

/// Splits a `.ftl` file into messages by id. Fluent's own parser checks the syntax (see
/// [`check`]); this keeps each message's source text, which is what `# en:` quotes.
fn entries(ftl: &str, errors: &mut Vec<String>) -> BTreeMap<String, Entry> {
    let mut out: BTreeMap<String, Entry> = BTreeMap::new();
    let mut comments = Vec::new();
    let mut current: Option<(String, Entry)> = None;
    let mut finish = |cur: Option<(String, Entry)>, out: &mut BTreeMap<String, Entry>| {
        if let Some((id, e)) = cur {
            if out.insert(id.clone(), e).is_some() {
                errors.push(format!("duplicate message id {id}"));
            }
        }
    };
    for line in ftl.lines() {
        if line.starts_with(' ') && current.is_some() {
            if let Some((_, e)) = current.as_mut() {
                e.text.push('\n');
                e.text.push_str(line.trim());
            }
            continue;
        }
        finish(current.take(), &mut out);
        if let Some(c) = line.strip_prefix('#') {
            comments.push(c.trim_start_matches(['#', ' ']).to_owned());
        } else if let Some((id, value)) = line.split_once('=') {
            let id = id.trim();
            if !id.is_empty() && !id.starts_with('-') {
                current = Some((
                    id.to_owned(),
                    Entry {
                        text: value.trim().to_owned(),
                        comments: std::mem::take(&mut comments),
                    },
                ));
            } else {
                comments.clear();
            }
        } else if line.trim().is_empty() {
            comments.clear();
        }
    }
    finish(current.take(), &mut out);
    out
}

/// The `$name` arguments a message uses.
fn arguments(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .split('$')
        .skip(1)
        .map(|s| {
            s.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                .collect()
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Compares a translation (`translated`, with `# en:` comments) with the English catalogue.
pub fn check(english: &str, translated: &str) -> Statistics {
    let mut st = Statistics::default();
    for (name, ftl) in [("en", english), ("translation", translated)] {
        if let Err((_, errs)) = FluentResource::try_new(ftl.to_owned()) {
            for e in errs {
                st.errors.push(format!("{name}: {e:?}"));
            }
        }
    }
    let en = entries(english, &mut st.errors);
    let tr = entries(translated, &mut st.errors);
    for (id, e) in &en {
        let Some(t) = tr.get(id) else {
            st.untranslated.push(id.clone());
            continue;
        };
        if t.text.trim().is_empty() {
            st.untranslated.push(id.clone());
            continue;
        }
        let quoted: Vec<&str> = t
            .comments
            .iter()
            .filter_map(|c| c.strip_prefix("en:"))
            .map(str::trim)
            .collect();
        let source = e
            .text
            .split('\n')
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ");
        if quoted.join(" ") != source {
            st.fuzzy.push(id.clone());
            continue;
        }
        if arguments(&e.text) != arguments(&t.text) {
            st.errors.push(format!(
                "{id}: the translation uses arguments {:?}, the English {:?}",
                arguments(&t.text),
                arguments(&e.text)
            ));
            continue;
        }
        st.translated.push(id.clone());
    }
    st.obsolete = tr
        .keys()
        .filter(|k| !en.contains_key(*k))
        .cloned()
        .collect();
    st
}

/// The English message ids, for tests that check every id used in the code exists.
pub fn english_ids() -> Vec<String> {
    entries(EN_FTL, &mut Vec::new()).into_keys().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn french_numbers() {
        let fr = Catalogue::new(Lang::Fr);
        assert_eq!(fr.num("3.02"), "3,02");
        assert_eq!(fr.num("2048"), "2048");
        assert_eq!(fr.num("12345.6"), "12\u{202f}345,6");
        assert_eq!(fr.num("-1234567"), "-1\u{202f}234\u{202f}567");
        assert_eq!(fr.num("1.5e-5"), "1,5e-5");
        assert_eq!(fr.with_unit("3.02", "ms"), "3,02\u{202f}ms");
        assert_eq!(fr.with_unit("512", "MiB"), "512\u{202f}Mio");
        assert_eq!(fr.unit("GB/s"), "Go/s");
        assert_eq!(fr.percent("95"), "95\u{202f}%");
        assert_eq!(fr.times("1.03"), "1,03×");
        assert_eq!(
            fr.nums_in("3.02 ms, io-rand v6.1.0, vcpus=2 and 12345.5 B, 0.5."),
            "3,02 ms, io-rand v6.1.0, vcpus=2 and 12\u{202f}345,5 B, 0,5."
        );
        assert_eq!(fr.nums_in("±2.5%"), "±2,5\u{202f}%");
        let en = Catalogue::new(Lang::En);
        assert_eq!(en.num("12345.6"), "12345.6");
        assert_eq!(en.percent("95"), "95%");
    }

    /// The drift check of the Rust-side catalogue: every English message has a French
    /// translation made from its current text (0 untranslated, 0 fuzzy), with the same
    /// arguments, and both files parse.
    #[test]
    fn french_catalogue_is_complete_and_current() {
        let st = check(EN_FTL, FR_FTL);
        println!("bench-harness/i18n/fr.ftl: {st}");
        assert!(st.errors.is_empty(), "errors: {:?}", st.errors);
        assert!(
            st.untranslated.is_empty(),
            "untranslated in fr.ftl (add them, with `# en:` quoting the English): {:?}",
            st.untranslated
        );
        assert!(
            st.fuzzy.is_empty(),
            "fuzzy in fr.ftl (the English changed: update the translation and its `# en:` line): {:?}",
            st.fuzzy
        );
        assert!(
            st.obsolete.is_empty(),
            "obsolete in fr.ftl: {:?}",
            st.obsolete
        );
        assert!(!st.translated.is_empty());
    }

    /// The check itself sees drift: a changed English text makes its translation fuzzy, a new
    /// one is untranslated, an argument dropped is an error.
    #[test]
    fn check_sees_fuzzy_untranslated_and_arguments() {
        let en = "a = one { $x }\nb = two\nc = three\n";
        let fr = "# en: one { $x }\na = un { $x }\n# en: deux\nb = deux\n# en: three\nc = trois\n";
        let st = check(en, fr);
        assert_eq!(st.translated, vec!["a".to_owned(), "c".to_owned()]);
        assert_eq!(st.fuzzy, vec!["b".to_owned()]);
        let st = check("a = one { $x }\nd = new\n", "# en: one { $x }\na = un\n");
        assert_eq!(st.untranslated, vec!["d".to_owned()]);
        assert_eq!(st.errors.len(), 1, "{:?}", st.errors);
    }

    #[test]
    fn pseudo_locale_accents_every_message() {
        let p = Catalogue::new(Lang::Pseudo);
        let s = p.tr("not-measured", &[]);
        assert!(!s.is_ascii(), "{s}");
    }
}
