"""Voice swaps you can listen to: utterance A's words in speaker B's voice, as WAV and PNG.

For a pair of utterances (A, B), chunk i of A keeps its dynamic part and takes the static part
of chunk i mod m of B (m = B's chunk count) — the two-factor swap of docs/METHOD.md §3, chunk by
chunk. Decoded chunks are put back on the utterance's time axis (overlapping frames averaged),
un-standardised and turned into sound by Griffin-Lim. Every WAV, originals included, goes
through the same vocoder, so differences between files come from the model, not the vocoder.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ..pipelines import ops
from . import images as viz
from ..data.audio.datasets import AudioData
from ..data.audio.features import features_to_audio
from ..data.audio.io import write_wav


@dataclass(frozen=True)
class AudioSwapResult:
    pairs: list[tuple[int, int]]  # utterance indices (positions in ``utterance_ids``)
    files: list[Path]


def utterance_ids(data: AudioData) -> torch.Tensor:
    """The distinct utterance ids of ``data`` in order (U,): position u names utterance u."""
    return torch.unique(data.utterance)


def utterance_view(data: AudioData) -> AudioData:
    """One chunk (the first) per utterance, in :func:`utterance_ids` order — for picking pairs."""
    ids = utterance_ids(data)
    first = [int(torch.nonzero(data.utterance == u)[0]) for u in ids.tolist()]
    return data.subset(first)


def chunks_of(data: AudioData, position: int) -> torch.Tensor:
    """Chunk indices (n,) of the utterance at ``position`` of :func:`utterance_ids`, in time order."""
    u = utterance_ids(data)[position]
    idx = torch.nonzero(data.utterance == u).flatten()
    return idx[torch.argsort(data.offsets[idx], stable=True)]


def assemble(chunks: torch.Tensor, offsets: torch.Tensor, hop_length: int) -> torch.Tensor:
    """Chunks (n, T, bins) starting at sample ``offsets`` (n,) -> one (frames, bins) matrix.

    Frames covered by several chunks are averaged.
    """
    start = ((offsets - offsets.min()) // hop_length).tolist()
    n, t, b = chunks.shape
    total = max(start) + t
    acc = torch.zeros(total, b, dtype=torch.float64)
    cnt = torch.zeros(total, 1, dtype=torch.float64)
    for c, s in zip(chunks, start):
        acc[s:s + t] += c.double()
        cnt[s:s + t] += 1
    return (acc / cnt.clamp_min(1)).float()


def swap_features(
    model, data: AudioData, basis: ops.KoopmanBasis, a: int, b: int
) -> dict[str, torch.Tensor]:
    """Raw features (frames, bins) of A, B, A's words in B's voice and B's words in A's voice."""
    ia, ib = chunks_of(data, a), chunks_of(data, b)
    xa, xb = data.batch(ia), data.batch(ib)  # (na, T, bins), (nb, T, bins)
    za, zb = ops.encode(model, xa), ops.encode(model, xb)
    zb_for_a = zb[torch.arange(len(ia)) % len(ib)]
    za_for_b = za[torch.arange(len(ib)) % len(ia)]
    ab = ops.decode(model, ops.swap_latents(za, zb_for_a, basis))  # A's dynamics, B's statics
    ba = ops.decode(model, ops.swap_latents(zb, za_for_b, basis))
    hop = data.spec.hop_length
    out = {"A": (xa, ia), "B": (xb, ib), "A_recon": (ops.decode(model, za), ia), "A-words_B-voice": (ab, ia),
           "B-words_A-voice": (ba, ib)}
    return {k: data.raw_features(assemble(x, data.offsets[idx], hop)) for k, (x, idx) in out.items()}


def plot_spectrograms(panels: Sequence[tuple[str, torch.Tensor]], path: Path, *, sample_rate: int, hop_length: int) -> Path:
    """Stacked spectrogram images, one per (title, features (frames, bins)) panel."""
    fig = viz._new_figure((7.0, 1.9 * len(panels)))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    lo = min(float(p.min()) for _, p in panels)
    hi = max(float(p.max()) for _, p in panels)
    for ax, (title, f) in zip(axes, panels):
        secs = f.shape[0] * hop_length / sample_rate
        ax.imshow(f.T.numpy(), origin="lower", aspect="auto", vmin=lo, vmax=hi, cmap="magma",
                  extent=(0.0, secs, 0, f.shape[1]))
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("bin", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("seconds", fontsize=8)
    fig.tight_layout()
    return viz._save_figure(fig, path)


def write_audio_swaps(
    model, data: AudioData, basis: ops.KoopmanBasis, pairs: Sequence[tuple[int, int]], out_dir: Path,
    *, n_iter: int = 64, seed: int = 0,
) -> AudioSwapResult:
    """For each utterance pair (A, B): WAVs of A, B, A's reconstruction and both swaps, plus a PNG.

    Files ``pairNN_A.wav``, ``pairNN_B.wav``, ``pairNN_A_recon.wav``, ``pairNN_A-words_B-voice.wav``,
    ``pairNN_B-words_A-voice.wav`` and ``pairNN.png``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = data.spec
    g = torch.Generator().manual_seed(seed)
    files: list[Path] = []
    names = {f.name: f for f in data.factors}
    view = utterance_view(data)
    for p, (a, b) in enumerate(pairs):
        feats = swap_features(model, data, basis, a, b)
        for key, f in feats.items():
            files.append(write_wav(out_dir / f"pair{p:02d}_{key}.wav", features_to_audio(f, spec, n_iter=n_iter, generator=g),
                                   spec.sample_rate))

        def describe(i: int) -> str:
            labs = [f"{k}={names[k].values[int(v[i])] if names[k].values else int(v[i])}" for k, v in view.labels.items()]
            return f"#{i} " + ", ".join(labs)

        titles = {"A": f"A: {describe(a)}", "B": f"B: {describe(b)}", "A_recon": "A reconstructed",
                  "A-words_B-voice": "A's words, B's voice (dynamic A + static B)",
                  "B-words_A-voice": "B's words, A's voice (dynamic B + static A)"}
        files.append(plot_spectrograms([(titles[k], v) for k, v in feats.items()], out_dir / f"pair{p:02d}.png",
                                       sample_rate=spec.sample_rate, hop_length=spec.hop_length))
    return AudioSwapResult(list(pairs), files)


def paths_of(data: AudioData, pairs: Sequence[tuple[int, int]]) -> list[tuple[str, str]]:
    """Source files of each utterance pair."""
    ids = utterance_ids(data).tolist()
    return [(data.paths[ids[a]], data.paths[ids[b]]) for a, b in pairs]


