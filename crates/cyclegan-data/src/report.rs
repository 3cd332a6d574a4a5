//! Human-readable reports of `prepare` and `doctor`: `report.md` and the terminal summaries,
//! and the size histogram they share.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::doctor::{DoctorReport, PairReport};
use crate::prepare::PrepareReport;

/// How many pictures have each size, by exact size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SizeHistogram {
    /// Count per `"WxH"`.
    pub counts: BTreeMap<String, usize>,
    /// Count per band of the shorter side (`"<128"`, `"128-255"`, ..., `">=2048"`).
    pub shorter_side: BTreeMap<String, usize>,
}

impl SizeHistogram {
    /// Count one picture.
    pub fn add(&mut self, w: u32, h: u32) {
        *self.counts.entry(format!("{w}x{h}")).or_insert(0) += 1;
        let s = w.min(h);
        let band = match s {
            0..128 => "<128",
            128..256 => "128-255",
            256..512 => "256-511",
            512..1024 => "512-1023",
            1024..2048 => "1024-2047",
            _ => ">=2048",
        };
        *self.shorter_side.entry(band.to_string()).or_insert(0) += 1;
    }

    /// Number of pictures counted.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// One line: the most common sizes first (at most `max`), then how many others.
    pub fn summary(&self, max: usize) -> String {
        if self.counts.is_empty() {
            return "none".into();
        }
        let mut v: Vec<(&String, &usize)> = self.counts.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut s: Vec<String> = v
            .iter()
            .take(max)
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect();
        if v.len() > max {
            let rest: usize = v[max..].iter().map(|x| *x.1).sum();
            s.push(format!("{} other sizes ×{rest}", v.len() - max));
        }
        s.join(", ")
    }

    /// Markdown table rows (`| band | count |`) of the shorter-side histogram, in size order.
    fn band_rows(&self) -> String {
        let order = [
            "<128",
            "128-255",
            "256-511",
            "512-1023",
            "1024-2047",
            ">=2048",
        ];
        let mut s = String::new();
        for b in order {
            if let Some(n) = self.shorter_side.get(b) {
                let _ = writeln!(s, "| {b} | {n} |");
            }
        }
        s
    }
}

fn counted(m: &BTreeMap<String, usize>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} ×{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `report.md` of a `prepare` run.
pub fn prepare_markdown(r: &PrepareReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Dataset report\n");
    let _ = writeln!(
        s,
        "Built by `cyclegan prepare` in {:.1} s into `{}`.\n",
        r.elapsed_s,
        r.out.display()
    );
    if let Some(old) = &r.replaced {
        let _ = writeln!(
            s,
            "The previous dataset files were moved to `{}` (nothing was deleted).\n",
            old.display()
        );
    }
    let _ = writeln!(
        s,
        "## Counts\n\n| domain | files | pictures | train | test | duplicates dropped | converted | bars cropped | enlarged |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for d in &r.domains {
        let conv: usize = d.converted.values().sum();
        let _ = writeln!(
            s,
            "| {:?} | {} | {} | {} | {} | {} | {} | {} | {} |",
            d.domain,
            d.files,
            d.pictures,
            d.train,
            d.test,
            d.duplicates_dropped,
            conv,
            d.bars_cropped,
            d.upscaled
        );
    }
    let _ = writeln!(s, "\n## Settings\n");
    for (k, v) in &r.settings {
        let _ = writeln!(s, "- `{k}` {v}");
    }
    let _ = writeln!(s, "\n## Skipped inputs ({})\n", r.skipped.len());
    if r.skipped.is_empty() {
        let _ = writeln!(s, "None.");
    }
    for k in &r.skipped {
        let _ = writeln!(s, "- `{}`: {}", k.path.display(), k.reason);
    }
    for d in &r.domains {
        let _ = writeln!(s, "\n## Domain {:?}\n", d.domain);
        let _ = writeln!(s, "- converted to 8-bit RGB: {}", counted(&d.converted));
        let _ = writeln!(
            s,
            "- train/test pairs within the near threshold after the split: {}",
            d.leaks_after_split
        );
        if !d.dropped_non_rgb.is_empty() {
            let _ = writeln!(
                s,
                "- dropped for their colour mode ({}):",
                d.dropped_non_rgb.len()
            );
            for k in &d.dropped_non_rgb {
                let _ = writeln!(s, "  - `{}`: {}", k.path.display(), k.reason);
            }
        }
        let _ = writeln!(
            s,
            "\nSource sizes (shorter side): most common {}\n",
            d.original_sizes.summary(5)
        );
        let _ = writeln!(
            s,
            "| shorter side | pictures |\n|---|---|\n{}",
            d.original_sizes.band_rows()
        );
        let _ = writeln!(s, "### Duplicate groups ({})\n", d.duplicate_groups.len());
        if d.duplicate_groups.is_empty() {
            let _ = writeln!(s, "None.");
        }
        for (i, g) in d.duplicate_groups.iter().enumerate() {
            let _ = writeln!(s, "{}. kept `{}`", i, g.kept);
            for m in &g.others {
                let how = if m.exact {
                    "exact copy".to_string()
                } else {
                    format!("near, {} bits", m.distance)
                };
                let fate = if m.dropped { "dropped" } else { "kept" };
                let _ = writeln!(s, "   - {fate}: `{}` ({how})", m.source);
            }
        }
    }
    if !r.videos.is_empty() {
        let _ = writeln!(s, "\n## Videos\n");
        let _ = writeln!(
            s,
            "| video | domain | size | decoded | sampled | unchanged (skipped) | kept | bars crop (x,y,w,h) | decided from |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
        for v in &r.videos {
            let crop = v
                .crop
                .map(|c| format!("{},{},{},{}", c.x, c.y, c.width, c.height))
                .unwrap_or_else(|| "none".into());
            let _ = writeln!(
                s,
                "| `{}` | {:?} | {}x{} | {} | {} | {} | {} | {} | {} frames |",
                v.path.display(),
                v.domain,
                v.size[0],
                v.size[1],
                v.frames_decoded,
                v.frames_sampled,
                v.frames_unchanged,
                v.frames_kept,
                crop,
                v.crop_decided_from
            );
        }
    }
    let _ = writeln!(
        s,
        "\n## Pictures in both domains ({})\n",
        r.cross_domain.len()
    );
    if r.cross_domain.is_empty() {
        let _ = writeln!(s, "None.");
    }
    for p in &r.cross_domain {
        let how = if p.exact {
            "exact copy".to_string()
        } else {
            format!("near, {} bits", p.distance)
        };
        let _ = writeln!(s, "- A `{}` ~ B `{}` ({how})", p.a, p.b);
    }
    if !r.ignored.is_empty() {
        let _ = writeln!(
            s,
            "\n## Other files in the sources, not read ({})\n",
            r.ignored.len()
        );
        for k in &r.ignored {
            let _ = writeln!(s, "- `{}`: {}", k.path.display(), k.reason);
        }
    }
    s
}

/// The terminal summary of a `prepare` run.
pub fn prepare_summary(r: &PrepareReport) -> String {
    let mut s = String::new();
    for d in &r.domains {
        let conv: usize = d.converted.values().sum();
        let _ = writeln!(
            s,
            "domain {:?}: {} train + {} test  ({} pictures from {} files; {} duplicates dropped in {} groups; {} converted; {} dropped for colour mode; {} bars cropped)",
            d.domain,
            d.train,
            d.test,
            d.pictures,
            d.files,
            d.duplicates_dropped,
            d.duplicate_groups.len(),
            conv,
            d.dropped_non_rgb.len(),
            d.bars_cropped
        );
    }
    for v in &r.videos {
        let crop = v
            .crop
            .map(|c| format!("crop {}x{} at ({},{})", c.width, c.height, c.x, c.y))
            .unwrap_or_else(|| "no bars".into());
        let _ = writeln!(
            s,
            "video {}: {} frames decoded, {} sampled, {} unchanged skipped, {} kept; {crop} (from {} frames)",
            v.path.display(),
            v.frames_decoded,
            v.frames_sampled,
            v.frames_unchanged,
            v.frames_kept,
            v.crop_decided_from
        );
    }
    if !r.skipped.is_empty() {
        let _ = writeln!(s, "skipped {} input(s):", r.skipped.len());
        for k in &r.skipped {
            let _ = writeln!(s, "  {}: {}", k.path.display(), k.reason);
        }
    }
    if !r.cross_domain.is_empty() {
        let _ = writeln!(
            s,
            "{} picture(s) appear in both domains (see report.md):",
            r.cross_domain.len()
        );
        for p in r.cross_domain.iter().take(10) {
            let _ = writeln!(s, "  A {} ~ B {} (distance {})", p.a, p.b, p.distance);
        }
    }
    if let Some(old) = &r.replaced {
        let _ = writeln!(s, "previous dataset files moved to {}", old.display());
    }
    if r.installed {
        let _ = writeln!(
            s,
            "wrote {} (manifest.jsonl, report.md) in {:.1} s",
            r.out.display(),
            r.elapsed_s
        );
    } else {
        let _ = writeln!(
            s,
            "nothing written: --strict and {} input(s) skipped",
            r.skipped.len()
        );
    }
    s
}

fn pair_line(p: &PairReport) -> String {
    if p.exact {
        format!("{}  ==  {}  (exact copy)", p.a, p.b)
    } else {
        format!("{}  ~  {}  (distance {})", p.a, p.b, p.distance)
    }
}

/// The readable report of a `doctor` run (the terminal output; Markdown-friendly).
pub fn doctor_text(r: &DoctorReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "dataset {} (near-duplicate threshold {} bits, {:.1} s)\n",
        r.dir.display(),
        r.near_threshold,
        r.elapsed_s
    );
    let _ = writeln!(
        s,
        "{:<7} {:>7} {:>9} {:>10} {:>11} {:>10}  sizes / modes",
        "folder", "images", "readable", "unreadable", "exact dups", "near pairs"
    );
    for f in &r.folders {
        if !f.present {
            let _ = writeln!(s, "{:<7} missing", f.name);
            continue;
        }
        let dups: usize = f.exact_groups.iter().map(|g| g.len() - 1).sum();
        let _ = writeln!(
            s,
            "{:<7} {:>7} {:>9} {:>10} {:>11} {:>10}  {} / {}",
            f.name,
            f.images,
            f.readable,
            f.unreadable.len(),
            dups,
            f.near_pairs.len(),
            f.sizes.summary(3),
            counted(&f.modes)
        );
    }
    for f in &r.folders {
        if !f.other_files.is_empty() {
            let _ = writeln!(
                s,
                "\n{}: {} file(s) that are not images (ignored by the trainer)",
                f.name,
                f.other_files.len()
            );
            for o in f.other_files.iter().take(10) {
                let _ = writeln!(s, "  {o}");
            }
        }
        if !f.unreadable.is_empty() {
            let _ = writeln!(s, "\n{}: unreadable files:", f.name);
            for k in &f.unreadable {
                let _ = writeln!(s, "  {}: {}", k.path.display(), k.reason);
            }
        }
        if !f.truncated.is_empty() {
            let _ = writeln!(
                s,
                "\n{}: truncated files (they end early, part of the picture is missing; copy them again):",
                f.name
            );
            for t in &f.truncated {
                let _ = writeln!(s, "  {t}");
            }
        }
        if !f.exact_groups.is_empty() {
            let _ = writeln!(s, "\n{}: exact duplicate groups:", f.name);
            for g in &f.exact_groups {
                let _ = writeln!(s, "  {}", g.join("  ==  "));
            }
        }
        if !f.near_pairs.is_empty() {
            let _ = writeln!(s, "\n{}: near-duplicate pairs:", f.name);
            for p in &f.near_pairs {
                let _ = writeln!(s, "  {}", pair_line(p));
            }
        }
    }
    let _ = writeln!(
        s,
        "\ntrain/test leaks (a test picture that duplicates a train picture): {}",
        r.leaks.len()
    );
    for p in &r.leaks {
        let _ = writeln!(s, "  {}", pair_line(p));
    }
    let _ = writeln!(s, "pictures in both domains: {}", r.cross_domain.len());
    for p in &r.cross_domain {
        let _ = writeln!(s, "  {}", pair_line(p));
    }
    let verdict = if r.has_problems() {
        format!(
            "PROBLEMS: {} leak(s), {} across domains, {} unreadable file(s) ({} truncated)",
            r.leaks.len(),
            r.cross_domain.len(),
            r.unreadable(),
            r.truncated()
        )
    } else {
        "OK: no leaks, no unreadable files".to_string()
    };
    let _ = writeln!(s, "\n{verdict}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_histogram_counts_and_summarises() {
        let mut h = SizeHistogram::default();
        for _ in 0..3 {
            h.add(256, 256);
        }
        h.add(1920, 1080);
        h.add(100, 4000);
        assert_eq!(h.total(), 5);
        assert_eq!(h.shorter_side.get("256-511"), Some(&3));
        assert_eq!(h.shorter_side.get("1024-2047"), Some(&1));
        assert_eq!(h.shorter_side.get("<128"), Some(&1));
        assert_eq!(h.summary(1), "256x256 ×3, 2 other sizes ×2");
        assert!(h.band_rows().starts_with("| <128 | 1 |"));
    }
}
