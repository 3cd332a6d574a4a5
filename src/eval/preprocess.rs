//! From a decoded image to the FID network's input, exactly as the reference package does it.
//!
//! `nv_bilinear`: PyTorch's `affine_grid` + `grid_sample` (bilinear, `padding_mode='border'`,
//! `align_corners=False`) with the translation `1/w - 1/new_w` added to the identity, computed
//! in float without rounding. Output pixel `j` then samples input position `j * w / new_w`
//! (clamped to the last pixel), like TensorFlow's original `resize_bilinear`. Values are then
//! divided by 255, clamped to [0, 1] and mapped linearly onto [-1, 0.9921875] (`x / 128 - 1`).

use image::RgbImage;

use super::inception::INPUT_SIZE;

/// Top of the network's input range: 255 / 128 - 1.
const RANGE_TOP: f32 = 0.992_187_5;

/// For each output position along an axis of `n_in` input pixels: the two input pixels and
/// the weight of the second, following `grid_sample`'s float arithmetic.
fn axis_taps(n_in: usize, n_out: usize) -> Vec<(usize, usize, f32)> {
    let (fi, fo) = (n_in as f32, n_out as f32);
    let shift = 1.0 / fi - 1.0 / fo;
    (0..n_out)
        .map(|j| {
            // affine_grid's normalised coordinate (align_corners=False), then the shift.
            let g = (2.0 * j as f32 + 1.0) / fo - 1.0 + shift;
            // grid_sample: unnormalise, then clamp to the border.
            let pos = (((g + 1.0) * fi - 1.0) / 2.0).clamp(0.0, fi - 1.0);
            let lo = pos.floor();
            let w = pos - lo;
            let lo = lo as usize;
            (lo, (lo + 1).min(n_in - 1), w)
        })
        .collect()
}

/// Append `img` as network input, channel planes of `299 x 299` floats, to `out`.
pub fn push_network_input(img: &RgbImage, out: &mut Vec<f32>) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let xs = axis_taps(w, INPUT_SIZE);
    let ys = axis_taps(h, INPUT_SIZE);
    let raw = img.as_raw();
    let px = |y: usize, x: usize, c: usize| f32::from(raw[(y * w + x) * 3 + c]);
    for c in 0..3 {
        for &(y0, y1, wy) in &ys {
            for &(x0, x1, wx) in &xs {
                let top = px(y0, x0, c) * (1.0 - wx) + px(y0, x1, c) * wx;
                let bottom = px(y1, x0, c) * (1.0 - wx) + px(y1, x1, c) * wx;
                let v = top * (1.0 - wy) + bottom * wy;
                let unit = (v / 255.0).clamp(0.0, 1.0);
                out.push((unit * (RANGE_TOP + 1.0) - 1.0).clamp(-1.0, RANGE_TOP));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_identity_and_range_is_mapped() {
        // 299 -> 299 samples every pixel exactly: output = value / 128 - 1.
        let img = RgbImage::from_fn(299, 299, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 255])
        });
        let mut out = Vec::new();
        push_network_input(&img, &mut out);
        assert_eq!(out.len(), 3 * 299 * 299);
        let at = |c: usize, y: usize, x: usize| out[c * 299 * 299 + y * 299 + x];
        assert!((at(0, 0, 7) - (7.0 / 128.0 - 1.0)).abs() < 1e-6);
        assert!((at(1, 100, 0) - (100.0 / 128.0 - 1.0)).abs() < 1e-6);
        assert!((at(2, 5, 5) - RANGE_TOP).abs() < 1e-6);
    }

    #[test]
    fn upsampling_interpolates_and_clamps_at_the_border() {
        // A 2-pixel-wide ramp (0, 255) upsampled: output j samples j * 2 / 299, so the
        // first column is 0, the values rise linearly, and everything past pixel 1 is 255.
        let img = RgbImage::from_fn(2, 2, |x, _| image::Rgb([(x * 255) as u8; 3]));
        let mut out = Vec::new();
        push_network_input(&img, &mut out);
        let v = |x: usize| (out[x] + 1.0) * 128.0;
        assert!(v(0).abs() < 1e-3);
        let expected = 100.0 * 2.0 / 299.0 * 255.0;
        assert!((v(100) - expected).abs() < 0.05, "{} vs {expected}", v(100));
        assert!((v(298) - 255.0).abs() < 1e-3);
    }
}
