"""Spectrogram front end with ``torch.stft`` and the way back to a waveform (Griffin-Lim).

Convention: a waveform is float (n,) at ``spec.sample_rate``; a feature matrix is float32
(frames, bins) — time first, like every sequence in this package — with bins = n_fft//2 + 1
(linear magnitude) or ``n_mels`` (mel). ``log=True`` stores log(max(value, floor)).
Frames are centred (``torch.stft(center=True)``): frame j covers samples around j·hop, so a
clip of n samples gives 1 + n // hop frames.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "SpectrogramSpec", "stft", "istft", "mel_filterbank", "features", "features_to_magnitude",
    "spectral_convergence", "griffin_lim", "features_to_audio", "split_chunks", "fit_window",
]


@dataclass(frozen=True)
class SpectrogramSpec:
    """How a waveform becomes a (frames, bins) feature matrix."""

    sample_rate: int
    n_fft: int = 256
    win_length: int = 0  # 0 = n_fft; a Hann window of this length, zero-padded to n_fft
    hop_length: int = 128
    n_mels: int = 0  # 0 = linear-frequency magnitude bins
    log: bool = True
    floor: float = 1e-4  # magnitude floor before the log (silence level)
    fmin: float = 0.0  # mel only
    fmax: float = 0.0  # mel only; 0 = Nyquist

    def __post_init__(self) -> None:
        if self.sample_rate < 1:
            raise ValueError(f"sample_rate={self.sample_rate} must be >= 1")
        if self.n_fft < 8:
            raise ValueError(f"n_fft={self.n_fft} must be >= 8")
        if not 0 <= self.win_length <= self.n_fft:
            raise ValueError(f"win_length={self.win_length} must be in [0, n_fft={self.n_fft}]")
        if not 1 <= self.hop_length <= self.window:
            raise ValueError(f"hop_length={self.hop_length} must be in [1, window length {self.window}]")
        if self.n_mels < 0 or self.n_mels > self.n_fft // 2 + 1:
            raise ValueError(f"n_mels={self.n_mels} must be in [0, n_fft//2 + 1 = {self.n_fft // 2 + 1}]")
        if self.floor <= 0:
            raise ValueError(f"floor={self.floor} must be > 0")
        if self.fmax and not self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= fmin < fmax <= Nyquist, got fmin={self.fmin}, fmax={self.fmax}")

    @property
    def window(self) -> int:
        return self.win_length or self.n_fft

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def n_bins(self) -> int:
        return self.n_mels or self.n_freqs

    def n_frames(self, n_samples: int) -> int:
        return 1 + n_samples // self.hop_length

    def samples_for(self, frames: int) -> int:
        """Samples of a clip that gives exactly ``frames`` frames."""
        return (frames - 1) * self.hop_length


def _window(spec: SpectrogramSpec, device: torch.device | None = None) -> torch.Tensor:
    return torch.hann_window(spec.window, periodic=True, dtype=torch.float64, device=device)


def stft(x: torch.Tensor, spec: SpectrogramSpec) -> torch.Tensor:
    """Complex STFT (..., n) -> (..., n_fft//2+1, frames), complex128, centred frames."""
    x = torch.as_tensor(x).to(torch.float64)
    return torch.stft(x, spec.n_fft, hop_length=spec.hop_length, win_length=spec.window, window=_window(spec, x.device),
                      center=True, pad_mode="constant", return_complex=True)


def istft(X: torch.Tensor, spec: SpectrogramSpec, length: int | None = None) -> torch.Tensor:
    """Inverse of :func:`stft` (least-squares overlap-add): (..., F, frames) -> (..., n) float64."""
    return torch.istft(X.to(torch.complex128), spec.n_fft, hop_length=spec.hop_length, win_length=spec.window,
                       window=_window(spec, X.device), center=True, length=length)


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)


def mel_filterbank(spec: SpectrogramSpec) -> torch.Tensor:
    """Triangular HTK-mel filters (n_mels, n_fft//2+1) float64, each peaking at 1.

    Filters narrower than the FFT resolution are widened to span at least one bin, so every
    filter has non-zero weight.
    """
    if spec.n_mels < 1:
        raise ValueError("mel_filterbank needs n_mels >= 1")
    fmax = spec.fmax or spec.sample_rate / 2
    freqs = np.linspace(0.0, spec.sample_rate / 2, spec.n_freqs)  # (F,)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(spec.fmin), _hz_to_mel(fmax), spec.n_mels + 2))  # (M+2,)
    df = freqs[1] - freqs[0]
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / np.maximum(mid - lo, df)
    down = (hi - freqs[None]) / np.maximum(hi - mid, df)
    fb = np.clip(np.minimum(up, down), 0.0, None)  # (M, F)
    empty = fb.sum(1) == 0
    if empty.any():  # a filter between two bins: give it its nearest bin
        fb[empty, np.abs(freqs[None] - mid[empty]).argmin(1)] = 1.0
    return torch.from_numpy(fb)


def features(x: torch.Tensor | np.ndarray, spec: SpectrogramSpec) -> torch.Tensor:
    """Waveform (n,) -> features (frames, bins) float32: |STFT|, optional mel, optional log."""
    mag = stft(torch.as_tensor(x), spec).abs()  # (F, frames)
    if spec.n_mels:
        mag = mel_filterbank(spec).to(mag) @ mag  # (M, frames)
    if spec.log:
        mag = torch.log(mag.clamp_min(spec.floor))
    return mag.T.contiguous().float()  # (frames, bins)


def features_to_magnitude(feats: torch.Tensor, spec: SpectrogramSpec, *, nnls_iters: int = 100) -> torch.Tensor:
    """Undo :func:`features`: (frames, bins) -> linear STFT magnitude (n_fft//2+1, frames) float64.

    Mel is inverted by non-negative least squares (pseudo-inverse start, then multiplicative
    updates m ← m · Wᵀy / WᵀWm), which keeps the result a valid magnitude.
    """
    f = torch.as_tensor(feats).to(torch.float64)
    if f.ndim != 2 or f.shape[1] != spec.n_bins:
        raise ValueError(f"features must be (frames, {spec.n_bins}), got {tuple(f.shape)}")
    y = (torch.exp(f) if spec.log else f.clamp_min(0.0)).T  # (bins, frames)
    if not spec.n_mels:
        return y
    W = mel_filterbank(spec).to(y)  # (M, F)
    m = (torch.linalg.pinv(W) @ y).clamp_min(1e-12)  # (F, frames)
    wty = W.T @ y
    wtw = W.T @ W
    for _ in range(nnls_iters):
        m = m * wty / (wtw @ m).clamp_min(1e-12)
    return m


def spectral_convergence(mag: torch.Tensor, x: torch.Tensor, spec: SpectrogramSpec) -> float:
    """‖ |STFT(x)| − mag ‖_F / ‖mag‖_F: how well a waveform x matches a target magnitude."""
    got = stft(x, spec).abs()
    return float(torch.linalg.norm(got - mag) / torch.linalg.norm(mag).clamp_min(1e-12))


def griffin_lim(
    mag: torch.Tensor,
    spec: SpectrogramSpec,
    *,
    n_iter: int = 64,
    momentum: float = 0.99,
    length: int | None = None,
    generator: torch.Generator | None = None,
    errors: list[float] | None = None,
) -> torch.Tensor:
    """A waveform whose STFT magnitude approximates ``mag`` (F, frames): fast Griffin-Lim.

    Alternates the two projections of Griffin & Lim (1984) — onto consistent spectrograms
    (STFT of the inverse STFT) and onto the target magnitude — with the momentum step of
    Perraudin et al. (2013): t ← P(c) + α (P(c) − P(c_prev)). Starts from random phase drawn
    with ``generator``. ``errors``, when given, receives the spectral convergence after each
    iteration. Returns (n,) float64, ``length`` samples (default (frames − 1)·hop).
    """
    mag = torch.as_tensor(mag).to(torch.float64)
    if mag.ndim != 2 or mag.shape[0] != spec.n_freqs:
        raise ValueError(f"magnitude must be ({spec.n_freqs}, frames), got {tuple(mag.shape)}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum={momentum} must be in [0, 1)")
    length = length if length is not None else spec.samples_for(mag.shape[1])
    phase = torch.rand(mag.shape, generator=generator, dtype=torch.float64) * (2 * math.pi)
    c = torch.polar(mag, phase)
    prev = None
    norm = torch.linalg.norm(mag).clamp_min(1e-12)
    for _ in range(n_iter):
        proj = stft(istft(c, spec, length), spec)  # nearest consistent spectrogram
        if errors is not None:
            errors.append(float(torch.linalg.norm(proj.abs() - mag) / norm))
        t = proj if prev is None else proj + momentum * (proj - prev)
        prev = proj
        c = mag * torch.sgn(t)  # keep the phase, impose the magnitude
        c = torch.where(t.abs() > 0, c, mag.to(c.dtype))
    return istft(c, spec, length)


def features_to_audio(
    feats: torch.Tensor, spec: SpectrogramSpec, *, n_iter: int = 64, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Features (frames, bins) -> waveform (n,) float32, peak-limited to 0.99."""
    y = griffin_lim(features_to_magnitude(feats, spec), spec, n_iter=n_iter, generator=generator)
    peak = float(y.abs().max())
    if peak > 0.99:
        y = y * (0.99 / peak)
    return y.float()


def split_chunks(feats: torch.Tensor, length: int, hop: int | None = None) -> torch.Tensor:
    """Consecutive chunks (n_chunks, length, bins) of (frames, bins), hop = length by default.

    The remainder shorter than ``length`` is dropped; a clip with fewer than ``length`` frames
    gives zero chunks (the caller decides whether that is an error).
    """
    hop = hop or length
    if length < 1 or hop < 1:
        raise ValueError(f"chunk length={length} and hop={hop} must be >= 1")
    n = 0 if feats.shape[0] < length else 1 + (feats.shape[0] - length) // hop
    if n == 0:
        return feats.new_zeros((0, length, feats.shape[1]))
    return feats.unfold(0, length, hop)[:n].transpose(1, 2).contiguous()  # (n, length, bins)


def fit_window(x: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """A clip of exactly ``n`` samples around the speech of ``x`` (n_x,) and its offset in ``x``.

    Longer clips keep the window of ``n`` samples with the most energy (the loudest part, the
    middle one on ties); shorter ones are centred and padded with zeros (digital silence). The
    offset is the index in ``x`` of the window's first sample (negative when padded).
    """
    if n < 1:
        raise ValueError(f"window of n={n} samples must be >= 1")
    x = np.asarray(x, dtype=np.float32)
    if x.size >= n:
        e = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
        win = e[n:] - e[:-n]  # energy of every window (n_x - n + 1,)
        best = np.flatnonzero(win >= win.max() * (1 - 1e-9))
        start = int(best[len(best) // 2])
        return x[start:start + n].copy(), start
    left = (n - x.size) // 2
    out = np.zeros(n, dtype=np.float32)
    out[left:left + x.size] = x
    return out, -left
