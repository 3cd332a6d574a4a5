//! Dense optical flow (pyramidal, iterative Lucas–Kanade), warping and occlusion masks.
//!
//! Compact rather than state of the art: for each pixel a 2x2 least-squares system over a
//! window is solved at every pyramid level, refining the flow upsampled from the level above;
//! a small pull towards the neighbours' mean flow (as in Bruhn et al.'s combined local-global
//! method) fills in flat regions. Good enough to follow camera pans,
//! zooms and moving objects for flicker measurement and temporal smoothing, where the
//! occlusion mask removes the places it gets wrong.

use image::RgbImage;

/// A grey-level image with values in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Gray {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl Gray {
    /// Luma (Rec. 601 weights) of an RGB image.
    pub fn from_rgb(img: &RgbImage) -> Self {
        let data = img
            .pixels()
            .map(|p| {
                (0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
                    / 255.0
            })
            .collect();
        Self {
            width: img.width() as usize,
            height: img.height() as usize,
            data,
        }
    }

    fn zeros(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            data: vec![0.0; width * height],
        }
    }

    /// Bilinear sample with the border repeated outside the image.
    pub fn sample(&self, x: f32, y: f32) -> f32 {
        bilinear(&self.data, self.width, self.height, 1, x, y, 0)
    }

    /// Half size, after a [1 2 1] blur.
    pub(crate) fn down(&self) -> Self {
        let b = blur121(self);
        let (w, h) = (self.width.div_ceil(2), self.height.div_ceil(2));
        let mut out = Self::zeros(w, h);
        for y in 0..h {
            for x in 0..w {
                let (x0, y0) = (2 * x, 2 * y);
                let (x1, y1) = (
                    (2 * x + 1).min(self.width - 1),
                    (2 * y + 1).min(self.height - 1),
                );
                out.data[y * w + x] = 0.25
                    * (b.data[y0 * self.width + x0]
                        + b.data[y0 * self.width + x1]
                        + b.data[y1 * self.width + x0]
                        + b.data[y1 * self.width + x1]);
            }
        }
        out
    }
}

fn blur121(g: &Gray) -> Gray {
    let (w, h) = (g.width, g.height);
    let mut tmp = vec![0.0f32; w * h];
    for y in 0..h {
        let r = &g.data[y * w..(y + 1) * w];
        for x in 0..w {
            tmp[y * w + x] = 0.25 * (r[x.saturating_sub(1)] + 2.0 * r[x] + r[(x + 1).min(w - 1)]);
        }
    }
    let mut out = Gray::zeros(w, h);
    for y in 0..h {
        let (a, c) = (y.saturating_sub(1), (y + 1).min(h - 1));
        for x in 0..w {
            out.data[y * w + x] = 0.25 * (tmp[a * w + x] + 2.0 * tmp[y * w + x] + tmp[c * w + x]);
        }
    }
    out
}

/// Bilinear sample of channel `c` of an interleaved image, border repeated.
#[inline]
pub(crate) fn bilinear(
    data: &[f32],
    w: usize,
    h: usize,
    channels: usize,
    x: f32,
    y: f32,
    c: usize,
) -> f32 {
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |xx: usize, yy: usize| data[(yy * w + xx) * channels + c];
    let top = at(x0, y0) + fx * (at(x1, y0) - at(x0, y0));
    let bot = at(x0, y1) + fx * (at(x1, y1) - at(x0, y1));
    top + fy * (bot - top)
}

/// Per-pixel motion from a first image to a second: pixel `(x, y)` of the first is seen at
/// `(x + u, y + v)` in the second.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Horizontal motion in pixels, row-major.
    pub u: Vec<f32>,
    /// Vertical motion in pixels, row-major.
    pub v: Vec<f32>,
}

impl Flow {
    /// No motion anywhere.
    pub fn zero(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            u: vec![0.0; width * height],
            v: vec![0.0; width * height],
        }
    }

    /// Twice the size and twice the motion, for the next finer pyramid level.
    pub(crate) fn up(&self, width: usize, height: usize) -> Self {
        let mut out = Self::zero(width, height);
        let sx = self.width as f32 / width as f32;
        let sy = self.height as f32 / height as f32;
        for y in 0..height {
            for x in 0..width {
                let (cx, cy) = ((x as f32 + 0.5) * sx - 0.5, (y as f32 + 0.5) * sy - 0.5);
                let i = y * width + x;
                out.u[i] = bilinear(&self.u, self.width, self.height, 1, cx, cy, 0) / sx;
                out.v[i] = bilinear(&self.v, self.width, self.height, 1, cx, cy, 0) / sy;
            }
        }
        out
    }
}

/// Settings of [`estimate`]. The defaults suit frames from 64 to 1920 pixels wide.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowParams {
    /// Most pyramid levels (each halves the size; the coarsest keeps a shorter side of 16+).
    pub max_levels: usize,
    /// Lucas–Kanade refinements per level.
    pub iterations: usize,
    /// Half-size of the square window the motion is assumed constant over.
    pub radius: usize,
    /// Smoothness: how strongly a pixel's motion is pulled towards its neighbours' mean, which
    /// decides the motion where texture is too weak to.
    pub regularization: f32,
    /// Pyramid levels larger than this (longer side, pixels) are not refined: the flow from
    /// the first level at most this size is upsampled. Bounds the cost on HD frames; smooth
    /// motion loses little.
    pub max_side: usize,
}

impl Default for FlowParams {
    fn default() -> Self {
        Self {
            max_levels: 6,
            iterations: 6,
            // 15x15 windows: with 7x7 ones the coarsest level, where the texture is faint,
            // lost motion of 20+ pixels a frame (a textured pan at 24 px/frame came out at 14
            // px of error; with 15x15 at 0.006). The sums cost the same for any size.
            radius: 7,
            regularization: 1e-5,
            max_side: 640,
        }
    }
}

/// Mean over a (2r+1)² window, windows cut at the border.
pub(crate) fn box_mean(
    src: &[f32],
    w: usize,
    h: usize,
    r: usize,
    out: &mut [f32],
    tmp: &mut [f32],
) {
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        let mut acc = 0.0f32;
        for v in &row[..r.min(w - 1) + 1] {
            acc += v;
        }
        for x in 0..w {
            let (lo, hi) = (x.saturating_sub(r), (x + r).min(w - 1));
            tmp[y * w + x] = acc / (hi - lo + 1) as f32;
            if x + r + 1 < w {
                acc += row[x + r + 1];
            }
            if x >= r {
                acc -= row[x - r];
            }
        }
    }
    for x in 0..w {
        let mut acc = 0.0f32;
        for y in 0..=r.min(h - 1) {
            acc += tmp[y * w + x];
        }
        for y in 0..h {
            let (lo, hi) = (y.saturating_sub(r), (y + r).min(h - 1));
            out[y * w + x] = acc / (hi - lo + 1) as f32;
            if y + r + 1 < h {
                acc += tmp[(y + r + 1) * w + x];
            }
            if y >= r {
                acc -= tmp[(y - r) * w + x];
            }
        }
    }
}

fn gradients(g: &[f32], w: usize, h: usize, gx: &mut [f32], gy: &mut [f32]) {
    for y in 0..h {
        let (ya, yb) = (y.saturating_sub(1), (y + 1).min(h - 1));
        for x in 0..w {
            let (xa, xb) = (x.saturating_sub(1), (x + 1).min(w - 1));
            let i = y * w + x;
            gx[i] = (g[y * w + xb] - g[y * w + xa]) / (xb - xa).max(1) as f32;
            gy[i] = (g[yb * w + x] - g[ya * w + x]) / (yb - ya).max(1) as f32;
        }
    }
}

/// Refine `flow` at one pyramid level.
fn refine(from: &Gray, to: &Gray, flow: &mut Flow, p: &FlowParams) {
    let (w, h) = (from.width, from.height);
    let n = w * h;
    let mut fx = vec![0.0; n];
    let mut fy = vec![0.0; n];
    gradients(&from.data, w, h, &mut fx, &mut fy);
    let mut warped = vec![0.0; n];
    let (mut wx, mut wy) = (vec![0.0; n], vec![0.0; n]);
    let mut prods: [Vec<f32>; 7] = std::array::from_fn(|_| vec![0.0; n]);
    let mut sums: [Vec<f32>; 7] = std::array::from_fn(|_| vec![0.0; n]);
    let (mut mu, mut mv) = (vec![0.0; n], vec![0.0; n]);
    let mut tmp = vec![0.0; n];
    for _ in 0..p.iterations {
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                warped[i] = to.sample(x as f32 + flow.u[i], y as f32 + flow.v[i]);
            }
        }
        gradients(&warped, w, h, &mut wx, &mut wy);
        for i in 0..n {
            // Average of both images' gradients: symmetric, converges in fewer steps.
            let gx = 0.5 * (fx[i] + wx[i]);
            let gy = 0.5 * (fy[i] + wy[i]);
            let gt = warped[i] - from.data[i];
            prods[0][i] = gx * gx;
            prods[1][i] = gx * gy;
            prods[2][i] = gy * gy;
            prods[3][i] = gx * gt;
            prods[4][i] = gy * gt;
            // Each window pixel is linearised at its own current flow; assuming the centre's
            // flow for the whole window instead makes the iteration diverge.
            prods[5][i] = gx * gx * flow.u[i] + gx * gy * flow.v[i];
            prods[6][i] = gx * gy * flow.u[i] + gy * gy * flow.v[i];
        }
        for k in 0..7 {
            box_mean(&prods[k], w, h, p.radius, &mut sums[k], &mut tmp);
        }
        // Prior: the neighbourhood's mean flow (Lucas-Kanade meets Horn-Schunck), so weakly
        // textured windows take their neighbours' motion instead of drifting with the noise.
        box_mean(&flow.u, w, h, 1, &mut mu, &mut tmp);
        box_mean(&flow.v, w, h, 1, &mut mv, &mut tmp);
        let lambda = p.regularization;
        for i in 0..n {
            // Minimise, over the window, sum (gt + g.(f - f_j))^2 + lambda |f - mean f|^2.
            let (a, b, c) = (sums[0][i] + lambda, sums[1][i], sums[2][i] + lambda);
            let rx = sums[5][i] - sums[3][i] + lambda * mu[i];
            let ry = sums[6][i] - sums[4][i] + lambda * mv[i];
            let det = a * c - b * b;
            if det <= 1e-12 {
                continue;
            }
            let nu = (c * rx - b * ry) / det;
            let nv = (a * ry - b * rx) / det;
            // One step never moves more than a few pixels: the pyramid handles large motion.
            flow.u[i] += (nu - flow.u[i]).clamp(-2.0, 2.0);
            flow.v[i] += (nv - flow.v[i]).clamp(-2.0, 2.0);
        }
    }
}

/// Both images and their halvings, finest first: at most `levels` pairs, halving while the
/// shorter side is 32 px or more (so the coarsest has 16 to 31). That limits the motion
/// followed on small frames: on 192x144 a pan of 23.7 px a frame is followed, one of 41.3 px
/// (5 px at the coarsest 24x18, past what a level can follow) is not. Halving down to 8 px
/// follows 41.3 px (0.005 px of error) but was measured slightly worse on the real bikes x4
/// clip (BENCHMARKS.md), so it was not adopted.
pub(crate) fn pyramid(from: &Gray, to: &Gray, levels: usize) -> Vec<(Gray, Gray)> {
    let mut pyr = vec![(from.clone(), to.clone())];
    while pyr.len() < levels.max(1) {
        let (a, b) = &pyr[pyr.len() - 1];
        if a.width.min(a.height) < 32 {
            break;
        }
        let next = (a.down(), b.down());
        pyr.push(next);
    }
    pyr
}

/// Dense flow from `from` to `to` (same size): `from(x, y) ≈ to(x + u, y + v)`.
///
/// # Panics
/// When the two images differ in size.
pub fn estimate(from: &Gray, to: &Gray, p: &FlowParams) -> Flow {
    assert_eq!(
        (from.width, from.height),
        (to.width, to.height),
        "flow between images of different sizes"
    );
    let pyr = pyramid(from, to, p.max_levels);
    let (top_a, _) = &pyr[pyr.len() - 1];
    let mut flow = Flow::zero(top_a.width, top_a.height);
    for (lvl, (a, b)) in pyr.iter().enumerate().rev() {
        if lvl != pyr.len() - 1 {
            flow = flow.up(a.width, a.height);
        }
        if lvl == pyr.len() - 1 || a.width.max(a.height) <= p.max_side.max(16) {
            refine(a, b, &mut flow, p);
        }
    }
    flow
}

/// `img` sampled along `flow` (bilinear), as interleaved RGB floats in [0, 255]: pixel `x` of
/// the result is `img(x + flow(x))`. With `flow` from frame t to frame t-1, this brings frame
/// t-1's content to where it is in frame t.
pub fn warp_rgb(img: &RgbImage, flow: &Flow) -> Vec<f32> {
    let data: Vec<f32> = img.as_raw().iter().map(|&v| f32::from(v)).collect();
    warp_rgb_f32(&data, flow)
}

/// [`warp_rgb`] for an interleaved RGB float image of the flow's size.
pub fn warp_rgb_f32(data: &[f32], flow: &Flow) -> Vec<f32> {
    let (w, h) = (flow.width, flow.height);
    let mut out = vec![0.0; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let (sx, sy) = (x as f32 + flow.u[i], y as f32 + flow.v[i]);
            for c in 0..3 {
                out[i * 3 + c] = bilinear(data, w, h, 3, sx, sy, c);
            }
        }
    }
    out
}

/// Where `flow` (frame t to frame t-1) can be trusted, judged by the forward–backward check of
/// Sundaram et al. (2010) against `back` (frame t-1 to frame t): following `flow` and then
/// `back` must come home, `|f + b|² <= 0.01 (|f|² + |b|²) + 0.5`; and `x + flow(x)` must lie
/// inside the frame.
pub fn consistent(flow: &Flow, back: &Flow) -> Vec<bool> {
    let (w, h) = (flow.width, flow.height);
    let mut out = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let (u, v) = (flow.u[i], flow.v[i]);
            let (sx, sy) = (x as f32 + u, y as f32 + v);
            if sx < -0.5 || sy < -0.5 || sx > w as f32 - 0.5 || sy > h as f32 - 0.5 {
                continue;
            }
            let bu = bilinear(&back.u, w, h, 1, sx, sy, 0);
            let bv = bilinear(&back.v, w, h, 1, sx, sy, 0);
            let d = (u + bu).powi(2) + (v + bv).powi(2);
            out[i] = d <= 0.01 * (u * u + v * v + bu * bu + bv * bv) + 0.5;
        }
    }
    out
}
