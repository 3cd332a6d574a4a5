//! The networks of CUT and FastCUT (Park, Efros, Zhang, Zhu 2020, "Contrastive Learning for
//! Unpaired Image-to-Image Translation"), with the defaults of the authors' code:
//!
//! - [`CutGenerator`]: CycleGAN's ResNet generator with anti-aliased down- and upsampling, and
//!   [`CutGenerator::forward_features`] for PatchNCE's encoder layers;
//! - [`CutDiscriminator`]: the 70x70 PatchGAN with anti-aliased downsampling;
//! - [`PatchHeads`]: the per-layer MLP heads that project sampled patches (`netF`);
//! - [`antialias`]: the blur-pool resampling they share.
//!
//! Parameters are named as the authors' state dicts (`model.N.*`, `mlp_I.{0,2}.*`), so
//! [`crate::model::weights::state_dict`] and `load_state_dict` work for all three, and the
//! authors' `.pth` generators load (their layout found by [`infer_cut_generator_config`]).

pub mod antialias;
pub mod blur_cpu;
mod discriminator;
mod generator;
mod heads;

pub use discriminator::CutDiscriminator;
pub use generator::{CutGenerator, CutGeneratorConfig, infer_cut_generator_config};
pub use heads::{HEAD_CHANNELS, PatchHeads};

use burn::nn::conv::Conv2d;
use burn::prelude::*;

use super::conv::{ConvPolicy, Padding};

/// PatchNCE's default layers of the generator's `model` sequence (`--nce_layers 0,4,8,12,16`).
pub const DEFAULT_NCE_LAYERS: [usize; 5] = [0, 4, 8, 12, 16];

/// Every convolution of the CUT networks goes through here, with the kernels chosen for the
/// input's device.
fn conv(layer: &Conv2d, x: Tensor<4>, padding: Padding) -> Tensor<4> {
    ConvPolicy::for_device(&x.device()).conv2d(layer, x, padding)
}
