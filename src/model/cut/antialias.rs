//! Anti-aliased resampling of CUT's networks (Zhang 2019, "Making Convolutional Networks
//! Shift-Invariant Again"), as the authors' `Downsample` and `Upsample` modules.
//!
//! Both are fixed depthwise filters that are outer products of 1-D ones, so they are computed
//! as two 1-D passes: on the CPU in plain Rust ([`super::blur_cpu`]), elsewhere as strided
//! slices and sums of burn's tensor ops (no convolution, cheap in memory, and their backward
//! passes are slices too). Both equal the reference's depthwise convolutions up to float
//! rounding (tested against burn's grouped convolution).

use burn::prelude::*;
use burn::tensor::ops::PadMode;
use burn::tensor::s;

use super::blur_cpu::{Resample, blur};
use crate::model::conv::raw::{is_flex_inference, is_flex_training};
use crate::model::weights::HostTensor;

/// `Downsample`: reflection pad 1, then the `[1,2,1] x [1,2,1] / 16` blur with stride 2.
///
/// A side of `n` pixels becomes `(n - 1) / 2 + 1` (rounded down), as in PyTorch; `n >= 2`.
pub fn blur_down(x: Tensor<4>) -> Tensor<4> {
    if on_cpu(&x) {
        blur(x, Resample::Down)
    } else {
        blur_down_ops(x)
    }
}

/// Whether `x` goes to the plain-Rust blurs of [`super::blur_cpu`].
fn on_cpu(x: &Tensor<4>) -> bool {
    is_flex_inference(x) || is_flex_training(x)
}

/// [`blur_down`] in burn's tensor ops (GPUs, 16-bit floats).
fn blur_down_ops(x: Tensor<4>) -> Tensor<4> {
    let padded = x.pad([(1, 1), (1, 1)], PadMode::Reflect);
    let rows = blur_down_axis(padded, 3);
    blur_down_axis(rows, 2)
}

/// One axis of [`blur_down`] on an already padded tensor: `(p[2i] + 2 p[2i+1] + p[2i+2]) / 4`.
fn blur_down_axis(p: Tensor<4>, dim: usize) -> Tensor<4> {
    let n = p.dims()[dim];
    let m = (n - 3) / 2 + 1;
    // p[0], p[2], ..., p[2m] and p[1], p[3], ..., p[2m-1].
    let even = p.clone().slice_dim(dim, s![0..2 * m + 1; 2]);
    let odd = p.slice_dim(dim, s![1..2 * m; 2]);
    (even.clone().narrow(dim, 0, m) + even.narrow(dim, 1, m) + odd.mul_scalar(2.0)).mul_scalar(0.25)
}

/// `Upsample`: replication pad 1, depthwise transposed `[1,3,3,1] x [1,3,3,1] / 16` blur with
/// stride 2 and padding 2, one row and column cropped on each side: exactly twice the size.
///
/// Worked out per axis, output `2m` is `(3 x[m] + x[m-1]) / 4` and output `2m+1` is
/// `(3 x[m] + x[m+1]) / 4`, with indices clamped at the edges (bilinear upsampling).
pub fn blur_up(x: Tensor<4>) -> Tensor<4> {
    if on_cpu(&x) {
        blur(x, Resample::Up)
    } else {
        blur_up_ops(x)
    }
}

/// [`blur_up`] in burn's tensor ops (GPUs, 16-bit floats).
fn blur_up_ops(x: Tensor<4>) -> Tensor<4> {
    let rows = blur_up_axis(x, 3);
    blur_up_axis(rows, 2)
}

/// One axis of [`blur_up`].
fn blur_up_axis(x: Tensor<4>, dim: usize) -> Tensor<4> {
    let mut dims = x.dims();
    let n = dims[dim];
    let pad = if dim == 3 {
        [(0, 0), (1, 1)]
    } else {
        [(1, 1), (0, 0)]
    };
    let q = x.clone().pad(pad, PadMode::Edge);
    let previous = q.clone().narrow(dim, 0, n);
    let next = q.narrow(dim, 2, n);
    let centre = x.mul_scalar(3.0);
    let even = (centre.clone() + previous).mul_scalar(0.25);
    let odd = (centre + next).mul_scalar(0.25);
    // Interleave: [.., n, 2, ..] read as [.., 2n, ..].
    let both: Tensor<5> = Tensor::stack(vec![even, odd], dim + 1);
    dims[dim] = 2 * n;
    both.reshape(dims)
}

/// The `Downsample` buffer `filt` for `channels` channels: `[C, 1, 3, 3]`.
pub fn down_filter(channels: usize) -> HostTensor {
    depthwise_filter(&[1.0, 2.0, 1.0], 1.0, channels)
}

/// The `Upsample` buffer `filt` for `channels` channels: `[C, 1, 4, 4]` (the normalised filter
/// times stride squared).
pub fn up_filter(channels: usize) -> HostTensor {
    depthwise_filter(&[1.0, 3.0, 3.0, 1.0], 4.0, channels)
}

/// `a a^T / sum(a a^T) * gain`, repeated for every channel.
fn depthwise_filter(a: &[f32], gain: f32, channels: usize) -> HostTensor {
    let sum: f32 = a.iter().sum::<f32>().powi(2);
    let one: Vec<f32> = a
        .iter()
        .flat_map(|u| a.iter().map(move |v| u * v / sum * gain))
        .collect();
    HostTensor {
        shape: vec![channels, 1, a.len(), a.len()],
        data: one.repeat(channels),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::module::{conv_transpose2d, conv2d};
    use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
    use rand::{Rng, SeedableRng};

    fn random(shape: [usize; 4], seed: u64, device: &Device) -> Tensor<4> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        Tensor::from_data(TensorData::new(data, shape), device)
    }

    fn max_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
        assert_eq!(a.dims(), b.dims());
        (a - b).abs().max().into_scalar()
    }

    /// The reference's `Downsample`, as a grouped convolution with its buffer.
    fn reference_down(x: Tensor<4>) -> Tensor<4> {
        let c = x.dims()[1];
        let filt = down_filter(c).to_tensor(&x.device());
        let x = x.pad([(1, 1), (1, 1)], PadMode::Reflect);
        conv2d(x, filt, None, ConvOptions::new([2, 2], [0, 0], [1, 1], c))
    }

    /// The reference's `Upsample`, as a grouped transposed convolution with its buffer.
    fn reference_up(x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let filt = up_filter(c).to_tensor(&x.device());
        let x = x.pad([(1, 1), (1, 1)], PadMode::Edge);
        let y = conv_transpose2d(
            x,
            filt,
            None,
            ConvTransposeOptions::new([2, 2], [2, 2], [0, 0], [1, 1], c),
        );
        y.slice([0..b, 0..c, 1..2 * h + 1, 1..2 * w + 1])
    }

    #[test]
    fn blur_down_equals_the_depthwise_convolution_on_even_and_odd_sizes() {
        let device = Device::flex();
        for (i, shape) in [[1, 3, 8, 8], [1, 2, 7, 9], [1, 1, 2, 3]]
            .into_iter()
            .enumerate()
        {
            let x = random(shape, i as u64, &device);
            for ours in [blur_down, blur_down_ops] {
                let ours = ours(x.clone());
                let [_, _, h, w] = shape;
                assert_eq!(ours.dims()[2..], [(h - 1) / 2 + 1, (w - 1) / 2 + 1]);
                let diff = max_diff(ours, reference_down(x.clone()));
                assert!(diff < 1e-6, "{shape:?}: differs by {diff}");
            }
        }
    }

    #[test]
    fn blur_up_equals_the_depthwise_transposed_convolution() {
        let device = Device::flex();
        for (i, shape) in [[1, 3, 4, 4], [1, 2, 3, 5]].into_iter().enumerate() {
            let x = random(shape, 10 + i as u64, &device);
            for ours in [blur_up, blur_up_ops] {
                let diff = max_diff(ours(x.clone()), reference_up(x.clone()));
                assert!(diff < 1e-6, "{shape:?}: differs by {diff}");
            }
        }
    }

    #[test]
    fn gradients_equal_those_of_the_convolutions() {
        let device = Device::flex().autodiff();
        let weight = random([1, 2, 3, 3], 7, &device);
        // The plain-Rust operations and burn's tensor ops, against the convolutions.
        for (ours, reference) in [
            (
                blur_down as fn(Tensor<4>) -> Tensor<4>,
                reference_down as fn(_) -> _,
            ),
            (blur_down_ops, reference_down),
            (blur_up, reference_up),
            (blur_up_ops, reference_up),
        ] {
            let grad = |f: fn(Tensor<4>) -> Tensor<4>| {
                let x = random([2, 2, 5, 6], 3, &device).require_grad();
                let y = f(x.clone());
                let w = weight.clone().slice([0..1, 0..2, 0..1, 0..1]);
                let loss = (y.clone() * y).mul(w).sum();
                let grads = loss.backward();
                x.grad(&grads).unwrap()
            };
            let (a, b) = (grad(ours), grad(reference));
            let diff: f32 = (a - b).abs().max().into_scalar();
            assert!(diff < 1e-5, "gradients differ by {diff}");
        }
    }

    #[test]
    fn filters_are_normalised() {
        let down = down_filter(2);
        assert_eq!(down.shape, [2, 1, 3, 3]);
        assert!((down.data[..9].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(down.data[4], 0.25);
        let up = up_filter(1);
        assert!((up.data.iter().sum::<f32>() - 4.0).abs() < 1e-6);
        assert_eq!(up.data[0], 4.0 / 64.0);
    }
}
