//! `cyclegan doctor`.

use std::process::ExitCode;

/// Options of `cyclegan doctor`.
#[derive(clap::Args)]
pub struct DoctorArgs {}

/// Run the command.
pub fn run(_args: DoctorArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`doctor` is not built yet")
}
