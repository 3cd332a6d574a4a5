//! Audio of another file copied unchanged (stream copy, no re-encoding) into an output being
//! written: [`AudioFeed`] packet by packet as the video advances (used by the FFmpeg writer),
//! [`AudioSink`] by remuxing a finished native MP4/MOV with it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ff::{Packet, Rational, format, media};
use ffmpeg_next as ff;

use super::{container_takes, extension, ff_error, init, known, seconds, url};
use crate::{Frame, FrameSink, VideoError, guard};

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
pub(super) fn warn(source: &Path, what: &str) {
    eprintln!("warning: {}: {what}", source.display());
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
            warn(audio_from, &format!("no audio copied ({})", e.reason()));
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
                    &format!("audio not copied ({})", e.reason()),
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
pub(super) fn packet_time(p: &Packet, tb: Rational) -> Option<f64> {
    p.dts().or(p.pts()).map(|t| seconds(t, tb))
}

/// The audio streams of another file, copied into an output as its video is written.
pub(super) struct AudioFeed {
    /// The file the audio comes from.
    pub path: PathBuf,
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
    pub(super) fn attach(output: &mut format::context::Output, source: &Path) -> Option<AudioFeed> {
        let input = match url(source).and_then(|u| {
            format::input(&u).map_err(|e| ff_error(source, "FFmpeg cannot open it", e))
        }) {
            Ok(i) => i,
            Err(e) => {
                warn(source, &format!("no audio copied ({})", e.reason()));
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
    pub(super) fn write_until(
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
