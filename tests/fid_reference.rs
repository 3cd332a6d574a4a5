//! The FID network and pipeline against the reference outputs in
//! `../shared/reference/inception/` (README.md there): features of the network's own inputs,
//! features from decoded pixels, and the FID of horse2zebra testA vs testB through the CLI.
//!
//! The shared folder sits beside the repository (`../shared` from its root; CI has it there);
//! `CYCLEGAN_SHARED` overrides the location. Without it these tests print a note and pass.

use std::path::PathBuf;
use std::process::Command;

use burn::prelude::*;
use cyclegan::eval::{FeatureExtractor, preprocess};
use cyclegan::model::weights::read_safetensors;

fn shared() -> Option<PathBuf> {
    let dir = std::env::var_os("CYCLEGAN_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let ok = dir
        .join("reference/inception/inception_v3_fid.safetensors")
        .is_file();
    if !ok {
        eprintln!(
            "note: {} has no reference/inception/: FID reference test skipped (set CYCLEGAN_SHARED)",
            dir.display()
        );
    }
    ok.then_some(dir)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The reference's eight images as decoded RGB (`images_uint8_nhwc`).
fn reference_images(path: &std::path::Path) -> Vec<image::RgbImage> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor("images_uint8_nhwc").unwrap();
    let [n, h, w, c]: [usize; 4] = view.shape().try_into().unwrap();
    assert_eq!(c, 3);
    view.data()
        .chunks_exact(h * w * 3)
        .take(n)
        .map(|px| image::RgbImage::from_raw(w as u32, h as u32, px.to_vec()).unwrap())
        .collect()
}

#[test]
fn network_and_pipeline_match_the_reference_features() {
    let Some(shared) = shared() else { return };
    let dir = shared.join("reference/inception");
    let device = Device::flex();
    let extractor =
        FeatureExtractor::load(&dir.join("inception_v3_fid.safetensors"), &device).unwrap();
    let refs = read_safetensors(&dir.join("reference_features.safetensors"), "").unwrap();
    let input = &refs["model_input_nchw"];
    let expected = &refs["features"];
    assert_eq!(input.shape, [8, 3, 299, 299]);

    // Network parity: the reference's own input through our network.
    let start = std::time::Instant::now();
    let got = extractor.features_of_input(input.to_tensor::<4>(&device));
    let secs = start.elapsed().as_secs_f64();
    let net_diff = max_abs_diff(&got, &expected.data);
    eprintln!(
        "network: max |diff| {net_diff:.2e} over 8x2048 features ({:.2} s/image)",
        secs / 8.0
    );
    assert!(net_diff < 1e-3, "network features differ by {net_diff}");

    // Pipeline parity: decoded pixels -> resize -> range -> network.
    let images = reference_images(&dir.join("reference_features.safetensors"));
    let mut ours = Vec::new();
    for img in &images {
        preprocess::push_network_input(img, &mut ours);
    }
    let input_diff = max_abs_diff(&ours, &input.data);
    eprintln!("preprocessing: max |diff| {input_diff:.2e} against model_input_nchw");
    assert!(input_diff < 1e-3, "network input differs by {input_diff}");
    let features = extractor.features(&images, &mut |_| {});
    let got: Vec<f32> = features.transpose().iter().map(|&v| v as f32).collect();
    let pipe_diff = max_abs_diff(&got, &expected.data);
    eprintln!("pipeline: max |diff| {pipe_diff:.2e}");
    assert!(pipe_diff < 1e-2, "pipeline features differ by {pipe_diff}");
}

#[test]
fn fid_of_horse2zebra_test_sets_matches_the_reference_through_the_cli() {
    let Some(shared) = shared() else { return };
    let data = shared.join("datasets/horse2zebra");
    if !data.join("testA").is_dir() {
        eprintln!(
            "note: {} absent: FID reference test skipped",
            data.display()
        );
        return;
    }
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(shared.join("reference/inception/reference_fid.json")).unwrap(),
    )
    .unwrap();
    let expected = reference["fid_testA_vs_testB"].as_f64().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cyclegan"))
        .args(["eval", "--json", "--inception"])
        .arg(shared.join("reference/inception/inception_v3_fid.safetensors"))
        .arg("--real")
        .arg(data.join("testA"))
        .arg("--fake")
        .arg(data.join("testB"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    eprintln!("{stderr}");
    let scores: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fid = scores["fid"].as_f64().unwrap();
    let rel = (fid - expected).abs() / expected;
    eprintln!(
        "FID {fid:.4} (reference {expected:.4}, {:.3}% off); KID {}",
        100.0 * rel,
        scores["kid"]
    );
    assert!(rel < 0.005, "FID {fid} vs reference {expected}");
    assert_eq!(
        (scores["n_real"].as_u64(), scores["n_fake"].as_u64()),
        (Some(120), Some(140))
    );
    let kid = scores["kid"]["mean"].as_f64().unwrap();
    assert!(kid > 0.0 && scores["kid"]["std"].as_f64().unwrap() > 0.0);
}
