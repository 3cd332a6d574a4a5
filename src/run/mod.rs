//! Starting and resuming a run: the one place that decides which configuration a run trains
//! with, and what the command line may change.
//!
//! A new run takes the defaults (or `--config FILE`) and the options given. A resumed run takes
//! the configuration of its newest good checkpoint; options given on the command line then
//! change it only where that keeps the checkpoint meaningful:
//! - run-time settings ([`Setting::fixed`] false: learning rate, schedule length, save and
//!   sample cadence, guard settings, workers, `--max-iters`, and the data folder if it holds the
//!   same files) are honoured, and each change is recorded at the top of `config.toml`;
//! - settings the checkpoint fixes (model family, architecture, image size, losses, seed, ...)
//!   are refused with a [`UsageError`] that names the flag and says why.

mod init_from;
mod overrides;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use cyclegan_data::loader::{UnpairedDataset, rng_for};
use sha2::{Digest, Sha256};

pub use overrides::{Change, OnOff, Overrides, Setting};

use crate::checkpoint::{self, TrainingState};
use crate::config::TrainConfig;
use crate::eval::model_eval::utc_now as now;
use crate::family::UnpairedModel;

/// A mistake on the command line (exit status 2), e.g. a setting a resumed run cannot change.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A run ready to train: its folder, configuration, model and position.
pub struct Run {
    /// The run folder.
    pub dir: PathBuf,
    /// The configuration it trains with.
    pub config: TrainConfig,
    /// The model (networks, optimizers, ...), on an autodiff device.
    pub model: Box<dyn UnpairedModel>,
    /// Where training stands.
    pub state: TrainingState,
    /// The autodiff device the model lives on.
    pub device: Device,
}

impl Run {
    /// A new run in `dir` with `config`, on `device` (autodiff is added). Refuses a folder that
    /// already holds checkpoints.
    pub fn start(config: TrainConfig, dir: &Path, device: &Device) -> Result<Run> {
        config
            .validate()
            .and_then(|()| config.precision.check_device(device))
            .map_err(|e| UsageError(format!("{e:#}")))?;
        if !checkpoint::list(dir).is_empty() {
            bail!(
                "{}: this run folder already has checkpoints; continue it with `cyclegan train --resume {}` or choose another --out",
                dir.display(),
                dir.display()
            );
        }
        fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create run folder", dir.display()))?;
        let device = device.clone().autodiff();
        let dataset = UnpairedDataset::open(&config.data_dir)?;
        let mut rng = rng_for(config.seed, &[u64::MAX - 1]);
        let mut model = config.model.init(&config, &device, &mut rng)?;
        let mut history = format!("{}: new run", now());
        if let Some(source) = &config.init_from {
            let networks = init_from::read_networks(source, config.model)?;
            let loaded = model.load_networks(&networks, source)?;
            if loaded.is_empty() {
                bail!(
                    "--init-from {}: none of the {} networks' weights are in it",
                    source.display(),
                    config.model.name()
                );
            }
            let fresh: Vec<&str> = init_from::network_names(config.model)
                .iter()
                .filter(|n| !loaded.contains(n))
                .copied()
                .collect();
            eprintln!(
                "networks from {}: {}{}",
                source.display(),
                loaded.join(", "),
                if fresh.is_empty() {
                    String::new()
                } else {
                    format!("; from random weights: {}", fresh.join(", "))
                }
            );
            history = format!(
                "{history} from {} ({})",
                source.display(),
                loaded.join(", ")
            );
        }
        let state = TrainingState {
            format: checkpoint::FORMAT,
            epoch: 0,
            index: 0,
            global_iter: 0,
            lr_scale: 1.0,
            rollbacks: 0,
            data_fingerprint: fingerprint(&dataset),
            plateau: Default::default(),
            config: config.clone(),
        };
        config.save(&dir.join("config.toml"), &[history])?;
        Ok(Run {
            dir: dir.to_path_buf(),
            config,
            model,
            state,
            device,
        })
    }

    /// Resume the run in `dir` from its newest good checkpoint, with the command line's
    /// `overrides` applied by the policy of this module.
    pub fn resume(dir: &Path, overrides: &Overrides, device: &Device) -> Result<Run> {
        let config_path = dir.join("config.toml");
        if !config_path.exists() {
            bail!(
                "{}: not a run folder (no config.toml); start a run with `cyclegan train DATA --out {}`",
                dir.display(),
                dir.display()
            );
        }
        let saved = TrainConfig::load(&config_path)?;
        checkpoint::clean_leftovers(dir)?;
        // Only checkpoints of this run's architecture: a stray one from another run is skipped.
        let Some(loaded) = checkpoint::latest_accepted(dir, |s| saved.same_architecture(&s.config))
        else {
            bail!(
                "{}: no complete checkpoint to resume from (start a new run without --resume)",
                dir.display()
            );
        };
        let mut state = loaded.state.clone();
        let mut config = state.config.clone();
        let changes = overrides.apply(&mut config);
        if let Some(c) = changes.iter().find(|c| c.setting.fixed) {
            return Err(UsageError(format!(
                "{} cannot change when resuming ({} -> {}): the checkpoint was trained with it; start a new run with --out to train with another value",
                c.setting.flag, c.from, c.to
            ))
            .into());
        }
        config
            .validate()
            .and_then(|()| config.precision.check_device(device))
            .map_err(|e| UsageError(format!("{e:#}")))?;
        if config.data_dir != state.config.data_dir {
            let dataset = UnpairedDataset::open(&config.data_dir)?;
            let now = fingerprint(&dataset);
            if !state.data_fingerprint.is_empty() && now != state.data_fingerprint {
                return Err(UsageError(format!(
                    "{}: these are not the files the run was trained on ({}); resuming on other data would not continue the same run: start a new run with --out",
                    config.data_dir.display(),
                    state.config.data_dir.display()
                ))
                .into());
            }
        }
        if changes.iter().any(|c| c.setting.flag == "--lr") {
            // The user's rate replaces the guard's reductions, and the guard starts afresh.
            state.lr_scale = 1.0;
            state.rollbacks = 0;
        }
        let device = device.clone().autodiff();
        let model = loaded.restore(&config, &device)?;
        state.config = config.clone();
        let mut history = TrainConfig::history(&config_path);
        let what = if changes.is_empty() {
            "no changes".to_string()
        } else {
            changes
                .iter()
                .map(|c| format!("{} {} -> {}", c.setting.flag, c.from, c.to))
                .collect::<Vec<_>>()
                .join(", ")
        };
        history.push(format!(
            "{}: resumed at iteration {}: {what}",
            now(),
            state.global_iter
        ));
        config.save(&config_path, &history)?;
        eprintln!(
            "resuming from {} (epoch {}, iteration {}){}",
            loaded.dir.display(),
            state.epoch + 1,
            state.global_iter,
            if changes.is_empty() {
                String::new()
            } else {
                format!("; changed: {what}")
            }
        );
        Ok(Run {
            dir: dir.to_path_buf(),
            config,
            model,
            state,
            device,
        })
    }

    /// Go back to a checkpoint (the divergence guard's rollback): its model and position, with
    /// this run's configuration.
    pub fn restore(&mut self, loaded: &checkpoint::Loaded) -> Result<()> {
        self.model = loaded.restore(&self.config, &self.device)?;
        let (lr_scale, rollbacks) = (self.state.lr_scale, self.state.rollbacks);
        self.state = loaded.state.clone();
        self.state.config = self.config.clone();
        self.state.lr_scale = lr_scale;
        self.state.rollbacks = rollbacks;
        Ok(())
    }

    /// Write a checkpoint of the current state and prune old ones; returns its folder.
    pub fn save(&mut self) -> Result<PathBuf> {
        let dir = checkpoint::save(&self.dir, self.model.as_mut(), &self.state)?;
        checkpoint::prune(&self.dir, self.config.keep_last)?;
        Ok(dir)
    }
}

/// A digest of the training files' names and sizes: a resumed run must read the same files.
pub fn fingerprint(dataset: &UnpairedDataset) -> String {
    let mut h = Sha256::new();
    for (domain, files) in [("A", &dataset.a), ("B", &dataset.b)] {
        for f in files {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            let size = fs::metadata(f).map(|m| m.len()).unwrap_or(0);
            h.update(format!("{domain}/{name}:{size}\n"));
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
