//! Which encoder a container gets, and how it is opened: quality, clock, pixel format.

use ff::format::Pixel;
use ff::{Rational, codec, color, encoder};
use ffmpeg_next as ff;

/// Encoders to try, best first, for an output format (FFmpeg's muxer name). Each is used only
/// where the system libraries have it and the container accepts its codec.
pub(super) fn encoder_candidates(muxer: &str) -> &'static [&'static str] {
    match muxer {
        "webm" => &["libvpx-vp9", "libvpx", "libaom-av1"],
        // AVI has no B-frame timing and a fixed frame rate: MPEG-4 Part 2 is its natural codec.
        "avi" => &["mpeg4", "libx264"],
        "flv" => &["libx264", "flv"],
        // H.264 where the size allows (even sides), else a codec that takes any size.
        "matroska" => &["libx264", "libvpx-vp9", "mpeg4"],
        "nut" => &["libx264", "mpeg4", "ffv1"],
        _ => &["libx264", "mpeg4"],
    }
}

/// An encoder's clock: `1/timescale` in general; AVI stores a fixed frame rate, so its clock is
/// one frame of `fps`; MPEG-4 Part 2 allows at most 65535 ticks per second.
pub(super) fn encoder_time_base(muxer: &str, codec: &str, timescale: u32, fps: f64) -> Rational {
    if muxer == "avi" {
        for n in [24.0, 30.0, 60.0, 120.0] {
            if (fps - n * 1000.0 / 1001.0).abs() < 0.005 {
                return Rational::new(1001, (n * 1000.0) as i32);
            }
        }
        return Rational::new(1, (fps.round() as i32).clamp(1, 1000));
    }
    let ts = i32::try_from(timescale).unwrap_or(90_000).max(1);
    if codec == "mpeg4" && ts > 65_535 {
        if ts % 30_000 == 0 {
            return Rational::new(1, 30_000);
        }
        let d = (1..=65_535).rev().find(|d| ts % d == 0).unwrap_or(1_000);
        return Rational::new(1, d);
    }
    Rational::new(1, ts)
}

/// What [`open_encoder`] sets up.
pub(super) struct EncoderSetup {
    pub size: (u32, u32),
    pub tb: Rational,
    pub fps: f64,
    pub bitrate: Option<u32>,
    /// The container wants the codec headers out of band.
    pub global_header: bool,
    /// The container has a fixed frame rate and no presentation times (AVI).
    pub fixed_rate: bool,
}

/// Open `codec` for frames of `size`, with our quality and speed defaults.
pub(super) fn open_encoder(
    codec: ff::Codec,
    name: &str,
    setup: &EncoderSetup,
) -> Result<(encoder::Video, Pixel), ff::Error> {
    let &EncoderSetup {
        size: (w, h),
        tb,
        fps,
        bitrate,
        global_header,
        fixed_rate,
    } = setup;
    let pix = codec
        .video()
        .ok()
        .and_then(|v| v.formats().map(|f| f.collect::<Vec<_>>()))
        .map_or(Pixel::YUV420P, |formats| {
            if formats.is_empty() || formats.contains(&Pixel::YUV420P) {
                Pixel::YUV420P
            } else {
                formats[0]
            }
        });
    let mut ctx = codec::Context::new_with_codec(codec);
    ctx.set_threading(ff::threading::Config {
        kind: ff::threading::Type::Frame,
        count: 0,
        ..Default::default()
    });
    let mut enc = ctx.encoder().video()?;
    enc.set_width(w);
    enc.set_height(h);
    enc.set_format(pix);
    enc.set_time_base(tb);
    enc.set_frame_rate(fps_rational(fps));
    enc.set_gop((fps * 2.0).round().clamp(1.0, 600.0) as u32);
    if pix != Pixel::RGB24 {
        enc.set_colorspace(color::Space::BT470BG);
        enc.set_color_range(color::Range::MPEG);
    }
    let mut flags = codec::Flags::empty();
    if global_header {
        flags |= codec::Flags::GLOBAL_HEADER;
    }
    let mut dict = ff::Dictionary::new();
    let default_rate =
        (f64::from(w) * f64::from(h) * fps * 0.3).clamp(300_000.0, 60_000_000.0) as usize;
    match (name, bitrate) {
        ("libx264", None) => {
            enc.set_bit_rate(0);
            dict.set("crf", "20");
        }
        ("libvpx-vp9" | "libaom-av1", None) => {
            enc.set_bit_rate(0);
            dict.set("crf", "30");
        }
        ("mpeg4", None) => {
            // Constant quantiser 3 (`-q:v 3`): good quality at any size.
            flags |= codec::Flags::QSCALE;
            enc.set_global_quality(3 * ff::ffi::FF_QP2LAMBDA);
        }
        (_, b) => enc.set_bit_rate(b.map_or(default_rate, |b| b as usize)),
    }
    match name {
        "libx264" => dict.set("preset", "medium"),
        "libvpx-vp9" => {
            dict.set("deadline", "good");
            dict.set("cpu-used", "4");
            dict.set("row-mt", "1");
        }
        "libvpx" => {
            dict.set("deadline", "good");
            dict.set("cpu-used", "4");
        }
        "libaom-av1" => dict.set("cpu-used", "6"),
        _ => {}
    }
    if fixed_rate {
        // AVI stores no presentation times: no B-frames, which would need them.
        enc.set_max_b_frames(0);
    }
    enc.set_flags(flags);
    let enc = enc.open_with(dict)?;
    Ok((enc, pix))
}

pub(super) fn fps_rational(fps: f64) -> Option<Rational> {
    (fps.is_finite() && fps > 0.0).then(|| {
        if (fps - fps.round()).abs() < 1e-6 {
            Rational::new(fps.round() as i32, 1)
        } else {
            Rational::new((fps * 1001.0).round() as i32, 1001)
        }
    })
}
