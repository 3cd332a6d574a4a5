//! The anti-aliased resampling of [`super::antialias`] on the CPU in plain Rust, as one
//! operation with its own backward pass (a burn backend extension, as
//! `instance_norm_train.rs`).
//!
//! Both blurs are separable and linear: along each axis, every output is a weighted sum of at
//! most three inputs (`Taps`). The forward pass runs the rows, then the columns (whole rows
//! at a time, so the inner loops run over contiguous memory); the backward pass scatters the
//! output's gradient through the same taps in reverse order, and needs nothing but the input's
//! shape. burn's composition (padding, strided slices, sums, a stack) makes a pass over memory
//! per op, and autodiff keeps each op's operands.

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

use crate::model::conv::raw::{flex_dims, flex_values};

/// Which blur.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    /// `Downsample`: reflection pad 1, `[1, 2, 1] / 4` per axis, stride 2.
    Down,
    /// `Upsample`: bilinear doubling, `(3 x[m] + x[m -/+ 1]) / 4` with clamped edges.
    Up,
}

/// `x` `[B, C, H, W]` (float32, burn's CPU backend, with autodiff or without) resampled.
pub fn blur(x: Tensor<4>, resample: Resample) -> Tensor<4> {
    Tensor::<4>::from_dispatch(<Dispatch as BlurCpu>::blur(x.into_dispatch(), resample))
}

/// The operation, for burn's CPU backend with and without autodiff.
#[backend_extension(Flex, Autodiff)]
pub trait BlurCpu: Backend {
    /// `x` `[B, C, H, W]` resampled by `resample`.
    fn blur(x: FloatTensor<Self>, resample: Resample) -> FloatTensor<Self>;
}

impl BlurCpu for Flex {
    fn blur(x: FlexTensor, resample: Resample) -> FlexTensor {
        forward(&x, resample)
    }
}

impl<C: CheckpointStrategy> BlurCpu for Autodiff<Flex, C> {
    fn blur(x: FloatTensor<Self>, resample: Resample) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct BlurBackward;

        impl Backward<Flex, 1> for BlurBackward {
            /// The input's shape and the blur: the operation is linear.
            type State = ([usize; 4], Resample);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_x] = ops.parents;
                let dy = grads.consume::<Flex>(&ops.node);
                let (shape, resample) = ops.state;
                if let Some(node) = node_x {
                    grads.register::<Flex>(node.id, backward(&dy, shape, resample));
                }
            }
        }

        match BlurBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let shape = flex_dims(x.primitive());
                let y = forward(x.primitive(), resample);
                prep.finish((shape, resample), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive(), resample)),
        }
    }
}

/// One axis of a blur: for each output index, three (input index, weight) pairs (unused ones
/// weigh 0).
struct Taps(Vec<[(usize, f32); 3]>);

impl Taps {
    /// The taps of `resample` for an axis of `n` inputs.
    fn new(resample: Resample, n: usize) -> Self {
        match resample {
            Resample::Down => {
                // Index k of the reflection-padded axis is input k - 1, mirrored at the ends.
                let reflect = |k: usize| match k {
                    0 => 1,
                    k if k > n => 2 * n - k - 1,
                    k => k - 1,
                };
                let m = (n - 1) / 2 + 1;
                Taps(
                    (0..m)
                        .map(|i| {
                            let k = 2 * i;
                            [
                                (reflect(k), 0.25),
                                (reflect(k + 1), 0.5),
                                (reflect(k + 2), 0.25),
                            ]
                        })
                        .collect(),
                )
            }
            Resample::Up => Taps(
                (0..2 * n)
                    .map(|o| {
                        let m = o / 2;
                        let neighbour = if o % 2 == 0 {
                            m.saturating_sub(1)
                        } else {
                            (m + 1).min(n - 1)
                        };
                        [(m, 0.75), (neighbour, 0.25), (m, 0.0)]
                    })
                    .collect(),
            ),
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// `out[o] = sum w x[i]` over each output's taps.
    fn apply(&self, x: &[f32], out: &mut [f32]) {
        for (o, taps) in out.iter_mut().zip(&self.0) {
            *o = taps.iter().map(|&(i, w)| w * x[i]).sum();
        }
    }

    /// The adjoint of [`Taps::apply`]: `dx[i] += w dout[o]`.
    fn scatter(&self, dout: &[f32], dx: &mut [f32]) {
        for (&d, taps) in dout.iter().zip(&self.0) {
            for &(i, w) in taps {
                dx[i] += w * d;
            }
        }
    }
}

/// The output's shape for an input of `shape`, and the taps along rows and columns.
fn plan(shape: [usize; 4], resample: Resample) -> ([usize; 4], Taps, Taps) {
    let [b, c, h, w] = shape;
    let (rows, cols) = (Taps::new(resample, h), Taps::new(resample, w));
    ([b, c, rows.len(), cols.len()], rows, cols)
}

fn forward(x: &FlexTensor, resample: Resample) -> FlexTensor {
    let shape = flex_dims(x);
    let [_, _, h, w] = shape;
    let (out_shape, rows, cols) = plan(shape, resample);
    let [_, _, ho, wo] = out_shape;
    let x = flex_values(x);
    let mut y = vec![0.0f32; out_shape.iter().product()];
    y.par_chunks_mut(ho * wo)
        .zip(x.par_chunks(h * w))
        .for_each(|(out, plane)| {
            // Each input row blurred along its width, then output rows as sums of those.
            let mut across = vec![0.0f32; h * wo];
            for (row, t) in plane.chunks(w).zip(across.chunks_mut(wo)) {
                cols.apply(row, t);
            }
            for (out_row, taps) in out.chunks_mut(wo).zip(&rows.0) {
                out_row.fill(0.0);
                for &(i, weight) in taps {
                    let t = &across[i * wo..(i + 1) * wo];
                    out_row
                        .iter_mut()
                        .zip(t)
                        .for_each(|(o, &v)| *o += weight * v);
                }
            }
        });
    FlexTensor::from_data(TensorData::new(y, out_shape))
}

/// The input's gradient (of `shape`) given the output's `dy`.
fn backward(dy: &FlexTensor, shape: [usize; 4], resample: Resample) -> FlexTensor {
    let [_, _, h, w] = shape;
    let (out_shape, rows, cols) = plan(shape, resample);
    let [_, _, ho, wo] = out_shape;
    debug_assert_eq!(flex_dims(dy), out_shape);
    let dy = flex_values(dy);
    let mut dx = vec![0.0f32; shape.iter().product()];
    dx.par_chunks_mut(h * w)
        .zip(dy.par_chunks(ho * wo))
        .for_each(|(dplane, dout)| {
            let mut across = vec![0.0f32; h * wo];
            for (d_row, taps) in dout.chunks(wo).zip(&rows.0) {
                for &(i, weight) in taps {
                    let t = &mut across[i * wo..(i + 1) * wo];
                    t.iter_mut().zip(d_row).for_each(|(t, &d)| *t += weight * d);
                }
            }
            for (t, row) in across.chunks(wo).zip(dplane.chunks_mut(w)) {
                cols.scatter(t, row);
            }
        });
    FlexTensor::from_data(TensorData::new(dx, shape))
}
