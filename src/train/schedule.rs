//! The learning-rate schedule: constant, then linear decay to zero (the reference's "linear").

/// Learning rate during `epoch` (0-based) of a run with `epochs` constant epochs followed by
/// `epochs_decay` decaying ones.
///
/// Same formula as the reference: `lr * (1 - max(0, epoch + 1 - epochs) / (epochs_decay + 1))`,
/// so the last decaying epoch still trains at `lr / (epochs_decay + 1)`.
pub fn learning_rate(lr: f64, epoch: usize, epochs: usize, epochs_decay: usize) -> f64 {
    let decayed = (epoch + 1).saturating_sub(epochs) as f64;
    lr * (1.0 - decayed / (epochs_decay as f64 + 1.0)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_then_linear_to_zero() {
        let lr = |e| learning_rate(2e-4, e, 100, 100);
        assert_eq!(lr(0), 2e-4);
        assert_eq!(lr(99), 2e-4);
        assert!((lr(100) - 2e-4 * (1.0 - 1.0 / 101.0)).abs() < 1e-12);
        assert!((lr(199) - 2e-4 / 101.0).abs() < 1e-12);
        // Strictly decreasing during the decay.
        for e in 100..199 {
            assert!(lr(e + 1) < lr(e));
        }
        assert_eq!(learning_rate(1.0, 500, 100, 100), 0.0);
    }
}
