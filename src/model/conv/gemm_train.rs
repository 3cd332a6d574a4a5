//! Training's convolutions other than the 3x3 stride-1 ones on the CPU (the generator's stride-2
//! layers and RGB head, the PatchGAN's 4x4 layers; see [`super::ConvPolicy::conv2d_raw`] for why
//! not the 3-channel stem): gather + GEMM in plain Rust, in burn's NCHW layout, as one operation
//! with a handwritten backward pass (a burn backend extension).
//!
//! Two layouts, whichever gathers the smaller side:
//!
//! - gather the input (most layers): per image, `cols[(ky, kx, c)][p]` holds the input pixel tap
//!   `(ky, kx)` of output pixel `p` reads (through the padding); then `Y = W cols`
//!   (`[Co, k k C] @ [k k C, P]`: taps first, the order in which [`super::gemm::conv2d_gemm`]
//!   sums; with the stride-2 layers moved here, `tests/parity.rs` gives the same figures). The
//!   backward pass gathers `cols` again rather than keeping it (it is `k k` times the input):
//!   `dW = dY cols^T`, `dcols = W^T dY`, and each `dcols` value is added to the input pixel it
//!   was gathered from.
//! - gather the output (stride 1, fewer output than input channels: the 64 -> 3 head, whose
//!   `cols` would be 49 times its 64-channel input): `Z = W' Xp` (`[Co k k, C] @ [C, Hp Wp]`,
//!   `Xp` the padded input), then each output pixel sums its `k k` taps of `Z`. Backward:
//!   `S[(co, ky, kx)]` is `dY[co]` shifted by the tap, `dW' = S Xp^T`, `dXp = W'^T S`, and the
//!   padding's gradient folds back onto the pixels it mirrors.
//!
//! [`super::gemm::conv2d_gemm`] does the first with burn tensor ops, whose autodiff keeps the
//! gathered matrix and runs the scatter-add on one thread.

use burn::backend::autodiff::{Autodiff, checkpoint::strategy::CheckpointStrategy};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;

use super::input_weight_op::{InputWeightKernel, differentiable};
use super::padding::Padding;
use super::raw::{Mat, fill_planes, flex_values, parallel_zeros, product, product_long, unwritten};

/// `x` `[B, C, H, W]` convolved with `weight` `[Co, C, k, k]` plus `bias`, with `stride` and
/// `padding`; differentiable. `x` must be float32 on burn's CPU backend.
pub fn conv2d_train(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    padding: Padding,
) -> Tensor<4> {
    let [_, c, h, w] = x.dims();
    let [co, ci, kh, kw] = weight.dims();
    assert_eq!(
        c, ci,
        "convolution: input has {c} channels, weight expects {ci}"
    );
    assert_eq!(kh, kw, "convolution: square kernels only");
    padding.check(h, w, [kh, kw], "convolution");
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
        padding: Padding,
    ) -> FloatTensor<Self>;
}

impl GemmCpu for Flex {
    fn conv_gemm(x: FlexTensor, weight: FlexTensor, stride: usize, padding: Padding) -> FlexTensor {
        ConvGemm::forward(&x, &weight, (stride, padding))
    }
}

impl<C: CheckpointStrategy> GemmCpu for Autodiff<Flex, C> {
    fn conv_gemm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        padding: Padding,
    ) -> FloatTensor<Self> {
        differentiable::<ConvGemm, C>(x, weight, (stride, padding))
    }
}

/// The kernel, for [`differentiable`].
#[derive(Debug)]
struct ConvGemm;

impl InputWeightKernel for ConvGemm {
    type Settings = (usize, Padding);

    fn forward(x: &FlexTensor, weight: &FlexTensor, settings: (usize, Padding)) -> FlexTensor {
        let (stride, padding) = settings;
        let g = Geometry::new(x, weight, stride, padding);
        if g.gathers_output() {
            forward_gathering_output(x, weight, g)
        } else {
            forward(x, weight, g)
        }
    }

    fn backward(
        x: &FlexTensor,
        weight: &FlexTensor,
        dy: &FlexTensor,
        settings: (usize, Padding),
        want_dx: bool,
        want_dw: bool,
    ) -> (Option<FlexTensor>, Option<FlexTensor>) {
        let (stride, padding) = settings;
        let g = Geometry::new(x, weight, stride, padding);
        if g.gathers_output() {
            let (dx, dw) = backward_gathering_output(x, weight, dy, g, want_dx);
            (dx, Some(dw))
        } else {
            backward(x, weight, dy, g, want_dx, want_dw)
        }
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
    padding: Padding,
    ho: usize,
    wo: usize,
}

impl Geometry {
    fn new(x: &FlexTensor, weight: &FlexTensor, stride: usize, padding: Padding) -> Self {
        let [b, c, h, w] = x.layout().shape().dims::<4>();
        let [co, _, k, _] = weight.layout().shape().dims::<4>();
        let pad = padding.amount();
        Geometry {
            b,
            c,
            h,
            w,
            co,
            k,
            stride,
            padding,
            ho: (h + 2 * pad - k) / stride + 1,
            wo: (w + 2 * pad - k) / stride + 1,
        }
    }

    /// Whether the output side is the smaller one to gather (see the module's docs).
    fn gathers_output(&self) -> bool {
        self.stride == 1 && self.co < self.c
    }

    /// Rows of `cols` (`k k C`) and output pixels per image.
    fn rows(&self) -> usize {
        self.c * self.k * self.k
    }
    fn pixels(&self) -> usize {
        self.ho * self.wo
    }

    /// The input coordinate output coordinate `o` reads through tap `t` along an axis of `n`
    /// pixels, or `None` in zero padding.
    fn source(&self, o: usize, t: usize, n: usize) -> Option<usize> {
        let i = (o * self.stride + t) as i64 - self.padding.amount() as i64;
        self.padding.source(i, n)
    }

    /// The output coordinates `lo..hi` (of `m`) whose tap `t` reads inside an axis of `n`
    /// pixels, not the padding: there, gathering is a plain (strided) copy.
    fn inside(&self, t: usize, n: usize, m: usize) -> (usize, usize) {
        let pad = self.padding.amount();
        // o * stride + t - pad in 0..n.
        let lo = pad.saturating_sub(t).div_ceil(self.stride);
        let hi = if n + pad > t {
            ((n + pad - t - 1) / self.stride + 1).min(m)
        } else {
            0
        };
        (lo.min(hi), hi)
    }

    /// `cols` of one image `x` `[C, H, W]`: `[k k C][P]`, one row per task.
    fn gather(&self, x: &[f32]) -> Vec<f32> {
        let (k, p) = (self.k, self.pixels());
        // SAFETY: every element is written below (zero where the tap reads zero padding).
        let mut cols = unsafe { unwritten(self.rows() * p) };
        cols.par_chunks_exact_mut(p)
            .enumerate()
            .for_each(|(r, row)| {
                let (tap, c) = (r / self.c, r % self.c);
                let (ky, kx) = (tap / k, tap % k);
                let plane = &x[c * self.h * self.w..][..self.h * self.w];
                for oy in 0..self.ho {
                    let dst = &mut row[oy * self.wo..][..self.wo];
                    let Some(iy) = self.source(oy, ky, self.h) else {
                        dst.fill(0.0);
                        continue;
                    };
                    let src = &plane[iy * self.w..][..self.w];
                    let (lo, hi) = self.inside(kx, self.w, self.wo);
                    let first = lo * self.stride + kx - self.padding.amount();
                    if self.stride == 1 {
                        // A plain copy (the strided loop below does not vectorise).
                        dst[lo..hi].copy_from_slice(&src[first..first + hi - lo]);
                    } else {
                        for (ox, value) in dst[lo..hi].iter_mut().enumerate() {
                            *value = src[first + ox * self.stride];
                        }
                    }
                    for ox in (0..lo).chain(hi..self.wo) {
                        dst[ox] = self.source(ox, kx, self.w).map_or(0.0, |ix| src[ix]);
                    }
                }
            });
        cols
    }

    /// Adds each `dcols` value to the pixel of `dx` `[C, H, W]` it was gathered from, one input
    /// channel per task. The taps go last to first: each pixel then receives its terms in the
    /// order of the output pixels that read it, the order [`super::gemm::conv2d_gemm`]'s
    /// scatter-add sums them in (the same rounding).
    fn scatter(&self, dcols: &[f32], dx: &mut [f32]) {
        let (k, p) = (self.k, self.pixels());
        dx.par_chunks_exact_mut(self.h * self.w)
            .enumerate()
            .for_each(|(c, plane)| {
                for tap in (0..k * k).rev() {
                    let (ky, kx) = (tap / k, tap % k);
                    let row = &dcols[(tap * self.c + c) * p..][..p];
                    for oy in 0..self.ho {
                        let Some(iy) = self.source(oy, ky, self.h) else {
                            continue;
                        };
                        let dst = &mut plane[iy * self.w..][..self.w];
                        let src = &row[oy * self.wo..][..self.wo];
                        let (lo, hi) = self.inside(kx, self.w, self.wo);
                        let first = lo * self.stride + kx - self.padding.amount();
                        if self.stride == 1 {
                            let dst = &mut dst[first..first + hi - lo];
                            dst.iter_mut().zip(&src[lo..hi]).for_each(|(d, &g)| *d += g);
                        } else {
                            for (ox, &g) in src[lo..hi].iter().enumerate() {
                                dst[first + ox * self.stride] += g;
                            }
                        }
                        for ox in (0..lo).chain(hi..self.wo) {
                            if let Some(ix) = self.source(ox, kx, self.w) {
                                dst[ix] += src[ox];
                            }
                        }
                    }
                }
            });
    }

    /// The input coordinate that coordinate `i` of the padded axis (of `n` input pixels) copies,
    /// or `None` in zero padding.
    fn unpadded(&self, i: usize, n: usize) -> Option<usize> {
        self.padding
            .source(i as i64 - self.padding.amount() as i64, n)
    }

    /// Height and width of the padded input.
    fn padded(&self) -> (usize, usize) {
        let pad = 2 * self.padding.amount();
        (self.h + pad, self.w + pad)
    }

    /// One image `x` `[C, H, W]` padded: `[C, Hp, Wp]`.
    fn pad(&self, x: &[f32]) -> Vec<f32> {
        let (hp, wp) = self.padded();
        let mut out = parallel_zeros(self.c * hp * wp);
        out.par_chunks_exact_mut(hp * wp)
            .zip(x.par_chunks_exact(self.h * self.w))
            .for_each(|(out, plane)| {
                for (py, row) in out.chunks_exact_mut(wp).enumerate() {
                    let Some(iy) = self.unpadded(py, self.h) else {
                        continue;
                    };
                    let src = &plane[iy * self.w..][..self.w];
                    let pad = self.padding.amount();
                    row[pad..pad + self.w].copy_from_slice(src);
                    for px in (0..pad).chain(pad + self.w..wp) {
                        if let Some(ix) = self.unpadded(px, self.w) {
                            row[px] = src[ix];
                        }
                    }
                }
            });
        out
    }

    /// The adjoint of [`Geometry::pad`]: adds each padded pixel's gradient to the pixel of
    /// `dx` `[C, H, W]` it copies.
    fn unpad(&self, dxp: &[f32], dx: &mut [f32]) {
        let (hp, wp) = self.padded();
        dx.par_chunks_exact_mut(self.h * self.w)
            .zip(dxp.par_chunks_exact(hp * wp))
            .for_each(|(plane, padded)| {
                for (py, row) in padded.chunks_exact(wp).enumerate() {
                    let Some(iy) = self.unpadded(py, self.h) else {
                        continue;
                    };
                    let dst = &mut plane[iy * self.w..][..self.w];
                    let pad = self.padding.amount();
                    dst.iter_mut()
                        .zip(&row[pad..pad + self.w])
                        .for_each(|(d, &g)| *d += g);
                    for px in (0..pad).chain(pad + self.w..wp) {
                        if let Some(ix) = self.unpadded(px, self.w) {
                            dst[ix] += row[px];
                        }
                    }
                }
            });
    }

    /// `weight` `[Co, C, k, k]` as `W'` `[Co k k, C]`, one filter per task (the PatchGAN's
    /// 512-filter weight is 2 million floats).
    fn weight_by_tap(&self, weight: &[f32]) -> Vec<f32> {
        let (c, kk) = (self.c, self.k * self.k);
        fill_planes(weight.len(), c * kk, |co, out| {
            let filters = &weight[co * c * kk..][..c * kk];
            for (r, row) in out.chunks_exact_mut(c).enumerate() {
                for (ci, v) in row.iter_mut().enumerate() {
                    v.write(filters[ci * kk + r]);
                }
            }
        })
    }

    /// The inverse of [`Geometry::weight_by_tap`].
    fn weight_from_taps(&self, by_tap: &[f32]) -> Vec<f32> {
        let (c, kk) = (self.c, self.k * self.k);
        fill_planes(by_tap.len(), c * kk, |co, out| {
            let rows = &by_tap[co * c * kk..][..c * kk];
            for (ci, taps) in out.chunks_exact_mut(kk).enumerate() {
                for (t, v) in taps.iter_mut().enumerate() {
                    v.write(rows[t * c + ci]);
                }
            }
        })
    }
}

/// The forward pass gathering the input (no bias).
fn forward(x: &FlexTensor, weight: &FlexTensor, g: Geometry) -> FlexTensor {
    let input = flex_values(x);
    // `[Co, k k C]`, the order of `cols`' rows.
    let weight = g.weight_by_tap(&flex_values(weight));
    let (rows, p, plane) = (g.rows(), g.pixels(), g.c * g.h * g.w);
    // SAFETY: each image's product below writes its whole share.
    let mut out = unsafe { unwritten(g.b * g.co * p) };
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

/// The gradients of the input (when `want_dx`) and of the weight (when `want_dw`), given the
/// output's `dy`, gathering the input.
fn backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    dy: &FlexTensor,
    g: Geometry,
    want_dx: bool,
    want_dw: bool,
) -> (Option<FlexTensor>, Option<FlexTensor>) {
    let (input, dy) = (flex_values(x), flex_values(dy));
    let weight = g.weight_by_tap(&flex_values(weight));
    let (rows, p, plane) = (g.rows(), g.pixels(), g.c * g.h * g.w);
    let mut dx = want_dx.then(|| parallel_zeros(g.b * plane));
    let mut dw = want_dw.then(|| vec![0.0f32; g.co * rows]);
    // SAFETY: each image's product below writes all of it (overwriting).
    let mut dcols = if want_dx {
        unsafe { unwritten(rows * p) }
    } else {
        Vec::new()
    };
    for n in 0..g.b {
        let dy = &dy[n * g.co * p..][..g.co * p];
        if let Some(dw) = dw.as_mut() {
            let cols = g.gather(&input[n * plane..][..plane]);
            // dW (+)= dY cols^T: [Co, P] @ [P, k k C].
            // SAFETY: the operands are whole buffers of these shapes; `dw` is borrowed mutably.
            unsafe {
                product_long(
                    g.co,
                    rows,
                    p,
                    Mat::rows(dw.as_mut_ptr(), rows),
                    n > 0,
                    Mat::rows(dy.as_ptr(), p),
                    Mat::transposed(cols.as_ptr(), p),
                );
            }
        }
        if let Some(dx) = dx.as_mut() {
            // dcols = W^T dY: [k k C, Co] @ [Co, P].
            // SAFETY: the operands are whole buffers of these shapes; `dcols` is borrowed
            // mutably.
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
        dw.map(|dw| {
            FlexTensor::from_data(TensorData::new(
                g.weight_from_taps(&dw),
                [g.co, g.c, g.k, g.k],
            ))
        }),
    )
}

/// The forward pass gathering the output (stride 1, no bias).
fn forward_gathering_output(x: &FlexTensor, weight: &FlexTensor, g: Geometry) -> FlexTensor {
    let input = flex_values(x);
    let by_tap = g.weight_by_tap(&flex_values(weight));
    let (k, kk, plane) = (g.k, g.k * g.k, g.c * g.h * g.w);
    let (hp, wp) = g.padded();
    let mut out = parallel_zeros(g.b * g.co * g.pixels());
    // Written whole by each image's product before it is read (never zeroed).
    let mut z = Vec::<f32>::with_capacity(g.co * kk * hp * wp);
    for (image, out) in input
        .chunks_exact(plane)
        .zip(out.chunks_exact_mut(g.co * g.pixels()))
    {
        let padded = g.pad(image);
        // Z = W' Xp: [Co k k, C] @ [C, Hp Wp].
        // SAFETY: the operands are whole buffers of these shapes; `z` is borrowed mutably.
        unsafe {
            product(
                g.co * kk,
                hp * wp,
                g.c,
                Mat::rows(z.as_mut_ptr(), hp * wp),
                false,
                Mat::rows(by_tap.as_ptr(), g.c),
                Mat::rows(padded.as_ptr(), hp * wp),
                true,
            );
            // SAFETY: the product wrote every element.
            z.set_len(g.co * kk * hp * wp);
        }
        // Output row (co, oy) sums, over the taps, row oy + ky of Z[(co, tap)] from column kx.
        out.par_chunks_exact_mut(g.wo)
            .enumerate()
            .for_each(|(r, row)| {
                let (co, oy) = (r / g.ho, r % g.ho);
                for tap in 0..kk {
                    let (ky, kx) = (tap / k, tap % k);
                    let src = &z[((co * kk + tap) * hp + oy + ky) * wp + kx..][..g.wo];
                    row.iter_mut().zip(src).for_each(|(o, &v)| *o += v);
                }
            });
    }
    FlexTensor::from_data(TensorData::new(out, [g.b, g.co, g.ho, g.wo]))
}

/// The gradients of the input (when `want_dx`) and of the weight, given the output's `dy`,
/// gathering the output.
fn backward_gathering_output(
    x: &FlexTensor,
    weight: &FlexTensor,
    dy: &FlexTensor,
    g: Geometry,
    want_dx: bool,
) -> (Option<FlexTensor>, FlexTensor) {
    let (input, dy) = (flex_values(x), flex_values(dy));
    let by_tap = g.weight_by_tap(&flex_values(weight));
    let (k, kk, p, plane) = (g.k, g.k * g.k, g.pixels(), g.c * g.h * g.w);
    let (hp, wp) = g.padded();
    let mut dx = want_dx.then(|| parallel_zeros(g.b * plane));
    let mut dw_by_tap = vec![0.0f32; g.co * kk * g.c];
    let mut dxp = if want_dx {
        parallel_zeros(g.c * hp * wp)
    } else {
        Vec::new()
    };
    for n in 0..g.b {
        let padded = g.pad(&input[n * plane..][..plane]);
        let dy = &dy[n * g.co * p..][..g.co * p];
        // S[(co, ky, kx)]: dY[co] placed at offset (ky, kx) of the padded grid, zero elsewhere.
        let mut shifted = parallel_zeros(g.co * kk * hp * wp);
        shifted
            .par_chunks_exact_mut(hp * wp)
            .enumerate()
            .for_each(|(r, s)| {
                let (co, ky, kx) = (r / kk, r % kk / k, r % k);
                for (oy, d) in dy[co * p..][..p].chunks_exact(g.wo).enumerate() {
                    s[(oy + ky) * wp + kx..][..g.wo].copy_from_slice(d);
                }
            });
        // SAFETY: the operands are whole buffers of these shapes; `dw_by_tap` and `dxp` are
        // borrowed mutably.
        unsafe {
            // dW' (+)= S Xp^T: [Co k k, Hp Wp] @ [Hp Wp, C].
            product_long(
                g.co * kk,
                g.c,
                hp * wp,
                Mat::rows(dw_by_tap.as_mut_ptr(), g.c),
                n > 0,
                Mat::rows(shifted.as_ptr(), hp * wp),
                Mat::transposed(padded.as_ptr(), hp * wp),
            );
        }
        if let Some(dx) = dx.as_mut() {
            // SAFETY: as above.
            unsafe {
                // dXp = W'^T S: [C, Co k k] @ [Co k k, Hp Wp].
                product(
                    g.c,
                    hp * wp,
                    g.co * kk,
                    Mat::rows(dxp.as_mut_ptr(), hp * wp),
                    false,
                    Mat::transposed(by_tap.as_ptr(), g.c),
                    Mat::rows(shifted.as_ptr(), hp * wp),
                    true,
                );
            }
            g.unpad(&dxp, &mut dx[n * plane..][..plane]);
        }
    }
    (
        dx.map(|dx| FlexTensor::from_data(TensorData::new(dx, [g.b, g.c, g.h, g.w]))),
        FlexTensor::from_data(TensorData::new(
            g.weight_from_taps(&dw_by_tap),
            [g.co, g.c, g.k, g.k],
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::conv::burn_conv2d;
    use crate::model::conv::raw::gradient_check::{assert_agree, run, tracked};
    use crate::model::conv::raw::worst;

    /// Output and the gradients of input, weight and bias equal burn's convolution for the
    /// generator's and the PatchGAN's shapes (the 7x7 RGB stem and head with reflection
    /// padding, 3x3 stride 2, 4x4 stride 2 and 1), both layouts, odd sizes, batch 2.
    #[test]
    fn output_and_gradients_match_burns_convolution() {
        let (zeros, reflect) = (Padding::Zeros(1), Padding::Reflect(3));
        for (b, c, co, h, w, k, stride, padding) in [
            (1, 6, 8, 9, 8, 3, 2, zeros),
            (2, 5, 3, 8, 7, 4, 2, zeros),
            (1, 4, 6, 6, 5, 4, 1, zeros),
            (1, 8, 16, 32, 32, 4, 2, zeros),
            (1, 8, 16, 32, 32, 3, 2, zeros),
            (1, 16, 32, 16, 16, 3, 2, zeros),
            (1, 32, 64, 4, 4, 4, 1, zeros),
            (1, 64, 1, 3, 3, 4, 1, zeros),
            (1, 3, 64, 4, 4, 4, 2, zeros),
            (2, 3, 8, 9, 7, 7, 1, reflect),
            (2, 8, 3, 9, 7, 7, 1, reflect),
            (1, 64, 3, 16, 16, 7, 1, reflect),
            (1, 6, 4, 5, 6, 3, 1, zeros),
        ] {
            let x = tracked([b, c, h, w], 1);
            let wt = tracked([co, c, k, k], 2);
            let bias = tracked([co], 3);
            let reference_layer = |x, wt, bias: Option<Tensor<1>>| {
                burn_conv2d(x, wt, bias, [stride, stride], padding)
            };
            let ours = run(
                |x, wt, bias| conv2d_train(x, wt, Some(bias), stride, padding),
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
            let case = format!("{b}x{c}x{h}x{w} -> {co}, {k}x{k}/{stride}, {padding:?}");
            assert_agree(ours, reference, &case);
            // An input that needs no gradient (a discriminator's on a detached image).
            let x = x.detach();
            let dw = |ours: bool| {
                let y = if ours {
                    conv2d_train(x.clone(), wt.clone(), None, stride, padding)
                } else {
                    reference_layer(x.clone(), wt.clone(), None)
                };
                wt.grad(&y.sum().backward()).unwrap()
            };
            assert!(
                worst(dw(true), dw(false)) < 1e-3,
                "{case}: weight gradient alone"
            );
            // A weight that needs none (a frozen discriminator in the generator's step): the
            // input's gradient alone, and none for the weight.
            let (x, frozen) = (x.require_grad(), wt.clone().set_require_grad(false));
            let dx = |ours: bool| {
                let y = if ours {
                    conv2d_train(x.clone(), frozen.clone(), None, stride, padding)
                } else {
                    reference_layer(x.clone(), frozen.clone(), None)
                };
                let grads = y.sum().backward();
                assert!(frozen.grad(&grads).is_none(), "{case}: frozen weight");
                x.grad(&grads).unwrap()
            };
            assert!(
                worst(dx(true), dx(false)) < 1e-4,
                "{case}: input gradient alone"
            );
        }
    }
}
