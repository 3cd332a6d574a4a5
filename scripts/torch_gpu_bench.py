#!/usr/bin/env python3
"""PyTorch side of `scripts/gpu_check.sh`: the reference's CycleGAN iteration and generator
inference on one device, timed like `cyclegan bench`, with peak GPU memory.

Uses the networks and the training step of `torch_reference.py` (../shared/reference; pass its
folder with --reference). One JSON object per call on stdout, fields named as `cyclegan bench
--json` names them (`workload`, `median_s`, `min_s`, `batch`), plus `precision` and
`peak_gpu_mib` (torch.cuda.max_memory_reserved: what the caching allocator held at most).

  python3 scripts/torch_gpu_bench.py --reference REF train --size 256 --blocks 9 --batch 4
  python3 scripts/torch_gpu_bench.py --reference REF train --precision bf16
  python3 scripts/torch_gpu_bench.py --reference REF infer --height 1080 --width 1920
"""

import argparse
import contextlib
import json
import statistics
import sys
import time


def timed(fn, warmup, iters, sync):
    times = []
    for i in range(warmup + iters):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", required=True, help="folder holding torch_reference.py")
    p.add_argument("--device", default="cuda")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--precision", choices=["f32", "bf16", "f16"], default="f32",
                   help="autocast dtype (f16 with a GradScaler-free step: timing only)")
    sub = p.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("train")
    t.add_argument("--size", type=int, default=256)
    t.add_argument("--blocks", type=int, default=9)
    t.add_argument("--batch", type=int, default=1)
    i = sub.add_parser("infer")
    i.add_argument("--height", type=int, default=256)
    i.add_argument("--width", type=int, default=256)
    a = p.parse_args()

    sys.path.insert(0, a.reference)
    import torch
    import torch_reference as ref

    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.manual_seed(0)
    dtype = {"f32": None, "bf16": torch.bfloat16, "f16": torch.float16}[a.precision]
    autocast = (lambda: torch.autocast(dev.type, dtype=dtype)) if dtype else contextlib.nullcontext

    if a.mode == "train":
        nets = [ref.init_normal(ref.ResnetGenerator(64, a.blocks)).to(dev) for _ in range(2)] + \
               [ref.init_normal(ref.NLayerDiscriminator(64)).to(dev) for _ in range(2)]
        model = ref.CycleGAN(*nets)
        ra = torch.rand(a.batch, 3, a.size, a.size, device=dev) * 2 - 1
        rb = torch.rand(a.batch, 3, a.size, a.size, device=dev) * 2 - 1

        def step():
            with autocast():
                losses = model.step(ra, rb)
            # Read the losses back, as `cyclegan train` does every iteration.
            return {k: float(v) for k, v in losses.items()} if isinstance(losses, dict) else losses

        times = timed(step, a.warmup, a.iters, sync)
        workload = f"train{a.size}"
        batch = a.batch
    else:
        g = ref.init_normal(ref.ResnetGenerator(64, 9)).to(dev).eval()
        hp, wp = -(-a.height // 4) * 4, -(-a.width // 4) * 4
        x = torch.rand(1, 3, hp, wp, device=dev) * 2 - 1

        def infer():
            with torch.no_grad(), autocast():
                y = g(x)
            # Read the frame back, as translation does.
            return y.float().cpu()

        times = timed(infer, a.warmup, a.iters, sync)
        workload = {256: "infer256", 480: "infer480p", 1080: "infer1080p"}.get(a.height, f"infer{a.height}")
        batch = 1

    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "device": str(dev), "workload": workload,
        "batch": batch, "precision": a.precision, "iters": len(times),
        "median_s": statistics.median(times), "min_s": min(times),
        "peak_gpu_mib": torch.cuda.max_memory_reserved() / 2**20 if cuda else None,
    }))


if __name__ == "__main__":
    main()
