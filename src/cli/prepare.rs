//! `cyclegan prepare`: a thin layer over [`cyclegan_data::prepare`].

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;
use cyclegan_data::prepare::{self, CropBars, NonRgb, OutputFormat, PrepareOptions};
use cyclegan_data::resize::ResizeMode;
use cyclegan_data::sources::Sampling;

use super::{EXIT_FAILURE, EXIT_FINDINGS};

/// Options of `cyclegan prepare`.
#[derive(clap::Args)]
#[command(
    about = "Build a clean unpaired dataset (trainA/trainB/testA/testB) from image folders and videos",
    long_about = "Build a clean unpaired dataset from image folders, image files and videos.\n\n\
Writes DATA_DIR/trainA, trainB, testA, testB (square pictures), manifest.jsonl (one line per \
picture: source, frame time, crop, original size and colour mode, hashes, split) and report.md.\n\n\
Broken inputs are listed and skipped. Exit status: 0 all good; 3 finished, but inputs were \
skipped or pictures appear in both domains; 1 failure (with --strict, any skip is a failure).\n\n\
Example:\n  cyclegan prepare --a photos/ --b film.mp4 --b paintings/ --out data/ --size 256 --fps 1"
)]
pub struct PrepareArgs {
    /// Domain A source: an image folder (searched recursively), an image file or a video
    /// (MP4/H.264, GIF, APNG; with the `ffmpeg` feature also MKV, WebM, AVI, ...). Repeat for
    /// several sources.
    #[arg(long = "a", value_name = "SRC", required = true, num_args = 1..)]
    a: Vec<PathBuf>,
    /// Domain B source, as for --a.
    #[arg(long = "b", value_name = "SRC", required = true, num_args = 1..)]
    b: Vec<PathBuf>,
    /// The dataset folder to create. Must be empty or absent unless --overwrite.
    #[arg(long, value_name = "DATA_DIR")]
    out: PathBuf,
    /// Side of the square output pictures, in pixels; 0 keeps each picture's own size.
    #[arg(long, default_value_t = 256)]
    size: u32,
    /// How a non-square picture becomes square: stretch it (resize), cut the middle square
    /// (center-crop), or fit it whole and fill the margins with --pad-color (pad).
    #[arg(long, value_enum, default_value = "center-crop")]
    resize_mode: ResizeModeArg,
    /// Colour of the margins with --resize-mode pad: a name (black, white, grey), #rrggbb or r,g,b.
    #[arg(long, default_value = "black", value_parser = parse_color)]
    pad_color: [u8; 3],
    /// Crop black bars (letterbox/pillarbox; noisy and dark-grey bars too) from video frames
    /// (videos: one crop per clip), from all pictures (all), or from nothing (none).
    #[arg(long, value_enum, default_value = "videos")]
    crop_bars: CropBarsArg,
    /// Video frames per second to keep, chosen by timestamp (the first frame shown in each
    /// 1/R-second interval). Default 1 when --every is not given.
    #[arg(long, value_name = "R", conflicts_with = "every")]
    fps: Option<f64>,
    /// Keep every N-th decoded video frame instead of sampling by time.
    #[arg(long, value_name = "N")]
    every: Option<usize>,
    /// Skip a sampled frame whose perceptual hash differs from the last kept frame's in fewer
    /// than this many bits of 64 (a static shot); 0 keeps every sampled frame.
    #[arg(long, default_value_t = 4)]
    min_change: u32,
    /// Largest perceptual-hash distance (bits of 64) at which two pictures count as near
    /// duplicates; 0 finds only (near-)identical ones.
    #[arg(long, default_value_t = 6)]
    near_threshold: u32,
    /// Keep exact and near duplicates instead of one per group (groups still stay on one side
    /// of the train/test split).
    #[arg(long)]
    keep_duplicates: bool,
    /// Share of each domain that goes to testA/testB.
    #[arg(long, default_value_t = 0.1)]
    test_fraction: f64,
    /// Seed of the train/test split (the same seed and inputs give the same split).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Put all frames of one video on the same side of the train/test split.
    #[arg(long)]
    split_by_source: bool,
    /// Pictures that are not 8-bit RGB (grey, palette, RGBA/LA, CMYK, 16-bit): convert them to
    /// RGB, or drop them (listed in the report).
    #[arg(long, value_enum, default_value = "convert")]
    non_rgb: NonRgbArg,
    /// Colour transparent pixels are composited on: a name (white, black, grey), #rrggbb or r,g,b.
    #[arg(long, default_value = "white", value_parser = parse_color)]
    background: [u8; 3],
    /// File format of the written pictures: png (lossless) or jpg (quality 95).
    #[arg(long, value_enum, default_value = "png")]
    format: FormatArg,
    /// Write into a non-empty DATA_DIR: an existing trainA/…/report.md is moved into
    /// DATA_DIR/.replaced-<time>/ (nothing is deleted).
    #[arg(long)]
    overwrite: bool,
    /// Treat any skipped input as a failure: write nothing and exit with status 1.
    #[arg(long)]
    strict: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ResizeModeArg {
    Resize,
    CenterCrop,
    Pad,
}

#[derive(Clone, Copy, ValueEnum)]
enum CropBarsArg {
    Videos,
    All,
    None,
}

#[derive(Clone, Copy, ValueEnum)]
enum NonRgbArg {
    Convert,
    Drop,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Png,
    Jpg,
}

/// Parse a colour: `white`, `black`, `grey`/`gray`, `#rrggbb` or `r,g,b`.
fn parse_color(s: &str) -> Result<[u8; 3], String> {
    let bad = || format!("{s:?} is not a colour: use white, black, grey, #rrggbb or r,g,b");
    match s.to_ascii_lowercase().as_str() {
        "white" => return Ok([255; 3]),
        "black" => return Ok([0; 3]),
        "grey" | "gray" => return Ok([128; 3]),
        _ => {}
    }
    if let Some(hex) = s.strip_prefix('#') {
        if hex.len() != 6 || !hex.is_ascii() {
            return Err(bad());
        }
        let c = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad());
        return Ok([c(0)?, c(2)?, c(4)?]);
    }
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    if parts.len() == 3 {
        let c = |i: usize| parts[i].parse::<u8>().map_err(|_| bad());
        return Ok([c(0)?, c(1)?, c(2)?]);
    }
    Err(bad())
}

/// Run the command.
pub fn run(args: PrepareArgs) -> anyhow::Result<ExitCode> {
    let sampling = match (args.fps, args.every) {
        (_, Some(n)) => Sampling::Every(n),
        (Some(r), None) => Sampling::Fps(r),
        (None, None) => Sampling::Fps(1.0),
    };
    let opts = PrepareOptions {
        a: args.a,
        b: args.b,
        out: args.out,
        size: args.size,
        resize_mode: match args.resize_mode {
            ResizeModeArg::Resize => ResizeMode::Resize,
            ResizeModeArg::CenterCrop => ResizeMode::CenterCrop,
            ResizeModeArg::Pad => ResizeMode::Pad,
        },
        pad_color: args.pad_color,
        crop_bars: match args.crop_bars {
            CropBarsArg::Videos => CropBars::Videos,
            CropBarsArg::All => CropBars::All,
            CropBarsArg::None => CropBars::None,
        },
        sampling,
        min_change: args.min_change,
        near_threshold: args.near_threshold,
        keep_duplicates: args.keep_duplicates,
        test_fraction: args.test_fraction,
        seed: args.seed,
        split_by_source: args.split_by_source,
        non_rgb: match args.non_rgb {
            NonRgbArg::Convert => NonRgb::Convert,
            NonRgbArg::Drop => NonRgb::Drop,
        },
        background: args.background,
        format: match args.format {
            FormatArg::Png => OutputFormat::Png,
            FormatArg::Jpg => OutputFormat::Jpg,
        },
        overwrite: args.overwrite,
        strict: args.strict,
        progress: std::io::stderr().is_terminal(),
        ..PrepareOptions::default()
    };
    let report = prepare::prepare(&opts)?;
    print!("{}", cyclegan_data::report::prepare_summary(&report));
    if !report.installed {
        eprintln!(
            "error: --strict: {} input(s) were skipped (listed above); nothing was written",
            report.skipped.len()
        );
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    Ok(if report.has_findings() {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::parse_color;

    #[test]
    fn colours_parse() {
        assert_eq!(parse_color("white"), Ok([255; 3]));
        assert_eq!(parse_color("#ff8000"), Ok([255, 128, 0]));
        assert_eq!(parse_color("1, 2,3"), Ok([1, 2, 3]));
        assert!(parse_color("#ff80").is_err());
        assert!(parse_color("300,0,0").is_err());
        assert!(parse_color("mauve").is_err());
    }
}
