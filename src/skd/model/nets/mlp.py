"""Per-step MLP encoder/decoder for vector sequences (B, T, D)."""
from __future__ import annotations

import torch
from torch import nn


def _mlp(d_in: int, d_out: int, hidden: int, layers: int) -> list[nn.Module]:
    mods: list[nn.Module] = []
    d = d_in
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), nn.LayerNorm(hidden), nn.GELU()]
        d = hidden
    mods.append(nn.Linear(d, d_out))
    return mods


class MLPEncoder(nn.Module):
    """Vectors (N, D) -> codes (N, k) in (-1, 1)."""

    def __init__(self, *, input_dim: int, k: int, hidden: int = 256, layers: int = 2) -> None:
        super().__init__()
        if input_dim < 1:
            raise ValueError(f"input_dim={input_dim} must be >= 1 (set model.input_dim)")
        self.net = nn.Sequential(*_mlp(input_dim, k, hidden, layers), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (N, k)


class MLPDecoder(nn.Module):
    """Codes (N, k) -> vectors (N, D); linear output (or sigmoid for data in [0, 1])."""

    supports_groups = True  # forward(z, groups) decodes stacked batches as separate calls

    def __init__(self, *, output_dim: int, k: int, hidden: int = 256, layers: int = 2, output: str = "linear") -> None:
        super().__init__()
        mods = _mlp(k, output_dim, hidden, layers)
        if output == "sigmoid":
            mods.append(nn.Sigmoid())
        elif output != "linear":
            raise ValueError(f"output={output!r} must be 'sigmoid' or 'linear'")
        self.net = nn.Sequential(*mods)

    def forward(self, z: torch.Tensor, groups: int = 1) -> torch.Tensor:
        """``groups`` is accepted for the fused decode; LayerNorm is per sample, so one call is exact."""
        return self.net(z)  # (N, D)
