//! Convolution as one gather and one matrix product, for burn's CPU backend.
//!
//! burn's CPU (Flex) backend convolves by tiled im2col + GEMM, and autodiff computes the weight
//! gradient as a convolution of the swapped input and output gradient. At batch 1 that backward
//! runs as hundreds of thin GEMMs (one per input channel, 9-49 columns wide: about 60 GFLOP/s
//! against about 90 forward), and a layer with 3 output channels (the generator's last layer) is
//! a GEMM with 3 rows (under 10 GFLOP/s). Here the same
//! convolution is written with tensor ops whose backward passes are large GEMMs too:
//!
//! - *gather first* (`Cout >= Cin`): `cols[p, (k, c)] = x[src(p, k), c]` by one row gather
//!   (`select`), then `y = cols @ W^T`; backward: `dW = dy^T @ cols`, `dcols = dy @ W`, and a
//!   scatter-add of `dcols` (the gather's backward);
//! - *columns first* (`Cout < Cin`, the RGB head and the PatchGAN's last layer): gather each
//!   input row's horizontal neighbourhoods (`kw` taps), multiply by the weight arranged so that
//!   one product gives every kernel row's partial sums (`kh * Cout` columns), then gather and sum
//!   those over the kernel rows. The products have no wasted work, the large gather moves rows
//!   of `Cin` floats, and the small one `kh` (not `kh * kw`) rows of `Cout` floats per pixel.
//!
//! Reflection and zero padding are folded into the gather's indices (`src`), so no padded copy
//! of the input is made. Rows are pixels and columns channels (NHWC), so every gathered row is a
//! contiguous run of channels. The result equals the direct convolution up to float rounding.
//!
//! [`super::ConvPolicy`] uses this only in training (autodiff devices) and for inputs of more
//! than 4 channels: at inference burn's tiled im2col, which stays in cache, is faster (2.5x at
//! 480p), and rows of 3 channels gather slowly. The price is memory: the gathered `cols` are kept
//! for the backward pass (peak 1.6 GiB instead of 0.8 GiB at 128 px).

use burn::prelude::*;
use burn::tensor::TensorData;

use super::padding::{Padding, with_zero_row};

/// The convolution as one gather and one matrix product (see the module docs), always.
pub fn conv2d_gemm(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: [usize; 2],
    padding: Padding,
) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let [co, ci, kh, kw] = weight.dims();
    assert_eq!(
        c, ci,
        "gather + GEMM convolution: input has {c} channels, weight expects {ci}"
    );
    padding.check(h, w, [kh, kw], "gather + GEMM convolution");
    let p = padding.amount();
    let ho = (h + 2 * p - kh) / stride[0] + 1;
    let wo = (w + 2 * p - kw) / stride[1] + 1;
    let taps = kh * kw;
    let device = x.device();
    let pixels = b * h * w;
    let out_pixels = b * ho * wo;

    // Input pixels as rows of channels.
    let rows = x.permute([0, 2, 3, 1]).reshape([pixels, c]);
    // Source row of every (output pixel, tap), in that order; `pixels` stands for a zero.
    let y = if co >= c {
        // Gather first: cols [P, taps * Cin] @ W [taps * Cin, Cout].
        let src = source_rows(b, h, w, kh, kw, stride, padding, ho, wo);
        let rows = with_zero_row(rows, src.contains(&(pixels as i64)));
        let index = Tensor::<1, Int>::from_data(TensorData::new(src, [out_pixels * taps]), &device);
        let cols = rows.select(0, index).reshape([out_pixels, taps * c]);
        let wmat = weight.permute([0, 2, 3, 1]).reshape([co, taps * c]);
        cols.matmul(wmat.transpose())
    } else {
        // Kernel columns first, rows after: gather each input row's horizontal neighbourhoods,
        // cols [(b, y, ox), (kx, c)]; z = cols @ W gives every kernel row's partial sums
        // [(b, y, ox), (ky, o)]; then gather and sum those over ky for each output pixel.
        let src_x = axis_sources(w, kw, stride[1], padding, wo);
        let src_y = axis_sources(h, kh, stride[0], padding, ho);
        let zero = pixels as i64;
        let mut across = Vec::with_capacity(b * h * wo * kw);
        for bi in 0..b {
            for y in 0..h {
                for s in &src_x {
                    across.push(s.map_or(zero, |ix| ((bi * h + y) * w + ix) as i64));
                }
            }
        }
        let rows = with_zero_row(rows, across.contains(&zero));
        let n = across.len();
        let index = Tensor::<1, Int>::from_data(TensorData::new(across, [n]), &device);
        let cols = rows.select(0, index).reshape([b * h * wo, kw * c]);
        let wmat = weight.permute([3, 1, 2, 0]).reshape([kw * c, kh * co]);
        let z = cols.matmul(wmat).reshape([b * h * wo * kh, co]);
        let zero = (b * h * wo * kh) as i64;
        let mut down = Vec::with_capacity(out_pixels * kh);
        for bi in 0..b {
            for oy in 0..ho {
                for ox in 0..wo {
                    for (ky, s) in src_y[oy * kh..(oy + 1) * kh].iter().enumerate() {
                        down.push(
                            s.map_or(zero, |iy| (((bi * h + iy) * wo + ox) * kh + ky) as i64),
                        );
                    }
                }
            }
        }
        let z = with_zero_row(z, down.contains(&zero));
        let index = Tensor::<1, Int>::from_data(TensorData::new(down, [out_pixels * kh]), &device);
        z.select(0, index)
            .reshape([out_pixels, kh, co])
            .sum_dim(1)
            .reshape([out_pixels, co])
    };
    let y = match bias {
        Some(bias) => y + bias.unsqueeze_dim(0),
        None => y,
    };
    y.reshape([b, ho, wo, co]).permute([0, 3, 1, 2])
}

/// Along one axis of `n` input pixels, for each output position and kernel tap (in that order),
/// the input position it reads, or `None` in zero padding.
fn axis_sources(
    n: usize,
    k: usize,
    stride: usize,
    padding: Padding,
    out: usize,
) -> Vec<Option<usize>> {
    let p = padding.amount() as i64;
    (0..out)
        .flat_map(|o| (0..k).map(move |t| (o * stride + t) as i64 - p))
        .map(|i| padding.source(i, n))
        .collect()
}

/// For each output pixel (batch, row, column) and each tap (kernel row, column), the input
/// row it reads: `batch * h * w + iy * w + ix`, or `b * h * w` (a zero) outside the image.
#[allow(clippy::too_many_arguments)]
fn source_rows(
    b: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    stride: [usize; 2],
    padding: Padding,
    ho: usize,
    wo: usize,
) -> Vec<i64> {
    let src_y = axis_sources(h, kh, stride[0], padding, ho);
    let src_x = axis_sources(w, kw, stride[1], padding, wo);
    let zero = (b * h * w) as i64;
    let mut src = Vec::with_capacity(b * ho * wo * kh * kw);
    for bi in 0..b {
        for oy in 0..ho {
            for ox in 0..wo {
                for iy in &src_y[oy * kh..(oy + 1) * kh] {
                    for ix in &src_x[ox * kw..(ox + 1) * kw] {
                        src.push(match (iy, ix) {
                            (Some(iy), Some(ix)) => ((bi * h + iy) * w + ix) as i64,
                            _ => zero,
                        });
                    }
                }
            }
        }
    }
    src
}
