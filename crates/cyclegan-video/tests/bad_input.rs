//! Damaged, truncated and unsupported files give errors that name the file, never panics.

mod common;

use std::path::Path;

use common::{Rng, scene};
use cyclegan_video::{Frame, VideoError, create, open};

/// Open and decode everything; the error if any. Must not panic or hang.
fn read_all(path: &Path) -> Result<usize, VideoError> {
    let mut n = 0;
    for f in open(path)? {
        f?;
        n += 1;
    }
    Ok(n)
}

fn good_mp4(path: &Path) {
    let mut sink = create(path, 32, 24).unwrap();
    for i in 0..12 {
        sink.write(&Frame {
            image: scene(32, 24, i as f32),
            time: f64::from(i) / 12.0,
            duration: None,
        })
        .unwrap();
    }
    sink.finish().unwrap();
}

#[test]
fn garbage_bytes_give_errors() {
    let d = tempfile::tempdir().unwrap();
    let mut rng = Rng(12345);
    for ext in ["mp4", "mov", "gif", "apng", "m4v"] {
        for len in [0usize, 1, 7, 8, 16, 100, 5000] {
            for prefix in [
                &b""[..],
                b"\0\0\0\x18ftypisom",
                b"GIF89a",
                b"\x89PNG\r\n\x1a\n",
            ] {
                let mut bytes = prefix.to_vec();
                bytes.extend((0..len).map(|_| (rng.next_f32() * 256.0) as u8));
                let p = d.path().join(format!("junk.{ext}"));
                std::fs::write(&p, &bytes).unwrap();
                if let Err(e) = read_all(&p) {
                    assert!(
                        e.to_string().contains("junk."),
                        "error does not name the file: {e}"
                    );
                }
            }
        }
    }
}

#[test]
fn truncated_mp4_is_reported_as_truncated() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("ok.mp4");
    good_mp4(&p);
    let bytes = std::fs::read(&p).unwrap();
    for frac in [0.1, 0.5, 0.9, 0.99] {
        let q = d.path().join("cut.mp4");
        std::fs::write(&q, &bytes[..(bytes.len() as f64 * frac) as usize]).unwrap();
        let e = read_all(&q).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("cut.mp4") && msg.contains("truncated"),
            "{msg}"
        );
    }
    // With the index first (FFmpeg's faststart), the missing frames are noticed too.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bframes.mp4");
    let bytes = std::fs::read(fixture).unwrap();
    let q = d.path().join("cut2.mp4");
    std::fs::write(&q, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let msg = read_all(&q).unwrap_err().to_string();
    assert!(
        msg.contains("cut2.mp4") && msg.contains("truncated"),
        "{msg}"
    );
}

#[test]
fn flipped_bytes_never_panic() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("ok.mp4");
    good_mp4(&p);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bframes.mp4");
    let mut rng = Rng(777);
    for src in [p.as_path(), fixture.as_path()] {
        let bytes = std::fs::read(src).unwrap();
        for round in 0..60 {
            let mut b = bytes.clone();
            for _ in 0..1 + round % 8 {
                let i = (rng.next_f32() * b.len() as f32) as usize % b.len();
                b[i] ^= 1 << (round % 8);
            }
            let q = d.path().join("flip.mp4");
            std::fs::write(&q, &b).unwrap();
            // Ok (the flip hit padding or picture data) or an error; no panic, no hang.
            let _ = read_all(&q);
        }
    }
}

#[test]
fn unsupported_inputs_say_what_is_supported() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("movie.mkv");
    std::fs::write(&p, b"\x1a\x45\xdf\xa3 matroska").unwrap();
    let msg = read_all(&p).unwrap_err().to_string();
    #[cfg(not(feature = "ffmpeg"))]
    assert!(
        msg.contains("movie.mkv") && msg.contains("--features ffmpeg") && msg.contains("MP4"),
        "{msg}"
    );
    // With FFmpeg, Matroska is supported: this one is damaged.
    #[cfg(feature = "ffmpeg")]
    assert!(
        msg.contains("movie.mkv") && msg.contains("cannot decode video"),
        "{msg}"
    );

    // An HEVC track: our own file with its sample entry renamed.
    let q = d.path().join("hevc.mp4");
    good_mp4(&q);
    let mut b = std::fs::read(&q).unwrap();
    let at = b.windows(4).rposition(|w| w == b"avc1").unwrap();
    b[at..at + 4].copy_from_slice(b"hvc1");
    std::fs::write(&q, &b).unwrap();
    let e = read_all(&q).unwrap_err();
    #[cfg(not(feature = "ffmpeg"))]
    {
        assert!(matches!(e, VideoError::Unsupported { .. }), "{e}");
        assert!(
            e.to_string().contains("H.265") && e.to_string().contains("--features ffmpeg"),
            "{e}"
        );
    }
    // With FFmpeg the HEVC decoder gets the track, and finds H.264 data in it.
    #[cfg(feature = "ffmpeg")]
    assert!(e.to_string().contains("hevc.mp4"), "{e}");

    let missing = d.path().join("nope.mp4");
    let e = read_all(&missing).unwrap_err();
    assert!(
        matches!(e, VideoError::Io { .. }) && e.to_string().contains("nope.mp4"),
        "{e}"
    );

    let empty = d.path().join("empty.gif");
    std::fs::write(&empty, b"").unwrap();
    assert!(read_all(&empty).unwrap_err().to_string().contains("empty"));

    // A JPEG named .mp4 is recognised as not being an MP4.
    let jpg = d.path().join("photo.mp4");
    std::fs::write(&jpg, b"\xff\xd8\xff\xe0\0\x10JFIF\0").unwrap();
    let msg = read_all(&jpg).unwrap_err().to_string();
    assert!(msg.contains("photo.mp4"), "{msg}");
}

#[test]
fn a_gif_named_mp4_is_read_as_gif() {
    let d = tempfile::tempdir().unwrap();
    let g = d.path().join("a.gif");
    let mut sink = create(&g, 16, 16).unwrap();
    for i in 0..3 {
        sink.write(&Frame {
            image: scene(16, 16, i as f32),
            time: f64::from(i) * 0.1,
            duration: None,
        })
        .unwrap();
    }
    sink.finish().unwrap();
    let m = d.path().join("a.mp4");
    std::fs::copy(&g, &m).unwrap();
    assert_eq!(read_all(&m).unwrap(), 3);
}
