//! `cyclegan prepare`.

use std::process::ExitCode;

/// Options of `cyclegan prepare`.
#[derive(clap::Args)]
pub struct PrepareArgs {}

/// Run the command.
pub fn run(_args: PrepareArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`prepare` is not built yet")
}
