//! `cyclegan eval-video`: flicker of a translated video against its input, through
//! [`cyclegan_video::FlickerMeter`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use cyclegan_video::{FlickerMeter, open};

/// Options of `cyclegan eval-video`.
#[derive(clap::Args)]
#[command(
    about = "Measure the flicker of a translated video against its input",
    long_about = "Measure how much a translated video flickers: frame-to-frame changes that the \
input's own motion does not explain.\n\n\
Reports the warping error of Lai et al. (2018): for each pair of frames, the output's previous \
frame is warped to the current one along the optical flow of the INPUT video, and the mean \
squared difference to the current output frame is taken (mean over RGB channels, [0, 1] units; \
lower is steadier).\n\n\
The verdict uses a flow the temporal smoother does not use (polynomial expansion, after \
Farneback 2003; the smoother uses Lucas-Kanade), so smoothing cannot score well just by \
agreeing with itself. Its occlusion rule is the forward-backward check alone: a pixel is scored \
when following the flow to the previous frame and back returns within \
sqrt(0.01 (|f|^2 + |b|^2) + 0.5) pixels and stays inside the frame. Frame pairs across a shot \
change (the median pixel of the warped INPUT off by more than 0.1) are not scored: no flow \
joins two shots. The share of pixels scored and the number of shot changes are printed, and so \
is the error over all pixels of all pairs, occluded or not.\n\n\
For comparison it also prints the warping error under the smoother's own flow and mask \
(forward-backward plus a photometric check), the plain temporal difference \
(mean |out_t - out_(t-1)|, which counts real motion too) and the fraction of pixels that mask \
keeps.\n\n\
Both videos must have the same number of frames; an OUTPUT of another size is compared with \
the INPUT resized to it."
)]
pub struct EvalVideoArgs {
    /// The video that was translated.
    #[arg(value_name = "INPUT")]
    input: PathBuf,
    /// Its translation.
    #[arg(value_name = "OUTPUT")]
    output: PathBuf,
    /// OUTPUT was written with `translate --side-by-side`: measure its right half only.
    #[arg(long)]
    side_by_side: bool,
    /// Measure only the first N frames (quicker on long clips).
    #[arg(long, value_name = "N")]
    max_frames: Option<usize>,
    /// Print the figures as JSON on standard output.
    #[arg(long)]
    json: bool,
}

/// Run the command.
pub fn run(args: EvalVideoArgs) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let mut input = open(&args.input)?;
    let mut output = open(&args.output)?;
    let mut meter = FlickerMeter::new();
    let mut max_time_gap = 0.0f64;
    let limit = args.max_frames.unwrap_or(usize::MAX);
    let mut n = 0usize;
    while n < limit {
        let (a, b) = match (input.next(), output.next()) {
            (None, None) => break,
            (Some(a), Some(b)) => (a?, b?),
            (Some(_), None) => {
                let total = n + 1 + input.count();
                bail!(
                    "{} has {total} frames but {} only {n}: not a frame-by-frame translation",
                    args.input.display(),
                    args.output.display()
                );
            }
            (None, Some(_)) => {
                let total = n + 1 + output.count();
                bail!(
                    "{} has {total} frames but {} only {n}: not a frame-by-frame translation",
                    args.output.display(),
                    args.input.display()
                );
            }
        };
        let mut out = b.image;
        if args.side_by_side {
            let (w, h) = out.dimensions();
            out = image::imageops::crop_imm(&out, w / 2, 0, w - w / 2, h).to_image();
        }
        meter.push(&a.image, &out);
        max_time_gap = max_time_gap.max((a.time - b.time).abs());
        n += 1;
    }
    if n < 2 {
        bail!(
            "{}: at least two frames are needed to measure flicker",
            args.output.display()
        );
    }
    let s = meter.stats();
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        let v = serde_json::json!({
            "input": args.input,
            "output": args.output,
            "frames": s.frames,
            "warping_error": s.warping_error,
            "scored_fraction": s.scored_fraction,
            "shot_changes": s.shot_changes,
            "warping_error_all_pixels": s.warping_error_all_pixels,
            "smoother_flow_warping_error": s.smoother_flow_warping_error,
            "smoother_flow_tracked_fraction": s.tracked_fraction,
            "temporal_difference": s.temporal_difference,
            "max_timestamp_difference_s": max_time_gap,
            "seconds": seconds,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).context("writing JSON")?
        );
    } else {
        println!(
            "{} frames of {} against {}",
            s.frames,
            args.output.display(),
            args.input.display()
        );
        println!(
            "  warping error        {:.6}  over {:.1}% of pixels (independent flow, forward-backward occlusion rule; lower is steadier)",
            s.warping_error,
            100.0 * s.scored_fraction
        );
        println!(
            "                       {:.6}  over all pixels of all pairs",
            s.warping_error_all_pixels
        );
        if s.shot_changes > 0 {
            println!(
                "  shot changes         {}  (frame pairs across a cut, not scored)",
                s.shot_changes
            );
        }
        println!(
            "  smoother's flow      {:.6}  over {:.1}% of pixels (the flow and mask --temporal uses)",
            s.smoother_flow_warping_error,
            100.0 * s.tracked_fraction
        );
        println!(
            "  temporal difference  {:.5}    (mean |out_t - out_t-1|, includes real motion)",
            s.temporal_difference
        );
        if max_time_gap > 1e-3 {
            println!(
                "  note: timestamps differ by up to {max_time_gap:.3} s between the two videos"
            );
        }
        println!("  ({seconds:.1} s)");
    }
    Ok(ExitCode::SUCCESS)
}
