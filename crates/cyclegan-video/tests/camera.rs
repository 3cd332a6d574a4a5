//! Videos as phones, cameras and downloads make them (issue 15): rotation, sound, H.264 the
//! built-in decoder cannot read, damaged frames, containers of other builds. Fixtures in
//! `tests/data` (see its README for the commands that made them).

mod common;
mod fixtures;

use std::path::Path;

use cyclegan_video::{
    Frame, VideoTranslateOptions, audio_tracks, looks_like_video, translate_video,
};
use fixtures::{data, ffprobe, read_all};

/// Translation stand-in: inverts colours (so the output differs from the input).
fn invert(frames: &[image::RgbImage]) -> Result<Vec<image::RgbImage>, String> {
    Ok(frames
        .iter()
        .map(|f| {
            let mut g = f.clone();
            image::imageops::invert(&mut g);
            g
        })
        .collect())
}

fn translate(
    input: &Path,
    output: &Path,
    opts: &VideoTranslateOptions,
) -> cyclegan_video::VideoReport {
    translate_video(input, output, opts, &mut invert, &mut |_, _| {})
        .unwrap_or_else(|e| panic!("{e}"))
}

fn plain() -> VideoTranslateOptions {
    VideoTranslateOptions {
        temporal: None,
        ..Default::default()
    }
}

#[test]
fn rotated_clips_are_read_upright() {
    let (info0, upright) = read_all(&data("rotate0.mp4"));
    assert_eq!((info0.width, info0.height), (64, 48));
    // Each clip, and how the upright picture is the stored one turned.
    type Turn = fn(&image::RgbImage) -> image::RgbImage;
    let turns: [(&str, Turn); 3] = [
        ("rotate90.mp4", image::imageops::rotate270),
        ("rotate180.mp4", image::imageops::rotate180),
        ("rotate270.mp4", image::imageops::rotate90),
    ];
    for (name, turn) in turns {
        let (info, frames) = read_all(&data(name));
        let want = if name.contains("180") {
            (64, 48)
        } else {
            (48, 64)
        };
        assert_eq!((info.width, info.height), want, "{name}");
        assert_eq!(frames.len(), upright.len(), "{name}");
        for (f, u) in frames.iter().zip(&upright) {
            // The same coded pictures, only turned: exactly equal.
            assert_eq!(f.image, turn(&u.image), "{name} at {} s", f.time);
            assert!((f.time - u.time).abs() < 1e-9);
        }
    }
    // And turned the way FFmpeg turns them for display.
    for name in ["rotate90", "rotate270"] {
        let reference = image::open(data(&format!("{name}_frame0.png")))
            .unwrap()
            .to_rgb8();
        let (_, frames) = read_all(&data(&format!("{name}.mp4")));
        let psnr = common::psnr(&frames[0].image, &reference);
        assert!(
            psnr > 35.0,
            "{name}: PSNR {psnr:.1} dB against FFmpeg's upright frame"
        );
    }
}

#[test]
fn rotated_clip_translates_to_an_upright_video() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mp4");
    let report = translate(&data("rotate90.mp4"), &out, &plain());
    assert_eq!((report.width, report.height), (48, 64));
    let (info, frames) = read_all(&out);
    assert_eq!((info.width, info.height), (48, 64));
    assert_eq!(frames.len(), 6);
    // Side by side: input and translation next to each other, both upright.
    let sbs = dir.path().join("sbs.mp4");
    let opts = VideoTranslateOptions {
        side_by_side: true,
        ..plain()
    };
    let report = translate(&data("rotate270.mp4"), &sbs, &opts);
    assert_eq!((report.width, report.height), (96, 64));
    if let Some(s) = ffprobe(
        &out,
        &["-show_entries", "stream=width,height:stream_side_data"],
    ) {
        assert!(s.contains("width=48") && s.contains("height=64"), "{s}");
        assert!(
            !s.contains("rotation"),
            "the output must need no rotation: {s}"
        );
    }
}

#[test]
fn aac_audio_is_copied_with_its_timing() {
    let input = data("aac.mp4");
    let before = audio_tracks(&input).unwrap();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].codec, "mp4a");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mp4");
    let report = translate(&input, &out, &plain());
    assert_eq!(report.frames, 10);
    let after = audio_tracks(&out).unwrap();
    assert_eq!(after, before, "audio packets and duration survive");
    // The video is still all there.
    let (_, frames) = read_all(&out);
    assert_eq!(frames.len(), 10);
    // FFmpeg, where installed, reads the same audio: packet count and duration.
    let count = |p: &Path| {
        ffprobe(
            p,
            &[
                "-select_streams",
                "a",
                "-count_packets",
                "-show_entries",
                "stream=nb_read_packets,duration,codec_name",
            ],
        )
    };
    if let (Some(a), Some(b)) = (count(&input), count(&out)) {
        assert_eq!(a, b, "ffprobe sees the same audio stream");
        assert!(b.contains("codec_name=aac"), "{b}");
    }
}

#[test]
fn audio_of_a_clip_without_sound_or_to_gif_is_no_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mp4");
    translate(&data("rotate0.mp4"), &out, &plain());
    assert!(audio_tracks(&out).unwrap().is_empty());
    let gif = dir.path().join("out.gif");
    let report = translate(&data("aac.mp4"), &gif, &plain());
    assert_eq!(report.frames, 10);
}

/// The message of opening `name`, which must fail.
#[cfg(not(feature = "ffmpeg"))]
fn open_error(name: &str) -> cyclegan_video::VideoError {
    use cyclegan_video::open;
    match open(&data(name)).and_then(|mut s| s.next().transpose()) {
        Ok(_) => panic!("{name} opened"),
        Err(e) => e,
    }
}

#[cfg(not(feature = "ffmpeg"))]
#[test]
fn unsupported_h264_is_named_with_the_feature() {
    for (name, words) in [
        ("high10.mp4", &["High 10", "10-bit"][..]),
        ("high444.mp4", &["High 4:4:4", "4:4:4 chroma"][..]),
        ("interlaced.mp4", &["interlaced"][..]),
    ] {
        let e = open_error(name);
        let msg = e.to_string();
        assert!(
            matches!(e, cyclegan_video::VideoError::Unsupported { .. }),
            "{name}: {msg}"
        );
        for w in words {
            assert!(msg.contains(w), "{name}: {msg}");
        }
        assert!(msg.contains("--features ffmpeg"), "{name}: {msg}");
        assert!(
            !msg.contains("OpenH264 encountered") && !msg.contains("Native:"),
            "{msg}"
        );
    }
}

#[cfg(feature = "ffmpeg")]
#[test]
fn unsupported_h264_is_read_through_ffmpeg() {
    for name in ["high10.mp4", "high444.mp4", "interlaced.mp4"] {
        let (info, frames) = read_all(&data(name));
        assert_eq!((info.width, info.height), (64, 48), "{name}");
        assert_eq!(frames.len(), 4, "{name}");
    }
    // FFmpeg's reader turns pictures upright too (display matrix side data).
    let (info, frames) = read_all(&data("rotate90_high10.mp4"));
    assert_eq!((info.width, info.height), (48, 64));
    let (_, plain) = read_all(&data("high10.mp4"));
    assert_eq!(frames[0].image, image::imageops::rotate270(&plain[0].image));
}

#[test]
fn damaged_frames_are_concealed_up_to_a_limit() {
    let input = data("damaged.mp4");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mp4");
    let opts = VideoTranslateOptions {
        max_damaged_frames: Some(20),
        ..plain()
    };
    let report = translate(&input, &out, &opts);
    assert_eq!(report.frames, 20, "every frame is written");
    assert!(!report.damaged.is_empty(), "the damage is reported");
    let first = report.damaged[0];
    assert_eq!(first.index, 10, "frame 11 (index 10) is the damaged one");
    assert!((first.time - 1.0).abs() < 1e-6, "{}", first.time);
    // Concealed frames keep their own time: the timeline is that of the input.
    let (_, frames_in) = read_all(&input);
    let (_, frames_out) = read_all(&out);
    let times = |f: &[Frame]| f.iter().map(|f| f.time).collect::<Vec<_>>();
    assert_eq!(times(&frames_in), times(&frames_out));
    // The damaged frame repeats the one before it.
    assert_eq!(frames_in[10].image, frames_in[9].image);

    // Over the limit: an error naming the frame and time, and no output.
    let strict = VideoTranslateOptions {
        max_damaged_frames: Some(0),
        ..plain()
    };
    let out2 = dir.path().join("strict.mp4");
    let e = translate_video(&input, &out2, &strict, &mut invert, &mut |_, _| {}).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("frame 11 (at 1.00 s)"), "{msg}");
    assert!(msg.contains("--max-damaged-frames"), "{msg}");
    assert!(
        !msg.contains("Native") && !msg.contains("OpenH264 encountered"),
        "{msg}"
    );
    assert!(!out2.exists());
}

#[cfg(not(feature = "ffmpeg"))]
#[test]
fn other_containers_get_a_video_message() {
    let webm = data("clip.webm");
    assert!(looks_like_video(&webm));
    let msg = open_error("clip.webm").to_string();
    assert!(
        msg.contains("WebM") && msg.contains("`ffmpeg` feature"),
        "{msg}"
    );
    assert!(!msg.contains("image"), "{msg}");
    // Misnamed: the first bytes say Matroska.
    let dir = tempfile::tempdir().unwrap();
    let renamed = dir.path().join("clip.video");
    std::fs::copy(&webm, &renamed).unwrap();
    assert!(looks_like_video(&renamed));
    let msg = cyclegan_video::open(&renamed).err().unwrap().to_string();
    assert!(
        msg.contains("Matroska/WebM") && msg.contains("ffmpeg"),
        "{msg}"
    );
}

#[test]
fn pictures_do_not_look_like_videos() {
    assert!(!looks_like_video(&data("bframes_frame10.png")));
    assert!(looks_like_video(&data("bframes.mp4")));
    // Content decides only where the name says nothing: an MP4 named .jpg stays a picture.
    let dir = tempfile::tempdir().unwrap();
    for (name, video) in [("clip.jpg", false), ("clip.bin", true), ("clip", true)] {
        let p = dir.path().join(name);
        std::fs::copy(data("bframes.mp4"), &p).unwrap();
        assert_eq!(looks_like_video(&p), video, "{name}");
    }
}
