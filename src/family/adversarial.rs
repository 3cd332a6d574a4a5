//! The adversarial losses of `--gan-mode`, and WGAN-GP's gradient penalty.
//!
//! Each takes a discriminator's output map (logits, or critic scores for wgangp) and gives the
//! mean loss over it, as the reference's `GANLoss`; the discriminator's loss for real and for
//! fake images is then averaged by the model (`0.5 * (real + fake)`, as the reference).

use burn::prelude::*;
use burn::tensor::activation::{relu, softplus};
use rand::Rng;

use crate::config::GanMode;
use crate::model::PatchDiscriminator;

/// Weight of WGAN-GP's gradient penalty (the reference's `lambda_gp`).
pub const LAMBDA_GP: f32 = 10.0;

/// The discriminator's loss on `scores` of images that are `real` (or fake).
pub fn discriminator_loss(mode: GanMode, scores: Tensor<4>, real: bool) -> Tensor<1> {
    match mode {
        GanMode::Lsgan => scores
            .sub_scalar(if real { 1.0 } else { 0.0 })
            .square()
            .mean(),
        // BCE with logits: -log(sigmoid(x)) = softplus(-x) for real, softplus(x) for fake.
        GanMode::Vanilla => softplus(if real { scores.neg() } else { scores }, 1.0).mean(),
        GanMode::Wgangp => match real {
            true => scores.mean().neg(),
            false => scores.mean(),
        },
        GanMode::Hinge => match real {
            true => relu(scores.neg().add_scalar(1.0)).mean(),
            false => relu(scores.add_scalar(1.0)).mean(),
        },
    }
}

/// The generator's adversarial loss on the discriminator's `scores` of its fakes.
pub fn generator_loss(mode: GanMode, scores: Tensor<4>) -> Tensor<1> {
    match mode {
        // The generator wants its fakes taken for real (the non-saturating form for vanilla).
        GanMode::Lsgan | GanMode::Vanilla => discriminator_loss(mode, scores, true),
        // Raise the critic's score of the fakes; hinge's generator loss has no margin.
        GanMode::Wgangp | GanMode::Hinge => scores.mean().neg(),
    }
}

/// WGAN-GP's penalty for discriminator `d`: `LAMBDA_GP * mean((||grad_x d(x)||_2 - 1)^2)` at
/// `x = alpha * real + (1 - alpha) * fake`, one `alpha` per image drawn uniformly from [0, 1)
/// by `rng` (the reference's `cal_gradient_penalty`, type 'mixed'). Differentiable with respect
/// to `d`'s weights; `real` and `fake` must carry no gradient.
pub fn gradient_penalty(
    d: &PatchDiscriminator,
    real: Tensor<4>,
    fake: Tensor<4>,
    rng: &mut impl Rng,
) -> Tensor<1> {
    let alpha: Vec<f32> = (0..real.dims()[0]).map(|_| rng.random()).collect();
    gradient_penalty_at(d, real, fake, &alpha)
}

/// [`gradient_penalty`] with the mixing weights given, one per image.
pub fn gradient_penalty_at(
    d: &PatchDiscriminator,
    real: Tensor<4>,
    fake: Tensor<4>,
    alpha: &[f32],
) -> Tensor<1> {
    let [b, c, h, w] = real.dims();
    assert_eq!(alpha.len(), b, "one mixing weight per image");
    let alpha = Tensor::<4>::from_data(
        TensorData::new(alpha.to_vec(), [b, 1, 1, 1]),
        &real.device(),
    );
    let mixed = real * alpha.clone() + fake * alpha.neg().add_scalar(1.0);
    let grad = d.input_gradient(mixed).reshape([b, c * h * w]);
    // The reference adds 1e-16 before the norm, so that a zero gradient has a derivative.
    let norm = grad.add_scalar(1e-16).square().sum_dim(1).sqrt();
    norm.sub_scalar(1.0).square().mean().mul_scalar(LAMBDA_GP)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(t: Tensor<1>) -> f32 {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()[0]
    }

    /// Each mode's losses on constant score maps, against their textbook formulas.
    #[test]
    fn every_mode_has_its_textbook_values() {
        let device = Device::flex();
        let s = |v: f32| Tensor::<4>::full([1, 1, 2, 2], v, &device);
        let d = |m, v, real| value(discriminator_loss(m, s(v), real));
        let g = |m, v| value(generator_loss(m, s(v)));
        let near = |a: f32, b: f32| (a - b).abs() < 1e-5;
        assert!(near(d(GanMode::Lsgan, 0.25, true), 0.5625)); // (0.25 - 1)^2
        assert!(near(d(GanMode::Lsgan, 0.25, false), 0.0625)); // 0.25^2
        assert!(near(g(GanMode::Lsgan, 0.25), 0.5625));
        // -log(sigmoid(0)) = ln 2 either way; a confident correct logit costs almost nothing.
        assert!(near(d(GanMode::Vanilla, 0.0, true), std::f32::consts::LN_2));
        assert!(near(
            d(GanMode::Vanilla, 0.0, false),
            std::f32::consts::LN_2
        ));
        assert!(d(GanMode::Vanilla, 12.0, true) < 1e-5);
        assert!((d(GanMode::Vanilla, 12.0, false) - 12.0).abs() < 1e-4);
        // -log(sigmoid(-2)) = ln(1 + e^2).
        assert!(near(g(GanMode::Vanilla, -2.0), (1.0 + 2f32.exp()).ln()));
        assert!(near(d(GanMode::Wgangp, 0.75, true), -0.75));
        assert!(near(d(GanMode::Wgangp, 0.75, false), 0.75));
        assert!(near(g(GanMode::Wgangp, 0.75), -0.75));
        // Hinge: relu(1 - x) for real, relu(1 + x) for fake; beyond the margin it costs nothing.
        assert!(near(d(GanMode::Hinge, 0.25, true), 0.75));
        assert!(near(d(GanMode::Hinge, 0.25, false), 1.25));
        assert!(near(d(GanMode::Hinge, 1.5, true), 0.0));
        assert!(near(d(GanMode::Hinge, -1.5, false), 0.0));
        assert!(near(g(GanMode::Hinge, 1.5), -1.5));
    }

    /// Hinge on a map with values on both sides of the margin: the mean of the clipped values.
    #[test]
    fn hinge_averages_over_the_map() {
        let device = Device::flex();
        let v = [-2.0f32, 0.0, 0.5, 3.0];
        let scores = Tensor::<4>::from_data(TensorData::new(v.to_vec(), [1, 1, 2, 2]), &device);
        let real: f32 = v.iter().map(|x| (1.0 - x).max(0.0)).sum::<f32>() / 4.0;
        let fake: f32 = v.iter().map(|x| (1.0 + x).max(0.0)).sum::<f32>() / 4.0;
        assert!(
            (value(discriminator_loss(GanMode::Hinge, scores.clone(), true)) - real).abs() < 1e-6
        );
        assert!((value(discriminator_loss(GanMode::Hinge, scores, false)) - fake).abs() < 1e-6);
    }
}
