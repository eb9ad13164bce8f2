"""Training objective of SKD (docs/METHOD.md §2; paper Eq. 3-4 and Sec. 3.2).

L = w_rec·L_rec + w_pred·(L_pred_latent + L_pred_ambient) + w_eig·L_eig [+ w_crop·L_crop]
[+ w_indep·L_indep] [+ w_swap_static·L_swap,S + w_swap_dynamic·L_swap,D + w_swap_back·L_back], every term an MSE-type
mean or a ratio; L_crop (:mod:`skd.model.crop`), L_indep (:mod:`skd.model.independence`) and
L_swap (:mod:`skd.model.swap`) are ours, not the paper's, and off by default. ``compute_losses`` returns the total and a named breakdown.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.profiler import record_function

from ..config import LossConfig
from ..koopman import eig_sorted, select_static
from .autoencoder import ModelOutput
from .crop import crop_consistency
from .independence import static_dynamic_dependence, static_projector
from .precision import full_precision
from .swap import SwapMiss, swap_consistency

_DYNAMIC = ("real", "thresh", "strict", "ball")


def static_term(values: torch.Tensor, criterion: str) -> torch.Tensor:
    """Pull the static eigenvalues onto λ = 1; ``values`` (n,) complex. Mean over the set.

    ball: |λ - 1|²; norm: (|λ|² - 1)²; real: (Re λ - 1)².
    """
    if values.numel() == 0:
        return values.real.sum() * 0.0
    if criterion == "ball":
        return ((values.real - 1) ** 2 + values.imag**2).mean()
    if criterion == "norm":
        return ((values.real**2 + values.imag**2 - 1) ** 2).mean()
    if criterion == "real":
        return ((values.real - 1) ** 2).mean()
    raise ValueError(f"static criterion {criterion!r} must be one of 'ball', 'norm', 'real'")


def dynamic_term(values: torch.Tensor, criterion: str, eps: float = 0.5, radius: float = 0.6) -> torch.Tensor:
    """Keep the dynamic eigenvalues away from λ = 1; ``values`` (n,) complex. Mean over the set.

    real: max(Re λ - ε, 0) (reference default); thresh: max(|λ|² - ε, 0) (paper: modulus below
    a threshold); strict: (|λ|² - ε²)²; ball: max(radius - |λ - 1|, 0).
    """
    if criterion not in _DYNAMIC:
        raise ValueError(f"dynamic criterion {criterion!r} must be one of {', '.join(_DYNAMIC)}")
    if values.numel() == 0:
        return values.real.sum() * 0.0
    mod2 = values.real**2 + values.imag**2
    if criterion == "real":
        return F.relu(values.real - eps).mean()
    if criterion == "thresh":
        return F.relu(mod2 - eps).mean()
    if criterion == "strict":
        return ((mod2 - eps**2) ** 2).mean()
    dist = torch.sqrt((values.real - 1) ** 2 + values.imag**2 + 1e-12)
    return F.relu(radius - dist).mean()


def spectral_loss(C: torch.Tensor, cfg: LossConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_eig = static term over S + dynamic term over D, S chosen by :func:`select_static`.

    A non-finite C (diverged step) or a failed decomposition gives NaN, for the trainer's guard.
    """
    if not bool(torch.isfinite(C).all()):
        nan = C.sum() * float("nan")
        return nan, {"eig_static": nan, "eig_dynamic": nan}
    try:
        eig = eig_sorted(C, with_inverse=False)
    except torch.linalg.LinAlgError:
        nan = C.sum() * float("nan")
        return nan, {"eig_static": nan, "eig_dynamic": nan}
    mask = select_static(eig, cfg.static_size, cfg.static_criterion)  # in range: checked when the Config is built
    s = static_term(eig.values[mask], cfg.static_criterion)
    d = dynamic_term(eig.values[~mask], cfg.dynamic_criterion, cfg.eps, cfg.dynamic_ball_radius)
    return s + d, {"eig_static": s, "eig_dynamic": d}


def compute_losses(x: torch.Tensor, out: ModelOutput, cfg: LossConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and its parts {rec, pred_latent, pred_ambient, eig, eig_static, eig_dynamic}.

    ``pred_ambient``: 'reference' = MSE(x_rec, x_pred) (the reference code, default);
    'paper' = MSE(x, x_pred) on the predicted frames 1..T-1.
    """
    if cfg.ambient_pred not in ("reference", "paper"):
        raise ValueError(f"ambient_pred={cfg.ambient_pred!r} must be 'reference' or 'paper'")
    with record_function("mse losses"):  # scopes name the parts in benchmarks/profile_step.py
        rec = F.mse_loss(out.x_rec, x)
        pred_latent = F.mse_loss(out.z_pred, out.z)
        if cfg.ambient_pred == "reference":
            pred_ambient = F.mse_loss(out.x_pred, out.x_rec)
        else:
            pred_ambient = F.mse_loss(out.x_pred[:, 1:], x[:, 1:])
    if cfg.w_eig > 0:
        # eigendecomposition in float64, never autocast
        with full_precision(out.C.device.type), record_function("spectral loss"):
            eig, eig_parts = spectral_loss(out.C, cfg)
        eig = eig.to(rec.dtype)
    else:
        eig = rec.new_zeros(())
        eig_parts = {"eig_static": eig, "eig_dynamic": eig}
    total = cfg.w_rec * rec + cfg.w_pred * (pred_latent + pred_ambient) + cfg.w_eig * eig
    parts = {"rec": rec, "pred_latent": pred_latent, "pred_ambient": pred_ambient, "eig": eig}
    parts.update({k: v.to(rec.dtype) for k, v in eig_parts.items()})
    use_crop = cfg.w_crop > 0 and out.z_crop is not None
    projector = out.projector  # computed by the forward pass when it decoded swaps
    if (use_crop or cfg.w_indep > 0) and projector is None:
        with full_precision(out.C.device.type), record_function("static projector"):
            projector = static_projector(out.C, cfg.static_size, cfg.static_criterion)  # None: no separable static set
    if use_crop:
        with full_precision(out.C.device.type), record_function("crop consistency"):
            crop = crop_consistency(out.z, out.z_crop, projector[0]) if projector is not None else rec.new_zeros(())
        total = total + cfg.w_crop * crop.to(rec.dtype)
        parts["crop"] = crop.to(rec.dtype)
    if cfg.w_indep > 0:
        with full_precision(out.C.device.type), record_function("independence"):
            indep = (static_dynamic_dependence(out.z, projector, grad=cfg.indep_grad) if projector is not None
                     else rec.new_zeros(()))
        total = total + cfg.w_indep * indep.to(rec.dtype)
        parts["indep"] = indep.to(rec.dtype)
    if cfg.w_swap_static > 0 or cfg.w_swap_dynamic > 0:
        with full_precision(out.C.device.type), record_function("swap consistency"):
            if out.z_cycle is not None:
                miss = swap_consistency(out.z, out.z_cycle, out.projector, out.partner)
            else:  # no separable static set this step: nothing was swapped
                miss = SwapMiss(rec.new_zeros(()), rec.new_zeros(()))
        total = total + cfg.w_swap_static * miss.static.to(rec.dtype) + cfg.w_swap_dynamic * miss.dynamic.to(rec.dtype)
        parts["swap_static"] = miss.static.to(rec.dtype)
        parts["swap_dynamic"] = miss.dynamic.to(rec.dtype)
    if cfg.w_swap_back > 0:
        with record_function("swap back"):
            back = F.mse_loss(out.x_back, x) if out.x_back is not None else rec.new_zeros(())  # None: nothing swapped
        total = total + cfg.w_swap_back * back.to(rec.dtype)
        parts["swap_back"] = back.to(rec.dtype)
    return total, parts
