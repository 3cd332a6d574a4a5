//! Normalisation layers of `--norm`, as the reference builds them (`get_norm_layer`).
//!
//! - instance: instance norm without affine parameters or running statistics (the paper's);
//! - batch: batch norm with affine parameters and running statistics;
//! - none: nothing.
//!
//! The choice also decides whether the convolutions before a norm have a bias: the reference
//! gives them one only under instance norm (`use_bias`), so that is what its checkpoints hold.

use burn::module::RunningState;
use burn::nn::{BatchNorm, BatchNormConfig, Identity, InstanceNorm, InstanceNormConfig};
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::FloatDType;
use burn::tensor::TensorData;
use burn::tensor::activation::{leaky_relu, relu};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::conv::raw::{floats, is_flex_inference, is_flex_training};
use super::instance_norm_train::instance_norm_train;
use super::precision;

/// Which normalisation the networks use (`--norm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Instance norm without affine parameters (CycleGAN's default).
    #[default]
    Instance,
    /// Batch norm with affine parameters and running statistics (pix2pix's default).
    Batch,
    /// No normalisation.
    None,
}

impl Norm {
    /// The name `--norm` takes.
    pub fn name(self) -> &'static str {
        match self {
            Norm::Instance => "instance",
            Norm::Batch => "batch",
            Norm::None => "none",
        }
    }

    /// Whether a convolution feeding this norm has a bias in the reference (`use_bias`): only
    /// under instance norm, whose mean subtraction makes the bias inert anyway.
    pub fn conv_bias(self) -> bool {
        self == Norm::Instance
    }

    /// A layer normalising `channels` channels.
    pub fn layer(self, channels: usize, device: &Device) -> NormLayer {
        match self {
            Norm::Instance => NormLayer::Instance(
                InstanceNormConfig::new(channels)
                    .with_affine(false)
                    .init(device),
            ),
            // PyTorch's defaults: eps 1e-5, momentum 0.1.
            Norm::Batch => NormLayer::Batch(BatchNormConfig::new(channels).init(device)),
            Norm::None => NormLayer::Identity(Identity::new()),
        }
    }
}

/// One normalisation layer of a network.
#[derive(Module, Debug)]
pub enum NormLayer {
    /// Instance norm without affine parameters.
    Instance(InstanceNorm),
    /// Batch norm with affine parameters and running statistics.
    Batch(BatchNorm),
    /// No normalisation.
    Identity(Identity),
}

impl NormLayer {
    /// Normalise `x` `[B, C, H, W]`, in float32 when the activations are 16-bit.
    ///
    /// Batch norm always normalises with the batch's statistics, in training and when
    /// translating, as the reference's `test.py` does without `--eval`; in training (on an
    /// autodiff device) it also updates the running statistics, with the unbiased variance as
    /// PyTorch does, so that checkpoints carry what the reference's would.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            NormLayer::Instance(norm) => instance_norm_act(norm, x, 1.0),
            NormLayer::Batch(norm) => in_f32(x, |x| batch_norm(norm, x)),
            NormLayer::Identity(_) => x,
        }
    }

    /// `relu(self.forward(x))`; an instance norm on the CPU does both in one pass.
    pub fn forward_relu(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_leaky_relu(x, 0.0)
    }

    /// `leaky_relu(self.forward(x), slope)`; an instance norm on the CPU does both in one pass.
    pub fn forward_leaky_relu(&self, x: Tensor<4>, slope: f32) -> Tensor<4> {
        match self {
            NormLayer::Instance(norm) => instance_norm_act(norm, x, slope),
            _ => activate(self.forward(x), slope),
        }
    }

    /// The batch norm, when this layer is one (its parameters have state-dict keys).
    pub fn batch_norm_mut(&mut self) -> Option<&mut BatchNorm> {
        match self {
            NormLayer::Batch(norm) => Some(norm),
            _ => None,
        }
    }

    /// The epsilon of an instance or batch norm (`None`: no normalisation).
    pub fn epsilon(&self) -> Option<f64> {
        match self {
            NormLayer::Instance(norm) => Some(norm.epsilon),
            NormLayer::Batch(norm) => Some(norm.epsilon),
            NormLayer::Identity(_) => None,
        }
    }
}

/// `leaky_relu(norm(x), slope)` for an instance norm without affine parameters (slope 0: ReLU,
/// 1: none): on the CPU one pass in plain Rust, in training an operation with its own backward
/// pass; elsewhere burn's ops, in float32 when the activations are 16-bit.
pub(crate) fn instance_norm_act(norm: &InstanceNorm, x: Tensor<4>, slope: f32) -> Tensor<4> {
    if is_flex_inference(&x) {
        instance_norm_cpu(x, norm.epsilon, slope)
    } else if is_flex_training(&x) {
        instance_norm_train(x, norm.epsilon, slope)
    } else {
        activate(precision::instance_norm(norm, x), slope)
    }
}

/// A leaky ReLU of `slope` with burn's ops (0: ReLU, 1: none).
fn activate(x: Tensor<4>, slope: f32) -> Tensor<4> {
    if slope == 1.0 {
        x
    } else if slope == 0.0 {
        relu(x)
    } else {
        leaky_relu(x, slope as f64)
    }
}

/// Instance norm without affine parameters, then a leaky ReLU of `slope`, on the CPU at inference, in
/// plain Rust: per plane, mean and variance accumulated in float64, then one pass normalising in
/// place. burn's composition of tensor ops makes a pass over memory per op (about 25 ms per
/// norm at 480p, 22 norms per generator).
fn instance_norm_cpu(x: Tensor<4>, epsilon: f64, slope: f32) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let device = x.device();
    let mut values = floats(x);
    values.par_chunks_mut(h * w).for_each(|plane| {
        let (scale, shift) = normalising(plane, epsilon);
        normalise_in_place(plane, scale, shift, slope);
    });
    Tensor::from_data(TensorData::new(values, [b, c, h, w]), &device)
}

/// `(1/σ, -mean/σ)` of one plane (float64 sums), so that `v * scale + shift` normalises it.
pub(crate) fn normalising(plane: &[f32], epsilon: f64) -> (f32, f32) {
    let n = plane.len() as f64;
    let mean = sum_f64(plane, |v| v as f64) / n;
    let variance = sum_f64(plane, |v| (v as f64 - mean).powi(2)) / n;
    let scale = (1.0 / (variance + epsilon).sqrt()) as f32;
    (scale, (-mean) as f32 * scale)
}

/// The sum of `f(v)` over `values` in float64, as eight interleaved partial sums: one chain of
/// dependent additions waits four cycles per value, eight chains fill the vector units.
fn sum_f64(values: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let mut lanes = [0.0f64; 8];
    let chunks = values.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f(v);
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// `out[i] = x[i] * scale + shift`: a plane normalised into a new buffer.
pub(crate) fn normalise_into(
    x: &[f32],
    out: &mut [std::mem::MaybeUninit<f32>],
    scale: f32,
    shift: f32,
) {
    for (o, &v) in out.iter_mut().zip(x) {
        o.write(v * scale + shift);
    }
}

/// `y = act(x)`, `act` a leaky ReLU of `slope` (0: ReLU, giving +0.0), written without branches
/// so that it runs on the vector units (a branch on the sign mispredicts on half the values).
pub(crate) fn activate_into(x: &[f32], y: &mut [f32], slope: f32) {
    let pairs = y.iter_mut().zip(x);
    if slope == 0.0 {
        pairs.for_each(|(y, &v)| *y = if v > 0.0 { v } else { 0.0 });
    } else {
        pairs.for_each(|(y, &v)| *y = if v > 0.0 { v } else { v * slope });
    }
}

/// [`normalise_into`] then [`activate_into`], in place and in one pass.
fn normalise_in_place(plane: &mut [f32], scale: f32, shift: f32, slope: f32) {
    if slope == 0.0 {
        plane.iter_mut().for_each(|v| {
            let y = *v * scale + shift;
            *v = if y > 0.0 { y } else { 0.0 };
        });
    } else {
        plane.iter_mut().for_each(|v| {
            let y = *v * scale + shift;
            *v = if y > 0.0 { y } else { y * slope };
        });
    }
}

/// `f` applied in float32 to `x`, returned in `x`'s type.
fn in_f32(x: Tensor<4>, f: impl FnOnce(Tensor<4>) -> Tensor<4>) -> Tensor<4> {
    match x.dtype() {
        dtype @ (DType::F16 | DType::BF16) => {
            f(x.cast(FloatDType::F32)).cast(FloatDType::from(dtype))
        }
        _ => f(x),
    }
}

fn batch_norm(norm: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    let training = device.is_autodiff() && norm.training.is_enabled();
    let [b, _, h, w] = x.dims();
    let out =
        burn::tensor::module::batch_norm_train(x, norm.gamma.val(), norm.beta.val(), norm.epsilon);
    if training {
        // burn returns the population variance; PyTorch's running variance is unbiased.
        let n = (b * h * w) as f64;
        let unbiased = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
        let m = norm.momentum;
        update(&norm.running_mean, out.mean.detach(), m, 1.0, &device);
        update(
            &norm.running_var,
            out.variance.detach(),
            m,
            unbiased,
            &device,
        );
    }
    out.output
}

/// `state <- (1 - momentum) state + momentum * scale * batch`.
fn update(
    state: &RunningState<Tensor<1>>,
    batch: Tensor<1>,
    momentum: f64,
    scale: f64,
    device: &Device,
) {
    let old = state.value_sync().to_device(device);
    let new = old
        .mul_scalar(1.0 - momentum)
        .add(batch.mul_scalar(momentum * scale));
    state.update(new.detach());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: Tensor<1>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    }

    /// The CPU inference path (instance norm, with and without ReLU) equals burn's instance norm
    /// on an autodiff device, which takes the tensor-op path.
    #[test]
    fn cpu_instance_norm_equals_burns() {
        let device = Device::flex();
        let layer = Norm::Instance.layer(3, &device);
        let x = Tensor::<4>::random(
            [2, 3, 5, 7],
            burn::tensor::Distribution::Normal(0.5, 2.0),
            &device,
        );
        let reference = {
            let tracked = Tensor::<4>::from_data(x.to_data(), &device.clone().autodiff());
            let layer = Norm::Instance.layer(3, &device.clone().autodiff());
            layer
                .forward(tracked)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let plain = layer
            .forward(x.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let fused = layer
            .forward_relu(x)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for ((r, p), f) in reference.iter().zip(&plain).zip(&fused) {
            assert!((r - p).abs() < 1e-5, "{r} vs {p}");
            assert!((r.max(0.0) - f).abs() < 1e-5, "relu({r}) vs {f}");
        }
    }

    /// Batch norm normalises over batch and space, and its running statistics follow
    /// PyTorch's update (unbiased variance, momentum 0.1) only in training.
    #[test]
    fn batch_norm_statistics_follow_pytorch() {
        let device = Device::flex().autodiff();
        let layer = Norm::Batch.layer(1, &device);
        // Values 0, 1, 2, 3 over a batch of two 1x2 images: mean 1.5, unbiased variance 5/3.
        let input = |device: &Device| {
            Tensor::<4>::from_data(
                TensorData::new(vec![0.0f32, 1., 2., 3.], [2, 1, 1, 2]),
                device,
            )
        };
        let y = layer.forward(input(&device));
        let y: Vec<f32> = y.into_data().convert::<f32>().try_into_vec().unwrap();
        let sd = (1.25f32 + 1e-5).sqrt();
        assert!((y[0] + 1.5 / sd).abs() < 1e-5 && (y[3] - 1.5 / sd).abs() < 1e-5);
        let NormLayer::Batch(bn) = &layer else {
            unreachable!()
        };
        let mean = values(bn.running_mean.value_sync());
        let var = values(bn.running_var.value_sync());
        assert!((mean[0] - 0.15).abs() < 1e-6, "{mean:?}");
        assert!((var[0] - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-6, "{var:?}");

        // Without autodiff (translation) the statistics stay as they are.
        let plain = Norm::Batch.layer(1, &Device::flex());
        plain.forward(input(&Device::flex()));
        let NormLayer::Batch(bn) = &plain else {
            unreachable!()
        };
        assert_eq!(values(bn.running_mean.value_sync()), [0.0]);
    }
}
