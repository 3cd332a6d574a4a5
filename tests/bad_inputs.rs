//! Every command against a corpus of hostile files (built in `common::write_corpus`): no panic,
//! no hang, no memory blow-up, a clear message naming each bad file, good files still processed,
//! inputs untouched, and the documented exit status. Then a seeded mutation fuzzer over the image
//! and video decoders, in process.

mod common;

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Entry, Finished, Kind, bin, run, snapshot, tiny_network, write_corpus, write_good};
use cyclegan_data::imageio::{self, DecodeError};
use image::{DynamicImage, ImageFormat};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Every child gets this long before it counts as hung.
const TIMEOUT: Duration = Duration::from_secs(120);
/// Peak memory any command may reach on the corpus (a decoded 20000x20000 bomb is 1.2 GB).
const MAX_RSS_KIB: u64 = 700 * 1024;

fn image_like(e: &Entry) -> bool {
    !matches!(e.kind, Kind::BadVideo | Kind::Ignored)
}

/// Lines of `text` that mention `name` (as `Path::display` shows it).
fn mentions(text: &str, name: &str) -> bool {
    text.lines().any(|l| l.contains(name))
}

fn check_memory(f: &Finished) {
    assert!(
        f.max_rss_kib < MAX_RSS_KIB,
        "peak memory {} MiB: {}",
        f.max_rss_kib / 1024,
        f.describe()
    );
}

#[test]
fn corpus_is_big_enough() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = write_corpus(tmp.path(), 1);
    let bad = corpus.iter().filter(|e| e.kind != Kind::Odd).count();
    assert!(corpus.len() >= 60 && bad >= 40, "{} files", corpus.len());
    let names: BTreeSet<_> = corpus.iter().map(|e| e.name.clone()).collect();
    assert_eq!(names.len(), corpus.len());
}

/// Headers claiming huge sizes are refused from the header, before any pixel buffer exists.
#[test]
fn decompression_bombs_are_refused_from_the_header() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<u8>); 4] = [
        ("bomb.png", common::png_claiming(20000, 20000)),
        ("bomb.jpg", common::jpeg_claiming(20000, 20000)),
        ("bomb_area.png", common::png_claiming(16000, 16000)),
        ("bomb_tall.jpg", common::jpeg_claiming(10, 65000)),
    ];
    for (name, bytes) in cases {
        let p = tmp.path().join(name);
        std::fs::write(&p, &bytes).unwrap();
        let t = Instant::now();
        let e = imageio::decode(&p).unwrap_err();
        assert!(matches!(e, DecodeError::TooLarge { .. }), "{name}: {e:?}");
        assert!(e.to_string().contains(name), "{e}");
        let e = imageio::decode_with_mode(&p).unwrap_err();
        assert!(matches!(e, DecodeError::TooLarge { .. }), "{name}: {e:?}");
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{name}: {:?}",
            t.elapsed()
        );
    }
    // Through a child process, whose peak memory we can see.
    let data = tmp.path().join("data");
    let a = data.join("trainA");
    std::fs::create_dir_all(&a).unwrap();
    for (name, bytes) in [
        ("bomb.png", common::png_claiming(20000, 20000)),
        ("bomb.jpg", common::jpeg_claiming(20000, 20000)),
    ] {
        std::fs::write(a.join(name), bytes).unwrap();
    }
    write_good(&a, 2, 24, 3);
    let f = run(bin().arg("doctor").arg(&data), TIMEOUT);
    f.expect(3);
    assert!(f.max_rss_kib < 200 * 1024, "{} KiB", f.max_rss_kib);
    assert!(
        f.stdout.contains("bomb.png") && f.stdout.contains("too large"),
        "{}",
        f.describe()
    );
}

/// In process, every decoder on every corpus file: Ok or an error naming the file, never a
/// panic; the kinds decide which.
#[test]
fn decoders_on_the_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = write_corpus(tmp.path(), 2);
    for e in &corpus {
        let p = tmp.path().join(&e.name);
        let shown = e.shown();
        let named = |r: &Result<(), String>| match r {
            Ok(()) => {}
            Err(m) => assert!(m.contains(&shown), "{shown} ({}): {m}", e.what),
        };
        match e.kind {
            Kind::Ignored => {
                // Not regular files: nothing opens them (a FIFO would block), listing skips them.
                assert!(!imageio::list_images(tmp.path()).unwrap().contains(&p));
            }
            Kind::BadVideo => {
                let r =
                    catch_unwind(|| read_video(&p)).unwrap_or_else(|_| panic!("{shown}: panic"));
                assert!(r.is_err(), "{shown} ({}) read as a video", e.what);
                named(&r.map(|_| ()));
            }
            _ => {
                let lenient =
                    catch_unwind(|| imageio::decode(&p).map(|_| ()).map_err(|e| e.to_string()))
                        .unwrap_or_else(|_| panic!("{shown}: decode panicked"));
                let strict = catch_unwind(|| {
                    imageio::decode_with_mode(&p)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
                .unwrap_or_else(|_| panic!("{shown}: decode_with_mode panicked"));
                named(&lenient);
                named(&strict);
                match e.kind {
                    Kind::Bad => assert!(
                        lenient.is_err() && strict.is_err(),
                        "{shown} ({}) decoded: {lenient:?} {strict:?}",
                        e.what
                    ),
                    Kind::CutJpeg => assert!(strict.is_err(), "{shown} ({})", e.what),
                    Kind::Odd | Kind::Tiny => assert!(
                        lenient.is_ok() && strict.is_ok(),
                        "{shown} ({}) refused: {lenient:?} {strict:?}",
                        e.what
                    ),
                    _ => {}
                }
            }
        }
    }
}

fn read_video(p: &Path) -> Result<usize, String> {
    let mut n = 0;
    for f in cyclegan_video::open(p).map_err(|e| e.to_string())? {
        f.map_err(|e| e.to_string())?;
        n += 1;
    }
    Ok(n)
}

/// A tiny trained model to translate with.
fn tiny_model(tmp: &Path) -> PathBuf {
    let data = tmp.join("model-data");
    write_good(&data.join("trainA"), 2, 20, 40);
    write_good(&data.join("trainB"), 2, 20, 41);
    let run_dir = tmp.join("model");
    run(
        bin()
            .arg("train")
            .arg(&data)
            .arg("--out")
            .arg(&run_dir)
            .args(tiny_network(4))
            .args(["--max-iters", "1", "--quiet"]),
        TIMEOUT,
    )
    .expect(0);
    run_dir
}

#[test]
fn train_skips_bad_files_with_warnings_and_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let corpus = write_corpus(&data.join("trainA"), 3);
    write_good(&data.join("trainA"), 3, 24, 4);
    write_good(&data.join("trainB"), 4, 24, 5);
    let before = snapshot(&data);
    // One epoch: every file of trainA is drawn once, so each bad one is met.
    let run_dir = tmp.path().join("run");
    let f = run(
        bin()
            .arg("train")
            .arg(&data)
            .arg("--out")
            .arg(&run_dir)
            .args(tiny_network(4))
            .args(["--epochs", "1", "--epochs-decay", "0", "--quiet"]),
        TIMEOUT,
    );
    // Finished, with findings (files skipped): exit status 3, as `prepare` and `translate`.
    f.expect(3);
    check_memory(&f);
    let listed = f
        .stderr
        .split_once("unreadable file(s):")
        .map(|(_, l)| l.to_string())
        .unwrap_or_default();
    for e in corpus.iter().filter(|e| image_like(e)) {
        let shown = e.shown();
        match e.kind {
            Kind::Bad => {
                assert!(
                    mentions(&listed, &shown),
                    "{shown} ({}) not in the skip list: {}",
                    e.what,
                    f.describe()
                );
                assert!(
                    mentions(
                        &f.stderr,
                        &format!(
                            "warning: skipping {}",
                            data.join("trainA").join(&e.name).display()
                        )
                    ),
                    "{shown}: no warning"
                );
            }
            Kind::Odd | Kind::Tiny => assert!(
                !mentions(&listed, &shown),
                "{shown} ({}) is valid but was skipped: {}",
                e.what,
                f.describe()
            ),
            _ => {}
        }
    }
    assert_eq!(snapshot(&data), before, "the dataset was changed");
}

#[test]
fn translate_folder_names_bad_files_and_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let input = tmp.path().join("in");
    let corpus = write_corpus(&input, 6);
    let good = write_good(&input, 2, 20, 7);
    let before = snapshot(&input);
    let out = tmp.path().join("out");
    let f = run(
        bin()
            .args(["translate", "--quiet", "--model"])
            .arg(&model)
            .arg(&input)
            .arg(&out),
        TIMEOUT,
    );
    f.expect(3);
    check_memory(&f);
    let skipped: Vec<&str> = f
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: skipped: "))
        .collect();
    for g in &good {
        let o = out.join(g.file_name().unwrap());
        assert_eq!(image::open(&o).unwrap().into_rgb8().dimensions(), (20, 20));
    }
    for e in corpus.iter().filter(|e| image_like(e)) {
        let shown = input.join(&e.name).display().to_string();
        let said = skipped.iter().any(|l| l.contains(&shown));
        let written = out.join(&e.name).exists();
        match e.kind {
            Kind::Bad => assert!(said && !written, "{shown} ({}): {}", e.what, f.describe()),
            Kind::Odd => {
                assert!(!said && written, "{shown} ({}): {}", e.what, f.describe());
                let (w, h) = image::ImageReader::open(out.join(&e.name))
                    .unwrap()
                    .with_guessed_format()
                    .unwrap()
                    .into_dimensions()
                    .unwrap();
                let (iw, ih) = imageio::decode(&input.join(&e.name))
                    .unwrap()
                    .into_rgb8()
                    .dimensions();
                assert_eq!((w, h), (iw, ih), "{shown}");
            }
            // Translated, or refused by name; never both, never neither.
            _ => assert!(
                said != written,
                "{shown} ({}): said {said}, written {written}: {}",
                e.what,
                f.describe()
            ),
        }
    }
    assert!(
        f.stderr.contains(&format!(
            " of {} images into",
            imageio::list_images(&input).unwrap().len()
        )),
        "{}",
        f.describe()
    );
    // Outputs are written whole or not at all: no temporary files left.
    let stray: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    assert_eq!(snapshot(&input), before, "the inputs were changed");
}

#[test]
fn translate_single_bad_files_exit_1_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let dir = tmp.path().join("in");
    let corpus = write_corpus(&dir, 8);
    let out_dir = tmp.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    for e in &corpus {
        if !matches!(e.kind, Kind::Bad | Kind::BadVideo)
            && !e.name.as_encoded_bytes().starts_with(b"fifo")
        {
            continue;
        }
        let input = dir.join(&e.name);
        // The input's extension: a video is translated into a video.
        let ext = Path::new(&e.name)
            .extension()
            .map_or("png".into(), |x| x.to_string_lossy().into_owned());
        let out = out_dir.join(format!("out.{ext}"));
        let f = run(
            bin()
                .args(["translate", "--quiet", "--model"])
                .arg(&model)
                .arg(&input)
                .arg(&out),
            Duration::from_secs(60),
        );
        f.expect(1);
        assert!(
            f.stderr.contains(&input.display().to_string()),
            "{} ({}): {}",
            e.shown(),
            e.what,
            f.describe()
        );
        assert!(!out.exists());
    }
}

#[test]
fn prepare_reports_every_skip_with_a_reason_and_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus_dir = tmp.path().join("corpus");
    let mut corpus = write_corpus(&corpus_dir, 9);
    // A picture under a non-UTF-8 name crashes prepare: see
    // `prepare_keeps_pictures_with_non_utf8_names`.
    corpus.retain(|e| {
        if e.is_non_utf8_picture() {
            std::fs::remove_file(corpus_dir.join(&e.name)).unwrap();
        }
        !e.is_non_utf8_picture()
    });
    let good_a = write_good(&tmp.path().join("goodA"), 6, 32, 10);
    let good_b = write_good(&tmp.path().join("goodB"), 6, 32, 11);
    let before = snapshot(tmp.path());
    let out = tmp.path().join("prepared");
    let f = run(
        bin()
            .arg("prepare")
            .arg("--a")
            .arg(&corpus_dir)
            .arg(good_a[0].parent().unwrap())
            .arg("--b")
            .arg(good_b[0].parent().unwrap())
            .arg("--out")
            .arg(&out)
            .args(["--size", "16"]),
        TIMEOUT,
    );
    f.expect(3);
    check_memory(&f);
    let listed = f
        .stdout
        .split_once("input(s):")
        .map(|(_, l)| l.to_string())
        .unwrap_or_default();
    for e in &corpus {
        let shown = corpus_dir.join(&e.name).display().to_string();
        let line = listed
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{shown}: ")));
        match e.kind {
            Kind::Bad | Kind::BadVideo | Kind::CutJpeg => {
                let line = line
                    .unwrap_or_else(|| panic!("{shown} ({}) not listed: {}", e.what, f.describe()));
                assert!(line.len() > shown.len() + 6, "no reason: {line}");
            }
            Kind::Odd | Kind::Tiny => assert!(
                line.is_none(),
                "{shown} ({}) skipped: {}",
                e.what,
                f.describe()
            ),
            _ => {}
        }
    }
    for d in ["trainA", "trainB", "testA", "testB"] {
        assert!(out.join(d).is_dir(), "{d}");
    }
    let pictures = imageio::list_images(&out.join("trainA")).unwrap().len()
        + imageio::list_images(&out.join("testA")).unwrap().len();
    let usable = corpus
        .iter()
        .filter(|e| matches!(e.kind, Kind::Odd | Kind::Tiny))
        .count();
    assert!(
        pictures >= 6,
        "{pictures} pictures in domain A ({usable} odd ones usable)"
    );
    let mut after = snapshot(tmp.path());
    after.retain(|p, _| !p.starts_with(&out));
    assert_eq!(after, before, "the inputs were changed");
}

#[test]
fn prepare_given_a_symlink_loop_or_a_folder_by_name_does_not_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus_dir = tmp.path().join("corpus");
    for e in write_corpus(&corpus_dir, 12) {
        if e.is_non_utf8_picture() {
            std::fs::remove_file(corpus_dir.join(&e.name)).unwrap();
        }
    }
    let good_b = write_good(&tmp.path().join("goodB"), 4, 32, 13);
    for (i, name) in ["loop.jpg", "dangling.png", "up", "fifo.png"]
        .into_iter()
        .enumerate()
    {
        let out = tmp.path().join(format!("out{i}"));
        let f = run(
            bin()
                .arg("prepare")
                .arg("--a")
                .arg(corpus_dir.join(name))
                .arg("--b")
                .arg(good_b[0].parent().unwrap())
                .arg("--out")
                .arg(&out)
                .args(["--size", "16"]),
            Duration::from_secs(60),
        );
        f.no_panic();
        assert!(f.code == Some(1) || f.code == Some(3), "{}", f.describe());
        assert!(
            f.stdout.contains(name) || f.stderr.contains(name),
            "{name} not named: {}",
            f.describe()
        );
    }
}

#[test]
fn doctor_lists_unreadable_files_and_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let corpus = write_corpus(&data.join("trainA"), 14);
    write_good(&data.join("trainB"), 3, 24, 15);
    write_good(&data.join("testA"), 2, 24, 16);
    write_good(&data.join("testB"), 2, 24, 17);
    let before = snapshot(&data);
    let f = run(bin().arg("doctor").arg("--json").arg(&data), TIMEOUT);
    f.expect(3);
    check_memory(&f);
    let report: serde_json::Value =
        serde_json::from_str(&f.stdout).unwrap_or_else(|e| panic!("{e}: {}", f.describe()));
    let train_a = report["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "trainA")
        .unwrap();
    let unreadable: Vec<(String, String)> = train_a["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_string(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for e in corpus.iter().filter(|e| image_like(e)) {
        let rel = format!("trainA/{}", e.name.to_string_lossy());
        let hit = unreadable.iter().find(|(p, _)| *p == rel);
        match e.kind {
            Kind::Bad | Kind::CutJpeg => {
                let (_, why) =
                    hit.unwrap_or_else(|| panic!("{rel} ({}) not listed: {unreadable:?}", e.what));
                assert!(!why.is_empty());
            }
            Kind::Odd | Kind::Tiny => assert!(hit.is_none(), "{rel} ({}): {hit:?}", e.what),
            _ => {}
        }
    }
    // The readable report names them too.
    let f = run(bin().arg("doctor").arg(&data), TIMEOUT);
    f.expect(3);
    for (p, _) in &unreadable {
        assert!(
            f.stdout.contains(p.trim_start_matches("trainA/")),
            "{p}: {}",
            f.describe()
        );
    }
    assert_eq!(snapshot(&data), before, "doctor changed the dataset");
}

/// The README's exit-status table: 0 done, 1 failed (naming the file), 2 usage, 3 findings
/// (checked above for prepare, translate and doctor), 130 Ctrl-C (in crash_safety.rs).
#[test]
fn exit_statuses_match_the_readme() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for (i, d) in ["trainA", "trainB", "testA", "testB"]
        .into_iter()
        .enumerate()
    {
        write_good(&data.join(d), 2, 24, 100 + i as u64);
    }
    run(bin().arg("doctor").arg(&data), TIMEOUT).expect(0);
    run(bin().arg("--version"), TIMEOUT).expect(0);
    for args in [
        &[][..],
        &["frobnicate"],
        &["train", "--no-such-option"],
        &["translate"],
        &["doctor"],
        &["train", "--out", "x", "--resume", "y"],
        &["train", "--max-iters", "many"],
        // Nonsense values are usage errors too, named before any file is touched.
        &["train", "no-data", "--out", "no-run", "--lambda-a=-1"],
        &["train", "no-data", "--out", "no-run", "--crop-size", "30"],
        &["bench", "--workload", "train128", "--batch", "0"],
        &["bench", "--device", "tpu"],
    ] {
        let f = run(bin().args(args), TIMEOUT);
        f.expect(2);
    }
    let missing = tmp.path().join("no-such-data");
    let f = run(
        bin()
            .arg("train")
            .arg(&missing)
            .arg("--out")
            .arg(tmp.path().join("r")),
        TIMEOUT,
    );
    f.expect(1);
    assert!(f.stderr.contains("no-such-data"), "{}", f.describe());
    let f = run(bin().arg("doctor").arg(&missing), TIMEOUT);
    f.expect(1);
    assert!(f.stderr.contains("no-such-data"), "{}", f.describe());
    let f = run(bin().arg("train").arg("--resume").arg(&missing), TIMEOUT);
    f.expect(1);
    assert!(f.stderr.contains("no-such-data"), "{}", f.describe());
    // A GPU backend this build lacks: say which feature to build with.
    #[cfg(not(feature = "wgpu"))]
    {
        let f = run(
            bin().args(["bench", "--workload", "infer256", "--device", "wgpu"]),
            TIMEOUT,
        );
        f.expect(1);
        assert!(f.stderr.contains("--features wgpu"), "{}", f.describe());
    }
}

/// The loss and schedule options refuse bad values as usage errors (exit 2) naming the option,
/// before any file is read.
#[test]
fn loss_and_schedule_options_refuse_bad_values_naming_them() {
    for (args, flag) in [
        (&["--gan-mode", "wgan"][..], "--gan-mode"),
        (&["--lr-policy", "exponential"], "--lr-policy"),
        (
            &["--lr-policy", "step", "--lr-decay-iters", "0"],
            "--lr-decay-iters",
        ),
        (&["--lr-decay-iters=-3"], "--lr-decay-iters"),
        (&["--beta2", "1.5"], "--beta2"),
        (&["--model", "cut", "--gan-mode", "hinge"], "--gan-mode"),
    ] {
        let f = run(
            bin()
                .args(["train", "no-such-data", "--out", "no-such-run"])
                .args(args),
            TIMEOUT,
        );
        f.expect(2);
        assert!(f.stderr.contains(flag), "{args:?}: {}", f.describe());
    }
}

// ---------------------------------------------------------------------------------------------
// Mutation fuzzing of the decoders (stable Rust, deterministic: seeded).

/// Valid seed files: (name, bytes).
fn seeds(tmp: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let rgb = DynamicImage::ImageRgb8(common::picture(20, 12, 31));
    let mp4 = tmp.join("seed.mp4");
    common::good_mp4(&mp4);
    let mut cmyk = Vec::new();
    let px: Vec<u8> = (0..8 * 8).flat_map(|i| [i as u8 * 4, 200, 30, 0]).collect();
    jpeg_encoder::Encoder::new(&mut cmyk, 80)
        .encode(&px, 8, 8, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    let mut progressive = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut progressive, 80);
    enc.set_progressive(true);
    enc.encode(rgb.to_rgb8().as_raw(), 20, 12, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    vec![
        ("seed.png", common::encode(&rgb, ImageFormat::Png)),
        (
            "seed_rgba16.png",
            common::encode(
                &DynamicImage::ImageRgba16(rgb.to_rgba16()),
                ImageFormat::Png,
            ),
        ),
        ("seed.jpg", common::encode(&rgb, ImageFormat::Jpeg)),
        ("seed_progressive.jpg", progressive),
        ("seed_cmyk.jpg", cmyk),
        ("seed.bmp", common::encode(&rgb, ImageFormat::Bmp)),
        ("seed.webp", common::encode(&rgb, ImageFormat::WebP)),
        ("seed.gif", common::good_gif()),
        ("seed.mp4", std::fs::read(&mp4).unwrap()),
    ]
}

/// One random mutation of `b`.
fn mutate(b: &[u8], rng: &mut ChaCha8Rng, pool: &[Vec<u8>]) -> Vec<u8> {
    let mut v = b.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let n = v.len().max(1);
        match rng.random_range(0..9) {
            0 => {
                let i = rng.random_range(0..n);
                if let Some(x) = v.get_mut(i) {
                    *x ^= 1 << rng.random_range(0..8);
                }
            }
            1 => {
                let i = rng.random_range(0..n);
                let val = [0u8, 0xFF, 0x7F, 0x80, 1][rng.random_range(0..5)];
                if let Some(x) = v.get_mut(i) {
                    *x = val;
                }
            }
            2 => v.truncate(rng.random_range(0..n)),
            3 => {
                let i = rng.random_range(0..=v.len());
                let junk: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
                v.splice(i..i, junk);
            }
            4 => {
                // Remove a range.
                let i = rng.random_range(0..n);
                let j = (i + rng.random_range(1..256)).min(v.len());
                if i < j {
                    v.drain(i..j);
                }
            }
            5 => {
                // Duplicate a range (repeated chunks, boxes, markers).
                let i = rng.random_range(0..n);
                let j = (i + rng.random_range(1..512)).min(v.len());
                if i < j {
                    let chunk = v[i..j].to_vec();
                    v.splice(j..j, chunk);
                }
            }
            6 => {
                // A big-endian 16/32-bit field set to an extreme (sizes, lengths, counts).
                let i = rng.random_range(0..n);
                let val: u32 =
                    [0, 1, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, 0x8000][rng.random_range(0..6)];
                let bytes = val.to_be_bytes();
                let w = if rng.random() { 2 } else { 4 };
                for k in 0..w {
                    if let Some(x) = v.get_mut(i + k) {
                        *x = bytes[4 - w + k];
                    }
                }
            }
            7 => {
                // Splice in a piece of another seed.
                let other = &pool[rng.random_range(0..pool.len())];
                if !other.is_empty() {
                    let a = rng.random_range(0..other.len());
                    let bnd = (a + rng.random_range(1..200)).min(other.len());
                    let i = rng.random_range(0..=v.len());
                    v.splice(i..i, other[a..bnd].iter().copied());
                }
            }
            _ => {
                // Random bytes over a range.
                let i = rng.random_range(0..n);
                for k in 0..rng.random_range(1..32) {
                    if let Some(x) = v.get_mut(i + k) {
                        *x = rng.random();
                    }
                }
            }
        }
    }
    v
}

/// Folder for the fuzzer's temporary files: tmpfs when there is one (no disk wear).
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::tempdir_in(shm)
    {
        return d;
    }
    tempfile::tempdir().unwrap()
}

/// Feed `images` mutated image files and `videos` mutated videos to the decoders. A panic or an
/// input slower than `slow` fails, with the input saved and its seed and index printed.
/// With `lenient`, images go through the file decoder of the training loader and `translate`
/// ([`imageio::decode_rgb`]) instead of the strict in-memory one.
fn fuzz(seed: u64, images: usize, videos: usize, slow: Duration, lenient: bool) {
    eprintln!("fuzz seed {seed} (replay with FUZZ_SEED={seed})");
    let dir = scratch();
    let seeds = seeds(dir.path());
    let pool: Vec<Vec<u8>> = seeds.iter().map(|s| s.1.clone()).collect();
    let (vid, img): (Vec<_>, Vec<_>) = seeds
        .iter()
        .partition(|s| s.0.ends_with(".mp4") || s.0.ends_with(".gif"));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut worst = (Duration::ZERO, String::new());
    let mut outcomes = [0usize; 2];
    // Each failure is kept (input saved) and the run goes on; the test fails at the end.
    let mut failures: Vec<String> = Vec::new();
    let mut fail = |what: &str, i: usize, name: &str, bytes: &[u8]| {
        let keep = std::env::temp_dir().join(format!("cyclegan-fuzz-{seed}-{i}-{name}"));
        std::fs::write(&keep, bytes).unwrap();
        failures.push(format!(
            "{what} on input {i} (seed {seed}, mutated {name}); saved as {}",
            keep.display()
        ));
    };
    let started = Instant::now();
    for i in 0..images + videos {
        let is_video = i >= images;
        let (name, base) = if is_video {
            vid[i % vid.len()]
        } else {
            img[i % img.len()]
        };
        let bytes = mutate(base, &mut rng, &pool);
        let t = Instant::now();
        let result = if is_video {
            let p = dir.path().join(name);
            std::fs::write(&p, &bytes).unwrap();
            catch_unwind(AssertUnwindSafe(|| {
                // At most 60 frames: a mutated frame count must not make this slow.
                cyclegan_video::open(&p)
                    .map(|src| src.take(60).filter(|f| f.is_ok()).count())
                    .is_ok()
            }))
        } else {
            let p = dir.path().join(name);
            if lenient {
                std::fs::write(&p, &bytes).unwrap();
            }
            catch_unwind(AssertUnwindSafe(|| {
                let r = if lenient {
                    imageio::decode_rgb(&p).map(|_| ())
                } else {
                    imageio::decode_bytes(&p, &bytes).map(|_| ())
                };
                if let Err(e) = &r {
                    assert!(e.to_string().contains(name), "unnamed error: {e}");
                }
                r.is_ok()
            }))
        };
        let took = t.elapsed();
        match result {
            Ok(ok) => outcomes[usize::from(ok)] += 1,
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                fail(&format!("panic `{msg}`"), i, name, &bytes);
            }
        }
        if took > worst.0 {
            worst = (took, name.to_string());
        }
        if took > slow {
            fail(&format!("slow ({took:?})"), i, name, &bytes);
        }
    }
    eprintln!(
        "fuzzed {images} image and {videos} video inputs in {:.1} s: {} decoded, {} refused, {} failed; slowest {:?} ({})",
        started.elapsed().as_secs_f64(),
        outcomes[1],
        outcomes[0],
        failures.len(),
        worst.0,
        worst.1
    );
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn fuzz_seed() -> u64 {
    std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20251125)
}

#[test]
fn mutation_fuzz_decoders_short() {
    fuzz(fuzz_seed(), 20_000, 1_000, Duration::from_secs(10), false);
}

#[test]
#[ignore = "long: a million mutated inputs"]
fn mutation_fuzz_decoders_long() {
    let n: usize = std::env::var("FUZZ_INPUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    fuzz(fuzz_seed(), n, n / 20, Duration::from_secs(10), false);
}

/// The lenient file decoder (training loader, `translate`) on mutated images.
#[test]
fn mutation_fuzz_lenient_decoder() {
    fuzz(fuzz_seed(), 20_000, 0, Duration::from_secs(10), true);
}

/// Damaged CMYK JPEGs found by the mutation fuzzer (seed 20251125, inputs 3952 and 73014):
/// zune-jpeg 0.5.15 panics with `assertion failed: input.len() * 2 <= scratch_space.len()`
/// (src/upsampler/avx2.rs:184). `imageio::decode` (training loader, `translate`) panics on the
/// first, `imageio::decode_bytes` (`prepare`, `doctor`) on the second.
#[test]
fn damaged_jpegs_that_panic_zune_jpeg_are_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    for name in [
        "zune_jpeg_upsampler_panic.jpg",
        "zune_jpeg_upsampler_panic_strict.jpg",
    ] {
        let p = dir.join(name);
        let lenient = catch_unwind(|| imageio::decode(&p).map(|_| ()))
            .unwrap_or_else(|_| panic!("imageio::decode panicked on {}", p.display()));
        let strict = catch_unwind(|| imageio::decode_with_mode(&p).map(|_| ()))
            .unwrap_or_else(|_| panic!("imageio::decode_with_mode panicked on {}", p.display()));
        for r in [lenient, strict] {
            if let Err(e) = r {
                assert!(e.to_string().contains(name), "{e}");
            }
        }
    }
}

/// Regenerates `fuzz/corpus/` (the cargo-fuzz seed inputs) from the same seeds as above.
#[test]
#[ignore = "tool: writes fuzz/corpus/"]
fn write_fuzz_seed_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let tmp = tempfile::tempdir().unwrap();
    for (name, bytes) in seeds(tmp.path()) {
        let target = if name.ends_with(".mp4") || name.ends_with(".gif") {
            "video_open"
        } else {
            "image_decode"
        };
        std::fs::create_dir_all(root.join(target)).unwrap();
        std::fs::write(root.join(target).join(name), bytes).unwrap();
    }
}

#[test]
fn prepare_keeps_pictures_with_non_utf8_names() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    write_good(&a, 4, 32, 60);
    let odd = a.join(std::ffi::OsStr::from_bytes(b"caf\xe9.png"));
    common::picture(32, 32, 61).save(&odd).unwrap();
    let b = write_good(&tmp.path().join("b"), 4, 32, 62);
    let f = run(
        bin()
            .arg("prepare")
            .arg("--a")
            .arg(&a)
            .arg("--b")
            .arg(b[0].parent().unwrap())
            .arg("--out")
            .arg(tmp.path().join("out"))
            .args(["--size", "16"]),
        TIMEOUT,
    );
    f.no_panic();
    // Either kept (the manifest records the name somehow) or skipped by name; not a crash.
    assert!(f.code == Some(0) || f.code == Some(3), "{}", f.describe());
}

/// On `--resume`, run-time settings are honoured and recorded; settings the checkpoint fixes
/// are refused as usage errors (exit 2) naming the flag, without touching the run.
#[test]
fn resume_honours_lr_and_refuses_another_architecture() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tiny_model(tmp.path()); // one iteration done
    let before = snapshot(&run_dir);
    let f = run(
        bin()
            .args(["train", "--resume"])
            .arg(&run_dir)
            .args(["--blocks", "3"]),
        TIMEOUT,
    );
    f.expect(2);
    assert!(f.stderr.contains("--blocks"), "{}", f.describe());
    assert_eq!(
        snapshot(&run_dir),
        before,
        "a refused resume changed the run"
    );

    run(
        bin().args(["train", "--resume"]).arg(&run_dir).args([
            "--lr",
            "0.0001",
            "--max-iters",
            "2",
            "--quiet",
        ]),
        TIMEOUT,
    )
    .expect(0);
    let log = std::fs::read_to_string(run_dir.join("losses.jsonl")).unwrap();
    let lrs: Vec<f64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["lr"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(lrs, [2e-4, 1e-4]);
    let config = std::fs::read_to_string(run_dir.join("config.toml")).unwrap();
    assert!(config.contains("--lr 0.0002 -> 0.0001"), "{config}");
}

/// A folder tree is translated into the same tree; a truncated image is translated with a
/// warning naming it and exit 3, or refused with `--strict`.
#[test]
fn translate_mirrors_subfolders_and_reports_truncated_images() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let input = tmp.path().join("in");
    write_good(&input.join("sub/deeper"), 1, 20, 8);
    let whole = common::encode(
        &DynamicImage::ImageRgb8(common::picture(24, 24, 9)),
        ImageFormat::Jpeg,
    );
    std::fs::write(input.join("cut.jpg"), &whole[..whole.len() * 2 / 3]).unwrap();
    let out = tmp.path().join("out");
    let f = run(
        bin()
            .args(["translate", "--quiet", "--model"])
            .arg(&model)
            .arg(&input)
            .arg(&out),
        TIMEOUT,
    );
    f.expect(3);
    assert!(
        f.stderr.contains("cut.jpg") && f.stderr.contains("truncated"),
        "{}",
        f.describe()
    );
    assert!(out.join("cut.jpg").exists());
    let nested = std::fs::read_dir(out.join("sub/deeper")).unwrap().count();
    assert_eq!(
        nested, 1,
        "the subfolder's image is written under the same path"
    );

    let f = run(
        bin()
            .args(["translate", "--quiet", "--strict", "--model"])
            .arg(&model)
            .arg(input.join("cut.jpg"))
            .arg(tmp.path().join("strict.jpg")),
        TIMEOUT,
    );
    f.expect(1);
    assert!(f.stderr.contains("cut.jpg") && !tmp.path().join("strict.jpg").exists());
}
