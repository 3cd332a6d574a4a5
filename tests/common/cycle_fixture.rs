//! The CycleGAN two-iteration fixtures (tests/data, see its README): the paper's networks
//! (`train_two_steps.safetensors`, `tests/parity.rs`) and the U-Net + PixelGAN pair
//! (`unet_pixel_two_steps.safetensors`, `tests/architectures.rs`) go through the same check.

use std::collections::HashMap;

use burn::prelude::*;
use cyclegan::config::TrainConfig;
use cyclegan::family::cyclegan::{CycleGan, Discriminators, Generators};
use cyclegan::model::weights::{HostTensor, load_state_dict, read_safetensors, state_dict};
use cyclegan::model::{
    CycleGanGenerator, DiscriminatorConfig, GeneratorConfig, PatchDiscriminator,
};

use super::fixture as data;

/// Run two iterations from the fixture `file`'s initial weights and inputs on `device`
/// (autodiff) with networks `g` and `d`, and check them against PyTorch: each iteration's
/// losses (`losses_per_step` of the fixture's JSON entry `expected`) within 1e-4 relative
/// (iteration 1) and 1e-3 (iteration 2), then the weights after both (`after2.*`): at least
/// 99.5% of entries within 2e-5 and all within 5e-4 (the reference README's tolerances).
pub fn two_iterations_match_pytorch(
    file: &str,
    expected: &serde_json::Value,
    g: GeneratorConfig,
    d: DiscriminatorConfig,
    device: &Device,
) {
    let path = data(file);
    let all = read_safetensors(&path, "").unwrap();
    let sub = |prefix: &str| -> HashMap<String, HostTensor> {
        all.iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
            .collect()
    };
    let load_g = |name: &str| {
        let mut net = CycleGanGenerator::new(&g, device);
        load_state_dict(&mut net, &sub(&format!("init.{name}.")), &path, name).unwrap();
        net
    };
    let load_d = |name: &str| {
        let mut net = PatchDiscriminator::new(&d, device);
        load_state_dict(&mut net, &sub(&format!("init.{name}.")), &path, name).unwrap();
        net
    };
    let mut gens = Generators {
        g_a: load_g("G_A"),
        g_b: load_g("G_B"),
    };
    let mut discs = Discriminators {
        d_a: load_d("D_A"),
        d_b: load_d("D_B"),
    };
    gens.assign_stable_ids();
    discs.assign_stable_ids();
    let config = TrainConfig {
        generator: g,
        discriminator: d,
        pool_size: 0,
        ..TrainConfig::default()
    };
    let mut model = CycleGan::from_networks(&config, gens, discs);
    let mut rng = rand::rng();

    for step in 0..2 {
        let real_a = all[&format!("real_A.{step}")].to_tensor(device);
        let real_b = all[&format!("real_B.{step}")].to_tensor(device);
        let (losses, _) = model.step(real_a, real_b, 2e-4, &mut rng, false);
        let want_losses = &expected["losses_per_step"][step];
        let tol = if step == 0 { 1e-4 } else { 1e-3 };
        let mut worst_rel = 0.0f32;
        for (name, _, got) in losses.iter() {
            let want = want_losses[name].as_f64().unwrap() as f32;
            let rel = (got - want).abs() / want.abs().max(1e-6);
            worst_rel = worst_rel.max(rel);
            assert!(
                rel <= tol,
                "{file}, iteration {}: {name} = {got}, PyTorch {want} (relative {rel})",
                step + 1
            );
        }
        println!(
            "{file}, iteration {}: losses within {worst_rel:.2e} relative of PyTorch (tolerance {tol:e})",
            step + 1
        );
    }

    let mut total = 0usize;
    let mut close = 0usize;
    let mut worst = 0.0f32;
    let mut check = |name: &str, net: &mut dyn FnMut() -> cyclegan::model::weights::StateDict| {
        let want = sub(&format!("after2.{name}."));
        for (key, got) in net() {
            let w = &want[&key];
            for (a, b) in got.data.iter().zip(&w.data) {
                let d = (a - b).abs();
                total += 1;
                close += usize::from(d <= 2e-5);
                worst = worst.max(d);
            }
        }
    };
    check("G_A", &mut || state_dict(&mut model.gens.g_a));
    check("G_B", &mut || state_dict(&mut model.gens.g_b));
    check("D_A", &mut || state_dict(&mut model.discs.d_a));
    check("D_B", &mut || state_dict(&mut model.discs.d_b));
    let share = close as f64 / total as f64;
    eprintln!(
        "{file}, after two iterations: {:.3}% of {total} weights within 2e-5 of PyTorch, worst {worst:e}",
        share * 100.0
    );
    assert!(
        share >= 0.995,
        "{file}: only {:.4}% of weights within 2e-5 of PyTorch",
        share * 100.0
    );
    assert!(
        worst <= 5e-4,
        "{file}: a weight differs from PyTorch by {worst}"
    );
}
