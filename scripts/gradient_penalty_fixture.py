"""Write tests/data/gradient_penalty.safetensors: WGAN-GP's gradient penalty computed by PyTorch
for a small PatchGAN (ndf 4, 2 stride-2 layers, instance norm), and its gradient with respect
to every weight (a second derivative of the discriminator: what `tests/gradient_penalty.rs`
checks our written-out backward pass against).

Usage: python3 scripts/gradient_penalty_fixture.py  (any torch >= 1.10; CPU, float32)
"""

import torch
from safetensors.torch import save_file

torch.manual_seed(7)
ndf = 4
layers = [
    torch.nn.Conv2d(3, ndf, 4, 2, 1),
    torch.nn.LeakyReLU(0.2),
    torch.nn.Conv2d(ndf, 2 * ndf, 4, 2, 1),
    torch.nn.InstanceNorm2d(2 * ndf),
    torch.nn.LeakyReLU(0.2),
    torch.nn.Conv2d(2 * ndf, 4 * ndf, 4, 1, 1),
    torch.nn.InstanceNorm2d(4 * ndf),
    torch.nn.LeakyReLU(0.2),
    torch.nn.Conv2d(4 * ndf, 1, 4, 1, 1),
]
d = torch.nn.Sequential(*layers)
with torch.no_grad():
    for p in d.parameters():
        # Larger than the N(0, 0.02) of training, so that the input gradients' norms are a few
        # units (about 3) rather than near 0, where the penalty would be its constant 10.
        p.normal_(0.0, 0.05)

# 22 x 22: odd sizes after the first halving, so the transposed convolutions need output padding.
real = torch.rand(2, 3, 22, 22) * 2 - 1
fake = torch.rand(2, 3, 22, 22) * 2 - 1
alpha = torch.tensor([0.3, 0.8])

mixed = alpha.view(2, 1, 1, 1) * real + (1 - alpha.view(2, 1, 1, 1)) * fake
mixed.requires_grad_(True)
out = d(mixed)
(grad,) = torch.autograd.grad(out, mixed, torch.ones_like(out), create_graph=True)
grad_flat = grad.view(2, -1)
penalty = (((grad_flat + 1e-16).norm(2, dim=1) - 1.0) ** 2).mean() * 10.0
penalty.backward()

tensors = {"real": real, "fake": fake, "alpha": alpha, "input_gradient": grad.detach(),
           "penalty": penalty.detach().reshape(1)}
for name, p in d.named_parameters():
    tensors[f"D.model.{name}"] = p.detach().clone()
    g = p.grad if p.grad is not None else torch.zeros_like(p)
    tensors[f"grad.model.{name}"] = g.clone()
save_file({k: v.contiguous() for k, v in tensors.items()}, "tests/data/gradient_penalty.safetensors")
print("penalty", penalty.item(), "grad norms", grad_flat.norm(dim=1).tolist())
