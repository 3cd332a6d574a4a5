//! Translating a whole video with a [`Translator`]: the video crate streams the frames, keeps
//! their timestamps and smooths flicker; this applies the network to each batch.

use std::path::Path;

use anyhow::Result;
use cyclegan_video::{VideoReport, VideoTranslateOptions};
use indicatif::{ProgressBar, ProgressStyle};

use super::Translator;

/// Translate the video `input` into `output` with `opts`, with a progress bar unless `quiet`.
pub fn translate_video(
    t: &Translator,
    input: &Path,
    output: &Path,
    opts: &VideoTranslateOptions,
    quiet: bool,
) -> Result<VideoReport> {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    if let Ok(style) =
        ProgressStyle::with_template("{bar:30} {pos}/{len} frames  {per_sec}  ETA {eta}")
    {
        bar.set_style(style);
    }
    let mut network = |frames: &[image::RgbImage]| -> Result<Vec<image::RgbImage>, String> {
        Ok(t.translate(frames))
    };
    let mut progress = |done: usize, total: Option<usize>| {
        if let Some(total) = total {
            bar.set_length(total as u64);
        }
        bar.set_position(done as u64);
    };
    let report = cyclegan_video::translate_video(input, output, opts, &mut network, &mut progress)?;
    bar.finish_and_clear();
    Ok(report)
}
