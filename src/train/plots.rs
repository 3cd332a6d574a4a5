//! Loss curves (`losses.png`) from `losses.jsonl`: smoothed, on a log scale.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use super::log::{LossRecord, read_records};
use cyclegan_data::atomic::write_atomic;

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 560;

/// Read the loss log and draw each loss against iterations.
pub fn plot_losses(log: &Path, out: &Path) -> Result<()> {
    if !log.exists() {
        anyhow::bail!("{}: cannot read: no such file", log.display());
    }
    let png = render(&read_records(log))?;
    Ok(write_atomic(out, &png)?)
}

/// Line colours (matplotlib's "tab10"), one per loss in log order.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The curves as PNG bytes.
pub fn render(records: &[LossRecord]) -> Result<Vec<u8>> {
    register_font();
    let names: Vec<String> = records
        .first()
        .map(|r| r.losses.iter().map(|(n, ..)| n.to_string()).collect())
        .unwrap_or_default();
    let series: Vec<(&str, RGBColor)> = names
        .iter()
        .zip(PALETTE.iter().cycle())
        .map(|(n, c)| (n.as_str(), *c))
        .collect();
    let window = (records.len() / 50).max(1);
    let curves: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|(name, _)| {
            let values: Vec<f64> = records
                .iter()
                .map(|r| r.losses.get(name).map_or(f64::NAN, f64::from))
                .collect();
            moving_average(&values, window)
                .into_iter()
                .zip(records)
                .filter(|(v, _)| v.is_finite() && *v > 0.0)
                .map(|(v, r)| (r.iter as f64, v))
                .collect()
        })
        .collect();
    let all = || curves.iter().flatten();
    let x_max = all().map(|p| p.0).fold(1.0, f64::max);
    let y_min = all().map(|p| p.1).fold(f64::INFINITY, f64::min).min(1.0) * 0.8;
    let y_max = all().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.25;

    let mut buf = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("losses (moving average over {window} iterations)"),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("iteration")
            .y_desc("loss")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(plot_err)?;
        for ((name, color), points) in series.iter().zip(curves) {
            let color = *color;
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(plot_err)?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    let img =
        image::RgbImage::from_raw(WIDTH, HEIGHT, buf).ok_or_else(|| anyhow!("plot buffer size"))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    Ok(png)
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the loss plot: {e:?}")
}

/// Trailing moving average over `window` values.
fn moving_average(values: &[f64], window: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(values.len());
    let mut sum = 0.0;
    for (i, v) in values.iter().enumerate() {
        sum += v;
        if i >= window {
            sum -= values[i - window];
        }
        out.push(sum / (i + 1).min(window) as f64);
    }
    out
}

/// plotters draws text with a font registered at run time; we embed DejaVu Sans so no system
/// font library is needed.
fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::{Losses, Role};

    #[test]
    fn moving_average_smooths() {
        assert_eq!(
            moving_average(&[1.0, 3.0, 5.0, 7.0], 2),
            vec![1.0, 2.0, 4.0, 6.0]
        );
    }

    #[test]
    fn renders_a_png_with_curves() {
        let records: Vec<LossRecord> = (1..=200)
            .map(|i| LossRecord {
                iter: i,
                epoch: 0,
                lr: 2e-4,
                losses: Losses::new()
                    .with("G_A", Role::Adversarial, 1.0)
                    .with("G_B", Role::Adversarial, 1.0)
                    .with("cycle_A", Role::Generator, 5.0)
                    .with("cycle_B", Role::Generator, 10.0 / i as f32)
                    .with("D_A", Role::Discriminator, 0.3),
            })
            .collect();
        let png = render(&records).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (WIDTH, HEIGHT));
        // The fourth curve (cycle_B) is drawn in the palette's red.
        assert!(img.pixels().any(|p| p.0 == [214, 39, 40]));
    }
}
