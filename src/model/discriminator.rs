//! The 70x70 PatchGAN discriminator of Isola et al. 2017 as used by CycleGAN, and its 1x1
//! variant, the PixelGAN.

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::leaky_relu;
use burn::tensor::module::conv_transpose2d;
use burn::tensor::ops::ConvTransposeOptions;
use serde::{Deserialize, Serialize};

use super::conv::{ConvPolicy, Padding};
use super::generator::{conv2d, norm_of};
use super::layers::ConvLayer;
use super::norm::{Norm, NormLayer};
use super::precision::Precision;
use super::{NamedConv, NamedConvs, NamedNorm};

/// Which discriminator (`--discriminator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscriminatorKind {
    /// PatchGAN with `layers` stride-2 4x4 layers (`basic` is 3 of them: 70x70 patches).
    #[default]
    NLayers,
    /// PixelGAN: 1x1 convolutions, each pixel judged alone (the reference's `pixel`).
    Pixel,
}

/// Shape of a [`PatchDiscriminator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscriminatorConfig {
    /// Filters in the first layer (`ndf`).
    pub ndf: usize,
    /// Stride-2 layers; 3 gives the 70x70 receptive field of the paper (PatchGAN only).
    pub layers: usize,
    /// PatchGAN or PixelGAN.
    #[serde(default)]
    pub kind: DiscriminatorKind,
    /// Normalisation layers.
    #[serde(default)]
    pub norm: Norm,
    /// Channels of the images it judges: 3 (RGB) or 1 (grayscale). A run derives it from the
    /// generators' channels (`family::cyclegan::discriminator_configs`), so it is not written
    /// to `config.toml`.
    #[serde(default = "super::generator::rgb", skip_serializing)]
    pub input_nc: usize,
}

impl DiscriminatorConfig {
    /// The PatchGAN with `ndf` filters and `layers` stride-2 layers, with instance norm.
    pub fn patch(ndf: usize, layers: usize) -> Self {
        DiscriminatorConfig {
            ndf,
            layers,
            ..Self::default()
        }
    }
}

impl DiscriminatorConfig {
    /// For people: `PatchGAN discriminator (3 layers, ndf 64)`, `PixelGAN discriminator (ndf 64,
    /// batch norm)`.
    pub fn describe(&self) -> String {
        let mut out = match self.kind {
            DiscriminatorKind::NLayers => {
                format!(
                    "PatchGAN discriminator ({} layers, ndf {}",
                    self.layers, self.ndf
                )
            }
            DiscriminatorKind::Pixel => format!("PixelGAN discriminator (ndf {}", self.ndf),
        };
        if self.norm != Norm::Instance {
            out += &format!(", {} norm", self.norm.name());
        }
        out + ")"
    }
}

impl Default for DiscriminatorConfig {
    fn default() -> Self {
        DiscriminatorConfig {
            ndf: 64,
            layers: 3,
            kind: DiscriminatorKind::NLayers,
            norm: Norm::Instance,
            input_nc: 3,
        }
    }
}

/// PatchGAN: `C64` (no norm), then `Ck` layers with a norm, all LeakyReLU(0.2), then a
/// 4x4 convolution to one channel. Each output value judges one overlapping 70x70 patch.
///
/// The PixelGAN is the same network with 1x1 patches: `C64`, `C128` with a norm, then a 1x1
/// convolution to one channel, all stride 1 and unpadded.
#[derive(Module, Debug)]
pub struct PatchDiscriminator {
    /// 4x4 convolutions (1x1 for the PixelGAN); all but the first are followed by a norm, all
    /// but the last by LeakyReLU. The first `layers` have stride 2, the last two stride 1.
    convs: Vec<Conv2d>,
    /// Norms of `convs[1..convs.len()-1]`.
    norms: Vec<NormLayer>,
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
        let (ndf, norm) = (config.ndf, config.norm);
        let bias = norm.conv_bias();
        let (convs, norms) = match config.kind {
            DiscriminatorKind::Pixel => (
                vec![
                    conv2d(config.input_nc, ndf, 1, 1, 0, true, device),
                    conv2d(ndf, 2 * ndf, 1, 1, 0, bias, device),
                    conv2d(2 * ndf, 1, 1, 1, 0, bias, device),
                ],
                vec![norm.layer(2 * ndf, device)],
            ),
            DiscriminatorKind::NLayers => {
                let (mut convs, mut norms) = (Vec::new(), Vec::new());
                for (i, [cin, cout]) in patch_widths(config).into_iter().enumerate() {
                    let stride = if i < config.layers { 2 } else { 1 };
                    // The first layer has no norm, so it keeps its bias.
                    convs.push(conv2d(cin, cout, 4, stride, 1, i == 0 || bias, device));
                    if i > 0 {
                        norms.push(norm.layer(cout, device));
                    }
                }
                let last = convs[convs.len() - 1].weight.dims()[0];
                convs.push(conv2d(last, 1, 4, 1, 1, true, device));
                (convs, norms)
            }
        };
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
            let layer = ConvLayer::conv(role, conv, self.padding(), input, norm);
            input = layer.output;
            layers.push(layer);
        }
        layers
    }

    /// The configuration this discriminator was built with.
    pub fn config(&self) -> DiscriminatorConfig {
        let [ndf, input_nc, _, _] = self.convs[0].weight.dims();
        let (kind, layers) = match self.is_pixel() {
            true => (DiscriminatorKind::Pixel, 0),
            false => (DiscriminatorKind::NLayers, self.convs.len() - 2),
        };
        DiscriminatorConfig {
            ndf,
            layers,
            kind,
            norm: norm_of(&self.norms[0]),
            input_nc,
        }
    }

    /// The PixelGAN (1x1 kernels) rather than a PatchGAN.
    fn is_pixel(&self) -> bool {
        self.convs[0].weight.dims()[2] == 1
    }

    /// Every layer's padding: 1 around the 4x4 kernels, none for the 1x1.
    fn padding(&self) -> Padding {
        Padding::Zeros(if self.is_pixel() { 0 } else { 1 })
    }

    /// Score a batch of images `[batch, 3, H, W]` in [-1, 1]: a map `[batch, 1, h, w]` of
    /// real-vs-fake logits, one per patch.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let last = self.convs.len() - 1;
        let padding = self.padding();
        let conv = |i: usize, x| self.kernels.conv2d(&self.convs[i], x, padding);
        let mut x = leaky_relu(conv(0, self.precision.enter(x)), 0.2);
        for (i, norm) in (1..last).zip(&self.norms) {
            x = norm.forward_leaky_relu(conv(i, x), 0.2);
        }
        self.precision.leave(conv(last, x))
    }

    /// The gradient of `forward(x).sum()` with respect to `x`, as WGAN-GP's penalty needs it.
    ///
    /// burn has no double backward (autodiff cannot differentiate its own gradients), so the
    /// backward pass is written out here in tensor operations, which autodiff then
    /// differentiates like any other: each convolution's input gradient is a transposed
    /// convolution with the same weight, each LeakyReLU multiplies by its slope (1 or 0.2, a
    /// constant where it is differentiable), and each instance norm by its own derivative.
    ///
    /// Batch norm is not written out (its statistics mix the batch's images, which WGAN-GP's
    /// per-image penalty should not see): `TrainConfig::validate` refuses that combination.
    pub fn input_gradient(&self, x: Tensor<4>) -> Tensor<4> {
        assert!(
            !self.norms.iter().any(|n| matches!(n, NormLayer::Batch(_))),
            "input_gradient: batch norm is not supported"
        );
        let last = self.convs.len() - 1;
        let padding = self.padding();
        // Forward, keeping what the backward pass reads: the input size of every convolution,
        // the slopes of every LeakyReLU and the normalised values and deviations of every norm.
        let mut sizes = Vec::with_capacity(last + 1);
        let mut slopes = Vec::with_capacity(last);
        let mut norms = Vec::with_capacity(last);
        let mut h = x;
        for i in 0..last {
            let [_, _, hh, ww] = h.dims();
            sizes.push([hh, ww]);
            let mut a = self.kernels.conv2d(&self.convs[i], h, padding);
            let mut normed = None;
            if i > 0
                && let Some(eps) = self.norms[i - 1].epsilon()
            {
                let (y, std) = instance_norm_parts(a, eps);
                normed = Some((y.clone(), std));
                a = y;
            }
            let slope = a
                .clone()
                .greater_elem(0.0)
                .float()
                .mul_scalar(0.8)
                .add_scalar(0.2);
            h = a * slope.clone();
            slopes.push(slope);
            norms.push(normed);
        }
        let [b, _, hh, ww] = h.dims();
        sizes.push([hh, ww]);
        // Backward from d(sum)/d(output) = 1, of the last convolution's output size.
        let [_, _, k, _] = self.convs[last].weight.dims();
        let out = |n: usize| n + 2 * padding.amount() + 1 - k;
        let mut g = Tensor::ones([b, 1, out(hh), out(ww)], &h.device());
        for i in (0..=last).rev() {
            g = conv_input_gradient(&self.convs[i], g, sizes[i], padding);
            if i == 0 {
                break;
            }
            g = g * slopes[i - 1].clone();
            if let Some((y, std)) = &norms[i - 1] {
                g = instance_norm_input_gradient(g, y.clone(), std.clone());
            }
        }
        g
    }
}

/// The PatchGAN's channels, `[in, out]` of each 4x4 convolution before the 1-channel output:
/// `layers` stride-2 ones (stride-1 then blur in CUT's) and one stride-1, the filters doubling
/// from `ndf` per layer up to 8 `ndf`.
pub(crate) fn patch_widths(config: &DiscriminatorConfig) -> Vec<[usize; 2]> {
    let width = |n: usize| config.ndf * (1usize << n.min(3));
    (0..=config.layers)
        .map(|n| match n {
            0 => [config.input_nc, config.ndf],
            _ => [width(n - 1), width(n)],
        })
        .collect()
}

/// Instance norm without affine parameters, returning the normalised values and the
/// per-channel deviation `sqrt(var + eps)` (biased variance, as PyTorch and burn).
fn instance_norm_parts(a: Tensor<4>, eps: f64) -> (Tensor<4>, Tensor<4>) {
    let mean = a.clone().mean_dim(2).mean_dim(3);
    let centred = a - mean;
    let var = centred.clone().square().mean_dim(2).mean_dim(3);
    let std = var.add_scalar(eps).sqrt();
    (centred / std.clone(), std)
}

/// Gradient through instance norm: `(g - mean(g) - y * mean(g * y)) / std` per channel.
fn instance_norm_input_gradient(g: Tensor<4>, y: Tensor<4>, std: Tensor<4>) -> Tensor<4> {
    let mean_g = g.clone().mean_dim(2).mean_dim(3);
    let mean_gy = (g.clone() * y.clone()).mean_dim(2).mean_dim(3);
    (g - mean_g - y * mean_gy) / std
}

/// Gradient of a zero-padded convolution's output `g` with respect to its `input`-sized input:
/// the transposed convolution with the same weight, with output padding making up the rows
/// and columns a stride-2 layer's last window skipped.
fn conv_input_gradient(
    conv: &Conv2d,
    g: Tensor<4>,
    input: [usize; 2],
    padding: Padding,
) -> Tensor<4> {
    let [_, _, k, _] = conv.weight.dims();
    let (s, p) = (conv.stride[0], padding.amount());
    let [_, _, gh, gw] = g.dims();
    let extra = |n: usize, o: usize| n + 2 * p - ((o - 1) * s + k);
    let options = ConvTransposeOptions::new(
        [s, s],
        [p, p],
        [extra(input[0], gh), extra(input[1], gw)],
        [1, 1],
        1,
    );
    conv_transpose2d(g, conv.weight.val(), None, options)
}

impl NamedConvs for PatchDiscriminator {
    /// Keys of the reference's `nn.Sequential` (`model` for the PatchGAN, `net` for the
    /// PixelGAN): conv 0, LeakyReLU 1, then conv-norm-LeakyReLU triples from 2, then the final
    /// conv.
    fn named_convs(&mut self) -> Vec<NamedConv<'_>> {
        let last = self.convs.len() - 1;
        let prefix = self.key_prefix();
        self.convs
            .iter_mut()
            .enumerate()
            .map(|(i, c)| {
                let named = NamedConv::conv(format!("{prefix}.{}", conv_index(i)), c);
                // All but the first and the last feed a norm.
                if i == 0 || i == last {
                    named
                } else {
                    named.before_norm()
                }
            })
            .collect()
    }

    fn named_norms(&mut self) -> Vec<NamedNorm<'_>> {
        let prefix = self.key_prefix();
        self.norms
            .iter_mut()
            .enumerate()
            .filter_map(|(i, n)| {
                let key = format!("{prefix}.{}", conv_index(i + 1) + 1);
                n.batch_norm_mut().map(|norm| NamedNorm { key, norm })
            })
            .collect()
    }
}

impl PatchDiscriminator {
    fn key_prefix(&self) -> &'static str {
        if self.is_pixel() { "net" } else { "model" }
    }
}

/// Index of convolution `i` in the reference's `nn.Sequential`.
fn conv_index(i: usize) -> usize {
    if i == 0 { 0 } else { 2 + 3 * (i - 1) }
}
