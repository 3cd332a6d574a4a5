//! The training loop: batches in; losses, samples and checkpoints out.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Result, bail};
use burn::prelude::*;
use cyclegan_data::loader::{ImageBatch, Loader, UnpairedDataset, rng_for};
use indicatif::{ProgressBar, ProgressStyle};

use super::fault::Fault;
use super::guard::{self, Event, Guard};
use super::log::{LossLog, LossRecord};
use super::schedule::learning_rate;
use super::{plots, samples};
use crate::config::LrPolicy;
use crate::family::{Losses, Role, Visuals};
use crate::report::{RunStatus, write_run_page};
use crate::run::Run;
use crate::tensor_image::to_channels;

/// How to run (as opposed to what to train, which is the run's configuration).
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Show a progress bar.
    pub progress: bool,
    /// Set (e.g. by Ctrl-C) to save a checkpoint and stop after the current iteration.
    pub stop: Arc<AtomicBool>,
    /// A fault to inject (tests of the guard and of checkpoint safety).
    pub fault: Option<Fault>,
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

/// Train `run` to the end of its schedule (or `max_iters`, or a stop request).
pub fn train(run: &mut Run, opts: &RunOptions) -> Result<Summary> {
    let config = run.config.clone();
    let dataset =
        Arc::new(UnpairedDataset::open(&config.data_dir)?.truncated(config.max_dataset_size));
    let per_epoch = dataset.iterations_per_epoch(config.batch_size);
    if per_epoch == 0 {
        bail!(
            "{}: fewer images ({}) than --batch-size {}",
            config.data_dir.display(),
            dataset.epoch_len(),
            config.batch_size
        );
    }
    if run.state.global_iter == 0 {
        run.save()?; // the initial state, so that a rollback always has somewhere to go
    }
    let end = (config.total_epochs() * per_epoch) as u64;
    let end = config.max_iters.map_or(end, |m| m.min(end));
    let loader_config = config.loader_config();
    let start_loader = |run: &Run| {
        Loader::start(
            dataset.clone(),
            loader_config.clone(),
            run.state.epoch,
            run.state.index,
        )
    };
    let mut loader = start_loader(run);
    let mut log = LossLog::open(&run.dir, run.state.global_iter)?;
    let bar = progress_bar(opts.progress, run.state.global_iter, end);
    let mut guard = Guard::new(config.guard);
    let mut fault = opts.fault.filter(|f| f.iter() > run.state.global_iter);
    let (mut last_save, mut smoothed) = (Instant::now(), None::<Losses>);
    let page = RunPage {
        started: Instant::now(),
        end,
        images: (dataset.a.len(), dataset.b.len()),
    };
    let mut summary = Summary {
        outcome: Outcome::Finished,
        global_iter: run.state.global_iter,
        iterations_run: 0,
        last_checkpoint: None,
        skipped_files: vec![],
        last_losses: None,
    };

    // Grayscale domains (`--input-nc 1`, `--output-nc 1`) are read as RGB and converted here.
    let (nc_a, nc_b) = (config.generator.input_nc, config.generator.output_nc);
    while run.state.global_iter < end {
        if opts.stop.load(Ordering::SeqCst) {
            summary.outcome = Outcome::Interrupted;
            break;
        }
        let batch = loader.next_batch()?;
        let iter = run.state.global_iter + 1;
        let state = &run.state;
        let mut lr = learning_rate(&config, state.epoch, &state.plateau) * state.lr_scale;
        let (mut real_a, real_b) = (
            to_channels(to_tensor(&batch.a, &run.device), nc_a),
            to_channels(to_tensor(&batch.b, &run.device), nc_b),
        );
        let fail_save = Fault::fire(&mut fault, iter, &mut real_a, &mut lr);
        let mut rng = rng_for(config.seed, &[state.global_iter, u64::MAX - 2]);
        let (losses, visuals) = run.model.step(real_a, real_b, lr, &mut rng, true);

        if let Some(anomaly) = guard.observe(&losses) {
            let (files_a, files_b) = (batch.a.paths.clone(), batch.b.paths.clone());
            let event = Event {
                iter,
                anomaly,
                losses,
                lr,
                files_a,
                files_b,
                sample: None,
                rolled_back_to: None,
            };
            bar.suspend(|| guard::roll_back(run, event, visuals.as_ref()))?;
            log = LossLog::open(&run.dir, run.state.global_iter)?;
            loader = start_loader(run);
            guard.reset();
            bar.set_position(run.state.global_iter);
            continue;
        }
        if !losses.all_finite() {
            bail!(
                // only reached with the guard off
                "iteration {iter}: a loss is not finite ({}); files {:?} {:?}. Resume from the last checkpoint with a lower --lr, or turn --guard on",
                losses.summary(),
                batch.a.paths,
                batch.b.paths
            );
        }
        let epoch = run.state.epoch;
        log.append(&LossRecord {
            iter,
            epoch,
            lr,
            losses: losses.clone(),
        })?;
        run.state.global_iter = iter;
        run.state.index += 1;
        let plateau = config.lr_policy == LrPolicy::Plateau;
        if plateau {
            run.state.plateau.observe(losses.total(Role::Generator));
        }
        summary.iterations_run += 1;
        let s = losses.smoothed(smoothed.as_ref(), 0.95);
        bar.set_message(format!(
            "epoch {}/{} {}",
            epoch + 1,
            config.total_epochs(),
            s.summary()
        ));
        bar.inc(1);
        smoothed = Some(s);
        summary.last_losses = Some(losses);

        let finished_epoch = run.state.index == per_epoch;
        let sample_now = config.sample_every > 0 && iter.is_multiple_of(config.sample_every);
        if let (Some(v), true) = (&visuals, finished_epoch || sample_now) {
            let name = match finished_epoch {
                true => format!("epoch_{:04}.png", epoch + 1),
                false => format!("iter_{iter:08}.png"),
            };
            write_samples(run, &name, v)?;
        }
        if finished_epoch {
            if plateau {
                run.state.plateau.end_epoch(config.lr);
            }
            run.state.epoch += 1;
            run.state.index = 0;
        }
        let minutes = last_save.elapsed().as_secs_f64() / 60.0;
        let timed = config.save_every_minutes > 0.0 && minutes >= config.save_every_minutes;
        if finished_epoch || timed || iter == end || fail_save {
            log.flush();
            if fail_save {
                bail!(
                    "{}: cannot write checkpoint: No space left on device (injected fault); the previous checkpoint is intact",
                    run.dir.join("checkpoints").display()
                );
            }
            summary.last_checkpoint = Some(run.save()?);
            last_save = Instant::now();
            page.write(run, lr, summary.iterations_run); // each epoch end saves, too
        }
    }
    if summary.outcome == Outcome::Interrupted && summary.iterations_run > 0 {
        summary.last_checkpoint = Some(run.save()?);
    }
    bar.finish_and_clear();
    summary.global_iter = run.state.global_iter;
    summary.skipped_files = loader.skips().entries().to_vec();
    Ok(summary)
}

fn to_tensor(batch: &ImageBatch, device: &Device) -> Tensor<4> {
    Tensor::from_data(
        TensorData::new(
            batch.data.clone(),
            [batch.batch, 3, batch.height, batch.width],
        ),
        device,
    )
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

/// What the run page needs besides the run folder's files.
struct RunPage {
    started: Instant,
    end: u64,
    images: (usize, usize),
}

impl RunPage {
    /// Rewrite `RUN_DIR/index.html`; a failure is a warning, never the end of training.
    fn write(&self, run: &Run, lr: f64, iterations_run: u64) {
        let c = &run.config;
        let elapsed_s = self.started.elapsed().as_secs_f64();
        let status = RunStatus {
            model: format!(
                "{}, {} px crops of {} px",
                c.describe_networks(),
                c.crop_size,
                c.load_size
            ),
            device: crate::device::name(&run.device),
            dataset: c.data_dir.display().to_string(),
            images_a: self.images.0,
            images_b: self.images.1,
            iteration: run.state.global_iter,
            total_iterations: self.end,
            epoch: run.state.epoch,
            total_epochs: c.total_epochs(),
            lr,
            elapsed_s,
            iters_per_s: iterations_run as f64 / elapsed_s.max(1e-9),
        };
        if let Err(e) = write_run_page(&run.dir, &status) {
            eprintln!("warning: the run page was not updated: {e:#}");
        }
    }
}

/// A sample grid `samples/NAME` and the loss curves.
fn write_samples(run: &Run, name: &str, visuals: &Visuals) -> Result<()> {
    let dir = run.dir.join("samples");
    std::fs::create_dir_all(&dir)?;
    samples::write_grid(visuals, &dir.join(name))?;
    plots::plot_losses(&run.dir.join("losses.jsonl"), &run.dir.join("losses.png"))
}
