//! Animated GIF and APNG, read with `image` and written frame by frame.

use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use image::codecs::gif::GifDecoder;
use image::codecs::png::{CompressionType, FilterType, PngDecoder, PngEncoder};
use image::{AnimationDecoder, DynamicImage, ImageDecoder, ImageEncoder, RgbImage};

use crate::{Frame, FrameSink, FrameSource, VideoError, VideoInfo, end_on_error, guard};

/// Frames of an animation decoder, with times accumulated from the frame delays.
struct AnimSource {
    path: PathBuf,
    info: VideoInfo,
    frames: image::Frames<'static>,
    /// A still PNG named `.apng` is a one-frame video.
    still: Option<RgbImage>,
    time: f64,
    /// GIF readers show a zero delay as 100 ms; do the same so that times keep increasing.
    zero_delay: f64,
    count: usize,
    done: bool,
}

impl AnimSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, VideoError> {
        if let Some(image) = self.still.take() {
            self.count += 1;
            return Ok(Some(Frame {
                image,
                time: 0.0,
                duration: None,
            }));
        }
        match self.frames.next() {
            None if self.count == 0 => Err(VideoError::corrupt(
                &self.path,
                "the animation has no frames",
            )),
            None => Ok(None),
            Some(Err(e)) => Err(VideoError::corrupt(
                &self.path,
                format!("frame {}: {e}", self.count + 1),
            )),
            Some(Ok(f)) => {
                let (n, d) = f.delay().numer_denom_ms();
                let mut delay = if d == 0 {
                    0.0
                } else {
                    f64::from(n) / f64::from(d) / 1000.0
                };
                if delay <= 0.0 {
                    delay = self.zero_delay;
                }
                let rgba = f.into_buffer();
                let image = on_white(&rgba);
                let time = self.time;
                self.time += delay;
                self.count += 1;
                Ok(Some(Frame {
                    image,
                    time,
                    duration: (delay > 0.0).then_some(delay),
                }))
            }
        }
    }
}

impl Iterator for AnimSource {
    type Item = Result<Frame, VideoError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let path = self.path.clone();
        let next = guard(&path, || self.next_frame());
        end_on_error(next, &mut self.done)
    }
}

impl FrameSource for AnimSource {
    fn info(&self) -> &VideoInfo {
        &self.info
    }
}

fn info(width: u32, height: u32, frame_count: Option<usize>, timescale: u32) -> VideoInfo {
    VideoInfo {
        width,
        height,
        frame_count,
        duration: None,
        timescale: Some(timescale),
    }
}

/// Largest animation frame side we decode: a damaged header must not make us composite
/// gigapixel canvases. (H.264 stops at 3840x2160 anyway.)
const MAX_SIDE: u32 = 8192;

fn limits() -> image::Limits {
    let mut l = image::Limits::default();
    l.max_image_width = Some(MAX_SIDE);
    l.max_image_height = Some(MAX_SIDE);
    l
}

fn check_canvas(path: &Path, w: u32, h: u32) -> Result<(), VideoError> {
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(VideoError::corrupt(
            path,
            format!("implausible frame size {w}x{h} (damaged header?)"),
        ));
    }
    Ok(())
}

/// Transparent pixels shown on white, as the dataset tools and browsers show them.
fn on_white(rgba: &image::RgbaImage) -> RgbImage {
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let p = rgba.get_pixel(x, y).0;
        let a = u32::from(p[3]);
        image::Rgb([0, 1, 2].map(|c| ((u32::from(p[c]) * a + 255 * (255 - a) + 127) / 255) as u8))
    })
}

/// Animated GIF reader.
pub(crate) struct GifSource;

impl GifSource {
    pub(crate) fn open(path: &Path) -> Result<impl FrameSource + use<>, VideoError> {
        let f = File::open(path).map_err(|e| VideoError::io(path, e))?;
        let bad =
            |e: image::ImageError| VideoError::corrupt(path, format!("not a readable GIF: {e}"));
        let mut dec = GifDecoder::new(BufReader::new(f)).map_err(bad)?;
        let (w, h) = dec.dimensions();
        check_canvas(path, w, h)?;
        // `GifDecoder::new` starts without limits; the default ones cap memory per frame.
        dec.set_limits(limits()).map_err(bad)?;
        Ok(AnimSource {
            path: path.to_path_buf(),
            info: info(w, h, None, 100),
            frames: dec.into_frames(),
            still: None,
            time: 0.0,
            zero_delay: 0.1,
            count: 0,
            done: false,
        })
    }
}

/// APNG reader (a plain PNG reads as one frame).
pub(crate) struct ApngSource;

impl ApngSource {
    pub(crate) fn open(path: &Path) -> Result<impl FrameSource + use<>, VideoError> {
        let bad =
            |e: image::ImageError| VideoError::corrupt(path, format!("not a readable PNG: {e}"));
        let f = File::open(path).map_err(|e| VideoError::io(path, e))?;
        let dec = PngDecoder::with_limits(BufReader::new(f), limits()).map_err(bad)?;
        let (w, h) = dec.dimensions();
        check_canvas(path, w, h)?;
        let animated = dec.is_apng().map_err(bad)?;
        let (frames, still) = if animated {
            (dec.apng().map_err(bad)?.into_frames(), None)
        } else {
            let img = DynamicImage::from_decoder(dec).map_err(bad)?.to_rgb8();
            (image::Frames::new(Box::new(std::iter::empty())), Some(img))
        };
        Ok(AnimSource {
            path: path.to_path_buf(),
            info: info(w, h, if animated { None } else { Some(1) }, 1000),
            frames,
            still,
            time: 0.0,
            zero_delay: 0.0,
            count: 0,
            done: false,
        })
    }
}

/// Delays of consecutive frames in container units, rounded on the running total so that
/// rounding errors do not add up over a long clip.
struct Clock {
    units_per_second: f64,
    first: Option<f64>,
}

impl Clock {
    fn units(&mut self, t: f64) -> i64 {
        let first = *self.first.get_or_insert(t);
        ((t - first) * self.units_per_second).round() as i64
    }
}

/// A frame waiting for the next one, whose time gives its delay.
struct Held {
    image: RgbImage,
    at: i64,
    own: Option<i64>,
}

fn check_size(path: &Path, frame: &Frame, w: u32, h: u32) -> Result<(), VideoError> {
    if frame.image.dimensions() != (w, h) {
        let (fw, fh) = frame.image.dimensions();
        return Err(VideoError::invalid(
            path,
            format!("frame is {fw}x{fh}, the video is {w}x{h}"),
        ));
    }
    Ok(())
}

/// Hold `frame` and return the previous one with its delay in clock units.
fn hold(
    clock: &mut Clock,
    held: &mut Option<Held>,
    last_delay: &mut i64,
    frame: &Frame,
) -> Option<(RgbImage, i64)> {
    let mut at = clock.units(frame.time);
    let own = frame
        .duration
        .filter(|d| d.is_finite() && *d > 0.0)
        .map(|d| (d * clock.units_per_second).round() as i64);
    let out = held.take().map(|p| {
        at = at.max(p.at + 1);
        *last_delay = at - p.at;
        (p.image, at - p.at)
    });
    *held = Some(Held {
        image: frame.image.clone(),
        at,
        own,
    });
    out
}

fn last(held: Option<Held>, last_delay: i64, default: i64) -> Option<(RgbImage, i64)> {
    held.map(|p| {
        let d = p
            .own
            .unwrap_or(if last_delay > 0 { last_delay } else { default });
        (p.image, d.max(1))
    })
}

/// Animated GIF writer (256-colour palette per frame, 1/100 s time steps).
pub(crate) struct GifSink {
    path: PathBuf,
    enc: gif::Encoder<BufWriter<File>>,
    width: u32,
    height: u32,
    clock: Clock,
    held: Option<Held>,
    last_delay: i64,
}

impl GifSink {
    pub(crate) fn create(path: &Path, width: u32, height: u32) -> Result<Self, VideoError> {
        if width > 65535 || height > 65535 {
            return Err(VideoError::invalid(
                path,
                "GIF frames are at most 65535 pixels wide and high",
            ));
        }
        let f = File::create(path).map_err(|e| VideoError::io(path, e))?;
        let gif_err = |e: gif::EncodingError| VideoError::invalid(path, format!("GIF writer: {e}"));
        let mut enc = gif::Encoder::new(BufWriter::new(f), width as u16, height as u16, &[])
            .map_err(gif_err)?;
        enc.set_repeat(gif::Repeat::Infinite).map_err(gif_err)?;
        Ok(Self {
            path: path.to_path_buf(),
            enc,
            width,
            height,
            clock: Clock {
                units_per_second: 100.0,
                first: None,
            },
            held: None,
            last_delay: 0,
        })
    }

    fn put(&mut self, image: RgbImage, centis: i64) -> Result<(), VideoError> {
        // NeuQuant palette per frame; speed 10 is the usual quality/time trade-off.
        let mut frame =
            gif::Frame::from_rgb_speed(self.width as u16, self.height as u16, image.as_raw(), 10);
        frame.delay = centis.clamp(1, 65535) as u16;
        self.enc
            .write_frame(&frame)
            .map_err(|e| gif_error(&self.path, e))
    }
}

fn gif_error(path: &Path, e: gif::EncodingError) -> VideoError {
    match e {
        gif::EncodingError::Io(io) => VideoError::io(path, io),
        other => VideoError::invalid(path, format!("GIF writer: {other}")),
    }
}

impl FrameSink for GifSink {
    fn write(&mut self, frame: &Frame) -> Result<(), VideoError> {
        check_size(&self.path, frame, self.width, self.height)?;
        if let Some((img, d)) = hold(&mut self.clock, &mut self.held, &mut self.last_delay, frame) {
            self.put(img, d)?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), VideoError> {
        let Some((img, d)) = last(self.held.take(), self.last_delay, 10) else {
            return Err(VideoError::invalid(&self.path, "no frames were written"));
        };
        self.put(img, d)?;
        let path = self.path.clone();
        let Self { enc, .. } = *self;
        let mut w = enc.into_inner().map_err(|e| gif_error(&path, e))?;
        w.flush().map_err(|e| VideoError::io(&path, e))?;
        w.get_ref().sync_all().map_err(|e| VideoError::io(&path, e))
    }
}

/// APNG writer: each frame is PNG-compressed by `image` and its image data re-wrapped as the
/// animation's `IDAT`/`fdAT` chunks; the frame count in `acTL` is patched in at the end.
pub(crate) struct ApngSink {
    path: PathBuf,
    out: BufWriter<File>,
    width: u32,
    height: u32,
    clock: Clock,
    held: Option<Held>,
    last_delay: i64,
    frames: u32,
    seq: u32,
    actl_at: u64,
}

fn chunk(out: &mut impl Write, kind: &[u8; 4], data: &[u8]) -> std::io::Result<()> {
    out.write_all(&(data.len() as u32).to_be_bytes())?;
    out.write_all(kind)?;
    out.write_all(data)?;
    let mut h = crc32fast::Hasher::new();
    h.update(kind);
    h.update(data);
    out.write_all(&h.finalize().to_be_bytes())
}

/// The chunks of a PNG file, as `(type, data)`.
fn png_chunks(png: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut p = 8;
    while p + 12 <= png.len() {
        let len = u32::from_be_bytes([png[p], png[p + 1], png[p + 2], png[p + 3]]) as usize;
        let kind = [png[p + 4], png[p + 5], png[p + 6], png[p + 7]];
        let Some(data) = png.get(p + 8..p + 8 + len) else {
            break;
        };
        out.push((kind, data));
        p += 12 + len;
    }
    out
}

impl ApngSink {
    pub(crate) fn create(path: &Path, width: u32, height: u32) -> Result<Self, VideoError> {
        let f = File::create(path).map_err(|e| VideoError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            out: BufWriter::new(f),
            width,
            height,
            clock: Clock {
                units_per_second: 1000.0,
                first: None,
            },
            held: None,
            last_delay: 0,
            frames: 0,
            seq: 0,
            actl_at: 0,
        })
    }

    fn put(&mut self, image: RgbImage, ms: i64) -> Result<(), VideoError> {
        let path = self.path.clone();
        let io = |e| VideoError::io(&path, e);
        let mut png = Vec::new();
        PngEncoder::new_with_quality(&mut png, CompressionType::Fast, FilterType::Adaptive)
            .write_image(
                image.as_raw(),
                self.width,
                self.height,
                image::ExtendedColorType::Rgb8,
            )
            .map_err(|e| VideoError::invalid(&self.path, e.to_string()))?;
        let chunks = png_chunks(&png);
        if self.frames == 0 {
            let ihdr = chunks
                .iter()
                .find(|c| &c.0 == b"IHDR")
                .map(|c| c.1)
                .unwrap_or_default();
            self.out.write_all(b"\x89PNG\r\n\x1a\n").map_err(io)?;
            chunk(&mut self.out, b"IHDR", ihdr).map_err(io)?;
            self.actl_at = self.out.stream_position().map_err(io)?;
            // Frame count 0 for now, patched in `finish`; play forever.
            chunk(&mut self.out, b"acTL", &[0; 8]).map_err(io)?;
        }
        let (num, den) = if ms <= 65535 {
            (ms as u16, 1000u16)
        } else {
            (((ms + 5) / 10).min(65535) as u16, 100)
        };
        let mut fctl = Vec::with_capacity(26);
        for v in [self.seq, self.width, self.height, 0, 0] {
            fctl.extend_from_slice(&v.to_be_bytes());
        }
        fctl.extend_from_slice(&num.to_be_bytes());
        fctl.extend_from_slice(&den.to_be_bytes());
        fctl.extend_from_slice(&[0, 0]); // dispose none, blend source
        chunk(&mut self.out, b"fcTL", &fctl).map_err(io)?;
        self.seq += 1;
        for (_, data) in chunks.iter().filter(|c| &c.0 == b"IDAT") {
            if self.frames == 0 {
                chunk(&mut self.out, b"IDAT", data).map_err(io)?;
            } else {
                let mut fdat = Vec::with_capacity(data.len() + 4);
                fdat.extend_from_slice(&self.seq.to_be_bytes());
                fdat.extend_from_slice(data);
                chunk(&mut self.out, b"fdAT", &fdat).map_err(io)?;
                self.seq += 1;
            }
        }
        self.frames += 1;
        Ok(())
    }
}

impl FrameSink for ApngSink {
    fn write(&mut self, frame: &Frame) -> Result<(), VideoError> {
        check_size(&self.path, frame, self.width, self.height)?;
        if let Some((img, d)) = hold(&mut self.clock, &mut self.held, &mut self.last_delay, frame) {
            self.put(img, d)?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), VideoError> {
        let Some((img, d)) = last(self.held.take(), self.last_delay, 100) else {
            return Err(VideoError::invalid(&self.path, "no frames were written"));
        };
        self.put(img, d)?;
        let path = self.path.clone();
        let io = |e| VideoError::io(&path, e);
        chunk(&mut self.out, b"IEND", &[]).map_err(io)?;
        let mut actl = [0u8; 8];
        actl[..4].copy_from_slice(&self.frames.to_be_bytes());
        self.out.seek(SeekFrom::Start(self.actl_at)).map_err(io)?;
        chunk(&mut self.out, b"acTL", &actl).map_err(io)?;
        self.out.flush().map_err(io)?;
        self.out.get_ref().sync_all().map_err(io)
    }
}
