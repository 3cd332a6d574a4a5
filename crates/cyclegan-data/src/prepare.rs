//! `prepare`: build a clean unpaired dataset (`trainA/ trainB/ testA/ testB/`) from image
//! folders, image files and videos.
//!
//! The steps, in order:
//! 1. find the files of each domain's sources ([`crate::sources`]);
//! 2. in parallel, read each file: decode an image (colour converted or dropped, bars cropped if
//!    asked), or sample a video's frames (by time or count, skipping unchanged frames, one bar
//!    crop for the whole clip); bring each picture to the square size, hash it and write it to a
//!    staging folder inside the output folder;
//! 3. per domain, group exact and near duplicates (union-find), keep the largest of each group
//!    (unless `keep_duplicates`), and split train/test by whole groups (and whole videos with
//!    `split_by_source`) so no look-alike straddles the split; check it;
//! 4. write `manifest.jsonl` and `report.md`, then move everything into place by renaming.
//!
//! Nothing the user had is deleted: an existing layout is only replaced with `overwrite`, and
//! then moved aside into `DATA_DIR/.replaced-<time>/`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use image::RgbImage;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::Serialize;

use crate::bars::{self, BarParams, CropBox};
use crate::dedup::{self, Fingerprint, UnionFind};
use crate::hash::{self, ContentHash, PHash};
use crate::imageio::{self, ColorMode};
use crate::report::SizeHistogram;
use crate::resize::{self, ResizeMode};
use crate::sources::{self, ChangeFilter, FrameSampler, Sampling, Skip, SourceFile, SourceKind};

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
    fn index(self) -> usize {
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

/// Why `prepare` stopped without a dataset.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// An option is out of range.
    #[error("{0}")]
    Option(String),
    /// A source cannot be used.
    #[error(transparent)]
    Source(#[from] sources::SourceError),
    /// The output folder is not empty and `--overwrite` was not given.
    #[error(
        "{0}: the output folder is not empty; choose a new folder, or pass --overwrite to replace its dataset (the old trainA/trainB/testA/testB, manifest.jsonl and report.md are moved into {0}/.replaced-<time>/, nothing is deleted)"
    )]
    OutNotEmpty(PathBuf),
    /// A domain ended up with no picture.
    #[error("domain {domain} has no usable picture{details}; nothing was written")]
    EmptyDomain { domain: String, details: String },
    /// Writing the output failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PrepareError + '_ {
    move |source| PrepareError::Io {
        path: path.to_path_buf(),
        source,
    }
}

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

/// One written picture, before the split.
#[derive(Debug, Clone)]
struct Item {
    source: PathBuf,
    frame: Option<(usize, f64)>,
    crop: Option<CropBox>,
    original_size: [u32; 2],
    mode: ColorMode,
    print: Fingerprint,
    staged: PathBuf,
    upscaled: bool,
}

impl Item {
    fn describe(&self) -> String {
        match self.frame {
            Some((_, t)) => format!("{} @ {t:.3}s", self.source.display()),
            None => self.source.display().to_string(),
        }
    }
    fn area(&self) -> u64 {
        u64::from(self.original_size[0]) * u64::from(self.original_size[1])
    }
}

#[derive(Default)]
struct JobOut {
    items: Vec<Item>,
    skipped: Vec<Skip>,
    dropped_non_rgb: Vec<Skip>,
    video: Option<VideoSummary>,
}

struct Job<'a> {
    id: usize,
    domain: Domain,
    file: &'a SourceFile,
}

/// Shared state of the parallel read step.
struct Ctx<'a> {
    opts: &'a PrepareOptions,
    items_dir: PathBuf,
}

fn check_options(o: &PrepareOptions) -> Result<(), PrepareError> {
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

/// Build the dataset. Returns the report (also written to `report.md`); with `strict` and
/// skipped inputs, nothing is installed and `installed` is false.
pub fn prepare(opts: &PrepareOptions) -> Result<PrepareReport, PrepareError> {
    let start = Instant::now();
    check_options(opts)?;
    let out = &opts.out;
    if out.exists() {
        if !out.is_dir() {
            return Err(PrepareError::Option(format!(
                "--out {}: exists and is not a folder",
                out.display()
            )));
        }
        let non_empty = std::fs::read_dir(out)
            .map_err(io_err(out))?
            .next()
            .is_some();
        if non_empty && !opts.overwrite {
            return Err(PrepareError::OutNotEmpty(out.clone()));
        }
    }
    let found_a = sources::collect(&opts.a)?;
    let found_b = sources::collect(&opts.b)?;
    let created_out = !out.exists();
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let staging = out.join(format!(".prepare-staging-{}", std::process::id()));
    let result = run(opts, &staging, found_a, found_b, start);
    // The staging folder is ours alone; whatever is left in it goes.
    if staging.exists() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    if result.as_ref().map(|r| !r.installed).unwrap_or(true) && created_out {
        let _ = std::fs::remove_dir(out); // only if still empty
    }
    result
}

fn run(
    opts: &PrepareOptions,
    staging: &Path,
    found_a: sources::Found,
    found_b: sources::Found,
    start: Instant,
) -> Result<PrepareReport, PrepareError> {
    let items_dir = staging.join("items");
    std::fs::create_dir_all(&items_dir).map_err(io_err(&items_dir))?;
    let mut skipped: Vec<Skip> = found_a
        .unsupported
        .iter()
        .chain(&found_b.unsupported)
        .cloned()
        .collect();
    let ignored: Vec<Skip> = found_a
        .ignored
        .iter()
        .chain(&found_b.ignored)
        .cloned()
        .collect();
    let files = [found_a.files.len(), found_b.files.len()];
    let jobs: Vec<Job> = found_a
        .files
        .iter()
        .map(|f| (Domain::A, f))
        .chain(found_b.files.iter().map(|f| (Domain::B, f)))
        .enumerate()
        .map(|(id, (domain, file))| Job { id, domain, file })
        .collect();

    let ctx = Ctx { opts, items_dir };
    let pb = crate::progress::bar(jobs.len() as u64, "reading", opts.progress);
    let outs: Vec<JobOut> = jobs
        .par_iter()
        .map(|job| {
            let r = match job.file.kind {
                SourceKind::Image => process_image(&ctx, job),
                SourceKind::Video => process_video(&ctx, job),
            };
            pb.inc(1);
            r
        })
        .collect::<Result<_, _>>()?;
    pb.finish_and_clear();

    let mut items: [Vec<Item>; 2] = [Vec::new(), Vec::new()];
    let mut dropped_non_rgb: [Vec<Skip>; 2] = [Vec::new(), Vec::new()];
    let mut videos = Vec::new();
    for (job, o) in jobs.iter().zip(outs) {
        items[job.domain.index()].extend(o.items);
        dropped_non_rgb[job.domain.index()].extend(o.dropped_non_rgb);
        skipped.extend(o.skipped);
        videos.extend(o.video);
    }

    // Dedup and split each domain; decide every kept item's place.
    // (item index in its domain, split, domain, duplicate group)
    let mut placed: Vec<(usize, &'static str, Domain, Option<usize>)> = Vec::new();
    let mut domains = Vec::new();
    for d in [Domain::A, Domain::B] {
        let its = &items[d.index()];
        let (report, places) = dedup_and_split(
            opts,
            d,
            its,
            files[d.index()],
            std::mem::take(&mut dropped_non_rgb[d.index()]),
        )?;
        for (i, split, group) in places {
            placed.push((i, split, d, group));
        }
        domains.push(report);
    }

    for d in [Domain::A, Domain::B] {
        if domains[d.index()].train + domains[d.index()].test == 0 {
            let reasons: Vec<String> = skipped
                .iter()
                .take(5)
                .map(|s| format!("\n  {}: {}", s.path.display(), s.reason))
                .collect();
            let details = if reasons.is_empty() {
                " (its sources hold no image or video)".to_string()
            } else {
                format!(
                    " ({} input(s) skipped, first ones:{})",
                    skipped.len(),
                    reasons.concat()
                )
            };
            return Err(PrepareError::EmptyDomain {
                domain: format!("{d:?}"),
                details,
            });
        }
    }

    // Pictures found in both domains.
    let kept_prints = |d: Domain| -> Vec<(usize, Fingerprint)> {
        placed
            .iter()
            .filter(|p| p.2 == d)
            .map(|p| (p.0, items[d.index()][p.0].print))
            .collect()
    };
    let (ka, kb) = (kept_prints(Domain::A), kept_prints(Domain::B));
    let pa: Vec<Fingerprint> = ka.iter().map(|x| x.1).collect();
    let pb_: Vec<Fingerprint> = kb.iter().map(|x| x.1).collect();
    let cross_domain: Vec<CrossPair> = dedup::find_between(&pa, &pb_, opts.near_threshold)
        .into_iter()
        .map(|p| CrossPair {
            a: items[0][ka[p.a].0].describe(),
            b: items[1][kb[p.b].0].describe(),
            distance: p.distance,
            exact: p.exact,
        })
        .collect();

    // Move the kept pictures into their folders, under readable unique names.
    let ext = opts.format.extension();
    let mut used: HashMap<String, HashSet<String>> = HashMap::new();
    let mut manifest = Vec::new();
    for &(i, split, d, group) in &placed {
        let it = &items[d.index()][i];
        let folder = format!("{split}{d:?}");
        let dir = staging.join(&folder);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let names = used.entry(folder.clone()).or_default();
        let base = output_stem(it);
        let mut name = format!("{base}.{ext}");
        let mut k = 2;
        while !names.insert(name.to_ascii_lowercase()) {
            name = format!("{base}_{k}.{ext}");
            k += 1;
        }
        let dest = dir.join(&name);
        std::fs::rename(&it.staged, &dest).map_err(io_err(&dest))?;
        manifest.push(ManifestEntry {
            file: format!("{folder}/{name}"),
            domain: d,
            split,
            source: it.source.clone(),
            frame_time: it.frame.map(|f| f.1),
            frame_index: it.frame.map(|f| f.0),
            crop: it.crop,
            original_size: it.original_size,
            original_mode: it.mode,
            converted: !it.mode.is_plain_rgb(),
            sha256: it.print.content,
            phash: it.print.phash,
            duplicate_group: group,
        });
    }
    manifest.sort_by(|a, b| a.file.cmp(&b.file));

    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let mut report = PrepareReport {
        out: opts.out.clone(),
        installed: false,
        replaced: None,
        settings: settings(opts),
        domains,
        skipped,
        ignored,
        videos,
        cross_domain,
        elapsed_s: 0.0,
    };
    if opts.strict && !report.skipped.is_empty() {
        report.elapsed_s = start.elapsed().as_secs_f64();
        return Ok(report);
    }

    // Layout folders for empty splits exist too, so the trainer and doctor find the layout.
    for folder in ["trainA", "trainB", "testA", "testB"] {
        let dir = staging.join(folder);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    }
    let mut lines = String::new();
    for m in &manifest {
        lines.push_str(&serde_json::to_string(m).expect("manifest entries serialise"));
        lines.push('\n');
    }
    write_atomic(&staging.join("manifest.jsonl"), lines.as_bytes())?;
    report.elapsed_s = start.elapsed().as_secs_f64();
    report.installed = true;
    report.replaced = replaced_dir_if_needed(&opts.out);
    write_atomic(
        &staging.join("report.md"),
        crate::report::prepare_markdown(&report).as_bytes(),
    )?;
    install(staging, &opts.out, report.replaced.as_deref())?;
    Ok(report)
}

/// The names `prepare` writes at the top of the dataset folder.
const LAYOUT: [&str; 6] = [
    "trainA",
    "trainB",
    "testA",
    "testB",
    "manifest.jsonl",
    "report.md",
];

fn replaced_dir_if_needed(out: &Path) -> Option<PathBuf> {
    if !LAYOUT
        .iter()
        .any(|n| out.join(n).symlink_metadata().is_ok())
    {
        return None;
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut dir = out.join(format!(".replaced-{secs}"));
    let mut k = 2;
    while dir.exists() {
        dir = out.join(format!(".replaced-{secs}-{k}"));
        k += 1;
    }
    Some(dir)
}

/// Move the staged layout into `out`, moving what was there aside first (never deleting it).
fn install(staging: &Path, out: &Path, replaced: Option<&Path>) -> Result<(), PrepareError> {
    if let Some(backup) = replaced {
        std::fs::create_dir_all(backup).map_err(io_err(backup))?;
        for n in LAYOUT {
            let old = out.join(n);
            if old.symlink_metadata().is_ok() {
                std::fs::rename(&old, backup.join(n)).map_err(io_err(&old))?;
            }
        }
    }
    for n in LAYOUT {
        let new = staging.join(n);
        std::fs::rename(&new, out.join(n)).map_err(io_err(&out.join(n)))?;
    }
    Ok(())
}

/// Write a file under a temporary name, then rename it into place.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PrepareError> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(io_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

fn settings(o: &PrepareOptions) -> Vec<(String, String)> {
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

/// A file-system friendly name for an output picture: the source's stem, plus the time for a frame.
fn output_stem(it: &Item) -> String {
    let stem = it
        .source
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    if clean.is_empty() {
        clean = "image".into();
    }
    match it.frame {
        Some((_, t)) => format!("{clean}_t{t:09.3}s"),
        None => clean,
    }
}

/// The error text without the leading "path: " (the report shows the path beside it).
fn reason(path: &Path, e: &dyn std::fmt::Display) -> String {
    let s = e.to_string();
    let prefix = format!("{}: ", path.display());
    s.strip_prefix(&prefix).map(str::to_string).unwrap_or(s)
}

/// Crop, resize, hash and stage one picture.
fn finish_picture(
    ctx: &Ctx,
    rgb: &RgbImage,
    crop: Option<CropBox>,
    staged: PathBuf,
) -> Result<(Fingerprint, bool), PrepareError> {
    let o = ctx.opts;
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
    let file = std::fs::File::create(&staged).map_err(io_err(&staged))?;
    let mut w = std::io::BufWriter::new(file);
    let enc = match o.format {
        OutputFormat::Png => out.write_with_encoder(image::codecs::png::PngEncoder::new(&mut w)),
        OutputFormat::Jpg => out.write_with_encoder(
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut w, 95),
        ),
    };
    enc.map_err(|e| PrepareError::Io {
        path: staged.clone(),
        source: std::io::Error::other(e),
    })?;
    w.flush().map_err(io_err(&staged))?;
    Ok((print, upscaled))
}

fn process_image(ctx: &Ctx, job: &Job) -> Result<JobOut, PrepareError> {
    let path = &job.file.path;
    let mut out = JobOut::default();
    let (img, mode) = match imageio::decode_with_mode(path) {
        Ok(x) => x,
        Err(e) => {
            out.skipped.push(Skip {
                path: path.clone(),
                reason: reason(path, &e),
            });
            return Ok(out);
        }
    };
    if !mode.is_plain_rgb() && ctx.opts.non_rgb == NonRgb::Drop {
        out.dropped_non_rgb.push(Skip {
            path: path.clone(),
            reason: format!("{mode} (--non-rgb drop)"),
        });
        return Ok(out);
    }
    let original_size = [img.width(), img.height()];
    let rgb = imageio::to_rgb_on(img, ctx.opts.background);
    let crop = if ctx.opts.crop_bars == CropBars::All {
        let d = bars::detect_bars(&rgb, &ctx.opts.bar_params);
        (!d.crop.is_full(rgb.width(), rgb.height())).then_some(d.crop)
    } else {
        None
    };
    let staged = ctx
        .items_dir
        .join(format!("{:06}.{}", job.id, ctx.opts.format.extension()));
    let (print, upscaled) = finish_picture(ctx, &rgb, crop, staged.clone())?;
    out.items.push(Item {
        source: path.clone(),
        frame: None,
        crop,
        original_size,
        mode,
        print,
        staged,
        upscaled,
    });
    Ok(out)
}

/// Most frames the clip crop is decided from (evenly spread over the kept frames).
const CROP_SAMPLE_FRAMES: usize = 25;

fn process_video(ctx: &Ctx, job: &Job) -> Result<JobOut, PrepareError> {
    let o = ctx.opts;
    let path = &job.file.path;
    let mut out = JobOut::default();
    let mut summary = VideoSummary {
        path: path.clone(),
        domain: job.domain,
        size: [0, 0],
        frames_decoded: 0,
        frames_sampled: 0,
        frames_unchanged: 0,
        frames_kept: 0,
        crop: None,
        crop_decided_from: 0,
        error: None,
    };
    let frames = match sources::open_video(path) {
        Ok(f) => f,
        Err(e) => {
            out.skipped.push(Skip {
                path: path.clone(),
                reason: reason(path, &e),
            });
            return Ok(out);
        }
    };
    let want_bars = o.crop_bars != CropBars::None;
    // First pass: choose the frames; keep them in memory while they fit, and their bar detections.
    let mut sampler = FrameSampler::new(o.sampling);
    let mut change = ChangeFilter::new(o.min_change);
    let mut kept: Vec<(usize, f64)> = Vec::new();
    let mut detections = Vec::new();
    let mut buffer: Vec<RgbImage> = Vec::new();
    let mut buffered = 0usize;
    let mut overflow = false;
    let mut stopped = None;
    for (i, fr) in frames.enumerate() {
        let fr = match fr {
            Ok(f) => f,
            Err(e) => {
                stopped = Some((i, reason(path, &e)));
                break;
            }
        };
        summary.frames_decoded += 1;
        summary.size = [fr.image.width(), fr.image.height()];
        if !sampler.take(i, fr.time) {
            continue;
        }
        summary.frames_sampled += 1;
        if !change.take(hash::phash(&fr.image)) {
            summary.frames_unchanged += 1;
            continue;
        }
        kept.push((i, fr.time));
        if want_bars {
            detections.push(bars::detect_bars(&fr.image, &o.bar_params));
        }
        if !overflow {
            buffered += fr.image.as_raw().len();
            if buffered > o.frame_buffer_bytes {
                overflow = true;
                buffer = Vec::new();
            } else {
                buffer.push(fr.image);
            }
        }
    }
    if let Some((i, why)) = &stopped {
        let msg = format!(
            "decoding stopped at frame {i}: {why}; the {} frame(s) before it were used",
            summary.frames_decoded
        );
        summary.error = Some(msg.clone());
        out.skipped.push(Skip {
            path: path.clone(),
            reason: msg,
        });
    }
    summary.frames_kept = kept.len();
    // One crop for the clip.
    let [w, h] = summary.size;
    if want_bars && !detections.is_empty() {
        let n = detections.len();
        let step = n.div_ceil(CROP_SAMPLE_FRAMES).max(1);
        let sample: Vec<_> = detections.iter().step_by(step).copied().collect();
        summary.crop_decided_from = sample.len();
        summary.crop = bars::decide_clip_crop(&sample, w, h).filter(|c| !c.is_full(w, h));
    }
    let crop = summary.crop;
    let mut emit = |k: usize, img: &RgbImage| -> Result<(), PrepareError> {
        let staged = ctx
            .items_dir
            .join(format!("{:06}_{k:06}.{}", job.id, o.format.extension()));
        let (print, upscaled) = finish_picture(ctx, img, crop, staged.clone())?;
        out.items.push(Item {
            source: path.clone(),
            frame: Some(kept[k]),
            crop,
            original_size: [img.width(), img.height()],
            mode: ColorMode::Rgb8,
            print,
            staged,
            upscaled,
        });
        Ok(())
    };
    if !overflow {
        for (k, img) in buffer.iter().enumerate() {
            emit(k, img)?;
        }
    } else {
        // The clip was too long to hold: decode it again and take the same frames.
        let frames = sources::open_video(path).map_err(|e| PrepareError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        let mut next = 0;
        for (i, fr) in frames.enumerate() {
            if next == kept.len() {
                break;
            }
            let Ok(fr) = fr else { break };
            if i == kept[next].0 {
                emit(next, &fr.image)?;
                next += 1;
            }
        }
    }
    out.video = Some(summary);
    Ok(out)
}

/// Group, drop duplicates and split one domain. Returns its report and, for each kept item,
/// (item index, split, duplicate group index).
#[allow(clippy::type_complexity)]
fn dedup_and_split(
    o: &PrepareOptions,
    d: Domain,
    items: &[Item],
    files: usize,
    dropped_non_rgb: Vec<Skip>,
) -> Result<(DomainReport, Vec<(usize, &'static str, Option<usize>)>), PrepareError> {
    let n = items.len();
    let prints: Vec<Fingerprint> = items.iter().map(|it| it.print).collect();
    let sim = dedup::find_similar(&prints, o.near_threshold);
    let dup_groups = dedup::groups(n, sim.links());
    let mut alive = vec![true; n];
    let mut group_of: Vec<Option<usize>> = vec![None; n];
    let mut duplicate_groups = Vec::new();
    let mut duplicates_dropped = 0;
    for (gi, g) in dup_groups.iter().enumerate() {
        // Keep the largest original (the best source for resampling); ties go to the first found.
        let keep = *g
            .iter()
            .max_by_key(|&&i| (items[i].area(), std::cmp::Reverse(i)))
            .expect("groups are not empty");
        let mut others = Vec::new();
        for &i in g {
            group_of[i] = Some(gi);
            if i == keep {
                continue;
            }
            let exact = items[i].print.content == items[keep].print.content;
            let drop = !o.keep_duplicates;
            if drop {
                alive[i] = false;
                duplicates_dropped += 1;
                let _ = std::fs::remove_file(&items[i].staged); // our own staged copy
            }
            others.push(DuplicateMember {
                source: items[i].describe(),
                exact,
                distance: items[i].print.phash.distance(items[keep].print.phash),
                dropped: drop,
            });
        }
        duplicate_groups.push(DuplicateGroup {
            kept: items[keep].describe(),
            others,
        });
    }

    // Split units: look-alikes together, and whole videos with split_by_source.
    let mut uf = UnionFind::new(n);
    for (a, b) in sim.links() {
        uf.union(a, b);
    }
    if o.split_by_source {
        let mut first_of: HashMap<&Path, usize> = HashMap::new();
        for (i, it) in items.iter().enumerate() {
            let f = *first_of.entry(it.source.as_path()).or_insert(i);
            uf.union(f, i);
        }
    }
    let mut units: Vec<Vec<usize>> = uf
        .sets()
        .into_iter()
        .map(|s| s.into_iter().filter(|&i| alive[i]).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    let kept_n: usize = units.iter().map(Vec::len).sum();
    let target = (kept_n as f64 * o.test_fraction).round() as usize;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
        o.seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(d.index() as u64 + 1)),
    );
    units.shuffle(&mut rng);
    let mut test_n = 0;
    let mut places = Vec::with_capacity(kept_n);
    let mut in_test = vec![false; n];
    for u in &units {
        let to_test = test_n + u.len() <= target;
        if to_test {
            test_n += u.len();
        }
        for &i in u {
            in_test[i] = to_test;
            places.push((i, if to_test { "test" } else { "train" }, group_of[i]));
        }
    }
    places.sort_by_key(|p| p.0);

    // Check: nothing in test looks like anything in train.
    let train: Vec<Fingerprint> = places
        .iter()
        .filter(|p| !in_test[p.0])
        .map(|p| prints[p.0])
        .collect();
    let test: Vec<Fingerprint> = places
        .iter()
        .filter(|p| in_test[p.0])
        .map(|p| prints[p.0])
        .collect();
    let leaks_after_split = dedup::find_between(&train, &test, o.near_threshold).len();

    let mut converted = BTreeMap::new();
    let mut sizes = SizeHistogram::default();
    for &(i, _, _) in &places {
        let it = &items[i];
        if !it.mode.is_plain_rgb() {
            *converted.entry(it.mode.name().to_string()).or_insert(0) += 1;
        }
    }
    for it in items {
        sizes.add(it.original_size[0], it.original_size[1]);
    }
    let report = DomainReport {
        domain: d,
        files,
        pictures: n,
        train: kept_n - test_n,
        test: test_n,
        converted,
        dropped_non_rgb,
        duplicate_groups,
        duplicates_dropped,
        bars_cropped: places.iter().filter(|p| items[p.0].crop.is_some()).count(),
        upscaled: places.iter().filter(|p| items[p.0].upscaled).count(),
        original_sizes: sizes,
        leaks_after_split,
    };
    Ok((report, places))
}

/// Paths that are not UTF-8 are written with replacement characters rather than failing.
fn lossy_path<S: serde::Serializer>(path: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bars::tests::{night_scene, with_bars};
    use crate::sources::tests::{write_apng, write_gif};
    use image::{DynamicImage, Rgb, RgbaImage};

    /// A picture of random coloured blocks: different seeds give unrelated pictures.
    pub(crate) fn blocks(w: u32, h: u32, seed: u32) -> RgbImage {
        let mut s = seed.wrapping_mul(747796405).wrapping_add(2891336453) | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        let cells: Vec<[u8; 3]> = (0..36)
            .map(|_| [next() as u8 | 64, next() as u8, next() as u8])
            .collect();
        RgbImage::from_fn(w, h, |x, y| {
            let c = cells[((y * 6 / h) * 6 + x * 6 / w) as usize];
            Rgb([c[0], c[1].wrapping_add((x % 7) as u8), c[2]])
        })
    }

    fn save(img: &RgbImage, path: &Path) {
        img.save(path).unwrap();
    }

    fn opts(a: Vec<PathBuf>, b: Vec<PathBuf>, out: PathBuf) -> PrepareOptions {
        PrepareOptions {
            a,
            b,
            out,
            size: 32,
            ..PrepareOptions::default()
        }
    }

    fn manifest(out: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(out.join("manifest.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A letterboxed animation: 20 frames of 250 ms (5 s), each a different picture, with 8-pixel
    /// black bars above and below a 64x32 picture.
    fn letterboxed_frame(i: usize) -> RgbaImage {
        let framed = with_bars(&blocks(64, 32, 100 + i as u32), 64, 48, 0, 8, 0, 0);
        DynamicImage::ImageRgb8(framed).to_rgba8()
    }

    #[test]
    fn images_and_an_animation_make_the_training_layout() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("photos");
        std::fs::create_dir_all(a.join("nested")).unwrap();
        for i in 0..10 {
            save(&blocks(48 + i * 4, 40, i), &a.join(format!("p{i:02}.png")));
        }
        save(&blocks(30, 30, 50), &a.join("nested/small.jpg"));
        // Non-RGB modes, each converted.
        DynamicImage::ImageRgb8(blocks(40, 40, 60))
            .to_luma8()
            .save(a.join("grey.png"))
            .unwrap();
        DynamicImage::ImageRgb8(blocks(40, 40, 61))
            .to_luma16()
            .save(a.join("grey16.png"))
            .unwrap();
        DynamicImage::ImageRgb8(blocks(40, 40, 62))
            .to_rgba8()
            .save(a.join("rgba.png"))
            .unwrap();
        DynamicImage::ImageRgb8(blocks(40, 40, 63))
            .to_rgb16()
            .save(a.join("rgb16.png"))
            .unwrap();
        let cmyk: Vec<u8> = blocks(40, 40, 64)
            .pixels()
            .flat_map(|p| [255 - p[0], 255 - p[1], 255 - p[2], 0])
            .collect();
        let mut buf = Vec::new();
        jpeg_encoder::Encoder::new(&mut buf, 95)
            .encode(&cmyk, 40, 40, jpeg_encoder::ColorType::Cmyk)
            .unwrap();
        std::fs::write(a.join("cmyk.jpg"), buf).unwrap();
        // Broken inputs of every kind.
        std::fs::write(a.join("empty.jpg"), b"").unwrap();
        let mut jpg = Vec::new();
        DynamicImage::ImageRgb8(blocks(64, 64, 70))
            .write_to(
                &mut std::io::Cursor::new(&mut jpg),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        std::fs::write(a.join("truncated.jpg"), &jpg[..jpg.len() / 2]).unwrap();
        std::fs::write(a.join("text.png"), b"this is not a picture").unwrap();
        std::fs::write(a.join("photo.heic"), b"whatever").unwrap();
        std::fs::write(a.join("README.txt"), b"notes").unwrap();
        // Domain B: an animated GIF (5 s, 4 fps) and an APNG (3 frames of 0.6 s).
        let gif = t.path().join("clip.gif");
        write_gif(&gif, &[250; 20], letterboxed_frame);
        let apng = t.path().join("anim.png");
        write_apng(&apng, &[600, 600, 600], |i| {
            DynamicImage::ImageRgb8(blocks(40, 40, 200 + i as u32)).to_rgba8()
        });

        let out = t.path().join("data");
        let mut o = opts(
            vec![a.clone()],
            vec![gif.clone(), apng.clone()],
            out.clone(),
        );
        o.test_fraction = 0.2;
        let r = prepare(&o).unwrap();
        assert!(r.installed);

        // Layout the trainer reads: plain image files in trainA/trainB (and testA/testB).
        for d in ["trainA", "trainB", "testA", "testB"] {
            assert!(out.join(d).is_dir(), "{d}");
            for f in files_in(&out.join(d)) {
                assert!(f.ends_with(".png"), "{d}/{f}");
                let img = image::open(out.join(d).join(&f)).unwrap();
                assert_eq!(
                    (img.width(), img.height(), img.color()),
                    (32, 32, image::ColorType::Rgb8)
                );
            }
        }
        let da = &r.domains[0];
        assert_eq!(da.pictures, 16, "{:#?}", r.skipped);
        assert_eq!(da.train + da.test, 16);
        assert_eq!(da.test, 3); // round(16 * 0.2)
        assert_eq!(
            files_in(&out.join("trainA")).len() + files_in(&out.join("testA")).len(),
            16
        );
        assert_eq!(da.upscaled, 1); // nested/small.jpg is 30x30
        let conv: Vec<(&str, usize)> = da.converted.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            conv,
            vec![
                ("CMYK", 1),
                ("RGB 16-bit", 1),
                ("RGBA 8-bit", 1),
                ("grey 16-bit", 1),
                ("grey 8-bit", 1)
            ]
        );

        // Every broken input is listed with its reason; the README is only "ignored".
        let skipped: Vec<(String, &str)> = r
            .skipped
            .iter()
            .map(|s| {
                (
                    s.path.file_name().unwrap().to_string_lossy().into_owned(),
                    s.reason.as_str(),
                )
            })
            .collect();
        assert_eq!(skipped.len(), 4, "{skipped:?}");
        let why = |n: &str| {
            skipped
                .iter()
                .find(|s| s.0 == n)
                .map(|s| s.1.to_string())
                .unwrap_or_default()
        };
        assert!(why("empty.jpg").contains("empty"), "{skipped:?}");
        assert!(why("truncated.jpg").contains("truncated"), "{skipped:?}");
        assert!(
            why("text.png").contains("not a supported image"),
            "{skipped:?}"
        );
        assert!(why("photo.heic").contains("unsupported"), "{skipped:?}");
        assert_eq!(r.ignored.len(), 1);
        assert!(r.has_findings());

        // Video frames: one per second by timestamp, bars cropped once for the clip.
        let v = r.videos.iter().find(|v| v.path == gif).unwrap();
        assert_eq!(
            (v.frames_decoded, v.frames_sampled, v.frames_kept),
            (20, 5, 5)
        );
        assert_eq!(
            v.crop,
            Some(CropBox {
                x: 0,
                y: 8,
                width: 64,
                height: 32
            })
        );
        let m = manifest(&out);
        assert_eq!(m.len(), 16 + 5 + 2);
        let mut gif_times: Vec<(f64, u64)> = m
            .iter()
            .filter(|e| e["source"] == gif.to_str().unwrap())
            .map(|e| {
                (
                    e["frame_time"].as_f64().unwrap(),
                    e["frame_index"].as_u64().unwrap(),
                )
            })
            .collect();
        gif_times.sort_by(|x, y| x.0.total_cmp(&y.0));
        assert_eq!(
            gif_times,
            vec![(0.0, 0), (1.0, 4), (2.0, 8), (3.0, 12), (4.0, 16)]
        );
        assert!(
            m.iter()
                .filter(|e| e["source"] == gif.to_str().unwrap())
                .all(|e| e["crop"]["y"] == 8)
        );
        // APNG at 1 fps: frames at 0, 0.6 (same second as 0), 1.2 -> frames 0 and 2.
        let mut apng_idx: Vec<u64> = m
            .iter()
            .filter(|e| e["source"] == apng.to_str().unwrap())
            .map(|e| e["frame_index"].as_u64().unwrap())
            .collect();
        apng_idx.sort();
        assert_eq!(apng_idx, vec![0, 2]);
        let grey = m
            .iter()
            .find(|e| e["source"].as_str().unwrap().ends_with("grey.png"))
            .unwrap();
        assert_eq!(grey["original_mode"], "Gray8");
        assert_eq!(grey["converted"], true);
        assert_eq!(grey["original_size"], serde_json::json!([40, 40]));
        assert_eq!(grey["sha256"].as_str().unwrap().len(), 64);

        // The report names what happened.
        let md = std::fs::read_to_string(out.join("report.md")).unwrap();
        for needle in ["truncated.jpg", "CMYK", "clip.gif", "0,8,64,32", "| A |"] {
            assert!(md.contains(needle), "report.md lacks {needle}:\n{md}");
        }
        // Nothing temporary left behind.
        assert_eq!(
            files_in(&out),
            vec![
                "manifest.jsonl",
                "report.md",
                "testA",
                "testB",
                "trainA",
                "trainB"
            ]
        );
        // doctor agrees: no leaks, nothing unreadable.
        let doc = crate::doctor::doctor_dir(&out).unwrap();
        assert!(!doc.has_problems(), "{}", crate::report::doctor_text(&doc));
    }

    #[test]
    fn duplicates_are_grouped_dropped_and_never_straddle_the_split() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        for i in 0..12 {
            save(&blocks(64, 64, i), &a.join(format!("a{i:02}.png")));
            save(&blocks(64, 64, 500 + i), &b.join(format!("b{i:02}.png")));
        }
        let x = blocks(64, 64, 3);
        save(&x, &a.join("z_exact_copy.png")); // same pixels, other name
        let bigger = image::imageops::resize(&x, 96, 96, image::imageops::FilterType::CatmullRom);
        save(&bigger, &a.join("z_bigger.png")); // near copy, larger: the one kept
        save(&blocks(64, 64, 7), &b.join("in_both.png")); // a picture of domain A in domain B

        let out = t.path().join("d1");
        let mut o = opts(vec![a.clone()], vec![b.clone()], out.clone());
        o.test_fraction = 0.5;
        let r = prepare(&o).unwrap();
        let da = &r.domains[0];
        assert_eq!(da.duplicate_groups.len(), 1, "{:#?}", da.duplicate_groups);
        let g = &da.duplicate_groups[0];
        assert!(g.kept.ends_with("z_bigger.png"), "{g:#?}");
        assert_eq!(g.others.len(), 2);
        let mut others: Vec<&str> = g
            .others
            .iter()
            .map(|m| m.source.rsplit('/').next().unwrap())
            .collect();
        others.sort();
        assert_eq!(others, vec!["a03.png", "z_exact_copy.png"]);
        assert!(
            g.others
                .iter()
                .all(|m| m.dropped && m.distance <= o.near_threshold)
        );
        assert_eq!(da.duplicates_dropped, 2);
        assert_eq!(da.train + da.test, 12);
        assert_eq!(r.cross_domain.len(), 1);
        assert!(r.cross_domain[0].exact && r.cross_domain[0].b.ends_with("in_both.png"));
        assert!(r.has_findings());

        // Keeping duplicates: all three stay, on one side of the split, for any seed.
        for seed in 0..6 {
            let out = t.path().join(format!("keep{seed}"));
            let mut o = opts(vec![a.clone()], vec![b.clone()], out.clone());
            o.keep_duplicates = true;
            o.test_fraction = 0.5;
            o.seed = seed;
            let r = prepare(&o).unwrap();
            assert_eq!(r.domains[0].train + r.domains[0].test, 14);
            let m = manifest(&out);
            let splits: HashSet<&str> = m
                .iter()
                .filter(|e| e["duplicate_group"].is_u64() && e["domain"] == "A")
                .map(|e| e["split"].as_str().unwrap())
                .collect();
            assert_eq!(
                splits.len(),
                1,
                "seed {seed}: a duplicate group straddles the split"
            );
            assert_eq!(
                m.iter()
                    .filter(|e| e["duplicate_group"].is_u64() && e["domain"] == "A")
                    .count(),
                3
            );
            assert_eq!(r.domains[0].leaks_after_split, 0);
        }
    }

    #[test]
    fn frames_of_one_video_stay_together_with_split_by_source() {
        let t = tempfile::tempdir().unwrap();
        let mut clips = Vec::new();
        for c in 0..4u32 {
            let p = t.path().join(format!("c{c}.gif"));
            write_gif(&p, &[500; 6], |i| {
                DynamicImage::ImageRgb8(blocks(32, 32, 1000 + c * 50 + i as u32)).to_rgba8()
            });
            clips.push(p);
        }
        let b = t.path().join("b.png");
        save(&blocks(32, 32, 9), &b);
        for seed in 0..4 {
            let out = t.path().join(format!("o{seed}"));
            let mut o = opts(clips.clone(), vec![b.clone()], out.clone());
            o.split_by_source = true;
            o.test_fraction = 0.25;
            o.seed = seed;
            let r = prepare(&o).unwrap();
            assert_eq!(r.domains[0].train + r.domains[0].test, 12); // 3 frames (0, 1, 2 s) per clip
            assert_eq!(r.domains[0].test, 3);
            let m = manifest(&out);
            for clip in &clips {
                let splits: HashSet<&str> = m
                    .iter()
                    .filter(|e| e["source"] == clip.to_str().unwrap())
                    .map(|e| e["split"].as_str().unwrap())
                    .collect();
                assert_eq!(splits.len(), 1, "{clip:?} straddles the split");
            }
        }
    }

    #[test]
    fn unchanged_frames_are_skipped_and_every_n_counts_frames() {
        let t = tempfile::tempdir().unwrap();
        let gif = t.path().join("static.gif");
        // Frames 0-3 the same picture, 4-7 another: at 10 fps every frame is sampled.
        write_gif(&gif, &[100; 8], |i| {
            DynamicImage::ImageRgb8(blocks(32, 32, if i < 4 { 1 } else { 2 })).to_rgba8()
        });
        let b = t.path().join("b.png");
        save(&blocks(32, 32, 9), &b);
        let mut o = opts(vec![gif.clone()], vec![b.clone()], t.path().join("o1"));
        o.sampling = Sampling::Fps(10.0);
        o.test_fraction = 0.0;
        let r = prepare(&o).unwrap();
        let v = &r.videos[0];
        assert_eq!(
            (v.frames_sampled, v.frames_unchanged, v.frames_kept),
            (8, 6, 2)
        );
        // --min-change 0 keeps them all (and then dedup groups the copies).
        let mut o2 = o.clone();
        o2.out = t.path().join("o2");
        o2.min_change = 0;
        o2.keep_duplicates = true;
        let r = prepare(&o2).unwrap();
        assert_eq!(r.videos[0].frames_kept, 8);
        assert_eq!(r.domains[0].duplicate_groups.len(), 2);
        // --every 3 picks decode indices 0, 3, 6.
        let mut o3 = o.clone();
        o3.out = t.path().join("o3");
        o3.sampling = Sampling::Every(3);
        o3.min_change = 0;
        o3.keep_duplicates = true;
        prepare(&o3).unwrap();
        let mut idx: Vec<u64> = manifest(&o3.out)
            .iter()
            .filter_map(|e| e["frame_index"].as_u64())
            .collect();
        idx.sort();
        assert_eq!(idx, vec![0, 3, 6]);
    }

    #[test]
    fn long_clips_are_read_twice_with_the_same_frames() {
        let t = tempfile::tempdir().unwrap();
        let gif = t.path().join("long.gif");
        write_gif(&gif, &[250; 20], letterboxed_frame);
        let b = t.path().join("b.png");
        save(&blocks(32, 32, 9), &b);
        let mut o = opts(vec![gif.clone()], vec![b], t.path().join("o"));
        o.frame_buffer_bytes = 64 * 48 * 3 * 2; // two frames fit, five are kept
        let r = prepare(&o).unwrap();
        assert_eq!(r.videos[0].frames_kept, 5);
        assert_eq!(
            r.videos[0].crop,
            Some(CropBox {
                x: 0,
                y: 8,
                width: 64,
                height: 32
            })
        );
        let mut idx: Vec<u64> = manifest(&o.out)
            .iter()
            .filter_map(|e| e["frame_index"].as_u64())
            .collect();
        idx.sort();
        assert_eq!(idx, vec![0, 4, 8, 12, 16]);
    }

    #[test]
    fn bars_on_still_images_only_when_asked_and_never_on_a_dark_scene() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        std::fs::create_dir_all(&a).unwrap();
        save(
            &with_bars(&blocks(80, 40, 1), 80, 60, 0, 10, 20, 5),
            &a.join("boxed.png"),
        );
        save(&night_scene(80, 60), &a.join("night.png"));
        let b = t.path().join("b.png");
        save(&blocks(32, 32, 9), &b);
        let mut o = opts(vec![a.clone()], vec![b.clone()], t.path().join("o1"));
        o.test_fraction = 0.0;
        let r = prepare(&o).unwrap();
        assert_eq!(r.domains[0].bars_cropped, 0);
        o.out = t.path().join("o2");
        o.crop_bars = CropBars::All;
        let r = prepare(&o).unwrap();
        assert_eq!(r.domains[0].bars_cropped, 1);
        let m = manifest(&o.out);
        let boxed = m
            .iter()
            .find(|e| e["source"].as_str().unwrap().ends_with("boxed.png"))
            .unwrap();
        assert_eq!(
            boxed["crop"],
            serde_json::json!({"x": 0, "y": 10, "width": 80, "height": 40})
        );
        let night = m
            .iter()
            .find(|e| e["source"].as_str().unwrap().ends_with("night.png"))
            .unwrap();
        assert!(night["crop"].is_null());
    }

    #[test]
    fn non_rgb_drop_and_output_format() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        std::fs::create_dir_all(&a).unwrap();
        save(&blocks(40, 40, 1), &a.join("rgb.png"));
        DynamicImage::ImageRgb8(blocks(40, 40, 2))
            .to_luma8()
            .save(a.join("grey.png"))
            .unwrap();
        let b = t.path().join("b.png");
        save(&blocks(32, 32, 9), &b);
        let mut o = opts(vec![a], vec![b], t.path().join("o"));
        o.non_rgb = NonRgb::Drop;
        o.format = OutputFormat::Jpg;
        o.test_fraction = 0.0;
        let r = prepare(&o).unwrap();
        assert_eq!(r.domains[0].train, 1);
        assert_eq!(r.domains[0].dropped_non_rgb.len(), 1);
        assert!(r.domains[0].dropped_non_rgb[0].path.ends_with("grey.png"));
        assert!(!r.has_findings()); // asked for, not a problem
        assert_eq!(files_in(&o.out.join("trainA")), vec!["rgb.jpg"]);
        let bytes = std::fs::read(o.out.join("trainA/rgb.jpg")).unwrap();
        assert!(bytes.starts_with(&[0xFF, 0xD8]));
    }

    #[test]
    fn output_folder_is_protected() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a.png");
        let b = t.path().join("b.png");
        save(&blocks(32, 32, 1), &a);
        save(&blocks(32, 32, 2), &b);
        let out = t.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("mine.txt"), b"keep me").unwrap();
        let o = opts(vec![a.clone()], vec![b.clone()], out.clone());
        assert!(matches!(prepare(&o), Err(PrepareError::OutNotEmpty(_))));
        assert_eq!(files_in(&out), vec!["mine.txt"]);
        // --overwrite: the user's file stays, a previous layout is moved aside, not deleted.
        let o = PrepareOptions {
            overwrite: true,
            ..o
        };
        prepare(&o).unwrap();
        std::fs::write(out.join("trainA/extra.png"), b"user's").unwrap();
        let r = prepare(&o).unwrap();
        let old = r.replaced.clone().unwrap();
        assert!(old.join("trainA/extra.png").exists());
        assert!(!out.join("trainA/extra.png").exists());
        assert_eq!(std::fs::read(out.join("mine.txt")).unwrap(), b"keep me");
        assert!(out.join("trainA/a.png").exists());
    }

    #[test]
    fn strict_installs_nothing_when_something_was_skipped() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        std::fs::create_dir_all(&a).unwrap();
        save(&blocks(32, 32, 1), &a.join("ok.png"));
        std::fs::write(a.join("bad.jpg"), b"").unwrap();
        let b = t.path().join("b.png");
        save(&blocks(32, 32, 2), &b);
        let out = t.path().join("out");
        let o = PrepareOptions {
            strict: true,
            ..opts(vec![a], vec![b], out.clone())
        };
        let r = prepare(&o).unwrap();
        assert!(!r.installed);
        assert_eq!(r.skipped.len(), 1);
        assert!(!out.exists());
    }

    #[test]
    fn bad_options_and_empty_domains_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a.png");
        save(&blocks(32, 32, 1), &a);
        let bad = t.path().join("bad.jpg");
        std::fs::write(&bad, b"nope").unwrap();
        let out = t.path().join("out");
        let e = prepare(&opts(vec![a.clone()], vec![bad], out.clone())).unwrap_err();
        assert!(
            e.to_string().contains("domain B has no usable picture")
                && e.to_string().contains("bad.jpg"),
            "{e}"
        );
        assert!(!out.exists());
        let e = prepare(&PrepareOptions {
            test_fraction: 1.0,
            ..opts(vec![a.clone()], vec![a.clone()], out.clone())
        })
        .unwrap_err();
        assert!(e.to_string().contains("--test-fraction"));
        let e = prepare(&opts(vec![t.path().join("missing")], vec![a.clone()], out)).unwrap_err();
        assert!(e.to_string().contains("missing"));
    }
}
