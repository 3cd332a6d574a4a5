//! Translating image files and folders of them; every output written atomically.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use image::RgbImage;

use super::Translator;
use crate::fsio::write_atomic;

/// Translate one image file to `output` (format from its extension), written atomically.
pub fn translate_file(t: &Translator, input: &Path, output: &Path) -> Result<()> {
    let img = cyclegan_data::imageio::decode_rgb(input)?;
    let out = t.translate(std::slice::from_ref(&img)).remove(0);
    save_image(&out, output)
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
    write_atomic(path, &bytes)
}

/// Images directly inside `dir`, and the output path each gets under `out_dir`.
pub fn folder_jobs(dir: &Path, out_dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let files = cyclegan_data::imageio::list_images(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?;
    if files.is_empty() {
        bail!(
            "{}: no images (jpg, jpeg, png, webp, bmp) in this folder",
            dir.display()
        );
    }
    Ok(files
        .into_iter()
        .map(|f| (f.clone(), out_dir.join(f.file_name().expect("file name"))))
        .collect())
}

/// What translating a folder did.
#[derive(Debug, Clone, Default)]
pub struct FolderReport {
    /// Images translated.
    pub translated: usize,
    /// Images skipped, with the reason (named by file).
    pub skipped: Vec<String>,
}

/// Translate every image of `dir` into `out_dir` (same file names), with a progress bar unless
/// `quiet`. An image that fails is skipped with a warning; the others are still written.
pub fn translate_folder(
    t: &Translator,
    dir: &Path,
    out_dir: &Path,
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
        match translate_file(t, input, output) {
            Ok(()) => report.translated += 1,
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
