//! Detecting and cropping black bars: letterbox (top/bottom) and pillarbox (left/right).
//!
//! A bar is a run of lines (rows from the top or bottom, then columns from the left or right)
//! at the image border that are each dark and uniform: mean luma at most
//! [`BarParams::max_level`] (so dark-grey bars count) and standard deviation at most
//! [`BarParams::max_noise`] (so compression noise is tolerated, but texture is not), all at one
//! level. Three guards keep dark pictures whole:
//! - the run must end at a clear edge (a step in level or in texture), not fade into the picture
//!   as a night sky does;
//! - no side may take more than [`BarParams::max_side_fraction`] of the image;
//! - a picture that is uniform everywhere (a black frame) is never cropped.

use image::RgbImage;
use serde::{Deserialize, Serialize};

/// A rectangle of an image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CropBox {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl CropBox {
    /// The whole of a `width` x `height` image.
    pub fn full(width: u32, height: u32) -> Self {
        CropBox {
            x: 0,
            y: 0,
            width,
            height,
        }
    }

    /// True when the box is the whole `width` x `height` image.
    pub fn is_full(&self, width: u32, height: u32) -> bool {
        *self == CropBox::full(width, height)
    }
}

/// Tuning of the bar detector. The defaults suit photos, JPEG and H.264 frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BarParams {
    /// Brightest mean luma (0-255) a bar line may have (dark grey bars included). Default 60.
    pub max_level: f32,
    /// Largest luma standard deviation within a bar line (compression noise). Default 10.
    pub max_noise: f32,
    /// Most a bar line's mean may differ from the outermost line's. Default 12.
    pub max_level_drift: f32,
    /// Largest share of the width or height one bar may take; thicker runs are taken for dark
    /// picture content, not a bar. Default 0.4 (a 9:16 video in a 16:9 frame has 0.34).
    pub max_side_fraction: f32,
    /// Thinnest bar cropped, as a share of the width or height (at least 2 pixels). Default 0.01.
    pub min_side_fraction: f32,
}

impl Default for BarParams {
    fn default() -> Self {
        BarParams {
            max_level: 60.0,
            max_noise: 10.0,
            max_level_drift: 12.0,
            max_side_fraction: 0.4,
            min_side_fraction: 0.01,
        }
    }
}

/// What the detector found on one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BarDetection {
    /// Thickness of the bar at each side in pixels (0 = none): top, bottom, left, right.
    pub sides: [u32; 4],
    /// The picture without its bars.
    pub crop: CropBox,
    /// The image is uniform everywhere (e.g. a black frame): nothing can be decided from it.
    pub blank: bool,
}

#[derive(Debug, Clone, Copy)]
struct LineStats {
    mean: f32,
    std: f32,
}

fn luma(p: &[u8]) -> f32 {
    0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])
}

fn stats(sum: f64, sum_sq: f64, n: usize) -> LineStats {
    let n = n.max(1) as f64;
    let mean = sum / n;
    let var = (sum_sq / n - mean * mean).max(0.0);
    LineStats {
        mean: mean as f32,
        std: var.sqrt() as f32,
    }
}

/// Stats of each row `y` over columns `x0..x1`.
fn row_stats(img: &RgbImage, x0: u32, x1: u32) -> Vec<LineStats> {
    let w = img.width() as usize;
    img.as_raw()
        .chunks_exact(w * 3)
        .map(|row| {
            let (mut s, mut s2) = (0f64, 0f64);
            for p in row[x0 as usize * 3..x1 as usize * 3].chunks_exact(3) {
                let l = f64::from(luma(p));
                s += l;
                s2 += l * l;
            }
            stats(s, s2, (x1 - x0) as usize)
        })
        .collect()
}

/// Stats of each column `x` over rows `y0..y1`.
fn col_stats(img: &RgbImage, y0: u32, y1: u32) -> Vec<LineStats> {
    let w = img.width() as usize;
    let mut s = vec![0f64; w];
    let mut s2 = vec![0f64; w];
    for y in y0..y1 {
        let row = &img.as_raw()[y as usize * w * 3..(y as usize + 1) * w * 3];
        for (x, p) in row.chunks_exact(3).enumerate() {
            let l = f64::from(luma(p));
            s[x] += l;
            s2[x] += l * l;
        }
    }
    (0..w)
        .map(|x| stats(s[x], s2[x], (y1 - y0) as usize))
        .collect()
}

/// Outcome of scanning one side.
enum Side {
    /// This many lines are bar.
    Bar(u32),
    /// Every line is bar-like: the image is uniform.
    All,
}

/// How many lines of `lines` (outermost first) form a bar.
fn scan(lines: impl Iterator<Item = LineStats> + Clone, n: usize, p: &BarParams) -> Side {
    let mut it = lines.clone();
    let Some(first) = it.next() else {
        return Side::Bar(0);
    };
    let is_bar = |l: &LineStats| {
        l.mean <= p.max_level
            && l.std <= p.max_noise
            && (l.mean - first.mean).abs() <= p.max_level_drift
    };
    if !is_bar(&first) {
        return Side::Bar(0);
    }
    let mut k = 1usize;
    let mut prev = [first, first];
    let mut edge = None;
    for l in it {
        if !is_bar(&l) {
            edge = Some(l);
            break;
        }
        prev = [prev[1], l];
        k += 1;
    }
    let Some(edge) = edge else { return Side::All };
    let min = ((p.min_side_fraction * n as f32).ceil() as usize).max(2);
    let max = (p.max_side_fraction * n as f32).floor() as usize;
    if k < min || k > max {
        return Side::Bar(0);
    }
    // The bar must end at a clear edge: a step in level or a jump in texture, not a slow fade.
    let bar_mean = (prev[0].mean + prev[1].mean) / 2.0;
    let bar_std = prev[0].std.max(prev[1].std);
    let sharp =
        (edge.mean - bar_mean).abs() >= 8.0 || edge.std >= (2.0 * bar_std).max(bar_std + 6.0);
    Side::Bar(if sharp { k as u32 } else { 0 })
}

/// Find the bars of one image.
pub fn detect_bars(img: &RgbImage, p: &BarParams) -> BarDetection {
    let (w, h) = img.dimensions();
    let none = |blank| BarDetection {
        sides: [0; 4],
        crop: CropBox::full(w, h),
        blank,
    };
    if w < 4 || h < 4 {
        return none(false);
    }
    let rows = row_stats(img, 0, w);
    let top = match scan(rows.iter().copied(), h as usize, p) {
        Side::All => return none(true),
        Side::Bar(k) => k,
    };
    let bottom = match scan(rows.iter().rev().copied(), h as usize, p) {
        Side::All => return none(true),
        Side::Bar(k) => k,
    };
    let (y0, y1) = (top, h - bottom);
    let cols = col_stats(img, y0, y1);
    let left = match scan(cols.iter().copied(), w as usize, p) {
        Side::All => return none(true),
        Side::Bar(k) => k,
    };
    let right = match scan(cols.iter().rev().copied(), w as usize, p) {
        Side::All => return none(true),
        Side::Bar(k) => k,
    };
    let crop = CropBox {
        x: left,
        y: top,
        width: w - left - right,
        height: h - top - bottom,
    };
    BarDetection {
        sides: [top, bottom, left, right],
        crop,
        blank: false,
    }
}

/// One crop for a whole clip from the detections on several of its frames: per side, the median
/// over the frames that are not blank (a fade to black or one odd frame cannot sway it).
/// `None` when every frame was blank (nothing to decide from: crop nothing).
pub fn decide_clip_crop(detections: &[BarDetection], width: u32, height: u32) -> Option<CropBox> {
    let useful: Vec<&BarDetection> = detections
        .iter()
        .filter(|d| {
            !d.blank && d.crop.x + d.crop.width <= width && d.crop.y + d.crop.height <= height
        })
        .collect();
    if useful.is_empty() {
        return None;
    }
    let median = |side: usize| {
        let mut v: Vec<u32> = useful.iter().map(|d| d.sides[side]).collect();
        v.sort_unstable();
        v[(v.len() - 1) / 2]
    };
    let [top, bottom, left, right] = [median(0), median(1), median(2), median(3)];
    if top + bottom >= height || left + right >= width {
        return None;
    }
    Some(CropBox {
        x: left,
        y: top,
        width: width - left - right,
        height: height - top - bottom,
    })
}

/// The part of `img` inside `b` (clamped to the image).
pub fn crop(img: &RgbImage, b: CropBox) -> RgbImage {
    let x = b.x.min(img.width());
    let y = b.y.min(img.height());
    let w = b.width.min(img.width() - x);
    let h = b.height.min(img.height() - y);
    image::imageops::crop_imm(img, x, y, w, h).to_image()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use cyclegan_testkit::picture;
    use image::Rgb;

    /// xorshift noise in `-amp..=amp`.
    struct Noise(u32);
    impl Noise {
        fn next(&mut self, amp: i32) -> i32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            (self.0 % (2 * amp as u32 + 1)) as i32 - amp
        }
    }

    /// `content` placed at (`x`,`y`) on a `w` x `h` canvas filled with `level` +- `noise`.
    pub(crate) fn with_bars(
        content: &RgbImage,
        w: u32,
        h: u32,
        x: u32,
        y: u32,
        level: u8,
        noise: i32,
    ) -> RgbImage {
        let mut rng = Noise(12345);
        let mut out = RgbImage::from_fn(w, h, |_, _| {
            let v = (i32::from(level) + rng.next(noise)).clamp(0, 255) as u8;
            Rgb([v, v, v])
        });
        image::imageops::replace(&mut out, content, i64::from(x), i64::from(y));
        out
    }

    fn detect(img: &RgbImage) -> BarDetection {
        detect_bars(img, &BarParams::default())
    }

    #[test]
    fn clean_letterbox_is_cropped_exactly() {
        let content = picture(200, 100, 1);
        let img = with_bars(&content, 200, 150, 0, 25, 0, 0);
        let d = detect(&img);
        assert_eq!(
            d.crop,
            CropBox {
                x: 0,
                y: 25,
                width: 200,
                height: 100
            }
        );
        assert_eq!(crop(&img, d.crop), content);
    }

    #[test]
    fn noisy_off_black_pillarbox_is_cropped() {
        let content = picture(120, 90, 2);
        // Dark grey (35) bars with +-8 compression-like noise.
        let img = with_bars(&content, 160, 90, 20, 0, 35, 8);
        assert_eq!(
            detect(&img).crop,
            CropBox {
                x: 20,
                y: 0,
                width: 120,
                height: 90
            }
        );
    }

    #[test]
    fn one_sided_and_windowbox_bars() {
        let content = picture(150, 100, 3);
        let left_only = with_bars(&content, 180, 100, 30, 0, 5, 3);
        assert_eq!(detect(&left_only).sides, [0, 0, 30, 0]);
        let boxed = with_bars(&content, 190, 130, 20, 12, 10, 4);
        assert_eq!(
            detect(&boxed).crop,
            CropBox {
                x: 20,
                y: 12,
                width: 150,
                height: 100
            }
        );
    }

    #[test]
    fn bars_survive_jpeg_compression() {
        let content = picture(192, 108, 4);
        let img = with_bars(&content, 192, 144, 0, 18, 0, 2);
        let mut buf = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 75)
            .encode_image(&img)
            .unwrap();
        let back = image::load_from_memory(&buf).unwrap().to_rgb8();
        let d = detect(&back);
        // JPEG ringing may cost a row or two at the edge, never content.
        assert!(
            (15..=18).contains(&d.sides[0]) && (15..=18).contains(&d.sides[1]),
            "{:?}",
            d.sides
        );
        assert_eq!(&d.sides[2..], &[0, 0]);
    }

    /// A dark night shot: dim textured ground, a few lights, no bars.
    pub(crate) fn night_scene(w: u32, h: u32) -> RgbImage {
        let mut rng = Noise(777);
        RgbImage::from_fn(w, h, |x, y| {
            let base = 8 + ((x * 7 + y * 3) % 23) as i32 + rng.next(6);
            let light = if (x / 9 + y / 7) % 37 == 0 { 120 } else { 0 };
            let v = (base + light).clamp(0, 255) as u8;
            Rgb([v, v, (v as u16 * 11 / 10).min(255) as u8])
        })
    }

    #[test]
    fn dark_scene_is_not_cropped() {
        let img = night_scene(160, 120);
        let d = detect(&img);
        assert_eq!(d.crop, CropBox::full(160, 120), "{:?}", d.sides);
        assert!(!d.blank);
    }

    #[test]
    fn night_sky_fading_into_the_picture_is_not_a_bar() {
        // Smooth sky from black at the top to dim blue-grey at the horizon (40% of the height),
        // then textured ground: a plain uniform-run detector would cut the sky away.
        let ground = night_scene(160, 72);
        let mut img = RgbImage::from_fn(160, 120, |_, y| {
            let v = (y as f32 * 1.3) as u8;
            Rgb([v, v, v.saturating_add(4)])
        });
        image::imageops::replace(&mut img, &ground, 0, 48);
        assert_eq!(detect(&img).crop, CropBox::full(160, 120));
    }

    #[test]
    fn a_dark_run_too_thick_to_be_a_bar_is_kept() {
        // Uniform black over the top 60%: more than any bar may take.
        let content = picture(160, 48, 5);
        let img = with_bars(&content, 160, 120, 0, 72, 0, 2);
        assert_eq!(detect(&img).sides[0], 0);
    }

    #[test]
    fn black_frame_is_blank_and_uncropped() {
        let img = with_bars(&RgbImage::new(0, 0), 64, 48, 0, 0, 3, 2);
        let d = detect(&img);
        assert!(d.blank);
        assert_eq!(d.crop, CropBox::full(64, 48));
    }

    #[test]
    fn bright_borders_are_not_bars() {
        let content = picture(100, 80, 6);
        let img = with_bars(&content, 100, 120, 0, 20, 240, 2);
        assert_eq!(detect(&img).crop, CropBox::full(100, 120));
    }

    #[test]
    fn clip_crop_is_the_median_over_useful_frames() {
        let mk = |top: u32, blank: bool| BarDetection {
            sides: [top, top, 0, 0],
            crop: CropBox {
                x: 0,
                y: top,
                width: 100,
                height: 100 - 2 * top,
            },
            blank,
        };
        // One frame whose dark content merged into the bar, one whose bar was missed, one blank.
        let frames = [
            mk(10, false),
            mk(10, false),
            mk(16, false),
            mk(0, false),
            mk(10, false),
            mk(0, true),
        ];
        assert_eq!(
            decide_clip_crop(&frames, 100, 100),
            Some(CropBox {
                x: 0,
                y: 10,
                width: 100,
                height: 80
            })
        );
        assert_eq!(decide_clip_crop(&[mk(0, true)], 100, 100), None);
    }
}
