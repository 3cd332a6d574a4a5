//! Inference's stride-1 3x3 and 4x4 convolutions on the CPU: Winograd F(4x4, 3x3) and
//! F(3x3, 4x4) in plain Rust, each transform one pass over memory, in burn's NCHW layout
//! throughout. Both use 6x6 input tiles (36 products per tile and channel pair instead of 144),
//! so everything but the three small matrices and the output tile's side is shared.
//!
//! [`super::winograd::conv3x3`] writes the 3x3 algorithm in burn's tensor ops so that autodiff
//! can differentiate it; there each transform is a gather, a [36, 36] matrix product and layout
//! copies, and about half of an inference layer's time went outside the 36 big products
//! (BENCHMARKS.md). Inference needs no gradient, so here:
//!
//! 1. per input channel: its padded rows, six at a time, transformed `V = B^T d B` for a whole
//!    row of tiles at once (vectors run along the tiles), into `V[c][ξ][tile]` (each channel's
//!    36 rows together: 36 streams 36 rows apart would fight over the same cache sets);
//! 2. per position ξ: `M[ξ] = U[ξ] @ V[ξ]` (`[Co, C] @ [C, tiles]`, one `gemm` call per ξ, the
//!    36 spread over the threads), `U = G g G^T` from the weights;
//! 3. per output channel: `Y = A^T M A` plus bias, written straight into its NCHW plane.
//!
//! Padding is folded into which input row and column each padded position reads, so no padded
//! copy is made; tiles overhanging the output's edge read zeros and their extra outputs are not
//! written. The matrices come from the interpolation points of [`super::winograd::Tile::Four`]
//! (same rounding behaviour); the tests compare the results with burn's direct convolution. The
//! vector loops are written once and compiled twice: for AVX2 + FMA (chosen at run time when
//! the CPU has both) and portably.

use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;

use super::padding::Padding;
use super::raw::{Mat, SharedMut, floats, product};
use super::winograd::{check_square, six_point_matrices};

/// Input pixels per tile side, positions per tile.
pub(super) const A: usize = 6;
pub(super) const POS: usize = A * A;
/// The largest output tile side (F(4x4, 3x3)).
const MAX_M: usize = 4;
/// The largest kernel side (F(3x3, 4x4)).
const MAX_R: usize = 4;

/// `x` `[B, C, H, W]` convolved with `weight` `[Co, C, r, r]` (r = 3 or 4, plus `bias`), stride 1,
/// padded by `padding` (amount 0 or 1), by Winograd on the CPU. `x` must be float32 on burn's
/// CPU backend without autodiff; gives `[B, Co, Ho, Wo]` there.
pub fn conv_inference(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    padding: Padding,
) -> Tensor<4> {
    check_square(&x, &weight, padding);
    let [b, c, h, w] = x.dims();
    let [co, _, r, _] = weight.dims();
    let device = x.device();
    let input = floats(x);
    let bias = bias.map(floats);
    let layer = Layer::new(c, co, h, w, r, padding);
    let u = layer.weight_transform(&floats(weight));
    let (ho, wo) = (layer.ho, layer.wo);
    let mut out = Vec::with_capacity(b * co * ho * wo);
    let out_ptr = SharedMut::new(&mut out);
    for (n, image) in input.chunks_exact(c * h * w).enumerate() {
        layer.forward(image, &u, bias.as_deref(), out_ptr.offset(n * co * ho * wo));
    }
    // SAFETY: `forward` wrote every output plane of every image.
    unsafe { out.set_len(b * co * ho * wo) };
    Tensor::from_data(TensorData::new(out, [b, co, ho, wo]), &device)
}

/// One layer's shapes and transform matrices.
pub(super) struct Layer {
    pub(super) c: usize,
    pub(super) co: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) ho: usize,
    pub(super) wo: usize,
    /// Kernel side (3 or 4) and output tile side (`7 - r`: 4 or 3).
    pub(super) r: usize,
    pub(super) m: usize,
    /// Tiles per column and per row.
    pub(super) th: usize,
    pub(super) tw: usize,
    /// For each padded row and column (`th * m + r - 1`, `tw * m + r - 1`), the input row or
    /// column it reads, or `None` for a zero.
    pub(super) rows: Vec<Option<usize>>,
    pub(super) cols: Vec<Option<usize>>,
    /// Padding on each side (0 or 1).
    pub(super) pad: usize,
    /// `B^T` (6x6), `A^T` (m x 6) and `G` (6 x r), row-major (the arrays' tails unused for the
    /// smaller sizes).
    pub(super) bt: [f32; A * A],
    pub(super) at: [f32; MAX_M * A],
    pub(super) g: [f32; A * MAX_R],
}

impl Layer {
    pub(super) fn new(c: usize, co: usize, h: usize, w: usize, r: usize, padding: Padding) -> Self {
        let m = A + 1 - r;
        let p = padding.amount();
        let (ho, wo) = (h + 2 * p + 1 - r, w + 2 * p + 1 - r);
        let (th, tw) = (ho.div_ceil(m), wo.div_ceil(m));
        // Padded coordinate q -> input coordinate, or None (padding zeros, or the overhang).
        let sources = |tiles: usize, n: usize| -> Vec<Option<usize>> {
            (0..tiles * m + r - 1)
                .map(|q| {
                    (q < n + 2 * p)
                        .then(|| padding.source(q as i64 - p as i64, n))
                        .flatten()
                })
                .collect()
        };
        let (bt, g, at) = six_point_matrices(r);
        // The matrices at the start of fixed-size arrays (zeros after).
        fn padded<const N: usize>(v: &[f32]) -> [f32; N] {
            let mut out = [0.0; N];
            out[..v.len()].copy_from_slice(v);
            out
        }
        Layer {
            c,
            co,
            h,
            w,
            ho,
            wo,
            r,
            m,
            th,
            tw,
            rows: sources(th, h),
            cols: sources(tw, w),
            pad: p,
            bt: bt.try_into().expect("B^T is 6x6"),
            at: padded(&at),
            g: padded(&g),
        }
    }

    /// `U[ξ][co][c] = (G g G^T)[ξ]` for each filter `g = weight[co][c]`.
    pub(super) fn weight_transform(&self, weight: &[f32]) -> Vec<f32> {
        let (c, co, r) = (self.c, self.co, self.r);
        let mut u = Vec::with_capacity(POS * co * c);
        let u_ptr = SharedMut::new(&mut u);
        (0..co).into_par_iter().for_each(|o| {
            // The r * r taps of output channel o as rows over input channels, then
            // `half[ki][xj] = sum_kj G[xj][kj] g[ki][kj]`.
            let mut taps = vec![0.0f32; r * r * c];
            for (i, filter) in weight[o * c * r * r..(o + 1) * c * r * r]
                .chunks_exact(r * r)
                .enumerate()
            {
                for (k, &tap) in filter.iter().enumerate() {
                    taps[k * c + i] = tap;
                }
            }
            let mut half = vec![0.0f32; r * A * c];
            for ki in 0..r {
                let rows: [&[f32]; MAX_R] =
                    std::array::from_fn(|kj| &taps[(ki * r + kj.min(r - 1)) * c..][..c]);
                for xj in 0..A {
                    let out = &mut half[(ki * A + xj) * c..][..c];
                    simd::combine(out, &self.g[xj * r..][..r], &rows[..r]);
                }
            }
            // U[xi][xj] = sum_ki G[xi][ki] half[ki][xj]
            for xi in 0..A {
                for xj in 0..A {
                    let rows: [&[f32]; MAX_R] =
                        std::array::from_fn(|ki| &half[(ki.min(r - 1) * A + xj) * c..][..c]);
                    // SAFETY: row (ξ, o) of `u` is written by the task for channel o only, and
                    // all POS * co rows are written before `set_len` below.
                    let row = unsafe { u_ptr.slice(((xi * A + xj) * co + o) * c, c) };
                    simd::combine(row, &self.g[xi * r..][..r], &rows[..r]);
                }
            }
        });
        // SAFETY: every element was written above.
        unsafe { u.set_len(POS * co * c) };
        u
    }

    /// Tiles per image.
    pub(super) fn tiles(&self) -> usize {
        self.th * self.tw
    }

    /// Floats from one tile position's row to the next in `V`, `M` and their gradients (laid
    /// out `[channel][ξ][tile]`): the tile count rounded up to an odd number of 64-byte cache
    /// lines. The transforms read or write a channel's 36 rows together; a whole number of
    /// kilobytes apart they would all map to the same few cache sets and evict each other (at
    /// 1,024 tiles that cost a third of a layer's time).
    pub(super) fn pitch(&self) -> usize {
        const LINE: usize = 16;
        let lines = self.tiles().div_ceil(LINE);
        (lines | 1) * LINE
    }

    /// `out[., ξ, .] = lhs(ξ) @ rhs(ξ)` for the 36 tile positions ξ, spread over the threads:
    /// `[rows, k] @ [k, tiles]` each, into `[rows][ξ][tile]` (the layout of `V`, `M`, `dV`, rows
    /// [`Layer::pitch`] apart; the padding after each row's tiles is never written nor read).
    pub(super) fn per_position(
        &self,
        rows: usize,
        k: usize,
        lhs: impl Fn(usize) -> Mat + Sync,
        rhs: impl Fn(usize) -> Mat + Sync,
    ) -> Vec<f32> {
        let (tiles, pitch) = (self.tiles(), self.pitch());
        let mut out = Vec::with_capacity(rows * POS * pitch);
        let out_ptr = SharedMut::new(&mut out);
        (0..POS).into_par_iter().for_each(|pos| {
            // SAFETY: product ξ writes only rows (., ξ) of `out`; `lhs` and `rhs` give
            // operands inside their callers' buffers.
            unsafe {
                product(
                    rows,
                    tiles,
                    k,
                    Mat::rows(out_ptr.ptr().add(pos * pitch), POS * pitch),
                    false,
                    lhs(pos),
                    rhs(pos),
                    false,
                );
            }
        });
        // SAFETY: the products wrote every tile of every row (without reading any); nothing
        // reads the padding between rows.
        unsafe { out.set_len(rows * POS * pitch) };
        out
    }

    /// `V[c][ξ][tile]` of one image `input` `[C, H, W]`, one input channel per task.
    pub(super) fn input_transform(&self, input: &[f32]) -> Vec<f32> {
        let (c, tiles, pitch) = (self.c, self.tiles(), self.pitch());
        let mut v = Vec::with_capacity(POS * c * pitch);
        let v_ptr = SharedMut::new(&mut v);
        (0..c).into_par_iter().for_each(|i| {
            // SAFETY: rows (i, ξ) of `v` are written by the task for channel i only.
            let mut dst: [&mut [f32]; POS] =
                std::array::from_fn(|pos| unsafe { v_ptr.slice((i * POS + pos) * pitch, tiles) });
            simd::input_plane(
                self,
                &input[i * self.h * self.w..][..self.h * self.w],
                &mut dst,
            );
        });
        // SAFETY: the tasks above wrote every (channel, ξ, tile); nothing reads the padding
        // between rows.
        unsafe { v.set_len(POS * c * pitch) };
        v
    }

    /// One image: `input` `[C, H, W]` to `out` `[Co, Ho, Wo]`, every element of which it writes.
    pub(super) fn forward(&self, input: &[f32], u: &[f32], bias: Option<&[f32]>, out: SharedMut) {
        let (c, co, tiles, pitch) = (self.c, self.co, self.tiles(), self.pitch());
        // Every element of `v`, `m` and `out` is written before it is read, so none is zeroed
        // first (a whole pass over memory each).
        let v = self.input_transform(input);

        // M[., ξ, .] = U[ξ] @ V[., ξ, .]: [Co, C] @ [C, tiles].
        let m = self.per_position(
            co,
            c,
            |pos| Mat::rows(u[pos * co * c..].as_ptr(), c),
            |pos| Mat::rows(v[pos * pitch..].as_ptr(), POS * pitch),
        );
        drop(v);

        // Y = A^T M A + bias, one output channel (NCHW plane) per task.
        let plane_len = self.ho * self.wo;
        (0..co).into_par_iter().for_each(|o| {
            // SAFETY: plane o is written by this task only.
            let plane = unsafe { out.slice(o * plane_len, plane_len) };
            let rows: [&[f32]; POS] =
                std::array::from_fn(|pos| &m[(o * POS + pos) * pitch..][..tiles]);
            simd::output_plane(self, &rows, bias.map_or(0.0, |b| b[o]), plane);
        });
    }
}

/// The vector loops, compiled for AVX2 + FMA and portably.
mod simd {
    use super::{Layer, POS};

    /// Calls the AVX2 + FMA build of a loop when the CPU has both, the portable one otherwise.
    macro_rules! dispatch {
        ($name:ident($($arg:expr),*)) => {{
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has the features the function was compiled for.
                    return unsafe { avx2::$name($($arg),*) };
                }
            }
            portable::$name($($arg),*)
        }};
    }

    /// `out = sum_k coefs[k] * rows[k]`, rows as long as `out`.
    pub fn combine(out: &mut [f32], coefs: &[f32], rows: &[&[f32]]) {
        dispatch!(combine(out, coefs, rows))
    }

    /// `V = B^T d B` for every tile of one input channel's `plane` `[H, W]`; `dst[ξ]` is the
    /// channel's row of `V[ξ]` (one value per tile).
    pub fn input_plane(layer: &Layer, plane: &[f32], dst: &mut [&mut [f32]; POS]) {
        dispatch!(input_plane(layer, plane, dst))
    }

    /// `Y = A^T M A + bias` for every tile of one output channel: `m[ξ]` its row of `M[ξ]`,
    /// `plane` `[Ho, Wo]`.
    pub fn output_plane(layer: &Layer, m: &[&[f32]; POS], bias: f32, plane: &mut [f32]) {
        dispatch!(output_plane(layer, m, bias, plane))
    }

    /// The loops, written once; `$fma` chooses fused multiply-adds (fast only where the CPU has
    /// them, a library call otherwise).
    macro_rules! kernels {
        ($($attr:meta)?; $fma:expr) => {
            use super::super::{Layer, A, MAX_M, POS};

            #[inline(always)]
            fn madd(a: f32, b: f32, c: f32) -> f32 {
                if $fma { a.mul_add(b, c) } else { a * b + c }
            }

            /// `out = sum_k coefs[k] * rows[k]`, skipping zero coefficients.
            #[inline(always)]
            fn combine_inline(out: &mut [f32], coefs: &[f32], rows: &[&[f32]]) {
                out.fill(0.0);
                for (&coef, row) in coefs.iter().zip(rows) {
                    if coef != 0.0 {
                        for (o, &r) in out.iter_mut().zip(row.iter()) {
                            *o = madd(coef, r, *o);
                        }
                    }
                }
            }

            $(#[$attr])?
            pub fn combine(out: &mut [f32], coefs: &[f32], rows: &[&[f32]]) {
                // Three or four rows (the weight transform's): one pass.
                let n = out.len();
                match (coefs, rows) {
                    (&[c0, c1, c2], &[r0, r1, r2]) => {
                        let (r0, r1, r2) = (&r0[..n], &r1[..n], &r2[..n]);
                        for x in 0..n {
                            out[x] = madd(c2, r2[x], madd(c1, r1[x], c0 * r0[x]));
                        }
                    }
                    (&[c0, c1, c2, c3], &[r0, r1, r2, r3]) => {
                        let (r0, r1, r2, r3) = (&r0[..n], &r1[..n], &r2[..n], &r3[..n]);
                        for x in 0..n {
                            let acc = madd(c2, r2[x], madd(c1, r1[x], c0 * r0[x]));
                            out[x] = madd(c3, r3[x], acc);
                        }
                    }
                    _ => combine_inline(out, coefs, rows),
                }
            }

            /// `out = sum_k coefs[k] * rows[k]` over six rows, in one pass (short rows: no
            /// pass per term, no branches).
            #[inline(always)]
            fn combine6(out: &mut [f32], coefs: &[f32], rows: &[&[f32]; A]) {
                let n = out.len();
                let [c0, c1, c2, c3, c4, c5] = [coefs[0], coefs[1], coefs[2], coefs[3], coefs[4], coefs[5]];
                let (r0, r1, r2) = (&rows[0][..n], &rows[1][..n], &rows[2][..n]);
                let (r3, r4, r5) = (&rows[3][..n], &rows[4][..n], &rows[5][..n]);
                // The six terms in order (the rounding the tests and parity were measured with).
                let sum = |v: [f32; A]| {
                    let acc = madd(c1, v[1], c0 * v[0]);
                    let acc = madd(c2, v[2], acc);
                    let acc = madd(c3, v[3], acc);
                    let acc = madd(c4, v[4], acc);
                    madd(c5, v[5], acc)
                };
                // Eight at a time (one AVX register; rows on 32x32 planes are 8 tiles long, and
                // left to itself the compiler used 4-wide vectors with a scalar tail), then the
                // rest.
                let whole = n - n % 8;
                for (k, chunk) in out[..whole].chunks_exact_mut(8).enumerate() {
                    let eight = |row: &[f32]| -> [f32; 8] {
                        row[k * 8..k * 8 + 8].try_into().expect("eight values")
                    };
                    let (a0, a1, a2, a3, a4, a5) =
                        (eight(r0), eight(r1), eight(r2), eight(r3), eight(r4), eight(r5));
                    for (i, value) in chunk.iter_mut().enumerate() {
                        *value = sum([a0[i], a1[i], a2[i], a3[i], a4[i], a5[i]]);
                    }
                }
                for x in whole..n {
                    out[x] = sum([r0[x], r1[x], r2[x], r3[x], r4[x], r5[x]]);
                }
            }

            $(#[$attr])?
            pub fn input_plane(layer: &Layer, plane: &[f32], dst: &mut [&mut [f32]; POS]) {
                let (w, tw, m) = (layer.w, layer.tw, layer.m);
                let wp = tw * m + layer.r - 1;
                let mut padded = vec![0.0f32; A * wp];
                let mut columns = vec![0.0f32; A * wp];
                // Columns m k + p of a transformed row, for each phase p: tile tx reads phase
                // j % m at k = tx + j / m for its column j.
                let mut phases = vec![0.0f32; m * (tw + 1)];
                // Where column j's phase row starts in `phases`.
                let tap_start: [usize; A] = std::array::from_fn(|j| (j % m) * (tw + 1) + j / m);
                for ty in 0..layer.th {
                    // The tile row's six padded input rows.
                    for (r, row) in padded.chunks_exact_mut(wp).enumerate() {
                        match layer.rows[ty * m + r] {
                            Some(iy) => {
                                let src = &plane[iy * w..(iy + 1) * w];
                                // The input row in one copy, then the padded edges.
                                let (p, inner) = (layer.pad, w.min(wp - layer.pad));
                                row[p..p + inner].copy_from_slice(&src[..inner]);
                                for q in (0..p).chain(p + inner..wp) {
                                    row[q] = layer.cols[q].map_or(0.0, |ix| src[ix]);
                                }
                            }
                            None => row.fill(0.0),
                        }
                    }
                    // Down the columns: columns[i] = sum_r B^T[i][r] padded[r].
                    let padded_rows: [&[f32]; A] = std::array::from_fn(|r| &padded[r * wp..][..wp]);
                    for (i, out) in columns.chunks_exact_mut(wp).enumerate() {
                        combine6(out, &layer.bt[i * A..][..A], &padded_rows);
                    }
                    // Along the rows: V[i][j][tx] = sum_q B^T[j][q] columns[i][m tx + q].
                    for i in 0..A {
                        let row = &columns[i * wp..][..wp];
                        if m == 4 {
                            // Phases 0 and 1 have tw + 1 columns, 2 and 3 tw (their last unused).
                            let (p0, rest) = phases.split_at_mut(tw + 1);
                            let (p1, rest) = rest.split_at_mut(tw + 1);
                            let (p2, p3) = rest.split_at_mut(tw + 1);
                            for (k, four) in row[..tw * 4].chunks_exact(4).enumerate() {
                                p0[k] = four[0];
                                p1[k] = four[1];
                                p2[k] = four[2];
                                p3[k] = four[3];
                            }
                        } else {
                            for (k, group) in row[..tw * m].chunks_exact(m).enumerate() {
                                for (p, &v) in group.iter().enumerate() {
                                    phases[p * (tw + 1) + k] = v;
                                }
                            }
                        }
                        // The last r - 1 padded columns start phases 0.. at k = tw.
                        for (p, &v) in row[tw * m..].iter().enumerate() {
                            phases[p * (tw + 1) + tw] = v;
                        }
                        let taps: [&[f32]; A] =
                            std::array::from_fn(|q| &phases[tap_start[q]..][..tw]);
                        for j in 0..A {
                            let out = &mut dst[i * A + j][ty * tw..(ty + 1) * tw];
                            combine6(out, &layer.bt[j * A..][..A], &taps);
                        }
                    }
                }
            }

            $(#[$attr])?
            pub fn output_plane(layer: &Layer, mm: &[&[f32]; POS], bias: f32, plane: &mut [f32]) {
                let (wo, tw, m) = (layer.wo, layer.tw, layer.m);
                // across[i][jj][tx] = sum_j A^T[jj][j] M[i][j][tx], then
                // y[ii][jj][tx] = bias + sum_i A^T[ii][i] across[i][jj][tx].
                let mut across = vec![0.0f32; A * m * tw];
                let mut y = vec![0.0f32; MAX_M * tw];
                for ty in 0..layer.th {
                    for i in 0..A {
                        let rows: [&[f32]; A] =
                            std::array::from_fn(|j| &mm[i * A + j][ty * tw..(ty + 1) * tw]);
                        for jj in 0..m {
                            let out = &mut across[(i * m + jj) * tw..][..tw];
                            combine6(out, &layer.at[jj * A..][..A], &rows);
                        }
                    }
                    for ii in 0..m.min(layer.ho - ty * m) {
                        for jj in 0..m {
                            let rows: [&[f32]; A] =
                                std::array::from_fn(|i| &across[(i * m + jj) * tw..][..tw]);
                            let out = &mut y[jj * tw..(jj + 1) * tw];
                            combine6(out, &layer.at[ii * A..][..A], &rows);
                        }
                        // Interleave the m columns of each tile into the output row (for m = 4
                        // in groups of four, which the compiler turns into vector shuffles; the
                        // last tile may overhang the row).
                        let row = &mut plane[(ty * m + ii) * wo..][..wo];
                        let whole = wo / m;
                        if m == 4 {
                            let [y0, y1, y2, y3] =
                                std::array::from_fn(|jj| &y[jj * tw..][..whole]);
                            for (k, four) in row.chunks_exact_mut(4).enumerate() {
                                four[0] = y0[k] + bias;
                                four[1] = y1[k] + bias;
                                four[2] = y2[k] + bias;
                                four[3] = y3[k] + bias;
                            }
                        } else {
                            for (k, group) in row.chunks_exact_mut(m).enumerate() {
                                for (jj, value) in group.iter_mut().enumerate() {
                                    *value = y[jj * tw + k] + bias;
                                }
                            }
                        }
                        for x in whole * m..wo {
                            row[x] = y[(x % m) * tw + x / m] + bias;
                        }
                    }
                }
            }
        };
    }

    #[cfg(target_arch = "x86_64")]
    mod avx2 {
        kernels!(target_feature(enable = "avx2,fma"); true);
    }

    pub(super) mod portable {
        kernels!(; false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::conv::burn_conv2d;
    use cyclegan_testkit::pseudo_random;

    /// Equals burn's direct convolution for 3x3 and 4x4 kernels, both paddings, odd sizes
    /// (tiles overhanging the edge), batch 2 and a bias.
    #[test]
    fn matches_the_direct_convolution() {
        let device = Device::flex();
        for (b, c, co, h, w, k, padding) in [
            (1, 8, 16, 9, 13, 3, Padding::Reflect(1)),
            (2, 5, 3, 7, 6, 3, Padding::Zeros(1)),
            (1, 16, 8, 4, 4, 3, Padding::Zeros(0)),
            (1, 8, 16, 9, 13, 4, Padding::Zeros(1)),
            (2, 5, 3, 8, 7, 4, Padding::Zeros(1)),
            (1, 16, 8, 6, 5, 4, Padding::Zeros(0)),
        ] {
            let x = Tensor::<4>::from_data(
                TensorData::new(pseudo_random(b * c * h * w, 1), [b, c, h, w]),
                &device,
            );
            let weight = Tensor::<4>::from_data(
                TensorData::new(pseudo_random(co * c * k * k, 2), [co, c, k, k]),
                &device,
            );
            let bias = Tensor::<1>::from_data(TensorData::new(pseudo_random(co, 3), [co]), &device);
            let want = burn_conv2d(
                x.clone(),
                weight.clone(),
                Some(bias.clone()),
                [1, 1],
                padding,
            );
            let got = conv_inference(x, weight, Some(bias), padding);
            assert_eq!(got.dims(), want.dims());
            let (got, want) = (floats(got), floats(want));
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                worst < 1e-4,
                "{k}x{k} {padding:?} {b}x{c}x{h}x{w}: worst difference {worst}"
            );
        }
    }

    /// The portable build of the loops gives what the dispatched (AVX2) one does.
    #[test]
    fn portable_loops_equal_the_dispatched_ones() {
        for r in [3, 4] {
            let layer = Layer::new(3, 3, 9, 13, r, Padding::Reflect(1));
            let plane = pseudo_random(9 * 13, 4);
            let tiles = layer.th * layer.tw;
            let (mut v1, mut v2) = (vec![0.0; POS * tiles], vec![0.0; POS * tiles]);
            let mut d1: Vec<&mut [f32]> = v1.chunks_exact_mut(tiles).collect();
            let mut d2: Vec<&mut [f32]> = v2.chunks_exact_mut(tiles).collect();
            simd::input_plane(&layer, &plane, (&mut d1[..]).try_into().unwrap());
            simd::portable::input_plane(&layer, &plane, (&mut d2[..]).try_into().unwrap());
            for (a, b) in v1.iter().zip(&v2) {
                assert!((a - b).abs() < 1e-5, "{r}x{r}: {a} vs {b}");
            }
        }
    }
}
