//! A second, independent dense optical flow: polynomial expansion, after Farnebäck (2003),
//! "Two-Frame Motion Estimation Based on Polynomial Expansion".
//!
//! It exists so that flicker can be *measured* with a flow the smoother does not use
//! ([`crate::flow`] is gradient-based Lucas–Kanade): a metric that warps with the smoother's own
//! flow rewards the smoother for agreeing with itself. Here each neighbourhood of each image is
//! approximated by a quadratic polynomial `f(x) ≈ xᵀAx + bᵀx + c` (Gaussian-weighted least
//! squares); if the second image is the first moved by `d`, then `b₂ = b₁ − 2A d`, which gives
//! `d` from the coefficients alone, solved over a window and refined coarse to fine (the
//! second image's coefficients are sampled at the current estimate at every iteration, so
//! each level only solves for a residual). A weak pull towards the neighbours' mean flow
//! decides the motion where there is no texture to, as the smoothness term of variational
//! methods does; the data term, not image gradients, is what sets it apart from
//! [`crate::flow`].

use crate::flow::{Flow, Gray, bilinear, box_mean, pyramid};

/// Settings of [`estimate_poly`]. The defaults follow common choices for Farnebäck's method
/// (7x7 expansion, σ 1.5, 15x15 window) with enough levels for motion of tens of pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct PolyFlowParams {
    /// Most pyramid levels (each halves the size; the coarsest keeps a shorter side of 16+).
    pub max_levels: usize,
    /// Half-size of the neighbourhood each polynomial is fitted over.
    pub poly_radius: usize,
    /// Standard deviation (pixels) of the Gaussian weight of that fit.
    pub poly_sigma: f32,
    /// Half-size of the window the displacement is assumed constant over.
    pub window_radius: usize,
    /// Refinements per pyramid level.
    pub iterations: usize,
    /// How strongly a pixel's motion is pulled towards its neighbours' mean (in the units of
    /// the squared polynomial coefficients): decides the motion where texture is too weak to.
    pub regularization: f32,
}

impl Default for PolyFlowParams {
    fn default() -> Self {
        Self {
            max_levels: 6,
            poly_radius: 3,
            poly_sigma: 1.5,
            window_radius: 7,
            iterations: 4,
            regularization: 3e-6,
        }
    }
}

/// Per-pixel quadratic model of an image: `A = [[axx, axy], [axy, ayy]]`, `b = (bx, by)`.
struct Expansion {
    width: usize,
    height: usize,
    axx: Vec<f32>,
    ayy: Vec<f32>,
    axy: Vec<f32>,
    bx: Vec<f32>,
    by: Vec<f32>,
}

/// Inverse of a small dense matrix (Gauss–Jordan with partial pivoting).
fn invert<const N: usize>(mut m: [[f64; N]; N]) -> [[f64; N]; N] {
    let mut inv = [[0.0; N]; N];
    for (i, row) in inv.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for col in 0..N {
        let pivot = (col..N)
            .max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))
            .unwrap_or(col);
        m.swap(col, pivot);
        inv.swap(col, pivot);
        let p = m[col][col];
        for k in 0..N {
            m[col][k] /= p;
            inv[col][k] /= p;
        }
        for r in 0..N {
            if r != col {
                let f = m[r][col];
                for k in 0..N {
                    m[r][k] -= f * m[col][k];
                    inv[r][k] -= f * inv[col][k];
                }
            }
        }
    }
    inv
}

/// Fit `f(x, y) ≈ c + bx x + by y + axx x² + ayy y² + 2 axy xy` around every pixel.
///
/// The fit is a weighted least-squares projection on the basis `{1, x, y, x², y², xy}`; the
/// Gaussian weight is separable, so the six correlations take two 1-D passes. The border is
/// repeated outside the image.
fn expand(g: &Gray, radius: usize, sigma: f32) -> Expansion {
    let (w, h) = (g.width, g.height);
    let n = radius as isize;
    let weight: Vec<f64> = (-n..=n)
        .map(|k| (-(k * k) as f64 / (2.0 * f64::from(sigma).powi(2))).exp())
        .collect();
    // Normal matrix of the basis under the weight (the same for every pixel).
    let basis = |x: f64, y: f64| [1.0, x, y, x * x, y * y, x * y];
    let mut gram = [[0.0f64; 6]; 6];
    for (j, wy) in weight.iter().enumerate() {
        for (i, wx) in weight.iter().enumerate() {
            let b = basis((i as isize - n) as f64, (j as isize - n) as f64);
            for r in 0..6 {
                for c in 0..6 {
                    gram[r][c] += wx * wy * b[r] * b[c];
                }
            }
        }
    }
    let ginv = invert(gram);
    // Horizontal pass: sum over dx of weight * dx^p * f, p = 0, 1, 2.
    let mut hp: [Vec<f32>; 3] = std::array::from_fn(|_| vec![0.0; w * h]);
    for y in 0..h {
        let row = &g.data[y * w..(y + 1) * w];
        for x in 0..w {
            let mut acc = [0.0f32; 3];
            for (k, &wk) in weight.iter().enumerate() {
                let dx = k as isize - n;
                let v = wk as f32 * row[(x as isize + dx).clamp(0, w as isize - 1) as usize];
                let dx = dx as f32;
                acc[0] += v;
                acc[1] += v * dx;
                acc[2] += v * dx * dx;
            }
            for p in 0..3 {
                hp[p][y * w + x] = acc[p];
            }
        }
    }
    let mut e = Expansion {
        width: w,
        height: h,
        axx: vec![0.0; w * h],
        ayy: vec![0.0; w * h],
        axy: vec![0.0; w * h],
        bx: vec![0.0; w * h],
        by: vec![0.0; w * h],
    };
    for y in 0..h {
        for x in 0..w {
            // Vertical pass; rhs in the basis order [1, x, y, x², y², xy].
            let mut rhs = [0.0f64; 6];
            for (k, &wk) in weight.iter().enumerate() {
                let dy = k as isize - n;
                let yy = (y as isize + dy).clamp(0, h as isize - 1) as usize;
                let i = yy * w + x;
                let (h0, h1, h2) = (
                    f64::from(hp[0][i]),
                    f64::from(hp[1][i]),
                    f64::from(hp[2][i]),
                );
                let dy = dy as f64;
                rhs[0] += wk * h0;
                rhs[1] += wk * h1;
                rhs[2] += wk * dy * h0;
                rhs[3] += wk * h2;
                rhs[4] += wk * dy * dy * h0;
                rhs[5] += wk * dy * h1;
            }
            let coef =
                |r: usize| -> f32 { (0..6).map(|c| ginv[r][c] * rhs[c]).sum::<f64>() as f32 };
            let i = y * w + x;
            e.bx[i] = coef(1);
            e.by[i] = coef(2);
            e.axx[i] = coef(3);
            e.ayy[i] = coef(4);
            e.axy[i] = 0.5 * coef(5);
        }
    }
    e
}

/// Refine `flow` (from the image of `e1` to that of `e2`) at one pyramid level.
fn refine(e1: &Expansion, e2: &Expansion, flow: &mut Flow, p: &PolyFlowParams) {
    let (w, h) = (e1.width, e1.height);
    let n = w * h;
    // Per-pixel AᵀA (3 distinct entries) and AᵀΔb (2), then their window means.
    let mut prods: [Vec<f32>; 5] = std::array::from_fn(|_| vec![0.0; n]);
    let mut sums: [Vec<f32>; 5] = std::array::from_fn(|_| vec![0.0; n]);
    let mut tmp = vec![0.0; n];
    let (mut mu, mut mv) = (vec![0.0; n], vec![0.0; n]);
    let (wmax, hmax) = ((w - 1) as f32, (h - 1) as f32);
    for _ in 0..p.iterations {
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let (du, dv) = (flow.u[i], flow.v[i]);
                let (sx, sy) = (x as f32 + du, y as f32 + dv);
                if !(0.0..=wmax).contains(&sx) || !(0.0..=hmax).contains(&sy) {
                    // Moved out of the frame: nothing to compare with.
                    for pr in prods.iter_mut() {
                        pr[i] = 0.0;
                    }
                    continue;
                }
                let at = |plane: &[f32]| bilinear(plane, w, h, 1, sx, sy, 0);
                let axx = 0.5 * (e1.axx[i] + at(&e2.axx));
                let ayy = 0.5 * (e1.ayy[i] + at(&e2.ayy));
                let axy = 0.5 * (e1.axy[i] + at(&e2.axy));
                // Δb = -(b₂ - b₁)/2 + A d̃: the residual motion plus the motion already applied.
                let dbx = -0.5 * (at(&e2.bx) - e1.bx[i]) + axx * du + axy * dv;
                let dby = -0.5 * (at(&e2.by) - e1.by[i]) + axy * du + ayy * dv;
                prods[0][i] = axx * axx + axy * axy;
                prods[1][i] = axy * (axx + ayy);
                prods[2][i] = axy * axy + ayy * ayy;
                prods[3][i] = axx * dbx + axy * dby;
                prods[4][i] = axy * dbx + ayy * dby;
            }
        }
        for k in 0..5 {
            box_mean(&prods[k], w, h, p.window_radius, &mut sums[k], &mut tmp);
        }
        let [s_xx, s_xy, s_yy, s_x, s_y] = &sums;
        // Prior: the neighbourhood's mean flow, so windows without texture take their
        // neighbours' motion (the smoothness term of variational methods) instead of keeping
        // whatever the coarser level guessed; with texture the data term outweighs it.
        box_mean(&flow.u, w, h, 1, &mut mu, &mut tmp);
        box_mean(&flow.v, w, h, 1, &mut mv, &mut tmp);
        let lambda = p.regularization;
        let pixels = flow.u.iter_mut().zip(flow.v.iter_mut()).enumerate();
        for (i, (u, v)) in pixels {
            let (a, b, c) = (s_xx[i] + lambda, s_xy[i], s_yy[i] + lambda);
            let rx = s_x[i] + lambda * mu[i];
            let ry = s_y[i] + lambda * mv[i];
            let det = a * c - b * b;
            if det <= 1e-20 {
                continue;
            }
            *u = (c * rx - b * ry) / det;
            *v = (a * ry - b * rx) / det;
        }
    }
}

/// Dense flow from `from` to `to` (same size) by polynomial expansion:
/// `from(x, y) ≈ to(x + u, y + v)`, like [`crate::flow::estimate`] but by another method.
///
/// # Panics
/// When the two images differ in size.
pub fn estimate_poly(from: &Gray, to: &Gray, p: &PolyFlowParams) -> Flow {
    assert_eq!(
        (from.width, from.height),
        (to.width, to.height),
        "flow between images of different sizes"
    );
    let pyr = pyramid(from, to, p.max_levels);
    let mut flow: Option<Flow> = None;
    for (a, b) in pyr.iter().rev() {
        let mut f = match flow {
            None => Flow::zero(a.width, a.height),
            Some(f) => f.up(a.width, a.height),
        };
        let e1 = expand(a, p.poly_radius, p.poly_sigma);
        let e2 = expand(b, p.poly_radius, p.poly_sigma);
        refine(&e1, &e2, &mut f, p);
        flow = Some(f);
    }
    flow.unwrap_or_else(|| Flow::zero(from.width, from.height))
}
