//! The divergence guard: notice when training blows up, before the damage reaches a checkpoint.
//!
//! Three signals, each cheap (the losses are read back every iteration anyway):
//! - a loss that is not a finite number: at once;
//! - an explosion: the generators' total or a discriminator's loss far above its recent robust
//!   level (median + `k` * MAD over a window, and several times the median), for `patience`
//!   iterations in a row, so a single noisy batch never triggers it;
//! - discriminator collapse: a discriminator's loss pinned near zero over a whole window while
//!   the generators' adversarial loss keeps rising.

mod rollback;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

pub use rollback::{Event, roll_back};

use crate::family::{Losses, Role};

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
    /// Each discriminator's loss history, by loss name.
    discs: Vec<(String, VecDeque<f32>)>,
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
        for (name, _, v) in l.iter() {
            if !v.is_finite() {
                return Some(Anomaly::NonFinite {
                    loss: name.to_string(),
                });
            }
        }
        let mut watched = vec![("G_total".to_string(), l.generator_total())];
        for (name, role, v) in l.iter() {
            if role == Role::Discriminator {
                watched.push((name.to_string(), v));
                if !self.discs.iter().any(|(n, _)| n == name) {
                    self.discs.push((name.to_string(), VecDeque::new()));
                }
            }
        }
        let mut worst = None;
        if self.g_total.len() >= self.config.window / 2 {
            for (name, v) in &watched {
                let hist = match self.discs.iter().find(|(n, _)| n == name) {
                    Some((_, h)) => h,
                    None => &self.g_total,
                };
                let (median, mad) = median_mad(hist);
                // A floor on the spread: a nearly constant loss must not make noise look huge.
                let threshold = (median + self.config.k * mad.max(0.02 * median.abs()).max(1e-4))
                    .max(self.config.ratio * median);
                if *v > threshold {
                    worst = Some(Anomaly::Explosion {
                        loss: name.clone(),
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
        let window = self.config.window;
        push(&mut self.g_total, l.generator_total(), window);
        for (name, hist) in &mut self.discs {
            if let Some(v) = l.get(name) {
                push(hist, v, window);
            }
        }
        push(&mut self.g_adv, l.total(Role::Adversarial), 2 * window);
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
        for (name, hist) in &self.discs {
            // A critic's loss (wgangp) has no floor at zero, so "pinned near zero" means
            // nothing for it.
            if hist.iter().any(|&v| v < 0.0) {
                continue;
            }
            let max = hist.iter().copied().fold(0.0, f32::max);
            if max < self.config.collapse_level && g_now > 1.5 * g_before {
                return Some(Anomaly::Collapse {
                    discriminator: name.clone(),
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
        cyclegan_losses([
            n(rng, 0.5, 0.8),
            n(rng, 0.5, 0.8),
            n(rng, 2.0 * drift, 0.5),
            n(rng, 2.0 * drift, 0.5),
            n(rng, 0.8 * drift, 0.5),
            n(rng, 0.8 * drift, 0.5),
            n(rng, 0.2, 0.9),
            n(rng, 0.2, 0.9),
        ])
    }

    /// CycleGAN's eight losses (G_A, G_B, cycle_A, cycle_B, idt_A, idt_B, D_A, D_B).
    fn cyclegan_losses(v: [f32; 8]) -> Losses {
        use Role::*;
        let roles = [
            Adversarial,
            Adversarial,
            Generator,
            Generator,
            Generator,
            Generator,
            Discriminator,
            Discriminator,
        ];
        crate::family::cyclegan::LOSS_NAMES
            .iter()
            .zip(roles)
            .zip(v)
            .fold(Losses::new(), |l, ((n, r), v)| l.with(n, r, v))
    }

    /// `l` with loss `name` set to `v`.
    fn set(l: &Losses, name: &str, v: f32) -> Losses {
        l.iter().fold(Losses::new(), |out, (n, r, old)| {
            out.with(n, r, if n == name { v } else { old })
        })
    }

    #[test]
    fn normal_gan_noise_never_triggers() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let mut g = Guard::new(GuardConfig::default());
        for i in 0..20_000 {
            let mut l = healthy(&mut rng, i);
            // Occasional single-batch spikes, as hard batches give.
            if i % 997 == 0 {
                l = set(&l, "G_A", 8.0 * l.get("G_A").unwrap());
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
        let boom = set(&set(&healthy(&mut rng, 500), "G_A", 2000.0), "D_B", 1500.0);
        assert_eq!(
            g.observe(&boom),
            None,
            "patience: one bad iteration is not enough"
        );
        assert_eq!(g.observe(&boom), None);
        assert!(matches!(g.observe(&boom), Some(Anomaly::Explosion { .. })));

        g.reset();
        let nan = set(&healthy(&mut rng, 0), "cycle_B", f32::NAN);
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
            let l = set(&healthy(&mut rng, i), "D_A", 1e-5);
            // generator loss climbing while D_A wins outright
            let l = set(&l, "G_A", 0.5 + i as f32 * 0.05);
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
        let l = set(&cyclegan_losses([0.0; 8]), "G_A", f32::NAN);
        assert_eq!(g.observe(&l), None);
    }
}
