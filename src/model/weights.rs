//! Weights: initialisation, stable parameter identities, and state dicts on disk.
//!
//! A state dict is a map from the PyTorch reference's keys (`model.1.weight`, ...) to host
//! tensors. We read it from PyTorch `.pth` files (burn's PyTorch reader) and read and write it as
//! safetensors, so our checkpoints load into the reference with `load_state_dict` and back.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::Path;

use burn::module::{Param, ParamId};
use burn::prelude::*;
use rand::Rng;
use rand_distr::{Distribution, Normal};

use super::NamedConvs;

/// A tensor on the host: row-major f32 values and their shape.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Extents, outermost first.
    pub shape: Vec<usize>,
    /// Values in row-major order.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// Copy a device tensor to the host.
    pub fn from_tensor<const D: usize>(t: Tensor<D>) -> Self {
        let shape = t.dims().to_vec();
        let data = t
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 tensor data");
        HostTensor { shape, data }
    }

    /// Upload to a device.
    pub fn to_tensor<const D: usize>(&self, device: &Device) -> Tensor<D> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            device,
        )
    }
}

/// Parameters by state-dict key, ordered by key.
pub type StateDict = BTreeMap<String, HostTensor>;

/// Errors reading or applying weights; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file could not be read or parsed.
    #[error("{path}: cannot read weights: {why}")]
    Read { path: String, why: String },
    /// A parameter the network needs is absent from the file.
    #[error(
        "{path}: missing parameter `{key}`; is this a {what} checkpoint with the same architecture (--ngf/--blocks/--ndf/--d-layers)?"
    )]
    Missing {
        path: String,
        key: String,
        what: String,
    },
    /// A parameter has another shape than the network's.
    #[error(
        "{path}: parameter `{key}` has shape {found:?} but the network expects {expected:?}; the checkpoint was made with another architecture (--ngf/--blocks/--ndf/--d-layers)"
    )]
    Shape {
        path: String,
        key: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
}

/// The paper's initialisation: weights drawn from N(0, 0.02), biases zero.
pub fn init_normal(net: &mut impl NamedConvs, rng: &mut impl Rng) {
    let normal = Normal::new(0.0f32, 0.02).expect("valid normal");
    for conv in net.named_convs() {
        let shape = conv.weight.dims();
        let device = conv.weight.device();
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| normal.sample(rng)).collect();
        let w = HostTensor {
            shape: shape.to_vec(),
            data,
        };
        set_param(conv.weight, w.to_tensor(&device), true);
        if let Some(bias) = conv.bias {
            let zeros = Tensor::zeros(bias.dims(), &device);
            set_param(bias, zeros, !conv.bias_frozen);
        }
    }
}

/// Give every parameter an identity derived from `prefix` and its key.
///
/// burn keys optimizer state by parameter id, and ids are random by default; ids derived from
/// names make a network rebuilt on resume match the optimizer state saved before.
pub fn assign_stable_ids(net: &mut impl NamedConvs, prefix: &str) {
    for conv in net.named_convs() {
        conv.weight.id = stable_id(prefix, &conv.key, "weight");
        if let Some(bias) = conv.bias {
            bias.id = stable_id(prefix, &conv.key, "bias");
        }
    }
}

fn stable_id(prefix: &str, key: &str, leaf: &str) -> ParamId {
    // FNV-1a: stable across Rust versions, unlike DefaultHasher.
    let mut h = Fnv(0xcbf29ce484222325);
    (prefix, key, leaf).hash(&mut h);
    ParamId::from(h.0)
}

struct Fnv(u64);
impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100000001b3);
        }
    }
}

/// Replace a parameter's value, keeping its id.
fn set_param<const D: usize>(slot: &mut Param<Tensor<D>>, value: Tensor<D>, trainable: bool) {
    let id = slot.id;
    let mut p = Param::from_tensor(value);
    p.id = id;
    *slot = if trainable {
        p
    } else {
        p.set_require_grad(false)
    };
}

/// The shape a layer's weight has in a state dict: a Linear layer's `[out, in, 1, 1]` is
/// PyTorch's `[out, in]`.
fn weight_shape_on_disk(conv: &super::NamedConv<'_>) -> Vec<usize> {
    let dims = conv.weight.dims();
    if conv.linear {
        dims[..2].to_vec()
    } else {
        dims.to_vec()
    }
}

/// The network's parameters by state-dict key (`model.1.weight`, ...), and its constant
/// buffers ([`NamedConvs::buffers`]).
pub fn state_dict(net: &mut impl NamedConvs) -> StateDict {
    let mut out: StateDict = net.buffers().into_iter().collect();
    for conv in net.named_convs() {
        let shape = weight_shape_on_disk(&conv);
        let mut weight = HostTensor::from_tensor(conv.weight.val());
        weight.shape = shape;
        out.insert(format!("{}.weight", conv.key), weight);
        if let Some(bias) = conv.bias {
            out.insert(
                format!("{}.bias", conv.key),
                HostTensor::from_tensor(bias.val()),
            );
        }
    }
    out
}

/// Load parameters from a state dict; keys the network does not have (such as the
/// `running_mean`/`running_var` that old instance-norm checkpoints carry) are ignored.
///
/// `path` and `what` only make error messages useful.
pub fn load_state_dict(
    net: &mut impl NamedConvs,
    dict: &HashMap<String, HostTensor>,
    path: &Path,
    what: &str,
) -> Result<(), WeightsError> {
    let path_s = path.display().to_string();
    let fetch = |key: String, expected: Vec<usize>| -> Result<&HostTensor, WeightsError> {
        let t = dict.get(&key).ok_or_else(|| WeightsError::Missing {
            path: path_s.clone(),
            key: key.clone(),
            what: what.to_string(),
        })?;
        if t.shape != expected {
            return Err(WeightsError::Shape {
                path: path_s.clone(),
                key,
                found: t.shape.clone(),
                expected,
            });
        }
        Ok(t)
    };
    // Check everything before changing anything, so a bad file leaves the network as it was.
    let mut staged = Vec::new();
    for conv in net.named_convs() {
        let w = fetch(format!("{}.weight", conv.key), weight_shape_on_disk(&conv))?;
        let b = match &conv.bias {
            Some(b) => Some(fetch(format!("{}.bias", conv.key), b.dims().to_vec())?),
            None => None,
        };
        staged.push((w, b));
    }
    for (conv, (w, b)) in net.named_convs().into_iter().zip(staged) {
        let device = conv.weight.device();
        // Linear weights `[out, in]` are held as `[out, in, 1, 1]`.
        let w = HostTensor {
            shape: conv.weight.dims().to_vec(),
            data: w.data.clone(),
        };
        set_param(conv.weight, w.to_tensor(&device), true);
        if let (Some(slot), Some(b)) = (conv.bias, b) {
            set_param(slot, b.to_tensor(&device), !conv.bias_frozen);
        }
    }
    Ok(())
}

/// A state dict from a `.pth`/`.pt`/`.bin` (PyTorch) or `.safetensors` file, chosen by the
/// extension; `None` for any other extension (the caller names what it expected).
pub fn read_state_dict_file(
    path: &Path,
) -> Option<Result<HashMap<String, HostTensor>, WeightsError>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "pth" | "pt" | "bin" => Some(read_pth(path)),
        "safetensors" => Some(read_safetensors(path, "")),
        _ => None,
    }
}

/// Read every floating-point tensor of a PyTorch checkpoint (`torch.save(state_dict)`).
///
/// A checkpoint saved as `{"state_dict": ...}` or with a `module.` prefix (DataParallel) is
/// accepted too.
pub fn read_pth(path: &Path) -> Result<HashMap<String, HostTensor>, WeightsError> {
    use burn::store::pytorch_reader::PytorchReader;
    let err = |why: String| WeightsError::Read {
        path: path.display().to_string(),
        why,
    };
    let reader = PytorchReader::new(path).map_err(|e| err(e.to_string()))?;
    let mut out = HashMap::new();
    for (name, t) in reader.into_tensors() {
        let Some(data) = to_f32(t.dtype(), &t.read().map_err(|e| err(e.to_string()))?) else {
            continue; // integer buffers such as num_batches_tracked
        };
        let key = name.strip_prefix("state_dict.").unwrap_or(&name);
        let key = key.strip_prefix("module.").unwrap_or(key);
        out.insert(
            key.to_string(),
            HostTensor {
                shape: t.shape().to_vec(),
                data,
            },
        );
    }
    Ok(out)
}

fn to_f32(dtype: burn::store::pytorch_reader::DType, bytes: &[u8]) -> Option<Vec<f32>> {
    use burn::store::pytorch_reader::DType as T;
    Some(match dtype {
        T::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_ne_bytes(c.try_into().unwrap()))
            .collect(),
        T::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_ne_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        T::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_ne_bytes([c[0], c[1]]).to_f32())
            .collect(),
        T::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_ne_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

/// Read the f32 tensors of a safetensors file whose keys start with `prefix` (prefix removed).
/// An empty prefix reads every tensor.
pub fn read_safetensors(
    path: &Path,
    prefix: &str,
) -> Result<HashMap<String, HostTensor>, WeightsError> {
    let bytes = std::fs::read(path).map_err(|e| WeightsError::Read {
        path: path.display().to_string(),
        why: e.to_string(),
    })?;
    safetensors_from_bytes(&bytes, prefix).map_err(|why| WeightsError::Read {
        path: path.display().to_string(),
        why,
    })
}

/// Parse safetensors bytes (see [`read_safetensors`]).
pub fn safetensors_from_bytes(
    bytes: &[u8],
    prefix: &str,
) -> Result<HashMap<String, HostTensor>, String> {
    use safetensors::{Dtype, SafeTensors};
    let st = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let Some(key) = name.strip_prefix(prefix) else {
            continue;
        };
        let data = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            Dtype::F64 => view
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            _ => continue,
        };
        out.insert(
            key.to_string(),
            HostTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(out)
}

/// Serialise named tensors (already prefixed) to safetensors bytes, with string metadata.
pub fn safetensors_to_bytes(
    tensors: &BTreeMap<String, HostTensor>,
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>, String> {
    use safetensors::tensor::TensorView;
    let raw: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                t.shape.clone(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = raw
        .iter()
        .map(|(k, b, s)| {
            Ok((
                k.clone(),
                TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .map_err(|e| e.to_string())?,
            ))
        })
        .collect::<Result<_, String>>()?;
    safetensors::serialize(views, metadata).map_err(|e| e.to_string())
}
