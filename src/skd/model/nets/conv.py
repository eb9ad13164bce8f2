"""DCGAN-style per-frame convolutional encoder/decoder (docs/METHOD.md §1).

64×64: 4 × [Conv 4×4 s2 + BN + LeakyReLU(0.2)] with widths w, 2w, 4w, 8w (64→4 pixels), then
Conv 4×4 → k + BN + Tanh. 32×32 drops the first stage (three stride-2 stages, 32→4).
The decoder mirrors it with transposed convolutions and ends in a Sigmoid (or linear).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def grouped_forward(net: nn.Sequential, x: torch.Tensor, groups: int) -> torch.Tensor:
    """``net`` on ``groups`` equal batches stacked in ``x``, exactly as ``groups`` separate calls.

    Convolutions and pointwise layers act on each sample alone, so they run once on the whole
    stack (larger, better-used GEMMs); a BatchNorm layer in training mode normalises each batch
    with that batch's own statistics and updates its running averages once per batch, in order.
    """
    if groups == 1:
        return net(x)
    for layer in net:
        if isinstance(layer, _BatchNorm):
            x = torch.cat([layer(part) for part in x.chunk(groups)])
        else:
            x = layer(x)
    return x


def _tagged(layer: nn.Module, positions: int) -> nn.Module:
    """Record the pixel count of the layer's smaller feature map (read by
    :func:`skd.model.nets.gemm_grad.use_gemm_weight_grad`, which picks the small-map layers)."""
    layer.small_map_positions = positions
    return layer


def _stages(image_size: int) -> int:
    if image_size not in (32, 64):
        raise ValueError(f"image_size={image_size} must be 32 or 64")
    return 4 if image_size == 64 else 3


class ConvEncoder(nn.Module):
    """Frames (N, C, H, W) -> codes (N, k) in (-1, 1).

    ``pooled`` > 0 (ours, not the paper's): the last ``pooled`` of the k channels are read from
    the last feature map averaged over its positions (global average pooling, then a 1×1 conv
    + BN + Tanh), the first k - pooled from the usual 4×4 head. An averaged map changes little
    when the object only moves (not at all for moves by whole map cells away from the borders),
    so what the object *is* (shape, colour, size) gets coordinates that stay nearly constant
    through a sequence, for the static part of the Koopman split (paper Eq. 5). On the demo it
    carries shape into the swaps but lets motion into the static part (docs/experiments.md,
    2026-12-08), so no preset uses it. ``pooled`` = 0 is the paper's encoder, parameter for
    parameter.
    """

    def __init__(
        self, *, in_channels: int = 3, image_size: int = 64, width: int = 32, k: int = 40, pooled: int = 0
    ) -> None:
        super().__init__()
        if not 0 <= pooled < k:
            raise ValueError(f"pooled={pooled} must be in [0, k={k})")
        n = _stages(image_size)
        layers: list[nn.Module] = []
        c_in = in_channels
        for i in range(n):
            c_out = width * 2 ** (i + 4 - n)  # 64px: w,2w,4w,8w; 32px: 2w,4w,8w
            conv = _tagged(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), (image_size >> (i + 1)) ** 2)
            layers += [conv, nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c_out
        head = [_tagged(nn.Conv2d(c_in, k - pooled, 4, 1, 0, bias=False), 1), nn.BatchNorm2d(k - pooled), nn.Tanh()]
        if pooled:
            self.net = nn.Sequential(*layers)  # (N, 8w, 4, 4)
            self.head = nn.Sequential(*head)
            self.pool_head = nn.Sequential(
                nn.AdaptiveAvgPool2d(1), nn.Conv2d(c_in, pooled, 1, bias=False), nn.BatchNorm2d(pooled), nn.Tanh()
            )
        else:
            self.net = nn.Sequential(*layers, *head)
        self.k = k
        self.pooled = pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net(x)
        if not self.pooled:
            return h.flatten(1)  # (N, k)
        return torch.cat([self.head(h).flatten(1), self.pool_head(h).flatten(1)], dim=1)  # (N, k)


class ConvDecoder(nn.Module):
    """Codes (N, k) -> frames (N, C, H, W)."""

    supports_groups = True  # forward(z, groups) decodes stacked batches as separate calls

    def __init__(
        self, *, out_channels: int = 3, image_size: int = 64, width: int = 32, k: int = 40, output: str = "sigmoid"
    ) -> None:
        super().__init__()
        n = _stages(image_size)
        widths = [width * 2 ** (i + 4 - n) for i in range(n)][::-1]  # e.g. 8w,4w,2w,w
        layers: list[nn.Module] = [
            _tagged(nn.ConvTranspose2d(k, widths[0], 4, 1, 0, bias=False), 1),
            nn.BatchNorm2d(widths[0]),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        side = 4  # the input map of each stride-2 layer: 4, 8, 16, ...
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            deconv = _tagged(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), side * side)
            layers += [deconv, nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True)]
            side *= 2
        layers.append(nn.ConvTranspose2d(widths[-1], out_channels, 4, 2, 1))
        if output == "sigmoid":
            layers.append(nn.Sigmoid())
        elif output != "linear":
            raise ValueError(f"output={output!r} must be 'sigmoid' or 'linear'")
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, groups: int = 1) -> torch.Tensor:
        """``groups`` > 1: ``z`` stacks that many equal batches decoded as if by separate calls."""
        return grouped_forward(self.net, z[:, :, None, None], groups)  # (N, C, H, W)
