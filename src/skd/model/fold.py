"""Inference copies of trained networks: BatchNorm folded into the convolution before it.

In eval mode a ``BatchNorm2d`` is a fixed per-channel affine map, ``y = γ (x − μ) / √(σ² + ε) + β``,
so a ``Conv2d`` / ``ConvTranspose2d`` followed by one equals a single convolution with scaled
weights and a bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``): the same outputs in float32 up to
rounding (≈ 1e-7 relative), one pass over the activations fewer per layer. The evaluation
procedures (docs/EVALUATION.md §2–§5) decode and read tens of thousands of sequences, so they run
on such copies; training never does (folded layers have no batch statistics to learn).
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def fold_batchnorm(seq: nn.Sequential) -> nn.Sequential:
    """A new Sequential in which every convolution directly followed by a BatchNorm2d is fused with
    it (eval-mode statistics); other modules are kept (shared, not copied). ``seq`` is unchanged
    and must be in eval mode."""
    if any(m.training for m in seq.modules()):
        raise ValueError("fold_batchnorm needs a module in eval mode (call .eval() first)")
    mods = list(seq)
    out: list[nn.Module] = []
    i = 0
    while i < len(mods):
        m = mods[i]
        nxt = mods[i + 1] if i + 1 < len(mods) else None
        if isinstance(m, _CONVS) and isinstance(nxt, nn.BatchNorm2d) and nxt.track_running_stats:
            out.append(fuse_conv_bn_eval(m, nxt, transpose=isinstance(m, nn.ConvTranspose2d)))
            i += 2
        else:
            out.append(m)
            i += 1
    return nn.Sequential(*out)


def _fold_all(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Sequential):
            setattr(module, name, fold_batchnorm(child))
        _fold_all(getattr(module, name))


def inference_copy(module: nn.Module, *, channels_last: bool | None = None) -> nn.Module:
    """A deep copy of ``module`` in eval mode with BatchNorm folded into every preceding
    convolution (inside any ``nn.Sequential``), for reading only. ``channels_last``: put the
    convolution weights in that layout (True), keep the layout ``module`` asks for through its
    ``channels_last`` attribute (None, the KoopmanAE execution plan), or leave them (False)."""
    out = copy.deepcopy(module).eval()
    _fold_all(out)
    for p in out.parameters():
        p.requires_grad_(False)
    cl = getattr(module, "channels_last", False) if channels_last is None else channels_last
    if cl:
        for m in out.modules():
            if isinstance(m, _CONVS):
                m.to(memory_format=torch.channels_last)
    return out
