//! The picture generator and the image-folder writer.

use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

/// Cells per side of the colour grid. Relative to the picture size, so a resized copy is the
/// same picture to a perceptual hash.
const GRID: u32 = 6;

/// A deterministic picture for tests: a 6x6 grid of random colours (each channel in 40..=229,
/// so never taken for a black bar or blown-out white) under a gentle diagonal ripple. Distinct
/// seeds give unrelated pictures (perceptual hashes far apart); any size works, 1x1 included.
pub fn picture(width: u32, height: u32, seed: u64) -> RgbImage {
    picture_moved(width, height, seed, 0.0)
}

/// [`picture`] with its content moved `dx` pixels to the right (the grid repeats beyond the
/// edges): consecutive frames of a panning shot, for optical flow and video tests.
pub fn picture_moved(width: u32, height: u32, seed: u64, dx: f32) -> RgbImage {
    let mut state = seed ^ 0x5DEE_CE66_D1CE_4E5B;
    let cells: Vec<[f32; 3]> = (0..GRID * GRID)
        .map(|_| [0; 3].map(|_| 40.0 + (splitmix(&mut state) % 190) as f32))
        .collect();
    let phase = (splitmix(&mut state) % 628) as f32 / 100.0;
    let (w, h) = (width.max(1) as f32, height.max(1) as f32);
    RgbImage::from_fn(width, height, |x, y| {
        let u = (x as f32 - dx) / w;
        let v = y as f32 / h;
        let cx = ((u * GRID as f32).floor() as i64).rem_euclid(i64::from(GRID)) as u32;
        let cy = ((v * GRID as f32) as u32).min(GRID - 1);
        let cell = cells[(cy * GRID + cx) as usize];
        let ripple = 12.0 * (std::f32::consts::TAU * (3.0 * u + 2.0 * v) + phase).sin();
        Rgb(cell.map(|c| (c + ripple).round().clamp(0.0, 255.0) as u8))
    })
}

/// `img` (any colour type) encoded as `format` (PNG, JPEG, BMP, TIFF, PPM, ...), as the bytes
/// of a file.
pub fn encode(img: impl Into<DynamicImage>, format: ImageFormat) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.into()
        .write_to(&mut buf, format)
        .unwrap_or_else(|e| panic!("encode a test picture as {format:?}: {e}"));
    buf.into_inner()
}

/// Write `n` PNG pictures `{prefix}_00.png`, `{prefix}_01.png`, ... of `size` x `size` into
/// `dir` (created), all different (seeds derived from `seed` and the index); returns their paths.
pub fn write_pictures(dir: &Path, prefix: &str, n: usize, size: u32, seed: u64) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    (0..n)
        .map(|i| {
            let p = dir.join(format!("{prefix}_{i:02}.png"));
            picture(size, size, seed.wrapping_mul(1000).wrapping_add(i as u64))
                .save(&p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            p
        })
        .collect()
}

/// SplitMix64: a tiny, well-mixed generator, so the kit needs no random-number crate.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_deterministic_and_seeds_differ() {
        assert_eq!(picture(33, 17, 5), picture(33, 17, 5));
        assert_ne!(picture(33, 17, 5), picture(33, 17, 6));
        assert_eq!(picture(1, 1, 0).dimensions(), (1, 1));
        assert_eq!(picture(0, 4, 0).dimensions(), (0, 4));
        // Never dark enough to pass for a black bar.
        assert!(
            picture(64, 64, 9)
                .pixels()
                .all(|p| p.0.iter().all(|&c| c >= 28))
        );
    }

    #[test]
    fn a_moved_picture_is_the_same_picture_shifted() {
        let a = picture(48, 32, 3);
        let b = picture_moved(48, 32, 3, 5.0);
        for y in 0..32 {
            for x in 5..48 {
                assert_eq!(b.get_pixel(x, y), a.get_pixel(x - 5, y));
            }
        }
    }

    #[test]
    fn folders_of_pictures() {
        let t = tempfile::tempdir().unwrap();
        let files = write_pictures(&t.path().join("new"), "good", 3, 20, 7);
        assert_eq!(files.len(), 3);
        assert!(files[2].ends_with("good_02.png"));
        let a = image::open(&files[0]).unwrap().to_rgb8();
        assert_eq!(a, picture(20, 20, 7000));
        assert!(encode(a, ImageFormat::Jpeg).starts_with(&[0xFF, 0xD8]));
    }
}
