//! `cyclegan demo`: the whole pipeline on a generated dataset, in a few minutes on a CPU.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::config::TrainConfig;
use crate::device::DeviceArg;
use crate::family::Direction;
use crate::model::{DiscriminatorConfig, GeneratorConfig};
use crate::run::Run;
use crate::train::{RunOptions, train};
use crate::translate::{Translator, folder_jobs, save_image};

/// Options of `cyclegan demo`.
#[derive(clap::Args)]
#[command(
    after_help = "Writes OUT/data (a generated day/night dataset), OUT/run (a training run), \
OUT/translated (testA translated to the night look) and OUT/demo.png (inputs above outputs)."
)]
pub struct DemoArgs {
    /// Folder for everything the demo writes (must not exist yet, or be empty).
    #[arg(long, default_value = "cyclegan-demo")]
    out: PathBuf,
    /// Training iterations.
    #[arg(long, default_value_t = 1500)]
    iters: u64,
    /// Image size.
    #[arg(long, default_value_t = 32)]
    size: u32,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
}

/// Run the command.
pub fn run(args: DemoArgs) -> Result<ExitCode> {
    if args.out.exists()
        && std::fs::read_dir(&args.out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{}: already exists and is not empty; choose another --out",
            args.out.display()
        );
    }
    let start = Instant::now();
    let data = args.out.join("data");
    eprintln!("1/3 generating a day/night dataset in {}", data.display());
    crate::demo::write_dataset(&data, args.size, 200, 8, 1)?;

    let run_dir = args.out.join("run");
    eprintln!(
        "2/3 training {} iterations into {}",
        args.iters,
        run_dir.display()
    );
    let config = TrainConfig {
        data_dir: data.clone(),
        generator: GeneratorConfig::resnet(16, 3),
        discriminator: DiscriminatorConfig::patch(16, 2),
        load_size: args.size + args.size / 8,
        crop_size: args.size,
        epochs: 5,
        epochs_decay: 5,
        lr: 5e-4,
        max_iters: Some(args.iters),
        save_every_minutes: 2.0,
        ..TrainConfig::default()
    };
    let device = args.device.device()?;
    let mut run = Run::start(config, &run_dir, &device)?;
    let progress = RunOptions {
        progress: true,
        ..RunOptions::default()
    };
    train(&mut run, &progress)?;

    let out = args.out.join("translated");
    eprintln!(
        "3/3 translating {} into {}",
        data.join("testA").display(),
        out.display()
    );
    std::fs::create_dir_all(&out).with_context(|| format!("{}: cannot create", out.display()))?;
    let translator = Translator::load(&run_dir, Direction::A2b, &device)?;
    let mut tiles = Vec::new();
    let mut outputs = Vec::new();
    for (input, output) in folder_jobs(&data.join("testA"), &out)? {
        let img = cyclegan_data::imageio::decode_rgb(&input)?;
        let y = translator.translate(std::slice::from_ref(&img)).remove(0);
        save_image(&y, &output)?;
        tiles.push(img);
        outputs.push(y);
    }
    let columns = tiles.len();
    tiles.extend(outputs);
    let sheet = crate::train::samples::grid(&tiles, columns, 2);
    let sheet = image::imageops::resize(
        &sheet,
        sheet.width() * 3,
        sheet.height() * 3,
        image::imageops::FilterType::Nearest,
    );
    save_image(&sheet, &args.out.join("demo.png"))?;
    eprintln!(
        "done in {:.0} s: see {} (top: inputs, bottom: translations), {} and {}",
        start.elapsed().as_secs_f64(),
        args.out.join("demo.png").display(),
        run_dir.join("losses.png").display(),
        run_dir.join("samples").display()
    );
    Ok(ExitCode::SUCCESS)
}
