//! `cyclegan eval` refuses bad input with a message naming the option or file, never a panic;
//! `cyclegan eval-video` on a clip with a cut. (FID/KID values against the reference are in
//! `fid_reference.rs`.)

mod common;

use std::time::Duration;

use common::{bin, run, write_good};

const TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn bad_eval_input_gets_clear_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let two = tmp.path().join("two");
    write_good(&two, 2, 16, 1);
    let one = tmp.path().join("one");
    write_good(&one, 1, 16, 2);

    // No weights in the cache: say where they go and how to pass them.
    let f = run(
        bin()
            .env("XDG_CACHE_HOME", tmp.path().join("empty-cache"))
            .args(["eval", "--real"])
            .arg(&two)
            .arg("--fake")
            .arg(&two),
        TIMEOUT,
    );
    f.expect(1);
    assert!(
        f.stderr.contains("inception_v3_fid.safetensors") && f.stderr.contains("--inception"),
        "{}",
        f.describe()
    );

    // A weights file that is not one.
    let bogus = tmp.path().join("bogus.safetensors");
    std::fs::write(&bogus, b"not safetensors").unwrap();
    let with = |args: &[&std::ffi::OsStr]| {
        let mut c = bin();
        c.arg("eval").arg("--inception").arg(&bogus).args(args);
        run(&mut c, TIMEOUT)
    };
    let f = with(&[
        "--real".as_ref(),
        two.as_os_str(),
        "--fake".as_ref(),
        two.as_os_str(),
    ]);
    f.expect(1);
    assert!(f.stderr.contains("bogus.safetensors"), "{}", f.describe());

    // Too few images, a missing folder, a missing weights file: each named.
    let f = with(&[
        "--real".as_ref(),
        two.as_os_str(),
        "--fake".as_ref(),
        one.as_os_str(),
    ]);
    f.expect(1);
    assert!(
        f.stderr.contains("one") && f.stderr.contains("at least 2 images"),
        "{}",
        f.describe()
    );
    let missing = tmp.path().join("nowhere");
    let f = with(&[
        "--real".as_ref(),
        missing.as_os_str(),
        "--fake".as_ref(),
        two.as_os_str(),
    ]);
    f.expect(1);
    assert!(f.stderr.contains("nowhere"), "{}", f.describe());
    let f = run(
        bin()
            .args(["eval", "--inception"])
            .arg(tmp.path().join("absent.safetensors"))
            .arg("--real")
            .arg(&two)
            .arg("--fake")
            .arg(&two),
        TIMEOUT,
    );
    f.expect(1);
    assert!(f.stderr.contains("absent.safetensors"), "{}", f.describe());

    // Usage errors: half a pair, or nothing to compare.
    run(bin().args(["eval", "--real"]).arg(&two), TIMEOUT).expect(2);
    let f = run(bin().args(["eval", "--inception"]).arg(&bogus), TIMEOUT);
    f.expect(1);
    assert!(
        f.stderr.contains("--real DIR --fake DIR"),
        "{}",
        f.describe()
    );
}

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
