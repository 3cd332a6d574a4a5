//! `cyclegan run-page RUN_DIR` (hidden): rewrite a run's `index.html` from its files alone.
//! The training loop writes the page itself with its live status; this regenerates it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::report::run_page::{status_from_run_dir, write_run_page};

/// Options of `cyclegan run-page`.
#[derive(clap::Args)]
pub struct RunPageArgs {
    /// The run folder (as given to `cyclegan train --out`).
    run_dir: PathBuf,
}

/// Run the command.
pub fn run(args: RunPageArgs) -> Result<ExitCode> {
    let status = status_from_run_dir(&args.run_dir)?;
    write_run_page(&args.run_dir, &status)?;
    eprintln!("wrote {}", args.run_dir.join("index.html").display());
    Ok(ExitCode::SUCCESS)
}
