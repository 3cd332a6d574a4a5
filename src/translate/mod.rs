//! Applying a trained generator: loading it from a run, a checkpoint or a PyTorch file, and
//! translating images of any size, folders of images and (see the video crate) whole clips.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use burn::prelude::*;
use burn::tensor::ops::PadMode;
use image::RgbImage;

use crate::model::weights::{HostTensor, load_state_dict, read_pth, read_safetensors};
use crate::model::{GeneratorConfig, ResnetGenerator};
use crate::tensor_image::{images_to_tensor, tensor_to_images};
use crate::train::checkpoint;

/// Which generator to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Direction {
    /// Domain A to domain B (`G_A`).
    A2b,
    /// Domain B to domain A (`G_B`).
    B2a,
}

impl Direction {
    fn prefix(self) -> &'static str {
        match self {
            Direction::A2b => "G_A.",
            Direction::B2a => "G_B.",
        }
    }
}

/// A generator ready to translate images (cheap to clone: weights are shared).
#[derive(Clone)]
pub struct Translator {
    generator: ResnetGenerator,
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

    /// Wrap a generator already in memory.
    pub fn new(generator: ResnetGenerator, device: &Device) -> Self {
        Translator {
            generator,
            device: device.clone(),
        }
    }

    /// Translate images (any sizes; same-size images are batched together). Each output has
    /// its input's size: inputs are reflect-padded to a multiple of 4 and cropped back.
    pub fn translate(&self, images: &[RgbImage]) -> Vec<RgbImage> {
        let mut out: Vec<Option<RgbImage>> = vec![None; images.len()];
        let mut by_size: HashMap<(u32, u32), Vec<usize>> = HashMap::new();
        for (i, img) in images.iter().enumerate() {
            by_size.entry(img.dimensions()).or_default().push(i);
        }
        for ((w, h), idx) in by_size {
            let batch: Vec<RgbImage> = idx.iter().map(|&i| images[i].clone()).collect();
            let x = images_to_tensor(&batch, &self.device);
            // A multiple of 4, and at least 8 so the residual blocks (at a quarter of the
            // size) can reflect-pad by one.
            let pad = |n: u32| if n < 8 { 8 - n } else { (4 - n % 4) % 4 };
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

/// Read one direction's generator from any of the supported sources (see [`Translator::load`]).
pub fn load_generator(
    model: &Path,
    direction: Direction,
    device: &Device,
) -> Result<ResnetGenerator> {
    if !model.exists() {
        bail!(
            "{}: model not found; give a run folder, a checkpoint folder, or a .safetensors/.pth generator file",
            model.display()
        );
    }
    if model.is_dir() {
        let loaded = if model.join("SHA256SUMS").exists() {
            checkpoint::read(model)?
        } else {
            checkpoint::latest(model).ok_or_else(|| {
                anyhow!("{}: no complete checkpoint in this folder (is it a run folder of `cyclegan train`?)", model.display())
            })?
        };
        let gens = loaded.generators(device)?;
        return Ok(match direction {
            Direction::A2b => gens.g_a,
            Direction::B2a => gens.g_b,
        });
    }
    let ext = model
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let dict = match ext.as_str() {
        "pth" | "pt" | "bin" => read_pth(model)?,
        "safetensors" => {
            let all = read_safetensors(model, "")?;
            // Our networks file holds both generators under prefixes; a plain file holds one.
            let prefixed: HashMap<String, HostTensor> = all
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix(direction.prefix())
                        .map(|k| (k.to_string(), v.clone()))
                })
                .collect();
            if prefixed.is_empty() { all } else { prefixed }
        }
        _ => bail!(
            "{}: unknown model file type; expected .safetensors or .pth",
            model.display()
        ),
    };
    let config = infer_generator_config(&dict)
        .with_context(|| format!("{}: not a ResNet generator state dict", model.display()))?;
    let mut g = ResnetGenerator::new(&config, device);
    load_state_dict(&mut g, &dict, model, "generator")?;
    Ok(g)
}

/// `ngf` from the first convolution, the block count from the residual keys.
pub fn infer_generator_config(dict: &HashMap<String, HostTensor>) -> Result<GeneratorConfig> {
    let first = dict
        .get("model.1.weight")
        .ok_or_else(|| anyhow!("no `model.1.weight`"))?;
    let ngf = *first
        .shape
        .first()
        .ok_or_else(|| anyhow!("`model.1.weight` has no shape"))?;
    let blocks = dict
        .keys()
        .filter(|k| k.ends_with(".conv_block.1.weight"))
        .count();
    if blocks == 0 {
        bail!("no residual blocks (`model.N.conv_block.1.weight`)");
    }
    Ok(GeneratorConfig { ngf, blocks })
}

/// Translate one image file to `output` (format from its extension), written atomically.
pub fn translate_file(t: &Translator, input: &Path, output: &Path) -> Result<()> {
    let img = cyclegan_data::imageio::decode_rgb(input)?;
    let out = t.translate(std::slice::from_ref(&img)).remove(0);
    save_image(&out, output)
}

/// Save an image atomically (temporary name, then rename), format from the extension.
pub fn save_image(img: &RgbImage, path: &Path) -> Result<()> {
    let format = image::ImageFormat::from_path(path).map_err(|_| {
        anyhow!(
            "{}: unknown image extension; use .png, .jpg, .webp or .bmp",
            path.display()
        )
    })?;
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), format)
        .with_context(|| format!("{}: cannot encode", path.display()))?;
    checkpoint::write_atomic(path, &bytes)
}

/// Images directly inside `dir`, and the output path each gets under `out_dir`.
pub fn folder_jobs(dir: &Path, out_dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let files = cyclegan_data::imageio::list_images(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?;
    if files.is_empty() {
        bail!(
            "{}: no images (jpg, jpeg, png, webp, bmp) in this folder",
            dir.display()
        );
    }
    Ok(files
        .into_iter()
        .map(|f| (f.clone(), out_dir.join(f.file_name().expect("file name"))))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::weights::{init_normal, state_dict};
    use rand::SeedableRng;

    fn tiny(device: &Device) -> ResnetGenerator {
        let mut g = ResnetGenerator::new(&GeneratorConfig { ngf: 4, blocks: 1 }, device);
        init_normal(&mut g, &mut rand_chacha::ChaCha8Rng::seed_from_u64(3));
        g
    }

    #[test]
    fn any_size_comes_back_the_same_size_and_batching_changes_nothing() {
        let device = Device::flex();
        let t = Translator::new(tiny(&device), &device);
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
            GeneratorConfig { ngf: 4, blocks: 1 }
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
            Translator::new(g, &device).translate(&[img])
        );
    }
}
