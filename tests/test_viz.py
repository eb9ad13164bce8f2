"""Plot and image writers: valid files, expected sizes, no temporary files left behind."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from skd.render.images import frames_to_uint8, plot_eigenvalues, plot_losses, save_gif, save_grid


def _rows(r: int = 3, t: int = 5, c: int = 3, h: int = 8, w: int = 10, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(r, t, c, h, w, generator=g)  # (R, T, C, H, W) in [0, 1]


def _only(folder: Path, name: str) -> None:
    """``folder`` holds exactly ``name``: no temporary files left behind."""
    assert sorted(p.name for p in folder.iterdir()) == [name]


def test_frames_to_uint8_float_uint8_and_gray():
    f = torch.zeros(2, 4, 3, 5, 6)
    f[..., 0, :, :] = 1.0
    out = frames_to_uint8(f)
    assert out.dtype == np.uint8 and out.shape == (2, 4, 5, 6, 3)
    assert (out[..., 0] == 255).all() and (out[..., 1:] == 0).all()
    u8 = np.random.default_rng(0).integers(0, 256, (4, 3, 5, 6), dtype=np.uint8)
    assert np.array_equal(frames_to_uint8(u8), u8.transpose(0, 2, 3, 1))
    gray = frames_to_uint8(np.full((4, 1, 5, 6), 0.5, np.float32))
    assert gray.shape == (4, 5, 6, 3) and (gray == 128).all()
    with pytest.raises(ValueError, match="C=2"):
        frames_to_uint8(np.zeros((4, 2, 5, 6), np.float32))


def test_save_grid_png_size_and_labels(tmp_path: Path):
    rows = _rows()
    out = save_grid(rows, tmp_path / "a" / "b" / "grid.png", pad=2, scale=2)
    assert out == tmp_path / "a" / "b" / "grid.png" and out.stat().st_size > 0
    with Image.open(out) as img:
        assert img.format == "PNG"
        assert img.size == (2 + 5 * (10 * 2 + 2), 2 + 3 * (8 * 2 + 2))
        assert img.getpixel((0, 0))[:3] == (255, 255, 255)  # white padding
    _only(out.parent, "grid.png")
    labelled = save_grid(rows, tmp_path / "lab.png", row_labels=["input", "recon", "swap"])
    with Image.open(labelled) as img:
        assert img.size[1] == 2 + 3 * (8 * 2 + 2) and img.size[0] > 2 + 5 * (10 * 2 + 2)
    with pytest.raises(ValueError, match="row_labels"):
        save_grid(rows, tmp_path / "x.png", row_labels=["one"])


def test_save_grid_overwrites_atomically(tmp_path: Path):
    p = tmp_path / "g.png"
    save_grid(_rows(r=1, c=1), p, scale=1)
    save_grid(_rows(r=2, c=1), p, scale=1)
    with Image.open(p) as img:
        assert img.size[1] == 2 + 2 * (8 + 2)
    _only(tmp_path, "g.png")


def test_save_gif_animates_every_row(tmp_path: Path):
    out = save_gif(_rows(r=2, t=6), tmp_path / "anim" / "a.gif", fps=5, row_labels=["x", "y"], scale=3)
    with Image.open(out) as img:
        assert img.format == "GIF" and img.n_frames == 6
        assert img.info.get("loop") == 0 and img.info.get("duration") == 200
        assert img.size[1] == 2 + 2 * (8 * 3 + 2)
    _only(out.parent, "a.gif")
    with pytest.raises(ValueError, match="fps"):
        save_gif(_rows(), tmp_path / "b.gif", fps=0)


def test_plot_eigenvalues(tmp_path: Path):
    lam = torch.polar(torch.linspace(0.5, 1.0, 12), torch.linspace(-3.0, 3.0, 12))  # complex (12,)
    mask = torch.arange(12) < 4
    out = plot_eigenvalues(lam, mask, tmp_path / "eig.png", title="spectrum")
    with Image.open(out) as img:
        assert img.format == "PNG" and min(img.size) > 100
    plot_eigenvalues(lam.numpy(), mask.numpy(), tmp_path / "eig.png")  # numpy also works
    _only(tmp_path, "eig.png")
    with pytest.raises(ValueError, match="static_mask"):
        plot_eigenvalues(lam, mask[:3], tmp_path / "bad.png")


def test_plot_losses(tmp_path: Path):
    records = [
        {"step": s, "loss": 1.0 / (s + 1), "rec": 0.5 / (s + 1), "pred_latent": 0.1, "eig": 0.0,
         "epoch": 0, "time": 3.0, "split": "train"}
        for s in range(0, 100, 10)
    ]
    out = plot_losses(records, tmp_path / "plots" / "loss.png")
    with Image.open(out) as img:
        assert img.format == "PNG" and min(img.size) > 100
    _only(out.parent, "loss.png")
    with pytest.raises(ValueError, match="no numeric"):
        plot_losses([{"step": 1, "split": "train"}], tmp_path / "none.png")


def test_failed_write_leaves_nothing(tmp_path: Path):
    with pytest.raises(ValueError):
        plot_losses([{"step": 0, "loss": 1.0}], tmp_path / "loss.unknownformat")
    assert list(tmp_path.iterdir()) == []
