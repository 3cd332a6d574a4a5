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
//! [`conv2d`] uses this only in training (autodiff devices) and for inputs of more than 4
//! channels: at inference burn's tiled im2col, which stays in cache, is faster (2.5x at 480p),
//! and rows of 3 channels gather slowly. The price is memory: the gathered `cols` are kept for
//! the backward pass (peak 1.6 GiB instead of 0.8 GiB at 128 px).
//!
//! 3x3 stride-1 convolutions (the residual blocks, 80% of the arithmetic) go to
//! [`super::winograd::conv3x3`] instead, in training and inference: 4x fewer multiplications,
//! and less kept for backward than the gathered `cols` (peak 4.5 GiB at 256 px against 6.5).
//!
//! Environment switches, for the benchmarks' "before" figures: `CYCLEGAN_BURN_CONV=1` routes
//! every call to burn's own convolution (after `Tensor::pad` for reflection);
//! `CYCLEGAN_WINOGRAD=0` keeps the gather + GEMM path for the 3x3 layers too (`=2` selects the
//! smaller F(2x2, 3x3) tiles).

use std::sync::OnceLock;

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::ops::{ConvOptions, PadMode};

/// How a convolution's input is padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// `p` zeros on every side (PyTorch's `padding=p`).
    Zeros(usize),
    /// `p` pixels mirrored on every side, edge excluded (PyTorch's `ReflectionPad2d(p)`).
    Reflect(usize),
}

impl Padding {
    fn amount(self) -> usize {
        match self {
            Padding::Zeros(p) | Padding::Reflect(p) => p,
        }
    }
}

/// Apply `conv`'s weight, bias and stride to `x` `[B, Cin, H, W]` padded by `padding` (the
/// layer's own padding setting is ignored), giving `[B, Cout, Ho, Wo]`. Dilation and groups
/// must be 1.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>, padding: Padding) -> Tensor<4> {
    assert_eq!(conv.groups, 1, "ops::conv2d: groups must be 1");
    assert_eq!(conv.dilation, [1, 1], "ops::conv2d: dilation must be 1");
    let weight = conv.weight.val();
    let bias = conv.bias.as_ref().map(|b| b.val());
    conv2d_raw(x, weight, bias, conv.stride, padding)
}

/// [`conv2d`] on bare tensors: `weight` `[Cout, Cin, kh, kw]`, `bias` `[Cout]`.
///
/// Chooses by what measured faster on the 2-core benchmark machine (BENCHMARKS.md): Winograd
/// for 3x3 stride-1 layers (training and inference); in training [`conv2d_gemm`] for the other
/// layers with more than [`MIN_GATHER_CHANNELS`] input channels; burn's convolution for the RGB
/// inputs and for the other layers at inference.
pub fn conv2d_raw(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: [usize; 2],
    padding: Padding,
) -> Tensor<4> {
    let [_, c, _, _] = x.dims();
    let [_, _, kh, kw] = weight.dims();
    if use_burn_conv() || c <= MIN_GATHER_CHANNELS {
        return burn_conv2d(x, weight, bias, stride, padding);
    }
    if [kh, kw] == [3, 3]
        && stride == [1, 1]
        && let Some(tile) = winograd_tile()
    {
        return super::winograd::conv3x3(x, weight, bias, padding, tile);
    }
    if !x.device().is_autodiff() {
        return burn_conv2d(x, weight, bias, stride, padding);
    }
    conv2d_gemm(x, weight, bias, stride, padding)
}

/// Inputs with at most this many channels go to burn's convolution in [`conv2d_raw`]: rows of
/// 1-4 floats are too short to gather efficiently.
pub const MIN_GATHER_CHANNELS: usize = 4;

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
        "ops::conv2d: input has {c} channels, weight expects {ci}"
    );
    let p = padding.amount();
    if let Padding::Reflect(p) = padding {
        assert!(
            p < h && p < w,
            "reflection padding {p} needs an input larger than {p}"
        );
    }
    assert!(
        h + 2 * p >= kh && w + 2 * p >= kw,
        "ops::conv2d: kernel larger than input"
    );
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

/// The Winograd tile for training's 3x3 layers, `None` when `CYCLEGAN_WINOGRAD=0` (read once).
fn winograd_tile() -> Option<super::winograd::Tile> {
    static TILE: OnceLock<Option<super::winograd::Tile>> = OnceLock::new();
    *TILE.get_or_init(|| match std::env::var("CYCLEGAN_WINOGRAD").as_deref() {
        Ok("0") => None,
        Ok("2") => Some(super::winograd::Tile::Two),
        _ => Some(super::winograd::Tile::Four),
    })
}

/// `rows` with a row of zeros appended when `needed`: the source of gathered padding zeros.
pub(super) fn with_zero_row(rows: Tensor<2>, needed: bool) -> Tensor<2> {
    if needed {
        let [_, n] = rows.dims();
        let zeros = Tensor::zeros([1, n], &rows.device());
        Tensor::cat(vec![rows, zeros], 0)
    } else {
        rows
    }
}

/// True when `CYCLEGAN_BURN_CONV=1`: use burn's convolution (read once per process).
fn use_burn_conv() -> bool {
    static BURN: OnceLock<bool> = OnceLock::new();
    *BURN.get_or_init(|| std::env::var("CYCLEGAN_BURN_CONV").is_ok_and(|v| v == "1"))
}

/// The same convolution with burn's own ops: `Tensor::pad` then `conv2d`.
pub fn burn_conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: [usize; 2],
    padding: Padding,
) -> Tensor<4> {
    let (x, p) = match padding {
        Padding::Zeros(p) => (x, p),
        Padding::Reflect(p) => (x.pad([(p, p), (p, p)], PadMode::Reflect), 0),
    };
    burn::tensor::module::conv2d(x, weight, bias, ConvOptions::new(stride, [p, p], [1, 1], 1))
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
    let last = n as i64 - 1;
    let mut src = Vec::with_capacity(out * k);
    for o in 0..out {
        for t in 0..k {
            let i = (o * stride + t) as i64 - p;
            src.push(match padding {
                _ if (0..=last).contains(&i) => Some(i as usize),
                Padding::Zeros(_) => None,
                // Mirror about the edge pixel (no repeat), as PyTorch's ReflectionPad2d.
                Padding::Reflect(_) => Some(if i < 0 { -i } else { 2 * last - i } as usize),
            });
        }
    }
    src
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
    let p = padding.amount() as i64;
    let zero = (b * h * w) as i64;
    // Mirror about the edge pixel (no repeat), as PyTorch's ReflectionPad2d.
    let place = |i: i64, n: usize| -> Option<i64> {
        let n = n as i64;
        match padding {
            _ if (0..n).contains(&i) => Some(i),
            Padding::Zeros(_) => None,
            Padding::Reflect(_) => Some(if i < 0 { -i } else { 2 * (n - 1) - i }),
        }
    };
    let mut src = Vec::with_capacity(b * ho * wo * kh * kw);
    for bi in 0..b {
        let base = (bi * h * w) as i64;
        for oy in 0..ho {
            for ox in 0..wo {
                for ky in 0..kh {
                    let iy = place((oy * stride[0] + ky) as i64 - p, h);
                    for kx in 0..kw {
                        let ix = place((ox * stride[1] + kx) as i64 - p, w);
                        src.push(match (iy, ix) {
                            (Some(iy), Some(ix)) => base + iy * w as i64 + ix,
                            _ => zero,
                        });
                    }
                }
            }
        }
    }
    src
}
