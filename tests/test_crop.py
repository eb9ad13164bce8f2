"""Crop consistency (skd.model.crop): crop placement, the loss's properties, training with it."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skd.config import ConfigError, LossConfig
from skd.data import load_dataset
from skd.model.crop import crop_consistency, loud_crop_starts, static_basis, take_crops
from skd.training.loop import train

from conftest import tiny_config


@settings(max_examples=30, deadline=None)
@given(b=st.integers(1, 6), t=st.integers(2, 30), length=st.integers(1, 30), seed=st.integers(0, 2**16))
def test_crops_lie_inside_the_sequence_and_in_its_loud_part(b: int, t: int, length: int, seed: int) -> None:
    length = min(length, t)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, 5, generator=g)
    starts = loud_crop_starts(x, length, torch.Generator().manual_seed(seed))
    assert starts.shape == (b,) and starts.dtype == torch.int64
    assert bool((starts >= 0).all()) and bool((starts + length <= t).all())
    windows = x.mean(-1).unfold(1, length, 1).mean(-1)  # (B, T-L+1)
    chosen = windows[torch.arange(b), starts]
    half = (windows.amin(1) + windows.amax(1)) / 2
    assert bool((chosen >= half - 1e-6).all())
    crops = take_crops(x, starts, length)
    for i in range(b):
        assert torch.equal(crops[i], x[i, starts[i] : starts[i] + length])


def test_crops_avoid_the_silence_around_a_word() -> None:
    x = torch.full((4, 40, 3), -2.0)  # silence
    x[:, 15:25] = 1.5  # the word
    starts = loud_crop_starts(x, 6, torch.Generator().manual_seed(0))
    assert bool((starts >= 12).all()) and bool((starts <= 22).all())  # at least half the crop in the word


def test_crop_length_is_checked() -> None:
    with pytest.raises(ValueError, match="crop length"):
        loud_crop_starts(torch.zeros(2, 5, 3), 6)


def _static_c(k: int = 6, s: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(k, k, generator=g, dtype=torch.float64))
    d = torch.cat([torch.ones(s, dtype=torch.float64), torch.linspace(0.1, 0.5, k - s, dtype=torch.float64)])
    return q @ torch.diag(d) @ q.T


def test_static_basis_spans_the_eigenvalue_one_subspace() -> None:
    C = _static_c()
    basis = static_basis(C, 2, "ball")
    assert basis is not None and basis.shape == (6, 2)
    # row vectors z with z C = z lie in the left eigenspace; the basis columns span the invariant subspace
    # of C acting on rows, so z @ basis of a dynamic left eigenvector is zero
    w, v = torch.linalg.eig(C.T)
    dyn = v[:, (w.real < 0.9)].real.T  # (k-s, k) rows, dynamic left eigenvectors
    assert torch.allclose(dyn @ basis, torch.zeros(4, 2, dtype=torch.float64), atol=1e-9)
    assert static_basis(C, 0, "ball") is None


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), scale=st.floats(0.01, 100.0))
def test_crop_loss_is_zero_for_equal_statics_and_scale_free(seed: int, scale: float) -> None:
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(6, 2, generator=g, dtype=torch.float64)
    z = torch.randn(5, 9, 6, generator=g)
    zc = torch.randn(5, 3, 6, generator=g)
    # crops with the sequence's time-mean static coordinates: no loss
    assert float(crop_consistency(z, z.mean(1, keepdim=True).expand(5, 3, 6), basis)) == pytest.approx(0.0, abs=1e-9)
    a = crop_consistency(z, zc, basis)
    b = crop_consistency(z * scale, zc * scale, basis)
    assert float(a) >= 0 and float(b) == pytest.approx(float(a), rel=1e-4)


def test_crop_loss_gradient_reaches_both_latents() -> None:
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(6, 2, generator=g, dtype=torch.float64)
    z = torch.randn(4, 8, 6, generator=g, requires_grad=True)
    zc = torch.randn(4, 3, 6, generator=g, requires_grad=True)
    crop_consistency(z, zc, basis).backward()
    assert z.grad.abs().sum() > 0 and zc.grad.abs().sum() > 0


def test_training_with_crop_consistency_logs_it_and_resumes_exactly(tmp_path) -> None:
    cfg = tiny_config(max_steps=6, checkpoint_every=3)
    cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, w_crop=1.0, crop_frames=3))
    tr, _ = load_dataset(cfg.data)
    full = train(cfg, tmp_path / "full", tr, progress=False)
    assert "crop" in full.last and full.last["crop"] >= 0
    half = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_steps=3))
    train(half, tmp_path / "half", tr, progress=False)
    resumed = train(cfg, tmp_path / "half", tr, resume=True, progress=False)
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_crop_settings_are_checked(tmp_path) -> None:
    with pytest.raises(ConfigError, match="crop_frames"):
        LossConfig(crop_frames=0)
    with pytest.raises(ConfigError, match="w_crop|weights"):
        LossConfig(w_crop=-1.0)
    cfg = tiny_config(max_steps=1)
    cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, w_crop=1.0, crop_frames=cfg.data.seq_len))
    tr, _ = load_dataset(cfg.data)
    with pytest.raises(ConfigError, match="shorter than the sequences"):
        train(cfg, tmp_path / "run", tr, progress=False)
