//! Finding duplicates: exact (same decoded pixels) and near (perceptual hashes within a Hamming
//! distance), inside one set of images or between two sets (train/test leaks, domain A/B), and
//! grouping them with union-find so that a group can be kept whole on one side of a split.
//!
//! The near search compares every pair of distinct pictures with one XOR and a popcount, in
//! parallel: about a billion comparisons a second on a few cores, so some 50,000 images per
//! set take a second or two. Pixel-identical copies are collapsed first, so a folder of a
//! thousand identical frames costs nothing and reports one group, not half a million pairs.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::Serialize;

use crate::hash::{ContentHash, PHash};

/// What is compared about an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    /// Hash of the decoded pixels: equal means pixel-identical.
    pub content: ContentHash,
    /// Perceptual hash: a small distance means the pictures look alike.
    pub phash: PHash,
}

/// Two images that look alike: indices into the set(s) compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pair {
    /// Index of the first image (in the first set, for comparisons between two sets).
    pub a: usize,
    /// Index of the second image (in the second set, for comparisons between two sets).
    pub b: usize,
    /// Hamming distance of the perceptual hashes (0 for exact copies).
    pub distance: u32,
    /// True when the two are pixel-identical.
    pub exact: bool,
}

/// Duplicates inside one set of images.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Similarity {
    /// Groups (two or more members, sorted indices, ordered by first member) of pixel-identical images.
    pub exact_groups: Vec<Vec<usize>>,
    /// Pairs of images that are not identical but whose perceptual hashes are within the threshold.
    /// Only one member of each exact group (its first) takes part, so copies do not multiply pairs.
    pub near_pairs: Vec<Pair>,
}

impl Similarity {
    /// Every pair that links two images: each exact copy to its group's first member, and the near pairs.
    pub fn links(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.exact_groups
            .iter()
            .flat_map(|g| g[1..].iter().map(move |&m| (g[0], m)))
            .chain(self.near_pairs.iter().map(|p| (p.a, p.b)))
    }
}

/// Find exact groups and near pairs within one set. `threshold` is the largest Hamming distance
/// counted as "near" (0 finds exact copies only, as far as the hash can tell).
pub fn find_similar(prints: &[Fingerprint], threshold: u32) -> Similarity {
    let mut by_content: HashMap<ContentHash, Vec<usize>> = HashMap::new();
    for (i, f) in prints.iter().enumerate() {
        by_content.entry(f.content).or_default().push(i);
    }
    let mut exact_groups: Vec<Vec<usize>> = by_content
        .values()
        .filter(|g| g.len() > 1)
        .cloned()
        .collect();
    exact_groups.sort();
    // One representative per distinct content.
    let mut reps: Vec<usize> = by_content.values().map(|g| g[0]).collect();
    reps.sort_unstable();
    let hashes: Vec<u64> = reps.iter().map(|&i| prints[i].phash.0).collect();
    let mut near_pairs: Vec<Pair> = (0..reps.len())
        .into_par_iter()
        .flat_map_iter(|i| {
            let hi = hashes[i];
            let (reps, hashes) = (&reps, &hashes);
            (i + 1..hashes.len()).filter_map(move |j| {
                let d = (hi ^ hashes[j]).count_ones();
                (d <= threshold).then_some(Pair {
                    a: reps[i],
                    b: reps[j],
                    distance: d,
                    exact: false,
                })
            })
        })
        .collect();
    near_pairs.sort_by_key(|p| (p.a, p.b));
    Similarity {
        exact_groups,
        near_pairs,
    }
}

/// Every pair (one image from `left`, one from `right`) that is identical or within `threshold`.
pub fn find_between(left: &[Fingerprint], right: &[Fingerprint], threshold: u32) -> Vec<Pair> {
    let mut pairs: Vec<Pair> = left
        .par_iter()
        .enumerate()
        .flat_map_iter(|(a, l)| {
            right.iter().enumerate().filter_map(move |(b, r)| {
                let exact = l.content == r.content;
                let distance = if exact { 0 } else { l.phash.distance(r.phash) };
                (exact || distance <= threshold).then_some(Pair {
                    a,
                    b,
                    distance,
                    exact,
                })
            })
        })
        .collect();
    pairs.sort_by_key(|p| (p.a, p.b));
    pairs
}

/// Disjoint sets over `0..n` (union by size, path halving).
#[derive(Debug, Clone)]
pub struct UnionFind {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl UnionFind {
    /// `n` singletons.
    pub fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n).collect(),
            size: vec![1; n],
        }
    }

    /// The representative of `x`'s set.
    pub fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    /// Merge the sets of `a` and `b`; false when they were already one.
    pub fn union(&mut self, a: usize, b: usize) -> bool {
        let (mut ra, mut rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        if self.size[ra] < self.size[rb] {
            std::mem::swap(&mut ra, &mut rb);
        }
        self.parent[rb] = ra;
        self.size[ra] += self.size[rb];
        true
    }

    /// All sets, singletons included, each sorted, ordered by their smallest member.
    pub fn sets(&mut self) -> Vec<Vec<usize>> {
        let n = self.parent.len();
        let mut index: HashMap<usize, usize> = HashMap::new();
        let mut out: Vec<Vec<usize>> = Vec::new();
        for x in 0..n {
            let r = self.find(x);
            let k = *index.entry(r).or_insert_with(|| {
                out.push(Vec::new());
                out.len() - 1
            });
            out[k].push(x);
        }
        out
    }
}

/// Connected groups (two or more members) of the links, each sorted, ordered by smallest member.
pub fn groups(n: usize, links: impl IntoIterator<Item = (usize, usize)>) -> Vec<Vec<usize>> {
    let mut uf = UnionFind::new(n);
    for (a, b) in links {
        uf.union(a, b);
    }
    uf.sets().into_iter().filter(|g| g.len() > 1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(content: u8, phash: u64) -> Fingerprint {
        Fingerprint {
            content: ContentHash([content; 32]),
            phash: PHash(phash),
        }
    }

    #[test]
    fn exact_copies_form_one_group_and_no_pairs() {
        let prints = vec![
            fp(1, 0),
            fp(2, u64::MAX),
            fp(1, 0),
            fp(1, 0),
            fp(3, 0xF0F0_0000_0000_0000),
        ];
        let s = find_similar(&prints, 0);
        assert_eq!(s.exact_groups, vec![vec![0, 2, 3]]);
        assert!(s.near_pairs.is_empty(), "{:?}", s.near_pairs);
        assert_eq!(groups(prints.len(), s.links()), vec![vec![0, 2, 3]]);
    }

    #[test]
    fn near_pairs_respect_the_threshold() {
        let prints = vec![
            fp(1, 0),
            fp(2, 0b111),
            fp(3, 0b1111_1111),
            fp(4, 0b1_1111_1111),
        ];
        let s = find_similar(&prints, 3);
        assert_eq!(
            s.near_pairs
                .iter()
                .map(|p| (p.a, p.b, p.distance))
                .collect::<Vec<_>>(),
            vec![(0, 1, 3), (2, 3, 1)]
        );
        let s = find_similar(&prints, 5);
        assert_eq!(
            s.near_pairs.iter().map(|p| (p.a, p.b)).collect::<Vec<_>>(),
            vec![(0, 1), (1, 2), (2, 3)]
        );
        // Transitive grouping: all four chain together.
        assert_eq!(groups(4, s.links()), vec![vec![0, 1, 2, 3]]);
        assert!(find_similar(&prints, 0).near_pairs.is_empty());
    }

    #[test]
    fn between_sets_finds_exact_and_near_leaks() {
        let train = vec![fp(1, 0), fp(2, u64::MAX)];
        let test = vec![fp(9, u64::MAX ^ 1), fp(1, 0), fp(8, 0xFFFF_FFFF)];
        let pairs = find_between(&train, &test, 2);
        assert_eq!(
            pairs,
            vec![
                Pair {
                    a: 0,
                    b: 1,
                    distance: 0,
                    exact: true
                },
                Pair {
                    a: 1,
                    b: 0,
                    distance: 1,
                    exact: false
                }
            ]
        );
    }

    #[test]
    fn union_find_merges_and_lists_sets() {
        let mut uf = UnionFind::new(6);
        assert!(uf.union(0, 4));
        assert!(uf.union(4, 5));
        assert!(!uf.union(0, 5));
        assert!(uf.union(2, 3));
        assert_eq!(uf.sets(), vec![vec![0, 4, 5], vec![1], vec![2, 3]]);
        assert_eq!(uf.find(5), uf.find(0));
    }
}
