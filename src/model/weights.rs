//! Weights: initialisation, stable parameter identities, and state dicts on disk.
//!
//! A state dict is a map from the PyTorch reference's keys (`model.1.weight`, ...) to host
//! tensors. We read it from PyTorch `.pth` files (burn's PyTorch reader) and read and write it as
//! safetensors, so our checkpoints load into the reference with `load_state_dict` and back.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::Path;

use burn::module::{Param, ParamId, RunningState};
use burn::prelude::*;
use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

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
        "{path}: missing parameter `{key}`; is this a {what} checkpoint with the same architecture (--generator/--ngf/--blocks/--norm/--dropout/--discriminator/--ndf/--d-layers)?"
    )]
    Missing {
        path: String,
        key: String,
        what: String,
    },
    /// A parameter has another shape than the network's.
    #[error(
        "{path}: parameter `{key}` has shape {found:?} but the network expects {expected:?}; the checkpoint was made with another architecture (--generator/--ngf/--blocks/--norm/--dropout/--discriminator/--ndf/--d-layers)"
    )]
    Shape {
        path: String,
        key: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
}

/// How weights are drawn at the start of a run (`--init-type`, the reference's `init_weights`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum InitType {
    /// N(0, gain): the paper's, with gain 0.02.
    #[default]
    Normal,
    /// Xavier/Glorot normal: N(0, gain * sqrt(2 / (fan_in + fan_out))).
    Xavier,
    /// Kaiming/He normal for ReLU, fan-in mode: N(0, sqrt(2 / fan_in)); the gain is not used.
    Kaiming,
    /// A random orthogonal matrix (rows: output channels) times the gain.
    Orthogonal,
}

/// Weight initialisation: the kind and its gain (`--init-gain`, 0.02 by default).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Init {
    /// The distribution.
    pub kind: InitType,
    /// Its scale.
    pub gain: f32,
}

impl Default for Init {
    fn default() -> Self {
        Init {
            kind: InitType::Normal,
            gain: 0.02,
        }
    }
}

/// The paper's initialisation: weights drawn from N(0, 0.02), biases zero.
pub fn init_normal(net: &mut impl NamedConvs, rng: &mut impl Rng) {
    init_weights(net, Init::default(), rng);
}

/// The reference's `init_weights`: every convolution's weight drawn as `init` says and its bias
/// zero; batch norms' scales from N(1, gain) and their shifts zero.
///
/// Fan-in and fan-out are computed as PyTorch does from the weight as stored: for a transposed
/// convolution (`[in, out, k, k]`) that makes "fan-in" `out * k * k`.
pub fn init_weights(net: &mut impl NamedConvs, init: Init, rng: &mut impl Rng) {
    for conv in net.named_convs() {
        let shape = conv.weight.dims();
        let device = conv.weight.device();
        let w = HostTensor {
            shape: shape.to_vec(),
            data: draw(init, shape, rng),
        };
        set_param(conv.weight, w.to_tensor(&device), true);
        if let Some(bias) = conv.bias {
            let zeros = Tensor::zeros(bias.dims(), &device);
            set_param(bias, zeros, !conv.bias_frozen);
        }
    }
    let normal = Normal::new(1.0f32, init.gain).expect("valid normal");
    for named in net.named_norms() {
        let norm = named.norm;
        let [c] = norm.gamma.dims();
        let device = norm.gamma.device();
        let scale: Vec<f32> = (0..c).map(|_| normal.sample(rng)).collect();
        let scale = Tensor::from_data(TensorData::new(scale, [c]), &device);
        set_param(&mut norm.gamma, scale, true);
        set_param(&mut norm.beta, Tensor::zeros([c], &device), true);
    }
}

/// Values of a weight of `shape` (`[rows, cols, k, k]`) drawn as `init` says.
fn draw(init: Init, shape: [usize; 4], rng: &mut impl Rng) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let field = shape[2] * shape[3];
    let (fan_out, fan_in) = (shape[0] * field, shape[1] * field);
    let normal = |std: f32, rng: &mut _| {
        let d = Normal::new(0.0f32, std).expect("valid normal");
        (0..n).map(|_| d.sample(rng)).collect::<Vec<f32>>()
    };
    match init.kind {
        InitType::Normal => normal(init.gain, rng),
        InitType::Xavier => normal(init.gain * (2.0 / (fan_in + fan_out) as f32).sqrt(), rng),
        InitType::Kaiming => normal((2.0 / fan_in as f32).sqrt(), rng),
        InitType::Orthogonal => orthogonal(shape[0], n / shape[0], init.gain, rng),
    }
}

/// A `rows` x `cols` matrix (row-major) with orthonormal rows or columns, whichever are fewer,
/// times `gain`: Gram-Schmidt on a Gaussian matrix, which is the QR decomposition with the
/// positive diagonal PyTorch's `orthogonal_` normalises to.
fn orthogonal(rows: usize, cols: usize, gain: f32, rng: &mut impl Rng) -> Vec<f32> {
    let normal = Normal::new(0.0f64, 1.0).expect("valid normal");
    // Orthonormalise the `k` vectors of length `len`, the short side's count.
    let (k, len) = (rows.min(cols), rows.max(cols));
    let mut vectors: Vec<Vec<f64>> = (0..k)
        .map(|_| (0..len).map(|_| normal.sample(rng)).collect())
        .collect();
    for i in 0..k {
        let (done, rest) = vectors.split_at_mut(i);
        let v = &mut rest[0];
        for u in done.iter() {
            let dot: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
    }
    let mut out = vec![0.0f32; rows * cols];
    for (i, v) in vectors.iter().enumerate() {
        for (t, x) in v.iter().enumerate() {
            // Fewer rows: the vectors are the rows; fewer columns: they are the columns.
            let at = if rows <= cols {
                i * cols + t
            } else {
                t * cols + i
            };
            out[at] = (*x as f32) * gain;
        }
    }
    out
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
    for named in net.named_norms() {
        named.norm.gamma.id = stable_id(prefix, &named.key, "weight");
        named.norm.beta.id = stable_id(prefix, &named.key, "bias");
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
    for named in net.named_norms() {
        let norm = named.norm;
        for (leaf, value) in [
            ("weight", norm.gamma.val()),
            ("bias", norm.beta.val()),
            ("running_mean", norm.running_mean.value_sync()),
            ("running_var", norm.running_var.value_sync()),
        ] {
            let key = format!("{}.{leaf}", named.key);
            out.insert(key, HostTensor::from_tensor(value));
        }
    }
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
    let mut staged_norms = Vec::new();
    for named in net.named_norms() {
        let shape = named.norm.gamma.dims().to_vec();
        let leaves = ["weight", "bias", "running_mean", "running_var"]
            .map(|leaf| fetch(format!("{}.{leaf}", named.key), shape.clone()));
        let [w, b, m, v] = leaves;
        staged_norms.push([w?, b?, m?, v?]);
    }
    for (named, [w, b, m, v]) in net.named_norms().into_iter().zip(staged_norms) {
        let norm = named.norm;
        let device = norm.gamma.device();
        set_param(&mut norm.gamma, w.to_tensor(&device), true);
        set_param(&mut norm.beta, b.to_tensor(&device), true);
        norm.running_mean = RunningState::new(m.to_tensor(&device));
        norm.running_var = RunningState::new(v.to_tensor(&device));
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn std_of(v: &[f32]) -> f32 {
        let n = v.len() as f32;
        let mean = v.iter().sum::<f32>() / n;
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n).sqrt()
    }

    /// Each `--init-type` draws with the spread of its formula (PyTorch's `init` functions),
    /// for a 64 -> 32 3x3 convolution: fan-in 576, fan-out 288.
    #[test]
    fn init_types_have_their_formulas_spread() {
        let shape = [32, 64, 3, 3];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut spread = |kind, gain| std_of(&draw(Init { kind, gain }, shape, &mut rng));
        let near = |a: f32, b: f32| (a / b - 1.0).abs() < 0.03;
        assert!(near(spread(InitType::Normal, 0.02), 0.02));
        assert!(near(
            spread(InitType::Xavier, 0.5),
            0.5 * (2.0f32 / 864.0).sqrt()
        ));
        // Kaiming ignores the gain: sqrt(2 / fan_in).
        assert!(near(
            spread(InitType::Kaiming, 0.02),
            (2.0f32 / 576.0).sqrt()
        ));
        // Orthonormal rows of 576 values: each entry about 1/sqrt(576).
        assert!(near(spread(InitType::Orthogonal, 1.0), 1.0 / 24.0));
    }

    /// Orthogonal initialisation gives orthonormal rows (fewer rows than columns) or columns
    /// (more rows), scaled by the gain.
    #[test]
    fn orthogonal_is_orthonormal_times_gain() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        for (rows, cols) in [(4, 9), (9, 4)] {
            let m = orthogonal(rows, cols, 2.0, &mut rng);
            let (k, across) = if rows <= cols {
                (rows, true)
            } else {
                (cols, false)
            };
            let at = |v: usize, t: usize| {
                if across {
                    m[v * cols + t]
                } else {
                    m[t * cols + v]
                }
            };
            let len = rows.max(cols);
            for a in 0..k {
                for b in 0..k {
                    let dot: f32 = (0..len).map(|t| at(a, t) * at(b, t)).sum();
                    let want = if a == b { 4.0 } else { 0.0 };
                    assert!(
                        (dot - want).abs() < 1e-4,
                        "{rows}x{cols}: <{a},{b}> = {dot}"
                    );
                }
            }
        }
    }
}
