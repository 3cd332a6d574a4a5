//! The whole configuration of a training run, as one serialisable struct.
//!
//! Written to `RUN_DIR/config.toml` at the start of a run and read back by `--resume` and
//! `--config`, so a run can always be reproduced from its folder.

use std::path::{Path, PathBuf};

use cyclegan_data::loader::{LoaderConfig, Preprocess};
use serde::{Deserialize, Serialize};

use crate::family::Family;
use crate::family::cut::CutOptions;
use crate::model::norm::Norm;
use crate::model::precision::Precision;
use crate::model::weights::Init;
use crate::model::{DiscriminatorConfig, DiscriminatorKind, GeneratorConfig};
use crate::train::guard::GuardConfig;

/// Adversarial loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GanMode {
    /// Least-squares GAN (Mao et al. 2017): MSE to 1 for real, 0 for fake. The paper's choice.
    Lsgan,
    /// The original GAN loss: binary cross-entropy on logits.
    Vanilla,
    /// Wasserstein GAN with gradient penalty (Gulrajani et al. 2017): the critic's mean score,
    /// plus 10 x (||grad D(x)||_2 - 1)^2 at random mixes of real and fake images.
    Wgangp,
    /// Hinge loss (Lim & Ye 2017, as in SAGAN): the discriminator pays relu(1 - D(real)) +
    /// relu(1 + D(fake)), the generator -D(fake).
    Hinge,
}

/// How the learning rate changes over the epochs (the reference's `--lr_policy`).
///
/// Epoch `k` (0-based) trains at the rate the reference's scheduler gives after `k` steps: the
/// scheduler steps at the end of each epoch. [`crate::train::schedule`] says which epoch gets
/// which rate, and how that differs from the reference's current `train.py`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LrPolicy {
    /// `--epochs` at the initial rate, then linear decay towards zero over `--epochs-decay`.
    #[default]
    Linear,
    /// Multiplied by 0.1 every `--lr-decay-iters` epochs.
    Step,
    /// Multiplied by 0.2 when the epoch's mean cycle + identity loss (CUT: PatchNCE) has not
    /// improved by 1% for 5 epochs.
    Plateau,
    /// Cosine annealing from the initial rate to 0 over `--epochs` + `--epochs-decay`.
    Cosine,
}

/// Everything that defines a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Dataset folder holding `trainA/` and `trainB/`.
    pub data_dir: PathBuf,
    /// Model family (CycleGAN, CUT, FastCUT).
    #[serde(default)]
    pub model: Family,
    /// CUT's and FastCUT's own settings (unused by CycleGAN).
    #[serde(default)]
    pub cut: CutOptions,
    /// Networks to start from instead of random weights (`--init-from`: fine-tuning); the
    /// optimizers and the schedule start fresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
    /// Generator architecture and shape (`ngf`, residual blocks or U-Net depth, norm, dropout).
    pub generator: GeneratorConfig,
    /// Discriminator architecture and shape (`ndf`, layers, norm).
    pub discriminator: DiscriminatorConfig,
    /// How fresh networks' weights are drawn (`--init-type`, `--init-gain`).
    #[serde(default)]
    pub init: Init,
    /// Adversarial loss.
    pub gan_mode: GanMode,
    /// The float type of the networks' convolutions (`--precision`): float32, or float16 /
    /// bfloat16 mixed precision on GPUs.
    #[serde(default)]
    pub precision: Precision,
    /// Weight of the A -> B -> A cycle loss.
    pub lambda_a: f32,
    /// Weight of the B -> A -> B cycle loss.
    pub lambda_b: f32,
    /// Weight of the identity loss, relative to the cycle weights (0 disables it).
    pub lambda_identity: f32,
    /// Images kept in each discriminator's history pool (0 disables it).
    pub pool_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Adam beta1.
    pub beta1: f32,
    /// Adam beta2.
    pub beta2: f32,
    /// Epochs at the initial learning rate.
    pub epochs: usize,
    /// Epochs over which the learning rate then decays linearly to zero.
    pub epochs_decay: usize,
    /// How the learning rate changes over the epochs (runs from before this option: linear).
    #[serde(default)]
    pub lr_policy: LrPolicy,
    /// Epochs between two reductions of the `step` policy.
    #[serde(default = "default_lr_decay_iters")]
    pub lr_decay_iters: usize,
    /// Images per batch.
    pub batch_size: usize,
    /// How images are resized and cropped (the reference's `--preprocess`).
    #[serde(default)]
    pub preprocess: Preprocess,
    /// The size images are resized to first (see [`Preprocess`])...
    pub load_size: u32,
    /// ...and the side of the random square crop taken then.
    pub crop_size: u32,
    /// Random horizontal flips.
    pub flip: bool,
    /// Domain B's image `i % len` with domain A's image `i`, in file order, instead of both
    /// shuffled (the reference's `--serial_batches`).
    #[serde(default)]
    pub serial_batches: bool,
    /// Use only the first this many images of each domain (`--max-dataset-size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_dataset_size: Option<usize>,
    /// Threads decoding and augmenting images.
    pub workers: usize,
    /// Seed of every random choice (weights, order, crops, flips, pools).
    pub seed: u64,
    /// Minutes between mid-epoch checkpoints (0: only at epoch ends).
    pub save_every_minutes: f64,
    /// Checkpoints kept besides the newest good one.
    pub keep_last: usize,
    /// Stop after this many iterations in total (smoke runs); None runs the whole schedule.
    pub max_iters: Option<u64>,
    /// Also write a sample grid and redraw the loss plot every this many iterations (0: only
    /// at epoch ends).
    #[serde(default)]
    pub sample_every: u64,
    /// Divergence guard settings.
    #[serde(default)]
    pub guard: GuardConfig,
}

/// The reference's `--lr_decay_iters`.
fn default_lr_decay_iters() -> usize {
    50
}

impl Default for TrainConfig {
    /// The paper's settings.
    fn default() -> Self {
        TrainConfig {
            data_dir: PathBuf::new(),
            model: Family::Cyclegan,
            cut: CutOptions::cut(),
            init_from: None,
            generator: GeneratorConfig::default(),
            discriminator: DiscriminatorConfig::default(),
            init: Init::default(),
            gan_mode: GanMode::Lsgan,
            precision: Precision::F32,
            lambda_a: 10.0,
            lambda_b: 10.0,
            lambda_identity: 0.5,
            pool_size: 50,
            lr: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            epochs: 100,
            epochs_decay: 100,
            lr_policy: LrPolicy::Linear,
            lr_decay_iters: default_lr_decay_iters(),
            batch_size: 1,
            preprocess: Preprocess::ResizeAndCrop,
            load_size: 286,
            crop_size: 256,
            flip: true,
            serial_batches: false,
            max_dataset_size: None,
            workers: 2,
            seed: 0,
            save_every_minutes: 10.0,
            keep_last: 3,
            max_iters: None,
            sample_every: 0,
            guard: GuardConfig::default(),
        }
    }
}

impl TrainConfig {
    /// The authors' settings of a model family: the paper's for CycleGAN ([`Default`]); for CUT
    /// 200 + 200 epochs, for FastCUT 150 + 50, with their PatchNCE settings.
    pub fn for_family(family: Family) -> Self {
        let base = TrainConfig {
            model: family,
            ..TrainConfig::default()
        };
        match family {
            Family::Cyclegan => base,
            Family::Cut => TrainConfig {
                epochs: 200,
                epochs_decay: 200,
                cut: CutOptions::cut(),
                ..base
            },
            Family::Fastcut => TrainConfig {
                epochs: 150,
                epochs_decay: 50,
                cut: CutOptions::fastcut(),
                ..base
            },
        }
    }

    /// Read a config written by [`TrainConfig::save`] (or by hand).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot read config: {e}", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: invalid config: {e}", path.display()))
    }

    /// The config as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }

    /// Write `path` atomically: `history` as comment lines (what changed when), then the config.
    pub fn save(&self, path: &Path, history: &[String]) -> anyhow::Result<()> {
        let mut text = String::new();
        for line in history {
            text.push_str(&format!("# {line}\n"));
        }
        if !history.is_empty() {
            text.push('\n');
        }
        text.push_str(&self.to_toml());
        Ok(cyclegan_data::atomic::write_atomic(path, text.as_bytes())?)
    }

    /// The history comment lines of a config file written by [`TrainConfig::save`].
    pub fn history(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map_while(|l| l.strip_prefix("# ").map(str::to_string))
            .collect()
    }

    /// How the training loader reads images for this run.
    pub fn loader_config(&self) -> LoaderConfig {
        LoaderConfig {
            preprocess: self.preprocess,
            load_size: self.load_size,
            crop_size: self.crop_size,
            flip: self.flip,
            serial: self.serial_batches,
            batch_size: self.batch_size,
            workers: self.workers,
            seed: self.seed,
        }
    }

    /// Check values that would make training meaningless, naming the option (the command line
    /// reports these as usage errors, exit status 2).
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        if self.crop_size == 0 || !self.crop_size.is_multiple_of(4) {
            bail!(
                "--crop-size {} must be a positive multiple of 4 (the generator halves the size twice)",
                self.crop_size
            );
        }
        let uses_load_size = !matches!(self.preprocess, Preprocess::Crop | Preprocess::None);
        if uses_load_size && self.load_size < self.crop_size {
            bail!(
                "--load-size {} must be at least --crop-size {}",
                self.load_size,
                self.crop_size
            );
        }
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        if self.preprocess == Preprocess::ScaleWidth && !self.load_size.is_multiple_of(4) {
            bail!(
                "--load-size {} must be a multiple of 4 with --preprocess scale_width (whole images go through the generator)",
                self.load_size
            );
        }
        if !self.preprocess.fixed_size() && self.batch_size > 1 {
            bail!(
                "--preprocess {} keeps each image's own size, so images cannot share a batch: use --batch-size 1, or a mode with a crop (scale_width_and_crop)",
                self.preprocess.name()
            );
        }
        if self.max_dataset_size == Some(0) {
            bail!("--max-dataset-size must be at least 1");
        }
        if self.generator.ngf == 0 || self.discriminator.ndf == 0 {
            bail!("--ngf and --ndf must be at least 1");
        }
        let patch = self.discriminator.kind == DiscriminatorKind::NLayers;
        if patch && self.discriminator.layers == 0 {
            bail!("--d-layers must be at least 1");
        }
        if let Some(downs) = self.generator.arch.unet_downs() {
            let m = 1u32 << downs;
            if !self.preprocess.fixed_size() || !self.crop_size.is_multiple_of(m) {
                bail!(
                    "--generator unet_{m} needs square crops whose side is a multiple of {m} (it halves the picture {downs} times): use --crop-size {m} (or {}) with a --preprocess mode that crops",
                    2 * m
                );
            }
        }
        if self.model != Family::Cyclegan
            && (self.generator.arch.unet_downs().is_some()
                || self.generator.norm != Norm::Instance
                || self.generator.dropout
                || !patch)
        {
            bail!(
                "--generator, --discriminator pixel, --norm and --dropout are CycleGAN's options; --model {} uses its authors' networks",
                self.model.name()
            );
        }
        for (flag, nc) in [
            ("--input-nc", self.generator.input_nc),
            ("--output-nc", self.generator.output_nc),
        ] {
            if nc != 1 && nc != 3 {
                bail!("{flag} {nc}: images are read as RGB (3) or grayscale (1)");
            }
        }
        let (nc_a, nc_b) = (self.generator.input_nc, self.generator.output_nc);
        if nc_a != nc_b && self.lambda_identity > 0.0 {
            bail!(
                "--input-nc {nc_a} and --output-nc {nc_b} differ, so a generator cannot take its own output domain's images: the identity loss needs --lambda-identity 0"
            );
        }
        if self.model != Family::Cyclegan && (nc_a, nc_b) != (3, 3) {
            bail!(
                "--input-nc/--output-nc: --model {} translates RGB images only",
                self.model.name()
            );
        }
        if self.gan_mode == GanMode::Wgangp && self.discriminator.norm == Norm::Batch {
            bail!(
                "--gan-mode wgangp with --norm batch: the gradient penalty is per image, and batch norm mixes the batch's images in the critic (Gulrajani et al. 2017 drop it); use --norm instance or none"
            );
        }
        if !(self.init.gain > 0.0 && self.init.gain.is_finite()) {
            bail!("--init-gain {} must be a positive number", self.init.gain);
        }
        // The PatchGAN shrinks by 2 per layer and by 3 in its two last 4x4 convolutions.
        let min = (1u32 << self.discriminator.layers.min(16)) * 4;
        if patch && self.crop_size < min {
            bail!(
                "--crop-size {} is too small for --d-layers {} (at least {min})",
                self.crop_size,
                self.discriminator.layers
            );
        }
        if self.epochs + self.epochs_decay == 0 {
            bail!("--epochs plus --epochs-decay must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            bail!("--lr must be a positive number");
        }
        if self.lr_policy == LrPolicy::Step && self.lr_decay_iters == 0 {
            bail!(
                "--lr-decay-iters must be at least 1 (epochs between two steps of --lr-policy step)"
            );
        }
        if self.model != Family::Cyclegan && self.gan_mode != GanMode::Lsgan {
            bail!(
                "--gan-mode {} is not available with --model {}: CUT and FastCUT train with lsgan only",
                format!("{:?}", self.gan_mode).to_lowercase(),
                self.model.name()
            );
        }
        if self.workers == 0 {
            bail!("--workers must be at least 1");
        }
        for (flag, v) in [
            ("--lambda-a", self.lambda_a),
            ("--lambda-b", self.lambda_b),
            ("--lambda-identity", self.lambda_identity),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                bail!("{flag} {v} must be a number >= 0 (a loss weight)");
            }
        }
        for (flag, v) in [("--beta1", self.beta1), ("--beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                bail!("{flag} {v} must be in [0, 1) (Adam's moment decay)");
            }
        }
        if !(self.save_every_minutes >= 0.0 && self.save_every_minutes.is_finite()) {
            bail!("--save-every-minutes must be a number >= 0 (0: epoch ends only)");
        }
        if self.model != Family::Cyclegan {
            self.cut.validate(&self.generator)?;
        }
        let g = &self.guard;
        if !(g.lr_factor > 0.0 && g.lr_factor <= 1.0) {
            bail!("--guard-lr-factor {} must be in (0, 1]", g.lr_factor);
        }
        if g.window < 2 {
            bail!("--guard-window must be at least 2 iterations");
        }
        Ok(())
    }

    /// `Ok` when a checkpoint written with `other` fits a run with this configuration
    /// (same model family and networks), else why not.
    pub fn same_architecture(&self, other: &TrainConfig) -> Result<(), String> {
        if (self.model, self.generator, self.discriminator)
            == (other.model, other.generator, other.discriminator)
            && (self.model == Family::Cyclegan || self.cut.antialias == other.cut.antialias)
        {
            Ok(())
        } else {
            Err(format!(
                "written for {} with generator {:?} / discriminator {:?}, but this run is {} with {:?} / {:?}",
                other.model.name(),
                other.generator,
                other.discriminator,
                self.model.name(),
                self.generator,
                self.discriminator
            ))
        }
    }

    /// The model for people: `cyclegan: ResNet generator (9 blocks, ngf 64), PatchGAN
    /// discriminator (3 layers, ndf 64)`.
    pub fn describe_networks(&self) -> String {
        format!(
            "{}: {}, {}",
            self.model.name(),
            self.generator.describe(),
            self.discriminator.describe()
        )
    }

    /// Total epochs in the schedule.
    pub fn total_epochs(&self) -> usize {
        self.epochs + self.epochs_decay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonsense_values_are_refused_naming_the_option() {
        assert!(TrainConfig::default().validate().is_ok());
        type Spoil = fn(&mut TrainConfig);
        let cases: [(&str, Spoil); 14] = [
            ("--lambda-a", |c| c.lambda_a = -1.0),
            ("--init-gain", |c| c.init.gain = 0.0),
            ("--output-nc", |c| c.generator.output_nc = 2),
            ("--lambda-identity 0", |c| c.generator.input_nc = 1),
            ("--norm batch", |c| {
                c.gan_mode = GanMode::Wgangp;
                c.discriminator.norm = Norm::Batch;
            }),
            ("--generator", |c| {
                c.model = Family::Cut;
                c.generator.arch = crate::model::GeneratorArch::Unet256;
            }),
            ("--lambda-identity", |c| c.lambda_identity = f32::NAN),
            ("--beta1", |c| c.beta1 = 1.0),
            ("--crop-size", |c| c.crop_size = 30),
            ("--lr", |c| c.lr = 0.0),
            ("--save-every-minutes", |c| c.save_every_minutes = -2.0),
            ("--guard-lr-factor", |c| c.guard.lr_factor = 1.5),
            ("--lr-decay-iters", |c| {
                c.lr_policy = LrPolicy::Step;
                c.lr_decay_iters = 0;
            }),
            ("--gan-mode hinge", |c| {
                c.model = Family::Cut;
                c.gan_mode = GanMode::Hinge;
            }),
        ];
        for (flag, spoil) in cases {
            let mut c = TrainConfig::default();
            spoil(&mut c);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(flag), "{flag}: {err}");
        }
    }

    #[test]
    fn a_config_from_before_the_schedule_options_loads_with_their_defaults() {
        let mut c = TrainConfig {
            lr_policy: LrPolicy::Cosine,
            lr_decay_iters: 7,
            gan_mode: GanMode::Wgangp,
            ..TrainConfig::default()
        };
        let text = c.to_toml();
        assert!(text.contains("lr_policy = \"cosine\"") && text.contains("gan_mode = \"wgangp\""));
        assert_eq!(toml::from_str::<TrainConfig>(&text).unwrap(), c);
        // An old run's config.toml has neither key.
        let old: String = text
            .lines()
            .filter(|l| !l.starts_with("lr_policy") && !l.starts_with("lr_decay_iters"))
            .map(|l| format!("{l}\n"))
            .collect();
        let back: TrainConfig = toml::from_str(&old).unwrap();
        (c.lr_policy, c.lr_decay_iters) = (LrPolicy::Linear, 50);
        assert_eq!(back, c);
    }
}
