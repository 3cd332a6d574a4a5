//! Dynamic loss scaling for float16 training (Micikevicius et al. 2018, "Mixed Precision
//! Training"; the scheme of PyTorch's `GradScaler`).
//!
//! float16 gradients below 6e-8 flush to zero. Multiplying the loss by a large scale before the
//! backward pass lifts them into range; the gradients are divided by it again before the
//! optimizer sees them. When a step's scaled gradients overflow (inf or NaN), that optimizer step
//! is skipped and the scale halved; after [`GROWTH_INTERVAL`] clean iterations it is doubled.
//! The scale is part of a checkpoint, so a resumed run scales exactly as the uninterrupted one.

use anyhow::{Context, Result};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::model::precision::Precision;

/// The checkpoint file holding the scaler's state (present only in float16 runs).
pub const FILE: &str = "loss_scale.json";
/// The first scale (PyTorch's default).
pub const INITIAL_SCALE: f32 = 65536.0;
/// Clean iterations before the scale doubles (PyTorch's default).
pub const GROWTH_INTERVAL: u32 = 2000;

/// The scale and how many iterations in a row had finite gradients. Inactive (the identity)
/// unless the run computes in float16.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    /// Scaling is on (float16); when off every method is the identity.
    #[serde(skip)]
    active: bool,
    /// What losses are multiplied by before the backward pass.
    pub scale: f32,
    /// Iterations since the scale last changed without an overflow.
    pub clean_iterations: u32,
    /// An overflow was seen in the current iteration (not saved: iterations end before saves).
    #[serde(skip)]
    overflowed: bool,
}

impl LossScaler {
    /// A fresh scaler for a run computing in `precision`.
    pub fn new(precision: Precision) -> Self {
        LossScaler {
            active: precision.needs_loss_scaling(),
            scale: INITIAL_SCALE,
            clean_iterations: 0,
            overflowed: false,
        }
    }

    /// The scaler for `precision`, continuing the state a checkpoint saved (its [`FILE`]) when
    /// it has one; a run that trained without float16 until now has none.
    pub fn restore(precision: Precision, saved: Option<&[u8]>) -> Result<Self> {
        let fresh = LossScaler::new(precision);
        match saved {
            Some(bytes) if fresh.active => {
                let saved: LossScaler =
                    serde_json::from_slice(bytes).context("unreadable loss scale")?;
                Ok(LossScaler {
                    active: true,
                    ..saved
                })
            }
            _ => Ok(fresh),
        }
    }

    /// The checkpoint file with the state, when scaling is on.
    pub fn checkpoint_file(&self) -> Option<(String, Vec<u8>)> {
        self.active.then(|| {
            let bytes = serde_json::to_vec_pretty(self).expect("a scaler serialises");
            (FILE.to_string(), bytes)
        })
    }

    /// `loss` times the scale, for the backward pass.
    pub fn scale(&self, loss: Tensor<1>) -> Tensor<1> {
        if self.active {
            loss.mul_scalar(self.scale)
        } else {
            loss
        }
    }

    /// The true gradients of `module` from the scaled ones, or `None` when they overflowed: the
    /// optimizer step must then be skipped (and the scale falls when the iteration ends).
    pub fn unscale<M: Module>(
        &mut self,
        grads: GradientsParams,
        module: &M,
    ) -> Option<GradientsParams> {
        if !self.active {
            return Some(grads);
        }
        let mut visitor = Unscale {
            grads,
            factor: 1.0 / self.scale,
            magnitude: None,
        };
        module.visit(&mut visitor);
        // One read-back: a sum of magnitudes is finite exactly when every entry is.
        let finite = visitor
            .magnitude
            .map(|m| m.into_scalar::<f32>().is_finite())
            .unwrap_or(true);
        if finite {
            Some(visitor.grads)
        } else {
            self.overflowed = true;
            None
        }
    }

    /// End of an iteration: halve the scale after an overflow, double it after
    /// [`GROWTH_INTERVAL`] clean iterations.
    pub fn update(&mut self) {
        if !self.active {
            return;
        }
        if std::mem::take(&mut self.overflowed) {
            self.scale = (self.scale * 0.5).max(1.0);
            self.clean_iterations = 0;
        } else {
            self.clean_iterations += 1;
            if self.clean_iterations == GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.clean_iterations = 0;
            }
        }
    }
}

/// Divides every gradient of a module by the scale, summing magnitudes along the way.
struct Unscale {
    grads: GradientsParams,
    factor: f32,
    magnitude: Option<Tensor<1>>,
}

impl ModuleVisitor for Unscale {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(grad) = self.grads.remove::<D>(param.id) else {
            return; // a frozen parameter
        };
        let grad = grad.mul_scalar(self.factor);
        let size = grad.clone().abs().sum();
        self.magnitude = Some(match self.magnitude.take() {
            Some(m) => m + size,
            None => size,
        });
        self.grads.register(param.id, grad);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_on_overflow_and_doubles_after_clean_iterations() {
        let mut s = LossScaler::new(Precision::F16);
        s.overflowed = true;
        s.update();
        assert_eq!(s.scale, INITIAL_SCALE / 2.0);
        for _ in 0..GROWTH_INTERVAL - 1 {
            s.update();
        }
        assert_eq!(s.scale, INITIAL_SCALE / 2.0);
        s.update();
        assert_eq!(s.scale, INITIAL_SCALE);
        assert_eq!(s.clean_iterations, 0);
        let (name, bytes) = s.checkpoint_file().unwrap();
        assert_eq!(name, FILE);
        assert_eq!(
            LossScaler::restore(Precision::F16, Some(&bytes)).unwrap(),
            s
        );
    }

    #[test]
    fn inactive_without_float16() {
        for p in [Precision::F32, Precision::Bf16] {
            let mut s = LossScaler::new(p);
            assert!(s.checkpoint_file().is_none());
            s.overflowed = true;
            s.update();
            assert_eq!(s.scale, INITIAL_SCALE);
        }
    }
}
