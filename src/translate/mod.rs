//! Applying a trained generator: one [`Translator`] for images of any size, folders of images
//! ([`files`]) and whole videos ([`video`]); [`load`] finds the generator in a run folder, a
//! checkpoint, or a PyTorch / safetensors file. Still images may be resized first
//! ([`sizing`]), translated in tiles ([`tiles`]) and are refused when they would not fit in
//! memory ([`memory`]). Nothing here depends on training.

pub mod files;
pub mod load;
pub mod memory;
pub mod sizing;
pub mod tiles;
pub mod video;

use std::collections::HashMap;
use std::path::Path;

use anyhow::Result;
use burn::prelude::*;
use burn::tensor::ops::PadMode;
use image::RgbImage;

pub use files::{folder_jobs, save_image, translate_file, translate_folder};
pub use load::{infer_generator_config, load_generator};
pub use sizing::Sizing;

use crate::family::{Direction, Generator};
use crate::model::precision::Precision;
use crate::tensor_image::{images_to_tensor, tensor_to_images, to_channels};

/// How `translate` treats still images: their size, tiles, and the memory they may take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageOptions {
    /// Resizing before (and after) translation.
    pub sizing: Sizing,
    /// Translate images larger than this in tiles of this side.
    pub tile: Option<u32>,
    /// Pixels by which neighbouring tiles overlap (and are blended).
    pub tile_overlap: u32,
    /// Refuse an image (or tile) whose estimated memory exceeds this many bytes.
    pub memory_limit: Option<u64>,
}

/// A generator ready to translate images (cheap to clone: weights are shared).
#[derive(Clone)]
pub struct Translator {
    generator: Generator,
    device: Device,
}

impl Translator {
    /// Load the generator for `direction` from `model`: a run folder (its newest good
    /// checkpoint), a checkpoint folder, our `networks.safetensors`, or a single generator's
    /// state dict as `.pth` (PyTorch) or `.safetensors`, whose architecture is read from its keys.
    pub fn load(model: &Path, direction: Direction, device: &Device) -> Result<Self> {
        let generator = load_generator(model, direction, device)?;
        Ok(Translator {
            generator,
            device: device.clone(),
        })
    }

    /// Compute the generator's convolutions in `precision` (`--precision`).
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.generator.set_precision(precision);
        self
    }

    /// Wrap a generator already in memory.
    pub fn new(generator: Generator, device: &Device) -> Self {
        Translator {
            generator,
            device: device.clone(),
        }
    }

    /// Translate images (any sizes; same-size images are batched together). Each output has
    /// its input's size: inputs are reflect-padded to a multiple of
    /// [`Generator::size_multiple`] and cropped back.
    pub fn translate(&self, images: &[RgbImage]) -> Vec<RgbImage> {
        let mut out: Vec<Option<RgbImage>> = vec![None; images.len()];
        let mut by_size: HashMap<(u32, u32), Vec<usize>> = HashMap::new();
        for (i, img) in images.iter().enumerate() {
            by_size.entry(img.dimensions()).or_default().push(i);
        }
        for ((w, h), idx) in by_size {
            let batch: Vec<RgbImage> = idx.iter().map(|&i| images[i].clone()).collect();
            let x = images_to_tensor(&batch, &self.device);
            let x = to_channels(x, self.generator.input_channels());
            // A multiple of what the generator halves to (4 for the ResNets, 128 or 256 for
            // a U-Net), and at least 8 so the residual blocks (at a quarter of the size) can
            // reflect-pad by one.
            let m = self.generator.size_multiple() as u32;
            let least = m.max(8);
            let pad = |n: u32| {
                if n < least {
                    least - n
                } else {
                    (m - n % m) % m
                }
            };
            let (ph, pw) = (pad(h), pad(w));
            let x = if ph + pw > 0 {
                pad_to_multiple(x, ph as usize, pw as usize)
            } else {
                x
            };
            let y =
                self.generator
                    .forward(x)
                    .slice([0..idx.len(), 0..3, 0..h as usize, 0..w as usize]);
            for (i, img) in idx.into_iter().zip(tensor_to_images(y)) {
                out[i] = Some(img);
            }
        }
        out.into_iter()
            .map(|o| o.expect("every image translated"))
            .collect()
    }
}

impl Translator {
    /// Translate one still image as `opts` says (resized, tiled, refused when too large for
    /// the memory limit); `name` names it in errors.
    pub fn translate_image(
        &self,
        img: &RgbImage,
        opts: &ImageOptions,
        name: &Path,
    ) -> Result<RgbImage> {
        let original = img.dimensions();
        let input = opts.sizing.resize_input(img);
        let (w, h) = input.dimensions();
        let tile = opts.tile.filter(|&t| w > t || h > t);
        if let Some(limit) = opts.memory_limit {
            let unit = tile.map_or((w, h), |t| (t.min(w), t.min(h)));
            memory::check(&self.generator, name, unit, tile, limit)?;
        }
        let one = |x: &RgbImage| self.translate(std::slice::from_ref(x)).remove(0);
        let out = match tile {
            Some(t) => tiles::translate_tiled(&input, t, opts.tile_overlap, one),
            None => one(&input),
        };
        Ok(opts.sizing.resize_output(out, original))
    }
}

/// Reflect-pad bottom and right (edge-pad when the image is too small to reflect).
fn pad_to_multiple(x: Tensor<4>, ph: usize, pw: usize) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let mode = if h > ph && w > pw {
        PadMode::Reflect
    } else {
        PadMode::Edge
    };
    x.pad([(0, ph), (0, pw)], mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::weights::{HostTensor, init_normal, state_dict};
    use crate::model::{GeneratorConfig, ResnetGenerator};
    use rand::SeedableRng;

    fn tiny(device: &Device) -> ResnetGenerator {
        let mut g = ResnetGenerator::new(&GeneratorConfig::resnet(4, 1), device);
        init_normal(&mut g, &mut rand_chacha::ChaCha8Rng::seed_from_u64(3));
        g
    }

    #[test]
    fn any_size_comes_back_the_same_size_and_batching_changes_nothing() {
        let device = Device::flex();
        let t = Translator::new(Generator::Resnet(tiny(&device)), &device);
        let odd = RgbImage::from_fn(13, 7, |x, y| {
            image::Rgb([(x * 19) as u8, (y * 30) as u8, 128])
        });
        let even = RgbImage::from_fn(16, 8, |x, _| image::Rgb([(x * 9) as u8, 0, 255]));
        let out = t.translate(&[odd.clone(), even.clone(), odd.clone()]);
        assert_eq!(out[0].dimensions(), (13, 7));
        assert_eq!(out[1].dimensions(), (16, 8));
        assert_eq!(out[0], out[2]);
        assert_eq!(out[0], t.translate(std::slice::from_ref(&odd))[0]);
        assert_ne!(out[0], odd);
    }

    #[test]
    fn architecture_is_read_from_the_state_dict() {
        let device = Device::flex();
        let mut g = tiny(&device);
        let dict: HashMap<String, HostTensor> = state_dict(&mut g).into_iter().collect();
        assert_eq!(
            infer_generator_config(&dict).unwrap(),
            GeneratorConfig::resnet(4, 1)
        );
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("g.safetensors");
        let bytes =
            crate::model::weights::safetensors_to_bytes(&dict.clone().into_iter().collect(), None)
                .unwrap();
        std::fs::write(&path, bytes).unwrap();
        let loaded = load_generator(&path, Direction::A2b, &device).unwrap();
        let img = RgbImage::from_fn(8, 8, |x, y| image::Rgb([(x * 30) as u8, (y * 30) as u8, 9]));
        assert_eq!(
            Translator::new(loaded, &device).translate(std::slice::from_ref(&img)),
            Translator::new(Generator::Resnet(g), &device).translate(&[img])
        );
    }

    /// A grayscale-to-grayscale generator is recognised by its channels, takes the luma of
    /// RGB pictures and gives gray ones.
    #[test]
    fn grayscale_generators_take_and_give_gray() {
        let device = Device::flex();
        let config = GeneratorConfig {
            input_nc: 1,
            output_nc: 1,
            ..GeneratorConfig::resnet(4, 1)
        };
        let mut g = ResnetGenerator::new(&config, &device);
        init_normal(&mut g, &mut rand_chacha::ChaCha8Rng::seed_from_u64(3));
        let dict: HashMap<String, HostTensor> = state_dict(&mut g).into_iter().collect();
        assert_eq!(infer_generator_config(&dict).unwrap(), config);
        let t = Translator::new(Generator::Resnet(g), &device);
        let img = RgbImage::from_fn(8, 8, |x, y| image::Rgb([(x * 30) as u8, (y * 30) as u8, 9]));
        let out = t.translate(std::slice::from_ref(&img)).remove(0);
        assert!(out.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
        // Only the luma reaches the network: a picture with the same luma gives the same.
        let same_luma = RgbImage::from_fn(8, 8, |x, y| {
            let [r, g, b] = img.get_pixel(x, y).0.map(f32::from);
            let l = (0.299 * r + 0.587 * g + 0.114 * b).round() as u8;
            image::Rgb([l, l, l])
        });
        let diff = out
            .pixels()
            .zip(t.translate(&[same_luma])[0].pixels())
            .map(|(a, b)| a[0].abs_diff(b[0]))
            .max();
        // The gray picture is the luma rounded to 8 bits: a few levels apart at most.
        assert!(diff <= Some(6), "{diff:?}");
    }
}
