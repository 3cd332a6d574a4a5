//! CUT's ResNet generator: CycleGAN's, with anti-aliased down- and upsampling.

use std::collections::HashMap;

use burn::nn::Initializer;
use burn::nn::InstanceNorm;
use burn::nn::conv::{Conv2d, ConvTranspose2d, ConvTranspose2dConfig};
use burn::prelude::*;
use burn::tensor::activation::{relu, tanh};
use burn::tensor::ops::PadMode;
use serde::{Deserialize, Serialize};

use super::antialias::{blur_down, blur_up, down_filter, up_filter};
use super::{DEFAULT_NCE_LAYERS, conv};
use crate::model::conv::Padding;
use crate::model::conv::conv_transpose;
use crate::model::generator::{conv2d, instance_norm};
use crate::model::norm::instance_norm_act;
use crate::model::precision::Precision;
use crate::model::weights::HostTensor;
use crate::model::{GeneratorConfig, NamedConv, NamedConvs};

/// Shape of a [`CutGenerator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutGeneratorConfig {
    /// Filters in the first layer (`ngf`); the bottleneck has 4x as many.
    pub ngf: usize,
    /// Residual blocks: 9 in the authors' default, 6 for 128 px.
    pub blocks: usize,
    /// Downsampling by a stride-1 convolution and a blur with stride 2 (the authors' default);
    /// `false`: a stride-2 convolution, as CycleGAN (`--no_antialias`).
    pub antialias_down: bool,
    /// Upsampling by a blur with stride 2 and a 3x3 convolution (the authors' default); `false`:
    /// a transposed convolution, as CycleGAN (`--no_antialias_up`).
    pub antialias_up: bool,
}

impl CutGeneratorConfig {
    /// A generator of `shape`, anti-aliased both ways or neither.
    pub fn new(shape: &GeneratorConfig, antialias: bool) -> Self {
        CutGeneratorConfig {
            ngf: shape.ngf,
            blocks: shape.blocks,
            antialias_down: antialias,
            antialias_up: antialias,
        }
    }

    /// True when the network is exactly CycleGAN's [`crate::model::ResnetGenerator`] (same
    /// layers, same state-dict keys): no anti-aliasing either way.
    pub fn is_cyclegan_layout(&self) -> bool {
        !self.antialias_down && !self.antialias_up
    }

    /// The reference's `nn.Sequential`, one entry per index.
    fn layout(&self) -> Vec<Layer> {
        let (ngf, c2, c4) = (self.ngf, self.ngf * 2, self.ngf * 4);
        let mut l = vec![
            Layer::ReflectPad,
            Layer::Conv(ngf),
            Layer::Norm(ngf),
            Layer::Relu(ngf),
        ];
        for c in [c2, c4] {
            l.extend([Layer::Conv(c), Layer::Norm(c), Layer::Relu(c)]);
            if self.antialias_down {
                l.push(Layer::BlurDown(c));
            }
        }
        l.extend((0..self.blocks).map(|_| Layer::Block(c4)));
        for (cin, c) in [(c4, c2), (c2, ngf)] {
            if self.antialias_up {
                l.extend([Layer::BlurUp(cin), Layer::Conv(c)]);
            } else {
                l.push(Layer::Transposed(c));
            }
            l.extend([Layer::Norm(c), Layer::Relu(c)]);
        }
        l.extend([Layer::ReflectPad, Layer::Conv(3), Layer::Tanh]);
        l
    }

    /// Number of modules in the reference's `model` sequence; NCE layers index it.
    pub fn num_layers(&self) -> usize {
        self.layout().len()
    }

    /// Channels of the output of `model[index]`, `None` past the end.
    pub fn channels_at(&self, index: usize) -> Option<usize> {
        self.layout().get(index).map(|l| match *l {
            Layer::ReflectPad => {
                if index == 0 {
                    3
                } else {
                    self.ngf
                }
            }
            Layer::Conv(c)
            | Layer::Norm(c)
            | Layer::Relu(c)
            | Layer::BlurDown(c)
            | Layer::BlurUp(c)
            | Layer::Block(c)
            | Layer::Transposed(c) => c,
            Layer::Tanh => 3,
        })
    }
}

/// One module of the reference's `model` sequence, with its output channels.
#[derive(Debug, Clone, Copy)]
enum Layer {
    /// Reflection pad 3 before a 7x7 convolution. The convolution pads its input itself, so in
    /// the forward pass this is a no-op unless its output is asked for as a feature.
    ReflectPad,
    Conv(usize),
    Norm(usize),
    Relu(usize),
    BlurDown(usize),
    BlurUp(usize),
    Block(usize),
    Transposed(usize),
    Tanh,
}

/// A residual block as in CycleGAN: `x + norm(conv(relu(norm(conv(x)))))`, 3x3 convolutions
/// with reflection padding.
#[derive(Module, Debug)]
struct Block {
    first: Conv2d,
    second: Conv2d,
    norm: InstanceNorm,
}

impl Block {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = conv(&self.first, x.clone(), Padding::Reflect(1));
        let y = instance_norm_act(&self.norm, y, 0.0);
        x + instance_norm_act(&self.norm, conv(&self.second, y, Padding::Reflect(1)), 1.0)
    }
}

/// The generator of CUT and FastCUT (Park et al. 2020): CycleGAN's ResNet generator, with the
/// stride-2 convolutions replaced by stride-1 ones followed by a blur with stride 2, and the
/// transposed convolutions by a blur upsampling followed by a 3x3 convolution (each switchable,
/// see [`CutGeneratorConfig`]).
///
/// Parameters are named as the authors' checkpoints (`model.N.*`), so their `.pth` files load
/// (see [`infer_cut_generator_config`]). Input and output are images in [-1, 1],
/// `[batch, 3, H, W]` with H and W multiples of 4.
#[derive(Module, Debug)]
pub struct CutGenerator {
    /// The plain convolutions in sequence order: stem, two down, (two up,) head.
    convs: Vec<Conv2d>,
    /// The transposed convolutions of the CycleGAN-style upsampling; empty when anti-aliased.
    transposed: Vec<ConvTranspose2d>,
    blocks: Vec<Block>,
    /// One instance norm per width: ngf, 2 ngf, 4 ngf.
    norms: Vec<InstanceNorm>,
    /// The float type of the convolutions (not a parameter; float32 unless set).
    #[module(skip)]
    precision: Precision,
}

impl CutGenerator {
    /// A generator with zero weights; use [`crate::model::weights::init_normal`] to initialise it.
    pub fn new(config: &CutGeneratorConfig, device: &Device) -> Self {
        let (ngf, c2, c4) = (config.ngf, config.ngf * 2, config.ngf * 4);
        let down_stride = if config.antialias_down { 1 } else { 2 };
        let mut convs = vec![
            conv2d(3, ngf, 7, 1, 0, true, device),
            conv2d(ngf, c2, 3, down_stride, 1, true, device),
            conv2d(c2, c4, 3, down_stride, 1, true, device),
        ];
        let mut transposed = Vec::new();
        for (cin, cout) in [(c4, c2), (c2, ngf)] {
            if config.antialias_up {
                convs.push(conv2d(cin, cout, 3, 1, 1, true, device));
            } else {
                transposed.push(
                    ConvTranspose2dConfig::new([cin, cout], [3, 3])
                        .with_stride([2, 2])
                        .with_padding([1, 1])
                        .with_padding_out([1, 1])
                        .with_initializer(Initializer::Zeros)
                        .init(device),
                );
            }
        }
        convs.push(conv2d(ngf, 3, 7, 1, 0, true, device));
        let block = || Block {
            first: conv2d(c4, c4, 3, 1, 0, true, device),
            second: conv2d(c4, c4, 3, 1, 0, true, device),
            norm: instance_norm(c4, device),
        };
        CutGenerator {
            convs,
            transposed,
            blocks: (0..config.blocks).map(|_| block()).collect(),
            norms: [ngf, c2, c4]
                .into_iter()
                .map(|c| instance_norm(c, device))
                .collect(),
            precision: Precision::F32,
        }
    }

    /// Compute the convolutions in `precision` (input, output and features stay float32).
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    /// The configuration this generator was built with.
    pub fn config(&self) -> CutGeneratorConfig {
        let [ngf, _, _, _] = self.convs[0].weight.dims();
        CutGeneratorConfig {
            ngf,
            blocks: self.blocks.len(),
            antialias_down: self.convs[1].stride == [1, 1],
            antialias_up: self.transposed.is_empty(),
        }
    }

    /// Translate a batch of images `[batch, 3, H, W]` in [-1, 1]; H and W must be multiples of 4.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (out, _) = self.run(x, &[]);
        out.expect("a full pass has an output")
    }

    /// The outputs of `model[i]` for each `i` in `layers` (ascending), as the reference's
    /// `G(x, layers)`; the pass stops after the last one. PatchNCE uses 0, 4, 8, 12, 16: the
    /// padded input, the two downsampling convolutions before their norm, and the outputs of
    /// residual blocks 1 and 5.
    pub fn forward_features(&self, x: Tensor<4>, layers: &[usize]) -> Vec<Tensor<4>> {
        assert!(!layers.is_empty(), "forward_features: no layers asked for");
        self.run(x, layers).1
    }

    /// The pass through `model`, recording `layers`; with none, the whole pass and its output.
    fn run(&self, x: Tensor<4>, layers: &[usize]) -> (Option<Tensor<4>>, Vec<Tensor<4>>) {
        let mut x = self.precision.enter(x);
        let mut feats = Vec::with_capacity(layers.len());
        let (mut conv_i, mut block_i, mut transposed_i) = (0, 0, 0);
        let mut pending_pad = None;
        let config = self.config();
        let norm = |c: usize| &self.norms[(c / config.ngf).ilog2() as usize];
        let layout = config.layout();
        // Set when a norm applied the ReLU that follows it (one pass over memory for both).
        let mut relu_done = false;
        for (i, &layer) in layout.iter().enumerate() {
            let wanted = layers.contains(&i);
            x = match layer {
                Layer::ReflectPad => {
                    pending_pad = Some(Padding::Reflect(3));
                    if wanted {
                        let padded = x.clone().pad([(3, 3), (3, 3)], PadMode::Reflect);
                        feats.push(self.precision.leave(padded));
                    }
                    x
                }
                Layer::Conv(_) => {
                    let c = &self.convs[conv_i];
                    conv_i += 1;
                    // The 7x7 convolutions follow a reflection pad, the 3x3 ones pad with zeros.
                    conv(c, x, pending_pad.take().unwrap_or(Padding::Zeros(1)))
                }
                Layer::Norm(c) => {
                    relu_done = !wanted && matches!(layout.get(i + 1), Some(Layer::Relu(_)));
                    instance_norm_act(norm(c), x, if relu_done { 0.0 } else { 1.0 })
                }
                Layer::Relu(_) if std::mem::take(&mut relu_done) => x,
                Layer::Relu(_) => relu(x),
                Layer::BlurDown(_) => blur_down(x),
                Layer::BlurUp(_) => blur_up(x),
                Layer::Block(_) => {
                    block_i += 1;
                    self.blocks[block_i - 1].forward(x)
                }
                Layer::Transposed(_) => {
                    transposed_i += 1;
                    conv_transpose(&self.transposed[transposed_i - 1], x)
                }
                Layer::Tanh => tanh(x),
            };
            if wanted && !matches!(layer, Layer::ReflectPad) {
                feats.push(self.precision.leave(x.clone()));
            }
            if layers.last() == Some(&i) {
                return (None, feats);
            }
        }
        (Some(self.precision.leave(x)), feats)
    }
}

impl NamedConvs for CutGenerator {
    /// Keys of the authors' `nn.Sequential` (`model.N`, blocks `model.N.conv_block.{1,5}`).
    ///
    /// A convolution feeding an instance norm has a bias whose true gradient is zero (see
    /// [`NamedConv::bias_frozen`]), unless its raw output is one of PatchNCE's default layers
    /// (`model.4`, and `model.8` when anti-aliased): there the bias shifts the features.
    fn named_convs(&mut self) -> Vec<NamedConv<'_>> {
        let layout = self.config().layout();
        let mut convs = self.convs.iter_mut();
        let mut transposed = self.transposed.iter_mut();
        let mut blocks = self.blocks.iter_mut();
        let mut out = Vec::new();
        for (i, layer) in layout.iter().enumerate() {
            let before_norm = matches!(layout.get(i + 1), Some(Layer::Norm(_)))
                && !DEFAULT_NCE_LAYERS.contains(&i);
            let key = format!("model.{i}");
            let named = match layer {
                Layer::Conv(_) => NamedConv::conv(key, convs.next().expect("conv")),
                Layer::Transposed(_) => {
                    NamedConv::transposed(key, transposed.next().expect("transposed conv"))
                }
                Layer::Block(_) => {
                    let b = blocks.next().expect("block");
                    out.push(
                        NamedConv::conv(format!("{key}.conv_block.1"), &mut b.first).before_norm(),
                    );
                    out.push(
                        NamedConv::conv(format!("{key}.conv_block.5"), &mut b.second).before_norm(),
                    );
                    continue;
                }
                _ => continue,
            };
            out.push(if before_norm {
                named.before_norm()
            } else {
                named
            });
        }
        out
    }

    /// The blur filters (`model.N.filt`), as the authors' modules register them.
    fn buffers(&self) -> Vec<(String, HostTensor)> {
        let layout = self.config().layout();
        layout
            .iter()
            .enumerate()
            .filter_map(|(i, layer)| match *layer {
                Layer::BlurDown(c) => Some((format!("model.{i}.filt"), down_filter(c))),
                Layer::BlurUp(c) => Some((format!("model.{i}.filt"), up_filter(c))),
                _ => None,
            })
            .collect()
    }
}

/// Work out a ResNet generator's shape from its state dict (the authors' CUT checkpoints, ours,
/// or CycleGAN's): width, residual blocks, and which sampling each side uses.
///
/// A CycleGAN generator's dict gives a config without anti-aliasing
/// ([`CutGeneratorConfig::is_cyclegan_layout`]): CUT without anti-aliasing is CycleGAN's
/// network, key for key, so either loader reads it. Errors say what is missing.
pub fn infer_cut_generator_config(
    dict: &HashMap<String, HostTensor>,
) -> Result<CutGeneratorConfig, String> {
    let shape = |key: String| dict.get(&format!("{key}.weight")).map(|t| t.shape.clone());
    let Some(stem) = shape("model.1".into()) else {
        return Err("no `model.1.weight`: not a ResNet generator's state dict".into());
    };
    if stem.len() != 4 || stem[1] != 3 || stem[2..] != [7, 7] {
        return Err(format!(
            "`model.1.weight` has shape {stem:?}, not a ResNet generator's [ngf, 3, 7, 7]"
        ));
    }
    let ngf = stem[0];
    let conv3 = |cout, cin| Some(vec![cout, cin, 3, 3]);
    // Anti-aliased: conv at 4, blur at 7, conv at 8; CycleGAN: convs at 4 and 7.
    let antialias_down = if shape("model.8".into()) == conv3(4 * ngf, 2 * ngf) {
        true
    } else if shape("model.7".into()) == conv3(4 * ngf, 2 * ngf) {
        false
    } else {
        return Err(format!(
            "no downsampling convolution of shape {:?} at `model.7` or `model.8`",
            [4 * ngf, 2 * ngf, 3, 3]
        ));
    };
    let first_block = if antialias_down { 12 } else { 10 };
    let blocks = (first_block..)
        .take_while(|i| dict.contains_key(&format!("model.{i}.conv_block.1.weight")))
        .count();
    let up = first_block + blocks;
    // Anti-aliased: blur at `up`, Conv2d [2ngf, 4ngf, 3, 3] at `up + 1`; CycleGAN:
    // ConvTranspose2d [4ngf, 2ngf, 3, 3] at `up`.
    let antialias_up = if shape(format!("model.{}", up + 1)) == conv3(2 * ngf, 4 * ngf) {
        true
    } else if shape(format!("model.{up}")) == conv3(4 * ngf, 2 * ngf) {
        false
    } else {
        return Err(format!(
            "no upsampling layer after {blocks} residual blocks (`model.{up}` or `model.{}`)",
            up + 1
        ));
    };
    let config = CutGeneratorConfig {
        ngf,
        blocks,
        antialias_down,
        antialias_up,
    };
    let head = config.num_layers() - 2;
    if shape(format!("model.{head}")) != Some(vec![3, ngf, 7, 7]) {
        return Err(format!(
            "no output convolution `model.{head}.weight` of shape {:?}",
            [3, ngf, 7, 7]
        ));
    }
    Ok(config)
}
