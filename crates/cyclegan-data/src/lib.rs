//! Datasets for cyclegan.
//!
//! - [`imageio`]: decode any supported image file to 8-bit RGB, with clear reasons when it fails;
//! - [`loader`]: the unpaired training loader (`trainA`/`trainB`, resize + random crop + flip,
//!   decoded on worker threads).

pub mod imageio;
pub mod loader;
