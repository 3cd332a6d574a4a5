fn main() -> std::process::ExitCode {
    // `args_os`: a file name need not be UTF-8 (`args` would panic on it).
    let args = std::env::args_os().skip(1);
    let device = requested_device(args.map(|a| a.to_string_lossy().into_owned()));
    if device == "cpu" {
        keep_freed_memory();
    }
    default_burn_device(&device);
    cyclegan::cli::main()
}

/// The value of `--device` among `args` (lower case), `cpu` when absent. Read before clap parses
/// (and before any thread starts), so only the literal flag counts; clap still validates it.
fn requested_device(args: impl Iterator<Item = String>) -> String {
    let mut args = args.peekable();
    let mut device = "cpu".to_string();
    while let Some(arg) = args.next() {
        match arg.strip_prefix("--device") {
            Some("") => device = args.peek().cloned().unwrap_or_default(),
            Some(rest) if rest.starts_with('=') => device = rest[1..].to_string(),
            _ => {}
        }
    }
    device.to_lowercase()
}

/// Make burn's default device the one the command runs on. burn puts a reloaded optimizer's
/// state on its default device (moving it on the next step), and in a build with a GPU feature
/// that default is the GPU: without this, `train --resume RUN --device cpu` on a machine without
/// a usable GPU would stop with a wgpu error instead of resuming.
fn default_burn_device(device: &str) {
    let burn_name = match device {
        "cpu" => "flex",
        "wgpu" | "vulkan" | "cuda" | "tch" => device,
        _ => return,
    };
    if std::env::var_os("BURN_DEVICE").is_none() {
        // SAFETY: no other thread exists yet to read the environment concurrently.
        unsafe { std::env::set_var("BURN_DEVICE", burn_name) };
    }
}

/// Tell glibc's malloc to keep freed memory for reuse instead of handing it back to the kernel.
///
/// A training iteration on the CPU allocates and frees hundreds of tensors of several megabytes.
/// By default glibc serves each from fresh `mmap`ed (or newly grown, then trimmed) pages, so
/// every tensor first page-faults on zeroed memory: measured at 5-10% of an iteration, and 4x the
/// time of a small matrix product whose output is new. Peak memory is unchanged: it is reused,
/// not grown. On a GPU the tensors live in device memory, so the host heap keeps its defaults.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        // Every block from the heap, whose freed memory is reused: no `mmap` per big block
        // (tensors reach hundreds of MiB at 480p, beyond any mmap threshold glibc accepts).
        libc::mallopt(libc::M_MMAP_MAX, 0);
        // Never shrink the heap (or thread arenas) after a free; keep 64 MiB slack when growing.
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

#[cfg(test)]
mod tests {
    use super::requested_device;

    fn args(s: &str) -> impl Iterator<Item = String> {
        s.split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn the_device_flag_is_read_in_both_spellings() {
        assert_eq!(requested_device(args("train data")), "cpu");
        assert_eq!(requested_device(args("train data --device cpu")), "cpu");
        assert_eq!(requested_device(args("train data --device=CPU")), "cpu");
        assert_eq!(
            requested_device(args("train data --device vulkan")),
            "vulkan"
        );
        assert_eq!(requested_device(args("bench --device=wgpu")), "wgpu");
    }
}
