#!/usr/bin/env python3
"""Write the forward-parity fixtures of the reference's other architectures to tests/data:
the U-Net generators, the PixelGAN discriminator, batch norm, no norm and dropout.

The networks below are written for this script with the module layout of the PyTorch CycleGAN
reference (junyanz/pytorch-CycleGAN-and-pix2pix, models/networks.py: `UnetGenerator` built from
nested `UnetSkipConnectionBlock`s, `PixelDiscriminator`, `NLayerDiscriminator`,
`ResnetGenerator` with `use_dropout`, `get_norm_layer`), so their state-dict keys and shapes
are the ones its published checkpoints have. Each fixture is a `torch.save`d state dict
(`<name>.pth`) and `<name>_io.safetensors` with `input` and `output`.

Batch norm runs in training mode (batch statistics), as the reference's `test.py` does without
`--eval`; dropout is off (what translating does here). Running statistics are set to random
values so that loading them is checked too.

With the shared reference's folder as a second argument it also writes
`unet_pixel_two_steps.safetensors`: two CycleGAN iterations (the shared `torch_reference.py`'s
`CycleGAN.step`) with unet_128 generators (ngf 2) and PixelGAN discriminators (ndf 4), from
float32 initial weights and 128 px inputs, computed in float64 (the exact result, `after2.*`)
and in float32 (how close PyTorch itself comes: `pytorch_f32_vs_f64` in the JSON), as
scripts/cut_fixtures.py does for CUT.

    python3 scripts/network_fixtures.py tests/data ../shared/reference   # torch >= 2.0, CPU
"""
import copy
import functools
import json
import os
import sys

import torch
import torch.nn as nn
from safetensors.torch import save_file


def norm_layer(kind):
    if kind == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if kind == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    return lambda channels: nn.Identity()


def uses_bias(kind):
    # The reference gives convolutions before a norm a bias only under instance norm.
    return kind == "instance"


class UnetLevel(nn.Module):
    """One `UnetSkipConnectionBlock`: its layers in one `model` Sequential."""

    def __init__(self, outer, inner, sub=None, in_ch=None, outermost=False, innermost=False,
                 norm="instance", dropout=False):
        super().__init__()
        self.outermost = outermost
        bias, make = uses_bias(norm), norm_layer(norm)
        down = nn.Conv2d(in_ch or outer, inner, 4, 2, 1, bias=bias)
        if outermost:
            up = nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1)
            layers = [down, sub, nn.ReLU(True), up, nn.Tanh()]
        elif innermost:
            up = nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, make(outer)]
        else:
            up = nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, make(inner), sub, nn.ReLU(True), up, make(outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        y = self.model(x)
        return y if self.outermost else torch.cat([x, y], 1)


class Unet(nn.Module):
    def __init__(self, downs, ngf, norm="instance", dropout=False):
        super().__init__()
        level = UnetLevel(8 * ngf, 8 * ngf, innermost=True, norm=norm)
        for _ in range(downs - 5):
            level = UnetLevel(8 * ngf, 8 * ngf, level, norm=norm, dropout=dropout)
        for outer in (4 * ngf, 2 * ngf, ngf):
            level = UnetLevel(outer, 2 * outer, level, norm=norm)
        self.model = UnetLevel(3, ngf, level, in_ch=3, outermost=True, norm=norm)

    def forward(self, x):
        return self.model(x)


class ResnetBlock(nn.Module):
    def __init__(self, dim, norm, dropout):
        super().__init__()
        bias, make = uses_bias(norm), norm_layer(norm)
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), make(dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), make(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


class Resnet(nn.Module):
    def __init__(self, ngf, blocks, norm="instance", dropout=False):
        super().__init__()
        bias, make = uses_bias(norm), norm_layer(norm)
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, bias=bias), make(ngf), nn.ReLU(True)]
        for c in (ngf, 2 * ngf):
            layers += [nn.Conv2d(c, 2 * c, 3, 2, 1, bias=bias), make(2 * c), nn.ReLU(True)]
        layers += [ResnetBlock(4 * ngf, norm, dropout) for _ in range(blocks)]
        for c in (4 * ngf, 2 * ngf):
            layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1, bias=bias),
                       make(c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class Pixel(nn.Module):
    def __init__(self, ndf, norm="instance"):
        super().__init__()
        bias, make = uses_bias(norm), norm_layer(norm)
        self.net = nn.Sequential(
            nn.Conv2d(3, ndf, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, 2 * ndf, 1, bias=bias), make(2 * ndf), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * ndf, 1, 1, bias=bias))

    def forward(self, x):
        return self.net(x)


class NLayers(nn.Module):
    def __init__(self, ndf, n_layers, norm="instance"):
        super().__init__()
        bias, make = uses_bias(norm), norm_layer(norm)
        layers = [nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        width = lambda n: ndf * min(2 ** n, 8)
        for n in range(1, n_layers):
            layers += [nn.Conv2d(width(n - 1), width(n), 4, 2, 1, bias=bias), make(width(n)), nn.LeakyReLU(0.2, True)]
        last = width(n_layers)
        layers += [nn.Conv2d(width(n_layers - 1), last, 4, 1, 1, bias=bias), make(last), nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(last, 1, 4, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def init(net, gain):
    """The reference's `init_weights` ('normal'), with random running statistics added."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.normal_(m.bias, 0.0, gain)  # non-zero, so biases are checked too
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.normal_(m.bias, 0.0, gain)
            m.running_mean.normal_(0.0, 1.0)
            m.running_var.uniform_(0.5, 2.0)
    return net


def main(out, ref_dir=None):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cases = {
        # name: (network, input size, what it is); batch 2, but 1 at 256 px (file size)
        "unet128_ngf4": (Unet(7, 4), 128, {"generator": "unet_128", "ngf": 4, "norm": "instance"}),
        "unet256_ngf2_batch_dropout": (Unet(8, 2, "batch", True), 256,
                                       {"generator": "unet_256", "ngf": 2, "norm": "batch", "dropout": True}),
        "resnet6_ngf4_batch_dropout": (Resnet(4, 6, "batch", True), 32,
                                       {"generator": "resnet_6blocks", "ngf": 4, "norm": "batch", "dropout": True}),
        "resnet2_ngf4_nonorm": (Resnet(4, 2, "none"), 32, {"generator": "resnet", "blocks": 2, "ngf": 4, "norm": "none"}),
        "pixel_ndf8": (Pixel(8), 16, {"discriminator": "pixel", "ndf": 8, "norm": "instance"}),
        "pixel_ndf8_batch": (Pixel(8, "batch"), 16, {"discriminator": "pixel", "ndf": 8, "norm": "batch"}),
        "nlayers2_ndf4_nonorm": (NLayers(4, 2, "none"), 32, {"discriminator": "n_layers", "n_layers": 2, "ndf": 4, "norm": "none"}),
    }
    meta = {"torch_version": torch.__version__}
    for name, (net, size, what) in cases.items():
        init(net, 0.1)
        torch.save(net.state_dict(), os.path.join(out, f"{name}.pth"))
        net.train()  # batch statistics, as the reference's test.py without --eval
        for m in net.modules():
            if isinstance(m, nn.Dropout):
                m.eval()
        x = torch.rand(1 if size == 256 else 2, 3, size, size) * 2 - 1
        with torch.no_grad():
            y = net(x)
        save_file({"input": x, "output": y.contiguous()}, os.path.join(out, f"{name}_io.safetensors"))
        what["params"] = sum(p.numel() for p in net.parameters())
        what["keys"] = len(net.state_dict())
        meta[name] = what
    if ref_dir:
        meta["unet_pixel_two_steps"] = two_steps(out, ref_dir)
    with open(os.path.join(out, "network_fixtures.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(json.dumps(meta, indent=2))


def two_steps(out, ref_dir):
    sys.path.insert(0, ref_dir)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_reference as ref
    from cut_fixtures import agreement
    torch.manual_seed(4)
    nets = {"G_A": Unet(7, 2), "G_B": Unet(7, 2), "D_A": Pixel(4), "D_B": Pixel(4)}
    for net in nets.values():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
    inputs = [(torch.rand(1, 3, 128, 128) * 2 - 1, torch.rand(1, 3, 128, 128) * 2 - 1) for _ in range(2)]
    tensors = {}
    for name, net in nets.items():
        tensors.update(ref.prefixed(f"init.{name}", net))
    for i, (ra, rb) in enumerate(inputs):
        tensors[f"real_A.{i}"], tensors[f"real_B.{i}"] = ra, rb

    def run(dtype):
        copies = {k: copy.deepcopy(v).to(dtype) for k, v in nets.items()}
        model = ref.CycleGAN(copies["G_A"], copies["G_B"], copies["D_A"], copies["D_B"])
        losses = [model.step(ra.to(dtype), rb.to(dtype)) for ra, rb in inputs]
        after = {}
        for name, net in copies.items():
            after.update(ref.prefixed(f"after2.{name}", net))
        return losses, after

    losses64, exact = run(torch.float64)
    losses32, got32 = run(torch.float32)
    tensors.update({k: v.float() for k, v in exact.items()})
    save_file({k: v.contiguous() for k, v in tensors.items()},
              os.path.join(out, "unet_pixel_two_steps.safetensors"))
    entry = {"generator": "unet_128", "ngf": 2, "discriminator": "pixel", "ndf": 4, "size": 128,
             "losses_per_step": losses64, "pytorch_f32_losses_per_step": losses32,
             "pytorch_f32_vs_f64": agreement(got32, exact)}
    entry["pytorch_f32_vs_f64"]["worst_loss_relative"] = max(
        abs(a[k] - b[k]) / max(abs(b[k]), 1e-12) for a, b in zip(losses32, losses64) for k in b)
    return entry


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data", sys.argv[2] if len(sys.argv) > 2 else None)
