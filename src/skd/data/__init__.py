"""Datasets: built-in ``shapes`` videos and ``oscillators`` series, a user's arrays, Sprites, speech."""
from __future__ import annotations

from ..config import DataConfig, about
from .base import Factor, SequenceData

__all__ = ["Factor", "SequenceData", "load_dataset", "data_config_from_spec"]


def data_config_from_spec(spec: str, base: DataConfig | None = None) -> DataConfig:
    """A data spec: ``shapes``, a Sprites folder, or a .npy/.npz file."""
    import dataclasses
    from pathlib import Path

    base = base or DataConfig()
    if spec == "shapes":
        return dataclasses.replace(base, name="shapes")
    p = Path(spec)
    if p.is_dir():
        return dataclasses.replace(base, name="sprites", path=str(p))
    if p.suffix in (".npy", ".npz"):
        return dataclasses.replace(base, name="arrays", path=str(p), labels="", test_path="")
    if not p.exists():
        raise about("data", FileNotFoundError(f"{spec}: no such file or folder (or use 'shapes')"))
    raise about("data", ValueError(f"{spec}: expected 'shapes', a Sprites folder or a .npy/.npz file"))


def load_dataset(cfg: DataConfig) -> tuple[SequenceData, SequenceData | None]:
    """(train, test) for a data config. ``test`` is None when the source has no held-out part.

    The two parts are checked against each other: a model trained on one reads the other.
    """
    train, test = _load_parts(cfg)
    if test is not None and tuple(test.frame_shape) != tuple(train.frame_shape):
        where = cfg.test_path or cfg.path or cfg.name
        raise ValueError(f"{where}: test sequences have frames of shape {tuple(test.frame_shape)}, but the training "
                         f"data {cfg.path or cfg.name} has {tuple(train.frame_shape)}")
    return train, test


def _load_parts(cfg: DataConfig) -> tuple[SequenceData, SequenceData | None]:
    if cfg.name == "shapes":
        from .shapes import shapes_split

        return shapes_split(cfg.n_train, cfg.n_test, image_size=cfg.image_size, seq_len=cfg.seq_len, seed=cfg.seed)
    if cfg.name == "arrays":
        from .arrays import load_arrays

        train = load_arrays(cfg.path, labels=cfg.labels or None)
        test = load_arrays(cfg.test_path) if cfg.test_path else None
        return train, test
    if cfg.name == "sprites":
        from .sprites import load_sprites

        return load_sprites(cfg.path, "train"), load_sprites(cfg.path, "test")
    if cfg.name == "oscillators":
        from .oscillators import oscillators_split

        return oscillators_split(cfg.n_train, cfg.n_test, seq_len=cfg.seq_len, seed=cfg.seed)
    if cfg.name in ("audio", "fsdd", "timit"):
        from .audio.datasets import load_audio_dataset

        return load_audio_dataset(cfg)
    raise ValueError(f"data.name={cfg.name!r} must be 'shapes', 'arrays', 'sprites', 'oscillators', 'audio', 'fsdd' or 'timit'")
