//! MP4 (H.264) reading and writing: our demuxer + `openh264` decoding, `openh264` encoding + the
//! `mp4` crate's muxer.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use image::RgbImage;
use openh264::OpenH264API;
use openh264::decoder::{Decoder, DecoderConfig, Flush};
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, RateControlMode,
    UsageType,
};
use openh264::formats::{RgbSliceU8, YUVBuffer, YUVSource};

use crate::mp4demux::{self, Probe, Sample};
use crate::orient::Orientation;
use crate::{
    CreateOptions, DamagedFrame, Frame, FrameSink, FrameSource, VideoError, VideoInfo,
    end_on_error, guard, sps, to_ticks,
};

/// Frames of an MP4's first video track, decoded in file order and shown in presentation order.
pub(crate) struct Mp4Source {
    path: PathBuf,
    file: File,
    info: VideoInfo,
    samples: Vec<Sample>,
    next_sample: usize,
    /// Presentation times in ticks, sorted: the decoder outputs pictures in this order.
    pts: Vec<i64>,
    end_pts: i64,
    timescale: u32,
    nal_length_size: usize,
    /// SPS and PPS in Annex B form, sent before the first sample.
    header: Option<Vec<u8>>,
    decoder: Decoder,
    /// Stored (coded) size the decoded pictures are cropped to, before turning them upright.
    stored: (usize, usize),
    orientation: Orientation,
    ready: VecDeque<RgbImage>,
    /// The last picture the decoder gave, repeated in place of a damaged one.
    last_picture: Option<RgbImage>,
    damaged: Vec<DamagedFrame>,
    /// Whether samples are stored in presentation order (no B-frames): then, once the decoder
    /// has settled on its delay, every sample gives one picture, and one that gives none lost it.
    in_order: bool,
    /// Samples sent to the decoder, and pictures out of it (concealed ones included).
    fed: usize,
    produced: usize,
    /// Samples the decoder holds back, measured at its first picture.
    delay: Option<usize>,
    emitted: usize,
    flushed: bool,
    done: bool,
    sample_buf: Vec<u8>,
    annexb: Vec<u8>,
}

fn push_annexb(out: &mut Vec<u8>, nal: &[u8]) {
    out.extend_from_slice(&[0, 0, 0, 1]);
    out.extend_from_slice(nal);
}

/// The decoded picture as RGB, cropped to the size the container declares (our writer pads odd
/// sizes by one row/column; other files may be padded to whole macroblocks).
fn to_rgb(
    yuv: &impl YUVSource,
    (cw, ch): (usize, usize),
    write: impl FnOnce(&mut [u8]),
) -> RgbImage {
    let (w, h) = yuv.dimensions();
    let mut buf = vec![0u8; w * h * 3];
    write(&mut buf);
    let img = RgbImage::from_raw(w as u32, h as u32, buf).unwrap_or_default();
    if cw > 0 && ch > 0 && cw <= w && ch <= h && (cw, ch) != (w, h) && w - cw < 16 && h - ch < 16 {
        image::imageops::crop_imm(&img, 0, 0, cw as u32, ch as u32).to_image()
    } else {
        img
    }
}

impl Mp4Source {
    pub(crate) fn open(path: &Path) -> Result<Self, VideoError> {
        let mut file = File::open(path).map_err(|e| VideoError::io(path, e))?;
        let track = match mp4demux::read(path, &mut file)? {
            Probe::Video(t) => t,
            Probe::UnsupportedCodec(why) => return Err(VideoError::unsupported(path, why)),
        };
        let _ = track.codec;
        refuse_unsupported(path, &track.sps)?;
        let in_order = track.samples.windows(2).all(|w| w[0].cts < w[1].cts);
        let mut pts: Vec<i64> = track.samples.iter().map(|s| s.cts).collect();
        pts.sort_unstable();
        let first = pts[0];
        for p in &mut pts {
            *p -= first;
        }
        let end_pts = track.end_cts.saturating_sub(first).max(pts[pts.len() - 1]);
        let mut header = Vec::new();
        for nal in track.sps.iter().chain(&track.pps) {
            push_annexb(&mut header, nal);
        }
        let config = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
        let mut decoder =
            Decoder::with_api_config(OpenH264API::from_source(), config).map_err(|e| {
                VideoError::corrupt(path, format!("cannot start the H.264 decoder: {e}"))
            })?;
        // OpenH264's own concealment: the frames after a damaged one decode against its
        // patched picture (with some smear, as players show) instead of all failing for a lost
        // reference until the next key frame. The damaged frame itself still fails; we repeat
        // the previous picture in its place.
        // SAFETY: a valid decoder and a pointer to a live i32, as SetOption expects.
        unsafe {
            let mut idc: i32 = openh264_sys2::ERROR_CON_SLICE_MV_COPY_CROSS_IDR;
            decoder.raw_api().set_option(
                openh264_sys2::DECODER_OPTION_ERROR_CON_IDC,
                (&raw mut idc).cast(),
            );
        }
        let ts = f64::from(track.timescale);
        let orientation = track.orientation;
        let (width, height) = orientation.displayed_size(track.width, track.height);
        let info = VideoInfo {
            width,
            height,
            frame_count: Some(track.samples.len()),
            duration: Some(end_pts as f64 / ts),
            timescale: Some(track.timescale),
        };
        Ok(Self {
            path: path.to_path_buf(),
            file,
            info,
            samples: track.samples,
            next_sample: 0,
            pts,
            end_pts,
            timescale: track.timescale,
            nal_length_size: track.nal_length_size,
            header: Some(header),
            decoder,
            stored: (track.width as usize, track.height as usize),
            orientation,
            ready: VecDeque::new(),
            last_picture: None,
            damaged: Vec::new(),
            in_order,
            fed: 0,
            produced: 0,
            delay: None,
            emitted: 0,
            flushed: false,
            done: false,
            sample_buf: Vec::new(),
            annexb: Vec::new(),
        })
    }

    /// Feed the next sample (or the final flush) to the decoder; false when nothing is left.
    fn pump(&mut self) -> Result<bool, VideoError> {
        if self.next_sample < self.samples.len() {
            let s = self.samples[self.next_sample];
            self.next_sample += 1;
            self.sample_buf.resize(s.size as usize, 0);
            self.file
                .seek(SeekFrom::Start(s.offset))
                .and_then(|_| self.file.read_exact(&mut self.sample_buf))
                .map_err(|e| VideoError::io(&self.path, e))?;
            // MP4 stores length-prefixed NAL units; the decoder wants Annex B start codes.
            self.annexb.clear();
            if let Some(h) = self.header.take() {
                self.annexb.extend_from_slice(&h);
            }
            let mut p = 0usize;
            let n = self.nal_length_size;
            let mut intact = true;
            while p + n <= self.sample_buf.len() {
                let len = self.sample_buf[p..p + n]
                    .iter()
                    .fold(0usize, |a, &b| (a << 8) | usize::from(b));
                p += n;
                if len > self.sample_buf.len() - p {
                    intact = false;
                    break;
                }
                push_annexb(&mut self.annexb, &self.sample_buf[p..p + len]);
                p += len;
            }
            let decoded = if intact {
                self.decoder.decode(&self.annexb).ok()
            } else {
                None
            };
            self.fed += 1;
            let late = self.delay.is_some_and(|d| self.fed - self.produced > d);
            match decoded {
                Some(Some(yuv)) => {
                    let img = to_rgb(&yuv, self.stored, |b| yuv.write_rgb8(b));
                    self.last_picture = Some(img.clone());
                    self.ready.push_back(img);
                    self.produced += 1;
                    self.delay.get_or_insert(self.fed - self.produced);
                }
                // Nothing came out of a sample that needs no reordering, past the decoder's
                // delay: its picture is lost.
                Some(None) if self.in_order && late => self.conceal(self.next_sample - 1)?,
                Some(None) => {}
                None => self.conceal(self.next_sample - 1)?,
            }
            Ok(true)
        } else if !self.flushed {
            self.flushed = true;
            let crop = self.stored;
            // Pictures still held for reordering; a failure here (damage near the end) loses
            // them, and the frames without a picture are concealed.
            let rest: Vec<RgbImage> = match self.decoder.flush_remaining() {
                Ok(rest) => rest
                    .iter()
                    .map(|yuv| to_rgb(yuv, crop, |b| yuv.write_rgb8(b)))
                    .collect(),
                Err(_) => Vec::new(),
            };
            if let Some(last) = rest.last() {
                self.last_picture = Some(last.clone());
            }
            self.ready.extend(rest);
            let missing = self
                .pts
                .len()
                .saturating_sub(self.emitted + self.ready.len());
            for k in 0..missing {
                self.conceal(self.pts.len() - missing + k)?;
            }
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Stand in for the picture of frame `index` (decode order) that did not decode: the last
    /// decoded picture again, as players do. Damage before any picture decoded cannot be hidden.
    fn conceal(&mut self, index: usize) -> Result<(), VideoError> {
        let time = self.samples.get(index).map_or(0.0, |s| {
            (s.cts - self.pts[0]) as f64 / f64::from(self.timescale)
        });
        let frame = DamagedFrame { index, time };
        let Some(previous) = self.last_picture.clone() else {
            return Err(VideoError::corrupt(
                &self.path,
                format!(
                    "{frame} does not decode, and no frame before it did: the H.264 data is \
                     damaged, or uses a feature the built-in decoder (OpenH264) lacks; a build \
                     with `--features ffmpeg` may read it"
                ),
            ));
        };
        self.damaged.push(frame);
        self.ready.push_back(previous);
        self.produced += 1;
        Ok(())
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, VideoError> {
        loop {
            if let Some(image) = self.ready.pop_front() {
                let image = self.orientation.apply(image);
                let Some(&t) = self.pts.get(self.emitted) else {
                    // More pictures than samples cannot happen with a sane stream; drop extras.
                    continue;
                };
                let next = self
                    .pts
                    .get(self.emitted + 1)
                    .copied()
                    .unwrap_or(self.end_pts);
                self.emitted += 1;
                let ts = f64::from(self.timescale);
                let duration = (next > t).then(|| (next - t) as f64 / ts);
                return Ok(Some(Frame {
                    image,
                    time: t as f64 / ts,
                    duration,
                }));
            }
            if !self.pump()? {
                if self.emitted == 0 {
                    return Err(VideoError::corrupt(
                        &self.path,
                        "the H.264 stream holds no decodable picture",
                    ));
                }
                return Ok(None);
            }
        }
    }
}

impl Iterator for Mp4Source {
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

impl FrameSource for Mp4Source {
    fn info(&self) -> &VideoInfo {
        &self.info
    }
    fn damaged(&self) -> &[DamagedFrame] {
        &self.damaged
    }
}

/// Refuse, with its name, an H.264 variant OpenH264 cannot decode (its own failure says nothing
/// a user can act on). Parameter sets that do not parse are left to the decoder.
fn refuse_unsupported(path: &Path, sps_list: &[Vec<u8>]) -> Result<(), VideoError> {
    for nal in sps_list {
        if let Some(why) = sps::parse(nal).as_ref().and_then(sps::unsupported_reason) {
            return Err(VideoError::unsupported(
                path,
                format!(
                    "{why}: the built-in decoder (OpenH264) reads 8-bit 4:2:0 progressive H.264 only"
                ),
            ));
        }
    }
    Ok(())
}

/// An encoded picture waiting for the next frame's time, which gives its duration.
struct Pending {
    bytes: Vec<u8>,
    ticks: i64,
    sync: bool,
}

/// H.264 in MP4, written as frames come; the sample tables are written at [`FrameSink::finish`].
pub(crate) struct Mp4Sink {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    mux: Option<mp4::Mp4Writer<BufWriter<File>>>,
    encoder: Encoder,
    width: u32,
    height: u32,
    enc_w: usize,
    enc_h: usize,
    timescale: u32,
    rgb: Vec<u8>,
    yuv: YUVBuffer,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    pending: Option<Pending>,
    first_ticks: Option<i64>,
    last_delta: i64,
    frames: usize,
}

impl Mp4Sink {
    pub(crate) fn create(
        path: &Path,
        width: u32,
        height: u32,
        opts: &CreateOptions,
    ) -> Result<Self, VideoError> {
        if width.max(height) > 3840 || width.min(height) > 2160 {
            return Err(VideoError::invalid(
                path,
                format!("H.264 encoding is limited to 3840x2160; the frames are {width}x{height}"),
            ));
        }
        if opts.timescale == 0 {
            return Err(VideoError::invalid(path, "MP4 timescale must be positive"));
        }
        let enc_w = (width as usize).div_ceil(2) * 2;
        let enc_h = (height as usize).div_ceil(2) * 2;
        let fps = if opts.fps_hint.is_finite() && opts.fps_hint > 0.0 {
            opts.fps_hint
        } else {
            30.0
        };
        let bitrate = opts.bitrate.unwrap_or_else(|| {
            (enc_w as f64 * enc_h as f64 * fps * 0.3).clamp(300_000.0, 60_000_000.0) as u32
        });
        // Frame skipping would silently drop pictures, breaking the one-frame-in-one-frame-out
        // promise; rate control by bit rate with skipping off never drops a frame.
        let config = EncoderConfig::new()
            .skip_frames(false)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(bitrate))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            .usage_type(UsageType::CameraVideoRealTime)
            .intra_frame_period(IntraFramePeriod::from_num_frames(
                (fps * 2.0).round().max(1.0) as u32,
            ));
        let mut encoder =
            Encoder::with_api_config(OpenH264API::from_source(), config).map_err(|e| {
                VideoError::invalid(path, format!("cannot start the H.264 encoder: {e}"))
            })?;
        // With skipping off OpenH264 prints a rate-control warning to stderr when it starts;
        // the trace level is the one option that can be set before that.
        // SAFETY: a valid encoder and a pointer to a live i32, as SetOption expects.
        unsafe {
            let mut quiet: i32 = openh264_sys2::WELS_LOG_QUIET;
            encoder.raw_api().set_option(
                openh264_sys2::ENCODER_OPTION_TRACE_LEVEL,
                (&raw mut quiet).cast(),
            );
        }
        let file = File::create(path).map_err(|e| VideoError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            mux: None,
            encoder,
            width,
            height,
            enc_w,
            enc_h,
            timescale: opts.timescale,
            rgb: vec![0; enc_w * enc_h * 3],
            yuv: YUVBuffer::new(enc_w, enc_h),
            sps: None,
            pps: None,
            pending: None,
            first_ticks: None,
            last_delta: 0,
            frames: 0,
        })
    }

    fn mp4_err(&self, e: mp4::Error) -> VideoError {
        match e {
            mp4::Error::IoError(io) => VideoError::io(&self.path, io),
            other => VideoError::invalid(&self.path, format!("MP4 writer: {other}")),
        }
    }

    /// Write the pending sample, shown for `duration` ticks.
    fn emit(&mut self, p: Pending, duration: i64) -> Result<(), VideoError> {
        if self.mux.is_none() {
            let (Some(sps), Some(pps)) = (self.sps.clone(), self.pps.clone()) else {
                return Err(VideoError::invalid(
                    &self.path,
                    "the H.264 encoder produced no parameter sets",
                ));
            };
            let cfg = mp4::Mp4Config {
                major_brand: mp4::FourCC::from(*b"isom"),
                minor_version: 512,
                compatible_brands: [*b"isom", *b"iso2", *b"avc1", *b"mp41"]
                    .into_iter()
                    .map(mp4::FourCC::from)
                    .collect(),
                timescale: self.timescale,
            };
            let out = self
                .out
                .take()
                .ok_or_else(|| VideoError::invalid(&self.path, "writer already closed"))?;
            let mut mux = mp4::Mp4Writer::write_start(out, &cfg).map_err(|e| self.mp4_err(e))?;
            let track = mp4::TrackConfig {
                track_type: mp4::TrackType::Video,
                timescale: self.timescale,
                language: "und".into(),
                // The real (possibly odd) size: our reader crops the padded picture back to it.
                media_conf: mp4::MediaConfig::AvcConfig(mp4::AvcConfig {
                    width: self.width as u16,
                    height: self.height as u16,
                    seq_param_set: sps,
                    pic_param_set: pps,
                }),
            };
            mux.add_track(&track).map_err(|e| self.mp4_err(e))?;
            self.mux = Some(mux);
        }
        let duration = u32::try_from(duration.max(1)).unwrap_or(u32::MAX);
        let sample = mp4::Mp4Sample {
            start_time: u64::try_from(p.ticks).unwrap_or(0),
            duration,
            rendering_offset: 0,
            is_sync: p.sync,
            bytes: p.bytes.into(),
        };
        let r = self.mux.as_mut().map(|m| m.write_sample(1, &sample));
        if let Some(Err(e)) = r {
            return Err(self.mp4_err(e));
        }
        Ok(())
    }

    fn encode(&mut self, img: &RgbImage, ms: u64) -> Result<(Vec<u8>, bool), VideoError> {
        // Copy into the even-sized buffer, repeating the last column/row for odd sizes.
        let (w, h) = (self.width as usize, self.height as usize);
        let src = img.as_raw();
        for y in 0..self.enc_h {
            let sy = y.min(h - 1);
            let row = &src[sy * w * 3..(sy + 1) * w * 3];
            let dst = &mut self.rgb[y * self.enc_w * 3..(y + 1) * self.enc_w * 3];
            dst[..w * 3].copy_from_slice(row);
            if self.enc_w > w {
                dst[w * 3..].copy_from_slice(&row[(w - 1) * 3..]);
            }
        }
        self.yuv
            .read_rgb8(RgbSliceU8::new(&self.rgb, (self.enc_w, self.enc_h)));
        let bs = self
            .encoder
            .encode_at(&self.yuv, openh264::Timestamp::from_millis(ms))
            .map_err(|e| VideoError::invalid(&self.path, format!("H.264 encoding failed: {e}")))?;
        let frame_type = bs.frame_type();
        if matches!(frame_type, FrameType::Skip | FrameType::Invalid) {
            return Err(VideoError::invalid(
                &self.path,
                "the H.264 encoder skipped a frame",
            ));
        }
        let mut sample = Vec::new();
        let (mut sps, mut pps) = (None, None);
        for l in 0..bs.num_layers() {
            let Some(layer) = bs.layer(l) else { continue };
            for i in 0..layer.nal_count() {
                let Some(nal) = layer.nal_unit(i) else {
                    continue;
                };
                // Strip the Annex B start code; MP4 wants a length prefix instead.
                let start = nal
                    .iter()
                    .position(|&b| b != 0)
                    .map_or(nal.len(), |p| p + 1);
                let body = &nal[start.min(nal.len())..];
                match body.first().map(|b| b & 0x1f) {
                    None => {}
                    Some(7) => sps = Some(body.to_vec()),
                    Some(8) => pps = Some(body.to_vec()),
                    Some(_) => {
                        sample.extend_from_slice(&(body.len() as u32).to_be_bytes());
                        sample.extend_from_slice(body);
                    }
                }
            }
        }
        if self.sps.is_none() {
            self.sps = sps;
            self.pps = pps;
        }
        if sample.is_empty() {
            return Err(VideoError::invalid(
                &self.path,
                "the H.264 encoder returned an empty frame",
            ));
        }
        Ok((sample, frame_type == FrameType::IDR))
    }
}

impl FrameSink for Mp4Sink {
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
        let abs = to_ticks(frame.time, self.timescale);
        let first = *self.first_ticks.get_or_insert(abs);
        let mut ticks = abs - first;
        if let Some(p) = &self.pending {
            // Timestamps must grow; a repeated or backwards time is nudged one tick on.
            ticks = ticks.max(p.ticks + 1);
        }
        let ms = u64::try_from(ticks.saturating_mul(1000) / i64::from(self.timescale)).unwrap_or(0);
        let path = self.path.clone();
        let (bytes, sync) = guard(&path, || self.encode(&frame.image, ms))?;
        if let Some(p) = self.pending.take() {
            self.last_delta = ticks - p.ticks;
            self.emit(p, self.last_delta)?;
        }
        self.pending = Some(Pending { bytes, ticks, sync });
        // Remember a declared duration for the last frame.
        if let Some(d) = frame.duration.filter(|d| d.is_finite() && *d > 0.0) {
            self.last_delta = -to_ticks(d, self.timescale).max(1);
        }
        self.frames += 1;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), VideoError> {
        let Some(p) = self.pending.take() else {
            return Err(VideoError::invalid(&self.path, "no frames were written"));
        };
        // A negative `last_delta` marks the last frame's own declared duration.
        let d = if self.last_delta < 0 {
            -self.last_delta
        } else if self.last_delta > 0 {
            self.last_delta
        } else {
            (f64::from(self.timescale) / 30.0).round() as i64
        };
        self.emit(p, d)?;
        let mut mux = self
            .mux
            .take()
            .ok_or_else(|| VideoError::invalid(&self.path, "nothing was written"))?;
        mux.write_end().map_err(|e| self.mp4_err(e))?;
        let mut out = mux.into_writer();
        out.flush().map_err(|e| VideoError::io(&self.path, e))?;
        out.get_ref()
            .sync_all()
            .map_err(|e| VideoError::io(&self.path, e))?;
        Ok(())
    }
}
