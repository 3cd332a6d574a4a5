//! Where a 128 px ResNet-6 iteration spends its time: each op type timed alone with its real
//! shapes (burn's own convolution formulas, the ones autodiff calls), scaled by how often it
//! runs per iteration.

use burn::nn::InstanceNormConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::module::{conv_transpose2d, conv2d, conv2d_weight_backward};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, PadMode};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::Settings;
use super::flop::ITERATION;
use super::timing::{median, time_runs};
use super::workloads::random_image;
use crate::family::cyclegan::{Discriminators, Generators};
use crate::model::conv::Padding;
use crate::model::layers::ConvLayer;
use crate::model::weights::Init;
use crate::model::{DiscriminatorConfig, GeneratorConfig, PatchDiscriminator, ResnetGenerator};

/// Image side and residual blocks of the profiled iteration.
pub const PROFILE_SIZE: usize = 128;
const PROFILE_BLOCKS: usize = 6;

/// One op type's share of an iteration.
#[derive(Debug, Clone)]
pub struct OpRow {
    /// e.g. `conv backward: weight`, `instance norm fwd+bwd`.
    pub op: String,
    /// Seconds per iteration.
    pub seconds: f64,
    /// Billions of floating-point operations per iteration (0 for non-convolutions).
    pub gflop: f64,
}

/// One distinct convolution timed alone, one call each.
#[derive(Debug, Clone)]
pub struct LayerTimes {
    /// The layer, for people ([`layer_label`]).
    pub layer: String,
    /// Seconds of the forward, the input gradient and the weight gradient.
    pub forward: f64,
    pub input_grad: f64,
    pub weight_grad: f64,
}

/// The profile of one iteration.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Per op type, in order of first appearance.
    pub ops: Vec<OpRow>,
    /// Per distinct convolution.
    pub layers: Vec<LayerTimes>,
    /// The two networks' convolutions (for [`super::compare::compare_kernels`]).
    pub conv_layers: Vec<ConvLayer>,
}

impl Profile {
    /// Seconds per iteration, all ops together.
    pub fn total(&self) -> f64 {
        self.ops.iter().map(|r| r.seconds).sum()
    }

    fn add(&mut self, op: String, seconds: f64, gflop: f64) {
        if let Some(r) = self.ops.iter_mut().find(|r| r.op == op) {
            r.seconds += seconds;
            r.gflop += gflop;
        } else {
            self.ops.push(OpRow { op, seconds, gflop });
        }
    }
}

/// A short name for a layer: role, kernel, stride and channels, e.g. `G block 3x3/1 256->256`.
pub fn layer_label(l: &ConvLayer) -> String {
    let t = if l.transposed { "T" } else { "" };
    format!(
        "{} {t}{k}x{k}/{s} {}->{}",
        l.role,
        l.in_channels,
        l.out_channels,
        k = l.kernel,
        s = l.stride
    )
}

/// Median seconds of `f` over a few runs (at least 1 warm-up and 3 timed).
pub fn op_time(settings: &Settings, f: impl FnMut()) -> f64 {
    median(&time_runs(settings.warmup.max(1), settings.iters.max(3), f))
}

/// Profile a 128 px ResNet-6 iteration.
pub fn profile_iteration(settings: &Settings) -> Profile {
    let gconf = GeneratorConfig::resnet(64, PROFILE_BLOCKS);
    let dconf = DiscriminatorConfig::default();
    let dev = Device::flex();
    let ad = Device::flex().autodiff();
    let c = ITERATION;
    let size = PROFILE_SIZE;
    let gl = ResnetGenerator::new(&gconf, &dev).conv_layers(size, size);
    let dl = PatchDiscriminator::new(&dconf, &dev).conv_layers(size, size);
    let mut profile = Profile {
        ops: Vec::new(),
        layers: Vec::new(),
        conv_layers: gl.iter().chain(&dl).copied().collect(),
    };

    // Identical layers (the residual convolutions) are timed once.
    let mut seen: Vec<(ConvLayer, [f64; 3])> = Vec::new();
    let nets = gl.iter().enumerate().map(|(i, l)| (l, c.generator(i)));
    let nets = nets.chain(dl.iter().enumerate().map(|(i, l)| (l, c.discriminator(i))));
    for (l, passes) in nets {
        let t = match seen.iter().find(|s| s.0 == *l) {
            Some(s) => s.1,
            None => {
                let t = time_conv(settings, l, &dev);
                seen.push((*l, t));
                t
            }
        };
        let kind = if l.transposed {
            "conv_transpose"
        } else {
            "conv"
        };
        let gflop = l.flop() / 1e9;
        let parts = ["forward", "backward: input", "backward: weight"];
        for ((part, secs), n) in parts.iter().zip(t).zip(passes) {
            profile.add(format!("{kind} {part}"), secs * n, gflop * n);
        }
    }
    profile.layers = seen
        .iter()
        .map(|(l, [f, x, w])| LayerTimes {
            layer: layer_label(l),
            forward: *f,
            input_grad: *x,
            weight_grad: *w,
        })
        .collect();

    // Instance norm, reflection padding and activations, forward + backward on autodiff tensors.
    let nets = gl.iter().map(|l| (l, c.g_fwd));
    for (l, per) in nets.chain(dl.iter().map(|l| (l, c.d_fwd))) {
        let [oh, ow] = l.output;
        if l.norm {
            let t = time_norm(settings, l.out_channels, oh, ow, &ad);
            profile.add("instance norm fwd+bwd".into(), t * per, 0.0);
        }
        let t = time_act(settings, l.out_channels, oh, ow, &ad);
        profile.add("activation fwd+bwd".into(), t * per, 0.0);
        if let Padding::Reflect(p) = l.padding {
            let t = time_reflect(settings, l.in_channels, l.input[0], p, &ad);
            profile.add("reflection pad fwd+bwd".into(), t * per, 0.0);
        }
    }

    let t = time_adam(settings, &gconf, &dconf, &ad);
    profile.add("Adam (G + D)".into(), t, 0.0);
    profile
}

/// Forward, input-gradient and weight-gradient seconds of one convolution with burn's own
/// backward formulas (reflection padding excluded: it is timed apart).
fn time_conv(settings: &Settings, l: &ConvLayer, dev: &Device) -> [f64; 3] {
    // burn's convolution sees the reflection-padded input, with zero padding of its own.
    let (h, w, pad) = match l.padding {
        Padding::Reflect(p) => (l.input[0] + 2 * p, l.input[1] + 2 * p, 0),
        Padding::Zeros(p) => (l.input[0], l.input[1], p),
    };
    let (k, s) = (l.kernel, l.stride);
    let x: Tensor<4> = Tensor::random([1, l.in_channels, h, w], Distribution::Default, dev);
    let [oh, ow] = l.output;
    let dy: Tensor<4> = Tensor::random([1, l.out_channels, oh, ow], Distribution::Default, dev);
    let run = |t: Tensor<4>| {
        let _ = t.into_data();
    };
    let time = |f: &mut dyn FnMut() -> Tensor<4>| op_time(settings, || run(f()));
    if l.transposed {
        let wt: Tensor<4> = Tensor::random(
            [l.in_channels, l.out_channels, k, k],
            Distribution::Default,
            dev,
        );
        let extra = |i: usize, o: usize| o + 2 * pad - ((i - 1) * s + k);
        let opts =
            ConvTransposeOptions::new([s; 2], [pad; 2], [extra(h, oh), extra(w, ow)], [1, 1], 1);
        let copts = ConvOptions::new([s; 2], [pad; 2], [1, 1], 1);
        let f = time(&mut || conv_transpose2d(x.clone(), wt.clone(), None, opts.clone()));
        let xg = time(&mut || conv2d(dy.clone(), wt.clone(), None, copts.clone()));
        // burn's conv_transpose2d weight gradient: a convolution of the swapped tensors.
        let wg = time(&mut || {
            let dopts = ConvOptions::new([1, 1], [pad; 2], [s; 2], 1);
            conv2d(
                dy.clone().swap_dims(0, 1),
                x.clone().swap_dims(0, 1),
                None,
                dopts,
            )
            .swap_dims(0, 1)
        });
        [f, xg, wg]
    } else {
        let wt: Tensor<4> = Tensor::random(
            [l.out_channels, l.in_channels, k, k],
            Distribution::Default,
            dev,
        );
        let opts = ConvOptions::new([s; 2], [pad; 2], [1, 1], 1);
        let extra = |i: usize, o: usize| (i + 2 * pad - k) - (o - 1) * s;
        let topts =
            ConvTransposeOptions::new([s; 2], [pad; 2], [extra(h, oh), extra(w, ow)], [1, 1], 1);
        let f = time(&mut || conv2d(x.clone(), wt.clone(), None, opts.clone()));
        let xg = time(&mut || conv_transpose2d(dy.clone(), wt.clone(), None, topts.clone()));
        let wg =
            time(&mut || conv2d_weight_backward(x.clone(), wt.clone(), dy.clone(), opts.clone()));
        [f, xg, wg]
    }
}

fn time_norm(settings: &Settings, ch: usize, h: usize, w: usize, ad: &Device) -> f64 {
    let norm = InstanceNormConfig::new(ch).with_affine(false).init(ad);
    let x: Tensor<4> = Tensor::random([1, ch, h, w], Distribution::Default, ad).require_grad();
    let g: Tensor<4> = Tensor::random([1, ch, h, w], Distribution::Default, ad);
    op_time(settings, || {
        let y = norm.forward(x.clone()) * g.clone();
        let _ = y.sum().backward();
    }) - time_mul_sum(settings, ch, h, w, ad)
}

fn time_act(settings: &Settings, ch: usize, h: usize, w: usize, ad: &Device) -> f64 {
    let x: Tensor<4> = Tensor::random([1, ch, h, w], Distribution::Default, ad).require_grad();
    let g: Tensor<4> = Tensor::random([1, ch, h, w], Distribution::Default, ad);
    op_time(settings, || {
        let y = burn::tensor::activation::relu(x.clone()) * g.clone();
        let _ = y.sum().backward();
    }) - time_mul_sum(settings, ch, h, w, ad)
}

/// The cost of the `* g` and `sum` that the norm and activation timings wrap their op in.
fn time_mul_sum(settings: &Settings, ch: usize, h: usize, w: usize, ad: &Device) -> f64 {
    let x: Tensor<4> = Tensor::random([1, ch, h, w], Distribution::Default, ad).require_grad();
    let g: Tensor<4> = Tensor::random([1, ch, h, w], Distribution::Default, ad);
    op_time(settings, || {
        let _ = (x.clone() * g.clone()).sum().backward();
    })
}

fn time_reflect(settings: &Settings, ch: usize, s: usize, p: usize, ad: &Device) -> f64 {
    let x: Tensor<4> = Tensor::random([1, ch, s, s], Distribution::Default, ad).require_grad();
    let padded = [1, ch, s + 2 * p, s + 2 * p];
    let g: Tensor<4> = Tensor::random(padded, Distribution::Default, ad);
    let base = {
        let y: Tensor<4> = Tensor::random(padded, Distribution::Default, ad).require_grad();
        op_time(settings, || {
            let _ = (y.clone() * g.clone()).sum().backward();
        })
    };
    op_time(settings, || {
        let y = x.clone().pad([(p, p), (p, p)], PadMode::Reflect) * g.clone();
        let _ = y.sum().backward();
    }) - base
}

/// Adam over both generators and both discriminators.
fn time_adam(
    settings: &Settings,
    gconf: &GeneratorConfig,
    dconf: &DiscriminatorConfig,
    ad: &Device,
) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut gens = Generators::init(gconf, Init::default(), ad, &mut rng);
    let mut discs = Discriminators::init([*dconf; 2], Init::default(), ad, &mut rng);
    let (mut opt_g, mut opt_d) = (AdamConfig::new().init(), AdamConfig::new().init());
    // Gradients for every parameter from tiny images; their cost is timed apart and removed.
    let xg = random_image(8, 8, ad);
    let xd = random_image(32, 32, ad);
    let grads = |gens: &Generators, discs: &Discriminators| {
        let lg = gens.g_a.forward(xg.clone()).sum() + gens.g_b.forward(xg.clone()).sum();
        let ld = discs.d_a.forward(xd.clone()).sum() + discs.d_b.forward(xd.clone()).sum();
        (
            GradientsParams::from_grads(lg.backward(), gens),
            GradientsParams::from_grads(ld.backward(), discs),
        )
    };
    let base = op_time(settings, || {
        let _ = grads(&gens, &discs);
    });
    op_time(settings, || {
        let (g, d) = grads(&gens, &discs);
        gens = opt_g.step(1e-4, gens.clone(), g);
        discs = opt_d.step(1e-4, discs.clone(), d);
    }) - base
}
