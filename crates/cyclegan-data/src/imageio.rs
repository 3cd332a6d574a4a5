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
    TooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
    },
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

/// Decode a file as it is stored (any colour type), with its EXIF orientation applied.
pub fn decode(path: &Path) -> Result<DynamicImage, DecodeError> {
    panic_safe(path, || decode_unguarded(path))
}

fn decode_unguarded(path: &Path) -> Result<DynamicImage, DecodeError> {
    let io = |source| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() == 0 {
        return Err(DecodeError::Empty {
            path: path.to_path_buf(),
        });
    }
    // Guess from content, not the extension: a PNG named .jpg is still a PNG.
    let reader = ImageReader::open(path)
        .map_err(io)?
        .with_guessed_format()
        .map_err(io)?;
    if reader.format().is_none() {
        return Err(DecodeError::Unsupported {
            path: path.to_path_buf(),
            why: "unknown file signature".into(),
        });
    }
    let decoder = reader.into_decoder().map_err(|e| classify(path, e))?;
    decode_within_limits(path, decoder)
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

/// Extensions (lower case) `prepare` also accepts as still images: its output is re-encoded, so
/// inputs need not be in a format the training loader reads.
pub const EXTRA_INPUT_EXTENSIONS: &[&str] = &["tif", "tiff"];

/// How a file stored its colours, as far as a dataset cares. Everything but [`ColorMode::Rgb8`]
/// is converted to 8-bit RGB (or dropped, as the user chooses).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum ColorMode {
    /// 8-bit RGB (JPEG's YCbCr included).
    Rgb8,
    /// 16-bit RGB.
    Rgb16,
    /// 8-bit grey.
    Gray8,
    /// 16-bit grey.
    Gray16,
    /// Grey with alpha (any depth).
    GrayAlpha,
    /// 8-bit RGBA.
    Rgba8,
    /// 16-bit RGBA.
    Rgba16,
    /// Palette (indexed colour) PNG, without transparency.
    Palette,
    /// Palette PNG with a transparent entry.
    PaletteAlpha,
    /// CMYK (or YCCK) JPEG.
    Cmyk,
    /// Floating-point samples.
    Float,
}

impl ColorMode {
    /// True for plain 8-bit RGB, the only mode used as it is.
    pub fn is_plain_rgb(self) -> bool {
        self == ColorMode::Rgb8
    }

    /// Short human name, e.g. `"grey 8-bit"`.
    pub fn name(self) -> &'static str {
        match self {
            ColorMode::Rgb8 => "RGB 8-bit",
            ColorMode::Rgb16 => "RGB 16-bit",
            ColorMode::Gray8 => "grey 8-bit",
            ColorMode::Gray16 => "grey 16-bit",
            ColorMode::GrayAlpha => "grey+alpha",
            ColorMode::Rgba8 => "RGBA 8-bit",
            ColorMode::Rgba16 => "RGBA 16-bit",
            ColorMode::Palette => "palette",
            ColorMode::PaletteAlpha => "palette+alpha",
            ColorMode::Cmyk => "CMYK",
            ColorMode::Float => "float",
        }
    }
}

impl std::fmt::Display for ColorMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The colour mode of a decoded image, refined by the file's header (palette PNGs and CMYK
/// JPEGs decode to RGB, so only the header tells them apart).
pub fn color_mode(bytes: &[u8], img: &DynamicImage) -> ColorMode {
    use image::ColorType as C;
    if png_color_type(bytes) == Some(3) {
        return if img.color().has_alpha() {
            ColorMode::PaletteAlpha
        } else {
            ColorMode::Palette
        };
    }
    if jpeg_components(bytes) == Some(4) {
        return ColorMode::Cmyk;
    }
    match img.color() {
        C::Rgb8 => ColorMode::Rgb8,
        C::Rgb16 => ColorMode::Rgb16,
        C::L8 => ColorMode::Gray8,
        C::L16 => ColorMode::Gray16,
        C::La8 | C::La16 => ColorMode::GrayAlpha,
        C::Rgba8 => ColorMode::Rgba8,
        C::Rgba16 => ColorMode::Rgba16,
        _ => ColorMode::Float,
    }
}

/// PNG IHDR colour type (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA), if `bytes` is a PNG.
fn png_color_type(bytes: &[u8]) -> Option<u8> {
    (bytes.len() > 25 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR")
        .then(|| bytes[25])
}

/// Walk a JPEG's marker segments up to the first start-of-scan; calls `f(marker, segment)`.
/// Returns the offset just past the first SOS header, if the walk got there.
fn jpeg_segments(bytes: &[u8], mut f: impl FnMut(u8, &[u8])) -> Option<usize> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut i = 2;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            i += 2;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        let end = (i + 2 + len).min(bytes.len());
        f(marker, &bytes[(i + 4).min(end)..end]);
        if marker == 0xDA {
            return Some(end);
        }
        i = i + 2 + len;
    }
    None
}

/// Number of colour components of a JPEG's frame header (1 grey, 3 YCbCr, 4 CMYK/YCCK).
fn jpeg_components(bytes: &[u8]) -> Option<u8> {
    let mut n = None;
    jpeg_segments(bytes, |marker, seg| {
        // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
        if n.is_none()
            && (0xC0..=0xCF).contains(&marker)
            && ![0xC4, 0xC8, 0xCC].contains(&marker)
            && seg.len() >= 6
        {
            n = Some(seg[5]);
        }
    });
    n
}

/// True when a JPEG stops before its end-of-image marker (cut off in transfer). Decoders fill
/// the missing part with grey rather than fail, so this is checked separately. Data appended
/// after a complete image (motion photos) is fine.
fn jpeg_truncated(bytes: &[u8]) -> bool {
    match jpeg_segments(bytes, |_, _| {}) {
        // Entropy-coded data never contains FF D9 (0xFF is always followed by 00 or a marker).
        Some(scan) => !bytes[scan..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => true,
    }
}

/// Decode a file (any colour type, EXIF orientation applied) and tell how it stored its colours.
///
/// Stricter than [`decode`]: a JPEG cut off before its end is refused as damaged instead of
/// being returned half grey.
pub fn decode_with_mode(path: &Path) -> Result<(DynamicImage, ColorMode), DecodeError> {
    let bytes = std::fs::read(path).map_err(|source| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_bytes(path, &bytes)
}

/// [`decode_with_mode`] on a file already in memory; `path` only names it in errors.
pub fn decode_bytes(path: &Path, bytes: &[u8]) -> Result<(DynamicImage, ColorMode), DecodeError> {
    panic_safe(path, || decode_bytes_unguarded(path, bytes))
}

fn decode_bytes_unguarded(
    path: &Path,
    bytes: &[u8],
) -> Result<(DynamicImage, ColorMode), DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty {
            path: path.to_path_buf(),
        });
    }
    let io = |source| DecodeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(io)?;
    match reader.format() {
        None => {
            return Err(DecodeError::Unsupported {
                path: path.to_path_buf(),
                why: "unknown file signature".into(),
            });
        }
        Some(image::ImageFormat::Jpeg) if jpeg_truncated(bytes) => {
            return Err(DecodeError::Corrupt {
                path: path.to_path_buf(),
                why: "truncated JPEG (no end-of-image marker)".into(),
            });
        }
        Some(_) => {}
    }
    let decoder = reader.into_decoder().map_err(|e| classify(path, e))?;
    let img = decode_within_limits(path, decoder)?;
    let mode = color_mode(bytes, &img);
    Ok((img, mode))
}

/// Convert any decoded image to 8-bit RGB, compositing transparency on `background`.
pub fn to_rgb_on(img: DynamicImage, background: [u8; 3]) -> RgbImage {
    if !img.color().has_alpha() {
        return img.to_rgb8();
    }
    let rgba = img.to_rgba8();
    let mut out = RgbImage::new(rgba.width(), rgba.height());
    for (o, p) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(p[3]);
        for c in 0..3 {
            o[c] = ((u32::from(p[c]) * a + u32::from(background[c]) * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

#[cfg(test)]
mod mode_tests {
    use super::*;
    use image::{ImageEncoder, Rgb, Rgba};

    fn encode(img: &DynamicImage, fmt: image::ImageFormat) -> Vec<u8> {
        let mut buf = std::io::Cursor::new(Vec::new());
        img.write_to(&mut buf, fmt).unwrap();
        buf.into_inner()
    }

    fn mode_of(bytes: &[u8]) -> ColorMode {
        decode_bytes(Path::new("x"), bytes).unwrap().1
    }

    #[test]
    fn modes_are_told_apart() {
        let rgb = DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 8, Rgb([10, 200, 30])));
        assert_eq!(
            mode_of(&encode(&rgb, image::ImageFormat::Png)),
            ColorMode::Rgb8
        );
        assert_eq!(
            mode_of(&encode(&rgb, image::ImageFormat::Jpeg)),
            ColorMode::Rgb8
        );
        let grey = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(8, 8, image::Luma([90])));
        assert_eq!(
            mode_of(&encode(&grey, image::ImageFormat::Png)),
            ColorMode::Gray8
        );
        assert_eq!(
            mode_of(&encode(&grey, image::ImageFormat::Jpeg)),
            ColorMode::Gray8
        );
        let g16 = DynamicImage::ImageLuma16(image::ImageBuffer::from_pixel(
            8,
            8,
            image::Luma([40000u16]),
        ));
        assert_eq!(
            mode_of(&encode(&g16, image::ImageFormat::Png)),
            ColorMode::Gray16
        );
        let rgb16 = DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(
            8,
            8,
            Rgb([65535u16, 0, 32768]),
        ));
        assert_eq!(
            mode_of(&encode(&rgb16, image::ImageFormat::Png)),
            ColorMode::Rgb16
        );
        let la = DynamicImage::ImageLumaA8(image::ImageBuffer::from_pixel(
            8,
            8,
            image::LumaA([90u8, 128]),
        ));
        assert_eq!(
            mode_of(&encode(&la, image::ImageFormat::Png)),
            ColorMode::GrayAlpha
        );
        let rgba = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(8, 8, Rgba([1, 2, 3, 0])));
        assert_eq!(
            mode_of(&encode(&rgba, image::ImageFormat::Png)),
            ColorMode::Rgba8
        );
    }

    #[test]
    fn transparency_is_composited_on_the_background() {
        let img = DynamicImage::ImageRgba8(image::RgbaImage::from_fn(2, 1, |x, _| {
            if x == 0 {
                Rgba([0, 0, 0, 0])
            } else {
                Rgba([200, 100, 50, 255])
            }
        }));
        let out = to_rgb_on(img, [0, 255, 0]);
        assert_eq!(out.get_pixel(0, 0), &Rgb([0, 255, 0]));
        assert_eq!(out.get_pixel(1, 0), &Rgb([200, 100, 50]));
    }

    #[test]
    fn palette_png_is_recognised() {
        let mut buf = Vec::new();
        let mut enc = png::Encoder::new(&mut buf, 4, 2);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_palette(vec![255, 0, 0, 0, 0, 255]);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&[0, 1, 0, 1, 1, 0, 1, 0]).unwrap();
        w.finish().unwrap();
        let (img, mode) = decode_bytes(Path::new("p.png"), &buf).unwrap();
        assert_eq!(mode, ColorMode::Palette);
        assert_eq!(to_rgb_on(img, [255; 3]).get_pixel(1, 0), &Rgb([0, 0, 255]));
    }

    #[test]
    fn cmyk_jpeg_is_recognised_and_converted() {
        // Pure cyan in CMYK (Adobe JPEGs store CMYK inverted; the encoder handles that).
        let data: Vec<u8> = (0..16 * 16).flat_map(|_| [255u8, 0, 0, 0]).collect();
        let mut buf = Vec::new();
        jpeg_encoder::Encoder::new(&mut buf, 95)
            .encode(&data, 16, 16, jpeg_encoder::ColorType::Cmyk)
            .unwrap();
        let (img, mode) = decode_bytes(Path::new("c.jpg"), &buf).unwrap();
        assert_eq!(mode, ColorMode::Cmyk);
        let px = to_rgb_on(img, [255; 3]).get_pixel(8, 8).0;
        // Cyan: little red, lots of green and blue (the exact values depend on the conversion).
        assert!(px[0] < 60 && px[1] > 180 && px[2] > 180, "{px:?}");
    }

    #[test]
    fn truncated_jpeg_is_refused_but_appended_data_is_fine() {
        let img = DynamicImage::ImageRgb8(crate::hash::tests::picture(64, 64, 1));
        let full = encode(&img, image::ImageFormat::Jpeg);
        assert!(decode_bytes(Path::new("ok.jpg"), &full).is_ok());
        let cut = &full[..full.len() * 2 / 3];
        assert!(matches!(
            decode_bytes(Path::new("cut.jpg"), cut),
            Err(DecodeError::Corrupt { .. })
        ));
        let mut motion = full.clone();
        motion.extend_from_slice(b"\0\0\0\x18ftypmp42 appended video");
        assert!(decode_bytes(Path::new("motion.jpg"), &motion).is_ok());
    }

    #[test]
    fn broken_files_are_named_errors() {
        let p = Path::new("b");
        assert!(matches!(
            decode_bytes(p, b""),
            Err(DecodeError::Empty { .. })
        ));
        assert!(matches!(
            decode_bytes(p, b"hello, I am text"),
            Err(DecodeError::Unsupported { .. })
        ));
        let png_bytes = encode(
            &DynamicImage::ImageRgb8(crate::hash::tests::picture(64, 64, 2)),
            image::ImageFormat::Png,
        );
        let e = decode_bytes(p, &png_bytes[..png_bytes.len() / 2]).unwrap_err();
        assert!(
            matches!(e, DecodeError::Corrupt { .. } | DecodeError::Io { .. }),
            "{e:?}"
        );
        // A declared size we refuse to allocate: a 20000x20000 PNG header.
        let mut big = Vec::new();
        image::codecs::png::PngEncoder::new(&mut big)
            .write_image(&[0; 3], 1, 1, image::ExtendedColorType::Rgb8)
            .unwrap();
        big[16..20].copy_from_slice(&20000u32.to_be_bytes());
        big[20..24].copy_from_slice(&20000u32.to_be_bytes());
        let e = decode_bytes(p, &big).unwrap_err();
        assert!(
            matches!(
                e,
                DecodeError::TooLarge { .. } | DecodeError::Corrupt { .. }
            ),
            "{e:?}"
        );
    }
}
