//! Crash safety of `cyclegan train`, through the binary: SIGKILL at random moments (mid-way
//! through writing a checkpoint included) followed by `--resume`, again and again, must end
//! with weights bit-identical to an uninterrupted run; Ctrl-C exits 130 after saving; damaged
//! checkpoints are named and skipped.
//!
//! Kill times come from a seeded RNG; the seed is printed, and `CRASH_SEED=N` replays a run.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Finished, Spawned, bin, run, tiny_network};
use cyclegan::checkpoint;
use cyclegan::model::weights::{HostTensor, read_safetensors};
use cyclegan::train::log::LossRecord;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// Images per domain: an epoch is this many iterations, and ends with a checkpoint.
const PER_EPOCH: u64 = 3;
/// Iterations of the whole schedule (`--epochs 4 --epochs-decay 6`: the decay is crossed).
const ITERS: u64 = 30;
const CHILD_TIMEOUT: Duration = Duration::from_secs(180);

/// The tiny network and schedule every run of this file uses.
fn tiny(cmd: &mut Command, ngf: usize) -> &mut Command {
    cmd.args(tiny_network(ngf)).args([
        "--pool-size",
        "3",
        "--epochs",
        "4",
        "--epochs-decay",
        "6",
        "--seed",
        "5",
        "--save-every-minutes",
        "0",
        "--quiet",
    ])
}

fn fresh(data: &Path, run_dir: &Path, iters: u64) -> Command {
    fresh_keeping(data, run_dir, iters, 2)
}

fn fresh_keeping(data: &Path, run_dir: &Path, iters: u64, keep: usize) -> Command {
    fresh_with(data, run_dir, iters, keep, 4)
}

fn fresh_with(data: &Path, run_dir: &Path, iters: u64, keep: usize, ngf: usize) -> Command {
    let mut c = bin();
    c.arg("train").arg(data).arg("--out").arg(run_dir);
    tiny(&mut c, ngf).args([
        "--max-iters",
        &iters.to_string(),
        "--keep-last",
        &keep.to_string(),
    ]);
    c
}

fn resume(run_dir: &Path, iters: u64) -> Command {
    let mut c = bin();
    c.arg("train").arg("--resume").arg(run_dir).args([
        "--max-iters",
        &iters.to_string(),
        "--quiet",
    ]);
    c
}

fn networks(ckpt: &Path) -> HashMap<String, HostTensor> {
    read_safetensors(&ckpt.join("networks.safetensors"), "").unwrap()
}

fn assert_same_networks(
    a: &HashMap<String, HostTensor>,
    b: &HashMap<String, HostTensor>,
    what: &str,
) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (k, x) in a {
        let y = &b[k];
        assert_eq!(x.shape, y.shape, "{what}: {k}");
        let differ = x
            .data
            .iter()
            .zip(&y.data)
            .filter(|(p, q)| p.to_bits() != q.to_bits())
            .count();
        assert_eq!(
            differ, 0,
            "{what}: {k}: {differ} values differ from the uninterrupted run"
        );
    }
}

fn losses(run_dir: &Path) -> Vec<LossRecord> {
    std::fs::read_to_string(run_dir.join("losses.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The uninterrupted run everything is compared against.
struct Reference {
    data: PathBuf,
    nets: HashMap<String, HostTensor>,
    losses: Vec<LossRecord>,
    secs: f64,
}

fn reference(tmp: &Path) -> Reference {
    let data = tmp.join("data");
    cyclegan::demo::write_dataset(&data, 20, PER_EPOCH as usize, 0, 11).unwrap();
    let dir = tmp.join("straight");
    let f = run(&mut fresh(&data, &dir, ITERS), CHILD_TIMEOUT);
    f.expect(0);
    let newest = checkpoint::list(&dir)[0].clone();
    assert!(newest.ends_with(format!("iter-{ITERS:010}")), "{newest:?}");
    let losses = losses(&dir);
    assert_eq!(losses.len() as u64, ITERS);
    Reference {
        data,
        nets: networks(&newest),
        losses,
        secs: f.elapsed.as_secs_f64(),
    }
}

fn seed() -> u64 {
    let s = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                % 1_000_000
        });
    eprintln!("crash sweep seed: {s} (replay with CRASH_SEED={s})");
    s
}

/// Names in `RUN/checkpoints/` that start with a dot (work in progress or left by a crash).
fn hidden_entries(run_dir: &Path) -> Vec<String> {
    std::fs::read_dir(run_dir.join("checkpoints"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum When {
    /// A random moment of the run.
    Anytime(Duration),
    /// Just after a `.iter-*.partial` folder appears (a checkpoint being written).
    MidSave(Duration),
    /// Right after a new complete checkpoint appears (rename done, pruning under way).
    AfterSave,
    /// Ctrl-C (the checkpoint on stop), sometimes twice (leave at once, even while saving).
    Interrupt { twice: bool, after: Duration },
}

#[derive(Debug, Default)]
struct Tally {
    kills: usize,
    mid_save: usize,
    interrupts: usize,
    restarts: usize,
    resumes: usize,
    lost_iterations: u64,
    half_pruned: usize,
    stale_partials: usize,
}

/// Run the schedule in `run_dir` to the end, killing it `kills` times on the way.
fn sweep(r: &Reference, run_dir: &Path, kills: usize, rng: &mut ChaCha8Rng, tally: &mut Tally) {
    let mut done = 0;
    loop {
        let complete = checkpoint::list(run_dir);
        let (mut cmd, expect_from) = if complete.is_empty() {
            // Killed before the first checkpoint was complete: nothing to resume, start again.
            tally.restarts += 1;
            (fresh(&r.data, run_dir, ITERS), None)
        } else {
            tally.resumes += 1;
            (resume(run_dir, ITERS), Some(complete[0].clone()))
        };
        let before = complete.len();
        let child = Spawned::start(&mut cmd);
        let mut sent = None;
        // A resume from the last checkpoint only confirms the end: not worth a kill.
        let at_end = complete.first().and_then(|d| checkpoint::iteration_of(d)) == Some(ITERS);
        if done < kills && !at_end {
            let span = Duration::from_secs_f64(r.secs * 1.2);
            let when = match rng.random_range(0..10) {
                0..=3 => When::Anytime(span.mul_f64(rng.random())),
                4..=6 => When::MidSave(Duration::from_micros(rng.random_range(0..3000))),
                7 => When::AfterSave,
                _ => When::Interrupt {
                    twice: rng.random(),
                    after: span.mul_f64(rng.random()),
                },
            };
            while !child.exited() {
                let now = match when {
                    When::Anytime(t) | When::Interrupt { after: t, .. } => child.elapsed() >= t,
                    When::MidSave(_) => hidden_entries(run_dir)
                        .iter()
                        .any(|n| n.ends_with(".partial")),
                    When::AfterSave => checkpoint::list(run_dir).len() > before,
                };
                if now {
                    if let When::MidSave(d) = when {
                        std::thread::sleep(d);
                    }
                    if let When::Interrupt { twice, .. } = when {
                        child.signal(libc::SIGINT);
                        if twice {
                            std::thread::sleep(Duration::from_millis(rng.random_range(0..20)));
                            child.signal(libc::SIGINT);
                        }
                    } else {
                        child.signal(libc::SIGKILL);
                    }
                    sent = Some(when);
                    break;
                }
                std::thread::sleep(Duration::from_micros(300));
            }
        }
        let f = child.wait(CHILD_TIMEOUT);
        check_resume_message(&f, expect_from.as_deref());
        let finished = f.code == Some(0);
        // Signals that came after the run had finished do not count as kills.
        let landed = f.signal.is_some() || f.code == Some(130);
        match sent {
            Some(When::Interrupt { .. }) => {
                // 130 after saving; or killed by SIGINT itself when it came before the handler
                // was installed; or 0 if it had just finished.
                assert!(
                    f.code == Some(130) || finished || f.signal == Some(libc::SIGINT),
                    "{}",
                    f.describe()
                );
                f.no_panic();
                tally.interrupts += usize::from(landed);
            }
            Some(w) => {
                assert!(
                    f.signal == Some(libc::SIGKILL) || finished,
                    "{}",
                    f.describe()
                );
                tally.mid_save += usize::from(landed && matches!(w, When::MidSave(_)));
            }
            None => {
                f.expect(0);
            }
        }
        if landed {
            done += 1;
            tally.kills += 1;
        }
        // The newest checkpoint verifies and holds all but at most one epoch of the work
        // logged before the kill. (Older ones may be half deleted by a kill during pruning:
        // see `killed_while_pruning_leaves_no_half_deleted_checkpoint`.)
        let complete = checkpoint::list(run_dir);
        for (i, dir) in complete.iter().enumerate() {
            if let Err(e) = checkpoint::read(dir) {
                assert!(
                    i > 0,
                    "a kill ({sent:?}) damaged the newest checkpoint: {e:#}"
                );
                tally.half_pruned += 1;
            }
        }
        let logged = losses(run_dir).last().map_or(0, |l| l.iter);
        if let Some(newest) = complete.first() {
            let at = checkpoint::iteration_of(newest).unwrap();
            assert!(
                at <= logged && logged - at <= PER_EPOCH,
                "after {sent:?}: newest checkpoint {at}, but {logged} iterations were logged"
            );
            tally.lost_iterations += logged - at;
            if at == ITERS && finished {
                break;
            }
        }
    }
    // The end: identical weights and loss log, no partial checkpoint left over.
    let newest = checkpoint::list(run_dir)[0].clone();
    assert!(newest.ends_with(format!("iter-{ITERS:010}")));
    assert_same_networks(
        &r.nets,
        &networks(&newest),
        &format!("{}", run_dir.display()),
    );
    let l = losses(run_dir);
    assert_eq!(l.len(), r.losses.len());
    for (x, y) in l.iter().zip(&r.losses) {
        assert_eq!((x.iter, &x.losses, x.lr), (y.iter, &y.losses, y.lr));
    }
    // A partial checkpoint of an iteration that is never saved again (a Ctrl-C save cut short)
    // stays behind: see `stale_partial_checkpoints_are_removed_on_resume`.
    let leftovers = hidden_entries(run_dir);
    assert!(
        leftovers.iter().all(|n| n.ends_with(".partial")),
        "left over after the run: {leftovers:?}"
    );
    tally.stale_partials += leftovers.len();
}

/// A resume says which checkpoint it continues from: the newest complete one, never a fallback
/// (a kill must not damage a complete checkpoint).
fn check_resume_message(f: &Finished, from: Option<&Path>) {
    assert!(
        !f.stderr.contains("falling back") && !f.stderr.contains("panicked"),
        "{}",
        f.describe()
    );
    let Some(from) = from else { return };
    // (A kill can cut the line short: only whole lines are judged.)
    if let Some(line) = f
        .stderr
        .lines()
        .find(|l| l.starts_with("resuming from") && l.ends_with(')'))
    {
        assert!(
            line.contains(&from.display().to_string()),
            "resumed from elsewhere than the newest checkpoint {}: {line}",
            from.display()
        );
    } else {
        // Only a run killed early may say nothing (or half of it).
        assert!(f.code != Some(0), "{}", f.describe());
    }
}

fn sweep_rounds(total_kills: usize, per_round: std::ops::RangeInclusive<usize>) {
    let seed = seed();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let r = reference(tmp.path());
    eprintln!("uninterrupted run: {ITERS} iterations in {:.2} s", r.secs);
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut round = 0;
    while tally.kills < total_kills {
        let k = rng
            .random_range(per_round.clone())
            .min(total_kills - tally.kills);
        let dir = tmp.path().join(format!("crashy-{round}"));
        sweep(&r, &dir, k, &mut rng, &mut tally);
        std::fs::remove_dir_all(&dir).unwrap();
        round += 1;
    }
    eprintln!(
        "{round} round(s), {} kills ({} while a checkpoint was being written, {} Ctrl-C), {} resumes, {} fresh restarts, {} iterations redone, {} half-deleted old checkpoint(s) seen, {} stale .partial folder(s) left at the end; all ended bit-identical; {:.1} s (seed {seed})",
        tally.kills,
        tally.mid_save,
        tally.interrupts,
        tally.resumes,
        tally.restarts,
        tally.lost_iterations,
        tally.half_pruned,
        tally.stale_partials,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn killed_and_resumed_run_equals_uninterrupted_run() {
    sweep_rounds(5, 5..=5);
}

#[test]
#[ignore = "long: >= 100 kill points (several minutes)"]
fn long_kill_sweep() {
    let n = std::env::var("CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    sweep_rounds(n, 4..=10);
}

#[test]
fn killed_while_pruning_leaves_no_half_deleted_checkpoint() {
    let seed = seed();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cyclegan::demo::write_dataset(&data, 20, PER_EPOCH as usize, 0, 11).unwrap();
    // --keep-last 1: every save deletes the checkpoint before it.
    for attempt in 0..60 {
        let dir = tmp.path().join(format!("run-{attempt}"));
        let child = Spawned::start(&mut fresh_keeping(&data, &dir, ITERS, 1));
        let target = rng.random_range(2..8);
        while !child.exited() {
            if checkpoint::list(&dir)
                .first()
                .and_then(|d| checkpoint::iteration_of(d))
                .is_some_and(|i| i >= target * PER_EPOCH)
            {
                std::thread::sleep(Duration::from_micros(rng.random_range(0..400)));
                child.signal(libc::SIGKILL);
                break;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        child.wait(CHILD_TIMEOUT).no_panic();
        for d in checkpoint::list(&dir) {
            if let Err(e) = checkpoint::read(&d) {
                panic!("attempt {attempt}: listed as complete but {e:#}");
            }
        }
    }
}

#[test]
fn ctrl_c_exits_130_after_saving_and_the_resumed_run_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let r = reference(tmp.path());
    let dir = tmp.path().join("interrupted");
    let child = Spawned::start(&mut fresh(&r.data, &dir, ITERS));
    // Stop in the middle of an epoch, so the checkpoint is the one Ctrl-C writes.
    while losses(&dir).len() < 4 && !child.exited() {
        std::thread::sleep(Duration::from_millis(1));
    }
    child.signal(libc::SIGINT);
    let f = child.wait(CHILD_TIMEOUT);
    f.expect(130);
    assert!(
        f.stderr
            .contains(&format!("cyclegan train --resume {}", dir.display())),
        "{}",
        f.describe()
    );
    let newest = checkpoint::list(&dir)[0].clone();
    let logged = losses(&dir).last().unwrap().iter;
    assert_eq!(
        checkpoint::iteration_of(&newest),
        Some(logged),
        "no work lost"
    );
    assert!(logged < ITERS, "stopped at {logged}");
    run(&mut resume(&dir, ITERS), CHILD_TIMEOUT).expect(0);
    assert_same_networks(
        &r.nets,
        &networks(&checkpoint::list(&dir)[0]),
        "after Ctrl-C",
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Replace `file` of a checkpoint and record its new checksum, so that only the content is
/// wrong (the checksum test passes).
fn replace_with_valid_sum(ckpt: &Path, file: &str, bytes: &[u8]) {
    std::fs::write(ckpt.join(file), bytes).unwrap();
    let sums = std::fs::read_to_string(ckpt.join("SHA256SUMS")).unwrap();
    let fixed: String = sums
        .lines()
        .map(|l| match l.split_once("  ") {
            Some((_, f)) if f == file => format!("{}  {f}\n", sha256_hex(bytes)),
            _ => format!("{l}\n"),
        })
        .collect();
    std::fs::write(ckpt.join("SHA256SUMS"), fixed).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

#[test]
fn damaged_checkpoints_are_named_and_resume_falls_back_to_the_previous_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cyclegan::demo::write_dataset(&data, 20, PER_EPOCH as usize, 0, 11).unwrap();
    // Checkpoints at 0, 3 and 6; the newest gets damaged, resume must restart from 3 and reach
    // 9 exactly as an uninterrupted run does.
    let base = tmp.path().join("base");
    run(&mut fresh_keeping(&data, &base, 6, 5), CHILD_TIMEOUT).expect(0);
    assert_eq!(checkpoint::list(&base).len(), 3);
    let straight = tmp.path().join("straight9");
    run(&mut fresh_keeping(&data, &straight, 9, 5), CHILD_TIMEOUT).expect(0);
    let want = networks(&checkpoint::list(&straight)[0]);
    let newest = |run: &Path| run.join("checkpoints").join(format!("iter-{:010}", 6));

    type Damage = fn(&Path);
    let cases: [(&str, &str, &str, Damage); 7] = [
        (
            "truncated",
            "networks.safetensors",
            "checksum mismatch",
            |c| {
                let p = c.join("networks.safetensors");
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() / 2]).unwrap();
            },
        ),
        (
            "flipped byte",
            "optimizer_D.bpk",
            "checksum mismatch",
            |c| {
                let p = c.join("optimizer_D.bpk");
                let mut b = std::fs::read(&p).unwrap();
                let i = b.len() / 3;
                b[i] ^= 1;
                std::fs::write(&p, b).unwrap();
            },
        ),
        (
            "missing file",
            "pools.safetensors",
            "missing or unreadable",
            |c| {
                std::fs::remove_file(c.join("pools.safetensors")).unwrap();
            },
        ),
        (
            "missing checksums",
            "iter-0000000006",
            "incomplete (no SHA256SUMS)",
            |c| {
                std::fs::remove_file(c.join("SHA256SUMS")).unwrap();
            },
        ),
        ("empty file", "state.json", "checksum mismatch", |c| {
            std::fs::write(c.join("state.json"), b"").unwrap();
        }),
        (
            "garbage state, valid checksum",
            "state.json",
            "unreadable training state",
            |c| {
                replace_with_valid_sum(c, "state.json", b"{\"format\": 1, \"epoch\": ");
            },
        ),
        (
            "future format, valid checksum",
            "iter-0000000006",
            "format 99",
            |c| {
                let s = std::fs::read_to_string(c.join("state.json")).unwrap();
                let s = s.replacen("\"format\": 1", "\"format\": 99", 1);
                replace_with_valid_sum(c, "state.json", s.as_bytes());
            },
        ),
    ];
    for &(what, file, why, damage) in &cases {
        let case = tmp.path().join(what.replace([' ', ','], "_"));
        copy_dir(&base, &case);
        damage(&newest(&case));
        let f = run(&mut resume(&case, 9), CHILD_TIMEOUT);
        f.expect(0);
        let named = newest(&case).join(file).display().to_string();
        let named = if file.starts_with("iter-") {
            newest(&case).display().to_string()
        } else {
            named
        };
        assert!(
            f.stderr.contains(&named) && f.stderr.contains(why),
            "{what}: the damaged file is not named with the reason `{why}`: {}",
            f.describe()
        );
        assert!(
            f.stderr.contains("falling back to the previous checkpoint")
                && f.stderr.contains(&format!(
                    "resuming from {}",
                    case.join("checkpoints").join("iter-0000000003").display()
                )),
            "{what}: no fallback to iteration 3: {}",
            f.describe()
        );
        assert_same_networks(&want, &networks(&checkpoint::list(&case)[0]), what);
    }

    // Every checkpoint damaged: a clear failure naming each, and nothing resumed.
    let all = tmp.path().join("all_damaged");
    copy_dir(&base, &all);
    for d in checkpoint::list(&all) {
        std::fs::remove_file(d.join("networks.safetensors")).unwrap();
    }
    let f = run(&mut resume(&all, 9), CHILD_TIMEOUT);
    f.expect(1);
    for d in checkpoint::list(&all) {
        assert!(
            f.stderr
                .contains(&d.join("networks.safetensors").display().to_string()),
            "{}",
            f.describe()
        );
    }
    assert!(
        f.stderr.contains("no complete checkpoint to resume from"),
        "{}",
        f.describe()
    );

    // translate: a damaged checkpoint folder is an error naming the file; a run folder falls
    // back to its newest good checkpoint.
    // (A fresh copy: resuming re-saved iteration 6 in the case folders.)
    let damaged = tmp.path().join("translate_damaged");
    copy_dir(&base, &damaged);
    cases[0].3(&newest(&damaged));
    let img = tmp.path().join("in.png");
    common::picture(20, 20, 1).save(&img).unwrap();
    let out = tmp.path().join("out.png");
    let f = run(
        bin()
            .arg("translate")
            .arg("--model")
            .arg(newest(&damaged))
            .arg(&img)
            .arg(&out),
        CHILD_TIMEOUT,
    );
    f.expect(1);
    assert!(
        f.stderr.contains("networks.safetensors") && !out.exists(),
        "{}",
        f.describe()
    );
    let fallback = tmp.path().join("translate_fallback");
    copy_dir(&base, &fallback);
    std::fs::remove_file(newest(&fallback).join("state.json")).unwrap();
    let f = run(
        bin()
            .arg("translate")
            .arg("--quiet")
            .arg("--model")
            .arg(&fallback)
            .arg(&img)
            .arg(&out),
        CHILD_TIMEOUT,
    );
    f.expect(0);
    assert!(
        f.stderr.contains("state.json") && f.stderr.contains("falling back"),
        "{}",
        f.describe()
    );
    assert_eq!(
        image::open(&out).unwrap().into_rgb8().dimensions(),
        (20, 20)
    );
}

/// A checkpoint whose networks file holds another architecture but whose checksums are right
/// (written by a buggy tool, or copied over from another run).
#[test]
fn checkpoint_with_another_architecture_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cyclegan::demo::write_dataset(&data, 20, PER_EPOCH as usize, 0, 11).unwrap();
    let base = tmp.path().join("base");
    run(&mut fresh_keeping(&data, &base, 6, 5), CHILD_TIMEOUT).expect(0);
    let mut other = fresh_with(&data, &tmp.path().join("other"), 0, 5, 8);
    run(&mut other, CHILD_TIMEOUT).expect(0);
    let other_ckpt = checkpoint::list(&tmp.path().join("other"))[0].clone();

    // The networks file of the ngf-8 run inside the ngf-4 run's newest checkpoint.
    let case = tmp.path().join("wrong_shape");
    copy_dir(&base, &case);
    let ckpt = checkpoint::list(&case)[0].clone();
    let foreign = std::fs::read(other_ckpt.join("networks.safetensors")).unwrap();
    replace_with_valid_sum(&ckpt, "networks.safetensors", &foreign);
    let f = run(&mut resume(&case, 9), CHILD_TIMEOUT);
    f.no_panic();
    eprintln!("{}", f.describe());
    let named = ckpt.join("networks.safetensors").display().to_string();
    assert!(
        f.stderr.contains(&named),
        "wrong-shape networks file not named: {}",
        f.describe()
    );
    // Either refused (exit 1) or skipped for the previous checkpoint; never trained on.
    if f.code == Some(0) {
        assert!(f.stderr.contains("falling back"), "{}", f.describe());
    } else {
        f.expect(1);
    }
    let out = tmp.path().join("out.png");
    let img = tmp.path().join("in.png");
    common::picture(20, 20, 1).save(&img).unwrap();
    let f = run(
        bin()
            .arg("translate")
            .arg("--model")
            .arg(&ckpt)
            .arg(&img)
            .arg(&out),
        CHILD_TIMEOUT,
    );
    f.expect(1);
    assert!(
        f.stderr.contains(&named) && !out.exists(),
        "{}",
        f.describe()
    );
}

/// A complete, valid checkpoint of another configuration dropped into a run folder (copied
/// from another run) must not silently take the run over.
#[test]
fn checkpoint_of_another_config_does_not_take_the_run_over() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cyclegan::demo::write_dataset(&data, 20, PER_EPOCH as usize, 0, 11).unwrap();
    let base = tmp.path().join("base");
    run(&mut fresh_keeping(&data, &base, 6, 5), CHILD_TIMEOUT).expect(0);
    let mut other = fresh_with(&data, &tmp.path().join("other"), 0, 5, 8);
    run(&mut other, CHILD_TIMEOUT).expect(0);
    let other_ckpt = checkpoint::list(&tmp.path().join("other"))[0].clone();
    let intruder = base.join("checkpoints").join("iter-0000000007");
    copy_dir(&other_ckpt, &intruder);
    let f = run(&mut resume(&base, 9), CHILD_TIMEOUT);
    f.no_panic();
    eprintln!("{}", f.describe());
    let config = std::fs::read_to_string(base.join("config.toml")).unwrap();
    let intruder = intruder.display().to_string();
    let refused = f.code == Some(1) && f.stderr.contains(&intruder);
    let skipped = f.code == Some(0)
        && f.stderr
            .lines()
            .any(|l| l.starts_with("warning") && l.contains(&intruder))
        && f.stderr.contains(&format!(
            "resuming from {}",
            base.join("checkpoints").join("iter-0000000006").display()
        ));
    assert!(
        refused || skipped,
        "resumed from a checkpoint of another configuration without a word: {}\nconfig.toml now:\n{config}",
        f.describe()
    );
}

/// What a SIGKILL in the middle of a checkpoint that is never written again (a Ctrl-C or timed
/// save, between epoch ends) leaves behind: a `.iter-N.partial` folder, as big as a checkpoint.
#[test]
fn stale_partial_checkpoints_are_removed_on_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cyclegan::demo::write_dataset(&data, 20, PER_EPOCH as usize, 0, 11).unwrap();
    let dir = tmp.path().join("run");
    run(&mut fresh(&data, &dir, 3), CHILD_TIMEOUT).expect(0);
    // As a kill leaves it: the Ctrl-C save at iteration 4 cut short after its first file.
    let partial = dir.join("checkpoints").join(".iter-0000000004.partial");
    std::fs::create_dir(&partial).unwrap();
    std::fs::write(partial.join("networks.safetensors"), [0u8; 1000]).unwrap();
    run(&mut resume(&dir, 9), CHILD_TIMEOUT).expect(0);
    assert_eq!(hidden_entries(&dir), Vec::<String>::new());
}
