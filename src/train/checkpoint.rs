//! Checkpoints that survive crashes: the full training state, written atomically and verified
//! on load.
//!
//! A checkpoint is a folder `RUN_DIR/checkpoints/iter-<global iteration>/` holding
//! - `networks.safetensors`: `G_A.*`, `G_B.*`, `D_A.*`, `D_B.*` under the PyTorch reference's
//!   keys (so `G_A.` stripped is a state dict PyTorch loads);
//! - `optimizer_G.bpk`, `optimizer_D.bpk`: both Adams' moments and step counts (burnpack);
//! - `pools.safetensors`: the two image pools;
//! - `state.json`: position in the schedule and everything else that is not a tensor;
//! - `SHA256SUMS`: a checksum of each file above, verified on load.
//!
//! It is written under a temporary name, every file fsynced, then renamed into place, so a
//! crash at any moment leaves either the whole new checkpoint or none of it, and never touches
//! the previous one. Random draws are derived from the seed and the position, so the position
//! is the whole random state.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::TrainConfig;
use super::cyclegan::{CycleGan, Discriminators, Generators};
use super::pool::ImagePool;
use crate::model::weights::{
    HostTensor, load_state_dict, safetensors_from_bytes, safetensors_to_bytes, state_dict,
};
use crate::model::{NamedConvs, PatchDiscriminator, ResnetGenerator};

/// Version of the checkpoint layout; bumped on incompatible changes.
pub const FORMAT: u32 = 1;

const NETWORKS: &str = "networks.safetensors";
const OPT_G: &str = "optimizer_G.bpk";
const OPT_D: &str = "optimizer_D.bpk";
const POOLS: &str = "pools.safetensors";
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
    /// The run's configuration when the checkpoint was written.
    pub config: TrainConfig,
}

/// Write a checkpoint of `model` at `state` into `dir/checkpoints/`; returns its folder.
pub fn save(run_dir: &Path, model: &mut CycleGan, state: &TrainingState) -> Result<PathBuf> {
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

    let files = encode(model, state)?;
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

fn encode(model: &mut CycleGan, state: &TrainingState) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let mut nets = BTreeMap::new();
    let mut add = |prefix: &str, net: &mut dyn FnMut() -> BTreeMap<String, HostTensor>| {
        for (k, v) in net() {
            nets.insert(format!("{prefix}.{k}"), v);
        }
    };
    add("G_A", &mut || state_dict(&mut model.gens.g_a));
    add("G_B", &mut || state_dict(&mut model.gens.g_b));
    add("D_A", &mut || state_dict(&mut model.discs.d_a));
    add("D_B", &mut || state_dict(&mut model.discs.d_b));
    let meta = HashMap::from([
        ("format".to_string(), "cyclegan".to_string()),
        (
            "generator".to_string(),
            serde_json::to_string(&state.config.generator)?,
        ),
        (
            "discriminator".to_string(),
            serde_json::to_string(&state.config.discriminator)?,
        ),
    ]);
    let networks = safetensors_to_bytes(&nets, Some(meta))
        .map_err(|e| anyhow!("serialising networks: {e}"))?;

    let mut pools = BTreeMap::new();
    for (name, pool) in [("pool_A", &model.pool_a), ("pool_B", &model.pool_b)] {
        for (i, img) in pool.to_host().into_iter().enumerate() {
            pools.insert(format!("{name}.{i:04}"), img);
        }
    }
    let pools =
        safetensors_to_bytes(&pools, None).map_err(|e| anyhow!("serialising pools: {e}"))?;
    let opt_g = model
        .opt_g
        .into_bytes()
        .map_err(|e| anyhow!("serialising the generators' optimizer: {e:?}"))?;
    let opt_d = model
        .opt_d
        .into_bytes()
        .map_err(|e| anyhow!("serialising the discriminators' optimizer: {e:?}"))?;
    Ok(vec![
        (NETWORKS, networks),
        (OPT_G, opt_g.to_vec()),
        (OPT_D, opt_d.to_vec()),
        (POOLS, pools),
        (STATE, serde_json::to_vec_pretty(state)?),
    ])
}

/// A checkpoint read back and verified, not yet turned into networks.
pub struct Loaded {
    /// The checkpoint's folder.
    pub dir: PathBuf,
    /// Its schedule position and config.
    pub state: TrainingState,
    files: HashMap<&'static str, Vec<u8>>,
}

/// Read and verify one checkpoint folder: every file present and matching its checksum.
pub fn read(dir: &Path) -> Result<Loaded> {
    let sums_path = dir.join(SUMS);
    let sums = fs::read_to_string(&sums_path)
        .with_context(|| format!("{}: checkpoint incomplete (no {SUMS})", dir.display()))?;
    let expected: HashMap<&str, &str> = sums
        .lines()
        .filter_map(|l| l.split_once("  ").map(|(h, f)| (f, h)))
        .collect();
    let mut files = HashMap::new();
    for file in [NETWORKS, OPT_G, OPT_D, POOLS, STATE] {
        let path = dir.join(file);
        let bytes = fs::read(&path)
            .with_context(|| format!("{}: missing or unreadable", path.display()))?;
        let want = expected
            .get(file)
            .ok_or_else(|| anyhow!("{}: not listed in {SUMS}", path.display()))?;
        if hex(&Sha256::digest(&bytes)) != *want {
            bail!("{}: checksum mismatch: the file is damaged", path.display());
        }
        files.insert(file, bytes);
    }
    let state: TrainingState = serde_json::from_slice(&files[STATE])
        .with_context(|| format!("{}: unreadable training state", dir.join(STATE).display()))?;
    if state.format != FORMAT {
        bail!(
            "{}: checkpoint format {} is not supported by this version (expects {FORMAT})",
            dir.display(),
            state.format
        );
    }
    Ok(Loaded {
        dir: dir.to_path_buf(),
        state,
        files,
    })
}

impl Loaded {
    /// Rebuild the networks, optimizers and pools on `device` for a run with `config`.
    ///
    /// The checkpoint's architecture must match `config`'s, else an error names both.
    pub fn restore(&self, config: &TrainConfig, device: &Device) -> Result<CycleGan> {
        let saved = &self.state.config;
        if saved.generator != config.generator || saved.discriminator != config.discriminator {
            bail!(
                "{}: checkpoint is for generator {:?} / discriminator {:?}, but the run asks for {:?} / {:?}",
                self.dir.display(),
                saved.generator,
                saved.discriminator,
                config.generator,
                config.discriminator
            );
        }
        let path = self.dir.join(NETWORKS);
        let sub = self.networks()?;
        let load = |net: &mut dyn NamedConvsDyn, name: &str| -> Result<()> {
            net.load(&sub(name), &path, name)
        };
        let mut g_a = ResnetGenerator::new(&config.generator, device);
        let mut g_b = ResnetGenerator::new(&config.generator, device);
        let mut d_a = PatchDiscriminator::new(&config.discriminator, device);
        let mut d_b = PatchDiscriminator::new(&config.discriminator, device);
        load(&mut g_a, "G_A")?;
        load(&mut g_b, "G_B")?;
        load(&mut d_a, "D_A")?;
        load(&mut d_b, "D_B")?;
        let mut gens = Generators { g_a, g_b };
        let mut discs = Discriminators { d_a, d_b };
        gens.assign_stable_ids();
        discs.assign_stable_ids();
        let mut model = CycleGan::from_networks(config, gens, discs);

        use burn::tensor::Bytes;
        model.opt_g = model
            .opt_g
            .from_bytes(Bytes::from_bytes_vec(self.files[OPT_G].clone()))
            .map_err(|e| anyhow!("{}: {e:?}", self.dir.join(OPT_G).display()))?;
        model.opt_d = model
            .opt_d
            .from_bytes(Bytes::from_bytes_vec(self.files[OPT_D].clone()))
            .map_err(|e| anyhow!("{}: {e:?}", self.dir.join(OPT_D).display()))?;

        let pools = safetensors_from_bytes(&self.files[POOLS], "")
            .map_err(|e| anyhow!("{}: {e}", self.dir.join(POOLS).display()))?;
        let pool = |name: &str| {
            let mut keys: Vec<&String> = pools.keys().filter(|k| k.starts_with(name)).collect();
            keys.sort();
            keys.into_iter()
                .map(|k| pools[k].clone())
                .collect::<Vec<_>>()
        };
        model.pool_a = ImagePool::from_host(config.pool_size, &pool("pool_A."), device);
        model.pool_b = ImagePool::from_host(config.pool_size, &pool("pool_B."), device);
        Ok(model)
    }

    /// The networks file parsed once; the returned function gives one network's state dict
    /// by name (`G_A`, ...).
    fn networks(&self) -> Result<impl Fn(&str) -> HashMap<String, HostTensor>> {
        let path = self.dir.join(NETWORKS);
        let nets = safetensors_from_bytes(&self.files[NETWORKS], "")
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        Ok(move |name: &str| {
            let prefix = format!("{name}.");
            nets.iter()
                .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k.to_string(), v.clone())))
                .collect()
        })
    }

    /// The generators' weights only (for translation), on `device`.
    pub fn generators(&self, device: &Device) -> Result<Generators> {
        let config = &self.state.config;
        let path = self.dir.join(NETWORKS);
        let sub = self.networks()?;
        let mut g_a = ResnetGenerator::new(&config.generator, device);
        let mut g_b = ResnetGenerator::new(&config.generator, device);
        load_state_dict(&mut g_a, &sub("G_A"), &path, "G_A")?;
        load_state_dict(&mut g_b, &sub("G_B"), &path, "G_B")?;
        Ok(Generators { g_a, g_b })
    }
}

/// Object-safe loading for the four networks.
trait NamedConvsDyn {
    fn load(&mut self, dict: &HashMap<String, HostTensor>, path: &Path, what: &str) -> Result<()>;
}
impl<T: NamedConvs> NamedConvsDyn for T {
    fn load(&mut self, dict: &HashMap<String, HostTensor>, path: &Path, what: &str) -> Result<()> {
        Ok(load_state_dict(self, dict, path, what)?)
    }
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
    write_synced(&dir.join(FLAGGED), format!("{reason}\n").as_bytes())
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

/// Write a file and flush it to disk before returning.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f =
        fs::File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("{}: write failed", path.display()))?;
    f.sync_all()
        .with_context(|| format!("{}: cannot flush to disk", path.display()))?;
    Ok(())
}

/// Write a file atomically: to a temporary name in the same folder, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    write_synced(&tmp, bytes)?;
    fs::rename(&tmp, path)
        .with_context(|| format!("{}: cannot rename into place", path.display()))?;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("{}: cannot flush folder", dir.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
