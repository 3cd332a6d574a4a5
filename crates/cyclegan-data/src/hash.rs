//! Image fingerprints: an exact content hash of the decoded pixels and a 64-bit perceptual hash
//! (DCT pHash) whose Hamming distance measures how alike two pictures look.

use std::fmt;
use std::sync::OnceLock;

use image::RgbImage;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// SHA-256 of an image's decoded pixels (width, height and RGB bytes): equal only for pixel-identical
/// pictures, whatever file format or metadata they were stored with.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

impl Serialize for ContentHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ContentHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bad = || serde::de::Error::custom(format!("not a 64-digit hex SHA-256: {s:?}"));
        if s.len() != 64 || !s.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(ContentHash(out))
    }
}

/// Hash the decoded pixels of an image (its size included, so a 2x8 and a 4x4 image differ).
pub fn content_hash(img: &RgbImage) -> ContentHash {
    let mut h = Sha256::new();
    h.update(img.width().to_le_bytes());
    h.update(img.height().to_le_bytes());
    h.update(img.as_raw());
    ContentHash(h.finalize().into())
}

/// A 64-bit perceptual hash: one bit per low-frequency DCT coefficient of the 32x32 grey
/// thumbnail, set when the coefficient is above the median. Resizing, recompression, mild noise
/// and small brightness changes flip few bits; different pictures differ in about half of them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PHash(pub u64);

impl PHash {
    /// Number of differing bits (0 = look the same, about 32 = unrelated).
    pub fn distance(self, other: PHash) -> u32 {
        (self.0 ^ other.0).count_ones()
    }
}

impl fmt::Display for PHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for PHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PHash({self})")
    }
}

impl Serialize for PHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        u64::from_str_radix(&s, 16).map(PHash).map_err(|_| {
            serde::de::Error::custom(format!("not a 16-digit hex perceptual hash: {s:?}"))
        })
    }
}

/// Side of the grey thumbnail the DCT runs on.
const N: usize = 32;
/// Side of the block of low frequencies that make the hash (8x8 = 64 bits).
const K: usize = 8;

/// `cos[(2x+1) u pi / 2N]` for u < K, x < N: the only DCT-II rows the hash needs.
fn cos_table() -> &'static [[f32; N]; K] {
    static TABLE: OnceLock<[[f32; N]; K]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [[0f32; N]; K];
        for (u, row) in t.iter_mut().enumerate() {
            for (x, c) in row.iter_mut().enumerate() {
                *c = ((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / (2 * N) as f64).cos()
                    as f32;
            }
        }
        t
    })
}

/// Average the image's luma over an `N`x`N` grid of (nearly) equal cells. Images smaller than
/// the grid repeat pixels; every cell covers at least one pixel.
fn grey_thumbnail(img: &RgbImage) -> [[f32; N]; N] {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let cells = |len: usize| -> Vec<(usize, usize)> {
        (0..N)
            .map(|i| {
                let a = (i * len / N).min(len.saturating_sub(1));
                let b = ((i + 1) * len / N).max(a + 1).min(len);
                (a, b)
            })
            .collect()
    };
    let (cols, rows) = (cells(w), cells(h));
    let raw = img.as_raw();
    // Luma of each pixel once, then sum per cell through a per-row prefix sum.
    let mut out = [[0f32; N]; N];
    let mut row_sum = [0f32; N];
    for (cy, &(y0, y1)) in rows.iter().enumerate() {
        row_sum.iter_mut().for_each(|s| *s = 0.0);
        for y in y0..y1 {
            let line = &raw[y * w * 3..(y + 1) * w * 3];
            for (cx, &(x0, x1)) in cols.iter().enumerate() {
                let mut s = 0u32;
                for p in line[x0 * 3..x1 * 3].chunks_exact(3) {
                    s += 299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2]);
                }
                row_sum[cx] += s as f32 / 1000.0;
            }
        }
        for (cx, &(x0, x1)) in cols.iter().enumerate() {
            out[cy][cx] = row_sum[cx] / ((x1 - x0) * (y1 - y0)) as f32;
        }
    }
    out
}

/// The perceptual hash of an image (see [`PHash`]).
pub fn phash(img: &RgbImage) -> PHash {
    if img.width() == 0 || img.height() == 0 {
        return PHash(0);
    }
    let g = grey_thumbnail(img);
    let c = cos_table();
    // Separable DCT-II, keeping only the K lowest frequencies in each direction.
    let mut tmp = [[0f32; N]; K]; // tmp[v][x] = sum_y g[y][x] cos_v(y)
    for v in 0..K {
        for (y, grow) in g.iter().enumerate() {
            let cv = c[v][y];
            for x in 0..N {
                tmp[v][x] += grow[x] * cv;
            }
        }
    }
    let mut coef = [0f32; K * K];
    for v in 0..K {
        for u in 0..K {
            coef[v * K + u] = (0..N).map(|x| tmp[v][x] * c[u][x]).sum();
        }
    }
    // Median of the AC coefficients (the DC term only says how bright the picture is).
    let mut ac: Vec<f32> = coef[1..].to_vec();
    ac.sort_by(f32::total_cmp);
    let median = (ac[ac.len() / 2] + ac[(ac.len() - 1) / 2]) / 2.0;
    let mut bits = 0u64;
    for (i, &v) in coef.iter().enumerate() {
        if v > median {
            bits |= 1 << i;
        }
    }
    PHash(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cyclegan_testkit::picture;
    use image::{Rgb, imageops};

    fn noisy(img: &RgbImage, amp: i32, seed: u32) -> RgbImage {
        let mut state = seed.wrapping_mul(2654435761).wrapping_add(1);
        let mut out = img.clone();
        for p in out.pixels_mut() {
            for c in p.0.iter_mut() {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let n = (state % (2 * amp as u32 + 1)) as i32 - amp;
                *c = (i32::from(*c) + n).clamp(0, 255) as u8;
            }
        }
        out
    }

    #[test]
    fn content_hash_tells_pixels_apart() {
        let a = picture(64, 48, 1);
        let mut b = a.clone();
        assert_eq!(content_hash(&a), content_hash(&b));
        b.put_pixel(10, 10, Rgb([1, 2, 3]));
        assert_ne!(content_hash(&a), content_hash(&b));
        // Same bytes, different shape.
        let flat = RgbImage::from_raw(2, 8, vec![7; 48]).unwrap();
        let square = RgbImage::from_raw(4, 4, vec![7; 48]).unwrap();
        assert_ne!(content_hash(&flat), content_hash(&square));
    }

    #[test]
    fn content_hash_round_trips_through_json() {
        let h = content_hash(&picture(8, 8, 0));
        let s = serde_json::to_string(&h).unwrap();
        assert_eq!(s.len(), 66);
        assert_eq!(serde_json::from_str::<ContentHash>(&s).unwrap(), h);
        let p = phash(&picture(8, 8, 0));
        assert_eq!(
            serde_json::from_str::<PHash>(&serde_json::to_string(&p).unwrap()).unwrap(),
            p
        );
    }

    #[test]
    fn phash_survives_resize_noise_and_brightness() {
        let a = picture(320, 240, 3);
        let ha = phash(&a);
        let small = imageops::resize(&a, 160, 120, imageops::FilterType::CatmullRom);
        assert!(
            ha.distance(phash(&small)) <= 4,
            "resized: {}",
            ha.distance(phash(&small))
        );
        let n = noisy(&a, 12, 9);
        assert!(
            ha.distance(phash(&n)) <= 4,
            "noisy: {}",
            ha.distance(phash(&n))
        );
        let brighter = RgbImage::from_fn(320, 240, |x, y| {
            let p = a.get_pixel(x, y);
            Rgb(p.0.map(|c| c.saturating_add(10)))
        });
        assert!(ha.distance(phash(&brighter)) <= 4);
    }

    #[test]
    fn phash_separates_different_pictures() {
        let hashes: Vec<PHash> = (0..8)
            .map(|s| phash(&picture(128, 96, s * 3 + 1)))
            .collect();
        for i in 0..hashes.len() {
            for j in i + 1..hashes.len() {
                assert!(
                    hashes[i].distance(hashes[j]) > 10,
                    "{i} vs {j}: {}",
                    hashes[i].distance(hashes[j])
                );
            }
        }
        // A mirror image is a different picture as far as the hash is concerned.
        let a = picture(128, 96, 2);
        assert!(phash(&a).distance(phash(&imageops::flip_horizontal(&a))) > 10);
    }

    #[test]
    fn phash_handles_tiny_images() {
        let one = RgbImage::from_pixel(1, 1, Rgb([9, 9, 9]));
        let _ = phash(&one);
        let thin = picture(3, 200, 1);
        let _ = phash(&thin);
        assert_eq!(phash(&RgbImage::new(0, 0)), PHash(0));
    }
}
