//! The `ffmpeg` feature: every container and codec the native paths do not handle, through the
//! system FFmpeg libraries (`ffmpeg-next`), and audio copied into translated videos.
//!
//! * [`FfSource`] decodes the best video stream of any file FFmpeg opens, converts each picture
//!   to RGB with swscale at the stream's size, and times it from the stream's timestamps.
//! * [`FfSink`] encodes into the containers of [`WRITE_EXTENSIONS`], choosing an encoder the
//!   system libraries have and the container accepts ([`encoder_candidates`]).
//! * Audio of another file is copied unchanged (stream copy) by [`AudioFeed`], packet by packet
//!   as the video advances: [`FfSink`] interleaves it with the packets it encodes, and
//!   [`AudioSink`] (around the native MP4 writer) remuxes the finished video with it.
//!
//! FFmpeg's own log is silenced (level "fatal"): every failure comes back as an error code, which
//! our errors turn into a message naming the file.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

use ff::format::Pixel;
use ff::software::scaling;
use ff::{Packet, Rational, codec, color, encoder, format, media};
use ffmpeg_next as ff;
use image::RgbImage;

use crate::{
    CreateOptions, Frame, FrameSink, FrameSource, VideoError, VideoInfo, end_on_error, guard,
};

/// Extensions opened through FFmpeg besides the native ones (used by [`crate::is_video_path`]).
pub(crate) const READ_EXTENSIONS: &[&str] = &[
    "mkv", "webm", "avi", "flv", "f4v", "ts", "m2ts", "mts", "mpg", "mpeg", "vob", "wmv", "asf",
    "ogv", "3gp", "3g2", "mxf", "nut", "y4m",
];

/// Extensions written through FFmpeg (the native writers keep MP4/M4V/MOV, GIF and APNG).
pub(crate) const WRITE_EXTENSIONS: &[&str] =
    &["mkv", "webm", "avi", "flv", "ts", "m2ts", "mts", "nut"];

/// Largest frame side we decode or encode: a damaged header must not make us allocate
/// gigapixel frames.
const MAX_SIDE: u32 = 8192;

/// `FF_COMPLIANCE_NORMAL` (a `#define` in avcodec.h, 0 in every FFmpeg version).
const COMPLIANCE_NORMAL: i32 = 0;

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = ff::init();
        ff::log::set_level(ff::log::Level::Fatal);
    });
}

fn is_again(e: &ff::Error) -> bool {
    matches!(e, ff::Error::Other { errno } if *errno == ff::error::EAGAIN)
}

/// The path as FFmpeg wants it: UTF-8, with an explicit `file:` protocol so that a name such as
/// `clip:1.mkv` is not taken for a URL.
fn url(path: &Path) -> Result<PathBuf, VideoError> {
    let s = path
        .to_str()
        .filter(|s| !s.contains('\0'))
        .ok_or_else(|| VideoError::invalid(path, "FFmpeg needs a file name that is valid UTF-8"))?;
    Ok(PathBuf::from(format!("file:{s}")))
}

/// An FFmpeg error on `path` as one of ours: a missing file, permissions or a full disk stay I/O
/// errors; the rest (FFmpeg reports a file that ends early as EIO) mean a damaged file.
fn ff_error(path: &Path, what: &str, e: ff::Error) -> VideoError {
    use ff::error::{EACCES, EISDIR, ENOENT, ENOSPC, ENOTDIR, EPERM, EROFS};
    match e {
        ff::Error::Other { errno }
            if [ENOENT, EACCES, EPERM, ENOSPC, EISDIR, ENOTDIR, EROFS].contains(&errno) =>
        {
            VideoError::io(path, std::io::Error::from_raw_os_error(errno))
        }
        ff::Error::Other { errno } if errno == ff::error::EIO => VideoError::corrupt(
            path,
            format!("{what}: the file ends early or cannot be read (FFmpeg: {e})"),
        ),
        other => VideoError::corrupt(path, format!("{what}: {other} (FFmpeg)")),
    }
}

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default()
}

/// Seconds of `ticks` in time base `tb`.
fn seconds(ticks: i64, tb: Rational) -> f64 {
    if tb.denominator() == 0 {
        return 0.0;
    }
    ticks as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator())
}

/// Whether `ticks` is a real timestamp (not `AV_NOPTS_VALUE`).
fn known(ticks: i64) -> Option<i64> {
    (ticks != ff::ffi::AV_NOPTS_VALUE).then_some(ticks)
}

// ---------------------------------------------------------------------------------------------
// Reading

/// A decoded picture waiting for the next one's time, which gives its duration.
struct Held {
    image: RgbImage,
    /// Ticks from the first frame.
    rel: i64,
    /// The stream's own timestamp, where it had one.
    abs: Option<i64>,
}

/// Frames of the best video stream of any file FFmpeg reads, in presentation order.
pub(crate) struct FfSource {
    path: PathBuf,
    input: format::context::Input,
    stream: usize,
    decoder: ff::decoder::Video,
    tb: Rational,
    info: VideoInfo,
    decoded: ff::frame::Video,
    rgb: ff::frame::Video,
    /// The scaler and the input it was made for (format, size, colour space, range).
    scaler: Option<(ScalerKey, scaling::Context)>,
    first_ts: Option<i64>,
    last_rel: Option<i64>,
    held: Option<Held>,
    /// Durations of recent packets by their pts, for the last frame's duration.
    pkt_durations: VecDeque<(i64, i64)>,
    /// Where the stream starts, in its ticks, where the container says.
    start: Option<i64>,
    /// Where the video ends on the file's timeline, in seconds, where the container says.
    declared_end: Option<f64>,
    /// Whether the last frame's duration came from its packet.
    last_duration_known: bool,
    /// End of the last frame emitted, in seconds from the first.
    end_time: f64,
    /// One frame at the stream's average rate, in ticks (for pictures without a timestamp).
    nominal: i64,
    packet: Packet,
    eof_sent: bool,
    decoder_done: bool,
    emitted: usize,
    bad_packets: usize,
    last_error: Option<String>,
    done: bool,
}

type ScalerKey = (Pixel, u32, u32, color::Space, color::Range);

impl FfSource {
    pub(crate) fn open(path: &Path) -> Result<Self, VideoError> {
        init();
        let input = format::input(&url(path)?).map_err(|e| match e {
            ff::Error::InvalidData if !crate::is_video_path(path) => VideoError::unsupported(
                path,
                format!("FFmpeg does not recognise the container ({e})"),
            ),
            e => ff_error(path, "FFmpeg cannot open it", e),
        })?;
        if input.format().name().contains("matroska") {
            matroska_complete(path)?;
        }
        let stream = input
            .streams()
            .best(media::Type::Video)
            .ok_or_else(|| VideoError::corrupt(path, "no video stream in the file"))?;
        let index = stream.index();
        let tb = stream.time_base();
        if tb.numerator() <= 0 || tb.denominator() <= 0 {
            return Err(VideoError::corrupt(
                path,
                format!("invalid time base {tb} of the video stream"),
            ));
        }
        let params = stream.parameters();
        let codec_id = params.id();
        let mut ctx = codec::Context::from_parameters(params)
            .map_err(|e| ff_error(path, "cannot set up the video decoder", e))?;
        ctx.set_threading(ff::threading::Config {
            kind: ff::threading::Type::Frame,
            count: 0,
            ..Default::default()
        });
        let mut dec = ctx.decoder();
        dec.set_packet_time_base(tb);
        let decoder = dec.video().map_err(|e| match e {
            ff::Error::DecoderNotFound => VideoError::unsupported(
                path,
                format!(
                    "the system FFmpeg has no decoder for {} video",
                    codec_id.name()
                ),
            ),
            e => ff_error(
                path,
                &format!("cannot start the {} decoder", codec_id.name()),
                e,
            ),
        })?;
        let (width, height) = (decoder.width(), decoder.height());
        if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
            return Err(VideoError::corrupt(
                path,
                format!("implausible frame size {width}x{height} (damaged header?)"),
            ));
        }
        let start = known(stream.start_time());
        let stream_duration = known(stream.duration()).filter(|d| *d > 0);
        let metadata = stream.metadata();
        // Matroska keeps per-track statistics in tags (FFmpeg and mkvmerge write them).
        let tag = |key: &str| {
            metadata
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.to_string())
        };
        let tagged_duration = tag("DURATION").and_then(|v| parse_clock(&v));
        let tagged_frames = tag("NUMBER_OF_FRAMES").and_then(|v| v.trim().parse::<usize>().ok());
        // The whole file's duration stands for the video's only where nothing else is in it.
        let single_stream = input.streams().count() == 1;
        let micro = |t: i64| t as f64 / f64::from(ff::ffi::AV_TIME_BASE);
        // SAFETY: a field of the open input's own context.
        let file_start = known(unsafe { (*input.as_ptr()).start_time }).map_or(0.0, micro);
        let start_s = start.map_or(0.0, |s| seconds(s, tb));
        // Where the video ends on the file's timeline: the stream's start plus its duration;
        // Matroska's DURATION tag (already on the timeline); the whole file's end.
        let declared_end = stream_duration
            .map(|d| seconds(start.unwrap_or(0).saturating_add(d), tb))
            .or(tagged_duration)
            .or_else(|| {
                known(input.duration())
                    .filter(|d| *d > 0 && single_stream)
                    .map(|d| file_start + micro(d))
            })
            .filter(|e| e.is_finite() && *e > start_s);
        let duration = declared_end.map(|e| e - start_s);
        let rate = stream.avg_frame_rate();
        let nominal = if rate.numerator() > 0 && rate.denominator() > 0 {
            let t = f64::from(tb.denominator()) * f64::from(rate.denominator())
                / (f64::from(tb.numerator()) * f64::from(rate.numerator()));
            (t.round() as i64).max(1)
        } else {
            1
        };
        let info = VideoInfo {
            width,
            height,
            frame_count: usize::try_from(stream.frames())
                .ok()
                .filter(|n| *n > 0)
                .or(tagged_frames.filter(|n| *n > 0)),
            duration,
            timescale: u32::try_from(tb.denominator()).ok(),
        };
        Ok(Self {
            path: path.to_path_buf(),
            input,
            stream: index,
            decoder,
            tb,
            info,
            decoded: ff::frame::Video::empty(),
            rgb: ff::frame::Video::empty(),
            scaler: None,
            first_ts: None,
            last_rel: None,
            held: None,
            pkt_durations: VecDeque::new(),
            start,
            declared_end,
            last_duration_known: false,
            end_time: 0.0,
            nominal,
            packet: Packet::empty(),
            eof_sent: false,
            decoder_done: false,
            emitted: 0,
            bad_packets: 0,
            last_error: None,
            done: false,
        })
    }

    /// The next decoded picture (as RGB) and its timestamp; None when the decoder is drained.
    fn decode_one(&mut self) -> Result<Option<(RgbImage, Option<i64>)>, VideoError> {
        loop {
            if self.decoder_done {
                return Ok(None);
            }
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => {
                    let ts = self.decoded.timestamp();
                    let image = self.convert()?;
                    return Ok(Some((image, ts)));
                }
                Err(ff::Error::Eof) => {
                    self.decoder_done = true;
                    return Ok(None);
                }
                Err(e) if is_again(&e) => {}
                Err(ff::Error::InvalidData) => {
                    // A damaged picture: skip it as players do.
                    self.bad_packets += 1;
                    self.last_error = Some("invalid data in a picture".into());
                    continue;
                }
                Err(e) => return Err(ff_error(&self.path, "decoding failed", e)),
            }
            if self.eof_sent {
                // The decoder wants input after the end: nothing more will come.
                self.decoder_done = true;
                return Ok(None);
            }
            self.feed()?;
        }
    }

    /// Send the next packet of our stream (or the end of the stream) to the decoder.
    fn feed(&mut self) -> Result<(), VideoError> {
        loop {
            match self.packet.read(&mut self.input) {
                Ok(()) => {
                    if self.packet.stream() != self.stream {
                        continue;
                    }
                    let d = self.packet.duration();
                    if let Some(pts) = self.packet.pts().filter(|_| d > 0) {
                        if self.pkt_durations.len() >= 64 {
                            self.pkt_durations.pop_front();
                        }
                        self.pkt_durations.push_back((pts, d));
                    }
                    match self.decoder.send_packet(&self.packet) {
                        Ok(()) => return Ok(()),
                        Err(ff::Error::InvalidData) => {
                            self.bad_packets += 1;
                            self.last_error = Some("invalid data in a packet".into());
                            return Ok(());
                        }
                        Err(e) => return Err(ff_error(&self.path, "decoding failed", e)),
                    }
                }
                Err(ff::Error::Eof) => {
                    self.eof_sent = true;
                    return match self.decoder.send_eof() {
                        Ok(()) | Err(ff::Error::Eof) => Ok(()),
                        Err(e) => Err(ff_error(&self.path, "decoding failed", e)),
                    };
                }
                // The demuxer skips a damaged packet and resynchronises; the file position moves
                // on, so this ends.
                Err(ff::Error::InvalidData) => {
                    self.bad_packets += 1;
                    self.last_error = Some("invalid data in the container".into());
                }
                Err(e) => return Err(ff_error(&self.path, "reading failed", e)),
            }
        }
    }

    /// The decoded picture as RGB at the stream's size.
    fn convert(&mut self) -> Result<RgbImage, VideoError> {
        let f = &self.decoded;
        let (fw, fh, fmt) = (f.width(), f.height(), f.format());
        if fw == 0 || fh == 0 || fw > MAX_SIDE || fh > MAX_SIDE || fmt == Pixel::None {
            return Err(VideoError::corrupt(
                &self.path,
                format!("implausible decoded picture {fw}x{fh} {fmt:?}"),
            ));
        }
        let key: ScalerKey = (fmt, fw, fh, f.color_space(), f.color_range());
        if self.scaler.as_ref().is_none_or(|(k, _)| *k != key) {
            let (w, h) = (self.info.width, self.info.height);
            let mut ctx = scaling::Context::get(
                fmt,
                fw,
                fh,
                Pixel::RGB24,
                w,
                h,
                scaling::Flags::BILINEAR
                    | scaling::Flags::ACCURATE_RND
                    | scaling::Flags::FULL_CHR_H_INT,
            )
            .map_err(|e| {
                VideoError::unsupported(
                    &self.path,
                    format!("cannot convert {fmt:?} pictures to RGB ({e})"),
                )
            })?;
            set_yuv_matrix(&mut ctx, key.3, key.4, true);
            self.scaler = Some((key, ctx));
            self.rgb = ff::frame::Video::empty();
        }
        let Some((_, scaler)) = self.scaler.as_mut() else {
            return Err(VideoError::corrupt(&self.path, "no scaler"));
        };
        scaler
            .run(&self.decoded, &mut self.rgb)
            .map_err(|e| VideoError::corrupt(&self.path, format!("converting to RGB: {e}")))?;
        let (w, h) = (self.info.width as usize, self.info.height as usize);
        let stride = self.rgb.stride(0);
        let data = self.rgb.data(0);
        if stride < w * 3 || data.len() < stride * (h - 1) + w * 3 {
            return Err(VideoError::corrupt(&self.path, "short RGB picture"));
        }
        let mut buf = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            buf.extend_from_slice(&data[y * stride..y * stride + w * 3]);
        }
        RgbImage::from_raw(w as u32, h as u32, buf)
            .ok_or_else(|| VideoError::corrupt(&self.path, "short RGB picture"))
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, VideoError> {
        loop {
            match self.decode_one()? {
                Some((image, ts)) => {
                    let rel = match (ts, self.first_ts) {
                        (Some(t), Some(first)) => t.saturating_sub(first),
                        (Some(t), None) => {
                            self.first_ts = Some(t);
                            0
                        }
                        (None, _) => self.last_rel.map_or(0, |r| r + self.nominal),
                    };
                    self.last_rel = Some(rel);
                    let next = Held {
                        image,
                        rel,
                        abs: ts,
                    };
                    if let Some(h) = self.held.replace(next) {
                        let d = rel - h.rel;
                        return Ok(Some(self.emit(h, (d > 0).then_some(d))));
                    }
                }
                None => {
                    if let Some(h) = self.held.take() {
                        // The last frame: its packet's duration, else up to the end the
                        // container declares (Matroska stores no duration for its last block,
                        // only the track's total).
                        let from_packet = h.abs.and_then(|a| {
                            self.pkt_durations
                                .iter()
                                .rev()
                                .find(|(p, _)| *p == a)
                                .map(|(_, d)| *d)
                        });
                        self.last_duration_known = from_packet.is_some();
                        let d = from_packet.or_else(|| {
                            let end = self.declared_end?;
                            let start = self.timeline(h.rel);
                            let d = ((end - start) * f64::from(self.tb.denominator())
                                / f64::from(self.tb.numerator()))
                            .round();
                            (1.0..9.0e15).contains(&d).then_some(d as i64)
                        });
                        return Ok(Some(self.emit(h, d)));
                    }
                    if self.emitted == 0 {
                        let why = match &self.last_error {
                            Some(e) => format!(
                                "no decodable video frame ({} damaged packets; last: {e})",
                                self.bad_packets
                            ),
                            None => "no decodable video frame (truncated or damaged?)".into(),
                        };
                        return Err(VideoError::corrupt(&self.path, why));
                    }
                    self.check_complete()?;
                    return Ok(None);
                }
            }
        }
    }

    fn emit(&mut self, h: Held, duration: Option<i64>) -> Frame {
        self.emitted += 1;
        let time = seconds(h.rel, self.tb);
        let duration = duration.map(|d| seconds(d, self.tb));
        self.end_time = self.end_time.max(time + duration.unwrap_or(0.0));
        Frame {
            image: h.image,
            time,
            duration,
        }
    }

    /// Where `rel` ticks after the first frame falls on the file's timeline, in seconds.
    fn timeline(&self, rel: i64) -> f64 {
        let origin = self.first_ts.or(self.start).unwrap_or(0);
        seconds(origin.saturating_add(rel), self.tb)
    }

    /// After the last frame: a file that declares more frames or a longer video than it holds
    /// was cut short (an interrupted download or copy), which FFmpeg's demuxers take for a
    /// normal end.
    fn check_complete(&self) -> Result<(), VideoError> {
        if let Some(n) = self
            .info
            .frame_count
            .filter(|n| self.emitted + (n / 50).max(2) < *n)
        {
            return Err(VideoError::corrupt(
                &self.path,
                format!(
                    "the file declares {n} frames but only {} could be read (truncated?)",
                    self.emitted
                ),
            ));
        }
        // Where the last frame's duration was taken from the declared end, the end says
        // nothing (Matroska is checked at opening, from its segment's size).
        if let (Some(declared), Some(length), true) = (
            self.declared_end,
            self.info.duration,
            self.last_duration_known,
        ) {
            let end = self.timeline(0) + self.end_time;
            if end + (0.05 * length).max(0.25) < declared {
                return Err(VideoError::corrupt(
                    &self.path,
                    format!(
                        "the video stops at {end:.2} s but the file declares {declared:.2} s (truncated?)"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A Matroska file is one EBML header and one Segment whose size the muxer writes when it
/// finishes: a file shorter than that was cut short (FFmpeg's demuxer reads up to the cut and
/// stops as if the video ended there).
fn matroska_complete(path: &Path) -> Result<(), VideoError> {
    use std::io::Read;
    let mut f = fs::File::open(path).map_err(|e| VideoError::io(path, e))?;
    let len = f.metadata().map_err(|e| VideoError::io(path, e))?.len();
    let mut head = Vec::with_capacity(4096);
    f.by_ref()
        .take(4096)
        .read_to_end(&mut head)
        .map_err(|e| VideoError::io(path, e))?;
    // An EBML variable-length integer at `p`: (value, length); None for "unknown size".
    let vint = |p: usize| -> Option<(u64, usize)> {
        let first = *head.get(p)?;
        let n = first.leading_zeros() as usize + 1;
        if n > 8 {
            return None;
        }
        let mut v = u64::from(first) & (0xff >> n);
        for i in 1..n {
            v = (v << 8) | u64::from(*head.get(p + i)?);
        }
        let all_ones = (1u64 << (7 * n)) - 1;
        (v != all_ones).then_some((v, n))
    };
    let parse = || -> Option<u64> {
        if head.get(..4)? != [0x1a, 0x45, 0xdf, 0xa3] {
            return None;
        }
        let (size, n) = vint(4)?;
        let seg = 4usize
            .checked_add(n)?
            .checked_add(usize::try_from(size).ok()?)?;
        if head.get(seg..seg + 4)? != [0x18, 0x53, 0x80, 0x67] {
            return None;
        }
        let (size, n) = vint(seg + 4)?;
        (seg as u64 + 4 + n as u64).checked_add(size)
    };
    match parse() {
        Some(end) if end > len => Err(VideoError::corrupt(
            path,
            format!(
                "the file is cut short (truncated?): its Matroska segment ends at byte {end}, the file has {len} bytes"
            ),
        )),
        _ => Ok(()),
    }
}

/// Seconds of a Matroska statistics clock, `HH:MM:SS.nnnnnnnnn`.
fn parse_clock(v: &str) -> Option<f64> {
    let mut parts = v.trim().split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let t =
        h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?;
    (t.is_finite() && t >= 0.0).then_some(t)
}

impl Iterator for FfSource {
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

impl FrameSource for FfSource {
    fn info(&self) -> &VideoInfo {
        &self.info
    }
}

/// Use the right YUV matrix and range for a conversion between YUV `space`/`range` and RGB
/// (swscale assumes BT.601 limited range unless told).
fn set_yuv_matrix(
    ctx: &mut scaling::Context,
    space: color::Space,
    range: color::Range,
    to_rgb: bool,
) {
    use ff::ffi;
    let cs = match space {
        color::Space::BT709 => ffi::SWS_CS_ITU709,
        color::Space::FCC => ffi::SWS_CS_FCC,
        color::Space::SMPTE240M => ffi::SWS_CS_SMPTE240M,
        color::Space::BT2020NCL | color::Space::BT2020CL => ffi::SWS_CS_BT2020,
        _ => ffi::SWS_CS_DEFAULT,
    };
    let full = i32::from(range == color::Range::JPEG);
    // SAFETY: a live scaler; the tables are static arrays of swscale. The call fails harmlessly
    // (returns an error we ignore) where neither side is YUV.
    unsafe {
        let yuv = ffi::sws_getCoefficients(cs);
        let rgb = ffi::sws_getCoefficients(ffi::SWS_CS_DEFAULT);
        let (inv, src_range, table, dst_range) = if to_rgb {
            (yuv, full, rgb, 1)
        } else {
            (rgb, 1, yuv, full)
        };
        ffi::sws_setColorspaceDetails(
            ctx.as_mut_ptr(),
            inv,
            src_range,
            table,
            dst_range,
            0,
            1 << 16,
            1 << 16,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Encoders to try, best first, for an output format (FFmpeg's muxer name). Each is used only
/// where the system libraries have it and the container accepts its codec.
fn encoder_candidates(muxer: &str) -> &'static [&'static str] {
    match muxer {
        "webm" => &["libvpx-vp9", "libvpx", "libaom-av1"],
        // AVI has no B-frame timing and a fixed frame rate: MPEG-4 Part 2 is its natural codec.
        "avi" => &["mpeg4", "libx264"],
        "flv" => &["libx264", "flv"],
        // H.264 where the size allows (even sides), else a codec that takes any size.
        "matroska" => &["libx264", "libvpx-vp9", "mpeg4"],
        "nut" => &["libx264", "mpeg4", "ffv1"],
        _ => &["libx264", "mpeg4"],
    }
}

/// Whether the output format can hold `id` (FFmpeg's "maybe" counts as yes: the header will
/// tell).
fn container_takes(output: &format::context::Output, id: codec::Id) -> bool {
    // SAFETY: a live output format and a codec id.
    unsafe {
        ff::ffi::avformat_query_codec(output.format().as_ptr(), id.into(), COMPLIANCE_NORMAL) != 0
    }
}

/// An encoder's clock: `1/timescale` in general; AVI stores a fixed frame rate, so its clock is
/// one frame of `fps`; MPEG-4 Part 2 allows at most 65535 ticks per second.
fn encoder_time_base(muxer: &str, codec: &str, timescale: u32, fps: f64) -> Rational {
    if muxer == "avi" {
        for n in [24.0, 30.0, 60.0, 120.0] {
            if (fps - n * 1000.0 / 1001.0).abs() < 0.005 {
                return Rational::new(1001, (n * 1000.0) as i32);
            }
        }
        return Rational::new(1, (fps.round() as i32).clamp(1, 1000));
    }
    let ts = i32::try_from(timescale).unwrap_or(90_000).max(1);
    if codec == "mpeg4" && ts > 65_535 {
        if ts % 30_000 == 0 {
            return Rational::new(1, 30_000);
        }
        let d = (1..=65_535).rev().find(|d| ts % d == 0).unwrap_or(1_000);
        return Rational::new(1, d);
    }
    Rational::new(1, ts)
}

/// A video being encoded through FFmpeg.
pub(crate) struct FfSink {
    path: PathBuf,
    output: format::context::Output,
    encoder: encoder::Video,
    stream: usize,
    enc_tb: Rational,
    stream_tb: Rational,
    width: u32,
    height: u32,
    enc_w: u32,
    enc_h: u32,
    rgb: ff::frame::Video,
    scaler: scaling::Context,
    pix: Pixel,
    /// A converted picture waiting for the next frame's time, which gives its duration.
    pending: Option<(ff::frame::Video, i64)>,
    first_ticks: Option<i64>,
    /// As in the MP4 writer: the last frame-to-frame step, or (negative) a declared duration.
    last_delta: i64,
    /// One frame at the hinted rate, in encoder ticks.
    default_delta: i64,
    /// Durations of the frames sent and not yet out of the encoder, by pts.
    durations: BTreeMap<i64, i64>,
    packet: Packet,
    /// Audio copied from [`CreateOptions::audio_from`], written as the video advances.
    audio: Option<AudioFeed>,
}

impl FfSink {
    pub(crate) fn create(
        path: &Path,
        width: u32,
        height: u32,
        opts: &CreateOptions,
    ) -> Result<Self, VideoError> {
        init();
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(VideoError::invalid(
                path,
                format!(
                    "frames of at most {MAX_SIDE} pixels a side can be encoded; these are {width}x{height}"
                ),
            ));
        }
        if opts.timescale == 0 {
            return Err(VideoError::invalid(path, "the timescale must be positive"));
        }
        let ext = extension(path);
        if !WRITE_EXTENSIONS.contains(&ext.as_str()) {
            return Err(VideoError::unsupported(
                path,
                format!("cannot write .{ext} files"),
            ));
        }
        let output = format::output(&url(path)?)
            .map_err(|e| ff_error(path, "cannot create the output", e))?;
        match Self::setup(path, output, width, height, opts) {
            Ok(s) => Ok(s),
            Err(e) => {
                // Nothing useful was written: leave no empty file behind.
                let _ = fs::remove_file(path);
                Err(e)
            }
        }
    }

    fn setup(
        path: &Path,
        mut output: format::context::Output,
        width: u32,
        height: u32,
        opts: &CreateOptions,
    ) -> Result<Self, VideoError> {
        let muxer = output.format().name().to_string();
        let fps = if opts.fps_hint.is_finite() && opts.fps_hint > 0.0 {
            opts.fps_hint.clamp(0.01, 1000.0)
        } else {
            30.0
        };
        let global_header = output
            .format()
            .flags()
            .contains(format::Flags::GLOBAL_HEADER);
        let even = (width.div_ceil(2) * 2, height.div_ceil(2) * 2);
        let mut tried = Vec::new();
        let mut chosen = None;
        // First at the real size; encoders that need even sides fail there, and only if none
        // takes the real size are the frames padded by one repeated row/column.
        'sizes: for (ew, eh) in [(width, height), even] {
            for name in encoder_candidates(&muxer) {
                let Some(codec) = encoder::find_by_name(name) else {
                    continue;
                };
                if !container_takes(&output, codec.id()) {
                    continue;
                }
                let tb = encoder_time_base(&muxer, name, opts.timescale, fps);
                let setup = EncoderSetup {
                    size: (ew, eh),
                    tb,
                    fps,
                    bitrate: opts.bitrate,
                    global_header,
                    fixed_rate: muxer == "avi",
                };
                match open_encoder(codec, name, &setup) {
                    Ok((enc, pix)) => {
                        chosen = Some((codec, enc, pix, tb, ew, eh));
                        break 'sizes;
                    }
                    Err(e) => tried.push(format!("{name} at {ew}x{eh}: {e}")),
                }
            }
            if (ew, eh) == even {
                break;
            }
        }
        let Some((codec, enc, pix, enc_tb, enc_w, enc_h)) = chosen else {
            return Err(VideoError::unsupported(
                path,
                if tried.is_empty() {
                    format!("the system FFmpeg has no video encoder for the {muxer} container")
                } else {
                    format!(
                        "no encoder could be opened for {muxer} ({})",
                        tried.join("; ")
                    )
                },
            ));
        };
        let add_video = |output: &mut format::context::Output| -> Result<usize, VideoError> {
            let mut ost = output
                .add_stream(codec)
                .map_err(|e| ff_error(path, "cannot add the video stream", e))?;
            ost.set_time_base(enc_tb);
            ost.set_parameters(&enc);
            // AVI's fixed rate; elsewhere a declared rate would become Matroska's default
            // frame duration, which its demuxer then gives the last frame.
            if let Some(r) = fps_rational(fps).filter(|_| muxer == "avi") {
                ost.set_avg_frame_rate(r);
            }
            Ok(ost.index())
        };
        let stream = add_video(&mut output)?;
        let mut audio = match &opts.audio_from {
            Some(source) => AudioFeed::attach(&mut output, source),
            None => None,
        };
        if let Err(e) = output.write_header() {
            let Some(feed) = audio.take() else {
                return Err(ff_error(path, "cannot write the header", e));
            };
            // The container took the audio streams but not their parameters: without them.
            warn(
                &feed.path,
                &format!("audio left out: the {muxer} container refused it ({e})"),
            );
            drop(output);
            output = format::output(&url(path)?)
                .map_err(|e| ff_error(path, "cannot create the output", e))?;
            add_video(&mut output)?;
            output
                .write_header()
                .map_err(|e| ff_error(path, "cannot write the header", e))?;
        }
        let stream_tb = output
            .stream(stream)
            .map(|s| s.time_base())
            .unwrap_or(enc_tb);
        let mut scaler = scaling::Context::get(
            Pixel::RGB24,
            enc_w,
            enc_h,
            pix,
            enc_w,
            enc_h,
            scaling::Flags::BILINEAR
                | scaling::Flags::ACCURATE_RND
                | scaling::Flags::FULL_CHR_H_INP,
        )
        .map_err(|e| VideoError::invalid(path, format!("cannot convert RGB to {pix:?}: {e}")))?;
        set_yuv_matrix(
            &mut scaler,
            color::Space::BT470BG,
            color::Range::MPEG,
            false,
        );
        let default_delta =
            ((f64::from(enc_tb.denominator()) / f64::from(enc_tb.numerator()) / fps).round()
                as i64)
                .max(1);
        Ok(Self {
            path: path.to_path_buf(),
            output,
            encoder: enc,
            stream,
            enc_tb,
            stream_tb,
            width,
            height,
            enc_w,
            enc_h,
            rgb: ff::frame::Video::new(Pixel::RGB24, enc_w, enc_h),
            scaler,
            pix,
            pending: None,
            first_ticks: None,
            last_delta: 0,
            default_delta,
            durations: BTreeMap::new(),
            packet: Packet::empty(),
            audio,
        })
    }

    /// Ticks of the encoder clock for a time in seconds (saturating on absurd input).
    fn ticks(&self, seconds: f64) -> i64 {
        let t = (seconds * f64::from(self.enc_tb.denominator())
            / f64::from(self.enc_tb.numerator()))
        .round();
        if t.is_nan() {
            0
        } else {
            t.clamp(-9.0e15, 9.0e15) as i64
        }
    }

    /// The frame in the encoder's pixel format, padded to the encoded size.
    fn convert(&mut self, img: &RgbImage) -> Result<ff::frame::Video, VideoError> {
        let (w, h) = (self.width as usize, self.height as usize);
        let (ew, eh) = (self.enc_w as usize, self.enc_h as usize);
        let stride = self.rgb.stride(0);
        let src = img.as_raw();
        let dst = self.rgb.data_mut(0);
        for y in 0..eh {
            let sy = y.min(h - 1);
            let row = &src[sy * w * 3..(sy + 1) * w * 3];
            let out = &mut dst[y * stride..y * stride + ew * 3];
            out[..w * 3].copy_from_slice(row);
            if ew > w {
                out[w * 3..].copy_from_slice(&row[(w - 1) * 3..]);
            }
        }
        let mut yuv = ff::frame::Video::new(self.pix, self.enc_w, self.enc_h);
        self.scaler
            .run(&self.rgb, &mut yuv)
            .map_err(|e| VideoError::invalid(&self.path, format!("converting the frame: {e}")))?;
        if self.pix != Pixel::RGB24 {
            yuv.set_color_space(color::Space::BT470BG);
            yuv.set_color_range(color::Range::MPEG);
        }
        Ok(yuv)
    }

    /// Send one picture, shown for `duration` ticks, and write what the encoder returns.
    fn send(
        &mut self,
        mut frame: ff::frame::Video,
        ticks: i64,
        duration: i64,
    ) -> Result<(), VideoError> {
        frame.set_pts(Some(ticks));
        self.durations.insert(ticks, duration.max(1));
        self.encoder.send_frame(&frame).map_err(|e| {
            VideoError::invalid(&self.path, format!("encoding failed: {e} (FFmpeg)"))
        })?;
        self.drain()
    }

    fn drain(&mut self) -> Result<(), VideoError> {
        loop {
            match self.encoder.receive_packet(&mut self.packet) {
                Ok(()) => {
                    // Packet durations are ours to set: without them the muxer gives the last
                    // frame no time on screen, and players drop it.
                    if let Some(d) = self.packet.pts().and_then(|p| self.durations.remove(&p)) {
                        self.packet.set_duration(d);
                    }
                    self.packet.set_stream(self.stream);
                    self.packet.set_position(-1);
                    self.packet.rescale_ts(self.enc_tb, self.stream_tb);
                    let t = packet_time(&self.packet, self.stream_tb);
                    self.packet
                        .write_interleaved(&mut self.output)
                        .map_err(|e| ff_error(&self.path, "writing failed", e))?;
                    if let Some(a) = self.audio.as_mut() {
                        a.write_until(&mut self.output, &self.path, t)?;
                    }
                }
                Err(e) if is_again(&e) => return Ok(()),
                Err(ff::Error::Eof) => return Ok(()),
                Err(e) => {
                    return Err(VideoError::invalid(
                        &self.path,
                        format!("encoding failed: {e} (FFmpeg)"),
                    ));
                }
            }
        }
    }
}

/// Open `codec` for frames of `size`, with our quality and speed defaults.
/// What [`open_encoder`] sets up.
struct EncoderSetup {
    size: (u32, u32),
    tb: Rational,
    fps: f64,
    bitrate: Option<u32>,
    /// The container wants the codec headers out of band.
    global_header: bool,
    /// The container has a fixed frame rate and no presentation times (AVI).
    fixed_rate: bool,
}

fn open_encoder(
    codec: ff::Codec,
    name: &str,
    setup: &EncoderSetup,
) -> Result<(encoder::Video, Pixel), ff::Error> {
    let &EncoderSetup {
        size: (w, h),
        tb,
        fps,
        bitrate,
        global_header,
        fixed_rate,
    } = setup;
    let pix = codec
        .video()
        .ok()
        .and_then(|v| v.formats().map(|f| f.collect::<Vec<_>>()))
        .map_or(Pixel::YUV420P, |formats| {
            if formats.is_empty() || formats.contains(&Pixel::YUV420P) {
                Pixel::YUV420P
            } else {
                formats[0]
            }
        });
    let mut ctx = codec::Context::new_with_codec(codec);
    ctx.set_threading(ff::threading::Config {
        kind: ff::threading::Type::Frame,
        count: 0,
        ..Default::default()
    });
    let mut enc = ctx.encoder().video()?;
    enc.set_width(w);
    enc.set_height(h);
    enc.set_format(pix);
    enc.set_time_base(tb);
    enc.set_frame_rate(fps_rational(fps));
    enc.set_gop((fps * 2.0).round().clamp(1.0, 600.0) as u32);
    if pix != Pixel::RGB24 {
        enc.set_colorspace(color::Space::BT470BG);
        enc.set_color_range(color::Range::MPEG);
    }
    let mut flags = codec::Flags::empty();
    if global_header {
        flags |= codec::Flags::GLOBAL_HEADER;
    }
    let mut dict = ff::Dictionary::new();
    let default_rate =
        (f64::from(w) * f64::from(h) * fps * 0.3).clamp(300_000.0, 60_000_000.0) as usize;
    match (name, bitrate) {
        ("libx264", None) => {
            enc.set_bit_rate(0);
            dict.set("crf", "20");
        }
        ("libvpx-vp9" | "libaom-av1", None) => {
            enc.set_bit_rate(0);
            dict.set("crf", "30");
        }
        ("mpeg4", None) => {
            // Constant quantiser 3 (`-q:v 3`): good quality at any size.
            flags |= codec::Flags::QSCALE;
            enc.set_global_quality(3 * ff::ffi::FF_QP2LAMBDA);
        }
        (_, b) => enc.set_bit_rate(b.map_or(default_rate, |b| b as usize)),
    }
    match name {
        "libx264" => dict.set("preset", "medium"),
        "libvpx-vp9" => {
            dict.set("deadline", "good");
            dict.set("cpu-used", "4");
            dict.set("row-mt", "1");
        }
        "libvpx" => {
            dict.set("deadline", "good");
            dict.set("cpu-used", "4");
        }
        "libaom-av1" => dict.set("cpu-used", "6"),
        _ => {}
    }
    if fixed_rate {
        // AVI stores no presentation times: no B-frames, which would need them.
        enc.set_max_b_frames(0);
    }
    enc.set_flags(flags);
    let enc = enc.open_with(dict)?;
    Ok((enc, pix))
}

fn fps_rational(fps: f64) -> Option<Rational> {
    (fps.is_finite() && fps > 0.0).then(|| {
        if (fps - fps.round()).abs() < 1e-6 {
            Rational::new(fps.round() as i32, 1)
        } else {
            Rational::new((fps * 1001.0).round() as i32, 1001)
        }
    })
}

impl FrameSink for FfSink {
    fn write(&mut self, frame: &Frame) -> Result<(), VideoError> {
        if frame.image.dimensions() != (self.width, self.height) {
            let (w, h) = frame.image.dimensions();
            return Err(VideoError::invalid(
                &self.path,
                format!(
                    "frame is {w}x{h}, the video is {}x{}",
                    self.width, self.height
                ),
            ));
        }
        let abs = self.ticks(frame.time);
        let first = *self.first_ticks.get_or_insert(abs);
        let mut ticks = abs - first;
        if let Some((_, p)) = &self.pending {
            // Timestamps must grow; a repeated or backwards time is nudged one tick on.
            ticks = ticks.max(p + 1);
        }
        let path = self.path.clone();
        let pic = guard(&path, || self.convert(&frame.image))?;
        if let Some((p, pt)) = self.pending.take() {
            self.last_delta = ticks - pt;
            let d = self.last_delta;
            guard(&path, || self.send(p, pt, d))?;
        }
        self.pending = Some((pic, ticks));
        if let Some(d) = frame.duration.filter(|d| d.is_finite() && *d > 0.0) {
            self.last_delta = -self.ticks(d).max(1);
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), VideoError> {
        let Some((p, pt)) = self.pending.take() else {
            return Err(VideoError::invalid(&self.path, "no frames were written"));
        };
        let d = if self.last_delta != 0 {
            self.last_delta.abs()
        } else {
            self.default_delta
        };
        let path = self.path.clone();
        guard(&path, || {
            self.send(p, pt, d)?;
            self.encoder.send_eof().map_err(|e| {
                VideoError::invalid(&self.path, format!("encoding failed: {e} (FFmpeg)"))
            })?;
            self.drain()?;
            if let Some(a) = self.audio.as_mut() {
                a.write_until(&mut self.output, &self.path, None)?;
            }
            self.output
                .write_trailer()
                .map_err(|e| ff_error(&self.path, "cannot finish the file", e))
        })?;
        drop(self);
        fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| VideoError::io(&path, e))
    }
}

// ---------------------------------------------------------------------------------------------
// Audio

/// How many audio streams `path` has (an error where FFmpeg cannot open it).
fn audio_streams(path: &Path) -> Result<usize, VideoError> {
    init();
    let input =
        format::input(&url(path)?).map_err(|e| ff_error(path, "FFmpeg cannot open it", e))?;
    Ok(input
        .streams()
        .filter(|s| s.parameters().medium() == media::Type::Audio)
        .count())
}

/// One line on stderr about the audio of `source` (the file the sound comes from: the output
/// may still have a temporary name).
fn warn(source: &Path, what: &str) {
    eprintln!("warning: {}: {what}", source.display());
}

/// What went wrong, without the file name (which may be a temporary one).
fn reason(e: &VideoError) -> String {
    match e {
        VideoError::Unsupported { why, .. }
        | VideoError::Corrupt { why, .. }
        | VideoError::Invalid { why, .. }
        | VideoError::Translate { why, .. } => why.clone(),
        VideoError::Io { source, .. } => source.to_string(),
    }
}

/// `dir/.stem.video-PID-N.ext`: the intermediate video of an [`AudioSink`].
fn intermediate_name(output: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    crate::hidden_sibling(output, &format!("video-{}-{n}", std::process::id()))
}

/// The sink for `path`, a container the native writers handle (MP4/MOV, GIF, APNG), when
/// [`CreateOptions::audio_from`] is set: an [`AudioSink`] around the native writer, or None where
/// there is no audio to copy (or it cannot be: GIF, APNG), after a warning where audio is lost.
/// (Through FFmpeg, [`FfSink`] copies the audio itself.)
pub(crate) fn native_with_audio(
    path: &Path,
    width: u32,
    height: u32,
    audio_from: &Path,
    create_video: impl FnOnce(&Path) -> Result<Box<dyn FrameSink>, VideoError>,
) -> Result<Option<Box<dyn FrameSink>>, VideoError> {
    let n = match guard(audio_from, || audio_streams(audio_from)) {
        Ok(n) => n,
        Err(e) => {
            warn(audio_from, &format!("no audio copied ({})", reason(&e)));
            return Ok(None);
        }
    };
    if n == 0 {
        return Ok(None);
    }
    if matches!(extension(path).as_str(), "gif" | "apng" | "png") {
        warn(
            audio_from,
            &format!(
                "audio left out: {} cannot hold sound",
                extension(path).to_ascii_uppercase()
            ),
        );
        return Ok(None);
    }
    let video = intermediate_name(path);
    let inner = create_video(&video)?;
    Ok(Some(Box::new(AudioSink {
        inner: Some(inner),
        video,
        out: path.to_path_buf(),
        audio_from: audio_from.to_path_buf(),
        size: (width, height),
    })))
}

/// A video written to an intermediate file, then remuxed with another file's audio.
pub(crate) struct AudioSink {
    inner: Option<Box<dyn FrameSink>>,
    video: PathBuf,
    out: PathBuf,
    audio_from: PathBuf,
    size: (u32, u32),
}

impl Drop for AudioSink {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.video);
    }
}

/// Errors about the intermediate file are reported against the file the caller named.
fn retarget(e: VideoError, out: &Path) -> VideoError {
    match e {
        VideoError::Io { source, .. } => VideoError::io(out, source),
        VideoError::Invalid { why, .. } => VideoError::invalid(out, why),
        VideoError::Unsupported { why, .. } => VideoError::unsupported(out, why),
        VideoError::Corrupt { why, .. } => VideoError::corrupt(out, why),
        other => other,
    }
}

impl FrameSink for AudioSink {
    fn write(&mut self, frame: &Frame) -> Result<(), VideoError> {
        let out = self.out.clone();
        match self.inner.as_mut() {
            Some(s) => s.write(frame).map_err(|e| retarget(e, &out)),
            None => Err(VideoError::invalid(&out, "writer already closed")),
        }
    }

    fn finish(mut self: Box<Self>) -> Result<(), VideoError> {
        let out = self.out.clone();
        let inner = self
            .inner
            .take()
            .ok_or_else(|| VideoError::invalid(&out, "writer already closed"))?;
        inner.finish().map_err(|e| retarget(e, &out))?;
        let copied = match guard(&out, || {
            mux_audio(&self.video, &self.audio_from, &out, self.size)
        }) {
            Ok(n) => n,
            Err(e) => {
                warn(
                    &self.audio_from,
                    &format!("audio not copied ({})", reason(&e)),
                );
                0
            }
        };
        if copied == 0 {
            fs::rename(&self.video, &out).map_err(|e| VideoError::io(&out, e))?;
        } else {
            fs::File::open(&out)
                .and_then(|f| f.sync_all())
                .map_err(|e| VideoError::io(&out, e))?;
        }
        Ok(())
    }
}

/// Write `out`: the video stream of `video` and the audio streams of `audio_from` that the
/// container can hold, packets copied unchanged, interleaved by time. Returns how many audio
/// streams were copied (0: nothing was written, `out` untouched).
fn mux_audio(
    video: &Path,
    audio_from: &Path,
    out: &Path,
    size: (u32, u32),
) -> Result<usize, VideoError> {
    let mut iv =
        format::input(&url(video)?).map_err(|e| ff_error(video, "cannot reopen the video", e))?;
    let vstream = iv
        .streams()
        .best(media::Type::Video)
        .ok_or_else(|| VideoError::corrupt(video, "no video stream"))?;
    let (v_index, v_tb, v_params) = (vstream.index(), vstream.time_base(), vstream.parameters());
    let mut output =
        format::output(&url(out)?).map_err(|e| ff_error(out, "cannot create the output", e))?;
    {
        let mut ost = output
            .add_stream(None::<ff::Codec>)
            .map_err(|e| ff_error(out, "cannot add the video stream", e))?;
        ost.set_parameters(v_params);
        ost.set_time_base(v_tb);
        // SAFETY: the stream's own codec parameters. The codec tag of the source container
        // means nothing in another one; the size is the real (unpadded) one.
        unsafe {
            let par = (*ost.as_mut_ptr()).codecpar;
            (*par).codec_tag = 0;
            (*par).width = size.0 as i32;
            (*par).height = size.1 as i32;
        }
    }
    let Some(mut feed) = AudioFeed::attach(&mut output, audio_from) else {
        drop(output);
        let _ = fs::remove_file(out);
        return Ok(0);
    };
    let copied = feed.streams.len();
    let result = (|| {
        output
            .write_header()
            .map_err(|e| ff_error(out, "cannot write the header with audio", e))?;
        let v_out_tb = output.stream(0).map_or(v_tb, |s| s.time_base());
        loop {
            let mut p = Packet::empty();
            match p.read(&mut iv) {
                Ok(()) if p.stream() == v_index => {
                    p.set_stream(0);
                    p.set_position(-1);
                    p.rescale_ts(v_tb, v_out_tb);
                    let t = packet_time(&p, v_out_tb);
                    p.write_interleaved(&mut output)
                        .map_err(|e| ff_error(out, "writing failed", e))?;
                    feed.write_until(&mut output, out, t)?;
                }
                Ok(()) => {}
                Err(ff::Error::Eof) => break,
                Err(e) => return Err(ff_error(video, "reading failed", e)),
            }
        }
        feed.write_until(&mut output, out, None)?;
        output
            .write_trailer()
            .map_err(|e| ff_error(out, "cannot finish the file", e))?;
        Ok(copied)
    })();
    if result.is_err() {
        drop(output);
        let _ = fs::remove_file(out);
    }
    result
}

/// The decoding time of a packet in seconds (its presentation time where it has no decoding
/// time); None where it has neither.
fn packet_time(p: &Packet, tb: Rational) -> Option<f64> {
    p.dts().or(p.pts()).map(|t| seconds(t, tb))
}

/// The audio streams of another file, copied into an output as its video is written.
struct AudioFeed {
    path: PathBuf,
    input: format::context::Input,
    /// (input stream, output stream, input time base)
    streams: Vec<(usize, usize, Rational)>,
    /// Seconds to take off the audio's times: where the source's video starts, since its frames
    /// are written from 0.
    shift: f64,
    next: Option<(Packet, usize, Rational)>,
    done: bool,
}

impl AudioFeed {
    /// Open `source` and add to `output` a stream for each of its audio streams that the
    /// container can hold. None where there is nothing to copy (with a warning where audio is
    /// lost).
    fn attach(output: &mut format::context::Output, source: &Path) -> Option<AudioFeed> {
        let input = match url(source).and_then(|u| {
            format::input(&u).map_err(|e| ff_error(source, "FFmpeg cannot open it", e))
        }) {
            Ok(i) => i,
            Err(e) => {
                warn(source, &format!("no audio copied ({})", reason(&e)));
                return None;
            }
        };
        let shift = input
            .streams()
            .best(media::Type::Video)
            .and_then(|s| known(s.start_time()).map(|t| seconds(t, s.time_base())))
            .filter(|t| t.is_finite())
            .unwrap_or(0.0);
        let container = output.format().name().to_string();
        let mut streams = Vec::new();
        let mut skipped = Vec::new();
        for s in input.streams() {
            let params = s.parameters();
            if params.medium() != media::Type::Audio {
                continue;
            }
            let id = params.id();
            if !container_takes(output, id) {
                skipped.push(id.name());
                continue;
            }
            let Ok(mut ost) = output.add_stream(None::<ff::Codec>) else {
                skipped.push(id.name());
                continue;
            };
            ost.set_parameters(params);
            ost.set_time_base(s.time_base());
            // SAFETY: the new stream's own codec parameters; the source's codec tag means
            // nothing in another container.
            unsafe {
                (*(*ost.as_mut_ptr()).codecpar).codec_tag = 0;
            }
            streams.push((s.index(), ost.index(), s.time_base()));
        }
        if !skipped.is_empty() {
            warn(
                source,
                &format!(
                    "{} audio left out: the {container} container cannot hold it",
                    skipped.join(", ")
                ),
            );
        }
        (!streams.is_empty()).then(|| AudioFeed {
            path: source.to_path_buf(),
            input,
            streams,
            shift,
            next: None,
            done: false,
        })
    }

    /// Write the audio packets due before `until` seconds (all that are left with None). A
    /// damaged audio source ends the audio with a warning; writing errors are errors.
    fn write_until(
        &mut self,
        output: &mut format::context::Output,
        out: &Path,
        until: Option<f64>,
    ) -> Result<(), VideoError> {
        loop {
            if self.next.is_none() && !self.done {
                self.next = self.read();
                self.done = self.next.is_none();
            }
            let Some((p, _, tb)) = &self.next else {
                return Ok(());
            };
            if let (Some(u), Some(t)) = (until, packet_time(p, *tb))
                && t > u
            {
                return Ok(());
            }
            let Some((mut p, o, tb)) = self.next.take() else {
                return Ok(());
            };
            let otb = output.stream(o).map_or(tb, |s| s.time_base());
            p.set_stream(o);
            p.set_position(-1);
            p.rescale_ts(tb, otb);
            p.write_interleaved(output)
                .map_err(|e| ff_error(out, "writing the audio failed", e))?;
        }
    }

    /// The next packet of a copied stream, its times shifted; None at the end.
    fn read(&mut self) -> Option<(Packet, usize, Rational)> {
        loop {
            let mut p = Packet::empty();
            match p.read(&mut self.input) {
                Ok(()) => {
                    let Some(&(_, o, tb)) = self.streams.iter().find(|s| s.0 == p.stream()) else {
                        continue;
                    };
                    let shift = (self.shift * f64::from(tb.denominator())
                        / f64::from(tb.numerator()))
                    .round() as i64;
                    if let Some(t) = p.pts() {
                        p.set_pts(Some(t - shift));
                    }
                    if let Some(t) = p.dts() {
                        p.set_dts(Some(t - shift));
                    }
                    return Some((p, o, tb));
                }
                Err(ff::Error::Eof) => return None,
                Err(ff::Error::InvalidData) => {}
                Err(e) => {
                    warn(
                        &self.path,
                        &format!("the rest of the audio is left out: reading failed ({e})"),
                    );
                    return None;
                }
            }
        }
    }
}
