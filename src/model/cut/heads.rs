//! PatchNCE's projection heads: the authors' `PatchSampleF` (`netF`, "mlp_sample").

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::model::{NamedConv, NamedConvs};

/// Channels of every head's hidden layer and output (`netF_nc`).
pub const HEAD_CHANNELS: usize = 256;

/// A fully connected layer with PyTorch's weight layout, held as `[out, in, 1, 1]` so that
/// the weight tools of [`crate::model::weights`] handle it (see [`NamedConv::linear`]).
#[derive(Module, Debug)]
struct Linear {
    weight: Param<Tensor<4>>,
    bias: Param<Tensor<1>>,
}

impl Linear {
    fn new(inputs: usize, outputs: usize, device: &Device) -> Self {
        Linear {
            weight: Param::from_tensor(Tensor::zeros([outputs, inputs, 1, 1], device)),
            bias: Param::from_tensor(Tensor::zeros([outputs], device)),
        }
    }

    /// `x W^T + b` for rows `x` `[N, in]`.
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [outputs, inputs, _, _] = self.weight.dims();
        let w = self.weight.val().reshape([outputs, inputs]);
        x.matmul(w.transpose()) + self.bias.val().unsqueeze_dim(0)
    }
}

/// `Linear(C, 256) - ReLU - Linear(256, 256)`: the reference's `mlp_I` (`nn.Sequential`, so
/// its linear layers are `mlp_I.0` and `mlp_I.2`).
#[derive(Module, Debug)]
struct Mlp {
    first: Linear,
    second: Linear,
}

/// One projection head per PatchNCE layer.
///
/// The reference creates them lazily, from the channel counts of the first batch's features;
/// here they are created up front from the generator's known widths
/// ([`super::CutGeneratorConfig::channels_at`]), which are the same shapes, so the state dict
/// is the same.
#[derive(Module, Debug)]
pub struct PatchHeads {
    mlps: Vec<Mlp>,
}

impl PatchHeads {
    /// Heads for features of `channels` (one entry per NCE layer), zero weights; use
    /// [`crate::model::weights::init_normal`] (the reference's N(0, 0.02), biases zero).
    pub fn new(channels: &[usize], device: &Device) -> Self {
        PatchHeads {
            mlps: channels
                .iter()
                .map(|&c| Mlp {
                    first: Linear::new(c, HEAD_CHANNELS, device),
                    second: Linear::new(HEAD_CHANNELS, HEAD_CHANNELS, device),
                })
                .collect(),
        }
    }

    /// Input channels of each head.
    pub fn channels(&self) -> Vec<usize> {
        self.mlps.iter().map(|m| m.first.weight.dims()[1]).collect()
    }

    /// For each layer `l`: the feature vectors of `feats[l]` (`[B, C, H, W]`) at the flat
    /// positions `ids[l]` (`y * W + x`, the same for every image), projected by head `l` and
    /// L2-normalised as `x / (||x|| + 1e-7)`: `[B * ids.len(), 256]`, image-major.
    pub fn forward(&self, feats: &[Tensor<4>], ids: &[Tensor<1, Int>]) -> Vec<Tensor<2>> {
        assert_eq!(feats.len(), self.mlps.len(), "one feature map per head");
        assert_eq!(ids.len(), self.mlps.len(), "one position list per head");
        feats
            .iter()
            .zip(ids)
            .zip(&self.mlps)
            .map(|((f, idx), mlp)| {
                let x = sample(f.clone(), idx.clone());
                let x = mlp.second.forward(relu(mlp.first.forward(x)));
                let norm = x.clone().square().sum_dim(1).sqrt().add_scalar(1e-7);
                x / norm
            })
            .collect()
    }
}

/// The feature vectors of `f` `[B, C, H, W]` at flat positions `ids`: `[B * P, C]`.
fn sample(f: Tensor<4>, ids: Tensor<1, Int>) -> Tensor<2> {
    let [b, c, h, w] = f.dims();
    let p = ids.dims()[0];
    f.permute([0, 2, 3, 1])
        .reshape([b, h * w, c])
        .select(1, ids)
        .reshape([b * p, c])
}

impl NamedConvs for PatchHeads {
    /// `mlp_I.0` and `mlp_I.2` for head `I`, as the authors' `PatchSampleF`.
    fn named_convs(&mut self) -> Vec<NamedConv<'_>> {
        self.mlps
            .iter_mut()
            .enumerate()
            .flat_map(|(i, m)| {
                [
                    NamedConv::linear(format!("mlp_{i}.0"), &mut m.first.weight, &mut m.first.bias),
                    NamedConv::linear(
                        format!("mlp_{i}.2"),
                        &mut m.second.weight,
                        &mut m.second.bias,
                    ),
                ]
            })
            .collect()
    }
}
