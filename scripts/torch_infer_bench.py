#!/usr/bin/env python3
"""Time PyTorch generator inference (ResNet generator, batch 1, fp32, CPU) for comparison with
`cyclegan bench --workload infer256|infer480p`.

  python3 scripts/torch_infer_bench.py --height 256 --width 256 --threads 2
  python3 scripts/torch_infer_bench.py --height 480 --width 856 --threads 2   # 854x480 padded

Prints one JSON line with iter_s_median. The network comes from the PyTorch reference
(torch_reference.py, found through --reference).
"""
import argparse
import json
import statistics
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--blocks", type=int, default=9)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--reference", default="/work/shared/reference")
    a = p.parse_args()

    sys.path.insert(0, a.reference)
    import torch
    import torch_reference as ref

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    g = ref.init_normal(ref.ResnetGenerator(a.ngf, a.blocks)).eval()
    x = torch.rand(1, 3, a.height, a.width) * 2 - 1
    times = []
    with torch.no_grad():
        for i in range(a.warmup + a.iters):
            t = time.perf_counter()
            g(x)
            if i >= a.warmup:
                times.append(time.perf_counter() - t)
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": a.threads,
                      "height": a.height, "width": a.width, "blocks": a.blocks,
                      "iter_s_median": statistics.median(times), "iter_s_min": min(times),
                      "iters": len(times)}))


if __name__ == "__main__":
    main()
