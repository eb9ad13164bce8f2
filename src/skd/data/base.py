"""In-memory sequence datasets that declare their factors.

Data convention (stated once for the whole package):
- video: ``x`` is uint8 (N, T, C, H, W) in [0, 255] or float32 in [0, 1]; batches are float32
  in [0, 1], channels first.
- vectors / spectrogram frames: ``x`` is float32 (N, T, D).
- labels: one int64 tensor (N,) per declared factor; ``-1`` marks an unknown label.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import torch

FactorKind = Literal["static", "dynamic"]


@dataclass(frozen=True)
class Factor:
    """One labelled generative factor of a dataset (disent-style declaration)."""

    name: str
    size: int
    kind: FactorKind
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"factor {self.name!r}: size={self.size} must be >= 1")
        if self.kind not in ("static", "dynamic"):
            raise ValueError(f"factor {self.name!r}: kind={self.kind!r} must be 'static' or 'dynamic'")
        if self.values and len(self.values) != self.size:
            raise ValueError(f"factor {self.name!r}: {len(self.values)} value names for size {self.size}")


@dataclass
class SequenceData:
    """A whole dataset held in memory: sequences, labels and the factors they follow."""

    x: torch.Tensor  # (N, T, C, H, W) uint8/float32 or (N, T, D) float32
    labels: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (N,) int64
    factors: tuple[Factor, ...] = ()
    name: str = "data"

    def __post_init__(self) -> None:
        if self.x.ndim not in (3, 5):
            raise ValueError(f"{self.name}: x must be (N, T, D) or (N, T, C, H, W), got shape {tuple(self.x.shape)}")
        if self.x.shape[0] < 1 or self.x.shape[1] < 2:
            raise ValueError(f"{self.name}: need N >= 1 sequences of T >= 2 steps, got shape {tuple(self.x.shape)}")
        if self.x.dtype not in (torch.uint8, torch.float32):
            raise ValueError(f"{self.name}: x dtype must be uint8 or float32, got {self.x.dtype}")
        if self.x.dtype == torch.float32 and not bool(torch.isfinite(self.x).all()):
            raise ValueError(f"{self.name}: x contains NaN or infinite values")
        names = {f.name for f in self.factors}
        for key, lab in self.labels.items():
            if key not in names:
                raise ValueError(f"{self.name}: label {key!r} has no declared factor (declared: {sorted(names)})")
            if lab.shape != (self.x.shape[0],):
                raise ValueError(f"{self.name}: label {key!r} has shape {tuple(lab.shape)}, expected ({self.x.shape[0]},)")
        for f in self.factors:
            lab = self.labels.get(f.name)
            if lab is not None and lab.numel() and (int(lab.max()) >= f.size or int(lab.min()) < -1):
                raise ValueError(f"{self.name}: label {f.name!r} outside [0, {f.size})")

    @property
    def is_video(self) -> bool:
        return self.x.ndim == 5

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of one time step: (C, H, W) or (D,)."""
        return tuple(self.x.shape[2:])

    @property
    def seq_len(self) -> int:
        return int(self.x.shape[1])

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def static_factors(self) -> tuple[Factor, ...]:
        return tuple(f for f in self.factors if f.kind == "static")

    def dynamic_factors(self) -> tuple[Factor, ...]:
        return tuple(f for f in self.factors if f.kind == "dynamic")

    def batch(self, idx: torch.Tensor | Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
        """Float32 batch for the model; uint8 is converted on the fly (x / 255)."""
        idx_t = torch.as_tensor(idx, dtype=torch.long)
        xb = self.x[idx_t].to(device, non_blocking=True)
        if xb.dtype == torch.uint8:
            return xb.float().div_(255.0)
        return xb.float()

    def subset(self, idx: torch.Tensor | Sequence[int]) -> "SequenceData":
        idx_t = torch.as_tensor(idx, dtype=torch.long)
        return SequenceData(
            x=self.x[idx_t],
            labels={k: v[idx_t] for k, v in self.labels.items()},
            factors=self.factors,
            name=self.name,
        )
