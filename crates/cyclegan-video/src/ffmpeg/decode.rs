//! Reading through FFmpeg: [`FfSource`], the best video stream of any file FFmpeg opens, as RGB
//! frames timed from the stream's timestamps.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};

use ff::format::Pixel;
use ff::software::scaling;
use ff::{Packet, Rational, codec, color, format, media};
use ffmpeg_next as ff;
use image::RgbImage;

use super::{MAX_SIDE, ff_error, init, is_again, known, seconds, set_yuv_matrix, url};
use crate::orient::Orientation;
use crate::{Frame, FrameSource, VideoError, VideoInfo, end_on_error, guard};

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
    /// The decoded (stored) size, before turning the picture upright.
    coded: (u32, u32),
    orientation: Orientation,
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
        let orientation = stream_orientation(&stream);
        let (shown_w, shown_h) = orientation.displayed_size(width, height);
        let info = VideoInfo {
            width: shown_w,
            height: shown_h,
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
            coded: (width, height),
            orientation,
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
                    let image = self.orientation.apply(self.convert()?);
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
            let (w, h) = self.coded;
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
        let (w, h) = (self.coded.0 as usize, self.coded.1 as usize);
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

/// How the stream says to turn its pictures for display: its display matrix (FFmpeg keeps the
/// MP4/MOV header's matrix as it is), else an old-style `rotate` tag (clockwise degrees).
fn stream_orientation(stream: &format::stream::Stream) -> Orientation {
    for sd in stream.side_data() {
        let m = sd.data();
        if sd.kind() == ff::codec::packet::side_data::Type::DisplayMatrix && m.len() >= 36 {
            let v = |i: usize| {
                f64::from(i32::from_ne_bytes([
                    m[4 * i],
                    m[4 * i + 1],
                    m[4 * i + 2],
                    m[4 * i + 3],
                ]))
            };
            return Orientation::from_matrix(v(0), v(1), v(3), v(4))
                .unwrap_or(Orientation::IDENTITY);
        }
    }
    stream
        .metadata()
        .get("rotate")
        .and_then(|r| r.trim().parse::<f64>().ok())
        .map_or(Orientation::IDENTITY, Orientation::from_clockwise_degrees)
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
