//! `cyclegan eval-video` as a user runs it: a clip with one hard cut, compared with itself.

mod common;

use std::time::Duration;

use common::{bin, run};

/// A textured frame: smooth blobs (the flow can follow them), shifted `dx` pixels right;
/// `shot` changes the texture.
fn frame(dx: u32, shot: u32) -> image::RgbImage {
    image::RgbImage::from_fn(64, 48, |x, y| {
        let (fx, fy) = ((x + 200 - dx) as f32, y as f32);
        let k = 1.0 + shot as f32 * 0.7;
        let v = |a: f32, b: f32| (((fx * a * k).sin() + (fy * b * k).cos()) * 60.0 + 128.0) as u8;
        image::Rgb([v(0.21, 0.17), v(0.13, 0.23), v(0.19, 0.11)])
    })
}

/// The JSON names the shot change and leaves that pair out; a steady output (the input itself)
/// reads a small warping error over most pixels.
#[test]
fn a_cut_is_counted_and_not_scored() {
    let tmp = tempfile::tempdir().unwrap();
    let clip = tmp.path().join("clip.mp4");
    let times: Vec<f64> = (0..10).map(|i| f64::from(i) / 10.0).collect();
    cyclegan_testkit::write_video(&clip, &times, |i| frame(2 * i as u32, u32::from(i >= 5)));
    let f = run(
        bin().arg("eval-video").arg(&clip).arg(&clip).arg("--json"),
        Duration::from_secs(120),
    );
    f.expect(0);
    let v: serde_json::Value = serde_json::from_str(&f.stdout).unwrap();
    assert_eq!(v["frames"], 10);
    assert_eq!(v["shot_changes"], 1, "{v}");
    assert!(v["scored_fraction"].as_f64().unwrap() > 0.8, "{v}");
    assert!(v["warping_error"].as_f64().unwrap() < 1e-3, "{v}");
}
