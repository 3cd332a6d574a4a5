//! `doctor`: audit a dataset in the standard layout (`trainA/ trainB/ testA/ testB/`) without
//! changing it: counts, sizes and colour modes, unreadable and truncated files, exact and near
//! duplicates in each folder, test pictures that duplicate train pictures (leaks), and pictures
//! found in both domains. Each layout folder is read recursively, as the trainer reads it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::dedup::{self, Fingerprint};
use crate::hash;
use crate::imageio;
use crate::report::SizeHistogram;
use crate::sources::Skip;

/// The folders of the standard layout, in report order.
pub const FOLDERS: [&str; 4] = ["trainA", "testA", "trainB", "testB"];

/// What `doctor` is told.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// The dataset folder.
    pub dir: PathBuf,
    /// Largest perceptual-hash distance counted as a near duplicate. Default 6.
    pub near_threshold: u32,
    /// Draw a progress bar on standard error.
    pub progress: bool,
}

impl Default for DoctorOptions {
    fn default() -> Self {
        DoctorOptions {
            dir: PathBuf::new(),
            near_threshold: 6,
            progress: false,
        }
    }
}

/// Why `doctor` could not audit the folder at all.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// The folder cannot be read.
    #[error("{path}: cannot read the dataset folder: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// None of the layout folders exist.
    #[error(
        "{0}: not a dataset: it has none of trainA/, trainB/, testA/, testB/ (build one with `cyclegan prepare`)"
    )]
    NoLayout(PathBuf),
}

/// Two pictures that look alike, by their paths inside the dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairReport {
    /// First picture (the train one for a leak, the domain A one across domains).
    pub a: String,
    /// Second picture (the test one for a leak, the domain B one across domains).
    pub b: String,
    /// Perceptual-hash distance (0 for exact copies).
    pub distance: u32,
    /// Pixel-identical.
    pub exact: bool,
}

/// The audit of one layout folder.
#[derive(Debug, Clone, Serialize)]
pub struct FolderReport {
    /// `trainA`, `testA`, `trainB` or `testB`.
    pub name: String,
    /// False when the folder does not exist.
    pub present: bool,
    /// Files with an image extension (subfolders included).
    pub images: usize,
    /// Of those, the ones that decode whole.
    pub readable: usize,
    /// Picture sizes.
    pub sizes: SizeHistogram,
    /// Pictures per colour mode.
    pub modes: BTreeMap<String, usize>,
    /// Files the trainer cannot use, with the reason: they do not decode, or they end early.
    pub unreadable: Vec<Skip>,
    /// Of the unreadable files, those that end early (cut off in transfer or while being
    /// written): part of the picture, or all of it, is missing. Copying them again may help.
    pub truncated: Vec<String>,
    /// Other entries (not images; the trainer ignores them).
    pub other_files: Vec<String>,
    /// Groups of pixel-identical pictures.
    pub exact_groups: Vec<Vec<String>>,
    /// Pairs of near-identical (not pixel-identical) pictures.
    pub near_pairs: Vec<PairReport>,
}

/// Everything `doctor` found.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    /// The dataset folder.
    pub dir: PathBuf,
    /// The near-duplicate threshold used.
    pub near_threshold: u32,
    /// One entry per layout folder.
    pub folders: Vec<FolderReport>,
    /// Test pictures that duplicate train pictures of the same domain (train in `a`, test in `b`).
    pub leaks: Vec<PairReport>,
    /// Pictures in domain A that look like pictures in domain B.
    pub cross_domain: Vec<PairReport>,
    /// Wall-clock seconds.
    pub elapsed_s: f64,
}

impl DoctorReport {
    /// Files the trainer cannot use (truncated included), in all folders.
    pub fn unreadable(&self) -> usize {
        self.folders.iter().map(|f| f.unreadable.len()).sum()
    }

    /// Files that end early, in all folders (counted in [`DoctorReport::unreadable`] too).
    pub fn truncated(&self) -> usize {
        self.folders.iter().map(|f| f.truncated.len()).sum()
    }

    /// True when the dataset has leaks (train/test or across domains) or unreadable files.
    pub fn has_problems(&self) -> bool {
        !self.leaks.is_empty() || !self.cross_domain.is_empty() || self.unreadable() > 0
    }
}

/// One picture that decoded whole.
struct Picture {
    print: Fingerprint,
    size: [u32; 2],
    mode: imageio::ColorMode,
}

/// What checking one file found.
enum Outcome {
    Whole(Picture),
    /// Decoded, but the file ends early; the reason.
    Truncated(String),
    /// Did not decode; the reason.
    Unreadable(String),
}

struct Checked {
    folder: usize,
    rel: String,
    outcome: Outcome,
}

/// Audit a dataset folder; never writes anything.
pub fn doctor(opts: &DoctorOptions) -> Result<DoctorReport, DoctorError> {
    let start = Instant::now();
    let dir = &opts.dir;
    std::fs::read_dir(dir).map_err(|source| DoctorError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut folders: Vec<FolderReport> = Vec::new();
    let mut files: Vec<(usize, PathBuf, String)> = Vec::new();
    for (fi, name) in FOLDERS.iter().enumerate() {
        let path = dir.join(name);
        let present = path.is_dir();
        let mut other_files = Vec::new();
        if present {
            let scan = imageio::scan_folder(&path).map_err(|source| DoctorError::Io {
                path: path.clone(),
                source,
            })?;
            let shown = |rel: &Path| format!("{name}/{}", rel.to_string_lossy());
            for f in scan.images {
                files.push((fi, f.path, shown(&f.relative)));
            }
            other_files.extend(scan.others.iter().map(|rel| shown(rel)));
        }
        folders.push(FolderReport {
            name: name.to_string(),
            present,
            images: 0,
            readable: 0,
            sizes: SizeHistogram::default(),
            modes: BTreeMap::new(),
            unreadable: Vec::new(),
            truncated: Vec::new(),
            other_files,
            exact_groups: Vec::new(),
            near_pairs: Vec::new(),
        });
    }
    if folders.iter().all(|f| !f.present) {
        return Err(DoctorError::NoLayout(dir.clone()));
    }

    let pb = crate::progress::bar(files.len() as u64, "checking", opts.progress);
    let checked: Vec<Checked> = files
        .par_iter()
        .map(|(fi, path, rel)| {
            let outcome = check(path);
            pb.inc(1);
            Checked {
                folder: *fi,
                rel: rel.clone(),
                outcome,
            }
        })
        .collect();
    pb.finish_and_clear();

    // Per folder: the readable pictures, their paths and prints.
    let mut good: Vec<Vec<(String, Fingerprint)>> = vec![Vec::new(); FOLDERS.len()];
    for c in checked {
        let f = &mut folders[c.folder];
        f.images += 1;
        match c.outcome {
            Outcome::Whole(p) => {
                f.readable += 1;
                f.sizes.add(p.size[0], p.size[1]);
                *f.modes.entry(p.mode.name().to_string()).or_insert(0) += 1;
                good[c.folder].push((c.rel, p.print));
            }
            Outcome::Truncated(reason) => {
                f.truncated.push(c.rel.clone());
                f.unreadable.push(Skip {
                    path: PathBuf::from(c.rel),
                    reason,
                });
            }
            Outcome::Unreadable(reason) => f.unreadable.push(Skip {
                path: PathBuf::from(c.rel),
                reason,
            }),
        }
    }
    let prints =
        |v: &[(String, Fingerprint)]| -> Vec<Fingerprint> { v.iter().map(|x| x.1).collect() };
    for (fi, f) in folders.iter_mut().enumerate() {
        let g = &good[fi];
        let sim = dedup::find_similar(&prints(g), opts.near_threshold);
        f.exact_groups = sim
            .exact_groups
            .iter()
            .map(|grp| grp.iter().map(|&i| g[i].0.clone()).collect())
            .collect();
        f.near_pairs = sim
            .near_pairs
            .iter()
            .map(|p| PairReport {
                a: g[p.a].0.clone(),
                b: g[p.b].0.clone(),
                distance: p.distance,
                exact: false,
            })
            .collect();
    }
    let pairs = |l: &[(String, Fingerprint)], r: &[(String, Fingerprint)]| -> Vec<PairReport> {
        dedup::find_between(&prints(l), &prints(r), opts.near_threshold)
            .into_iter()
            .map(|p| PairReport {
                a: l[p.a].0.clone(),
                b: r[p.b].0.clone(),
                distance: p.distance,
                exact: p.exact,
            })
            .collect()
    };
    // Layout indices: 0 trainA, 1 testA, 2 trainB, 3 testB.
    let mut leaks = pairs(&good[0], &good[1]);
    leaks.extend(pairs(&good[2], &good[3]));
    let all_a: Vec<_> = good[0].iter().chain(&good[1]).cloned().collect();
    let all_b: Vec<_> = good[2].iter().chain(&good[3]).cloned().collect();
    let cross_domain = pairs(&all_a, &all_b);
    Ok(DoctorReport {
        dir: dir.clone(),
        near_threshold: opts.near_threshold,
        folders,
        leaks,
        cross_domain,
        elapsed_s: start.elapsed().as_secs_f64(),
    })
}

/// Decode one file and fingerprint it; a partial picture is not fingerprinted (its missing part
/// would make false duplicates).
fn check(path: &Path) -> Outcome {
    let without_path = |e: &dyn std::fmt::Display| {
        let s = e.to_string();
        s.strip_prefix(&format!("{}: ", path.display()))
            .map(str::to_string)
            .unwrap_or(s)
    };
    match imageio::decode_checked(path) {
        Ok(imageio::Decoded {
            damage: Some(damage),
            ..
        }) => Outcome::Truncated(without_path(&damage.into_error(path))),
        Ok(d) => {
            let size = [d.image.width(), d.image.height()];
            let rgb = imageio::to_rgb_on(d.image, [255; 3]);
            Outcome::Whole(Picture {
                print: Fingerprint {
                    content: hash::content_hash(&rgb),
                    phash: hash::phash(&rgb),
                },
                size,
                mode: d.mode,
            })
        }
        Err(e @ imageio::DecodeError::Truncated { .. }) => Outcome::Truncated(without_path(&e)),
        Err(e) => Outcome::Unreadable(without_path(&e)),
    }
}

/// Convenience for tests and tools: audit `dir` with the default options.
pub fn doctor_dir(dir: &Path) -> Result<DoctorReport, DoctorError> {
    doctor(&DoctorOptions {
        dir: dir.to_path_buf(),
        ..DoctorOptions::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cyclegan_testkit::{encode, picture};

    fn blocks(seed: u64) -> image::RgbImage {
        picture(48, 48, seed)
    }

    #[test]
    fn finds_leaks_duplicates_unreadable_files_and_modes() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        for f in FOLDERS {
            std::fs::create_dir_all(d.join(f)).unwrap();
        }
        for i in 0..5 {
            blocks(i).save(d.join(format!("trainA/a{i}.png"))).unwrap();
            blocks(100 + i)
                .save(d.join(format!("trainB/b{i}.png")))
                .unwrap();
        }
        blocks(200).save(d.join("testA/t0.png")).unwrap();
        // Leak: a train picture re-encoded as JPEG in test (near, not exact).
        blocks(2).save(d.join("testA/leak.jpg")).unwrap();
        // Exact copy inside trainB, and a grey picture.
        blocks(101).save(d.join("trainB/copy.png")).unwrap();
        image::DynamicImage::ImageRgb8(picture(48, 48, 1000))
            .to_luma8()
            .save(d.join("trainB/grey.png"))
            .unwrap();
        // Unreadable and non-image files.
        std::fs::write(d.join("testB/broken.jpg"), b"").unwrap();
        std::fs::write(d.join("testB/notes.txt"), b"hi").unwrap();
        blocks(300).save(d.join("testB/ok.png")).unwrap();
        // The same picture in both domains.
        blocks(4).save(d.join("testB/from_a.png")).unwrap();

        let before: Vec<_> = FOLDERS
            .iter()
            .map(|f| std::fs::read_dir(d.join(f)).unwrap().count())
            .collect();
        let r = doctor_dir(d).unwrap();
        let after: Vec<_> = FOLDERS
            .iter()
            .map(|f| std::fs::read_dir(d.join(f)).unwrap().count())
            .collect();
        assert_eq!(before, after, "doctor must not change the dataset");

        let f = |n: &str| r.folders.iter().find(|f| f.name == n).unwrap();
        assert_eq!(
            (
                f("trainA").images,
                f("trainB").images,
                f("testA").images,
                f("testB").images
            ),
            (5, 7, 2, 3)
        );
        assert_eq!(f("trainB").modes.get("grey 8-bit"), Some(&1));
        assert_eq!(f("trainB").sizes.counts.get("48x48"), Some(&7));
        assert_eq!(
            f("trainB").exact_groups,
            vec![vec![
                "trainB/b1.png".to_string(),
                "trainB/copy.png".to_string()
            ]]
        );
        assert_eq!(f("testB").unreadable.len(), 1);
        assert!(f("testB").unreadable[0].reason.contains("empty"));
        assert_eq!(f("testB").other_files, vec!["testB/notes.txt".to_string()]);
        assert_eq!(r.leaks.len(), 1, "{:#?}", r.leaks);
        assert_eq!(
            (r.leaks[0].a.as_str(), r.leaks[0].b.as_str()),
            ("trainA/a2.png", "testA/leak.jpg")
        );
        assert_eq!(r.cross_domain.len(), 1);
        assert!(r.cross_domain[0].exact && r.cross_domain[0].b == "testB/from_a.png");
        assert!(r.has_problems());
        let text = crate::report::doctor_text(&r);
        assert!(
            text.contains("trainA/a2.png")
                && text.contains("testA/leak.jpg")
                && text.contains("PROBLEMS"),
            "{text}"
        );
        // Machine-readable output keeps every pair.
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["leaks"][0]["b"], "testA/leak.jpg");
    }

    #[test]
    fn subfolders_are_read_and_truncated_files_listed() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("trainA/summer/2024")).unwrap();
        std::fs::create_dir_all(d.join("trainB")).unwrap();
        blocks(1).save(d.join("trainA/a.png")).unwrap();
        let tif = encode(blocks(2), image::ImageFormat::Tiff);
        std::fs::write(d.join("trainA/summer/b.tif"), tif).unwrap();
        let ppm = encode(blocks(3), image::ImageFormat::Pnm);
        std::fs::write(d.join("trainA/summer/2024/c.ppm"), ppm).unwrap();
        // A copy of a.png deep down: found as a duplicate across subfolders.
        blocks(1)
            .save(d.join("trainA/summer/2024/copy.png"))
            .unwrap();
        std::fs::write(d.join("trainA/summer/notes.txt"), b"hi").unwrap();
        blocks(4).save(d.join("trainB/x.png")).unwrap();
        let jpg = encode(blocks(5), image::ImageFormat::Jpeg);
        std::fs::write(d.join("trainB/cut.jpg"), &jpg[..jpg.len() / 2]).unwrap();
        let png = encode(blocks(6), image::ImageFormat::Png);
        std::fs::write(d.join("trainB/cut.png"), &png[..png.len() / 2]).unwrap();

        let r = doctor_dir(d).unwrap();
        let f = |n: &str| r.folders.iter().find(|f| f.name == n).unwrap();
        assert_eq!((f("trainA").images, f("trainA").readable), (4, 4));
        assert_eq!(f("trainA").modes.get("RGB 8-bit"), Some(&4));
        assert_eq!(
            f("trainA").exact_groups,
            vec![vec![
                "trainA/a.png".to_string(),
                "trainA/summer/2024/copy.png".to_string()
            ]]
        );
        assert_eq!(f("trainA").other_files, vec!["trainA/summer/notes.txt"]);
        assert_eq!((f("trainB").images, f("trainB").readable), (3, 1));
        assert_eq!(
            f("trainB").truncated,
            vec!["trainB/cut.jpg", "trainB/cut.png"]
        );
        assert_eq!(f("trainB").unreadable.len(), 2);
        assert!(
            f("trainB")
                .unreadable
                .iter()
                .all(|u| u.reason.contains("partial image") && u.reason.contains("ends early")),
            "{:?}",
            f("trainB").unreadable
        );
        assert_eq!(r.truncated(), 2);
        assert!(r.has_problems());
        let text = crate::report::doctor_text(&r);
        assert!(
            text.contains("trainB: truncated files") && text.contains("  trainB/cut.png"),
            "{text}"
        );
        assert!(text.contains("(2 truncated)"), "{text}");
    }

    #[test]
    fn clean_dataset_passes_and_non_datasets_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("trainA")).unwrap();
        std::fs::create_dir_all(d.join("trainB")).unwrap();
        blocks(1).save(d.join("trainA/x.png")).unwrap();
        blocks(2).save(d.join("trainB/y.png")).unwrap();
        let r = doctor_dir(d).unwrap();
        assert!(!r.has_problems());
        assert!(
            !r.folders
                .iter()
                .find(|f| f.name == "testA")
                .unwrap()
                .present
        );
        assert!(matches!(
            doctor_dir(&d.join("trainA")),
            Err(DoctorError::NoLayout(_))
        ));
        assert!(matches!(
            doctor_dir(&d.join("nope")),
            Err(DoctorError::Io { .. })
        ));
    }
}
