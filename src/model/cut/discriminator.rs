//! CUT's PatchGAN: the 70x70 PatchGAN with anti-aliased downsampling.

use burn::nn::InstanceNorm;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::leaky_relu;

use super::antialias::{blur_down, down_filter};
use super::conv;
use crate::model::conv::Padding;
use crate::model::discriminator::patch_widths;
use crate::model::generator::{conv2d, instance_norm};
use crate::model::norm::instance_norm_act;
use crate::model::precision::Precision;
use crate::model::weights::HostTensor;
use crate::model::{DiscriminatorConfig, NamedConv, NamedConvs};

/// The discriminator of CUT and FastCUT: CycleGAN's PatchGAN (`C64-C128-C256-C512`, then a
/// 1-channel map) whose stride-2 convolutions are stride-1 ones followed by a blur with stride
/// 2 (the authors' default), or, without anti-aliasing, exactly CycleGAN's PatchGAN.
///
/// Parameters are named as the authors' checkpoints: anti-aliased, convolutions at
/// `model.0, 3, 7, 11, 14` and blur buffers at `model.2, 6, 10` (3 layers).
#[derive(Module, Debug)]
pub struct CutDiscriminator {
    /// 4x4 convolutions with zero padding 1; all but the first and last feed an instance norm.
    convs: Vec<Conv2d>,
    /// Norms of `convs[1..convs.len()-1]`.
    norms: Vec<InstanceNorm>,
    /// The float type of the convolutions (not a parameter; float32 unless set).
    #[module(skip)]
    precision: Precision,
}

impl CutDiscriminator {
    /// A discriminator with zero weights; use [`crate::model::weights::init_normal`].
    pub fn new(config: &DiscriminatorConfig, antialias: bool, device: &Device) -> Self {
        let down_stride = if antialias { 1 } else { 2 };
        let (mut convs, mut norms) = (Vec::new(), Vec::new());
        for (i, [cin, cout]) in patch_widths(config).into_iter().enumerate() {
            let stride = if i < config.layers { down_stride } else { 1 };
            convs.push(conv2d(cin, cout, 4, stride, 1, true, device));
            if i > 0 {
                norms.push(instance_norm(cout, device));
            }
        }
        let last = convs[convs.len() - 1].weight.dims()[0];
        convs.push(conv2d(last, 1, 4, 1, 1, true, device));
        CutDiscriminator {
            convs,
            norms,
            precision: Precision::F32,
        }
    }

    /// The configuration this discriminator was built with, and whether it is anti-aliased.
    pub fn config(&self) -> (DiscriminatorConfig, bool) {
        let [ndf, _, _, _] = self.convs[0].weight.dims();
        let config = DiscriminatorConfig::patch(ndf, self.convs.len() - 2);
        (config, self.antialias())
    }

    /// Compute the convolutions in `precision` (input and output stay float32).
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    fn antialias(&self) -> bool {
        self.convs[0].stride == [1, 1]
    }

    /// Score a batch of images `[batch, 3, H, W]` in [-1, 1]: a map `[batch, 1, h, w]` of
    /// real-vs-fake logits, one per patch.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let antialias = self.antialias();
        let downsamples = self.convs.len() - 2;
        let last = self.convs.len() - 1;
        let conv = |i: usize, x| conv(&self.convs[i], x, Padding::Zeros(1));
        let mut x = leaky_relu(conv(0, self.precision.enter(x)), 0.2);
        if antialias {
            x = blur_down(x);
        }
        for (i, norm) in (1..last).zip(&self.norms) {
            x = instance_norm_act(norm, conv(i, x), 0.2);
            if antialias && i < downsamples {
                x = blur_down(x);
            }
        }
        self.precision.leave(conv(last, x))
    }

    /// Sequence index of each convolution, and of each blur (empty without anti-aliasing).
    fn indices(&self) -> (Vec<usize>, Vec<usize>) {
        let (mut convs, mut blurs) = (vec![0], Vec::new());
        let downsamples = self.convs.len() - 2;
        // conv, LeakyReLU[, blur] for the first; conv, norm, LeakyReLU[, blur] for the others.
        let mut next = if self.antialias() {
            blurs.push(2);
            3
        } else {
            2
        };
        for i in 1..self.convs.len() {
            convs.push(next);
            next += 3;
            if self.antialias() && i < downsamples {
                blurs.push(next);
                next += 1;
            }
        }
        (convs, blurs)
    }
}

impl NamedConvs for CutDiscriminator {
    fn named_convs(&mut self) -> Vec<NamedConv<'_>> {
        let (indices, _) = self.indices();
        let last = self.convs.len() - 1;
        self.convs
            .iter_mut()
            .zip(indices)
            .enumerate()
            .map(|(i, (c, index))| {
                let named = NamedConv::conv(format!("model.{index}"), c);
                // All but the first and the last feed an instance norm.
                if i == 0 || i == last {
                    named
                } else {
                    named.before_norm()
                }
            })
            .collect()
    }

    /// The blur filters (`model.N.filt`).
    fn buffers(&self) -> Vec<(String, HostTensor)> {
        let (_, blurs) = self.indices();
        blurs
            .into_iter()
            .zip(&self.convs)
            .map(|(index, c)| {
                let [channels, _, _, _] = c.weight.dims();
                (format!("model.{index}.filt"), down_filter(channels))
            })
            .collect()
    }
}
