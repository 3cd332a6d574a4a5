//! Video translation: decode, translate in batches through a callback, smooth, encode.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use image::RgbImage;
use image::imageops::FilterType;

use crate::flicker::{TemporalParams, TemporalSmoother};
use crate::{CreateOptions, DamagedFrame, Frame, FrameSink, VideoError, create_with, open};

/// Options of [`translate_video`].
#[derive(Debug, Clone, PartialEq)]
pub struct VideoTranslateOptions {
    /// Resize frames so that their shorter side has this many pixels (aspect kept) before
    /// translation; `None` keeps the input's size. The output has this working size.
    pub size: Option<u32>,
    /// Frames given to the callback at once (at least 1). Memory holds about `batch` frames.
    pub batch: usize,
    /// Write the (resized) input and its translation next to each other, input on the left.
    pub side_by_side: bool,
    /// Motion-compensated temporal smoothing against flicker ([`TemporalSmoother`]); `None`
    /// writes the callback's frames as they are.
    pub temporal: Option<TemporalParams>,
    /// H.264 bit rate for MP4 output (bits per second); `None` picks one from the frame size.
    pub bitrate: Option<u32>,
    /// Most frames that may be damaged (not decodable, replaced by the frame before them) before
    /// the job fails; `None`: [`default_damage_limit`] of the frame count.
    pub max_damaged_frames: Option<usize>,
}

impl Default for VideoTranslateOptions {
    fn default() -> Self {
        Self {
            size: None,
            batch: 4,
            side_by_side: false,
            temporal: Some(TemporalParams::default()),
            bitrate: None,
            max_damaged_frames: None,
        }
    }
}

/// What [`translate_video`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoReport {
    /// The file written.
    pub output: PathBuf,
    /// Frames read and written (always equal).
    pub frames: usize,
    /// Size of the written frames.
    pub width: u32,
    /// Size of the written frames.
    pub height: u32,
    /// Length of the clip in seconds (last frame's time plus its duration where known).
    pub duration: f64,
    /// Wall time of the whole job.
    pub elapsed: Duration,
    /// Of which inside the translation callback.
    pub translate_time: Duration,
    /// Of which in temporal smoothing.
    pub temporal_time: Duration,
    /// Frames of the input that did not decode and were concealed (the frame before them
    /// repeated at their time); empty for a clean input.
    pub damaged: Vec<DamagedFrame>,
}

/// How many damaged frames a clip of `frames` frames may have by default: 5 %, at least 1.
/// Players hide a few; more means the file is broken rather than scratched.
pub fn default_damage_limit(frames: usize) -> usize {
    frames.div_ceil(20).max(1)
}

/// The translation callback of [`translate_video`]: a batch of frames in, as many translated
/// frames out (in order), or a message saying why not.
pub type FrameTranslator<'a> = dyn FnMut(&[RgbImage]) -> Result<Vec<RgbImage>, String> + 'a;

/// Progress callback: `(frames done, total if the container says)`.
pub type Progress<'a> = &'a mut dyn FnMut(usize, Option<usize>);

/// Removes the temporary output unless disarmed, so a failed job leaves nothing behind.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// `dir/.name.partial-PID.ext`: same folder (so the final rename is atomic), same extension
/// (it picks the container), hidden.
fn temp_name(output: &Path) -> PathBuf {
    crate::hidden_sibling(output, &format!("partial-{}", std::process::id()))
}

/// The working size: shorter side scaled to `size`, aspect kept.
fn working_size(w: u32, h: u32, size: Option<u32>) -> (u32, u32) {
    match size {
        None => (w, h),
        Some(s) => {
            let s = s.max(1);
            if w <= h {
                (
                    s,
                    ((f64::from(h) * f64::from(s) / f64::from(w)).round() as u32).max(1),
                )
            } else {
                (
                    ((f64::from(w) * f64::from(s) / f64::from(h)).round() as u32).max(1),
                    s,
                )
            }
        }
    }
}

/// Translate a video frame by frame with `translate` and write the result.
///
/// * **Input**: anything [`open`] reads (MP4/H.264, GIF, APNG by default; every other video
///   with the `ffmpeg` feature). **Output**: the container of `output`'s extension
///   ([`create_with`]).
/// * **Audio**: the input's audio tracks are copied into the output unchanged
///   ([`CreateOptions::audio_from`]): MP4/MOV to MP4/MOV in every build, everything else with
///   the `ffmpeg` feature; a track the output container cannot hold is left out with a warning
///   on stderr.
/// * **Frames and times**: one output frame per input frame, each with the input frame's
///   timestamp and duration, so variable frame rates survive; MP4 output uses the input's
///   timescale where it has one, making times exact.
/// * **Sizes**: frames are resized to `opts.size` (shorter side) if set, else kept as they are,
///   and `translate` receives them at that size. It may return frames of another size (e.g.
///   rounded to a multiple of 4); they are resized back to the working size. Odd sizes are fine.
/// * **Callback**: `translate(frames)` gets up to `opts.batch` consecutive frames and must
///   return exactly as many translated frames, in order; an `Err(message)` stops the job with
///   [`VideoError::Translate`].
/// * **Damage**: a frame that does not decode in the middle of an MP4 is concealed (the frame
///   before it repeated at its time) and listed in [`VideoReport::damaged`]; more than
///   `opts.max_damaged_frames` such frames fail the job, naming them.
/// * **Orientation**: frames are translated and written upright (a phone clip's rotation is
///   applied when reading, see [`open`]).
/// * **Flicker**: with `opts.temporal`, each result is blended with the previous one warped by
///   the input's optical flow ([`TemporalSmoother`]).
/// * **Memory**: frames stream through; about `batch` frames are held at once, whatever the
///   video's length.
/// * **Safety of the output**: everything is written to a hidden temporary file in the output's
///   folder and renamed to `output` only when complete; on error it is removed and `output` is
///   left as it was.
/// * `progress(done, total)` is called after each batch.
///
/// ```no_run
/// # use std::path::Path;
/// # use cyclegan_video::{translate_video, VideoTranslateOptions};
/// // A stand-in "network" that inverts colours.
/// let mut invert = |frames: &[image::RgbImage]| -> Result<Vec<image::RgbImage>, String> {
///     Ok(frames.iter().map(|f| { let mut g = f.clone(); image::imageops::invert(&mut g); g }).collect())
/// };
/// let report = translate_video(Path::new("in.mp4"), Path::new("out.mp4"),
///     &VideoTranslateOptions::default(), &mut invert, &mut |done, total| eprintln!("{done}/{total:?}"))?;
/// println!("{} frames", report.frames);
/// # Ok::<(), cyclegan_video::VideoError>(())
/// ```
pub fn translate_video(
    input: &Path,
    output: &Path,
    opts: &VideoTranslateOptions,
    translate: &mut FrameTranslator<'_>,
    progress: Progress<'_>,
) -> Result<VideoReport, VideoError> {
    let start = Instant::now();
    let mut source = open(input)?;
    let info = source.info().clone();
    let (ww, wh) = working_size(info.width, info.height, opts.size);
    let (ow, oh) = if opts.side_by_side {
        (ww * 2, wh)
    } else {
        (ww, wh)
    };
    let tmp_path = temp_name(output);
    let mut tmp = TempFile(Some(tmp_path.clone()));
    let fps_hint = match (info.frame_count, info.duration) {
        (Some(n), Some(d)) if d > 0.0 && n > 1 => n as f64 / d,
        _ => 30.0,
    };
    let create_opts = CreateOptions {
        timescale: info.timescale.unwrap_or(90_000),
        fps_hint,
        bitrate: opts.bitrate,
        // Keep the sound.
        audio_from: Some(input.to_path_buf()),
    };
    let mut sink = create_with(&tmp_path, ow, oh, &create_opts).map_err(|e| retarget(e, output))?;
    let mut smoother = opts.temporal.clone().map(TemporalSmoother::new);
    let batch = opts.batch.max(1);
    let mut frames = 0usize;
    let mut duration = 0.0f64;
    let (mut t_translate, mut t_temporal) = (Duration::ZERO, Duration::ZERO);
    let mut pending: Vec<Frame> = Vec::with_capacity(batch);
    let mut run_batch =
        |pending: &mut Vec<Frame>, sink: &mut Box<dyn FrameSink>| -> Result<(), VideoError> {
            let inputs: Vec<RgbImage> = pending.iter().map(|f| f.image.clone()).collect();
            let t0 = Instant::now();
            let outs = translate(&inputs).map_err(|why| VideoError::Translate {
                path: input.to_path_buf(),
                why,
            })?;
            t_translate += t0.elapsed();
            if outs.len() != inputs.len() {
                return Err(VideoError::Translate {
                    path: input.to_path_buf(),
                    why: format!(
                        "the translation returned {} frames for {}",
                        outs.len(),
                        inputs.len()
                    ),
                });
            }
            for ((frame, inp), mut out) in pending.drain(..).zip(&inputs).zip(outs) {
                if out.dimensions() != (ww, wh) {
                    out = image::imageops::resize(&out, ww, wh, FilterType::CatmullRom);
                }
                if let Some(s) = smoother.as_mut() {
                    let t0 = Instant::now();
                    out = s.process(inp, out);
                    t_temporal += t0.elapsed();
                }
                let image = if opts.side_by_side {
                    let mut both = RgbImage::new(ow, oh);
                    image::imageops::replace(&mut both, inp, 0, 0);
                    image::imageops::replace(&mut both, &out, i64::from(ww), 0);
                    both
                } else {
                    out
                };
                sink.write(&Frame {
                    image,
                    time: frame.time,
                    duration: frame.duration,
                })
                .map_err(|e| retarget(e, output))?;
            }
            Ok(())
        };
    let limit = opts
        .max_damaged_frames
        .unwrap_or_else(|| default_damage_limit(info.frame_count.unwrap_or(0)));
    while let Some(item) = source.next() {
        let mut frame = item?;
        let damaged = source.damaged();
        if damaged.len() > limit {
            return Err(too_damaged(input, damaged, limit));
        }
        if frame.image.dimensions() != (ww, wh) {
            frame.image = image::imageops::resize(&frame.image, ww, wh, FilterType::Triangle);
        }
        duration = frame.time + frame.duration.unwrap_or(0.0);
        pending.push(frame);
        frames += 1;
        if pending.len() == batch {
            run_batch(&mut pending, &mut sink)?;
            progress(frames, info.frame_count);
        }
    }
    if !pending.is_empty() {
        run_batch(&mut pending, &mut sink)?;
        progress(frames, info.frame_count);
    }
    if frames == 0 {
        return Err(VideoError::corrupt(input, "the video has no frames"));
    }
    sink.finish().map_err(|e| retarget(e, output))?;
    fs::rename(&tmp_path, output).map_err(|e| VideoError::io(output, e))?;
    tmp.0 = None;
    Ok(VideoReport {
        output: output.to_path_buf(),
        frames,
        width: ow,
        height: oh,
        duration,
        elapsed: start.elapsed(),
        translate_time: t_translate,
        temporal_time: t_temporal,
        damaged: source.damaged().to_vec(),
    })
}

/// The error for a clip with more damaged frames than `limit`, naming the first few.
fn too_damaged(input: &Path, damaged: &[DamagedFrame], limit: usize) -> VideoError {
    let first: Vec<String> = damaged.iter().take(5).map(ToString::to_string).collect();
    let more = if damaged.len() > 5 { ", ..." } else { "" };
    let allowed = match limit {
        0 => "no damaged frame may be concealed".to_string(),
        1 => "only 1 damaged frame may be concealed".to_string(),
        n => format!("only {n} damaged frames may be concealed"),
    };
    VideoError::corrupt(
        input,
        format!(
            "damaged data at {}{more} (frames that do not decode): {allowed}; raise the limit \
             with --max-damaged-frames",
            first.join(", ")
        ),
    )
}

/// Errors about the temporary file are reported against the output the user named.
fn retarget(e: VideoError, output: &Path) -> VideoError {
    match e {
        VideoError::Io { source, .. } => VideoError::Io {
            path: output.to_path_buf(),
            source,
        },
        VideoError::Invalid { why, .. } => VideoError::Invalid {
            path: output.to_path_buf(),
            why,
        },
        VideoError::Unsupported { why, .. } => VideoError::Unsupported {
            path: output.to_path_buf(),
            why,
        },
        VideoError::Corrupt { why, .. } => VideoError::Corrupt {
            path: output.to_path_buf(),
            why,
        },
        other => other,
    }
}
