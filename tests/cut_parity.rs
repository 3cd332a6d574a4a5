//! CUT and FastCUT parity with the PyTorch reference (fixtures in tests/data, see its README):
//! parameter counts, state-dict keys, forward passes through the first iteration's losses, and
//! two full training iterations replaying the reference's patch positions and flips.

mod common;

use std::collections::HashSet;
use std::path::Path;

use burn::module::Module;
use burn::prelude::*;
use common::cut_fixture::{Fixture, Replay, fixtures_json, iterations_match_pytorch, relative};
use common::fixture as data;
use cyclegan::family::cut::{PatchSource, info_nce};
use cyclegan::model::cut::{
    CutDiscriminator, CutGenerator, CutGeneratorConfig, DEFAULT_NCE_LAYERS, PatchHeads,
    infer_cut_generator_config,
};
use cyclegan::model::weights::{init_normal, load_state_dict, state_dict};
use cyclegan::model::{DiscriminatorConfig, GeneratorConfig};

#[test]
fn parameter_counts_match_the_reference() {
    let device = Device::flex();
    let counts = &fixtures_json()["param_counts"];
    let config = CutGeneratorConfig::new(&GeneratorConfig::default(), true);
    let g = CutGenerator::new(&config, &device);
    assert_eq!(
        g.num_params() as u64,
        counts["cut_resnet9_ngf64"].as_u64().unwrap()
    );
    let d = CutDiscriminator::new(&DiscriminatorConfig::default(), true, &device);
    assert_eq!(
        d.num_params() as u64,
        counts["cut_patchgan_n3_ndf64"].as_u64().unwrap()
    );
    let channels: Vec<usize> = DEFAULT_NCE_LAYERS
        .iter()
        .map(|&l| config.channels_at(l).unwrap())
        .collect();
    assert_eq!(channels, [3, 128, 256, 256, 256]);
    let f = PatchHeads::new(&channels, &device);
    assert_eq!(
        f.num_params() as u64,
        counts["patch_sampler_mlp_ngf64"].as_u64().unwrap()
    );
}

/// Our state dicts have exactly the reference's keys (blur buffers included, equal), so
/// PyTorch's strict `load_state_dict` takes them; the layout is found from the keys.
#[test]
fn state_dicts_have_the_reference_keys() {
    let device = Device::flex();
    let fx = Fixture::load("cut");
    let g_dict = fx.sub("init.G.");
    let config = infer_cut_generator_config(&g_dict).unwrap();
    assert_eq!(
        config,
        CutGeneratorConfig {
            ngf: 8,
            blocks: 6,
            antialias_down: true,
            antialias_up: true
        }
    );
    let (mut g, mut d, mut f) = fx.networks(&device);
    for (name, ours) in [
        ("G", state_dict(&mut g)),
        ("D", state_dict(&mut d)),
        ("F", state_dict(&mut f)),
    ] {
        let theirs = fx.sub(&format!("init.{name}."));
        let (a, b): (HashSet<_>, HashSet<_>) = (ours.keys().collect(), theirs.keys().collect());
        assert_eq!(a, b, "{name}: keys differ");
        for (k, v) in &ours {
            assert_eq!(v.shape, theirs[k].shape, "{name}.{k}");
            let diff = v
                .data
                .iter()
                .zip(&theirs[k].data)
                .map(|(x, y)| (x - y).abs());
            assert!(
                diff.fold(0.0, f32::max) == 0.0,
                "{name}.{k} differs after a round trip"
            );
        }
    }

    // A CycleGAN generator's keys: the same network without anti-aliasing.
    let cyclegan = data("generator_resnet9_ngf16.pth");
    let dict = cyclegan::model::weights::read_pth(&cyclegan).unwrap();
    let config = infer_cut_generator_config(&dict).unwrap();
    assert!(config.is_cyclegan_layout(), "{config:?}");
    assert_eq!((config.ngf, config.blocks), (16, 9));
    let mut g = CutGenerator::new(&config, &device);
    load_state_dict(&mut g, &dict, &cyclegan, "generator").unwrap();
    // A discriminator's keys are refused with a reason.
    let err = infer_cut_generator_config(&fx.sub("init.D.")).unwrap_err();
    assert!(err.contains("model.1.weight"), "{err}");
}

/// Forward passes of G (output and the five NCE features), D and the heads with the initial
/// weights, through the first iteration's losses that depend on nothing trained yet.
#[test]
fn forward_passes_match_pytorch() {
    let device = Device::flex();
    let fx = Fixture::load("cut");
    let (g, d, f) = fx.networks(&device);
    let want = &fx.meta["losses_per_step"][0];
    let (real_a, real_b) = (
        fx.input("real_A", 0, &device),
        fx.input("real_B", 0, &device),
    );
    let mse = |x: Tensor<4>, t: f32| -> f32 { x.sub_scalar(t).square().mean().into_scalar() };

    let fake = g.forward(Tensor::cat(vec![real_a.clone(), real_b.clone()], 0));
    assert_eq!(fake.dims(), [2, 3, 64, 64]);
    let checks = [
        ("D_real", mse(d.forward(real_b.clone()), 1.0)),
        ("D_fake", mse(d.forward(fake.clone().narrow(0, 0, 1)), 0.0)),
    ];
    let mut replay = Replay {
        ids: &fx.patch_ids,
        flip: false,
        call: 0,
        layer: 0,
    };
    let mut nce = |src: Tensor<4>, tgt: Tensor<4>| -> f32 {
        let feat_q = g.forward_features(tgt, &DEFAULT_NCE_LAYERS);
        let feat_k = g.forward_features(src, &DEFAULT_NCE_LAYERS);
        let shapes: Vec<[usize; 4]> = feat_k.iter().map(|t| t.dims()).collect();
        assert_eq!(
            shapes,
            [
                [1, 3, 70, 70],
                [1, 16, 64, 64],
                [1, 32, 32, 32],
                [1, 32, 16, 16],
                [1, 32, 16, 16]
            ]
        );
        let ids: Vec<Tensor<1, Int>> = shapes
            .iter()
            .map(|s| {
                let p: Vec<i64> = replay
                    .positions(s[2] * s[3], 64)
                    .into_iter()
                    .map(|i| i as i64)
                    .collect();
                Tensor::from_data(TensorData::new(p, [64]), &device)
            })
            .collect();
        let (qs, ks) = (f.forward(&feat_q, &ids), f.forward(&feat_k, &ids));
        let total: f32 = qs
            .into_iter()
            .zip(ks)
            .map(|(q, k)| info_nce(q, k, 1, 0.07).mean().into_scalar::<f32>())
            .sum();
        total / 5.0
    };
    let nce_x = nce(real_a, fake.clone().narrow(0, 0, 1));
    let nce_y = nce(real_b, fake.narrow(0, 1, 1));
    for (name, got) in checks.into_iter().chain([("NCE", nce_x), ("NCE_Y", nce_y)]) {
        let want = want[name].as_f64().unwrap() as f32;
        let rel = relative(got, want);
        assert!(
            rel <= 1e-4,
            "{name} = {got}, PyTorch {want} (relative {rel:e})"
        );
    }
}

/// The first iteration: the discriminator step (its losses), and the generator's losses
/// against the updated discriminator, PatchNCE with the reference's positions.
#[test]
fn cut_first_iteration_matches_pytorch() {
    iterations_match_pytorch("cut", 1, &Device::flex().autodiff(), false);
}

/// The same for FastCUT, whose first batch the reference flipped.
#[test]
fn fastcut_first_iteration_matches_pytorch() {
    iterations_match_pytorch("fastcut", 1, &Device::flex().autodiff(), false);
}

// Two iterations, against fixtures remade by `scripts/cut_fixtures.py` (tests/data/README.md):
// the shared reference's patch gather makes PyTorch's instance-norm backward at batch size 1 read
// a channels-last gradient as contiguous (`torch.autograd.gradcheck` fails on
// `(instance_norm(x) + x).permute(0, 2, 3, 1).flatten(1, 2)[:, ids, :]`), so its generator
// gradient was not the derivative of its loss (D_fake at iteration 2 was 4.2% / 11% off ours).
// The script gathers with `f.flatten(2)[:, :, ids].transpose(1, 2)` (same forward) and runs the
// two iterations in float64 from the same float32 start: the exact result.
#[test]
fn cut_two_iterations_match_pytorch() {
    iterations_match_pytorch("cut", 2, &Device::flex().autodiff(), false);
}

#[test]
fn fastcut_two_iterations_match_pytorch() {
    iterations_match_pytorch("fastcut", 2, &Device::flex().autodiff(), false);
}

/// PatchNCE on a residual block's output (layers 12 and 16) must pass the true gradient to G:
/// the directional derivative from backpropagation equals central finite differences of the
/// loss. (The reference's PyTorch fails exactly this at batch size 1, see the comment above.)
#[test]
fn patch_nce_gradient_through_residual_blocks_is_the_true_derivative() {
    use rand::SeedableRng;
    let device = Device::flex().autodiff();
    let config = CutGeneratorConfig::new(&GeneratorConfig::resnet(2, 5), true);
    let layers = [4usize, 12, 16];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut g = CutGenerator::new(&config, &device);
    init_normal(&mut g, &mut rng);
    let channels: Vec<usize> = layers
        .iter()
        .map(|&l| config.channels_at(l).unwrap())
        .collect();
    let mut f = PatchHeads::new(&channels, &device);
    init_normal(&mut f, &mut rng);
    let image = |seed: f32| -> Tensor<4> {
        Tensor::<1, Int>::arange(0..3 * 16 * 16, &device)
            .float()
            .mul_scalar(seed)
            .sin()
            .reshape([1, 3, 16, 16])
    };
    let (real, other) = (image(0.37), image(0.11));
    // 8 positions per layer (the block outputs are 4x4, the down convolution 16x16).
    let ids: Vec<Tensor<1, Int>> = [[0i64, 3, 5, 6, 9, 10, 12, 15]; 3]
        .iter()
        .map(|p| Tensor::from_data(TensorData::new(p.to_vec(), [8]), &device))
        .collect();
    let f_fixed = f.clone().no_grad();
    let keys = f_fixed.forward(
        &g.clone().no_grad().forward_features(real.clone(), &layers),
        &ids,
    );
    // The generator's query side: G's features of G(other), as PatchNCE(real, fake) sees them.
    let loss = |g: &CutGenerator| -> Tensor<1> {
        let fake = g.forward(other.clone());
        let qs = f_fixed.forward(&g.forward_features(fake, &layers), &ids);
        let per: Vec<Tensor<1>> = qs
            .into_iter()
            .zip(&keys)
            .map(|(q, k)| info_nce(q, k.clone().detach(), 1, 0.07).mean())
            .collect();
        Tensor::cat(per, 0).mean()
    };
    let grads = loss(&g).backward();

    let dict = state_dict(&mut g);
    for key in [
        "model.1.weight",
        "model.13.conv_block.1.weight",
        "model.18.weight",
    ] {
        let w = &dict[key];
        // A fixed direction with entries in [-1, 1].
        let v: Vec<f32> = (0..w.data.len()).map(|i| (i as f32 * 0.77).cos()).collect();
        let conv_grad = {
            let mut g = g.clone();
            let convs = cyclegan::model::NamedConvs::named_convs(&mut g);
            let conv = convs
                .into_iter()
                .find(|c| format!("{}.weight", c.key) == key)
                .unwrap();
            let grad = conv
                .weight
                .val()
                .grad(&grads)
                .expect("a gradient for the weight");
            grad.into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap()
        };
        let analytic: f32 = conv_grad.iter().zip(&v).map(|(a, b)| a * b).sum();
        // Small steps: with 0.07 temperature the loss curves fast (steps of 1e-3 are off by 2x).
        let eps = 5e-6f32;
        let shifted = |sign: f32| -> f32 {
            let mut d = dict.clone();
            let t = d.get_mut(key).unwrap();
            for (x, dv) in t.data.iter_mut().zip(&v) {
                *x += sign * eps * dv;
            }
            let mut g2 = CutGenerator::new(&config, &device);
            load_state_dict(&mut g2, &d.into_iter().collect(), Path::new("test"), "G").unwrap();
            loss(&g2.no_grad()).into_scalar::<f32>()
        };
        let numeric = (shifted(1.0) - shifted(-1.0)) / (2.0 * eps);
        let rel = (analytic - numeric).abs() / numeric.abs().max(1e-3);
        println!(
            "{key}: backprop {analytic:.5}, finite differences {numeric:.5} (relative {rel:.1e})"
        );
        assert!(
            rel < 0.05,
            "{key}: backprop {analytic}, finite differences {numeric}"
        );
    }
}
