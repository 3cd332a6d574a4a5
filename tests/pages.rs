//! The HTML pages as a person sees them: a tiny training run's `index.html` and a
//! `translate --report` gallery rendered in headless Chromium (Debian package `chromium`),
//! with a screenshot each; no console errors, the loss plot drawn, every image loaded.
//!
//! Skipped with a note when no Chromium is installed (`CHROMIUM` names another binary).
//! `CYCLEGAN_UPDATE_SCREENSHOTS=1` copies the screenshots into `docs/` (the README shows them).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{bin, run, write_good};

const TIMEOUT: Duration = Duration::from_secs(300);

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// Records load failures, script errors and `console.error`, then, once the page has loaded,
/// writes what it saw into `<pre id="page-check">` as JSON (read back from `--dump-dom`).
const PROBE: &str = r#"<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  window.__errors.push(t && t !== window && t.src ? 'failed to load ' + t.src : String(e.message));
}, true);
var consoleError = console.error;
console.error = function () {
  window.__errors.push(Array.prototype.join.call(arguments, ' '));
  consoleError.apply(console, arguments);
};
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var result = {
    images: imgs.length,
    loaded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
    plot: document.querySelectorAll('#loss-plot polyline, #loss-plot circle').length,
    errors: window.__errors
  };
  var pre = document.createElement('pre');
  pre.id = 'page-check';
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script>"#;

fn chromium_cmd(chrome: &Path, profile: &Path) -> Command {
    let mut c = Command::new(chrome);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--virtual-time-budget=5000",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// What the probe saw on `page`.
#[derive(Debug)]
struct Seen {
    images: u64,
    loaded: u64,
    plot: u64,
    errors: Vec<String>,
}

fn check_page(chrome: &Path, page: &Path, profile: &Path) -> Seen {
    let html = std::fs::read_to_string(page).unwrap();
    let outside = html.replace("http://www.w3.org/2000/svg", "");
    assert!(
        !outside.contains("http://") && !outside.contains("https://"),
        "{}: the page links to the network",
        page.display()
    );
    // A probed copy beside the page, so relative links resolve the same way.
    let probed = page.with_file_name(".page-check.html");
    std::fs::write(
        &probed,
        html.replacen("<head>", &format!("<head>\n{PROBE}"), 1),
    )
    .unwrap();
    let url = format!("file://{}", probed.canonicalize().unwrap().display());
    let f = run(
        chromium_cmd(chrome, profile).arg("--dump-dom").arg(&url),
        TIMEOUT,
    );
    std::fs::remove_file(&probed).unwrap();
    assert_eq!(f.code, Some(0), "{}", f.describe());
    let start = f.stdout.find("<pre id=\"page-check\">").unwrap_or_else(|| {
        panic!(
            "{}: the probe did not report (page never loaded?)\n{}",
            page.display(),
            f.describe()
        )
    }) + "<pre id=\"page-check\">".len();
    let end = start + f.stdout[start..].find("</pre>").unwrap();
    let json = f.stdout[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut errors: Vec<String> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap_or_default().to_string())
        .collect();
    // Errors Chromium logs itself (uncaught exceptions reported before the probe ran).
    errors.extend(
        f.stderr
            .lines()
            .filter(|l| l.contains("CONSOLE") && (l.contains("Uncaught") || l.contains("Error")))
            .map(String::from),
    );
    Seen {
        images: v["images"].as_u64().unwrap(),
        loaded: v["loaded"].as_u64().unwrap(),
        plot: v["plot"].as_u64().unwrap(),
        errors,
    }
}

fn screenshot(chrome: &Path, page: &Path, profile: &Path, out: &Path, height: u32) {
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let f = run(
        chromium_cmd(chrome, profile)
            .arg(format!("--screenshot={}", out.display()))
            .arg(format!("--window-size=1280,{height}"))
            .arg(&url),
        TIMEOUT,
    );
    assert_eq!(f.code, Some(0), "{}", f.describe());
    let shot = image::open(out).unwrap().to_rgb8();
    assert_eq!(shot.dimensions(), (1280, height));
    let first = *shot.get_pixel(0, 0);
    assert!(shot.pixels().any(|p| *p != first), "blank screenshot");
    if std::env::var_os("CYCLEGAN_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::copy(out, docs.join(out.file_name().unwrap())).unwrap();
    }
}

#[test]
fn run_page_and_gallery_render_in_headless_chromium() {
    let Some(chrome) = chromium() else {
        eprintln!(
            "note: no chromium found (apt-get install chromium, or set CHROMIUM): page rendering test skipped"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_good(&data.join("trainA"), 3, 32, 1);
    write_good(&data.join("trainB"), 3, 32, 2);
    write_good(&data.join("testA"), 3, 32, 3);
    let run_dir = tmp.path().join("run");
    run(
        bin()
            .arg("train")
            .arg(&data)
            .arg("--out")
            .arg(&run_dir)
            .args(["--ngf", "4", "--ndf", "4", "--blocks", "1"])
            .args([
                "--load-size",
                "32",
                "--crop-size",
                "32",
                "--max-iters",
                "4",
                "--quiet",
            ]),
        TIMEOUT,
    )
    .expect(0);
    run(bin().arg("run-page").arg(&run_dir), TIMEOUT).expect(0);
    let out = tmp.path().join("translated");
    run(
        bin()
            .args(["translate", "--quiet", "--report", "--model"])
            .arg(&run_dir)
            .arg(data.join("testA"))
            .arg(&out),
        TIMEOUT,
    )
    .expect(0);

    let profile = tmp.path().join("chromium-profile");
    let page = run_dir.join("index.html");
    let seen = check_page(&chrome, &page, &profile);
    assert!(seen.errors.is_empty(), "run page: {:?}", seen.errors);
    assert!(seen.plot >= 1, "run page: no loss curve drawn: {seen:?}");
    assert!(
        seen.images >= 1 && seen.loaded == seen.images,
        "run page images: {seen:?}"
    );
    screenshot(
        &chrome,
        &page,
        &profile,
        &tmp.path().join("run-page.png"),
        1400,
    );

    let gallery = out.join("index.html");
    let seen = check_page(&chrome, &gallery, &profile);
    assert!(seen.errors.is_empty(), "gallery: {:?}", seen.errors);
    assert_eq!(
        (seen.images, seen.loaded),
        (6, 6),
        "gallery: 3 inputs and 3 outputs: {seen:?}"
    );
    screenshot(
        &chrome,
        &gallery,
        &profile,
        &tmp.path().join("gallery.png"),
        700,
    );
}
