//! The two networks of CycleGAN (Zhu et al. 2017, appendix 7.2) and their weights on disk.
//!
//! - [`ResnetGenerator`]: `c7s1-64, d128, d256, R256 x n, u128, u64, c7s1-3`;
//! - [`PatchDiscriminator`]: the 70x70 PatchGAN, `C64-C128-C256-C512` then a 1-channel map;
//! - the reference's other choices: [`UnetGenerator`] (pix2pix's U-Net), the PixelGAN
//!   discriminator, batch norm or none instead of instance norm ([`norm::Norm`]), dropout.
//!
//! By default they use instance norm without affine parameters, and their parameters are named
//! exactly as in the PyTorch reference's state dicts, so `.pth` files published for it load
//! directly and our safetensors files load into PyTorch.
//!
//! Which convolution kernels they run is a per-device choice, [`conv::ConvPolicy`]; their
//! convolutions are listed as data by their `conv_layers` methods ([`layers::ConvLayer`]).

pub mod conv;
pub mod cut;
mod discriminator;
mod generator;
mod instance_norm_train;
pub mod layers;
pub mod norm;
pub mod precision;
mod unet;
pub mod weights;

pub use discriminator::{DiscriminatorConfig, DiscriminatorKind, PatchDiscriminator};
pub use generator::{GeneratorArch, GeneratorConfig, ResnetGenerator};
pub use unet::UnetGenerator;

use burn::module::Param;
use burn::nn::BatchNorm;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::prelude::*;

/// A convolution's parameters seen by name, for saving, loading and initialising.
///
/// Both convolution kinds store the weight as a rank-4 tensor in PyTorch's layout
/// (`[out, in, kh, kw]` for Conv2d, `[in, out, kh, kw]` for ConvTranspose2d) and an optional bias.
/// A Linear layer is seen as a 1x1 convolution: held as `[out, in, 1, 1]`, saved and loaded in
/// PyTorch's Linear layout `[out, in]` (see [`NamedConv::linear`]).
pub struct NamedConv<'a> {
    /// The PyTorch state-dict prefix, e.g. `model.10.conv_block.1`.
    pub key: String,
    /// The weight parameter.
    pub weight: &'a mut Param<Tensor<4>>,
    /// The bias parameter, when the layer has one.
    pub bias: Option<&'a mut Param<Tensor<1>>>,
    /// The layer feeds an instance norm, which subtracts the per-channel mean and so removes
    /// the bias: its true gradient is exactly zero. It is kept (checkpoints have it) but not
    /// trained, since Adam would only turn rounding noise into random +-lr steps.
    pub bias_frozen: bool,
    /// The layer is a PyTorch `nn.Linear`: its weight is `[out, in]` in state dicts.
    pub linear: bool,
}

impl<'a> NamedConv<'a> {
    pub(crate) fn conv(key: String, conv: &'a mut Conv2d) -> Self {
        NamedConv {
            key,
            weight: &mut conv.weight,
            bias: conv.bias.as_mut(),
            bias_frozen: false,
            linear: false,
        }
    }
    pub(crate) fn transposed(key: String, conv: &'a mut ConvTranspose2d) -> Self {
        NamedConv {
            key,
            weight: &mut conv.weight,
            bias: conv.bias.as_mut(),
            bias_frozen: false,
            linear: false,
        }
    }
    /// A Linear layer whose weight is held as `[out, in, 1, 1]` (see [`NamedConv::linear`]).
    pub(crate) fn linear(
        key: String,
        weight: &'a mut Param<Tensor<4>>,
        bias: &'a mut Param<Tensor<1>>,
    ) -> Self {
        NamedConv {
            key,
            weight,
            bias: Some(bias),
            bias_frozen: false,
            linear: true,
        }
    }
    /// Mark the layer as followed by an instance norm (see [`NamedConv::bias_frozen`]).
    pub(crate) fn before_norm(mut self) -> Self {
        self.bias_frozen = true;
        self
    }
}

/// A batch norm's parameters and running statistics seen by name (`model.2` holds
/// `weight`, `bias`, `running_mean` and `running_var`).
pub struct NamedNorm<'a> {
    /// The PyTorch state-dict prefix.
    pub key: String,
    /// The layer.
    pub norm: &'a mut BatchNorm,
}

/// A network whose parameters are all convolutions (and batch norms) named as in the PyTorch
/// reference.
pub trait NamedConvs {
    /// Every convolution with its state-dict prefix, in the reference's order.
    fn named_convs(&mut self) -> Vec<NamedConv<'_>>;

    /// Every batch norm with its state-dict prefix (none under instance norm, the default).
    fn named_norms(&mut self) -> Vec<NamedNorm<'_>> {
        Vec::new()
    }

    /// Constant tensors that the reference's state dict holds besides the parameters (the
    /// anti-aliasing filters of CUT's networks), by full key; saved so that PyTorch's strict
    /// `load_state_dict` accepts our files, never loaded. None by default.
    fn buffers(&self) -> Vec<(String, weights::HostTensor)> {
        Vec::new()
    }
}

/// The generator a CycleGAN trains (`--generator`): the ResNet or the U-Net.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // two per run: their size does not matter
pub enum CycleGanGenerator {
    /// `resnet_9blocks`, `resnet_6blocks` (or any `--blocks`).
    Resnet(ResnetGenerator),
    /// `unet_128`, `unet_256`.
    Unet(UnetGenerator),
}

impl CycleGanGenerator {
    /// A generator with zero weights of the architecture `config.arch` names.
    pub fn new(config: &GeneratorConfig, device: &Device) -> Self {
        match config.arch {
            GeneratorArch::Resnet => {
                CycleGanGenerator::Resnet(ResnetGenerator::new(config, device))
            }
            _ => CycleGanGenerator::Unet(UnetGenerator::new(config, device)),
        }
    }

    /// Translate a batch `[B, 3, H, W]` in [-1, 1].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            CycleGanGenerator::Resnet(g) => g.forward(x),
            CycleGanGenerator::Unet(g) => g.forward(x),
        }
    }

    /// Compute the convolutions in `precision`.
    pub fn set_precision(&mut self, precision: precision::Precision) {
        match self {
            CycleGanGenerator::Resnet(g) => g.set_precision(precision),
            CycleGanGenerator::Unet(g) => g.set_precision(precision),
        }
    }

    /// Use other convolution kernels (benchmarks; results agree up to float rounding).
    pub fn set_conv_policy(&mut self, kernels: conv::ConvPolicy) {
        match self {
            CycleGanGenerator::Resnet(g) => g.set_conv_policy(kernels),
            CycleGanGenerator::Unet(g) => g.set_conv_policy(kernels),
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> GeneratorConfig {
        match self {
            CycleGanGenerator::Resnet(g) => g.config(),
            CycleGanGenerator::Unet(g) => g.config(),
        }
    }
}

impl NamedConvs for CycleGanGenerator {
    fn named_convs(&mut self) -> Vec<NamedConv<'_>> {
        match self {
            CycleGanGenerator::Resnet(g) => g.named_convs(),
            CycleGanGenerator::Unet(g) => g.named_convs(),
        }
    }

    fn named_norms(&mut self) -> Vec<NamedNorm<'_>> {
        match self {
            CycleGanGenerator::Resnet(g) => g.named_norms(),
            CycleGanGenerator::Unet(g) => g.named_norms(),
        }
    }
}
