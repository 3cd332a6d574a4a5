//! Each operation a CycleGAN iteration uses, forward and backward, on the device under test
//! (`CYCLEGAN_TEST_DEVICE`: wgpu, vulkan, tch) against burn's CPU backend, and two Adam steps.
//! On the CPU alone (the default) there is nothing to compare, and every test returns at once.
//!
//! Written to find why burn 0.22 trained wrongly on its wgpu/Vulkan backends (BENCHMARKS.md,
//! "GPU"): every operation alone is right, and the fault was their fusion, which
//! `cyclegan::device` now turns off; `tests/parity.rs` checks the whole iteration.

mod common;

use burn::nn::conv::Conv2dConfig;
use burn::nn::{InstanceNormConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::{leaky_relu, relu, tanh};
use burn::tensor::module::{conv_transpose2d, conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, PadMode};
use burn::tensor::{Distribution, TensorData};

/// The device under test, `None` on the CPU (nothing to compare against).
fn device_under_test() -> Option<Device> {
    (common::test_device_name() != "cpu").then(common::test_device)
}

/// Values in [-1, 1], made on the CPU so that both devices get the same.
fn random(shape: [usize; 4]) -> TensorData {
    Tensor::<4>::random(shape, Distribution::Uniform(-1.0, 1.0), &Device::flex()).into_data()
}

fn host(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// `op`'s output and the gradients of `sum(output * pattern)` with respect to each input, on
/// `device` (an autodiff device).
fn run(
    inputs: &[TensorData],
    op: &dyn Fn(&[Tensor<4>]) -> Tensor<4>,
    device: &Device,
) -> (Vec<f32>, Vec<Vec<f32>>) {
    let xs: Vec<Tensor<4>> = inputs
        .iter()
        .map(|d| Tensor::<4>::from_data(d.clone(), device).require_grad())
        .collect();
    let y = op(&xs);
    let dims = y.dims();
    let pattern = Tensor::<1, Int>::arange(0..y.shape().num_elements() as i64, device)
        .float()
        .reshape(dims)
        .mul_scalar(0.37)
        .sin();
    let grads = (y.clone() * pattern).sum().backward();
    let dx = xs
        .iter()
        .map(|x| host(x.grad(&grads).expect("a gradient for every input")))
        .collect();
    (host(y.inner()), dx)
}

/// Compare `op` on the device under test with the CPU: output and every input's gradient.
fn check(name: &str, inputs: &[TensorData], op: &dyn Fn(&[Tensor<4>]) -> Tensor<4>) {
    let Some(gpu) = device_under_test() else {
        return;
    };
    let (y0, g0) = run(inputs, op, &Device::flex().autodiff());
    let (y1, g1) = run(inputs, op, &gpu.autodiff());
    let worst = |a: &[f32], b: &[f32]| {
        let scale = a.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs() / scale)
            .fold(0.0f32, f32::max)
    };
    let mut report = vec![("output".to_string(), worst(&y0, &y1))];
    for (i, (a, b)) in g0.iter().zip(&g1).enumerate() {
        report.push((format!("gradient of input {i}"), worst(a, b)));
    }
    eprintln!("{name}: {report:?}");
    for (what, d) in report {
        assert!(
            d <= 1e-4,
            "{name}: {what} differs from the CPU's by {d} (relative to its largest)"
        );
    }
}

fn conv_options(stride: usize, pad: usize) -> ConvOptions<2> {
    ConvOptions::new([stride, stride], [pad, pad], [1, 1], 1)
}

#[test]
fn convolution_3x3_stride_1() {
    check(
        "conv2d 3x3 stride 1",
        &[random([2, 4, 8, 8]), random([6, 4, 3, 3])],
        &|x| conv2d(x[0].clone(), x[1].clone(), None, conv_options(1, 1)),
    );
}

#[test]
fn convolution_4x4_stride_2() {
    check(
        "conv2d 4x4 stride 2",
        &[random([2, 4, 8, 8]), random([6, 4, 4, 4])],
        &|x| conv2d(x[0].clone(), x[1].clone(), None, conv_options(2, 1)),
    );
}

#[test]
fn transposed_convolution_stride_2() {
    check(
        "conv_transpose2d 3x3 stride 2",
        &[random([2, 6, 4, 4]), random([6, 4, 3, 3])],
        &|x| {
            let options = ConvTransposeOptions::new([2, 2], [1, 1], [1, 1], [1, 1], 1);
            conv_transpose2d(x[0].clone(), x[1].clone(), None, options)
        },
    );
}

#[test]
fn reflection_padding() {
    check("reflection pad 3", &[random([2, 3, 8, 8])], &|x| {
        x[0].clone().pad([(3, 3), (3, 3)], PadMode::Reflect)
    });
}

#[test]
fn instance_norm() {
    check("instance norm", &[random([2, 4, 6, 6])], &|x| {
        let norm = InstanceNormConfig::new(4)
            .with_affine(false)
            .init(&x[0].device());
        norm.forward(x[0].clone())
    });
}

#[test]
fn activations() {
    let input = [random([2, 3, 5, 5])];
    check("relu", &input, &|x| relu(x[0].clone()));
    check("leaky relu 0.2", &input, &|x| leaky_relu(x[0].clone(), 0.2));
    check("tanh", &input, &|x| tanh(x[0].clone()));
}

#[test]
fn losses() {
    let input = [random([2, 1, 6, 6]), random([2, 1, 6, 6])];
    check("least squares to 1", &input[..1], &|x| {
        (x[0].clone() - 1.0)
            .powi_scalar(2)
            .mean()
            .reshape([1, 1, 1, 1])
    });
    check("L1", &input, &|x| {
        (x[0].clone() - x[1].clone())
            .abs()
            .mean()
            .reshape([1, 1, 1, 1])
    });
}

/// Two Adam steps (the paper's betas) on a convolution with the same gradients: same weights.
#[test]
fn adam_steps() {
    let Some(gpu) = device_under_test() else {
        return;
    };
    let init = random([4, 3, 3, 3]);
    let inputs = [random([1, 3, 6, 6]), random([1, 3, 6, 6])];
    let weights_after = |device: &Device| {
        let mut conv = Conv2dConfig::new([3, 4], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(false)
            .init(device);
        conv.weight = conv
            .weight
            .map(|_| Tensor::from_data(init.clone(), device).require_grad());
        let mut adam = AdamConfig::new().with_beta_1(0.5).init();
        for x in &inputs {
            let x = Tensor::<4>::from_data(x.clone(), device);
            let loss = conv.forward(x).powi_scalar(2).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &conv);
            conv = adam.step(2e-4, conv, grads);
        }
        host(conv.weight.val().inner())
    };
    let cpu = weights_after(&Device::flex().autodiff());
    let other = weights_after(&gpu.autodiff());
    let worst = cpu
        .iter()
        .zip(&other)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let moved = cpu
        .iter()
        .zip(init.clone().try_into_vec::<f32>().unwrap())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        moved > 1e-4,
        "the two Adam steps left the weights where they were"
    );
    eprintln!("Adam: worst weight difference after two steps {worst:e}");
    assert!(
        worst <= 1e-6,
        "Adam's weights differ from the CPU's by {worst}"
    );
}
