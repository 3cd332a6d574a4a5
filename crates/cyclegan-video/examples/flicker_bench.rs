//! Flicker benchmark: a slow pan-and-zoom clip made from a photo, translated by a dummy
//! "network" that flickers like an unstable GAN, with temporal smoothing off and on.
//!
//! ```sh
//! cargo run --release -p cyclegan-video --example flicker_bench -- [PHOTO] [--out DIR] [--long FRAMES]
//! ```
//!
//! PHOTO defaults to the first image of /work/shared/datasets/horse2zebra/testA. With
//! `--long N` it instead translates an N-frame clip (temporal on) and reports peak memory.
//!
//! On a real clip instead of the synthetic pan:
//!
//! ```sh
//! cargo run --release -p cyclegan-video --example flicker_bench -- --clip CLIP.mp4 \
//!     [--every K] [--frames N] [--size S] [--strength X] [--sigma X] [--lk-radius R] [--out DIR]
//! ```
//!
//! keeps every K-th frame (K = 4 makes a fast-motion, low-frame-rate variant), at most N of
//! them, with the shorter side resized to S; writes that input clip to DIR, translates it with
//! the dummy flickering network with smoothing off and on, and prints both warping errors.
//! `--time-480p CLIP.mp4` times the smoother alone on 854x480 frames of CLIP.

use std::path::{Path, PathBuf};
use std::time::Instant;

use cyclegan_video::flow::FlowParams;
use cyclegan_video::{
    FlickerMeter, Frame, TemporalParams, VideoTranslateOptions, create, open, translate_video,
};
use image::{Rgb, RgbImage};

const W: u32 = 480;
const H: u32 = 270;
const FPS: f64 = 24.0;

/// Deterministic xorshift noise.
struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        (0..4).map(|_| self.uniform()).sum::<f32>() * 1.732 - 3.464
    }
}

/// Frame `k` of `n` of a slow pan (left to right, about 3 pixels a frame) with a 1.0x to 1.25x
/// zoom over the photo,
/// sampled bilinearly so the motion is smooth and sub-pixel.
fn pan_zoom(photo: &RgbImage, k: usize, n: usize) -> RgbImage {
    let s = k as f32 / (n.max(2) - 1) as f32;
    let (pw, ph) = (photo.width() as f32, photo.height() as f32);
    // The window spans 60% of the photo's width at the start and 48% at the end (1.25x zoom),
    // its centre panning from 30% to 70% of the width and bobbing slightly vertically.
    let zoom = 1.0 + 0.25 * s;
    let scale = 0.6 * pw / W as f32 / zoom;
    let cx = pw * (0.3 + 0.4 * s);
    let cy = ph * (0.5 + 0.05 * (s * std::f32::consts::PI).sin());
    let data: Vec<f32> = photo.as_raw().iter().map(|&v| f32::from(v)).collect();
    RgbImage::from_fn(W, H, |x, y| {
        let sx = cx + (x as f32 - W as f32 / 2.0) * scale;
        let sy = cy + (y as f32 - H as f32 / 2.0) * scale;
        let mut px = [0u8; 3];
        for (c, p) in px.iter_mut().enumerate() {
            *p = sample(
                &data,
                photo.width() as usize,
                photo.height() as usize,
                sx,
                sy,
                c,
            )
            .round() as u8;
        }
        Rgb(px)
    })
}

fn sample(d: &[f32], w: usize, h: usize, x: f32, y: f32, c: usize) -> f32 {
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x as usize, y as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |xx: usize, yy: usize| d[(yy * w + xx) * 3 + c];
    let t = at(x0, y0) + fx * (at(x1, y0) - at(x0, y0));
    let b = at(x0, y1) + fx * (at(x1, y1) - at(x0, y1));
    t + fy * (b - t)
}

/// The stand-in network's steady part: a fixed colour restyling (warm, contrasty).
fn style(img: &RgbImage) -> RgbImage {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        let [r, g, b] = p.0.map(f32::from);
        let nr = 1.15 * r + 0.10 * g - 0.05 * b - 10.0;
        let ng = 0.05 * r + 0.95 * g + 0.00 * b;
        let nb = -0.05 * r + 0.10 * g + 0.80 * b + 5.0;
        p.0 = [nr, ng, nb].map(|v| v.round().clamp(0.0, 255.0) as u8);
    }
    out
}

/// The unstable part: per-frame random colour gains, contrast and brightness, plus noise.
fn flicker(img: &RgbImage, rng: &mut Rng) -> RgbImage {
    let gain = [0, 1, 2].map(|_| 1.0 + 0.06 * rng.normal());
    let contrast = 1.0 + 0.05 * rng.normal();
    let offset = 6.0 * rng.normal();
    let mut out = img.clone();
    for p in out.pixels_mut() {
        for (c, v) in p.0.iter_mut().enumerate() {
            let x = (f32::from(*v) - 128.0) * contrast + 128.0;
            *v = (x * gain[c] + offset + 5.0 * rng.normal())
                .round()
                .clamp(0.0, 255.0) as u8;
        }
    }
    out
}

fn vm_hwm_kb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn write_clip(photo: &RgbImage, path: &Path, n: usize) {
    let mut sink = create(path, W, H).expect("create clip");
    for k in 0..n {
        let image = pan_zoom(photo, k, n);
        sink.write(&Frame {
            image,
            time: k as f64 / FPS,
            duration: None,
        })
        .expect("write clip");
    }
    sink.finish().expect("finish clip");
}

/// Warping error etc. of `output` against `input`, both decoded from disk; also PSNR of the
/// output against the flicker-free restyling of the input.
fn evaluate(input: &Path, output: &Path) -> (cyclegan_video::FlickerStats, f64) {
    let mut meter = FlickerMeter::new();
    let (mut se, mut count) = (0.0f64, 0usize);
    for (i, o) in open(input).unwrap().zip(open(output).unwrap()) {
        let (i, o) = (i.unwrap().image, o.unwrap().image);
        let clean = style(&i);
        se += clean
            .as_raw()
            .iter()
            .zip(o.as_raw())
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum::<f64>();
        count += clean.as_raw().len();
        meter.push(&i, &o);
    }
    let psnr = 10.0 * (255.0f64 * 255.0 / (se / count as f64)).log10();
    (meter.stats(), psnr)
}

/// Options of the real-clip mode.
struct ClipRun {
    clip: PathBuf,
    every: usize,
    frames: usize,
    size: Option<u32>,
    strength: f32,
    /// Window half-size of the smoother's flow (3 was the old default; 7 the new).
    lk_radius: usize,
    /// [`TemporalParams::sigma`].
    sigma: f32,
}

/// Every `every`-th frame of `clip`, at most `frames` of them, shorter side resized to `size`.
fn read_subsampled(clip: &Path, every: usize, frames: usize, size: Option<u32>) -> Vec<RgbImage> {
    let mut out = Vec::new();
    for (k, f) in open(clip).expect("open clip").enumerate() {
        if out.len() == frames {
            break;
        }
        let f = f.expect("decode clip");
        if k % every.max(1) != 0 {
            continue;
        }
        let img = match size {
            Some(s) => {
                let (w, h) = f.image.dimensions();
                let r = f64::from(s) / f64::from(w.min(h));
                let (nw, nh) = (
                    (f64::from(w) * r).round() as u32,
                    (f64::from(h) * r).round() as u32,
                );
                image::imageops::resize(&f.image, nw, nh, image::imageops::FilterType::Triangle)
            }
            None => f.image,
        };
        out.push(img);
    }
    out
}

fn real_clip(run: &ClipRun, out_dir: &Path) {
    let frames = read_subsampled(&run.clip, run.every, run.frames, run.size);
    let (w, h) = frames[0].dimensions();
    let stem = run.clip.file_stem().unwrap().to_string_lossy().to_string();
    let input = out_dir.join(format!("{stem}_every{}.mp4", run.every));
    let mut sink = create(&input, w, h).expect("create clip");
    for (k, image) in frames.iter().enumerate() {
        let time = k as f64 / FPS;
        sink.write(&Frame {
            image: image.clone(),
            time,
            duration: None,
        })
        .expect("write clip");
    }
    sink.finish().expect("finish clip");
    println!(
        "{}: every {} frame(s), {} frames {w}x{h}",
        run.clip.display(),
        run.every,
        frames.len()
    );
    println!(
        "| temporal | warping error (independent flow) | pixels scored (of all pairs) | shot changes | all pixels | warping error (smoother's flow) | pixels tracked | blended >= s/2 | smoothing ms/frame |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    // The input as a user's file holds it (after H.264), then what `translate_video` does:
    // network, smoother, encode; done here by hand to read the smoother's statistics.
    let decoded: Vec<RgbImage> = open(&input)
        .expect("reopen clip")
        .map(|f| f.expect("decode clip").image)
        .collect();
    let runs = [
        ("reference (no flicker)", "ref", None),
        ("off", "off", None),
        ("on", "on", Some(run.strength)),
    ];
    for (name, tag, strength) in runs {
        let out = out_dir.join(format!("{stem}_every{}_{tag}.mp4", run.every));
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        // The reference shows what the measure itself reads on a steady translation: its floor.
        let steady = tag == "ref";
        let mut smoother = strength.map(|strength| {
            cyclegan_video::TemporalSmoother::new(TemporalParams {
                strength,
                flow: FlowParams {
                    radius: run.lk_radius,
                    ..Default::default()
                },
                sigma: run.sigma,
            })
        });
        let mut sink = create(&out, w, h).expect("create output");
        let mut smoothing = 0.0f64;
        for (k, f) in decoded.iter().enumerate() {
            let mut o = if steady {
                style(f)
            } else {
                flicker(&style(f), &mut rng)
            };
            if let Some(sm) = smoother.as_mut() {
                let t0 = Instant::now();
                o = sm.process(f, o);
                smoothing += t0.elapsed().as_secs_f64();
            }
            let time = k as f64 / FPS;
            sink.write(&Frame {
                image: o,
                time,
                duration: None,
            })
            .expect("write output");
        }
        sink.finish().expect("finish output");
        let (s, _) = evaluate(&input, &out);
        let share = smoother.as_ref().map_or(0.0, |sm| sm.blended_share());
        let pairs = s.frames.saturating_sub(1).max(1);
        println!(
            "| {name} | {:.6} | {:.1}% ({:.1}%) | {} | {:.6} | {:.6} | {:.1}% | {:.1}% | {:.1} |",
            s.warping_error,
            100.0 * s.scored_fraction,
            100.0 * s.scored_fraction * (pairs - s.shot_changes) as f64 / pairs as f64,
            s.shot_changes,
            s.warping_error_all_pixels,
            s.smoother_flow_warping_error,
            100.0 * s.tracked_fraction,
            100.0 * share,
            1000.0 * smoothing / decoded.len() as f64
        );
    }
}

/// Milliseconds per frame of the smoother alone on 854x480 frames of `clip`.
fn time_480p(clip: &Path) {
    let frames: Vec<RgbImage> = read_subsampled(clip, 1, 13, None)
        .iter()
        .map(|f| image::imageops::resize(f, 854, 480, image::imageops::FilterType::Triangle))
        .collect();
    let mut rng = Rng(1);
    let outs: Vec<RgbImage> = frames
        .iter()
        .map(|f| flicker(&style(f), &mut rng))
        .collect();
    let mut sm = cyclegan_video::TemporalSmoother::new(TemporalParams::default());
    // The first frame has no past and costs almost nothing: time the other twelve.
    sm.process(&frames[0], outs[0].clone());
    let t0 = Instant::now();
    for (f, o) in frames.iter().zip(&outs).skip(1) {
        sm.process(f, o.clone());
    }
    let ms = 1000.0 * t0.elapsed().as_secs_f64() / (frames.len() - 1) as f64;
    println!(
        "smoother at 854x480: {ms:.0} ms per frame ({} frames)",
        frames.len() - 1
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut clip_run: Option<ClipRun> = None;
    fn clip(run: &mut Option<ClipRun>) -> &mut ClipRun {
        run.get_or_insert_with(|| ClipRun {
            clip: PathBuf::new(),
            every: 1,
            frames: 120,
            size: None,
            strength: TemporalParams::default().strength,
            lk_radius: FlowParams::default().radius,
            sigma: TemporalParams::default().sigma,
        })
    }
    let mut photo_path: Option<PathBuf> = None;
    let mut out_dir = std::env::temp_dir().join("flicker_bench");
    let mut long: Option<usize> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out_dir = PathBuf::from(it.next().expect("--out DIR")),
            "--long" => {
                long = Some(
                    it.next()
                        .expect("--long FRAMES")
                        .parse()
                        .expect("a frame count"),
                )
            }
            "--clip" => clip(&mut clip_run).clip = PathBuf::from(it.next().expect("--clip FILE")),
            "--every" => {
                clip(&mut clip_run).every = it.next().expect("--every K").parse().expect("K")
            }
            "--frames" => {
                clip(&mut clip_run).frames = it.next().expect("--frames N").parse().expect("N")
            }
            "--size" => {
                clip(&mut clip_run).size = Some(it.next().expect("--size S").parse().expect("S"))
            }
            "--strength" => {
                clip(&mut clip_run).strength = it.next().expect("--strength X").parse().expect("X")
            }
            "--lk-radius" => {
                clip(&mut clip_run).lk_radius =
                    it.next().expect("--lk-radius R").parse().expect("R")
            }
            "--sigma" => {
                clip(&mut clip_run).sigma = it.next().expect("--sigma X").parse().expect("X")
            }
            "--time-480p" => {
                time_480p(Path::new(it.next().expect("--time-480p CLIP")));
                return;
            }
            other => photo_path = Some(PathBuf::from(other)),
        }
    }
    if let Some(run) = clip_run {
        std::fs::create_dir_all(&out_dir).unwrap();
        real_clip(&run, &out_dir);
        return;
    }
    let photo_path = photo_path.unwrap_or_else(|| {
        let dir = Path::new("/work/shared/datasets/horse2zebra/testA");
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("no PHOTO given and no horse2zebra/testA")
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v.into_iter().next().expect("an image")
    });
    std::fs::create_dir_all(&out_dir).unwrap();
    let photo = image::open(&photo_path).expect("read photo").to_rgb8();
    // Upscale the 256x256 photo 4x first so that the pan moves over smooth detail.
    let photo = image::imageops::resize(
        &photo,
        photo.width() * 4,
        photo.height() * 4,
        image::imageops::FilterType::CatmullRom,
    );

    let n = long.unwrap_or(96);
    let clip = out_dir.join(if long.is_some() {
        "long.mp4"
    } else {
        "clip.mp4"
    });
    let t0 = Instant::now();
    write_clip(&photo, &clip, n);
    println!(
        "clip: {} ({n} frames {W}x{H} @ {FPS} fps, from {}) written in {:.2}s",
        clip.display(),
        photo_path.display(),
        t0.elapsed().as_secs_f64()
    );

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut net = |frames: &[RgbImage]| -> Result<Vec<RgbImage>, String> {
        Ok(frames
            .iter()
            .map(|f| flicker(&style(f), &mut rng))
            .collect())
    };

    if long.is_some() {
        let out = out_dir.join("long_out.mp4");
        let opts = VideoTranslateOptions {
            batch: 8,
            ..Default::default()
        };
        let r = translate_video(&clip, &out, &opts, &mut net, &mut |_, _| {}).expect("translate");
        println!(
            "long: {} frames translated (temporal on) in {:.1}s; peak RSS (VmHWM) {} MiB",
            r.frames,
            r.elapsed.as_secs_f64(),
            vm_hwm_kb().unwrap_or(0) / 1024
        );
        return;
    }

    println!(
        "| temporal | warping error | temporal difference | PSNR vs flicker-free (dB) | scored | time (s) | of which smoothing (s) |"
    );
    println!("|---|---|---|---|---|---|---|");
    // The flicker-free restyling: the floor any method could reach.
    {
        let out = out_dir.join("clean.mp4");
        let opts = VideoTranslateOptions {
            temporal: None,
            ..Default::default()
        };
        let mut clean = |frames: &[RgbImage]| -> Result<Vec<RgbImage>, String> {
            Ok(frames.iter().map(style).collect())
        };
        translate_video(&clip, &out, &opts, &mut clean, &mut |_, _| {}).unwrap();
        let (s, p) = evaluate(&clip, &out);
        println!(
            "| (no flicker, reference) | {:.5} | {:.4} | {p:.2} | {:.2} | | |",
            s.warping_error, s.temporal_difference, s.scored_fraction
        );
    }
    for (name, temporal) in [("off", None), ("on", Some(TemporalParams::default()))] {
        let out = out_dir.join(format!("out_{name}.mp4"));
        let opts = VideoTranslateOptions {
            temporal,
            ..Default::default()
        };
        rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut net = |frames: &[RgbImage]| -> Result<Vec<RgbImage>, String> {
            Ok(frames
                .iter()
                .map(|f| flicker(&style(f), &mut rng))
                .collect())
        };
        let r = translate_video(&clip, &out, &opts, &mut net, &mut |_, _| {}).expect("translate");
        let (s, p) = evaluate(&clip, &out);
        println!(
            "| {name} | {:.5} | {:.4} | {p:.2} | {:.2} | {:.2} | {:.2} |",
            s.warping_error,
            s.temporal_difference,
            s.scored_fraction,
            r.elapsed.as_secs_f64(),
            r.temporal_time.as_secs_f64()
        );
    }
    println!("peak RSS (VmHWM): {} MiB", vm_hwm_kb().unwrap_or(0) / 1024);
}
