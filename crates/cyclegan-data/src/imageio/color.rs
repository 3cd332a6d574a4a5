//! Colours: how a file stored them ([`ColorMode`], read from the decoded image and the file's
//! header) and the conversion of any decoded image to 8-bit RGB.

use image::{DynamicImage, RgbImage};

use super::headers::{jpeg_components, png_color_type};

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

/// Convert any decoded image to 8-bit RGB; transparent pixels are composited on white.
pub fn to_rgb(img: DynamicImage) -> RgbImage {
    to_rgb_on(img, [255; 3])
}
