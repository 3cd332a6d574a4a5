//! The small-video maker: MP4 through the project's writer, animated GIF and APNG through
//! independent encoders (so readers are not only tested against our own writer).

use std::path::Path;

use image::{Delay, DynamicImage, RgbImage};

/// Write a clip of `times.len()` frames shown at `times` (seconds, increasing, first 0) to
/// `path`; `frame(i)` draws frame `i` (all the same size). The format follows the extension:
/// `.gif` an animated GIF (times rounded to 10 ms), `.png`/`.apng` an APNG (times in ms),
/// anything else what `cyclegan_video::create` writes for it (`.mp4`: H.264). The last frame
/// lasts as long as the interval before it (0.1 s for a single frame).
pub fn write_video(path: &Path, times: &[f64], frame: impl Fn(usize) -> RgbImage) {
    assert!(!times.is_empty(), "a clip needs at least one frame");
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "gif" => write_gif(path, &durations_ms(times), frame),
        "png" | "apng" => write_apng(path, &durations_ms(times), frame),
        _ => write_native(path, times, frame),
    }
}

/// How long each frame is shown, in whole milliseconds.
fn durations_ms(times: &[f64]) -> Vec<u32> {
    let mut d: Vec<u32> = times
        .windows(2)
        .map(|w| ((w[1] - w[0]) * 1000.0).round() as u32)
        .collect();
    d.push(d.last().copied().unwrap_or(100));
    d
}

fn write_gif(path: &Path, durations_ms: &[u32], frame: impl Fn(usize) -> RgbImage) {
    let file = std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut enc = image::codecs::gif::GifEncoder::new(std::io::BufWriter::new(file));
    let frames = durations_ms.iter().enumerate().map(|(i, &ms)| {
        let rgba = DynamicImage::ImageRgb8(frame(i)).to_rgba8();
        image::Frame::from_parts(rgba, 0, 0, Delay::from_numer_denom_ms(ms, 1))
    });
    enc.encode_frames(frames)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn write_apng(path: &Path, durations_ms: &[u32], frame: impl Fn(usize) -> RgbImage) {
    let first = frame(0);
    let file = std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), first.width(), first.height());
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_animated(durations_ms.len() as u32, 0).unwrap();
    let mut w = enc.write_header().unwrap();
    for (i, &ms) in durations_ms.iter().enumerate() {
        let ms = u16::try_from(ms).expect("APNG frame delays fit in 65 s");
        w.set_frame_delay(ms, 1000).unwrap();
        let img = if i == 0 { first.clone() } else { frame(i) };
        w.write_image_data(img.as_raw()).unwrap();
    }
    w.finish().unwrap();
}

fn write_native(path: &Path, times: &[f64], frame: impl Fn(usize) -> RgbImage) {
    let first = frame(0);
    let mut sink = cyclegan_video::create(path, first.width(), first.height())
        .unwrap_or_else(|e| panic!("{e}"));
    for (i, &time) in times.iter().enumerate() {
        let image = if i == 0 { first.clone() } else { frame(i) };
        sink.write(&cyclegan_video::Frame {
            image,
            time,
            duration: None,
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }
    sink.finish().unwrap_or_else(|e| panic!("{e}"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::picture;

    fn read_back(path: &Path) -> Vec<cyclegan_video::Frame> {
        cyclegan_video::open(path)
            .unwrap()
            .map(|f| f.unwrap())
            .collect()
    }

    #[test]
    fn clips_keep_their_times_in_every_format() {
        let t = tempfile::tempdir().unwrap();
        let times = [0.0, 0.1, 0.3, 0.6];
        for name in ["a.gif", "a.png", "a.mp4"] {
            let p = t.path().join(name);
            write_video(&p, &times, |i| picture(32, 24, i as u64));
            let frames = read_back(&p);
            assert_eq!(frames.len(), 4, "{name}");
            for (f, want) in frames.iter().zip(times) {
                assert!((f.time - want).abs() < 1e-3, "{name}: {} vs {want}", f.time);
                assert_eq!(f.image.dimensions(), (32, 24));
            }
        }
        // APNG is lossless: the frames come back exactly.
        let frames = read_back(&t.path().join("a.png"));
        assert_eq!(frames[2].image, picture(32, 24, 2));
    }
}
