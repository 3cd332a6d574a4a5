//! Convolutions: which kernel runs each layer, and the kernels.
//!
//! burn's CPU (Flex) backend convolves by im2col + GEMM, whose backward is slow at batch 1
//! (BENCHMARKS.md). On that backend the networks' convolutions run on our own kernels, plain
//! Rust over the tensors' buffers. In training each is one operation with a handwritten
//! backward pass that keeps only its input and weight:
//!
//! - [`winograd_train`]: 3x3 stride-1 layers (the residual blocks, 80% of the arithmetic) by
//!   Winograd F(4x4, 3x3), and 4x4 stride-1 ones with enough output (the CUT PatchGAN's) by
//!   F(3x3, 4x4);
//! - [`gemm_train`]: the other square-kernel layers (the RGB stem and head, the strided ones),
//!   as a gather and a large matrix product;
//! - [`transpose_cpu`]: the generator's transposed 3x3 stride-2 upsampling.
//!
//! At inference (no autodiff, float32), each step one pass over memory:
//!
//! - [`winograd_cpu`]: the same Winograd transforms for the same layers;
//! - [`direct_cpu`]: other stride-1 layers (the RGB stem and head, 7x7), row by row.
//!
//! [`winograd`] and [`gemm`] build the same two methods from burn tensor ops (what the first
//! versions ran; the benchmarks still time them). [`native`] (burn's own convolution) runs
//! everything else: strided layers at inference, 16-bit activations, and every layer on GPU
//! backends, whose convolutions are not the Flex ones these kernels were measured against.
//!
//! The choice is a [`ConvPolicy`] value: [`ConvPolicy::for_device`] picks it for a device, the
//! networks hold it (set when they are built, changeable with `set_conv_policy`), and
//! [`ConvPolicy::kernel`] applies it to one layer's shape. `cyclegan bench --conv` overrides it
//! to time the other paths.

pub mod direct_cpu;
pub mod gemm;
pub mod gemm_train;
mod input_weight_op;
pub mod native;
mod padding;
pub(crate) mod raw;
pub mod transpose_cpu;
pub mod winograd;
pub mod winograd_cpu;
pub mod winograd_train;

pub use gemm::conv2d_gemm;
pub use native::burn_conv2d;
pub use padding::Padding;
pub use winograd::{Tile, conv3x3};

use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::module::conv_transpose2d;
use burn::tensor::ops::ConvTransposeOptions;

use super::precision;
use raw::{is_flex_inference, is_flex_training};

/// Which convolution kernels a network uses: chosen once per device, applied per layer shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvPolicy {
    /// burn's own convolution for every layer: GPU backends, and the benchmarks' baseline.
    Burn,
    /// Tuned for burn's CPU backend, without Winograd: gather + GEMM for training's layers,
    /// burn's convolution at inference (row by row for stride 1 and few input channels).
    Gemm,
    /// [`ConvPolicy::Gemm`], with 3x3 stride-1 layers of more than [`MIN_GATHER_CHANNELS`]
    /// input channels by Winograd with this tile, in training and inference. The CPU default
    /// uses [`Tile::Four`], which also takes 4x4 stride-1 layers with enough output to
    /// [`Kernel::Winograd4x4`].
    Winograd(Tile),
}

/// The kernel that runs one convolution call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// [`burn_conv2d`].
    Burn,
    /// [`conv2d_gemm`].
    Gemm,
    /// [`conv3x3`] with this tile.
    Winograd(Tile),
    /// Winograd F(3x3, 4x4) on burn's CPU backend ([`winograd_cpu`], [`winograd_train`]):
    /// 4x4 stride-1 layers of at least [`MIN_WINOGRAD_4X4_TILES`] output tiles (elsewhere,
    /// [`Kernel::Gemm`]'s choice).
    Winograd4x4,
}

/// The fewest 3x3 output tiles for which a 4x4 stride-1 layer goes to Winograd: the 36
/// products then have too few columns to pay for the transforms (the 128 px PatchGAN's
/// 256 -> 512 layer, 5x5 tiles, took 33 ms forward + backward by Winograd and 24 by gather +
/// GEMM; its 128 -> 256 layer, 11x11 tiles, 16 instead of 23; BENCHMARKS.md).
pub const MIN_WINOGRAD_4X4_TILES: usize = 64;

/// Inputs with at most this many channels go to neither Winograd (its rounding error, larger
/// than a direct sum's, buys nothing on so little arithmetic) nor, at inference, a gather (rows
/// of 1-4 floats are too short to gather efficiently in NHWC): burn's convolution at inference,
/// training's gather + GEMM (which gathers NCHW rows and sums in burn's order).
pub const MIN_GATHER_CHANNELS: usize = 4;

impl ConvPolicy {
    /// The policy for networks running on `device` (with or without autodiff): Winograd F(4x4)
    /// plus gather + GEMM on burn's CPU backend (what measured fastest there, BENCHMARKS.md),
    /// burn's convolution on every other backend.
    pub fn for_device(device: &Device) -> Self {
        let plain = device.clone().without_autodiff();
        if matches!(plain.as_dispatch(), burn::backend::DispatchDevice::Flex(_)) {
            ConvPolicy::Winograd(Tile::Four)
        } else {
            ConvPolicy::Burn
        }
    }

    /// The kernel for a convolution with `in_channels` inputs, a `kernel` and `stride` giving
    /// an `output` of `[height, width]`, in training (`autodiff`) or at inference.
    pub fn kernel(
        self,
        in_channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        output: [usize; 2],
        autodiff: bool,
    ) -> Kernel {
        if self == ConvPolicy::Burn || (in_channels <= MIN_GATHER_CHANNELS && !autodiff) {
            return Kernel::Burn;
        }
        if let ConvPolicy::Winograd(tile) = self
            && stride == [1, 1]
            && in_channels > MIN_GATHER_CHANNELS
        {
            if kernel == [3, 3] {
                return Kernel::Winograd(tile);
            }
            let tiles = output[0].div_ceil(3) * output[1].div_ceil(3);
            if tile == Tile::Four && kernel == [4, 4] && tiles >= MIN_WINOGRAD_4X4_TILES {
                return Kernel::Winograd4x4;
            }
        }
        if autodiff { Kernel::Gemm } else { Kernel::Burn }
    }

    /// Apply `conv`'s weight, bias and stride to `x` `[B, Cin, H, W]` padded by `padding` (the
    /// layer's own padding setting is ignored), giving `[B, Cout, Ho, Wo]`. Dilation and groups
    /// must be 1.
    pub fn conv2d(self, conv: &Conv2d, x: Tensor<4>, padding: Padding) -> Tensor<4> {
        assert_eq!(conv.groups, 1, "conv2d: groups must be 1");
        assert_eq!(conv.dilation, [1, 1], "conv2d: dilation must be 1");
        let weight = conv.weight.val();
        let bias = conv.bias.as_ref().map(|b| b.val());
        self.conv2d_raw(x, weight, bias, conv.stride, padding)
    }

    /// [`ConvPolicy::conv2d`] on bare tensors: `weight` `[Cout, Cin, kh, kw]`, `bias` `[Cout]`.
    pub fn conv2d_raw(
        self,
        x: Tensor<4>,
        weight: Tensor<4>,
        bias: Option<Tensor<1>>,
        stride: [usize; 2],
        padding: Padding,
    ) -> Tensor<4> {
        let [_, c, h, w] = x.dims();
        let [_, _, kh, kw] = weight.dims();
        let p = padding.amount();
        let output = [
            (h + 2 * p).saturating_sub(kh) / stride[0] + 1,
            (w + 2 * p).saturating_sub(kw) / stride[1] + 1,
        ];
        // Reduced precision (see `model::precision`): the weights follow the activations' type,
        // and only burn's convolution has kernels for it.
        let reduced = x.dtype() != DType::F32;
        let weight = precision::like(weight, &x);
        let bias = bias.map(|b| precision::like(b, &x));
        let autodiff = x.device().is_autodiff();
        let kernel = match self.kernel(c, [kh, kw], stride, output, autodiff) {
            _ if reduced => Kernel::Burn,
            kernel => kernel,
        };
        match kernel {
            // Inference on the CPU, stride 1 (the RGB stem and head): row by row in plain Rust.
            Kernel::Burn
                if self != ConvPolicy::Burn && stride == [1, 1] && is_flex_inference(&x) =>
            {
                direct_cpu::conv2d_inference(x, weight, bias, padding)
            }
            // Training on the CPU, every square-kernel layer but the 3x3 stride-1 ones: gather +
            // GEMM in plain Rust with its own backward pass. It sums in the order of burn's
            // convolution and of `conv2d_gemm` (taps, then channels; the scatter in output
            // order), so that the forward pass rounds as theirs did: the parity tests hang on
            // rounding. With the (channels, taps) order it had first, the RGB stem here failed
            // `tests/parity.rs` (99.3% of weights within 2e-5, tolerance 99.5%): one gradient of
            // G_B's head weights (7e-7) changed sign, and Adam's first step (nearly lr * sign(g))
            // moved that weight 2 lr the other way.
            Kernel::Gemm if kh == kw && stride[0] == stride[1] && is_flex_training(&x) => {
                gemm_train::conv2d_train(x, weight, bias, stride[0], padding)
            }
            Kernel::Burn => burn_conv2d(x, weight, bias, stride, padding),
            Kernel::Gemm => conv2d_gemm(x, weight, bias, stride, padding),
            // Inference on the CPU: the same F(4x4) with fused transforms, no autodiff to feed.
            Kernel::Winograd(Tile::Four) | Kernel::Winograd4x4 if is_flex_inference(&x) => {
                winograd_cpu::conv_inference(x, weight, bias, padding)
            }
            // Training on the CPU: the same kernels, with a handwritten backward pass that keeps
            // only the input (burn's autodiff would keep every intermediate).
            Kernel::Winograd(Tile::Four) | Kernel::Winograd4x4 if is_flex_training(&x) => {
                winograd_train::conv_train(x, weight, bias, padding)
            }
            Kernel::Winograd(tile) => conv3x3(x, weight, bias, padding, tile),
            // Only burn's CPU backend has the F(3x3, 4x4) kernels.
            Kernel::Winograd4x4 if autodiff => conv2d_gemm(x, weight, bias, stride, padding),
            Kernel::Winograd4x4 => burn_conv2d(x, weight, bias, stride, padding),
        }
    }
}

/// A transposed convolution (burn's kernel under every policy) whose weight follows the type of
/// `x` (see [`crate::model::precision`]).
pub fn conv_transpose(conv: &ConvTranspose2d, x: Tensor<4>) -> Tensor<4> {
    let weight = precision::like(conv.weight.val(), &x);
    let bias = conv.bias.as_ref().map(|b| precision::like(b.val(), &x));
    // The ResNet generator's upsampling on the CPU: plain-Rust products with their own
    // backward pass.
    let [_, _, kh, kw] = weight.dims();
    if [kh, kw] == [3, 3]
        && conv.stride == [2, 2]
        && conv.padding == [1, 1]
        && conv.padding_out == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && (is_flex_inference(&x) || is_flex_training(&x))
    {
        return transpose_cpu::upsample3x3(x, weight, bias);
    }
    let options = ConvTransposeOptions::new(
        conv.stride,
        conv.padding,
        conv.padding_out,
        conv.dilation,
        conv.groups,
    );
    conv_transpose2d(x, weight, bias, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_gets_winograd_and_gpus_get_burn() {
        let cpu = ConvPolicy::Winograd(Tile::Four);
        assert_eq!(ConvPolicy::for_device(&Device::flex()), cpu);
        assert_eq!(ConvPolicy::for_device(&Device::flex().autodiff()), cpu);
    }

    /// The CPU choices of every CycleGAN layer shape, in training and at inference.
    #[test]
    fn cpu_kernels_per_layer() {
        let cpu = ConvPolicy::Winograd(Tile::Four);
        let w4 = Kernel::Winograd(Tile::Four);
        let (gemm, burn, w44) = (Kernel::Gemm, Kernel::Burn, Kernel::Winograd4x4);
        // (in channels, kernel, stride, output side, training kernel, inference kernel)
        let cases = [
            (3, 7, 1, 128, gemm, burn),  // generator stem, RGB in
            (64, 3, 2, 64, gemm, burn),  // downsampling
            (256, 3, 1, 32, w4, w4),     // residual blocks
            (256, 3, 1, 2, w4, w4),      // however small
            (64, 7, 1, 128, gemm, burn), // generator head
            (3, 4, 2, 64, gemm, burn),   // PatchGAN first layer
            (4, 3, 1, 32, gemm, burn),   // few channels: no Winograd
            (3, 4, 1, 127, gemm, burn),  // CUT PatchGAN's first layer, RGB in
            (128, 4, 1, 31, w44, w44),   // CUT PatchGAN's stride-1 layers
            (256, 4, 1, 24, w44, w44),   // 8x8 tiles
            (256, 4, 1, 15, gemm, burn), // too few tiles
        ];
        for (c, k, s, o, train, infer) in cases {
            let kernel = |autodiff| cpu.kernel(c, [k, k], [s, s], [o, o], autodiff);
            assert_eq!(kernel(true), train, "{c} {k} {s} {o}");
            assert_eq!(kernel(false), infer, "{c} {k} {s} {o}");
        }
        let any = ([256, 4], [1, 1], [32, 32]);
        assert_eq!(
            ConvPolicy::Gemm.kernel(256, any.0, any.1, any.2, true),
            gemm
        );
        assert_eq!(
            ConvPolicy::Gemm.kernel(256, [3, 3], [1, 1], [32, 32], true),
            gemm
        );
        assert_eq!(
            ConvPolicy::Gemm.kernel(256, [3, 3], [1, 1], [32, 32], false),
            burn
        );
        assert_eq!(
            ConvPolicy::Burn.kernel(256, [3, 3], [1, 1], [32, 32], true),
            burn
        );
        // F(2x2) covers 3x3 kernels only.
        let two = ConvPolicy::Winograd(Tile::Two);
        assert_eq!(two.kernel(256, any.0, any.1, any.2, true), gemm);
    }
}
