//! The divergence guard: notice when training blows up, before the damage reaches a checkpoint.
//!
//! Three signals, each cheap (the losses are read back every iteration anyway):
//! - a loss that is not a finite number: at once;
//! - an explosion: the generators' total or a discriminator's loss far above its recent robust
//!   level (median + `k` * MAD over a window, and several times the median), for `patience`
//!   iterations in a row, so a single noisy batch never triggers it;
//! - discriminator collapse: a discriminator's loss pinned near zero over a whole window while
//!   the generators' adversarial loss keeps rising.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::cyclegan::Losses;

/// Guard settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GuardConfig {
    /// Whether the guard acts at all.
    pub enabled: bool,
    /// Iterations of history the robust level is computed over.
    pub window: usize,
    /// Threshold in MADs above the median.
    pub k: f32,
    /// The value must also exceed this multiple of the median.
    pub ratio: f32,
    /// Consecutive anomalous iterations before an explosion is declared.
    pub patience: usize,
    /// A discriminator loss below this, over a whole window, counts as collapsed.
    pub collapse_level: f32,
    /// Learning-rate multiplier applied at each rollback.
    pub lr_factor: f64,
    /// Rollbacks allowed before giving up.
    pub max_rollbacks: usize,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            enabled: true,
            window: 200,
            k: 25.0,
            ratio: 6.0,
            patience: 3,
            collapse_level: 1e-3,
            lr_factor: 0.5,
            max_rollbacks: 3,
        }
    }
}

/// What the guard saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Anomaly {
    /// A loss is NaN or infinite.
    NonFinite { loss: String },
    /// A loss far above its recent level.
    Explosion {
        loss: String,
        value: f32,
        median: f32,
        threshold: f32,
    },
    /// A discriminator wins outright while the generators' loss rises.
    Collapse {
        discriminator: String,
        d_median: f32,
        g_before: f32,
        g_now: f32,
    },
}

impl Anomaly {
    /// How many iterations back the trouble may have started, so that a rollback goes to a
    /// checkpoint written before it.
    pub fn span(&self, config: &GuardConfig) -> u64 {
        match self {
            Anomaly::NonFinite { .. } => 1,
            Anomaly::Explosion { .. } => config.patience as u64,
            Anomaly::Collapse { .. } => 2 * config.window as u64,
        }
    }
}

/// Running state of the guard: recent history of the watched losses.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    config: GuardConfig,
    g_total: VecDeque<f32>,
    d_a: VecDeque<f32>,
    d_b: VecDeque<f32>,
    g_adv: VecDeque<f32>,
    streak: usize,
}

impl Guard {
    /// A guard with no history.
    pub fn new(config: GuardConfig) -> Self {
        Guard {
            config,
            ..Default::default()
        }
    }

    /// Forget the history (after a rollback the old level no longer applies).
    pub fn reset(&mut self) {
        *self = Guard::new(self.config);
    }

    /// Look at one iteration's losses; `Some` when training must be rolled back.
    pub fn observe(&mut self, l: &Losses) -> Option<Anomaly> {
        if !self.config.enabled {
            return None;
        }
        for (name, v) in l.named() {
            if !v.is_finite() {
                return Some(Anomaly::NonFinite {
                    loss: name.to_string(),
                });
            }
        }
        let watched = [
            ("G_total", l.generator_total()),
            ("D_A", l.D_A),
            ("D_B", l.D_B),
        ];
        let mut worst = None;
        if self.g_total.len() >= self.config.window / 2 {
            for ((name, v), hist) in watched.iter().zip([&self.g_total, &self.d_a, &self.d_b]) {
                let (median, mad) = median_mad(hist);
                // A floor on the spread: a nearly constant loss must not make noise look huge.
                let threshold = (median + self.config.k * mad.max(0.02 * median.abs()).max(1e-4))
                    .max(self.config.ratio * median);
                if *v > threshold {
                    worst = Some(Anomaly::Explosion {
                        loss: name.to_string(),
                        value: *v,
                        median,
                        threshold,
                    });
                }
            }
        }
        if let Some(a) = worst {
            self.streak += 1;
            // Anomalous values are not added to the history: they must not raise the level.
            return (self.streak >= self.config.patience).then_some(a);
        }
        self.streak = 0;
        push(&mut self.g_total, l.generator_total(), self.config.window);
        push(&mut self.d_a, l.D_A, self.config.window);
        push(&mut self.d_b, l.D_B, self.config.window);
        push(&mut self.g_adv, l.G_A + l.G_B, 2 * self.config.window);
        self.collapse()
    }

    fn collapse(&self) -> Option<Anomaly> {
        let w = self.config.window;
        if self.g_adv.len() < 2 * w {
            return None;
        }
        let (before, now): (Vec<f32>, Vec<f32>) = {
            let v: Vec<f32> = self.g_adv.iter().copied().collect();
            (v[..w].to_vec(), v[w..].to_vec())
        };
        let (g_before, g_now) = (median(&before), median(&now));
        for (name, hist) in [("D_A", &self.d_a), ("D_B", &self.d_b)] {
            let max = hist.iter().copied().fold(0.0, f32::max);
            if max < self.config.collapse_level && g_now > 1.5 * g_before {
                return Some(Anomaly::Collapse {
                    discriminator: name.into(),
                    d_median: median_mad(hist).0,
                    g_before,
                    g_now,
                });
            }
        }
        None
    }
}

fn push(q: &mut VecDeque<f32>, v: f32, cap: usize) {
    if q.len() == cap {
        q.pop_front();
    }
    q.push_back(v);
}

fn median(v: &[f32]) -> f32 {
    let mut s = v.to_vec();
    s.sort_by(f32::total_cmp);
    s[s.len() / 2]
}

fn median_mad(q: &VecDeque<f32>) -> (f32, f32) {
    let v: Vec<f32> = q.iter().copied().collect();
    let m = median(&v);
    let dev: Vec<f32> = v.iter().map(|x| (x - m).abs()).collect();
    (m, median(&dev))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Losses that look like a healthy LSGAN CycleGAN: noisy, slowly drifting.
    fn healthy(rng: &mut impl Rng, i: usize) -> Losses {
        let n = |rng: &mut dyn rand::RngCore, base: f32, spread: f32| {
            base * (1.0 + spread * (rng.random::<f32>() * 2.0 - 1.0))
        };
        let drift = 1.0 - (i as f32 / 20_000.0);
        Losses {
            G_A: n(rng, 0.5, 0.8),
            G_B: n(rng, 0.5, 0.8),
            cycle_A: n(rng, 2.0 * drift, 0.5),
            cycle_B: n(rng, 2.0 * drift, 0.5),
            idt_A: n(rng, 0.8 * drift, 0.5),
            idt_B: n(rng, 0.8 * drift, 0.5),
            D_A: n(rng, 0.2, 0.9),
            D_B: n(rng, 0.2, 0.9),
        }
    }

    #[test]
    fn normal_gan_noise_never_triggers() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let mut g = Guard::new(GuardConfig::default());
        for i in 0..20_000 {
            let mut l = healthy(&mut rng, i);
            // Occasional single-batch spikes, as hard batches give.
            if i % 997 == 0 {
                l.G_A *= 8.0;
            }
            assert_eq!(g.observe(&l), None, "false alarm at {i}");
        }
    }

    #[test]
    fn explosion_nan_and_collapse_are_caught() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut g = Guard::new(GuardConfig::default());
        for i in 0..500 {
            assert_eq!(g.observe(&healthy(&mut rng, i)), None);
        }
        // 2 -> 2000, as reported by users.
        let mut boom = healthy(&mut rng, 500);
        boom.G_A = 2000.0;
        boom.D_B = 1500.0;
        assert_eq!(
            g.observe(&boom),
            None,
            "patience: one bad iteration is not enough"
        );
        assert_eq!(g.observe(&boom), None);
        assert!(matches!(g.observe(&boom), Some(Anomaly::Explosion { .. })));

        g.reset();
        let mut nan = healthy(&mut rng, 0);
        nan.cycle_B = f32::NAN;
        assert_eq!(
            g.observe(&nan),
            Some(Anomaly::NonFinite {
                loss: "cycle_B".into()
            })
        );

        let mut g = Guard::new(GuardConfig {
            window: 50,
            ..GuardConfig::default()
        });
        let mut found = None;
        for i in 0..300 {
            let mut l = healthy(&mut rng, i);
            l.D_A = 1e-5;
            l.G_A = 0.5 + i as f32 * 0.05; // generator loss climbing while D_A wins outright
            if let Some(a) = g.observe(&l) {
                found = Some(a);
                break;
            }
        }
        assert!(
            matches!(found, Some(Anomaly::Collapse { ref discriminator, .. }) if discriminator == "D_A"),
            "{found:?}"
        );
    }

    #[test]
    fn disabled_guard_is_silent() {
        let mut g = Guard::new(GuardConfig {
            enabled: false,
            ..GuardConfig::default()
        });
        let l = Losses {
            G_A: f32::NAN,
            ..Losses::default()
        };
        assert_eq!(g.observe(&l), None);
    }
}
