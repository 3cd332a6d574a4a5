//! Unit tests of CUT's options, PatchNCE and checkpoint contents.
use super::*;
use rand::Rng;

#[test]
fn info_nce_prefers_matching_patches() {
    let device = Device::flex();
    // Two images of two orthonormal patches each: keys equal to the queries are the
    // easiest case; swapped keys the hardest.
    let q = Tensor::<2>::from_data([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]], &device);
    let same = info_nce(q.clone(), q.clone(), 2, 0.07);
    let swapped = info_nce(q.clone(), q.clone().flip([1]), 2, 0.07);
    let same = same.into_data().try_into_vec::<f32>().unwrap();
    let swapped = swapped.into_data().try_into_vec::<f32>().unwrap();
    // Logits: positive 1/0.07, negative 0 (the other patch) and -10/0.07 (diagonal).
    let a = 1.0f32 / 0.07;
    let want = ((-a).exp() + (-10.0 / 0.07 - a).exp()).ln_1p();
    for v in &same {
        assert!((v - want).abs() < 1e-4, "{v} vs {want}");
    }
    for (s, w) in same.iter().zip(&swapped) {
        assert!(w > s, "swapped keys must cost more");
    }
}

/// A model rebuilt from its state dict and optimizer bytes continues exactly as the
/// original (stable parameter ids make the Adam moments find their parameters).
#[test]
fn state_round_trip_continues_exactly() {
    use rand::SeedableRng;
    let shape = GeneratorConfig::resnet(2, 5);
    let disc = DiscriminatorConfig::patch(2, 3);
    let options = CutOptions {
        num_patches: 8,
        ..CutOptions::fastcut()
    };
    let device = Device::flex().autodiff();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let image = |rng: &mut rand_chacha::ChaCha8Rng| {
        let v: Vec<f32> = (0..3 * 32 * 32)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        Tensor::<4>::from_data(TensorData::new(v, [1, 3, 32, 32]), &device)
    };
    let mut cut = Cut::new(
        &shape,
        &disc,
        options.clone(),
        (0.5, 0.999),
        &device,
        &mut rng,
    )
    .unwrap();
    let (a, b) = (image(&mut rng), image(&mut rng));
    let (losses, visuals) = cut.step(a.clone(), b.clone(), 2e-4, &mut rng, true);
    assert_eq!(losses.len(), cut.loss_names().len());
    assert!(losses.iter().all(|(_, v)| v.is_finite()), "{losses:?}");
    assert_eq!(visuals.unwrap().len(), 3);

    let dict: HashMap<String, HostTensor> = cut.state_dict().into_iter().collect();
    let optimizers = cut.optimizer_bytes().unwrap();
    let path = Path::new("checkpoint");
    let mut copy = Cut::from_state(
        &shape,
        &disc,
        options,
        (0.5, 0.999),
        &device,
        &dict,
        path,
        Some(optimizers),
    )
    .unwrap();
    let seed_rng = rng.clone();
    let (first, _) = cut.step(a.clone(), b.clone(), 2e-4, &mut rng, false);
    let (second, _) = copy.step(a, b, 2e-4, &mut seed_rng.clone(), false);
    assert_eq!(first, second);
    assert_eq!(cut.state_dict(), copy.state_dict());

    // A dict without the heads is refused with the file and key named.
    let partial: HashMap<String, HostTensor> = dict
        .into_iter()
        .filter(|(k, _)| !k.starts_with("F."))
        .collect();
    let err = Cut::from_state(
        &shape,
        &disc,
        CutOptions::fastcut(),
        (0.5, 0.999),
        &device,
        &partial,
        path,
        None,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("checkpoint") && err.contains("mlp_0.0.weight"),
        "{err}"
    );
}

#[test]
fn options_are_checked() {
    let shape = GeneratorConfig::resnet(8, 6);
    assert!(CutOptions::cut().validate(&shape).is_ok());
    assert!(CutOptions::fastcut().validate(&shape).is_ok());
    let bad = |o: CutOptions| o.validate(&shape).unwrap_err().to_string();
    let err = bad(CutOptions {
        nce_layers: vec![0, 40],
        ..CutOptions::cut()
    });
    assert!(err.contains("--nce-layers") && err.contains("40"), "{err}");
    let err = bad(CutOptions {
        nce_layers: vec![4, 0],
        ..CutOptions::cut()
    });
    assert!(err.contains("increasing"), "{err}");
    let err = bad(CutOptions {
        nce_t: 0.0,
        ..CutOptions::cut()
    });
    assert!(err.contains("--nce-t"), "{err}");
}
