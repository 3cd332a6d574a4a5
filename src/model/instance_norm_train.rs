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

use super::conv::raw::{SharedMut, fill_planes, flex_values};
use super::norm::{activate_into, normalise_into, normalising};

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
    let hw = h * w;
    let values = flex_values(x);
    let (len, activated) = (values.len(), slope != 1.0);
    // One task per plane: statistics, x̂ and the output while the plane is in cache.
    let mut rstd = vec![0.0f32; values.len() / hw];
    let mut y = Vec::<f32>::with_capacity(if activated { values.len() } else { 0 });
    let (rstd_out, y_out) = (SharedMut::new(&mut rstd), SharedMut::new(&mut y));
    let xhat = fill_planes(values.len(), hw, |i, out| {
        let plane = &values[i * hw..][..hw];
        let (scale, shift) = normalising(plane, epsilon);
        normalise_into(plane, out, scale, shift);
        // SAFETY: element `i` of `rstd` and plane `i` of `y` are this task's alone, inside
        // their buffers; `out` was written whole just above.
        unsafe {
            *rstd_out.ptr().add(i) = scale;
            if activated {
                let xhat = &*(out as *const [std::mem::MaybeUninit<f32>] as *const [f32]);
                activate_into(xhat, y_out.slice(i * hw, hw), slope);
            }
        }
    });
    let xhat = FlexTensor::from_data(TensorData::new(xhat, shape.clone()));
    let y = if activated {
        // SAFETY: every plane was written above.
        unsafe { y.set_len(len) };
        FlexTensor::from_data(TensorData::new(y, shape))
    } else {
        xhat.clone()
    };
    (y, xhat, rstd.into())
}

/// The input's gradient, given the output's `dy`.
fn backward(xhat: &FlexTensor, rstd: &[f32], slope: f32, dy: &FlexTensor) -> FlexTensor {
    let shape = xhat.layout().shape().clone();
    let [_, _, h, w] = shape.dims::<4>();
    let hw = h * w;
    let (xhat, dy) = (flex_values(xhat), flex_values(dy));
    let dx = fill_planes(dy.len(), hw, |i, out| {
        let (xhat, dy) = (&xhat[i * hw..][..hw], &dy[i * hw..][..hw]);
        // g = dy * act'(x̂) (without branches: the sign of x̂ is a coin toss) and the sums of g
        // and g x̂ (float64, eight interleaved lanes each) in one pass, then dx in place of g.
        let (mut sum_g, mut sum_gx) = ([0.0f64; 8], [0.0f64; 8]);
        let mut gradient = |g: &mut std::mem::MaybeUninit<f32>, d: f32, xh: f32, lane: usize| {
            let v = if xh <= 0.0 { d * slope } else { d };
            g.write(v);
            sum_g[lane] += v as f64;
            sum_gx[lane] += (v * xh) as f64;
        };
        let whole = hw / 8 * 8;
        for ((g, d), xh) in out[..whole]
            .chunks_exact_mut(8)
            .zip(dy.chunks_exact(8))
            .zip(xhat.chunks_exact(8))
        {
            for lane in 0..8 {
                gradient(&mut g[lane], d[lane], xh[lane], lane);
            }
        }
        for j in whole..hw {
            gradient(&mut out[j], dy[j], xhat[j], j % 8);
        }
        let n = hw as f64;
        let mean_g = (sum_g.iter().sum::<f64>() / n) as f32;
        let mean_gx = (sum_gx.iter().sum::<f64>() / n) as f32;
        // SAFETY: every element was written just above.
        let g = unsafe { &mut *(out as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) };
        let rstd = rstd[i];
        for (g, &xh) in g.iter_mut().zip(xhat) {
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
