//! Padding, and where a padded pixel reads from: the rule the gathering kernels
//! ([`super::gemm`], [`super::winograd`]) fold into their indices instead of copying a padded
//! input.

use burn::prelude::*;

/// How a convolution's input is padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// `p` zeros on every side (PyTorch's `padding=p`).
    Zeros(usize),
    /// `p` pixels mirrored on every side, edge excluded (PyTorch's `ReflectionPad2d(p)`).
    Reflect(usize),
}

impl Padding {
    /// Pixels added on each side.
    pub fn amount(self) -> usize {
        match self {
            Padding::Zeros(p) | Padding::Reflect(p) => p,
        }
    }

    /// The input position that position `i` of the padded axis (in input coordinates, so `-p`
    /// is the first padded pixel) reads along an axis of `n` pixels, or `None` for a zero.
    /// Reflection mirrors about the edge pixel without repeating it, as PyTorch's
    /// `ReflectionPad2d`; it needs `p < n`, which [`Padding::check`] asserts.
    pub(super) fn source(self, i: i64, n: usize) -> Option<usize> {
        let last = n as i64 - 1;
        match self {
            _ if (0..=last).contains(&i) => Some(i as usize),
            Padding::Zeros(_) => None,
            Padding::Reflect(_) => Some(if i < 0 { -i } else { 2 * last - i } as usize),
        }
    }

    /// Panics unless a `k x k` kernel fits an `h x w` input with this padding (and, for
    /// reflection, the padding is smaller than the input); `what` names the kernel.
    pub(super) fn check(self, h: usize, w: usize, k: [usize; 2], what: &str) {
        let p = self.amount();
        if let Padding::Reflect(p) = self {
            assert!(
                p < h && p < w,
                "reflection padding {p} needs an input larger than {p}"
            );
        }
        assert!(
            h + 2 * p >= k[0] && w + 2 * p >= k[1],
            "{what}: kernel larger than input"
        );
    }
}

/// `rows` with a row of zeros appended when `needed`: the source of gathered padding zeros.
pub(super) fn with_zero_row(rows: Tensor<2>, needed: bool) -> Tensor<2> {
    if needed {
        let [_, n] = rows.dims();
        let zeros = Tensor::zeros([1, n], &rows.device());
        Tensor::cat(vec![rows, zeros], 0)
    } else {
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::Padding;

    #[test]
    fn reflection_mirrors_without_repeating_the_edge() {
        // Axis 0 1 2 3 padded by 2: 2 1 | 0 1 2 3 | 2 1.
        let got: Vec<_> = (-2..6).map(|i| Padding::Reflect(2).source(i, 4)).collect();
        let want = [2, 1, 0, 1, 2, 3, 2, 1].map(Some);
        assert_eq!(got, want);
    }

    #[test]
    fn zero_padding_reads_nothing_outside() {
        assert_eq!(Padding::Zeros(1).source(-1, 4), None);
        assert_eq!(Padding::Zeros(1).source(4, 4), None);
        assert_eq!(Padding::Zeros(1).source(3, 4), Some(3));
    }
}
