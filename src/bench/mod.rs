//! `cyclegan bench`'s measurements: training, inference and data-loading throughput, a
//! per-operation profile, and a per-layer comparison of the convolution kernels.
//!
//! - [`workloads`]: one timed workload in this process, giving a [`Report`];
//! - [`child`]: each workload in a fresh process, so its peak memory is its own;
//! - [`flop`]: the work of an iteration, from the networks' own layer lists;
//! - [`profile`]: each op type of an iteration timed alone; [`compare`]: the kernels per layer;
//! - [`timing`]: clocks, medians, peak memory.
//!
//! The command line (`cli::bench`) parses arguments and prints what these return.

pub mod child;
pub mod compare;
pub mod flop;
pub mod profile;
pub mod timing;
pub mod workloads;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::device::DeviceArg;
use crate::model::conv::{ConvPolicy, Tile};
use crate::model::precision::Precision;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Every workload below but `ops`, each in its own process.
    All,
    /// One CycleGAN iteration (2 G + 2 D, forward, backward, Adam), batch 1, 128 px, ResNet-6.
    Train128,
    /// One CycleGAN iteration at 256 px with ResNet-9 generators.
    Train256,
    /// One CUT iteration (G + D + PatchNCE heads, NCE identity), batch 1, 128 px, ResNet-6.
    Cut128,
    /// One FastCUT iteration (no identity pass), batch 1, 128 px, ResNet-6.
    Fastcut128,
    /// One CUT iteration at 256 px with a ResNet-9 generator.
    Cut256,
    /// One FastCUT iteration at 256 px with a ResNet-9 generator.
    Fastcut256,
    /// Generator inference (ResNet-9), one 256x256 image.
    Infer256,
    /// Generator inference (ResNet-9), one 854x480 frame (padded to 856x480).
    Infer480p,
    /// Generator inference (ResNet-9), one 1920x1080 frame (padded to 1920x1080).
    Infer1080p,
    /// Images per second decoded, resized 286, cropped 256 and flipped by the training loader.
    Data,
    /// A generated 854x480 clip translated end to end as `translate` does: MP4 decode, ResNet-9,
    /// H.264 encode (not in `all`: seconds per frame on a CPU).
    Video480p,
    /// The same with `--temporal on` (optical-flow smoothing).
    Video480pTemporal,
    /// A 1920x1080 clip end to end.
    Video1080p,
    /// A 1920x1080 clip end to end with `--temporal on`.
    Video1080pTemporal,
    /// Per-operation profile of a 128 px ResNet-6 iteration: each op type timed alone.
    Ops,
}

impl Workload {
    /// The workloads `All` runs, in order.
    pub const MEASURED: [Workload; 10] = [
        Workload::Train128,
        Workload::Train256,
        Workload::Cut128,
        Workload::Fastcut128,
        Workload::Cut256,
        Workload::Fastcut256,
        Workload::Infer256,
        Workload::Infer480p,
        Workload::Infer1080p,
        Workload::Data,
    ];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::All => "all",
            Workload::Train128 => "train128",
            Workload::Train256 => "train256",
            Workload::Cut128 => "cut128",
            Workload::Fastcut128 => "fastcut128",
            Workload::Cut256 => "cut256",
            Workload::Fastcut256 => "fastcut256",
            Workload::Infer256 => "infer256",
            Workload::Infer480p => "infer480p",
            Workload::Infer1080p => "infer1080p",
            Workload::Data => "data",
            Workload::Video480p => "video480p",
            Workload::Video480pTemporal => "video480p-temporal",
            Workload::Video1080p => "video1080p",
            Workload::Video1080pTemporal => "video1080p-temporal",
            Workload::Ops => "ops",
        }
    }
}

/// Which convolution kernels the networks use while measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ConvChoice {
    /// What the device gets by default ([`ConvPolicy::for_device`]).
    #[default]
    Auto,
    /// burn's own convolution for every layer.
    Burn,
    /// Gather + GEMM in training, burn's at inference; no Winograd.
    Gemm,
    /// Gather + GEMM, and Winograd F(4x4, 3x3) for the 3x3 stride-1 layers (the CPU default).
    Winograd,
    /// As `winograd` with the smaller F(2x2, 3x3) tiles.
    Winograd2,
}

impl ConvChoice {
    /// The policy to impose, `None` for the device's own.
    pub fn policy(self) -> Option<ConvPolicy> {
        match self {
            ConvChoice::Auto => None,
            ConvChoice::Burn => Some(ConvPolicy::Burn),
            ConvChoice::Gemm => Some(ConvPolicy::Gemm),
            ConvChoice::Winograd => Some(ConvPolicy::Winograd(Tile::Four)),
            ConvChoice::Winograd2 => Some(ConvPolicy::Winograd(Tile::Two)),
        }
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ConvChoice::Auto => "auto",
            ConvChoice::Burn => "burn",
            ConvChoice::Gemm => "gemm",
            ConvChoice::Winograd => "winograd",
            ConvChoice::Winograd2 => "winograd2",
        }
    }
}

/// How to measure.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Untimed iterations first.
    pub warmup: usize,
    /// Timed iterations (batches for `data`: 20x this many).
    pub iters: usize,
    /// Compute threads of the pool the workload runs on (reported; `cli::main` sizes the pool).
    pub threads: usize,
    /// Folder of images for `data`.
    pub data: PathBuf,
    /// Convolution kernels of the measured networks.
    pub conv: ConvChoice,
    /// Where the networks run.
    pub device: DeviceArg,
    /// Images per training batch (the training workloads), frames translated at once (video).
    pub batch: usize,
    /// Float type of the convolutions.
    pub precision: Precision,
}

/// One workload's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// [`Workload::name`].
    pub workload: String,
    /// Compute threads.
    pub threads: usize,
    /// Timed iterations.
    pub iters: usize,
    /// The device the networks ran on ([`crate::device::name`]).
    #[serde(default)]
    pub device: String,
    /// Images per training batch (1 for inference and data).
    #[serde(default = "one")]
    pub batch: usize,
    /// Float type of the convolutions ([`Precision::name`]).
    #[serde(default = "f32_name")]
    pub precision: String,
    /// Median seconds per iteration (per image for inference, per batch of 2 for data).
    pub median_s: f64,
    /// Fastest iteration, seconds.
    pub min_s: f64,
    /// Images per second (data loading only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images_per_s: Option<f64>,
    /// Floating-point operations per iteration (multiply and add counted apart), billions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gflop: Option<f64>,
    /// `gflop / median_s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gflop_per_s: Option<f64>,
    /// Of `median_s`, seconds per frame in the network (the video workloads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_s: Option<f64>,
    /// Of `median_s`, seconds per frame in temporal smoothing (the video workloads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoothing_s: Option<f64>,
    /// Peak resident memory of the process (VmHWM), MiB.
    pub peak_rss_mib: f64,
}

fn one() -> usize {
    1
}

fn f32_name() -> String {
    Precision::F32.name().into()
}
