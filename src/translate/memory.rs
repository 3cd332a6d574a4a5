//! How much memory translating an image takes, and refusing, before running, an image that
//! would not fit (instead of being killed by the system half-way, or swapping for minutes).

use std::path::Path;

use anyhow::{Result, bail};
use burn::module::Module;

use crate::family::Generator;

/// Peak bytes per full-resolution feature value (one of the `ngf` channels at one pixel) of a
/// generator at inference: the features of the last layers, their norms and activations, and
/// the convolutions' work buffers alive at once. Measured on burn's CPU backend (peak resident
/// memory over that of a 16 x 16 image): 14.0 for ngf 64 / 9 blocks and 14.1 for ngf 32 /
/// 6 blocks at 1024 x 768, 11 to 15 from run to run for ngf 16 at 768 x 768; 24 leaves a margin.
const BYTES_PER_FEATURE: u64 = 24;
/// The same for CUT's anti-aliased generator, whose stride-1 convolution before each blur
/// down and the blur up hold twice the channels at full resolution: measured 53 (ngf 64,
/// 9 blocks, 1024 x 768).
const BYTES_PER_FEATURE_ANTIALIASED: u64 = 72;

/// Estimated peak memory, in bytes, of translating one `w` x `h` image with `generator`: its
/// weights plus [`BYTES_PER_FEATURE`] (anti-aliased CUT: [`BYTES_PER_FEATURE_ANTIALIASED`])
/// for each of its `ngf` channels at each pixel of the image as padded for the generator.
/// Activations dominate: a 4000 x 3000 photo with `ngf` 64 has 768 M feature values.
pub fn estimate(generator: &Generator, w: u32, h: u32) -> u64 {
    let m = generator.size_multiple() as u32;
    let padded = |n: u32| u64::from(n.max(8).next_multiple_of(m));
    let (ngf, per_feature) = match generator {
        Generator::Resnet(g) => (g.config().ngf, BYTES_PER_FEATURE),
        // Not measured: the U-Net holds at most 2 ngf channels at half size, so the ResNet's
        // figure over-estimates it.
        Generator::Unet(g) => (g.config().ngf, BYTES_PER_FEATURE),
        Generator::Cut(g) => {
            let c = g.config();
            match c.antialias_down || c.antialias_up {
                true => (c.ngf, BYTES_PER_FEATURE_ANTIALIASED),
                false => (c.ngf, BYTES_PER_FEATURE),
            }
        }
    };
    weight_bytes(generator) + per_feature * ngf as u64 * padded(w) * padded(h)
}

/// Bytes of `generator`'s weights (float32).
pub fn weight_bytes(generator: &Generator) -> u64 {
    let params = match generator {
        Generator::Resnet(g) => g.num_params(),
        Generator::Unet(g) => g.num_params(),
        Generator::Cut(g) => g.num_params(),
    };
    4 * params as u64
}

/// Memory the system can give this process now: `MemAvailable` of `/proc/meminfo` (Linux);
/// `None` where unknown.
pub fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuse to translate `image` at `w` x `h` (the whole image, or one tile when `tile`) when the
/// estimate exceeds `limit` bytes, naming the image, the estimate and the options that help.
pub fn check(
    generator: &Generator,
    image: &Path,
    (w, h): (u32, u32),
    tile: Option<u32>,
    limit: u64,
) -> Result<()> {
    let need = estimate(generator, w, h);
    if need <= limit {
        return Ok(());
    }
    let fixed = weight_bytes(generator);
    // Activations grow with the area: the side that fits scales with the square root.
    let shrink = ((limit.saturating_sub(fixed)) as f64 / (need - fixed) as f64).sqrt();
    let fits = |side: u32| ((side as f64 * shrink) as u32 / 4 * 4).max(8);
    let what = match tile {
        Some(t) => format!("one {t}x{t} tile of it"),
        None => format!("it at {w}x{h}"),
    };
    let fix = match tile {
        Some(t) => format!("use smaller tiles, e.g. --tile {}", fits(t)),
        None => format!(
            "scale it down with --max-side {} (the translation is scaled back with --keep-size), or translate it in tiles with --tile {}",
            fits(w.max(h)),
            fits(512.min(w.max(h))).min(512)
        ),
    };
    bail!(
        "{}: translating {what} needs about {} of memory, more than the {} available (--memory-limit); {fix}",
        image.display(),
        human(need),
        human(limit)
    )
}

/// Bytes for people: `1.5 GiB`, `320 MiB`.
pub fn human(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mib = bytes as f64 / MIB;
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.0} MiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GeneratorConfig, ResnetGenerator};
    use burn::prelude::Device;

    #[test]
    fn the_estimate_grows_with_the_area_and_the_refusal_says_what_helps() {
        let device = Device::flex();
        let g = Generator::Resnet(ResnetGenerator::new(
            &GeneratorConfig::resnet(8, 1),
            &device,
        ));
        let (small, big) = (estimate(&g, 100, 100), estimate(&g, 200, 200));
        let weights = weight_bytes(&g);
        assert!(weights > 0);
        // Padded to 100 x 100 and 200 x 200: four times the activations.
        assert_eq!(big - weights, 4 * (small - weights));
        let name = Path::new("big.png");
        assert!(check(&g, name, (200, 200), None, big).is_ok());
        let err = check(&g, name, (200, 200), None, small)
            .unwrap_err()
            .to_string();
        for part in [
            "big.png",
            "200x200",
            &human(big),
            "--max-side 100",
            "--tile",
        ] {
            assert!(err.contains(part), "{part:?} missing from: {err}");
        }
        let err = check(&g, name, (200, 200), Some(200), small)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--tile 100"), "{err}");
    }
}
