//! Tensors as plain buffers, for the CPU kernels written in plain Rust ([`super::winograd_cpu`],
//! [`super::direct_cpu`], the instance norm of [`crate::model::norm`]).

use std::borrow::Cow;

use burn::backend::flex::FlexTensor;
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

/// A buffer of `len` floats for a kernel that writes every element before anything reads it
/// (a product's output, a rearrangement): no zeroing pass, which [`parallel_zeros`] would spend
/// on values overwritten at once.
///
/// # Safety
/// Every element must be written before any is read.
#[allow(clippy::uninit_vec)]
pub(crate) unsafe fn unwritten(len: usize) -> Vec<f32> {
    let mut buffer = Vec::with_capacity(len);
    // SAFETY: the caller's contract; f32 has no invalid bit patterns once written.
    unsafe { buffer.set_len(len) };
    buffer
}

/// A new buffer of `len` floats, made of planes of `plane` floats that `fill(index, plane)`
/// writes on all threads; `fill` must write every element of its plane (nothing zeroes the
/// buffer first).
pub(crate) fn fill_planes(
    len: usize,
    plane: usize,
    fill: impl Fn(usize, &mut [std::mem::MaybeUninit<f32>]) + Sync + Send,
) -> Vec<f32> {
    let mut buffer = Vec::with_capacity(len);
    buffer
        .spare_capacity_mut()
        .par_chunks_mut(plane)
        .enumerate()
        .for_each(|(i, chunk)| fill(i, chunk));
    // SAFETY: `fill` wrote every element (its contract).
    unsafe { buffer.set_len(len) };
    buffer
}

/// A raw pointer that tasks writing disjoint parts of one buffer may share.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut(*mut f32);
// SAFETY: only used to write disjoint regions, each by one task, while the owner waits.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The start of `buffer`'s allocation (its capacity, initialised or not).
    pub(crate) fn new(buffer: &mut Vec<f32>) -> Self {
        SharedMut(buffer.as_mut_ptr())
    }

    /// The pointer (a method, so that closures capture the whole `Sync` wrapper).
    pub(crate) fn ptr(self) -> *mut f32 {
        self.0
    }

    /// The pointer `at` elements on (inside the same buffer).
    pub(crate) fn offset(self, at: usize) -> SharedMut {
        // SAFETY: callers stay inside the buffer's capacity.
        SharedMut(unsafe { self.0.add(at) })
    }

    /// # Safety
    /// `at..at + len` must be inside the buffer and written by no other task meanwhile.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, at: usize, len: usize) -> &mut [f32] {
        unsafe { std::slice::from_raw_parts_mut(self.ptr().add(at), len) }
    }
}

/// A CPU tensor's dimensions (the backend extensions' inputs).
pub(crate) fn flex_dims(t: &FlexTensor) -> [usize; 4] {
    t.layout().shape().dims::<4>()
}

/// A CPU tensor's float32 values, row-major (copied only when not contiguous).
pub(crate) fn flex_values(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(v) => v.into(),
        None => t
            .to_contiguous()
            .as_slice::<f32>()
            .expect("a contiguous copy")
            .to_vec()
            .into(),
    }
}

/// The largest difference between two tensors' values (kernel tests).
#[cfg(test)]
pub(crate) fn worst(a: Tensor<4>, b: Tensor<4>) -> f32 {
    cyclegan_testkit::largest_difference(&floats(a), &floats(b))
}

/// What the kernels with handwritten backward passes are tested with: a layer's output and its
/// gradients beside a reference's.
#[cfg(test)]
pub(crate) mod gradient_check {
    use burn::prelude::*;
    use burn::tensor::TensorData;
    use cyclegan_testkit::pseudo_random;

    use super::worst;

    /// A layer's output and the gradients of its input, weight and bias.
    pub(crate) type Results = (Tensor<4>, Tensor<4>, Tensor<4>, Tensor<1>);

    /// Seeded values of shape `dims` on the autodiff CPU device, tracked.
    pub(crate) fn tracked<const D: usize>(dims: [usize; D], seed: u32) -> Tensor<D> {
        let values = pseudo_random(dims.iter().product(), seed);
        Tensor::from_data(TensorData::new(values, dims), &Device::flex().autodiff()).require_grad()
    }

    /// `layer(x, weight, bias)` and the gradients of `sum(y * probe)`, the probe seeded so
    /// that every output element gets a gradient of its own.
    pub(crate) fn run(
        layer: impl FnOnce(Tensor<4>, Tensor<4>, Tensor<1>) -> Tensor<4>,
        x: &Tensor<4>,
        weight: &Tensor<4>,
        bias: &Tensor<1>,
    ) -> Results {
        let y = layer(x.clone(), weight.clone(), bias.clone());
        let dims = y.dims();
        let probe = Tensor::<4>::from_data(
            TensorData::new(pseudo_random(dims.iter().product(), 4), dims),
            &y.device(),
        );
        let grads = (y.clone() * probe).sum().backward();
        (
            y.inner(),
            x.grad(&grads).unwrap(),
            weight.grad(&grads).unwrap(),
            bias.grad(&grads).unwrap(),
        )
    }

    /// Asserts `ours` equals `reference`: output, input and bias gradients within 1e-4, the
    /// weight gradient (a sum over every pixel) within 1e-3.
    pub(crate) fn assert_agree(ours: Results, reference: Results, case: &str) {
        let ((y1, dx1, dw1, db1), (y2, dx2, dw2, db2)) = (ours, reference);
        assert!(worst(y1, y2) < 1e-4, "{case}: output");
        assert!(worst(dx1, dx2) < 1e-4, "{case}: input gradient");
        assert!(worst(dw1, dw2) < 1e-3, "{case}: weight gradient");
        let db: f32 = (db1 - db2).abs().max().into_scalar();
        assert!(db < 1e-4, "{case}: bias gradient {db}");
    }
}

/// A matrix operand of [`product`]: where it starts and its row and column strides (so a
/// transposed matrix is the same buffer with the strides swapped).
#[derive(Clone, Copy)]
pub(super) struct Mat {
    pub(super) ptr: *const f32,
    pub(super) rs: usize,
    pub(super) cs: usize,
}

impl Mat {
    /// A row-major matrix with rows `row_stride` apart...
    pub(super) fn rows(ptr: *const f32, row_stride: usize) -> Self {
        Mat {
            ptr,
            rs: row_stride,
            cs: 1,
        }
    }

    /// ...and the transpose of one.
    pub(super) fn transposed(ptr: *const f32, row_stride: usize) -> Self {
        Mat {
            ptr,
            rs: 1,
            cs: row_stride,
        }
    }
}

/// `dst (+)= lhs @ rhs` (`[m, k] @ [k, n]`) by `gemm`: adds to `dst` when `accumulate`,
/// overwrites it (without reading) otherwise; over all threads when `threads`, else on the
/// calling one (the caller spreads several products over the threads).
///
/// Over the threads, the product is cut into one block of rows (tall products) or of columns
/// per thread, each a single-threaded `gemm` call: `gemm`'s own threading ran some of the
/// networks' shapes at half speed (the 3-channel stem's `[64, 147] @ [147, 16384]` at 58
/// GFLOP/s, 136 cut in two; the PatchGAN's `[512, 4096] @ [4096, 225]` at 142, 173 cut by rows;
/// 2 threads, BENCHMARKS.md).
///
/// # Safety
/// The operands must lie inside live buffers, and `dst` be written by no one else meanwhile.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn product(
    m: usize,
    n: usize,
    k: usize,
    dst: Mat,
    accumulate: bool,
    lhs: Mat,
    rhs: Mat,
    threads: bool,
) {
    /// Rows and columns of `gemm`'s AVX2 micro-kernel (16 x 6): blocks start at multiples of
    /// them (8 columns: whole 32-byte vectors of the row-major outputs).
    const ROW_ALIGN: usize = 16;
    const COLUMN_ALIGN: usize = 8;
    /// Below this many multiply-adds a product is not worth cutting.
    const MIN_SPLIT: usize = 1 << 20;
    let parts = if threads {
        rayon::current_num_threads()
    } else {
        1
    };
    if parts > 1 && m * n * k >= MIN_SPLIT {
        // Tall products by rows (each thread packs all of `rhs`, but reads only its rows of
        // `lhs`), the others by columns.
        let (by_rows, len) = if m >= 256 { (true, m) } else { (false, n) };
        let align = if by_rows { ROW_ALIGN } else { COLUMN_ALIGN };
        let chunk = len.div_ceil(parts).next_multiple_of(align);
        if chunk < len {
            (0..len.div_ceil(chunk)).into_par_iter().for_each(|i| {
                let (start, size) = (i * chunk, chunk.min(len - i * chunk));
                // SAFETY: rows (or columns) `start..start + size` lie inside the operands; the
                // blocks of `dst` are disjoint.
                unsafe {
                    if by_rows {
                        let (d, a) = (dst.skip_rows(start), lhs.skip_rows(start));
                        gemm_call(size, n, k, d, accumulate, a, rhs, false);
                    } else {
                        let (d, b) = (dst.skip_columns(start), rhs.skip_columns(start));
                        gemm_call(m, size, k, d, accumulate, lhs, b, false);
                    }
                }
            });
            return;
        }
    }
    // SAFETY: as the caller's.
    unsafe { gemm_call(m, n, k, dst, accumulate, lhs, rhs, threads) }
}

/// One `gemm` call (over all threads with `gemm`'s own split when `threads`).
///
/// # Safety
/// As [`product`]'s.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_call(
    m: usize,
    n: usize,
    k: usize,
    dst: Mat,
    accumulate: bool,
    lhs: Mat,
    rhs: Mat,
    threads: bool,
) {
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.ptr as *mut f32,
            dst.cs as isize,
            dst.rs as isize,
            accumulate,
            lhs.ptr,
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.ptr,
            rhs.cs as isize,
            rhs.rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            if threads {
                gemm::Parallelism::Rayon(0)
            } else {
                gemm::Parallelism::None
            },
        );
    }
}

impl Mat {
    /// The same matrix without its first `j` columns.
    ///
    /// # Safety
    /// `j` must be within the matrix.
    unsafe fn skip_columns(self, j: usize) -> Mat {
        // SAFETY: as the caller's.
        let ptr = unsafe { self.ptr.add(j * self.cs) };
        Mat { ptr, ..self }
    }

    /// The same matrix without its first `i` rows.
    ///
    /// # Safety
    /// `i` must be within the matrix.
    unsafe fn skip_rows(self, i: usize) -> Mat {
        // SAFETY: as the caller's.
        let ptr = unsafe { self.ptr.add(i * self.rs) };
        Mat { ptr, ..self }
    }
}

// SAFETY: a `Mat` is a read-only view of a buffer its creator keeps alive for the product;
// threads only read through it.
unsafe impl Send for Mat {}
unsafe impl Sync for Mat {}

/// [`product`] for a small `m x n` result over a long inner dimension `k` (weight gradients:
/// sums over every pixel): `gemm` spreads its work over `m` and `n`, which leaves threads idle
/// here (a 64 x 147 result over 16384 pixels ran at a third of the speed), so `k` is split
/// over the threads and their partial products are added to `dst`.
///
/// # Safety
/// As [`product`].
pub(super) unsafe fn product_long(
    m: usize,
    n: usize,
    k: usize,
    dst: Mat,
    accumulate: bool,
    lhs: Mat,
    rhs: Mat,
) {
    let parts = rayon::current_num_threads().min(k / 1024).max(1);
    if parts == 1 {
        // SAFETY: as the caller's.
        unsafe { product(m, n, k, dst, accumulate, lhs, rhs, true) };
        return;
    }
    let chunk = k.div_ceil(parts);
    let partials: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|i| {
            let (start, len) = (i * chunk, chunk.min(k - i * chunk));
            // SAFETY: the product below overwrites all of it.
            let mut out = unsafe { unwritten(m * n) };
            // SAFETY: columns `start..start + len` of `lhs` and those rows of `rhs` lie inside
            // them; `out` is this task's own.
            unsafe {
                product(
                    m,
                    n,
                    len,
                    Mat::rows(out.as_mut_ptr(), n),
                    false,
                    lhs.skip_columns(start),
                    rhs.skip_rows(start),
                    false,
                )
            };
            out
        })
        .collect();
    // The partial sums added row by row over the threads (a serial pass over a 512 x 4096
    // weight gradient takes milliseconds).
    let dst_ptr = SharedMut(dst.ptr as *mut f32);
    (0..m).into_par_iter().for_each(|i| {
        for j in 0..n {
            let sum: f32 = partials.iter().map(|p| p[i * n + j]).sum();
            // SAFETY: (i, j) lies inside `dst`; each row is written by one task only.
            unsafe {
                let d = dst_ptr.ptr().add(i * dst.rs + j * dst.cs);
                *d = if accumulate { *d + sum } else { sum };
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use cyclegan_testkit::{largest_difference, pseudo_random};

    /// Split over the threads, the long product equals the plain one, overwriting and
    /// accumulating, into a strided destination.
    #[test]
    fn long_products_equal_plain_ones() {
        let (m, n, k) = (5, 3, 4099);
        let lhs = pseudo_random(m * k, 1);
        let rhs = pseudo_random(n * k, 2);
        let start = pseudo_random(m * n * 2, 3);
        for accumulate in [false, true] {
            let run = |long: bool| {
                // dst: every other column of an [m, 2n] buffer.
                let mut dst = start.clone();
                let (d, a, b) = (
                    Mat {
                        ptr: dst.as_mut_ptr(),
                        rs: 2 * n,
                        cs: 2,
                    },
                    Mat::rows(lhs.as_ptr(), k),
                    Mat::transposed(rhs.as_ptr(), k),
                );
                // SAFETY: the operands lie inside their buffers.
                unsafe {
                    if long {
                        product_long(m, n, k, d, accumulate, a, b);
                    } else {
                        product(m, n, k, d, accumulate, a, b, false);
                    }
                }
                dst
            };
            let (long, plain) = (run(true), run(false));
            assert!(
                largest_difference(&long, &plain) < 1e-3,
                "accumulate {accumulate}"
            );
            assert_eq!(long[1], start[1], "only the strided columns are written");
        }
    }
}
