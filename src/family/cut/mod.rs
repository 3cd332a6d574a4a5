//! One CUT or FastCUT iteration (Park et al. 2020), as the authors' code and the reference's
//! `CUT` class: one generator `G` (A -> B), one discriminator `D` (judges domain B) and the
//! PatchNCE heads `F`, each with its own Adam.
//!
//! An iteration: `fake = G(real_A ++ real_B)` (CUT; FastCUT: `G(real_A)`, the batch flipped
//! left-right at random); a discriminator step on `0.5 * (MSE(D(fake_B), 0) + MSE(D(real_B), 1))`;
//! then one step of `G` and `F` on `lambda_GAN * MSE(D(fake_B), 1)` plus PatchNCE:
//! `NCE(real_A, fake_B)` (CUT: averaged with the identity term `NCE(real_B, idt_B)`).
//!
//! PatchNCE for a (source, target) pair: `G`'s features of both at `nce_layers`, the same
//! random positions sampled in each layer of both, projected by `F`; each target patch must
//! pick its source patch among the other sampled patches of the same image (InfoNCE,
//! temperature `nce_t`); the loss is the layers' mean of the mean per-patch loss, times
//! `lambda_NCE`. No image pool.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Bytes;
use burn::tensor::activation::log_softmax;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::model::cut::{
    CutDiscriminator, CutGenerator, CutGeneratorConfig, DEFAULT_NCE_LAYERS, PatchHeads,
};
use crate::model::precision::Precision;
use crate::model::weights::safetensors_to_bytes;
use crate::model::weights::{
    HostTensor, StateDict, assign_stable_ids, init_normal, load_state_dict, state_dict,
};
use crate::model::{DiscriminatorConfig, GeneratorConfig};
use rand_chacha::ChaCha8Rng;

use super::loss_scale::{self, LossScaler};
use super::{
    CheckpointFiles, Direction, Generator, LoadNetwork, Losses, NETWORKS, Role, UnpairedModel,
    Visuals, sub_dict,
};

/// CUT's and FastCUT's settings, named after the authors' options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CutOptions {
    /// Weight of the adversarial loss (`--lambda_GAN`), 1.
    pub lambda_gan: f32,
    /// Weight of PatchNCE (`--lambda_NCE`): 1 for CUT, 10 for FastCUT.
    pub lambda_nce: f32,
    /// PatchNCE identity term on domain B (`--nce_idt`): CUT yes, FastCUT no.
    pub nce_idt: bool,
    /// Generator layers PatchNCE compares (`--nce_layers`), ascending indices of its `model`
    /// sequence: 0,4,8,12,16.
    pub nce_layers: Vec<usize>,
    /// Positions sampled per layer and image (`--num_patches`), 256.
    pub num_patches: usize,
    /// Temperature of the InfoNCE softmax (`--nce_T`), 0.07.
    pub nce_t: f32,
    /// Flip the batch left-right at random and ask for the same features flipped
    /// (`--flip_equivariance`): FastCUT yes, CUT no.
    pub flip_equivariance: bool,
    /// Anti-aliased sampling in G and D (the authors' default; `--no_antialias` and
    /// `--no_antialias_up` turn it off).
    pub antialias: bool,
}

impl Default for CutOptions {
    fn default() -> Self {
        CutOptions::cut()
    }
}

impl CutOptions {
    /// CUT: lambda_NCE 1 with the NCE identity loss, no flip.
    pub fn cut() -> Self {
        CutOptions {
            lambda_gan: 1.0,
            lambda_nce: 1.0,
            nce_idt: true,
            nce_layers: DEFAULT_NCE_LAYERS.to_vec(),
            num_patches: 256,
            nce_t: 0.07,
            flip_equivariance: false,
            antialias: true,
        }
    }

    /// FastCUT: lambda_NCE 10, no identity loss, flip equivariance.
    pub fn fastcut() -> Self {
        CutOptions {
            lambda_nce: 10.0,
            nce_idt: false,
            flip_equivariance: true,
            ..CutOptions::cut()
        }
    }

    /// The generator these options ask for, of `shape`.
    pub fn generator_config(&self, shape: &GeneratorConfig) -> CutGeneratorConfig {
        CutGeneratorConfig::new(shape, self.antialias)
    }

    /// Check the options against a generator of `shape`; the error names the option.
    pub fn validate(&self, shape: &GeneratorConfig) -> Result<()> {
        let config = self.generator_config(shape);
        let n = config.num_layers();
        if self.nce_layers.is_empty() {
            bail!("--nce-layers: give at least one generator layer, e.g. 0,4,8,12,16");
        }
        if !self.nce_layers.windows(2).all(|w| w[0] < w[1]) {
            bail!(
                "--nce-layers {:?}: list the layers in increasing order, each once",
                self.nce_layers
            );
        }
        if let Some(&bad) = self.nce_layers.iter().find(|&&l| l >= n) {
            bail!(
                "--nce-layers: layer {bad} does not exist; this generator ({} blocks) has layers 0 to {}",
                shape.blocks,
                n - 1
            );
        }
        if self.num_patches == 0 {
            bail!("--num-patches must be at least 1 (the authors use 256)");
        }
        if !(self.nce_t > 0.0 && self.nce_t.is_finite()) {
            bail!("--nce-t must be a positive number (the authors use 0.07)");
        }
        for (name, v) in [
            ("--lambda-nce", self.lambda_nce),
            ("--lambda-gan", self.lambda_gan),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                bail!("{name} must be zero or a positive number, not {v}");
            }
        }
        Ok(())
    }
}

/// Losses that belong to the discriminator; the others (`G_GAN`, `NCE`, `NCE_Y`, `G`) are the
/// generator's.
pub const DISCRIMINATOR_LOSSES: [&str; 3] = ["D_fake", "D_real", "D"];

/// Where an iteration's random choices come from: [`RandomPatches`] in training; a test may
/// replay the reference's.
pub trait PatchSource {
    /// Whether this iteration's batch is flipped (asked once per step, with flip equivariance).
    fn flip(&mut self) -> bool;
    /// `count` distinct positions among `0..n`, for the next PatchNCE layer.
    fn positions(&mut self, n: usize, count: usize) -> Vec<usize>;
}

/// Random flips (probability 1/2) and positions (uniform without replacement, as the
/// reference's `randperm(n)[:count]`).
pub struct RandomPatches<'a, R: Rng>(pub &'a mut R);

impl<R: Rng> PatchSource for RandomPatches<'_, R> {
    fn flip(&mut self) -> bool {
        self.0.random_bool(0.5)
    }
    fn positions(&mut self, n: usize, count: usize) -> Vec<usize> {
        rand::seq::index::sample(self.0, n, count.min(n)).into_vec()
    }
}

/// The three networks, their three Adams and the options: everything one iteration reads and
/// changes.
pub struct Cut {
    /// The generator, A -> B.
    pub g: CutGenerator,
    /// The discriminator of domain B.
    pub d: CutDiscriminator,
    /// PatchNCE's projection heads.
    pub f: PatchHeads,
    /// Adam over `g`.
    pub opt_g: ModuleOptimizer,
    /// Adam over `d`.
    pub opt_d: ModuleOptimizer,
    /// Adam over `f`.
    pub opt_f: ModuleOptimizer,
    /// Loss weights and PatchNCE settings.
    pub options: CutOptions,
    /// Loss scaling of float16 runs (inactive otherwise).
    pub scaler: LossScaler,
}

impl Cut {
    /// Fresh networks on `device` (an autodiff device), weights from N(0, 0.02) drawn from
    /// `rng` in the order G, D, F.
    pub fn new(
        generator: &GeneratorConfig,
        discriminator: &DiscriminatorConfig,
        options: CutOptions,
        betas: (f32, f32),
        device: &Device,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        options.validate(generator)?;
        let (mut g, mut d, mut f) = networks(generator, discriminator, &options, device);
        init_normal(&mut g, rng);
        init_normal(&mut d, rng);
        init_normal(&mut f, rng);
        Ok(Cut::from_networks(g, d, f, options, betas))
    }

    /// Wrap given networks with fresh optimizers; gives them name-derived parameter ids
    /// (`G.model.1.weight`, ...) so that optimizer state saved before reloads.
    pub fn from_networks(
        mut g: CutGenerator,
        mut d: CutDiscriminator,
        mut f: PatchHeads,
        options: CutOptions,
        betas: (f32, f32),
    ) -> Self {
        assign_stable_ids(&mut g, "G");
        assign_stable_ids(&mut d, "D");
        assign_stable_ids(&mut f, "F");
        let adam = || {
            AdamConfig::new()
                .with_beta_1(betas.0)
                .with_beta_2(betas.1)
                .with_epsilon(1e-8)
                .init()
        };
        Cut {
            g,
            d,
            f,
            opt_g: adam(),
            opt_d: adam(),
            opt_f: adam(),
            options,
            scaler: LossScaler::new(Precision::F32),
        }
    }

    /// Compute G's and D's convolutions in `precision` (float32 unless set), with loss scaling
    /// for float16 continuing from a checkpoint's `saved_scale` when given.
    pub fn set_precision(
        &mut self,
        precision: Precision,
        saved_scale: Option<&[u8]>,
    ) -> Result<()> {
        self.g.set_precision(precision);
        self.d.set_precision(precision);
        self.scaler = LossScaler::restore(precision, saved_scale)?;
        Ok(())
    }

    /// The three networks' parameters under the reference's keys, prefixed `G.`, `D.`, `F.`
    /// (strip the prefix and PyTorch's `load_state_dict` takes them).
    pub fn state_dict(&mut self) -> StateDict {
        let mut out = StateDict::new();
        for (prefix, dict) in [
            ("G", state_dict(&mut self.g)),
            ("D", state_dict(&mut self.d)),
            ("F", state_dict(&mut self.f)),
        ] {
            out.extend(dict.into_iter().map(|(k, v)| (format!("{prefix}.{k}"), v)));
        }
        out
    }

    /// The Adams of G, D and F, serialised (in that order).
    pub fn optimizer_bytes(&self) -> Result<[Vec<u8>; 3]> {
        let bytes = |opt: &ModuleOptimizer, name: &str| -> Result<Vec<u8>> {
            Ok(opt
                .into_bytes()
                .map_err(|e| anyhow!("serialising the {name} optimizer: {e:?}"))?
                .to_vec())
        };
        Ok([
            bytes(&self.opt_g, "generator's")?,
            bytes(&self.opt_d, "discriminator's")?,
            bytes(&self.opt_f, "PatchNCE heads'")?,
        ])
    }

    /// Rebuild from [`Cut::state_dict`]'s map (`path` names it in errors) and, when given,
    /// [`Cut::optimizer_bytes`]' three buffers; without them the Adams start fresh.
    #[allow(clippy::too_many_arguments)]
    pub fn from_state(
        generator: &GeneratorConfig,
        discriminator: &DiscriminatorConfig,
        options: CutOptions,
        betas: (f32, f32),
        device: &Device,
        dict: &HashMap<String, HostTensor>,
        path: &Path,
        optimizers: Option<[Vec<u8>; 3]>,
    ) -> Result<Self> {
        options.validate(generator)?;
        let (mut g, mut d, mut f) = networks(generator, discriminator, &options, device);
        let sub = |prefix: &str| -> HashMap<String, HostTensor> {
            dict.iter()
                .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
                .collect()
        };
        load_state_dict(&mut g, &sub("G."), path, "CUT generator")?;
        load_state_dict(&mut d, &sub("D."), path, "CUT discriminator")?;
        load_state_dict(&mut f, &sub("F."), path, "PatchNCE heads")?;
        let mut cut = Cut::from_networks(g, d, f, options, betas);
        if let Some([g, d, f]) = optimizers {
            let load = |opt: ModuleOptimizer, bytes: Vec<u8>, name: &str| {
                opt.from_bytes(Bytes::from_bytes_vec(bytes))
                    .map_err(|e| anyhow!("{}: the {name} optimizer: {e:?}", path.display()))
            };
            cut.opt_g = load(cut.opt_g, g, "generator's")?;
            cut.opt_d = load(cut.opt_d, d, "discriminator's")?;
            cut.opt_f = load(cut.opt_f, f, "PatchNCE heads'")?;
        }
        Ok(cut)
    }

    /// Names of the losses [`Cut::step`] returns, in its order.
    pub fn loss_names(&self) -> Vec<&'static str> {
        let mut names = vec!["D_fake", "D_real", "D", "G_GAN", "NCE"];
        if self.uses_nce_identity() {
            names.push("NCE_Y");
        }
        names.push("G");
        names
    }

    fn uses_nce_identity(&self) -> bool {
        self.options.nce_idt && self.options.lambda_nce > 0.0
    }

    /// One iteration with random flips and patch positions from `rng` (see [`Cut::step_with`]).
    pub fn step(
        &mut self,
        real_a: Tensor<4>,
        real_b: Tensor<4>,
        lr: f64,
        rng: &mut impl Rng,
        keep_visuals: bool,
    ) -> (Vec<(&'static str, f32)>, Option<Vec<Tensor<4>>>) {
        self.step_with(real_a, real_b, lr, &mut RandomPatches(rng), keep_visuals)
    }

    /// One iteration: the discriminator step, then one step of the generator and the heads.
    ///
    /// `real_a` and `real_b` are `[B, 3, H, W]` in [-1, 1] on the networks' (autodiff) device.
    /// Returns the losses named as the reference ([`Cut::loss_names`]: `D_fake`, `D_real`,
    /// `D` are the discriminator's, see [`DISCRIMINATOR_LOSSES`]; `G_GAN`, `NCE`, `NCE_Y`
    /// (with the identity term) and `G` the generator's) and, when asked, the visuals
    /// `[real_A, fake_B, real_B, idt_B]` (`idt_B` with the identity term only), detached, the
    /// outputs flipped back when the batch was flipped.
    pub fn step_with(
        &mut self,
        real_a: Tensor<4>,
        real_b: Tensor<4>,
        lr: f64,
        patches: &mut dyn PatchSource,
        keep_visuals: bool,
    ) -> (Vec<(&'static str, f32)>, Option<Vec<Tensor<4>>>) {
        let batch = real_a.dims()[0];
        let identity = self.uses_nce_identity();
        let flipped = self.options.flip_equivariance && patches.flip();
        let mut real = if identity {
            Tensor::cat(vec![real_a.clone(), real_b.clone()], 0)
        } else {
            real_a.clone()
        };
        if flipped {
            real = real.flip([3]);
        }
        let fake = self.g.forward(real);
        let fake_b = fake.clone().narrow(0, 0, batch);
        let idt_b = identity.then(|| fake.narrow(0, batch, batch));

        // Discriminator step on the detached fakes.
        let loss_d_fake = mse(self.d.forward(fake_b.clone().detach()), 0.0);
        let loss_d_real = mse(self.d.forward(real_b.clone()), 1.0);
        let loss_d = (loss_d_fake.clone() + loss_d_real.clone()).mul_scalar(0.5);
        let grads =
            GradientsParams::from_grads(self.scaler.scale(loss_d.clone()).backward(), &self.d);
        if let Some(grads) = self.scaler.unscale(grads, &self.d) {
            self.d = self.opt_d.step(lr, self.d.clone(), grads);
        }

        // Generator and heads step, against the updated discriminator.
        let (loss_gan, loss_nce, loss_nce_y, loss_g) = self.generator_losses(
            real_a.clone(),
            real_b.clone(),
            fake_b.clone(),
            idt_b.clone(),
            flipped,
            patches,
        );
        let mut grads = self.scaler.scale(loss_g.clone()).backward();
        let grads_g = GradientsParams::from_module(&mut grads, &self.g);
        let grads_f = GradientsParams::from_module(&mut grads, &self.f);
        if let Some(grads_g) = self.scaler.unscale(grads_g, &self.g) {
            self.g = self.opt_g.step(lr, self.g.clone(), grads_g);
        }
        if let Some(grads_f) = self.scaler.unscale(grads_f, &self.f) {
            self.f = self.opt_f.step(lr, self.f.clone(), grads_f);
        }
        self.scaler.update();

        // One read-back for all the numbers.
        let mut all = vec![loss_d_fake, loss_d_real, loss_d, loss_gan, loss_nce];
        all.extend(loss_nce_y);
        all.push(loss_g);
        let values = Tensor::cat(all, 0)
            .detach()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 losses");
        let losses = self.loss_names().into_iter().zip(values).collect();

        let visuals = keep_visuals.then(|| {
            let unflip = |t: Tensor<4>| if flipped { t.flip([3]) } else { t };
            let mut v = vec![real_a, unflip(fake_b.detach()), real_b];
            v.extend(idt_b.map(|t| unflip(t.detach())));
            v
        });
        (losses, visuals)
    }

    /// The generator's losses for fakes made by `self.g`: adversarial (against a frozen copy
    /// of the discriminator, which passes gradients to its input only), PatchNCE, PatchNCE
    /// identity (when `idt_b` is given), and their total.
    fn generator_losses(
        &self,
        real_a: Tensor<4>,
        real_b: Tensor<4>,
        fake_b: Tensor<4>,
        idt_b: Option<Tensor<4>>,
        flipped: bool,
        patches: &mut dyn PatchSource,
    ) -> (Tensor<1>, Tensor<1>, Option<Tensor<1>>, Tensor<1>) {
        let d_frozen = self.d.clone().no_grad();
        let loss_gan =
            mse(d_frozen.forward(fake_b.clone()), 1.0).mul_scalar(self.options.lambda_gan);
        let loss_nce = if self.options.lambda_nce > 0.0 {
            self.patch_nce(real_a.clone(), fake_b, flipped, patches)
        } else {
            Tensor::zeros([1], &real_a.device())
        };
        let loss_nce_y = idt_b.map(|idt_b| self.patch_nce(real_b, idt_b, flipped, patches));
        let nce_both = match &loss_nce_y {
            Some(y) => (loss_nce.clone() + y.clone()).mul_scalar(0.5),
            None => loss_nce.clone(),
        };
        let total = loss_gan.clone() + nce_both;
        (loss_gan, loss_nce, loss_nce_y, total)
    }

    /// PatchNCE of `target` (generated from `source`, flipped when `flipped`) against
    /// `source`, times lambda_NCE, averaged over the layers: the reference's
    /// `calculate_NCE_loss(src, tgt)`.
    fn patch_nce(
        &self,
        source: Tensor<4>,
        target: Tensor<4>,
        flipped: bool,
        patches: &mut dyn PatchSource,
    ) -> Tensor<1> {
        let layers = &self.options.nce_layers;
        let mut feat_q = self.g.forward_features(target, layers);
        if flipped {
            feat_q = feat_q.into_iter().map(|f| f.flip([3])).collect();
        }
        // The source side is a constant (the reference detaches it after the heads).
        let feat_k = self.g.clone().no_grad().forward_features(source, layers);
        let device = feat_k[0].device();
        let ids: Vec<Tensor<1, Int>> = feat_k
            .iter()
            .map(|f| {
                let [_, _, h, w] = f.dims();
                let chosen: Vec<i64> = patches
                    .positions(h * w, self.options.num_patches.min(h * w))
                    .into_iter()
                    .map(|p| p as i64)
                    .collect();
                let n = chosen.len();
                Tensor::from_data(TensorData::new(chosen, [n]), &device)
            })
            .collect();
        let qs = self.f.forward(&feat_q, &ids);
        let ks = self.f.clone().no_grad().forward(&feat_k, &ids);
        let batch = feat_k[0].dims()[0];
        let per_layer: Vec<Tensor<1>> = qs
            .into_iter()
            .zip(ks)
            .map(|(q, k)| {
                info_nce(q, k.detach(), batch, self.options.nce_t)
                    .mean()
                    .mul_scalar(self.options.lambda_nce)
            })
            .collect();
        let n = per_layer.len() as f32;
        Tensor::cat(per_layer, 0).sum().div_scalar(n)
    }
}

/// The three networks for these options, zero weights.
fn networks(
    generator: &GeneratorConfig,
    discriminator: &DiscriminatorConfig,
    options: &CutOptions,
    device: &Device,
) -> (CutGenerator, CutDiscriminator, PatchHeads) {
    let config = options.generator_config(generator);
    let g = CutGenerator::new(&config, device);
    let d = CutDiscriminator::new(discriminator, options.antialias, device);
    let channels: Vec<usize> = options
        .nce_layers
        .iter()
        .map(|&l| config.channels_at(l).expect("layers validated"))
        .collect();
    let f = PatchHeads::new(&channels, device);
    (g, d, f)
}

/// Least-squares GAN loss of discriminator logits against `target` (1 real, 0 fake).
fn mse(logits: Tensor<4>, target: f32) -> Tensor<1> {
    logits.sub_scalar(target).square().mean()
}

/// The per-patch InfoNCE loss `[N]` of queries `q` `[N, dim]` against keys `k` (same shape,
/// image-major, `batch` images): the positive is the key at the same position, the negatives
/// the other keys of the same image; the self-similarity diagonal of the negatives is set to
/// -10 (as the reference, rather than removed), then cross-entropy at temperature `tau`.
pub fn info_nce(q: Tensor<2>, k: Tensor<2>, batch: usize, tau: f32) -> Tensor<1> {
    let [n, dim] = q.dims();
    let per_image = n / batch;
    let device = q.device();
    let positive = (q.clone() * k.clone()).sum_dim(1);
    let qb: Tensor<3> = q.reshape([batch, per_image, dim]);
    let kb: Tensor<3> = k.reshape([batch, per_image, dim]);
    let diagonal: Vec<bool> = (0..batch * per_image * per_image)
        .map(|i| {
            let i = i % (per_image * per_image);
            i / per_image == i % per_image
        })
        .collect();
    let mask = Tensor::<3, Bool>::from_data(
        TensorData::new(diagonal, [batch, per_image, per_image]),
        &device,
    );
    let negative = qb
        .matmul(kb.swap_dims(1, 2))
        .mask_fill(mask, -10.0)
        .reshape([n, per_image]);
    let logits = Tensor::cat(vec![positive, negative], 1).div_scalar(tau);
    log_softmax(logits, 1).narrow(1, 0, 1).reshape([n]).neg()
}

/// Read a CUT state dict's networks for translation: the generator alone, its layout found
/// from the keys. Convenience for the `G.`-prefixed map of [`Cut::state_dict`].
pub fn generator_from_state(
    dict: &HashMap<String, HostTensor>,
    path: &Path,
    device: &Device,
) -> Result<CutGenerator> {
    let sub: HashMap<String, HostTensor> = dict
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("G.").map(|k| (k.to_string(), v.clone())))
        .collect();
    let config = crate::model::cut::infer_cut_generator_config(&sub)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let mut g = CutGenerator::new(&config, device);
    load_state_dict(&mut g, &sub, path, "CUT generator")
        .with_context(|| format!("{}: loading the CUT generator", path.display()))?;
    Ok(g)
}

/// The files a CUT checkpoint holds besides `state.json`.
pub const CHECKPOINT_FILES: &[&str] = &[NETWORKS, OPT_G, OPT_D, OPT_F];
const OPT_G: &str = "optimizer_G.bpk";
const OPT_D: &str = "optimizer_D.bpk";
const OPT_F: &str = "optimizer_F.bpk";

impl UnpairedModel for Cut {
    fn step(
        &mut self,
        real_a: Tensor<4>,
        real_b: Tensor<4>,
        lr: f64,
        rng: &mut ChaCha8Rng,
        keep_visuals: bool,
    ) -> (Losses, Option<Visuals>) {
        let (named, images) = Cut::step(self, real_a, real_b, lr, rng, keep_visuals);
        let losses = named.into_iter().fold(Losses::new(), |l, (name, v)| {
            let role = match name {
                "D" => Role::Discriminator,
                "G_GAN" => Role::Adversarial,
                "NCE" | "NCE_Y" => Role::Generator,
                _ => Role::Info, // D's parts, and G (the total of the above)
            };
            l.with(name, role, v)
        });
        let visuals = images.map(|images| Visuals { images, columns: 2 });
        (losses, visuals)
    }

    fn load_networks(
        &mut self,
        networks: &BTreeMap<String, HostTensor>,
        source: &Path,
    ) -> Result<Vec<&'static str>> {
        let mut loaded = Vec::new();
        let mut load = |name: &'static str, net: &mut dyn LoadNetwork| -> Result<()> {
            let dict = sub_dict(networks, name);
            if !dict.is_empty() {
                net.load(&dict, source, name)?;
                loaded.push(name);
            }
            Ok(())
        };
        load("G", &mut self.g)?;
        load("D", &mut self.d)?;
        load("F", &mut self.f)?;
        Ok(loaded)
    }

    fn save(&mut self) -> Result<Vec<(String, Vec<u8>)>> {
        let meta =
            std::collections::HashMap::from([("format".to_string(), "cyclegan-cut".to_string())]);
        let networks = safetensors_to_bytes(&self.state_dict(), Some(meta))
            .map_err(|e| anyhow!("serialising networks: {e}"))?;
        let [g, d, f] = self.optimizer_bytes()?;
        let mut files = vec![
            (NETWORKS.into(), networks),
            (OPT_G.into(), g),
            (OPT_D.into(), d),
            (OPT_F.into(), f),
        ];
        files.extend(self.scaler.checkpoint_file());
        Ok(files)
    }
}

/// The model a CUT checkpoint's `files` hold, for training with `config`.
pub fn restore(config: &TrainConfig, files: &CheckpointFiles, device: &Device) -> Result<Cut> {
    let dict: HashMap<String, HostTensor> = files.networks()?.into_iter().collect();
    let optimizers = [
        files.get(OPT_G)?.to_vec(),
        files.get(OPT_D)?.to_vec(),
        files.get(OPT_F)?.to_vec(),
    ];
    let mut cut = Cut::from_state(
        &config.generator,
        &config.discriminator,
        config.cut.clone(),
        (config.beta1, config.beta2),
        device,
        &dict,
        &files.path(NETWORKS),
        Some(optimizers),
    )?;
    let saved_scale = files.files.get(loss_scale::FILE).map(Vec::as_slice);
    cut.set_precision(config.precision, saved_scale)
        .map_err(|e| anyhow!("{}: {e}", files.path(loss_scale::FILE).display()))?;
    Ok(cut)
}

/// The generator a CUT checkpoint holds; CUT translates from A to B only.
pub fn generator(
    files: &CheckpointFiles,
    direction: Direction,
    device: &Device,
) -> Result<Generator> {
    if direction == Direction::B2a {
        bail!(
            "{}: a CUT/FastCUT model has one generator, from domain A to B: --direction b2a needs a CycleGAN model (or train CUT with the domains swapped)",
            files.dir.display()
        );
    }
    let dict: HashMap<String, HostTensor> = files.networks()?.into_iter().collect();
    Ok(Generator::Cut(Box::new(generator_from_state(
        &dict,
        &files.path(NETWORKS),
        device,
    )?)))
}

#[cfg(test)]
mod tests;
