//! `cyclegan translate`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::device::DeviceArg;
use crate::translate::{Direction, Translator, folder_jobs, translate_file};

/// Options of `cyclegan translate`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
cyclegan translate --model runs/h2z horse.jpg zebra.jpg\n  \
cyclegan translate --model runs/h2z --direction b2a zebras/ horses/\n  \
cyclegan translate --model latest_net_G_A.pth photo.png out.png     # a PyTorch CycleGAN generator")]
pub struct TranslateArgs {
    /// A run folder (newest good checkpoint), a checkpoint folder, or a generator file
    /// (.safetensors, or .pth from the PyTorch CycleGAN).
    #[arg(long, value_name = "MODEL")]
    model: PathBuf,
    /// a2b applies G_A (A to B), b2a applies G_B. Ignored for single-generator files.
    #[arg(long, value_enum, default_value_t = Direction::A2b)]
    direction: Direction,
    /// An image file or a folder of images.
    input: PathBuf,
    /// The output image (format from its extension) or folder.
    output: PathBuf,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
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
        return Ok(if failed > 0 {
            ExitCode::from(super::EXIT_FINDINGS)
        } else {
            ExitCode::SUCCESS
        });
    }
    translate_file(&translator, &args.input, &args.output)?;
    Ok(ExitCode::SUCCESS)
}
