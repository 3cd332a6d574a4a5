//! Decoding image files to 8-bit RGB, refusing what would hurt us (decompression bombs) and
//! saying why a file cannot be used.

use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

/// File extensions (lower case) treated as images.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp"];

/// Largest width or height we agree to decode; larger headers are refused before allocating.
pub const MAX_SIDE: u32 = 16_384;
/// Largest decoded buffer we agree to allocate, in bytes.
pub const MAX_ALLOC: u64 = 1 << 30;

/// Why an image file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The file could not be opened or read.
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("{path}: empty file (0 bytes)")]
    Empty { path: PathBuf },
    /// The content is not an image format we decode.
    #[error("{path}: not a supported image (jpg, png, webp, bmp): {why}")]
    Unsupported { path: PathBuf, why: String },
    /// The header declares a size we refuse to allocate.
    #[error("{path}: image too large ({width}x{height}); at most {max}x{max} is accepted", max = MAX_SIDE)]
    TooLarge { path: PathBuf, width: u32, height: u32 },
    /// The data is damaged (truncated, corrupt).
    #[error("{path}: damaged image: {why}")]
    Corrupt { path: PathBuf, why: String },
}

impl DecodeError {
    /// The file the error concerns.
    pub fn path(&self) -> &Path {
        match self {
            DecodeError::Io { path, .. }
            | DecodeError::Empty { path }
            | DecodeError::Unsupported { path, .. }
            | DecodeError::TooLarge { path, .. }
            | DecodeError::Corrupt { path, .. } => path,
        }
    }
}

/// True when the path's extension is one of [`IMAGE_EXTENSIONS`].
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// Decode a file as it is stored (any colour type), with its EXIF orientation applied.
pub fn decode(path: &Path) -> Result<DynamicImage, DecodeError> {
    let io = |source| DecodeError::Io { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() == 0 {
        return Err(DecodeError::Empty { path: path.to_path_buf() });
    }
    // Guess from content, not the extension: a PNG named .jpg is still a PNG.
    let reader = ImageReader::open(path).map_err(io)?.with_guessed_format().map_err(io)?;
    if reader.format().is_none() {
        return Err(DecodeError::Unsupported { path: path.to_path_buf(), why: "unknown file signature".into() });
    }
    let mut decoder = reader.into_decoder().map_err(|e| classify(path, e))?;
    let (width, height) = decoder.dimensions();
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) * 8 > MAX_ALLOC {
        return Err(DecodeError::TooLarge { path: path.to_path_buf(), width, height });
    }
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_ALLOC);
    decoder.set_limits(limits).map_err(|e| classify(path, e))?;
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| classify(path, e))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    if img.width() == 0 || img.height() == 0 {
        return Err(DecodeError::Corrupt { path: path.to_path_buf(), why: "zero width or height".into() });
    }
    Ok(img)
}

/// Decode a file to 8-bit RGB (alpha composited on white, grey expanded, 16-bit reduced).
pub fn decode_rgb(path: &Path) -> Result<RgbImage, DecodeError> {
    Ok(to_rgb(decode(path)?))
}

/// Convert any decoded image to 8-bit RGB; transparent pixels are composited on white.
pub fn to_rgb(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.to_rgb8();
    }
    let rgba = img.to_rgba8();
    let mut out = RgbImage::new(rgba.width(), rgba.height());
    for (o, p) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(p[3]);
        for c in 0..3 {
            o[c] = ((u32::from(p[c]) * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

fn classify(path: &Path, e: image::ImageError) -> DecodeError {
    use image::ImageError as E;
    let path = path.to_path_buf();
    match e {
        E::IoError(source) => DecodeError::Io { path, source },
        E::Unsupported(u) => DecodeError::Unsupported { path, why: u.to_string() },
        E::Limits(l) => DecodeError::Corrupt { path, why: format!("over the decoder's memory limit: {l}") },
        other => DecodeError::Corrupt { path, why: other.to_string() },
    }
}

/// List the image files directly inside a folder, sorted by name (deterministic order).
pub fn list_images(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && is_image_path(p))
        .collect();
    files.sort();
    Ok(files)
}
