//! The unpaired training loader: `DATA_DIR/trainA` and `DATA_DIR/trainB`, resized, randomly
//! cropped and flipped, decoded ahead of time on worker threads.
//!
//! Every random choice (the order of each epoch, each crop and flip) is derived from the seed
//! and the position (epoch, iteration) alone, never from a running generator. So batch `i` of
//! epoch `e` is the same whichever thread decodes it, and a resumed run needs no loader state
//! beyond its position.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use image::RgbImage;
use image::imageops::{FilterType, crop_imm, flip_horizontal, resize};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::imageio::{self, DecodeError};

/// How training images are resized and cropped (`--preprocess`), with the names and meanings
/// of the PyTorch reference's `--preprocess`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preprocess {
    /// Squash to `load_size` x `load_size`, then a random `crop_size` square (the default).
    #[default]
    ResizeAndCrop,
    /// A random `crop_size` square of the image at its own size (images smaller than that are
    /// first scaled up to fit, keeping their shape).
    Crop,
    /// Width scaled to `load_size` and the height in proportion (to a multiple of 4, at least
    /// `crop_size`): whole images, of different sizes, so batches of one.
    ScaleWidth,
    /// `scale_width`, then a random `crop_size` square: the reference's advice for training on
    /// large images (translate them whole afterwards).
    ScaleWidthAndCrop,
    /// The image as it is, resized only to make its sides multiples of 4: batches of one.
    None,
}

impl Preprocess {
    /// Every mode, in the order `--help` lists them.
    pub const ALL: [Preprocess; 5] = [
        Preprocess::ResizeAndCrop,
        Preprocess::Crop,
        Preprocess::ScaleWidth,
        Preprocess::ScaleWidthAndCrop,
        Preprocess::None,
    ];

    /// The name on the command line and in `config.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Preprocess::ResizeAndCrop => "resize_and_crop",
            Preprocess::Crop => "crop",
            Preprocess::ScaleWidth => "scale_width",
            Preprocess::ScaleWidthAndCrop => "scale_width_and_crop",
            Preprocess::None => "none",
        }
    }

    /// Whether every image comes out `crop_size` square, so that images can share a batch.
    pub fn fixed_size(self) -> bool {
        !matches!(self, Preprocess::ScaleWidth | Preprocess::None)
    }

    /// The size an image of `(w, h)` pixels is resized to before the crop, or `None` to keep it.
    fn resized(self, (w, h): (u32, u32), load: u32, crop: u32) -> Option<(u32, u32)> {
        let to = match self {
            Preprocess::ResizeAndCrop => (load, load),
            Preprocess::Crop if w < crop || h < crop => {
                let scale = f64::from(crop) / f64::from(w.min(h));
                let up = |x: u32| ((f64::from(x) * scale).ceil() as u32).max(crop);
                (up(w), up(h))
            }
            Preprocess::Crop => (w, h),
            Preprocess::ScaleWidthAndCrop => {
                let height = (f64::from(load) * f64::from(h) / f64::from(w)) as u32;
                (load, height.max(crop))
            }
            // Whole images go through the generator, whose sides must be multiples of 4.
            Preprocess::ScaleWidth => {
                let height = (f64::from(load) * f64::from(h) / f64::from(w)) as u32;
                (load, multiple_of_4(height).max(crop))
            }
            Preprocess::None => (multiple_of_4(w), multiple_of_4(h)),
        };
        (to != (w, h)).then_some(to)
    }

    /// Whether a random `crop_size` square is taken after the resize.
    fn crops(self) -> bool {
        matches!(
            self,
            Preprocess::ResizeAndCrop | Preprocess::Crop | Preprocess::ScaleWidthAndCrop
        )
    }
}

/// The nearest multiple of 4 (at least 4).
fn multiple_of_4(x: u32) -> u32 {
    ((x + 2) / 4 * 4).max(4)
}

impl std::str::FromStr for Preprocess {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Preprocess::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Preprocess::ALL.iter().map(|p| p.name()).collect();
                format!("unknown preprocessing `{s}`; one of: {}", names.join(", "))
            })
    }
}

/// How images become training tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderConfig {
    /// How images are resized and cropped.
    pub preprocess: Preprocess,
    /// The size images are resized to (see [`Preprocess`]).
    pub load_size: u32,
    /// The side of the random square crop (see [`Preprocess`]).
    pub crop_size: u32,
    /// Then flip horizontally with probability 1/2.
    pub flip: bool,
    /// Domain B's image `i % len` goes with domain A's image `i`, both in file order
    /// (`--serial-batches`), instead of both in a shuffled order.
    pub serial: bool,
    /// Images per batch and domain.
    pub batch_size: usize,
    /// Decoding threads.
    pub workers: usize,
    /// Seed of the order, crops and flips.
    pub seed: u64,
}

/// Why a dataset cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// The folder is absent.
    #[error(
        "{0}: folder not found; a dataset needs trainA/ and trainB/ folders of images (see `cyclegan prepare`)"
    )]
    Missing(PathBuf),
    /// The folder cannot be listed.
    #[error("{path}: cannot list folder: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The folder has no image files.
    #[error(
        "{0}: no images (jpg, jpeg, png, webp, bmp, tif, tiff, ppm) in this folder or its subfolders"
    )]
    Empty(PathBuf),
    /// Fewer images than a batch.
    #[error("{path}: {count} images, fewer than --batch-size {batch}")]
    TooFew {
        path: PathBuf,
        count: usize,
        batch: usize,
    },
    /// No image of a domain could be decoded.
    #[error("{0}: none of the images in this folder could be decoded")]
    NothingDecodes(PathBuf),
}

/// The two image lists of an unpaired dataset.
#[derive(Debug, Clone)]
pub struct UnpairedDataset {
    /// Images of domain A, sorted by path inside the folder.
    pub a: Vec<PathBuf>,
    /// Images of domain B, sorted by path.
    pub b: Vec<PathBuf>,
    dirs: [PathBuf; 2],
}

impl UnpairedDataset {
    /// List `DATA_DIR/trainA` and `DATA_DIR/trainB` (subfolders included).
    pub fn open(data_dir: &Path) -> Result<Self, LoaderError> {
        Self::from_dirs(&data_dir.join("trainA"), &data_dir.join("trainB"))
    }

    /// List two folders of images, recursively (hidden files and links to folders skipped).
    pub fn from_dirs(a: &Path, b: &Path) -> Result<Self, LoaderError> {
        let list = |dir: &Path| -> Result<Vec<PathBuf>, LoaderError> {
            if !dir.is_dir() {
                return Err(LoaderError::Missing(dir.to_path_buf()));
            }
            let files: Vec<PathBuf> = imageio::find_images(dir)
                .map_err(|source| LoaderError::Unreadable {
                    path: dir.to_path_buf(),
                    source,
                })?
                .into_iter()
                .map(|f| f.path)
                .collect();
            if files.is_empty() {
                return Err(LoaderError::Empty(dir.to_path_buf()));
            }
            Ok(files)
        };
        Ok(UnpairedDataset {
            a: list(a)?,
            b: list(b)?,
            dirs: [a.to_path_buf(), b.to_path_buf()],
        })
    }

    /// Images per domain per epoch: the larger domain's size (the smaller one repeats).
    pub fn epoch_len(&self) -> usize {
        self.a.len().max(self.b.len())
    }

    /// Only the first `max` images of each domain, in file order (`--max-dataset-size`, as the
    /// reference); `None` keeps all.
    pub fn truncated(mut self, max: Option<usize>) -> Self {
        if let Some(max) = max {
            self.a.truncate(max.max(1));
            self.b.truncate(max.max(1));
        }
        self
    }

    /// Iterations in one epoch at `batch_size` (a last partial batch is dropped).
    pub fn iterations_per_epoch(&self, batch_size: usize) -> usize {
        self.epoch_len() / batch_size.max(1)
    }

    fn files(&self, domain: usize) -> &[PathBuf] {
        if domain == 0 { &self.a } else { &self.b }
    }
}

/// A batch of images as a row-major `[batch, 3, height, width]` array in [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct ImageBatch {
    /// Pixel values, channel-first per image.
    pub data: Vec<f32>,
    /// Images in the batch.
    pub batch: usize,
    /// Height of each image.
    pub height: usize,
    /// Width of each image.
    pub width: usize,
    /// The file each image came from.
    pub paths: Vec<PathBuf>,
}

/// One training batch of each domain and where it sits in the schedule.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Iteration within the epoch (0-based).
    pub index: usize,
    /// Domain A images.
    pub a: ImageBatch,
    /// Domain B images.
    pub b: ImageBatch,
}

/// Files that could not be decoded, or decoded only partly (truncated), and were replaced by the
/// next good file of their domain.
#[derive(Debug, Default, Clone)]
pub struct SkipLog {
    entries: Vec<(PathBuf, String)>,
}

impl SkipLog {
    /// Unreadable files seen so far, each with the reason (each file once).
    pub fn entries(&self) -> &[(PathBuf, String)] {
        &self.entries
    }
}

/// Background loader producing batches in schedule order from a start position on.
pub struct Loader {
    rx: Receiver<Result<Batch, LoaderError>>,
    skips: Arc<Mutex<SkipLog>>,
    _worker: JoinHandle<()>,
}

impl Loader {
    /// Start decoding from iteration `index` of `epoch`, running until dropped.
    pub fn start(
        dataset: Arc<UnpairedDataset>,
        config: LoaderConfig,
        epoch: usize,
        index: usize,
    ) -> Self {
        let workers = config.workers.max(1);
        let (tx, rx) = sync_channel(2 * workers);
        let skips = Arc::new(Mutex::new(SkipLog::default()));
        let log = skips.clone();
        let worker = std::thread::Builder::new()
            .name("cyclegan-loader".into())
            .spawn(move || produce(dataset, config, epoch, index, tx, log))
            .expect("spawn loader thread");
        Loader {
            rx,
            skips,
            _worker: worker,
        }
    }

    /// The next batch, in order. Blocks until decoded.
    pub fn next_batch(&self) -> Result<Batch, LoaderError> {
        self.rx
            .recv()
            .expect("loader thread alive while the loader exists")
    }

    /// Unreadable files met so far.
    pub fn skips(&self) -> SkipLog {
        self.skips.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn produce(
    dataset: Arc<UnpairedDataset>,
    config: LoaderConfig,
    mut epoch: usize,
    mut index: usize,
    tx: SyncSender<Result<Batch, LoaderError>>,
    skips: Arc<Mutex<SkipLog>>,
) {
    let workers = config.workers.max(1);
    let pool = match rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(|i| format!("cyclegan-decode-{i}"))
        .build()
    {
        Ok(p) => p,
        Err(_) => return,
    };
    let per_epoch = dataset.iterations_per_epoch(config.batch_size).max(1);
    loop {
        // A chunk of upcoming batches is decoded in parallel, then sent in order.
        let end = (index + 2 * workers).min(per_epoch);
        let orders = EpochOrder::new(&dataset, config.seed, epoch, config.serial);
        let batches: Vec<Result<Batch, LoaderError>> = pool.install(|| {
            (index..end)
                .into_par_iter()
                .map(|i| make_batch(&dataset, &config, &orders, epoch, i, &skips))
                .collect()
        });
        for b in batches {
            let failed = b.is_err();
            if tx.send(b).is_err() || failed {
                return;
            }
        }
        index = end;
        if index >= per_epoch {
            index = 0;
            epoch += 1;
        }
    }
}

/// The shuffled file order of both domains in one epoch.
struct EpochOrder {
    a: Vec<usize>,
    b: Vec<usize>,
}

impl EpochOrder {
    fn new(dataset: &UnpairedDataset, seed: u64, epoch: usize, serial: bool) -> Self {
        let n = dataset.epoch_len();
        let order = |domain: usize| {
            let len = dataset.files(domain).len();
            // The smaller domain repeats to fill the epoch, each copy in shuffled order.
            let mut v: Vec<usize> = (0..n).map(|i| i % len).collect();
            if !serial {
                v.shuffle(&mut rng_for(seed, &[epoch as u64, domain as u64, u64::MAX]));
            }
            v
        };
        EpochOrder {
            a: order(0),
            b: order(1),
        }
    }
}

/// A generator seeded from the run seed and a position, independent of any other draw.
pub fn rng_for(seed: u64, position: &[u64]) -> ChaCha8Rng {
    let mut h = splitmix(seed);
    for p in position {
        h = splitmix(h ^ splitmix(*p));
    }
    ChaCha8Rng::seed_from_u64(h)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}

fn make_batch(
    dataset: &UnpairedDataset,
    config: &LoaderConfig,
    orders: &EpochOrder,
    epoch: usize,
    index: usize,
    skips: &Mutex<SkipLog>,
) -> Result<Batch, LoaderError> {
    let domain_batch = |domain: usize| -> Result<ImageBatch, LoaderError> {
        let order = if domain == 0 { &orders.a } else { &orders.b };
        let mut out = ImageBatch {
            data: Vec::new(),
            batch: 0,
            height: 0,
            width: 0,
            paths: vec![],
        };
        for k in 0..config.batch_size {
            let slot = index * config.batch_size + k;
            let (path, img) = decode_or_next(dataset, domain, order[slot], skips)?;
            let mut rng = rng_for(config.seed, &[epoch as u64, slot as u64, domain as u64]);
            let img = augment(&img, config, &mut rng);
            // Modes without a crop give whole images of their own size: batches of one
            // (the config is checked for that), so the first image sets the shape.
            (out.width, out.height) = (img.width() as usize, img.height() as usize);
            push_chw(&img, &mut out.data);
            out.paths.push(path);
            out.batch += 1;
        }
        Ok(out)
    };
    Ok(Batch {
        epoch,
        index,
        a: domain_batch(0)?,
        b: domain_batch(1)?,
    })
}

/// Decode file `start` of a domain; if it is unreadable or partial (a truncated file would
/// teach the networks its grey fill), log it and take the next one.
fn decode_or_next(
    dataset: &UnpairedDataset,
    domain: usize,
    start: usize,
    skips: &Mutex<SkipLog>,
) -> Result<(PathBuf, RgbImage), LoaderError> {
    let files = dataset.files(domain);
    for step in 0..files.len() {
        let path = &files[(start + step) % files.len()];
        match imageio::decode_rgb_checked(path) {
            Ok((img, None)) => return Ok((path.clone(), img)),
            Ok((_, Some(damage))) => note_skip(skips, path, &damage.into_error(path)),
            Err(e) => note_skip(skips, path, &e),
        }
    }
    Err(LoaderError::NothingDecodes(dataset.dirs[domain].clone()))
}

fn note_skip(skips: &Mutex<SkipLog>, path: &Path, e: &DecodeError) {
    if let Ok(mut log) = skips.lock()
        && !log.entries.iter().any(|(p, _)| p == path)
    {
        eprintln!("warning: skipping {e}");
        log.entries.push((path.to_path_buf(), e.to_string()));
    }
}

/// The reference's preprocessing ([`Preprocess`]), then a random flip.
pub fn augment(img: &RgbImage, config: &LoaderConfig, rng: &mut impl Rng) -> RgbImage {
    let (l, c) = (config.load_size, config.crop_size);
    let resized = match config.preprocess.resized(img.dimensions(), l, c) {
        Some((w, h)) => resize(img, w, h, FilterType::CatmullRom),
        None => img.clone(),
    };
    let cropped = if config.preprocess.crops() {
        let (w, h) = resized.dimensions();
        let x = rng.random_range(0..=w - c);
        let y = rng.random_range(0..=h - c);
        crop_imm(&resized, x, y, c, c).to_image()
    } else {
        resized
    };
    let flip = config.flip && rng.random::<f64>() < 0.5;
    if flip {
        flip_horizontal(&cropped)
    } else {
        cropped
    }
}

/// Append an image as channel-first floats in [-1, 1].
pub fn push_chw(img: &RgbImage, out: &mut Vec<f32>) {
    for c in 0..3 {
        out.extend(img.pixels().map(|p| f32::from(p[c]) / 127.5 - 1.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cyclegan_testkit::{encode, picture, write_pictures};
    use image::Rgb;

    /// `n` pictures of 40x40 in `dir/name`; returns the folder.
    fn write_set(dir: &Path, name: &str, n: usize, seed: u64) -> PathBuf {
        let d = dir.join(name);
        write_pictures(&d, "p", n, 40, seed);
        d
    }

    fn config() -> LoaderConfig {
        LoaderConfig {
            preprocess: Preprocess::ResizeAndCrop,
            load_size: 36,
            crop_size: 32,
            flip: true,
            serial: false,
            batch_size: 1,
            workers: 2,
            seed: 7,
        }
    }

    #[test]
    fn missing_and_empty_folders_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let err = UnpairedDataset::open(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("trainA") && err.contains("not found"), "{err}");
        std::fs::create_dir_all(tmp.path().join("trainA")).unwrap();
        std::fs::create_dir_all(tmp.path().join("trainB")).unwrap();
        let err = UnpairedDataset::open(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("trainA") && err.contains("no images"), "{err}");
    }

    #[test]
    fn epoch_covers_the_larger_domain_and_is_reproducible() {
        let tmp = tempfile::tempdir().unwrap();
        write_set(tmp.path(), "trainA", 3, 1);
        write_set(tmp.path(), "trainB", 5, 2);
        let ds = Arc::new(UnpairedDataset::open(tmp.path()).unwrap());
        assert_eq!(ds.iterations_per_epoch(1), 5);
        let run = |epoch, index| {
            let loader = Loader::start(ds.clone(), config(), epoch, index);
            (0..7)
                .map(|_| loader.next_batch().unwrap())
                .collect::<Vec<_>>()
        };
        let first = run(0, 0);
        // Every B image once per epoch; A repeats to fill it.
        let mut b: Vec<_> = first[..5].iter().map(|x| x.b.paths[0].clone()).collect();
        b.sort();
        b.dedup();
        assert_eq!(b.len(), 5);
        assert_eq!((first[5].epoch, first[5].index), (1, 0));
        // Values in [-1, 1], the right shape, each domain's images from its own folder.
        let a = &first[0].a;
        assert_eq!(a.data.len(), 3 * 32 * 32);
        assert!(a.data.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert!(first.iter().all(|x| ds.a.contains(&x.a.paths[0])));
        assert!(first.iter().all(|x| ds.b.contains(&x.b.paths[0])));
        // Starting mid-way gives exactly the batches of the uninterrupted order.
        let resumed = run(0, 3);
        for (x, y) in first[3..].iter().zip(&resumed) {
            assert_eq!((x.epoch, x.index), (y.epoch, y.index));
            assert_eq!(x.a, y.a);
            assert_eq!(x.b, y.b);
        }
        // Another seed gives another order or other crops.
        let other = Loader::start(
            ds.clone(),
            LoaderConfig {
                seed: 8,
                ..config()
            },
            0,
            0,
        );
        let diff = (0..5).any(|i| other.next_batch().unwrap().a != first[i].a);
        assert!(diff);
    }

    #[test]
    fn unreadable_files_are_skipped_and_logged() {
        let tmp = tempfile::tempdir().unwrap();
        let a = write_set(tmp.path(), "trainA", 2, 1);
        write_set(tmp.path(), "trainB", 2, 2);
        std::fs::write(a.join("broken.jpg"), b"not a jpeg").unwrap();
        std::fs::write(a.join("empty.png"), b"").unwrap();
        let ds = Arc::new(UnpairedDataset::open(tmp.path()).unwrap());
        assert_eq!(ds.a.len(), 4);
        let loader = Loader::start(ds, config(), 0, 0);
        for _ in 0..8 {
            let b = loader.next_batch().unwrap();
            assert!(!b.a.paths[0].to_string_lossy().contains("broken"));
        }
        let skips = loader.skips();
        assert_eq!(skips.entries().len(), 2, "{:?}", skips.entries());
    }

    #[test]
    fn pixels_become_channel_first_floats_in_minus_one_to_one() {
        let img = RgbImage::from_fn(2, 1, |x, _| {
            if x == 0 {
                Rgb([0, 255, 51])
            } else {
                Rgb([255, 0, 102])
            }
        });
        let mut out = Vec::new();
        push_chw(&img, &mut out);
        let want = [-1.0, 1.0, 1.0, -1.0, -0.6, -0.2];
        assert!(
            out.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
            "{out:?}"
        );
    }

    #[test]
    fn images_in_subfolders_are_found_in_every_supported_format() {
        let tmp = tempfile::tempdir().unwrap();
        let a = write_set(tmp.path(), "trainA", 1, 1);
        std::fs::create_dir_all(a.join("night/2024")).unwrap();
        for (name, fmt) in [
            ("night/x.tif", image::ImageFormat::Tiff),
            ("night/2024/y.ppm", image::ImageFormat::Pnm),
            ("night/2024/z.TIFF", image::ImageFormat::Tiff),
        ] {
            std::fs::write(a.join(name), encode(picture(40, 40, 9), fmt)).unwrap();
        }
        write_set(tmp.path(), "trainB", 2, 2);
        let ds = Arc::new(UnpairedDataset::open(tmp.path()).unwrap());
        let rel: Vec<PathBuf> =
            ds.a.iter()
                .map(|p| p.strip_prefix(&a).unwrap().to_path_buf())
                .collect();
        let want = [
            "night/2024/y.ppm",
            "night/2024/z.TIFF",
            "night/x.tif",
            "p_00.png",
        ];
        assert_eq!(rel, want.map(PathBuf::from));
        // All of them decode: an epoch of 4 batches uses each A file once, none skipped.
        let loader = Loader::start(ds.clone(), config(), 0, 0);
        let mut seen: Vec<PathBuf> = (0..4)
            .map(|_| loader.next_batch().unwrap().a.paths[0].clone())
            .collect();
        seen.sort();
        assert_eq!(seen, ds.a);
        assert!(loader.skips().entries().is_empty());
    }

    #[test]
    fn truncated_images_are_skipped_with_a_listed_warning() {
        let tmp = tempfile::tempdir().unwrap();
        let a = write_set(tmp.path(), "trainA", 2, 1);
        write_set(tmp.path(), "trainB", 2, 2);
        let jpg = encode(picture(40, 40, 5), image::ImageFormat::Jpeg);
        std::fs::write(a.join("cut.jpg"), &jpg[..jpg.len() / 2]).unwrap();
        let png = encode(picture(40, 40, 6), image::ImageFormat::Png);
        std::fs::write(a.join("cut.png"), &png[..png.len() / 2]).unwrap();
        let ds = Arc::new(UnpairedDataset::open(tmp.path()).unwrap());
        assert_eq!(ds.a.len(), 4);
        let loader = Loader::start(ds, config(), 0, 0);
        for _ in 0..8 {
            let b = loader.next_batch().unwrap();
            assert!(!b.a.paths[0].to_string_lossy().contains("cut"));
        }
        let skips = loader.skips();
        let mut names: Vec<String> = skips
            .entries()
            .iter()
            .map(|(p, why)| {
                assert!(
                    why.contains("partial image") && why.contains("ends early"),
                    "{why}"
                );
                p.file_name().unwrap().to_string_lossy().into_owned()
            })
            .collect();
        names.sort();
        assert_eq!(names, ["cut.jpg", "cut.png"]);
    }

    #[test]
    fn augment_crops_and_flips() {
        let img = RgbImage::from_fn(36, 36, |x, y| Rgb([x as u8, y as u8, 0]));
        let cfg = LoaderConfig {
            load_size: 36,
            crop_size: 32,
            flip: true,
            ..config()
        };
        let mut seen_flip = false;
        for s in 0..20 {
            let out = augment(&img, &cfg, &mut rng_for(s, &[]));
            assert_eq!(out.dimensions(), (32, 32));
            seen_flip |= out.get_pixel(0, 0)[0] > out.get_pixel(31, 0)[0];
        }
        assert!(seen_flip);
        let no_flip = LoaderConfig { flip: false, ..cfg };
        for s in 0..20 {
            let out = augment(&img, &no_flip, &mut rng_for(s, &[]));
            assert!(out.get_pixel(0, 0)[0] < out.get_pixel(31, 0)[0]);
        }
    }

    /// Each `--preprocess` mode gives the reference's sizes for a 100x50 picture (load 64,
    /// crop 32), and the crops stay inside the picture.
    #[test]
    fn preprocess_modes_give_the_reference_sizes() {
        let img = RgbImage::from_fn(100, 50, |x, y| Rgb([x as u8, y as u8, 7]));
        let cases = [
            (Preprocess::ResizeAndCrop, (32, 32)),
            (Preprocess::Crop, (32, 32)),
            // Width to 64, height 64 * 50 / 100 = 32.
            (Preprocess::ScaleWidth, (64, 32)),
            (Preprocess::ScaleWidthAndCrop, (32, 32)),
            // 100x50 to multiples of 4: 100x52.
            (Preprocess::None, (100, 52)),
        ];
        for (preprocess, size) in cases {
            let cfg = LoaderConfig {
                preprocess,
                load_size: 64,
                crop_size: 32,
                flip: false,
                ..config()
            };
            let out = augment(&img, &cfg, &mut rng_for(3, &[]));
            assert_eq!(out.dimensions(), size, "{}", preprocess.name());
            assert_eq!(preprocess.fixed_size(), size == (32, 32));
            assert_eq!(preprocess.name().parse::<Preprocess>(), Ok(preprocess));
        }
        // `crop` keeps the original scale: the pixel values are the picture's own coordinates.
        let cfg = LoaderConfig {
            preprocess: Preprocess::Crop,
            load_size: 64,
            crop_size: 32,
            flip: false,
            ..config()
        };
        let out = augment(&img, &cfg, &mut rng_for(4, &[]));
        let (x0, y0) = (out.get_pixel(0, 0)[0], out.get_pixel(0, 0)[1]);
        assert_eq!(out.get_pixel(31, 31).0, [x0 + 31, y0 + 31, 7]);
        // A picture smaller than the crop is scaled up to fit, keeping its shape.
        let small = RgbImage::new(20, 10);
        assert_eq!(
            augment(&small, &cfg, &mut rng_for(5, &[])).dimensions(),
            (32, 32)
        );
        let scaled = LoaderConfig {
            preprocess: Preprocess::ScaleWidth,
            ..cfg
        };
        // Heights never fall below the crop size.
        assert_eq!(
            augment(&RgbImage::new(200, 20), &scaled, &mut rng_for(6, &[])).dimensions(),
            (64, 32)
        );
        assert!(
            "resize"
                .parse::<Preprocess>()
                .unwrap_err()
                .contains("scale_width_and_crop")
        );
    }

    /// `--serial-batches` pairs A's image i with B's image i % len, in file order;
    /// `--max-dataset-size` keeps the first files of each domain.
    #[test]
    fn serial_batches_and_max_dataset_size() {
        let tmp = tempfile::tempdir().unwrap();
        let a = write_set(tmp.path(), "trainA", 5, 1);
        let b = write_set(tmp.path(), "trainB", 3, 2);
        let dataset = UnpairedDataset::from_dirs(&a, &b).unwrap();
        let cfg = LoaderConfig {
            serial: true,
            ..config()
        };
        let loader = Loader::start(Arc::new(dataset.clone()), cfg.clone(), 0, 0);
        for i in 0..5 {
            let batch = loader.next_batch().unwrap();
            assert_eq!(batch.a.paths[0], dataset.a[i]);
            assert_eq!(batch.b.paths[0], dataset.b[i % 3]);
        }
        let small = dataset.clone().truncated(Some(2));
        assert_eq!((small.a.len(), small.b.len()), (2, 2));
        assert_eq!(small.a[..], dataset.a[..2]);
        assert_eq!(dataset.clone().truncated(None).a.len(), 5);
    }
}
