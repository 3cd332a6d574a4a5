//! The reference's other architectures (`--generator unet_*`, `--discriminator pixel`,
//! `--norm batch|none`, `--dropout`) against PyTorch: state dicts key for key, forward outputs
//! within 1e-4 (fixtures from `scripts/network_fixtures.py`), the architecture of a `.pth`
//! generator told from its keys, translation with a U-Net, and exact resume when training them.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use burn::prelude::*;
use common::cycle_fixture::two_iterations_match_pytorch;
use common::{bin, fixture, run, test_device};
use cyclegan::model::norm::Norm;
use cyclegan::model::weights::{
    HostTensor, load_state_dict, read_pth, read_safetensors, state_dict,
};
use cyclegan::model::{
    CycleGanGenerator, DiscriminatorConfig, DiscriminatorKind, GeneratorArch, GeneratorConfig,
    NamedConvs, PatchDiscriminator,
};
use cyclegan::translate::infer_generator_config;

/// Our state dict has exactly the file's keys (but the integer `num_batches_tracked`, which
/// PyTorch fills in when absent) with the file's values: the same parameters and buffers.
fn assert_same_state_dict(
    net: &mut impl NamedConvs,
    file: &HashMap<String, HostTensor>,
    name: &str,
) {
    let ours = state_dict(net);
    let mut want: Vec<&String> = file
        .keys()
        .filter(|k| !k.ends_with("num_batches_tracked"))
        .collect();
    want.sort();
    let got: Vec<&String> = ours.keys().collect();
    assert_eq!(got, want, "{name}: state-dict keys");
    for (k, v) in &ours {
        assert_eq!(v, &file[k], "{name}: {k}");
    }
}

/// Run `forward` on the fixture's input and compare with PyTorch's output.
fn assert_forward(name: &str, forward: impl Fn(Tensor<4>) -> Tensor<4>) {
    let device = test_device();
    let io = read_safetensors(&fixture(&format!("{name}_io.safetensors")), "").unwrap();
    let y = HostTensor::from_tensor(forward(io["input"].to_tensor(&device)));
    let want = &io["output"];
    assert_eq!(y.shape, want.shape, "{name}");
    let diff = y
        .data
        .iter()
        .zip(&want.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        diff <= 1e-4,
        "{name}: output differs from PyTorch by {diff}"
    );
    // A network that ignored its weights would not get here by luck: outputs are not flat.
    let spread = want.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(spread > 1e-2, "{name}: fixture output too small to test");
}

#[test]
fn generators_load_by_keys_and_match_pytorch() {
    let cases = [
        (
            "unet128_ngf4",
            GeneratorArch::Unet128,
            4,
            0,
            Norm::Instance,
            false,
        ),
        (
            "unet256_ngf2_batch_dropout",
            GeneratorArch::Unet256,
            2,
            0,
            Norm::Batch,
            false,
        ),
        (
            "resnet6_ngf4_batch_dropout",
            GeneratorArch::Resnet,
            4,
            6,
            Norm::Batch,
            true,
        ),
        (
            "resnet2_ngf4_nonorm",
            GeneratorArch::Resnet,
            4,
            2,
            Norm::None,
            false,
        ),
    ];
    for (name, arch, ngf, blocks, norm, dropout) in cases {
        let path = fixture(&format!("{name}.pth"));
        let dict = read_pth(&path).unwrap();
        // What `translate --model file.pth` does: the architecture from the keys alone (a
        // U-Net's dropout leaves no key, and does not act when translating).
        let config = infer_generator_config(&dict).unwrap();
        let want = GeneratorConfig {
            ngf,
            blocks,
            arch,
            norm,
            dropout,
            input_nc: 3,
            output_nc: 3,
        };
        assert_eq!(config, want, "{name}");
        let mut g = CycleGanGenerator::new(&config, &test_device());
        load_state_dict(&mut g, &dict, &path, "generator").unwrap();
        assert_same_state_dict(&mut g, &dict, name);
        assert_forward(name, |x| g.forward(x));
    }
}

#[test]
fn discriminators_match_pytorch() {
    let cases = [
        ("pixel_ndf8", DiscriminatorKind::Pixel, 8, 0, Norm::Instance),
        (
            "pixel_ndf8_batch",
            DiscriminatorKind::Pixel,
            8,
            0,
            Norm::Batch,
        ),
        (
            "nlayers2_ndf4_nonorm",
            DiscriminatorKind::NLayers,
            4,
            2,
            Norm::None,
        ),
    ];
    for (name, kind, ndf, layers, norm) in cases {
        let config = DiscriminatorConfig {
            ndf,
            layers,
            kind,
            norm,
            input_nc: 3,
        };
        let mut d = PatchDiscriminator::new(&config, &test_device());
        let path = fixture(&format!("{name}.pth"));
        let dict = read_pth(&path).unwrap();
        load_state_dict(&mut d, &dict, &path, "discriminator").unwrap();
        assert_eq!(d.config(), config);
        assert_same_state_dict(&mut d, &dict, name);
        assert_forward(name, |x| d.forward(x));
    }
}

/// A published-style U-Net `.pth` translates an image whose sides are not multiples of 128:
/// padded for the network and cropped back.
#[test]
fn translate_takes_a_unet_pth() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.png");
    image::RgbImage::from_fn(150, 90, |x, y| image::Rgb([x as u8, y as u8, 128]))
        .save(&input)
        .unwrap();
    let out = tmp.path().join("out.png");
    run(
        bin()
            .args(["translate", "--model"])
            .arg(fixture("unet128_ngf4.pth"))
            .arg(&input)
            .arg(&out),
        Duration::from_secs(120),
    )
    .expect(0);
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (150, 90));
}

/// Two CycleGAN iterations with unet_128 generators and PixelGAN discriminators against
/// PyTorch's exact (float64) result, with the paper networks' tolerances (PyTorch's own float32
/// run: 99.88% of weights within 2e-5, worst 4.1e-4; `network_fixtures.json`).
#[test]
fn unet_and_pixelgan_train_as_pytorch() {
    let text = std::fs::read_to_string(fixture("network_fixtures.json")).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&text).unwrap();
    let g = GeneratorConfig {
        ngf: 2,
        blocks: 0,
        arch: GeneratorArch::Unet128,
        ..GeneratorConfig::default()
    };
    let d = DiscriminatorConfig {
        ndf: 4,
        kind: DiscriminatorKind::Pixel,
        ..DiscriminatorConfig::default()
    };
    two_iterations_match_pytorch(
        "unet_pixel_two_steps.safetensors",
        &meta["unet_pixel_two_steps"],
        g,
        d,
        &test_device().autodiff(),
    );
}
