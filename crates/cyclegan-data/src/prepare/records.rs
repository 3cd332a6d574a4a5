//! What `prepare` returns and writes: one line of `manifest.jsonl`, and the report (per domain,
//! per video, duplicates, pictures found in both domains).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::options::Domain;
use crate::bars::CropBox;
use crate::hash::{ContentHash, PHash};
use crate::imageio::ColorMode;
use crate::report::SizeHistogram;
use crate::sources::Skip;

/// One line of `manifest.jsonl`: one output picture and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestEntry {
    /// Path inside the dataset, e.g. `trainA/horse.png`.
    pub file: String,
    /// `A` or `B`.
    pub domain: Domain,
    /// `train` or `test`.
    pub split: &'static str,
    /// The source file (written lossily when its name is not UTF-8).
    #[serde(serialize_with = "lossy_path")]
    pub source: PathBuf,
    /// Presentation time of the frame in seconds (videos only).
    pub frame_time: Option<f64>,
    /// Decode index of the frame (videos only).
    pub frame_index: Option<usize>,
    /// The bars crop applied, in source pixels (none when nothing was cropped).
    pub crop: Option<CropBox>,
    /// Source width and height (after EXIF orientation).
    pub original_size: [u32; 2],
    /// How the source stored its colours.
    pub original_mode: ColorMode,
    /// True when the colours were converted to 8-bit RGB.
    pub converted: bool,
    /// SHA-256 of the output picture's pixels.
    pub sha256: ContentHash,
    /// Perceptual hash of the output picture.
    pub phash: PHash,
    /// Duplicate group (index into the domain's `duplicate_groups` in the report), if any.
    pub duplicate_group: Option<usize>,
}

/// A set of look-alike pictures within one domain and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct DuplicateGroup {
    /// The member kept (the largest original; ties go to the first found).
    pub kept: String,
    /// The other members, each with how it matches the kept one.
    pub others: Vec<DuplicateMember>,
}

/// One non-kept member of a [`DuplicateGroup`].
#[derive(Debug, Clone, Serialize)]
pub struct DuplicateMember {
    /// The source (file, and time for a frame).
    pub source: String,
    /// Pixel-identical to the kept one.
    pub exact: bool,
    /// Perceptual-hash distance to the kept one (a near group may chain through other members).
    pub distance: u32,
    /// True when it was left out of the dataset.
    pub dropped: bool,
}

/// What happened to one domain.
#[derive(Debug, Clone, Serialize)]
pub struct DomainReport {
    /// `A` or `B`.
    pub domain: Domain,
    /// Files found (images and videos).
    pub files: usize,
    /// Pictures read (images decoded plus frames kept from videos).
    pub pictures: usize,
    /// Pictures written to train.
    pub train: usize,
    /// Pictures written to test.
    pub test: usize,
    /// Pictures converted to 8-bit RGB, by original colour mode.
    pub converted: BTreeMap<String, usize>,
    /// Pictures left out for their colour mode (`--non-rgb drop`).
    pub dropped_non_rgb: Vec<Skip>,
    /// Exact and near duplicate groups.
    pub duplicate_groups: Vec<DuplicateGroup>,
    /// Pictures left out as duplicates.
    pub duplicates_dropped: usize,
    /// Pictures whose bars were cropped.
    pub bars_cropped: usize,
    /// Pictures smaller than the output size (enlarged).
    pub upscaled: usize,
    /// Sizes of the source pictures.
    pub original_sizes: SizeHistogram,
    /// Train/test pairs still within the near threshold after the split (0 by construction).
    pub leaks_after_split: usize,
}

/// What happened to one video.
#[derive(Debug, Clone, Serialize)]
pub struct VideoSummary {
    /// The file.
    pub path: PathBuf,
    /// Its domain.
    pub domain: Domain,
    /// Frame size.
    pub size: [u32; 2],
    /// Frames decoded.
    pub frames_decoded: usize,
    /// Frames chosen by `--fps` / `--every`.
    pub frames_sampled: usize,
    /// Sampled frames skipped as unchanged (`--min-change`).
    pub frames_unchanged: usize,
    /// Frames kept.
    pub frames_kept: usize,
    /// The bars crop used for every frame (none: no bars found, or cropping off).
    pub crop: Option<CropBox>,
    /// How many frames the crop was decided from.
    pub crop_decided_from: usize,
    /// Set when decoding stopped early; the frames before were used.
    pub error: Option<String>,
}

/// A picture in domain A that looks like one in domain B.
#[derive(Debug, Clone, Serialize)]
pub struct CrossPair {
    /// The domain A source.
    pub a: String,
    /// The domain B source.
    pub b: String,
    /// Perceptual-hash distance.
    pub distance: u32,
    /// Pixel-identical.
    pub exact: bool,
}

/// Everything `prepare` did, for `report.md`, the terminal summary and tests.
#[derive(Debug, Clone, Serialize)]
pub struct PrepareReport {
    /// The dataset folder.
    pub out: PathBuf,
    /// True when the dataset was written (false: `strict` and something was skipped).
    pub installed: bool,
    /// Where an existing layout was moved (with `overwrite`).
    pub replaced: Option<PathBuf>,
    /// The options, as `name = value` lines.
    pub settings: Vec<(String, String)>,
    /// Domain A then domain B.
    pub domains: Vec<DomainReport>,
    /// Inputs that could not be used (broken, unsupported), with the reason.
    pub skipped: Vec<Skip>,
    /// Non-media files found in the source folders (not counted as skipped).
    pub ignored: Vec<Skip>,
    /// One entry per video.
    pub videos: Vec<VideoSummary>,
    /// Pictures found in both domains.
    pub cross_domain: Vec<CrossPair>,
    /// Wall-clock seconds.
    pub elapsed_s: f64,
}

impl PrepareReport {
    /// True when something needs the user's attention: skipped inputs or pictures in both domains.
    pub fn has_findings(&self) -> bool {
        !self.skipped.is_empty() || !self.cross_domain.is_empty()
    }
}

/// Paths that are not UTF-8 are written with replacement characters rather than failing.
fn lossy_path<S: serde::Serializer>(path: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}
