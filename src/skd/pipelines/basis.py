"""The one way to fit a Koopman basis on data: :class:`BasisSpec` says how, :func:`fit_reference_basis`
does it for ``skd swap``, ``skd eval``, ``skd factors``, the scorecard, the probes and the demo.

C is fitted by least squares on a batch of latents (it depends on that batch), decomposed, and
the static set S is chosen by the loss's own rule (:func:`skd.koopman.select_static`). With
``split="refined"`` the static part is then narrowed to its appearance-only directions
(:mod:`skd.pipelines.split`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import LossConfig
from ..data.base import SequenceData
from ..koopman import KoopmanBasis, fit_basis
from ..model import KoopmanAE
from . import ops
from .split import SPLITS, refine_split

CRITERIA = ("ball", "norm", "real")


@dataclass(frozen=True)
class BasisSpec:
    """How a basis is fitted: the static set (``static_size`` components by ``criterion``, as in
    the loss), the least-squares settings, the static split and the fitting batch.

    ``fit_batch``: number of random sequences C is fitted on (``<= 0``: all of them); ``seed``
    chooses them and seeds the refined split. Build it from a run's config with
    :meth:`from_loss`; every range is checked here, once.
    """

    static_size: int
    criterion: str = "ball"
    ridge: float = 0.0
    rcond: float = 1e-10
    split: str = "eigen"
    fit_batch: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("static_size", "fit_batch", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{name}={v!r} must be an integer")
        if self.static_size < 0:
            raise ValueError(f"static_size={self.static_size} must be >= 0")
        if self.criterion not in CRITERIA:
            raise ValueError(f"static criterion {self.criterion!r} must be one of {', '.join(CRITERIA)}")
        if self.split not in SPLITS:
            raise ValueError(f"split={self.split!r} must be one of {', '.join(SPLITS)}")
        if not (self.ridge >= 0 and self.rcond >= 0):
            raise ValueError(f"ridge={self.ridge} and rcond={self.rcond} must be >= 0")

    @classmethod
    def from_loss(cls, loss: LossConfig, *, split: str = "eigen", fit_batch: int = 256, seed: int = 0) -> BasisSpec:
        """The static set and least-squares settings of the loss the model was trained with."""
        return cls(loss.static_size, loss.static_criterion, loss.ridge, loss.rcond, split, fit_batch, seed)


def fit_indices(n: int, fit_batch: int, seed: int) -> torch.Tensor:
    """The ``min(fit_batch, n)`` sequences (random, seeded; all n when ``fit_batch <= 0``) a basis is fitted on."""
    m = n if fit_batch <= 0 else min(fit_batch, n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:m]


def basis_from_latents(z: torch.Tensor, spec: BasisSpec) -> KoopmanBasis:
    """C fitted on latents z (B, T, k), its eigenbasis, the static set and (``refined``) the split."""
    basis = fit_basis(z, spec.static_size, spec.criterion, ridge=spec.ridge, rcond=spec.rcond)
    return refine_split(z, basis, seed=spec.seed).basis if spec.split == "refined" else basis


def fit_reference_basis(model: KoopmanAE, data: SequenceData, spec: BasisSpec) -> KoopmanBasis:
    """The basis of ``spec`` fitted on ``spec.fit_batch`` random sequences of ``data``; frames are
    loaded and encoded 256 at a time."""
    idx = fit_indices(len(data), spec.fit_batch, spec.seed)
    z = torch.cat([ops.encode(model, data.batch(idx[i : i + 256])) for i in range(0, len(idx), 256)])  # (n, T, k)
    return basis_from_latents(z, spec)
