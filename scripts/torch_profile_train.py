"""Per-operation profile of PyTorch's CycleGAN iteration on the CPU (the reference's networks
and step, as `torch_reference.py bench` times it), to set our layers' times beside PyTorch's.

    python scripts/torch_profile_train.py [--size 128] [--blocks 6] [--threads 2] [--reference DIR]

Prints torch.profiler's table, grouped by input shape: a convolution's forward is
`aten::mkldnn_convolution` (or `aten::_convolution`), its backward `aten::convolution_backward`,
each over the iterations profiled (2 unless --iters).
"""
import argparse
import sys

import torch
from torch.profiler import ProfilerActivity, profile

p = argparse.ArgumentParser()
p.add_argument("--size", type=int, default=128)
p.add_argument("--blocks", type=int, default=6)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--iters", type=int, default=2)
p.add_argument("--reference", default="/work/shared/reference")
a = p.parse_args()
sys.path.insert(0, a.reference)
import torch_reference as R  # noqa: E402

torch.set_num_threads(a.threads)
torch.manual_seed(0)
nets = [R.init_normal(R.ResnetGenerator(64, a.blocks)) for _ in range(2)] + \
       [R.init_normal(R.NLayerDiscriminator(64)) for _ in range(2)]
model = R.CycleGAN(*nets)
ra = torch.rand(1, 3, a.size, a.size) * 2 - 1
rb = torch.rand(1, 3, a.size, a.size) * 2 - 1
model.step(ra, rb)  # warm-up
with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
    for _ in range(a.iters):
        model.step(ra, rb)
print(prof.key_averages(group_by_input_shape=True).table(
    sort_by="self_cpu_time_total", row_limit=40, max_name_column_width=40,
    max_shapes_column_width=70))
