//! FID and KID from feature matrices (one row per image), in f64.
//!
//! FID (Heusel et al. 2017) = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), with the sample
//! covariances (divided by N - 1). `Tr (S1 S2)^(1/2)` is the sum of the square roots of the
//! eigenvalues of `S1 S2`, which are those of symmetric positive semi-definite matrices:
//! - with fewer images than feature dimensions (the usual case for test sets), of
//!   `C C^T` where `C = A B^T / sqrt((n1 - 1)(n2 - 1))` and `A`, `B` are the centred features:
//!   a matrix of the smaller image count's size, so FID costs milliseconds;
//! - otherwise of `S1^(1/2) S2 S1^(1/2)` (2048 x 2048), through two symmetric
//!   eigendecompositions (nalgebra).
//!
//! KID (Binkowski et al. 2018): the unbiased MMD^2 with the kernel `(x.y / d + 1)^3`, averaged
//! over random subsets (100 of `min(1000, n1, n2)` images each, as clean-fid and
//! torch-fidelity), with its standard deviation across subsets.

use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand::seq::index::sample;
use serde::{Deserialize, Serialize};

/// Feature vectors, one row per image.
pub type Features = DMatrix<f64>;

/// Subsets KID averages over.
pub const KID_SUBSETS: usize = 100;
/// Largest KID subset.
pub const KID_MAX_SUBSET: usize = 1000;

/// Column means.
fn mean(x: &Features) -> DVector<f64> {
    x.row_mean().transpose()
}

/// Rows minus the column means.
fn centred(x: &Features) -> Features {
    let mu = mean(x).transpose();
    let mut c = x.clone();
    for mut row in c.row_iter_mut() {
        row -= &mu;
    }
    c
}

/// Sum of the square roots of a symmetric PSD matrix's eigenvalues (negative rounding noise
/// counted as zero).
fn trace_sqrt_psd(m: DMatrix<f64>) -> f64 {
    let sym = (&m + m.transpose()) * 0.5;
    sym.symmetric_eigenvalues()
        .iter()
        .map(|&l| l.max(0.0).sqrt())
        .sum()
}

/// Sample covariance (N - 1).
pub fn covariance(x: &Features) -> DMatrix<f64> {
    let c = centred(x);
    c.transpose() * &c / (x.nrows() as f64 - 1.0)
}

/// FID from means and covariances, through `S1^(1/2) S2 S1^(1/2)`.
pub fn fid_from_stats(
    mu1: &DVector<f64>,
    s1: &DMatrix<f64>,
    mu2: &DVector<f64>,
    s2: &DMatrix<f64>,
) -> f64 {
    let eig = ((s1 + s1.transpose()) * 0.5).symmetric_eigen();
    let roots = eig.eigenvalues.map(|l| l.max(0.0).sqrt());
    let sqrt_s1 = &eig.eigenvectors * DMatrix::from_diagonal(&roots) * eig.eigenvectors.transpose();
    let cross = trace_sqrt_psd(&sqrt_s1 * s2 * &sqrt_s1);
    (mu1 - mu2).norm_squared() + s1.trace() + s2.trace() - 2.0 * cross
}

/// FID between two feature sets (each of at least 2 images, same width).
pub fn fid(a: &Features, b: &Features) -> f64 {
    assert_eq!(a.ncols(), b.ncols(), "feature widths differ");
    assert!(
        a.nrows() >= 2 && b.nrows() >= 2,
        "FID needs at least 2 images a side"
    );
    let (n1, n2, d) = (a.nrows(), b.nrows(), a.ncols());
    if n1.min(n2) >= d {
        return fid_from_stats(&mean(a), &covariance(a), &mean(b), &covariance(b));
    }
    let (ca, cb) = (centred(a), centred(b));
    let scale = 1.0 / ((n1 as f64 - 1.0) * (n2 as f64 - 1.0)).sqrt();
    let cross_prod = &ca * cb.transpose() * scale;
    let gram = if n1 <= n2 {
        &cross_prod * cross_prod.transpose()
    } else {
        cross_prod.transpose() * &cross_prod
    };
    let tr1 = ca.norm_squared() / (n1 as f64 - 1.0);
    let tr2 = cb.norm_squared() / (n2 as f64 - 1.0);
    (mean(a) - mean(b)).norm_squared() + tr1 + tr2 - 2.0 * trace_sqrt_psd(gram)
}

/// KID's mean and standard deviation over subsets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Kid {
    /// Mean of the subsets' MMD^2.
    pub mean: f64,
    /// Standard deviation of the subsets' MMD^2.
    pub std: f64,
    /// Images per subset.
    pub subset_size: usize,
    /// Number of subsets.
    pub subsets: usize,
}

/// KID between two feature sets (each of at least 2 images), subsets drawn from `seed`.
pub fn kid(a: &Features, b: &Features, seed: u64) -> Kid {
    assert_eq!(a.ncols(), b.ncols(), "feature widths differ");
    let m = a.nrows().min(b.nrows()).min(KID_MAX_SUBSET);
    assert!(m >= 2, "KID needs at least 2 images a side");
    let d = a.ncols() as f64;
    let kernel = |x: &Features, y: &Features| (x * y.transpose()).map(|v| (v / d + 1.0).powi(3));
    // Whole kernel matrices once when they fit (the usual test-set sizes); subsets index them.
    let whole = (a.nrows() + b.nrows()).pow(2) <= 16 << 20;
    let full = whole.then(|| (kernel(a, a), kernel(b, b), kernel(a, b)));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let values: Vec<f64> = (0..KID_SUBSETS)
        .map(|_| {
            let ia = sample(&mut rng, a.nrows(), m).into_vec();
            let ib = sample(&mut rng, b.nrows(), m).into_vec();
            let (kxx, kyy, kxy) = match &full {
                Some((kaa, kbb, kab)) => (
                    kaa.select_rows(&ia).select_columns(&ia),
                    kbb.select_rows(&ib).select_columns(&ib),
                    kab.select_rows(&ia).select_columns(&ib),
                ),
                None => {
                    let (x, y) = (a.select_rows(&ia), b.select_rows(&ib));
                    (kernel(&x, &x), kernel(&y, &y), kernel(&x, &y))
                }
            };
            let off_diagonal = |k: &DMatrix<f64>| k.sum() - k.trace();
            let mf = m as f64;
            (off_diagonal(&kxx) + off_diagonal(&kyy)) / (mf * (mf - 1.0))
                - 2.0 * kxy.sum() / (mf * mf)
        })
        .collect();
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    Kid {
        mean,
        std: var.sqrt(),
        subset_size: m,
        subsets: KID_SUBSETS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use rand_distr::{Distribution, Normal};

    /// `n` samples of a Gaussian with independent coordinates of the given means and stds.
    fn gaussian(n: usize, means: &[f64], stds: &[f64], seed: u64) -> Features {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0, 1.0).unwrap();
        DMatrix::from_fn(n, means.len(), |_, j| {
            means[j] + stds[j] * normal.sample(&mut rng)
        })
    }

    #[test]
    fn fid_of_a_set_with_itself_is_zero() {
        let x = gaussian(50, &[0.0; 8], &[1.0; 8], 1);
        // Square roots of eigenvalues that are zero up to rounding (1e-16) give about 1e-8.
        assert!(fid(&x, &x).abs() < 1e-6, "{}", fid(&x, &x));
        let wide = gaussian(10, &[0.0; 30], &[1.0; 30], 2);
        assert!(fid(&wide, &wide).abs() < 1e-6, "{}", fid(&wide, &wide));
    }

    #[test]
    fn fid_from_stats_matches_the_closed_form_for_diagonal_gaussians() {
        // Commuting (diagonal) covariances: FID = |m1 - m2|^2 + sum (sqrt(v1) - sqrt(v2))^2.
        let mu1 = DVector::from_vec(vec![0.0, 1.0, 2.0]);
        let mu2 = DVector::from_vec(vec![1.0, 1.0, 0.0]);
        let v1 = [1.0, 4.0, 9.0];
        let v2 = [4.0, 4.0, 1.0];
        let s1 = DMatrix::from_diagonal(&DVector::from_vec(v1.to_vec()));
        let s2 = DMatrix::from_diagonal(&DVector::from_vec(v2.to_vec()));
        let expected = 1.0 + 0.0 + 4.0 + 1.0 + 0.0 + 4.0;
        assert!((fid_from_stats(&mu1, &s1, &mu2, &s2) - expected).abs() < 1e-9);
        // A rotation of both leaves FID unchanged, and the covariances no longer diagonal.
        let (c, s) = (0.6, 0.8);
        let r = DMatrix::from_row_slice(3, 3, &[c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0]);
        let rotated = fid_from_stats(
            &(&r * &mu1),
            &(&r * &s1 * r.transpose()),
            &(&r * &mu2),
            &(&r * &s2 * r.transpose()),
        );
        assert!((rotated - expected).abs() < 1e-9, "{rotated}");
    }

    #[test]
    fn both_fid_paths_agree_and_approach_the_population_value() {
        // Few images (Gram path) and many images (covariance path) give the same number on
        // the same data, and samples of two known Gaussians come near their true FID.
        let means2 = [0.5, 0.0, -0.5, 0.0];
        let stds2 = [2.0, 1.0, 1.0, 0.5];
        let a = gaussian(3, &[0.0; 4], &[1.0; 4], 3);
        let b = gaussian(5, &means2, &stds2, 4);
        let direct = fid_from_stats(&mean(&a), &covariance(&a), &mean(&b), &covariance(&b));
        assert!(
            (fid(&a, &b) - direct).abs() < 1e-6,
            "{} vs {direct}",
            fid(&a, &b)
        );
        // |m1 - m2|^2 = 0.5; sum (sqrt(v1) - sqrt(v2))^2 = 1 + 0.25.
        let truth: f64 = 0.5 + 1.0 + 0.25;
        let a = gaussian(20_000, &[0.0; 4], &[1.0; 4], 5);
        let b = gaussian(20_000, &means2, &stds2, 6);
        assert!(
            (fid(&a, &b) - truth).abs() < 0.05,
            "{} vs {truth}",
            fid(&a, &b)
        );
    }

    #[test]
    fn kid_is_near_zero_for_one_distribution_and_positive_for_two() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let d = 16;
        let a = DMatrix::from_fn(300, d, |_, _| rng.random::<f64>());
        let b = DMatrix::from_fn(300, d, |_, _| rng.random::<f64>());
        let same = kid(&a, &b, 0);
        assert_eq!((same.subset_size, same.subsets), (300, KID_SUBSETS));
        assert!(same.mean.abs() < 3.0 * same.std.max(1e-4), "{same:?}");
        let shifted = b.map(|v| v + 0.5);
        let apart = kid(&a, &shifted, 0);
        assert!(
            apart.mean > 10.0 * same.mean.abs().max(1e-4),
            "{apart:?} vs {same:?}"
        );
        assert!(apart.std > 0.0);
        // Deterministic for a seed.
        assert_eq!(kid(&a, &shifted, 0), apart);
    }

    #[test]
    fn kid_of_one_subset_is_the_unbiased_mmd() {
        // Subsets of the whole set: every subset is the full set, so std = 0 and the value is
        // the MMD^2 computed by hand.
        let a = DMatrix::from_row_slice(2, 1, &[0.0, 1.0]);
        let b = DMatrix::from_row_slice(2, 1, &[1.0, 2.0]);
        let k = |x: f64, y: f64| (x * y + 1.0).powi(3);
        let xx = 2.0 * k(0.0, 1.0);
        let yy = 2.0 * k(1.0, 2.0);
        let xy = k(0.0, 1.0) + k(0.0, 2.0) + k(1.0, 1.0) + k(1.0, 2.0);
        let expected = (xx + yy) / 2.0 - 2.0 * xy / 4.0;
        let got = kid(&a, &b, 1);
        assert!((got.mean - expected).abs() < 1e-12, "{got:?} vs {expected}");
        assert!(got.std < 1e-12);
    }
}
