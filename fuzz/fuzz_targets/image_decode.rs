//! The image loader on arbitrary bytes: the strict in-memory decoder `prepare` and `doctor` use,
//! and (for a share of inputs) the file decoder of the training loader and `translate`.
//! Any panic, abort or sanitizer report is a bug; errors are the expected outcome.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// A per-process file on tmpfs (falls back to the temp folder).
fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = Path::new("/dev/shm");
        let dir = if dir.is_dir() {
            dir.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("cyclegan-fuzz-image-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let named = Path::new("fuzz-input.png");
    if let Err(e) = cyclegan_data::imageio::decode_bytes(named, data) {
        assert!(
            e.to_string().contains("fuzz-input.png"),
            "error without the file name: {e}"
        );
    }
    // The file path costs a write; inputs of even length take it (JPEGs all start 0xFF).
    if data.len() % 2 == 0 {
        let p = scratch();
        if std::fs::write(p, data).is_ok() {
            let _ = cyclegan_data::imageio::decode_rgb(p);
        }
    }
});
