//! The ResNet generator of Johnson et al. 2016 as used by CycleGAN.

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Dropout, DropoutConfig, Initializer, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::tanh;
use serde::{Deserialize, Serialize};

use super::conv::{ConvPolicy, Padding, conv_transpose};
use super::layers::ConvLayer;
use super::norm::{Norm, NormLayer};
use super::precision::Precision;
use super::{NamedConv, NamedConvs, NamedNorm};

/// Padding of the 7x7 first and last layers (`c7s1-k`).
const EDGE_PADDING: Padding = Padding::Reflect(3);
/// Padding of the stride-2 downsampling layers (`dk`).
const DOWN_PADDING: Padding = Padding::Zeros(1);
/// Padding of the residual blocks' 3x3 layers.
const BLOCK_PADDING: Padding = Padding::Reflect(1);

/// Which generator architecture (`--generator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum GeneratorArch {
    /// The ResNet generator ([`ResnetGenerator`]) with `blocks` residual blocks.
    #[default]
    #[serde(rename = "resnet")]
    Resnet,
    /// The U-Net ([`super::UnetGenerator`]) with 7 downsamplings: 128 px inputs reach 1x1.
    #[serde(rename = "unet_128")]
    Unet128,
    /// The U-Net with 8 downsamplings: 256 px inputs reach 1x1.
    #[serde(rename = "unet_256")]
    Unet256,
}

impl GeneratorArch {
    /// Downsamplings of a U-Net, `None` for the ResNet.
    pub fn unet_downs(self) -> Option<usize> {
        match self {
            GeneratorArch::Resnet => None,
            GeneratorArch::Unet128 => Some(7),
            GeneratorArch::Unet256 => Some(8),
        }
    }
}

/// Shape of a generator: a [`ResnetGenerator`] or a [`super::UnetGenerator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratorConfig {
    /// Filters in the first layer (`ngf`); the ResNet's bottleneck has 4x as many.
    pub ngf: usize,
    /// Residual blocks at the bottleneck: 9 for 256 px, 6 for 128 px in the paper (ResNet only).
    pub blocks: usize,
    /// ResNet or U-Net.
    #[serde(default)]
    pub arch: GeneratorArch,
    /// Normalisation layers.
    #[serde(default)]
    pub norm: Norm,
    /// Dropout (p = 0.5) inside the residual blocks, or in the U-Net's innermost 8*ngf levels.
    #[serde(default)]
    pub dropout: bool,
    /// Channels of the input images: 3 (RGB) or 1 (grayscale).
    #[serde(default = "rgb")]
    pub input_nc: usize,
    /// Channels of the output images.
    #[serde(default = "rgb")]
    pub output_nc: usize,
}

/// Three channels: what configs from before `--input-nc`/`--output-nc` had.
pub(super) fn rgb() -> usize {
    3
}

impl GeneratorConfig {
    /// The ResNet generator with `ngf` filters and `blocks` residual blocks, instance norm and
    /// no dropout (the paper's).
    pub fn resnet(ngf: usize, blocks: usize) -> Self {
        GeneratorConfig {
            ngf,
            blocks,
            ..Self::default()
        }
    }
}

impl GeneratorConfig {
    /// The generator of the other direction: input and output channels swapped.
    pub fn reversed(&self) -> Self {
        GeneratorConfig {
            input_nc: self.output_nc,
            output_nc: self.input_nc,
            ..*self
        }
    }

    /// For people: `ResNet generator (9 blocks, ngf 64)`, `U-Net generator (unet_256, ngf 64,
    /// batch norm, dropout)`.
    pub fn describe(&self) -> String {
        let shape = match self.arch {
            GeneratorArch::Resnet => format!("ResNet generator ({} blocks", self.blocks),
            GeneratorArch::Unet128 => "U-Net generator (unet_128".into(),
            GeneratorArch::Unet256 => "U-Net generator (unet_256".into(),
        };
        let mut out = format!("{shape}, ngf {}", self.ngf);
        if self.norm != Norm::Instance {
            out += &format!(", {} norm", self.norm.name());
        }
        if self.dropout {
            out += ", dropout";
        }
        if (self.input_nc, self.output_nc) != (3, 3) {
            out += &format!(", {} -> {} channels", self.input_nc, self.output_nc);
        }
        out + ")"
    }
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            ngf: 64,
            blocks: 9,
            arch: GeneratorArch::Resnet,
            norm: Norm::Instance,
            dropout: false,
            input_nc: 3,
            output_nc: 3,
        }
    }
}

/// A 3x3 convolution with reflection padding followed by a norm, as inside a residual block.
#[derive(Module, Debug)]
struct ReflectConvNorm {
    conv: Conv2d,
    norm: NormLayer,
}

impl ReflectConvNorm {
    fn new(channels: usize, norm: Norm, device: &Device) -> Self {
        ReflectConvNorm {
            conv: conv(channels, channels, 3, 1, 0, norm.conv_bias(), device),
            norm: norm.layer(channels, device),
        }
    }

    fn forward(&self, x: Tensor<4>, kernels: ConvPolicy) -> Tensor<4> {
        self.norm
            .forward(kernels.conv2d(&self.conv, x, BLOCK_PADDING))
    }

    /// `relu(self.forward(x))`, fused where the norm can.
    fn forward_relu(&self, x: Tensor<4>, kernels: ConvPolicy) -> Tensor<4> {
        self.norm
            .forward_relu(kernels.conv2d(&self.conv, x, BLOCK_PADDING))
    }
}

/// `Rk`: two 3x3 convolutions with the input added back (no ReLU after the sum), and dropout
/// between them when asked for.
#[derive(Module, Debug)]
struct ResnetBlock {
    first: ReflectConvNorm,
    dropout: Option<Dropout>,
    second: ReflectConvNorm,
}

impl ResnetBlock {
    fn forward(&self, x: Tensor<4>, kernels: ConvPolicy) -> Tensor<4> {
        let mut y = self.first.forward_relu(x.clone(), kernels);
        if let Some(dropout) = &self.dropout {
            y = dropout.forward(y);
        }
        x + self.second.forward(y, kernels)
    }
}

/// The CycleGAN generator: `c7s1-ngf, d2ngf, d4ngf, R4ngf x blocks, u2ngf, ungf, c7s1-3`, then tanh.
///
/// Input and output are images in [-1, 1], shape `[batch, 3, H, W]`, with H and W multiples of 4.
#[derive(Module, Debug)]
pub struct ResnetGenerator {
    /// `c7s1-ngf`: reflection pad 3, 7x7 convolution, norm, ReLU.
    stem: Conv2d,
    stem_norm: NormLayer,
    /// `dk`: 3x3 stride-2 convolutions halving the size, each with norm and ReLU.
    down: Vec<Conv2d>,
    down_norms: Vec<NormLayer>,
    /// `Rk`: residual blocks at a quarter of the input size.
    blocks: Vec<ResnetBlock>,
    /// `uk`: 3x3 stride-2 transposed convolutions doubling the size, with norm and ReLU.
    up: Vec<ConvTranspose2d>,
    up_norms: Vec<NormLayer>,
    /// `c7s1-3`: reflection pad 3, 7x7 convolution to RGB, tanh.
    head: Conv2d,
    /// Which convolution kernels run (not a parameter; chosen for the device at construction).
    #[module(skip)]
    kernels: ConvPolicy,
    /// The float type of the convolutions (not a parameter; float32 unless set).
    #[module(skip)]
    precision: Precision,
}

impl ResnetGenerator {
    /// A generator with zero weights, convolving with [`ConvPolicy::for_device`]`(device)`; use
    /// [`crate::model::weights::init_normal`] to initialise it.
    ///
    /// `config.arch` is not read: this is the ResNet whatever it says.
    pub fn new(config: &GeneratorConfig, device: &Device) -> Self {
        let ngf = config.ngf;
        let (c1, c2, c4) = (ngf, ngf * 2, ngf * 4);
        let norm = config.norm;
        let bias = norm.conv_bias();
        ResnetGenerator {
            stem: conv(config.input_nc, c1, 7, 1, 0, bias, device),
            stem_norm: norm.layer(c1, device),
            down: vec![
                conv(c1, c2, 3, 2, 1, bias, device),
                conv(c2, c4, 3, 2, 1, bias, device),
            ],
            down_norms: vec![norm.layer(c2, device), norm.layer(c4, device)],
            blocks: (0..config.blocks)
                .map(|_| ResnetBlock {
                    first: ReflectConvNorm::new(c4, norm, device),
                    dropout: config.dropout.then(|| DropoutConfig::new(0.5).init()),
                    second: ReflectConvNorm::new(c4, norm, device),
                })
                .collect(),
            up: vec![up_conv(c4, c2, bias, device), up_conv(c2, c1, bias, device)],
            up_norms: vec![norm.layer(c2, device), norm.layer(c1, device)],
            head: conv(c1, config.output_nc, 7, 1, 0, true, device),
            kernels: ConvPolicy::for_device(device),
            precision: Precision::F32,
        }
    }

    /// The convolution kernels this generator uses.
    pub fn conv_policy(&self) -> ConvPolicy {
        self.kernels
    }

    /// Use other convolution kernels (benchmarks; results agree up to float rounding).
    pub fn set_conv_policy(&mut self, kernels: ConvPolicy) {
        self.kernels = kernels;
    }

    /// Compute the convolutions in `precision` (input and output stay float32).
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    /// Every convolution a `[_, 3, h, w]` input goes through, in order.
    pub fn conv_layers(&self, h: usize, w: usize) -> Vec<ConvLayer> {
        let mut layers = vec![ConvLayer::conv(
            "G stem",
            &self.stem,
            EDGE_PADDING,
            [h, w],
            true,
        )];
        for conv in &self.down {
            let input = layers[layers.len() - 1].output;
            layers.push(ConvLayer::conv("G down", conv, DOWN_PADDING, input, true));
        }
        for block in &self.blocks {
            for conv in [&block.first.conv, &block.second.conv] {
                let input = layers[layers.len() - 1].output;
                layers.push(ConvLayer::conv("G block", conv, BLOCK_PADDING, input, true));
            }
        }
        for conv in &self.up {
            let input = layers[layers.len() - 1].output;
            layers.push(ConvLayer::transposed("G up", conv, input, true));
        }
        let input = layers[layers.len() - 1].output;
        layers.push(ConvLayer::conv(
            "G head",
            &self.head,
            EDGE_PADDING,
            input,
            false,
        ));
        layers
    }

    /// The configuration this generator was built with.
    pub fn config(&self) -> GeneratorConfig {
        let [ngf, input_nc, _, _] = self.stem.weight.dims();
        GeneratorConfig {
            ngf,
            blocks: self.blocks.len(),
            arch: GeneratorArch::Resnet,
            norm: norm_of(&self.stem_norm),
            dropout: self.blocks.iter().any(|b| b.dropout.is_some()),
            input_nc,
            output_nc: self.head.weight.dims()[0],
        }
    }

    /// Translate a batch of images `[batch, 3, H, W]` in [-1, 1]; H and W must be multiples of 4.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let kernels = self.kernels;
        let x = kernels.conv2d(&self.stem, self.precision.enter(x), EDGE_PADDING);
        let mut x = self.stem_norm.forward_relu(x);
        for (conv, norm) in self.down.iter().zip(&self.down_norms) {
            x = norm.forward_relu(kernels.conv2d(conv, x, DOWN_PADDING));
        }
        for block in &self.blocks {
            x = block.forward(x, kernels);
        }
        for (conv, norm) in self.up.iter().zip(&self.up_norms) {
            x = norm.forward_relu(conv_transpose(conv, x));
        }
        self.precision
            .leave(tanh(kernels.conv2d(&self.head, x, EDGE_PADDING)))
    }
}

impl NamedConvs for ResnetGenerator {
    /// Keys of the reference's `nn.Sequential`: pad 0, conv 1, norm 2, relu 3, downsampling convs
    /// at 4 and 7, blocks from 10 (pad, conv 1, norm 2, relu, [dropout,] pad, conv, norm), then
    /// the two transposed convs and the final conv.
    fn named_convs(&mut self) -> Vec<NamedConv<'_>> {
        let n = self.blocks.len();
        // Every convolution but the last feeds a norm.
        let mut out = vec![NamedConv::conv("model.1".into(), &mut self.stem).before_norm()];
        for (i, c) in self.down.iter_mut().enumerate() {
            out.push(NamedConv::conv(format!("model.{}", 4 + 3 * i), c).before_norm());
        }
        for (i, b) in self.blocks.iter_mut().enumerate() {
            let second = block_second_conv(b.dropout.is_some());
            out.push(
                NamedConv::conv(format!("model.{}.conv_block.1", 10 + i), &mut b.first.conv)
                    .before_norm(),
            );
            out.push(
                NamedConv::conv(
                    format!("model.{}.conv_block.{second}", 10 + i),
                    &mut b.second.conv,
                )
                .before_norm(),
            );
        }
        for (i, c) in self.up.iter_mut().enumerate() {
            out.push(NamedConv::transposed(format!("model.{}", 10 + n + 3 * i), c).before_norm());
        }
        out.push(NamedConv::conv(format!("model.{}", 17 + n), &mut self.head));
        out
    }

    /// Each norm sits right after its convolution in the reference's lists.
    fn named_norms(&mut self) -> Vec<NamedNorm<'_>> {
        let n = self.blocks.len();
        let mut layers: Vec<(String, &mut NormLayer)> =
            vec![("model.2".into(), &mut self.stem_norm)];
        for (i, norm) in self.down_norms.iter_mut().enumerate() {
            layers.push((format!("model.{}", 5 + 3 * i), norm));
        }
        for (i, b) in self.blocks.iter_mut().enumerate() {
            let second = block_second_conv(b.dropout.is_some());
            layers.push((format!("model.{}.conv_block.2", 10 + i), &mut b.first.norm));
            let key = format!("model.{}.conv_block.{}", 10 + i, second + 1);
            layers.push((key, &mut b.second.norm));
        }
        for (i, norm) in self.up_norms.iter_mut().enumerate() {
            layers.push((format!("model.{}", 11 + n + 3 * i), norm));
        }
        layers
            .into_iter()
            .filter_map(|(key, norm)| norm.batch_norm_mut().map(|norm| NamedNorm { key, norm }))
            .collect()
    }
}

/// Index of a residual block's second convolution in its `conv_block`: a dropout layer before
/// it shifts it by one.
fn block_second_conv(dropout: bool) -> usize {
    if dropout { 6 } else { 5 }
}

/// The `--norm` a layer was built with.
pub(super) fn norm_of(layer: &NormLayer) -> Norm {
    match layer {
        NormLayer::Instance(_) => Norm::Instance,
        NormLayer::Batch(_) => Norm::Batch,
        NormLayer::Identity(_) => Norm::None,
    }
}

/// A `k`x`k` convolution with zero weights (the layer's own padding is only recorded: the
/// networks pad through [`ConvPolicy::conv2d`]).
pub(super) fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(bias)
        .with_initializer(Initializer::Zeros)
        .init(device)
}

/// `uk`: output_padding 1 so that the size exactly doubles.
fn up_conv(cin: usize, cout: usize, bias: bool, device: &Device) -> ConvTranspose2d {
    ConvTranspose2dConfig::new([cin, cout], [3, 3])
        .with_stride([2, 2])
        .with_padding([1, 1])
        .with_padding_out([1, 1])
        .with_bias(bias)
        .with_initializer(Initializer::Zeros)
        .init(device)
}

pub(super) use conv as conv2d;

/// Instance norm without affine parameters: CUT's networks, which have no `--norm` choice.
pub(super) fn instance_norm(channels: usize, device: &Device) -> burn::nn::InstanceNorm {
    burn::nn::InstanceNormConfig::new(channels)
        .with_affine(false)
        .init(device)
}
