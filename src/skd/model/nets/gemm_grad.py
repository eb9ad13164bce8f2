"""Weight gradients of small-map convolutions as one GEMM over explicit patches (im2col).

On CPUs with bf16 instructions, oneDNN computes the weight gradient of a convolution whose
feature maps are tiny (the 8→4 px encoder layer and the 4→8 px decoder layer of the Sprites
nets, 128–256 channels) several times slower than the forward: 127 GFLOP/s against 425–711
(``benchmarks/conv_layers.py``). The same product written as ``gradᵀ @ patches`` — the k×k
windows of the input copied into a (frames·positions, k·k·channels) matrix — runs at about
340 GFLOP/s there, because for a 4×4 map the copy is small and the GEMM is large and square.

:func:`use_gemm_weight_grad` switches chosen layers of a network to this backward; the forward
and the input gradient stay oneDNN's, the parameters and the state_dict do not change, and the
result equals autograd's to the rounding of the dtype (``tests/test_gemm_grad.py``). Without
autograd (evaluation) or with a bias (a BatchNorm-folded copy, :mod:`skd.model.fold`) a switched
layer runs the plain module's forward. Layers
with larger maps keep oneDNN's backward, where the copies would cost more than they save.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def patches(x: torch.Tensor, k: int, s: int, p: int, ho: int, wo: int) -> torch.Tensor:
    """(N, C, H, W) -> (N·ho·wo, k·k·C): the k×k windows at stride s of x zero-padded by p.

    Rows are output positions in (n, i, j) order; columns are (kernel row, kernel column,
    channel), the order in which a channels_last weight stores its entries.
    """
    n, c = x.shape[:2]
    xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, p, p, p, p))  # (N, H+2p, W+2p, C)
    sn, sh, sw, sc = xp.stride()
    windows = xp.as_strided((n, ho, wo, k, k, c), (sn, s * sh, s * sw, sh, sw, sc))
    return windows.reshape(n * ho * wo, k * k * c)


def conv_weight_grad(grad_out: torch.Tensor, x: torch.Tensor, k: int, s: int, p: int) -> torch.Tensor:
    """dL/dW of ``y = conv2d(x, W, stride=s, padding=p)`` given dL/dy, as one GEMM.

    grad_out (N, Co, Ho, Wo), x (N, Ci, H, W) -> (Co, Ci, k, k):
    dW[o, c, a, b] = Σ_{n,i,j} dy[n, o, i, j] · x_pad[n, c, s·i + a, s·j + b].
    """
    n, co, ho, wo = grad_out.shape
    g = grad_out.permute(0, 2, 3, 1).reshape(n * ho * wo, co)  # (N·Ho·Wo, Co), free for channels_last
    r = g.T @ patches(x, k, s, p, ho, wo)  # (Co, k·k·Ci)
    return r.reshape(co, k, k, -1).permute(0, 3, 1, 2)


def conv_transpose_weight_grad(grad_out: torch.Tensor, x: torch.Tensor, k: int, s: int, p: int) -> torch.Tensor:
    """dL/dW of ``y = conv_transpose2d(x, W, stride=s, padding=p)``, W (Ci, Co, k, k).

    A transposed convolution is the adjoint of the convolution that maps y's shape to x's with
    the same W, so its weight gradient is that convolution's with the roles of x and dy swapped:
    dW[c, o, a, b] = Σ x[n, c, i, j] · dy_pad[n, o, s·i + a, s·j + b].
    """
    return conv_weight_grad(x, grad_out, k, s, p)


class _GemmWeightGrad(torch.autograd.Function):
    """conv2d / conv_transpose2d without bias: oneDNN forward and input gradient, GEMM weight gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, s: int, p: int, transposed: bool) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, w)
        ctx.conf = (s, p, transposed)
        if transposed:
            return F.conv_transpose2d(x, w, None, s, p)
        return F.conv2d(x, w, None, s, p)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        x, w = ctx.saved_tensors
        s, p, transposed = ctx.conf
        k = w.shape[-1]
        grad_out = grad_out.contiguous(memory_format=torch.channels_last) if x.is_contiguous(
            memory_format=torch.channels_last) else grad_out.contiguous()
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = torch.ops.aten.convolution_backward(
                grad_out, x, w, None, [s, s], [p, p], [1, 1], transposed, [0, 0], 1, [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            fn = conv_transpose_weight_grad if transposed else conv_weight_grad
            gw = fn(grad_out, x, k, s, p).to(w.dtype)
        return gx, gw, None, None, None


class GemmGradConv2d(nn.Conv2d):
    """An :class:`nn.Conv2d` (square kernel, one stride and padding, no bias, no groups) whose
    weight gradient is one GEMM; same parameters, same state_dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is not None or not torch.is_grad_enabled():  # e.g. a BatchNorm-folded eval copy
            return super().forward(x)
        return _gemm_forward(self, x, transposed=False)


class GemmGradConvTranspose2d(nn.ConvTranspose2d):
    """The same for :class:`nn.ConvTranspose2d` (no output padding)."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if output_size is not None:
            raise ValueError("GemmGradConvTranspose2d does not take output_size")
        if self.bias is not None or not torch.is_grad_enabled():
            return super().forward(x)
        return _gemm_forward(self, x, transposed=True)


def _gemm_forward(layer: nn.Conv2d | nn.ConvTranspose2d, x: torch.Tensor, transposed: bool) -> torch.Tensor:
    w = layer.weight
    if torch.is_autocast_enabled(x.device.type):  # what autocast does for a convolution: both in its dtype
        dtype = torch.get_autocast_dtype(x.device.type)
        x, w = x.to(dtype), w.to(dtype)
    with torch.autocast(x.device.type, enabled=False):
        return _GemmWeightGrad.apply(x, w, layer.stride[0], layer.padding[0], transposed)


def _eligible(layer: nn.Module, max_positions: int) -> bool:
    """A bias-free, ungrouped, undilated square conv whose smaller map has ≤ max_positions pixels."""
    if type(layer) not in (nn.Conv2d, nn.ConvTranspose2d) or layer.bias is not None or layer.groups != 1:
        return False
    k, s, p, d = layer.kernel_size, layer.stride, layer.padding, layer.dilation
    if k[0] != k[1] or s[0] != s[1] or p[0] != p[1] or d != (1, 1) or isinstance(p, str):
        return False
    if isinstance(layer, nn.ConvTranspose2d) and layer.output_padding != (0, 0):
        return False
    return getattr(layer, "small_map_positions", max_positions + 1) <= max_positions


def use_gemm_weight_grad(net: nn.Module, max_positions: int = 16) -> list[str]:
    """Switch the eligible layers of ``net`` to the GEMM weight gradient; returns their names.

    A layer is eligible when its builder tagged it with ``small_map_positions`` (the number of
    pixels of its smaller feature map, see :mod:`skd.model.nets.conv`) ≤ ``max_positions``.
    The class is swapped in place; parameters, buffers and hooks stay the same objects.
    """
    switched = []
    for name, layer in net.named_modules():
        if _eligible(layer, max_positions):
            layer.__class__ = GemmGradConvTranspose2d if isinstance(layer, nn.ConvTranspose2d) else GemmGradConv2d
            switched.append(name)
    return switched


def use_default_weight_grad(net: nn.Module) -> None:
    """Undo :func:`use_gemm_weight_grad`."""
    for layer in net.modules():
        if type(layer) is GemmGradConv2d:
            layer.__class__ = nn.Conv2d
        elif type(layer) is GemmGradConvTranspose2d:
            layer.__class__ = nn.ConvTranspose2d
