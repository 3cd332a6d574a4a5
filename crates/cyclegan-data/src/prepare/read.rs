//! The parallel read step: every source file of both domains read at once (still images and
//! videos), each picture staged, and the results gathered per domain.

use std::path::Path;

use rayon::prelude::*;

use super::error::{PrepareError, io_err};
use super::options::{Domain, PrepareOptions};
use super::records::VideoSummary;
use super::staged::{ReadJob, ReadOut, StagedPicture, Stager};
use super::still::read_image;
use super::video::read_video;
use crate::sources::{Found, Skip, SourceKind};

/// Everything read from both domains' sources.
pub(super) struct ReadAll {
    /// Staged pictures, domain A then domain B.
    pub pictures: [Vec<StagedPicture>; 2],
    /// Source files found per domain (images and videos).
    pub files: [usize; 2],
    /// Inputs that could not be used, with the reason (both domains).
    pub skipped: Vec<Skip>,
    /// Non-media files found in the source folders.
    pub ignored: Vec<Skip>,
    /// Pictures left out for their colour mode, per domain.
    pub dropped_non_rgb: [Vec<Skip>; 2],
    /// One summary per video.
    pub videos: Vec<VideoSummary>,
}

/// Read every file of `found` (one [`Found`] per domain) in parallel, staging the pictures in
/// `staging/items/`.
pub(super) fn read_all(
    opts: &PrepareOptions,
    staging: &Path,
    found: [Found; 2],
) -> Result<ReadAll, PrepareError> {
    let items_dir = staging.join("items");
    std::fs::create_dir_all(&items_dir).map_err(io_err(&items_dir))?;
    let [found_a, found_b] = &found;
    let mut all = ReadAll {
        pictures: [Vec::new(), Vec::new()],
        files: [found_a.files.len(), found_b.files.len()],
        skipped: found_a
            .unsupported
            .iter()
            .chain(&found_b.unsupported)
            .cloned()
            .collect(),
        ignored: found_a
            .ignored
            .iter()
            .chain(&found_b.ignored)
            .cloned()
            .collect(),
        dropped_non_rgb: [Vec::new(), Vec::new()],
        videos: Vec::new(),
    };
    let jobs: Vec<ReadJob> = found_a
        .files
        .iter()
        .map(|f| (Domain::A, f))
        .chain(found_b.files.iter().map(|f| (Domain::B, f)))
        .enumerate()
        .map(|(id, (domain, file))| ReadJob { id, domain, file })
        .collect();

    let stager = Stager { opts, items_dir };
    let pb = crate::progress::bar(jobs.len() as u64, "reading", opts.progress);
    let outs: Vec<ReadOut> = jobs
        .par_iter()
        .map(|job| {
            let r = match job.file.kind {
                SourceKind::Image => read_image(&stager, job),
                SourceKind::Video => read_video(&stager, job),
            };
            pb.inc(1);
            r
        })
        .collect::<Result<_, _>>()?;
    pb.finish_and_clear();

    for (job, o) in jobs.iter().zip(outs) {
        all.pictures[job.domain.index()].extend(o.pictures);
        all.dropped_non_rgb[job.domain.index()].extend(o.dropped_non_rgb);
        all.skipped.extend(o.skipped);
        all.videos.extend(o.video);
    }
    Ok(all)
}
