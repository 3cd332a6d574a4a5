//! Duplicates and the train/test split of one domain: group exact and near duplicates, keep the
//! largest of each group, split by whole groups (and whole videos with `split_by_source`) so no
//! look-alike straddles the split, and check it. Also the pictures found in both domains.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rand::SeedableRng;
use rand::seq::SliceRandom;

use super::options::{Domain, PrepareOptions};
use super::records::{CrossPair, DomainReport, DuplicateGroup, DuplicateMember};
use super::staged::StagedPicture;
use crate::dedup::{self, Fingerprint, UnionFind};
use crate::report::SizeHistogram;
use crate::sources::Skip;

/// Which side of the split a picture lands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Split {
    Train,
    Test,
}

impl Split {
    /// `train` or `test`: the manifest's value and the start of the layout folder's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// Where one kept picture goes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Placement {
    /// Index of the picture in its domain's list.
    pub picture: usize,
    pub split: Split,
    /// Its duplicate group (index into the domain report's `duplicate_groups`), if any.
    pub group: Option<usize>,
}

/// One domain after dedup and split.
pub(super) struct DomainSplit {
    pub report: DomainReport,
    /// One entry per kept picture, in picture order.
    pub placements: Vec<Placement>,
}

/// Group, drop duplicates and split one domain (`files`: how many source files it had).
/// Dropped duplicates' staged files are removed.
pub(super) fn dedup_and_split(
    o: &PrepareOptions,
    d: Domain,
    pictures: &[StagedPicture],
    files: usize,
    dropped_non_rgb: Vec<Skip>,
) -> DomainSplit {
    let n = pictures.len();
    let prints: Vec<Fingerprint> = pictures.iter().map(|it| it.print).collect();
    let sim = dedup::find_similar(&prints, o.near_threshold);
    let dup_groups = dedup::groups(n, sim.links());
    let mut alive = vec![true; n];
    let mut group_of: Vec<Option<usize>> = vec![None; n];
    let mut duplicate_groups = Vec::new();
    let mut duplicates_dropped = 0;
    for (gi, g) in dup_groups.iter().enumerate() {
        // Keep the largest original (the best source for resampling); ties go to the first found.
        let keep = *g
            .iter()
            .max_by_key(|&&i| (pictures[i].area(), std::cmp::Reverse(i)))
            .expect("groups are not empty");
        let mut others = Vec::new();
        for &i in g {
            group_of[i] = Some(gi);
            if i == keep {
                continue;
            }
            let exact = pictures[i].print.content == pictures[keep].print.content;
            let drop = !o.keep_duplicates;
            if drop {
                alive[i] = false;
                duplicates_dropped += 1;
                let _ = std::fs::remove_file(&pictures[i].staged); // our own staged copy
            }
            others.push(DuplicateMember {
                source: pictures[i].describe(),
                exact,
                distance: pictures[i].print.phash.distance(pictures[keep].print.phash),
                dropped: drop,
            });
        }
        duplicate_groups.push(DuplicateGroup {
            kept: pictures[keep].describe(),
            others,
        });
    }

    // Split units: look-alikes together, and whole videos with split_by_source.
    let mut uf = UnionFind::new(n);
    for (a, b) in sim.links() {
        uf.union(a, b);
    }
    if o.split_by_source {
        let mut first_of: HashMap<&Path, usize> = HashMap::new();
        for (i, pic) in pictures.iter().enumerate() {
            let f = *first_of.entry(pic.source.as_path()).or_insert(i);
            uf.union(f, i);
        }
    }
    let mut units: Vec<Vec<usize>> = uf
        .sets()
        .into_iter()
        .map(|s| s.into_iter().filter(|&i| alive[i]).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    let kept_n: usize = units.iter().map(Vec::len).sum();
    let target = (kept_n as f64 * o.test_fraction).round() as usize;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
        o.seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(d.index() as u64 + 1)),
    );
    units.shuffle(&mut rng);
    let mut test_n = 0;
    let mut places = Vec::with_capacity(kept_n);
    let mut in_test = vec![false; n];
    for u in &units {
        let to_test = test_n + u.len() <= target;
        if to_test {
            test_n += u.len();
        }
        for &i in u {
            in_test[i] = to_test;
            places.push(Placement {
                picture: i,
                split: if to_test { Split::Test } else { Split::Train },
                group: group_of[i],
            });
        }
    }
    places.sort_by_key(|p| p.picture);

    // Check: nothing in test looks like anything in train.
    let train: Vec<Fingerprint> = places
        .iter()
        .filter(|p| !in_test[p.picture])
        .map(|p| prints[p.picture])
        .collect();
    let test: Vec<Fingerprint> = places
        .iter()
        .filter(|p| in_test[p.picture])
        .map(|p| prints[p.picture])
        .collect();
    let leaks_after_split = dedup::find_between(&train, &test, o.near_threshold).len();

    let mut converted = BTreeMap::new();
    let mut sizes = SizeHistogram::default();
    for p in &places {
        let pic = &pictures[p.picture];
        if !pic.mode.is_plain_rgb() {
            *converted.entry(pic.mode.name().to_string()).or_insert(0) += 1;
        }
    }
    for pic in pictures {
        sizes.add(pic.original_size[0], pic.original_size[1]);
    }
    let report = DomainReport {
        domain: d,
        files,
        pictures: n,
        train: kept_n - test_n,
        test: test_n,
        converted,
        dropped_non_rgb,
        duplicate_groups,
        duplicates_dropped,
        bars_cropped: places
            .iter()
            .filter(|p| pictures[p.picture].crop.is_some())
            .count(),
        upscaled: places
            .iter()
            .filter(|p| pictures[p.picture].upscaled)
            .count(),
        original_sizes: sizes,
        leaks_after_split,
    };
    DomainSplit {
        report,
        placements: places,
    }
}

/// Kept pictures of domain A that look like kept pictures of domain B.
pub(super) fn cross_domain(
    pictures: &[Vec<StagedPicture>; 2],
    splits: &[DomainSplit],
    threshold: u32,
) -> Vec<CrossPair> {
    let kept = |d: Domain| -> Vec<usize> {
        splits[d.index()]
            .placements
            .iter()
            .map(|p| p.picture)
            .collect()
    };
    let (ka, kb) = (kept(Domain::A), kept(Domain::B));
    let prints = |d: Domain, kept: &[usize]| -> Vec<Fingerprint> {
        kept.iter().map(|&i| pictures[d.index()][i].print).collect()
    };
    let (pa, pb) = (prints(Domain::A, &ka), prints(Domain::B, &kb));
    dedup::find_between(&pa, &pb, threshold)
        .into_iter()
        .map(|p| CrossPair {
            a: pictures[0][ka[p.a]].describe(),
            b: pictures[1][kb[p.b]].describe(),
            distance: p.distance,
            exact: p.exact,
        })
        .collect()
}
