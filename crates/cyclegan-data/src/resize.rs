//! Bringing pictures to the dataset's square size: stretch, centre-crop or pad, with Lanczos3
//! resampling (one resampling pass per picture).

use image::{Rgb, RgbImage, imageops};
use serde::{Deserialize, Serialize};

/// How a picture that is not square becomes `size` x `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeMode {
    /// Stretch to the square (changes the aspect ratio).
    Resize,
    /// Scale the shorter side to `size` and cut the middle square (loses the edges of the long side).
    #[default]
    CenterCrop,
    /// Scale the longer side to `size` and fill the rest with the pad colour (keeps everything).
    Pad,
}

impl std::str::FromStr for ResizeMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "resize" => Ok(ResizeMode::Resize),
            "center-crop" => Ok(ResizeMode::CenterCrop),
            "pad" => Ok(ResizeMode::Pad),
            _ => Err(format!(
                "unknown resize mode {s:?}: use resize, center-crop or pad"
            )),
        }
    }
}

fn resample(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    if img.dimensions() == (w, h) {
        return img.clone();
    }
    imageops::resize(img, w.max(1), h.max(1), imageops::FilterType::Lanczos3)
}

/// Bring `img` to `size` x `size` with `mode`; `pad` fills the margins in [`ResizeMode::Pad`].
/// `size == 0` keeps the picture as it is.
pub fn fit(img: &RgbImage, size: u32, mode: ResizeMode, pad: [u8; 3]) -> RgbImage {
    let (w, h) = img.dimensions();
    if size == 0 || w == 0 || h == 0 {
        return img.clone();
    }
    match mode {
        ResizeMode::Resize => resample(img, size, size),
        ResizeMode::CenterCrop => {
            let side = w.min(h);
            let square =
                imageops::crop_imm(img, (w - side) / 2, (h - side) / 2, side, side).to_image();
            resample(&square, size, size)
        }
        ResizeMode::Pad => {
            let long = u64::from(w.max(h));
            let nw = ((u64::from(w) * u64::from(size) + long / 2) / long).max(1) as u32;
            let nh = ((u64::from(h) * u64::from(size) + long / 2) / long).max(1) as u32;
            let scaled = resample(img, nw, nh);
            let mut out = RgbImage::from_pixel(size, size, Rgb(pad));
            imageops::replace(
                &mut out,
                &scaled,
                i64::from((size - nw) / 2),
                i64::from((size - nh) / 2),
            );
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cyclegan_testkit::picture;

    #[test]
    fn every_mode_gives_the_square_size() {
        let img = picture(300, 200, 1);
        for mode in [ResizeMode::Resize, ResizeMode::CenterCrop, ResizeMode::Pad] {
            assert_eq!(
                fit(&img, 64, mode, [0, 0, 0]).dimensions(),
                (64, 64),
                "{mode:?}"
            );
        }
        // Upscaling a small picture works too.
        assert_eq!(
            fit(&picture(20, 10, 1), 64, ResizeMode::CenterCrop, [0; 3]).dimensions(),
            (64, 64)
        );
        assert_eq!(
            fit(&img, 0, ResizeMode::Pad, [0; 3]).dimensions(),
            (300, 200)
        );
    }

    #[test]
    fn center_crop_keeps_the_middle() {
        // Red left third, green middle, blue right third: the crop must be all green.
        let img = RgbImage::from_fn(300, 100, |x, _| match x / 100 {
            0 => Rgb([255, 0, 0]),
            1 => Rgb([0, 255, 0]),
            _ => Rgb([0, 0, 255]),
        });
        let out = fit(&img, 50, ResizeMode::CenterCrop, [0; 3]);
        assert!(out.pixels().all(|p| p[1] > 200 && p[0] < 40 && p[2] < 40));
    }

    #[test]
    fn pad_keeps_everything_and_fills_with_the_colour() {
        let img = RgbImage::from_pixel(200, 100, Rgb([200, 10, 10]));
        let out = fit(&img, 64, ResizeMode::Pad, [0, 0, 255]);
        // Picture in rows 16..48, pad colour above and below.
        assert_eq!(out.get_pixel(10, 2), &Rgb([0, 0, 255]));
        assert_eq!(out.get_pixel(10, 62), &Rgb([0, 0, 255]));
        assert_eq!(out.get_pixel(0, 32), &Rgb([200, 10, 10]));
        assert_eq!(out.get_pixel(63, 32), &Rgb([200, 10, 10]));
    }

    #[test]
    fn resize_mode_parses() {
        assert_eq!("pad".parse::<ResizeMode>(), Ok(ResizeMode::Pad));
        assert!("crop".parse::<ResizeMode>().is_err());
    }
}
