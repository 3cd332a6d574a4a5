//! A small synthetic two-domain dataset, so the whole pipeline runs out of the box.
//!
//! Domain A ("day"): soft shapes in warm colours on a light background. Domain B ("night"):
//! the same kind of scenes in cool colours on a dark background. Unpaired: each image is drawn
//! independently. A small CycleGAN learns the mapping in minutes on a CPU.

use std::path::Path;

use anyhow::{Context, Result};
use image::{Rgb, RgbImage};
use rand::Rng;

use cyclegan_data::loader::rng_for;

/// Which look a scene gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// Warm shapes on a light background.
    Day,
    /// Cool shapes on a dark background.
    Night,
}

/// One random scene of `size` x `size` pixels.
pub fn scene(look: Look, size: u32, rng: &mut impl Rng) -> RgbImage {
    let (bg, palette): ([f32; 3], [[f32; 3]; 3]) = match look {
        Look::Day => (
            [235.0, 225.0, 200.0],
            [
                [220.0, 80.0, 40.0],
                [240.0, 170.0, 30.0],
                [170.0, 60.0, 90.0],
            ],
        ),
        Look::Night => (
            [25.0, 30.0, 60.0],
            [
                [60.0, 140.0, 230.0],
                [40.0, 210.0, 190.0],
                [150.0, 110.0, 240.0],
            ],
        ),
    };
    let shapes: Vec<(f32, f32, f32, [f32; 3], bool)> = (0..rng.random_range(2..5))
        .map(|_| {
            let s = size as f32;
            (
                rng.random_range(0.15..0.85) * s,
                rng.random_range(0.15..0.85) * s,
                rng.random_range(0.08..0.25) * s,
                palette[rng.random_range(0..palette.len())],
                rng.random_bool(0.5),
            )
        })
        .collect();
    let shade = rng.random_range(0.9..1.1f32);
    RgbImage::from_fn(size, size, |x, y| {
        let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
        // Gentle vertical gradient so the background is not flat.
        let g = 1.0 - 0.15 * fy / size as f32;
        let mut c = bg.map(|v| v * g * shade);
        for &(cx, cy, r, col, square) in &shapes {
            let d = if square {
                (fx - cx).abs().max((fy - cy).abs())
            } else {
                ((fx - cx).powi(2) + (fy - cy).powi(2)).sqrt()
            };
            // Anti-aliased edge over about one pixel.
            let cover = (r - d + 0.5).clamp(0.0, 1.0);
            for k in 0..3 {
                c[k] = c[k] * (1.0 - cover) + col[k] * cover;
            }
        }
        Rgb(c.map(|v| v.round().clamp(0.0, 255.0) as u8))
    })
}

/// Write `trainA/`, `trainB/` (`n_train` each) and `testA/`, `testB/` (`n_test` each) as PNGs.
pub fn write_dataset(
    dir: &Path,
    size: u32,
    n_train: usize,
    n_test: usize,
    seed: u64,
) -> Result<()> {
    for (folder, look, n, tag) in [
        ("trainA", Look::Day, n_train, 0u64),
        ("trainB", Look::Night, n_train, 1),
        ("testA", Look::Day, n_test, 2),
        ("testB", Look::Night, n_test, 3),
    ] {
        let d = dir.join(folder);
        std::fs::create_dir_all(&d).with_context(|| format!("{}: cannot create", d.display()))?;
        for i in 0..n {
            let img = scene(look, size, &mut rng_for(seed, &[tag, i as u64]));
            let path = d.join(format!("{i:04}.png"));
            img.save(&path)
                .with_context(|| format!("{}: cannot write", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean(img: &RgbImage) -> [f32; 3] {
        let n = (img.width() * img.height()) as f32;
        let mut m = [0.0; 3];
        for p in img.pixels() {
            for k in 0..3 {
                m[k] += f32::from(p[k]) / n;
            }
        }
        m
    }

    #[test]
    fn domains_differ_in_brightness_and_hue() {
        let day = scene(Look::Day, 32, &mut rng_for(1, &[]));
        let night = scene(Look::Night, 32, &mut rng_for(1, &[]));
        let (d, n) = (mean(&day), mean(&night));
        assert!(d.iter().sum::<f32>() > 2.0 * n.iter().sum::<f32>());
        assert!(d[0] > d[2] && n[2] > n[0]);
    }
}
