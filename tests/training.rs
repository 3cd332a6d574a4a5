//! End-to-end training behaviour on tiny generated data: losses fall, resume is exact, Ctrl-C
//! saves, damaged checkpoints fall back.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::prelude::*;
use cyclegan::checkpoint;
use cyclegan::config::{GanMode, LrPolicy, TrainConfig};
use cyclegan::family::loss_scale;
use cyclegan::model::norm::Norm;
use cyclegan::model::precision::Precision;
use cyclegan::model::weights::{
    HostTensor, Init, InitType, read_pth, read_safetensors, safetensors_from_bytes,
};
use cyclegan::model::{DiscriminatorConfig, DiscriminatorKind, GeneratorArch, GeneratorConfig};
use cyclegan::run::{Overrides, Run, UsageError};
use cyclegan::train::fault::Fault;
use cyclegan::train::log::LossRecord;
use cyclegan::train::{Outcome, RunOptions, Summary};
use cyclegan_data::loader::Preprocess;

/// How a test runs `train`: fresh or resumed, with a stop flag and a fault.
#[derive(Clone, Default)]
struct Opts {
    resume: bool,
    stop: Arc<AtomicBool>,
    fault: Option<Fault>,
}

/// Start the run in `dir` with `config`, or (with `resume`) continue it with `config`'s
/// run-time settings given as command-line overrides.
fn train(config: &TrainConfig, dir: &Path, o: &Opts) -> anyhow::Result<Summary> {
    let device = Device::flex();
    let mut run = if o.resume {
        let overrides = Overrides {
            max_iters: config.max_iters,
            lr: Some(config.lr),
            save_every_minutes: Some(config.save_every_minutes),
            keep_last: Some(config.keep_last),
            ..Overrides::default()
        };
        Run::resume(dir, &overrides, &device)?
    } else {
        Run::start(config.clone(), dir, &device)?
    };
    let opts = RunOptions {
        progress: false,
        stop: o.stop.clone(),
        fault: o.fault,
    };
    cyclegan::train::train(&mut run, &opts)
}

fn tiny_config(data: &Path) -> TrainConfig {
    TrainConfig {
        data_dir: data.to_path_buf(),
        pool_size: 3,
        epochs: 1,
        epochs_decay: 2,
        workers: 2,
        seed: 5,
        save_every_minutes: 0.0,
        keep_last: 2,
        ..common::tiny(4)
    }
}

fn quiet() -> Opts {
    Opts::default()
}

fn networks(run: &Path) -> HashMap<String, HostTensor> {
    let dir = checkpoint::list(run)
        .into_iter()
        .next()
        .expect("a checkpoint");
    read_safetensors(&dir.join("networks.safetensors"), "").unwrap()
}

fn losses(run: &Path) -> Vec<LossRecord> {
    std::fs::read_to_string(run.join("losses.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn assert_same_networks(a: &HashMap<String, HostTensor>, b: &HashMap<String, HostTensor>) {
    assert_eq!(a.len(), b.len());
    let mut worst = 0.0f32;
    for (k, x) in a {
        let y = &b[k];
        assert_eq!(x.shape, y.shape, "{k}");
        for (p, q) in x.data.iter().zip(&y.data) {
            worst = worst.max((p - q).abs());
        }
    }
    assert!(
        worst == 0.0,
        "resumed weights differ from the uninterrupted run by up to {worst}"
    );
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cyclegan::demo::write_dataset(&data, 20, 5, 0, 3).unwrap();
    let n = 12; // spans epoch ends (5 iterations each) and the decaying learning rate
    let straight = tmp.path().join("straight");
    let config = TrainConfig {
        max_iters: Some(n),
        ..tiny_config(&data)
    };
    let s = train(&config, &straight, &quiet()).unwrap();
    assert_eq!((s.outcome, s.global_iter), (Outcome::Finished, n));

    let split = tmp.path().join("split");
    train(
        &TrainConfig {
            max_iters: Some(n / 2 + 1),
            ..config.clone()
        },
        &split,
        &quiet(),
    )
    .unwrap();
    let mut resume = quiet();
    resume.resume = true;
    let s = train(&config, &split, &resume).unwrap();
    assert_eq!((s.global_iter, s.iterations_run), (n, n / 2 - 1));

    assert_same_networks(&networks(&straight), &networks(&split));
    let (a, b) = (losses(&straight), losses(&split));
    assert_eq!(a.len(), n as usize);
    assert_eq!(b.len(), n as usize);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.iter, &x.losses), (y.iter, &y.losses));
    }
    // keep_last 2: older checkpoints were pruned.
    assert!(checkpoint::list(&split).len() <= 2);
}

/// WGAN-GP (its penalty draws random mixes) with the plateau policy (state carried from epoch
/// to epoch): a run split mid-epoch ends exactly as an uninterrupted one, with the same rates
/// and the same plateau state.
#[test]
fn wgangp_with_plateau_policy_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cyclegan::demo::write_dataset(&data, 20, 5, 0, 3).unwrap();
    let n = 13; // epochs of 5 iterations: the split at 8 is mid-epoch, epoch ends follow it
    let config = TrainConfig {
        max_iters: Some(n),
        gan_mode: GanMode::Wgangp,
        lr_policy: LrPolicy::Plateau,
        ..tiny_config(&data)
    };
    let straight = tmp.path().join("straight");
    train(&config, &straight, &quiet()).unwrap();
    let split = tmp.path().join("split");
    let first = TrainConfig {
        max_iters: Some(8),
        ..config.clone()
    };
    train(&first, &split, &quiet()).unwrap();
    let mid = checkpoint::latest(&split).unwrap().state.plateau;
    assert_eq!(
        mid.count, 3,
        "the split checkpoint holds the epoch's running sum"
    );
    let mut resume = quiet();
    resume.resume = true;
    train(&config, &split, &resume).unwrap();

    assert_same_networks(&networks(&straight), &networks(&split));
    let (a, b) = (losses(&straight), losses(&split));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.iter, x.lr, &x.losses), (y.iter, y.lr, &y.losses));
    }
    assert!(a.iter().all(|r| r.losses.all_finite()));
    let (s, t) = (
        checkpoint::latest(&straight).unwrap().state.plateau,
        checkpoint::latest(&split).unwrap().state.plateau,
    );
    assert!(s.best.is_finite(), "two epochs ended: {s:?}");
    assert_eq!(s.best.to_bits(), t.best.to_bits());
    assert_eq!(s, t);
}

#[test]
fn stop_request_saves_and_resume_finishes_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cyclegan::demo::write_dataset(&data, 20, 4, 0, 9).unwrap();
    let config = TrainConfig {
        max_iters: Some(10),
        ..tiny_config(&data)
    };
    let straight = tmp.path().join("straight");
    train(&config, &straight, &quiet()).unwrap();

    // Ask to stop (as Ctrl-C does) once a few iterations are logged.
    let run = tmp.path().join("interrupted");
    let opts = quiet();
    let stop = opts.stop.clone();
    let log = run.join("losses.jsonl");
    let watcher = std::thread::spawn(move || {
        while std::fs::read_to_string(&log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
            < 3
        {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        stop.store(true, Ordering::SeqCst);
    });
    let s = train(&config, &run, &opts).unwrap();
    watcher.join().unwrap();
    assert_eq!(s.outcome, Outcome::Interrupted);
    assert!(
        s.global_iter >= 3 && s.global_iter < 10,
        "stopped at {}",
        s.global_iter
    );
    let ckpt = s.last_checkpoint.expect("a checkpoint on stop");
    assert!(ckpt.ends_with(format!("iter-{:010}", s.global_iter)));

    let mut resume = quiet();
    resume.resume = true;
    train(&config, &run, &resume).unwrap();
    assert_same_networks(&networks(&straight), &networks(&run));
}

#[test]
fn losses_fall_on_a_learnable_task() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cyclegan::demo::write_dataset(&data, 36, 20, 0, 1).unwrap();
    let config = TrainConfig {
        generator: GeneratorConfig::resnet(8, 2),
        discriminator: DiscriminatorConfig::patch(8, 2),
        load_size: 36,
        crop_size: 32,
        lr: 5e-4,
        epochs: 10,
        epochs_decay: 0,
        max_iters: Some(120),
        ..tiny_config(&data)
    };
    let run = tmp.path().join("run");
    train(&config, &run, &quiet()).unwrap();
    let l = losses(&run);
    let mean = |r: &[LossRecord]| {
        r.iter()
            .map(|x| x.losses.get("cycle_A").unwrap() + x.losses.get("cycle_B").unwrap())
            .sum::<f32>()
            / r.len() as f32
    };
    let (first, last) = (mean(&l[..20]), mean(&l[l.len() - 20..]));
    assert!(
        last < 0.6 * first,
        "cycle loss did not fall enough: {first} -> {last}"
    );
    // Epoch outputs exist: sample grids and the loss plot.
    // With the identity loss on, each row also shows the identity mapping: 4 tiles of 32 px.
    let grid = image::open(run.join("samples/epoch_0001.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (4 * 32 + 3 * 4, 2 * 32 + 4));
    assert!(run.join("losses.png").exists());
    assert!(run.join("config.toml").exists());
}

#[test]
fn damaged_newest_checkpoint_falls_back_to_the_previous_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cyclegan::demo::write_dataset(&data, 20, 3, 0, 2).unwrap();
    let config = TrainConfig {
        max_iters: Some(6),
        keep_last: 5,
        ..tiny_config(&data)
    };
    let run = tmp.path().join("run");
    train(&config, &run, &quiet()).unwrap();
    let all = checkpoint::list(&run);
    assert_eq!(all.len(), 3, "{all:?}"); // the start, and epoch ends at 3 and 6
    // Flip a byte in the newest checkpoint's weights.
    let file = all[0].join("networks.safetensors");
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&file, bytes).unwrap();
    let err = checkpoint::read(&all[0])
        .err()
        .expect("damage detected")
        .to_string();
    assert!(
        err.contains("networks.safetensors") && err.contains("checksum"),
        "{err}"
    );
    let latest = checkpoint::latest(&run).expect("fallback");
    assert_eq!(latest.dir, all[1]);
    assert_eq!(latest.state.global_iter, 3);
}

#[test]
fn fresh_run_refuses_a_folder_with_checkpoints_and_bad_data_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cyclegan::demo::write_dataset(&data, 20, 2, 0, 2).unwrap();
    let config = TrainConfig {
        max_iters: Some(1),
        ..tiny_config(&data)
    };
    let run = tmp.path().join("run");
    train(&config, &run, &quiet()).unwrap();
    let err = train(&config, &run, &quiet()).unwrap_err().to_string();
    assert!(err.contains("--resume"), "{err}");

    let missing = TrainConfig {
        data_dir: tmp.path().join("nope"),
        ..config
    };
    let err = train(&missing, &tmp.path().join("run2"), &quiet())
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope") && err.contains("trainA"), "{err}");
}

fn events(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn guarded(data: &Path) -> TrainConfig {
    let mut c = TrainConfig {
        max_iters: Some(24),
        keep_last: 10,
        epochs: 3,
        epochs_decay: 3,
        ..tiny_config(data)
    };
    c.guard.window = 8;
    c
}

#[test]
fn guard_rolls_back_an_injected_nan_and_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cyclegan::demo::write_dataset(&data, 20, 4, 0, 4).unwrap();
    let run = tmp.path().join("run");
    let mut opts = quiet();
    opts.fault = Some("nan@10".parse().unwrap());
    let s = train(&guarded(&data), &run, &opts).unwrap();
    assert_eq!((s.outcome, s.global_iter), (Outcome::Finished, 24));
    let ev = events(&run);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["iter"], 10);
    assert_eq!(ev[0]["anomaly"]["kind"], "non_finite");
    assert_eq!(ev[0]["rolled_back_to"], 8); // the epoch-end checkpoint before iteration 10
    assert!(ev[0]["files_a"][0].as_str().unwrap().contains("trainA"));
    // The log is continuous and holds no NaN; the lr was halved after the rollback.
    let l = losses(&run);
    assert_eq!(
        l.iter().map(|r| r.iter).collect::<Vec<_>>(),
        (1..=24).collect::<Vec<_>>()
    );
    assert!(l.iter().all(|r| r.losses.all_finite()));
    assert_eq!((l[7].lr, l[8].lr, l[9].lr), (2e-4, 1e-4, 1e-4));
}

#[test]
fn guard_catches_an_exploding_learning_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cyclegan::demo::write_dataset(&data, 20, 4, 0, 4).unwrap();
    let run = tmp.path().join("run");
    let mut opts = quiet();
    opts.fault = Some("lr-spike@13:3000".parse().unwrap());
    let s = train(&guarded(&data), &run, &opts).unwrap();
    assert_eq!((s.outcome, s.global_iter), (Outcome::Finished, 24));
    let ev = events(&run);
    assert!(!ev.is_empty(), "the spike went unnoticed");
    assert!(ev[0]["iter"].as_u64().unwrap() >= 13);
    let back = ev[0]["rolled_back_to"].as_u64().unwrap();
    assert!(back < 13, "rolled back to {back}, after the fault");
    // Checkpoints written after the fault were flagged and are never resumed from.
    for dir in checkpoint::list(&run) {
        let it = checkpoint::iteration_of(&dir).unwrap();
        if checkpoint::is_flagged(&dir) {
            assert!(it >= 13);
        }
    }
    assert!(!checkpoint::is_flagged(
        &checkpoint::latest(&run).unwrap().dir
    ));
}

#[test]
fn guard_off_lets_nan_through_to_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cyclegan::demo::write_dataset(&data, 20, 3, 0, 4).unwrap();
    let mut c = guarded(&data);
    c.guard.enabled = false;
    let mut opts = quiet();
    opts.fault = Some("nan@2".parse().unwrap());
    let err = train(&c, &tmp.path().join("run"), &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not finite") && err.contains("--lr"), "{err}");
}

#[test]
fn failed_save_stops_cleanly_and_keeps_the_previous_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cyclegan::demo::write_dataset(&data, 20, 3, 0, 4).unwrap();
    let run = tmp.path().join("run");
    let mut opts = quiet();
    opts.fault = Some("save-fail@6".parse().unwrap());
    let err = train(&guarded(&data), &run, &opts).unwrap_err().to_string();
    assert!(
        err.contains("No space left") && err.contains("previous checkpoint is intact"),
        "{err}"
    );
    let latest = checkpoint::latest(&run).unwrap();
    assert_eq!(latest.state.global_iter, 3);
    // And the run resumes from it.
    let mut resume = quiet();
    resume.resume = true;
    let s = train(
        &TrainConfig {
            max_iters: Some(9),
            ..guarded(&data)
        },
        &run,
        &resume,
    )
    .unwrap();
    assert_eq!(s.global_iter, 9);
}

#[test]
fn resume_honours_a_new_learning_rate_and_refuses_a_new_architecture() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cyclegan::demo::write_dataset(&data, 20, 3, 0, 6).unwrap();
    let config = TrainConfig {
        max_iters: Some(3),
        epochs: 5, // no decay in the iterations run
        ..tiny_config(&data)
    };
    let run = tmp.path().join("run");
    train(&config, &run, &quiet()).unwrap();

    // Another architecture: refused as a usage error naming the flag, nothing changed.
    let before = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let blocks = Overrides {
        blocks: Some(3),
        ..Overrides::default()
    };
    let err = Run::resume(&run, &blocks, &Device::flex()).err().unwrap();
    assert!(err.is::<UsageError>(), "{err:#}");
    assert!(err.to_string().contains("--blocks"), "{err}");
    assert_eq!(
        std::fs::read_to_string(run.join("config.toml")).unwrap(),
        before
    );

    // A run-time setting: honoured, logged and recorded in config.toml.
    let resume = Opts {
        resume: true,
        ..quiet()
    };
    let lower = TrainConfig {
        lr: 5e-5,
        max_iters: Some(5),
        ..config.clone()
    };
    train(&lower, &run, &resume).unwrap();
    let l = losses(&run);
    assert_eq!(
        l.iter().map(|r| r.lr).collect::<Vec<_>>(),
        [2e-4, 2e-4, 2e-4, 5e-5, 5e-5]
    );
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(saved.contains("--lr 0.0002 -> 5e-5"), "{saved}");
    assert_eq!(
        TrainConfig::load(&run.join("config.toml")).unwrap().lr,
        5e-5
    );

    // Other data: refused (the run would not continue on the same files).
    let other = tmp.path().join("other");
    cyclegan::demo::write_dataset(&other, 20, 4, 0, 7).unwrap();
    let moved = Overrides {
        data_dir: Some(other),
        ..Overrides::default()
    };
    let err = Run::resume(&run, &moved, &Device::flex()).err().unwrap();
    assert!(
        err.is::<UsageError>() && err.to_string().contains("not the files"),
        "{err}"
    );
}

/// CUT and FastCUT go through the same loop: losses logged, exact resume, translation.
#[test]
fn cut_and_fastcut_resume_exactly_and_translate() {
    use cyclegan::family::{Direction, Family};
    use cyclegan::translate::Translator;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cyclegan::demo::write_dataset(&data, 20, 4, 0, 8).unwrap();
    for family in [Family::Cut, Family::Fastcut] {
        let mut config = TrainConfig {
            max_iters: Some(6),
            ..tiny_config(&data)
        };
        config.model = family;
        config.cut = TrainConfig::for_family(family).cut;
        config.cut.nce_layers = vec![0, 4, 8, 12]; // one residual block: layer 12 is its output
        let straight = tmp.path().join(format!("{}-straight", family.name()));
        train(&config, &straight, &quiet()).unwrap();
        let split = tmp.path().join(format!("{}-split", family.name()));
        train(
            &TrainConfig {
                max_iters: Some(3),
                ..config.clone()
            },
            &split,
            &quiet(),
        )
        .unwrap();
        let resume = Opts {
            resume: true,
            ..quiet()
        };
        train(&config, &split, &resume).unwrap();
        assert_same_networks(&networks(&straight), &networks(&split));
        let (a, b) = (losses(&straight), losses(&split));
        assert_eq!(a.len(), 6);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!((x.iter, &x.losses), (y.iter, &y.losses));
        }
        assert!(
            a[0].losses.get("NCE").is_some_and(f32::is_finite),
            "{:?}",
            a[0]
        );
        assert_eq!(a[0].losses.get("NCE_Y").is_some(), family == Family::Cut);

        let device = Device::flex();
        let t = Translator::load(&straight, Direction::A2b, &device).unwrap();
        let img = image::RgbImage::from_fn(20, 12, |x, y| {
            image::Rgb([(x * 12) as u8, (y * 20) as u8, 90])
        });
        assert_eq!(t.translate(&[img])[0].dimensions(), (20, 12));
        let err = Translator::load(&straight, Direction::B2a, &device)
            .err()
            .unwrap();
        assert!(err.to_string().contains("b2a"), "{err}");
    }
}

/// Mixed precision: the same run in float32, bfloat16 and float16 (convolutions in the reduced
/// type; norms, losses and weights in float32; float16 with loss scaling). The first
/// iteration's losses (before any update) measure the forward pass's precision; the cycle losses
/// of the last ten iterations, how training went.
#[test]
fn mixed_precision_follows_the_float32_trajectory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cyclegan::demo::write_dataset(&data, 36, 20, 0, 1).unwrap();
    let n = 30;
    let config = TrainConfig {
        generator: GeneratorConfig::resnet(8, 2),
        discriminator: DiscriminatorConfig::patch(8, 2),
        load_size: 36,
        crop_size: 32,
        epochs: 10,
        epochs_decay: 0,
        max_iters: Some(n),
        ..tiny_config(&data)
    };
    let cycle =
        |r: &LossRecord| r.losses.get("cycle_A").unwrap() + r.losses.get("cycle_B").unwrap();
    let late_cycle = |l: &[LossRecord]| l[l.len() - 10..].iter().map(cycle).sum::<f32>() / 10.0;
    let mut reference = Vec::new();
    for precision in [Precision::F32, Precision::Bf16, Precision::F16] {
        let run = tmp.path().join(precision.name());
        let config = TrainConfig {
            precision,
            ..config.clone()
        };
        train(&config, &run, &quiet()).unwrap();
        let l = losses(&run);
        assert_eq!(l.len(), n as usize);
        assert!(
            l.iter().all(|r| r.losses.all_finite()),
            "{}",
            precision.name()
        );
        let newest = checkpoint::list(&run).into_iter().next().unwrap();
        let scale_file = newest.join(loss_scale::FILE);
        assert_eq!(scale_file.exists(), precision == Precision::F16);
        if precision == Precision::F32 {
            reference = l;
            continue;
        }
        let first = reference[0]
            .losses
            .iter()
            .map(|(name, _, x)| (x - l[0].losses.get(name).unwrap()).abs() / x.abs())
            .fold(0.0f32, f32::max);
        let ratio = late_cycle(&l) / late_cycle(&reference);
        let skipped = if precision == Precision::F16 {
            let saved: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&scale_file).unwrap()).unwrap();
            let scale = saved["scale"].as_f64().unwrap();
            (loss_scale::INITIAL_SCALE as f64 / scale).log2().round() as i32
        } else {
            0
        };
        println!(
            "{}: first iteration's losses within {first:.1e} of float32's; cycle loss of the last 10 of {n} iterations {:.3} vs {:.3} ({ratio:.3}x); {skipped} step(s) skipped by loss scaling",
            precision.name(),
            late_cycle(&l),
            late_cycle(&reference)
        );
        assert!(
            first <= 3e-3,
            "{}: first iteration {first}",
            precision.name()
        );
        assert!((ratio - 1.0).abs() <= 0.15, "{}: {ratio}", precision.name());
        assert!((0..=6).contains(&skipped), "{skipped} overflows");
    }
}

/// A float16 run resumes exactly: the loss scale is part of the checkpoint.
#[test]
fn float16_run_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cyclegan::demo::write_dataset(&data, 20, 5, 0, 3).unwrap();
    let n = 8;
    let config = TrainConfig {
        max_iters: Some(n),
        precision: Precision::F16,
        ..tiny_config(&data)
    };
    let straight = tmp.path().join("straight");
    train(&config, &straight, &quiet()).unwrap();
    let split = tmp.path().join("split");
    let half = TrainConfig {
        max_iters: Some(n / 2),
        ..config.clone()
    };
    train(&half, &split, &quiet()).unwrap();
    let mut resume = quiet();
    resume.resume = true;
    train(&config, &split, &resume).unwrap();
    assert_same_networks(&networks(&straight), &networks(&split));
    let scale = |run: &Path| {
        let newest = checkpoint::list(run).into_iter().next().unwrap();
        std::fs::read_to_string(newest.join(loss_scale::FILE)).unwrap()
    };
    assert_eq!(scale(&straight), scale(&split));
}

/// The networks a run holds right now, as its checkpoints would save them.
fn current_networks(run: &mut Run) -> HashMap<String, HostTensor> {
    let files = run.model.save().unwrap();
    let (_, bytes) = files
        .iter()
        .find(|(name, _)| name == "networks.safetensors")
        .unwrap();
    safetensors_from_bytes(bytes, "").unwrap()
}

/// Fine-tuning: a new run starts from another run's networks, or from the PyTorch reference's
/// `latest_net_G_A.pth`, with a fresh schedule; another architecture or family is refused,
/// naming the source.
#[test]
fn init_from_starts_a_new_run_from_another_models_networks() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cyclegan::demo::write_dataset(&data, 20, 5, 0, 3).unwrap();
    let first = tmp.path().join("first");
    let config = TrainConfig {
        max_iters: Some(3),
        ..tiny_config(&data)
    };
    train(&config, &first, &quiet()).unwrap();

    let tuned = TrainConfig {
        init_from: Some(first.clone()),
        seed: 9,
        ..config.clone()
    };
    let mut run = Run::start(tuned.clone(), &tmp.path().join("tuned"), &Device::flex()).unwrap();
    assert_eq!(run.state.global_iter, 0);
    assert_same_networks(&networks(&first), &current_networks(&mut run));
    let toml = std::fs::read_to_string(tmp.path().join("tuned/config.toml")).unwrap();
    assert!(toml.contains("init_from"), "{toml}");
    // It trains on from there.
    let s = cyclegan::train::train(
        &mut run,
        &RunOptions {
            progress: false,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(s.global_iter, 3);

    // Another architecture: the error names the source and the weight that does not fit.
    let wider = TrainConfig {
        generator: GeneratorConfig::resnet(8, 1),
        ..tuned.clone()
    };
    let err = Run::start(wider, &tmp.path().join("wider"), &Device::flex())
        .err()
        .unwrap();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("first") && msg.contains("model.1.weight"),
        "{msg}"
    );
    // Another family.
    let cut = TrainConfig {
        model: cyclegan::family::Family::Cut,
        ..tuned
    };
    let msg = format!(
        "{:#}",
        Run::start(cut, &tmp.path().join("cut"), &Device::flex())
            .err()
            .unwrap()
    );
    assert!(msg.contains("cyclegan model"), "{msg}");

    // The reference's checkpoint folder: `latest` is taken over numbered epochs; the networks
    // without a file keep their random weights.
    let reference = tmp.path().join("reference");
    std::fs::create_dir_all(&reference).unwrap();
    let pth = common::fixture("generator_resnet9_ngf16.pth");
    std::fs::copy(&pth, reference.join("latest_net_G_A.pth")).unwrap();
    std::fs::write(reference.join("5_net_G_A.pth"), b"not a checkpoint").unwrap();
    let from_pytorch = TrainConfig {
        init_from: Some(reference),
        generator: GeneratorConfig::resnet(16, 9),
        ..config
    };
    let mut run = Run::start(
        from_pytorch,
        &tmp.path().join("from_pytorch"),
        &Device::flex(),
    )
    .unwrap();
    let now = current_networks(&mut run);
    let want = read_pth(&pth).unwrap();
    for (key, w) in &want {
        assert_eq!(now[&format!("G_A.{key}")].data, w.data, "{key}");
    }
    assert_ne!(
        now["G_B.model.1.weight"].data,
        now["G_A.model.1.weight"].data
    );
}

/// `--preprocess scale_width` and `none` train on whole images of their own, non-square sizes
/// (batch 1); a larger batch is refused naming the option.
#[test]
fn whole_image_preprocessing_trains_on_non_square_images() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for (domain, sizes) in [
        ("trainA", [(40, 24), (36, 30)]),
        ("trainB", [(32, 20), (44, 26)]),
    ] {
        let dir = data.join(domain);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, (w, h)) in sizes.into_iter().enumerate() {
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([(x * 6) as u8, (y * 8) as u8, i as u8 * 90])
            });
            img.save(dir.join(format!("{i}.png"))).unwrap();
        }
    }
    for preprocess in [Preprocess::ScaleWidth, Preprocess::None] {
        let config = TrainConfig {
            preprocess,
            load_size: 32,
            max_iters: Some(3),
            ..tiny_config(&data)
        };
        let run = tmp.path().join(preprocess.name());
        let s = train(&config, &run, &quiet()).unwrap();
        assert_eq!(s.global_iter, 3, "{}", preprocess.name());
        assert!(losses(&run).iter().all(|r| r.losses.all_finite()));
        let err = Run::start(
            TrainConfig {
                batch_size: 2,
                ..config
            },
            &tmp.path().join("batched"),
            &Device::flex(),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("--preprocess"), "{err}");
    }
}

/// The reference's other networks (a U-Net with batch norm and dropout, the PixelGAN, xavier
/// initialisation, grayscale domain A): losses stay finite, batch norm's running statistics
/// move and are checkpointed, and a run split in two ends exactly as an uninterrupted one
/// (running statistics and dropout masks included).
#[test]
fn unet_pixelgan_batch_norm_dropout_resume_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cyclegan::demo::write_dataset(&data, 128, 3, 0, 3).unwrap();
    let n = 5;
    let config = TrainConfig {
        generator: GeneratorConfig {
            ngf: 2,
            blocks: 0,
            arch: GeneratorArch::Unet128,
            norm: Norm::Batch,
            dropout: true,
            input_nc: 1,
            output_nc: 3,
        },
        discriminator: DiscriminatorConfig {
            ndf: 2,
            layers: 0,
            kind: DiscriminatorKind::Pixel,
            norm: Norm::Batch,
            input_nc: 3, // set per discriminator from the generator's channels
        },
        lambda_identity: 0.0,
        init: Init {
            kind: InitType::Xavier,
            gain: 0.02,
        },
        load_size: 128,
        crop_size: 128,
        max_iters: Some(n),
        ..tiny_config(&data)
    };
    let straight = tmp.path().join("straight");
    train(&config, &straight, &quiet()).unwrap();
    let split = tmp.path().join("split");
    let first = TrainConfig {
        max_iters: Some(3),
        ..config.clone()
    };
    train(&first, &split, &quiet()).unwrap();
    train(
        &config,
        &split,
        &Opts {
            resume: true,
            ..quiet()
        },
    )
    .unwrap();

    let nets = networks(&straight);
    let running = &nets["G_A.model.model.1.model.2.running_mean"];
    assert!(
        running.data.iter().any(|v| *v != 0.0),
        "running mean never updated"
    );
    assert!(nets.contains_key("D_A.net.3.running_var"));
    // Grayscale A: G_A takes one channel, G_B makes one, D_B judges one.
    assert_eq!(nets["G_A.model.model.0.weight"].shape[1], 1);
    assert_eq!(nets["G_B.model.model.3.weight"].shape[1], 1);
    assert_eq!(nets["D_B.net.0.weight"].shape[1], 1);
    assert_eq!(nets["D_A.net.0.weight"].shape[1], 3);
    assert_same_networks(&nets, &networks(&split));
    let (a, b) = (losses(&straight), losses(&split));
    assert_eq!(a.len(), n as usize);
    for (x, y) in a.iter().zip(&b) {
        assert!(x.losses.all_finite(), "{:?}", x.losses);
        assert_eq!((x.iter, &x.losses), (y.iter, &y.losses));
    }
}
