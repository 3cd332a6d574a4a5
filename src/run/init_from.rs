//! `train --init-from SOURCE`: a new run whose networks start from another model's weights
//! (fine-tuning, e.g. a small dataset from a published model), with fresh optimizers, pools and
//! schedule.
//!
//! A source is read into one map of prefixed keys, the layout of our `networks.safetensors`
//! (`G_A.model.1.weight`, `G.model.1.weight`, `F.mlp_0.0.weight`, ...), so every kind of source
//! loads the same way ([`crate::family::UnpairedModel::load_networks`]).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};

use crate::checkpoint;
use crate::family::Family;
use crate::model::weights::{HostTensor, read_pth, read_state_dict_file};

/// The networks of each family, by the names their checkpoints use.
pub fn network_names(family: Family) -> &'static [&'static str] {
    match family {
        Family::Cyclegan => &["G_A", "G_B", "D_A", "D_B"],
        Family::Cut | Family::Fastcut => &["G", "D", "F"],
    }
}

/// The networks `source` holds for a `family` run, by prefixed key:
/// - a run folder of ours (its newest good checkpoint) or one of its checkpoint folders; the
///   family must be the same;
/// - a folder of the PyTorch reference's checkpoints, `<epoch>_net_<NAME>.pth` with NAME one of
///   the family's networks (`latest` preferred, else the highest epoch);
/// - one `.safetensors` file of ours (a networks file), or one network's state dict as a `.pth`
///   or `.safetensors` file: loaded as the A-to-B generator (`G_A`, or `G` for CUT).
pub fn read_networks(source: &Path, family: Family) -> Result<BTreeMap<String, HostTensor>> {
    if !source.exists() {
        bail!(
            "--init-from {}: not found; give a run folder, a checkpoint folder, a folder of the PyTorch reference's <epoch>_net_<NAME>.pth files, or a .pth/.safetensors file",
            source.display()
        );
    }
    if source.is_dir() {
        if source.join("checkpoints").is_dir() || source.join("state.json").exists() {
            let loaded = checkpoint::open(source)?;
            let theirs = loaded.state.config.model;
            if theirs != family {
                bail!(
                    "--init-from {}: a {} model; a {} run cannot start from it (use --model {})",
                    source.display(),
                    theirs.name(),
                    family.name(),
                    theirs.name()
                );
            }
            return loaded.files.networks();
        }
        return reference_folder(source, family);
    }
    let Some(dict) = read_state_dict_file(source) else {
        bail!(
            "--init-from {}: unknown file type; expected .pth or .safetensors",
            source.display()
        );
    };
    let dict = dict?;
    let names = network_names(family);
    let ours = dict
        .keys()
        .any(|k| names.iter().any(|n| k.starts_with(&format!("{n}."))));
    Ok(if ours {
        dict.into_iter().collect()
    } else {
        prefixed(names[0], dict)
    })
}

/// `<epoch>_net_<NAME>.pth` files of the reference's `checkpoints/<name>/` folder.
fn reference_folder(dir: &Path, family: Family) -> Result<BTreeMap<String, HostTensor>> {
    let entries: Vec<String> = fs::read_dir(dir)
        .with_context(|| format!("--init-from {}: cannot list the folder", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    let mut out = BTreeMap::new();
    for name in network_names(family) {
        let suffix = format!("_net_{name}.pth");
        let newest = entries
            .iter()
            .filter_map(|f| f.strip_suffix(&suffix).map(|epoch| (epoch, f)))
            // `latest` first, then the highest numbered epoch.
            .max_by_key(|(epoch, _)| match *epoch {
                "latest" => u64::MAX,
                e => e.parse().unwrap_or(0),
            });
        if let Some((_, file)) = newest {
            out.extend(prefixed(name, read_pth(&dir.join(file))?));
        }
    }
    if out.is_empty() {
        return Err(anyhow!(
            "--init-from {}: no checkpoint of ours and no <epoch>_net_<NAME>.pth files for {} ({}) in this folder",
            dir.display(),
            family.name(),
            network_names(family).join(", ")
        ));
    }
    Ok(out)
}

fn prefixed(
    name: &str,
    dict: impl IntoIterator<Item = (String, HostTensor)>,
) -> BTreeMap<String, HostTensor> {
    dict.into_iter()
        .map(|(k, v)| (format!("{name}.{k}"), v))
        .collect()
}
