//! Training's instance norm (no affine parameters) and the activation after it, on the CPU: one
//! operation with a handwritten backward pass (a burn backend extension), as the convolutions
//! of [`super::conv::winograd_train`].
//!
//! burn builds the norm from tensor ops (mean, subtraction, square, mean, division, then the
//! activation), each a pass over memory whose operands autodiff keeps for the backward pass.
//! Here the forward pass is two passes per plane (statistics in float64, then normalise and
//! activate) and keeps the normalised values `x̂` and one `1/σ` per plane. With `g` the
//! gradient reaching `x̂` (the output's, times the activation's slope), the input's gradient is
//! `(g - mean(g) - x̂ mean(g x̂)) / σ` per plane.

use std::sync::Arc;

use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;

use super::conv::raw::{fill_planes, flex_values};
use super::norm::{normalise_into, normalising, sum_f64};

/// `act((x - mean) / sqrt(var + epsilon))` per `[H, W]` plane of `x` `[B, C, H, W]`, where `act`
/// is a leaky ReLU of `slope` (0: ReLU, 1: none); differentiable. `x` must be float32 on burn's
/// CPU backend (with autodiff, or without).
pub fn instance_norm_train(x: Tensor<4>, epsilon: f64, slope: f32) -> Tensor<4> {
    Tensor::<4>::from_dispatch(<Dispatch as InstanceNormCpu>::instance_norm_act(
        x.into_dispatch(),
        epsilon,
        slope,
    ))
}

/// The operation, for burn's CPU backend with and without autodiff.
#[backend_extension(Flex, Autodiff)]
pub trait InstanceNormCpu: Backend {
    /// Instance norm of `x` `[B, C, H, W]`, then a leaky ReLU of `slope`.
    fn instance_norm_act(x: FloatTensor<Self>, epsilon: f64, slope: f32) -> FloatTensor<Self>;
}

impl InstanceNormCpu for Flex {
    fn instance_norm_act(x: FlexTensor, epsilon: f64, slope: f32) -> FlexTensor {
        forward(&x, epsilon, slope).0
    }
}

impl<C: CheckpointStrategy> InstanceNormCpu for Autodiff<Flex, C> {
    fn instance_norm_act(x: FloatTensor<Self>, epsilon: f64, slope: f32) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct InstanceNormBackward;

        impl Backward<Flex, 1> for InstanceNormBackward {
            /// `x̂` (the output itself when there is no activation), `1/σ` per plane, the slope.
            type State = (FlexTensor, Arc<[f32]>, f32);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_x] = ops.parents;
                let dy = grads.consume::<Flex>(&ops.node);
                let (xhat, rstd, slope) = ops.state;
                if let Some(node) = node_x {
                    grads.register::<Flex>(node.id, backward(&xhat, &rstd, slope, &dy));
                }
            }
        }

        match InstanceNormBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (y, xhat, rstd) = forward(x.primitive(), epsilon, slope);
                prep.finish((xhat, rstd, slope), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive(), epsilon, slope).0),
        }
    }
}

/// The output, `x̂` (the same tensor when `slope` is 1) and `1/σ` per plane.
fn forward(x: &FlexTensor, epsilon: f64, slope: f32) -> (FlexTensor, FlexTensor, Arc<[f32]>) {
    let shape = x.layout().shape().clone();
    let [_, _, h, w] = shape.dims::<4>();
    let values = flex_values(x);
    let planes = values.len() / (h * w);
    let stats: Vec<(f32, f32)> = values
        .par_chunks(h * w)
        .map(|plane| normalising(plane, epsilon))
        .collect();
    let xhat = fill_planes(values.len(), h * w, |i, out| {
        let (scale, shift) = stats[i];
        normalise_into(&values[i * h * w..][..h * w], out, scale, shift, 1.0);
    });
    let y = (slope != 1.0).then(|| {
        fill_planes(values.len(), h * w, |i, out| {
            normalise_into(&xhat[i * h * w..][..h * w], out, 1.0, 0.0, slope);
        })
    });
    let rstd: Arc<[f32]> = stats.iter().map(|&(scale, _)| scale).collect();
    debug_assert_eq!(rstd.len(), planes);
    let xhat = FlexTensor::from_data(TensorData::new(xhat, shape.clone()));
    let y = match y {
        Some(y) => FlexTensor::from_data(TensorData::new(y, shape)),
        None => xhat.clone(),
    };
    (y, xhat, rstd)
}

/// The input's gradient, given the output's `dy`.
fn backward(xhat: &FlexTensor, rstd: &[f32], slope: f32, dy: &FlexTensor) -> FlexTensor {
    let shape = xhat.layout().shape().clone();
    let [_, _, h, w] = shape.dims::<4>();
    let (xhat, dy) = (flex_values(xhat), flex_values(dy));
    let dx = fill_planes(dy.len(), h * w, |i, out| {
        let (xhat, dy) = (&xhat[i * h * w..][..h * w], &dy[i * h * w..][..h * w]);
        // g = dy * act'(x̂) (without branches: the sign of x̂ is a coin toss), then the two
        // means, then dx in place of g.
        for ((g, &d), &xh) in out.iter_mut().zip(dy).zip(xhat) {
            g.write(if xh <= 0.0 { d * slope } else { d });
        }
        // SAFETY: every element was written just above.
        let g = unsafe { &mut *(out as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) };
        let n = g.len() as f64;
        let mean_g = (sum_f64(g, |v| v as f64) / n) as f32;
        let mean_gx = (sum_products_f64(g, xhat) / n) as f32;
        let rstd = rstd[i];
        for (g, &xh) in g.iter_mut().zip(xhat) {
            *g = (*g - mean_g - xh * mean_gx) * rstd;
        }
    });
    FlexTensor::from_data(TensorData::new(dx, shape))
}

/// The sum of `a[i] * b[i]` (each product rounded to float32) in float64, as eight interleaved
/// partial sums (see [`sum_f64`]).
fn sum_products_f64(a: &[f32], b: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| (x * y) as f64)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((lane, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += (x * y) as f64;
        }
    }
    lanes.iter().sum::<f64>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::conv::raw::worst;
    use burn::nn::InstanceNormConfig;
    use burn::tensor::activation::leaky_relu;
    use cyclegan_testkit::pseudo_random;

    /// Output and input gradient equal burn's instance norm followed by the activation, for
    /// ReLU, leaky ReLU and none.
    #[test]
    fn output_and_gradient_match_burns_composition() {
        let device = Device::flex().autodiff();
        let (b, c, h, w) = (2, 3, 5, 7);
        let norm = InstanceNormConfig::new(c).with_affine(false).init(&device);
        for slope in [0.0, 0.2, 1.0] {
            let data = |seed| TensorData::new(pseudo_random(b * c * h * w, seed), [b, c, h, w]);
            let x = Tensor::<4>::from_data(data(1), &device).require_grad();
            let probe = Tensor::<4>::from_data(data(2), &device);
            let run = |ours: bool| {
                let y = if ours {
                    instance_norm_train(x.clone(), norm.epsilon, slope)
                } else {
                    leaky_relu(norm.forward(x.clone()), slope as f64)
                };
                let grads = (y.clone() * probe.clone()).sum().backward();
                (y.inner(), x.grad(&grads).unwrap())
            };
            let (y1, dx1) = run(true);
            let (y2, dx2) = run(false);
            assert!(worst(y1, y2) < 1e-5, "slope {slope}: output");
            let d = worst(dx1, dx2);
            assert!(d < 1e-4, "slope {slope}: input gradient off by {d}");
        }
    }
}
