//! The `ffmpeg` feature: every container and codec the native paths do not handle, through the
//! system FFmpeg libraries (`ffmpeg-next`), and audio copied into translated videos.
//!
//! One job per file (imports go one way: `encode` -> `encoder`, `audio`; everything -> here):
//!
//! * [`decode`]: [`FfSource`] decodes the best video stream of any file FFmpeg opens, converts
//!   each picture to RGB with swscale at the stream's size, and times it from the stream's
//!   timestamps.
//! * [`encoder`]: which encoder a container gets and how it is opened (quality, clock, size).
//! * [`encode`]: [`FfSink`] encodes into the containers of [`WRITE_EXTENSIONS`].
//! * [`audio`]: audio of another file copied unchanged (stream copy), packet by packet as the
//!   video advances: [`FfSink`] interleaves it with the packets it encodes, and
//!   [`audio::AudioSink`] (around the native MP4 writer) remuxes the finished video with it.
//!
//! FFmpeg's own log is silenced (level "fatal"): every failure comes back as an error code, which
//! our errors turn into a message naming the file.

use std::path::{Path, PathBuf};
use std::sync::Once;

use ff::software::scaling;
use ff::{Rational, codec, color, format};
use ffmpeg_next as ff;

use crate::VideoError;

mod audio;
mod decode;
mod encode;
mod encoder;

pub(crate) use audio::native_with_audio;
pub(crate) use decode::FfSource;
pub(crate) use encode::FfSink;

/// Extensions written through FFmpeg (the native writers keep MP4/M4V/MOV, GIF and APNG).
pub(crate) const WRITE_EXTENSIONS: &[&str] =
    &["mkv", "webm", "avi", "flv", "ts", "m2ts", "mts", "nut"];

/// Largest frame side we decode or encode: a damaged header must not make us allocate
/// gigapixel frames.
const MAX_SIDE: u32 = 8192;

/// `FF_COMPLIANCE_NORMAL` (a `#define` in avcodec.h, 0 in every FFmpeg version).
const COMPLIANCE_NORMAL: i32 = 0;

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = ff::init();
        ff::log::set_level(ff::log::Level::Fatal);
    });
}

fn is_again(e: &ff::Error) -> bool {
    matches!(e, ff::Error::Other { errno } if *errno == ff::error::EAGAIN)
}

/// The path as FFmpeg wants it: UTF-8, with an explicit `file:` protocol so that a name such as
/// `clip:1.mkv` is not taken for a URL.
fn url(path: &Path) -> Result<PathBuf, VideoError> {
    let s = path
        .to_str()
        .filter(|s| !s.contains('\0'))
        .ok_or_else(|| VideoError::invalid(path, "FFmpeg needs a file name that is valid UTF-8"))?;
    Ok(PathBuf::from(format!("file:{s}")))
}

/// An FFmpeg error on `path` as one of ours: a missing file, permissions or a full disk stay I/O
/// errors; the rest (FFmpeg reports a file that ends early as EIO) mean a damaged file.
fn ff_error(path: &Path, what: &str, e: ff::Error) -> VideoError {
    use ff::error::{EACCES, EISDIR, ENOENT, ENOSPC, ENOTDIR, EPERM, EROFS};
    match e {
        ff::Error::Other { errno }
            if [ENOENT, EACCES, EPERM, ENOSPC, EISDIR, ENOTDIR, EROFS].contains(&errno) =>
        {
            VideoError::io(path, std::io::Error::from_raw_os_error(errno))
        }
        ff::Error::Other { errno } if errno == ff::error::EIO => VideoError::corrupt(
            path,
            format!("{what}: the file ends early or cannot be read (FFmpeg: {e})"),
        ),
        other => VideoError::corrupt(path, format!("{what}: {other} (FFmpeg)")),
    }
}

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default()
}

/// Seconds of `ticks` in time base `tb`.
fn seconds(ticks: i64, tb: Rational) -> f64 {
    if tb.denominator() == 0 {
        return 0.0;
    }
    ticks as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator())
}

/// Whether `ticks` is a real timestamp (not `AV_NOPTS_VALUE`).
fn known(ticks: i64) -> Option<i64> {
    (ticks != ff::ffi::AV_NOPTS_VALUE).then_some(ticks)
}

/// Use the right YUV matrix and range for a conversion between YUV `space`/`range` and RGB
/// (swscale assumes BT.601 limited range unless told).
fn set_yuv_matrix(
    ctx: &mut scaling::Context,
    space: color::Space,
    range: color::Range,
    to_rgb: bool,
) {
    use ff::ffi;
    let cs = match space {
        color::Space::BT709 => ffi::SWS_CS_ITU709,
        color::Space::FCC => ffi::SWS_CS_FCC,
        color::Space::SMPTE240M => ffi::SWS_CS_SMPTE240M,
        color::Space::BT2020NCL | color::Space::BT2020CL => ffi::SWS_CS_BT2020,
        _ => ffi::SWS_CS_DEFAULT,
    };
    let full = i32::from(range == color::Range::JPEG);
    // SAFETY: a live scaler; the tables are static arrays of swscale. The call fails harmlessly
    // (returns an error we ignore) where neither side is YUV.
    unsafe {
        let yuv = ffi::sws_getCoefficients(cs);
        let rgb = ffi::sws_getCoefficients(ffi::SWS_CS_DEFAULT);
        let (inv, src_range, table, dst_range) = if to_rgb {
            (yuv, full, rgb, 1)
        } else {
            (rgb, 1, yuv, full)
        };
        ffi::sws_setColorspaceDetails(
            ctx.as_mut_ptr(),
            inv,
            src_range,
            table,
            dst_range,
            0,
            1 << 16,
            1 << 16,
        );
    }
}

/// Whether the output format can hold `id` (FFmpeg's "maybe" counts as yes: the header will
/// tell).
fn container_takes(output: &format::context::Output, id: codec::Id) -> bool {
    // SAFETY: a live output format and a codec id.
    unsafe {
        ff::ffi::avformat_query_codec(output.format().as_ptr(), id.into(), COMPLIANCE_NORMAL) != 0
    }
}
