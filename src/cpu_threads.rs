//! The threads a command's CPU work runs on.
//!
//! burn's CPU backend and our CPU kernels split each operation over rayon's threads. Called
//! from a thread outside the pool (the program's main thread), every such split hands its work
//! to the pool's threads and puts the caller to sleep until they finish: thousands of hand-offs
//! per training iteration, each a wake-up and a sleep, while the serial steps between them (the
//! tensor ops too small to split, autodiff's bookkeeping) run on a third thread that competes
//! with the pool's for the cores. Run from one of the pool's own threads, a split is a rayon
//! `join` whose other half the other threads steal, and the caller works on its own half.
//! Measured on 2 cores (`cyclegan bench --workload train128 --iters 6 --warmup 1`): context
//! switches 76,000 -> 17,000 per run and CPU use 176% -> 181%; the iteration's own time moved
//! by 1-2%, within the machine's noise (BENCHMARKS.md).

/// Stack size of the pool's threads: the main thread's usual 8 MiB, as the command's work ran
/// there before (rayon's default is 2 MiB).
const STACK_BYTES: usize = 8 << 20;

/// Run `job` on a thread of a rayon pool of `threads` threads (all cores when `None`), so that
/// every parallel operation inside it runs on that pool. Falls back to running `job` on the
/// calling thread when the pool cannot start (the operations then use rayon's global pool).
pub fn run_on_pool<R: Send>(threads: Option<usize>, job: impl FnOnce() -> R + Send) -> R {
    let mut builder = rayon::ThreadPoolBuilder::new()
        .stack_size(STACK_BYTES)
        .thread_name(|i| format!("cyclegan-compute-{i}"));
    if let Some(n) = threads {
        builder = builder.num_threads(n);
    }
    match builder.build() {
        Ok(pool) => pool.install(job),
        Err(_) => job(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn the_job_and_its_parallel_work_run_on_the_pool() {
        let (inside, threads, names) = run_on_pool(Some(3), || {
            let names: Vec<String> = (0..64)
                .into_par_iter()
                .map(|_| std::thread::current().name().unwrap_or("").to_string())
                .collect();
            (
                rayon::current_thread_index().is_some(),
                rayon::current_num_threads(),
                names,
            )
        });
        assert!(inside, "the job runs on one of the pool's threads");
        assert_eq!(threads, 3);
        assert!(names.iter().all(|n| n.starts_with("cyclegan-compute-")));
    }
}
