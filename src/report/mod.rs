//! Self-contained HTML pages: a training run's page and translation galleries.
//!
//! Pages open from disk with no server and no network: styles are inline, the loss plot is an
//! inline SVG, and images are linked by paths relative to the page. Every page is written to a
//! temporary name and renamed, so a reader never sees half a page.
//!
//! - [`run_page`]: `RUN_DIR/index.html` (summary, loss curves, samples, guard events,
//!   checkpoints, evaluation history);
//! - [`gallery`]: `DIR_OUT/index.html` of `translate --report` (inputs beside outputs);
//! - [`plot`]: the loss curves as SVG.

pub mod gallery;
pub mod plot;
pub mod run_page;

use std::path::{Component, Path, PathBuf};

pub use gallery::{GalleryItem, write_gallery};
pub use run_page::{RunStatus, write_run_page};

/// `text` safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A relative path as a URL (each byte outside the unreserved set percent-encoded, `/` kept).
pub fn url_of(rel: &Path) -> String {
    let mut out = String::new();
    for (i, part) in rel.components().enumerate() {
        if i > 0 {
            out.push('/');
        }
        let s = part.as_os_str().to_string_lossy();
        for b in s.as_bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(*b as char)
                }
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    out
}

/// `target` relative to the folder `base` (both made absolute first), e.g. `../in/a.png`.
pub fn relative_path(target: &Path, base: &Path) -> PathBuf {
    // Resolve symbolic links so both sides are spelled alike (a file not written yet: its
    // folder).
    let abs = |p: &Path| {
        std::fs::canonicalize(p)
            .ok()
            .or_else(|| {
                let parent = std::fs::canonicalize(p.parent()?).ok()?;
                Some(parent.join(p.file_name()?))
            })
            .unwrap_or_else(|| {
                std::env::current_dir()
                    .map(|d| d.join(p))
                    .unwrap_or_else(|_| p.to_path_buf())
            })
    };
    let (t, b) = (abs(target), abs(base));
    let tc: Vec<Component> = t.components().collect();
    let bc: Vec<Component> = b.components().collect();
    let common = tc.iter().zip(&bc).take_while(|(x, y)| x == y).count();
    let mut rel = PathBuf::new();
    for _ in common..bc.len() {
        rel.push("..");
    }
    for c in &tc[common..] {
        rel.push(c.as_os_str());
    }
    rel
}

/// The shared page frame: `<head>` with inline styles, then `body`.
fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n",
        escape(title)
    )
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222;background:#fafafa}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.25em .7em;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;image-rendering:auto;border:1px solid #ccc;background:#fff}
.grid td img{max-width:380px;min-width:160px}.samples img{max-width:100%;min-width:480px}
figure{margin:.6em 0}figcaption{font-size:.9em;color:#555}
nav.pages a,nav.pages span{margin-right:.6em}
pre{background:#f3f3f3;padding:.7em;overflow:auto;font-size:.85em}
.muted{color:#777}.plot{background:#fff;border:1px solid #ddd}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_urls() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(
            url_of(Path::new("../in dir/a#1.png")),
            "../in%20dir/a%231.png"
        );
    }

    #[test]
    fn relative_paths_climb_to_the_common_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("in/sub"), tmp.path().join("out"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        assert_eq!(
            relative_path(&a.join("x.png"), &b),
            PathBuf::from("../in/sub/x.png")
        );
        assert_eq!(relative_path(&b.join("y.png"), &b), PathBuf::from("y.png"));
    }
}
