//! Training's small-kernel convolutions on the CPU (the PatchGAN's 4x4 layers; see
//! [`super::ConvPolicy::conv2d_raw`] for why not the generator's 3x3 stride-2 ones): gather +
//! GEMM in plain Rust, in burn's NCHW layout, as one operation with a handwritten backward
//! pass (a burn backend extension).
//!
//! Per image, `cols[(c, ky, kx)][p]` holds the input pixel tap `(ky, kx)` of output pixel `p`
//! reads (zero in the padding); then `Y = W cols` (`[Co, C k k] @ [C k k, P]`). The backward
//! pass gathers `cols` again rather than keeping it (it is `k k` times the input):
//! `dW = dY cols^T`, `dcols = W^T dY`, and each `dcols` value is added to the input pixel it was
//! gathered from. [`super::gemm::conv2d_gemm`] does the same with burn tensor ops, whose
//! autodiff keeps the gathered matrix and runs the scatter-add on one thread.

use burn::backend::autodiff::{Autodiff, checkpoint::strategy::CheckpointStrategy};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;

use super::input_weight_op::{InputWeightKernel, differentiable};
use super::padding::Padding;
use super::raw::{Mat, flex_values, parallel_zeros, product};

/// `x` `[B, C, H, W]` convolved with `weight` `[Co, C, k, k]` plus `bias`, with `stride`, zero
/// padding `padding`; differentiable. `x` must be float32 on burn's CPU backend.
pub fn conv2d_train(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    padding: usize,
) -> Tensor<4> {
    let [_, c, h, w] = x.dims();
    let [co, ci, kh, kw] = weight.dims();
    assert_eq!(
        c, ci,
        "convolution: input has {c} channels, weight expects {ci}"
    );
    assert_eq!(kh, kw, "convolution: square kernels only");
    Padding::Zeros(padding).check(h, w, [kh, kw], "convolution");
    let y = Tensor::<4>::from_dispatch(<Dispatch as GemmCpu>::conv_gemm(
        x.into_dispatch(),
        weight.into_dispatch(),
        stride,
        padding,
    ));
    match bias {
        Some(b) => y + b.reshape([1, co, 1, 1]),
        None => y,
    }
}

/// The operation, for burn's CPU backend with and without autodiff.
#[backend_extension(Flex, Autodiff)]
pub trait GemmCpu: Backend {
    /// [`conv2d_train`] without the bias.
    fn conv_gemm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self>;
}

impl GemmCpu for Flex {
    fn conv_gemm(x: FlexTensor, weight: FlexTensor, stride: usize, padding: usize) -> FlexTensor {
        forward(&x, &weight, Geometry::new(&x, &weight, stride, padding))
    }
}

impl<C: CheckpointStrategy> GemmCpu for Autodiff<Flex, C> {
    fn conv_gemm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self> {
        differentiable::<ConvGemm, C>(x, weight, (stride, padding))
    }
}

/// The kernel, for [`differentiable`].
#[derive(Debug)]
struct ConvGemm;

impl InputWeightKernel for ConvGemm {
    type Settings = (usize, usize);

    fn forward(x: &FlexTensor, weight: &FlexTensor, settings: (usize, usize)) -> FlexTensor {
        let (stride, padding) = settings;
        forward(x, weight, Geometry::new(x, weight, stride, padding))
    }

    fn backward(
        x: &FlexTensor,
        weight: &FlexTensor,
        dy: &FlexTensor,
        settings: (usize, usize),
        want_dx: bool,
    ) -> (Option<FlexTensor>, FlexTensor) {
        let (stride, padding) = settings;
        backward(
            x,
            weight,
            dy,
            Geometry::new(x, weight, stride, padding),
            want_dx,
        )
    }
}

/// One layer's shapes.
#[derive(Clone, Copy)]
struct Geometry {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    co: usize,
    k: usize,
    stride: usize,
    pad: usize,
    ho: usize,
    wo: usize,
}

impl Geometry {
    fn new(x: &FlexTensor, weight: &FlexTensor, stride: usize, pad: usize) -> Self {
        let [b, c, h, w] = x.layout().shape().dims::<4>();
        let [co, _, k, _] = weight.layout().shape().dims::<4>();
        Geometry {
            b,
            c,
            h,
            w,
            co,
            k,
            stride,
            pad,
            ho: (h + 2 * pad - k) / stride + 1,
            wo: (w + 2 * pad - k) / stride + 1,
        }
    }

    /// Rows of `cols` (`C k k`) and output pixels per image.
    fn rows(&self) -> usize {
        self.c * self.k * self.k
    }
    fn pixels(&self) -> usize {
        self.ho * self.wo
    }

    /// The input coordinate output coordinate `o` reads through tap `t` along an axis of `n`
    /// pixels, or `None` in the padding.
    fn source(&self, o: usize, t: usize, n: usize) -> Option<usize> {
        (o * self.stride + t)
            .checked_sub(self.pad)
            .filter(|&i| i < n)
    }

    /// `cols` of one image `x` `[C, H, W]`: `[C k k][P]`, one row per task.
    fn gather(&self, x: &[f32]) -> Vec<f32> {
        let (k, p) = (self.k, self.pixels());
        let mut cols = parallel_zeros(self.rows() * p);
        cols.par_chunks_exact_mut(p)
            .enumerate()
            .for_each(|(r, row)| {
                let (c, ky, kx) = (r / (k * k), r / k % k, r % k);
                let plane = &x[c * self.h * self.w..][..self.h * self.w];
                for oy in 0..self.ho {
                    let Some(iy) = self.source(oy, ky, self.h) else {
                        continue;
                    };
                    let src = &plane[iy * self.w..][..self.w];
                    for (ox, value) in row[oy * self.wo..][..self.wo].iter_mut().enumerate() {
                        if let Some(ix) = self.source(ox, kx, self.w) {
                            *value = src[ix];
                        }
                    }
                }
            });
        cols
    }

    /// Adds each `dcols` value to the pixel of `dx` `[C, H, W]` it was gathered from, one input
    /// channel per task.
    fn scatter(&self, dcols: &[f32], dx: &mut [f32]) {
        let (k, p) = (self.k, self.pixels());
        dx.par_chunks_exact_mut(self.h * self.w)
            .enumerate()
            .for_each(|(c, plane)| {
                for tap in 0..k * k {
                    let (ky, kx) = (tap / k, tap % k);
                    let row = &dcols[(c * k * k + tap) * p..][..p];
                    for oy in 0..self.ho {
                        let Some(iy) = self.source(oy, ky, self.h) else {
                            continue;
                        };
                        let dst = &mut plane[iy * self.w..][..self.w];
                        for (ox, &g) in row[oy * self.wo..][..self.wo].iter().enumerate() {
                            if let Some(ix) = self.source(ox, kx, self.w) {
                                dst[ix] += g;
                            }
                        }
                    }
                }
            });
    }
}

/// The forward pass (no bias).
fn forward(x: &FlexTensor, weight: &FlexTensor, g: Geometry) -> FlexTensor {
    let (input, weight) = (flex_values(x), flex_values(weight));
    let (rows, p, plane) = (g.rows(), g.pixels(), g.c * g.h * g.w);
    let mut out = parallel_zeros(g.b * g.co * p);
    for (image, out) in input
        .chunks_exact(plane)
        .zip(out.chunks_exact_mut(g.co * p))
    {
        let cols = g.gather(image);
        // SAFETY: the operands are whole buffers of these shapes; `out` is borrowed mutably.
        unsafe {
            product(
                g.co,
                p,
                rows,
                Mat::rows(out.as_mut_ptr(), p),
                false,
                Mat::rows(weight.as_ptr(), rows),
                Mat::rows(cols.as_ptr(), p),
                true,
            );
        }
    }
    FlexTensor::from_data(TensorData::new(out, [g.b, g.co, g.ho, g.wo]))
}

/// The gradients of the input (when `want_dx`) and of the weight, given the output's `dy`.
fn backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    dy: &FlexTensor,
    g: Geometry,
    want_dx: bool,
) -> (Option<FlexTensor>, FlexTensor) {
    let (input, weight, dy) = (flex_values(x), flex_values(weight), flex_values(dy));
    let (rows, p, plane) = (g.rows(), g.pixels(), g.c * g.h * g.w);
    let mut dx = want_dx.then(|| parallel_zeros(g.b * plane));
    let mut dw = vec![0.0f32; g.co * rows];
    let mut dcols = if want_dx {
        parallel_zeros(rows * p)
    } else {
        Vec::new()
    };
    for n in 0..g.b {
        let cols = g.gather(&input[n * plane..][..plane]);
        let dy = &dy[n * g.co * p..][..g.co * p];
        // SAFETY: the operands are whole buffers of these shapes; `dw` and `dcols` are
        // borrowed mutably.
        unsafe {
            // dW (+)= dY cols^T: [Co, P] @ [P, C k k].
            product(
                g.co,
                rows,
                p,
                Mat::rows(dw.as_mut_ptr(), rows),
                n > 0,
                Mat::rows(dy.as_ptr(), p),
                Mat::transposed(cols.as_ptr(), p),
                true,
            );
        }
        if let Some(dx) = dx.as_mut() {
            // dcols = W^T dY: [C k k, Co] @ [Co, P].
            // SAFETY: as above.
            unsafe {
                product(
                    rows,
                    p,
                    g.co,
                    Mat::rows(dcols.as_mut_ptr(), p),
                    false,
                    Mat::transposed(weight.as_ptr(), rows),
                    Mat::rows(dy.as_ptr(), p),
                    true,
                );
            }
            g.scatter(&dcols, &mut dx[n * plane..][..plane]);
        }
    }
    (
        dx.map(|dx| FlexTensor::from_data(TensorData::new(dx, [g.b, g.c, g.h, g.w]))),
        FlexTensor::from_data(TensorData::new(dw, [g.co, g.c, g.k, g.k])),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::conv::burn_conv2d;
    use crate::model::conv::raw::gradient_check::{assert_agree, run, tracked};
    use crate::model::conv::raw::worst;

    /// Output and the gradients of input, weight and bias equal burn's convolution for the
    /// generator's and the PatchGAN's shapes (3x3 stride 2, 4x4 stride 2 and 1), odd sizes,
    /// batch 2.
    #[test]
    fn output_and_gradients_match_burns_convolution() {
        for (b, c, co, h, w, k, stride) in [
            (1, 6, 8, 9, 8, 3, 2),
            (2, 5, 3, 8, 7, 4, 2),
            (1, 4, 6, 6, 5, 4, 1),
            (1, 8, 16, 32, 32, 4, 2),
            (1, 8, 16, 32, 32, 3, 2),
            (1, 16, 32, 16, 16, 3, 2),
            (1, 32, 64, 4, 4, 4, 1),
            (1, 64, 1, 3, 3, 4, 1),
        ] {
            let x = tracked([b, c, h, w], 1);
            let wt = tracked([co, c, k, k], 2);
            let bias = tracked([co], 3);
            let padding = Padding::Zeros(1);
            let reference_layer = |x, wt, bias: Option<Tensor<1>>| {
                burn_conv2d(x, wt, bias, [stride, stride], padding)
            };
            let ours = run(
                |x, wt, bias| conv2d_train(x, wt, Some(bias), stride, 1),
                &x,
                &wt,
                &bias,
            );
            let reference = run(
                |x, wt, bias| reference_layer(x, wt, Some(bias)),
                &x,
                &wt,
                &bias,
            );
            let case = format!("{b}x{c}x{h}x{w} -> {co}, {k}x{k}/{stride}");
            assert_agree(ours, reference, &case);
            // An input that needs no gradient (a discriminator's on a detached image).
            let x = x.detach();
            let dw = |ours: bool| {
                let y = if ours {
                    conv2d_train(x.clone(), wt.clone(), None, stride, 1)
                } else {
                    reference_layer(x.clone(), wt.clone(), None)
                };
                wt.grad(&y.sum().backward()).unwrap()
            };
            assert!(
                worst(dw(true), dw(false)) < 1e-3,
                "{case}: weight gradient alone"
            );
        }
    }
}
