//! `model::conv::conv2d_gemm`, `model::conv::conv3x3` (and `ConvPolicy::conv2d_raw`, which picks
//! one of them or burn's) against burn's own convolution: outputs and gradients.

use burn::prelude::*;
use burn::tensor::Distribution;
use cyclegan::model::conv::{ConvPolicy, Padding, Tile, burn_conv2d, conv2d_gemm, conv3x3};

/// A convolution under test: input, weight, bias, stride, padding.
type Conv = dyn Fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>, [usize; 2], Padding) -> Tensor<4>;

fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    (a - b).abs().max().into_scalar()
}

/// Forward, input gradient, weight gradient and bias gradient of `conv2d_gemm` and burn's agree.
#[allow(clippy::too_many_arguments)]
fn check(
    batch: usize,
    cin: usize,
    cout: usize,
    k: usize,
    size: [usize; 2],
    stride: usize,
    padding: Padding,
) {
    check_against_burn(&conv2d_gemm, batch, cin, cout, k, size, stride, padding);
}

/// Forward, input gradient, weight gradient and bias gradient of `ours` and burn's agree.
#[allow(clippy::too_many_arguments)]
fn check_against_burn(
    ours: &Conv,
    batch: usize,
    cin: usize,
    cout: usize,
    k: usize,
    size: [usize; 2],
    stride: usize,
    padding: Padding,
) {
    let device = Device::flex().autodiff();
    let x: Tensor<4> = Tensor::random(
        [batch, cin, size[0], size[1]],
        Distribution::Uniform(-1.0, 1.0),
        &device,
    );
    let w: Tensor<4> = Tensor::random([cout, cin, k, k], Distribution::Uniform(-0.5, 0.5), &device);
    let bias: Tensor<1> = Tensor::random([cout], Distribution::Uniform(-0.5, 0.5), &device);
    let run = |conv: &Conv| {
        let (x, w, bias) = (
            x.clone().require_grad(),
            w.clone().require_grad(),
            bias.clone().require_grad(),
        );
        let y = conv(
            x.clone(),
            w.clone(),
            Some(bias.clone()),
            [stride, stride],
            padding,
        );
        // A non-uniform upstream gradient.
        let g = Tensor::arange(0..y.shape().num_elements() as i64, &device)
            .float()
            .reshape(y.dims())
            .mul_scalar(0.001)
            .sin();
        let grads = (y.clone() * g).sum().backward();
        (
            y.inner(),
            x.grad(&grads).expect("x grad"),
            w.grad(&grads).expect("w grad"),
            bias.grad(&grads).expect("bias grad"),
        )
    };
    let (y0, dx0, dw0, db0) = run(&burn_conv2d);
    let (y1, dx1, dw1, db1) = run(ours);
    let what =
        format!("batch {batch}, {cin}->{cout}, k{k}, {size:?}, stride {stride}, {padding:?}");
    assert_eq!(y0.dims(), y1.dims(), "{what}: output shape");
    let tol = 1e-4 * (cin * k * k) as f32;
    for (name, d) in [
        ("output", max_abs_diff(y0, y1)),
        ("input grad", max_abs_diff(dx0, dx1)),
        ("weight grad", max_abs_diff(dw0, dw1)),
        (
            "bias grad",
            max_abs_diff(db0.reshape([1, cout]), db1.reshape([1, cout])),
        ),
    ] {
        assert!(d <= tol, "{what}: {name} differs by {d} (tolerance {tol})");
    }
}

#[test]
fn reflect_3x3_as_in_residual_blocks() {
    check(1, 8, 8, 3, [10, 12], 1, Padding::Reflect(1));
    check(2, 8, 8, 3, [9, 7], 1, Padding::Reflect(1));
}

#[test]
fn reflect_7x7_stem_and_head() {
    // Stem: more outputs than inputs (gather first); head: fewer (columns first).
    check(1, 5, 8, 7, [12, 16], 1, Padding::Reflect(3));
    check(2, 8, 3, 7, [12, 8], 1, Padding::Reflect(3));
}

#[test]
fn zero_padded_strided_as_in_downsampling_and_patchgan() {
    check(1, 5, 8, 3, [16, 16], 2, Padding::Zeros(1));
    check(2, 6, 8, 4, [17, 15], 2, Padding::Zeros(1));
    check(1, 8, 16, 4, [6, 6], 1, Padding::Zeros(1));
    // The PatchGAN's last layer: one output channel.
    check(2, 16, 1, 4, [5, 5], 1, Padding::Zeros(1));
}

#[test]
fn no_padding() {
    check(1, 5, 6, 3, [8, 8], 1, Padding::Zeros(0));
    check(1, 6, 2, 3, [8, 8], 2, Padding::Zeros(0));
}

#[test]
fn the_chooser_matches_too() {
    // Training and inference devices; a 7x7 layer (gather + GEMM) and a 3x3 one (Winograd).
    for device in [Device::flex().autodiff(), Device::flex()] {
        for k in [7, 3] {
            let x: Tensor<4> = Tensor::random([1, 8, 9, 9], Distribution::Default, &device);
            let w: Tensor<4> = Tensor::random([16, 8, k, k], Distribution::Default, &device);
            let p = Padding::Reflect(k / 2);
            let y0 = burn_conv2d(x.clone(), w.clone(), None, [1, 1], p);
            let y1 = ConvPolicy::for_device(&device).conv2d_raw(x, w, None, [1, 1], p);
            // Sums of 392 products near 100: float32 rounding reaches 1e-4, so relative to the
            // largest output (the 7x7 inference kernel sums in another order than burn's).
            let largest = y0.clone().abs().max().into_scalar::<f32>().max(1.0);
            let d = max_abs_diff(y0, y1);
            assert!(
                d < 2e-6 * largest,
                "k{k}: {d} off, largest output {largest}"
            );
        }
    }
}

fn winograd(
    tile: Tile,
) -> impl Fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>, [usize; 2], Padding) -> Tensor<4> {
    move |x, w, b, stride, padding| {
        assert_eq!(stride, [1, 1]);
        conv3x3(x, w, b, padding, tile)
    }
}

#[test]
fn winograd_matches_direct_convolution() {
    for tile in [Tile::Two, Tile::Four] {
        let conv = winograd(tile);
        // Sizes that are and are not multiples of the tile, batches, both paddings.
        check_against_burn(&conv, 1, 8, 8, 3, [8, 8], 1, Padding::Reflect(1));
        check_against_burn(&conv, 2, 8, 6, 3, [9, 7], 1, Padding::Reflect(1));
        check_against_burn(&conv, 1, 5, 9, 3, [11, 6], 1, Padding::Zeros(1));
        check_against_burn(&conv, 1, 6, 4, 3, [7, 10], 1, Padding::Zeros(0));
        check_against_burn(&conv, 1, 3, 2, 3, [2, 3], 1, Padding::Reflect(1));
    }
}
