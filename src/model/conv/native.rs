//! burn's own convolution, with reflection padding by `Tensor::pad`: what runs on GPU backends,
//! on 1-4 channel inputs, and as the reference the other kernels are tested against.

use burn::prelude::*;
use burn::tensor::ops::{ConvOptions, PadMode};

use super::padding::Padding;

/// The convolution with burn's ops: `Tensor::pad` for reflection, then `conv2d`.
pub fn burn_conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: [usize; 2],
    padding: Padding,
) -> Tensor<4> {
    let (x, p) = match padding {
        Padding::Zeros(p) => (x, p),
        Padding::Reflect(p) => (x.pad([(p, p), (p, p)], PadMode::Reflect), 0),
    };
    burn::tensor::module::conv2d(x, weight, bias, ConvOptions::new(stride, [p, p], [1, 1], 1))
}
