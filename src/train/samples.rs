//! Sample grids: what the networks do to one training pair, at a glance.

use std::path::Path;

use anyhow::{Context, Result};
use image::{RgbImage, imageops};

use crate::family::Visuals;
use crate::tensor_image::tensor_to_images;
use cyclegan_data::atomic::write_atomic;

/// Write the model's sample grid (first image of the batch), e.g. for CycleGAN real A, fake B,
/// rec A over real B, fake A, rec B.
pub fn write_grid(visuals: &Visuals, path: &Path) -> Result<()> {
    let tiles: Vec<RgbImage> = visuals
        .images
        .iter()
        .map(|t| tensor_to_images(t.clone().narrow(0, 0, 1)).remove(0))
        .collect();
    let grid = grid(&tiles, visuals.columns, 4);
    let mut bytes = Vec::new();
    grid.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .with_context(|| format!("{}: cannot encode PNG", path.display()))?;
    Ok(write_atomic(path, &bytes)?)
}

/// Tiles in rows of `columns`, separated by `gap` white pixels; each cell is as large as the
/// largest tile (whole-image preprocessing gives the two domains different sizes).
pub fn grid(tiles: &[RgbImage], columns: usize, gap: u32) -> RgbImage {
    let w = tiles.iter().map(|t| t.width()).max().unwrap_or(1);
    let h = tiles.iter().map(|t| t.height()).max().unwrap_or(1);
    let rows = tiles.len().div_ceil(columns) as u32;
    let cols = columns as u32;
    let mut out = RgbImage::from_pixel(
        cols * w + (cols - 1) * gap,
        rows * h + (rows - 1) * gap,
        image::Rgb([255, 255, 255]),
    );
    for (i, t) in tiles.iter().enumerate() {
        let (c, r) = ((i % columns) as u32, (i / columns) as u32);
        imageops::replace(
            &mut out,
            t,
            i64::from(c * (w + gap)),
            i64::from(r * (h + gap)),
        );
    }
    out
}
