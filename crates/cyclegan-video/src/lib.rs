//! Video for cyclegan: frames with timestamps in, frames with timestamps out.
//!
//! Everything that reads or writes a video goes through [`open`] and [`create`] (or
//! [`create_with`]), so `prepare` (frames for datasets) and `translate` (whole clips) share one
//! implementation per container:
//!
//! | container | read | write | how |
//! |---|---|---|---|
//! | MP4 / M4V / MOV, H.264 | yes | yes | own bounds-checked demuxer, `mp4` crate muxer, `openh264` codec |
//! | GIF (animated) | yes | yes | `image` (`gif`) |
//! | APNG | yes | yes | `image` decoder, own chunk writer around `image`'s PNG encoder |
//! | anything else (MKV, WebM, AVI, FLV, MPEG-TS, ...; MP4/MOV with other codecs) | `ffmpeg` feature | `ffmpeg` feature: .mkv .webm .avi .flv .ts .m2ts .mts .nut | system FFmpeg libraries through `ffmpeg-next` |
//!
//! With the `ffmpeg` feature (off by default; needs the FFmpeg development packages, see the
//! README), [`open`] reads every container and codec the system FFmpeg decodes (an MP4 whose
//! video is not H.264 falls back to it), and [`create_with`] writes the extensions above with the
//! best encoder the system libraries have: libx264 (H.264) for .mkv, .flv, .ts, .m2ts, .mts and
//! .nut (for odd sizes, which H.264 in 4:2:0 cannot hold: VP9 in .mkv, Sorenson H.263 in .flv,
//! MPEG-4 Part 2 elsewhere), libvpx-vp9 (then libvpx VP8, libaom AV1) for .webm, MPEG-4 Part 2
//! for .avi (whose fixed frame rate is `fps_hint`). It also copies
//! audio from any file into any container that holds it. Without the feature, the audio of an
//! MP4/MOV is copied into MP4/MOV output ([`CreateOptions::audio_from`], which
//! [`translate_video`] sets to its input so that a translated clip keeps its sound).
//!
//! Readers turn frames upright (a phone clip's display matrix, `orient`), refuse with its name
//! H.264 the built-in decoder cannot read (`sps`), and conceal a damaged frame in the middle of
//! an MP4 by repeating the one before it ([`FrameSource::damaged`]).
//!
//! Frames are streamed: a [`FrameSource`] decodes one frame at a time and a [`FrameSink`] keeps
//! at most one frame pending, so memory does not grow with the clip's length.
//!
//! Above that layer: [`translate_video`] (decode, translate in batches through a callback,
//! optionally smooth flicker, encode), dense optical [`flow`], and the [`flicker`] metrics.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use image::RgbImage;

mod anim;
#[cfg(feature = "ffmpeg")]
mod ffmpeg;
pub mod flicker;
pub mod flow;
pub mod flow_poly;
mod h264;
// With the `ffmpeg` feature FFmpeg copies the audio (any source), so only the probe is used.
#[cfg_attr(feature = "ffmpeg", allow(dead_code))]
mod mp4audio;
mod mp4demux;
mod orient;
mod sps;
mod translate;

pub use flicker::{
    FlickerMeter, FlickerStats, TemporalParams, TemporalSmoother, flicker_stats,
    temporal_difference, warping_error,
};
pub use mp4audio::AudioTrackInfo;
pub use translate::{
    FrameTranslator, Progress, VideoReport, VideoTranslateOptions, default_damage_limit,
    translate_video,
};

/// One decoded frame and when it is shown.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The picture, 8-bit RGB.
    pub image: RgbImage,
    /// Presentation time in seconds from the start of the clip (first frame at 0 after edit lists).
    pub time: f64,
    /// How long the frame is shown, in seconds, where the container says.
    pub duration: Option<f64>,
}

/// What is known about a clip before its frames are read.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Frame width in pixels, upright (as displayed: a phone clip's rotation applied).
    pub width: u32,
    /// Frame height in pixels, upright.
    pub height: u32,
    /// Number of frames, where the container says.
    pub frame_count: Option<usize>,
    /// Total duration in seconds, where the container says.
    pub duration: Option<f64>,
    /// Ticks per second of the container's clock, where it has one (MP4: the track's timescale).
    /// Writing with the same timescale ([`CreateOptions::timescale`]) keeps every timestamp exact.
    pub timescale: Option<u32>,
}

/// Errors of the video module. Each names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// The file's container or codec is not supported by this build.
    #[error("{path}: unsupported video ({why}); {SUPPORTED}")]
    Unsupported { path: PathBuf, why: String },
    /// The file is damaged or not what its name says.
    #[error("{path}: cannot decode video: {why}")]
    Corrupt { path: PathBuf, why: String },
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The caller asked for something impossible (a frame of the wrong size, an empty video, ...).
    #[error("{path}: {why}")]
    Invalid { path: PathBuf, why: String },
    /// The translation callback of [`translate_video`] failed.
    #[error("{path}: translating frames failed: {why}")]
    Translate { path: PathBuf, why: String },
}

impl VideoError {
    /// What went wrong, without the file name (which may be a temporary one).
    pub fn reason(&self) -> String {
        match self {
            VideoError::Unsupported { why, .. }
            | VideoError::Corrupt { why, .. }
            | VideoError::Invalid { why, .. }
            | VideoError::Translate { why, .. } => why.clone(),
            VideoError::Io { source, .. } => source.to_string(),
        }
    }
}

#[cfg(not(feature = "ffmpeg"))]
const SUPPORTED: &str = "this build reads and writes MP4/M4V/MOV (H.264), animated GIF and APNG; \
build with `--features ffmpeg` (system FFmpeg libraries) for other containers and codecs";
#[cfg(feature = "ffmpeg")]
const SUPPORTED: &str = "this build reads MP4/M4V/MOV (H.264), animated GIF and APNG natively and \
every other video the system FFmpeg libraries decode; it writes .mp4/.m4v/.mov (H.264), .gif and \
.apng natively and .mkv, .webm, .avi, .flv, .ts, .m2ts, .mts and .nut through FFmpeg";

impl VideoError {
    pub(crate) fn corrupt(path: &Path, why: impl Into<String>) -> Self {
        Self::Corrupt {
            path: path.to_path_buf(),
            why: why.into(),
        }
    }
    pub(crate) fn unsupported(path: &Path, why: impl Into<String>) -> Self {
        Self::Unsupported {
            path: path.to_path_buf(),
            why: why.into(),
        }
    }
    pub(crate) fn invalid(path: &Path, why: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.to_path_buf(),
            why: why.into(),
        }
    }
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    /// The file this error concerns.
    pub fn path(&self) -> &Path {
        match self {
            Self::Unsupported { path, .. }
            | Self::Corrupt { path, .. }
            | Self::Io { path, .. }
            | Self::Invalid { path, .. }
            | Self::Translate { path, .. } => path,
        }
    }
}

/// A stream of decoded frames, in presentation order.
pub trait FrameSource: Iterator<Item = Result<Frame, VideoError>> {
    /// Size, frame count and duration, as far as the container tells. The size is the upright
    /// one: frames come turned as the container says to display them.
    fn info(&self) -> &VideoInfo;
    /// Frames so far that did not decode and were replaced by the frame before them (each keeps
    /// its own timestamp), as players conceal damage. Empty where the reader conceals nothing.
    fn damaged(&self) -> &[DamagedFrame] {
        &[]
    }
}

/// A frame whose data was damaged: the frame before it was shown in its place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DamagedFrame {
    /// Position in the stream, from 0, in decoding order (presentation order for clips without
    /// B-frames).
    pub index: usize,
    /// Its presentation time in seconds from the first frame.
    pub time: f64,
}

impl std::fmt::Display for DamagedFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "frame {} (at {:.2} s)", self.index + 1, self.time)
    }
}

/// A video being written; frames go in presentation order.
pub trait FrameSink {
    /// Append one frame. Every frame must have the sink's size.
    fn write(&mut self, frame: &Frame) -> Result<(), VideoError>;
    /// Flush and close the file. Nothing is complete until this returns Ok.
    fn finish(self: Box<Self>) -> Result<(), VideoError>;
}

/// How [`create_with`] writes a video. `Default` suits most uses.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateOptions {
    /// MP4 clock, ticks per second. Frame times are rounded to it, so use the source's
    /// [`VideoInfo::timescale`] to copy timestamps exactly. Default 90 000 (exact for 24, 25, 30,
    /// 50, 60 and 30000/1001 fps). GIF always has 1/100 s steps, APNG 1/1000 s.
    pub timescale: u32,
    /// Expected frame rate, a hint for the H.264 rate control and key-frame spacing. Default 30.
    pub fps_hint: f64,
    /// Target bit rate in bits per second; `None` picks one from the frame size and rate that
    /// keeps the picture close to the original (H.264 in MP4: about 0.3 bit per pixel; through
    /// FFmpeg: constant quality, CRF 20 for libx264, CRF 30 for VP9, quantiser 3 for MPEG-4).
    pub bitrate: Option<u32>,
    /// Copy the audio track(s) of this file into the output, unchanged (stream copy, no
    /// re-encoding), placed relative to that file's first video frame as the frames are. Default
    /// `None`: no audio.
    ///
    /// Without the `ffmpeg` feature: from an MP4/MOV into MP4/MOV output only (the samples are
    /// appended to the finished file, see `mp4audio`); other sources or outputs get no sound.
    /// With it: from any file FFmpeg reads. Where the output container cannot hold an audio
    /// codec (GIF, APNG; AAC in WebM; PCM in MP4, ...) that track is left out with a warning on
    /// stderr (naming the source of the audio) and the video is written all the same. Through
    /// FFmpeg, MP4/MOV output is written to a hidden file next to the output first, then remuxed
    /// with the audio at [`FrameSink::finish`]; FFmpeg's containers get the audio packets as
    /// the video is encoded.
    pub audio_from: Option<PathBuf>,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            timescale: 90_000,
            fps_hint: 30.0,
            bitrate: None,
            audio_from: None,
        }
    }
}

/// The containers this module knows, from the file's first bytes or its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Mp4,
    Gif,
    Apng,
}

fn container_from_extension(path: &Path) -> Option<Container> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("mp4" | "m4v" | "mov") => Some(Container::Mp4),
        Some("gif") => Some(Container::Gif),
        Some("apng") => Some(Container::Apng),
        _ => None,
    }
}

/// The container from its magic bytes, so that a GIF named `.mp4` is still read correctly.
fn sniff(head: &[u8]) -> Option<Container> {
    if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some(Container::Gif)
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Container::Apng)
    } else if head.len() >= 8
        && matches!(
            &head[4..8],
            b"ftyp" | b"moov" | b"mdat" | b"free" | b"wide" | b"skip"
        )
    {
        Some(Container::Mp4)
    } else {
        None
    }
}

/// Video containers read only through FFmpeg, by extension (the `ffmpeg` feature reads them;
/// the default build names the feature when given one).
const OTHER_VIDEO_EXTENSIONS: &[&str] = &[
    "mkv", "webm", "avi", "flv", "f4v", "ts", "m2ts", "mts", "mpg", "mpeg", "vob", "wmv", "asf",
    "ogv", "3gp", "3g2", "mxf", "nut", "y4m",
];

/// Picture extensions: [`looks_like_video`] leaves such files to the image decoders.
const STILL_IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "tga", "ppm", "pgm", "pbm", "pnm", "ico",
    "avif", "heic", "heif", "qoi", "exr", "hdr", "dds", "ff",
];

fn extension_lower(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default()
}

/// True when the path's extension names a video container this build reads (with the
/// `ffmpeg` feature also .mkv, .webm, .avi, .flv, .ts, .mpg, .wmv, .ogv, .3gp, ...).
pub fn is_video_path(path: &Path) -> bool {
    if container_from_extension(path).is_some() {
        return true;
    }
    cfg!(feature = "ffmpeg") && OTHER_VIDEO_EXTENSIONS.contains(&extension_lower(path).as_str())
}

/// True when the file is a video, whether or not this build reads it: its extension names a
/// video container (.mp4, .mov, .gif, .apng, and also .mkv, .webm, .avi, ... without the
/// `ffmpeg` feature), or, unless it is named as a picture (.jpg, .png, ...), its first bytes are
/// those of MP4 or of a container only FFmpeg reads. Callers route such files to
/// [`open`], whose error then says what the build lacks, rather than to an image decoder.
pub fn looks_like_video(path: &Path) -> bool {
    let ext = extension_lower(path);
    if is_video_path(path) || OTHER_VIDEO_EXTENSIONS.contains(&ext.as_str()) {
        return true;
    }
    // A file named as a picture is the image decoders' to judge.
    if STILL_IMAGE_EXTENSIONS.contains(&ext.as_str()) {
        return false;
    }
    let mut head = [0u8; 16];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    sniff(&head[..n]) == Some(Container::Mp4) || sniff_other(&head[..n]).is_some()
}

/// Containers only FFmpeg reads, from their first bytes: their name for messages.
fn sniff_other(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
        Some("Matroska/WebM")
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"AVI " {
        Some("AVI")
    } else if head.starts_with(b"FLV\x01") {
        Some("FLV")
    } else if head.starts_with(b"OggS") {
        Some("Ogg")
    } else if head.starts_with(&[0x30, 0x26, 0xb2, 0x75]) {
        Some("ASF/WMV")
    } else if head.starts_with(&[0, 0, 1, 0xba]) {
        Some("MPEG program stream")
    } else {
        None
    }
}

/// The container's name for a message, from the first bytes or the extension.
#[cfg(not(feature = "ffmpeg"))]
fn other_container_name(head: &[u8], path: &Path) -> Option<String> {
    if let Some(name) = sniff_other(head) {
        return Some(name.to_string());
    }
    let ext = extension_lower(path);
    OTHER_VIDEO_EXTENSIONS
        .contains(&ext.as_str())
        .then(|| match ext.as_str() {
            "webm" => "WebM".to_string(),
            "mkv" => "Matroska".to_string(),
            "ts" | "m2ts" | "mts" => "MPEG-TS".to_string(),
            other => other.to_ascii_uppercase(),
        })
}

/// Run `f`, turning a panic inside a dependency (on hostile input) into an error naming the file.
pub(crate) fn guard<T>(
    path: &Path,
    f: impl FnOnce() -> Result<T, VideoError>,
) -> Result<T, VideoError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            Err(VideoError::corrupt(
                path,
                format!("decoder failed on this file ({msg})"),
            ))
        }
    }
}

/// One step of a [`FrameSource`] from its decoder's answer: `done` is set at the end of the
/// stream and after the first error, which ends it.
pub(crate) fn end_on_error(
    next: Result<Option<Frame>, VideoError>,
    done: &mut bool,
) -> Option<Result<Frame, VideoError>> {
    let next = next.transpose();
    *done = !matches!(next, Some(Ok(_)));
    next
}

/// Open a video for reading.
///
/// The container is recognised from the file's first bytes, falling back to the extension.
/// With the `ffmpeg` feature, files that are not MP4, GIF or APNG, and MP4s whose video is not
/// H.264, are read through FFmpeg (its best video stream, converted to RGB at its own size).
/// Errors name the file and say what this build supports.
pub fn open(path: &Path) -> Result<Box<dyn FrameSource>, VideoError> {
    use std::io::Read;
    let mut head = [0u8; 16];
    let n = {
        let mut f = std::fs::File::open(path).map_err(|e| VideoError::io(path, e))?;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(VideoError::io(path, e)),
            }
        }
        n
    };
    if n == 0 {
        return Err(VideoError::corrupt(path, "the file is empty"));
    }
    let container = match (sniff(&head[..n]), container_from_extension(path)) {
        (Some(c), _) => c,
        // Everything else is FFmpeg's to recognise.
        #[cfg(feature = "ffmpeg")]
        (None, _) => {
            return guard(path, || {
                Ok(Box::new(ffmpeg::FfSource::open(path)?) as Box<dyn FrameSource>)
            });
        }
        #[cfg(not(feature = "ffmpeg"))]
        (None, _) if other_container_name(&head[..n], path).is_some() => {
            let name = other_container_name(&head[..n], path).unwrap_or_default();
            return Err(VideoError::unsupported(
                path,
                format!("a {name} video, which only the `ffmpeg` feature reads"),
            ));
        }
        #[cfg(not(feature = "ffmpeg"))]
        (None, Some(c)) => {
            return Err(VideoError::corrupt(
                path,
                format!("the file does not start like {c:?} (wrong extension or damaged)"),
            ));
        }
        #[cfg(not(feature = "ffmpeg"))]
        (None, None) => {
            return Err(VideoError::unsupported(path, "unknown container"));
        }
    };
    let native = guard(path, || match container {
        Container::Mp4 => Ok(Box::new(h264::Mp4Source::open(path)?) as Box<dyn FrameSource>),
        Container::Gif => Ok(Box::new(anim::GifSource::open(path)?) as Box<dyn FrameSource>),
        Container::Apng => Ok(Box::new(anim::ApngSource::open(path)?) as Box<dyn FrameSource>),
    });
    // An MP4/MOV whose video is not H.264 (HEVC, MPEG-4 Part 2, ProRes, ...): FFmpeg decodes it.
    #[cfg(feature = "ffmpeg")]
    if container == Container::Mp4 && matches!(native, Err(VideoError::Unsupported { .. })) {
        return guard(path, || {
            Ok(Box::new(ffmpeg::FfSource::open(path)?) as Box<dyn FrameSource>)
        });
    }
    native
}

/// Create a video for writing, of the given frame size (chosen from the extension), with
/// [`CreateOptions::default`].
pub fn create(path: &Path, width: u32, height: u32) -> Result<Box<dyn FrameSink>, VideoError> {
    create_with(path, width, height, &CreateOptions::default())
}

/// Create a video for writing, of the given frame size (container chosen from the extension).
///
/// Odd widths and heights are fine: H.264 needs even sizes, so MP4 frames are padded by one
/// repeated row/column when encoded, the real size is stored in the MP4 sample description, and
/// [`open`] crops it back. (Other players may show the extra row/column.)
///
/// Through FFmpeg (the `ffmpeg` feature), odd sizes go to an encoder that takes them (VP9 in
/// Matroska, MPEG-4 Part 2 in AVI, MPEG-TS and NUT, Sorenson H.263 in FLV), so the real size is
/// kept; only where none of those is available are the frames padded by one repeated
/// row/column, which then stays in the file.
///
/// Frames are written in presentation order; each frame is shown until the next frame's time
/// (the last one for its `duration`, else as long as the one before). Times are relative to the
/// first frame, which is shown at 0. Nothing is complete before [`FrameSink::finish`] (which,
/// with [`CreateOptions::audio_from`], also adds the audio).
pub fn create_with(
    path: &Path,
    width: u32,
    height: u32,
    options: &CreateOptions,
) -> Result<Box<dyn FrameSink>, VideoError> {
    if width == 0 || height == 0 {
        return Err(VideoError::invalid(
            path,
            format!("cannot write a {width}x{height} video"),
        ));
    }
    // Audio: the native writers' video is remuxed with it; FFmpeg's writer copies it itself.
    #[cfg(feature = "ffmpeg")]
    if let (Some(audio), Some(_)) = (&options.audio_from, container_from_extension(path)) {
        let sink = ffmpeg::native_with_audio(path, width, height, audio, |video| {
            create_video(video, width, height, options)
        })?;
        if let Some(sink) = sink {
            return Ok(sink);
        }
    }
    // Without FFmpeg: MP4/MOV audio is copied into MP4 output once its video is written.
    #[cfg(not(feature = "ffmpeg"))]
    if let (Some(audio), Some(Container::Mp4)) =
        (&options.audio_from, container_from_extension(path))
        && sniff_file(audio) == Some(Container::Mp4)
    {
        return Ok(Box::new(mp4audio::Mp4AudioSink {
            inner: create_video(path, width, height, options)?,
            path: path.to_path_buf(),
            audio_from: audio.clone(),
        }));
    }
    create_video(path, width, height, options)
}

/// The container of a file from its first bytes; None where it cannot be read.
#[cfg(not(feature = "ffmpeg"))]
fn sniff_file(path: &Path) -> Option<Container> {
    let mut head = [0u8; 16];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .ok()?;
    sniff(&head[..n])
}

/// The audio tracks of an MP4/MOV file (read natively, in every build): codec, packet count and
/// duration of each.
pub fn audio_tracks(path: &Path) -> Result<Vec<AudioTrackInfo>, VideoError> {
    guard(path, || mp4audio::audio_tracks(path))
}

/// The video-only sink for `path`'s extension.
fn create_video(
    path: &Path,
    width: u32,
    height: u32,
    options: &CreateOptions,
) -> Result<Box<dyn FrameSink>, VideoError> {
    match container_from_extension(path) {
        Some(Container::Mp4) => Ok(Box::new(h264::Mp4Sink::create(
            path, width, height, options,
        )?)),
        Some(Container::Gif) => Ok(Box::new(anim::GifSink::create(path, width, height)?)),
        Some(Container::Apng) => Ok(Box::new(anim::ApngSink::create(path, width, height)?)),
        #[cfg(feature = "ffmpeg")]
        None => Ok(Box::new(ffmpeg::FfSink::create(
            path, width, height, options,
        )?)),
        #[cfg(not(feature = "ffmpeg"))]
        None => Err(VideoError::unsupported(path, "cannot write this extension")),
    }
}

/// `dir/.stem.TAG.ext` beside `output`: in the same folder (so a rename onto `output` is atomic),
/// with the same extension (which picks the container), hidden.
pub(crate) fn hidden_sibling(output: &Path, tag: &str) -> PathBuf {
    let dir = output
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stem = output
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("video");
    match output.extension().and_then(|s| s.to_str()) {
        Some(ext) => dir.join(format!(".{stem}.{tag}.{ext}")),
        None => dir.join(format!(".{stem}.{tag}")),
    }
}

/// Rounded ticks of a time in seconds, saturating instead of overflowing on absurd input.
pub(crate) fn to_ticks(seconds: f64, timescale: u32) -> i64 {
    let t = (seconds * f64::from(timescale)).round();
    if t.is_nan() {
        0
    } else {
        t.clamp(-9.0e15, 9.0e15) as i64
    }
}
