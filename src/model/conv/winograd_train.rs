//! Training's stride-1 3x3 and 4x4 convolutions on the CPU: the plain-Rust Winograd F(4x4, 3x3)
//! and F(3x3, 4x4) of [`super::winograd_cpu`] with a handwritten backward pass, registered with
//! burn's autodiff as one operation (a burn backend extension).
//!
//! [`super::winograd::conv3x3`] builds the same convolution from burn tensor ops, and autodiff
//! keeps every intermediate of it (gathered tiles, transformed tiles, products) until the
//! backward pass: about 10 floats per input value, 0.74 GiB of a 128 px iteration's 1.7 GiB
//! (BENCHMARKS.md). Here the operation keeps only its input and weight and recomputes the input
//! transform in the backward pass. With `Y = A^T [U ⊙ V] A` per tile (`U = G g G^T`,
//! `V = B^T d B`) and `M[ξ] = U[ξ] V[ξ]` per tile position ξ, the adjoints are:
//!
//! - `dM = A dY A^T` per tile (the output transform's adjoint; overhanging outputs give zeros);
//! - `dU[ξ] = dM[ξ] V[ξ]^T` and `dV[ξ] = U[ξ]^T dM[ξ]`: two matrix products per ξ;
//! - `dg = G^T dU G` per filter;
//! - `dd = B dV B^T` per tile, added into the input where each padded position reads from
//!   (overlapping tiles and reflected pixels receive several contributions).
//!
//! The bias is added outside (a tensor op autodiff differentiates).

use burn::backend::autodiff::{Autodiff, checkpoint::strategy::CheckpointStrategy};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;

use super::input_weight_op::{InputWeightKernel, differentiable};
use super::padding::Padding;
use super::raw::{Mat, SharedMut, flex_dims, flex_values, parallel_zeros, product, unwritten};
use super::winograd::check_square;
use super::winograd_cpu::{A, Layer, POS};

/// `x` `[B, C, H, W]` convolved with `weight` `[Co, C, r, r]` (r = 3 or 4) plus `bias`, stride 1,
/// padded by `padding` (0 or 1), by Winograd on the CPU, differentiable. `x` must be float32 on
/// burn's CPU backend (with autodiff, or without).
pub fn conv_train(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    padding: Padding,
) -> Tensor<4> {
    check_square(&x, &weight, padding);
    let [co, ..] = weight.dims();
    let y = Tensor::<4>::from_dispatch(<Dispatch as WinogradCpu>::winograd(
        x.into_dispatch(),
        weight.into_dispatch(),
        padding,
    ));
    match bias {
        Some(b) => y + b.reshape([1, co, 1, 1]),
        None => y,
    }
}

/// The operation, for burn's CPU backend with and without autodiff.
#[backend_extension(Flex, Autodiff)]
pub trait WinogradCpu: Backend {
    /// `x` `[B, C, H, W]` convolved with `weight` `[Co, C, r, r]` (no bias), stride 1.
    fn winograd(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        padding: Padding,
    ) -> FloatTensor<Self>;
}

impl WinogradCpu for Flex {
    fn winograd(x: FlexTensor, weight: FlexTensor, padding: Padding) -> FlexTensor {
        forward(&x, &weight, padding)
    }
}

impl<C: CheckpointStrategy> WinogradCpu for Autodiff<Flex, C> {
    fn winograd(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        padding: Padding,
    ) -> FloatTensor<Self> {
        differentiable::<WinogradConv, C>(x, weight, padding)
    }
}

/// The kernel, for [`differentiable`].
#[derive(Debug)]
struct WinogradConv;

impl InputWeightKernel for WinogradConv {
    type Settings = Padding;

    fn forward(x: &FlexTensor, weight: &FlexTensor, settings: Padding) -> FlexTensor {
        forward(x, weight, settings)
    }

    fn backward(
        x: &FlexTensor,
        weight: &FlexTensor,
        dy: &FlexTensor,
        settings: Padding,
        want_dx: bool,
        want_dw: bool,
    ) -> (Option<FlexTensor>, Option<FlexTensor>) {
        backward(x, weight, dy, settings, want_dx, want_dw)
    }
}

fn tensor(values: Vec<f32>, dims: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, dims))
}

/// The forward pass (no bias).
fn forward(x: &FlexTensor, weight: &FlexTensor, padding: Padding) -> FlexTensor {
    let [b, c, h, w] = flex_dims(x);
    let [co, _, r, _] = flex_dims(weight);
    let layer = Layer::new(c, co, h, w, r, padding);
    let u = transformed::weight(&layer, weight);
    let input = flex_values(x);
    let (ho, wo) = (layer.ho, layer.wo);
    let mut out = Vec::with_capacity(b * co * ho * wo);
    let out_ptr = SharedMut::new(&mut out);
    for (n, image) in input.chunks_exact(c * h * w).enumerate() {
        layer.forward(image, &u, None, out_ptr.offset(n * co * ho * wo));
    }
    // SAFETY: `forward` wrote every output plane of every image.
    unsafe { out.set_len(b * co * ho * wo) };
    tensor(out, [b, co, ho, wo])
}

/// The gradients of the input (when `want_dx`) and of the weight (when `want_dw`), given the
/// output's `dy`.
fn backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    dy: &FlexTensor,
    padding: Padding,
    want_dx: bool,
    want_dw: bool,
) -> (Option<FlexTensor>, Option<FlexTensor>) {
    let [b, c, h, w] = flex_dims(x);
    let [co, _, r, _] = flex_dims(weight);
    let layer = Layer::new(c, co, h, w, r, padding);
    let u = transformed::weight(&layer, weight);
    let (input, dy) = (flex_values(x), flex_values(dy));
    let (tiles, pitch) = (layer.tiles(), layer.pitch());
    let (plane_in, plane_out) = (h * w, layer.ho * layer.wo);
    let mut dx = want_dx.then(|| parallel_zeros(b * c * plane_in));
    // dU[ξ][co][c], summed over the images (written by the first image's products, then added
    // to: never zeroed).
    let mut du = Vec::<f32>::with_capacity(POS * co * c);
    for n in 0..b {
        let dm = layer.output_adjoint(&dy[n * co * plane_out..][..co * plane_out]);
        if want_dw {
            let v = layer.input_transform(&input[n * c * plane_in..][..c * plane_in]);
            // dU[ξ] += dM[ξ] @ V[ξ]^T: [Co, tiles] @ [tiles, C], one product per ξ.
            let du_ptr = SharedMut::new(&mut du);
            (0..POS).into_par_iter().for_each(|pos| {
                // SAFETY: product ξ writes only block ξ of `du`; `dm` and `v` are read in their ξ
                // rows.
                unsafe {
                    product(
                        co,
                        c,
                        tiles,
                        Mat::rows(du_ptr.ptr().add(pos * co * c), c),
                        n > 0,
                        Mat::rows(dm.as_ptr().add(pos * pitch), POS * pitch),
                        Mat::transposed(v.as_ptr().add(pos * pitch), POS * pitch),
                        false,
                    );
                }
            });
            if n == 0 {
                // SAFETY: the first image's products wrote every element of every ξ block.
                unsafe { du.set_len(POS * co * c) };
            }
        }
        if let Some(dx) = dx.as_mut() {
            let dv = layer.input_gradient_tiles(&u, &dm);
            let image = &mut dx[n * c * plane_in..][..c * plane_in];
            image
                .par_chunks_exact_mut(plane_in)
                .enumerate()
                .for_each(|(i, plane)| {
                    layer.input_adjoint(&dv[i * POS * pitch..][..POS * pitch], plane)
                });
        }
    }
    (
        dx.map(|dx| tensor(dx, [b, c, h, w])),
        want_dw.then(|| tensor(layer.weight_adjoint(&du), [co, c, r, r])),
    )
}

/// The weight transform `U = G g G^T` of each weight tensor, computed once while the tensor
/// lives: a network runs the same weights several times between optimizer steps (a CUT
/// generator three times forward and twice backward per iteration), and `U`, four times the
/// weight's size, took about 17% of a 256-channel layer's forward pass at 32x32.
///
/// A weight is recognised by its buffer, which the cache keeps alive by holding the tensor (so
/// the address cannot be reused while the entry exists; burn copies a shared buffer before
/// changing it, so its contents cannot change either). An entry goes when the cache holds the
/// last reference to its weight (the optimizer replaced it, or its network was dropped), and
/// the oldest go when the entries exceed [`transformed::MAX_FLOATS`].
mod transformed {
    use std::sync::{Arc, Mutex};

    use burn::backend::flex::FlexTensor;

    use super::super::raw::flex_values;
    use super::Layer;

    /// At most this many floats of transforms are kept (1 GiB; a 256 px CycleGAN's two
    /// generators need 85 million).
    pub(super) const MAX_FLOATS: usize = 1 << 28;

    struct Entry {
        weight: FlexTensor,
        r: usize,
        u: Arc<Vec<f32>>,
    }

    static CACHE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

    /// Whether `a` and `b` are the same tensor: the same contiguous float32 buffer and shape.
    fn same(a: &FlexTensor, b: &FlexTensor) -> bool {
        match (a.as_slice::<f32>(), b.as_slice::<f32>()) {
            (Some(x), Some(y)) => std::ptr::eq(x, y) && a.layout().shape() == b.layout().shape(),
            _ => false,
        }
    }

    /// `U` of `weight` for `layer`'s transform.
    pub(super) fn weight(layer: &Layer, weight: &FlexTensor) -> Arc<Vec<f32>> {
        if weight.as_slice::<f32>().is_none() {
            return Arc::new(layer.weight_transform(&flex_values(weight)));
        }
        let lookup = |cache: &mut Vec<Entry>| {
            cache.retain(|e| !e.weight.is_unique());
            cache
                .iter()
                .find(|e| e.r == layer.r && same(&e.weight, weight))
                .map(|e| e.u.clone())
        };
        if let Some(u) = lookup(&mut CACHE.lock().unwrap_or_else(|e| e.into_inner())) {
            return u;
        }
        // Computed outside the lock (two threads may both compute it: the same values).
        let u = Arc::new(layer.weight_transform(&flex_values(weight)));
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if lookup(&mut cache).is_none() {
            cache.push(Entry {
                weight: weight.clone(),
                r: layer.r,
                u: u.clone(),
            });
            let mut total: usize = cache.iter().map(|e| e.u.len()).sum();
            while total > MAX_FLOATS && cache.len() > 1 {
                total -= cache.remove(0).u.len();
            }
        }
        u
    }
}

impl Layer {
    /// `dM[co][ξ][tile] = (A dY A^T)[ξ]` for one image's output gradient `dy` `[Co, Ho, Wo]`;
    /// outputs a tile overhangs count as zeros.
    fn output_adjoint(&self, dy: &[f32]) -> Vec<f32> {
        let (co, pitch) = (self.co, self.pitch());
        let plane_len = self.ho * self.wo;
        // SAFETY: `output_adjoint_plane` writes every position of every tile (overwriting);
        // nothing reads the padding between rows.
        let mut dm = unsafe { unwritten(co * POS * pitch) };
        dm.par_chunks_exact_mut(POS * pitch)
            .zip(dy.par_chunks_exact(plane_len))
            .for_each(|(out, plane)| output_adjoint_plane(self, plane, out));
        dm
    }

    /// `dV[c][ξ][tile] = (U[ξ]^T dM[ξ])`: `[C, Co] @ [Co, tiles]`, one product per ξ.
    fn input_gradient_tiles(&self, u: &[f32], dm: &[f32]) -> Vec<f32> {
        let (c, co, pitch) = (self.c, self.co, self.pitch());
        self.per_position(
            c,
            co,
            |pos| Mat::transposed(u[pos * co * c..].as_ptr(), c),
            |pos| Mat::rows(dm[pos * pitch..].as_ptr(), POS * pitch),
        )
    }

    /// Adds `B dV B^T` of every tile of one input channel (`dv[ξ][tile]`) into its gradient
    /// `plane` `[H, W]`, at the pixels each padded position reads.
    fn input_adjoint(&self, dv: &[f32], plane: &mut [f32]) {
        input_adjoint_plane(self, dv, plane)
    }

    /// `dg = G^T dU G` for every filter: `du` `[ξ][Co][C]` to `[Co, C, r, r]`.
    fn weight_adjoint(&self, du: &[f32]) -> Vec<f32> {
        let kk = self.r * self.r;
        let mut dw = parallel_zeros(self.co * self.c * kk);
        dw.par_chunks_exact_mut(self.c * kk)
            .enumerate()
            .for_each(|(o, out)| weight_adjoint_filter(self, du, o, out));
        dw
    }
}

/// Defines `fn $name(..) $body`, run as compiled for AVX2 + FMA when the CPU has both and as
/// compiled portably otherwise (the loops are plain iterator code the compiler vectorises: 8
/// floats a step with AVX2, 4 without).
macro_rules! vectorised {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$doc])*
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

/// `out = sum_k coefs[k] * rows[k]` (plus `out` when `accumulate`), in one pass over `out`;
/// the rows are at least as long.
#[inline(always)]
fn weighted_sum<const N: usize>(
    out: &mut [f32],
    coefs: [f32; N],
    rows: [&[f32]; N],
    accumulate: bool,
) {
    let n = out.len();
    let rows = rows.map(|row| &row[..n]);
    for x in 0..n {
        let mut sum = if accumulate { out[x] } else { 0.0 };
        for k in 0..N {
            sum += coefs[k] * rows[k][x];
        }
        out[x] = sum;
    }
}

/// [`weighted_sum`] over `rows.len()` rows: the output tile's side, 3 or 4.
#[inline(always)]
fn weighted_sum_of(out: &mut [f32], coefs: &[f32], rows: &[&[f32]], accumulate: bool) {
    match rows.len() {
        3 => weighted_sum::<3>(
            out,
            std::array::from_fn(|k| coefs[k]),
            std::array::from_fn(|k| rows[k]),
            accumulate,
        ),
        4 => weighted_sum::<4>(
            out,
            std::array::from_fn(|k| coefs[k]),
            std::array::from_fn(|k| rows[k]),
            accumulate,
        ),
        n => unreachable!("no output tile of side {n}"),
    }
}

vectorised! {
    /// [`Layer::output_adjoint`] for one output channel: its gradient `plane` `[Ho, Wo]` to its
    /// rows `out` `[ξ][tile]` of `dM` (each written whole, so need not be zeroed).
    fn output_adjoint_plane(layer: &Layer, plane: &[f32], out: &mut [f32]) {
        let (pitch, tw, m) = (layer.pitch(), layer.tw, layer.m);
        // dyt[ii][jj][tx], then across[i][jj][tx] = sum_ii A^T[ii][i] dyt[ii][jj][tx],
        // then dM[i][j][tx] = sum_jj A^T[jj][j] across[i][jj][tx].
        let mut dyt = vec![0.0f32; m * m * tw];
        let mut across = vec![0.0f32; A * m * tw];
        let mut coefs = [0.0f32; A];
        for ty in 0..layer.th {
            dyt.fill(0.0);
            for ii in 0..m.min(layer.ho - ty * m) {
                let row = &plane[(ty * m + ii) * layer.wo..][..layer.wo];
                for (k, group) in row.chunks(m).enumerate() {
                    for (jj, &g) in group.iter().enumerate() {
                        dyt[(ii * m + jj) * tw + k] = g;
                    }
                }
            }
            for i in 0..A {
                for (ii, coef) in coefs[..m].iter_mut().enumerate() {
                    *coef = layer.at[ii * A + i];
                }
                for jj in 0..m {
                    let rows: [&[f32]; 4] =
                        std::array::from_fn(|ii| &dyt[(ii.min(m - 1) * m + jj) * tw..][..tw]);
                    let out = &mut across[(i * m + jj) * tw..][..tw];
                    weighted_sum_of(out, &coefs, &rows[..m], false);
                }
            }
            for j in 0..A {
                for (jj, coef) in coefs[..m].iter_mut().enumerate() {
                    *coef = layer.at[jj * A + j];
                }
                for i in 0..A {
                    let rows: [&[f32]; 4] =
                        std::array::from_fn(|jj| &across[(i * m + jj.min(m - 1)) * tw..][..tw]);
                    let out = &mut out[(i * A + j) * pitch + ty * tw..][..tw];
                    weighted_sum_of(out, &coefs, &rows[..m], false);
                }
            }
        }
    }
}

vectorised! {
    /// [`Layer::input_adjoint`].
    fn input_adjoint_plane(layer: &Layer, dv: &[f32], plane: &mut [f32]) {
        let (pitch, tw, w, m) = (layer.pitch(), layer.tw, layer.w, layer.m);
        let wp = tw * m + layer.r - 1;
        // Per phase p, dcolumns[i][m k + p] accumulated at [p][k] (contiguous in k).
        let mut phases = vec![0.0f32; m * (tw + 1)];
        let mut columns = vec![0.0f32; A * wp];
        let mut padded = vec![0.0f32; wp];
        for ty in 0..layer.th {
            for i in 0..A {
                // Along the rows: dcolumns[i][m tx + q] += sum_j B^T[j][q] dV[i][j][tx].
                // Columns q < m start phase q; the others add to phase q - m one tile on (so
                // those phases' last entries start at zero).
                for p in 0..A - m {
                    phases[p * (tw + 1) + tw] = 0.0;
                }
                for q in 0..A {
                    weighted_sum::<A>(
                        &mut phases[(q % m) * (tw + 1) + q / m..][..tw],
                        std::array::from_fn(|j| layer.bt[j * A + q]),
                        std::array::from_fn(|j| &dv[(i * A + j) * pitch + ty * tw..][..tw]),
                        q >= m,
                    );
                }
                let row = &mut columns[i * wp..][..wp];
                for (k, group) in row.chunks_mut(m).enumerate() {
                    for (p, value) in group.iter_mut().enumerate() {
                        *value = phases[p * (tw + 1) + k];
                    }
                }
            }
            // Down the columns: dpadded[r] = sum_i B^T[i][r] dcolumns[i], added where row r
            // and each column read from.
            for r in 0..A {
                let Some(iy) = layer.rows[ty * m + r] else {
                    continue;
                };
                weighted_sum::<A>(
                    &mut padded,
                    std::array::from_fn(|i| layer.bt[i * A + r]),
                    std::array::from_fn(|i| &columns[i * wp..][..wp]),
                    false,
                );
                let dst = &mut plane[iy * w..][..w];
                for (q, &g) in padded.iter().enumerate() {
                    if let Some(ix) = layer.cols[q] {
                        dst[ix] += g;
                    }
                }
            }
        }
    }
}

vectorised! {
    /// [`Layer::weight_adjoint`] for output channel `o`: its filters `out` `[C, r, r]`.
    fn weight_adjoint_filter(layer: &Layer, du: &[f32], o: usize, out: &mut [f32]) {
        let (c, co, r) = (layer.c, layer.co, layer.r);
        // half[xi][kj][i] = sum_xj G[xj][kj] dU[xi][xj][o][i], then
        // taps[ki][kj][i] = sum_xi G[xi][ki] half[xi][kj][i].
        let mut half = vec![0.0f32; A * r * c];
        for xi in 0..A {
            for kj in 0..r {
                weighted_sum::<A>(
                    &mut half[(xi * r + kj) * c..][..c],
                    std::array::from_fn(|xj| layer.g[xj * r + kj]),
                    std::array::from_fn(|xj| &du[((xi * A + xj) * co + o) * c..][..c]),
                    false,
                );
            }
        }
        let mut taps = vec![0.0f32; r * r * c];
        for ki in 0..r {
            for kj in 0..r {
                weighted_sum::<A>(
                    &mut taps[(ki * r + kj) * c..][..c],
                    std::array::from_fn(|xi| layer.g[xi * r + ki]),
                    std::array::from_fn(|xi| &half[(xi * r + kj) * c..][..c]),
                    false,
                );
            }
        }
        for (i, filter) in out.chunks_exact_mut(r * r).enumerate() {
            for (k, tap) in filter.iter_mut().enumerate() {
                *tap = taps[k * c + i];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::conv::burn_conv2d;
    use crate::model::conv::raw::gradient_check::{assert_agree, run, tracked};
    use cyclegan_testkit::pseudo_random;
    use std::sync::Arc;

    /// A weight tensor's transform is computed once while the tensor lives; another tensor (the
    /// optimizer's next weights) gets its own, and the old one's goes once the tensor is dropped.
    #[test]
    fn weight_transforms_are_reused_for_the_same_tensor_only() {
        let layer = Layer::new(4, 3, 8, 8, 3, Padding::Zeros(1));
        let weight = |seed| tensor(pseudo_random(3 * 4 * 9, seed), [3, 4, 3, 3]);
        let (w1, w2) = (weight(1), weight(2));
        let first = transformed::weight(&layer, &w1);
        let again = transformed::weight(&layer, &w1.clone());
        assert!(
            Arc::ptr_eq(&first, &again),
            "recomputed for the same tensor"
        );
        let other = transformed::weight(&layer, &w2);
        assert_eq!(*other, layer.weight_transform(&flex_values(&w2)));
        assert_ne!(*first, *other);
        drop((again, w1));
        let _ = transformed::weight(&layer, &w2);
        assert_eq!(
            Arc::strong_count(&first),
            1,
            "kept after its weight was dropped"
        );
    }

    /// Output and the gradients of input, weight and bias equal burn's direct convolution's,
    /// for 3x3 and 4x4 kernels, both paddings, odd sizes (overhanging tiles), batch 2.
    #[test]
    fn output_and_gradients_match_the_direct_convolution() {
        for (b, c, co, h, w, k, padding) in [
            (1, 8, 16, 9, 13, 3, Padding::Reflect(1)),
            (2, 5, 3, 7, 6, 3, Padding::Zeros(1)),
            (1, 6, 4, 8, 8, 3, Padding::Zeros(0)),
            (2, 4, 4, 4, 5, 3, Padding::Reflect(1)),
            (1, 8, 16, 9, 13, 4, Padding::Zeros(1)),
            (2, 5, 3, 8, 7, 4, Padding::Zeros(1)),
            (1, 6, 4, 7, 8, 4, Padding::Zeros(0)),
        ] {
            let x = tracked([b, c, h, w], 1);
            let wt = tracked([co, c, k, k], 2);
            let bias = tracked([co], 3);
            let ours = run(
                |x, wt, bias| conv_train(x, wt, Some(bias), padding),
                &x,
                &wt,
                &bias,
            );
            let reference = run(
                |x, wt, bias| burn_conv2d(x, wt, Some(bias), [1, 1], padding),
                &x,
                &wt,
                &bias,
            );
            assert_agree(
                ours,
                reference,
                &format!("{k}x{k} {padding:?} {b}x{c}x{h}x{w} -> {co}"),
            );
        }
    }
}
