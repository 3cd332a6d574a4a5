//! Finding a generator: in a run folder, a checkpoint, or a single network's weights file.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use burn::prelude::*;

use crate::checkpoint;
use crate::family::{Direction, Generator};
use crate::model::cut::{CutGenerator, infer_cut_generator_config};
use crate::model::norm::Norm;
use crate::model::weights::{HostTensor, load_state_dict, read_state_dict_file};
use crate::model::{CycleGanGenerator, GeneratorArch, GeneratorConfig, UnetGenerator};

/// Read one direction's generator from any of the supported sources (see [`super::Translator::load`]).
pub fn load_generator(model: &Path, direction: Direction, device: &Device) -> Result<Generator> {
    if !model.exists() {
        bail!(
            "{}: model not found; give a run folder, a checkpoint folder, or a .safetensors/.pth generator file",
            model.display()
        );
    }
    if model.is_dir() {
        return checkpoint::open(model)?.generator(direction, device);
    }
    let Some(all) = read_state_dict_file(model) else {
        bail!(
            "{}: unknown model file type; expected .safetensors or .pth",
            model.display()
        );
    };
    let all = all?;
    // Our networks file holds both generators under prefixes; a plain file holds one.
    // (CUT's networks file holds its one generator under `G.`.)
    let prefix = match direction {
        Direction::A2b if all.keys().any(|k| k.starts_with("G.")) => "G.",
        Direction::A2b => "G_A.",
        Direction::B2a => "G_B.",
    };
    let prefixed: HashMap<String, HostTensor> = all
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
        .collect();
    let dict = if prefixed.is_empty() { all } else { prefixed };
    // The authors' CUT/FastCUT generators are anti-aliased: told apart by their keys.
    if let Ok(cut) = infer_cut_generator_config(&dict)
        && !cut.is_cyclegan_layout()
    {
        let mut g = CutGenerator::new(&cut, device);
        load_state_dict(&mut g, &dict, model, "CUT generator")?;
        return Ok(Generator::Cut(Box::new(g)));
    }
    let config = infer_generator_config(&dict).with_context(|| {
        format!(
            "{}: not a ResNet or U-Net generator state dict",
            model.display()
        )
    })?;
    let mut g = CycleGanGenerator::new(&config, device);
    load_state_dict(&mut g, &dict, model, "generator")?;
    Ok(g.into())
}

/// The architecture of a CycleGAN generator's state dict, from its keys alone: the U-Net's
/// nested keys or the ResNet's flat ones, `ngf` from the first convolution, the depth from the
/// blocks or levels present, the norm from running statistics (batch) or biases (instance),
/// dropout from the shifted second convolution of the residual blocks.
///
/// A U-Net's dropout leaves no trace in its keys; it does not act when translating anyway.
pub fn infer_generator_config(dict: &HashMap<String, HostTensor>) -> Result<GeneratorConfig> {
    let ngf_of = |key: &str| -> Result<usize> {
        dict.get(key)
            .and_then(|t| t.shape.first().copied())
            .ok_or_else(|| anyhow!("no `{key}`"))
    };
    let norm_of = |batch_key: &str, bias_key: &str| {
        if dict.contains_key(batch_key) {
            Norm::Batch
        } else if dict.contains_key(bias_key) {
            Norm::Instance
        } else {
            Norm::None
        }
    };
    if dict.contains_key("model.model.0.weight") {
        let ngf = ngf_of("model.model.0.weight")?;
        let downs = (1..)
            .take_while(|&i| {
                let key = format!("{}.1.weight", UnetGenerator::level_prefix(i));
                dict.contains_key(&key)
            })
            .count()
            + 1;
        let arch = match downs {
            7 => GeneratorArch::Unet128,
            8 => GeneratorArch::Unet256,
            n => bail!("a U-Net with {n} levels; unet_128 (7) and unet_256 (8) are supported"),
        };
        let middle = UnetGenerator::level_prefix(1);
        return Ok(GeneratorConfig {
            ngf,
            blocks: 0,
            arch,
            norm: norm_of(
                &format!("{middle}.2.running_mean"),
                &format!("{middle}.1.bias"),
            ),
            dropout: false,
            input_nc: in_channels(dict, "model.model.0.weight"),
            // Transposed: [in, out, k, k].
            output_nc: dict.get("model.model.3.weight").map_or(3, |t| t.shape[1]),
        });
    }
    let ngf = ngf_of("model.1.weight")?;
    let blocks = dict
        .keys()
        .filter(|k| k.ends_with(".conv_block.1.weight"))
        .count();
    if blocks == 0 {
        bail!("no residual blocks (`model.N.conv_block.1.weight`)");
    }
    Ok(GeneratorConfig {
        ngf,
        blocks,
        arch: GeneratorArch::Resnet,
        norm: norm_of("model.2.running_mean", "model.1.bias"),
        dropout: dict.contains_key("model.10.conv_block.6.weight"),
        input_nc: in_channels(dict, "model.1.weight"),
        output_nc: dict
            .keys()
            .filter_map(|k| {
                k.strip_prefix("model.")?
                    .strip_suffix(".weight")?
                    .parse::<usize>()
                    .ok()
            })
            .max()
            .and_then(|last| dict.get(&format!("model.{last}.weight")))
            .map_or(3, |t| t.shape[0]),
    })
}

/// The input channels of the convolution `key` (`[out, in, k, k]`), 3 when absent.
fn in_channels(dict: &HashMap<String, HostTensor>, key: &str) -> usize {
    dict.get(key)
        .and_then(|t| t.shape.get(1).copied())
        .unwrap_or(3)
}
