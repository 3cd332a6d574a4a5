#!/usr/bin/env python3
"""Remake the CUT/FastCUT two-iteration parity fixtures in tests/data, with two corrections to
the shared reference's `cut-fixtures` (../shared/reference/torch_reference.py, not ours to edit):

1. The patch gather. The reference's `PatchSampler` gathers with
   `f.permute(0, 2, 3, 1).flatten(1, 2)[:, ids]`. At batch size 1 PyTorch's instance_norm backward
   reads the channels-last gradient that this gather sends back as if it were contiguous, so the
   generator's gradient is not the derivative of the loss (torch.autograd.gradcheck fails; see
   tests/cut_parity.rs). `f.flatten(2)[:, :, ids].transpose(1, 2)` selects the same vectors and
   has a contiguous gradient.
2. The precision. The two iterations run in float64 from the same float32 initial weights,
   inputs and patch positions, so `after2` and the losses are the exact result (up to float64
   rounding) that a float32 implementation is compared against. The same two iterations in
   PyTorch float32 are compared against it too; their agreement is recorded in the JSON as the
   yardstick for ours (`pytorch_f32_vs_f64`).

Initial weights, inputs and positions are byte-identical to the shared fixtures (checked here).

    python3 scripts/cut_fixtures.py ../shared/reference tests/data
"""
import copy
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file


def contiguous_gather(self, feats, ids):
    out = []
    for i, (f, idx) in enumerate(zip(feats, ids)):
        mlp = getattr(self, f"mlp_{i}")
        x = f.flatten(2)[:, :, idx].transpose(1, 2).flatten(0, 1)
        x = mlp(x)
        out.append(x / (x.pow(2).sum(1, keepdim=True).pow(0.5) + 1e-7))
    return out


def run(ref, nets, inputs, mode, dtype):
    """Two iterations in `dtype` from copies of `nets`; returns (losses, nets after, used ids)."""
    g, d, f = (copy.deepcopy(n).to(dtype) for n in nets)
    model = ref.CUT(g, d, f, fast=(mode == "fastcut"), num_patches=64)
    rng = np.random.default_rng(3)
    ids_source = lambda n: torch.from_numpy(rng.permutation(n)[:min(64, n)].astype(np.int64))
    losses = [model.step(ra.to(dtype), rb.to(dtype), ids_source, flip=(i == 0))
              for i, (ra, rb) in enumerate(inputs)]
    return losses, (g, d, f), model.used_ids


def agreement(got, want):
    """Share of entries within 2e-5 and the worst difference (the parity tests' measures)."""
    close, total, worst = 0, 0, 0.0
    for k, w in want.items():
        diff = (got[k].double() - w.double()).abs()
        close += int((diff <= 2e-5).sum())
        total += diff.numel()
        worst = max(worst, float(diff.max()))
    return {"share_within_2e-5": close / total, "worst": worst, "entries": total}


def main(ref_dir, out):
    sys.path.insert(0, ref_dir)
    import torch_reference as ref
    ref.PatchSampler.forward = contiguous_gather
    torch.set_num_threads(1)
    shared_meta = json.load(open(os.path.join(ref_dir, "fixtures", "cut_fixtures.json")))
    meta = {k: v for k, v in shared_meta.items() if k not in ("cut", "fastcut")}
    meta["torch_version"] = torch.__version__
    meta["made_by"] = "scripts/cut_fixtures.py: contiguous patch gather, two iterations in float64"
    for mode in ("cut", "fastcut"):
        # The reference's seeds and order of draws, so the start is the shared fixtures' start.
        torch.manual_seed(2)
        g, d = ref.init_normal(ref.CutGenerator(8, 6)), ref.init_normal(ref.CutDiscriminator(8))
        with torch.no_grad():
            chans = [x.shape[1] for x in g(torch.zeros(1, 3, 64, 64), ref.CUT.NCE_LAYERS)]
        f = ref.PatchSampler(chans)
        inputs = [(torch.rand(1, 3, 64, 64) * 2 - 1, torch.rand(1, 3, 64, 64) * 2 - 1) for _ in range(2)]
        tensors = {}
        for name, net in (("G", g), ("D", d), ("F", f)):
            tensors.update(ref.prefixed(f"init.{name}", net))
        for i, (ra, rb) in enumerate(inputs):
            tensors[f"real_A.{i}"], tensors[f"real_B.{i}"] = ra, rb

        losses64, after64, used = run(ref, (g, d, f), inputs, mode, torch.float64)
        losses32, after32, used32 = run(ref, (g, d, f), inputs, mode, torch.float32)
        assert all(torch.equal(a, b) for x, y in zip(used, used32) for a, b in zip(x, y))
        for call, ids in enumerate(used):
            for layer, idx in zip(ref.CUT.NCE_LAYERS, ids):
                tensors[f"patch_ids.{call}.{layer}"] = idx

        shared = load_file(os.path.join(ref_dir, "fixtures", f"{mode}_two_steps.safetensors"))
        for k, v in tensors.items():
            assert torch.equal(shared[k], v), f"{mode}: {k} differs from the shared fixture's"

        exact, got32 = {}, {}
        for name, n64, n32 in zip("GDF", after64, after32):
            exact.update(ref.prefixed(f"after2.{name}", n64))
            got32.update(ref.prefixed(f"after2.{name}", n32))
        tensors.update({k: v.float() for k, v in exact.items()})
        save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, f"{mode}_two_steps.safetensors"))

        entry = dict(shared_meta[mode])
        entry["losses_per_step"] = losses64
        entry["pytorch_f32_losses_per_step"] = losses32
        entry["pytorch_f32_vs_f64"] = agreement(got32, exact)
        worst_loss = max(abs(a[k] - b[k]) / max(abs(b[k]), 1e-12)
                         for a, b in zip(losses32, losses64) for k in b)
        entry["pytorch_f32_vs_f64"]["worst_loss_relative"] = worst_loss
        meta[mode] = entry
        print(mode, json.dumps(entry["pytorch_f32_vs_f64"]))
    with open(os.path.join(out, "cut_fixtures.json"), "w") as fh:
        json.dump(meta, fh, indent=2)
        fh.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
