//! The `cyclegan` command line: argument parsing and exit codes; the work is done by the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod demo;
mod doctor;
mod eval;
mod eval_video;
mod prepare;
mod report_page;
mod train;
mod translate;

/// Exit status when the command failed (bad input, I/O error, ...); the message says why.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status for a command-line usage error (clap's own).
pub const EXIT_USAGE: u8 = 2;
/// Exit status when the job finished but found problems (skipped files, leaks, ...).
pub const EXIT_FINDINGS: u8 = 3;
/// Exit status when training was interrupted (Ctrl-C) after saving a checkpoint.
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Parser)]
#[command(
    name = "cyclegan",
    version,
    about = "Unpaired image-to-image translation (CycleGAN): prepare datasets, train, translate images and videos",
    long_about = "Unpaired image-to-image translation (CycleGAN, Zhu et al. 2017).\n\n\
A typical session:\n  \
cyclegan prepare --a photos/ --b film.mp4 --out data/     # build trainA/trainB/testA/testB\n  \
cyclegan doctor data/                                     # audit it (duplicates, leaks, broken files)\n  \
cyclegan train data/ --out runs/p2f                       # train; Ctrl-C saves, --resume continues\n  \
cyclegan translate --model runs/p2f in.mp4 out.mp4        # apply it to an image, a folder or a video"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a clean unpaired dataset (trainA/trainB/testA/testB) from image folders and videos.
    Prepare(prepare::PrepareArgs),
    /// Audit a dataset: sizes, modes, unreadable files, duplicates and train/test leaks.
    Doctor(doctor::DoctorArgs),
    /// Train a CycleGAN (or CUT, FastCUT) on DATA_DIR/trainA and DATA_DIR/trainB.
    Train(Box<train::TrainArgs>),
    /// Translate an image, a folder of images or a video with a trained generator.
    Translate(translate::TranslateArgs),
    /// Score generated images: FID and KID of two folders, or of a model on a dataset's tests.
    Eval(Box<eval::EvalArgs>),
    /// Measure the flicker of a translated video against its input.
    EvalVideo(eval_video::EvalVideoArgs),
    /// Run the whole pipeline on a generated dataset (a few minutes on a CPU).
    Demo(demo::DemoArgs),
    /// Measure training, inference and data-loading speed and peak memory on this machine.
    Bench(bench::BenchArgs),
    /// Write RUN_DIR/index.html from a run folder's files (the training loop does this itself).
    #[command(hide = true)]
    RunPage(report_page::RunPageArgs),
}

/// Parse the command line, run the command and map the outcome to an exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Bench(a) => a.threads,
        _ => None,
    };
    // The command runs on a compute thread (see `cpu_threads` for why).
    let result = crate::cpu_threads::run_on_pool(threads, move || match cli.command {
        Command::Prepare(a) => prepare::run(a),
        Command::Doctor(a) => doctor::run(a),
        Command::Train(a) => train::run(*a),
        Command::Translate(a) => translate::run(a),
        Command::Eval(a) => eval::run(*a),
        Command::EvalVideo(a) => eval_video::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Bench(a) => bench::run(a),
        Command::RunPage(a) => report_page::run(a),
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.is::<crate::run::UsageError>() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
    }
}
