//! Finding a generator: in a run folder, a checkpoint, or a single network's weights file.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use burn::prelude::*;

use crate::checkpoint;
use crate::family::{Direction, Generator};
use crate::model::cut::{CutGenerator, infer_cut_generator_config};
use crate::model::weights::{HostTensor, load_state_dict, read_state_dict_file};
use crate::model::{GeneratorConfig, ResnetGenerator};

/// Read one direction's generator from any of the supported sources (see [`Translator::load`]).
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
    let config = infer_generator_config(&dict)
        .with_context(|| format!("{}: not a ResNet generator state dict", model.display()))?;
    let mut g = ResnetGenerator::new(&config, device);
    load_state_dict(&mut g, &dict, model, "generator")?;
    Ok(Generator::Resnet(g))
}

/// `ngf` from the first convolution, the block count from the residual keys.
pub fn infer_generator_config(dict: &HashMap<String, HostTensor>) -> Result<GeneratorConfig> {
    let first = dict
        .get("model.1.weight")
        .ok_or_else(|| anyhow!("no `model.1.weight`"))?;
    let ngf = *first
        .shape
        .first()
        .ok_or_else(|| anyhow!("`model.1.weight` has no shape"))?;
    let blocks = dict
        .keys()
        .filter(|k| k.ends_with(".conv_block.1.weight"))
        .count();
    if blocks == 0 {
        bail!("no residual blocks (`model.N.conv_block.1.weight`)");
    }
    Ok(GeneratorConfig { ngf, blocks })
}
