//! The learning-rate schedule: the reference's four `--lr_policy` choices (`networks.get_scheduler`),
//! and the state the plateau policy carries from epoch to epoch (saved in every checkpoint).
//!
//! Which epoch gets which rate: epoch `k` (0-based; the `k+1`-th epoch) trains at the rate of a
//! PyTorch scheduler that has stepped `k` times, i.e. the scheduler steps at the end of each
//! epoch, as the reference's `train.py` did until 2020. With the paper's 100 + 100 epochs and the
//! linear policy, epochs 1-100 train at `lr`, epoch 101 at `lr * 100/101`, ..., epoch 200 at
//! `lr / 101`: "the same rate for the first 100 epochs, then linear decay to zero", as the paper
//! says. The reference's current `train.py` calls `update_learning_rate()` at the *start* of each
//! epoch (and its `epoch_count` starts at 1), so there epoch `e` (1-based) trains at the rate
//! after `e` steps: one epoch ahead of ours (its epochs 1-99 at `lr`, epoch 100 at
//! `lr * 100/101`, its last epoch at 0). The other policies follow the same convention here.

use serde::{Deserialize, Serialize};

use crate::config::{LrPolicy, TrainConfig};

/// The `step` policy's multiplier (the reference's `gamma`).
pub const STEP_GAMMA: f64 = 0.1;
/// The `plateau` policy's multiplier at each reduction (`factor`).
pub const PLATEAU_FACTOR: f64 = 0.2;
/// An epoch improves on the best when its loss is below `best * (1 - PLATEAU_THRESHOLD)`.
pub const PLATEAU_THRESHOLD: f64 = 0.01;
/// Epochs without improvement tolerated; the next one reduces the rate.
pub const PLATEAU_PATIENCE: usize = 5;
/// PyTorch's `ReduceLROnPlateau` skips reductions smaller than this (`eps`).
const PLATEAU_EPS: f64 = 1e-8;

/// Learning rate of `epoch` (0-based) under `config`'s policy; `plateau` is the plateau
/// policy's state (ignored by the others). The divergence guard's scale is applied on top.
pub fn learning_rate(config: &TrainConfig, epoch: usize, plateau: &Plateau) -> f64 {
    let lr = config.lr;
    match config.lr_policy {
        LrPolicy::Linear => linear(lr, epoch, config.epochs, config.epochs_decay),
        LrPolicy::Step => {
            let steps = (epoch / config.lr_decay_iters.max(1)).min(i32::MAX as usize) as i32;
            lr * STEP_GAMMA.powi(steps)
        }
        LrPolicy::Plateau => lr * PLATEAU_FACTOR.powi(plateau.reductions as i32),
        LrPolicy::Cosine => {
            // PyTorch's CosineAnnealingLR with eta_min 0; T_max is the whole run here (the
            // reference passes `n_epochs`, which would end the annealing half-way through).
            let t_max = config.total_epochs().max(1) as f64;
            let t = (epoch as f64).min(t_max);
            lr * 0.5 * (1.0 + (std::f64::consts::PI * t / t_max).cos())
        }
    }
}

/// The linear policy: `lr * (1 - max(0, epoch + 1 - epochs) / (epochs_decay + 1))`, so the
/// last decaying epoch still trains at `lr / (epochs_decay + 1)`.
pub fn linear(lr: f64, epoch: usize, epochs: usize, epochs_decay: usize) -> f64 {
    let decayed = (epoch + 1).saturating_sub(epochs) as f64;
    lr * (1.0 - decayed / (epochs_decay as f64 + 1.0)).max(0.0)
}

/// The plateau policy's state: PyTorch's `ReduceLROnPlateau(mode='min', factor=0.2,
/// threshold=0.01, patience=5)` stepped at each epoch end with the epoch's mean monitored loss,
/// the generators' non-adversarial terms (CycleGAN: cycle + identity; CUT: PatchNCE). The
/// reference monitors a constant 0 (`BaseModel.metric`), which only ever counts down the
/// patience; a real loss makes the policy mean something.
///
/// Floats are stored as text (`Debug`, parsed back by Rust's exact parser) so that a resumed run
/// continues with bit-identical numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Plateau {
    /// Reductions so far: the rate is `lr * 0.2^reductions`.
    pub reductions: u32,
    /// The best epoch mean so far (infinite before the first epoch ends).
    #[serde(with = "exact_f64")]
    pub best: f64,
    /// Epochs since the best without an improvement.
    pub bad_epochs: usize,
    /// Sum of the monitored loss over the current epoch's iterations so far.
    #[serde(with = "exact_f64")]
    pub sum: f64,
    /// Iterations summed in `sum`.
    pub count: u64,
}

impl Default for Plateau {
    fn default() -> Self {
        Plateau {
            reductions: 0,
            best: f64::INFINITY,
            bad_epochs: 0,
            sum: 0.0,
            count: 0,
        }
    }
}

impl Plateau {
    /// Add one iteration's monitored loss to the current epoch.
    pub fn observe(&mut self, value: f32) {
        self.sum += value as f64;
        self.count += 1;
    }

    /// End the epoch: judge its mean loss against the best and reduce the rate after more than
    /// [`PLATEAU_PATIENCE`] epochs without improvement. `lr` is the run's initial rate (a
    /// reduction smaller than PyTorch's `eps` is skipped, as there).
    pub fn end_epoch(&mut self, lr: f64) {
        if self.count == 0 {
            return;
        }
        let mean = self.sum / self.count as f64;
        (self.sum, self.count) = (0.0, 0);
        if mean < self.best * (1.0 - PLATEAU_THRESHOLD) {
            (self.best, self.bad_epochs) = (mean, 0);
        } else {
            self.bad_epochs += 1;
        }
        if self.bad_epochs > PLATEAU_PATIENCE {
            let old = lr * PLATEAU_FACTOR.powi(self.reductions as i32);
            if old - old * PLATEAU_FACTOR > PLATEAU_EPS {
                self.reductions += 1;
            }
            self.bad_epochs = 0;
        }
    }
}

/// `f64` as exact text: serde_json's default float parser may be off by one unit in the last
/// place, which would break bit-exact resume.
mod exact_f64 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:?}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|_| D::Error::custom(format!("not a number: {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(policy: LrPolicy, epochs: usize, epochs_decay: usize) -> TrainConfig {
        TrainConfig {
            lr: 2e-4,
            lr_policy: policy,
            epochs,
            epochs_decay,
            ..TrainConfig::default()
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1e-12)
    }

    #[test]
    fn linear_is_constant_then_decays_to_zero() {
        let c = config(LrPolicy::Linear, 100, 100);
        let lr = |e| learning_rate(&c, e, &Plateau::default());
        // 0-based epochs 0..=99 (the first 100) at the full rate.
        assert_eq!(lr(0), 2e-4);
        assert_eq!(lr(99), 2e-4);
        assert!(close(lr(100), 2e-4 * (1.0 - 1.0 / 101.0)));
        assert!(close(lr(199), 2e-4 / 101.0));
        for e in 100..199 {
            assert!(lr(e + 1) < lr(e));
        }
        assert_eq!(linear(1.0, 500, 100, 100), 0.0);
    }

    /// The reference's formulas, with its scheduler having stepped `k` times in epoch `k`.
    #[test]
    fn step_and_cosine_follow_the_reference_formulas() {
        let mut c = config(LrPolicy::Step, 100, 100);
        c.lr_decay_iters = 50;
        let p = Plateau::default();
        // StepLR(step_size=50, gamma=0.1): lr * 0.1^floor(k / 50).
        for (k, factor) in [
            (0, 1.0),
            (49, 1.0),
            (50, 0.1),
            (99, 0.1),
            (100, 0.01),
            (199, 1e-3),
        ] {
            assert!(close(learning_rate(&c, k, &p), 2e-4 * factor), "epoch {k}");
        }
        c.lr_decay_iters = 3;
        assert!(close(learning_rate(&c, 7, &p), 2e-4 * 0.01));

        // CosineAnnealingLR(T_max = 30 + 10, eta_min = 0): lr * (1 + cos(pi k / T_max)) / 2.
        let c = config(LrPolicy::Cosine, 30, 10);
        let lr = |k| learning_rate(&c, k, &p);
        assert_eq!(lr(0), 2e-4);
        assert!(close(lr(20), 1e-4)); // half-way: cos(pi / 2) = 0
        assert!(close(lr(10), 2e-4 * (1.0 + 0.5f64.sqrt()) / 2.0)); // cos(pi / 4)
        assert!(lr(39) > 0.0 && lr(39) < 2e-4 * 0.002);
        assert!(lr(40).abs() < 1e-20);
        for k in 0..39 {
            assert!(lr(k + 1) < lr(k));
        }
    }

    #[test]
    fn plateau_reduces_after_six_epochs_without_a_one_percent_gain() {
        let c = config(LrPolicy::Plateau, 100, 100);
        let mut p = Plateau::default();
        let epoch = |p: &mut Plateau, loss: f32| {
            p.observe(loss);
            p.observe(loss);
            p.end_epoch(c.lr);
            learning_rate(&c, 0, p)
        };
        assert_eq!(epoch(&mut p, 1.0), 2e-4); // the first epoch sets the best
        assert_eq!(epoch(&mut p, 0.5), 2e-4); // better
        // Improvements below 1% of the best do not count: five such epochs are tolerated...
        for _ in 0..5 {
            assert_eq!(epoch(&mut p, 0.496), 2e-4);
        }
        // ...the sixth reduces the rate by 0.2 and starts counting again.
        assert!(close(epoch(&mut p, 0.496), 2e-4 * 0.2));
        assert_eq!((p.reductions, p.bad_epochs), (1, 0));
        for _ in 0..5 {
            epoch(&mut p, 0.9);
        }
        assert!(close(epoch(&mut p, 0.9), 2e-4 * 0.04));
        // A real improvement resets the count.
        assert!(close(epoch(&mut p, 0.4), 2e-4 * 0.04));
        assert_eq!(p.bad_epochs, 0);
        assert!(close(p.best, 0.4f32 as f64));
    }

    #[test]
    fn plateau_state_survives_json_bit_for_bit() {
        let mut p = Plateau::default();
        for v in [0.1f32, 0.7, 1.0 / 3.0, 2.9e-3] {
            p.observe(v);
        }
        p.end_epoch(2e-4);
        p.observe(0.123_456_79);
        let back: Plateau = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back.sum.to_bits(), p.sum.to_bits());
        assert_eq!(back.best.to_bits(), p.best.to_bits());
        assert_eq!(back, p);
        let fresh: Plateau = serde_json::from_str("{}").unwrap();
        assert_eq!(fresh, Plateau::default());
        assert_eq!(
            serde_json::from_str::<Plateau>(&serde_json::to_string(&fresh).unwrap()).unwrap(),
            fresh
        );
    }
}
