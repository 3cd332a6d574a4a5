//! The convolution kernels side by side on each distinct layer of the networks: forward and
//! backward (input and weight gradients) on autodiff tensors.

use burn::prelude::*;
use burn::tensor::Distribution;

use super::profile::op_time;
use super::{Settings, profile::layer_label};
use crate::model::conv::{ConvPolicy, Kernel, Padding, Tile, burn_conv2d};
use crate::model::layers::ConvLayer;

/// Seconds of forward + backward of one layer with each kernel.
#[derive(Debug, Clone)]
pub struct KernelTimes {
    /// The layer, for people ([`layer_label`]).
    pub layer: String,
    /// burn's convolution.
    pub burn: f64,
    /// Gather + GEMM as training runs it (`ConvPolicy::Gemm`: burn's kernel for 1-4 input
    /// channels).
    pub gemm: f64,
    /// Winograd F(4x4, 3x3), for 3x3 stride-1 layers only.
    pub winograd: Option<f64>,
}

/// Time each distinct plain (not transposed) convolution of `layers` with every kernel that
/// applies, on the autodiff device `ad`.
pub fn compare_kernels<'a>(
    settings: &Settings,
    layers: impl IntoIterator<Item = &'a ConvLayer>,
    ad: &Device,
) -> Vec<KernelTimes> {
    let mut done: Vec<ConvLayer> = Vec::new();
    let mut out = Vec::new();
    for l in layers {
        if l.transposed || done.contains(l) {
            continue;
        }
        done.push(*l);
        let time = |kernel: Kernel| time_kernel(settings, l, kernel, ad);
        let winograd = (l.kernel == 3 && l.stride == 1).then(|| time(Kernel::Winograd(Tile::Four)));
        out.push(KernelTimes {
            layer: layer_label(l),
            burn: time(Kernel::Burn),
            gemm: time(Kernel::Gemm),
            winograd,
        });
    }
    out
}

/// Median seconds of forward + backward of layer `l` with `kernel`.
fn time_kernel(settings: &Settings, l: &ConvLayer, kernel: Kernel, ad: &Device) -> f64 {
    let [h, w] = l.input;
    let x: Tensor<4> =
        Tensor::random([1, l.in_channels, h, w], Distribution::Default, ad).require_grad();
    let k = l.kernel;
    let wt: Tensor<4> = Tensor::random(
        [l.out_channels, l.in_channels, k, k],
        Distribution::Default,
        ad,
    )
    .require_grad();
    let [oh, ow] = l.output;
    let g: Tensor<4> = Tensor::random([1, l.out_channels, oh, ow], Distribution::Default, ad);
    let (stride, padding): ([usize; 2], Padding) = ([l.stride; 2], l.padding);
    op_time(settings, || {
        let (x, wt) = (x.clone(), wt.clone());
        let y = match kernel {
            Kernel::Burn => burn_conv2d(x, wt, None, stride, padding),
            // What training runs: on the CPU the plain-Rust kernels with their own backward
            // (gather + GEMM in burn's tensor ops for the 3x3 stride-2 layers).
            Kernel::Gemm => ConvPolicy::Gemm.conv2d_raw(x, wt, None, stride, padding),
            Kernel::Winograd(tile) => {
                ConvPolicy::Winograd(tile).conv2d_raw(x, wt, None, stride, padding)
            }
            Kernel::Winograd4x4 => {
                ConvPolicy::Winograd(Tile::Four).conv2d_raw(x, wt, None, stride, padding)
            }
        };
        let _ = (y * g.clone()).sum().backward();
    })
}
