//! Write generated clips, read them back: frame count, timestamps, pixels.

mod common;

use std::path::Path;

use common::{psnr, scene};
use cyclegan_video::{CreateOptions, Frame, create, create_with, is_video_path, open};

fn write(path: &Path, w: u32, h: u32, times: &[f64]) -> Vec<image::RgbImage> {
    let mut sink = create(path, w, h).unwrap();
    let mut imgs = Vec::new();
    for (i, &t) in times.iter().enumerate() {
        let img = scene(w, h, i as f32 * 2.0);
        sink.write(&Frame {
            image: img.clone(),
            time: t,
            duration: None,
        })
        .unwrap();
        imgs.push(img);
    }
    sink.finish().unwrap();
    imgs
}

fn read(path: &Path) -> Vec<Frame> {
    open(path).unwrap().collect::<Result<Vec<_>, _>>().unwrap()
}

/// Round trip: same count, times within `tol` seconds, every frame at least `min_psnr` dB.
fn check(path: &Path, w: u32, h: u32, times: &[f64], tol: f64, min_psnr: f64) {
    let imgs = write(path, w, h, times);
    let src = open(path).unwrap();
    assert_eq!((src.info().width, src.info().height), (w, h));
    let frames = read(path);
    assert_eq!(frames.len(), times.len(), "frame count");
    for (i, (f, (&t, img))) in frames.iter().zip(times.iter().zip(&imgs)).enumerate() {
        assert!(
            (f.time - t).abs() <= tol,
            "frame {i}: time {} vs {t}",
            f.time
        );
        assert_eq!(f.image.dimensions(), (w, h));
        let p = psnr(&f.image, img);
        assert!(p >= min_psnr, "frame {i}: PSNR {p:.1} dB < {min_psnr}");
    }
}

fn cfr(n: usize, fps: f64) -> Vec<f64> {
    (0..n).map(|i| i as f64 / fps).collect()
}

const VFR: [f64; 12] = [
    0.0, 0.033, 0.1, 0.15, 0.31, 0.32, 0.5, 0.52, 0.6, 0.9, 0.95, 1.2,
];

#[test]
fn mp4_constant_rate() {
    let d = tempfile::tempdir().unwrap();
    check(&d.path().join("a.mp4"), 64, 48, &cfr(30, 25.0), 1e-9, 30.0);
}

#[test]
fn mp4_ntsc_rate_is_exact() {
    let d = tempfile::tempdir().unwrap();
    check(
        &d.path().join("a.mp4"),
        64,
        48,
        &(0..10)
            .map(|i| f64::from(i) * 1001.0 / 30000.0)
            .collect::<Vec<_>>(),
        1e-9,
        30.0,
    );
}

#[test]
fn mp4_variable_rate() {
    let d = tempfile::tempdir().unwrap();
    check(&d.path().join("v.mp4"), 64, 48, &VFR, 1.0 / 90_000.0, 30.0);
}

#[test]
fn mp4_odd_size() {
    let d = tempfile::tempdir().unwrap();
    check(&d.path().join("odd.mp4"), 33, 21, &cfr(8, 24.0), 1e-9, 28.0);
}

#[test]
fn mp4_durations_and_info() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.mp4");
    write(&p, 32, 32, &cfr(10, 10.0));
    let src = open(&p).unwrap();
    let info = src.info().clone();
    assert_eq!(info.frame_count, Some(10));
    assert!(
        (info.duration.unwrap() - 1.0).abs() < 1e-6,
        "{:?}",
        info.duration
    );
    let frames: Vec<Frame> = src.map(Result::unwrap).collect();
    for f in &frames {
        assert!((f.duration.unwrap() - 0.1).abs() < 1e-6);
    }
}

#[test]
fn mp4_custom_timescale_keeps_times() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.mp4");
    let times: Vec<f64> = (0..6).map(|i| f64::from(i) * 512.0 / 12288.0).collect();
    let opts = CreateOptions {
        timescale: 12288,
        ..Default::default()
    };
    let mut sink = create_with(&p, 32, 32, &opts).unwrap();
    for (i, &t) in times.iter().enumerate() {
        sink.write(&Frame {
            image: scene(32, 32, i as f32),
            time: t,
            duration: None,
        })
        .unwrap();
    }
    sink.finish().unwrap();
    let src = open(&p).unwrap();
    assert_eq!(src.info().timescale, Some(12288));
    let got: Vec<f64> = src.map(|f| f.unwrap().time).collect();
    assert_eq!(got, times);
}

#[test]
fn mp4_frame_of_wrong_size_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.mp4");
    let mut sink = create(&p, 32, 32).unwrap();
    let err = sink
        .write(&Frame {
            image: scene(16, 16, 0.0),
            time: 0.0,
            duration: None,
        })
        .unwrap_err();
    assert!(err.to_string().contains("16x16"), "{err}");
}

#[test]
fn gif_round_trip() {
    let d = tempfile::tempdir().unwrap();
    // GIF counts time in 1/100 s.
    let times: Vec<f64> = [0.0, 0.05, 0.1, 0.2, 0.25, 0.5, 0.6].to_vec();
    check(&d.path().join("a.gif"), 40, 30, &times, 1e-9, 22.0);
}

#[test]
fn gif_variable_rate_rounds_to_centiseconds() {
    let d = tempfile::tempdir().unwrap();
    check(&d.path().join("v.gif"), 24, 16, &VFR, 0.005 + 1e-9, 22.0);
}

#[test]
fn apng_round_trip_is_lossless() {
    let d = tempfile::tempdir().unwrap();
    check(&d.path().join("a.apng"), 31, 17, &VFR, 0.0005 + 1e-9, 99.0);
    check(
        &d.path().join("c.apng"),
        16,
        16,
        &cfr(5, 30.0),
        0.0005 + 1e-9,
        99.0,
    );
}

#[test]
fn b_frame_fixture_decodes_in_presentation_order() {
    // tests/data/README.md says how the fixture was made (x264, High profile, 3 B-frames).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let p = dir.join("bframes.mp4");
    let src = open(&p).unwrap();
    assert_eq!((src.info().width, src.info().height), (96, 64));
    let frames: Vec<Frame> = src.map(Result::unwrap).collect();
    assert_eq!(frames.len(), 25);
    for (i, f) in frames.iter().enumerate() {
        // The edit list / B-frame delay is removed: the first frame is at 0.
        assert!(
            (f.time - i as f64 * 0.04).abs() < 1e-9,
            "frame {i} at {}",
            f.time
        );
    }
    let reference = image::open(dir.join("bframes_frame10.png"))
        .unwrap()
        .to_rgb8();
    let p10 = psnr(&frames[10].image, &reference);
    assert!(p10 > 30.0, "frame 10 vs FFmpeg's decode: {p10:.1} dB");
    // The neighbours must be clearly worse matches, or the order would be unchecked.
    assert!(psnr(&frames[9].image, &reference) < p10 - 3.0);
    assert!(psnr(&frames[11].image, &reference) < p10 - 3.0);
}

#[test]
fn mp4_output_reads_back_after_rewriting() {
    // Decode the B-frame file and write it again: count and times survive.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let frames = read(&dir.join("bframes.mp4"));
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("copy.mp4");
    let mut sink = create(&p, 96, 64).unwrap();
    for f in &frames {
        sink.write(f).unwrap();
    }
    sink.finish().unwrap();
    let again = read(&p);
    assert_eq!(again.len(), frames.len());
    for (a, b) in again.iter().zip(&frames) {
        assert!((a.time - b.time).abs() < 1e-9);
        assert!(psnr(&a.image, &b.image) > 30.0);
    }
}

#[test]
fn video_paths() {
    for ok in ["a.mp4", "b.MOV", "c.m4v", "d.gif", "e.apng"] {
        assert!(is_video_path(Path::new(ok)), "{ok}");
    }
    for no in ["a.png", "b.jpg", "c"] {
        assert!(!is_video_path(Path::new(no)), "{no}");
    }
    // Matroska is FFmpeg's (tests/ffmpeg.rs checks the other extensions).
    assert_eq!(
        is_video_path(Path::new("d.mkv")),
        cfg!(feature = "ffmpeg"),
        "d.mkv"
    );
}
