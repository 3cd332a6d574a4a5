//! `doctor`: audit a dataset in the standard layout (`trainA/ trainB/ testA/ testB/`) without
//! changing it: counts, sizes and colour modes, unreadable files, exact and near duplicates in
//! each folder, test pictures that duplicate train pictures (leaks), and pictures found in both
//! domains.

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
    /// Files with an image extension.
    pub images: usize,
    /// Of those, the ones that decode.
    pub readable: usize,
    /// Picture sizes.
    pub sizes: SizeHistogram,
    /// Pictures per colour mode.
    pub modes: BTreeMap<String, usize>,
    /// Files that do not decode, with the reason.
    pub unreadable: Vec<Skip>,
    /// Other files (not images; the trainer ignores them).
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
    /// Files that did not decode, in all folders.
    pub fn unreadable(&self) -> usize {
        self.folders.iter().map(|f| f.unreadable.len()).sum()
    }

    /// True when the dataset has leaks (train/test or across domains) or unreadable files.
    pub fn has_problems(&self) -> bool {
        !self.leaks.is_empty() || !self.cross_domain.is_empty() || self.unreadable() > 0
    }
}

struct Checked {
    folder: usize,
    rel: String,
    result: Result<(Fingerprint, [u32; 2], imageio::ColorMode), String>,
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
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&path)
                .map_err(|source| DoctorError::Io {
                    path: path.clone(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for p in entries {
                let rel = format!(
                    "{name}/{}",
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                );
                if p.is_file() && imageio::is_image_path(&p) {
                    files.push((fi, p, rel));
                } else {
                    other_files.push(rel);
                }
            }
        }
        folders.push(FolderReport {
            name: name.to_string(),
            present,
            images: 0,
            readable: 0,
            sizes: SizeHistogram::default(),
            modes: BTreeMap::new(),
            unreadable: Vec::new(),
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
            let result = imageio::decode_with_mode(path)
                .map(|(img, mode)| {
                    let size = [img.width(), img.height()];
                    let rgb = imageio::to_rgb_on(img, [255; 3]);
                    (
                        Fingerprint {
                            content: hash::content_hash(&rgb),
                            phash: hash::phash(&rgb),
                        },
                        size,
                        mode,
                    )
                })
                .map_err(|e| {
                    let s = e.to_string();
                    s.strip_prefix(&format!("{}: ", path.display()))
                        .map(str::to_string)
                        .unwrap_or(s)
                });
            pb.inc(1);
            Checked {
                folder: *fi,
                rel: rel.clone(),
                result,
            }
        })
        .collect();
    pb.finish_and_clear();

    // Per folder: the readable pictures, their paths and prints.
    let mut good: Vec<Vec<(String, Fingerprint)>> = vec![Vec::new(); FOLDERS.len()];
    for c in checked {
        let f = &mut folders[c.folder];
        f.images += 1;
        match c.result {
            Ok((print, size, mode)) => {
                f.readable += 1;
                f.sizes.add(size[0], size[1]);
                *f.modes.entry(mode.name().to_string()).or_insert(0) += 1;
                good[c.folder].push((c.rel, print));
            }
            Err(reason) => f.unreadable.push(Skip {
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
    use crate::hash::tests::picture;

    fn blocks(seed: u32) -> image::RgbImage {
        let mut s = seed.wrapping_mul(2654435761) | 1;
        let cells: Vec<[u8; 3]> = (0..16)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                [s as u8, (s >> 8) as u8, (s >> 16) as u8]
            })
            .collect();
        image::RgbImage::from_fn(48, 48, |x, y| {
            image::Rgb(cells[((y / 12) * 4 + x / 12) as usize])
        })
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
        image::DynamicImage::ImageRgb8(picture(48, 48, 1))
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
