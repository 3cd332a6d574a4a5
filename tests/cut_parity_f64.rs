//! The CUT/FastCUT two-iteration parity test with burn's CPU backend computing in float64 (its
//! own test binary: a device's float type is set once per process, before any tensor).
//!
//! The fixtures hold the exact result (PyTorch in float64, `scripts/cut_fixtures.py`); in float32
//! neither PyTorch nor we can meet the CycleGAN weight tolerance there (`tests/cut_parity.rs`).
//! In float64 our implementation must: every loss within 1e-6, 99.5% of weights within 2e-5 and
//! all within 5e-4 of PyTorch's.

mod common;

use burn::prelude::*;
use burn::tensor::FloatDType;
use common::cut_fixture::iterations_match_pytorch;

#[test]
fn cut_and_fastcut_in_float64_match_the_exact_result() {
    let mut device = Device::flex();
    device
        .configure(FloatDType::F64)
        .expect("float64 set before any tensor");
    let device = device.autodiff();
    for mode in ["cut", "fastcut"] {
        iterations_match_pytorch(mode, 2, &device, true);
    }
}
