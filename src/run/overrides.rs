//! The settings a command line may give, as one typed set of overrides of a [`TrainConfig`].

use std::path::PathBuf;

use crate::config::{GanMode, LrPolicy, TrainConfig};
use crate::family::Family;
use crate::model::norm::Norm;
use crate::model::precision::Precision;
use crate::model::weights::InitType;
use crate::model::{DiscriminatorKind, GeneratorArch};
use cyclegan_data::loader::Preprocess;

/// `--generator`, named as in the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GeneratorChoice {
    /// ResNet with 9 residual blocks (256 px images).
    #[value(name = "resnet_9blocks")]
    Resnet9,
    /// ResNet with 6 residual blocks (128 px images).
    #[value(name = "resnet_6blocks")]
    Resnet6,
    /// U-Net with 7 downsamplings (crops a multiple of 128).
    #[value(name = "unet_128")]
    Unet128,
    /// U-Net with 8 downsamplings (crops a multiple of 256).
    #[value(name = "unet_256")]
    Unet256,
}

impl GeneratorChoice {
    /// The architecture, and the residual blocks it implies (none in a U-Net).
    fn arch(self) -> (GeneratorArch, Option<usize>) {
        match self {
            GeneratorChoice::Resnet9 => (GeneratorArch::Resnet, Some(9)),
            GeneratorChoice::Resnet6 => (GeneratorArch::Resnet, Some(6)),
            GeneratorChoice::Unet128 => (GeneratorArch::Unet128, Some(0)),
            GeneratorChoice::Unet256 => (GeneratorArch::Unet256, Some(0)),
        }
    }
}

/// `--discriminator`, named as in the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiscriminatorChoice {
    /// The 70x70 PatchGAN (3 stride-2 layers).
    #[value(name = "basic")]
    Basic,
    /// A PatchGAN with --d-layers stride-2 layers.
    #[value(name = "n_layers")]
    NLayers,
    /// The 1x1 PixelGAN: every pixel judged alone.
    #[value(name = "pixel")]
    Pixel,
}

fn parse_preprocess(s: &str) -> Result<Preprocess, String> {
    s.parse()
}

/// A switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// A setting as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The flag, e.g. `--lr`.
    pub flag: &'static str,
    /// True when a checkpoint fixes it: a resumed run cannot change it.
    pub fixed: bool,
}

/// One setting changed by the overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Which setting.
    pub setting: Setting,
    /// Its value before.
    pub from: String,
    /// Its value now.
    pub to: String,
}

/// Settings given on the command line (absent ones keep the configuration's value). Defaults
/// shown are the paper's.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Model family [default: cyclegan]; its defaults follow (cut: 200 + 200 epochs, fastcut:
    /// 150 + 50, with the authors' PatchNCE settings).
    #[arg(long, value_enum, help_heading = "Networks")]
    pub model: Option<Family>,
    /// Generator architecture [default: resnet_9blocks]: resnet_9blocks, resnet_6blocks
    /// (128 px), unet_256, unet_128 (pix2pix's U-Net; crops a multiple of 256 or 128).
    #[arg(long, value_enum, help_heading = "Networks")]
    pub generator: Option<GeneratorChoice>,
    /// Residual blocks in the ResNet generators [default: 9]; 6 suits 128 px. Overrides the
    /// count of --generator resnet_*.
    #[arg(long, help_heading = "Networks")]
    pub blocks: Option<usize>,
    /// Generator filters in the first layer [default: 64].
    #[arg(long, help_heading = "Networks")]
    pub ngf: Option<usize>,
    /// Discriminator filters in the first layer [default: 64].
    #[arg(long, help_heading = "Networks")]
    pub ndf: Option<usize>,
    /// Discriminator [default: basic]: basic (the 70x70 PatchGAN), n_layers (a PatchGAN with
    /// --d-layers layers), pixel (1x1 PixelGAN).
    #[arg(long, value_enum, help_heading = "Networks")]
    pub discriminator: Option<DiscriminatorChoice>,
    /// Discriminator stride-2 layers [default: 3, the 70x70 PatchGAN].
    #[arg(long, help_heading = "Networks")]
    pub d_layers: Option<usize>,
    /// Normalisation in both networks [default: instance]: instance (the paper's), batch
    /// (pix2pix's), none.
    #[arg(long, value_enum, help_heading = "Networks")]
    pub norm: Option<Norm>,
    /// Dropout (0.5) in the generators' residual blocks (U-Net: its inner 8*ngf levels).
    #[arg(long, help_heading = "Networks")]
    pub dropout: bool,
    /// Channels of domain A's images [default: 3]; 1 reads them as grayscale (the luma).
    #[arg(long, value_name = "1|3", help_heading = "Networks")]
    pub input_nc: Option<usize>,
    /// Channels of domain B's images [default: 3]; 1 for grayscale. Channels that differ from
    /// --input-nc need --lambda-identity 0.
    #[arg(long, value_name = "1|3", help_heading = "Networks")]
    pub output_nc: Option<usize>,
    /// Weight initialisation [default: normal]: normal N(0, gain), xavier, kaiming,
    /// orthogonal.
    #[arg(long, value_enum, help_heading = "Networks")]
    pub init_type: Option<InitType>,
    /// Scale of normal, xavier and orthogonal initialisation [default: 0.02]; the reference
    /// suggests a smaller one when the output collapses to the input's inverse colours.
    #[arg(long, value_name = "GAIN", help_heading = "Networks")]
    pub init_gain: Option<f32>,
    /// Fine-tune: start the networks from another model (a run or checkpoint folder, a folder
    /// of the PyTorch reference's <epoch>_net_<NAME>.pth files, or one .pth/.safetensors
    /// generator) instead of random weights; optimizers and schedule start fresh. The
    /// architecture options must match it.
    #[arg(long, value_name = "RUN_OR_PTH", help_heading = "Networks")]
    pub init_from: Option<PathBuf>,

    /// Adversarial loss [default: lsgan]; wgangp adds the gradient penalty (weight 10) to the
    /// discriminators' loss. CUT and FastCUT: lsgan only.
    #[arg(long, value_enum, help_heading = "Losses")]
    pub gan_mode: Option<GanMode>,
    /// Weight of the A->B->A cycle loss [default: 10].
    #[arg(long, help_heading = "Losses")]
    pub lambda_a: Option<f32>,
    /// Weight of the B->A->B cycle loss [default: 10].
    #[arg(long, help_heading = "Losses")]
    pub lambda_b: Option<f32>,
    /// Identity loss weight, relative to the cycle weights [default: 0.5; 0 disables].
    #[arg(long, help_heading = "Losses")]
    pub lambda_identity: Option<f32>,
    /// Past fakes kept for the discriminators [default: 50; 0 disables].
    #[arg(long, help_heading = "Losses")]
    pub pool_size: Option<usize>,

    /// PatchNCE weight [default: 1 for cut, 10 for fastcut].
    #[arg(long, help_heading = "CUT and FastCUT")]
    pub lambda_nce: Option<f32>,
    /// PatchNCE identity loss on domain B [default: on for cut, off for fastcut].
    #[arg(long, value_enum, help_heading = "CUT and FastCUT")]
    pub nce_idt: Option<OnOff>,
    /// Generator layers PatchNCE compares, ascending [default: 0,4,8,12,16].
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "L,L,...",
        help_heading = "CUT and FastCUT"
    )]
    pub nce_layers: Option<Vec<usize>>,
    /// Patches sampled per layer and image [default: 256].
    #[arg(long, help_heading = "CUT and FastCUT")]
    pub num_patches: Option<usize>,
    /// Temperature of PatchNCE's softmax [default: 0.07].
    #[arg(long, help_heading = "CUT and FastCUT")]
    pub nce_t: Option<f32>,
    /// Flip equivariance: flip the batch at random and ask for flipped features [default: off
    /// for cut, on for fastcut].
    #[arg(long, value_enum, help_heading = "CUT and FastCUT")]
    pub flip_equivariance: Option<OnOff>,
    /// Plain strided (transposed) convolutions instead of anti-aliased sampling.
    #[arg(long, help_heading = "CUT and FastCUT")]
    pub no_antialias: bool,

    /// Adam learning rate [default: 0.0002]. Can change on --resume (resets the guard's
    /// reductions).
    #[arg(long, help_heading = "Optimisation")]
    pub lr: Option<f64>,
    /// Adam beta1 [default: 0.5].
    #[arg(long, help_heading = "Optimisation")]
    pub beta1: Option<f32>,
    /// Adam beta2 [default: 0.999].
    #[arg(long, help_heading = "Optimisation")]
    pub beta2: Option<f32>,
    /// Epochs at the initial learning rate [default: 100]. Can change on --resume.
    #[arg(long, help_heading = "Optimisation")]
    pub epochs: Option<usize>,
    /// Epochs of linear decay to zero afterwards [default: 100]. Can change on --resume.
    #[arg(long, help_heading = "Optimisation")]
    pub epochs_decay: Option<usize>,
    /// Learning-rate policy [default: linear]: linear (--epochs constant, then --epochs-decay
    /// down to zero), step (x0.1 every --lr-decay-iters epochs), plateau (x0.2 after 6 epochs
    /// whose mean cycle + identity loss did not improve by 1%), cosine (to 0 over --epochs +
    /// --epochs-decay). Can change on --resume.
    #[arg(long, value_enum, help_heading = "Optimisation")]
    pub lr_policy: Option<LrPolicy>,
    /// Epochs between two reductions of --lr-policy step [default: 50]. Can change on --resume.
    #[arg(long, value_name = "EPOCHS", help_heading = "Optimisation")]
    pub lr_decay_iters: Option<usize>,
    /// Images per batch [default: 1].
    #[arg(long, help_heading = "Optimisation")]
    pub batch_size: Option<usize>,
    /// Seed of every random choice [default: 0].
    #[arg(long, help_heading = "Optimisation")]
    pub seed: Option<u64>,

    /// How images are resized and cropped [default: resize_and_crop]: resize_and_crop
    /// (squash to --load-size, random --crop-size square), crop (a random square at the
    /// image's own scale), scale_width (width to --load-size, height in proportion; whole
    /// images, batch 1), scale_width_and_crop (then a random square: for large images), none
    /// (sides made multiples of 4 only; batch 1).
    #[arg(long, value_name = "MODE", value_parser = parse_preprocess, help_heading = "Data")]
    pub preprocess: Option<Preprocess>,
    /// Resize images to this size first [default: 286].
    #[arg(long, help_heading = "Data")]
    pub load_size: Option<u32>,
    /// Then take random crops of this size, a multiple of 4 [default: 256].
    #[arg(long, help_heading = "Data")]
    pub crop_size: Option<u32>,
    /// Do not flip images horizontally at random.
    #[arg(long, help_heading = "Data")]
    pub no_flip: bool,
    /// Pair domain B's image i % len with A's image i, in file order, instead of both
    /// shuffled.
    #[arg(long, help_heading = "Data")]
    pub serial_batches: bool,
    /// Use only the first N images of each domain (file order).
    #[arg(long, value_name = "N", help_heading = "Data")]
    pub max_dataset_size: Option<usize>,
    /// Threads decoding images [default: 2].
    #[arg(long, help_heading = "Data")]
    pub workers: Option<usize>,

    /// Minutes between checkpoints within an epoch [default: 10; 0: epoch ends only].
    #[arg(long, help_heading = "Run")]
    pub save_every_minutes: Option<f64>,
    /// Checkpoints to keep [default: 3]; the newest good one is always kept.
    #[arg(long, help_heading = "Run")]
    pub keep_last: Option<usize>,
    /// Also write a sample grid and redraw losses.png every N iterations [default: 0, epoch ends only].
    #[arg(long, value_name = "N", help_heading = "Run")]
    pub sample_every: Option<u64>,
    /// Stop after this many iterations in total (smoke runs).
    #[arg(long, help_heading = "Run")]
    pub max_iters: Option<u64>,
    /// Float type of the convolutions [default: f32]: f16 or bf16 for mixed precision on GPUs
    /// that have it (weights, norms and losses stay f32; f16 scales the loss). Can change on
    /// --resume.
    #[arg(long, value_enum, help_heading = "Run")]
    pub precision: Option<Precision>,

    /// Divergence guard: on NaN, exploding or collapsing losses, roll back to the last good
    /// checkpoint and lower the learning rate [default: on].
    #[arg(long, value_enum, help_heading = "Divergence guard")]
    pub guard: Option<OnOff>,
    /// Learning-rate multiplier at each rollback [default: 0.5].
    #[arg(long, help_heading = "Divergence guard")]
    pub guard_lr_factor: Option<f64>,
    /// Rollbacks allowed before giving up [default: 3].
    #[arg(long, help_heading = "Divergence guard")]
    pub guard_max_rollbacks: Option<usize>,
    /// Iterations of loss history the guard judges against [default: 200].
    #[arg(long, help_heading = "Divergence guard")]
    pub guard_window: Option<usize>,

    /// Dataset folder (set from the command's DATA_DIR argument).
    #[arg(skip)]
    pub data_dir: Option<PathBuf>,
}

impl Overrides {
    /// Apply the given settings to `config`; returns those whose value changed.
    pub fn apply(&self, config: &mut TrainConfig) -> Vec<Change> {
        let mut changes = Vec::new();
        let c = config;
        macro_rules! set {
            ($flag:literal, $fixed:literal, $($field:ident).+ = $value:expr) => {
                if let Some(v) = $value {
                    if c.$($field).+ != v {
                        changes.push(Change {
                            setting: Setting { flag: $flag, fixed: $fixed },
                            from: shown(format!("{:?}", c.$($field).+)),
                            to: shown(format!("{:?}", v)),
                        });
                        c.$($field).+ = v;
                    }
                }
            };
        }
        set!("--model", true, model = self.model);
        let (arch, blocks) = self.generator.map(GeneratorChoice::arch).unzip();
        set!("--generator", true, generator.arch = arch);
        set!("--generator", true, generator.blocks = blocks.flatten());
        set!("--blocks", true, generator.blocks = self.blocks);
        set!("--ngf", true, generator.ngf = self.ngf);
        set!("--ndf", true, discriminator.ndf = self.ndf);
        let kind = self.discriminator.map(|d| match d {
            DiscriminatorChoice::Pixel => DiscriminatorKind::Pixel,
            _ => DiscriminatorKind::NLayers,
        });
        set!("--discriminator", true, discriminator.kind = kind);
        let basic = (self.discriminator == Some(DiscriminatorChoice::Basic)).then_some(3);
        set!("--discriminator", true, discriminator.layers = basic);
        set!("--d-layers", true, discriminator.layers = self.d_layers);
        set!("--norm", true, generator.norm = self.norm);
        set!("--norm", true, discriminator.norm = self.norm);
        set!(
            "--dropout",
            true,
            generator.dropout = self.dropout.then_some(true)
        );
        set!("--input-nc", true, generator.input_nc = self.input_nc);
        set!("--output-nc", true, generator.output_nc = self.output_nc);
        set!("--init-type", true, init.kind = self.init_type);
        set!("--init-gain", true, init.gain = self.init_gain);
        set!(
            "--init-from",
            true,
            init_from = self.init_from.clone().map(Some)
        );
        set!("--gan-mode", true, gan_mode = self.gan_mode);
        set!("--lambda-a", true, lambda_a = self.lambda_a);
        set!("--lambda-b", true, lambda_b = self.lambda_b);
        set!(
            "--lambda-identity",
            true,
            lambda_identity = self.lambda_identity
        );
        set!("--pool-size", true, pool_size = self.pool_size);
        set!("--beta1", true, beta1 = self.beta1);
        set!("--beta2", true, beta2 = self.beta2);
        set!("--batch-size", true, batch_size = self.batch_size);
        set!("--seed", true, seed = self.seed);
        set!("--load-size", true, load_size = self.load_size);
        set!("--crop-size", true, crop_size = self.crop_size);
        set!("--no-flip", true, flip = self.no_flip.then_some(false));
        set!("--preprocess", true, preprocess = self.preprocess);
        set!(
            "--serial-batches",
            true,
            serial_batches = self.serial_batches.then_some(true)
        );
        set!(
            "--max-dataset-size",
            true,
            max_dataset_size = self.max_dataset_size.map(Some)
        );
        set!("--lambda-nce", true, cut.lambda_nce = self.lambda_nce);
        set!(
            "--nce-idt",
            true,
            cut.nce_idt = self.nce_idt.map(|v| v == OnOff::On)
        );
        set!(
            "--nce-layers",
            true,
            cut.nce_layers = self.nce_layers.clone()
        );
        set!("--num-patches", true, cut.num_patches = self.num_patches);
        set!("--nce-t", true, cut.nce_t = self.nce_t);
        set!(
            "--flip-equivariance",
            true,
            cut.flip_equivariance = self.flip_equivariance.map(|v| v == OnOff::On)
        );
        set!(
            "--no-antialias",
            true,
            cut.antialias = self.no_antialias.then_some(false)
        );
        set!("--lr", false, lr = self.lr);
        set!("--epochs", false, epochs = self.epochs);
        set!("--epochs-decay", false, epochs_decay = self.epochs_decay);
        set!("--lr-policy", false, lr_policy = self.lr_policy);
        set!(
            "--lr-decay-iters",
            false,
            lr_decay_iters = self.lr_decay_iters
        );
        set!("--workers", false, workers = self.workers);
        set!(
            "--save-every-minutes",
            false,
            save_every_minutes = self.save_every_minutes
        );
        set!("--keep-last", false, keep_last = self.keep_last);
        set!("--sample-every", false, sample_every = self.sample_every);
        set!("--max-iters", false, max_iters = self.max_iters.map(Some));
        set!("--precision", false, precision = self.precision);
        set!(
            "--guard",
            false,
            guard.enabled = self.guard.map(|g| g == OnOff::On)
        );
        set!(
            "--guard-lr-factor",
            false,
            guard.lr_factor = self.guard_lr_factor
        );
        set!(
            "--guard-max-rollbacks",
            false,
            guard.max_rollbacks = self.guard_max_rollbacks
        );
        set!("--guard-window", false, guard.window = self.guard_window);
        set!("DATA_DIR", false, data_dir = self.data_dir.clone());
        changes
    }
}

/// A value as the user would write it: `Some(5)` as `5`, `None` as `none`.
fn shown(debug: String) -> String {
    match debug
        .strip_prefix("Some(")
        .and_then(|s| s.strip_suffix(')'))
    {
        Some(inner) => inner.to_string(),
        None if debug == "None" => "none".into(),
        None => debug,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changed_values_are_reported_with_their_kind() {
        let mut c = TrainConfig::default();
        let o = Overrides {
            lr: Some(1e-4),
            blocks: Some(9), // the default: no change
            ngf: Some(32),
            ..Overrides::default()
        };
        let changes = o.apply(&mut c);
        assert_eq!(c.lr, 1e-4);
        assert_eq!(c.generator.ngf, 32);
        let flags: Vec<(&str, bool)> = changes
            .iter()
            .map(|ch| (ch.setting.flag, ch.setting.fixed))
            .collect();
        assert_eq!(flags, [("--ngf", true), ("--lr", false)]);
        assert_eq!(changes[1].from, "0.0002");
    }

    /// The reference's network names set the architecture; --blocks and --d-layers still
    /// refine them; --norm applies to both networks.
    #[test]
    fn network_choices_set_the_architecture() {
        let mut c = TrainConfig::default();
        Overrides {
            generator: Some(GeneratorChoice::Resnet6),
            discriminator: Some(DiscriminatorChoice::Pixel),
            norm: Some(Norm::Batch),
            dropout: true,
            init_type: Some(InitType::Orthogonal),
            init_gain: Some(0.5),
            ..Overrides::default()
        }
        .apply(&mut c);
        assert_eq!(
            (c.generator.arch, c.generator.blocks, c.generator.dropout),
            (GeneratorArch::Resnet, 6, true)
        );
        assert_eq!(c.discriminator.kind, DiscriminatorKind::Pixel);
        assert_eq!(
            (c.generator.norm, c.discriminator.norm),
            (Norm::Batch, Norm::Batch)
        );
        assert_eq!((c.init.kind, c.init.gain), (InitType::Orthogonal, 0.5));

        let mut c = TrainConfig::default();
        Overrides {
            generator: Some(GeneratorChoice::Unet256),
            discriminator: Some(DiscriminatorChoice::NLayers),
            d_layers: Some(5),
            ..Overrides::default()
        }
        .apply(&mut c);
        assert_eq!(c.generator.arch, GeneratorArch::Unet256);
        assert_eq!(
            (c.discriminator.kind, c.discriminator.layers),
            (DiscriminatorKind::NLayers, 5)
        );
        assert!(c.validate().is_ok());
        // A U-Net needs crops of its multiple.
        c.crop_size = 128;
        c.load_size = 143;
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("--generator unet_256") && e.contains("--crop-size 256"),
            "{e}"
        );
    }
}
