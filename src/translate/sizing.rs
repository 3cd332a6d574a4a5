//! How large a still image is translated: `--load-size`, `--max-side`, `--keep-size`.

use image::RgbImage;
use image::imageops::{FilterType, resize};

/// The size options of `translate` for still images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizing {
    /// Scale so that the shorter side has this many pixels (up or down), keeping the aspect.
    pub load_size: Option<u32>,
    /// Scale down (never up) so that the longer side has at most this many pixels.
    pub max_side: Option<u32>,
    /// Scale the translation back to the input's size.
    pub keep_size: bool,
}

impl Sizing {
    /// The size an image of `w` x `h` is translated at.
    pub fn working_size(&self, w: u32, h: u32) -> (u32, u32) {
        let scale = |factor: f64| {
            let s = |n: u32| ((n as f64 * factor).round() as u32).max(1);
            (s(w), s(h))
        };
        if let Some(n) = self.load_size {
            return scale(n as f64 / w.min(h).max(1) as f64);
        }
        match self.max_side {
            Some(n) if w.max(h) > n => scale(n as f64 / w.max(h) as f64),
            _ => (w, h),
        }
    }

    /// `img` at its working size (bicubic, as the training loader).
    pub fn resize_input(&self, img: &RgbImage) -> RgbImage {
        let (w, h) = img.dimensions();
        resized(img, self.working_size(w, h))
    }

    /// The translation `out` of an input of `original` size: brought back to it with
    /// `keep_size`, else as translated.
    pub fn resize_output(&self, out: RgbImage, original: (u32, u32)) -> RgbImage {
        match self.keep_size {
            true => resized(&out, original),
            false => out,
        }
    }
}

fn resized(img: &RgbImage, (w, h): (u32, u32)) -> RgbImage {
    if img.dimensions() == (w, h) {
        return img.clone();
    }
    resize(img, w, h, FilterType::CatmullRom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_options() {
        let none = Sizing::default();
        assert_eq!(none.working_size(640, 480), (640, 480));
        let load = Sizing {
            load_size: Some(256),
            ..none
        };
        assert_eq!(load.working_size(640, 480), (341, 256)); // 640 * 256 / 480 = 341.3
        assert_eq!(load.working_size(100, 200), (256, 512)); // scaled up too
        let max = Sizing {
            max_side: Some(500),
            ..none
        };
        assert_eq!(max.working_size(1000, 750), (500, 375));
        assert_eq!(max.working_size(300, 1000), (150, 500));
        assert_eq!(max.working_size(400, 300), (400, 300)); // never scaled up
    }

    #[test]
    fn keep_size_scales_back_to_the_input() {
        let img = RgbImage::from_fn(60, 40, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let s = Sizing {
            max_side: Some(30),
            keep_size: true,
            ..Sizing::default()
        };
        let small = s.resize_input(&img);
        assert_eq!(small.dimensions(), (30, 20));
        assert_eq!(s.resize_output(small, (60, 40)).dimensions(), (60, 40));
    }
}
