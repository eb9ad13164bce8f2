"""Swap consistency: a decoded swap, encoded again, should hold the parts it was made of.

The eigen split of Eq. 5 (Eq. 6's swap) exchanges the static parts z_S = (z Q1) F of two
sequences and keeps their dynamic parts z_D = z - z_S. Nothing in Eq. 3-4 asks the decoder to
render that swap faithfully: a model trained on unswapped latents alone can keep a copy of the
appearance in the dynamic coordinates and read it from there, so a swapped character comes out
with the donor's static part but some of the original's colours (Protocol B, and the "replaced
head still read as the original" rows of the scorecard, docs/EVALUATION.md).

Within a batch, with π a derangement of the sequences (here the roll by one: the batch order is
already random), the swapped latents are z̃ = z_D + z_S[π] (the projector is that of this
batch's C, a constant). Decoding and encoding again gives z' = enc(dec(z̃)), and

    L_swap = ‖mean_t z'_S − mean_t z_S[π]‖² / Σ_j Var_b (mean_t z_S)_j          (static target)
           + ‖z'_D − z_D‖² / Σ_j Var_b (z_D)_j                                   (dynamic target),

each a mean over the batch of the squared error divided by the spread of its target over the
batch (1 − R², as in :mod:`skd.model.crop`): scale-free, and not lowered by shrinking a part to
a constant. The targets are held constant (no gradient), so the term moves the decoder and the
encoder's reading of swapped frames, never the codes it is compared against.
The two targets have their own weights, ``loss.w_swap_static`` and ``loss.w_swap_dynamic``. The
static one makes the decoder draw whatever the donor's static part says instead of what a copy
in the dynamic coordinates says; the dynamic one makes the encoder keep out of the dynamic part
what a swap replaces, which it can do by thinning the static part as well (measured on Sprites
in docs/ABLATIONS.md, "Swap consistency").

A rendered swap that reads back as its two sources is what Protocols A and B measure with a
judge in place of the encoder; the term is label-free and needs no second model.

Swapping back (``loss.w_swap_back``) closes the loop in pixel space. Sequence b's static part went
to the swap j = π⁻¹(b); the dynamic part of b's own swap and the static part of swap j, both read
back by the encoder, are put together again and decoded:

    x̂_b = dec(z'_D,b + z'_S,π⁻¹(b)),      L_back = MSE(x̂, x)                         (swap back)

against the real frames x. Unlike the latent targets, this one is read by the pixels, not by
the model's own encoder: if the dynamic part of a swap carries the appearance it was rendered
with, the character comes back in the donor's colours and the reconstruction error says so.
One way around it is left open: a decoder that ignores the swap altogether (draws b's own
appearance from b's dynamic part) comes back right; the static target, which asks the swap to
hold the donor's static part, closes it, so the term is meant to be used with
``loss.w_swap_static`` (docs/ABLATIONS.md, "Swapping back"). Gradients flow through both swaps,
the encoder and the decoder.

Who reads the swaps back (``loss.swap_reader``). With ``"trained"`` the encoder that re-encodes a
swap learns from these terms like the decoder that drew it, so the two can settle on a private
code: a swap drawn with a slightly wrong skin tone passes if the encoder learns to read that tone
as the donor's. With ``"frozen"`` the re-encoding pass uses the encoder's weights as constants
(:meth:`skd.model.autoencoder.KoopmanAE.encode` with ``frozen=True``); the encoder still learns
from real frames and from the latents it hands to the swap, but not from reading swaps, so a
swap passes only if it looks right to an encoder taught by real frames.
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class SwapMiss(NamedTuple):
    """The two terms of L_swap, 0-dim tensors: 1 − R² of the donor's static part and of the own
    dynamic part in the re-encoded swaps."""

    static: torch.Tensor
    dynamic: torch.Tensor


def swap_partner(batch: int) -> torch.Tensor:
    """π (B,) int64: sequence b takes its static part from sequence π[b] = b - 1 (mod B), a
    derangement for B >= 2 (the identity for B = 1, where there is nothing to swap with)."""
    return torch.roll(torch.arange(batch), 1)


def split_parts(z: torch.Tensor, projector: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(z_S, z_D) float64 of latents z (B, T, k) with the static projector (to (k, s), from (s, k))."""
    to, frm = projector
    z64 = z.double()
    zs = (z64 @ to) @ frm  # (B, T, k)
    return zs, z64 - zs


def swapped_latents(z: torch.Tensor, projector: tuple[torch.Tensor, torch.Tensor], partner: torch.Tensor) -> torch.Tensor:
    """z̃ = z_D + z_S[π] (B, T, k) in z's dtype; differentiable in z."""
    zs, zd = split_parts(z, projector)
    return (zd + zs[partner.to(z.device)]).to(z.dtype)


def swap_back_latents(z_cycle: torch.Tensor, projector: tuple[torch.Tensor, torch.Tensor],
                      partner: torch.Tensor) -> torch.Tensor:
    """ẑ (B, T, k) in z_cycle's dtype: sequence b's own re-encoded dynamic part plus the re-encoded
    static part of the swap that took b's static part (index π⁻¹(b)); the latents of x̂ in
    ``L_back`` (module docstring). A perfect round trip gives back z exactly."""
    cs, cd = split_parts(z_cycle, projector)
    inverse = torch.argsort(partner.to(z_cycle.device))  # π⁻¹: swap inverse[b] holds b's static part
    return (cd + cs[inverse]).to(z_cycle.dtype)


def _unexplained(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean_b ‖pred_b − target_b‖² / Σ_j Var_b target_j over dim 0 (B, ...); 0 when the target
    does not vary over the batch."""
    target = target.detach().flatten(1)
    pred = pred.flatten(1)
    spread = target.var(0, unbiased=False).sum()
    miss = ((pred - target) ** 2).sum(1).mean()
    return miss / spread.clamp_min(1e-12)


def swap_consistency(z: torch.Tensor, z_cycle: torch.Tensor, projector: tuple[torch.Tensor, torch.Tensor],
                     partner: torch.Tensor) -> SwapMiss:
    """The two terms of L_swap (module docstring) for latents z (B, T, k), the re-encoded swaps
    z' (B, T, k) and π (B,).

    Computed in float64, returned in z_cycle's dtype; differentiable in z_cycle only (the
    targets built from z are constants).
    """
    zs, zd = split_parts(z.detach(), projector)
    cs, cd = split_parts(z_cycle, projector)
    static = _unexplained(cs.mean(1), zs.mean(1)[partner.to(z.device)])
    return SwapMiss(static.to(z_cycle.dtype), _unexplained(cd, zd).to(z_cycle.dtype))
