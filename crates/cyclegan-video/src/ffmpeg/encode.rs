//! Writing through FFmpeg: [`FfSink`] encodes RGB frames into the containers of
//! [`WRITE_EXTENSIONS`], with the audio of [`CreateOptions::audio_from`] interleaved.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use ff::format::Pixel;
use ff::software::scaling;
use ff::{Packet, Rational, color, encoder, format};
use ffmpeg_next as ff;
use image::RgbImage;

use super::audio::{AudioFeed, packet_time, warn};
use super::encoder::{
    EncoderSetup, encoder_candidates, encoder_time_base, fps_rational, open_encoder,
};
use super::{
    MAX_SIDE, WRITE_EXTENSIONS, container_takes, extension, ff_error, init, is_again,
    set_yuv_matrix, url,
};
use crate::{CreateOptions, Frame, FrameSink, VideoError, guard};

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
