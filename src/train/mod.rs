//! Training: the loop, the divergence guard (and its rollback), the loss log and plots, sample
//! grids and the learning-rate schedule. Starting or resuming a run is [`crate::run`]'s job; one
//! iteration is the model family's ([`crate::family`]).

pub mod fault;
pub mod guard;
pub mod log;
pub mod plots;
pub mod samples;
pub mod schedule;
pub mod trainer;

pub use trainer::{Outcome, RunOptions, Summary, train};
