//! `cyclegan train`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::{Result, bail};

use super::device::DeviceArg;
use crate::train::fault::Fault;
use crate::train::{GanMode, Outcome, RunOptions, TrainConfig, train};

/// A switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// Options of `cyclegan train`. Defaults are the paper's; every option also has a key in
/// `RUN_DIR/config.toml`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
cyclegan train data/horse2zebra --out runs/h2z                      # the paper's settings\n  \
cyclegan train data/horse2zebra --out runs/h2z128 --crop-size 128 --load-size 143 --blocks 6\n  \
cyclegan train --resume runs/h2z                                    # continue after Ctrl-C or a crash\n\n\
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

    /// Residual blocks in the generators [default: 9]; 6 suits 128 px.
    #[arg(long, help_heading = "Networks")]
    blocks: Option<usize>,
    /// Generator filters in the first layer [default: 64].
    #[arg(long, help_heading = "Networks")]
    ngf: Option<usize>,
    /// Discriminator filters in the first layer [default: 64].
    #[arg(long, help_heading = "Networks")]
    ndf: Option<usize>,
    /// Discriminator stride-2 layers [default: 3, the 70x70 PatchGAN].
    #[arg(long, help_heading = "Networks")]
    d_layers: Option<usize>,

    /// Adversarial loss [default: lsgan].
    #[arg(long, value_enum, help_heading = "Losses")]
    gan_mode: Option<GanMode>,
    /// Weight of the A->B->A cycle loss [default: 10].
    #[arg(long, help_heading = "Losses")]
    lambda_a: Option<f32>,
    /// Weight of the B->A->B cycle loss [default: 10].
    #[arg(long, help_heading = "Losses")]
    lambda_b: Option<f32>,
    /// Identity loss weight, relative to the cycle weights [default: 0.5; 0 disables].
    #[arg(long, help_heading = "Losses")]
    lambda_identity: Option<f32>,
    /// Past fakes kept for the discriminators [default: 50; 0 disables].
    #[arg(long, help_heading = "Losses")]
    pool_size: Option<usize>,

    /// Adam learning rate [default: 0.0002].
    #[arg(long, help_heading = "Optimisation")]
    lr: Option<f64>,
    /// Adam beta1 [default: 0.5].
    #[arg(long, help_heading = "Optimisation")]
    beta1: Option<f32>,
    /// Epochs at the initial learning rate [default: 100].
    #[arg(long, help_heading = "Optimisation")]
    epochs: Option<usize>,
    /// Epochs of linear decay to zero afterwards [default: 100].
    #[arg(long, help_heading = "Optimisation")]
    epochs_decay: Option<usize>,
    /// Images per batch [default: 1].
    #[arg(long, help_heading = "Optimisation")]
    batch_size: Option<usize>,
    /// Seed of every random choice [default: 0].
    #[arg(long, help_heading = "Optimisation")]
    seed: Option<u64>,

    /// Resize images to this square size first [default: 286].
    #[arg(long, help_heading = "Data")]
    load_size: Option<u32>,
    /// Then take random crops of this size, a multiple of 4 [default: 256].
    #[arg(long, help_heading = "Data")]
    crop_size: Option<u32>,
    /// Do not flip images horizontally at random.
    #[arg(long, help_heading = "Data")]
    no_flip: bool,
    /// Threads decoding images [default: 2].
    #[arg(long, help_heading = "Data")]
    workers: Option<usize>,

    /// Minutes between checkpoints within an epoch [default: 10; 0: epoch ends only].
    #[arg(long, help_heading = "Run")]
    save_every_minutes: Option<f64>,
    /// Checkpoints to keep [default: 3]; the newest good one is always kept.
    #[arg(long, help_heading = "Run")]
    keep_last: Option<usize>,
    /// Also write a sample grid and redraw losses.png every N iterations [default: 0, epoch ends only].
    #[arg(long, value_name = "N", help_heading = "Run")]
    sample_every: Option<u64>,
    /// Stop after this many iterations in total (smoke runs).
    #[arg(long, help_heading = "Run")]
    max_iters: Option<u64>,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu, help_heading = "Run")]
    device: DeviceArg,

    /// Divergence guard: on NaN, exploding or collapsing losses, roll back to the last good
    /// checkpoint and lower the learning rate [default: on].
    #[arg(long, value_enum, help_heading = "Divergence guard")]
    guard: Option<OnOff>,
    /// Learning-rate multiplier at each rollback [default: 0.5].
    #[arg(long, help_heading = "Divergence guard")]
    guard_lr_factor: Option<f64>,
    /// Rollbacks allowed before giving up [default: 3].
    #[arg(long, help_heading = "Divergence guard")]
    guard_max_rollbacks: Option<usize>,
    /// Iterations of loss history the guard judges against [default: 200].
    #[arg(long, help_heading = "Divergence guard")]
    guard_window: Option<usize>,
    /// Inject a fault for testing: nan@ITER, lr-spike@ITER:FACTOR, save-fail@ITER.
    #[arg(long, hide = true)]
    inject_fault: Option<Fault>,
    /// No progress bar.
    #[arg(long, short, help_heading = "Run")]
    quiet: bool,
}

impl TrainArgs {
    /// The config: from --config (or the defaults), then the options given.
    fn config(&self, base: TrainConfig) -> TrainConfig {
        let mut c = base;
        macro_rules! set {
            ($($field:ident).+ = $opt:expr) => {
                if let Some(v) = $opt.clone() {
                    c.$($field).+ = v;
                }
            };
        }
        set!(generator.blocks = self.blocks);
        set!(generator.ngf = self.ngf);
        set!(discriminator.ndf = self.ndf);
        set!(discriminator.layers = self.d_layers);
        set!(gan_mode = self.gan_mode);
        set!(lambda_a = self.lambda_a);
        set!(lambda_b = self.lambda_b);
        set!(lambda_identity = self.lambda_identity);
        set!(pool_size = self.pool_size);
        set!(lr = self.lr);
        set!(beta1 = self.beta1);
        set!(epochs = self.epochs);
        set!(epochs_decay = self.epochs_decay);
        set!(batch_size = self.batch_size);
        set!(seed = self.seed);
        set!(load_size = self.load_size);
        set!(crop_size = self.crop_size);
        set!(workers = self.workers);
        set!(save_every_minutes = self.save_every_minutes);
        set!(keep_last = self.keep_last);
        set!(sample_every = self.sample_every);
        if let Some(g) = self.guard {
            c.guard.enabled = g == OnOff::On;
        }
        set!(guard.lr_factor = self.guard_lr_factor);
        set!(guard.max_rollbacks = self.guard_max_rollbacks);
        set!(guard.window = self.guard_window);
        if self.no_flip {
            c.flip = false;
        }
        if self.max_iters.is_some() {
            c.max_iters = self.max_iters;
        }
        if let Some(d) = &self.data_dir {
            c.data_dir = d.clone();
        }
        c
    }
}

/// Run the command.
pub fn run(args: TrainArgs) -> Result<ExitCode> {
    let mut opts = RunOptions::new(args.device.device()?);
    opts.progress = !args.quiet;
    opts.fault = args.inject_fault;
    let (run_dir, config) = if let Some(run_dir) = &args.resume {
        opts.resume = true;
        let saved = TrainConfig::load(&run_dir.join("config.toml"))?;
        // Only run-time settings may change on resume; the rest comes from the checkpoint.
        (run_dir.clone(), args.config(saved))
    } else {
        let Some(run_dir) = &args.out else {
            bail!("give --out RUN_DIR for a new run, or --resume RUN_DIR to continue one");
        };
        let base = match &args.config {
            Some(file) => TrainConfig::load(file)?,
            None => TrainConfig::default(),
        };
        let config = args.config(base);
        if config.data_dir.as_os_str().is_empty() {
            bail!("give the dataset folder (DATA_DIR with trainA/ and trainB/)");
        }
        (run_dir.clone(), config)
    };

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

    let summary = train(&config, &run_dir, &opts)?;
    if let Some(l) = &summary.last_losses {
        eprintln!(
            "iterations: {} ({} in this session); last losses: G_A {:.3} G_B {:.3} cycle_A {:.3} cycle_B {:.3} D_A {:.3} D_B {:.3}",
            summary.global_iter,
            summary.iterations_run,
            l.G_A,
            l.G_B,
            l.cycle_A,
            l.cycle_B,
            l.D_A,
            l.D_B
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
