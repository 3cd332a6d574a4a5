//! CycleGAN (Zhu et al. 2017): one iteration as in the paper and the reference implementation,
//! and what its checkpoints hold.
//!
//! Naming follows the reference: `G_A` maps A to B and `G_B` maps B to A; `D_A` judges domain B
//! (the outputs of `G_A`) and `D_B` judges domain A.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Result, anyhow};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Bytes;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::adversarial::{discriminator_loss, generator_loss, gradient_penalty};
use super::loss_scale::{self, LossScaler};
use super::pool::ImagePool;
use super::{
    CheckpointFiles, Direction, Generator, LoadNetwork, Losses, NETWORKS, Role, UnpairedModel,
    Visuals, sub_dict,
};
use crate::config::{GanMode, TrainConfig};
use crate::model::weights::{
    HostTensor, Init, assign_stable_ids, init_weights, load_state_dict, safetensors_from_bytes,
    safetensors_to_bytes, state_dict,
};
use crate::model::{CycleGanGenerator, DiscriminatorConfig, GeneratorConfig, PatchDiscriminator};

const OPT_G: &str = "optimizer_G.bpk";
const OPT_D: &str = "optimizer_D.bpk";
const POOLS: &str = "pools.safetensors";
/// The files a CycleGAN checkpoint holds besides `state.json`.
pub const CHECKPOINT_FILES: &[&str] = &[NETWORKS, OPT_G, OPT_D, POOLS];

/// The two generators, optimised together by one Adam.
#[derive(Module, Debug)]
pub struct Generators {
    /// `G_A`: A -> B.
    pub g_a: CycleGanGenerator,
    /// `G_B`: B -> A.
    pub g_b: CycleGanGenerator,
}

/// The two discriminators, optimised together by one Adam.
#[derive(Module, Debug)]
pub struct Discriminators {
    /// `D_A`: real B vs `G_A(A)`.
    pub d_a: PatchDiscriminator,
    /// `D_B`: real A vs `G_B(B)`.
    pub d_b: PatchDiscriminator,
}

impl Generators {
    /// Two generators with weights drawn as `init` says (in the order G_A, G_B); `config` is
    /// G_A's, G_B's has the channels the other way round.
    pub fn init(config: &GeneratorConfig, init: Init, device: &Device, rng: &mut impl Rng) -> Self {
        let mut g_a = CycleGanGenerator::new(config, device);
        init_weights(&mut g_a, init, rng);
        let mut g_b = CycleGanGenerator::new(&config.reversed(), device);
        init_weights(&mut g_b, init, rng);
        let mut gens = Generators { g_a, g_b };
        gens.assign_stable_ids();
        gens
    }

    /// Name-derived parameter ids (`G_A.model.1.weight`, ...), so optimizer state reloads.
    pub fn assign_stable_ids(&mut self) {
        assign_stable_ids(&mut self.g_a, "G_A");
        assign_stable_ids(&mut self.g_b, "G_B");
    }
}

impl Discriminators {
    /// Two discriminators ([`discriminator_configs`]) with weights drawn as `init` says (in the
    /// order D_A, D_B).
    pub fn init(
        [config_a, config_b]: [DiscriminatorConfig; 2],
        init: Init,
        device: &Device,
        rng: &mut impl Rng,
    ) -> Self {
        let mut d_a = PatchDiscriminator::new(&config_a, device);
        init_weights(&mut d_a, init, rng);
        let mut d_b = PatchDiscriminator::new(&config_b, device);
        init_weights(&mut d_b, init, rng);
        let mut discs = Discriminators { d_a, d_b };
        discs.assign_stable_ids();
        discs
    }

    /// Name-derived parameter ids (`D_A.model.0.weight`, ...), so optimizer state reloads.
    pub fn assign_stable_ids(&mut self) {
        assign_stable_ids(&mut self.d_a, "D_A");
        assign_stable_ids(&mut self.d_b, "D_B");
    }
}

/// The configurations of D_A and D_B: `d` judging domain B's channels (G_A's outputs) and
/// domain A's.
pub fn discriminator_configs(
    d: &DiscriminatorConfig,
    g: &GeneratorConfig,
) -> [DiscriminatorConfig; 2] {
    [g.output_nc, g.input_nc].map(|input_nc| DiscriminatorConfig { input_nc, ..*d })
}

/// Loss weights and kind.
#[derive(Debug, Clone, Copy)]
pub struct Objective {
    /// Adversarial loss.
    pub gan_mode: GanMode,
    /// Cycle weight for A.
    pub lambda_a: f32,
    /// Cycle weight for B.
    pub lambda_b: f32,
    /// Identity weight relative to the cycle weights.
    pub lambda_identity: f32,
}

impl Objective {
    /// The objective of a run's config.
    pub fn from_config(c: &TrainConfig) -> Self {
        Objective {
            gan_mode: c.gan_mode,
            lambda_a: c.lambda_a,
            lambda_b: c.lambda_b,
            lambda_identity: c.lambda_identity,
        }
    }
}

fn l1(a: Tensor<4>, b: Tensor<4>) -> Tensor<1> {
    (a - b).abs().mean()
}

/// The eight losses of an iteration, named as in the reference, in `losses.jsonl` order.
pub const LOSS_NAMES: [&str; 8] = [
    "G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B",
];

/// The four networks, their two optimizers and the two image pools: everything one iteration
/// reads and changes.
pub struct CycleGan {
    /// The generators.
    pub gens: Generators,
    /// The discriminators.
    pub discs: Discriminators,
    /// Adam over both generators.
    pub opt_g: ModuleOptimizer,
    /// Adam over both discriminators.
    pub opt_d: ModuleOptimizer,
    /// Past fakes of domain A, shown to `D_B`.
    pub pool_a: ImagePool,
    /// Past fakes of domain B, shown to `D_A`.
    pub pool_b: ImagePool,
    /// Loss weights.
    pub objective: Objective,
    /// Loss scaling of float16 runs (inactive otherwise).
    pub scaler: LossScaler,
}

impl CycleGan {
    /// Fresh networks for `config` on `device` (which should be an autodiff device).
    pub fn new(config: &TrainConfig, device: &Device, rng: &mut impl Rng) -> Self {
        let gens = Generators::init(&config.generator, config.init, device, rng);
        let discs = Discriminators::init(
            discriminator_configs(&config.discriminator, &config.generator),
            config.init,
            device,
            rng,
        );
        Self::from_networks(config, gens, discs)
    }

    /// Wrap given networks with fresh optimizers and empty pools, computing in the config's
    /// precision.
    pub fn from_networks(
        config: &TrainConfig,
        mut gens: Generators,
        mut discs: Discriminators,
    ) -> Self {
        gens.g_a.set_precision(config.precision);
        gens.g_b.set_precision(config.precision);
        discs.d_a.set_precision(config.precision);
        discs.d_b.set_precision(config.precision);
        let adam = || {
            AdamConfig::new()
                .with_beta_1(config.beta1)
                .with_beta_2(config.beta2)
                .with_epsilon(1e-8)
                .init()
        };
        CycleGan {
            gens,
            discs,
            opt_g: adam(),
            opt_d: adam(),
            pool_a: ImagePool::new(config.pool_size),
            pool_b: ImagePool::new(config.pool_size),
            objective: Objective::from_config(config),
            scaler: LossScaler::new(config.precision),
        }
    }

    /// One iteration: a generator step on G_A + G_B with both discriminators frozen, then a
    /// discriminator step on D_A + D_B against pooled fakes. `rng` drives the pools only.
    ///
    /// `real_a` and `real_b` are `[B, 3, H, W]` in [-1, 1] on the networks' (autodiff) device.
    pub fn step(
        &mut self,
        real_a: Tensor<4>,
        real_b: Tensor<4>,
        lr: f64,
        rng: &mut impl Rng,
        keep_visuals: bool,
    ) -> (Losses, Option<Visuals>) {
        let obj = self.objective;
        if self.gens.g_a.config().dropout {
            // Dropout masks come from the backend's generator: seeding it from the run's makes
            // a resumed run draw the same masks.
            real_a.device().seed(rng.random());
        }
        let (g_a, g_b) = (&self.gens.g_a, &self.gens.g_b);

        // Generator step. Frozen copies of the discriminators pass gradients to their inputs only.
        let fake_b = g_a.forward(real_a.clone());
        let rec_a = g_b.forward(fake_b.clone());
        let fake_a = g_b.forward(real_b.clone());
        let rec_b = g_a.forward(fake_a.clone());
        let d_a_frozen = self.discs.d_a.clone().no_grad();
        let d_b_frozen = self.discs.d_b.clone().no_grad();
        let loss_g_a = generator_loss(obj.gan_mode, d_a_frozen.forward(fake_b.clone()));
        let loss_g_b = generator_loss(obj.gan_mode, d_b_frozen.forward(fake_a.clone()));
        let loss_cycle_a = l1(rec_a.clone(), real_a.clone()).mul_scalar(obj.lambda_a);
        let loss_cycle_b = l1(rec_b.clone(), real_b.clone()).mul_scalar(obj.lambda_b);
        // Identity: G_A(real_B) should be real_B (`idt_A` in the reference's names), and
        // G_B(real_A) real_A.
        let identities = (obj.lambda_identity > 0.0)
            .then(|| (g_a.forward(real_b.clone()), g_b.forward(real_a.clone())));
        let (loss_idt_a, loss_idt_b) = match &identities {
            Some((idt_a, idt_b)) => (
                l1(idt_a.clone(), real_b.clone()).mul_scalar(obj.lambda_b * obj.lambda_identity),
                l1(idt_b.clone(), real_a.clone()).mul_scalar(obj.lambda_a * obj.lambda_identity),
            ),
            None => {
                let zero = Tensor::zeros([1], &real_a.device());
                (zero.clone(), zero)
            }
        };
        let loss_g = loss_g_a.clone()
            + loss_g_b.clone()
            + loss_cycle_a.clone()
            + loss_cycle_b.clone()
            + loss_idt_a.clone()
            + loss_idt_b.clone();
        let grads = GradientsParams::from_grads(self.scaler.scale(loss_g).backward(), &self.gens);
        if let Some(grads) = self.scaler.unscale(grads, &self.gens) {
            self.gens = self.opt_g.step(lr, self.gens.clone(), grads);
        }

        // Discriminator step on detached fakes, half of them from the history pools.
        let (fake_a, fake_b) = (fake_a.detach(), fake_b.detach());
        let pooled_b = self.pool_b.query(fake_b.clone(), rng);
        let pooled_a = self.pool_a.query(fake_a.clone(), rng);
        let (d_a, d_b) = (&self.discs.d_a, &self.discs.d_b);
        let d_loss = |d: &PatchDiscriminator, real: &Tensor<4>, fake: Tensor<4>| {
            (discriminator_loss(obj.gan_mode, d.forward(real.clone()), true)
                + discriminator_loss(obj.gan_mode, d.forward(fake), false))
            .mul_scalar(0.5)
        };
        let mut loss_d_a = d_loss(d_a, &real_b, pooled_b.clone());
        let mut loss_d_b = d_loss(d_b, &real_a, pooled_a.clone());
        if obj.gan_mode == GanMode::Wgangp {
            // Drawn after the pools' draws, so lsgan runs draw exactly as before.
            loss_d_a = loss_d_a + gradient_penalty(d_a, real_b.clone(), pooled_b, rng);
            loss_d_b = loss_d_b + gradient_penalty(d_b, real_a.clone(), pooled_a, rng);
        }
        let loss_d = self.scaler.scale(loss_d_a.clone() + loss_d_b.clone());
        let grads = GradientsParams::from_grads(loss_d.backward(), &self.discs);
        if let Some(grads) = self.scaler.unscale(grads, &self.discs) {
            self.discs = self.opt_d.step(lr, self.discs.clone(), grads);
        }
        self.scaler.update();

        // One read-back for all eight numbers.
        let all = Tensor::cat(
            vec![
                loss_g_a,
                loss_g_b,
                loss_cycle_a,
                loss_cycle_b,
                loss_idt_a,
                loss_idt_b,
                loss_d_a,
                loss_d_b,
            ],
            0,
        );
        let v = all
            .detach()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 losses");
        let role = [
            Role::Adversarial,
            Role::Adversarial,
            Role::Generator,
            Role::Generator,
            Role::Generator,
            Role::Generator,
            Role::Discriminator,
            Role::Discriminator,
        ];
        let losses = LOSS_NAMES
            .iter()
            .zip(role)
            .zip(v)
            .fold(Losses::new(), |l, ((name, role), v)| l.with(name, role, v));
        // The reference's rows: real A, fake B, rec A (, idt B) over real B, fake A, rec B
        // (, idt A), where its idt_B = G_B(real_A) sits beside real A.
        let visuals = keep_visuals.then(|| match identities {
            Some((idt_a, idt_b)) => Visuals {
                images: vec![
                    real_a,
                    fake_b,
                    rec_a.detach(),
                    idt_b.detach(),
                    real_b,
                    fake_a,
                    rec_b.detach(),
                    idt_a.detach(),
                ],
                columns: 4,
            },
            None => Visuals {
                images: vec![
                    real_a,
                    fake_b,
                    rec_a.detach(),
                    real_b,
                    fake_a,
                    rec_b.detach(),
                ],
                columns: 3,
            },
        });
        (losses, visuals)
    }
}

impl UnpairedModel for CycleGan {
    fn step(
        &mut self,
        real_a: Tensor<4>,
        real_b: Tensor<4>,
        lr: f64,
        rng: &mut ChaCha8Rng,
        keep_visuals: bool,
    ) -> (Losses, Option<Visuals>) {
        CycleGan::step(self, real_a, real_b, lr, rng, keep_visuals)
    }

    fn load_networks(
        &mut self,
        networks: &BTreeMap<String, HostTensor>,
        source: &Path,
    ) -> Result<Vec<&'static str>> {
        let nets: [(&'static str, &mut dyn LoadNetwork); 4] = [
            ("G_A", &mut self.gens.g_a),
            ("G_B", &mut self.gens.g_b),
            ("D_A", &mut self.discs.d_a),
            ("D_B", &mut self.discs.d_b),
        ];
        let mut loaded = Vec::new();
        for (name, net) in nets {
            let dict = sub_dict(networks, name);
            if !dict.is_empty() {
                net.load(&dict, source, name)?;
                loaded.push(name);
            }
        }
        Ok(loaded)
    }

    fn save(&mut self) -> Result<Vec<(String, Vec<u8>)>> {
        let mut nets = BTreeMap::new();
        for (prefix, dict) in [
            ("G_A", state_dict(&mut self.gens.g_a)),
            ("G_B", state_dict(&mut self.gens.g_b)),
            ("D_A", state_dict(&mut self.discs.d_a)),
            ("D_B", state_dict(&mut self.discs.d_b)),
        ] {
            for (k, v) in dict {
                nets.insert(format!("{prefix}.{k}"), v);
            }
        }
        let meta = HashMap::from([
            ("format".to_string(), "cyclegan".to_string()),
            (
                "generator".to_string(),
                serde_json::to_string(&self.gens.g_a.config())?,
            ),
            (
                "discriminator".to_string(),
                serde_json::to_string(&self.discs.d_a.config())?,
            ),
        ]);
        let networks = safetensors_to_bytes(&nets, Some(meta))
            .map_err(|e| anyhow!("serialising networks: {e}"))?;
        let mut pools = BTreeMap::new();
        for (name, pool) in [("pool_A", &self.pool_a), ("pool_B", &self.pool_b)] {
            for (i, img) in pool.to_host().into_iter().enumerate() {
                pools.insert(format!("{name}.{i:04}"), img);
            }
        }
        let pools =
            safetensors_to_bytes(&pools, None).map_err(|e| anyhow!("serialising pools: {e}"))?;
        let opt_g = self
            .opt_g
            .into_bytes()
            .map_err(|e| anyhow!("serialising the generators' optimizer: {e:?}"))?;
        let opt_d = self
            .opt_d
            .into_bytes()
            .map_err(|e| anyhow!("serialising the discriminators' optimizer: {e:?}"))?;
        let mut files = vec![
            (NETWORKS.into(), networks),
            (OPT_G.into(), opt_g.to_vec()),
            (OPT_D.into(), opt_d.to_vec()),
            (POOLS.into(), pools),
        ];
        files.extend(self.scaler.checkpoint_file());
        Ok(files)
    }
}

impl CycleGan {
    /// Rebuild the networks, optimizers and pools a checkpoint's `files` hold, on `device`.
    pub fn restore(config: &TrainConfig, files: &CheckpointFiles, device: &Device) -> Result<Self> {
        let networks = files.networks()?;
        let path = files.path(NETWORKS);
        let load = |net: &mut dyn LoadNetwork, name: &str| {
            net.load(&sub_dict(&networks, name), &path, name)
        };
        let [config_a, config_b] = discriminator_configs(&config.discriminator, &config.generator);
        let mut g_a = CycleGanGenerator::new(&config.generator, device);
        let mut g_b = CycleGanGenerator::new(&config.generator.reversed(), device);
        let mut d_a = PatchDiscriminator::new(&config_a, device);
        let mut d_b = PatchDiscriminator::new(&config_b, device);
        load(&mut g_a, "G_A")?;
        load(&mut g_b, "G_B")?;
        load(&mut d_a, "D_A")?;
        load(&mut d_b, "D_B")?;
        let mut gens = Generators { g_a, g_b };
        let mut discs = Discriminators { d_a, d_b };
        gens.assign_stable_ids();
        discs.assign_stable_ids();
        let mut model = CycleGan::from_networks(config, gens, discs);

        let shown = |name: &str| files.path(name).display().to_string();
        model.opt_g = model
            .opt_g
            .from_bytes(Bytes::from_bytes_vec(files.get(OPT_G)?.to_vec()))
            .map_err(|e| anyhow!("{}: {e:?}", shown(OPT_G)))?;
        model.opt_d = model
            .opt_d
            .from_bytes(Bytes::from_bytes_vec(files.get(OPT_D)?.to_vec()))
            .map_err(|e| anyhow!("{}: {e:?}", shown(OPT_D)))?;
        let pools = safetensors_from_bytes(files.get(POOLS)?, "")
            .map_err(|e| anyhow!("{}: {e}", shown(POOLS)))?;
        let pool = |name: &str| {
            let mut keys: Vec<&String> = pools.keys().filter(|k| k.starts_with(name)).collect();
            keys.sort();
            keys.into_iter()
                .map(|k| pools[k].clone())
                .collect::<Vec<_>>()
        };
        model.pool_a = ImagePool::from_host(config.pool_size, &pool("pool_A."), device);
        model.pool_b = ImagePool::from_host(config.pool_size, &pool("pool_B."), device);
        let saved_scale = files.files.get(loss_scale::FILE).map(Vec::as_slice);
        model.scaler = LossScaler::restore(config.precision, saved_scale)
            .map_err(|e| anyhow!("{}: {e}", shown(loss_scale::FILE)))?;
        Ok(model)
    }
}

/// The generator of `direction` (`G_A` for a2b, `G_B` for b2a) from a checkpoint's networks.
pub fn generator(
    config: &TrainConfig,
    files: &CheckpointFiles,
    direction: Direction,
    device: &Device,
) -> Result<Generator> {
    let networks = files.networks()?;
    let (name, shape) = match direction {
        Direction::A2b => ("G_A", config.generator),
        Direction::B2a => ("G_B", config.generator.reversed()),
    };
    let mut g = CycleGanGenerator::new(&shape, device);
    load_state_dict(
        &mut g,
        &sub_dict(&networks, name),
        &files.path(NETWORKS),
        name,
    )?;
    Ok(g.into())
}
