//! Model families: what an unpaired translation model is to the rest of the tool.
//!
//! A family (CycleGAN today; CUT and FastCUT next) owns its networks, its optimizers and
//! whatever else one training step reads and changes. The training loop, checkpoints, the
//! divergence guard, samples, logs and `translate` see it only through [`UnpairedModel`] and
//! [`Family`]:
//!
//! - [`Family::init`] and [`Family::restore`] build a model for training, fresh or from a
//!   checkpoint's files;
//! - [`UnpairedModel::step`] runs one iteration and returns named [`Losses`];
//! - [`UnpairedModel::save`] gives the files a checkpoint holds for it;
//! - [`Family::generator`] gives the network `translate` applies in a direction.
//!
//! Adding a family means one file here and one arm in each `match` on [`Family`]; the loop does
//! not change.

pub mod adversarial;
pub mod cut;
pub mod cyclegan;
pub mod loss_scale;
mod losses;
pub mod pool;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Result;
use burn::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use cyclegan::CycleGan;
pub use losses::{Losses, Role};

use crate::config::TrainConfig;
use crate::model::NamedConvs;
use crate::model::cut::CutGenerator;
use crate::model::precision::Precision;
use crate::model::weights::{HostTensor, load_state_dict, safetensors_from_bytes};
use crate::model::{CycleGanGenerator, ResnetGenerator, UnetGenerator};

/// Which model family a run trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// CycleGAN (Zhu et al. 2017): two generators, two discriminators, cycle consistency.
    #[default]
    Cyclegan,
    /// CUT (Park et al. 2020): one generator and one discriminator, PatchNCE instead of the
    /// cycle, with the NCE identity loss; A to B only.
    Cut,
    /// FastCUT: CUT with lambda_NCE 10, no identity loss, flip equivariance; the fastest.
    Fastcut,
}

impl Family {
    /// The name used in `config.toml`, logs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Family::Cyclegan => "cyclegan",
            Family::Cut => "cut",
            Family::Fastcut => "fastcut",
        }
    }

    /// A fresh model for `config`, its weights drawn from `rng`, on an autodiff `device`.
    pub fn init(
        self,
        config: &TrainConfig,
        device: &Device,
        rng: &mut ChaCha8Rng,
    ) -> Result<Box<dyn UnpairedModel>> {
        Ok(match self {
            Family::Cyclegan => Box::new(CycleGan::new(config, device, rng)),
            Family::Cut | Family::Fastcut => {
                let mut cut = cut::Cut::new(
                    &config.generator,
                    &config.discriminator,
                    config.cut.clone(),
                    (config.beta1, config.beta2),
                    device,
                    rng,
                )?;
                cut.set_precision(config.precision, None)?;
                Box::new(cut)
            }
        })
    }

    /// The model a checkpoint's `files` (name to bytes) hold, for training with `config`.
    pub fn restore(
        self,
        config: &TrainConfig,
        files: &CheckpointFiles,
        device: &Device,
    ) -> Result<Box<dyn UnpairedModel>> {
        Ok(match self {
            Family::Cyclegan => Box::new(CycleGan::restore(config, files, device)?),
            Family::Cut | Family::Fastcut => Box::new(cut::restore(config, files, device)?),
        })
    }

    /// The generator `translate` applies in `direction`, from a checkpoint's networks.
    pub fn generator(
        self,
        config: &TrainConfig,
        files: &CheckpointFiles,
        direction: Direction,
        device: &Device,
    ) -> Result<Generator> {
        match self {
            Family::Cyclegan => cyclegan::generator(config, files, direction, device),
            Family::Cut | Family::Fastcut => cut::generator(files, direction, device),
        }
    }

    /// The files a checkpoint of this family must hold besides `state.json`.
    pub fn checkpoint_files(self) -> &'static [&'static str] {
        match self {
            Family::Cyclegan => cyclegan::CHECKPOINT_FILES,
            Family::Cut | Family::Fastcut => cut::CHECKPOINT_FILES,
        }
    }
}

/// The networks file of a checkpoint (every family has one): each network's state dict with
/// the PyTorch reference's keys, prefixed by the network's name (`G_A.model.1.weight`).
pub const NETWORKS: &str = "networks.safetensors";

/// A checkpoint's files, read and verified by [`crate::checkpoint`].
#[derive(Debug, Clone, Default)]
pub struct CheckpointFiles {
    /// The checkpoint folder (for messages).
    pub dir: PathBuf,
    /// Contents by file name.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl CheckpointFiles {
    /// The path of file `name` in the checkpoint.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The contents of file `name`, or an error naming it.
    pub fn get(&self, name: &str) -> Result<&[u8]> {
        self.files.get(name).map(Vec::as_slice).ok_or_else(|| {
            anyhow::anyhow!("{}: missing from the checkpoint", self.path(name).display())
        })
    }

    /// The networks file parsed: every network's weights under prefixed keys.
    pub fn networks(&self) -> Result<BTreeMap<String, HostTensor>> {
        let nets = safetensors_from_bytes(self.get(NETWORKS)?, "")
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.path(NETWORKS).display()))?;
        Ok(nets.into_iter().collect())
    }
}

/// One network's state dict (`G_A`, ...) out of a prefixed networks file.
pub fn sub_dict(
    networks: &BTreeMap<String, HostTensor>,
    name: &str,
) -> HashMap<String, HostTensor> {
    let prefix = format!("{name}.");
    networks
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k.to_string(), v.clone())))
        .collect()
}

/// Object-safe loading of one network's state dict, so that a family can loop over its
/// networks; an empty dict is an error naming the network.
trait LoadNetwork {
    fn load(&mut self, dict: &HashMap<String, HostTensor>, path: &Path, what: &str) -> Result<()>;
}

impl<T: NamedConvs> LoadNetwork for T {
    fn load(&mut self, dict: &HashMap<String, HostTensor>, path: &Path, what: &str) -> Result<()> {
        if dict.is_empty() {
            anyhow::bail!("{}: no `{what}.*` weights in it", path.display());
        }
        Ok(load_state_dict(self, dict, path, what)?)
    }
}

/// Which way to translate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Direction {
    /// Domain A to domain B.
    A2b,
    /// Domain B to domain A.
    B2a,
}

/// A network that translates images: `[B, 3, H, W]` in [-1, 1] to the same shape.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // one per translation: its size does not matter
pub enum Generator {
    /// The ResNet generator of CycleGAN.
    Resnet(ResnetGenerator),
    /// The U-Net generator CycleGAN may train instead.
    Unet(UnetGenerator),
    /// The anti-aliased ResNet generator of CUT and FastCUT.
    Cut(Box<CutGenerator>),
}

impl From<CycleGanGenerator> for Generator {
    fn from(g: CycleGanGenerator) -> Self {
        match g {
            CycleGanGenerator::Resnet(g) => Generator::Resnet(g),
            CycleGanGenerator::Unet(g) => Generator::Unet(g),
        }
    }
}

impl Generator {
    /// Compute the convolutions in `precision` (images in and out stay float32).
    pub fn set_precision(&mut self, precision: Precision) {
        match self {
            Generator::Resnet(g) => g.set_precision(precision),
            Generator::Unet(g) => g.set_precision(precision),
            Generator::Cut(g) => g.set_precision(precision),
        }
    }

    /// Translate a batch.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Generator::Resnet(g) => g.forward(x),
            Generator::Unet(g) => g.forward(x),
            Generator::Cut(g) => g.forward(x),
        }
    }

    /// Channels of its input images: 3, or 1 for grayscale.
    pub fn input_channels(&self) -> usize {
        match self {
            Generator::Resnet(g) => g.config().input_nc,
            Generator::Unet(g) => g.config().input_nc,
            Generator::Cut(_) => 3,
        }
    }

    /// Picture sides must be multiples of this: 4 for the ResNets, 2^downs for a U-Net.
    pub fn size_multiple(&self) -> usize {
        match self {
            Generator::Unet(g) => g.size_multiple(),
            Generator::Resnet(_) | Generator::Cut(_) => 4,
        }
    }
}

/// Images of one iteration for a sample grid, in rows of `columns`; each `[B, 3, H, W]` in
/// [-1, 1], detached.
#[derive(Debug, Clone)]
pub struct Visuals {
    /// The tiles, row by row.
    pub images: Vec<Tensor<4>>,
    /// Tiles per row.
    pub columns: usize,
}

/// An unpaired image-to-image translation model being trained.
pub trait UnpairedModel {
    /// One training iteration on a batch of each domain (`[B, 3, H, W]` in [-1, 1] on the
    /// model's autodiff device) at learning rate `lr`. `rng` drives every random choice of the
    /// step (pools, patch positions), so a replayed iteration draws the same. Returns the
    /// iteration's losses, and the images for a sample grid when `keep_visuals`.
    fn step(
        &mut self,
        real_a: Tensor<4>,
        real_b: Tensor<4>,
        lr: f64,
        rng: &mut ChaCha8Rng,
        keep_visuals: bool,
    ) -> (Losses, Option<Visuals>);

    /// The files a checkpoint holds for the model (name to bytes): the networks under
    /// `networks.safetensors` with the PyTorch reference's keys, prefixed by network name, and
    /// the optimizers' and any other state.
    fn save(&mut self) -> Result<Vec<(String, Vec<u8>)>>;

    /// Set the weights of the networks found in `networks` (prefixed keys, the layout of
    /// [`NETWORKS`]) for fine-tuning; the others keep theirs. Returns the names of those set.
    /// A network whose weights do not fit is an error naming `source` and the key; nothing
    /// changes then.
    fn load_networks(
        &mut self,
        networks: &BTreeMap<String, HostTensor>,
        source: &Path,
    ) -> Result<Vec<&'static str>>;
}
