//! Floating-point work of a training iteration and of inference, from the networks' own layer
//! lists ([`crate::model::layers::ConvLayer`]).

use crate::model::layers::ConvLayer;
use crate::model::{PatchDiscriminator, ResnetGenerator};

/// How often each kind of convolution pass runs in one CycleGAN iteration (see
/// `family::CycleGan::step`).
#[derive(Debug, Clone, Copy)]
pub struct PassCounts {
    /// Generator forwards (all differentiated): fake_B, rec_A, fake_A, rec_B, idt_A, idt_B;
    /// each also has its weight gradients and, past the first layer, input gradients.
    pub g_fwd: f64,
    /// Generator forwards whose input needs a gradient (rec_A, rec_B): the first layer's input
    /// gradient.
    pub g_first_xgrad: f64,
    /// Discriminator forwards: 2 on frozen copies in the G step, 4 in the D step.
    pub d_fwd: f64,
    /// Input gradients through a discriminator's first layer: the G step's 2.
    pub d_first_xgrad: f64,
    /// Input gradients through its other layers: 2 (G step) + 4 (D step).
    pub d_xgrad: f64,
    /// Weight gradients of a discriminator: the D step's 4 forwards.
    pub d_wgrad: f64,
}

/// The passes of one CycleGAN iteration with identity loss.
pub const ITERATION: PassCounts = PassCounts {
    g_fwd: 6.0,
    g_first_xgrad: 2.0,
    d_fwd: 6.0,
    d_first_xgrad: 2.0,
    d_xgrad: 6.0,
    d_wgrad: 4.0,
};

impl PassCounts {
    /// Per generator layer (index `i`): forwards, input gradients, weight gradients.
    pub fn generator(&self, i: usize) -> [f64; 3] {
        let xgrad = if i == 0 {
            self.g_first_xgrad
        } else {
            self.g_fwd
        };
        [self.g_fwd, xgrad, self.g_fwd]
    }

    /// Per discriminator layer (index `i`): forwards, input gradients, weight gradients.
    pub fn discriminator(&self, i: usize) -> [f64; 3] {
        let xgrad = if i == 0 {
            self.d_first_xgrad
        } else {
            self.d_xgrad
        };
        [self.d_fwd, xgrad, self.d_wgrad]
    }
}

/// Forward convolution FLOPs of `layers`.
pub fn forward_flop(layers: &[ConvLayer]) -> f64 {
    layers.iter().map(ConvLayer::flop).sum()
}

/// Convolution FLOPs of one CycleGAN iteration on `size` x `size` images: forwards, input and
/// weight gradients (each gradient costs what its forward does).
pub fn iteration_flop(g: &ResnetGenerator, d: &PatchDiscriminator, size: usize) -> f64 {
    let c = ITERATION;
    let passes = |l: &ConvLayer, n: [f64; 3]| l.flop() * n.iter().sum::<f64>();
    let g_total: f64 = g
        .conv_layers(size, size)
        .iter()
        .enumerate()
        .map(|(i, l)| passes(l, c.generator(i)))
        .sum();
    let d_total: f64 = d
        .conv_layers(size, size)
        .iter()
        .enumerate()
        .map(|(i, l)| passes(l, c.discriminator(i)))
        .sum();
    g_total + d_total
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;

    use super::*;
    use crate::model::{DiscriminatorConfig, GeneratorConfig};

    /// A tiny case by hand: generator ngf 1, one block, 8x8; discriminator ndf 1, 1 layer.
    #[test]
    fn iteration_flop_of_a_tiny_pair() {
        let device = Device::flex();
        let g = ResnetGenerator::new(&GeneratorConfig::resnet(1, 1), &device);
        let d = PatchDiscriminator::new(&DiscriminatorConfig::patch(1, 1), &device);
        // Generator multiply-adds, layer by layer (channels 3 -> 1 -> 2 -> 4 -> ... -> 3).
        let stem = 3 * 49 * 64; // 3 -> 1, 7x7, 8x8 out
        let down = [2 * 9 * 16, 2 * 4 * 9 * 4]; // 1 -> 2 to 4x4, 2 -> 4 to 2x2
        let block = 4 * 4 * 9 * 4; // 4 -> 4, 2x2, twice
        let up = [4 * 2 * 9 * 4, 2 * 9 * 16]; // per input pixel: 2x2, then 4x4
        let head = 3 * 49 * 64;
        // Discriminator: 3 -> 1 (4x4/2, 8 -> 4), 1 -> 2 (4x4/1, 4 -> 3), 2 -> 1 (3 -> 2).
        let d_layers = [3 * 16 * 16, 2 * 16 * 9, 2 * 16 * 4];
        // Passes: G first layer 6 + 2 + 6, other G layers 18; D first 6 + 2 + 4, others 16.
        let g_work = 14 * stem + 18 * (down[0] + down[1] + 2 * block + up[0] + up[1] + head);
        let d_work = 12 * d_layers[0] + 16 * (d_layers[1] + d_layers[2]);
        assert_eq!(iteration_flop(&g, &d, 8), 2.0 * (g_work + d_work) as f64);
    }
}
