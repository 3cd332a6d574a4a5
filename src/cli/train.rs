//! `cyclegan train`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::Result;

use crate::config::TrainConfig;
use crate::device::DeviceArg;
use crate::run::{Overrides, Run, UsageError};
use crate::train::{Outcome, RunOptions, train};

/// Options of `cyclegan train`. Defaults are the paper's; every option also has a key in
/// `RUN_DIR/config.toml`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
cyclegan train data/horse2zebra --out runs/h2z                      # the paper's settings\n  \
cyclegan train data/horse2zebra --out runs/h2z128 --crop-size 128 --load-size 143 --blocks 6\n  \
cyclegan train data/horse2zebra --out runs/h2z-fast --model fastcut # one generator: about 2x faster\n  \
cyclegan train --resume runs/h2z                                    # continue after Ctrl-C or a crash\n  \
cyclegan train data/mine --out runs/mine --init-from runs/h2z       # fine-tune another model\n  \
cyclegan train --resume runs/h2z --lr 0.0001                        # run-time settings may change\n\n\
Writes RUN_DIR/config.toml, losses.jsonl (every iteration), losses.png and samples/ (each epoch),\n\
and checkpoints/ (each epoch and every --save-every-minutes; atomic, verified on load).")]
pub struct TrainArgs {
    /// Dataset folder with trainA/ and trainB/ (not needed with --resume).
    data_dir: Option<PathBuf>,
    /// Run folder for checkpoints, logs and samples.
    #[arg(long, value_name = "RUN_DIR")]
    out: Option<PathBuf>,
    /// Continue the run in RUN_DIR from its newest good checkpoint.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// Read the configuration from a TOML file (e.g. another run's config.toml); options given
    /// on the command line override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// The settings (on --resume only the run-time ones may change).
    #[command(flatten)]
    settings: Overrides,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu, help_heading = "Run")]
    device: DeviceArg,
    /// No progress bar.
    #[arg(long, short, help_heading = "Run")]
    quiet: bool,
}

/// Run the command.
pub fn run(args: TrainArgs) -> Result<ExitCode> {
    let device = args.device.device()?;
    let opts = RunOptions {
        progress: !args.quiet,
        ..RunOptions::default()
    };
    let mut settings = args.settings.clone();
    settings.data_dir = args.data_dir.clone();
    let mut run = if let Some(run_dir) = &args.resume {
        if args.config.is_some() {
            return Err(UsageError(
                "--config cannot be combined with --resume: a resumed run keeps its own config.toml; give the settings to change as options".into(),
            )
            .into());
        }
        Run::resume(run_dir, &settings, &device)?
    } else {
        let Some(run_dir) = &args.out else {
            return Err(UsageError(
                "give --out RUN_DIR for a new run, or --resume RUN_DIR to continue one".into(),
            )
            .into());
        };
        let mut config = match &args.config {
            Some(file) => TrainConfig::load(file)?,
            None => TrainConfig::for_family(settings.model.unwrap_or_default()),
        };
        settings.apply(&mut config);
        if config.data_dir.as_os_str().is_empty() {
            return Err(UsageError(
                "give the dataset folder (DATA_DIR with trainA/ and trainB/)".into(),
            )
            .into());
        }
        Run::start(config, run_dir, &device)?
    };
    let run_dir = run.dir.clone();

    let stop = opts.stop.clone();
    let _ = ctrlc::set_handler(move || {
        if stop.swap(true, Ordering::SeqCst) {
            // A second Ctrl-C while saving: leave at once (the previous checkpoint is intact).
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupted: saving a checkpoint after this iteration (Ctrl-C again to quit at once)"
        );
    });

    let summary = train(&mut run, &opts)?;
    if let Some(l) = &summary.last_losses {
        eprintln!(
            "iterations: {} ({} in this session); last losses: {}",
            summary.global_iter,
            summary.iterations_run,
            l.summary()
        );
    }
    if let Some(c) = &summary.last_checkpoint {
        eprintln!("checkpoint: {}", c.display());
    }
    if !summary.skipped_files.is_empty() {
        eprintln!(
            "skipped {} unreadable file(s):",
            summary.skipped_files.len()
        );
        for (_, why) in &summary.skipped_files {
            eprintln!("  {why}");
        }
    }
    Ok(match summary.outcome {
        // Done, but part of the data was not used: say so to scripts too.
        Outcome::Finished if !summary.skipped_files.is_empty() => {
            ExitCode::from(super::EXIT_FINDINGS)
        }
        Outcome::Finished => ExitCode::SUCCESS,
        Outcome::Interrupted => {
            eprintln!(
                "stopped; continue with: cyclegan train --resume {}",
                run_dir.display()
            );
            ExitCode::from(super::EXIT_INTERRUPTED)
        }
    })
}
