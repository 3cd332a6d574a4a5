//! What `prepare` can be told: its options with the command's defaults, their check, and the
//! `name = value` lines the report shows.

use std::path::PathBuf;

use serde::Serialize;

use super::error::PrepareError;
use crate::bars::BarParams;
use crate::imageio;
use crate::resize::ResizeMode;
use crate::sources::Sampling;

/// Which pictures get their black bars cropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CropBars {
    /// Video frames only (the default: letterboxed films are common, bordered photos are not).
    #[default]
    Videos,
    /// Video frames and still images.
    All,
    /// Nothing.
    None,
}

/// What to do with images that are not plain 8-bit RGB (grey, palette, alpha, CMYK, 16-bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NonRgb {
    /// Convert to 8-bit RGB (transparency composited on the background colour).
    #[default]
    Convert,
    /// Leave them out (listed in the report).
    Drop,
}

/// File format of the written pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Lossless PNG.
    #[default]
    Png,
    /// JPEG, quality 95.
    Jpg,
}

impl OutputFormat {
    /// File extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Png => "png",
            OutputFormat::Jpg => "jpg",
        }
    }
}

/// The two domains of an unpaired dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Domain {
    /// Domain A (`trainA`, `testA`).
    A,
    /// Domain B (`trainB`, `testB`).
    B,
}

impl Domain {
    /// 0 for A, 1 for B: the index of the domain's entry in per-domain arrays.
    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// Everything `prepare` can be told. [`Default`] gives the command's defaults (with no sources).
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// Sources of domain A: image folders (walked recursively), image files, video files.
    pub a: Vec<PathBuf>,
    /// Sources of domain B.
    pub b: Vec<PathBuf>,
    /// The dataset folder to write.
    pub out: PathBuf,
    /// Side of the square output pictures; 0 keeps each picture's size. Default 256.
    pub size: u32,
    /// How non-square pictures become square. Default centre-crop.
    pub resize_mode: ResizeMode,
    /// Colour of the margins in [`ResizeMode::Pad`]. Default black.
    pub pad_color: [u8; 3],
    /// Which pictures get their black bars cropped. Default video frames only.
    pub crop_bars: CropBars,
    /// Tuning of the bar detector.
    pub bar_params: BarParams,
    /// Which video frames to sample. Default one per second.
    pub sampling: Sampling,
    /// A sampled frame is kept only if its perceptual hash differs from the last kept frame's in
    /// at least this many bits (0 keeps all). Default 4.
    pub min_change: u32,
    /// Largest perceptual-hash distance counted as a near duplicate. Default 6.
    pub near_threshold: u32,
    /// Keep duplicates instead of keeping one per group (groups still stay on one side of the split).
    pub keep_duplicates: bool,
    /// Share of each domain that goes to test. Default 0.1.
    pub test_fraction: f64,
    /// Seed of the train/test split. Default 0.
    pub seed: u64,
    /// Keep all frames of one video on one side of the split.
    pub split_by_source: bool,
    /// Non-RGB images: convert or drop. Default convert.
    pub non_rgb: NonRgb,
    /// Colour transparent pixels are composited on. Default white.
    pub background: [u8; 3],
    /// Output file format. Default PNG.
    pub format: OutputFormat,
    /// Write into a non-empty folder, moving an existing layout aside.
    pub overwrite: bool,
    /// Install nothing when any input was skipped.
    pub strict: bool,
    /// Draw progress bars on standard error.
    pub progress: bool,
    /// Most bytes of frames one video may hold in memory while its bar crop is decided; a longer
    /// clip is decoded a second time instead. Default 256 MiB.
    pub frame_buffer_bytes: usize,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        PrepareOptions {
            a: Vec::new(),
            b: Vec::new(),
            out: PathBuf::new(),
            size: 256,
            resize_mode: ResizeMode::CenterCrop,
            pad_color: [0, 0, 0],
            crop_bars: CropBars::Videos,
            bar_params: BarParams::default(),
            sampling: Sampling::Fps(1.0),
            min_change: 4,
            near_threshold: 6,
            keep_duplicates: false,
            test_fraction: 0.1,
            seed: 0,
            split_by_source: false,
            non_rgb: NonRgb::Convert,
            background: [255, 255, 255],
            format: OutputFormat::Png,
            overwrite: false,
            strict: false,
            progress: false,
            frame_buffer_bytes: 256 << 20,
        }
    }
}

/// Refuse options out of range, with the flag named and a usable value suggested.
pub(super) fn check(o: &PrepareOptions) -> Result<(), PrepareError> {
    let bad = |s: String| Err(PrepareError::Option(s));
    if o.a.is_empty() || o.b.is_empty() {
        return bad("give at least one source for each domain (--a and --b)".into());
    }
    if !(0.0..1.0).contains(&o.test_fraction) {
        return bad(format!(
            "--test-fraction {} is out of range: use a share in [0, 1), e.g. 0.1",
            o.test_fraction
        ));
    }
    if o.size > imageio::MAX_SIDE {
        return bad(format!(
            "--size {} is too large: at most {}",
            o.size,
            imageio::MAX_SIDE
        ));
    }
    match o.sampling {
        Sampling::Fps(r) if !(r.is_finite() && r > 0.0) => bad(format!(
            "--fps {r} must be a positive number of frames per second"
        )),
        Sampling::Every(0) => bad("--every must be at least 1".into()),
        _ if o.near_threshold > 32 => bad(format!(
            "--near-threshold {} is too large: above about 20 bits unrelated pictures match",
            o.near_threshold
        )),
        _ => Ok(()),
    }
}

/// The options as `name = value` lines, for the report.
pub(super) fn settings(o: &PrepareOptions) -> Vec<(String, String)> {
    let rgb = |c: [u8; 3]| format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2]);
    let list = |v: &[PathBuf]| {
        v.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        ("--a".into(), list(&o.a)),
        ("--b".into(), list(&o.b)),
        (
            "--size".into(),
            if o.size == 0 {
                "0 (keep)".into()
            } else {
                o.size.to_string()
            },
        ),
        ("--resize-mode".into(), format!("{:?}", o.resize_mode)),
        ("--crop-bars".into(), format!("{:?}", o.crop_bars)),
        (
            "frames".into(),
            match o.sampling {
                Sampling::Fps(r) => format!("--fps {r}"),
                Sampling::Every(n) => format!("--every {n}"),
            },
        ),
        ("--min-change".into(), o.min_change.to_string()),
        ("--near-threshold".into(), o.near_threshold.to_string()),
        ("--keep-duplicates".into(), o.keep_duplicates.to_string()),
        ("--test-fraction".into(), o.test_fraction.to_string()),
        ("--seed".into(), o.seed.to_string()),
        ("--split-by-source".into(), o.split_by_source.to_string()),
        ("--non-rgb".into(), format!("{:?}", o.non_rgb)),
        ("--background".into(), rgb(o.background)),
        ("--format".into(), o.format.extension().into()),
    ]
}
