//! `translate` for still images: the size options, tiled translation of large images, and the
//! memory refusal.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use burn::prelude::Device;
use common::{bin, random_generator, random_generator_file, run};
use cyclegan::family::Generator;
use cyclegan::model::ResnetGenerator;
use cyclegan::model::weights::{load_state_dict, state_dict};
use cyclegan::translate::{ImageOptions, Translator, memory};
use image::RgbImage;

const TIMEOUT: Duration = Duration::from_secs(300);

fn write_png(path: &Path, w: u32, h: u32) {
    cyclegan_testkit::picture(w, h, 3).save(path).unwrap();
}

fn dims(path: &Path) -> (u32, u32) {
    image::image_dimensions(path).unwrap()
}

#[test]
fn size_options_give_the_sizes_they_should() {
    let tmp = tempfile::tempdir().unwrap();
    let model = random_generator_file(tmp.path(), 4, 1);
    let input = tmp.path().join("in.png");
    write_png(&input, 96, 64);
    for (args, size) in [
        (&[][..], (96, 64)),
        (&["--load-size", "32"], (48, 32)),
        (&["--load-size", "128"], (192, 128)),
        (&["--max-side", "48"], (48, 32)),
        (&["--max-side", "200"], (96, 64)),
        (&["--max-side", "48", "--keep-size"], (96, 64)),
        (&["--load-size", "40", "--keep-size"], (96, 64)),
    ] {
        let out = tmp.path().join("out.png");
        run(
            bin()
                .arg("translate")
                .arg("--model")
                .arg(&model)
                .args(args)
                .arg(&input)
                .arg(&out),
            TIMEOUT,
        )
        .expect(0);
        assert_eq!(dims(&out), size, "{args:?}");
    }
    // The two scalings exclude each other; tiles must overlap by less than half their side.
    for args in [
        &["--load-size", "32", "--max-side", "48"][..],
        &["--tile", "64", "--tile-overlap", "32"],
        &["--tile", "8"],
        &["--max-side", "0"],
    ] {
        let f = run(
            bin()
                .arg("translate")
                .arg("--model")
                .arg(&model)
                .args(args)
                .arg(&input)
                .arg(tmp.path().join("x.png")),
            TIMEOUT,
        );
        f.expect(2);
        let flag = args[args.len() - 2];
        assert!(f.stderr.contains(flag), "{args:?}: {}", f.describe());
    }
}

/// A picture of one texture repeated with period 8 (in both directions), so that every tile
/// of a side multiple of 8 holds the same statistics as the whole.
fn periodic(w: u32, h: u32) -> RgbImage {
    let cell = cyclegan_testkit::picture(8, 8, 21);
    RgbImage::from_fn(w, h, |x, y| *cell.get_pixel(x % 8, y % 8))
}

/// `generator` with every weight multiplied by `factor`.
fn scaled(mut generator: ResnetGenerator, factor: f32) -> ResnetGenerator {
    let mut dict = state_dict(&mut generator);
    for (key, t) in dict.iter_mut() {
        if key.ends_with("weight") {
            t.data.iter_mut().for_each(|v| *v *= factor);
        }
    }
    let dict: HashMap<_, _> = dict.into_iter().collect();
    load_state_dict(&mut generator, &dict, Path::new("scaled"), "G").unwrap();
    generator
}

/// Tiled translation against the whole image at once, away from the seams.
///
/// The generator is fully convolutional with a receptive field of about 31 pixels each way
/// (ngf 8, 2 blocks), so a pixel farther than that from every tile edge sees the same input in
/// its tile as in the whole image. What still differs is instance norm, which normalises a tile
/// by the tile's statistics: on a periodic texture they agree with the whole image's except for
/// the border bands, where the padding differs. The weights are small (std 0.001, the
/// training's N(0, 0.02) times 0.05), so each convolution's output variance is near instance
/// norm's epsilon (1e-5): the norms then mostly subtract the mean and hardly rescale, and the
/// statistics matter little. Measured: at most 3 levels of 255 (mean 0.5) where the output
/// spans 23 levels. (With the training's initial weights the same comparison gives up to 53,
/// mean 9: README.md, "Large images".)
#[test]
fn tiled_translation_equals_untiled_away_from_the_seams() {
    let device = Device::flex();
    let g = scaled(random_generator(8, 2, 5), 0.05);
    let t = Translator::new(Generator::Resnet(g), &device);
    let (side, tile, overlap) = (256u32, 128u32, 32u32);
    let img = periodic(side, side);
    let whole = t.translate(std::slice::from_ref(&img)).remove(0);
    let opts = ImageOptions {
        tile: Some(tile),
        tile_overlap: overlap,
        ..ImageOptions::default()
    };
    let tiled = t
        .translate_image(&img, &opts, Path::new("periodic"))
        .unwrap();
    assert_eq!(tiled.dimensions(), (side, side));

    // Tile edges inside the image; "away" is farther than the receptive field from all of them.
    let starts = cyclegan::translate::tiles::tile_starts(side, tile, overlap);
    let edges: Vec<u32> = starts
        .iter()
        .flat_map(|&s| [s, s + tile])
        .filter(|&e| e > 0 && e < side)
        .collect();
    let away = |v: u32| edges.iter().all(|&e| v.abs_diff(e) >= 32);
    let (mut worst, mut total, mut counted) = (0u8, 0u64, 0u64);
    let (mut low, mut high) = (255u8, 0u8);
    for (x, y, p) in tiled.enumerate_pixels() {
        let q = whole.get_pixel(x, y);
        (low, high) = (low.min(q[0]), high.max(q[0]));
        if away(x) && away(y) {
            let d = (0..3).map(|c| p[c].abs_diff(q[c])).max().unwrap();
            (worst, total, counted) = (worst.max(d), total + d as u64, counted + 1);
        }
    }
    let mean = total as f64 / counted as f64;
    eprintln!(
        "away from the seams: largest difference {worst}, mean {mean:.2}; output {low}..{high}"
    );
    assert!(counted > 5_000, "{counted} pixels away from the seams");
    // Not a flat output, where any tiling would agree.
    assert!(high - low >= 15, "output spans only {low}..{high}");
    assert!(
        worst <= 4,
        "tiled differs from whole by {worst} levels away from the seams"
    );
    assert!(
        mean <= 1.0,
        "tiled differs from whole by {mean:.2} levels on average"
    );
}

#[test]
fn an_image_too_large_for_the_memory_limit_is_refused_with_the_options_that_help() {
    let tmp = tempfile::tempdir().unwrap();
    let model = random_generator_file(tmp.path(), 4, 1);
    let big = tmp.path().join("big.png");
    write_png(&big, 512, 384);
    let translate = |args: &[&str], input: &Path, out: &Path| {
        run(
            bin()
                .arg("translate")
                .arg("--model")
                .arg(&model)
                .args(["--memory-limit", "1"])
                .args(args)
                .arg(input)
                .arg(out),
            TIMEOUT,
        )
    };
    let out = tmp.path().join("out.png");
    let f = translate(&[], &big, &out);
    f.expect(1);
    let g = Generator::Resnet(random_generator(4, 1, 11));
    let need = memory::human(memory::estimate(&g, 512, 384));
    for part in ["big.png", "512x384", &need, "--max-side", "--tile"] {
        assert!(f.stderr.contains(part), "{part:?}: {}", f.describe());
    }
    assert!(!out.exists(), "nothing written");
    // Both fixes it names work under the same limit.
    translate(&["--max-side", "96"], &big, &out).expect(0);
    assert_eq!(dims(&out), (96, 72));
    translate(&["--tile", "64", "--tile-overlap", "8"], &big, &out).expect(0);
    assert_eq!(dims(&out), (512, 384));
    // In a folder, the image is skipped with the same message (exit 3: findings).
    let dir = tmp.path().join("folder");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(&big, dir.join("big.png")).unwrap();
    write_png(&dir.join("small.png"), 32, 32);
    let f = translate(&[], &dir, &tmp.path().join("folder_out"));
    f.expect(3);
    assert!(f.stderr.contains("--max-side"), "{}", f.describe());
    assert!(tmp.path().join("folder_out/small.png").exists());
}

/// The estimate is an upper bound of what translating takes: the binary's measured peak
/// memory, less its size before translating (measured on a 16 x 16 image), stays below it.
#[test]
fn the_memory_estimate_covers_the_measured_peak() {
    let tmp = tempfile::tempdir().unwrap();
    let model = random_generator_file(tmp.path(), 16, 2);
    let peak = |side: u32| {
        let input = tmp.path().join(format!("in{side}.png"));
        write_png(&input, side, side);
        let f = run(
            bin()
                .arg("translate")
                .arg("--model")
                .arg(&model)
                .arg(&input)
                .arg(tmp.path().join("out.png")),
            TIMEOUT,
        );
        f.expect(0);
        f.max_rss_kib * 1024
    };
    let (base, used) = (peak(16), peak(768));
    let g = Generator::Resnet(random_generator(16, 2, 11));
    let estimate = memory::estimate(&g, 768, 768);
    eprintln!(
        "768 x 768, ngf 16: measured {} over the base, estimated {}",
        memory::human(used - base),
        memory::human(estimate)
    );
    assert!(
        used - base <= estimate,
        "measured {used} - {base} > estimate {estimate}"
    );
    // And not wildly above it: the estimate is meant to refuse only what would not fit.
    assert!(
        estimate <= 3 * (used - base),
        "estimate {estimate} vs measured {}",
        used - base
    );
}
