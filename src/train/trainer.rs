//! The training loop: data in, iterations, logs, samples and checkpoints out.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use cyclegan_data::loader::{ImageBatch, Loader, LoaderConfig, UnpairedDataset, rng_for};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, TrainingState};
use super::config::TrainConfig;
use super::cyclegan::{CycleGan, Losses, Visuals};
use super::fault::Fault;
use super::guard::{Anomaly, Guard};
use super::schedule::learning_rate;
use super::{plots, samples};

/// How to run (as opposed to what to train, which is the [`TrainConfig`]).
#[derive(Clone)]
pub struct RunOptions {
    /// Device to train on; autodiff is added on top.
    pub device: Device,
    /// Continue from the newest good checkpoint in the run folder.
    pub resume: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// Set (e.g. by Ctrl-C) to save a checkpoint and stop after the current iteration.
    pub stop: Arc<AtomicBool>,
    /// A fault to inject (tests of the guard and of checkpoint safety).
    pub fault: Option<Fault>,
}

impl RunOptions {
    /// CPU (Flex backend), fresh run, progress bar on, not stopped.
    pub fn new(device: Device) -> Self {
        RunOptions {
            device,
            resume: false,
            progress: true,
            stop: Arc::new(AtomicBool::new(false)),
            fault: None,
        }
    }
}

/// How a call to [`train`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The schedule (or `max_iters`) completed.
    Finished,
    /// Stopped on request after saving a checkpoint.
    Interrupted,
}

/// What a call to [`train`] did.
#[derive(Debug, Clone)]
pub struct Summary {
    /// How it ended.
    pub outcome: Outcome,
    /// Iterations done in total (this call and before).
    pub global_iter: u64,
    /// Iterations done by this call.
    pub iterations_run: u64,
    /// The newest checkpoint written.
    pub last_checkpoint: Option<PathBuf>,
    /// Files skipped because they could not be decoded, with reasons.
    pub skipped_files: Vec<(PathBuf, String)>,
    /// Losses of the last iteration.
    pub last_losses: Option<Losses>,
}

/// One line of `losses.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LossRecord {
    /// Global iteration (1-based: the number of iterations done).
    pub iter: u64,
    /// Epoch (0-based).
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f64,
    /// The eight losses.
    #[serde(flatten)]
    pub losses: Losses,
}

/// Train according to `config`, writing everything to `run_dir`.
///
/// A fresh run refuses a folder that already holds checkpoints (use `resume`); a resumed run
/// continues from the newest good checkpoint with the saved config, updated by `config`'s
/// run-time fields (`max_iters`, `save_every_minutes`, `keep_last`, `workers`, `guard`).
pub fn train(config: &TrainConfig, run_dir: &Path, opts: &RunOptions) -> Result<Summary> {
    config.validate()?;
    fs::create_dir_all(run_dir)
        .with_context(|| format!("{}: cannot create run folder", run_dir.display()))?;
    let device = opts.device.clone().autodiff();
    let log_path = run_dir.join("losses.jsonl");

    let (config, mut model, mut state) = if opts.resume {
        checkpoint::clean_leftovers(run_dir)?;
        // Only checkpoints of this run's architecture: a stray one from another run is skipped.
        let same_run = |saved: &TrainingState| {
            let s = &saved.config;
            if s.generator == config.generator && s.discriminator == config.discriminator {
                Ok(())
            } else {
                Err(format!(
                    "written for generator {:?} / discriminator {:?}, but this run's config.toml has {:?} / {:?}",
                    s.generator, s.discriminator, config.generator, config.discriminator
                ))
            }
        };
        let Some(loaded) = checkpoint::latest_accepted(run_dir, same_run) else {
            bail!(
                "{}: no complete checkpoint to resume from (start a new run without --resume)",
                run_dir.display()
            );
        };
        let mut c = loaded.state.config.clone();
        c.max_iters = config.max_iters;
        c.save_every_minutes = config.save_every_minutes;
        c.keep_last = config.keep_last;
        c.workers = config.workers;
        c.guard = config.guard;
        c.sample_every = config.sample_every;
        let model = loaded.restore(&c, &device)?;
        let mut state = loaded.state.clone();
        state.config = c.clone();
        eprintln!(
            "resuming from {} (epoch {}, iteration {})",
            loaded.dir.display(),
            state.epoch + 1,
            state.global_iter
        );
        truncate_log(&log_path, state.global_iter)?;
        (c, model, state)
    } else {
        if !checkpoint::list(run_dir).is_empty() {
            bail!(
                "{}: this run folder already has checkpoints; continue it with `cyclegan train --resume {}` or choose another --out",
                run_dir.display(),
                run_dir.display()
            );
        }
        let mut rng = rng_for(config.seed, &[u64::MAX - 1]);
        let model = CycleGan::new(config, &device, &mut rng);
        let state = TrainingState {
            format: checkpoint::FORMAT,
            epoch: 0,
            index: 0,
            global_iter: 0,
            lr_scale: 1.0,
            rollbacks: 0,
            config: config.clone(),
        };
        truncate_log(&log_path, 0)?;
        (config.clone(), model, state)
    };
    checkpoint::write_atomic(&run_dir.join("config.toml"), config.to_toml().as_bytes())?;

    let dataset = Arc::new(UnpairedDataset::open(&config.data_dir)?);
    let per_epoch = dataset.iterations_per_epoch(config.batch_size);
    if per_epoch == 0 {
        bail!(
            "{}: fewer images ({}) than --batch-size {}",
            config.data_dir.display(),
            dataset.epoch_len(),
            config.batch_size
        );
    }
    if state.global_iter == 0 {
        // A checkpoint of the initial state, so a rollback always has somewhere to go.
        save(run_dir, &mut model, &state, &config)?;
    }
    let total_epochs = config.total_epochs();
    let schedule_end = (total_epochs * per_epoch) as u64;
    let end = config
        .max_iters
        .map_or(schedule_end, |m| m.min(schedule_end));
    let loader_config = LoaderConfig {
        load_size: config.load_size,
        crop_size: config.crop_size,
        flip: config.flip,
        batch_size: config.batch_size,
        workers: config.workers,
        seed: config.seed,
    };
    let mut loader = Loader::start(
        dataset.clone(),
        loader_config.clone(),
        state.epoch,
        state.index,
    );

    let bar = progress_bar(opts.progress, state.global_iter, end);
    let mut log = open_log(&log_path)?;
    let mut summary = Summary {
        outcome: Outcome::Finished,
        global_iter: state.global_iter,
        iterations_run: 0,
        last_checkpoint: None,
        skipped_files: vec![],
        last_losses: None,
    };
    let mut last_save = Instant::now();
    let mut smoothed: Option<Losses> = None;
    let mut guard = Guard::new(config.guard);
    let mut fault = opts.fault.filter(|f| f.iter() > state.global_iter);

    while state.global_iter < end {
        if opts.stop.load(Ordering::SeqCst) {
            summary.outcome = Outcome::Interrupted;
            break;
        }
        let batch = loader.next_batch()?;
        debug_assert_eq!((batch.epoch, batch.index), (state.epoch, state.index));
        let iter = state.global_iter + 1;
        let mut lr = learning_rate(config.lr, state.epoch, config.epochs, config.epochs_decay)
            * state.lr_scale;
        let (mut real_a, real_b) = (to_tensor(&batch.a, &device), to_tensor(&batch.b, &device));
        let mut fail_save = false;
        match fault {
            Some(Fault::Nan { iter: at }) if at == iter => real_a = real_a.mul_scalar(f32::NAN),
            Some(Fault::LrSpike { iter: at, factor }) if at == iter => lr *= factor,
            Some(Fault::SaveFailure { iter: at }) if at == iter => fail_save = true,
            _ => {}
        }
        if fault.is_some_and(|f| f.iter() == iter) {
            fault = None; // each fault fires once, even if the iteration is replayed
        }
        let mut pool_rng = rng_for(config.seed, &[state.global_iter, u64::MAX - 2]);
        let (losses, visuals) = model.step(real_a, real_b, lr, &mut pool_rng, true);

        if let Some(anomaly) = guard.observe(&losses) {
            let first_bad = iter + 1 - anomaly.span(&config.guard).min(iter);
            let event = Event {
                iter,
                anomaly: anomaly.clone(),
                losses,
                lr,
                files_a: batch.a.paths.clone(),
                files_b: batch.b.paths.clone(),
                sample: None,
                rolled_back_to: None,
            };
            let target = roll_back_target(
                run_dir,
                first_bad,
                &format!("{anomaly:?} at iteration {iter}"),
            );
            let mut event = event;
            if let Some(v) = &visuals {
                let path = run_dir.join("samples").join(format!("event_{iter:08}.png"));
                if fs::create_dir_all(run_dir.join("samples")).is_ok()
                    && samples::write_grid(v, &path).is_ok()
                {
                    event.sample = Some(path);
                }
            }
            event.rolled_back_to = target.as_ref().ok().map(|t| t.state.global_iter);
            append_event(run_dir, &event)?;
            bar.suspend(|| eprintln!("guard: {} at iteration {iter}", describe(&anomaly)));
            if state.rollbacks >= config.guard.max_rollbacks {
                bail!(
                    "training diverged again after {} rollbacks ({}); see {}. Try a lower --lr, or raise --guard-max-rollbacks",
                    state.rollbacks,
                    describe(&anomaly),
                    run_dir.join("events.jsonl").display()
                );
            }
            let target = target?;
            let (lr_scale, rollbacks) =
                (state.lr_scale * config.guard.lr_factor, state.rollbacks + 1);
            model = target.restore(&config, &device)?;
            state = target.state.clone();
            state.config = config.clone();
            state.lr_scale = lr_scale;
            state.rollbacks = rollbacks;
            bar.suspend(|| {
                eprintln!(
                    "guard: rolled back to iteration {} ({}), learning rate x{lr_scale}",
                    state.global_iter,
                    target.dir.display()
                )
            });
            drop(log);
            truncate_log(&log_path, state.global_iter)?;
            log = open_log(&log_path)?;
            loader = Loader::start(
                dataset.clone(),
                loader_config.clone(),
                state.epoch,
                state.index,
            );
            guard.reset();
            bar.set_position(state.global_iter);
            continue;
        }

        if !losses.all_finite() {
            // Only reached with the guard off.
            bail!(
                "iteration {iter}: a loss is not finite ({losses:?}); files {:?} {:?}. Resume from the last checkpoint with a lower --lr, or turn --guard on",
                batch.a.paths,
                batch.b.paths
            );
        }
        state.global_iter = iter;
        state.index += 1;
        summary.iterations_run += 1;
        summary.last_losses = Some(losses);
        let record = LossRecord {
            iter,
            epoch: state.epoch,
            lr,
            losses,
        };
        writeln!(log, "{}", serde_json::to_string(&record)?).context("writing losses.jsonl")?;
        let s = smooth(smoothed, &losses);
        smoothed = Some(s);
        bar.set_message(format!(
            "epoch {}/{} G {:.3} cyc {:.3}/{:.3} D {:.3}/{:.3}",
            state.epoch + 1,
            total_epochs,
            s.G_A + s.G_B,
            s.cycle_A,
            s.cycle_B,
            s.D_A,
            s.D_B
        ));
        bar.inc(1);

        let finished_epoch = state.index == per_epoch;
        let sample_now = config.sample_every > 0 && iter % config.sample_every == 0;
        if let (Some(v), true) = (&visuals, finished_epoch || sample_now) {
            let name = if finished_epoch {
                format!("epoch_{:04}.png", state.epoch + 1)
            } else {
                format!("iter_{iter:08}.png")
            };
            write_samples(run_dir, &name, v)?;
        }
        if finished_epoch {
            state.epoch += 1;
            state.index = 0;
        }
        let minutes = last_save.elapsed().as_secs_f64() / 60.0;
        let timed = config.save_every_minutes > 0.0 && minutes >= config.save_every_minutes;
        if finished_epoch || timed || state.global_iter == end || fail_save {
            log.flush().ok();
            if fail_save {
                bail!(
                    "{}: cannot write checkpoint: No space left on device (injected fault); the previous checkpoint is intact",
                    run_dir.join("checkpoints").display()
                );
            }
            summary.last_checkpoint = Some(save(run_dir, &mut model, &state, &config)?);
            last_save = Instant::now();
        }
    }
    if summary.outcome == Outcome::Interrupted && summary.iterations_run > 0 {
        summary.last_checkpoint = Some(save(run_dir, &mut model, &state, &config)?);
    }
    bar.finish_and_clear();
    summary.global_iter = state.global_iter;
    summary.skipped_files = loader.skips().entries().to_vec();
    Ok(summary)
}

/// One line of `events.jsonl`: what the guard saw and what it did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// The iteration that tripped the guard.
    pub iter: u64,
    /// What it saw.
    pub anomaly: Anomaly,
    /// That iteration's losses.
    pub losses: Losses,
    /// That iteration's learning rate.
    pub lr: f64,
    /// The batch's domain A files.
    pub files_a: Vec<PathBuf>,
    /// The batch's domain B files.
    pub files_b: Vec<PathBuf>,
    /// A sample grid of that iteration.
    pub sample: Option<PathBuf>,
    /// The checkpoint iteration training went back to, if any.
    pub rolled_back_to: Option<u64>,
}

fn describe(a: &Anomaly) -> String {
    match a {
        Anomaly::NonFinite { loss } => format!("{loss} is not a finite number"),
        Anomaly::Explosion {
            loss,
            value,
            median,
            ..
        } => format!("{loss} exploded to {value:.4} (recent median {median:.4})"),
        Anomaly::Collapse {
            discriminator,
            g_before,
            g_now,
            ..
        } => {
            format!(
                "{discriminator} collapsed (loss ~0) while the generators' loss rose from {g_before:.3} to {g_now:.3}"
            )
        }
    }
}

fn append_event(run_dir: &Path, event: &Event) -> Result<()> {
    let path = run_dir.join("events.jsonl");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("{}: cannot open", path.display()))?;
    writeln!(f, "{}", serde_json::to_string(event)?)
        .with_context(|| format!("{}: write failed", path.display()))?;
    f.sync_all().ok();
    Ok(())
}

/// Flag every checkpoint from `first_bad` on, and return the newest good one before it.
fn roll_back_target(run_dir: &Path, first_bad: u64, reason: &str) -> Result<checkpoint::Loaded> {
    for dir in checkpoint::list(run_dir) {
        let iter = checkpoint::iteration_of(&dir).unwrap_or(u64::MAX);
        if iter >= first_bad {
            checkpoint::flag(&dir, reason)?;
            continue;
        }
        if checkpoint::is_flagged(&dir) {
            continue;
        }
        match checkpoint::read(&dir) {
            Ok(l) => return Ok(l),
            Err(e) => eprintln!("warning: {e:#}; trying an older checkpoint"),
        }
    }
    bail!(
        "{}: no good checkpoint before iteration {first_bad} to roll back to",
        run_dir.display()
    )
}

fn open_log(path: &Path) -> Result<fs::File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("{}: cannot open", path.display()))
}

fn save(
    run_dir: &Path,
    model: &mut CycleGan,
    state: &TrainingState,
    config: &TrainConfig,
) -> Result<PathBuf> {
    let dir = checkpoint::save(run_dir, model, state)?;
    checkpoint::prune(run_dir, config.keep_last)?;
    Ok(dir)
}

fn to_tensor(batch: &ImageBatch, device: &Device) -> Tensor<4> {
    Tensor::from_data(
        TensorData::new(batch.data.clone(), [batch.batch, 3, batch.size, batch.size]),
        device,
    )
}

/// Exponential moving average for the progress bar.
fn smooth(prev: Option<Losses>, new: &Losses) -> Losses {
    let Some(p) = prev else { return *new };
    let m = |a: f32, b: f32| 0.95 * a + 0.05 * b;
    Losses {
        G_A: m(p.G_A, new.G_A),
        G_B: m(p.G_B, new.G_B),
        cycle_A: m(p.cycle_A, new.cycle_A),
        cycle_B: m(p.cycle_B, new.cycle_B),
        idt_A: m(p.idt_A, new.idt_A),
        idt_B: m(p.idt_B, new.idt_B),
        D_A: m(p.D_A, new.D_A),
        D_B: m(p.D_B, new.D_B),
    }
}

fn progress_bar(show: bool, pos: u64, len: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len).with_position(pos);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} it  {per_sec}  ETA {eta}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.reset_eta();
    bar
}

/// A sample grid `samples/NAME` and the loss curves.
fn write_samples(run_dir: &Path, name: &str, visuals: &Visuals) -> Result<()> {
    let dir = run_dir.join("samples");
    fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    samples::write_grid(visuals, &dir.join(name))?;
    plots::plot_losses(&run_dir.join("losses.jsonl"), &run_dir.join("losses.png"))?;
    Ok(())
}

/// Drop log lines written after `iter` (work lost since the checkpoint we resume from).
fn truncate_log(path: &Path, iter: u64) -> Result<()> {
    let Ok(text) = fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<LossRecord>(l)
                .map(|r| r.iter <= iter)
                .unwrap_or(false)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    checkpoint::write_atomic(path, kept.as_bytes())
}
