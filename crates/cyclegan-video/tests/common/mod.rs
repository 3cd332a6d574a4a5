//! Shared helpers: synthetic frames and picture comparisons.
#![allow(dead_code)]

use image::RgbImage;

/// A textured test picture that moves `t` pixels to the right: smooth colour gradients plus a
/// few soft blobs, compressible like a real scene but with structure for flow and PSNR checks.
pub fn scene(w: u32, h: u32, t: f32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let (xf, yf) = (x as f32 - t, y as f32);
        let r = 128.0 + 90.0 * (xf * 0.11).sin() * (yf * 0.07).cos();
        let g = 128.0 + 80.0 * ((xf + yf) * 0.05).sin();
        let b = 128.0 + 70.0 * (xf * 0.03 - yf * 0.09).cos();
        image::Rgb([r as u8, g as u8, b as u8])
    })
}

/// Peak signal-to-noise ratio in dB between two pictures of the same size.
pub fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let mse = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.as_raw().len() as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

/// A tiny deterministic random generator (xorshift), for noise in tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Roughly normal, mean 0, standard deviation 1.
    pub fn normal(&mut self) -> f32 {
        (0..4).map(|_| self.next_f32()).sum::<f32>() * 1.732 - 3.464
    }
}

/// `img` with independent noise of standard deviation `sigma` (in 0..255 units) per channel.
pub fn noisy(img: &RgbImage, sigma: f32, rng: &mut Rng) -> RgbImage {
    let mut out = img.clone();
    for v in out.iter_mut() {
        *v = (f32::from(*v) + sigma * rng.normal())
            .round()
            .clamp(0.0, 255.0) as u8;
    }
    out
}
