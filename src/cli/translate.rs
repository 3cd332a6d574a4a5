//! `cyclegan translate`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::device::DeviceArg;
use super::train::OnOff;
use crate::translate::{Direction, Translator, folder_jobs, translate_file};

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
Videos: MP4 (H.264), GIF and APNG in the default build, without sound. Built with\n\
`--features ffmpeg`: every container and codec FFmpeg reads, .mkv/.webm/.avi/... output, and the\n\
input's audio copied into the output. Frames keep their timestamps; output is written to a\n\
temporary name and renamed when complete.")]
pub struct TranslateArgs {
    /// A run folder (newest good checkpoint), a checkpoint folder, or a generator file
    /// (.safetensors, or .pth from the PyTorch CycleGAN).
    #[arg(long, value_name = "MODEL")]
    model: PathBuf,
    /// a2b applies G_A (A to B), b2a applies G_B. Ignored for single-generator files.
    #[arg(long, value_enum, default_value_t = Direction::A2b)]
    direction: Direction,
    /// An image file, a folder of images, or a video (.mp4, .gif, .apng; with the `ffmpeg`
    /// feature also .mkv, .webm, .avi, ...).
    input: PathBuf,
    /// The output image or video (format from its extension), or folder.
    output: PathBuf,
    /// Videos: resize frames so their shorter side has this many pixels [default: input size].
    #[arg(long, help_heading = "Video")]
    size: Option<u32>,
    /// Videos: frames translated at once.
    #[arg(long, default_value_t = 4, help_heading = "Video")]
    batch: usize,
    /// Videos: write the input and its translation side by side.
    #[arg(long, help_heading = "Video")]
    side_by_side: bool,
    /// Videos: blend each frame with the previous output warped by the input's optical flow,
    /// which removes most frame-to-frame flicker (see BENCHMARKS.md).
    #[arg(long, value_enum, default_value_t = OnOff::On, help_heading = "Video")]
    temporal: OnOff,
    /// Videos: bit rate in bits/s [default: chosen from the frame size for MP4, constant quality
    /// for the `ffmpeg` feature's encoders].
    #[arg(long, help_heading = "Video")]
    bitrate: Option<u32>,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// Folders: also write OUTPUT/index.html, each input beside its translation (50 per page).
    #[arg(long)]
    report: bool,
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
    let translator = Translator::load(&args.model, args.direction, &device)?;
    if args.input.is_dir() {
        let jobs = folder_jobs(&args.input, &args.output)?;
        std::fs::create_dir_all(&args.output).map_err(|e| {
            anyhow::anyhow!(
                "{}: cannot create output folder: {e}",
                args.output.display()
            )
        })?;
        let bar = if args.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(jobs.len() as u64)
        };
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} images  {per_sec}  ETA {eta}")
                .unwrap(),
        );
        let mut failed = 0;
        for (input, output) in &jobs {
            if let Err(e) = translate_file(&translator, input, output) {
                bar.suspend(|| eprintln!("warning: skipped: {e:#}"));
                failed += 1;
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        eprintln!(
            "translated {} of {} images into {}",
            jobs.len() - failed,
            jobs.len(),
            args.output.display()
        );
        if args.report {
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
        return Ok(if failed > 0 {
            ExitCode::from(super::EXIT_FINDINGS)
        } else {
            ExitCode::SUCCESS
        });
    }
    if cyclegan_video::is_video_path(&args.input) {
        return translate_video(&translator, &args);
    }
    translate_file(&translator, &args.input, &args.output)?;
    Ok(ExitCode::SUCCESS)
}

fn translate_video(translator: &Translator, args: &TranslateArgs) -> Result<ExitCode> {
    use cyclegan_video::{VideoTranslateOptions, flicker::TemporalParams};
    let opts = VideoTranslateOptions {
        size: args.size,
        batch: args.batch.max(1),
        side_by_side: args.side_by_side,
        temporal: (args.temporal == OnOff::On).then(TemporalParams::default),
        bitrate: args.bitrate,
    };
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} frames  {per_sec}  ETA {eta}").unwrap(),
    );
    let translator = translator.clone();
    let mut network = move |frames: &[image::RgbImage]| -> Result<Vec<image::RgbImage>, String> {
        Ok(translator.translate(frames))
    };
    let mut progress = |done: usize, total: Option<usize>| {
        if let Some(t) = total {
            bar.set_length(t as u64);
        }
        bar.set_position(done as u64);
    };
    let report = cyclegan_video::translate_video(
        &args.input,
        &args.output,
        &opts,
        &mut network,
        &mut progress,
    )?;
    bar.finish_and_clear();
    eprintln!(
        "wrote {} ({} frames, {}x{}, {:.2} s of video) in {:.1} s",
        report.output.display(),
        report.frames,
        report.width,
        report.height,
        report.duration,
        report.elapsed.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
