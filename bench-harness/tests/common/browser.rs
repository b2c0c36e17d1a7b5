//! Opening built pages in a real browser: headless Chromium driven over the DevTools protocol
//! (the `headless_chrome` crate: synchronous, no async runtime, its protocol bundled so it works
//! offline), pages served as `file://`. A page fails on a console error or an uncaught
//! exception, on a resource that did not load (the browser logs it as an error), on an image
//! that did not load or has no size, and on an inline SVG figure that did not render.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::{Browser, LaunchOptions};

/// Chromium's flags on these machines: headless, no sandbox (root), no GPU, and nothing that
/// reaches the network (the machine's closed network refuses it, many times per start).
const FLAGS: [&str; 6] = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// What the browser found wrong with one page.
#[derive(Debug)]
pub struct PageCheck {
    pub page: PathBuf,
    pub problems: Vec<String>,
    /// Images that loaded and have a size.
    pub images_ok: usize,
    /// Inline SVG figures that rendered.
    pub svgs_ok: usize,
}

/// Chromium from Debian's `chromium` package (or `$CHROMIUM`); a clear failure when missing.
pub fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(p);
    }
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "Chromium is not installed: `apt-get install chromium` (./run-tests installs it), or point \
         CHROMIUM at a Chromium or Chrome binary"
    );
}

/// What the page reports about its images and inline SVGs once every image has loaded or
/// failed: JSON `{images: [[src, ok]], svgs: [[id, ok]]}`.
const PROBE: &str = r#"
new Promise(done => {
  const imgs = Array.from(document.images);
  const settle = i => i.complete ? Promise.resolve() :
    new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); });
  Promise.all(imgs.map(settle)).then(() => {
    const images = imgs.map(i => {
      const r = i.getBoundingClientRect();
      return [i.getAttribute('src') || '', i.complete && i.naturalWidth > 0 && r.width > 0 && r.height > 0];
    });
    const svgs = Array.from(document.querySelectorAll('figure svg, svg.figure')).map(s => {
      let ok = false;
      try {
        const b = s.getBBox();
        const r = s.getBoundingClientRect();
        ok = b.width > 0 && b.height > 0 && r.width > 0 && s.querySelectorAll('text').length > 0;
      } catch (e) { ok = false; }
      return [s.closest('figure') ? (s.closest('figure').id || 'figure') : 'svg', ok];
    });
    done(JSON.stringify({ images, svgs }));
  });
})
"#;

/// Opens every page in one headless Chromium and reports what went wrong on each.
pub fn check_pages(pages: &[PathBuf]) -> Vec<PageCheck> {
    let profile = tempfile::tempdir().unwrap();
    let flags: Vec<&OsStr> = FLAGS.iter().map(OsStr::new).collect();
    let options = LaunchOptions {
        headless: true,
        sandbox: false,
        path: Some(chromium()),
        user_data_dir: Some(profile.path().to_path_buf()),
        args: flags,
        idle_browser_timeout: Duration::from_secs(300),
        ..LaunchOptions::default()
    };
    let browser = Browser::new(options).unwrap_or_else(|e| panic!("starting Chromium: {e:#}"));
    let mut out = Vec::new();
    for page in pages {
        let tab = browser.new_tab().unwrap();
        tab.set_default_timeout(Duration::from_secs(120));
        let problems = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = Arc::clone(&problems);
        tab.add_event_listener(Arc::new(move |event: &Event| {
            let msg = match event {
                Event::LogEntryAdded(e) => {
                    let entry = &e.params.entry;
                    (format!("{:?}", entry.level) == "Error")
                        .then(|| format!("console: {} ({:?})", entry.text, entry.url))
                }
                Event::RuntimeExceptionThrown(e) => {
                    Some(format!("exception: {}", e.params.exception_details.text))
                }
                Event::RuntimeConsoleAPICalled(e) => {
                    let kind = format!("{:?}", e.params.Type);
                    (kind == "Error" || kind == "Assert")
                        .then(|| format!("console.{kind}: {:?}", e.params.args))
                }
                _ => None,
            };
            if let Some(m) = msg {
                sink.lock().unwrap().push(m);
            }
        }))
        .unwrap();
        tab.enable_log().unwrap();
        tab.enable_runtime().unwrap();
        let url = format!("file://{}", page.canonicalize().unwrap().display());
        tab.navigate_to(&url)
            .and_then(|t| t.wait_until_navigated())
            .unwrap_or_else(|e| panic!("opening {url}: {e:#}"));
        let probe = tab
            .evaluate(PROBE, true)
            .unwrap_or_else(|e| panic!("probing {url}: {e:#}"));
        let json: serde_json::Value = probe
            .value
            .as_ref()
            .and_then(|v| v.as_str())
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_else(|| panic!("{url}: the probe returned {probe:?}"));
        let mut problems = problems.lock().unwrap().clone();
        let mut images_ok = 0;
        for img in json["images"].as_array().unwrap() {
            if img[1].as_bool() == Some(true) {
                images_ok += 1;
            } else {
                problems.push(format!("image {} did not load or has no size", img[0]));
            }
        }
        let mut svgs_ok = 0;
        for svg in json["svgs"].as_array().unwrap() {
            if svg[1].as_bool() == Some(true) {
                svgs_ok += 1;
            } else {
                problems.push(format!("inline figure {} did not render", svg[0]));
            }
        }
        let _ = tab.close(false);
        out.push(PageCheck {
            page: page.clone(),
            problems,
            images_ok,
            svgs_ok,
        });
    }
    out
}
