//! One workload timed in this process: a training iteration, generator inference, or the data
//! loader.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::prelude::*;
use burn::tensor::Distribution;
use cyclegan_data::loader::{Loader, LoaderConfig, UnpairedDataset};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::flop::{forward_flop, iteration_flop};
use super::timing::{median, min, peak_rss_mib, time_runs};
use super::{Report, Settings, Workload};
use crate::config::TrainConfig;
use crate::family::Generator;
use crate::family::{CycleGan, Family, UnpairedModel};
use crate::model::weights::init_normal;
use crate::model::{CycleGanGenerator, DiscriminatorConfig, GeneratorConfig, ResnetGenerator};
use crate::translate::Translator;
use crate::translate::video::translate_video;
use cyclegan_video::{Frame, TemporalParams, VideoReport, VideoTranslateOptions};

/// Time `workload` (any but `All` and `Ops`, which are not single timings).
pub fn measure(workload: Workload, settings: &Settings) -> Result<Report> {
    settings
        .precision
        .check_device(&settings.device.device()?)?;
    match workload {
        Workload::Train128 => train(settings, 128, 6),
        Workload::Train256 => train(settings, 256, 9),
        Workload::Cut128 => train_family(workload, settings, Family::Cut, 128, 6),
        Workload::Fastcut128 => train_family(workload, settings, Family::Fastcut, 128, 6),
        Workload::Cut256 => train_family(workload, settings, Family::Cut, 256, 9),
        Workload::Fastcut256 => train_family(workload, settings, Family::Fastcut, 256, 9),
        Workload::Infer256 => infer(settings, 256, 256),
        Workload::Infer480p => infer(settings, 480, 854),
        Workload::Infer1080p => infer(settings, 1080, 1920),
        Workload::Data => data(settings),
        Workload::Video480p => video(workload, settings, (854, 480), false),
        Workload::Video480pTemporal => video(workload, settings, (854, 480), true),
        Workload::Video1080p => video(workload, settings, (1920, 1080), false),
        Workload::Video1080pTemporal => video(workload, settings, (1920, 1080), true),
        Workload::All | Workload::Ops => bail!("`{}` is not a single timing", workload.name()),
    }
}

fn report(workload: Workload, settings: &Settings, times: &[f64], gflop: Option<f64>) -> Report {
    let m = median(times);
    let batch = match workload {
        Workload::Train128
        | Workload::Train256
        | Workload::Cut128
        | Workload::Fastcut128
        | Workload::Cut256
        | Workload::Fastcut256
        | Workload::Video480p
        | Workload::Video480pTemporal
        | Workload::Video1080p
        | Workload::Video1080pTemporal => settings.batch,
        _ => 1,
    };
    Report {
        workload: workload.name().into(),
        threads: settings.threads,
        iters: times.len(),
        device: format!("{:?}", settings.device).to_lowercase(),
        batch,
        precision: settings.precision.name().into(),
        median_s: m,
        min_s: min(times),
        images_per_s: None,
        gflop,
        gflop_per_s: gflop.map(|g| g / m),
        network_s: None,
        smoothing_s: None,
        peak_rss_mib: peak_rss_mib(),
    }
}

/// A random image `[1, 3, h, w]` in [-1, 1].
pub fn random_image(h: usize, w: usize, device: &Device) -> Tensor<4> {
    random_batch(1, h, w, device)
}

/// `n` random images `[n, 3, h, w]` in [-1, 1].
pub fn random_batch(n: usize, h: usize, w: usize, device: &Device) -> Tensor<4> {
    Tensor::random([n, 3, h, w], Distribution::Uniform(-1.0, 1.0), device)
}

fn train(settings: &Settings, size: usize, blocks: usize) -> Result<Report> {
    let device = settings.device.device()?.autodiff();
    let config = TrainConfig {
        generator: GeneratorConfig::resnet(64, blocks),
        discriminator: DiscriminatorConfig::default(),
        // As in the PyTorch reference's bench: a pool returns its query for the first 50 anyway.
        pool_size: 0,
        batch_size: settings.batch,
        precision: settings.precision,
        ..TrainConfig::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut model = CycleGan::new(&config, &device, &mut rng);
    if let Some(policy) = settings.conv.policy() {
        model.gens.g_a.set_conv_policy(policy);
        model.gens.g_b.set_conv_policy(policy);
        model.discs.d_a.set_conv_policy(policy);
        model.discs.d_b.set_conv_policy(policy);
    }
    let CycleGanGenerator::Resnet(g) = &model.gens.g_a else {
        unreachable!("the benchmark trains the ResNet generator")
    };
    let flop = settings.batch as f64 * iteration_flop(g, &model.discs.d_a, size);
    let times = time_iterations(&mut model, settings, size, config.lr, &device, &mut rng);
    let workload = if size == 128 {
        Workload::Train128
    } else {
        Workload::Train256
    };
    Ok(report(workload, settings, &times, Some(flop / 1e9)))
}

/// One iteration of `family` through the model seam, with the authors' defaults (the
/// convolution kernels are the device's own: `--conv` applies to CycleGAN only).
fn train_family(
    workload: Workload,
    settings: &Settings,
    family: Family,
    size: usize,
    blocks: usize,
) -> Result<Report> {
    let device = settings.device.device()?.autodiff();
    let config = TrainConfig {
        generator: GeneratorConfig::resnet(64, blocks),
        batch_size: settings.batch,
        precision: settings.precision,
        ..TrainConfig::for_family(family)
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut model = family.init(&config, &device, &mut rng)?;
    let times = time_iterations(model.as_mut(), settings, size, config.lr, &device, &mut rng);
    Ok(report(workload, settings, &times, None))
}

/// Seconds of each timed training iteration of `model` on a fixed random batch.
fn time_iterations(
    model: &mut dyn UnpairedModel,
    settings: &Settings,
    size: usize,
    lr: f64,
    device: &Device,
    rng: &mut ChaCha8Rng,
) -> Vec<f64> {
    let n = settings.batch;
    let (a, b) = (
        random_batch(n, size, size, device),
        random_batch(n, size, size, device),
    );
    time_runs(settings.warmup, settings.iters, || {
        let (losses, _) = model.step(a.clone(), b.clone(), lr, rng, false);
        assert!(losses.all_finite(), "non-finite loss in the benchmark");
    })
}

fn infer(settings: &Settings, h: usize, w: usize) -> Result<Report> {
    let device = settings.device.device()?;
    let config = GeneratorConfig::resnet(64, 9);
    let mut g = ResnetGenerator::new(&config, &device);
    init_normal(&mut g, &mut ChaCha8Rng::seed_from_u64(0));
    if let Some(policy) = settings.conv.policy() {
        g.set_conv_policy(policy);
    }
    g.set_precision(settings.precision);
    // The translator pads each side to a multiple of 4.
    let (hp, wp) = (h.div_ceil(4) * 4, w.div_ceil(4) * 4);
    let flop = forward_flop(&g.conv_layers(hp, wp));
    let x = random_image(hp, wp, &device);
    let times = time_runs(settings.warmup, settings.iters, || {
        let y = g.forward(x.clone());
        // Read the result back, as translation does.
        let _ = y.into_data();
    });
    let workload = match w {
        256 => Workload::Infer256,
        854 => Workload::Infer480p,
        _ => Workload::Infer1080p,
    };
    Ok(report(workload, settings, &times, Some(flop / 1e9)))
}

/// Translate a generated clip of `settings.iters` frames (at least 3) end to end, as
/// `cyclegan translate --model M clip.mp4 out.mp4` does: MP4 decode, the ResNet-9 generator
/// (ngf 64) on `settings.batch` frames at a time, optical-flow smoothing when `temporal`, H.264
/// encode. Seconds per frame over the whole job, and the shares of network and smoothing.
fn video(
    workload: Workload,
    settings: &Settings,
    (w, h): (u32, u32),
    temporal: bool,
) -> Result<Report> {
    let device = settings.device.device()?;
    let mut g = ResnetGenerator::new(&GeneratorConfig::resnet(64, 9), &device);
    init_normal(&mut g, &mut ChaCha8Rng::seed_from_u64(0));
    if let Some(policy) = settings.conv.policy() {
        g.set_conv_policy(policy);
    }
    g.set_precision(settings.precision);
    let translator = Translator::new(Generator::Resnet(g), &device);
    let dir = std::env::temp_dir().join(format!("cyclegan-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> Result<VideoReport> {
        let clip = dir.join("clip.mp4");
        let frames = settings.iters.max(3);
        let mut sink = cyclegan_video::create(&clip, w, h)?;
        for i in 0..frames {
            let frame = Frame {
                image: panning_frame(w, h, i),
                time: i as f64 / 30.0,
                duration: None,
            };
            sink.write(&frame)?;
        }
        sink.finish()?;
        for _ in 0..settings.warmup {
            translator.translate(&[panning_frame(w, h, 0)]);
        }
        let opts = VideoTranslateOptions {
            temporal: temporal.then(TemporalParams::default),
            batch: settings.batch,
            ..VideoTranslateOptions::default()
        };
        translate_video(&translator, &clip, &dir.join("out.mp4"), &opts, true)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let done = result?;
    let n = done.frames as f64;
    let per_frame = done.elapsed.as_secs_f64() / n;
    let mut r = report(workload, settings, &[per_frame], None);
    r.iters = done.frames;
    r.images_per_s = Some(1.0 / per_frame);
    r.network_s = Some(done.translate_time.as_secs_f64() / n);
    r.smoothing_s = Some(done.temporal_time.as_secs_f64() / n);
    Ok(r)
}

/// Frame `i` of a clip panning 4 pixels a frame over smooth colour waves (what the flow of the
/// temporal smoothing can follow).
fn panning_frame(w: u32, h: u32, i: usize) -> image::RgbImage {
    let shift = 4.0 * i as f32;
    image::RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 + shift, y as f32);
        let wave = |a: f32, b: f32, c: f32| {
            (((fx * a).sin() + (fy * b).cos() + (fx * c + fy * a).sin()) * 40.0 + 128.0) as u8
        };
        image::Rgb([
            wave(0.031, 0.023, 0.011),
            wave(0.017, 0.037, 0.013),
            wave(0.027, 0.019, 0.007),
        ])
    })
}

fn data(settings: &Settings) -> Result<Report> {
    let dataset = Arc::new(UnpairedDataset::from_dirs(&settings.data, &settings.data)?);
    // The paper's preprocessing, with the benchmark's threads.
    let config = LoaderConfig {
        workers: settings.threads,
        ..TrainConfig::default().loader_config()
    };
    let loader = Loader::start(dataset, config, 0, 0);
    for _ in 0..settings.warmup {
        loader.next_batch()?;
    }
    let batches = 20 * settings.iters.max(1);
    let mut times = Vec::with_capacity(batches);
    let start = Instant::now();
    for _ in 0..batches {
        let t = Instant::now();
        loader.next_batch()?;
        times.push(t.elapsed().as_secs_f64());
    }
    let total = start.elapsed().as_secs_f64();
    let mut r = report(Workload::Data, settings, &times, None);
    // Each batch holds one image of each domain.
    r.images_per_s = Some(2.0 * batches as f64 / total);
    r.median_s = total / batches as f64;
    Ok(r)
}
