//! Colour modes, damaged and truncated files, and every supported format.

use cyclegan_testkit::picture;
use image::{ImageEncoder, ImageFormat, Rgb, Rgba};

use super::*;

fn encode(img: &DynamicImage, fmt: ImageFormat) -> Vec<u8> {
    cyclegan_testkit::encode(img.clone(), fmt)
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
    let img = DynamicImage::ImageRgb8(picture(64, 64, 1));
    let full = encode(&img, image::ImageFormat::Jpeg);
    assert!(decode_bytes(Path::new("ok.jpg"), &full).is_ok());
    let cut = &full[..full.len() * 2 / 3];
    assert!(matches!(
        decode_bytes(Path::new("cut.jpg"), cut),
        Err(DecodeError::Truncated { .. })
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
        &DynamicImage::ImageRgb8(picture(64, 64, 2)),
        image::ImageFormat::Png,
    );
    let e = decode_bytes(p, &png_bytes[..png_bytes.len() / 2]).unwrap_err();
    assert!(matches!(e, DecodeError::Truncated { .. }), "{e:?}");
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

/// A JPEG cut in half decodes (grey below the cut) but is reported partial; the strict decoders
/// refuse it with a message naming the file; a whole file has no damage.
#[test]
fn truncated_jpeg_is_decoded_as_partial_and_refused_when_strict() {
    let t = tempfile::tempdir().unwrap();
    let full = cyclegan_testkit::encode(picture(64, 48, 3), ImageFormat::Jpeg);
    let whole = t.path().join("whole.jpg");
    std::fs::write(&whole, &full).unwrap();
    let (img, damage) = decode_rgb_checked(&whole).unwrap();
    assert_eq!((img.dimensions(), damage), ((64, 48), None));

    let cut = t.path().join("cut.jpg");
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
    let (img, damage) = decode_rgb_checked(&cut).unwrap();
    assert_eq!(damage, Some(Damage::Truncated));
    assert_eq!(img.dimensions(), (64, 48));
    // The lenient decoder still returns the partial picture.
    assert_eq!(decode_rgb(&cut).unwrap(), img);
    let e = decode_with_mode(&cut).unwrap_err();
    assert!(matches!(e, DecodeError::Truncated { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("cut.jpg") && msg.contains("partial") && msg.contains("ends early"),
        "{msg}"
    );
}

/// A PNG cut anywhere is never a silent whole picture nor "corrupt": either a partial picture
/// with [`Damage::Truncated`] (only the end chunk missing) or the distinct error `Truncated`
/// (cut inside the pixel data: PNG decoders cannot go on).
#[test]
fn truncated_png_is_told_apart_from_a_corrupt_one() {
    let full = cyclegan_testkit::encode(picture(40, 40, 4), ImageFormat::Png);
    let p = Path::new("shot.png");
    assert_eq!(decode_bytes_checked(p, &full).unwrap().damage, None);
    // The IEND chunk is the last 12 bytes.
    for keep in [full.len() - 12, full.len() - 1, full.len() / 2, 60, 34] {
        match decode_bytes_checked(p, &full[..keep]) {
            Ok(d) => assert_eq!(d.damage, Some(Damage::Truncated), "{keep}"),
            Err(e) => {
                assert!(matches!(e, DecodeError::Truncated { .. }), "{keep}: {e}");
                assert!(e.to_string().contains("shot.png"), "{e}");
            }
        }
        assert!(decode_bytes(p, &full[..keep]).is_err(), "{keep}");
    }
    let e = decode_bytes(p, &full[..full.len() / 2]).unwrap_err();
    assert!(matches!(e, DecodeError::Truncated { .. }), "{e}");
    // Data after the end chunk is not damage.
    let mut appended = full.clone();
    appended.extend_from_slice(b"trailing bytes");
    assert_eq!(decode_bytes_checked(p, &appended).unwrap().damage, None);
    // Flipped bytes inside the data, at full length, are corruption, not truncation.
    let mut flipped = full.clone();
    let mid = flipped.len() / 2;
    for b in &mut flipped[mid..mid + 8] {
        *b ^= 0x5A;
    }
    if let Err(e) = decode_bytes_checked(p, &flipped) {
        assert!(!matches!(e, DecodeError::Truncated { .. }), "{e:?}");
    }
}

/// The reference implementation's extensions: `.tif`, `.tiff` and `.ppm` are listed and decoded.
#[test]
fn tiff_and_ppm_are_images() {
    let t = tempfile::tempdir().unwrap();
    let img = picture(24, 16, 5);
    for (name, fmt) in [
        ("a.tif", ImageFormat::Tiff),
        ("b.tiff", ImageFormat::Tiff),
        ("c.ppm", ImageFormat::Pnm),
    ] {
        let p = t.path().join(name);
        std::fs::write(&p, cyclegan_testkit::encode(img.clone(), fmt)).unwrap();
        assert!(is_image_path(&p), "{name}");
        let (back, damage) = decode_rgb_checked(&p).unwrap();
        assert_eq!((back, damage), (img.clone(), None), "{name}");
    }
    assert_eq!(list_images(t.path()).unwrap().len(), 3);
}
