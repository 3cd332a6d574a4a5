//! `cyclegan bench`: training, inference and data-loading throughput on this machine.
//!
//! Every workload runs in a fresh child process (this same binary with `--workload NAME`), so
//! the peak resident memory it reports (`VmHWM`) is that workload's alone.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::nn::InstanceNormConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::module::{conv_transpose2d, conv2d, conv2d_weight_backward};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, PadMode};
use cyclegan_data::loader::{Loader, LoaderConfig, UnpairedDataset};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::config::TrainConfig;
use crate::family::cyclegan::{CycleGan, Discriminators, Generators};
use crate::model::ops::{self, Padding};
use crate::model::weights::init_normal;
use crate::model::winograd::{self, Tile};
use crate::model::{DiscriminatorConfig, GeneratorConfig, ResnetGenerator};

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Every workload below but `ops`, each in its own process.
    All,
    /// One CycleGAN iteration (2 G + 2 D, forward, backward, Adam), batch 1, 128 px, ResNet-6.
    Train128,
    /// One CycleGAN iteration at 256 px with ResNet-9 generators.
    Train256,
    /// Generator inference (ResNet-9), one 256x256 image.
    Infer256,
    /// Generator inference (ResNet-9), one 854x480 frame (padded to 856x480).
    Infer480p,
    /// Images per second decoded, resized 286, cropped 256 and flipped by the training loader.
    Data,
    /// Per-operation profile of a 128 px ResNet-6 iteration: each op type timed alone.
    Ops,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::All => "all",
            Workload::Train128 => "train128",
            Workload::Train256 => "train256",
            Workload::Infer256 => "infer256",
            Workload::Infer480p => "infer480p",
            Workload::Data => "data",
            Workload::Ops => "ops",
        }
    }
}

/// Options of `cyclegan bench`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
cyclegan bench                                  # everything, 2 threads per default pool\n  \
cyclegan bench --workload train128 --iters 10 --json\n  \
cyclegan bench --workload ops                   # where a 128 px iteration spends its time\n  \
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
    /// Compute threads (rayon's global pool, which burn's CPU backend uses); default: all cores.
    #[arg(long)]
    threads: Option<usize>,
    /// Dataset folder of images for `data`.
    #[arg(long, default_value = "/work/shared/datasets/horse2zebra/trainA")]
    data: PathBuf,
    /// One JSON object per workload on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

/// One workload's figures.
#[derive(Debug, Serialize, serde::Deserialize)]
struct Report {
    workload: String,
    threads: usize,
    iters: usize,
    /// Median seconds per iteration (per image for inference, per batch of 2 for data).
    median_s: f64,
    min_s: f64,
    /// Images per second (data loading only).
    #[serde(skip_serializing_if = "Option::is_none")]
    images_per_s: Option<f64>,
    /// Floating-point operations per iteration (multiply and add counted apart).
    #[serde(skip_serializing_if = "Option::is_none")]
    gflop: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gflop_per_s: Option<f64>,
    /// Peak resident memory of the process (VmHWM), MiB.
    peak_rss_mib: f64,
}

/// Run the command.
pub fn run(args: BenchArgs) -> Result<ExitCode> {
    if args.workload == Workload::All {
        return run_all(&args);
    }
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    // burn's Flex backend runs on rayon's global pool; size it before any tensor op.
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .context("cannot size the rayon thread pool (already started)")?;
    if args.workload == Workload::Ops {
        ops_profile(&args, threads);
        return Ok(ExitCode::SUCCESS);
    }
    let report = match args.workload {
        Workload::Train128 => train(&args, threads, 128, 6)?,
        Workload::Train256 => train(&args, threads, 256, 9)?,
        Workload::Infer256 => infer(&args, threads, 256, 256)?,
        Workload::Infer480p => infer(&args, threads, 480, 854)?,
        Workload::Data => data(&args, threads)?,
        Workload::All | Workload::Ops => unreachable!(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&[report]);
    }
    Ok(ExitCode::SUCCESS)
}

fn run_all(args: &BenchArgs) -> Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let mut reports = Vec::new();
    for w in [
        Workload::Train128,
        Workload::Train256,
        Workload::Infer256,
        Workload::Infer480p,
        Workload::Data,
    ] {
        let mut cmd = Command::new(&exe);
        cmd.args(["bench", "--json", "--workload", w.name()])
            .args(["--warmup", &args.warmup.to_string()])
            .args(["--iters", &args.iters.to_string()])
            .arg("--data")
            .arg(&args.data);
        if let Some(t) = args.threads {
            cmd.args(["--threads", &t.to_string()]);
        }
        let out = cmd.output().context("cannot run a bench child process")?;
        if !out.status.success() {
            bail!(
                "workload {} failed: {}",
                w.name(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let report: Report = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("workload {}: unreadable report", w.name()))?;
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
        "{:<10} {:>7} {:>10} {:>10} {:>10} {:>9} {:>10}",
        "workload", "threads", "median_s", "min_s", "img/s", "GFLOP/s", "peak MiB"
    );
    for r in reports {
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        println!(
            "{:<10} {:>7} {:>10.4} {:>10.4} {:>10} {:>9} {:>10.0}",
            r.workload,
            r.threads,
            r.median_s,
            r.min_s,
            opt(r.images_per_s),
            opt(r.gflop_per_s),
            r.peak_rss_mib
        );
    }
}

/// Time `f` `warmup + iters` times; the timed runs' seconds.
fn time_runs(warmup: usize, iters: usize, mut f: impl FnMut()) -> Vec<f64> {
    for _ in 0..warmup {
        f();
    }
    (0..iters.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

/// Peak resident set size of this process so far, in MiB (0 where /proc is absent).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn report(workload: Workload, threads: usize, times: &[f64], gflop: Option<f64>) -> Report {
    let m = median(times);
    Report {
        workload: workload.name().into(),
        threads,
        iters: times.len(),
        median_s: m,
        min_s: min(times),
        images_per_s: None,
        gflop,
        gflop_per_s: gflop.map(|g| g / m),
        peak_rss_mib: peak_rss_mib(),
    }
}

fn random_image(h: usize, w: usize, device: &Device) -> Tensor<4> {
    Tensor::random([1, 3, h, w], Distribution::Uniform(-1.0, 1.0), device)
}

fn train(args: &BenchArgs, threads: usize, size: usize, blocks: usize) -> Result<Report> {
    let device = Device::flex().autodiff();
    let config = TrainConfig {
        generator: GeneratorConfig { ngf: 64, blocks },
        discriminator: DiscriminatorConfig::default(),
        // As in the PyTorch reference's bench: a pool returns its query for the first 50 anyway.
        pool_size: 0,
        ..TrainConfig::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut model = CycleGan::new(&config, &device, &mut rng);
    let (a, b) = (
        random_image(size, size, &device),
        random_image(size, size, &device),
    );
    let times = time_runs(args.warmup, args.iters, || {
        let (losses, _) = model.step(a.clone(), b.clone(), config.lr, &mut rng, false);
        assert!(losses.all_finite(), "non-finite loss in the benchmark");
    });
    let workload = if size == 128 {
        Workload::Train128
    } else {
        Workload::Train256
    };
    let flop = iteration_flop(&config.generator, &config.discriminator, size);
    Ok(report(workload, threads, &times, Some(flop / 1e9)))
}

fn infer(args: &BenchArgs, threads: usize, h: usize, w: usize) -> Result<Report> {
    let device = Device::flex();
    let config = GeneratorConfig { ngf: 64, blocks: 9 };
    let mut g = ResnetGenerator::new(&config, &device);
    init_normal(&mut g, &mut ChaCha8Rng::seed_from_u64(0));
    // The translator pads each side to a multiple of 4.
    let (hp, wp) = (h.div_ceil(4) * 4, w.div_ceil(4) * 4);
    let x = random_image(hp, wp, &device);
    let times = time_runs(args.warmup, args.iters, || {
        let y = g.forward(x.clone());
        // Read the result back, as translation does.
        let _ = y.into_data();
    });
    let workload = if w == 256 {
        Workload::Infer256
    } else {
        Workload::Infer480p
    };
    let flop: f64 = generator_layers(&config, hp, wp)
        .iter()
        .map(|l| l.flop())
        .sum();
    Ok(report(workload, threads, &times, Some(flop / 1e9)))
}

fn data(args: &BenchArgs, threads: usize) -> Result<Report> {
    let dataset = Arc::new(UnpairedDataset::from_dirs(&args.data, &args.data)?);
    let config = LoaderConfig {
        load_size: 286,
        crop_size: 256,
        flip: true,
        batch_size: 1,
        workers: threads,
        seed: 0,
    };
    let loader = Loader::start(dataset, config, 0, 0);
    for _ in 0..args.warmup {
        loader.next_batch()?;
    }
    let batches = 20 * args.iters.max(1);
    let mut times = Vec::with_capacity(batches);
    let start = Instant::now();
    for _ in 0..batches {
        let t = Instant::now();
        loader.next_batch()?;
        times.push(t.elapsed().as_secs_f64());
    }
    let total = start.elapsed().as_secs_f64();
    let mut r = report(Workload::Data, threads, &times, None);
    // Each batch holds one image of each domain.
    r.images_per_s = Some(2.0 * batches as f64 / total);
    r.median_s = total / batches as f64;
    Ok(r)
}

/// One convolution of a network, for counting work and for the per-op profile.
#[derive(Debug, Clone, Copy)]
struct Layer {
    name: &'static str,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    /// Zero padding of the convolution itself (reflection padding is applied before).
    pad: usize,
    /// Input height and width as the convolution sees it (after any reflection padding).
    h: usize,
    w: usize,
    transposed: bool,
    /// Instance norm after it.
    norm: bool,
    /// Reflection padding before it, and by how much.
    reflect: usize,
}

impl Layer {
    fn out_hw(&self) -> (usize, usize) {
        if self.transposed {
            // stride 2, padding 1, output padding 1: exactly doubles.
            (self.h * 2, self.w * 2)
        } else {
            let o = |i: usize| (i + 2 * self.pad - self.k) / self.stride + 1;
            (o(self.h), o(self.w))
        }
    }

    /// Forward multiply-adds x 2.
    fn flop(&self) -> f64 {
        // A transposed conv does the work of the conv it transposes: per input pixel.
        let (h, w) = if self.transposed {
            (self.h, self.w)
        } else {
            self.out_hw()
        };
        2.0 * (self.cin * self.cout * self.k * self.k * h * w) as f64
    }
}

fn generator_layers(c: &GeneratorConfig, h: usize, w: usize) -> Vec<Layer> {
    let (c1, c2, c4) = (c.ngf, 2 * c.ngf, 4 * c.ngf);
    let conv = |name, cin, cout, k, stride, pad, h, w, reflect| Layer {
        name,
        cin,
        cout,
        k,
        stride,
        pad,
        h,
        w,
        transposed: false,
        norm: true,
        reflect,
    };
    let mut v = vec![
        conv("G stem 7x7", 3, c1, 7, 1, 0, h + 6, w + 6, 3),
        conv("G down1 3x3/2", c1, c2, 3, 2, 1, h, w, 0),
        conv("G down2 3x3/2", c2, c4, 3, 2, 1, h / 2, w / 2, 0),
    ];
    for _ in 0..2 * c.blocks {
        v.push(conv(
            "G block 3x3",
            c4,
            c4,
            3,
            1,
            0,
            h / 4 + 2,
            w / 4 + 2,
            1,
        ));
    }
    let up = |name, cin, cout, h, w| Layer {
        transposed: true,
        ..conv(name, cin, cout, 3, 2, 1, h, w, 0)
    };
    v.push(up("G up1 T3x3/2", c4, c2, h / 4, w / 4));
    v.push(up("G up2 T3x3/2", c2, c1, h / 2, w / 2));
    v.push(Layer {
        norm: false,
        ..conv("G head 7x7", c1, 3, 7, 1, 0, h + 6, w + 6, 3)
    });
    v
}

fn discriminator_layers(c: &DiscriminatorConfig, size: usize) -> Vec<Layer> {
    let width = |n: usize| c.ndf * (1usize << n.min(3));
    let mut v = Vec::new();
    let mut s = size;
    let mut push = |name, cin, cout, stride, norm, s: &mut usize| {
        let l = Layer {
            name,
            cin,
            cout,
            k: 4,
            stride,
            pad: 1,
            h: *s,
            w: *s,
            transposed: false,
            norm,
            reflect: 0,
        };
        *s = l.out_hw().0;
        v.push(l);
    };
    push("D c1 4x4/2", 3, c.ndf, 2, false, &mut s);
    for n in 1..c.layers {
        push("D 4x4/2", width(n - 1), width(n), 2, true, &mut s);
    }
    let last = width(c.layers);
    push("D 4x4/1", width(c.layers - 1), last, 1, true, &mut s);
    push("D out 4x4/1", last, 1, 1, false, &mut s);
    v
}

/// How often each kind of pass runs per iteration (see `CycleGan::step`).
struct Counts {
    /// Generator forwards (all differentiated): fake_B, rec_A, fake_A, rec_B, idt_A, idt_B.
    g_fwd: f64,
    /// Generator forwards whose input needs a gradient (rec_A, rec_B): the stem's input grad.
    g_stem_xgrad: f64,
    /// Discriminator forwards: 2 on frozen copies in the G step, 4 in the D step.
    d_fwd: f64,
    /// Input gradients through a discriminator: 2 (G step) + 4 (D step, all but the first layer).
    d_xgrad_first: f64,
    d_xgrad_rest: f64,
    /// Weight gradients of a discriminator: the D step's 4 forwards.
    d_wgrad: f64,
}

const COUNTS: Counts = Counts {
    g_fwd: 6.0,
    g_stem_xgrad: 2.0,
    d_fwd: 6.0,
    d_xgrad_first: 2.0,
    d_xgrad_rest: 6.0,
    d_wgrad: 4.0,
};

/// Convolution FLOPs of one iteration: forward, input and weight gradients.
fn iteration_flop(g: &GeneratorConfig, d: &DiscriminatorConfig, size: usize) -> f64 {
    let c = COUNTS;
    let gl = generator_layers(g, size, size);
    let mut total = 0.0;
    for (i, l) in gl.iter().enumerate() {
        let xgrad = if i == 0 { c.g_stem_xgrad } else { c.g_fwd };
        total += l.flop() * (c.g_fwd + xgrad + c.g_fwd);
    }
    for (i, l) in discriminator_layers(d, size).iter().enumerate() {
        let xgrad = if i == 0 {
            c.d_xgrad_first
        } else {
            c.d_xgrad_rest
        };
        total += l.flop() * (c.d_fwd + xgrad + c.d_wgrad);
    }
    total
}

/// Median seconds of `f` over a few runs.
fn op_time(args: &BenchArgs, f: impl FnMut()) -> f64 {
    median(&time_runs(args.warmup.max(1), args.iters.max(3), f))
}

/// Time each op type of a 128 px ResNet-6 iteration alone, with its real shapes, and scale by
/// how often it runs per iteration.
fn ops_profile(args: &BenchArgs, threads: usize) {
    let size = 128;
    let gconf = GeneratorConfig { ngf: 64, blocks: 6 };
    let dconf = DiscriminatorConfig::default();
    let dev = Device::flex();
    let ad = Device::flex().autodiff();
    let c = COUNTS;
    // (op, seconds per iteration, GFLOP per iteration)
    let mut rows: Vec<(String, f64, f64)> = Vec::new();
    let mut add = |name: String, secs: f64, flop: f64| {
        if let Some(r) = rows.iter_mut().find(|r| r.0 == name) {
            r.1 += secs;
            r.2 += flop;
        } else {
            rows.push((name, secs, flop));
        }
    };

    let gl = generator_layers(&gconf, size, size);
    let dl = discriminator_layers(&dconf, size);
    // Identical layers (the residual convolutions) are timed once.
    let mut seen: Vec<(&'static str, f64, f64, f64)> = Vec::new();
    let mut layer_times = |l: &Layer| -> (f64, f64, f64) {
        if let Some(s) = seen.iter().find(|s| s.0 == l.name) {
            return (s.1, s.2, s.3);
        }
        let t = time_conv(args, l, &dev);
        seen.push((l.name, t.0, t.1, t.2));
        t
    };
    for (i, l) in gl.iter().enumerate() {
        let (f, x, w) = layer_times(l);
        let xn = if i == 0 { c.g_stem_xgrad } else { c.g_fwd };
        let kind = if l.transposed {
            "conv_transpose"
        } else {
            "conv"
        };
        let fl = l.flop() / 1e9;
        add(format!("{kind} forward"), f * c.g_fwd, fl * c.g_fwd);
        add(format!("{kind} backward: input"), x * xn, fl * xn);
        add(
            format!("{kind} backward: weight"),
            w * c.g_fwd,
            fl * c.g_fwd,
        );
    }
    for (i, l) in dl.iter().enumerate() {
        let (f, x, w) = layer_times(l);
        let xn = if i == 0 {
            c.d_xgrad_first
        } else {
            c.d_xgrad_rest
        };
        let fl = l.flop() / 1e9;
        add("conv forward".into(), f * c.d_fwd, fl * c.d_fwd);
        add("conv backward: input".into(), x * xn, fl * xn);
        add(
            "conv backward: weight".into(),
            w * c.d_wgrad,
            fl * c.d_wgrad,
        );
    }

    if !args.json {
        println!("per layer, one call each (s): forward, backward input, backward weight");
        for (name, f, x, w) in &seen {
            println!("  {name:<16} {f:>9.4} {x:>9.4} {w:>9.4}");
        }
    }

    if !args.json {
        layer_comparison(args, gl.iter().chain(&dl), &ad);
    }

    // Instance norm, reflection padding and activations, forward + backward on autodiff tensors.
    for (l, per) in gl
        .iter()
        .map(|l| (l, c.g_fwd))
        .chain(dl.iter().map(|l| (l, c.d_fwd)))
    {
        let (oh, ow) = l.out_hw();
        if l.norm {
            let t = time_norm(args, l.cout, oh, ow, &ad);
            add("instance norm fwd+bwd".into(), t * per, 0.0);
        }
        let t = time_act(args, l.cout, oh, ow, &ad);
        add("activation fwd+bwd".into(), t * per, 0.0);
        if l.reflect > 0 {
            let t = time_reflect(args, l.cin, l.h - 2 * l.reflect, l.reflect, &ad);
            add("reflection pad fwd+bwd".into(), t * per, 0.0);
        }
    }

    // Adam over both generators and both discriminators.
    let t = time_adam(args, &gconf, &dconf, &ad);
    add("Adam (G + D)".into(), t, 0.0);

    let total: f64 = rows.iter().map(|r| r.1).sum();
    if args.json {
        for (name, secs, flop) in &rows {
            println!(
                "{}",
                serde_json::json!({"op": name, "s_per_iter": secs, "share": secs / total,
                    "gflop": flop, "gflop_per_s": if *secs > 0.0 { flop / secs } else { 0.0 }})
            );
        }
        println!(
            "{}",
            serde_json::json!({"op": "sum", "s_per_iter": total, "threads": threads})
        );
        return;
    }
    println!("per-op profile, 128 px ResNet-6 iteration, {threads} threads (ops timed alone)");
    println!(
        "{:<32} {:>10} {:>7} {:>8} {:>9}",
        "op", "s/iter", "share", "GFLOP", "GFLOP/s"
    );
    for (name, secs, flop) in &rows {
        let rate = if *flop > 0.0 {
            format!("{:.1}", flop / secs)
        } else {
            "-".into()
        };
        println!(
            "{:<32} {:>10.4} {:>6.1}% {:>8.2} {:>9}",
            name,
            secs,
            100.0 * secs / total,
            flop,
            rate
        );
    }
    println!("{:<32} {:>10.4}", "sum", total);
}

/// Forward, input-gradient and weight-gradient seconds of one convolution, with burn's own
/// backward formulas (the ones autodiff calls).
fn time_conv(args: &BenchArgs, l: &Layer, dev: &Device) -> (f64, f64, f64) {
    let x: Tensor<4> = Tensor::random([1, l.cin, l.h, l.w], Distribution::Default, dev);
    let (oh, ow) = l.out_hw();
    let dy: Tensor<4> = Tensor::random([1, l.cout, oh, ow], Distribution::Default, dev);
    let run = |t: Tensor<4>| {
        let _ = t.into_data();
    };
    if l.transposed {
        let w: Tensor<4> = Tensor::random([l.cin, l.cout, 3, 3], Distribution::Default, dev);
        let opts = ConvTransposeOptions::new([2, 2], [1, 1], [1, 1], [1, 1], 1);
        let f = op_time(args, || {
            run(conv_transpose2d(x.clone(), w.clone(), None, opts.clone()))
        });
        let copts = ConvOptions::new([2, 2], [1, 1], [1, 1], 1);
        let xg = op_time(args, || {
            run(conv2d(dy.clone(), w.clone(), None, copts.clone()))
        });
        // burn's conv_transpose2d weight gradient: a convolution of the swapped tensors.
        let wg = op_time(args, || {
            let g = conv2d(
                dy.clone().swap_dims(0, 1),
                x.clone().swap_dims(0, 1),
                None,
                ConvOptions::new([1, 1], [1, 1], [2, 2], 1),
            );
            run(g.swap_dims(0, 1))
        });
        (f, xg, wg)
    } else {
        let w: Tensor<4> = Tensor::random([l.cout, l.cin, l.k, l.k], Distribution::Default, dev);
        let opts = ConvOptions::new([l.stride; 2], [l.pad; 2], [1, 1], 1);
        let f = op_time(args, || {
            run(conv2d(x.clone(), w.clone(), None, opts.clone()))
        });
        let pad_out = |i: usize, o: usize| (i + 2 * l.pad - l.k) - (o - 1) * l.stride;
        let topts = ConvTransposeOptions::new(
            [l.stride; 2],
            [l.pad; 2],
            [pad_out(l.h, oh), pad_out(l.w, ow)],
            [1, 1],
            1,
        );
        let xg = op_time(args, || {
            run(conv_transpose2d(dy.clone(), w.clone(), None, topts.clone()))
        });
        let wg = op_time(args, || {
            run(conv2d_weight_backward(
                x.clone(),
                w.clone(),
                dy.clone(),
                opts.clone(),
            ))
        });
        (f, xg, wg)
    }
}

fn time_norm(args: &BenchArgs, ch: usize, h: usize, w: usize, ad: &Device) -> f64 {
    let norm = InstanceNormConfig::new(ch).with_affine(false).init(ad);
    let x: Tensor<4> = Tensor::random([1, ch, h, w], Distribution::Default, ad).require_grad();
    let g: Tensor<4> = Tensor::random([1, ch, h, w], Distribution::Default, ad);
    op_time(args, || {
        let y = norm.forward(x.clone()) * g.clone();
        let _ = y.sum().backward();
    }) - time_mul_sum(args, ch, h, w, ad)
}

fn time_act(args: &BenchArgs, ch: usize, h: usize, w: usize, ad: &Device) -> f64 {
    let x: Tensor<4> = Tensor::random([1, ch, h, w], Distribution::Default, ad).require_grad();
    let g: Tensor<4> = Tensor::random([1, ch, h, w], Distribution::Default, ad);
    op_time(args, || {
        let y = burn::tensor::activation::relu(x.clone()) * g.clone();
        let _ = y.sum().backward();
    }) - time_mul_sum(args, ch, h, w, ad)
}

/// The cost of the `* g` and `sum` that the norm and activation timings wrap their op in.
fn time_mul_sum(args: &BenchArgs, ch: usize, h: usize, w: usize, ad: &Device) -> f64 {
    let x: Tensor<4> = Tensor::random([1, ch, h, w], Distribution::Default, ad).require_grad();
    let g: Tensor<4> = Tensor::random([1, ch, h, w], Distribution::Default, ad);
    op_time(args, || {
        let _ = (x.clone() * g.clone()).sum().backward();
    })
}

fn time_reflect(args: &BenchArgs, ch: usize, s: usize, p: usize, ad: &Device) -> f64 {
    let x: Tensor<4> = Tensor::random([1, ch, s, s], Distribution::Default, ad).require_grad();
    let g: Tensor<4> = Tensor::random([1, ch, s + 2 * p, s + 2 * p], Distribution::Default, ad);
    let base = {
        let y: Tensor<4> =
            Tensor::random([1, ch, s + 2 * p, s + 2 * p], Distribution::Default, ad).require_grad();
        op_time(args, || {
            let _ = (y.clone() * g.clone()).sum().backward();
        })
    };
    op_time(args, || {
        let y = x.clone().pad([(p, p), (p, p)], PadMode::Reflect) * g.clone();
        let _ = y.sum().backward();
    }) - base
}

fn time_adam(
    args: &BenchArgs,
    gconf: &GeneratorConfig,
    dconf: &DiscriminatorConfig,
    ad: &Device,
) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut gens = Generators::init(gconf, ad, &mut rng);
    let mut discs = Discriminators::init(dconf, ad, &mut rng);
    let (mut opt_g, mut opt_d) = (AdamConfig::new().init(), AdamConfig::new().init());
    // Gradients for every parameter from tiny images; their cost is timed apart and removed.
    let xg = random_image(8, 8, ad);
    let xd = random_image(32, 32, ad);
    let grads = |gens: &Generators, discs: &Discriminators| {
        let lg = gens.g_a.forward(xg.clone()).sum() + gens.g_b.forward(xg.clone()).sum();
        let ld = discs.d_a.forward(xd.clone()).sum() + discs.d_b.forward(xd.clone()).sum();
        (
            GradientsParams::from_grads(lg.backward(), gens),
            GradientsParams::from_grads(ld.backward(), discs),
        )
    };
    let base = op_time(args, || {
        let _ = grads(&gens, &discs);
    });
    op_time(args, || {
        let (g, d) = grads(&gens, &discs);
        gens = opt_g.step(1e-4, gens.clone(), g);
        discs = opt_d.step(1e-4, discs.clone(), d);
    }) - base
}

/// Forward + backward (input and weight gradients) of each distinct plain convolution, with
/// burn's convolution and with [`ops::conv2d_gemm`].
fn layer_comparison<'a>(args: &BenchArgs, layers: impl Iterator<Item = &'a Layer>, ad: &Device) {
    println!(
        "per layer, forward + backward on autodiff tensors (s): burn conv, ops::conv2d_gemm, \
         winograd F(4x4, 3x3) where it applies"
    );
    let mut done: Vec<&str> = Vec::new();
    for l in layers {
        if l.transposed || done.contains(&l.name) {
            continue;
        }
        done.push(l.name);
        // The unpadded input: both paths pad it themselves.
        let (h, w) = (l.h - 2 * l.reflect, l.w - 2 * l.reflect);
        let padding = if l.reflect > 0 {
            Padding::Reflect(l.reflect)
        } else {
            Padding::Zeros(l.pad)
        };
        let x: Tensor<4> =
            Tensor::random([1, l.cin, h, w], Distribution::Default, ad).require_grad();
        let wt: Tensor<4> =
            Tensor::random([l.cout, l.cin, l.k, l.k], Distribution::Default, ad).require_grad();
        let (oh, ow) = l.out_hw();
        let g: Tensor<4> = Tensor::random([1, l.cout, oh, ow], Distribution::Default, ad);
        let stride = [l.stride; 2];
        let burn = op_time(args, || {
            let y = ops::burn_conv2d(x.clone(), wt.clone(), None, stride, padding);
            let _ = (y * g.clone()).sum().backward();
        });
        let ours = op_time(args, || {
            let y = ops::conv2d_gemm(x.clone(), wt.clone(), None, stride, padding);
            let _ = (y * g.clone()).sum().backward();
        });
        let winograd = if l.k == 3 && l.stride == 1 {
            let t = op_time(args, || {
                let y = winograd::conv3x3(x.clone(), wt.clone(), None, padding, Tile::Four);
                let _ = (y * g.clone()).sum().backward();
            });
            format!(" {t:>9.4}  x{:.2}", burn / t)
        } else {
            String::new()
        };
        println!(
            "  {:<16} {burn:>9.4} {ours:>9.4}  x{:.2}{winograd}",
            l.name,
            burn / ours
        );
    }
}
