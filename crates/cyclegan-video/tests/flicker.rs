//! Optical flow, the flicker metrics and temporal smoothing on sequences with known motion.

mod common;

use common::{Rng, noisy, scene};
use cyclegan_video::flow::{FlowParams, Gray, estimate};
use cyclegan_video::{
    TemporalParams, TemporalSmoother, flicker_stats, temporal_difference, warping_error,
};
use image::{Rgb, RgbImage};

const W: u32 = 64;
const H: u32 = 48;

/// A textured picture moved `dx` pixels right (sub-pixel exact: it is a function of x - dx).
fn moved(dx: f32) -> RgbImage {
    scene(W, H, dx)
}

#[test]
fn flow_follows_a_known_translation() {
    for (dx, dy) in [(1.5f32, 0.0f32), (-2.3, 0.7), (4.0, -3.0)] {
        let a = RgbImage::from_fn(W, H, |x, y| scene(W * 2, H * 2, 0.0)[(x + 20, y + 20)]);
        let mut b = RgbImage::new(W, H);
        let big = scene(W * 2, H * 2, 0.0);
        let bigf: Vec<f32> = big.as_raw().iter().map(|&v| f32::from(v)).collect();
        // b shows the content of a moved by (dx, dy): b(x) = a(x - d).
        for (x, y, p) in b.enumerate_pixels_mut() {
            let (sx, sy) = (x as f32 + 20.0 - dx, y as f32 + 20.0 - dy);
            for c in 0..3 {
                let (x0, y0) = (sx.floor(), sy.floor());
                let (fx, fy) = (sx - x0, sy - y0);
                let at =
                    |xx: f32, yy: f32| bigf[((yy as u32 * W * 2 + xx as u32) * 3) as usize + c];
                let t = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
                let u = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
                p[c] = (t * (1.0 - fy) + u * fy).round() as u8;
            }
        }
        let f = estimate(
            &Gray::from_rgb(&a),
            &Gray::from_rgb(&b),
            &FlowParams::default(),
        );
        // Interior pixels (the border sees content entering the frame).
        let (mut su, mut sv, mut n) = (0.0, 0.0, 0.0);
        for y in 8..H as usize - 8 {
            for x in 8..W as usize - 8 {
                su += f.u[y * W as usize + x];
                sv += f.v[y * W as usize + x];
                n += 1.0;
            }
        }
        let (mu, mv) = (su / n, sv / n);
        assert!(
            (mu - dx).abs() < 0.15 && (mv - dy).abs() < 0.15,
            "expected ({dx}, {dy}), got ({mu:.3}, {mv:.3})"
        );
    }
}

#[test]
fn noise_added_per_frame_scores_worse_than_a_steady_scene() {
    let inputs: Vec<RgbImage> = (0..8).map(|_| moved(0.0)).collect();
    let mut rng = Rng(1);
    let noisy_out: Vec<RgbImage> = inputs.iter().map(|i| noisy(i, 8.0, &mut rng)).collect();
    let clean = flicker_stats(&inputs, &inputs);
    let bad = flicker_stats(&inputs, &noisy_out);
    assert!(clean.warping_error < 1e-6, "{clean:?}");
    // Difference of two independent N(0, 8²) values: E[d²] = 2·64/255² ≈ 0.00197.
    assert!(
        bad.warping_error > 0.0015 && bad.warping_error < 0.0025,
        "{bad:?}"
    );
    assert!(bad.temporal_difference > 10.0 * clean.temporal_difference.max(1e-4));
    assert!(clean.tracked_fraction > 0.99);
}

#[test]
fn a_translating_pattern_warps_correctly() {
    let inputs: Vec<RgbImage> = (0..8).map(|t| moved(t as f32 * 1.7)).collect();
    let s = flicker_stats(&inputs, &inputs);
    // Motion alone: large plain difference, tiny warping error.
    assert!(s.temporal_difference > 0.015, "{s:?}");
    assert!(s.warping_error < 1e-4, "{s:?}");
    assert!(s.tracked_fraction > 0.8, "{s:?}");
    assert!(warping_error(&inputs, &inputs) == s.warping_error);
    assert!((temporal_difference(&inputs) - s.temporal_difference).abs() < 1e-9);
}

/// A textured square moving right over a static textured background, as inputs; `edge_x` of
/// frame t is the square's left edge.
fn moving_square(t: usize) -> (RgbImage, f32) {
    let left = 10.0 + 1.6 * t as f32;
    let img = RgbImage::from_fn(W, H, |x, y| {
        let (xf, yf) = (x as f32, y as f32);
        let inside = xf >= left && xf < left + 24.0 && (12..36).contains(&y);
        if inside {
            let u = xf - left;
            let v = 200.0 + 25.0 * (0.6 * u + 0.9 * yf).sin();
            Rgb([v as u8, (v * 0.9) as u8, (v * 0.7) as u8])
        } else {
            let v = 60.0 + 25.0 * (0.5 * xf - 0.8 * yf).sin() * (0.3 * yf).cos();
            Rgb([(v * 0.8) as u8, v as u8, (v * 1.1) as u8])
        }
    });
    (img, left)
}

/// Mean absolute error against the clean frame within 2 pixels of the square's vertical edges.
fn edge_error(img: &RgbImage, clean: &RgbImage, left: f32) -> f64 {
    let (mut s, mut n) = (0.0, 0.0);
    for y in 14..34u32 {
        for e in [left, left + 24.0] {
            for x in (e as i32 - 2)..=(e as i32 + 2) {
                if (0..W as i32).contains(&x) {
                    for c in 0..3 {
                        s += f64::from(img[(x as u32, y)][c].abs_diff(clean[(x as u32, y)][c]));
                        n += 1.0;
                    }
                }
            }
        }
    }
    s / n
}

#[test]
fn temporal_smoothing_lowers_flicker_without_blurring_a_moving_edge() {
    let mut rng = Rng(99);
    let (mut inputs, mut noisy_out, mut lefts) = (Vec::new(), Vec::new(), Vec::new());
    for t in 0..16 {
        let (img, left) = moving_square(t);
        // Flicker: per-frame brightness jitter plus pixel noise.
        let jitter = 6.0 * rng.normal();
        let mut out = noisy(&img, 6.0, &mut rng);
        out.iter_mut()
            .for_each(|v| *v = (f32::from(*v) + jitter).round().clamp(0.0, 255.0) as u8);
        inputs.push(img);
        noisy_out.push(out);
        lefts.push(left);
    }
    let mut sm = TemporalSmoother::new(TemporalParams::default());
    let smoothed: Vec<RgbImage> = inputs
        .iter()
        .zip(&noisy_out)
        .map(|(i, o)| sm.process(i, o.clone()))
        .collect();
    let before = flicker_stats(&inputs, &noisy_out);
    let after = flicker_stats(&inputs, &smoothed);
    // Edges: compare to the clean frames, after the filter has warmed up.
    let (mut e_noisy, mut e_smooth) = (0.0, 0.0);
    for t in 4..16 {
        e_noisy += edge_error(&noisy_out[t], &inputs[t], lefts[t]);
        e_smooth += edge_error(&smoothed[t], &inputs[t], lefts[t]);
    }
    println!(
        "warping error {:.5} -> {:.5}, temporal difference {:.4} -> {:.4}, edge error {:.2} -> {:.2}",
        before.warping_error,
        after.warping_error,
        before.temporal_difference,
        after.temporal_difference,
        e_noisy / 12.0,
        e_smooth / 12.0
    );
    assert!(
        after.warping_error < 0.5 * before.warping_error,
        "{before:?} -> {after:?}"
    );
    // A blurred or ghosted edge would be further from the clean frame than the noisy one.
    assert!(
        e_smooth <= e_noisy,
        "edge error {e_noisy:.1} -> {e_smooth:.1}"
    );
}

#[test]
fn flow_on_large_frames_refines_only_up_to_max_side() {
    // 400x300, refined at 100x75 and upsampled: the motion is still found.
    let a = Gray::from_rgb(&scene(400, 300, 0.0));
    let b = Gray::from_rgb(&scene(400, 300, 3.0));
    let p = FlowParams {
        max_side: 128,
        ..Default::default()
    };
    let f = estimate(&a, &b, &p);
    assert_eq!((f.width, f.height), (400, 300));
    let (mut s, mut n) = (0.0, 0.0);
    for y in 30..270 {
        for x in 30..370 {
            s += f.u[y * 400 + x];
            n += 1.0;
        }
    }
    assert!((s / n - 3.0).abs() < 0.2, "mean u {}", s / n);
}
