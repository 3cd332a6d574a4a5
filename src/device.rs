//! Which backend runs the networks (`--device`), by name.

use anyhow::Result;
use burn::prelude::Device;

/// Compute device choices; GPU ones need the matching cargo feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    /// The CPU (burn's Flex backend, all cores).
    Cpu,
    /// A GPU through wgpu (build with `--features wgpu`).
    Wgpu,
    /// A GPU through Vulkan (build with `--features vulkan`).
    Vulkan,
    /// An NVIDIA GPU through CUDA (build with `--features cuda`).
    Cuda,
}

impl DeviceArg {
    /// The device named `name` (`cpu`, `wgpu`, `vulkan`, `cuda`), e.g. from the tests'
    /// `CYCLEGAN_TEST_DEVICE`.
    pub fn from_name(name: &str) -> anyhow::Result<Device> {
        use clap::ValueEnum;
        DeviceArg::from_str(name, true)
            .map_err(|_| anyhow::anyhow!("unknown device `{name}`: use cpu, wgpu, vulkan or cuda"))?
            .device()
    }

    /// The burn device, or an error saying which feature to build with.
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceArg::Cpu => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            DeviceArg::Wgpu => Ok(Device::wgpu(Default::default())),
            #[cfg(feature = "vulkan")]
            DeviceArg::Vulkan => Ok(Device::vulkan(Default::default())),
            #[cfg(feature = "cuda")]
            DeviceArg::Cuda => Ok(Device::cuda(0)),
            #[allow(unreachable_patterns)]
            other => anyhow::bail!(
                "--device {other:?} is not in this build; rebuild with `cargo build --release --features {}`",
                format!("{other:?}").to_lowercase()
            ),
        }
    }
}

/// A short name of the backend `device` runs on, for reports: `cpu`, `wgpu`, `vulkan`, `cuda`.
pub fn name(device: &Device) -> String {
    let debug = format!("{device:?}").to_lowercase();
    ["vulkan", "wgpu", "cuda", "flex"]
        .iter()
        .find(|k| debug.contains(*k))
        .map_or(debug.clone(), |k| {
            if *k == "flex" {
                "cpu".to_string()
            } else {
                k.to_string()
            }
        })
}
