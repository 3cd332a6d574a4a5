//! `cyclegan translate`.

use std::process::ExitCode;

/// Options of `cyclegan translate`.
#[derive(clap::Args)]
pub struct TranslateArgs {}

/// Run the command.
pub fn run(_args: TranslateArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`translate` is not built yet")
}
