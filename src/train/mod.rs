//! Training: the configuration, one CycleGAN iteration, the schedule, image pools, checkpoints
//! and the loop that ties them together.

pub mod checkpoint;
pub mod config;
pub mod cut;
pub mod cyclegan;
pub mod fault;
pub mod guard;
pub mod plots;
pub mod pool;
pub mod samples;
pub mod schedule;
pub mod trainer;

pub use config::{GanMode, TrainConfig};
pub use cyclegan::{CycleGan, Discriminators, Generators, Losses};
pub use trainer::{Outcome, RunOptions, Summary, train};
