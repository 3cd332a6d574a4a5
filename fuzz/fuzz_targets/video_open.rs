//! The video reader on arbitrary bytes: container sniffing, the MP4 demuxer, H.264, GIF and APNG
//! decoding, up to 60 frames. Errors are expected; panics, aborts and sanitizer reports are bugs.
//!
//! Note: `cyclegan_video::open` turns panics inside its decoders into errors (`catch_unwind`),
//! but libFuzzer's panic hook aborts first, so those are reported here as crashes too: each
//! one is a decoder panic that the guard would have hidden.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn scratch(ext: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = Path::new("/dev/shm");
        if d.is_dir() {
            d.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    });
    dir.join(format!("cyclegan-fuzz-video-{}.{ext}", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    // The extension matters only when the magic bytes say nothing; vary it with the input.
    let ext = ["mp4", "gif", "apng", "mov"][data.len() % 4];
    let p = scratch(ext);
    if std::fs::write(&p, data).is_err() {
        return;
    }
    if let Ok(frames) = cyclegan_video::open(&p) {
        for f in frames.take(60) {
            if f.is_err() {
                break;
            }
        }
    }
});
