//! Finding the image files of a folder: recursively (subfolders included, as the reference
//! implementation reads them), in a deterministic order, with each file's path relative to the
//! folder so that an output tree can mirror the input tree.
//!
//! Hidden entries (names starting with `.`, e.g. temporary files of an interrupted write) are
//! skipped; symbolic links to files are followed, links to folders are not (no cycles).

use std::path::{Path, PathBuf};

/// File extensions (lower case) treated as images: the reference implementation's (`.jpg`,
/// `.jpeg`, `.png`, `.ppm`, `.bmp`, `.tif`, `.tiff`) and WebP.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "ppm"];

/// True when the path's extension is one of [`IMAGE_EXTENSIONS`].
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// An image file found under a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundImage {
    /// The file (the folder joined with `relative`).
    pub path: PathBuf,
    /// The file's path inside the folder, e.g. `sub/photo.jpg`.
    pub relative: PathBuf,
}

/// Everything found under a folder.
#[derive(Debug, Clone, Default)]
pub struct FolderScan {
    /// Files with an image extension, sorted by relative path.
    pub images: Vec<FoundImage>,
    /// Everything else, relative to the folder, sorted: other files, and entries that are not
    /// regular files or cannot be listed (FIFOs, dangling links, links to folders, unreadable
    /// subfolders). Never opened.
    pub others: Vec<PathBuf>,
}

/// Walk `root` recursively. Fails only when `root` itself cannot be listed.
pub fn scan_folder(root: &Path) -> std::io::Result<FolderScan> {
    let mut scan = FolderScan::default();
    let top = std::fs::read_dir(root)?;
    walk(root, Path::new(""), top, &mut scan);
    scan.images.sort_by(|a, b| a.relative.cmp(&b.relative));
    scan.others.sort();
    Ok(scan)
}

/// The image files under `root`, subfolders included, sorted by relative path.
pub fn find_images(root: &Path) -> std::io::Result<Vec<FoundImage>> {
    Ok(scan_folder(root)?.images)
}

/// The image files directly inside a folder (not its subfolders, hidden files skipped), sorted
/// by name.
pub fn list_images(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.is_file() && is_image_path(p))
        .collect();
    files.sort();
    Ok(files)
}

fn walk(root: &Path, rel: &Path, entries: std::fs::ReadDir, scan: &mut FolderScan) {
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let relative = rel.join(&name);
        let path = root.join(&relative);
        let Ok(kind) = entry.file_type() else {
            scan.others.push(relative);
            continue;
        };
        if kind.is_dir() {
            match std::fs::read_dir(&path) {
                Ok(sub) => walk(root, &relative, sub, scan),
                Err(_) => scan.others.push(relative),
            }
        } else if (kind.is_file() || (kind.is_symlink() && path.is_file())) && is_image_path(&path)
        {
            scan.images.push(FoundImage { path, relative });
        } else {
            scan.others.push(relative);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_in_subfolders_are_found_with_their_relative_paths() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("b/deeper")).unwrap();
        std::fs::create_dir_all(d.join(".hidden")).unwrap();
        for f in [
            "z.JPG",
            "a.png",
            "b/c.tif",
            "b/deeper/d.ppm",
            "b/deeper/e.tiff",
            "notes.txt",
            ".partial.png",
            ".hidden/x.png",
        ] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("..", d.join("b/up")).unwrap();
            std::os::unix::fs::symlink("a.png", d.join("link.png")).unwrap();
        }
        let scan = scan_folder(d).unwrap();
        let rel: Vec<&Path> = scan.images.iter().map(|f| f.relative.as_path()).collect();
        let mut want = vec!["a.png", "b/c.tif", "b/deeper/d.ppm", "b/deeper/e.tiff"];
        if cfg!(unix) {
            want.push("link.png");
        }
        want.push("z.JPG");
        assert_eq!(rel, want.iter().map(Path::new).collect::<Vec<_>>());
        assert!(scan.images.iter().all(|f| f.path == d.join(&f.relative)));
        let mut others = vec![PathBuf::from("notes.txt")];
        if cfg!(unix) {
            others.insert(0, PathBuf::from("b/up")); // a link to a folder is not followed
        }
        assert_eq!(scan.others, others);
        assert_eq!(find_images(d).unwrap(), scan.images);
        // The flat listing stays flat.
        assert_eq!(
            list_images(d).unwrap().len(),
            if cfg!(unix) { 3 } else { 2 }
        );
        assert!(scan_folder(&d.join("missing")).is_err());
    }
}
