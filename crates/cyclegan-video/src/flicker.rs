//! Flicker: how much a translated clip changes from frame to frame beyond what the input's
//! motion explains, and a temporal filter that reduces it.
//!
//! Both follow the input's optical flow, from frame t to frame t-1, but not the same one:
//! * the **measure** ([`FlickerMeter`]) warps with [`flow_poly::estimate_poly`] (polynomial
//!   expansion), a method of another family than the smoother's, so the smoother cannot score
//!   well merely by agreeing with its own flow. Its occlusion rule is only the forward–backward
//!   check ([`flow::consistent`]): every pixel whose motion is consistent both ways is scored,
//!   whether or not the input's colours match after warping. Pairs across a shot change (a
//!   cut: the warped input explains less than half of the picture, [`is_shot_change`]) are not
//!   scored at all: no pixel of them has a match, and every output, steady or not, reads the
//!   same large error there.
//! * the **smoother** ([`TemporalSmoother`]) warps with [`flow::estimate`] (Lucas–Kanade) and
//!   blends where the warped input agrees with the input (softly, through
//!   [`TemporalParams::sigma`]): at the pixel where that flow passes the forward–backward
//!   check, over the pixel's neighbourhood too where it does not. It starts afresh at a cut.
//!
//! The meter also reports the warping error under the smoother's flow and mask, the figure
//! `eval-video` used to give alone; it is kept for comparison, not as the verdict.

use image::RgbImage;
use image::imageops::FilterType;

use crate::flow::{self, FlowParams, Gray};
use crate::flow_poly::{self, PolyFlowParams};

/// Largest mean absolute RGB difference (in [0, 1]) between input frame t and input frame t-1
/// warped to t for a pixel to count as tracked by the smoother's flow (not occluded, not a new
/// object, not a cut).
pub const PHOTO_THRESHOLD: f32 = 0.1;

/// Flicker of a clip (see [`flicker_stats`]).
///
/// Warping errors follow Lai et al. (2018), "Learning Blind Video Temporal Consistency":
/// `E = mean over pairs of Σ M (O_t - warp(O_{t-1}))² / Σ M`, with the flow measured on the
/// *input* and `M` its non-occluded pixels. Differences: values are the mean over the three RGB
/// channels in [0, 1] units (Lai sums the channels, so their figure is 3x ours), the flow is
/// ours instead of FlowNet2, the occlusion mask is the forward–backward check alone (Lai,
/// after Ruder et al. 2016, also masks motion boundaries), and pairs across a shot change are
/// left out (Lai's test clips are single shots).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FlickerStats {
    /// Frames seen.
    pub frames: usize,
    /// Warping error under the independent flow ([`flow_poly`]) over the pixels it scores.
    /// Lower is steadier. This is the verdict.
    pub warping_error: f64,
    /// Mean fraction of pixels [`Self::warping_error`] scores, over the pairs within a shot:
    /// those whose independent flow passes the forward–backward check and stays inside the
    /// frame. Over all pairs (a shot change scoring none) it is
    /// `scored_fraction * (frames - 1 - shot_changes) / (frames - 1)`.
    pub scored_fraction: f64,
    /// Frame pairs that straddle a shot change ([`is_shot_change`], judged on the input with
    /// the independent flow): left out of every figure but [`Self::warping_error_all_pixels`]
    /// and [`Self::temporal_difference`].
    pub shot_changes: usize,
    /// Warping error under the independent flow over every pixel of every pair, occluded or
    /// not, shot changes included (an upper bound that no mask or rule can flatter).
    pub warping_error_all_pixels: f64,
    /// Warping error under the smoother's own flow and mask ([`flow::estimate`], forward–backward
    /// and photometric check): the figure the smoother is built to lower.
    pub smoother_flow_warping_error: f64,
    /// Mean fraction of pixels the smoother's mask keeps (pairs within a shot).
    pub tracked_fraction: f64,
    /// Plain temporal difference: mean over pairs of `|O_t - O_{t-1}|` over pixels and channels,
    /// in [0, 1]. Blind to motion: it also counts real movement.
    pub temporal_difference: f64,
}

/// Motion between two input frames: flow from t to t-1, its mask and the warped-input error.
struct Motion {
    flow: flow::Flow,
    /// Forward–backward consistent and inside the frame.
    consistent: Vec<bool>,
    /// Consistent, and the warped input within [`PHOTO_THRESHOLD`] of the input.
    mask: Vec<bool>,
    /// Mean absolute RGB difference between input t and warped input t-1, in [0, 1].
    photo: Vec<f32>,
}

fn motion(
    prev: &RgbImage,
    prev_gray: &Gray,
    cur: &RgbImage,
    cur_gray: &Gray,
    p: &FlowParams,
) -> Motion {
    let f = flow::estimate(cur_gray, prev_gray, p);
    let b = flow::estimate(prev_gray, cur_gray, p);
    let consistent = flow::consistent(&f, &b);
    let photo = photo_error(prev, cur, &f);
    let mask = consistent
        .iter()
        .zip(&photo)
        .map(|(&c, &e)| c && e <= PHOTO_THRESHOLD)
        .collect();
    Motion {
        flow: f,
        consistent,
        mask,
        photo,
    }
}

/// Per pixel, the mean absolute RGB difference (in [0, 1]) between `cur` and `prev` warped to
/// it along `flow` (from `cur` to `prev`): what the motion does not explain.
fn photo_error(prev: &RgbImage, cur: &RgbImage, flow: &flow::Flow) -> Vec<f32> {
    let warped = flow::warp_rgb(prev, flow);
    cur.as_raw()
        .chunks_exact(3)
        .zip(warped.chunks_exact(3))
        .map(|(c, w)| {
            c.iter()
                .zip(w)
                .map(|(&a, &b)| (f32::from(a) - b).abs())
                .sum::<f32>()
                / (3.0 * 255.0)
        })
        .collect()
}

/// Whether a pair of input frames straddles a shot change (a cut): more than half of the
/// picture is off by more than [`PHOTO_THRESHOLD`] after warping, i.e. the median of
/// `photo` (see [`photo_error`]) exceeds it. Within a shot, even under fast motion with
/// motion blur, most of the picture is explained by the motion; across a cut almost none is.
/// The rule reads the input only, so it treats every output of the same input alike.
pub fn is_shot_change(photo: &[f32]) -> bool {
    if photo.is_empty() {
        return false;
    }
    let mut v = photo.to_vec();
    let mid = v.len() / 2;
    let (_, median, _) = v.select_nth_unstable_by(mid, f32::total_cmp);
    *median > PHOTO_THRESHOLD
}

/// Half-size of the neighbourhood whose warped-input error must also be low where the flow
/// fails the forward–backward check (see [`blend_weights`]).
const UNSURE_RADIUS: usize = 2;

/// Per-pixel weight of the warped previous result, from 0 to `strength`.
///
/// Where the flow passes the forward–backward check, `strength · exp(-(e/σ)²)` with `e` the
/// pixel's warped-input error, and 0 past [`PHOTO_THRESHOLD`]. Where it fails the check, the
/// motion is unsure: mostly in regions without texture (noise decides the flow there, so the
/// two directions disagree) but also at occlusions. There `e` is replaced by the larger of the
/// pixel's error and its neighbourhood's mean: a flat region that the warp explains is
/// blended, an occlusion, whose neighbourhood holds the mismatching content, is not.
fn blend_weights(m: &Motion, strength: f32, sigma: f32) -> Vec<f32> {
    let (w, h) = (m.flow.width, m.flow.height);
    let mut local = vec![0.0; w * h];
    let mut tmp = vec![0.0; w * h];
    flow::box_mean(&m.photo, w, h, UNSURE_RADIUS, &mut local, &mut tmp);
    (0..w * h)
        .map(|i| {
            let e = if m.consistent[i] {
                m.photo[i]
            } else {
                m.photo[i].max(local[i])
            };
            if e > PHOTO_THRESHOLD {
                0.0
            } else {
                strength * (-(e / sigma).powi(2)).exp()
            }
        })
        .collect()
}

/// The input at the output's size (flow is measured where the output lives).
fn fit(input: &RgbImage, w: u32, h: u32) -> RgbImage {
    if input.dimensions() == (w, h) {
        input.clone()
    } else {
        image::imageops::resize(input, w, h, FilterType::Triangle)
    }
}

/// Sum of squared RGB differences (in [0, 1] units) between `out` and `warped` at pixel `i`.
fn squared_error(out: &[u8], warped: &[f32], i: usize) -> f64 {
    (0..3)
        .map(|c| (f64::from(out[i * 3 + c]) - f64::from(warped[i * 3 + c])).powi(2))
        .sum::<f64>()
        / (255.0 * 255.0)
}

/// Running sums of one warping error.
#[derive(Debug, Default)]
struct WarpSums {
    /// Pairs added.
    seen: usize,
    /// Pairs with at least one scored pixel.
    pairs: usize,
    sum: f64,
    sum_fraction: f64,
}

impl WarpSums {
    /// Add one pair: `se` the per-pixel squared errors, `mask` the scored pixels.
    fn add(&mut self, se: &[f64], mask: &[bool]) {
        let kept = mask.iter().filter(|&&m| m).count();
        let total: f64 = se
            .iter()
            .zip(mask)
            .filter(|(_, m)| **m)
            .map(|(e, _)| e)
            .sum();
        self.seen += 1;
        self.sum_fraction += kept as f64 / mask.len().max(1) as f64;
        if kept > 0 {
            self.pairs += 1;
            self.sum += total / (3 * kept) as f64;
        }
    }

    fn mean(&self) -> f64 {
        if self.pairs == 0 {
            0.0
        } else {
            self.sum / self.pairs as f64
        }
    }

    /// Mean share of the pixels scored, over the pairs added.
    fn fraction(&self) -> f64 {
        if self.seen == 0 {
            0.0
        } else {
            self.sum_fraction / self.seen as f64
        }
    }
}

/// Streaming flicker measurement: push (input, output) frame pairs in order, read [`Self::stats`].
/// Memory: one previous pair.
#[derive(Debug, Default)]
pub struct FlickerMeter {
    params: FlowParams,
    poly: PolyFlowParams,
    prev: Option<(RgbImage, Gray, RgbImage)>,
    frames: usize,
    pairs: usize,
    shot_changes: usize,
    sum_diff: f64,
    independent: WarpSums,
    all_pixels: WarpSums,
    smoother_flow: WarpSums,
}

impl FlickerMeter {
    /// A meter with the default flow settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add the next frame: the input and what the translation made of it. An input of another
    /// size than the output is resized to the output's size first.
    pub fn push(&mut self, input: &RgbImage, output: &RgbImage) {
        let (w, h) = output.dimensions();
        let input = fit(input, w, h);
        let gray = Gray::from_rgb(&input);
        self.frames += 1;
        if let Some((pin, pgray, pout)) = self.prev.take()
            && pout.dimensions() == (w, h)
        {
            let out = output.as_raw();
            let n = (w * h) as usize;
            // Independent flow: polynomial expansion, forward–backward occlusion rule only.
            let f = flow_poly::estimate_poly(&gray, &pgray, &self.poly);
            let b = flow_poly::estimate_poly(&pgray, &gray, &self.poly);
            let warped = flow::warp_rgb(&pout, &f);
            let se: Vec<f64> = (0..n).map(|i| squared_error(out, &warped, i)).collect();
            self.all_pixels.add(&se, &vec![true; n]);
            if is_shot_change(&photo_error(&pin, &input, &f)) {
                // No pixel has a match across a cut: nothing to score, for either flow.
                self.shot_changes += 1;
            } else {
                self.independent.add(&se, &flow::consistent(&f, &b));
                // The smoother's own flow and mask, for comparison.
                let m = motion(&pin, &pgray, &input, &gray, &self.params);
                let warped = flow::warp_rgb(&pout, &m.flow);
                let se: Vec<f64> = (0..n).map(|i| squared_error(out, &warped, i)).collect();
                self.smoother_flow.add(&se, &m.mask);
            }
            let prev = pout.as_raw();
            let diff: f64 = out
                .iter()
                .zip(prev)
                .map(|(&a, &b)| f64::from(a.abs_diff(b)))
                .sum();
            self.pairs += 1;
            self.sum_diff += diff / (255.0 * (3 * n) as f64);
        }
        self.prev = Some((input, gray, output.clone()));
    }

    /// The figures so far (zero before two frames).
    pub fn stats(&self) -> FlickerStats {
        let avg = |s: f64| {
            if self.pairs == 0 {
                0.0
            } else {
                s / self.pairs as f64
            }
        };
        FlickerStats {
            frames: self.frames,
            warping_error: self.independent.mean(),
            scored_fraction: self.independent.fraction(),
            warping_error_all_pixels: self.all_pixels.mean(),
            smoother_flow_warping_error: self.smoother_flow.mean(),
            tracked_fraction: self.smoother_flow.fraction(),
            shot_changes: self.shot_changes,
            temporal_difference: avg(self.sum_diff),
        }
    }
}

/// Warping error and temporal difference of `outputs` (the translation of `inputs`, frame by
/// frame; the same count). See [`FlickerStats`].
///
/// # Panics
/// When the two slices differ in length.
pub fn flicker_stats(inputs: &[RgbImage], outputs: &[RgbImage]) -> FlickerStats {
    assert_eq!(inputs.len(), outputs.len(), "one output per input frame");
    let mut m = FlickerMeter::new();
    for (i, o) in inputs.iter().zip(outputs) {
        m.push(i, o);
    }
    m.stats()
}

/// The warping error of Lai et al. (2018), "Learning Blind Video Temporal Consistency", under
/// the independent flow: [`FlickerStats::warping_error`] of [`flicker_stats`].
pub fn warping_error(inputs: &[RgbImage], outputs: &[RgbImage]) -> f64 {
    flicker_stats(inputs, outputs).warping_error
}

/// Mean absolute difference between consecutive frames, in [0, 1].
pub fn temporal_difference(frames: &[RgbImage]) -> f64 {
    let mut sum = 0.0;
    for pair in frames.windows(2) {
        let (a, b) = (pair[0].as_raw(), pair[1].as_raw());
        if a.len() != b.len() || a.is_empty() {
            continue;
        }
        sum += a
            .iter()
            .zip(b)
            .map(|(&x, &y)| f64::from(x.abs_diff(y)))
            .sum::<f64>()
            / (255.0 * a.len() as f64);
    }
    if frames.len() < 2 {
        0.0
    } else {
        sum / (frames.len() - 1) as f64
    }
}

/// Settings of [`TemporalSmoother`].
#[derive(Debug, Clone, PartialEq)]
pub struct TemporalParams {
    /// Weight of the motion-compensated previous result, 0 (off) to below 1. With weight `s` a
    /// static pixel's frame-to-frame noise falls to `sqrt((1-s)/(1+s))` of what it was.
    pub strength: f32,
    /// Scale of the warped-input error (in [0, 1]) at which trust in the previous result fades:
    /// the weight is multiplied by `exp(-(err/sigma)²)`, so motion the flow misses is not smeared.
    pub sigma: f32,
    /// Optical flow settings.
    pub flow: FlowParams,
}

impl Default for TemporalParams {
    fn default() -> Self {
        Self {
            strength: 0.6,
            sigma: 0.04,
            flow: FlowParams::default(),
        }
    }
}

/// Motion-compensated recursive filter against flicker.
///
/// Each translated frame is blended with the previous *result* warped to it by the input's
/// optical flow: `P_t = O_t + w (warp(P_{t-1}) - O_t)`, with `w` up to `strength` where the
/// warped input agrees with the input (softly through `sigma`; where the flow fails the
/// forward–backward check, the whole neighbourhood must agree) and 0 elsewhere (see
/// `blend_weights`). Changes that follow the input's motion pass through (the previous result
/// is moved along with the content, so moving edges are not blurred); changes the input does
/// not explain (flicker) are averaged over time; occlusions and new content take the new frame
/// as it is, and a shot change ([`is_shot_change`]) starts the filter afresh.
#[derive(Debug, Default)]
pub struct TemporalSmoother {
    params: TemporalParams,
    prev: Option<(RgbImage, Gray, Vec<f32>)>,
    /// Frames blended so far, and the sum over them of the share of pixels blended at least
    /// half as strongly as `strength` allows.
    blended_frames: usize,
    sum_blended_share: f64,
}

impl TemporalSmoother {
    /// A filter with the given settings.
    pub fn new(params: TemporalParams) -> Self {
        Self {
            params,
            ..Self::default()
        }
    }

    /// Mean share, over the frames that had a predecessor, of the pixels blended with at least
    /// half the full strength: how much of the picture the filter actually steadies.
    pub fn blended_share(&self) -> f64 {
        if self.blended_frames == 0 {
            0.0
        } else {
            self.sum_blended_share / self.blended_frames as f64
        }
    }

    /// Forget the past (e.g. at a cut you know of).
    pub fn reset(&mut self) {
        self.prev = None;
    }

    /// Show `output` as it is and remember it as the new start.
    fn restart(&mut self, input: RgbImage, gray: Gray, output: RgbImage) -> RgbImage {
        let cur = output.as_raw().iter().map(|&v| f32::from(v)).collect();
        self.prev = Some((input, gray, cur));
        output
    }

    /// Filter the next frame: `input` is the network's input, `output` its translation. Returns
    /// the frame to show, of `output`'s size (the input is resized to it for the flow).
    pub fn process(&mut self, input: &RgbImage, output: RgbImage) -> RgbImage {
        let (w, h) = output.dimensions();
        let input = fit(input, w, h);
        let gray = Gray::from_rgb(&input);
        let mut cur: Vec<f32> = output.as_raw().iter().map(|&v| f32::from(v)).collect();
        if let Some((pin, pgray, pout)) = self.prev.take()
            && pin.dimensions() == (w, h)
            && self.params.strength > 0.0
        {
            let m = motion(&pin, &pgray, &input, &gray, &self.params.flow);
            if is_shot_change(&m.photo) {
                // A cut: the past shows another scene. The per-pixel mask would still let flat
                // regions through; start afresh instead.
                self.blended_frames += 1;
                return self.restart(input, gray, output);
            }
            let warped = flow::warp_rgb_f32(&pout, &m.flow);
            let s = self.params.strength.clamp(0.0, 0.99);
            let sigma = self.params.sigma.max(1e-6);
            let mut strong = 0usize;
            let weights = blend_weights(&m, s, sigma);
            for (i, &wgt) in weights.iter().enumerate() {
                if wgt == 0.0 {
                    continue;
                }
                strong += usize::from(wgt >= 0.5 * s);
                for c in 0..3 {
                    let k = i * 3 + c;
                    cur[k] += wgt * (warped[k] - cur[k]);
                }
            }
            self.blended_frames += 1;
            self.sum_blended_share += strong as f64 / m.mask.len().max(1) as f64;
        }
        let shown = RgbImage::from_raw(
            w,
            h,
            cur.iter()
                .map(|&v| v.round().clamp(0.0, 255.0) as u8)
                .collect(),
        )
        .unwrap_or(output);
        self.prev = Some((input, gray, cur));
        shown
    }
}
