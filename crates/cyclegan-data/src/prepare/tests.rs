//! `prepare` end to end on small generated inputs: layout, manifest, report, duplicates and the
//! split, frame sampling, bars, colour modes, and the protection of the output folder.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use cyclegan_testkit::{encode, picture, write_video};
use image::{DynamicImage, RgbImage};

use super::*;
use crate::bars::CropBox;
use crate::bars::tests::{night_scene, with_bars};
use crate::sources::Sampling;

/// `n` frame times `interval` seconds apart, from 0.
fn every(n: usize, interval: f64) -> Vec<f64> {
    (0..n).map(|i| i as f64 * interval).collect()
}

fn save(img: &RgbImage, path: &Path) {
    img.save(path).unwrap();
}

fn opts(a: Vec<PathBuf>, b: Vec<PathBuf>, out: PathBuf) -> PrepareOptions {
    PrepareOptions {
        a,
        b,
        out,
        size: 32,
        ..PrepareOptions::default()
    }
}

fn manifest(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("manifest.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A letterboxed animation: 20 frames of 250 ms (5 s), each a different picture, with 8-pixel
/// black bars above and below a 64x32 picture.
fn letterboxed_frame(i: usize) -> RgbImage {
    with_bars(&picture(64, 32, 100 + i as u64), 64, 48, 0, 8, 0, 0)
}

#[test]
fn images_and_an_animation_make_the_training_layout() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("photos");
    std::fs::create_dir_all(a.join("nested")).unwrap();
    for i in 0..10 {
        save(
            &picture(48 + i * 4, 40, u64::from(i)),
            &a.join(format!("p{i:02}.png")),
        );
    }
    save(&picture(30, 30, 50), &a.join("nested/small.jpg"));
    // Non-RGB modes, each converted.
    DynamicImage::ImageRgb8(picture(40, 40, 60))
        .to_luma8()
        .save(a.join("grey.png"))
        .unwrap();
    DynamicImage::ImageRgb8(picture(40, 40, 61))
        .to_luma16()
        .save(a.join("grey16.png"))
        .unwrap();
    DynamicImage::ImageRgb8(picture(40, 40, 62))
        .to_rgba8()
        .save(a.join("rgba.png"))
        .unwrap();
    DynamicImage::ImageRgb8(picture(40, 40, 63))
        .to_rgb16()
        .save(a.join("rgb16.png"))
        .unwrap();
    let cmyk: Vec<u8> = picture(40, 40, 64)
        .pixels()
        .flat_map(|p| [255 - p[0], 255 - p[1], 255 - p[2], 0])
        .collect();
    let mut buf = Vec::new();
    jpeg_encoder::Encoder::new(&mut buf, 95)
        .encode(&cmyk, 40, 40, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    std::fs::write(a.join("cmyk.jpg"), buf).unwrap();
    // Broken inputs of every kind.
    std::fs::write(a.join("empty.jpg"), b"").unwrap();
    let jpg = encode(picture(64, 64, 70), image::ImageFormat::Jpeg);
    std::fs::write(a.join("truncated.jpg"), &jpg[..jpg.len() / 2]).unwrap();
    let png = encode(picture(64, 64, 71), image::ImageFormat::Png);
    std::fs::write(a.join("nested/cut.png"), &png[..png.len() - 12]).unwrap();
    std::fs::write(a.join("text.png"), b"this is not a picture").unwrap();
    std::fs::write(a.join("photo.heic"), b"whatever").unwrap();
    std::fs::write(a.join("README.txt"), b"notes").unwrap();
    // Domain B: an animated GIF (5 s, 4 fps) and an APNG (3 frames of 0.6 s).
    let gif = t.path().join("clip.gif");
    write_video(&gif, &every(20, 0.25), letterboxed_frame);
    let apng = t.path().join("anim.png");
    write_video(&apng, &every(3, 0.6), |i| picture(40, 40, 200 + i as u64));

    let out = t.path().join("data");
    let mut o = opts(
        vec![a.clone()],
        vec![gif.clone(), apng.clone()],
        out.clone(),
    );
    o.test_fraction = 0.2;
    let r = prepare(&o).unwrap();
    assert!(r.installed);

    // Layout the trainer reads: plain image files in trainA/trainB (and testA/testB).
    for d in ["trainA", "trainB", "testA", "testB"] {
        assert!(out.join(d).is_dir(), "{d}");
        for f in files_in(&out.join(d)) {
            assert!(f.ends_with(".png"), "{d}/{f}");
            let img = image::open(out.join(d).join(&f)).unwrap();
            assert_eq!(
                (img.width(), img.height(), img.color()),
                (32, 32, image::ColorType::Rgb8)
            );
        }
    }
    let da = &r.domains[0];
    assert_eq!(da.pictures, 16, "{:#?}", r.skipped);
    assert_eq!(da.train + da.test, 16);
    assert_eq!(da.test, 3); // round(16 * 0.2)
    assert_eq!(
        files_in(&out.join("trainA")).len() + files_in(&out.join("testA")).len(),
        16
    );
    assert_eq!(da.upscaled, 1); // nested/small.jpg is 30x30
    let conv: Vec<(&str, usize)> = da.converted.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        conv,
        vec![
            ("CMYK", 1),
            ("RGB 16-bit", 1),
            ("RGBA 8-bit", 1),
            ("grey 16-bit", 1),
            ("grey 8-bit", 1)
        ]
    );

    // Every broken input is listed with its reason; the README is only "ignored".
    let skipped: Vec<(String, &str)> = r
        .skipped
        .iter()
        .map(|s| {
            (
                s.path.file_name().unwrap().to_string_lossy().into_owned(),
                s.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(skipped.len(), 5, "{skipped:?}");
    let why = |n: &str| {
        skipped
            .iter()
            .find(|s| s.0 == n)
            .map(|s| s.1.to_string())
            .unwrap_or_default()
    };
    assert!(why("empty.jpg").contains("empty"), "{skipped:?}");
    assert!(why("truncated.jpg").contains("truncated"), "{skipped:?}");
    assert!(why("cut.png").contains("partial image"), "{skipped:?}");
    assert!(
        why("text.png").contains("not a supported image"),
        "{skipped:?}"
    );
    assert!(why("photo.heic").contains("unsupported"), "{skipped:?}");
    assert_eq!(r.ignored.len(), 1);
    assert!(r.has_findings());

    // Video frames: one per second by timestamp, bars cropped once for the clip.
    let v = r.videos.iter().find(|v| v.path == gif).unwrap();
    assert_eq!(
        (v.frames_decoded, v.frames_sampled, v.frames_kept),
        (20, 5, 5)
    );
    assert_eq!(
        v.crop,
        Some(CropBox {
            x: 0,
            y: 8,
            width: 64,
            height: 32
        })
    );
    let m = manifest(&out);
    assert_eq!(m.len(), 16 + 5 + 2);
    let mut gif_times: Vec<(f64, u64)> = m
        .iter()
        .filter(|e| e["source"] == gif.to_str().unwrap())
        .map(|e| {
            (
                e["frame_time"].as_f64().unwrap(),
                e["frame_index"].as_u64().unwrap(),
            )
        })
        .collect();
    gif_times.sort_by(|x, y| x.0.total_cmp(&y.0));
    assert_eq!(
        gif_times,
        vec![(0.0, 0), (1.0, 4), (2.0, 8), (3.0, 12), (4.0, 16)]
    );
    assert!(
        m.iter()
            .filter(|e| e["source"] == gif.to_str().unwrap())
            .all(|e| e["crop"]["y"] == 8)
    );
    // APNG at 1 fps: frames at 0, 0.6 (same second as 0), 1.2 -> frames 0 and 2.
    let mut apng_idx: Vec<u64> = m
        .iter()
        .filter(|e| e["source"] == apng.to_str().unwrap())
        .map(|e| e["frame_index"].as_u64().unwrap())
        .collect();
    apng_idx.sort();
    assert_eq!(apng_idx, vec![0, 2]);
    let grey = m
        .iter()
        .find(|e| e["source"].as_str().unwrap().ends_with("grey.png"))
        .unwrap();
    assert_eq!(grey["original_mode"], "Gray8");
    assert_eq!(grey["converted"], true);
    assert_eq!(grey["original_size"], serde_json::json!([40, 40]));
    assert_eq!(grey["sha256"].as_str().unwrap().len(), 64);

    // The report names what happened.
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for needle in ["truncated.jpg", "CMYK", "clip.gif", "0,8,64,32", "| A |"] {
        assert!(md.contains(needle), "report.md lacks {needle}:\n{md}");
    }
    // Nothing temporary left behind.
    assert_eq!(
        files_in(&out),
        vec![
            "manifest.jsonl",
            "report.md",
            "testA",
            "testB",
            "trainA",
            "trainB"
        ]
    );
    // doctor agrees: no leaks, nothing unreadable.
    let doc = crate::doctor::doctor_dir(&out).unwrap();
    assert!(!doc.has_problems(), "{}", crate::report::doctor_text(&doc));
}

#[test]
fn duplicates_are_grouped_dropped_and_never_straddle_the_split() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    for i in 0..12 {
        save(&picture(64, 64, i), &a.join(format!("a{i:02}.png")));
        save(&picture(64, 64, 500 + i), &b.join(format!("b{i:02}.png")));
    }
    let x = picture(64, 64, 3);
    save(&x, &a.join("z_exact_copy.png")); // same pixels, other name
    let bigger = image::imageops::resize(&x, 96, 96, image::imageops::FilterType::CatmullRom);
    save(&bigger, &a.join("z_bigger.png")); // near copy, larger: the one kept
    save(&picture(64, 64, 7), &b.join("in_both.png")); // a picture of domain A in domain B

    let out = t.path().join("d1");
    let mut o = opts(vec![a.clone()], vec![b.clone()], out.clone());
    o.test_fraction = 0.5;
    let r = prepare(&o).unwrap();
    let da = &r.domains[0];
    assert_eq!(da.duplicate_groups.len(), 1, "{:#?}", da.duplicate_groups);
    let g = &da.duplicate_groups[0];
    assert!(g.kept.ends_with("z_bigger.png"), "{g:#?}");
    assert_eq!(g.others.len(), 2);
    let mut others: Vec<&str> = g
        .others
        .iter()
        .map(|m| m.source.rsplit('/').next().unwrap())
        .collect();
    others.sort();
    assert_eq!(others, vec!["a03.png", "z_exact_copy.png"]);
    assert!(
        g.others
            .iter()
            .all(|m| m.dropped && m.distance <= o.near_threshold)
    );
    assert_eq!(da.duplicates_dropped, 2);
    assert_eq!(da.train + da.test, 12);
    assert_eq!(r.cross_domain.len(), 1);
    assert!(r.cross_domain[0].exact && r.cross_domain[0].b.ends_with("in_both.png"));
    assert!(r.has_findings());

    // Keeping duplicates: all three stay, on one side of the split, for any seed.
    for seed in 0..6 {
        let out = t.path().join(format!("keep{seed}"));
        let mut o = opts(vec![a.clone()], vec![b.clone()], out.clone());
        o.keep_duplicates = true;
        o.test_fraction = 0.5;
        o.seed = seed;
        let r = prepare(&o).unwrap();
        assert_eq!(r.domains[0].train + r.domains[0].test, 14);
        let m = manifest(&out);
        let splits: HashSet<&str> = m
            .iter()
            .filter(|e| e["duplicate_group"].is_u64() && e["domain"] == "A")
            .map(|e| e["split"].as_str().unwrap())
            .collect();
        assert_eq!(
            splits.len(),
            1,
            "seed {seed}: a duplicate group straddles the split"
        );
        assert_eq!(
            m.iter()
                .filter(|e| e["duplicate_group"].is_u64() && e["domain"] == "A")
                .count(),
            3
        );
        assert_eq!(r.domains[0].leaks_after_split, 0);
    }
}

#[test]
fn frames_of_one_video_stay_together_with_split_by_source() {
    let t = tempfile::tempdir().unwrap();
    let mut clips = Vec::new();
    for c in 0..4u32 {
        let p = t.path().join(format!("c{c}.gif"));
        write_video(&p, &every(6, 0.5), |i| {
            picture(32, 32, 1000 + u64::from(c) * 50 + i as u64)
        });
        clips.push(p);
    }
    let b = t.path().join("b.png");
    save(&picture(32, 32, 9), &b);
    for seed in 0..4 {
        let out = t.path().join(format!("o{seed}"));
        let mut o = opts(clips.clone(), vec![b.clone()], out.clone());
        o.split_by_source = true;
        o.test_fraction = 0.25;
        o.seed = seed;
        let r = prepare(&o).unwrap();
        assert_eq!(r.domains[0].train + r.domains[0].test, 12); // 3 frames (0, 1, 2 s) per clip
        assert_eq!(r.domains[0].test, 3);
        let m = manifest(&out);
        for clip in &clips {
            let splits: HashSet<&str> = m
                .iter()
                .filter(|e| e["source"] == clip.to_str().unwrap())
                .map(|e| e["split"].as_str().unwrap())
                .collect();
            assert_eq!(splits.len(), 1, "{clip:?} straddles the split");
        }
    }
}

#[test]
fn unchanged_frames_are_skipped_and_every_n_counts_frames() {
    let t = tempfile::tempdir().unwrap();
    let gif = t.path().join("static.gif");
    // Frames 0-3 the same picture, 4-7 another: at 10 fps every frame is sampled.
    write_video(&gif, &every(8, 0.1), |i| {
        picture(32, 32, if i < 4 { 1 } else { 2 })
    });
    let b = t.path().join("b.png");
    save(&picture(32, 32, 9), &b);
    let mut o = opts(vec![gif.clone()], vec![b.clone()], t.path().join("o1"));
    o.sampling = Sampling::Fps(10.0);
    o.test_fraction = 0.0;
    let r = prepare(&o).unwrap();
    let v = &r.videos[0];
    assert_eq!(
        (v.frames_sampled, v.frames_unchanged, v.frames_kept),
        (8, 6, 2)
    );
    // --min-change 0 keeps them all (and then dedup groups the copies).
    let mut o2 = o.clone();
    o2.out = t.path().join("o2");
    o2.min_change = 0;
    o2.keep_duplicates = true;
    let r = prepare(&o2).unwrap();
    assert_eq!(r.videos[0].frames_kept, 8);
    assert_eq!(r.domains[0].duplicate_groups.len(), 2);
    // --every 3 picks decode indices 0, 3, 6.
    let mut o3 = o.clone();
    o3.out = t.path().join("o3");
    o3.sampling = Sampling::Every(3);
    o3.min_change = 0;
    o3.keep_duplicates = true;
    prepare(&o3).unwrap();
    let mut idx: Vec<u64> = manifest(&o3.out)
        .iter()
        .filter_map(|e| e["frame_index"].as_u64())
        .collect();
    idx.sort();
    assert_eq!(idx, vec![0, 3, 6]);
}

#[test]
fn long_clips_are_read_twice_with_the_same_frames() {
    let t = tempfile::tempdir().unwrap();
    let gif = t.path().join("long.gif");
    write_video(&gif, &every(20, 0.25), letterboxed_frame);
    let b = t.path().join("b.png");
    save(&picture(32, 32, 9), &b);
    let mut o = opts(vec![gif.clone()], vec![b], t.path().join("o"));
    o.frame_buffer_bytes = 64 * 48 * 3 * 2; // two frames fit, five are kept
    let r = prepare(&o).unwrap();
    assert_eq!(r.videos[0].frames_kept, 5);
    assert_eq!(
        r.videos[0].crop,
        Some(CropBox {
            x: 0,
            y: 8,
            width: 64,
            height: 32
        })
    );
    let mut idx: Vec<u64> = manifest(&o.out)
        .iter()
        .filter_map(|e| e["frame_index"].as_u64())
        .collect();
    idx.sort();
    assert_eq!(idx, vec![0, 4, 8, 12, 16]);
}

#[test]
fn bars_on_still_images_only_when_asked_and_never_on_a_dark_scene() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    std::fs::create_dir_all(&a).unwrap();
    save(
        &with_bars(&picture(80, 40, 1), 80, 60, 0, 10, 20, 5),
        &a.join("boxed.png"),
    );
    save(&night_scene(80, 60), &a.join("night.png"));
    let b = t.path().join("b.png");
    save(&picture(32, 32, 9), &b);
    let mut o = opts(vec![a.clone()], vec![b.clone()], t.path().join("o1"));
    o.test_fraction = 0.0;
    let r = prepare(&o).unwrap();
    assert_eq!(r.domains[0].bars_cropped, 0);
    o.out = t.path().join("o2");
    o.crop_bars = CropBars::All;
    let r = prepare(&o).unwrap();
    assert_eq!(r.domains[0].bars_cropped, 1);
    let m = manifest(&o.out);
    let boxed = m
        .iter()
        .find(|e| e["source"].as_str().unwrap().ends_with("boxed.png"))
        .unwrap();
    assert_eq!(
        boxed["crop"],
        serde_json::json!({"x": 0, "y": 10, "width": 80, "height": 40})
    );
    let night = m
        .iter()
        .find(|e| e["source"].as_str().unwrap().ends_with("night.png"))
        .unwrap();
    assert!(night["crop"].is_null());
}

#[test]
fn non_rgb_drop_and_output_format() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    std::fs::create_dir_all(&a).unwrap();
    save(&picture(40, 40, 1), &a.join("rgb.png"));
    DynamicImage::ImageRgb8(picture(40, 40, 2))
        .to_luma8()
        .save(a.join("grey.png"))
        .unwrap();
    let b = t.path().join("b.png");
    save(&picture(32, 32, 9), &b);
    let mut o = opts(vec![a], vec![b], t.path().join("o"));
    o.non_rgb = NonRgb::Drop;
    o.format = OutputFormat::Jpg;
    o.test_fraction = 0.0;
    let r = prepare(&o).unwrap();
    assert_eq!(r.domains[0].train, 1);
    assert_eq!(r.domains[0].dropped_non_rgb.len(), 1);
    assert!(r.domains[0].dropped_non_rgb[0].path.ends_with("grey.png"));
    assert!(!r.has_findings()); // asked for, not a problem
    assert_eq!(files_in(&o.out.join("trainA")), vec!["rgb.jpg"]);
    let bytes = std::fs::read(o.out.join("trainA/rgb.jpg")).unwrap();
    assert!(bytes.starts_with(&[0xFF, 0xD8]));
}

#[test]
fn output_folder_is_protected() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a.png");
    let b = t.path().join("b.png");
    save(&picture(32, 32, 1), &a);
    save(&picture(32, 32, 2), &b);
    let out = t.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("mine.txt"), b"keep me").unwrap();
    let o = opts(vec![a.clone()], vec![b.clone()], out.clone());
    assert!(matches!(prepare(&o), Err(PrepareError::OutNotEmpty(_))));
    assert_eq!(files_in(&out), vec!["mine.txt"]);
    // --overwrite: the user's file stays, a previous layout is moved aside, not deleted.
    let o = PrepareOptions {
        overwrite: true,
        ..o
    };
    prepare(&o).unwrap();
    std::fs::write(out.join("trainA/extra.png"), b"user's").unwrap();
    let r = prepare(&o).unwrap();
    let old = r.replaced.clone().unwrap();
    assert!(old.join("trainA/extra.png").exists());
    assert!(!out.join("trainA/extra.png").exists());
    assert_eq!(std::fs::read(out.join("mine.txt")).unwrap(), b"keep me");
    assert!(out.join("trainA/a.png").exists());
}

#[test]
fn strict_installs_nothing_when_something_was_skipped() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    std::fs::create_dir_all(&a).unwrap();
    save(&picture(32, 32, 1), &a.join("ok.png"));
    std::fs::write(a.join("bad.jpg"), b"").unwrap();
    let b = t.path().join("b.png");
    save(&picture(32, 32, 2), &b);
    let out = t.path().join("out");
    let o = PrepareOptions {
        strict: true,
        ..opts(vec![a], vec![b], out.clone())
    };
    let r = prepare(&o).unwrap();
    assert!(!r.installed);
    assert_eq!(r.skipped.len(), 1);
    assert!(!out.exists());
}

#[test]
fn bad_options_and_empty_domains_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a.png");
    save(&picture(32, 32, 1), &a);
    let bad = t.path().join("bad.jpg");
    std::fs::write(&bad, b"nope").unwrap();
    let out = t.path().join("out");
    let e = prepare(&opts(vec![a.clone()], vec![bad], out.clone())).unwrap_err();
    assert!(
        e.to_string().contains("domain B has no usable picture")
            && e.to_string().contains("bad.jpg"),
        "{e}"
    );
    assert!(!out.exists());
    let e = prepare(&PrepareOptions {
        test_fraction: 1.0,
        ..opts(vec![a.clone()], vec![a.clone()], out.clone())
    })
    .unwrap_err();
    assert!(e.to_string().contains("--test-fraction"));
    let e = prepare(&opts(vec![t.path().join("missing")], vec![a.clone()], out)).unwrap_err();
    assert!(e.to_string().contains("missing"));
}
