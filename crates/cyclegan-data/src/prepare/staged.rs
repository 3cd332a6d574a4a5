//! A picture read from a source and written to the staging folder: where it came from, its
//! fingerprint, and the shared step that crops, resizes, hashes and writes it.

use std::io::Write;
use std::path::{Path, PathBuf};

use image::RgbImage;

use super::error::{PrepareError, io_err};
use super::options::{Domain, OutputFormat, PrepareOptions};
use super::records::VideoSummary;
use crate::bars::{self, CropBox};
use crate::dedup::Fingerprint;
use crate::hash;
use crate::imageio::ColorMode;
use crate::resize;
use crate::sources::{Skip, SourceFile};

/// Which frame of a video a picture is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct FrameAt {
    /// Decode index.
    pub index: usize,
    /// Presentation time in seconds.
    pub time: f64,
}

/// Where a picture came from, before it is staged.
pub(super) struct Origin {
    pub source: PathBuf,
    pub frame: Option<FrameAt>,
    /// Width and height of the source picture (after EXIF orientation).
    pub original_size: [u32; 2],
    pub mode: ColorMode,
}

/// One picture written to the staging folder, before the split.
#[derive(Debug, Clone)]
pub(super) struct StagedPicture {
    pub source: PathBuf,
    pub frame: Option<FrameAt>,
    pub crop: Option<CropBox>,
    pub original_size: [u32; 2],
    pub mode: ColorMode,
    pub print: Fingerprint,
    /// The staged file (renamed into the layout if kept, removed if dropped).
    pub staged: PathBuf,
    /// Smaller than the output size, so enlarged.
    pub upscaled: bool,
}

impl StagedPicture {
    /// The source as the report names it: the file, and the time for a frame.
    pub fn describe(&self) -> String {
        match self.frame {
            Some(f) => format!("{} @ {:.3}s", self.source.display(), f.time),
            None => self.source.display().to_string(),
        }
    }

    /// Pixels of the original: the largest member of a duplicate group is kept.
    pub fn area(&self) -> u64 {
        u64::from(self.original_size[0]) * u64::from(self.original_size[1])
    }
}

/// One source file to read.
pub(super) struct ReadJob<'a> {
    /// Position among all files of both domains: names the staged files uniquely.
    pub id: usize,
    pub domain: Domain,
    pub file: &'a SourceFile,
}

/// What reading one source file gave.
#[derive(Default)]
pub(super) struct ReadOut {
    pub pictures: Vec<StagedPicture>,
    /// The file, or part of it, could not be used.
    pub skipped: Vec<Skip>,
    /// Left out for their colour mode (`--non-rgb drop`).
    pub dropped_non_rgb: Vec<Skip>,
    pub video: Option<VideoSummary>,
}

/// The shared state of the parallel read step: the options and the staging folder.
pub(super) struct Stager<'a> {
    pub opts: &'a PrepareOptions,
    pub items_dir: PathBuf,
}

impl Stager<'_> {
    /// Crop `rgb` to `crop`, bring it to the output size, hash it and write it as `stem.EXT` in
    /// the staging folder.
    pub fn stage(
        &self,
        origin: Origin,
        rgb: &RgbImage,
        crop: Option<CropBox>,
        stem: &str,
    ) -> Result<StagedPicture, PrepareError> {
        let o = self.opts;
        let cropped;
        let src = match crop {
            Some(b) => {
                cropped = bars::crop(rgb, b);
                &cropped
            }
            None => rgb,
        };
        let upscaled = o.size > 0 && src.width().min(src.height()) < o.size;
        let out = resize::fit(src, o.size, o.resize_mode, o.pad_color);
        let print = Fingerprint {
            content: hash::content_hash(&out),
            phash: hash::phash(&out),
        };
        let staged = self
            .items_dir
            .join(format!("{stem}.{}", o.format.extension()));
        // Not atomic on purpose: the whole staging folder is ours and renamed into place later.
        let file = std::fs::File::create(&staged).map_err(io_err(&staged))?;
        let mut w = std::io::BufWriter::new(file);
        let enc = match o.format {
            OutputFormat::Png => {
                out.write_with_encoder(image::codecs::png::PngEncoder::new(&mut w))
            }
            OutputFormat::Jpg => out.write_with_encoder(
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut w, 95),
            ),
        };
        enc.map_err(|e| PrepareError::Io {
            path: staged.clone(),
            source: std::io::Error::other(e),
        })?;
        w.flush().map_err(io_err(&staged))?;
        Ok(StagedPicture {
            source: origin.source,
            frame: origin.frame,
            crop,
            original_size: origin.original_size,
            mode: origin.mode,
            print,
            staged,
            upscaled,
        })
    }
}

/// The error text without the leading "path: " (the report shows the path beside it).
pub(super) fn reason(path: &Path, e: &dyn std::fmt::Display) -> String {
    let s = e.to_string();
    let prefix = format!("{}: ", path.display());
    s.strip_prefix(&prefix).map(str::to_string).unwrap_or(s)
}
