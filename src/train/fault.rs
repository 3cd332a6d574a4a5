//! Faults injected on purpose ([`super::RunOptions::fault`], tests only), to prove that the divergence guard and
//! the checkpoints do their job. Each fires once, at the start of a given iteration.

use std::str::FromStr;

use burn::prelude::*;

/// A fault and the (1-based) iteration it hits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// The iteration's input batch is made of NaN: every loss becomes NaN.
    Nan { iter: u64 },
    /// The iteration runs with the learning rate multiplied by `factor`: the weights blow up.
    LrSpike { iter: u64, factor: f64 },
    /// Saving the checkpoint after this iteration fails as if the disk were full.
    SaveFailure { iter: u64 },
}

impl Fault {
    /// The iteration the fault hits.
    pub fn iter(&self) -> u64 {
        match *self {
            Fault::Nan { iter } | Fault::LrSpike { iter, .. } | Fault::SaveFailure { iter } => iter,
        }
    }
}

impl Fault {
    /// Apply `fault` if it hits iteration `iter`: NaN input (`real_a`) or a learning-rate spike
    /// (`lr`); returns true when the checkpoint after this iteration must fail to save. A fault
    /// fires once, even if a rollback replays its iteration.
    pub fn fire(
        fault: &mut Option<Fault>,
        iter: u64,
        real_a: &mut Tensor<4>,
        lr: &mut f64,
    ) -> bool {
        let Some(f) = *fault else { return false };
        if f.iter() != iter {
            return false;
        }
        *fault = None;
        match f {
            Fault::Nan { .. } => *real_a = real_a.clone().mul_scalar(f32::NAN),
            Fault::LrSpike { factor, .. } => *lr *= factor,
            Fault::SaveFailure { .. } => return true,
        }
        false
    }
}

impl FromStr for Fault {
    type Err = String;

    /// `nan@ITER`, `lr-spike@ITER:FACTOR`, `save-fail@ITER`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}`: expected nan@ITER, lr-spike@ITER:FACTOR or save-fail@ITER");
        let (kind, rest) = s.split_once('@').ok_or_else(bad)?;
        let (iter, arg) = match rest.split_once(':') {
            Some((i, a)) => (i, Some(a)),
            None => (rest, None),
        };
        let iter: u64 = iter.parse().map_err(|_| bad())?;
        match (kind, arg) {
            ("nan", None) => Ok(Fault::Nan { iter }),
            ("save-fail", None) => Ok(Fault::SaveFailure { iter }),
            ("lr-spike", Some(f)) => Ok(Fault::LrSpike {
                iter,
                factor: f.parse().map_err(|_| bad())?,
            }),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind_and_rejects_junk() {
        assert_eq!("nan@7".parse(), Ok(Fault::Nan { iter: 7 }));
        assert_eq!(
            "lr-spike@3:1e4".parse(),
            Ok(Fault::LrSpike {
                iter: 3,
                factor: 1e4
            })
        );
        assert_eq!("save-fail@2".parse(), Ok(Fault::SaveFailure { iter: 2 }));
        assert!("nan".parse::<Fault>().is_err());
        assert!("lr-spike@3".parse::<Fault>().is_err());
        assert!("boom@3".parse::<Fault>().is_err());
    }
}
