//! The networks' convolutions described as data: kind, kernel, stride, channels and sizes, for
//! counting work (`cyclegan bench`'s FLOP figures) and timing layers alone (its op profile).
//!
//! The lists come from the networks themselves (`ResnetGenerator::conv_layers`,
//! `PatchDiscriminator::conv_layers`), read from their layers' weights and strides and the
//! paddings their `forward` uses, so they cannot drift from the architecture.

use burn::nn::conv::{Conv2d, ConvTranspose2d};

use super::conv::Padding;

/// One convolution of a network at a given input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvLayer {
    /// Which network and layer, for people: `G stem`, `G block`, `D out`, ...
    pub role: &'static str,
    /// A transposed (fractionally strided) convolution.
    pub transposed: bool,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel side (the kernels are square).
    pub kernel: usize,
    /// Stride (the same along both axes).
    pub stride: usize,
    /// Padding of the input. For a transposed convolution, `Zeros(p)` is its `padding`
    /// (which crops `p` from each side of the output) and [`ConvLayer::output`] includes its
    /// output padding.
    pub padding: Padding,
    /// Input height and width, before padding.
    pub input: [usize; 2],
    /// Output height and width.
    pub output: [usize; 2],
    /// An instance norm follows.
    pub norm: bool,
}

impl ConvLayer {
    /// `conv` applied to an `input`-sized picture padded by `padding`.
    pub(crate) fn conv(
        role: &'static str,
        conv: &Conv2d,
        padding: Padding,
        input: [usize; 2],
        norm: bool,
    ) -> Self {
        let [out_channels, in_channels, kernel, _] = conv.weight.dims();
        let stride = conv.stride[0];
        let p = padding.amount();
        let out = |i: usize| (i + 2 * p - kernel) / stride + 1;
        ConvLayer {
            role,
            transposed: false,
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            input,
            output: input.map(out),
            norm,
        }
    }

    /// `conv` (transposed) applied to an `input`-sized picture.
    pub(crate) fn transposed(
        role: &'static str,
        conv: &ConvTranspose2d,
        input: [usize; 2],
        norm: bool,
    ) -> Self {
        // PyTorch's layout for transposed weights: [in, out, kh, kw].
        let [in_channels, out_channels, kernel, _] = conv.weight.dims();
        let (stride, p, extra) = (conv.stride[0], conv.padding[0], conv.padding_out[0]);
        let out = |i: usize| (i - 1) * stride + kernel + extra - 2 * p;
        ConvLayer {
            role,
            transposed: true,
            in_channels,
            out_channels,
            kernel,
            stride,
            padding: Padding::Zeros(p),
            input,
            output: input.map(out),
            norm,
        }
    }

    /// Floating-point operations of the forward pass (multiply-adds counted as two). A
    /// transposed convolution does the work of the convolution it transposes: one kernel
    /// application per input pixel.
    pub fn flop(&self) -> f64 {
        let [h, w] = if self.transposed {
            self.input
        } else {
            self.output
        };
        let per_pixel = self.in_channels * self.out_channels * self.kernel * self.kernel;
        2.0 * (per_pixel * h * w) as f64
    }
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;

    use crate::model::{DiscriminatorConfig, GeneratorConfig, PatchDiscriminator, ResnetGenerator};

    /// Multiply-adds of the paper's networks at 256 px, layer by layer from the architecture
    /// (appendix 7.2): output pixels x in x out x k^2, per input pixel for transposed layers.
    #[test]
    fn flop_of_the_paper_networks() {
        let device = Device::flex();
        let g = ResnetGenerator::new(&GeneratorConfig::resnet(64, 9), &device);
        let g_macs: usize = 3 * 64 * 49 * 256 * 256 // c7s1-64
            + 64 * 128 * 9 * 128 * 128 // d128
            + 128 * 256 * 9 * 64 * 64 // d256
            + 18 * 256 * 256 * 9 * 64 * 64 // R256 x 9, two convolutions each
            + 256 * 128 * 9 * 64 * 64 // u128, over its 64x64 input
            + 128 * 64 * 9 * 128 * 128 // u64, over its 128x128 input
            + 64 * 3 * 49 * 256 * 256; // c7s1-3
        let layers = g.conv_layers(256, 256);
        assert_eq!(layers.len(), 3 + 18 + 3);
        assert_eq!(layers.last().unwrap().output, [256, 256]);
        let total: f64 = layers.iter().map(|l| l.flop()).sum();
        assert_eq!(total, 2.0 * g_macs as f64);

        let d = PatchDiscriminator::new(&DiscriminatorConfig::default(), &device);
        // 4x4 kernels, padding 1: 256 -> 128 -> 64 -> 32 (stride 2) -> 31 -> 30 (stride 1).
        let d_macs: usize = 3 * 64 * 16 * 128 * 128
            + 64 * 128 * 16 * 64 * 64
            + 128 * 256 * 16 * 32 * 32
            + 256 * 512 * 16 * 31 * 31
            + 512 * 16 * 30 * 30;
        let layers = d.conv_layers(256, 256);
        assert_eq!(layers.last().unwrap().output, [30, 30]);
        let total: f64 = layers.iter().map(|l| l.flop()).sum();
        assert_eq!(total, 2.0 * d_macs as f64);
    }
}
