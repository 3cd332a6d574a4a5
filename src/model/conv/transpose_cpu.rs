//! The ResNet generator's upsampling layers on the CPU: a 3x3 transposed convolution, stride 2,
//! padding 1, output padding 1 (PyTorch's `ConvTranspose2d(k=3, s=2, p=1, output_padding=1)`),
//! as one operation with a handwritten backward pass (a burn backend extension), in training
//! and at inference.
//!
//! Output pixel `(2m + a, 2n + b)` receives input pixel `(i, j)` through tap `(ky, kx)` where
//! `2i - 1 + ky = 2m + a`: an even row takes tap row 1 from input row `m`, an odd row tap row 2
//! from row `m` and tap row 0 from row `m + 1` (columns alike). So each of the 9 taps moves one
//! input, shifted by 0 or 1 row and column, into one of the 4 output phases:
//! `Y[phase] += W[tap]^T X[shift]`, a `[Co, C] @ [C, H W]` product per tap. The backward pass is
//! the same products transposed: `dX[shift] += W[tap] dY[phase]` and
//! `dW[tap] = X[shift] dY[phase]^T`. burn's transposed convolution (and its gradients) took
//! 0.34 s of a 2.9 s iteration at 128 px (BENCHMARKS.md).

use burn::backend::autodiff::{Autodiff, checkpoint::strategy::CheckpointStrategy};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;

use super::input_weight_op::{InputWeightKernel, differentiable};
use super::raw::{Mat, flex_dims, flex_values, parallel_zeros, product, product_long, unwritten};

/// `x` `[B, C, H, W]` through the transposed convolution of `weight` `[C, Co, 3, 3]` (stride 2,
/// padding 1, output padding 1) plus `bias`, giving `[B, Co, 2H, 2W]`; differentiable. `x`
/// must be float32 on burn's CPU backend (with autodiff, or without).
pub fn upsample3x3(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>) -> Tensor<4> {
    let [_, c, _, _] = x.dims();
    let [ci, co, kh, kw] = weight.dims();
    assert_eq!(
        c, ci,
        "transposed convolution: input has {c} channels, weight expects {ci}"
    );
    assert_eq!(
        [kh, kw],
        [3, 3],
        "transposed convolution: kernel must be 3x3"
    );
    let y = Tensor::<4>::from_dispatch(<Dispatch as UpsampleCpu>::upsample3x3(
        x.into_dispatch(),
        weight.into_dispatch(),
    ));
    match bias {
        Some(b) => y + b.reshape([1, co, 1, 1]),
        None => y,
    }
}

/// The operation, for burn's CPU backend with and without autodiff.
#[backend_extension(Flex, Autodiff)]
pub trait UpsampleCpu: Backend {
    /// [`upsample3x3`] without the bias.
    fn upsample3x3(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl UpsampleCpu for Flex {
    fn upsample3x3(x: FlexTensor, weight: FlexTensor) -> FlexTensor {
        forward(&x, &weight)
    }
}

impl<C: CheckpointStrategy> UpsampleCpu for Autodiff<Flex, C> {
    fn upsample3x3(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        differentiable::<Upsample3x3, C>(x, weight, ())
    }
}

/// The kernel, for [`differentiable`].
#[derive(Debug)]
struct Upsample3x3;

impl InputWeightKernel for Upsample3x3 {
    type Settings = ();

    fn forward(x: &FlexTensor, weight: &FlexTensor, _settings: ()) -> FlexTensor {
        forward(x, weight)
    }

    fn backward(
        x: &FlexTensor,
        weight: &FlexTensor,
        dy: &FlexTensor,
        _settings: (),
        want_dx: bool,
        _want_dw: bool,
    ) -> (Option<FlexTensor>, Option<FlexTensor>) {
        let (dx, dw) = backward(x, weight, dy, want_dx);
        (dx, Some(dw))
    }
}

/// For each tap `ky * 3 + kx`: the output phase it feeds (`2 * (row odd) + (column odd)`) and
/// the input shift it reads (`2 * (one row down) + (one column right)`).
const TAPS: [(usize, usize); 9] = {
    // Tap row 1 -> even rows from row m; 2 -> odd rows from m; 0 -> odd rows from m + 1.
    const ROW: [(usize, usize); 3] = [(1, 1), (0, 0), (1, 0)];
    let mut taps = [(0, 0); 9];
    let mut k = 0;
    while k < 9 {
        let (ry, sy) = ROW[k / 3];
        let (rx, sx) = ROW[k % 3];
        taps[k] = (ry * 2 + rx, sy * 2 + sx);
        k += 1;
    }
    taps
};

/// `x` `[C, H, W]` moved by `shift` (`2 dy + dx`): `x[c][i + dy][j + dx]`, zero past the
/// edge; written into `buffer` unless the shift is 0. One shift at a time keeps the layer's
/// extra memory to one copy of its input (at 1080p the upsampling input is 0.25 GiB).
fn shifted<'a>(
    x: &'a [f32],
    c: usize,
    h: usize,
    w: usize,
    shift: usize,
    buffer: &'a mut Vec<f32>,
) -> &'a [f32] {
    if shift == 0 {
        return x;
    }
    let (dy, dx, plane) = (shift / 2, shift % 2, h * w);
    if buffer.len() != c * plane {
        // SAFETY: the loop below writes every element.
        *buffer = unsafe { unwritten(c * plane) };
    }
    buffer
        .par_chunks_exact_mut(plane)
        .zip(x.par_chunks_exact(plane))
        .for_each(|(dst, src)| {
            for (i, row) in dst.chunks_exact_mut(w).enumerate() {
                if i + dy < h {
                    row[..w - dx].copy_from_slice(&src[(i + dy) * w + dx..][..w - dx]);
                    row[w - dx..].fill(0.0);
                } else {
                    row.fill(0.0);
                }
            }
        });
    buffer
}

/// The taps that read the input moved by `shift`, with the output phase each feeds.
fn taps_of(shift: usize) -> impl Iterator<Item = (usize, usize)> {
    TAPS.iter()
        .enumerate()
        .filter(move |(_, (_, s))| *s == shift)
        .map(|(tap, &(phase, _))| (tap, phase))
}

/// The forward pass (no bias).
fn forward(x: &FlexTensor, weight: &FlexTensor) -> FlexTensor {
    let [b, c, h, w] = flex_dims(x);
    let [_, co, ..] = flex_dims(weight);
    let (input, weight) = (flex_values(x), flex_values(weight));
    let plane = h * w;
    // SAFETY: the interleaving below writes every element.
    let mut out = unsafe { unwritten(b * co * 4 * plane) };
    // Written by each phase's first product before it is read.
    let mut phases = Vec::<f32>::with_capacity(4 * co * plane);
    let mut moved = Vec::new();
    for (image, out) in input
        .chunks_exact(c * plane)
        .zip(out.chunks_exact_mut(co * 4 * plane))
    {
        let mut started = [false; 4];
        for shift in 0..4 {
            let xs = shifted(image, c, h, w, shift, &mut moved);
            for (tap, phase) in taps_of(shift) {
                // Y[phase] (+)= W[tap]^T X[shift]: W[tap]^T[o][c] = weight[c][o][tap].
                // Each product over all threads: they are large and run one at a time.
                // SAFETY: all three operands lie inside their buffers; one product at a time.
                unsafe {
                    product(
                        co,
                        plane,
                        c,
                        Mat {
                            ptr: phases.as_mut_ptr().add(phase * co * plane),
                            rs: plane,
                            cs: 1,
                        },
                        started[phase],
                        Mat {
                            ptr: weight.as_ptr().add(tap),
                            rs: 9,
                            cs: co * 9,
                        },
                        Mat {
                            ptr: xs.as_ptr(),
                            rs: plane,
                            cs: 1,
                        },
                        true,
                    );
                }
                started[phase] = true;
            }
        }
        // SAFETY: every phase has a first product, which wrote all of its elements.
        unsafe { phases.set_len(4 * co * plane) };
        // Interleave the phases: out[o][2m + a][2n + b] = Y[2a + b][o][m][n].
        out.par_chunks_exact_mut(4 * plane)
            .enumerate()
            .for_each(|(o, out)| {
                for m in 0..h {
                    for a in 0..2 {
                        let row = &mut out[(2 * m + a) * 2 * w..][..2 * w];
                        let even = &phases[((2 * a) * co + o) * plane + m * w..][..w];
                        let odd = &phases[((2 * a + 1) * co + o) * plane + m * w..][..w];
                        for (pair, (&e, &d)) in row.chunks_exact_mut(2).zip(even.iter().zip(odd)) {
                            pair[0] = e;
                            pair[1] = d;
                        }
                    }
                }
            });
    }
    FlexTensor::from_data(TensorData::new(out, [b, co, 2 * h, 2 * w]))
}

/// The gradients of the input (when `want_dx`) and of the weight, given the output's `dy`.
fn backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    dy: &FlexTensor,
    want_dx: bool,
) -> (Option<FlexTensor>, FlexTensor) {
    let [b, c, h, w] = flex_dims(x);
    let [_, co, ..] = flex_dims(weight);
    let (input, weight, dy) = (flex_values(x), flex_values(weight), flex_values(dy));
    let plane = h * w;
    let mut dx = want_dx.then(|| parallel_zeros(b * c * plane));
    // Written before they are read: `dw` by the first image's products, `dxs` (one shift's
    // share of dx) by each shift's first product, `phases` by the split below.
    let mut dw = Vec::<f32>::with_capacity(c * co * 9);
    // SAFETY: the split below writes all of it for each image before the products read it.
    let mut phases = unsafe { unwritten(4 * co * plane) };
    let mut dxs = Vec::<f32>::with_capacity(if want_dx { c * plane } else { 0 });
    let mut moved = Vec::new();
    for n in 0..b {
        // dY's phases: dY[2a + b][o][m][n] = dy[o][2m + a][2n + b].
        let dy_image = &dy[n * co * 4 * plane..][..co * 4 * plane];
        phases
            .par_chunks_exact_mut(co * plane)
            .enumerate()
            .for_each(|(phase, dst)| {
                let (a, bb) = (phase / 2, phase % 2);
                for (o, dst) in dst.chunks_exact_mut(plane).enumerate() {
                    for m in 0..h {
                        let row = &dy_image[(o * 2 * h + 2 * m + a) * 2 * w..][..2 * w];
                        for (d, pair) in dst[m * w..][..w].iter_mut().zip(row.chunks_exact(2)) {
                            *d = pair[bb];
                        }
                    }
                }
            });
        let image = &input[n * c * plane..][..c * plane];
        for shift in 0..4 {
            let xs = shifted(image, c, h, w, shift, &mut moved);
            for (i, (tap, phase)) in taps_of(shift).enumerate() {
                let dy_phase = Mat {
                    ptr: phases.as_ptr().wrapping_add(phase * co * plane),
                    rs: plane,
                    cs: 1,
                };
                // SAFETY: all operands lie inside their buffers; one product at a time.
                unsafe {
                    // dW[tap][c][o] (+)= X[shift] dY[phase]^T, into weight layout [C][Co][tap].
                    product_long(
                        c,
                        co,
                        plane,
                        Mat {
                            ptr: dw.as_mut_ptr().add(tap),
                            rs: co * 9,
                            cs: 9,
                        },
                        n > 0,
                        Mat {
                            ptr: xs.as_ptr(),
                            rs: plane,
                            cs: 1,
                        },
                        Mat {
                            rs: 1,
                            cs: plane,
                            ..dy_phase
                        },
                    );
                    // dX[shift] (+)= W[tap] dY[phase]: W[tap][c][o] = weight[c][o][tap].
                    if want_dx {
                        product(
                            c,
                            plane,
                            co,
                            Mat {
                                ptr: dxs.as_mut_ptr(),
                                rs: plane,
                                cs: 1,
                            },
                            i > 0,
                            Mat {
                                ptr: weight.as_ptr().add(tap),
                                rs: co * 9,
                                cs: 9,
                            },
                            dy_phase,
                            true,
                        );
                    }
                }
            }
            // dx[c][i + dy][j + dx] += dX[shift][c][i][j].
            if let Some(dx) = dx.as_mut() {
                // SAFETY: the shift's first product wrote every element of `dxs`.
                unsafe { dxs.set_len(c * plane) };
                let (sy, sx) = (shift / 2, shift % 2);
                dx[n * c * plane..][..c * plane]
                    .par_chunks_exact_mut(plane)
                    .zip(dxs.par_chunks_exact(plane))
                    .for_each(|(dst, src)| {
                        for r in 0..h - sy {
                            let d = &mut dst[(r + sy) * w + sx..][..w - sx];
                            let s = &src[r * w..][..w - sx];
                            d.iter_mut().zip(s).for_each(|(d, &s)| *d += s);
                        }
                    });
            }
        }
        if n == 0 {
            // SAFETY: the first image's products wrote every tap of `dw`.
            unsafe { dw.set_len(c * co * 9) };
        }
    }
    (
        dx.map(|dx| FlexTensor::from_data(TensorData::new(dx, [b, c, h, w]))),
        FlexTensor::from_data(TensorData::new(dw, [c, co, 3, 3])),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::conv::raw::gradient_check::{assert_agree, run, tracked};
    use crate::model::conv::raw::worst;
    use burn::tensor::module::conv_transpose2d;
    use burn::tensor::ops::ConvTransposeOptions;

    /// Output and the gradients of input, weight and bias equal burn's transposed convolution,
    /// with and without autodiff, for odd and even sizes and batch 2.
    #[test]
    fn output_and_gradients_match_burns_transposed_convolution() {
        for (b, c, co, h, w) in [(1, 8, 5, 4, 4), (2, 3, 6, 5, 7)] {
            let x = tracked([b, c, h, w], 1);
            let wt = tracked([c, co, 3, 3], 2);
            let bias = tracked([co], 3);
            let options = ConvTransposeOptions::new([2, 2], [1, 1], [1, 1], [1, 1], 1);
            let ours = run(|x, wt, bias| upsample3x3(x, wt, Some(bias)), &x, &wt, &bias);
            let y1 = ours.0.clone();
            let reference = run(
                |x, wt, bias| conv_transpose2d(x, wt, Some(bias), options),
                &x,
                &wt,
                &bias,
            );
            let case = format!("{b}x{c}x{h}x{w} -> {co}");
            assert_agree(ours, reference, &case);
            // Without autodiff: the same forward.
            let plain = upsample3x3(
                x.clone().inner(),
                wt.clone().inner(),
                Some(bias.clone().inner()),
            );
            assert!(worst(plain, y1) < 1e-6, "{case}: inference");
        }
    }
}
