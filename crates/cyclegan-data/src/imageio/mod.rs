//! Decoding image files to 8-bit RGB, refusing what would hurt us (decompression bombs),
//! saying why a file cannot be used, and telling a partial (truncated) picture from a whole one.
//!
//! Two ways to decode:
//! - checked ([`decode_checked`], [`decode_rgb_checked`], [`decode_bytes_checked`]): a file that
//!   ends early but still decodes (a JPEG cut in half decodes with grey below the cut) comes
//!   back with [`Damage::Truncated`], so the caller can warn, skip, or refuse it (`--strict`);
//! - strict ([`decode_with_mode`], [`decode_bytes`]): such a file is the error
//!   [`DecodeError::Truncated`].
//!
//! [`decode`] and [`decode_rgb`] are the lenient forms: they return the partial picture and say
//! nothing (kept for callers that have no way to warn).
//!
//! Also here: colour modes and the conversion to RGB ([`color`]), and the listing of image
//! files in folders, recursively ([`listing`]).

mod color;
mod headers;
pub mod listing;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

pub use color::{ColorMode, color_mode, to_rgb, to_rgb_on};
pub use listing::{
    FolderScan, FoundImage, IMAGE_EXTENSIONS, find_images, is_image_path, list_images, scan_folder,
};

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
    #[error("{path}: not a supported image (jpg, png, webp, bmp, tiff, ppm): {why}")]
    Unsupported { path: PathBuf, why: String },
    /// The header declares a size we refuse to allocate.
    #[error("{path}: image too large ({width}x{height}); at most {max}x{max} is accepted", max = MAX_SIDE)]
    TooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
    },
    /// The file ends early (cut off in transfer or while being written): refused by the strict
    /// decoders, or too short for any picture at all.
    #[error(
        "{path}: partial image: {}; copy or download it again",
        Damage::Truncated
    )]
    Truncated { path: PathBuf },
    /// The data is damaged (corrupt).
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
            | DecodeError::Truncated { path }
            | DecodeError::Corrupt { path, .. } => path,
        }
    }
}

/// How a picture that did decode falls short of its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Damage {
    /// The file ends before its format's end marker: the picture was decoded from the part
    /// present, and the decoder filled in the rest (grey, for JPEG). PNG decoders need the end
    /// chunk, so a cut PNG is the error [`DecodeError::Truncated`] instead.
    Truncated,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Truncated => {
                f.write_str("the file ends early (truncated), part of the picture is missing")
            }
        }
    }
}

impl Damage {
    /// The strict decoders' error for a picture with this damage.
    pub fn into_error(self, path: &Path) -> DecodeError {
        match self {
            Damage::Truncated => DecodeError::Truncated {
                path: path.to_path_buf(),
            },
        }
    }
}

/// A decoded picture, as stored (any colour type, EXIF orientation applied), with how the file
/// stored its colours and any damage.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The picture.
    pub image: DynamicImage,
    /// How the file stored its colours.
    pub mode: ColorMode,
    /// `Some` when the picture is partial.
    pub damage: Option<Damage>,
}

impl Decoded {
    /// The picture and its mode if whole; the strict decoders' error if damaged.
    pub fn whole(self, path: &Path) -> Result<(DynamicImage, ColorMode), DecodeError> {
        match self.damage {
            None => Ok((self.image, self.mode)),
            Some(d) => Err(d.into_error(path)),
        }
    }
}

/// Run a decoder, turning a panic inside it (a bug in a codec crate, triggered by a damaged
/// file) into a [`DecodeError::Corrupt`] naming the file, without printing a panic message.
fn panic_safe<T>(
    path: &Path,
    f: impl FnOnce() -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    use std::cell::Cell;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    thread_local!(static QUIET: Cell<bool> = const { Cell::new(false) });
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info)
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    result.unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        Err(DecodeError::Corrupt {
            path: path.to_path_buf(),
            why: format!("the decoder failed on this file ({msg})"),
        })
    })
}

/// Decode a file, reporting a partial picture as [`Damage`] instead of hiding it.
pub fn decode_checked(path: &Path) -> Result<Decoded, DecodeError> {
    let io = |source| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Never open a FIFO or device: `read` would block on it.
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::other(
            "not a regular file (a folder, FIFO or device)",
        )));
    }
    if meta.len() == 0 {
        return Err(DecodeError::Empty {
            path: path.to_path_buf(),
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    decode_bytes_checked(path, &bytes)
}

/// [`decode_checked`] to 8-bit RGB (alpha composited on white, grey expanded, 16-bit reduced).
pub fn decode_rgb_checked(path: &Path) -> Result<(RgbImage, Option<Damage>), DecodeError> {
    let d = decode_checked(path)?;
    Ok((to_rgb(d.image), d.damage))
}

/// Decode a file as it is stored (any colour type), with its EXIF orientation applied.
/// Lenient: a partial picture is returned as if whole (see [`decode_checked`]).
pub fn decode(path: &Path) -> Result<DynamicImage, DecodeError> {
    decode_checked(path).map(|d| d.image)
}

/// Decode a file to 8-bit RGB (alpha composited on white, grey expanded, 16-bit reduced).
/// Lenient: a partial picture is returned as if whole (see [`decode_rgb_checked`]).
pub fn decode_rgb(path: &Path) -> Result<RgbImage, DecodeError> {
    Ok(to_rgb(decode(path)?))
}

/// Decode a file (any colour type, EXIF orientation applied) and tell how it stored its colours.
/// Strict: a file that ends early is refused ([`DecodeError::Truncated`]).
pub fn decode_with_mode(path: &Path) -> Result<(DynamicImage, ColorMode), DecodeError> {
    decode_checked(path)?.whole(path)
}

/// [`decode_with_mode`] on a file already in memory; `path` only names it in errors.
pub fn decode_bytes(path: &Path, bytes: &[u8]) -> Result<(DynamicImage, ColorMode), DecodeError> {
    decode_bytes_checked(path, bytes)?.whole(path)
}

/// [`decode_checked`] on a file already in memory; `path` only names it in errors.
pub fn decode_bytes_checked(path: &Path, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    panic_safe(path, || decode_bytes_unguarded(path, bytes))
}

fn decode_bytes_unguarded(path: &Path, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty {
            path: path.to_path_buf(),
        });
    }
    // Guess from content, not the extension: a PNG named .jpg is still a PNG.
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| DecodeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let Some(format) = reader.format() else {
        return Err(DecodeError::Unsupported {
            path: path.to_path_buf(),
            why: "unknown file signature".into(),
        });
    };
    let ends_early = headers::ends_early(format, bytes);
    let image = reader
        .into_decoder()
        .map_err(|e| classify(path, e))
        .and_then(|decoder| decode_within_limits(path, decoder))
        .map_err(|e| match e {
            // Whatever the decoder says, a file cut short failed because it was cut short.
            DecodeError::Corrupt { .. } | DecodeError::Io { .. } if ends_early => {
                DecodeError::Truncated {
                    path: path.to_path_buf(),
                }
            }
            e => e,
        })?;
    let mode = color_mode(bytes, &image);
    Ok(Decoded {
        image,
        mode,
        damage: ends_early.then_some(Damage::Truncated),
    })
}

/// Refuse oversized headers before allocating, decode under a memory limit, apply the EXIF
/// orientation, and refuse empty results. Shared by the file and in-memory decoders.
fn decode_within_limits(
    path: &Path,
    mut decoder: impl ImageDecoder,
) -> Result<DynamicImage, DecodeError> {
    let (width, height) = decoder.dimensions();
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) * 8 > MAX_ALLOC
    {
        return Err(DecodeError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
        });
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
        return Err(DecodeError::Corrupt {
            path: path.to_path_buf(),
            why: "zero width or height".into(),
        });
    }
    Ok(img)
}

fn classify(path: &Path, e: image::ImageError) -> DecodeError {
    use image::ImageError as E;
    let path = path.to_path_buf();
    match e {
        E::IoError(source) if source.kind() == std::io::ErrorKind::UnexpectedEof => {
            DecodeError::Truncated { path }
        }
        E::IoError(source) => DecodeError::Io { path, source },
        E::Unsupported(u) => DecodeError::Unsupported {
            path,
            why: u.to_string(),
        },
        E::Limits(l) => DecodeError::Corrupt {
            path,
            why: format!("over the decoder's memory limit: {l}"),
        },
        other => DecodeError::Corrupt {
            path,
            why: other.to_string(),
        },
    }
}
