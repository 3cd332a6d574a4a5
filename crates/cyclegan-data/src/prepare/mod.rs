//! `prepare`: build a clean unpaired dataset (`trainA/ trainB/ testA/ testB/`) from image
//! folders, image files and videos.
//!
//! The steps, in order, each in its own file:
//! 1. [`options`]: check what the user asked for;
//! 2. `read` (the parallel driver), `still` (images) and `video` (frames), over `staged` (the
//!    picture type and the shared crop-resize-hash-write step): find the files of each domain's sources
//!    ([`crate::sources`]) and, in parallel, read each one: decode an image (colour converted or
//!    dropped, bars cropped if asked), or sample a video's frames (by time or count, skipping
//!    unchanged frames, one bar crop for the whole clip); bring each picture to the square size,
//!    hash it and write it to a staging folder inside the output folder;
//! 3. `split`: per domain, group exact and near duplicates (union-find), keep the largest of
//!    each group (unless `keep_duplicates`), and split train/test by whole groups (and whole
//!    videos with `split_by_source`) so no look-alike straddles the split; check it;
//! 4. `install`: name the pictures, write `manifest.jsonl` and `report.md`, then move
//!    everything into place by renaming;
//! 5. `run`: [`prepare`], which ties the steps together.
//!
//! What `prepare` returns and writes (the manifest line, the report) is in [`records`]; why it
//! stops, in [`error`].
//!
//! Nothing the user had is deleted: an existing layout is only replaced with `overwrite`, and
//! then moved aside into `DATA_DIR/.replaced-<time>/`.

pub mod error;
mod install;
pub mod options;
mod read;
pub mod records;
mod run;
mod split;
mod staged;
mod still;
mod video;

#[cfg(test)]
mod tests;

pub use error::PrepareError;
pub use options::{CropBars, Domain, NonRgb, OutputFormat, PrepareOptions};
pub use records::{
    CrossPair, DomainReport, DuplicateGroup, DuplicateMember, ManifestEntry, PrepareReport,
    VideoSummary,
};
pub use run::prepare;
