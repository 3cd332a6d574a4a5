//! `cyclegan bench`: arguments and printing; the measuring is [`crate::bench`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use burn::prelude::*;

use crate::bench::child::measure_in_child;
use crate::bench::compare::compare_kernels;
use crate::bench::profile::{PROFILE_SIZE, Profile, profile_iteration};
use crate::bench::workloads::measure;
use crate::bench::{ConvChoice, Report, Settings, Workload};
use crate::device::DeviceArg;
use crate::model::precision::Precision;

/// Options of `cyclegan bench`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
cyclegan bench                                  # everything, 2 threads per default pool\n  \
cyclegan bench --workload train128 --iters 10 --json\n  \
cyclegan bench --workload train128 --conv burn  # burn's own convolution, for comparison\n  \
cyclegan bench --workload ops                   # where a 128 px iteration spends its time\n  \
cyclegan bench --workload video480p-temporal --iters 12   # a clip end to end, frames per second\n  \
cyclegan bench --workload train256 --device vulkan --batch 4   # on a GPU (build feature)\n  \
scripts/bench_vs_pytorch.sh 5                   # interleaved with PyTorch, with ratios")]
pub struct BenchArgs {
    /// Workload to run.
    #[arg(long, value_enum, default_value_t = Workload::All)]
    workload: Workload,
    /// Untimed iterations first.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed iterations (batches for `data`: 20x this many).
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Compute threads (the pool burn's CPU backend and our kernels run on); default: all cores.
    #[arg(long)]
    pub(super) threads: Option<usize>,
    /// Dataset folder of images for `data`.
    #[arg(long, default_value = "/work/shared/datasets/horse2zebra/trainA")]
    data: PathBuf,
    /// Convolution kernels of the measured networks: `auto` is what training and translation
    /// use on this device; the others time the alternatives (same results up to rounding).
    #[arg(long, value_enum, default_value_t = ConvChoice::Auto)]
    conv: ConvChoice,
    /// Where the networks run (GPU devices need their cargo feature).
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// Images per batch in the training workloads, frames translated at once in the video ones.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
    /// Float type of the convolutions: f16 or bf16 for mixed precision (GPUs).
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    precision: Precision,
    /// One JSON object per workload on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

/// Run the command.
pub fn run(args: BenchArgs) -> Result<ExitCode> {
    if args.workload == Workload::All {
        return run_all(&args);
    }
    // The command runs on a pool of `--threads` threads (`cli::main`).
    let threads = rayon::current_num_threads();
    let settings = Settings {
        warmup: args.warmup,
        iters: args.iters,
        threads,
        data: args.data.clone(),
        conv: args.conv,
        device: args.device,
        batch: args.batch as usize,
        precision: args.precision,
    };
    if args.workload == Workload::Ops {
        if args.device != DeviceArg::Cpu {
            anyhow::bail!("--workload ops profiles the CPU kernels only: drop --device");
        }
        let profile = profile_iteration(&settings);
        print_profile(&settings, &profile, args.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    let report = measure(args.workload, &settings)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&[report]);
    }
    Ok(ExitCode::SUCCESS)
}

/// Every workload in its own process, with the same options.
fn run_all(args: &BenchArgs) -> Result<ExitCode> {
    let mut forwarded: Vec<OsString> = vec![
        "--warmup".into(),
        args.warmup.to_string().into(),
        "--iters".into(),
        args.iters.to_string().into(),
        "--conv".into(),
        args.conv.name().into(),
        "--data".into(),
        args.data.clone().into(),
        "--device".into(),
        format!("{:?}", args.device).to_lowercase().into(),
        "--batch".into(),
        args.batch.to_string().into(),
        "--precision".into(),
        args.precision.name().into(),
    ];
    if let Some(t) = args.threads {
        forwarded.extend(["--threads".into(), t.to_string().into()]);
    }
    let mut reports = Vec::new();
    for w in Workload::MEASURED {
        let report = measure_in_child(w, &forwarded)?;
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        }
        reports.push(report);
    }
    if !args.json {
        print_table(&reports);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(reports: &[Report]) {
    println!(
        "{:<19} {:>7} {:>5} {:>5} {:>7} {:>10} {:>10} {:>10} {:>9} {:>10}",
        "workload",
        "device",
        "batch",
        "prec",
        "threads",
        "median_s",
        "min_s",
        "img/s",
        "GFLOP/s",
        "peak MiB"
    );
    for r in reports {
        let opt = |v: Option<f64>| match v {
            None => "-".to_string(),
            Some(v) if v < 10.0 => format!("{v:.2}"),
            Some(v) => format!("{v:.1}"),
        };
        println!(
            "{:<19} {:>7} {:>5} {:>5} {:>7} {:>10.4} {:>10.4} {:>10} {:>9} {:>10.0}",
            r.workload,
            r.device,
            r.batch,
            r.precision,
            r.threads,
            r.median_s,
            r.min_s,
            opt(r.images_per_s),
            opt(r.gflop_per_s),
            r.peak_rss_mib
        );
    }
    for r in reports {
        if let (Some(net), Some(smooth)) = (r.network_s, r.smoothing_s) {
            println!(
                "{}: {:.3} s a frame = network {net:.3} s + smoothing {smooth:.3} s + decode, resize and encode {:.3} s",
                r.workload,
                r.median_s,
                r.median_s - net - smooth
            );
        }
    }
}

/// The op profile as JSON lines, or as tables with the per-layer kernel comparison.
fn print_profile(settings: &Settings, profile: &Profile, json: bool) -> Result<()> {
    let total = profile.total();
    if json {
        for r in &profile.ops {
            let rate = if r.seconds > 0.0 {
                r.gflop / r.seconds
            } else {
                0.0
            };
            println!(
                "{}",
                serde_json::json!({"op": r.op, "s_per_iter": r.seconds,
                    "share": r.seconds / total, "gflop": r.gflop, "gflop_per_s": rate})
            );
        }
        println!(
            "{}",
            serde_json::json!({"op": "sum", "s_per_iter": total, "threads": settings.threads})
        );
        return Ok(());
    }
    println!("per layer, one call each (s): forward, backward input, backward weight");
    for l in &profile.layers {
        println!(
            "  {:<28} {:>9.4} {:>9.4} {:>9.4}",
            l.layer, l.forward, l.input_grad, l.weight_grad
        );
    }
    println!(
        "per layer, forward + backward on autodiff tensors (s): burn conv, gather + GEMM, \
         winograd F(4x4, 3x3) where it applies"
    );
    let ad = Device::flex().autodiff();
    for k in compare_kernels(settings, &profile.conv_layers, &ad) {
        let winograd = k
            .winograd
            .map_or(String::new(), |t| format!(" {t:>9.4}  x{:.2}", k.burn / t));
        println!(
            "  {:<28} {:>9.4} {:>9.4}  x{:.2}{winograd}",
            k.layer,
            k.burn,
            k.gemm,
            k.burn / k.gemm
        );
    }
    let threads = settings.threads;
    println!(
        "per-op profile, {PROFILE_SIZE} px ResNet-6 iteration, {threads} threads (ops timed alone)"
    );
    println!(
        "{:<32} {:>10} {:>7} {:>8} {:>9}",
        "op", "s/iter", "share", "GFLOP", "GFLOP/s"
    );
    for r in &profile.ops {
        let rate = if r.gflop > 0.0 {
            format!("{:.1}", r.gflop / r.seconds)
        } else {
            "-".into()
        };
        println!(
            "{:<32} {:>10.4} {:>6.1}% {:>8.2} {:>9}",
            r.op,
            r.seconds,
            100.0 * r.seconds / total,
            r.gflop,
            rate
        );
    }
    println!("{:<32} {:>10.4}", "sum", total);
    Ok(())
}
