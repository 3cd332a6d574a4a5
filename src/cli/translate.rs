//! `cyclegan translate`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::device::DeviceArg;
use crate::family::Direction;
use crate::model::precision::Precision;
use crate::run::{OnOff, UsageError};
use crate::translate::{
    ImageOptions, Sizing, Translator, memory, translate_file, translate_folder, video,
};

/// Options of `cyclegan translate`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
cyclegan translate --model runs/h2z horse.jpg zebra.jpg\n  \
cyclegan translate --model runs/h2z --direction b2a zebras/ horses/\n  \
cyclegan translate --model runs/h2z clip.mp4 clip_zebra.mp4         # every frame, timing kept
  \
cyclegan translate --model runs/h2z --side-by-side --size 256 in.gif out.gif
  \
cyclegan translate --model latest_net_G_A.pth photo.png out.png     # a PyTorch CycleGAN generator

\
Videos: MP4/MOV (H.264), GIF and APNG in the default build; the sound of an MP4/MOV is copied\n\
into MP4 output. Built with `--features ffmpeg`: every container and codec FFmpeg reads,\n\
.mkv/.webm/.avi/... output, and any input's audio copied. Frames keep their timestamps and are\n\
written upright (phone rotation applied); damaged frames are concealed (exit status 3); output\n\
is written to a temporary name and renamed when complete.")]
pub struct TranslateArgs {
    /// A run folder (newest good checkpoint), a checkpoint folder, or a generator file
    /// (.safetensors, or .pth from the PyTorch CycleGAN).
    #[arg(long, value_name = "MODEL")]
    model: PathBuf,
    /// a2b applies G_A (A to B), b2a applies G_B. Ignored for single-generator files.
    #[arg(long, value_enum, default_value_t = Direction::A2b)]
    direction: Direction,
    /// An image file, a folder of images (subfolders too: the output mirrors the tree), or a video (.mp4, .gif, .apng; with the `ffmpeg`
    /// feature also .mkv, .webm, .avi, ...).
    input: PathBuf,
    /// The output image or video (format from its extension), or folder.
    output: PathBuf,
    /// Images: scale so that the shorter side has N pixels before translating (up or down); the
    /// output has that size (or the input's with --keep-size).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "max_side", help_heading = "Images")]
    load_size: Option<u32>,
    /// Images: scale down (never up) so that the longer side has at most N pixels.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Images")]
    max_side: Option<u32>,
    /// Images: scale the translation back to the input's size (after --load-size or --max-side).
    #[arg(long, help_heading = "Images")]
    keep_size: bool,
    /// Images: translate an image larger than N x N in overlapping N x N tiles, blended across
    /// the overlaps: any size fits in memory. Instance norm then sees each tile alone, so tiles
    /// of very different content may differ slightly in tone.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(16..), help_heading = "Images")]
    tile: Option<u32>,
    /// Images: pixels by which neighbouring tiles overlap (and are blended); less than half of
    /// --tile.
    #[arg(long, value_name = "N", default_value_t = 32, help_heading = "Images")]
    tile_overlap: u32,
    /// Images: memory one image (or tile) may take, in MiB; a larger one is refused before it
    /// runs, naming the options that help [default: the memory available, on the CPU; no limit
    /// on GPUs].
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..), help_heading = "Images")]
    memory_limit: Option<u64>,
    /// Videos: resize frames so their shorter side has this many pixels [default: input size].
    #[arg(long, help_heading = "Video")]
    size: Option<u32>,
    /// Videos: frames translated at once [default: 1 on the CPU, where batching is no faster
    /// and 4 frames at 480p take 1.5 GiB more; 4 on GPUs].
    #[arg(long, help_heading = "Video")]
    batch: Option<usize>,
    /// Videos: write the input and its translation side by side.
    #[arg(long, help_heading = "Video")]
    side_by_side: bool,
    /// Videos: blend each frame with the previous output warped by the input's optical flow,
    /// which removes most frame-to-frame flicker (see BENCHMARKS.md).
    #[arg(long, value_enum, default_value_t = OnOff::On, help_heading = "Video")]
    temporal: OnOff,
    /// Videos: how much of the motion-compensated previous output is kept where the motion is
    /// trusted, from 0 (none) to 0.95; higher is steadier but slower to follow real changes.
    #[arg(long, default_value_t = cyclegan_video::flicker::TemporalParams::default().strength, value_parser = parse_strength, value_name = "S", help_heading = "Video")]
    temporal_strength: f32,
    /// Videos: bit rate in bits/s [default: chosen from the frame size for MP4, constant quality
    /// for the `ffmpeg` feature's encoders].
    #[arg(long, help_heading = "Video")]
    bitrate: Option<u32>,
    /// Videos: most frames that may fail to decode (damaged data; each is replaced by the frame
    /// before it) before translation stops [default: 5% of the frames, at least 1].
    #[arg(long, value_name = "N", help_heading = "Video")]
    max_damaged_frames: Option<usize>,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// Float type of the convolutions: f16 or bf16 for mixed precision on GPUs that have it.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    precision: Precision,
    /// Folders: also write OUTPUT/index.html, each input beside its translation (50 per page).
    #[arg(long)]
    report: bool,
    /// Refuse damaged (partial) images instead of translating the part present.
    #[arg(long)]
    strict: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// Run the command.
pub fn run(args: TranslateArgs) -> Result<ExitCode> {
    let device = args.device.device()?;
    if !args.input.exists() {
        bail!("{}: input not found", args.input.display());
    }
    if args.report && !args.input.is_dir() {
        bail!("--report makes a gallery of a folder translation: give a folder of images as input");
    }
    let image_opts = image_options(&args)?;
    let is_video = !args.input.is_dir() && cyclegan_video::looks_like_video(&args.input);
    let image_only = args.load_size.is_some()
        || args.max_side.is_some()
        || args.keep_size
        || args.tile.is_some()
        || args.memory_limit.is_some();
    if is_video && image_only {
        return Err(UsageError(
            "--load-size, --max-side, --keep-size, --tile and --memory-limit apply to still images; for a video, --size sets the frame size".into(),
        )
        .into());
    }
    args.precision
        .check_device(&device)
        .map_err(|e| UsageError(format!("{e:#}")))?;
    let translator =
        Translator::load(&args.model, args.direction, &device)?.with_precision(args.precision);
    if args.input.is_dir() {
        let report = translate_folder(
            &translator,
            &args.input,
            &args.output,
            &image_opts,
            args.strict,
            args.quiet,
        )?;
        if args.report {
            let jobs = crate::translate::folder_jobs(&args.input, &args.output)?;
            let items = crate::report::gallery::items_of_jobs(&jobs);
            let title = format!(
                "{} translated by {}",
                args.input.display(),
                args.model.display()
            );
            let pages = crate::report::write_gallery(
                &args.output,
                &title,
                &["input", "output"],
                &items,
                crate::report::gallery::PER_PAGE,
            )?;
            eprintln!("gallery: {} ({} page(s))", pages[0].display(), pages.len());
        }
        let total = report.translated + report.skipped.len();
        eprintln!(
            "translated {} of {total} images into {}{}",
            report.translated,
            args.output.display(),
            match report.partial.len() {
                0 => String::new(),
                n => format!(" ({n} from damaged files)"),
            }
        );
        return Ok(if report.skipped.is_empty() && report.partial.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(super::EXIT_FINDINGS)
        });
    }
    // Every video goes to the video path, also one this build cannot read: its error then
    // names what is missing, rather than an image decoder's.
    if is_video {
        use cyclegan_video::{VideoTranslateOptions, flicker::TemporalParams};
        let opts = VideoTranslateOptions {
            size: args.size,
            batch: args
                .batch
                .unwrap_or(if args.device == DeviceArg::Cpu { 1 } else { 4 })
                .max(1),
            side_by_side: args.side_by_side,
            temporal: (args.temporal == OnOff::On).then(|| TemporalParams {
                strength: args.temporal_strength,
                ..TemporalParams::default()
            }),
            bitrate: args.bitrate,
            max_damaged_frames: args.max_damaged_frames,
        };
        let report =
            video::translate_video(&translator, &args.input, &args.output, &opts, args.quiet)?;
        eprintln!(
            "wrote {} ({} frames, {}x{}, {:.2} s of video) in {:.1} s",
            report.output.display(),
            report.frames,
            report.width,
            report.height,
            report.duration,
            report.elapsed.as_secs_f64()
        );
        if report.damaged.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        let listed: Vec<String> = report
            .damaged
            .iter()
            .take(10)
            .map(|d| d.to_string())
            .collect();
        eprintln!(
            "warning: {}: {} damaged frame(s) concealed (the frame before shown in their place): {}{}",
            args.input.display(),
            report.damaged.len(),
            listed.join(", "),
            if report.damaged.len() > 10 {
                ", ..."
            } else {
                ""
            }
        );
        return Ok(ExitCode::from(super::EXIT_FINDINGS));
    }
    match translate_file(
        &translator,
        &args.input,
        &args.output,
        &image_opts,
        args.strict,
    )? {
        Some(warning) => {
            eprintln!("warning: {warning}");
            Ok(ExitCode::from(super::EXIT_FINDINGS))
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

/// The still-image options, checked (usage errors name the option); the memory limit defaults
/// to the memory available when translating on the CPU.
fn image_options(args: &TranslateArgs) -> Result<ImageOptions> {
    if let Some(tile) = args.tile
        && args.tile_overlap * 2 >= tile
    {
        return Err(UsageError(format!(
            "--tile-overlap {} must be less than half of --tile {tile}",
            args.tile_overlap
        ))
        .into());
    }
    let memory_limit = match args.memory_limit {
        Some(mib) => Some(mib.saturating_mul(1024 * 1024)),
        None if args.device == DeviceArg::Cpu => memory::available(),
        None => None,
    };
    Ok(ImageOptions {
        sizing: Sizing {
            load_size: args.load_size,
            max_side: args.max_side,
            keep_size: args.keep_size,
        },
        tile: args.tile,
        tile_overlap: args.tile_overlap,
        memory_limit,
    })
}

/// `--temporal-strength`: a number from 0 to 0.95.
fn parse_strength(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if (0.0..=0.95).contains(&v) => Ok(v),
        _ => Err(format!("expected a number from 0 to 0.95, got '{s}'")),
    }
}
