//! Putting the dataset in place: the kept pictures renamed into their folders under readable
//! unique names (with their manifest entries), `manifest.jsonl` and `report.md` written, and the
//! staged layout moved into the output folder, what was there moved aside (never deleted).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::error::{PrepareError, io_err};
use super::options::{Domain, OutputFormat};
use super::records::ManifestEntry;
use super::split::DomainSplit;
use super::staged::StagedPicture;
use crate::atomic::write_atomic;

/// The names `prepare` writes at the top of the dataset folder.
const LAYOUT: [&str; 6] = [
    "trainA",
    "trainB",
    "testA",
    "testB",
    "manifest.jsonl",
    "report.md",
];

/// Where an existing layout in `out` will be moved (`out/.replaced-<time>/`), if there is one.
pub(super) fn replaced_dir_if_needed(out: &Path) -> Option<PathBuf> {
    if !LAYOUT
        .iter()
        .any(|n| out.join(n).symlink_metadata().is_ok())
    {
        return None;
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut dir = out.join(format!(".replaced-{secs}"));
    let mut k = 2;
    while dir.exists() {
        dir = out.join(format!(".replaced-{secs}-{k}"));
        k += 1;
    }
    Some(dir)
}

/// Move the staged layout into `out`, moving what was there aside first (never deleting it).
pub(super) fn install(
    staging: &Path,
    out: &Path,
    replaced: Option<&Path>,
) -> Result<(), PrepareError> {
    if let Some(backup) = replaced {
        std::fs::create_dir_all(backup).map_err(io_err(backup))?;
        for n in LAYOUT {
            let old = out.join(n);
            if old.symlink_metadata().is_ok() {
                std::fs::rename(&old, backup.join(n)).map_err(io_err(&old))?;
            }
        }
    }
    for n in LAYOUT {
        let new = staging.join(n);
        std::fs::rename(&new, out.join(n)).map_err(io_err(&out.join(n)))?;
    }
    Ok(())
}

/// A file-system friendly name for an output picture: the source's stem, plus the time for a frame.
fn output_stem(it: &StagedPicture) -> String {
    let stem = it
        .source
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    if clean.is_empty() {
        clean = "image".into();
    }
    match it.frame {
        Some(f) => format!("{clean}_t{:09.3}s", f.time),
        None => clean,
    }
}

/// Rename every kept picture from the staging area into `staging/{split}{domain}/` under a
/// name from its source (made unique, case-insensitively); returns the manifest, sorted by file.
pub(super) fn place_pictures(
    staging: &Path,
    pictures: &[Vec<StagedPicture>; 2],
    splits: &[DomainSplit],
    format: OutputFormat,
) -> Result<Vec<ManifestEntry>, PrepareError> {
    let ext = format.extension();
    let mut used: HashMap<String, HashSet<String>> = HashMap::new();
    let mut manifest = Vec::new();
    for d in [Domain::A, Domain::B] {
        for place in &splits[d.index()].placements {
            let it = &pictures[d.index()][place.picture];
            let split = place.split.as_str();
            let folder = format!("{split}{d:?}");
            let dir = staging.join(&folder);
            std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            let names = used.entry(folder.clone()).or_default();
            let base = output_stem(it);
            let mut name = format!("{base}.{ext}");
            let mut k = 2;
            while !names.insert(name.to_ascii_lowercase()) {
                name = format!("{base}_{k}.{ext}");
                k += 1;
            }
            let dest = dir.join(&name);
            std::fs::rename(&it.staged, &dest).map_err(io_err(&dest))?;
            manifest.push(ManifestEntry {
                file: format!("{folder}/{name}"),
                domain: d,
                split,
                source: it.source.clone(),
                frame_time: it.frame.map(|f| f.time),
                frame_index: it.frame.map(|f| f.index),
                crop: it.crop,
                original_size: it.original_size,
                original_mode: it.mode,
                converted: !it.mode.is_plain_rgb(),
                sha256: it.print.content,
                phash: it.print.phash,
                duplicate_group: place.group,
            });
        }
    }
    manifest.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(manifest)
}

/// Write `manifest.jsonl` (one JSON object per line) and `report.md` into the staging folder,
/// and create the layout folders of empty splits, so the trainer and `doctor` find the layout.
pub(super) fn write_records(
    staging: &Path,
    manifest: &[ManifestEntry],
    report_md: &str,
) -> Result<(), PrepareError> {
    for folder in ["trainA", "trainB", "testA", "testB"] {
        let dir = staging.join(folder);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    }
    let mut lines = String::new();
    for m in manifest {
        lines.push_str(&serde_json::to_string(m).expect("manifest entries serialise"));
        lines.push('\n');
    }
    write_atomic(&staging.join("manifest.jsonl"), lines.as_bytes())?;
    write_atomic(&staging.join("report.md"), report_md.as_bytes())?;
    Ok(())
}
