//! The ResNet generator of Johnson et al. 2016 as used by CycleGAN.

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Initializer, InstanceNorm, InstanceNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{relu, tanh};
use serde::{Deserialize, Serialize};

use super::conv::{ConvPolicy, Padding, conv_transpose};
use super::layers::ConvLayer;
use super::precision::{self, Precision};
use super::{NamedConv, NamedConvs};

/// Padding of the 7x7 first and last layers (`c7s1-k`).
const EDGE_PADDING: Padding = Padding::Reflect(3);
/// Padding of the stride-2 downsampling layers (`dk`).
const DOWN_PADDING: Padding = Padding::Zeros(1);
/// Padding of the residual blocks' 3x3 layers.
const BLOCK_PADDING: Padding = Padding::Reflect(1);

/// Shape of a [`ResnetGenerator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratorConfig {
    /// Filters in the first layer (`ngf`); the bottleneck has 4x as many.
    pub ngf: usize,
    /// Residual blocks at the bottleneck: 9 for 256 px, 6 for 128 px in the paper.
    pub blocks: usize,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig { ngf: 64, blocks: 9 }
    }
}

/// A 3x3 convolution with reflection padding followed by instance norm, as inside a residual block.
#[derive(Module, Debug)]
struct ReflectConvNorm {
    conv: Conv2d,
    norm: InstanceNorm,
}

impl ReflectConvNorm {
    fn new(channels: usize, device: &Device) -> Self {
        ReflectConvNorm {
            conv: conv(channels, channels, 3, 1, 0, device),
            norm: norm(channels, device),
        }
    }

    fn forward(&self, x: Tensor<4>, kernels: ConvPolicy) -> Tensor<4> {
        precision::instance_norm(&self.norm, kernels.conv2d(&self.conv, x, BLOCK_PADDING))
    }
}

/// `Rk`: two 3x3 convolutions with the input added back (no ReLU after the sum).
#[derive(Module, Debug)]
struct ResnetBlock {
    first: ReflectConvNorm,
    second: ReflectConvNorm,
}

impl ResnetBlock {
    fn forward(&self, x: Tensor<4>, kernels: ConvPolicy) -> Tensor<4> {
        let y = self
            .second
            .forward(relu(self.first.forward(x.clone(), kernels)), kernels);
        x + y
    }
}

/// The CycleGAN generator: `c7s1-ngf, d2ngf, d4ngf, R4ngf x blocks, u2ngf, ungf, c7s1-3`, then tanh.
///
/// Input and output are images in [-1, 1], shape `[batch, 3, H, W]`, with H and W multiples of 4.
#[derive(Module, Debug)]
pub struct ResnetGenerator {
    /// `c7s1-ngf`: reflection pad 3, 7x7 convolution, instance norm, ReLU.
    stem: Conv2d,
    stem_norm: InstanceNorm,
    /// `dk`: 3x3 stride-2 convolutions halving the size, each with instance norm and ReLU.
    down: Vec<Conv2d>,
    down_norms: Vec<InstanceNorm>,
    /// `Rk`: residual blocks at a quarter of the input size.
    blocks: Vec<ResnetBlock>,
    /// `uk`: 3x3 stride-2 transposed convolutions doubling the size, with norm and ReLU.
    up: Vec<ConvTranspose2d>,
    up_norms: Vec<InstanceNorm>,
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
    pub fn new(config: &GeneratorConfig, device: &Device) -> Self {
        let ngf = config.ngf;
        let (c1, c2, c4) = (ngf, ngf * 2, ngf * 4);
        ResnetGenerator {
            stem: conv(3, c1, 7, 1, 0, device),
            stem_norm: norm(c1, device),
            down: vec![conv(c1, c2, 3, 2, 1, device), conv(c2, c4, 3, 2, 1, device)],
            down_norms: vec![norm(c2, device), norm(c4, device)],
            blocks: (0..config.blocks)
                .map(|_| ResnetBlock {
                    first: ReflectConvNorm::new(c4, device),
                    second: ReflectConvNorm::new(c4, device),
                })
                .collect(),
            up: vec![up_conv(c4, c2, device), up_conv(c2, c1, device)],
            up_norms: vec![norm(c2, device), norm(c1, device)],
            head: conv(c1, 3, 7, 1, 0, device),
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
        let [ngf, _, _, _] = self.stem.weight.dims();
        GeneratorConfig {
            ngf,
            blocks: self.blocks.len(),
        }
    }

    /// Translate a batch of images `[batch, 3, H, W]` in [-1, 1]; H and W must be multiples of 4.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let kernels = self.kernels;
        let x = kernels.conv2d(&self.stem, self.precision.enter(x), EDGE_PADDING);
        let mut x = relu(precision::instance_norm(&self.stem_norm, x));
        for (conv, norm) in self.down.iter().zip(&self.down_norms) {
            let y = kernels.conv2d(conv, x, DOWN_PADDING);
            x = relu(precision::instance_norm(norm, y));
        }
        for block in &self.blocks {
            x = block.forward(x, kernels);
        }
        for (conv, norm) in self.up.iter().zip(&self.up_norms) {
            x = relu(precision::instance_norm(norm, conv_transpose(conv, x)));
        }
        self.precision
            .leave(tanh(kernels.conv2d(&self.head, x, EDGE_PADDING)))
    }
}

impl NamedConvs for ResnetGenerator {
    /// Keys of the reference's `nn.Sequential`: pad 0, conv 1, norm 2, relu 3, downsampling convs
    /// at 4 and 7, blocks from 10, then the two transposed convs and the final conv.
    fn named_convs(&mut self) -> Vec<NamedConv<'_>> {
        let n = self.blocks.len();
        // Every convolution but the last feeds an instance norm.
        let mut out = vec![NamedConv::conv("model.1".into(), &mut self.stem).before_norm()];
        for (i, c) in self.down.iter_mut().enumerate() {
            out.push(NamedConv::conv(format!("model.{}", 4 + 3 * i), c).before_norm());
        }
        for (i, b) in self.blocks.iter_mut().enumerate() {
            out.push(
                NamedConv::conv(format!("model.{}.conv_block.1", 10 + i), &mut b.first.conv)
                    .before_norm(),
            );
            out.push(
                NamedConv::conv(format!("model.{}.conv_block.5", 10 + i), &mut b.second.conv)
                    .before_norm(),
            );
        }
        for (i, c) in self.up.iter_mut().enumerate() {
            out.push(NamedConv::transposed(format!("model.{}", 10 + n + 3 * i), c).before_norm());
        }
        out.push(NamedConv::conv(format!("model.{}", 17 + n), &mut self.head));
        out
    }
}

pub(super) fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_initializer(Initializer::Zeros)
        .init(device)
}

/// `uk`: output_padding 1 so that the size exactly doubles.
fn up_conv(cin: usize, cout: usize, device: &Device) -> ConvTranspose2d {
    ConvTranspose2dConfig::new([cin, cout], [3, 3])
        .with_stride([2, 2])
        .with_padding([1, 1])
        .with_padding_out([1, 1])
        .with_initializer(Initializer::Zeros)
        .init(device)
}

pub(super) fn norm(channels: usize, device: &Device) -> InstanceNorm {
    InstanceNormConfig::new(channels)
        .with_affine(false)
        .init(device)
}

pub(super) use {conv as conv2d, norm as instance_norm};
