//! The U-Net generator of pix2pix (Isola et al. 2017), as the CycleGAN reference offers it
//! (`--generator unet_128|unet_256`).
//!
//! An encoder of 4x4 stride-2 convolutions halves the picture `downs` times (7 or 8: a 128 or
//! 256 px input reaches 1x1), a decoder of 4x4 stride-2 transposed convolutions doubles it
//! back, and each decoder level also sees the encoder's features of its size (the skip
//! connections): `C64-C128-C256-C512-C512-...` down, the mirror image up, tanh at the end.
//!
//! The reference builds it as nested `UnetSkipConnectionBlock`s, outermost first; each level
//! here is one block, and the state-dict keys are the nested ones (`model.model.0`,
//! `model.model.1.model.1`, `model.model.1.model.3.model.1`, ...).

use burn::nn::conv::{Conv2d, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Dropout, DropoutConfig, Initializer};
use burn::prelude::*;
use burn::tensor::activation::{leaky_relu, relu, tanh};

use super::conv::{ConvPolicy, Padding, conv_transpose};
use super::generator::{conv2d, norm_of};
use super::norm::NormLayer;
use super::precision::Precision;
use super::{GeneratorArch, GeneratorConfig, NamedConv, NamedConvs, NamedNorm};

/// Padding of every encoder convolution.
const DOWN_PADDING: Padding = Padding::Zeros(1);

/// One level of the U-Net (one `UnetSkipConnectionBlock`): its encoder step and its decoder
/// step.
#[derive(Module, Debug)]
struct UnetLevel {
    /// 4x4 stride-2 convolution; LeakyReLU(0.2) before it except at the outermost level.
    down: Conv2d,
    /// Norm after `down`, except at the outermost and innermost levels.
    down_norm: Option<NormLayer>,
    /// 4x4 stride-2 transposed convolution, ReLU before it.
    up: ConvTranspose2d,
    /// Norm after `up`, except at the outermost level (which ends in tanh).
    up_norm: Option<NormLayer>,
    /// Dropout after the norm, on the 8*ngf levels between the three widening ones and the
    /// innermost, when `--dropout` is on.
    dropout: Option<Dropout>,
}

/// The U-Net generator: images `[batch, 3, H, W]` in [-1, 1], H and W multiples of
/// 2^`downs` (128 for unet_128, 256 for unet_256).
#[derive(Module, Debug)]
pub struct UnetGenerator {
    /// Outermost level first.
    levels: Vec<UnetLevel>,
    /// Which convolution kernels run (not a parameter; chosen for the device at construction).
    #[module(skip)]
    kernels: ConvPolicy,
    /// The float type of the convolutions (not a parameter; float32 unless set).
    #[module(skip)]
    precision: Precision,
}

impl UnetGenerator {
    /// A U-Net with zero weights for `config` (its `arch` must be a U-Net; `blocks` is not
    /// read).
    pub fn new(config: &GeneratorConfig, device: &Device) -> Self {
        let downs = config
            .arch
            .unet_downs()
            .expect("UnetGenerator::new needs a U-Net architecture");
        let (ngf, norm) = (config.ngf, config.norm);
        let bias = norm.conv_bias();
        // Channels inside level i (its encoder's output): ngf, 2 ngf, 4 ngf, then 8 ngf.
        let inner = |i: usize| ngf << i.min(3);
        let levels = (0..downs)
            .map(|i| {
                let (outermost, innermost) = (i == 0, i == downs - 1);
                let outer = if outermost {
                    config.output_nc
                } else {
                    inner(i - 1)
                };
                let down_in = if outermost { config.input_nc } else { outer };
                let up_in = if innermost { inner(i) } else { 2 * inner(i) };
                UnetLevel {
                    down: conv2d(down_in, inner(i), 4, 2, 1, bias, device),
                    down_norm: (!outermost && !innermost).then(|| norm.layer(inner(i), device)),
                    // The outermost transposed convolution always has a bias (no norm follows).
                    up: up_conv(up_in, outer, outermost || bias, device),
                    up_norm: (!outermost).then(|| norm.layer(outer, device)),
                    dropout: (config.dropout && i >= 4 && !innermost)
                        .then(|| DropoutConfig::new(0.5).init()),
                }
            })
            .collect();
        UnetGenerator {
            levels,
            kernels: ConvPolicy::for_device(device),
            precision: Precision::F32,
        }
    }

    /// Compute the convolutions in `precision` (input and output stay float32).
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    /// Use other convolution kernels (benchmarks; results agree up to float rounding).
    pub fn set_conv_policy(&mut self, kernels: ConvPolicy) {
        self.kernels = kernels;
    }

    /// Input sides must be multiples of this: 2^downs.
    pub fn size_multiple(&self) -> usize {
        1 << self.levels.len()
    }

    /// The configuration this generator was built with.
    pub fn config(&self) -> GeneratorConfig {
        let [ngf, input_nc, _, _] = self.levels[0].down.weight.dims();
        let arch = match self.levels.len() {
            7 => GeneratorArch::Unet128,
            _ => GeneratorArch::Unet256,
        };
        let norm = self.levels[1]
            .up_norm
            .as_ref()
            .map(norm_of)
            .unwrap_or_default();
        GeneratorConfig {
            ngf,
            blocks: 0,
            arch,
            norm,
            dropout: self.levels.iter().any(|l| l.dropout.is_some()),
            input_nc,
            // Transposed weights are [in, out, k, k].
            output_nc: self.levels[0].up.weight.dims()[1],
        }
    }

    /// Translate a batch of images `[batch, 3, H, W]` in [-1, 1].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let kernels = self.kernels;
        // Encoder, keeping each level's input for its skip connection.
        let mut skips = Vec::with_capacity(self.levels.len());
        let mut h = self.precision.enter(x);
        for (i, level) in self.levels.iter().enumerate() {
            if i > 0 {
                skips.push(h.clone());
                h = leaky_relu(h, 0.2);
            }
            h = kernels.conv2d(&level.down, h, DOWN_PADDING);
            if let Some(norm) = &level.down_norm {
                h = norm.forward(h);
            }
        }
        // Decoder, innermost first: each level's output is its input beside its decoding.
        for level in self.levels.iter().rev() {
            let mut u = conv_transpose(&level.up, relu(h));
            if let Some(norm) = &level.up_norm {
                u = norm.forward(u);
            }
            if let Some(dropout) = &level.dropout {
                u = dropout.forward(u);
            }
            match skips.pop() {
                Some(skip) => h = Tensor::cat(vec![skip, u], 1),
                None => return self.precision.leave(tanh(u)),
            }
        }
        unreachable!("the outermost level returns")
    }

    /// The state-dict prefix of level `i`: `model.model` for the outermost, then one `.1.model`
    /// (the outermost's submodule) and a `.3.model` per level further in.
    pub fn level_prefix(i: usize) -> String {
        let mut key = "model.model".to_string();
        for depth in 1..=i {
            key.push_str(if depth == 1 { ".1.model" } else { ".3.model" });
        }
        key
    }

    /// Indices of (down conv, down norm, up conv, up norm) in level `i`'s `nn.Sequential`:
    /// `[down, sub, relu, up, tanh]` outermost, `[lrelu, down, relu, up, norm]` innermost,
    /// `[lrelu, down, norm, sub, relu, up, norm(, dropout)]` between.
    fn indices(&self, i: usize) -> (usize, usize, usize, usize) {
        match i {
            0 => (0, 0, 3, 0),
            _ if i == self.levels.len() - 1 => (1, 0, 3, 4),
            _ => (1, 2, 5, 6),
        }
    }
}

impl NamedConvs for UnetGenerator {
    /// In the reference's order: the encoder outermost first, then the decoder innermost first.
    fn named_convs(&mut self) -> Vec<NamedConv<'_>> {
        let keys: Vec<(String, String)> = (0..self.levels.len())
            .map(|i| {
                let (down, _, up, _) = self.indices(i);
                let p = Self::level_prefix(i);
                (format!("{p}.{down}"), format!("{p}.{up}"))
            })
            .collect();
        let mut downs = Vec::new();
        let mut ups = Vec::new();
        for (level, (down, up)) in self.levels.iter_mut().zip(keys) {
            let named = NamedConv::conv(down, &mut level.down);
            downs.push(match level.down_norm {
                Some(_) => named.before_norm(),
                None => named,
            });
            let named = NamedConv::transposed(up, &mut level.up);
            ups.push(match level.up_norm {
                Some(_) => named.before_norm(),
                None => named,
            });
        }
        downs.extend(ups.into_iter().rev());
        downs
    }

    fn named_norms(&mut self) -> Vec<NamedNorm<'_>> {
        let keys: Vec<(usize, usize)> = (0..self.levels.len())
            .map(|i| {
                let (_, down_norm, _, up_norm) = self.indices(i);
                (down_norm, up_norm)
            })
            .collect();
        let mut out = Vec::new();
        for (i, (level, (down, up))) in self.levels.iter_mut().zip(keys).enumerate() {
            let p = Self::level_prefix(i);
            for (index, norm) in [(down, &mut level.down_norm), (up, &mut level.up_norm)] {
                if let Some(bn) = norm.as_mut().and_then(NormLayer::batch_norm_mut) {
                    out.push(NamedNorm {
                        key: format!("{p}.{index}"),
                        norm: bn,
                    });
                }
            }
        }
        out
    }
}

/// A 4x4 stride-2 transposed convolution: exactly doubles the size.
fn up_conv(cin: usize, cout: usize, bias: bool, device: &Device) -> ConvTranspose2d {
    ConvTranspose2dConfig::new([cin, cout], [4, 4])
        .with_stride([2, 2])
        .with_padding([1, 1])
        .with_bias(bias)
        .with_initializer(Initializer::Zeros)
        .init(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference's nested keys and shapes for unet_128 at ngf 4 (from its
    /// `UnetSkipConnectionBlock` layout: the outermost's down conv has no norm, the innermost
    /// has no down norm, biases only under instance norm and at the outermost up conv).
    #[test]
    fn keys_follow_the_nested_blocks() {
        let device = Device::flex();
        let config = GeneratorConfig {
            ngf: 4,
            blocks: 0,
            arch: GeneratorArch::Unet128,
            ..GeneratorConfig::default()
        };
        let mut g = UnetGenerator::new(&config, &device);
        let shapes: Vec<(String, Vec<usize>, bool)> = g
            .named_convs()
            .into_iter()
            .map(|c| (c.key, c.weight.dims().to_vec(), c.bias.is_some()))
            .collect();
        assert_eq!(shapes.len(), 14);
        assert_eq!(shapes[0], ("model.model.0".into(), vec![4, 3, 4, 4], true));
        assert_eq!(
            shapes[1],
            ("model.model.1.model.1".into(), vec![8, 4, 4, 4], true)
        );
        let innermost = "model.model.1.model.3.model.3.model.3.model.3.model.3.model";
        assert_eq!(
            shapes[6],
            (format!("{innermost}.1"), vec![32, 32, 4, 4], true)
        );
        assert_eq!(
            shapes[7],
            (format!("{innermost}.3"), vec![32, 32, 4, 4], true)
        );
        // The outermost transposed convolution: [in, out, k, k] from 2 ngf to RGB.
        assert_eq!(shapes[13], ("model.model.3".into(), vec![8, 3, 4, 4], true));
        assert_eq!(g.config(), config);
    }

    /// Sizes halve to 1x1 and come back; batch norm gives the reference's norm keys.
    #[test]
    fn forward_keeps_the_size_and_batch_norm_is_named() {
        let device = Device::flex();
        let config = GeneratorConfig {
            ngf: 2,
            blocks: 0,
            arch: GeneratorArch::Unet128,
            norm: super::super::norm::Norm::Batch,
            dropout: true,
            ..GeneratorConfig::default()
        };
        let mut g = UnetGenerator::new(&config, &device);
        let y = g.forward(Tensor::zeros([1, 3, 128, 128], &device));
        assert_eq!(y.dims(), [1, 3, 128, 128]);
        let norms: Vec<String> = g.named_norms().into_iter().map(|n| n.key).collect();
        // Five middle levels with two norms each, the innermost's up norm.
        assert_eq!(norms.len(), 11);
        assert_eq!(norms[0], "model.model.1.model.2");
        assert_eq!(norms[1], "model.model.1.model.6");
        // No biases before batch norm, except the outermost up conv.
        let biased: Vec<String> = g
            .named_convs()
            .into_iter()
            .filter(|c| c.bias.is_some())
            .map(|c| c.key)
            .collect();
        assert_eq!(biased, ["model.model.3"]);
        assert_eq!(g.config(), config);
    }
}
