//! Reading one video or animation: sample its frames (by time or count, skipping unchanged
//! ones), decide one bar crop for the whole clip, and stage the kept frames. A clip too long to
//! hold in memory is decoded a second time instead.

use image::RgbImage;

use super::error::PrepareError;
use super::options::CropBars;
use super::records::VideoSummary;
use super::staged::{FrameAt, Origin, ReadJob, ReadOut, Stager, reason};
use crate::bars;
use crate::hash;
use crate::imageio::ColorMode;
use crate::sources::{self, ChangeFilter, FrameSampler, Skip};

/// Most frames the clip crop is decided from (evenly spread over the kept frames).
const CROP_SAMPLE_FRAMES: usize = 25;

/// Where and why decoding a clip stopped early.
struct DecodeStop {
    frame: usize,
    why: String,
}

/// Read one video; a file that cannot be opened, or decoding that stops early, is listed in
/// `skipped` (with the frames before the failure kept), never an error.
pub(super) fn read_video(stager: &Stager, job: &ReadJob) -> Result<ReadOut, PrepareError> {
    let o = stager.opts;
    let path = &job.file.path;
    let mut out = ReadOut::default();
    let mut summary = VideoSummary {
        path: path.clone(),
        domain: job.domain,
        size: [0, 0],
        frames_decoded: 0,
        frames_sampled: 0,
        frames_unchanged: 0,
        frames_kept: 0,
        crop: None,
        crop_decided_from: 0,
        error: None,
    };
    let frames = match sources::open_video(path) {
        Ok(f) => f,
        Err(e) => {
            out.skipped.push(Skip {
                path: path.clone(),
                reason: reason(path, &e),
            });
            return Ok(out);
        }
    };
    let want_bars = o.crop_bars != CropBars::None;
    // First pass: choose the frames; keep them in memory while they fit, and their bar detections.
    let mut sampler = FrameSampler::new(o.sampling);
    let mut change = ChangeFilter::new(o.min_change);
    let mut kept: Vec<FrameAt> = Vec::new();
    let mut detections = Vec::new();
    let mut buffer: Vec<RgbImage> = Vec::new();
    let mut buffered = 0usize;
    let mut overflow = false;
    let mut stopped = None;
    for (i, fr) in frames.enumerate() {
        let fr = match fr {
            Ok(f) => f,
            Err(e) => {
                stopped = Some(DecodeStop {
                    frame: i,
                    why: reason(path, &e),
                });
                break;
            }
        };
        summary.frames_decoded += 1;
        summary.size = [fr.image.width(), fr.image.height()];
        if !sampler.take(i, fr.time) {
            continue;
        }
        summary.frames_sampled += 1;
        if !change.take(hash::phash(&fr.image)) {
            summary.frames_unchanged += 1;
            continue;
        }
        kept.push(FrameAt {
            index: i,
            time: fr.time,
        });
        if want_bars {
            detections.push(bars::detect_bars(&fr.image, &o.bar_params));
        }
        if !overflow {
            buffered += fr.image.as_raw().len();
            if buffered > o.frame_buffer_bytes {
                overflow = true;
                buffer = Vec::new();
            } else {
                buffer.push(fr.image);
            }
        }
    }
    if let Some(stop) = &stopped {
        let msg = format!(
            "decoding stopped at frame {}: {}; the {} frame(s) before it were used",
            stop.frame, stop.why, summary.frames_decoded
        );
        summary.error = Some(msg.clone());
        out.skipped.push(Skip {
            path: path.clone(),
            reason: msg,
        });
    }
    summary.frames_kept = kept.len();
    // One crop for the clip.
    let [w, h] = summary.size;
    if want_bars && !detections.is_empty() {
        let n = detections.len();
        let step = n.div_ceil(CROP_SAMPLE_FRAMES).max(1);
        let sample: Vec<_> = detections.iter().step_by(step).copied().collect();
        summary.crop_decided_from = sample.len();
        summary.crop = bars::decide_clip_crop(&sample, w, h).filter(|c| !c.is_full(w, h));
    }
    let crop = summary.crop;
    let mut emit = |k: usize, img: &RgbImage| -> Result<(), PrepareError> {
        let origin = Origin {
            source: path.clone(),
            frame: Some(kept[k]),
            original_size: [img.width(), img.height()],
            mode: ColorMode::Rgb8,
        };
        let stem = format!("{:06}_{k:06}", job.id);
        out.pictures.push(stager.stage(origin, img, crop, &stem)?);
        Ok(())
    };
    if !overflow {
        for (k, img) in buffer.iter().enumerate() {
            emit(k, img)?;
        }
    } else {
        // The clip was too long to hold: decode it again and take the same frames.
        let frames = sources::open_video(path).map_err(|e| PrepareError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        let mut next = 0;
        for (i, fr) in frames.enumerate() {
            if next == kept.len() {
                break;
            }
            let Ok(fr) = fr else { break };
            if i == kept[next].index {
                emit(next, &fr.image)?;
                next += 1;
            }
        }
    }
    out.video = Some(summary);
    Ok(out)
}
