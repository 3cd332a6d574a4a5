//! What the decoders do not tell: facts read from a file's bytes (PNG colour type, JPEG
//! components) and whether the file ends before its format's end marker.

/// PNG IHDR colour type (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA), if `bytes` is a PNG.
pub(super) fn png_color_type(bytes: &[u8]) -> Option<u8> {
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
pub(super) fn jpeg_components(bytes: &[u8]) -> Option<u8> {
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

/// True when a PNG stops before its `IEND` chunk: a chunk runs past the end of the file, or the
/// file ends between chunks. Data appended after `IEND` is fine.
fn png_truncated(bytes: &[u8]) -> bool {
    let mut i = 8; // after the signature
    loop {
        if i + 8 > bytes.len() {
            return true;
        }
        let len = u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let end = i
            .saturating_add(12)
            .saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
        if end > bytes.len() {
            return true;
        }
        if &bytes[i + 4..i + 8] == b"IEND" {
            return false;
        }
        i = end;
    }
}

/// True when a file of `format` ends before its end marker (JPEG `EOI`, PNG `IEND`), so any
/// picture decoded from it is partial. Other formats are judged by their decoders alone.
pub(super) fn ends_early(format: image::ImageFormat, bytes: &[u8]) -> bool {
    match format {
        image::ImageFormat::Jpeg => jpeg_truncated(bytes),
        image::ImageFormat::Png => png_truncated(bytes),
        _ => false,
    }
}
