//! Translating image files and folders of them; every output written atomically.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use image::RgbImage;

use super::{ImageOptions, Translator};
use cyclegan_data::atomic::write_atomic;

/// Translate one image file to `output` (format from its extension) as `opts` says, written
/// atomically.
///
/// A partial input (a file cut short) is translated from the part present and reported as
/// `Ok(Some(warning))`, or refused when `strict`.
pub fn translate_file(
    t: &Translator,
    input: &Path,
    output: &Path,
    opts: &ImageOptions,
    strict: bool,
) -> Result<Option<String>> {
    let (img, damage) = cyclegan_data::imageio::decode_rgb_checked(input)?;
    let warning = match damage {
        Some(d) if strict => return Err(d.into_error(input).into()),
        Some(d) => Some(format!(
            "{} (translated from the part present; --strict refuses such files)",
            d.into_error(input)
        )),
        None => None,
    };
    let out = t.translate_image(&img, opts, input)?;
    save_image(&out, output)?;
    Ok(warning)
}

/// Save an image atomically (temporary name, then rename), format from the extension.
pub fn save_image(img: &RgbImage, path: &Path) -> Result<()> {
    let format = image::ImageFormat::from_path(path).map_err(|_| {
        anyhow!(
            "{}: unknown image extension; use .png, .jpg, .webp or .bmp",
            path.display()
        )
    })?;
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), format)
        .with_context(|| format!("{}: cannot encode", path.display()))?;
    Ok(write_atomic(path, &bytes)?)
}

/// Images in `dir` and its subfolders, and the output path each gets under `out_dir` (the same
/// relative path: the output tree mirrors the input tree).
pub fn folder_jobs(dir: &Path, out_dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let files = cyclegan_data::imageio::find_images(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?;
    if files.is_empty() {
        bail!(
            "{}: no images ({}) in this folder or its subfolders",
            dir.display(),
            cyclegan_data::imageio::IMAGE_EXTENSIONS.join(", ")
        );
    }
    Ok(files
        .into_iter()
        .map(|f| (f.path, out_dir.join(f.relative)))
        .collect())
}

/// What translating a folder did.
#[derive(Debug, Clone, Default)]
pub struct FolderReport {
    /// Images translated.
    pub translated: usize,
    /// Images skipped, with the reason (named by file).
    pub skipped: Vec<String>,
    /// Images translated from a damaged (partial) file, with a warning naming it.
    pub partial: Vec<String>,
}

/// Translate every image of `dir` (subfolders included) into `out_dir` (same relative paths)
/// as `opts` says, with a progress bar unless `quiet`. An image that fails (or would not fit in
/// memory) is skipped with a warning; the others are still written. Partial images are translated with a warning, or skipped when `strict`.
pub fn translate_folder(
    t: &Translator,
    dir: &Path,
    out_dir: &Path,
    opts: &ImageOptions,
    strict: bool,
    quiet: bool,
) -> Result<FolderReport> {
    use indicatif::{ProgressBar, ProgressStyle};
    let jobs = folder_jobs(dir, out_dir)?;
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("{}: cannot create output folder", out_dir.display()))?;
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(jobs.len() as u64)
    };
    if let Ok(style) =
        ProgressStyle::with_template("{bar:30} {pos}/{len} images  {per_sec}  ETA {eta}")
    {
        bar.set_style(style);
    }
    let mut report = FolderReport::default();
    for (input, output) in &jobs {
        if let Some(parent) = output.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("{}: cannot create output folder", parent.display()))?;
        }
        match translate_file(t, input, output, opts, strict) {
            Ok(warning) => {
                report.translated += 1;
                if let Some(w) = warning {
                    bar.suspend(|| eprintln!("warning: {w}"));
                    report.partial.push(w);
                }
            }
            Err(e) => {
                bar.suspend(|| eprintln!("warning: skipped: {e:#}"));
                report.skipped.push(format!("{e:#}"));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(report)
}
