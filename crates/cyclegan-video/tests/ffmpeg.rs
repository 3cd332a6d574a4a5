//! The `ffmpeg` feature: other containers and codecs through the system FFmpeg libraries, audio
//! copy, damaged input. Fixtures are made in code: through this crate, or (for what it does not
//! write: MPEG-4 Part 2 in MP4, files with audio) with `ffmpeg-next` directly.
#![cfg(feature = "ffmpeg")]

mod common;

use std::path::Path;

use common::{Rng, psnr, scene};
use cyclegan_video::{
    CreateOptions, Frame, VideoError, VideoTranslateOptions, create_with, is_video_path, open,
    translate_video,
};
use ffmpeg_next as ff;
use image::RgbImage;

const W: u32 = 48;
const H: u32 = 32;
/// Constant 25 fps.
fn constant_times(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64 / 25.0).collect()
}
/// Irregular steps, down to 10 ms.
const VARIABLE: [f64; 12] = [
    0.0, 0.04, 0.1, 0.13, 0.2, 0.45, 0.5, 0.54, 0.7, 0.71, 0.9, 1.25,
];

fn picture(w: u32, h: u32, i: usize) -> RgbImage {
    scene(w, h, i as f32 * 1.5)
}

fn write_clip(path: &Path, w: u32, h: u32, times: &[f64], opts: &CreateOptions) {
    let mut sink = create_with(path, w, h, opts).unwrap();
    for (i, &t) in times.iter().enumerate() {
        sink.write(&Frame {
            image: picture(w, h, i),
            time: t,
            duration: None,
        })
        .unwrap();
    }
    sink.finish().unwrap();
}

fn read_all(path: &Path) -> Result<Vec<Frame>, VideoError> {
    open(path)?.collect()
}

/// Every frame is there, at its time (within one tick of the file's clock), and looks like the
/// picture written.
fn check_round_trip(path: &Path, w: u32, h: u32, times: &[f64]) -> Vec<Frame> {
    let src = open(path).unwrap();
    let info = src.info().clone();
    assert_eq!((info.width, info.height), (w, h), "{}", path.display());
    let tick = 1.0 / f64::from(info.timescale.expect("a timescale"));
    let frames: Vec<Frame> = src.map(Result::unwrap).collect();
    assert_eq!(frames.len(), times.len(), "{}: frame count", path.display());
    for (i, (f, &t)) in frames.iter().zip(times).enumerate() {
        assert!(
            (f.time - t).abs() <= tick + 1e-9,
            "{} frame {i}: time {} instead of {t}",
            path.display(),
            f.time
        );
        assert_eq!(f.image.dimensions(), (w, h));
        let q = psnr(&f.image, &picture(w, h, i));
        assert!(q > 30.0, "{} frame {i}: {q:.1} dB", path.display());
    }
    frames
}

#[test]
fn mkv_and_webm_round_trip_constant_and_variable_timing() {
    let d = tempfile::tempdir().unwrap();
    for ext in ["mkv", "webm"] {
        for (kind, times) in [("cfr", constant_times(15)), ("vfr", VARIABLE.to_vec())] {
            let p = d.path().join(format!("{kind}.{ext}"));
            write_clip(&p, W, H, &times, &CreateOptions::default());
            let frames = check_round_trip(&p, W, H, &times);
            // The last frame is shown as long as the one before (packet durations are set).
            let step = times[times.len() - 1] - times[times.len() - 2];
            let last = frames.last().unwrap().duration;
            assert!(
                last.is_some_and(|l| (l - step).abs() < 0.0015),
                "{}: last frame duration {last:?}, expected {step}",
                p.display()
            );
        }
    }
}

#[test]
fn avi_round_trip_at_its_fixed_rate() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.avi");
    let times = constant_times(15);
    let opts = CreateOptions {
        fps_hint: 25.0,
        ..Default::default()
    };
    write_clip(&p, W, H, &times, &opts);
    let info = open(&p).unwrap().info().clone();
    assert_eq!(info.timescale, Some(25), "{info:?}");
    assert_eq!(info.frame_count, Some(15), "{info:?}");
    check_round_trip(&p, W, H, &times);
}

#[test]
fn other_ffmpeg_containers_round_trip() {
    // Times and pictures survive; these containers keep the last frame's duration only roughly.
    let d = tempfile::tempdir().unwrap();
    for ext in ["ts", "m2ts", "flv", "nut"] {
        let p = d.path().join(format!("a.{ext}"));
        write_clip(&p, W, H, &VARIABLE, &CreateOptions::default());
        check_round_trip(&p, W, H, &VARIABLE);
    }
}

#[test]
fn odd_sizes_keep_their_size() {
    let d = tempfile::tempdir().unwrap();
    let times = constant_times(10);
    for (ext, w, h) in [
        ("mkv", 47, 31),
        ("webm", 33, 17),
        ("avi", 47, 31),
        ("ts", 47, 31),
        ("flv", 47, 31),
        ("mkv", 1, 1),
    ] {
        let p = d.path().join(format!("odd{w}.{ext}"));
        let opts = CreateOptions {
            fps_hint: 25.0,
            ..Default::default()
        };
        write_clip(&p, w, h, &times, &opts);
        if (w, h) == (1, 1) {
            // Too small for a PSNR; the size and count must survive.
            let frames = read_all(&p).unwrap();
            assert_eq!(frames.len(), 10);
            assert!(frames.iter().all(|f| f.image.dimensions() == (1, 1)));
        } else {
            check_round_trip(&p, w, h, &times);
        }
    }
}

#[test]
fn last_frame_keeps_its_declared_duration() {
    let d = tempfile::tempdir().unwrap();
    for ext in ["mkv", "webm"] {
        let p = d.path().join(format!("last.{ext}"));
        let mut sink = create_with(&p, W, H, &CreateOptions::default()).unwrap();
        for i in 0..5 {
            sink.write(&Frame {
                image: picture(W, H, i),
                time: i as f64 * 0.1,
                duration: (i == 4).then_some(0.75),
            })
            .unwrap();
        }
        sink.finish().unwrap();
        let src = open(&p).unwrap();
        let total = src.info().duration;
        let frames: Vec<Frame> = src.map(Result::unwrap).collect();
        assert_eq!(frames.len(), 5, "{}", p.display());
        let last = frames[4].duration;
        assert!(
            last.is_some_and(|l| (l - 0.75).abs() < 0.0015),
            "{}: {last:?}",
            p.display()
        );
        assert!(
            total.is_some_and(|t| (t - 1.15).abs() < 0.0015),
            "{}: {total:?}",
            p.display()
        );
    }
}

#[test]
fn bit_rate_option_is_used() {
    let d = tempfile::tempdir().unwrap();
    let times = constant_times(20);
    let mut sizes = Vec::new();
    for b in [50_000u32, 2_000_000] {
        let p = d.path().join(format!("b{b}.mkv"));
        let noisy = |i: usize| {
            let mut rng = Rng(i as u64 + 1);
            common::noisy(&picture(96, 64, i), 20.0, &mut rng)
        };
        let opts = CreateOptions {
            bitrate: Some(b),
            fps_hint: 25.0,
            ..Default::default()
        };
        let mut sink = create_with(&p, 96, 64, &opts).unwrap();
        for (i, &t) in times.iter().enumerate() {
            sink.write(&Frame {
                image: noisy(i),
                time: t,
                duration: None,
            })
            .unwrap();
        }
        sink.finish().unwrap();
        sizes.push(std::fs::metadata(&p).unwrap().len());
    }
    assert!(sizes[1] > sizes[0] * 4, "{sizes:?}");
}

// ---------------------------------------------------------------------------------------------
// Fixtures written with FFmpeg directly.

/// What [`ff_write`] puts in a file.
struct Spec<'a> {
    /// Video encoder name, frame count, rate (frames per second).
    video: Option<(&'a str, usize, i32)>,
    /// Audio encoder name and length in seconds (a 440 Hz sine, mono, 48 kHz).
    audio: Option<(&'a str, f64)>,
}

/// Write `path` with `ffmpeg-next` alone; returns the number of audio packets.
fn ff_write(path: &Path, spec: &Spec) -> usize {
    ff::init().unwrap();
    let mut out = ff::format::output(path).unwrap();
    let global = out
        .format()
        .flags()
        .contains(ff::format::Flags::GLOBAL_HEADER);
    let flags = if global {
        ff::codec::Flags::GLOBAL_HEADER
    } else {
        ff::codec::Flags::empty()
    };
    let mut venc = None;
    let mut aenc = None;
    if let Some((name, _, fps)) = spec.video {
        let codec = ff::encoder::find_by_name(name).unwrap();
        let mut e = ff::codec::Context::new_with_codec(codec)
            .encoder()
            .video()
            .unwrap();
        e.set_width(W);
        e.set_height(H);
        e.set_format(ff::format::Pixel::YUV420P);
        e.set_time_base(ff::Rational::new(1, fps));
        e.set_frame_rate(Some(ff::Rational::new(fps, 1)));
        e.set_bit_rate(400_000);
        e.set_flags(flags);
        let e = e.open().unwrap();
        let mut st = out.add_stream(codec).unwrap();
        st.set_time_base(ff::Rational::new(1, fps));
        st.set_parameters(&e);
        venc = Some((e, st.index()));
    }
    if let Some((name, _)) = spec.audio {
        let codec = ff::encoder::find_by_name(name).unwrap();
        let format = codec.audio().unwrap().formats().unwrap().next().unwrap();
        let mut e = ff::codec::Context::new_with_codec(codec)
            .encoder()
            .audio()
            .unwrap();
        e.set_rate(48_000);
        e.set_format(format);
        e.set_channel_layout(ff::ChannelLayout::MONO);
        e.set_time_base(ff::Rational::new(1, 48_000));
        e.set_bit_rate(64_000);
        e.set_flags(flags);
        let mut opts = ff::Dictionary::new();
        opts.set("ch_layout", "mono");
        let e = e.open_with(opts).unwrap();
        let mut st = out.add_stream(codec).unwrap();
        st.set_time_base(ff::Rational::new(1, 48_000));
        st.set_parameters(&e);
        aenc = Some((e, st.index(), format));
    }
    out.write_header().unwrap();
    let tb_of = |out: &ff::format::context::Output, i: usize| out.stream(i).unwrap().time_base();
    let mut audio_packets = 0;
    let mut packet = ff::Packet::empty();

    if let Some((e, index)) = venc.as_mut() {
        let (_, n, fps) = spec.video.unwrap();
        let otb = tb_of(&out, *index);
        let mut rgb = ff::frame::Video::new(ff::format::Pixel::RGB24, W, H);
        let mut sws = ff::software::scaling::Context::get(
            ff::format::Pixel::RGB24,
            W,
            H,
            ff::format::Pixel::YUV420P,
            W,
            H,
            ff::software::scaling::Flags::BILINEAR,
        )
        .unwrap();
        let mut drain = |e: &mut ff::encoder::Video, out: &mut ff::format::context::Output| {
            while e.receive_packet(&mut packet).is_ok() {
                packet.set_stream(*index);
                packet.set_duration(1);
                packet.rescale_ts(ff::Rational::new(1, fps), otb);
                packet.write_interleaved(out).unwrap();
            }
        };
        for i in 0..n {
            let img = picture(W, H, i);
            let stride = rgb.stride(0);
            for y in 0..H as usize {
                rgb.data_mut(0)[y * stride..y * stride + W as usize * 3]
                    .copy_from_slice(&img.as_raw()[y * W as usize * 3..(y + 1) * W as usize * 3]);
            }
            let mut yuv = ff::frame::Video::empty();
            sws.run(&rgb, &mut yuv).unwrap();
            yuv.set_pts(Some(i as i64));
            e.send_frame(&yuv).unwrap();
            drain(e, &mut out);
        }
        e.send_eof().unwrap();
        drain(e, &mut out);
    }
    if let Some((e, index, format)) = aenc.as_mut() {
        let (_, seconds) = spec.audio.unwrap();
        let otb = tb_of(&out, *index);
        let size = if e.frame_size() > 0 {
            e.frame_size() as usize
        } else {
            1024
        };
        let total = (seconds * 48_000.0) as usize;
        let mut drain = |e: &mut ff::encoder::Audio, out: &mut ff::format::context::Output| {
            let mut n = 0;
            while e.receive_packet(&mut packet).is_ok() {
                packet.set_stream(*index);
                packet.rescale_ts(ff::Rational::new(1, 48_000), otb);
                packet.write_interleaved(out).unwrap();
                n += 1;
            }
            n
        };
        let mut at = 0;
        while at < total {
            let k = size.min(total - at);
            let mut f = ff::frame::Audio::new(*format, k, ff::ChannelLayout::MONO);
            f.set_rate(48_000);
            let sample = |j: usize| {
                (2.0 * std::f64::consts::PI * 440.0 * (at + j) as f64 / 48_000.0).sin() * 0.5
            };
            match format {
                ff::format::Sample::F32(_) => {
                    for (j, s) in f.plane_mut::<f32>(0).iter_mut().enumerate() {
                        *s = sample(j) as f32;
                    }
                }
                ff::format::Sample::I16(_) => {
                    for (j, s) in f.plane_mut::<i16>(0).iter_mut().enumerate() {
                        *s = (sample(j) * 32767.0) as i16;
                    }
                }
                other => panic!("sample format {other:?}"),
            }
            f.set_pts(Some(at as i64));
            e.send_frame(&f).unwrap();
            audio_packets += drain(e, &mut out);
            at += k;
        }
        e.send_eof().unwrap();
        audio_packets += drain(e, &mut out);
    }
    out.write_trailer().unwrap();
    audio_packets
}

/// Per stream of `path`: kind, codec, packet count, and the end of the last packet in seconds.
fn streams(path: &Path) -> Vec<(ff::media::Type, ff::codec::Id, usize, f64)> {
    ff::init().unwrap();
    let mut input = ff::format::input(path).unwrap();
    let mut out: Vec<_> = input
        .streams()
        .map(|s| (s.parameters().medium(), s.parameters().id(), 0usize, 0.0f64))
        .collect();
    let tbs: Vec<ff::Rational> = input.streams().map(|s| s.time_base()).collect();
    for (s, p) in input.packets() {
        let i = s.index();
        out[i].2 += 1;
        if let Some(pts) = p.pts() {
            let tb = tbs[i];
            let end = (pts + p.duration()) as f64 * f64::from(tb.numerator())
                / f64::from(tb.denominator());
            out[i].3 = out[i].3.max(end);
        }
    }
    out
}

#[test]
fn mp4_with_mpeg4_part2_video_is_read_through_ffmpeg() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("part2.mp4");
    ff_write(
        &p,
        &Spec {
            video: Some(("mpeg4", 12, 25)),
            audio: None,
        },
    );
    assert_eq!(streams(&p)[0].1, ff::codec::Id::MPEG4);
    let src = open(&p).unwrap();
    assert_eq!(src.info().frame_count, Some(12));
    check_round_trip(&p, W, H, &constant_times(12));
}

/// Identity "network" for `translate_video`.
fn identity(frames: &[RgbImage]) -> Result<Vec<RgbImage>, String> {
    Ok(frames.to_vec())
}

fn translate(input: &Path, output: &Path) -> Result<usize, VideoError> {
    let opts = VideoTranslateOptions {
        temporal: None,
        ..Default::default()
    };
    translate_video(input, output, &opts, &mut identity, &mut |_, _| {}).map(|r| r.frames)
}

/// Files other than `keep` in `dir` (leftover temporaries).
fn others(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

#[test]
fn translate_copies_the_audio_track() {
    let d = tempfile::tempdir().unwrap();
    let inputs = [
        ("in_h264.mkv", "libx264", "aac"),
        ("in_part2.mp4", "mpeg4", "aac"),
        ("in_pcm.mkv", "mpeg4", "pcm_s16le"),
    ];
    for (name, vcodec, acodec) in inputs {
        let inp = d.path().join(name);
        let packets = ff_write(
            &inp,
            &Spec {
                video: Some((vcodec, 20, 25)),
                audio: Some((acodec, 1.0)),
            },
        );
        assert!(packets > 10, "{packets}");
        let src = streams(&inp);
        let (_, a_id, a_packets, a_end) = src[1];
        assert_eq!(a_packets, packets);
        for out_name in ["out.mp4", "out.mkv"] {
            let out = d.path().join(out_name);
            let _ = std::fs::remove_file(&out);
            assert_eq!(translate(&inp, &out).unwrap(), 20, "{name} -> {out_name}");
            let frames = check_round_trip(&out, W, H, &constant_times(20));
            // The last frame keeps its time on screen next to the audio too.
            let last = frames[19].duration;
            assert!(
                last.is_some_and(|l| (l - 0.04).abs() < 0.0015),
                "{name} -> {out_name}: last frame duration {last:?}"
            );
            let got = streams(&out);
            let audio: Vec<_> = got
                .iter()
                .filter(|s| s.0 == ff::media::Type::Audio)
                .collect();
            if out_name == "out.mp4" && acodec == "pcm_s16le" {
                // MP4 (in FFmpeg 5.1) cannot hold PCM: the video is written without it.
                assert!(audio.is_empty(), "{name} -> {out_name}: {got:?}");
                continue;
            }
            assert_eq!(audio.len(), 1, "{name} -> {out_name}: {got:?}");
            let (_, id, n, end) = *audio[0];
            assert_eq!(id, a_id, "{name} -> {out_name}");
            assert_eq!(n, a_packets, "{name} -> {out_name}: audio packets");
            assert!(
                (end - a_end).abs() < 0.03,
                "{name} -> {out_name}: audio ends at {end} instead of {a_end}"
            );
            let keep = [
                "in_h264.mkv",
                "in_part2.mp4",
                "in_pcm.mkv",
                "out.mp4",
                "out.mkv",
            ];
            assert!(
                others(d.path(), &keep).is_empty(),
                "{:?}",
                others(d.path(), &keep)
            );
        }
    }
}

#[test]
fn audio_the_output_cannot_hold_is_left_out() {
    let d = tempfile::tempdir().unwrap();
    let inp = d.path().join("in.mkv");
    ff_write(
        &inp,
        &Spec {
            video: Some(("mpeg4", 10, 25)),
            audio: Some(("aac", 0.5)),
        },
    );
    // WebM holds Opus/Vorbis only; GIF holds no sound at all.
    for out_name in ["out.webm", "out.gif"] {
        let out = d.path().join(out_name);
        assert_eq!(translate(&inp, &out).unwrap(), 10);
        assert_eq!(read_all(&out).unwrap().len(), 10);
        if out_name == "out.webm" {
            let got = streams(&out);
            assert_eq!(got.len(), 1, "{got:?}");
            assert_eq!(got[0].0, ff::media::Type::Video);
        }
    }
    assert!(
        others(d.path(), &["in.mkv", "out.webm", "out.gif"]).is_empty(),
        "{:?}",
        others(d.path(), &["in.mkv", "out.webm", "out.gif"])
    );
}

#[test]
fn create_with_audio_from_a_file_without_audio_writes_video_only() {
    let d = tempfile::tempdir().unwrap();
    let silent = d.path().join("silent.mkv");
    write_clip(&silent, W, H, &constant_times(5), &CreateOptions::default());
    let out = d.path().join("out.mkv");
    let opts = CreateOptions {
        audio_from: Some(silent.clone()),
        ..Default::default()
    };
    write_clip(&out, W, H, &constant_times(5), &opts);
    assert_eq!(streams(&out).len(), 1);
    check_round_trip(&out, W, H, &constant_times(5));
    assert!(others(d.path(), &["silent.mkv", "out.mkv"]).is_empty());
}

#[test]
fn damaged_mkv_gives_a_clear_error_and_no_output() {
    let d = tempfile::tempdir().unwrap();
    let good = d.path().join("good.mkv");
    write_clip(&good, W, H, &constant_times(40), &CreateOptions::default());
    let bytes = std::fs::read(&good).unwrap();

    let garbage = d.path().join("garbage.mkv");
    std::fs::write(&garbage, b"\x1a\x45\xdf\xa3 not really matroska").unwrap();
    let cut = d.path().join("cut.mkv");
    std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).unwrap();
    let header_only = d.path().join("header.mkv");
    std::fs::write(&header_only, &bytes[..bytes.len() / 20]).unwrap();

    for (bad, what) in [
        (&garbage, "invalid data"),
        (&cut, "truncated"),
        (&header_only, ""),
    ] {
        let e = read_all(bad).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, VideoError::Corrupt { .. }) && msg.contains(&*bad.to_string_lossy()),
            "{msg}"
        );
        assert!(msg.to_lowercase().contains(what), "{msg}");
        for out_name in ["out.mkv", "out.mp4"] {
            let out = d.path().join(out_name);
            let e = translate(bad, &out).unwrap_err();
            assert!(e.to_string().contains(&*bad.to_string_lossy()), "{e}");
            assert!(
                !out.exists(),
                "{out_name} left behind for {}",
                bad.display()
            );
        }
        assert!(
            others(
                d.path(),
                &["good.mkv", "garbage.mkv", "cut.mkv", "header.mkv"]
            )
            .is_empty(),
            "{:?}",
            others(
                d.path(),
                &["good.mkv", "garbage.mkv", "cut.mkv", "header.mkv"]
            )
        );
    }
    // The intact file reads in full.
    assert_eq!(read_all(&good).unwrap().len(), 40);
}

#[test]
fn flipped_bytes_never_panic() {
    let d = tempfile::tempdir().unwrap();
    let mut rng = Rng(4242);
    for ext in ["mkv", "webm", "avi"] {
        let p = d.path().join(format!("ok.{ext}"));
        let opts = CreateOptions {
            fps_hint: 25.0,
            ..Default::default()
        };
        write_clip(&p, W, H, &constant_times(8), &opts);
        let bytes = std::fs::read(&p).unwrap();
        for round in 0..40 {
            let mut b = bytes.clone();
            for _ in 0..1 + round % 8 {
                let i = (rng.next_f32() * b.len() as f32) as usize % b.len();
                b[i] ^= 1 << (round % 8);
            }
            let q = d.path().join(format!("flip.{ext}"));
            std::fs::write(&q, &b).unwrap();
            // Ok or an error naming the file; no panic, no hang.
            if let Err(e) = read_all(&q) {
                assert!(e.to_string().contains("flip."), "{e}");
            }
        }
    }
}

#[test]
fn extensions_and_unwritable_containers() {
    for ok in [
        "a.mkv", "b.WEBM", "c.avi", "d.ts", "e.mpg", "f.wmv", "g.mp4", "h.gif",
    ] {
        assert!(is_video_path(Path::new(ok)), "{ok}");
    }
    for not in ["a.jpg", "b.png", "c.txt", "noext"] {
        assert!(!is_video_path(Path::new(not)), "{not}");
    }
    let d = tempfile::tempdir().unwrap();
    for name in ["x.wmv", "x.mpg", "x.xyz"] {
        let p = d.path().join(name);
        let e = match create_with(&p, W, H, &CreateOptions::default()) {
            Ok(_) => panic!("{name} was accepted"),
            Err(e) => e,
        };
        assert!(matches!(e, VideoError::Unsupported { .. }), "{e}");
        assert!(
            e.to_string().contains(name) && e.to_string().contains(".mkv"),
            "{e}"
        );
        assert!(!p.exists());
    }
}
