//! Parity with the PyTorch reference (fixtures in tests/data, see its README).

mod common;

use common::cycle_fixture::two_iterations_match_pytorch;
use common::{fixture as data, test_device};

use burn::module::Module;
use cyclegan::model::weights::{
    HostTensor, load_state_dict, read_pth, read_safetensors, state_dict,
};
use cyclegan::model::{DiscriminatorConfig, GeneratorConfig, PatchDiscriminator, ResnetGenerator};

fn max_abs_diff(a: &HostTensor, b: &HostTensor) -> f32 {
    assert_eq!(a.shape, b.shape);
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn fixtures_json() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(data("fixtures.json")).unwrap()).unwrap()
}

#[test]
fn generator_forward_matches_pytorch() {
    let device = test_device();
    let mut g = ResnetGenerator::new(&GeneratorConfig::resnet(16, 9), &device);
    let path = data("generator_resnet9_ngf16.pth");
    load_state_dict(&mut g, &read_pth(&path).unwrap(), &path, "generator").unwrap();
    assert_eq!(
        g.num_params() as u64,
        fixtures_json()["generator"]["params"].as_u64().unwrap()
    );
    let io = read_safetensors(&data("generator_resnet9_ngf16_io.safetensors"), "").unwrap();
    let y = HostTensor::from_tensor(g.forward(io["input"].to_tensor(&device)));
    let diff = max_abs_diff(&y, &io["output"]);
    assert!(
        diff <= 1e-4,
        "generator output differs from PyTorch by {diff}"
    );
}

#[test]
fn discriminator_forward_matches_pytorch() {
    let device = test_device();
    let mut d = PatchDiscriminator::new(&DiscriminatorConfig::patch(16, 3), &device);
    let path = data("discriminator_n3_ndf16.pth");
    load_state_dict(&mut d, &read_pth(&path).unwrap(), &path, "discriminator").unwrap();
    assert_eq!(
        d.num_params() as u64,
        fixtures_json()["discriminator"]["params"].as_u64().unwrap()
    );
    let io = read_safetensors(&data("discriminator_n3_ndf16_io.safetensors"), "").unwrap();
    let y = HostTensor::from_tensor(d.forward(io["input"].to_tensor(&device)));
    assert_eq!(y.shape, vec![2, 1, 6, 6]);
    let diff = max_abs_diff(&y, &io["output"]);
    assert!(
        diff <= 1e-4,
        "discriminator output differs from PyTorch by {diff}"
    );
}

#[test]
fn default_parameter_counts_match_the_paper() {
    let device = test_device();
    let count =
        |blocks| ResnetGenerator::new(&GeneratorConfig::resnet(64, blocks), &device).num_params();
    assert_eq!(count(9), 11_378_179);
    assert_eq!(count(6), 7_837_699);
    assert_eq!(
        PatchDiscriminator::new(&DiscriminatorConfig::default(), &device).num_params(),
        2_764_737
    );
}

#[test]
fn stray_keys_are_ignored_and_wrong_shapes_are_named() {
    let device = test_device();
    let path = data("discriminator_n3_ndf16.pth");
    let mut dict = read_pth(&path).unwrap();
    dict.insert(
        "model.3.running_mean".into(),
        HostTensor {
            shape: vec![32],
            data: vec![0.0; 32],
        },
    );
    let mut d = PatchDiscriminator::new(&DiscriminatorConfig::patch(16, 3), &device);
    load_state_dict(&mut d, &dict, &path, "discriminator").unwrap();
    assert_eq!(state_dict(&mut d)["model.0.weight"], dict["model.0.weight"]);

    let mut wider = PatchDiscriminator::new(&DiscriminatorConfig::patch(32, 3), &device);
    let err = load_state_dict(&mut wider, &dict, &path, "discriminator")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("discriminator_n3_ndf16.pth") && err.contains("model.0.weight"),
        "{err}"
    );
}

/// Two full iterations from the reference's initial weights: losses and updated weights.
#[test]
fn two_training_iterations_match_pytorch() {
    two_iterations_match_pytorch(
        "train_two_steps.safetensors",
        &fixtures_json()["train_two_steps"],
        GeneratorConfig::resnet(8, 2),
        DiscriminatorConfig::patch(8, 3),
        &test_device().autodiff(),
    );
}

/// WGAN-GP's penalty and its gradient with respect to every weight (a second derivative,
/// through our written-out backward pass of the discriminator) against PyTorch's double
/// backward (`scripts/gradient_penalty_fixture.py`: ndf 4, 2 stride-2 layers, 22 x 22 inputs).
#[test]
fn gradient_penalty_and_its_weight_gradients_match_pytorch() {
    use burn::optim::GradientsParams;
    use cyclegan::family::adversarial::gradient_penalty_at;
    use cyclegan::model::NamedConvs;

    let device = test_device().autodiff();
    let path = data("gradient_penalty.safetensors");
    let f = read_safetensors(&path, "").unwrap();
    let weights = read_safetensors(&path, "D.").unwrap();
    let mut d = PatchDiscriminator::new(&DiscriminatorConfig::patch(4, 2), &device);
    load_state_dict(&mut d, &weights, &path, "D").unwrap();
    let (real, fake) = (f["real"].to_tensor(&device), f["fake"].to_tensor(&device));

    let grad_x = HostTensor::from_tensor(
        d.input_gradient(real.clone().mul_scalar(0.3) + fake.clone().mul_scalar(0.7)),
    );
    let expected_x = &f["input_gradient"];
    // Only the first image was mixed with alpha 0.3: compare it alone.
    let first = |t: &HostTensor| t.data[..t.data.len() / 2].to_vec();
    let diff = first(&grad_x)
        .iter()
        .zip(first(expected_x))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        diff <= 1e-5,
        "input gradient differs from PyTorch by {diff}"
    );

    let alpha = f["alpha"].data.clone();
    let penalty = gradient_penalty_at(&d, real, fake, &alpha);
    let value = HostTensor::from_tensor(penalty.clone()).data[0];
    let expected = f["penalty"].data[0];
    assert!(
        (value - expected).abs() <= 1e-4 * expected,
        "penalty {value}, PyTorch {expected}"
    );

    let grads = GradientsParams::from_grads(penalty.backward(), &d);
    let largest = f
        .iter()
        .filter(|(k, _)| k.starts_with("grad."))
        .flat_map(|(_, t)| t.data.iter())
        .fold(0.0f32, |m, v| m.max(v.abs()));
    let mut checked = 0;
    for conv in d.named_convs() {
        let frozen = conv.bias_frozen;
        let weight = grads.get::<4>(conv.weight.id).map(HostTensor::from_tensor);
        let mut params = vec![(format!("{}.weight", conv.key), weight)];
        if let Some(b) = conv.bias {
            let bias = grads.get::<1>(b.id).map(HostTensor::from_tensor);
            params.push((format!("{}.bias", conv.key), bias));
        }
        for (key, got) in params {
            let want = &f[&format!("grad.{key}")];
            let scale = want.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            // The last layer's bias does not change the input gradient: PyTorch gives it 0.
            let got = got.unwrap_or_else(|| HostTensor {
                shape: want.shape.clone(),
                data: vec![0.0; want.data.len()],
            });
            let diff = max_abs_diff(&got, want);
            // A bias feeding an instance norm cannot change its output: its true gradient is 0
            // and both sides hold rounding noise, small beside the other gradients.
            let tolerance = match frozen && key.ends_with(".bias") {
                true => 1e-4 * largest,
                false => 1e-4 * scale.max(1e-3 * largest),
            };
            assert!(
                diff <= tolerance,
                "{key}: gradient differs from PyTorch by {diff} (largest entry {scale})"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 8);
}
