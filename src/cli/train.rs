//! `cyclegan train`.

use std::process::ExitCode;

/// Options of `cyclegan train`.
#[derive(clap::Args)]
pub struct TrainArgs {}

/// Run the command.
pub fn run(_args: TrainArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`train` is not built yet")
}
