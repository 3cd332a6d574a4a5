//! Seconds per training iteration of CUT and FastCUT beside CycleGAN, at 128 px with ResNet-6
//! generators and the 70x70 PatchGAN (ngf = ndf = 64), batch 1, on this machine's CPU.
//! Not part of the suite (slow, and the figures depend on the machine):
//!
//! `cargo test --release --test cut_bench -- --ignored --nocapture`

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;
use cyclegan::model::{DiscriminatorConfig, GeneratorConfig};
use cyclegan::train::cut::{Cut, CutOptions};
use cyclegan::train::{CycleGan, TrainConfig};
use rand::SeedableRng;

const SIZE: usize = 128;
const WARMUP: usize = 1;
const TIMED: usize = 3;

/// Median seconds of `TIMED` calls of `step`, after `WARMUP` untimed ones.
fn seconds_per_iteration(mut step: impl FnMut()) -> f64 {
    for _ in 0..WARMUP {
        step();
    }
    let mut times: Vec<f64> = (0..TIMED)
        .map(|_| {
            let start = Instant::now();
            step();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[TIMED / 2]
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn iteration_time_of_cut_fastcut_and_cyclegan() {
    let device = Device::flex().autodiff();
    let generator = GeneratorConfig { ngf: 64, blocks: 6 };
    let discriminator = DiscriminatorConfig::default();
    let image = || {
        Tensor::<4>::random(
            [1, 3, SIZE, SIZE],
            Distribution::Uniform(-1.0, 1.0),
            &device,
        )
    };
    let (a, b) = (image(), image());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);

    let config = TrainConfig {
        generator,
        discriminator,
        ..TrainConfig::default()
    };
    let mut cyclegan = CycleGan::new(&config, &device, &mut rng);
    let t_cyclegan = seconds_per_iteration(|| {
        cyclegan.step(a.clone(), b.clone(), 2e-4, &mut rng.clone(), false);
    });
    drop(cyclegan);

    let mut times = vec![("CycleGAN", t_cyclegan)];
    for (name, options) in [
        ("CUT", CutOptions::cut()),
        ("FastCUT", CutOptions::fastcut()),
    ] {
        let mut model = Cut::new(
            &generator,
            &discriminator,
            options,
            (0.5, 0.999),
            &device,
            &mut rng,
        )
        .unwrap();
        let mut step_rng = rng.clone();
        times.push((
            name,
            seconds_per_iteration(|| {
                model.step(a.clone(), b.clone(), 2e-4, &mut step_rng, false);
            }),
        ));
    }
    for (name, t) in &times {
        println!(
            "{name:>8}: {t:.2} s/iteration ({:.2}x CycleGAN) at {SIZE} px, ResNet-6, batch 1",
            t / t_cyclegan
        );
    }
}
