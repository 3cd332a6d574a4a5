//! Writing files so that a crash never leaves a half-written one: the bytes go to a temporary
//! name in the same folder, are flushed to disk, and the file is renamed over the target (an
//! atomic step on one file system); then the folder itself is flushed so the rename survives a
//! power cut. Readers see the old file or the new one, never a mixture.
//!
//! The one helper of the project: `prepare`, `doctor`, reports, checkpoints, plots and
//! `translate` all write through it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A write that did not happen; the target, if it existed, is unchanged.
#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot {action}: {source}")]
pub struct WriteError {
    /// The file (or folder) concerned.
    pub path: PathBuf,
    /// What failed, e.g. `"write"`, `"rename into place"`.
    pub action: &'static str,
    /// The system's reason.
    #[source]
    pub source: std::io::Error,
}

fn fail<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(std::io::Error) -> WriteError + 'a {
    move |source| WriteError {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Write `bytes` to `path` atomically (temporary name, fsync, rename, fsync of the folder).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Like [`write_atomic`], with the content produced by `fill` (e.g. an image encoder writing
/// straight to the file). When `fill` fails, nothing is renamed, the temporary file is removed
/// and the error is returned under the target's name.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    let tmp = temporary_name(path);
    let result = write_file(&tmp, path, fill)
        .and_then(|()| std::fs::rename(&tmp, path).map_err(fail(path, "rename into place")));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp); // ours alone; may not exist
        return result;
    }
    sync_dir(parent_of(path))
}

/// Write `bytes` to `path` (created or truncated) and flush them to disk before returning.
/// Not atomic by itself: for files inside a folder that is renamed into place as a whole.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_file(path, path, |w| w.write_all(bytes))
}

/// Flush a folder's entries to disk, so that files created or renamed in it survive a power
/// cut. A no-op where folders cannot be opened (Windows).
pub fn sync_dir(dir: &Path) -> Result<(), WriteError> {
    if cfg!(unix) {
        File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(fail(dir, "flush folder"))?;
    }
    Ok(())
}

/// Create `file`, let `fill` write it, flush it to disk. Errors name `shown` (the target the user
/// asked for, not our temporary name).
fn write_file(
    file: &Path,
    shown: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    let f = File::create(file).map_err(fail(shown, "create"))?;
    let mut w = BufWriter::new(f);
    fill(&mut w)
        .and_then(|()| w.flush())
        .map_err(fail(shown, "write"))?;
    let f = w
        .into_inner()
        .map_err(|e| fail(shown, "write")(e.into_error()))?;
    f.sync_all().map_err(fail(shown, "flush to disk"))
}

/// `.NAME.tmp-PID-N` beside `path`: unique per process and call, so two writers of the same
/// target never share a temporary file; hidden, so listings of the folder skip it.
fn temporary_name(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn content_is_replaced_whole_and_no_temporary_file_is_left() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("report.md");
        write_atomic(&p, b"a long first version of the file").unwrap();
        write_atomic(&p, b"short").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"short");
        write_atomic_with(&p, |w| {
            w.write_all(b"in ")?;
            w.write_all(b"parts")
        })
        .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"in parts");
        assert_eq!(names(t.path()), vec!["report.md"]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_intact() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("manifest.jsonl");
        write_atomic(&p, b"old").unwrap();
        let e = write_atomic_with(&p, |w| {
            w.write_all(b"half of the new")?;
            Err(std::io::Error::other("encoder failed"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("manifest.jsonl"), "{e}");
        assert!(e.to_string().contains("encoder failed"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(names(t.path()), vec!["manifest.jsonl"]);
        // A folder that does not exist: an error naming the file, nothing created.
        let missing = t.path().join("no/such/folder/x.png");
        let e = write_atomic(&missing, b"x").unwrap_err();
        assert!(
            e.to_string().contains("x.png") && e.action == "create",
            "{e}"
        );
        // A target that is a folder cannot be replaced by a file.
        std::fs::create_dir(t.path().join("dir")).unwrap();
        assert!(write_atomic(&t.path().join("dir"), b"x").is_err());
        assert_eq!(names(t.path()), vec!["dir", "manifest.jsonl"]);
    }

    #[test]
    fn synced_write_and_folder_flush() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("sums");
        write_synced(&p, b"abc").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"abc");
        sync_dir(t.path()).unwrap();
        if cfg!(unix) {
            assert!(sync_dir(&t.path().join("missing")).is_err());
        }
    }
}
