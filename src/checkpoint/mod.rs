//! Checkpoints that survive crashes: the full training state, written atomically and verified
//! on load.
//!
//! A checkpoint is a folder `RUN_DIR/checkpoints/iter-<global iteration>/` holding
//! - the model's files, as its family writes them ([`UnpairedModel::save`]); for CycleGAN
//!   `networks.safetensors` (`G_A.*`, `G_B.*`, `D_A.*`, `D_B.*` under the PyTorch reference's
//!   keys, so `G_A.` stripped is a state dict PyTorch loads), `optimizer_G.bpk` and
//!   `optimizer_D.bpk` (both Adams' moments and step counts, burnpack) and `pools.safetensors`;
//! - `state.json`: position in the schedule, the run's config, everything that is not a tensor;
//! - `SHA256SUMS`: a checksum of each file above, verified on load.
//!
//! This module reads and writes them and knows nothing of training: `translate` uses it too.
//!
//! It is written under a temporary name, every file fsynced, then renamed into place, so a
//! crash at any moment leaves either the whole new checkpoint or none of it, and never touches
//! the previous one. Random draws are derived from the seed and the position, so the position
//! is the whole random state.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::TrainConfig;
use crate::family::{CheckpointFiles, Direction, Generator, UnpairedModel};
use crate::train::schedule::Plateau;
use cyclegan_data::atomic::{sync_dir, write_synced};

/// Version of the checkpoint layout; bumped on incompatible changes.
pub const FORMAT: u32 = 1;

const STATE: &str = "state.json";
const SUMS: &str = "SHA256SUMS";
/// Marker the divergence guard leaves in a checkpoint it no longer trusts.
pub const FLAGGED: &str = "FLAGGED";

/// Where training stands: everything in a checkpoint that is not a tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// Layout version ([`FORMAT`]).
    pub format: u32,
    /// Epoch of the next iteration (0-based).
    pub epoch: usize,
    /// Index of the next iteration within its epoch.
    pub index: usize,
    /// Iterations done since the start of the run.
    pub global_iter: u64,
    /// Multiplier on the scheduled learning rate (lowered by divergence rollbacks).
    pub lr_scale: f64,
    /// Rollbacks made so far by the divergence guard.
    pub rollbacks: usize,
    /// Digest of the training files' names and sizes (see [`crate::run::fingerprint`]); empty
    /// in checkpoints written before it existed.
    #[serde(default)]
    pub data_fingerprint: String,
    /// The plateau learning-rate policy's state (default in checkpoints written before it).
    #[serde(default)]
    pub plateau: Plateau,
    /// The run's configuration when the checkpoint was written.
    pub config: TrainConfig,
}

/// Write a checkpoint of `model` at `state` into `dir/checkpoints/`; returns its folder.
pub fn save(
    run_dir: &Path,
    model: &mut dyn UnpairedModel,
    state: &TrainingState,
) -> Result<PathBuf> {
    let root = run_dir.join("checkpoints");
    fs::create_dir_all(&root)
        .with_context(|| format!("{}: cannot create checkpoint folder", root.display()))?;
    let name = format!("iter-{:010}", state.global_iter);
    let final_dir = root.join(&name);
    let tmp = root.join(format!(".{name}.partial"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| {
            format!("{}: cannot remove stale partial checkpoint", tmp.display())
        })?;
    }
    fs::create_dir(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;

    let mut files = model.save()?;
    files.push((STATE.into(), serde_json::to_vec_pretty(state)?));
    let mut sums = String::new();
    for (file, bytes) in &files {
        write_synced(&tmp.join(file), bytes)?;
        sums.push_str(&format!("{}  {file}\n", hex(&Sha256::digest(bytes))));
    }
    write_synced(&tmp.join(SUMS), sums.as_bytes())?;
    sync_dir(&tmp)?;
    if final_dir.exists() {
        // Same iteration saved again (e.g. Ctrl-C right after a scheduled save): replace it.
        let old = root.join(format!(".{name}.old"));
        let _ = fs::remove_dir_all(&old);
        fs::rename(&final_dir, &old)
            .with_context(|| format!("{}: cannot replace", final_dir.display()))?;
        fs::rename(&tmp, &final_dir)
            .with_context(|| format!("{}: cannot rename into place", final_dir.display()))?;
        let _ = fs::remove_dir_all(&old);
    } else {
        fs::rename(&tmp, &final_dir)
            .with_context(|| format!("{}: cannot rename into place", final_dir.display()))?;
    }
    sync_dir(&root)?;
    Ok(final_dir)
}

/// A checkpoint read back and verified, not yet turned into networks.
pub struct Loaded {
    /// The checkpoint's folder.
    pub dir: PathBuf,
    /// Its schedule position and config.
    pub state: TrainingState,
    /// The model's files by name (`state.json` and the checksums aside), verified.
    pub files: CheckpointFiles,
}

/// Read and verify one checkpoint folder: every file its family needs present, and every file
/// listed in its checksums matching them.
pub fn read(dir: &Path) -> Result<Loaded> {
    let sums_path = dir.join(SUMS);
    let sums = fs::read_to_string(&sums_path)
        .with_context(|| format!("{}: checkpoint incomplete (no {SUMS})", dir.display()))?;
    let expected: HashMap<&str, &str> = sums
        .lines()
        .filter_map(|l| l.split_once("  ").map(|(h, f)| (f, h)))
        .collect();
    let verified = |file: &str| -> Result<Vec<u8>> {
        let path = dir.join(file);
        let bytes = fs::read(&path)
            .with_context(|| format!("{}: missing or unreadable", path.display()))?;
        let want = expected
            .get(file)
            .ok_or_else(|| anyhow!("{}: not listed in {SUMS}", path.display()))?;
        if hex(&Sha256::digest(&bytes)) != *want {
            bail!("{}: checksum mismatch: the file is damaged", path.display());
        }
        Ok(bytes)
    };
    let state: TrainingState = serde_json::from_slice(&verified(STATE)?)
        .with_context(|| format!("{}: unreadable training state", dir.join(STATE).display()))?;
    if state.format != FORMAT {
        bail!(
            "{}: checkpoint format {} is not supported by this version (expects {FORMAT})",
            dir.display(),
            state.format
        );
    }
    let mut files = CheckpointFiles {
        dir: dir.to_path_buf(),
        ..CheckpointFiles::default()
    };
    for &file in state.config.model.checkpoint_files() {
        files.files.insert(file.to_string(), verified(file)?);
    }
    // Files a model saves only sometimes (a float16 run's loss scale), verified like the rest.
    for &file in expected.keys() {
        if file != STATE && !files.files.contains_key(file) {
            files.files.insert(file.to_string(), verified(file)?);
        }
    }
    Ok(Loaded {
        dir: dir.to_path_buf(),
        state,
        files,
    })
}

impl Loaded {
    /// Rebuild the model (networks, optimizers and the rest) on `device` for a run with
    /// `config`, which must have the checkpoint's architecture (see [`crate::run`]).
    pub fn restore(&self, config: &TrainConfig, device: &Device) -> Result<Box<dyn UnpairedModel>> {
        config.model.restore(config, &self.files, device)
    }

    /// The generator `translate` applies in `direction`, on `device`.
    pub fn generator(&self, direction: Direction, device: &Device) -> Result<Generator> {
        let config = &self.state.config;
        config
            .model
            .generator(config, &self.files, direction, device)
    }
}

/// A checkpoint folder itself, or a run folder's newest good checkpoint.
pub fn open(path: &Path) -> Result<Loaded> {
    if path.join(SUMS).exists() {
        return read(path);
    }
    latest(path).ok_or_else(|| {
        anyhow!(
            "{}: no complete checkpoint in this folder (is it a run folder of `cyclegan train`?)",
            path.display()
        )
    })
}

/// Complete checkpoints of a run, newest first (partial ones, left by a crash, are not listed).
pub fn list(run_dir: &Path) -> Vec<PathBuf> {
    let root = run_dir.join("checkpoints");
    let mut found: Vec<(u64, PathBuf)> = fs::read_dir(&root)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let iter = name.strip_prefix("iter-")?.parse::<u64>().ok()?;
            Some((iter, e.path()))
        })
        .collect();
    found.sort_by_key(|&(iter, _)| std::cmp::Reverse(iter));
    found.into_iter().map(|(_, p)| p).collect()
}

/// The global iteration a checkpoint folder was written at, from its name.
pub fn iteration_of(dir: &Path) -> Option<u64> {
    dir.file_name()?
        .to_str()?
        .strip_prefix("iter-")?
        .parse()
        .ok()
}

/// Mark a checkpoint as untrustworthy (it is kept for inspection, never resumed from).
pub fn flag(dir: &Path, reason: &str) -> Result<()> {
    Ok(write_synced(
        &dir.join(FLAGGED),
        format!("{reason}\n").as_bytes(),
    )?)
}

/// True when the divergence guard has marked this checkpoint as untrustworthy.
pub fn is_flagged(dir: &Path) -> bool {
    dir.join(FLAGGED).exists()
}

/// The newest checkpoint that reads back whole and is not flagged; damaged ones are skipped
/// with a warning naming them. `None` when the run has no usable checkpoint.
pub fn latest(run_dir: &Path) -> Option<Loaded> {
    latest_accepted(run_dir, |_| Ok(()))
}

/// Like [`latest`], also skipping (with a warning) checkpoints `accept` refuses, e.g. ones
/// written by a run of another architecture.
pub fn latest_accepted(
    run_dir: &Path,
    accept: impl Fn(&TrainingState) -> Result<(), String>,
) -> Option<Loaded> {
    for dir in list(run_dir) {
        if is_flagged(&dir) {
            continue;
        }
        match read(&dir) {
            Ok(loaded) => match accept(&loaded.state) {
                Ok(()) => return Some(loaded),
                Err(why) => eprintln!(
                    "warning: {}: {why}; falling back to the previous checkpoint",
                    dir.display()
                ),
            },
            Err(e) => eprintln!("warning: {e:#}; falling back to the previous checkpoint"),
        }
    }
    None
}

/// Delete old checkpoints, keeping the `keep` newest and the newest unflagged one.
///
/// Each is first renamed to a hidden name, so a crash half-way through a deletion never leaves
/// something that looks like a complete checkpoint.
pub fn prune(run_dir: &Path, keep: usize) -> Result<()> {
    let all = list(run_dir);
    let newest_good = all.iter().find(|d| !is_flagged(d)).cloned();
    for dir in all.iter().skip(keep.max(1)) {
        if Some(dir) != newest_good.as_ref() {
            let name = dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("checkpoint");
            let doomed = dir.with_file_name(format!(".{name}.deleting"));
            fs::rename(dir, &doomed)
                .with_context(|| format!("{}: cannot delete old checkpoint", dir.display()))?;
            fs::remove_dir_all(&doomed)
                .with_context(|| format!("{}: cannot delete", doomed.display()))?;
        }
    }
    Ok(())
}

/// Remove what interrupted saves and deletions left behind (hidden `.partial`, `.old` and
/// `.deleting` folders); complete checkpoints are never touched.
pub fn clean_leftovers(run_dir: &Path) -> Result<()> {
    let root = run_dir.join("checkpoints");
    for entry in fs::read_dir(&root).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let leftover = name.starts_with(".iter-")
            && (name.ends_with(".partial")
                || name.ends_with(".old")
                || name.ends_with(".deleting"));
        if leftover {
            fs::remove_dir_all(entry.path())
                .with_context(|| format!("{}: cannot remove leftover", entry.path().display()))?;
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
