//! `cyclegan eval`: FID and KID between two folders, or of a model on a dataset's test sets.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::device::DeviceArg;
use crate::eval::model_eval::{EvalRecord, append_history, evaluate_model};
use crate::eval::{DEFAULT_BATCH, FeatureExtractor, Scores, resolve_inception, scores};

/// Options of `cyclegan eval`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
cyclegan eval --real data/testB --fake results/fakeB           # FID and KID of two folders\n  \
cyclegan eval --model runs/h2z --data data/ --json               # translate testA/testB and score

\
The feature network is the standard FID Inception-v3 (as pytorch-fid, clean-fid, StyleGAN).\n\
Its weights are not shipped: pass --inception FILE, or put inception_v3_fid.safetensors in\n\
$XDG_CACHE_HOME/cyclegan/ (default ~/.cache/cyclegan/).\n\
KID: polynomial kernel (x.y/d + 1)^3, mean and std over 100 subsets of min(1000, n) images.\n\
With --model, a line is appended to RUN/eval.jsonl (the run page shows the history).")]
pub struct EvalArgs {
    /// Folder of real images.
    #[arg(long, value_name = "DIR", requires = "fake", conflicts_with_all = ["model", "data"])]
    real: Option<PathBuf>,
    /// Folder of generated images.
    #[arg(long, value_name = "DIR", requires = "real")]
    fake: Option<PathBuf>,
    /// A run folder (newest good checkpoint), a checkpoint folder or a generator file.
    #[arg(long, value_name = "RUN", requires = "data")]
    model: Option<PathBuf>,
    /// Dataset folder with testA/ and testB/.
    #[arg(long, value_name = "DATA", requires = "model")]
    data: Option<PathBuf>,
    /// The FID network's weights [default: $XDG_CACHE_HOME/cyclegan/inception_v3_fid.safetensors].
    #[arg(long, value_name = "FILE")]
    inception: Option<PathBuf>,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Images per network call.
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    batch: usize,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

const NOTHING_TO_SCORE: &str = "give either --real DIR --fake DIR (two folders) or --model RUN --data DATA (a model on a dataset's test sets)";

/// Run the command.
pub fn run(args: EvalArgs) -> Result<ExitCode> {
    if args.real.is_none() && args.model.is_none() {
        bail!(NOTHING_TO_SCORE);
    }
    let device = args.device.device()?;
    let weights = resolve_inception(args.inception.as_deref())?;
    for dir in [&args.real, &args.fake, &args.data].into_iter().flatten() {
        if !dir.is_dir() {
            bail!("{}: folder not found", dir.display());
        }
    }
    // Too few images is said before the 87 MB of weights are read.
    for dir in [&args.real, &args.fake].into_iter().flatten() {
        crate::eval::list_folder(dir)?;
    }
    let extractor = FeatureExtractor::load(&weights, &device)?.with_batch(args.batch);
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:12} {bar:30} {pos}/{len} images  {per_sec}").unwrap(),
    );
    let mut progress = |what: &str, done: usize, total: usize| {
        bar.set_message(what.to_string());
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let start = Instant::now();
    match (&args.real, &args.fake, &args.model, &args.data) {
        (Some(real), Some(fake), _, _) => {
            let r = extractor.features_of_folder(real, &mut |d, n| progress("real", d, n))?;
            let f = extractor.features_of_folder(fake, &mut |d, n| progress("fake", d, n))?;
            bar.finish_and_clear();
            let s = scores(&r, &f);
            report_speed(s.n_real + s.n_fake, start, args.quiet);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print_table(&[("real vs fake", &s)]);
            }
        }
        (_, _, Some(model), Some(data)) => {
            let rec = evaluate_model(model, data, &extractor, &device, &mut progress)?;
            bar.finish_and_clear();
            let images: usize = [&rec.a2b, &rec.b2a]
                .into_iter()
                .flatten()
                .map(|s| s.n_fake)
                .sum::<usize>()
                + rec.a2b.map_or(0, |s| s.n_real)
                + rec.b2a.map_or(0, |s| s.n_real);
            report_speed(images, start, args.quiet);
            if model.is_dir() && !model.join("SHA256SUMS").exists() {
                append_history(model, &rec)?;
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&rec)?);
            } else {
                print_record(&rec);
            }
        }
        _ => bail!(NOTHING_TO_SCORE),
    }
    Ok(ExitCode::SUCCESS)
}

fn report_speed(images: usize, start: Instant, quiet: bool) {
    let s = start.elapsed().as_secs_f64();
    if !quiet {
        eprintln!(
            "{images} images through the FID network in {s:.1} s ({:.1} images/s)",
            images as f64 / s.max(1e-9)
        );
    }
}

fn print_record(rec: &EvalRecord) {
    if let Some(it) = rec.iteration {
        println!("checkpoint at iteration {it}");
    }
    let mut rows = Vec::new();
    if let Some(s) = &rec.a2b {
        rows.push(("G_A(testA) vs testB", s));
    }
    if let Some(s) = &rec.b2a {
        rows.push(("G_B(testB) vs testA", s));
    }
    print_table(&rows);
}

fn print_table(rows: &[(&str, &Scores)]) {
    println!(
        "{:<22} {:>10} {:>22} {:>7} {:>7}",
        "comparison", "FID", "KID (mean ± std)", "real", "fake"
    );
    for (name, s) in rows {
        println!(
            "{:<22} {:>10.4} {:>22} {:>7} {:>7}",
            name,
            s.fid,
            format!("{:.5} ± {:.5}", s.kid.mean, s.kid.std),
            s.n_real,
            s.n_fake
        );
    }
}
