//! `translate_video` with stand-in networks.

mod common;

use std::cell::RefCell;
use std::path::Path;

use common::{psnr, scene};
use cyclegan_video::{Frame, VideoError, VideoTranslateOptions, create, open, translate_video};
use image::RgbImage;

fn make_clip(path: &Path, w: u32, h: u32, times: &[f64]) {
    let mut sink = create(path, w, h).unwrap();
    for (i, &t) in times.iter().enumerate() {
        sink.write(&Frame {
            image: scene(w, h, i as f32 * 1.5),
            time: t,
            duration: None,
        })
        .unwrap();
    }
    sink.finish().unwrap();
}

fn frames(path: &Path) -> Vec<Frame> {
    open(path).unwrap().map(Result::unwrap).collect()
}

fn invert(frames: &[RgbImage]) -> Result<Vec<RgbImage>, String> {
    Ok(frames
        .iter()
        .map(|f| {
            let mut g = f.clone();
            image::imageops::invert(&mut g);
            g
        })
        .collect())
}

fn no_temporal() -> VideoTranslateOptions {
    VideoTranslateOptions {
        temporal: None,
        ..Default::default()
    }
}

const TIMES: [f64; 10] = [0.0, 0.04, 0.1, 0.13, 0.2, 0.45, 0.5, 0.54, 0.7, 0.71];

#[test]
fn inverts_every_frame_keeping_times() {
    let d = tempfile::tempdir().unwrap();
    let (inp, out) = (d.path().join("in.mp4"), d.path().join("out.mp4"));
    make_clip(&inp, 48, 32, &TIMES);
    let sizes = RefCell::new(Vec::new());
    let mut net = |f: &[RgbImage]| {
        sizes.borrow_mut().push(f.len());
        invert(f)
    };
    let mut seen = Vec::new();
    let opts = VideoTranslateOptions {
        batch: 3,
        temporal: None,
        ..Default::default()
    };
    let r = translate_video(&inp, &out, &opts, &mut net, &mut |done, total| {
        seen.push((done, total))
    })
    .unwrap();
    assert_eq!(r.frames, 10);
    assert_eq!((r.width, r.height), (48, 32));
    assert_eq!(*sizes.borrow(), vec![3, 3, 3, 1]);
    assert_eq!(seen.last(), Some(&(10, Some(10))));
    let (a, b) = (frames(&inp), frames(&out));
    assert_eq!(b.len(), a.len());
    for (x, y) in a.iter().zip(&b) {
        assert!((x.time - y.time).abs() < 1e-9, "{} vs {}", x.time, y.time);
        let mut inv = x.image.clone();
        image::imageops::invert(&mut inv);
        assert!(psnr(&inv, &y.image) > 28.0, "{:.1}", psnr(&inv, &y.image));
    }
    // Nothing but the output is left in the folder.
    let names: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn resizes_to_the_requested_shorter_side_and_odd_sizes_work() {
    let d = tempfile::tempdir().unwrap();
    let (inp, out) = (d.path().join("in.mp4"), d.path().join("out.mp4"));
    make_clip(&inp, 48, 32, &TIMES[..4]);
    let got = RefCell::new(None);
    let mut net = |f: &[RgbImage]| {
        *got.borrow_mut() = Some(f[0].dimensions());
        invert(f)
    };
    let opts = VideoTranslateOptions {
        size: Some(21),
        ..no_temporal()
    };
    let r = translate_video(&inp, &out, &opts, &mut net, &mut |_, _| {}).unwrap();
    assert_eq!(*got.borrow(), Some((32, 21)));
    assert_eq!((r.width, r.height), (32, 21));
    let b = frames(&out);
    assert_eq!(b.len(), 4);
    assert_eq!(b[0].image.dimensions(), (32, 21));
}

#[test]
fn network_output_of_another_size_is_resized_back() {
    let d = tempfile::tempdir().unwrap();
    let (inp, out) = (d.path().join("in.apng"), d.path().join("out.mp4"));
    make_clip(&inp, 30, 18, &TIMES[..3]);
    let mut net = |f: &[RgbImage]| -> Result<Vec<RgbImage>, String> {
        Ok(f.iter()
            .map(|i| image::imageops::resize(i, 32, 20, image::imageops::FilterType::Triangle))
            .collect())
    };
    let r = translate_video(&inp, &out, &no_temporal(), &mut net, &mut |_, _| {}).unwrap();
    assert_eq!((r.width, r.height, r.frames), (30, 18, 3));
}

#[test]
fn side_by_side_puts_the_input_on_the_left() {
    let d = tempfile::tempdir().unwrap();
    let (inp, out) = (d.path().join("in.gif"), d.path().join("out.apng"));
    make_clip(&inp, 20, 16, &[0.0, 0.1, 0.2]);
    let opts = VideoTranslateOptions {
        side_by_side: true,
        ..no_temporal()
    };
    let r = translate_video(&inp, &out, &opts, &mut invert, &mut |_, _| {}).unwrap();
    assert_eq!((r.width, r.height), (40, 16));
    let (a, b) = (frames(&inp), frames(&out));
    assert_eq!(b.len(), 3);
    for (x, y) in a.iter().zip(&b) {
        assert!((x.time - y.time).abs() < 1e-9);
        let left = image::imageops::crop_imm(&y.image, 0, 0, 20, 16).to_image();
        let mut right = image::imageops::crop_imm(&y.image, 20, 0, 20, 16).to_image();
        assert_eq!(left, x.image);
        image::imageops::invert(&mut right);
        assert_eq!(right, x.image);
    }
}

#[test]
fn failing_network_leaves_no_output() {
    let d = tempfile::tempdir().unwrap();
    let (inp, out) = (d.path().join("in.mp4"), d.path().join("out.mp4"));
    make_clip(&inp, 32, 32, &TIMES);
    std::fs::write(&out, b"old").unwrap();
    let mut calls = 0;
    let mut net = |f: &[RgbImage]| {
        calls += 1;
        if calls == 2 {
            Err("out of memory".to_string())
        } else {
            invert(f)
        }
    };
    let opts = VideoTranslateOptions {
        batch: 2,
        ..no_temporal()
    };
    let err = translate_video(&inp, &out, &opts, &mut net, &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, VideoError::Translate { .. }), "{err}");
    assert!(err.to_string().contains("out of memory"));
    // The old file is untouched and no temporary file is left.
    assert_eq!(std::fs::read(&out).unwrap(), b"old");
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);

    let mut wrong_count = |f: &[RgbImage]| invert(&f[..1]);
    let opts = VideoTranslateOptions {
        batch: 2,
        ..no_temporal()
    };
    let err = translate_video(&inp, &out, &opts, &mut wrong_count, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("returned 1 frames for 2"), "{err}");
}

#[test]
fn temporal_smoothing_keeps_a_steady_translation() {
    let d = tempfile::tempdir().unwrap();
    let (inp, out) = (d.path().join("in.mp4"), d.path().join("out.mp4"));
    make_clip(&inp, 48, 32, &TIMES);
    let r = translate_video(
        &inp,
        &out,
        &VideoTranslateOptions::default(),
        &mut invert,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(r.frames, 10);
    for (x, y) in frames(&inp).iter().zip(&frames(&out)) {
        let mut inv = x.image.clone();
        image::imageops::invert(&mut inv);
        assert!(psnr(&inv, &y.image) > 26.0, "{:.1}", psnr(&inv, &y.image));
    }
}
