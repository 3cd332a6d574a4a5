//! Where the pictures come from: walking the user's sources (image folders, image files, videos)
//! and choosing which video frames to keep (by time or by count, skipping frames that barely
//! changed).

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use cyclegan_video::{Frame, VideoError};
use image::AnimationDecoder;
use serde::Serialize;

use crate::hash::PHash;
use crate::imageio::IMAGE_EXTENSIONS;

/// What a source file is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A still image.
    Image,
    /// A video or an animation: its frames are sampled.
    Video,
}

/// One file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The file.
    pub path: PathBuf,
    /// How it is read.
    pub kind: SourceKind,
}

/// A file that was passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skip {
    /// The file.
    pub path: PathBuf,
    /// Why it was passed over.
    pub reason: String,
}

/// Every file found in the sources.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// Images and videos to read, in a stable order (sources in the order given, folders sorted).
    pub files: Vec<SourceFile>,
    /// Files in an image or video format this build cannot read: skipped, and reported as such.
    pub unsupported: Vec<Skip>,
    /// Other files in the folders (text, metadata...): not media, listed for information only.
    pub ignored: Vec<Skip>,
}

/// A source the user named that cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The path does not exist or cannot be read.
    #[error(
        "{path}: cannot read this source ({source}); give an image folder, an image file or a video file"
    )]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Media formats we recognise by name but cannot read: files with these extensions are reported
/// as unsupported (not silently ignored like a stray text file).
const OTHER_MEDIA: &[&str] = &[
    "heic", "heif", "avif", "jxl", "jp2", "raw", "cr2", "cr3", "nef", "arw", "dng", "orf", "rw2",
    "psd", "svg", "ico", "tga", "exr", "hdr", "pnm", "pgm", "pbm", "qoi", "avi", "mkv", "webm",
    "wmv", "flv", "mpg", "mpeg", "ts", "m2ts", "mts", "3gp", "ogv",
];

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default()
}

/// True when a PNG file carries an animation control chunk (an APNG): read as a video.
pub fn is_apng(path: &Path) -> bool {
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = Vec::new();
    // acTL must come before the first IDAT, right after IHDR in practice.
    if f.take(1 << 16).read_to_end(&mut head).is_err() || !head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return false;
    }
    let mut i = 8;
    while i + 8 <= head.len() {
        let len = u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]) as usize;
        match &head[i + 4..i + 8] {
            b"acTL" => return true,
            b"IDAT" => return false,
            _ => i = i.saturating_add(12).saturating_add(len),
        }
    }
    false
}

/// Decide how one file is read, from its name (and, for PNG, whether it is animated).
fn classify(path: &Path) -> Result<SourceKind, String> {
    let ext = extension(path);
    if ext == "png" && is_apng(path) {
        return Ok(SourceKind::Video);
    }
    if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
        return Ok(SourceKind::Image);
    }
    if cyclegan_video::is_video_path(path) {
        return Ok(SourceKind::Video);
    }
    if OTHER_MEDIA.contains(&ext.as_str()) {
        return Err(format!("unsupported format (.{ext})"));
    }
    Err(if ext.is_empty() {
        "no file extension: not an image or video".into()
    } else {
        format!("not an image or video (.{ext})")
    })
}

/// Find every file of the given sources: a folder is walked recursively (hidden entries and
/// symbolic links to folders are not followed), a file is taken as it is.
pub fn collect(sources: &[PathBuf]) -> Result<Found, SourceError> {
    let mut found = Found::default();
    for src in sources {
        let meta = std::fs::metadata(src).map_err(|source| SourceError::Io {
            path: src.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(src, &mut files).map_err(|source| SourceError::Io {
                path: src.clone(),
                source,
            })?;
            files.sort();
            for path in files {
                match classify(&path) {
                    Ok(kind) => found.files.push(SourceFile { path, kind }),
                    Err(reason) if reason.starts_with("unsupported") => {
                        found.unsupported.push(Skip { path, reason })
                    }
                    Err(reason) => found.ignored.push(Skip { path, reason }),
                }
            }
        } else if !meta.is_file() {
            // A FIFO, socket or device would block or never end: report it, never open it.
            found.unsupported.push(Skip {
                path: src.clone(),
                reason: "not a regular file (FIFO, socket or device)".into(),
            });
        } else {
            // A file named explicitly: anything we cannot read is reported, never ignored.
            match classify(src) {
                Ok(kind) => found.files.push(SourceFile {
                    path: src.clone(),
                    kind,
                }),
                Err(reason) => found.unsupported.push(Skip {
                    path: src.clone(),
                    reason,
                }),
            }
        }
    }
    Ok(found)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            walk(&path, out)?;
        } else if ft.is_file() || (ft.is_symlink() && path.is_file()) {
            out.push(path);
        }
    }
    Ok(())
}

/// Which frames of a video to keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// At most this many frames per second of video, by timestamp: the first frame shown in each
    /// interval `[k/r, (k+1)/r)` (variable frame rates and dropped frames handled).
    Fps(f64),
    /// Every n-th decoded frame (the 1st, the n+1-th, ...).
    Every(usize),
}

/// Applies a [`Sampling`] to a stream of frames.
#[derive(Debug, Clone)]
pub struct FrameSampler {
    sampling: Sampling,
    last_bucket: Option<i64>,
}

impl FrameSampler {
    /// A sampler that has seen no frame yet.
    pub fn new(sampling: Sampling) -> Self {
        FrameSampler {
            sampling,
            last_bucket: None,
        }
    }

    /// Whether to keep the frame with this decode index and presentation time (seconds).
    pub fn take(&mut self, index: usize, time: f64) -> bool {
        match self.sampling {
            Sampling::Every(n) => index.is_multiple_of(n.max(1)),
            Sampling::Fps(r) => {
                // A hair of tolerance so that 0.49999999 s counts as 0.5 s.
                let bucket = (time * r + 1e-6).floor() as i64;
                if self.last_bucket.is_some_and(|b| bucket <= b) {
                    return false;
                }
                self.last_bucket = Some(bucket);
                true
            }
        }
    }
}

/// Skips frames that look like the last kept one (a static shot).
#[derive(Debug, Clone)]
pub struct ChangeFilter {
    min_change: u32,
    last: Option<PHash>,
}

impl ChangeFilter {
    /// Keep a frame only when its perceptual hash differs from the last kept frame's in at least
    /// `min_change` bits (0 keeps every frame).
    pub fn new(min_change: u32) -> Self {
        ChangeFilter {
            min_change,
            last: None,
        }
    }

    /// Whether to keep a frame with this hash; a kept frame becomes the new reference.
    pub fn take(&mut self, hash: PHash) -> bool {
        if self
            .last
            .is_some_and(|l| l.distance(hash) < self.min_change)
        {
            return false;
        }
        self.last = Some(hash);
        true
    }
}

/// A stream of frames, in presentation order.
pub type Frames = Box<dyn Iterator<Item = Result<Frame, VideoError>>>;

/// Open a video through `cyclegan_video::open`; where that build cannot read GIF or APNG,
/// read them here with `image`'s animation decoders.
pub fn open_video(path: &Path) -> Result<Frames, VideoError> {
    match cyclegan_video::open(path) {
        Ok(src) => Ok(src),
        Err(VideoError::Unsupported { .. })
            if matches!(extension(path).as_str(), "gif" | "apng" | "png") =>
        {
            open_animation(path)
        }
        Err(e) => Err(e),
    }
}

/// Read an animated GIF or APNG with `image`: full-canvas frames, composited on white, timed by
/// their delays (a GIF delay of 0 is shown for 0.1 s, as browsers do).
pub fn open_animation(path: &Path) -> Result<Frames, VideoError> {
    let io = |e: std::io::Error| VideoError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let corrupt = |e: image::ImageError| VideoError::Corrupt {
        path: path.to_path_buf(),
        why: e.to_string(),
    };
    let file = BufReader::new(std::fs::File::open(path).map_err(io)?);
    let frames: image::Frames<'static> = if extension(path) == "gif" {
        image::codecs::gif::GifDecoder::new(file)
            .map_err(corrupt)?
            .into_frames()
    } else {
        let dec = image::codecs::png::PngDecoder::new(file).map_err(corrupt)?;
        dec.apng().map_err(corrupt)?.into_frames()
    };
    let path = path.to_path_buf();
    let mut time = 0.0f64;
    Ok(Box::new(frames.map(move |f| {
        let f = f.map_err(|e| VideoError::Corrupt {
            path: path.clone(),
            why: e.to_string(),
        })?;
        let (num, den) = f.delay().numer_denom_ms();
        let mut dur = f64::from(num) / f64::from(den.max(1)) / 1000.0;
        if dur <= 0.0 {
            dur = 0.1;
        }
        let image =
            crate::imageio::to_rgb_on(image::DynamicImage::ImageRgba8(f.into_buffer()), [255; 3]);
        let frame = Frame {
            image,
            time,
            duration: Some(dur),
        };
        time += dur;
        Ok(frame)
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cyclegan_testkit::{picture, write_video};

    #[test]
    fn fps_sampling_picks_by_time_not_index() {
        // Irregular times: 0, 0.1, 0.2, 0.45, 0.5, 0.95, 1.3, 2.05, 2.1
        let times = [0.0, 0.1, 0.2, 0.45, 0.5, 0.95, 1.3, 2.05, 2.1];
        let mut s = FrameSampler::new(Sampling::Fps(2.0));
        let kept: Vec<usize> = times
            .iter()
            .enumerate()
            .filter(|(i, t)| s.take(*i, **t))
            .map(|(i, _)| i)
            .collect();
        // Buckets of 0.5 s: [0,.5) -> 0, [.5,1) -> 4, [1,1.5) -> 6, [2,2.5) -> 7.
        assert_eq!(kept, vec![0, 4, 6, 7]);
        let mut e = FrameSampler::new(Sampling::Every(3));
        let kept: Vec<usize> = (0..10).filter(|&i| e.take(i, 0.0)).collect();
        assert_eq!(kept, vec![0, 3, 6, 9]);
    }

    #[test]
    fn change_filter_skips_lookalikes_of_the_last_kept_frame() {
        let mut f = ChangeFilter::new(4);
        assert!(f.take(PHash(0)));
        assert!(!f.take(PHash(0b111))); // 3 bits from the last kept
        assert!(f.take(PHash(0b1111))); // 4 bits: kept, new reference
        assert!(!f.take(PHash(0b1000_0011))); // 3 bits from 0b1111
        assert!(ChangeFilter::new(0).take(PHash(0)));
    }

    #[test]
    fn gif_and_apng_frames_come_with_their_times() {
        let dir = tempfile::tempdir().unwrap();
        let gif = dir.path().join("a.gif");
        write_video(&gif, &[0.0, 0.1, 0.3, 0.6], |i| picture(16, 12, i as u64));
        let times: Vec<f64> = open_animation(&gif)
            .unwrap()
            .map(|f| f.unwrap().time)
            .collect();
        assert_eq!(times.len(), 4);
        for (t, want) in times.iter().zip([0.0, 0.1, 0.3, 0.6]) {
            assert!((t - want).abs() < 1e-9, "{times:?}");
        }
        let apng = dir.path().join("b.png");
        write_video(&apng, &[0.0, 0.25, 0.5], |i| picture(16, 12, i as u64));
        assert!(is_apng(&apng));
        let frames: Vec<Frame> = open_video(&apng).unwrap().map(|f| f.unwrap()).collect();
        assert_eq!(
            frames.iter().map(|f| f.time).collect::<Vec<_>>(),
            vec![0.0, 0.25, 0.5]
        );
        assert_eq!(frames[2].image, picture(16, 12, 2)); // APNG is lossless
    }

    #[test]
    fn sources_are_walked_and_classified() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("sub/deeper")).unwrap();
        for f in [
            "b.jpg",
            "a.PNG",
            "sub/c.webp",
            "sub/deeper/d.bmp",
            "sub/deeper/e.tiff",
            "f.ppm",
            "notes.txt",
            "sub/e.heic",
            ".hidden.jpg",
            "clip.mp4",
        ] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let anim = d.join("sub/anim.png");
        write_video(&anim, &[0.0, 0.1], |i| picture(4, 4, i as u64));
        let found = collect(&[d.to_path_buf()]).unwrap();
        let names: Vec<(String, SourceKind)> = found
            .files
            .iter()
            .map(|f| {
                (
                    f.path
                        .strip_prefix(d)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                    f.kind,
                )
            })
            .collect();
        use SourceKind::*;
        assert_eq!(
            names,
            vec![
                ("a.PNG".into(), Image),
                ("b.jpg".into(), Image),
                ("clip.mp4".into(), Video),
                ("f.ppm".into(), Image),
                ("sub/anim.png".into(), Video),
                ("sub/c.webp".into(), Image),
                ("sub/deeper/d.bmp".into(), Image),
                ("sub/deeper/e.tiff".into(), Image),
            ]
        );
        assert_eq!(found.unsupported.len(), 1);
        assert!(found.unsupported[0].reason.contains("heic"));
        assert_eq!(found.ignored.len(), 1);
        assert!(collect(&[d.join("missing")]).is_err());
        // A file named explicitly that we cannot read is reported, not ignored.
        let one = collect(&[d.join("notes.txt")]).unwrap();
        assert_eq!(one.unsupported.len(), 1);
    }
}
