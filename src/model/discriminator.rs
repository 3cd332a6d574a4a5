//! The 70x70 PatchGAN discriminator of Isola et al. 2017 as used by CycleGAN.

use burn::nn::InstanceNorm;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::leaky_relu;
use serde::{Deserialize, Serialize};

use super::conv::{ConvPolicy, Padding};
use super::generator::{conv2d, instance_norm};
use super::layers::ConvLayer;
use super::precision::{self, Precision};
use super::{NamedConv, NamedConvs};

/// Every layer's padding.
const PADDING: Padding = Padding::Zeros(1);

/// Shape of a [`PatchDiscriminator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscriminatorConfig {
    /// Filters in the first layer (`ndf`).
    pub ndf: usize,
    /// Stride-2 layers; 3 gives the 70x70 receptive field of the paper.
    pub layers: usize,
}

impl Default for DiscriminatorConfig {
    fn default() -> Self {
        DiscriminatorConfig { ndf: 64, layers: 3 }
    }
}

/// PatchGAN: `C64` (no norm), then `Ck` layers with instance norm, all LeakyReLU(0.2), then a
/// 4x4 convolution to one channel. Each output value judges one overlapping 70x70 patch.
#[derive(Module, Debug)]
pub struct PatchDiscriminator {
    /// 4x4 convolutions; all but the first are followed by instance norm, all but the last by
    /// LeakyReLU. The first `layers` have stride 2, the last two stride 1.
    convs: Vec<Conv2d>,
    /// Norms of `convs[1..convs.len()-1]`.
    norms: Vec<InstanceNorm>,
    /// Which convolution kernels run (not a parameter; chosen for the device at construction).
    #[module(skip)]
    kernels: ConvPolicy,
    /// The float type of the convolutions (not a parameter; float32 unless set).
    #[module(skip)]
    precision: Precision,
}

impl PatchDiscriminator {
    /// A discriminator with zero weights, convolving with [`ConvPolicy::for_device`]`(device)`;
    /// use [`crate::model::weights::init_normal`] to initialise it.
    pub fn new(config: &DiscriminatorConfig, device: &Device) -> Self {
        let ndf = config.ndf;
        // Filters double per layer, capped at 8 * ndf.
        let width = |n: usize| ndf * (1usize << n.min(3));
        let mut convs = vec![conv2d(3, ndf, 4, 2, 1, device)];
        let mut norms = Vec::new();
        for n in 1..config.layers {
            convs.push(conv2d(width(n - 1), width(n), 4, 2, 1, device));
            norms.push(instance_norm(width(n), device));
        }
        let last = width(config.layers);
        convs.push(conv2d(width(config.layers - 1), last, 4, 1, 1, device));
        norms.push(instance_norm(last, device));
        convs.push(conv2d(last, 1, 4, 1, 1, device));
        PatchDiscriminator {
            convs,
            norms,
            kernels: ConvPolicy::for_device(device),
            precision: Precision::F32,
        }
    }

    /// Compute the convolutions in `precision` (input and output stay float32).
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    /// The convolution kernels this discriminator uses.
    pub fn conv_policy(&self) -> ConvPolicy {
        self.kernels
    }

    /// Use other convolution kernels (benchmarks; results agree up to float rounding).
    pub fn set_conv_policy(&mut self, kernels: ConvPolicy) {
        self.kernels = kernels;
    }

    /// Every convolution a `[_, 3, h, w]` input goes through, in order.
    pub fn conv_layers(&self, h: usize, w: usize) -> Vec<ConvLayer> {
        let last = self.convs.len() - 1;
        let mut input = [h, w];
        let mut layers = Vec::with_capacity(self.convs.len());
        for (i, conv) in self.convs.iter().enumerate() {
            let role = match i {
                0 => "D first",
                _ if i == last => "D out",
                _ if conv.stride[0] == 1 => "D stride 1",
                _ => "D down",
            };
            let norm = i != 0 && i != last;
            let layer = ConvLayer::conv(role, conv, PADDING, input, norm);
            input = layer.output;
            layers.push(layer);
        }
        layers
    }

    /// The configuration this discriminator was built with.
    pub fn config(&self) -> DiscriminatorConfig {
        let [ndf, _, _, _] = self.convs[0].weight.dims();
        DiscriminatorConfig {
            ndf,
            layers: self.convs.len() - 2,
        }
    }

    /// Score a batch of images `[batch, 3, H, W]` in [-1, 1]: a map `[batch, 1, h, w]` of
    /// real-vs-fake logits, one per patch.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let last = self.convs.len() - 1;
        let conv = |i: usize, x| self.kernels.conv2d(&self.convs[i], x, PADDING);
        let mut x = leaky_relu(conv(0, self.precision.enter(x)), 0.2);
        for (i, norm) in (1..last).zip(&self.norms) {
            x = leaky_relu(precision::instance_norm(norm, conv(i, x)), 0.2);
        }
        precision::leave(conv(last, x))
    }
}

impl NamedConvs for PatchDiscriminator {
    /// Keys of the reference's `nn.Sequential`: conv 0, LeakyReLU 1, then conv-norm-LeakyReLU
    /// triples from 2, then the final conv.
    fn named_convs(&mut self) -> Vec<NamedConv<'_>> {
        let last = self.convs.len() - 1;
        self.convs
            .iter_mut()
            .enumerate()
            .map(|(i, c)| {
                let index = if i == 0 { 0 } else { 2 + 3 * (i - 1) };
                let named = NamedConv::conv(format!("model.{index}"), c);
                // All but the first and the last feed an instance norm.
                if i == 0 || i == last {
                    named
                } else {
                    named.before_norm()
                }
            })
            .collect()
    }
}
