//! `cyclegan doctor`: a thin layer over [`cyclegan_data::doctor`].

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use cyclegan_data::doctor::{self, DoctorOptions};

use super::EXIT_FINDINGS;

/// Options of `cyclegan doctor`.
#[derive(clap::Args)]
#[command(
    about = "Audit a dataset: sizes, modes, unreadable files, duplicates and train/test leaks",
    long_about = "Audit a dataset in the standard layout (DATA_DIR/trainA, trainB, testA, testB) without \
changing it: counts, picture sizes and colour modes, unreadable files, exact and near duplicates \
within each folder, test pictures that duplicate train pictures (leaks) and pictures found in \
both domains, with the paths of every pair.\n\n\
Exit status: 0 no problems; 3 leaks (train/test or across domains) or unreadable files; 1 failure."
)]
pub struct DoctorArgs {
    /// The dataset folder (holding trainA/, trainB/, testA/, testB/).
    #[arg(value_name = "DATA_DIR")]
    dir: PathBuf,
    /// Largest perceptual-hash distance (bits of 64) at which two pictures count as near
    /// duplicates; 0 finds only (near-)identical ones.
    #[arg(long, default_value_t = 6)]
    near_threshold: u32,
    /// Print the full findings as JSON on standard output instead of the readable report.
    #[arg(long)]
    json: bool,
}

/// Run the command.
pub fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let opts = DoctorOptions {
        dir: args.dir,
        near_threshold: args.near_threshold,
        progress: std::io::stderr().is_terminal(),
    };
    let report = doctor::doctor(&opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", cyclegan_data::report::doctor_text(&report));
    }
    Ok(if report.has_problems() {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}
