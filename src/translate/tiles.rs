//! Tiled translation of images too large to translate at once: the generator is fully
//! convolutional, so it can translate overlapping tiles one by one, and the tiles are blended
//! with weights that ramp linearly across each overlap (feathered seams).
//!
//! Tiles are not exactly the whole image cut up: every instance norm normalises a tile by its
//! own statistics, not the whole image's, and near a tile's edge the convolutions see padding
//! instead of the neighbouring pixels. The blend hides the edges; the statistics make tiles of
//! very different content (sky and ground) differ slightly in tone. `tests/translate_sizes.rs`
//! measures the difference on a picture of uniform texture.

use image::RgbImage;

/// Where the tiles along one axis of `len` pixels start, for tiles of `tile` pixels that overlap
/// by at least `overlap` (the last tile is aligned with the end, overlapping more).
pub fn tile_starts(len: u32, tile: u32, overlap: u32) -> Vec<u32> {
    if len <= tile {
        return vec![0];
    }
    let step = tile.saturating_sub(overlap).max(1);
    let mut starts: Vec<u32> = (0..)
        .map(|i| i * step)
        .take_while(|&s| s + tile < len)
        .collect();
    starts.push(len - tile);
    starts
}

/// Blend weights along one axis for the tile starting at `starts[i]` (of `len` pixels at most
/// `tile`): 1 inside, ramping linearly down to (almost) 0 across the overlap with each
/// neighbour, so that the two weights of any pixel of an overlap add up to 1.
fn ramp(starts: &[u32], i: usize, tile: u32, len: u32) -> Vec<f32> {
    let start = starts[i];
    let size = tile.min(len - start);
    let end = start + size;
    // The actual overlaps with the previous and next tiles (0 at the image's edges).
    let before = if i > 0 {
        (starts[i - 1] + tile).min(len).saturating_sub(start)
    } else {
        0
    };
    let after = match starts.get(i + 1) {
        Some(&next) => end.saturating_sub(next),
        None => 0,
    };
    (0..size)
        .map(|p| {
            let mut w = 1.0f32;
            if p < before {
                w = w.min((p as f32 + 0.5) / before as f32);
            }
            if size - p <= after {
                w = w.min(((size - p) as f32 - 0.5) / after as f32);
            }
            w
        })
        .collect()
}

/// Translate `img` by `translate` applied to `tile` x `tile` tiles (smaller at the edges of a
/// small image) overlapping by at least `overlap`, blended linearly across the overlaps.
/// `translate` must return an image of its input's size.
pub fn translate_tiled(
    img: &RgbImage,
    tile: u32,
    overlap: u32,
    mut translate: impl FnMut(&RgbImage) -> RgbImage,
) -> RgbImage {
    let (w, h) = img.dimensions();
    let (xs, ys) = (tile_starts(w, tile, overlap), tile_starts(h, tile, overlap));
    let mut sum = vec![0.0f32; (w * h * 3) as usize];
    let mut weight = vec![0.0f32; (w * h) as usize];
    for (j, &y0) in ys.iter().enumerate() {
        let wy = ramp(&ys, j, tile, h);
        for (i, &x0) in xs.iter().enumerate() {
            let wx = ramp(&xs, i, tile, w);
            let (tw, th) = (wx.len() as u32, wy.len() as u32);
            let part = image::imageops::crop_imm(img, x0, y0, tw, th).to_image();
            let out = translate(&part);
            assert_eq!(
                out.dimensions(),
                (tw, th),
                "a translated tile keeps its size"
            );
            for (ty, &a) in wy.iter().enumerate() {
                for (tx, &b) in wx.iter().enumerate() {
                    let (x, y) = (x0 + tx as u32, y0 + ty as u32);
                    let k = (y * w + x) as usize;
                    let px = out.get_pixel(tx as u32, ty as u32).0;
                    for c in 0..3 {
                        sum[k * 3 + c] += a * b * px[c] as f32;
                    }
                    weight[k] += a * b;
                }
            }
        }
    }
    RgbImage::from_fn(w, h, |x, y| {
        let k = (y * w + x) as usize;
        let v = |c: usize| (sum[k * 3 + c] / weight[k]).round().clamp(0.0, 255.0) as u8;
        image::Rgb([v(0), v(1), v(2)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_axis_with_at_least_the_overlap() {
        assert_eq!(tile_starts(100, 128, 16), [0]);
        assert_eq!(tile_starts(128, 128, 16), [0]);
        assert_eq!(tile_starts(300, 128, 16), [0, 112, 172]);
        for (len, tile, overlap) in [(1000, 512, 32), (513, 512, 32), (97, 20, 6)] {
            let s = tile_starts(len, tile, overlap);
            assert_eq!(s[0], 0);
            assert_eq!(s[s.len() - 1] + tile, len);
            for pair in s.windows(2) {
                assert!(pair[0] + tile >= pair[1] + overlap, "{len} {tile}: {s:?}");
            }
        }
    }

    #[test]
    fn weights_of_an_overlap_add_up_to_one() {
        let (len, tile) = (300, 128);
        let starts = tile_starts(len, tile, 16);
        let mut total = vec![0.0f32; len as usize];
        for i in 0..starts.len() {
            for (p, w) in ramp(&starts, i, tile, len).into_iter().enumerate() {
                assert!(w > 0.0 && w <= 1.0);
                total[starts[i] as usize + p] += w;
            }
        }
        assert!(total.iter().all(|t| (t - 1.0).abs() < 1e-5), "{total:?}");
    }

    /// With a translation that looks at each pixel alone, tiling changes nothing at all: the
    /// tiles land where they belong and the blend of equal values is that value.
    #[test]
    fn a_pixelwise_translation_is_the_same_tiled() {
        let img = RgbImage::from_fn(150, 70, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 3) as u8, (x ^ y) as u8])
        });
        let invert = |t: &RgbImage| {
            let mut t = t.clone();
            image::imageops::invert(&mut t);
            t
        };
        let mut calls = 0;
        let tiled = translate_tiled(&img, 32, 8, |t| {
            calls += 1;
            invert(t)
        });
        assert_eq!(tiled, invert(&img));
        assert_eq!(
            calls,
            tile_starts(150, 32, 8).len() * tile_starts(70, 32, 8).len()
        );
    }
}
