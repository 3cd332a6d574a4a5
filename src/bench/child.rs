//! Each workload in a fresh child process (this same binary, `bench --json --workload NAME`),
//! so that the peak resident memory it reports is that workload's alone.

use std::ffi::OsString;
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::{Report, Workload};

/// Run `workload` in a child process of this executable with the `bench` options `forwarded`
/// (everything but `--json` and `--workload`), and read back its report.
pub fn measure_in_child(workload: Workload, forwarded: &[OsString]) -> Result<Report> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let out = Command::new(&exe)
        .args(["bench", "--json", "--workload", workload.name()])
        .args(forwarded)
        .output()
        .context("cannot run a bench child process")?;
    if !out.status.success() {
        bail!(
            "workload {} failed: {}",
            workload.name(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("workload {}: unreadable report", workload.name()))
}
