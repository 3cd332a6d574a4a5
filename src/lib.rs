//! cyclegan: unpaired image-to-image translation (Zhu et al. 2017), from datasets to videos.
//!
//! The pipeline, one module each:
//! - data preparation and the training loader: the `cyclegan-data` crate;
//! - [`model`]: the ResNet generator and the 70x70 PatchGAN, and their weights on disk;
//! - [`train`]: one CycleGAN iteration, the schedule, checkpoints and the training loop;
//! - [`translate`]: applying a trained generator to images, folders and videos;
//! - video I/O, optical flow and flicker metrics: the `cyclegan-video` crate;
//! - [`eval`]: FID and KID with the standard FID Inception-v3;
//! - [`report`]: the run page and translation galleries (self-contained HTML);
//! - [`cli`]: the `cyclegan` command line, a thin layer over the above.

pub mod cli;
pub mod demo;
pub mod eval;
pub mod model;
pub mod report;
pub mod tensor_image;
pub mod train;
pub mod translate;
