//! cyclegan: unpaired image-to-image translation (Zhu et al. 2017), from datasets to videos.
//!
//! The pipeline, one module each:
//! - data preparation and the training loader: the `cyclegan-data` crate;
//! - [`model`]: the networks (ResNet generator, PatchGAN) and their weights on disk;
//! - [`family`]: model families (CycleGAN) behind one seam: one training step, what a
//!   checkpoint holds, the generators `translate` applies;
//! - [`config`]: a run's whole configuration, as plain data;
//! - [`checkpoint`]: checkpoint folders, written atomically and verified on load;
//! - [`run`]: starting or resuming a run, and what the command line may change;
//! - [`train`]: the loop, the divergence guard, logs, plots and samples;
//! - [`translate`]: applying a trained generator to images, folders and videos;
//! - video I/O, optical flow and flicker metrics: the `cyclegan-video` crate;
//! - [`bench`]: throughput, memory and per-op measurements behind `cyclegan bench`;
//! - [`eval`]: FID and KID with the standard FID Inception-v3;
//! - [`report`]: the run page and translation galleries (self-contained HTML);
//! - [`cli`]: the `cyclegan` command line, a thin layer over the above;
//! - [`cpu_threads`]: the thread pool a command's CPU work runs on.

pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod cpu_threads;
pub mod demo;
pub mod device;
pub mod eval;
pub mod family;
pub mod model;
pub mod report;
pub mod run;
pub mod tensor_image;
pub mod train;
pub mod translate;
