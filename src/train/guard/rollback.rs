//! What the guard does when it trips: record the event, flag the checkpoints written since the
//! trouble began, and go back to the newest good one with a lower learning rate.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::Anomaly;
use crate::checkpoint;
use crate::family::{Losses, Visuals};
use crate::run::Run;
use crate::train::samples;

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

/// Handle an anomaly seen at `event.iter`: write the event (with a sample grid of `visuals`),
/// flag later checkpoints, and roll `run` back to the newest good checkpoint with the learning
/// rate lowered. Fails when the run has used up its rollbacks.
pub fn roll_back(run: &mut Run, mut event: Event, visuals: Option<&Visuals>) -> Result<()> {
    let guard = run.config.guard;
    let iter = event.iter;
    let first_bad = iter + 1 - event.anomaly.span(&guard).min(iter);
    let target = newest_good_before(
        &run.dir,
        first_bad,
        &format!("{:?} at iteration {iter}", event.anomaly),
    );
    if let Some(v) = visuals {
        let path = run.dir.join("samples").join(format!("event_{iter:08}.png"));
        if fs::create_dir_all(run.dir.join("samples")).is_ok()
            && samples::write_grid(v, &path).is_ok()
        {
            event.sample = Some(path);
        }
    }
    event.rolled_back_to = target.as_ref().ok().map(|t| t.state.global_iter);
    append_event(&run.dir, &event)?;
    let what = describe(&event.anomaly);
    eprintln!("guard: {what} at iteration {iter}");
    if run.state.rollbacks >= guard.max_rollbacks {
        bail!(
            "training diverged again after {} rollbacks ({what}) at learning rate {:.3e}; see {}. Resume with a lower --lr (`cyclegan train --resume {} --lr X`), or raise --guard-max-rollbacks",
            run.state.rollbacks,
            event.lr,
            run.dir.join("events.jsonl").display(),
            run.dir.display()
        );
    }
    let target = target?;
    run.state.lr_scale *= guard.lr_factor;
    run.state.rollbacks += 1;
    run.restore(&target)?;
    eprintln!(
        "guard: rolled back to iteration {} ({}), learning rate x{}",
        run.state.global_iter,
        target.dir.display(),
        run.state.lr_scale
    );
    Ok(())
}

/// A short description of an anomaly for messages.
pub fn describe(a: &Anomaly) -> String {
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
        } => format!(
            "{discriminator} collapsed (loss ~0) while the generators' loss rose from {g_before:.3} to {g_now:.3}"
        ),
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
fn newest_good_before(run_dir: &Path, first_bad: u64, reason: &str) -> Result<checkpoint::Loaded> {
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
