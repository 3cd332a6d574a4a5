//! Inference's stride-1 convolutions with few input or output channels on the CPU: the
//! generator's RGB stem (3 -> 64, 7x7) and head (64 -> 3, 7x7), directly, in plain Rust.
//!
//! burn's CPU convolution is an im2col + GEMM whose product has 3 rows or a 3-deep inner
//! dimension for these layers, which ran at 5-13 GMAC/s (the head was 13% of a 256x256
//! inference). Here each output row is accumulated in place: for every input channel, the `k`
//! padded input rows it needs, then for every output channel and kernel row one pass along the
//! row that adds all `k` horizontal taps (the taps unrolled, the vector running along x). Tasks
//! are output rows, each writing its row of every output channel.

use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;

use super::padding::Padding;
use super::raw::{SharedMut, floats};

/// `x` `[B, C, H, W]` convolved with `weight` `[Co, C, k, k]` (plus `bias`), stride 1, padded by
/// `padding` on every side. `x` must be float32 on burn's CPU backend without autodiff; gives
/// `[B, Co, Ho, Wo]` there.
pub fn conv2d_inference(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    padding: Padding,
) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let [co, ci, k, kw] = weight.dims();
    assert_eq!(
        c, ci,
        "convolution: input has {c} channels, weight expects {ci}"
    );
    assert_eq!(k, kw, "direct convolution: square kernels only");
    padding.check(h, w, [k, k], "direct convolution");
    let device = x.device();
    let p = padding.amount();
    let (ho, wo) = (h + 2 * p - k + 1, w + 2 * p - k + 1);
    let input = floats(x);
    let weight = floats(weight);
    let bias = bias.map(floats).unwrap_or_else(|| vec![0.0; co]);
    // Input column of each padded column, or None for a zero.
    let cols: Vec<Option<usize>> = (0..w + 2 * p)
        .map(|q| padding.source(q as i64 - p as i64, w))
        .collect();

    let mut out = Vec::with_capacity(b * co * ho * wo);
    let out_ptr = SharedMut::new(&mut out);
    (0..b * ho).into_par_iter().for_each(|task| {
        let (n, y) = (task / ho, task % ho);
        let image = &input[n * c * h * w..(n + 1) * c * h * w];
        // acc[o] is output row y of channel o.
        let mut acc: Vec<f32> = (0..co * wo).map(|i| bias[i / wo]).collect();
        let mut rows = vec![0.0f32; k * (w + 2 * p)];
        for i in 0..c {
            let plane = &image[i * h * w..(i + 1) * h * w];
            for (ky, row) in rows.chunks_exact_mut(w + 2 * p).enumerate() {
                match padding.source((y + ky) as i64 - p as i64, h) {
                    Some(iy) => {
                        let src = &plane[iy * w..(iy + 1) * w];
                        row[p..p + w].copy_from_slice(src);
                        for q in (0..p).chain(p + w..w + 2 * p) {
                            row[q] = cols[q].map_or(0.0, |ix| src[ix]);
                        }
                    }
                    None => row.fill(0.0),
                }
            }
            for (o, acc) in acc.chunks_exact_mut(wo).enumerate() {
                let filter = &weight[(o * c + i) * k * k..(o * c + i + 1) * k * k];
                for (taps, row) in filter.chunks_exact(k).zip(rows.chunks_exact(w + 2 * p)) {
                    simd::add_row(acc, row, taps);
                }
            }
        }
        for (o, acc) in acc.chunks_exact(wo).enumerate() {
            // SAFETY: row y of plane o of image n is written by this task only; every
            // (n, o, y) row is written by some task before `set_len` below.
            let dst = unsafe { out_ptr.slice(((n * co + o) * ho + y) * wo, wo) };
            dst.copy_from_slice(acc);
        }
    });
    // SAFETY: the tasks above wrote every row of every output plane.
    unsafe { out.set_len(b * co * ho * wo) };
    Tensor::from_data(TensorData::new(out, [b, co, ho, wo]), &device)
}

/// The row loop, compiled for AVX2 + FMA and portably.
mod simd {
    /// `acc[x] += sum_j taps[j] * row[x + j]` for every x of `acc`.
    pub fn add_row(acc: &mut [f32], row: &[f32], taps: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU has the features the function was compiled for.
                return unsafe { avx2::add_row(acc, row, taps) };
            }
        }
        portable::add_row(acc, row, taps)
    }

    macro_rules! kernels {
        ($($attr:meta)?; $fma:expr) => {
            #[inline(always)]
            fn madd(a: f32, b: f32, c: f32) -> f32 {
                if $fma { a.mul_add(b, c) } else { a * b + c }
            }

            /// With the tap count a constant, the taps unroll and the vector runs along x.
            #[inline(always)]
            fn add_row_k<const K: usize>(acc: &mut [f32], row: &[f32], taps: &[f32]) {
                let taps: [f32; K] = std::array::from_fn(|j| taps[j]);
                let n = acc.len();
                let row = &row[..n + K - 1];
                for x in 0..n {
                    let mut sum = acc[x];
                    for j in 0..K {
                        sum = madd(taps[j], row[x + j], sum);
                    }
                    acc[x] = sum;
                }
            }

            $(#[$attr])?
            pub fn add_row(acc: &mut [f32], row: &[f32], taps: &[f32]) {
                match taps.len() {
                    7 => add_row_k::<7>(acc, row, taps),
                    4 => add_row_k::<4>(acc, row, taps),
                    3 => add_row_k::<3>(acc, row, taps),
                    1 => add_row_k::<1>(acc, row, taps),
                    _ => {
                        for (j, &tap) in taps.iter().enumerate() {
                            for (a, &r) in acc.iter_mut().zip(&row[j..]) {
                                *a = madd(tap, r, *a);
                            }
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

    /// Equals burn's convolution for the stem's and head's shapes (both paddings, batch 2, a
    /// kernel size without its own unrolled loop).
    #[test]
    fn matches_burns_convolution() {
        let device = Device::flex();
        for (b, c, co, k, h, w, padding) in [
            (1, 3, 8, 7, 11, 9, Padding::Reflect(3)),
            (2, 8, 3, 7, 8, 10, Padding::Zeros(3)),
            (1, 4, 5, 5, 6, 7, Padding::Reflect(2)),
            (1, 2, 2, 1, 3, 4, Padding::Zeros(0)),
        ] {
            let tensor = |v: Vec<f32>, shape: [usize; 4]| {
                Tensor::<4>::from_data(TensorData::new(v, shape), &device)
            };
            let x = tensor(pseudo_random(b * c * h * w, 1), [b, c, h, w]);
            let weight = tensor(pseudo_random(co * c * k * k, 2), [co, c, k, k]);
            let bias = Tensor::<1>::from_data(TensorData::new(pseudo_random(co, 3), [co]), &device);
            let want = burn_conv2d(
                x.clone(),
                weight.clone(),
                Some(bias.clone()),
                [1, 1],
                padding,
            );
            let got = conv2d_inference(x, weight, Some(bias), padding);
            assert_eq!(got.dims(), want.dims());
            let (got, want) = (floats(got), floats(want));
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                worst < 1e-4,
                "{padding:?} {b}x{c}x{h}x{w} k{k}: worst difference {worst}"
            );
        }
    }

    #[test]
    fn portable_row_equals_the_dispatched_one() {
        let row = pseudo_random(40, 5);
        let taps = pseudo_random(7, 6);
        let (mut a, mut b) = (pseudo_random(34, 7), pseudo_random(34, 7));
        simd::add_row(&mut a, &row, &taps);
        simd::portable::add_row(&mut b, &row, &taps);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    }
}
