"""Time one CUT or FastCUT iteration of the PyTorch reference (../shared/reference/
torch_reference.py: the authors' networks and step) on random images, as `cyclegan bench
--workload cut128|fastcut128|cut256|fastcut256` does for ours. Prints one JSON line.

    python3 scripts/torch_cut_bench.py --model fastcut --size 128 --blocks 6 --threads 2
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["cut", "fastcut"], default="cut")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--blocks", type=int, default=6)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--ndf", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--reference", default="../shared/reference")
    a = p.parse_args()
    sys.path.insert(0, a.reference)
    import torch_reference as ref

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    g = ref.init_normal(ref.CutGenerator(a.ngf, a.blocks))
    d = ref.init_normal(ref.CutDiscriminator(a.ndf))
    with torch.no_grad():
        chans = [x.shape[1] for x in g(torch.zeros(1, 3, a.size, a.size), ref.CUT.NCE_LAYERS)]
    f = ref.PatchSampler(chans)
    model = ref.CUT(g, d, f, fast=(a.model == "fastcut"), num_patches=256)
    ids = lambda n: torch.from_numpy(rng.permutation(n)[: min(256, n)].astype(np.int64))
    ra = torch.rand(1, 3, a.size, a.size) * 2 - 1
    rb = torch.rand(1, 3, a.size, a.size) * 2 - 1
    times = []
    for i in range(a.warmup + a.iters):
        t = time.perf_counter()
        model.step(ra, rb, ids, flip=bool(i % 2))
        model.used_ids.clear()
        if i >= a.warmup:
            times.append(time.perf_counter() - t)
    print(json.dumps({"impl": "pytorch", "model": a.model, "torch": torch.__version__,
                      "threads": a.threads, "size": a.size, "blocks": a.blocks,
                      "iter_s_median": statistics.median(times), "iter_s_min": min(times),
                      "iters": len(times)}))


if __name__ == "__main__":
    main()
