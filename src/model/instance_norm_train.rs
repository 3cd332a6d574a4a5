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

use super::conv::raw::flex_values;
use super::norm::{leaky, normalising};

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
    let mut xhat = flex_values(x).into_owned();
    let mut rstd = vec![0.0f32; xhat.len() / (h * w)];
    xhat.par_chunks_mut(h * w)
        .zip(rstd.par_iter_mut())
        .for_each(|(plane, rstd)| {
            let (scale, shift) = normalising(plane, epsilon);
            plane.iter_mut().for_each(|v| *v = *v * scale + shift);
            *rstd = scale;
        });
    let xhat = FlexTensor::from_data(TensorData::new(xhat, shape.clone()));
    let y = if slope == 1.0 {
        xhat.clone()
    } else {
        let mut y = flex_values(&xhat).into_owned();
        y.par_chunks_mut(h * w)
            .for_each(|plane| plane.iter_mut().for_each(|v| *v = leaky(*v, slope)));
        FlexTensor::from_data(TensorData::new(y, shape))
    };
    (y, xhat, rstd.into())
}

/// The input's gradient, given the output's `dy`.
fn backward(xhat: &FlexTensor, rstd: &[f32], slope: f32, dy: &FlexTensor) -> FlexTensor {
    let shape = xhat.layout().shape().clone();
    let [_, _, h, w] = shape.dims::<4>();
    let xhat_values = flex_values(xhat);
    let mut dx = flex_values(dy).into_owned();
    dx.par_chunks_mut(h * w)
        .zip(xhat_values.par_chunks(h * w))
        .zip(rstd.par_iter())
        .for_each(|((plane, xhat), &rstd)| {
            // g = dy * act'(x̂), in place; then the two means.
            let (mut sum_g, mut sum_gx) = (0.0f64, 0.0f64);
            for (g, &xh) in plane.iter_mut().zip(xhat) {
                if xh <= 0.0 {
                    *g *= slope;
                }
                sum_g += *g as f64;
                sum_gx += (*g * xh) as f64;
            }
            let n = plane.len() as f64;
            let (mean_g, mean_gx) = ((sum_g / n) as f32, (sum_gx / n) as f32);
            for (g, &xh) in plane.iter_mut().zip(xhat) {
                *g = (*g - mean_g - xh * mean_gx) * rstd;
            }
        });
    FlexTensor::from_data(TensorData::new(dx, shape))
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
