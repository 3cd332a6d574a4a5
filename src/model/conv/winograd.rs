//! 3x3 stride-1 convolution by Winograd's minimal filtering (Lavin & Gray 2016), in tensor ops.
//!
//! The residual blocks' 3x3 convolutions are about 80% of a generator's arithmetic. Winograd's
//! F(m x m, 3 x 3) computes an m x m output tile from an (m+2) x (m+2) input tile with
//! (m+2)^2 multiplications per channel pair instead of 9 m^2: 2.25x fewer for m = 2, 4x fewer
//! for m = 4. Written out:
//!
//! ```text
//! U = G g G^T       (each 3x3 filter -> (m+2)^2 numbers; weights, once per call)
//! V = B^T d B       (each input tile -> (m+2)^2 numbers)
//! M[ξ] = V[ξ] @ U[ξ]  for each of the (m+2)^2 positions ξ: a batch of large matrix products
//! Y = A^T M A       (each output tile, m x m)
//! ```
//!
//! Every step is a matrix product or a gather, so burn's autodiff differentiates it without a
//! custom backward: the weight and input gradients are again batched matrix products with the
//! same reduced size. The transforms act on flattened tiles through Kronecker products
//! (`vec(B^T d B) = (B^T ⊗ B^T) vec(d)`), each one small dense product.
//!
//! Reflection and zero padding are folded into the tile gather's indices, as in
//! [`super::gemm::conv2d_gemm`]. Results equal the direct convolution up to float rounding. The
//! matrices come from the interpolation points ([`toom_cook`]); which points matters for m = 4:
//! Lavin & Gray's 0, ±1, ±2 gave 3x the error of 0, ±1, 1/2, -2 on a 256-channel layer, enough to
//! move the second training iteration's losses 3.5e-3 away from PyTorch's (tolerance 1e-3); with
//! the points used here they stay within 2e-6, like the direct convolution's.
//!
//! Layout: positions outermost (`[ξ, tiles, channels]`), so the per-position products are plain
//! contiguous batched GEMMs. (Positions innermost, which makes the transforms the shape `gemm`
//! prefers, measured slower in training: the big products then read strided operands.)

use burn::prelude::*;
use burn::tensor::TensorData;

use super::padding::{Padding, with_zero_row};

/// Output tile side of the Winograd transform: F(2x2, 3x3) or F(4x4, 3x3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tile {
    /// F(2x2, 3x3): 16 products per tile, 2.25x fewer multiplications, nearly exact.
    Two,
    /// F(4x4, 3x3): 36 products per tile, 4x fewer multiplications.
    Four,
}

impl Tile {
    /// Output pixels per tile side.
    pub fn m(self) -> usize {
        match self {
            Tile::Two => 2,
            Tile::Four => 4,
        }
    }
    /// Input pixels per tile side (m + 2).
    fn a(self) -> usize {
        self.m() + 2
    }
    /// The finite interpolation points; the last point is infinity. For m = 4, the points
    /// 0, ±1, 1/2, -2 round less than Lavin & Gray's 0, ±1, ±2 (Barabasz et al. 2020).
    fn points(self) -> &'static [f64] {
        match self {
            Tile::Two => &[0.0, 1.0, -1.0],
            Tile::Four => &POINTS4,
        }
    }
    /// `B^T` (a x a), `G` (a x 3) and `A^T` (m x a), row-major, built from [`Tile::points`].
    pub(super) fn matrices(self) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        toom_cook(self.points(), self.m(), 3)
    }
}

/// Points used for F(4x4, 3x3) (five finite ones, then infinity).
static POINTS4: [f64; 5] = [0.0, 1.0, -1.0, 0.5, -2.0];

/// `B^T` (6x6), `G` (6 x r) and `A^T` ((7 - r) x 6), row-major, of the 6x6-tile transform for an
/// `r x r` kernel: F(4x4, 3x3) for r = 3 (the matrices of [`Tile::Four`]), F(3x3, 4x4) for r = 4,
/// both from the points of [`Tile::Four`].
pub(super) fn six_point_matrices(r: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert!(
        r == 3 || r == 4,
        "6x6 Winograd tiles are for 3x3 and 4x4 kernels"
    );
    toom_cook(&POINTS4, 7 - r, r)
}

/// Winograd's matrices for the correlation `y_i = sum_k g_k d_(i+k)` (m outputs, r taps) from
/// the finite `points` p_j and infinity, by the transposition of Toom-Cook convolution
/// (evaluate both polynomials at the points, multiply, interpolate):
///
/// - `A^T[i, j] = p_j^i`, and the infinity column picks the top coefficient;
/// - `G[j, k] = p_j^k / prod_(l != j)(p_j - p_l)`, infinity row likewise;
/// - row j of `B^T` holds the coefficients of `prod_(l != j)(x - p_l)`, the infinity row those of
///   `prod_l (x - p_l)`.
///
/// Returns `(B^T, G, A^T)` row-major, n x n, n x r and m x n, with n = m + r - 1.
fn toom_cook(points: &[f64], m: usize, r: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = m + r - 1;
    assert_eq!(points.len(), n - 1, "Toom-Cook needs n - 1 finite points");
    // Coefficients (lowest first) of prod over `roots` of (x - root).
    let poly = |roots: &[f64]| -> Vec<f64> {
        let mut c = vec![1.0];
        for &root in roots {
            let mut next = vec![0.0; c.len() + 1];
            for (i, &ci) in c.iter().enumerate() {
                next[i + 1] += ci;
                next[i] -= root * ci;
            }
            c = next;
        }
        c
    };
    let mut bt = vec![0.0f32; n * n];
    let mut g = vec![0.0f32; n * r];
    let mut at = vec![0.0f32; m * n];
    for (j, &pj) in points.iter().enumerate() {
        let others: Vec<f64> = points
            .iter()
            .enumerate()
            .filter(|&(l, _)| l != j)
            .map(|(_, &p)| p)
            .collect();
        for (c, coef) in poly(&others).into_iter().enumerate() {
            bt[j * n + c] = coef as f32;
        }
        let norm: f64 = others.iter().map(|&pl| pj - pl).product();
        for k in 0..r {
            g[j * r + k] = (pj.powi(k as i32) / norm) as f32;
        }
        for i in 0..m {
            at[i * n + j] = pj.powi(i as i32) as f32;
        }
    }
    for (c, coef) in poly(points).into_iter().enumerate() {
        bt[(n - 1) * n + c] = coef as f32;
    }
    g[(n - 1) * r + r - 1] = 1.0;
    at[(m - 1) * n + n - 1] = 1.0;
    (bt, g, at)
}

/// `K[(u, v), (i, j)] = P[u, i] * P[v, j]` for a `rows x cols` matrix `P`: the matrix that
/// applies `P . X . P^T` to a row-major flattened `cols x cols` tile `X`.
fn kron_self(p: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut k = vec![0.0; rows * rows * cols * cols];
    for u in 0..rows {
        for v in 0..rows {
            for i in 0..cols {
                for j in 0..cols {
                    k[(u * rows + v) * cols * cols + i * cols + j] =
                        p[u * cols + i] * p[v * cols + j];
                }
            }
        }
    }
    k
}

/// Panics unless `x` `[B, C, H, W]`, `weight` `[Co, C, 3, 3]` and `padding` fit together (the
/// Winograd kernels' shared precondition).
pub(super) fn check_3x3(x: &Tensor<4>, weight: &Tensor<4>, padding: Padding) {
    let [_, _, kh, kw] = weight.dims();
    assert_eq!([kh, kw], [3, 3], "winograd: kernel must be 3x3");
    check_square(x, weight, padding);
}

/// Panics unless `weight` is a square kernel that fits `x`'s channels and size with `padding`.
pub(super) fn check_square(x: &Tensor<4>, weight: &Tensor<4>, padding: Padding) {
    let [_, c, h, w] = x.dims();
    let [_, ci, kh, kw] = weight.dims();
    assert_eq!(
        c, ci,
        "winograd: input has {c} channels, weight expects {ci}"
    );
    assert_eq!(kh, kw, "winograd: square kernels only");
    padding.check(h, w, [kh, kw], "winograd");
}

/// 3x3 convolution, stride 1, of `x` `[B, C, H, W]` padded by `padding` (1 keeps the size) with
/// `weight` `[Cout, C, 3, 3]` and `bias`, by Winograd F(m x m, 3 x 3). Gives `[B, Cout, Ho, Wo]`.
pub fn conv3x3(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    padding: Padding,
    tile: Tile,
) -> Tensor<4> {
    check_3x3(&x, &weight, padding);
    let [b, c, h, w] = x.dims();
    let [co, ..] = weight.dims();
    let p = padding.amount();
    let (m, a) = (tile.m(), tile.a());
    let (ho, wo) = (h + 2 * p - 2, w + 2 * p - 2);
    let (th, tw) = (ho.div_ceil(m), wo.div_ceil(m));
    let tiles = b * th * tw;
    let positions = a * a;
    let device = x.device();
    let (bt, g, at) = tile.matrices();
    let constant =
        |v: Vec<f32>, shape: [usize; 2]| Tensor::<2>::from_data(TensorData::new(v, shape), &device);

    // Input tiles: d[ξ, t, c] for each tile position ξ, tile t and channel c.
    let pixels = b * h * w;
    let rows = x.permute([0, 2, 3, 1]).reshape([pixels, c]);
    let src = tile_rows(b, h, w, padding, tile, th, tw);
    let rows = with_zero_row(rows, src.contains(&(pixels as i64)));
    let index = Tensor::<1, Int>::from_data(TensorData::new(src, [positions * tiles]), &device);
    let d = rows.select(0, index).reshape([positions, tiles * c]);

    // V = (B^T ⊗ B^T) d, U = (G ⊗ G) g, then one product per position.
    let v = constant(kron_self(&bt, a, a), [positions, positions])
        .matmul(d)
        .reshape([positions, tiles, c]);
    let filters = weight.permute([2, 3, 1, 0]).reshape([9, c * co]);
    let u = constant(kron_self(&g, a, 3), [positions, 9])
        .matmul(filters)
        .reshape([positions, c, co]);
    let mprod = v.matmul(u).reshape([positions, tiles * co]);

    // Y = (A^T ⊗ A^T) M: [m * m, tiles * Cout], then tiles back into the picture in two
    // copies: to pixel-major (runs of Cout contiguous floats), then one 2-D transpose to NCHW.
    // One 6-D permute straight to NCHW moves single floats and took 3x longer at 480p.
    let (hp, wp) = (th * m, tw * m);
    let y = constant(kron_self(&at, m, a), [m * m, positions])
        .matmul(mprod)
        .reshape([m, m, b, th, tw, co])
        .permute([2, 3, 0, 4, 1, 5])
        .reshape([b, hp * wp, co])
        .swap_dims(1, 2)
        .reshape([b, co * hp * wp]) // makes the transposed view contiguous here, in one copy
        .reshape([b, co, hp, wp]);
    let y = if th * m != ho || tw * m != wo {
        y.slice([0..b, 0..co, 0..ho, 0..wo])
    } else {
        y
    };
    match bias {
        Some(bias) => y + bias.reshape([1, co, 1, 1]),
        None => y,
    }
}

/// For each tile position (row i, column j of the a x a input tile) and each tile (batch, tile
/// row, tile column), in that order, the input row it reads: `batch * h * w + iy * w + ix`, or
/// `b * h * w` (a zero) in zero padding and beyond the padded picture (tiles that overhang the
/// output's last row or column; their extra outputs are cropped).
fn tile_rows(
    b: usize,
    h: usize,
    w: usize,
    padding: Padding,
    tile: Tile,
    th: usize,
    tw: usize,
) -> Vec<i64> {
    let (m, a) = (tile.m(), tile.a());
    let p = padding.amount();
    let zero = (b * h * w) as i64;
    // Padded coordinate q -> input coordinate, or None for a zero (padding or overhang).
    let place = |q: usize, n: usize| -> Option<usize> {
        if q >= n + 2 * p {
            return None;
        }
        padding.source(q as i64 - p as i64, n)
    };
    let mut src = Vec::with_capacity(a * a * b * th * tw);
    for i in 0..a {
        for j in 0..a {
            for bi in 0..b {
                let base = (bi * h * w) as i64;
                for ty in 0..th {
                    let iy = place(ty * m + i, h);
                    for tx in 0..tw {
                        let ix = place(tx * m + j, w);
                        src.push(match (iy, ix) {
                            (Some(iy), Some(ix)) => base + (iy * w + ix) as i64,
                            _ => zero,
                        });
                    }
                }
            }
        }
    }
    src
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `A^T [(G g) ⊙ (B^T d)]` is the correlation of `d` with `g`, for both tiles.
    #[test]
    fn one_dimensional_transforms_compute_the_correlation() {
        for tile in [Tile::Two, Tile::Four] {
            let (m, a) = (tile.m(), tile.a());
            let (bt, g, at) = tile.matrices();
            let d: Vec<f32> = (0..a).map(|i| ((i * 7 + 3) % 5) as f32 - 1.7).collect();
            let k = [0.3f32, -1.1, 0.8];
            let u: Vec<f32> = (0..a)
                .map(|j| (0..3).map(|c| g[j * 3 + c] * k[c]).sum())
                .collect();
            let v: Vec<f32> = (0..a)
                .map(|j| (0..a).map(|c| bt[j * a + c] * d[c]).sum())
                .collect();
            for i in 0..m {
                let fast: f32 = (0..a).map(|j| at[i * a + j] * u[j] * v[j]).sum();
                let direct: f32 = (0..3).map(|c| k[c] * d[i + c]).sum();
                assert!(
                    (fast - direct).abs() < 1e-5,
                    "{tile:?} output {i}: {fast} vs {direct}"
                );
            }
        }
    }

    /// The m = 2 matrices are Lavin & Gray's (up to the sign of matching rows).
    #[test]
    fn f2_matches_the_published_matrices() {
        let (bt, g, at) = Tile::Two.matrices();
        assert_eq!(at, vec![1., 1., 1., 0., 0., 1., -1., 1.]);
        assert_eq!(&bt[4..12], &[0., 1., 1., 0., 0., -1., 1., 0.]);
        assert_eq!(&g[3..9], &[0.5, 0.5, 0.5, 0.5, -0.5, 0.5]);
    }

    #[test]
    fn tile_rows_pad_and_overhang() {
        // 1 x 3 x 3 picture, reflect 1, m = 2: two tiles per side, the second overhangs.
        let src = tile_rows(1, 3, 3, Padding::Reflect(1), Tile::Two, 2, 2);
        assert_eq!(src.len(), 16 * 4);
        // Position (0, 0) of tile (0, 0) is padded (-1, -1), mirrored to (1, 1) = row 4.
        assert_eq!(src[0], 4);
        // Position (3, 3) of tile (1, 1) is padded (5, 5): beyond the padded picture, a zero.
        assert_eq!(src[15 * 4 + 3], 9);
        let zeros = tile_rows(1, 3, 3, Padding::Zeros(1), Tile::Two, 2, 2);
        assert_eq!(zeros[0], 9);
    }
}
