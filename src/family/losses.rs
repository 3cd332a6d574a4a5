//! The named losses of one iteration, with the role each plays.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a loss measures, for the divergence guard and the progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A generator's adversarial term (fool a discriminator).
    Adversarial,
    /// Any other term of the generators' objective (cycle, identity, NCE, ...).
    Generator,
    /// One discriminator's whole loss.
    Discriminator,
    /// Logged only (e.g. a part of a loss listed elsewhere).
    Info,
}

/// The losses of one iteration, in the order the model reports them.
///
/// In `losses.jsonl` they are plain `"name": value` pairs; read back, their role is
/// [`Role::Info`] (only live losses need roles).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Losses {
    items: Vec<(String, Role, f32)>,
}

impl Losses {
    /// No losses yet.
    pub fn new() -> Self {
        Losses::default()
    }

    /// Add a loss (builder style).
    pub fn with(mut self, name: &str, role: Role, value: f32) -> Self {
        self.items.push((name.to_string(), role, value));
        self
    }

    /// The value of the loss `name`.
    pub fn get(&self, name: &str) -> Option<f32> {
        self.items
            .iter()
            .find(|(n, ..)| n == name)
            .map(|&(_, _, v)| v)
    }

    /// Every loss as (name, role, value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Role, f32)> {
        self.items.iter().map(|(n, r, v)| (n.as_str(), *r, *v))
    }

    /// The sum of the losses with `role`.
    pub fn total(&self, role: Role) -> f32 {
        self.iter()
            .filter(|&(_, r, _)| r == role)
            .map(|(.., v)| v)
            .sum()
    }

    /// The generators' whole objective: adversarial terms plus the others.
    pub fn generator_total(&self) -> f32 {
        self.total(Role::Adversarial) + self.total(Role::Generator)
    }

    /// True when every loss is a finite number.
    pub fn all_finite(&self) -> bool {
        self.items.iter().all(|(_, _, v)| v.is_finite())
    }

    /// The same losses, each an exponential moving average with `prev` (for the progress line).
    pub fn smoothed(&self, prev: Option<&Losses>, keep: f32) -> Losses {
        let mut out = self.clone();
        if let Some(p) = prev {
            for (name, _, v) in &mut out.items {
                if let Some(old) = p.get(name) {
                    *v = keep * old + (1.0 - keep) * *v;
                }
            }
        }
        out
    }

    /// A short line for the progress bar: `name value` pairs.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .iter()
            .filter(|&(_, r, _)| r != Role::Info)
            .map(|(n, _, v)| format!("{n} {v:.3}"))
            .collect();
        parts.join(" ")
    }
}

impl Serialize for Losses {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.items.len()))?;
        for (name, _, v) in &self.items {
            map.serialize_entry(name, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Losses {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Named;
        impl<'de> Visitor<'de> for Named {
            type Value = Losses;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of loss names to numbers")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Losses, A::Error> {
                let mut losses = Losses::new();
                while let Some((name, v)) = m.next_entry::<String, f32>()? {
                    losses.items.push((name, Role::Info, v));
                }
                Ok(losses)
            }
        }
        d.deserialize_map(Named)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_by_role_and_json_round_trip() {
        let l = Losses::new()
            .with("G_A", Role::Adversarial, 0.5)
            .with("cycle_A", Role::Generator, 2.0)
            .with("D_A", Role::Discriminator, 0.25);
        assert_eq!(l.generator_total(), 2.5);
        assert_eq!(l.total(Role::Discriminator), 0.25);
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(json, r#"{"G_A":0.5,"cycle_A":2.0,"D_A":0.25}"#);
        let back: Losses = serde_json::from_str(&json).unwrap();
        assert_eq!(back.get("cycle_A"), Some(2.0));
        assert!(!l.with("x", Role::Info, f32::NAN).all_finite());
    }
}
