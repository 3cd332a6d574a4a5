//! The CUT/FastCUT parity fixtures (tests/data, see its README) and the two-iteration
//! comparison that `tests/cut_parity.rs` (float32) and `tests/cut_parity_f64.rs` (float64) run.

use std::collections::HashMap;
use std::path::PathBuf;

use burn::prelude::*;
use cyclegan::family::cut::{Cut, CutOptions, PatchSource};
use cyclegan::model::DiscriminatorConfig;
use cyclegan::model::cut::{
    CutDiscriminator, CutGenerator, DEFAULT_NCE_LAYERS, PatchHeads, infer_cut_generator_config,
};
use cyclegan::model::weights::{HostTensor, load_state_dict, read_safetensors};

use super::fixture as data;

pub fn fixtures_json() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(data("cut_fixtures.json")).unwrap()).unwrap()
}

/// One mode's fixture: float tensors by key, and the recorded patch positions.
pub struct Fixture {
    pub path: PathBuf,
    pub all: HashMap<String, HostTensor>,
    pub patch_ids: HashMap<String, Vec<i64>>,
    pub meta: serde_json::Value,
}

impl Fixture {
    pub fn load(mode: &str) -> Self {
        let path = data(&format!("{mode}_two_steps.safetensors"));
        let all = read_safetensors(&path, "").unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let patch_ids = st
            .tensors()
            .into_iter()
            .filter(|(k, _)| k.starts_with("patch_ids."))
            .map(|(k, v)| {
                assert_eq!(v.dtype(), safetensors::Dtype::I64);
                let ids = v
                    .data()
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                (k, ids)
            })
            .collect();
        Fixture {
            path,
            all,
            patch_ids,
            meta: fixtures_json()[mode].clone(),
        }
    }

    pub fn sub(&self, prefix: &str) -> HashMap<String, HostTensor> {
        self.all
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
            .collect()
    }

    /// G, D and F with the reference's initial weights, on `device`.
    pub fn networks(&self, device: &Device) -> (CutGenerator, CutDiscriminator, PatchHeads) {
        let g_dict = self.sub("init.G.");
        let config = infer_cut_generator_config(&g_dict).unwrap();
        let mut g = CutGenerator::new(&config, device);
        load_state_dict(&mut g, &g_dict, &self.path, "G").unwrap();
        let mut d = CutDiscriminator::new(&DiscriminatorConfig::patch(8, 3), true, device);
        load_state_dict(&mut d, &self.sub("init.D."), &self.path, "D").unwrap();
        let channels: Vec<usize> = DEFAULT_NCE_LAYERS
            .iter()
            .map(|&l| config.channels_at(l).unwrap())
            .collect();
        let mut f = PatchHeads::new(&channels, device);
        load_state_dict(&mut f, &self.sub("init.F."), &self.path, "F").unwrap();
        (g, d, f)
    }

    pub fn input(&self, name: &str, step: usize, device: &Device) -> Tensor<4> {
        self.all[&format!("{name}.{step}")].to_tensor(device)
    }
}

/// Replays the reference's flips and patch positions, in call order.
pub struct Replay<'a> {
    pub ids: &'a HashMap<String, Vec<i64>>,
    pub flip: bool,
    pub call: usize,
    pub layer: usize,
}

impl PatchSource for Replay<'_> {
    fn flip(&mut self) -> bool {
        self.flip
    }
    fn positions(&mut self, n: usize, count: usize) -> Vec<usize> {
        let key = format!("patch_ids.{}.{}", self.call, DEFAULT_NCE_LAYERS[self.layer]);
        let ids = &self.ids[&key];
        assert_eq!(
            ids.len(),
            count,
            "{key}: the reference sampled {} positions",
            ids.len()
        );
        assert!(
            ids.iter().all(|&i| (i as usize) < n),
            "{key}: positions beyond {n}"
        );
        self.layer += 1;
        if self.layer == DEFAULT_NCE_LAYERS.len() {
            self.layer = 0;
            self.call += 1;
        }
        ids.iter().map(|&i| i as usize).collect()
    }
}

pub fn relative(got: f32, want: f32) -> f32 {
    (got - want).abs() / want.abs().max(1e-6)
}

pub fn fixture_options(mode: &str) -> CutOptions {
    let base = if mode == "cut" {
        CutOptions::cut()
    } else {
        CutOptions::fastcut()
    };
    CutOptions {
        num_patches: fixtures_json()["num_patches"].as_u64().unwrap() as usize,
        ..base
    }
}

/// `steps` full iterations (1 or 2) from the reference's initial weights, replaying its patch
/// positions (and FastCUT's flip of the first batch): every loss of each iteration, then, after
/// two, every weight of G, D and F.
///
/// `device` computes in float32 (the tolerances of [`exact_two_iterations_tolerance`]) or, with
/// `float64`, in float64: then every loss must be within 1e-6 and the weights within the
/// CycleGAN parity tolerance of the exact result (99.5% within 2e-5, all within 5e-4).
pub fn iterations_match_pytorch(mode: &str, steps: usize, device: &Device, float64: bool) {
    let fx = Fixture::load(mode);
    let device = device.clone();
    let (g, d, f) = fx.networks(&device);
    let mut model = Cut::from_networks(g, d, f, fixture_options(mode), (0.5, 0.999));
    let mut replay = Replay {
        ids: &fx.patch_ids,
        flip: false,
        call: 0,
        layer: 0,
    };
    for step in 0..steps {
        replay.flip = fx.meta["flip_per_step"][step].as_bool().unwrap();
        let (real_a, real_b) = (
            fx.input("real_A", step, &device),
            fx.input("real_B", step, &device),
        );
        let (losses, visuals) = model.step_with(real_a, real_b, 2e-4, &mut replay, step == 1);
        let expected = fx.meta["losses_per_step"][step].as_object().unwrap();
        let names: Vec<&str> = losses.iter().map(|(n, _)| *n).collect();
        let mut want_names: Vec<&str> = expected.keys().map(|k| k.as_str()).collect();
        want_names.sort();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, want_names, "loss names");
        let tol = match (float64, step) {
            (true, _) => 1e-6,
            (false, 0) => 1e-4,
            (false, _) => 1e-3,
        };
        let mut worst = 0.0f32;
        for (name, got) in losses {
            let want = expected[name].as_f64().unwrap() as f32;
            let rel = relative(got, want);
            worst = worst.max(rel);
            assert!(
                rel <= tol,
                "{mode} iteration {}: {name} = {got}, PyTorch {want} (relative {rel:e})",
                step + 1
            );
        }
        println!(
            "{mode} iteration {}: losses within {worst:.2e} relative (tolerance {tol:e})",
            step + 1
        );
        if let Some(v) = visuals {
            assert_eq!(v.len(), if mode == "cut" { 4 } else { 3 });
        }
    }
    let calls = fx.meta["nce_calls_per_step"].as_u64().unwrap() as usize;
    assert_eq!(
        (replay.call, replay.layer),
        (steps * calls, 0),
        "recorded NCE calls replayed"
    );
    if steps < 2 {
        return;
    }

    let (mut total, mut close, mut worst) = (0usize, 0usize, 0.0f32);
    let mut worst_key = String::new();
    for (key, got) in model.state_dict() {
        let want = &fx.all[&format!("after2.{key}")];
        assert_eq!(got.shape, want.shape, "{key}");
        for (a, b) in got.data.iter().zip(&want.data) {
            let d = (a - b).abs();
            total += 1;
            close += usize::from(d <= 2e-5);
            if d > worst {
                worst = d;
                worst_key = key.clone();
            }
        }
    }
    let share = close as f64 / total as f64;
    // The yardstick: PyTorch's own float32 run of the same two iterations against the exact
    // result (see `exact_two_iterations_tolerance`).
    let yard = &fx.meta["pytorch_f32_vs_f64"];
    let (min_share, max_worst) = if float64 {
        (0.995, 5e-4)
    } else {
        exact_two_iterations_tolerance(
            yard["share_within_2e-5"].as_f64().unwrap(),
            yard["worst"].as_f64().unwrap(),
        )
    };
    println!(
        "{mode} after two iterations: {:.3}% of {total} weights within 2e-5 of the exact result \
         (PyTorch float32: {:.3}%), worst {worst:e} ({worst_key}; PyTorch float32: {:e})",
        share * 100.0,
        yard["share_within_2e-5"].as_f64().unwrap() * 100.0,
        yard["worst"].as_f64().unwrap(),
    );
    assert!(
        share >= min_share,
        "{mode}: only {:.4}% of weights within 2e-5 (at least {:.4}% required)",
        share * 100.0,
        min_share * 100.0
    );
    assert!(
        f64::from(worst) <= max_worst,
        "{mode}: {worst_key} differs from the exact result by {worst} (at most {max_worst:e})"
    );
}

/// The weight tolerance after two CUT/FastCUT iterations, from how close PyTorch's own float32
/// run comes to the exact (float64) result: `(share of entries within 2e-5, worst difference)`.
///
/// The CycleGAN tolerance (99.5% within 2e-5, all within 5e-4) cannot be met here by any float32
/// implementation: PyTorch's float32 run reaches 98.6% (CUT) and 97.6% (FastCUT), worst 4.0e-4
/// and 8.0e-4 (tests/data/cut_fixtures.json). The logits are scaled by 1/0.07, and Adam's first
/// steps move a weight by about +-lr whatever its gradient's size, so every weight whose exact
/// gradient is within float32 rounding of zero can land up to 2 lr away. Ours must come as close
/// as PyTorch's float32 run does, less half a percentage point of entries, and no entry further
/// than PyTorch's worst (or 5e-4) plus 10%.
pub fn exact_two_iterations_tolerance(pytorch_share: f64, pytorch_worst: f64) -> (f64, f64) {
    (
        (pytorch_share - 0.005).min(0.995),
        pytorch_worst.max(5e-4) * 1.1,
    )
}
