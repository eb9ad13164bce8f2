"""How the frame networks run: numeric precision, memory layout, compilation.

Only the per-frame convolutional / MLP networks — where nearly all of the arithmetic is — run
in reduced precision. Everything after the frame encoder stays float32 (the temporal LSTMs, the
losses) or float64 (the Koopman least-squares solve, Eq. 2, and the eigendecomposition of the
spectral loss, Eq. 4), so the part of SKD that is numerically delicate never sees bf16.

``train.precision``:
- ``auto``: bf16 autocast where the hardware has native bf16 arithmetic — CUDA devices that
  report ``torch.cuda.is_bf16_supported()``, CPUs with AVX-512 BF16 or AMX instructions (not
  oneDNN's check, which also says yes where bf16 is emulated) — and only for convolutional
  frame networks, where ``benchmarks/train_speed.py`` measured the gain; float32 everywhere else.
- ``fp32``: force float32 (the reference numerics).
- ``bf16``: bf16 autocast even where it is emulated (slow, but allowed for experiments).

``train.memory_format``: ``auto`` (channels_last for convolutional nets on CPU and CUDA, where
oneDNN / cuDNN prefer NHWC) | ``channels_last`` | ``contiguous``.
``train.compile``: ``torch.compile`` the frame networks (off by default: on CPU it costs half a
minute of compilation and measured slower than bf16 + channels_last eager; see the benchmark).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from ..config import MEMORY_FORMATS, PRECISIONS
from .nets.gemm_grad import use_default_weight_grad, use_gemm_weight_grad


@dataclass(frozen=True)
class ExecutionPlan:
    """The resolved choice for one device and model (recorded in the run's result.json)."""

    autocast: torch.dtype | None  # None = float32
    channels_last: bool
    compile: bool
    reason: str
    gemm_weight_grad: bool = False  # small-map conv weight gradients as one GEMM (skd.model.nets.gemm_grad)

    def describe(self) -> str:
        prec = "fp32" if self.autocast is None else str(self.autocast).replace("torch.", "")
        fmt = "channels_last" if self.channels_last else "contiguous"
        extra = (", GEMM weight gradients" if self.gemm_weight_grad else "") + (", compiled" if self.compile else "")
        return f"frame nets {prec}, {fmt}{extra} ({self.reason})"

    def to_dict(self) -> dict[str, object]:
        return {"precision": "fp32" if self.autocast is None else "bf16", "channels_last": self.channels_last,
                "compile": self.compile, "gemm_weight_grad": self.gemm_weight_grad, "reason": self.reason}


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` does bf16 arithmetic in hardware (not emulated)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return cpu_has_bf16_isa()
    return False


def cpu_has_bf16_isa() -> bool:
    """AVX-512 BF16 or AMX tiles: the CPU instructions that make bf16 GEMMs fast.

    oneDNN's own check (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) also says yes on plain
    AVX-512 CPUs, where it converts bf16 to fp32 around every kernel: measured there, a bf16 GEMM
    ran at 28 GFLOP/s against 126 for fp32, and a ``fast`` training step took 1.72 s against
    0.94 s in fp32 + channels_last (docs/SPEED.md, "A CPU without bf16 instructions").
    """
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()))
    except (AttributeError, RuntimeError):
        return False


def resolve_plan(
    precision: str, memory_format: str, compile: bool, device: torch.device, model_kind: str
) -> ExecutionPlan:
    """The fastest safe choice for ``device`` (``auto``), or what the config forces."""
    if precision not in PRECISIONS:
        raise ValueError(f"train.precision={precision!r} must be one of {', '.join(PRECISIONS)}")
    if memory_format not in MEMORY_FORMATS:
        raise ValueError(f"train.memory_format={memory_format!r} must be one of {', '.join(MEMORY_FORMATS)}")
    conv = model_kind == "conv"
    if precision == "fp32":
        dtype, reason = None, "forced by train.precision=fp32"
    elif precision == "bf16":
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"train.precision=bf16 needs a CPU or CUDA device, not {device.type}")
        dtype, reason = torch.bfloat16, "forced by train.precision=bf16"
    elif conv and native_bf16(device):
        dtype, reason = torch.bfloat16, f"auto: native bf16 on {device.type}"
    else:
        dtype = None
        reason = "auto: fp32 (" + ("no native bf16 on this device" if conv else "MLP frame nets: bf16 not benchmarked, kept fp32") + ")"
    if memory_format == "auto":
        cl = conv and device.type in ("cpu", "cuda")
    else:
        cl = memory_format == "channels_last" and conv
    # oneDNN's bf16 weight gradient of the 4x4-map layers is slow on CPUs (docs/SPEED.md)
    gemm = conv and dtype is not None and device.type == "cpu"
    return ExecutionPlan(autocast=dtype, channels_last=cl, compile=compile, reason=reason, gemm_weight_grad=gemm)


def apply_plan(model: nn.Module, plan: ExecutionPlan) -> None:
    """Set ``model`` (a :class:`skd.model.KoopmanAE`) to run its frame networks as ``plan`` says."""
    model.frame_autocast = plan.autocast
    model.channels_last = plan.channels_last
    if plan.channels_last:
        model.frame_encoder.to(memory_format=torch.channels_last)
        model.frame_decoder.to(memory_format=torch.channels_last)
    if plan.gemm_weight_grad:
        use_gemm_weight_grad(model.frame_encoder)
        use_gemm_weight_grad(model.frame_decoder)
    if plan.compile:
        model.frame_encoder.compile()
        model.frame_decoder.compile()


def reset_plan(model: nn.Module) -> None:
    """Back to float32 and the default memory layout, as :func:`skd.training.loop.load_run` builds it."""
    model.frame_autocast = None
    use_default_weight_grad(model.frame_encoder)
    use_default_weight_grad(model.frame_decoder)
    if model.channels_last:
        model.frame_encoder.to(memory_format=torch.contiguous_format)
        model.frame_decoder.to(memory_format=torch.contiguous_format)
        model.channels_last = False


@contextlib.contextmanager
def frame_autocast(device_type: str, dtype: torch.dtype | None) -> Iterator[None]:
    """Autocast region for a frame network; a no-op for float32."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device_type, dtype=dtype):
        yield


@contextlib.contextmanager
def full_precision(device_type: str) -> Iterator[None]:
    """Autocast switched off (the Koopman solve and the eigendecomposition run in here)."""
    with torch.autocast(device_type=device_type, enabled=False):
        yield
