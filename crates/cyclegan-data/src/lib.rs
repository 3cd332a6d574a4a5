//! Datasets for cyclegan.
//!
//! - [`atomic`]: write a file atomically (temporary name, fsync, rename), for the whole project;
//! - [`imageio`]: decode any supported image file to 8-bit RGB, with clear reasons when it fails
//!   and partial (truncated) pictures told apart; list the images of a folder, recursively;
//! - [`loader`]: the unpaired training loader (`trainA`/`trainB`, resize + random crop + flip,
//!   decoded on worker threads).
//!
//! Building and auditing datasets (`cyclegan prepare`, `cyclegan doctor`):
//! - [`sources`]: walk image folders, image files and videos; sample video frames;
//! - [`bars`]: detect and crop letterbox/pillarbox bars;
//! - [`resize`]: bring pictures to the square size (stretch, centre-crop, pad);
//! - [`hash`]: exact content hash and 64-bit perceptual hash;
//! - [`dedup`]: exact and near duplicate search, union-find grouping;
//! - [`prepare`]: build `trainA/ trainB/ testA/ testB/` with a manifest and a report (one file
//!   per step in `prepare/`);
//! - [`doctor`]: audit an existing dataset (duplicates, leaks, unreadable and truncated files);
//! - [`report`]: the Markdown and terminal reports; [`progress`]: progress bars.

pub mod atomic;
pub mod imageio;
pub mod loader;

pub mod bars;
pub mod dedup;
pub mod doctor;
pub mod hash;
pub mod prepare;
pub mod progress;
pub mod report;
pub mod resize;
pub mod sources;
