//! Flicker: how much a translated clip changes from frame to frame beyond what the input's
//! motion explains, and a temporal filter that reduces it.
//!
//! Both follow the input's optical flow. For each pair of frames t-1, t:
//! `F` = flow of the *input* from frame t to frame t-1 ([`flow::estimate`]), and the occlusion
//! mask `M` keeps pixels whose flow passes the forward–backward check ([`flow::consistent`]) and
//! whose warped input matches (mean absolute RGB difference at most [`PHOTO_THRESHOLD`]).

use image::RgbImage;
use image::imageops::FilterType;

use crate::flow::{self, FlowParams, Gray};

/// Largest mean absolute RGB difference (in [0, 1]) between input frame t and input frame t-1
/// warped to t for a pixel to count as tracked (not occluded, not a new object, not a cut).
pub const PHOTO_THRESHOLD: f32 = 0.1;

/// Flicker of a clip (see [`flicker_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FlickerStats {
    /// Frames seen.
    pub frames: usize,
    /// Warping error of Lai et al. (2018), in [0, 1] pixel units (squared): mean over frame
    /// pairs of the masked mean of `(O_t - warp(O_{t-1}))²` over pixels and RGB channels.
    /// Lower is steadier.
    pub warping_error: f64,
    /// Plain temporal difference: mean over pairs of `|O_t - O_{t-1}|` over pixels and channels,
    /// in [0, 1]. Blind to motion: it also counts real movement.
    pub temporal_difference: f64,
    /// Mean fraction of pixels the occlusion mask kept.
    pub tracked_fraction: f64,
}

/// Motion between two input frames: flow from t to t-1, its mask and the warped-input error.
struct Motion {
    flow: flow::Flow,
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
    let mut mask = flow::consistent(&f, &b);
    let warped = flow::warp_rgb(prev, &f);
    let cur = cur.as_raw();
    let photo: Vec<f32> = (0..mask.len())
        .map(|i| {
            (0..3)
                .map(|c| (f32::from(cur[i * 3 + c]) - warped[i * 3 + c]).abs())
                .sum::<f32>()
                / (3.0 * 255.0)
        })
        .collect();
    for (m, e) in mask.iter_mut().zip(&photo) {
        *m &= *e <= PHOTO_THRESHOLD;
    }
    Motion {
        flow: f,
        mask,
        photo,
    }
}

/// The input at the output's size (flow is measured where the output lives).
fn fit(input: &RgbImage, w: u32, h: u32) -> RgbImage {
    if input.dimensions() == (w, h) {
        input.clone()
    } else {
        image::imageops::resize(input, w, h, FilterType::Triangle)
    }
}

/// Streaming flicker measurement: push (input, output) frame pairs in order, read [`Self::stats`].
/// Memory: one previous pair.
#[derive(Debug, Default)]
pub struct FlickerMeter {
    params: FlowParams,
    prev: Option<(RgbImage, Gray, RgbImage)>,
    frames: usize,
    pairs: usize,
    warp_pairs: usize,
    sum_warp: f64,
    sum_diff: f64,
    sum_tracked: f64,
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
            let m = motion(&pin, &pgray, &input, &gray, &self.params);
            let warped = flow::warp_rgb(&pout, &m.flow);
            let out = output.as_raw();
            let prev = pout.as_raw();
            let (mut se, mut kept, mut diff) = (0.0f64, 0usize, 0.0f64);
            for (i, &keep) in m.mask.iter().enumerate() {
                for c in 0..3 {
                    let o = f64::from(out[i * 3 + c]) / 255.0;
                    diff += (o - f64::from(prev[i * 3 + c]) / 255.0).abs();
                    if keep {
                        se += (o - f64::from(warped[i * 3 + c]) / 255.0).powi(2);
                    }
                }
                kept += usize::from(keep);
            }
            let n = m.mask.len();
            self.pairs += 1;
            self.sum_diff += diff / (3 * n) as f64;
            self.sum_tracked += kept as f64 / n as f64;
            if kept > 0 {
                self.warp_pairs += 1;
                self.sum_warp += se / (3 * kept) as f64;
            }
        }
        self.prev = Some((input, gray, output.clone()));
    }

    /// The figures so far (zero before two frames).
    pub fn stats(&self) -> FlickerStats {
        let avg = |s: f64, n: usize| if n == 0 { 0.0 } else { s / n as f64 };
        FlickerStats {
            frames: self.frames,
            warping_error: avg(self.sum_warp, self.warp_pairs),
            temporal_difference: avg(self.sum_diff, self.pairs),
            tracked_fraction: avg(self.sum_tracked, self.pairs),
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

/// The warping error of Lai et al. (2018), "Learning Blind Video Temporal Consistency": mean
/// over frames of the masked mean squared difference between output t-1 warped to t by the
/// input's flow and output t, in [0, 1] pixel units. See [`flicker_stats`].
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
/// optical flow: `P_t = O_t + w (warp(P_{t-1}) - O_t)`, with `w = strength` where the pixel is
/// tracked (forward–backward consistent, and the warped input agrees with the input, softly
/// through `sigma`) and 0 elsewhere. Changes that follow the input's motion pass through
/// (the previous result is moved along with the content, so moving edges are not blurred);
/// changes the input does not explain (flicker) are averaged over time; occlusions, new content
/// and cuts take the new frame as it is.
#[derive(Debug, Default)]
pub struct TemporalSmoother {
    params: TemporalParams,
    prev: Option<(RgbImage, Gray, Vec<f32>)>,
}

impl TemporalSmoother {
    /// A filter with the given settings.
    pub fn new(params: TemporalParams) -> Self {
        Self { params, prev: None }
    }

    /// Forget the past (e.g. at a cut you know of).
    pub fn reset(&mut self) {
        self.prev = None;
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
            let warped = flow::warp_rgb_f32(&pout, &m.flow);
            let s = self.params.strength.clamp(0.0, 0.99);
            let sigma = self.params.sigma.max(1e-6);
            for (i, &keep) in m.mask.iter().enumerate() {
                if !keep {
                    continue;
                }
                let wgt = s * (-(m.photo[i] / sigma).powi(2)).exp();
                for c in 0..3 {
                    let k = i * 3 + c;
                    cur[k] += wgt * (warped[k] - cur[k]);
                }
            }
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
