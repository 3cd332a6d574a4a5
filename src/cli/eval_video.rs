//! `cyclegan eval-video`.

use std::process::ExitCode;

/// Options of `cyclegan eval-video`.
#[derive(clap::Args)]
pub struct EvalVideoArgs {}

/// Run the command.
pub fn run(_args: EvalVideoArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`eval-video` is not built yet")
}
