//! Mixed precision: the float type the networks compute their convolutions in.
//!
//! As PyTorch's autocast does it: the weights stay float32 (the optimizer updates them there),
//! a network casts its input to the compute type, every convolution casts its weight to the
//! type of its input, instance norms compute in float32 (a mean and variance over a whole
//! feature map lose too much in 16 bits) and hand back the compute type, and the network's output
//! is float32 again, so losses are computed in float32. Casts are differentiable: gradients reach
//! the float32 weights through them.
//!
//! float16 has a small range (6e-5 to 65504): small gradients underflow to zero unless the loss
//! is scaled up before the backward pass ([`crate::family::loss_scale`]). bfloat16 has float32's
//! range and needs no scaling, but only 8 bits of mantissa.

use anyhow::{Result, bail};
use burn::nn::InstanceNorm;
use burn::prelude::*;
use burn::tensor::{DType, FloatDType};
use serde::{Deserialize, Serialize};

/// The float type of the networks' convolutions (`--precision`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// float32 everywhere: the reference's numbers.
    #[default]
    F32,
    /// float16 convolutions, with dynamic loss scaling in training.
    F16,
    /// bfloat16 convolutions: float32's range, less precision, no loss scaling.
    Bf16,
}

impl Precision {
    /// The name used on the command line and in `config.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }

    /// The float type convolutions run in.
    pub fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::F16 => FloatDType::F16,
            Precision::Bf16 => FloatDType::BF16,
        }
    }

    /// Whether training needs loss scaling to keep small gradients from underflowing.
    pub fn needs_loss_scaling(self) -> bool {
        self == Precision::F16
    }

    /// An error, naming the option, when `device` cannot compute in this type.
    pub fn check_device(self, device: &Device) -> Result<()> {
        if self != Precision::F32 && !device.supports_dtype(self.dtype()) {
            bail!(
                "--precision {}: this device cannot compute in {}; use --precision f32{}",
                self.name(),
                self.name(),
                if self == Precision::F16 {
                    " (or bf16, if the device has it)"
                } else {
                    " (or f16, if the device has it)"
                }
            );
        }
        Ok(())
    }

    /// A network's input, cast to the compute type (untouched in float32).
    pub(crate) fn enter(self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Precision::F32 => x,
            reduced => x.cast(reduced.dtype()),
        }
    }

    /// A network's output (or feature map) back in float32, for losses and images (untouched
    /// in float32).
    pub(crate) fn leave(self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Precision::F32 => x,
            _ => x.cast(FloatDType::F32),
        }
    }
}

/// `weight` in the float type of the activations `x` it applies to (untouched when they agree).
pub(crate) fn like<const D: usize>(weight: Tensor<D>, x: &Tensor<4>) -> Tensor<D> {
    if weight.dtype() == x.dtype() {
        weight
    } else {
        weight.cast(FloatDType::from(x.dtype()))
    }
}

/// Instance norm, computed in float32 when the activations are 16-bit, returned in their type.
pub(crate) fn instance_norm(norm: &InstanceNorm, x: Tensor<4>) -> Tensor<4> {
    match x.dtype() {
        dtype @ (DType::F16 | DType::BF16) => norm
            .forward(x.cast(FloatDType::F32))
            .cast(FloatDType::from(dtype)),
        _ => norm.forward(x),
    }
}
