//! Translation galleries: `DIR_OUT/index.html` with every input beside its translation(s).
//!
//! Large folders are split into pages of [`PER_PAGE`] rows: `index.html`, `page-2.html`, ...,
//! each linking to the others. Images are linked by paths relative to the output folder.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::{escape, page, relative_path, url_of};
use cyclegan_data::atomic::write_atomic;

/// Rows per page.
pub const PER_PAGE: usize = 50;

/// One row of a gallery: a name and its images, one per column.
#[derive(Debug, Clone)]
pub struct GalleryItem {
    /// Shown above the row (usually the input's file name).
    pub name: String,
    /// The row's images, in column order (e.g. input, translation).
    pub images: Vec<PathBuf>,
}

/// File name of gallery page `n` (1-based).
pub fn page_file(n: usize) -> String {
    if n == 1 {
        "index.html".to_string()
    } else {
        format!("page-{n}.html")
    }
}

/// Write the gallery of `items` under `out_dir` (`columns` heads the image columns), in pages
/// of `per_page` rows; returns the pages written. Each page is written atomically.
pub fn write_gallery(
    out_dir: &Path,
    title: &str,
    columns: &[&str],
    items: &[GalleryItem],
    per_page: usize,
) -> Result<Vec<PathBuf>> {
    if items.is_empty() {
        bail!("{}: no images to show in a gallery", out_dir.display());
    }
    let per_page = per_page.max(1);
    let pages = items.len().div_ceil(per_page);
    let mut written = Vec::with_capacity(pages);
    for (i, chunk) in items.chunks(per_page).enumerate() {
        let n = i + 1;
        let nav = navigation(n, pages);
        let mut body = format!(
            "<h1>{}</h1>\n<p class=\"muted\">{} images{}</p>\n{nav}\n<table class=\"grid\">\n<tr><th>file</th>",
            escape(title),
            items.len(),
            if pages > 1 {
                format!(", page {n} of {pages}")
            } else {
                String::new()
            }
        );
        for c in columns {
            body.push_str(&format!("<th>{}</th>", escape(c)));
        }
        body.push_str("</tr>\n");
        for item in chunk {
            body.push_str(&format!("<tr><td>{}</td>", escape(&item.name)));
            for img in &item.images {
                let url = url_of(&relative_path(img, out_dir));
                body.push_str(&format!(
                    "<td><a href=\"{url}\"><img src=\"{url}\" alt=\"{}\" loading=\"eager\"></a></td>",
                    escape(&item.name)
                ));
            }
            body.push_str("</tr>\n");
        }
        body.push_str("</table>\n");
        body.push_str(&nav);
        let path = out_dir.join(page_file(n));
        write_atomic(&path, page(title, &body).as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

/// Links to every page, the current one unlinked; empty for a single page.
fn navigation(current: usize, pages: usize) -> String {
    if pages <= 1 {
        return String::new();
    }
    let mut nav = String::from("<nav class=\"pages\">pages: ");
    for n in 1..=pages {
        if n == current {
            nav.push_str(&format!("<span>[{n}]</span>"));
        } else {
            nav.push_str(&format!("<a href=\"{}\">{n}</a>", page_file(n)));
        }
    }
    nav.push_str("</nav>\n");
    nav
}

/// Gallery rows for a folder translation: each input with its output, named by file name.
pub fn items_of_jobs(jobs: &[(PathBuf, PathBuf)]) -> Vec<GalleryItem> {
    jobs.iter()
        .filter(|(_, output)| output.exists())
        .map(|(input, output)| GalleryItem {
            name: input
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            images: vec![input.clone(), output.clone()],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_link_each_other_and_every_image_relatively() {
        let tmp = tempfile::tempdir().unwrap();
        let (inp, out) = (tmp.path().join("in"), tmp.path().join("out"));
        std::fs::create_dir_all(&inp).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        let items: Vec<GalleryItem> = (0..5)
            .map(|i| GalleryItem {
                name: format!("<img {i}>.png"),
                images: vec![inp.join(format!("{i}.png")), out.join(format!("{i}.png"))],
            })
            .collect();
        let pages = write_gallery(&out, "test", &["input", "output"], &items, 2).unwrap();
        assert_eq!(pages.len(), 3);
        assert_eq!(pages[1], out.join("page-2.html"));
        let first = std::fs::read_to_string(&pages[0]).unwrap();
        assert!(first.contains("src=\"../in/0.png\""), "{first}");
        assert!(first.contains("src=\"0.png\""));
        assert!(!first.contains("4.png"));
        assert!(first.contains("href=\"page-3.html\""));
        assert!(first.contains("&lt;img 0&gt;.png"));
        let last = std::fs::read_to_string(&pages[2]).unwrap();
        assert!(last.contains("src=\"../in/4.png\"") && last.contains("href=\"index.html\""));
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn an_empty_gallery_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(write_gallery(tmp.path(), "x", &["a"], &[], 10).is_err());
    }
}
