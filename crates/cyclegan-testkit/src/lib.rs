//! Test helpers shared by the cyclegan crates (a dev-dependency only, never published).
//!
//! - [`picture`] / [`picture_moved`]: the one picture generator: deterministic, seeded, any size;
//!   distinct seeds give pictures no duplicate finder confuses;
//! - [`encode`], [`write_pictures`]: a picture as file bytes, a folder of pictures;
//! - [`write_video`]: the one small-video maker (MP4, animated GIF, APNG, by extension), with
//!   the frame times you choose;
//! - [`pseudo_random`], [`largest_difference`]: seeded numbers and their comparison, for the
//!   kernel tests.
//!
//! Everything panics on failure: these are for tests.

mod numbers;
mod pictures;
mod videos;

pub use numbers::{largest_difference, pseudo_random};
pub use pictures::{encode, picture, picture_moved, write_pictures};
pub use videos::write_video;
