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
    /// An NVIDIA GPU through libtorch, so cuDNN's kernels (build with `--features tch` against
    /// a PyTorch install; see README.md).
    Tch,
}

impl DeviceArg {
    /// The device named `name` (`cpu`, `wgpu`, `vulkan`, `cuda`, `tch`), e.g. from the tests'
    /// `CYCLEGAN_TEST_DEVICE`.
    pub fn from_name(name: &str) -> anyhow::Result<Device> {
        use clap::ValueEnum;
        DeviceArg::from_str(name, true)
            .map_err(|_| {
                anyhow::anyhow!("unknown device `{name}`: use cpu, wgpu, vulkan, cuda or tch")
            })?
            .device()
    }

    /// The burn device, or an error saying which feature to build with.
    pub fn device(self) -> Result<Device> {
        if matches!(self, DeviceArg::Wgpu | DeviceArg::Vulkan | DeviceArg::Cuda) {
            without_kernel_fusion();
        }
        match self {
            DeviceArg::Cpu => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            DeviceArg::Wgpu => Ok(Device::wgpu(Default::default())),
            #[cfg(feature = "vulkan")]
            DeviceArg::Vulkan => Ok(Device::vulkan(Default::default())),
            #[cfg(feature = "cuda")]
            DeviceArg::Cuda => Ok(Device::cuda(0)),
            // Deprecated upstream, but cuDNN's kernels are what it offers (README.md, "GPU").
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            DeviceArg::Tch => {
                if !tch::Cuda::is_available() {
                    anyhow::bail!(
                        "--device tch: libtorch sees no CUDA GPU (no NVIDIA driver here, or a \
                         CPU-only PyTorch on LD_LIBRARY_PATH); use --device cpu, or run where \
                         `python3 -c 'import torch; print(torch.cuda.is_available())'` prints True"
                    );
                }
                Ok(Device::libtorch_cuda(0))
            }
            #[allow(unreachable_patterns)]
            other => anyhow::bail!(
                "--device {other:?} is not in this build; rebuild with `cargo build --release --features {}`",
                format!("{other:?}").to_lowercase()
            ),
        }
    }
}

/// Turn burn's kernel fusion off for the CubeCL backends (wgpu, Vulkan, CUDA), before their first
/// use in this process.
///
/// burn 0.22's fusion computes wrong values in a CycleGAN iteration: `(d - 1)^2` then `mean` over
/// a frozen discriminator's output, on an autodiff device, gives 1.469 where every single op
/// and the CPU give 1.531, so the parity test failed at the first or second iteration (on Mesa's
/// lavapipe and on an NVIDIA H200). With no fusion exploration the whole parity test passes
/// (BENCHMARKS.md, "GPU"). Each op then runs as its own kernel.
fn without_kernel_fusion() {
    use burn_std::config::RuntimeConfig;
    let Ok(config) =
        toml::from_str::<burn::BurnConfig>("[fusion.beam_search]\nmax_explorations = 0")
    else {
        return;
    };
    if !burn::BurnConfig::try_set(config)
        && burn::runtime_config().fusion().beam_search.max_explorations != Some(0)
    {
        eprintln!(
            "warning: burn's kernel fusion could not be turned off (its configuration was read \
             before the GPU device was opened); GPU results may be wrong"
        );
    }
}

/// A short name of the backend `device` runs on, for reports: `cpu`, `wgpu`, `vulkan`, `cuda`,
/// `libtorch`.
pub fn name(device: &Device) -> String {
    let debug = format!("{device:?}").to_lowercase();
    ["vulkan", "wgpu", "libtorch", "cuda", "flex"]
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
