//! Video for cyclegan: frames with timestamps in, frames with timestamps out.
//!
//! Everything that reads or writes a video goes through [`open`] and [`create`], so `prepare`
//! (frames for datasets) and `translate` (whole clips) share one implementation per container.

use std::path::{Path, PathBuf};

use image::RgbImage;

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
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Number of frames, where the container says.
    pub frame_count: Option<usize>,
    /// Total duration in seconds, where the container says.
    pub duration: Option<f64>,
}

/// Errors of the video module. Each names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// The file's container or codec is not supported by this build.
    #[error("{path}: unsupported video ({why}); the default build reads and writes MP4 (H.264), GIF and APNG; build with `--features ffmpeg` for other formats")]
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
}

/// A stream of decoded frames, in presentation order.
pub trait FrameSource: Iterator<Item = Result<Frame, VideoError>> {
    /// Size, frame count and duration, as far as the container tells.
    fn info(&self) -> &VideoInfo;
}

/// A video being written; frames go in presentation order.
pub trait FrameSink {
    /// Append one frame. Every frame must have the sink's size.
    fn write(&mut self, frame: &Frame) -> Result<(), VideoError>;
    /// Flush and close the file. Nothing is complete until this returns Ok.
    fn finish(self: Box<Self>) -> Result<(), VideoError>;
}

/// True when the path's extension names a video container this module handles.
pub fn is_video_path(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref(),
        Some("mp4" | "m4v" | "mov" | "gif" | "apng")
    )
}

/// Open a video for reading.
pub fn open(path: &Path) -> Result<Box<dyn FrameSource>, VideoError> {
    Err(VideoError::Unsupported { path: path.to_path_buf(), why: "video reading is not built yet".into() })
}

/// Create a video for writing, of the given frame size (chosen from the extension).
pub fn create(path: &Path, width: u32, height: u32) -> Result<Box<dyn FrameSink>, VideoError> {
    let _ = (width, height);
    Err(VideoError::Unsupported { path: path.to_path_buf(), why: "video writing is not built yet".into() })
}
