//! Display orientation: phones store portrait clips landscape, with a matrix in the track header
//! (MP4/MOV `tkhd`, FFmpeg's display-matrix side data) saying how to turn the picture for
//! display. Readers apply it, so every frame that leaves [`crate::open`] is upright, as a player
//! shows it; writers then need no matrix.

use image::RgbImage;

/// How stored pixels map to displayed ones: `x' = a*x + c*y`, `y' = b*x + d*y` (the MP4 matrix's
/// linear part, rounded to -1, 0 or 1), then shifted so the picture starts at (0, 0). The eight
/// values are the four rotations, each with or without a mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Orientation {
    a: i8,
    b: i8,
    c: i8,
    d: i8,
}

impl Orientation {
    /// Shown as stored.
    pub(crate) const IDENTITY: Self = Self {
        a: 1,
        b: 0,
        c: 0,
        d: 1,
    };

    /// From the linear part of a display matrix (any scale). None where it is not a quarter turn
    /// or a mirror of one (shears, odd angles), which are shown as stored.
    pub(crate) fn from_matrix(a: f64, b: f64, c: f64, d: f64) -> Option<Self> {
        let scale = a.abs().max(b.abs()).max(c.abs()).max(d.abs());
        if !scale.is_finite() || scale == 0.0 {
            return None;
        }
        let unit = |v: f64| -> i8 {
            if v.abs() < 1e-3 * scale {
                0
            } else if v > 0.0 {
                1
            } else {
                -1
            }
        };
        let m = Self {
            a: unit(a),
            b: unit(b),
            c: unit(c),
            d: unit(d),
        };
        // Exactly one non-zero entry in each row and column.
        let straight = m.b == 0 && m.c == 0 && m.a != 0 && m.d != 0;
        let turned = m.a == 0 && m.d == 0 && m.b != 0 && m.c != 0;
        // Entries of very different sizes are a scale or shear, not a turn.
        let (p, q) = if straight { (a, d) } else { (b, c) };
        let balanced = (p.abs() - q.abs()).abs() <= 1e-2 * p.abs().max(q.abs());
        ((straight || turned) && balanced).then_some(m)
    }

    /// From a clockwise rotation in degrees (FFmpeg's display matrix angle is counter-clockwise,
    /// so callers negate it). Angles are rounded to the nearest quarter turn.
    #[cfg_attr(not(feature = "ffmpeg"), allow(dead_code))]
    pub(crate) fn from_clockwise_degrees(degrees: f64) -> Self {
        match ((degrees / 90.0).round() as i64).rem_euclid(4) {
            1 => Self {
                a: 0,
                b: 1,
                c: -1,
                d: 0,
            },
            2 => Self {
                a: -1,
                b: 0,
                c: 0,
                d: -1,
            },
            3 => Self {
                a: 0,
                b: -1,
                c: 1,
                d: 0,
            },
            _ => Self::IDENTITY,
        }
    }

    /// Whether width and height swap for display.
    pub(crate) fn swaps_sides(self) -> bool {
        self.a == 0
    }

    /// The displayed size of a stored `w` x `h` picture.
    pub(crate) fn displayed_size(self, w: u32, h: u32) -> (u32, u32) {
        if self.swaps_sides() { (h, w) } else { (w, h) }
    }

    /// The picture as it is displayed.
    pub(crate) fn apply(self, img: RgbImage) -> RgbImage {
        if self == Self::IDENTITY {
            return img;
        }
        let (w, h) = img.dimensions();
        let (ow, oh) = self.displayed_size(w, h);
        // Offsets that bring the negative coordinates back into the picture.
        let span_x = if self.swaps_sides() { h } else { w } as i64 - 1;
        let span_y = if self.swaps_sides() { w } else { h } as i64 - 1;
        let off_x = if self.a < 0 || self.c < 0 { span_x } else { 0 };
        let off_y = if self.b < 0 || self.d < 0 { span_y } else { 0 };
        let mut out = RgbImage::new(ow, oh);
        for (x, y, p) in img.enumerate_pixels() {
            let (x, y) = (i64::from(x), i64::from(y));
            let nx = i64::from(self.a) * x + i64::from(self.c) * y + off_x;
            let ny = i64::from(self.b) * x + i64::from(self.d) * y + off_y;
            out.put_pixel(nx as u32, ny as u32, *p);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RgbImage {
        RgbImage::from_fn(3, 2, |x, y| {
            image::Rgb([x as u8, y as u8, (x * 10 + y) as u8])
        })
    }

    #[test]
    fn quarter_turns_match_image_rotations() {
        let img = sample();
        let cw = |d| Orientation::from_clockwise_degrees(d).apply(img.clone());
        assert_eq!(cw(0.0), img);
        assert_eq!(cw(90.0), image::imageops::rotate90(&img));
        assert_eq!(cw(180.0), image::imageops::rotate180(&img));
        assert_eq!(cw(270.0), image::imageops::rotate270(&img));
        assert_eq!(cw(-90.0), image::imageops::rotate270(&img));
    }

    #[test]
    fn matrices_of_phones_and_mirrors() {
        // iPhone portrait: a=0 b=1 c=-1 d=0, a quarter turn clockwise.
        let o = Orientation::from_matrix(0.0, 65536.0, -65536.0, 0.0).unwrap();
        assert_eq!(o, Orientation::from_clockwise_degrees(90.0));
        // A horizontal mirror.
        let m = Orientation::from_matrix(-1.0, 0.0, 0.0, 1.0).unwrap();
        assert_eq!(
            m.apply(sample()),
            image::imageops::flip_horizontal(&sample())
        );
        // A scale or a shear is not an orientation.
        assert_eq!(Orientation::from_matrix(2.0, 0.0, 0.0, 1.0), None);
        assert_eq!(Orientation::from_matrix(1.0, 0.5, 0.0, 1.0), None);
    }
}
