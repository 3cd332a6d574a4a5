//! Tensors as plain buffers, for the CPU kernels written in plain Rust ([`super::winograd_cpu`],
//! [`super::direct_cpu`], the instance norm of [`crate::model::norm`]).

use burn::prelude::*;
use burn::tensor::DType;
use rayon::prelude::*;

/// Whether `x` lives on burn's CPU backend as float32, untracked by autodiff: where the
/// plain-Rust inference kernels apply.
pub(crate) fn is_flex_inference(x: &Tensor<4>) -> bool {
    let device = x.device();
    !device.is_autodiff()
        && x.dtype() == DType::F32
        && matches!(device.as_dispatch(), burn::backend::DispatchDevice::Flex(_))
}

/// Whether `x` is float32 on burn's CPU backend with autodiff (a training forward pass).
pub(crate) fn is_flex_training(x: &Tensor<4>) -> bool {
    let device = x.device();
    device.is_autodiff()
        && x.dtype() == DType::F32
        && matches!(
            device.without_autodiff().as_dispatch(),
            burn::backend::DispatchDevice::Flex(_)
        )
}

/// The tensor's values, row-major (moved out without a copy when nothing else holds them).
pub(crate) fn floats<const D: usize>(x: Tensor<D>) -> Vec<f32> {
    x.into_data()
        .try_into_vec::<f32>()
        .expect("the CPU kernels are only called on float32 tensors")
}

/// `len` zeros, written by all threads: `vec![0.0; len]` zeroes on one thread (glibc's heap
/// reuses freed memory, which the kernel does not zero), a serial pass over the buffer.
pub(crate) fn parallel_zeros(len: usize) -> Vec<f32> {
    let mut buffer = Vec::with_capacity(len);
    buffer
        .spare_capacity_mut()
        .par_chunks_mut(1 << 14)
        .for_each(|chunk| chunk.fill(std::mem::MaybeUninit::new(0.0)));
    // SAFETY: every element was written above.
    unsafe { buffer.set_len(len) };
    buffer
}

/// A raw pointer that tasks writing disjoint parts of one buffer may share.
#[derive(Clone, Copy)]
pub(super) struct SharedMut(*mut f32);
// SAFETY: only used to write disjoint regions, each by one task, while the owner waits.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The start of `buffer`'s allocation (its capacity, initialised or not).
    pub(super) fn new(buffer: &mut Vec<f32>) -> Self {
        SharedMut(buffer.as_mut_ptr())
    }

    /// The pointer (a method, so that closures capture the whole `Sync` wrapper).
    pub(super) fn ptr(self) -> *mut f32 {
        self.0
    }

    /// The pointer `at` elements on (inside the same buffer).
    pub(super) fn offset(self, at: usize) -> SharedMut {
        // SAFETY: callers stay inside the buffer's capacity.
        SharedMut(unsafe { self.0.add(at) })
    }

    /// # Safety
    /// `at..at + len` must be inside the buffer and written by no other task meanwhile.
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn slice(&self, at: usize, len: usize) -> &mut [f32] {
        unsafe { std::slice::from_raw_parts_mut(self.ptr().add(at), len) }
    }
}
