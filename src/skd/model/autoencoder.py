"""KoopmanAE: per-frame encoder → LSTM → Koopman fit → LSTM → per-frame decoder (docs/METHOD.md §1)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.profiler import record_function

from ..config import ModelConfig
from ..koopman import fit_koopman, predict_latents
from .nets.conv import ConvDecoder, ConvEncoder
from .nets.mlp import MLPDecoder, MLPEncoder
from .independence import static_projector
from .precision import frame_autocast, full_precision
from .swap import swap_back_latents, swap_partner, swapped_latents


@dataclass
class ModelOutput:
    """Everything one forward pass computes."""

    z: torch.Tensor  # (B, T, k) latents
    z_pred: torch.Tensor  # (B, T, k) = [z_0 ; Zp C]
    C: torch.Tensor  # (k, k) float64 Koopman matrix of this batch
    x_rec: torch.Tensor  # (B, T, ...) decode of (dropout) z
    x_pred: torch.Tensor  # (B, T, ...) decode of z_pred
    z_crop: torch.Tensor | None = None  # (B, L, k) latents of crops encoded on their own (loss.w_crop)
    projector: tuple[torch.Tensor, torch.Tensor] | None = None  # (k, s), (s, k) static projector of C (loss.w_swap_*)
    partner: torch.Tensor | None = None  # (B,) static donor of each swapped sequence (loss.w_swap_*)
    z_cycle: torch.Tensor | None = None  # (B, T, k) latents of the decoded swaps encoded again (loss.w_swap_*)
    x_back: torch.Tensor | None = None  # (B, T, ...) decode of the swaps' parts put back together (loss.w_swap_back)


def _call(module: nn.Module, x: torch.Tensor, frozen: bool) -> torch.Tensor:
    """``module(x)``; with ``frozen``, with the module's parameters detached (constants of this call:
    no gradient reaches them through it), its buffers (BatchNorm statistics) used and updated as usual."""
    if not frozen:
        return module(x)
    params = {name: p.detach() for name, p in module.named_parameters()}
    return torch.func.functional_call(module, params, (x,))


class TemporalLSTM(nn.Module):
    """A 1-layer LSTM k → k over time, or the identity when disabled."""

    def __init__(self, k: int, enabled: bool) -> None:
        super().__init__()
        self.lstm = nn.LSTM(k, k, batch_first=True) if enabled else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.lstm is None:
            return z
        return self.lstm(z)[0]  # (B, T, k)


def build_frame_nets(cfg: ModelConfig) -> tuple[nn.Module, nn.Module]:
    """The per-frame encoder and decoder that ``cfg`` describes."""
    if cfg.kind in ("conv", "auto"):
        out = "sigmoid" if cfg.output == "auto" else cfg.output
        enc = ConvEncoder(in_channels=cfg.channels, image_size=cfg.image_size, width=cfg.width, k=cfg.k,
                          pooled=cfg.pooled)
        dec = ConvDecoder(out_channels=cfg.channels, image_size=cfg.image_size, width=cfg.width, k=cfg.k, output=out)
        return enc, dec
    if cfg.kind == "mlp":
        out = "linear" if cfg.output == "auto" else cfg.output
        enc = MLPEncoder(input_dim=cfg.input_dim, k=cfg.k, hidden=cfg.hidden, layers=cfg.layers)
        dec = MLPDecoder(output_dim=cfg.input_dim, k=cfg.k, hidden=cfg.hidden, layers=cfg.layers, output=out)
        return enc, dec
    raise ValueError(f"model.kind={cfg.kind!r} must be 'conv' or 'mlp' (resolve 'auto' with resolve_model_config)")


class KoopmanAE(nn.Module):
    """Structured Koopman autoencoder.

    ``frame_encoder`` maps (N, *frame) -> (N, k) and ``frame_decoder`` (N, k) -> (N, *frame);
    pass your own modules to plug in another architecture, otherwise they are built from ``cfg``.
    """

    def __init__(
        self, cfg: ModelConfig, frame_encoder: nn.Module | None = None, frame_decoder: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.cfg = cfg
        if frame_encoder is None or frame_decoder is None:
            enc, dec = build_frame_nets(cfg)
            frame_encoder = frame_encoder or enc
            frame_decoder = frame_decoder or dec
        self.frame_encoder = frame_encoder
        self.frame_decoder = frame_decoder
        self.enc_lstm = TemporalLSTM(cfg.k, cfg.lstm)
        self.dec_lstm = TemporalLSTM(cfg.k, cfg.lstm)
        self.dropout = nn.Dropout(cfg.dropout)
        # how the frame networks run (set by skd.model.precision.apply_plan; not part of the state)
        self.frame_autocast: torch.dtype | None = None
        self.channels_last = False
        # one decoder pass for reconstruction + prediction (decode_many): exact, but measured 0.97× on
        # CPU (benchmarks/train_speed.py), so off by default
        self.fuse_decode = False

    @property
    def frame_shape(self) -> tuple[int, ...]:
        c = self.cfg
        return (c.input_dim,) if c.kind == "mlp" else (c.channels, c.image_size, c.image_size)

    def check_input(self, x: torch.Tensor) -> None:
        want = self.frame_shape
        if x.ndim != 2 + len(want) or tuple(x.shape[2:]) != want or x.shape[1] < 2:
            raise ValueError(f"input shape {tuple(x.shape)} does not match (B, T>=2, {', '.join(map(str, want))})")

    def encode(self, x: torch.Tensor, *, frozen: bool = False) -> torch.Tensor:
        """(B, T, *frame) -> (B, T, k). ``frozen``: the encoder's parameters are constants of this
        call (gradients reach x, never the encoder's weights); BatchNorm behaves as in a plain call."""
        b, t = x.shape[:2]
        frames = x.reshape(b * t, *x.shape[2:])  # (B·T, *frame)
        if self.channels_last and frames.ndim == 4:
            frames = frames.contiguous(memory_format=torch.channels_last)
        with frame_autocast(x.device.type, self.frame_autocast):
            h = _call(self.frame_encoder, frames, frozen)  # (B·T, k)
        h = h.to(x.dtype)  # back from bf16 (ours or a caller's autocast): the rest runs in x's precision
        with full_precision(x.device.type):
            return _call(self.enc_lstm, h.reshape(b, t, -1), frozen)  # (B, T, k)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, T, k) -> (B, T, *frame)."""
        return self._decode_stacked([z])[0]

    def decode_many(self, *zs: torch.Tensor) -> list[torch.Tensor]:
        """``[decode(z) for z in zs]``, in one pass over the stacked batch when ``fuse_decode`` is
        set and the frame decoder supports it (ours do: BatchNorm statistics stay per batch, so the
        values are those of separate calls); otherwise one call each. (B, T, k) each.
        """
        if not self.fuse_decode or not getattr(self.frame_decoder, "supports_groups", False):
            return [self.decode(z) for z in zs]
        return self._decode_stacked(list(zs))

    def _decode_stacked(self, zs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Decode equal-shaped (B, T, k) latents with one LSTM and one frame-decoder call."""
        g = len(zs)
        z = zs[0] if g == 1 else torch.cat(zs)  # (g·B, T, k)
        b, t, k = zs[0].shape
        with full_precision(z.device.type):
            h = self.dec_lstm(z).reshape(g * b * t, k)  # (g·B·T, k)
        with frame_autocast(z.device.type, self.frame_autocast):
            x = self.frame_decoder(h) if g == 1 else self.frame_decoder(h, groups=g)  # (g·B·T, *frame)
        x = x.to(z.dtype).reshape(g, b, t, *x.shape[1:])
        return list(x.unbind(0))

    def forward(
        self,
        x: torch.Tensor,
        *,
        ridge: float = 0.0,
        rcond: float = 1e-10,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
        crops: torch.Tensor | None = None,
        swap: tuple[int, str] | None = None,
        swap_back: bool = False,
        frozen_reader: bool = False,
    ) -> ModelOutput:
        """``reduce``: sum over processes for a global Koopman fit (see :func:`skd.koopman.normal_equations`).
        ``crops`` (B, L, *frame): short crops of x, encoded on their own for the crop-consistency
        loss (:mod:`skd.model.crop`); their latents are ``z_crop``.
        ``swap`` (static_size, static_criterion): also decode the batch's swaps under this batch's
        eigen split and encode them again, for the swap-consistency loss (:mod:`skd.model.swap`);
        with ``swap_back``, also decode their parts put back together (``x_back``, for L_back);
        with ``frozen_reader``, the swaps are encoded again by the encoder held fixed (reading them
        adds no gradient to the encoder's weights; the latents it hands to the swap still get one;
        ``loss.swap_reader = "frozen"``).
        """
        z = self.encode(x)  # (B, T, k)
        z_crop = self.encode(crops) if crops is not None else None  # (B, L, k)
        # Eq. 2 in float64 even inside a caller's autocast; the scope names it in benchmarks/profile_step.py
        with full_precision(x.device.type), record_function("koopman fit"):
            C = fit_koopman(z, ridge=ridge, rcond=rcond, reduce=reduce)  # (k, k) float64
            z_pred = predict_latents(z, C)  # (B, T, k)
        projector = None
        if swap is not None:
            with full_precision(x.device.type), record_function("static projector"):
                projector = static_projector(C, *swap)  # None: no separable static set, no swap this step
        if projector is None:
            x_rec, x_pred = self.decode_many(self.dropout(z), z_pred)
            return ModelOutput(z=z, z_pred=z_pred, C=C, x_rec=x_rec, x_pred=x_pred, z_crop=z_crop)
        partner = swap_partner(z.shape[0])
        x_rec, x_pred, x_swap = self.decode_many(self.dropout(z), z_pred, swapped_latents(z, projector, partner))
        z_cycle = self.encode(x_swap, frozen=frozen_reader)  # (B, T, k)
        x_back = self.decode(swap_back_latents(z_cycle, projector, partner)) if swap_back else None
        return ModelOutput(z=z, z_pred=z_pred, C=C, x_rec=x_rec, x_pred=x_pred, z_crop=z_crop,
                           projector=projector, partner=partner, z_cycle=z_cycle, x_back=x_back)
