"""Typed, frozen configuration: TOML presets plus type-checked ``--set a.b=v`` overrides.

``Config`` is split into slices that flow down unchanged: ``KoopmanAE(cfg.model)``,
``compute_losses(..., cfg.loss)``, ``Trainer(cfg.train)``, ``load_data(cfg.data)``.
Unknown keys and values of the wrong type are errors (``ConfigError``), never ignored.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


E = TypeVar("E", bound=BaseException)


def about(param: str, exc: E) -> E:
    """Tag a user error with the library parameter it is about (``out_dir``, ``data``, ``groups``,
    ``run_dir``); the CLI names its own flag for it. The library itself never names a flag."""
    exc.param = param  # type: ignore[attr-defined]
    return exc


class ConfigError(ValueError):
    """A configuration file, key or value is wrong."""


def check_finite(cfg: Any, section: str) -> None:
    """Every float field of the dataclass ``cfg`` (and every float in a tuple field) is finite.

    One rule for all config sections: NaN or ±inf in a weight, a learning rate, a budget or a
    regulariser is never meaningful, and a NaN would slip through every ``x < 0`` check.
    """
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        items = value if isinstance(value, tuple) else (value,)
        for v in items:
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{section}.{f.name}={value!r} must be a finite number")


def check_device(name: str, where: str) -> None:
    """``auto`` or a device string torch can parse (cpu, cuda, cuda:N, mps, ...); nothing is allocated."""
    if name == "auto":
        return
    try:
        import torch

        torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"{where}={name!r} is not a device (use auto, cpu, cuda, cuda:N or mps)") from None


@dataclass(frozen=True)
class ModelConfig:
    """Architecture (docs/METHOD.md §1). ``kind='conv'`` for frames, ``'mlp'`` for vectors (B, T, D)."""

    kind: Literal["auto", "conv", "mlp"] = "auto"  # auto: conv for frames, mlp for vectors
    image_size: int = 64  # conv: 32 or 64 (taken from the data when training)
    channels: int = 3  # conv: input channels (taken from the data when training)
    width: int = 32  # conv: channels of the first conv layer (then ×2, ×4, ×8)
    input_dim: int = 0  # mlp: D of the (B, T, D) input (taken from the data when training)
    hidden: int = 256  # mlp: hidden width
    layers: int = 2  # mlp: hidden layers
    k: int = 40  # latent size
    lstm: bool = True  # LSTM k -> k after the encoder and before the decoder
    dropout: float = 0.2  # on Z before the reconstruction decode (reference code)
    output: Literal["auto", "sigmoid", "linear"] = "auto"  # decoder output; auto: conv sigmoid, mlp linear
    pooled: int = 0  # conv: latent channels read from the position-averaged last feature map (0 = off, the paper)

    def __post_init__(self) -> None:
        check_finite(self, "model")
        if self.k < 2:
            raise ConfigError(f"model.k={self.k} must be >= 2")
        if self.kind in ("auto", "conv") and self.image_size not in (32, 64):
            raise ConfigError(f"model.image_size={self.image_size} must be 32 or 64")
        if self.kind == "conv" and self.channels < 1:
            raise ConfigError(f"model.channels={self.channels} must be >= 1")
        if self.width < 1 or self.hidden < 1 or self.layers < 1:
            raise ConfigError("model.width, model.hidden and model.layers must be >= 1")
        if self.kind == "mlp" and self.input_dim < 1:
            raise ConfigError(f"model.input_dim={self.input_dim} must be >= 1 for model.kind='mlp'")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout={self.dropout} must be in [0, 1)")
        if not 0 <= self.pooled < self.k:
            raise ConfigError(f"model.pooled={self.pooled} must be in [0, model.k={self.k})")


def resolve_model_config(cfg: ModelConfig, frame_shape: tuple[int, ...]) -> ModelConfig:
    """Fill the frame geometry from the data: (C, H, W) -> conv, (D,) -> mlp.

    ``kind='auto'`` picks the architecture; an explicit kind that cannot read the data is an error.
    """
    if len(frame_shape) == 3:
        c, h, w = frame_shape
        if cfg.kind == "mlp":
            raise ConfigError(f"model.kind='mlp' cannot read video frames of shape {frame_shape}; use 'conv' or 'auto'")
        if h != w or h not in (32, 64):
            raise ConfigError(f"conv model needs square 32×32 or 64×64 frames, data has {h}×{w}")
        return dataclasses.replace(cfg, kind="conv", channels=c, image_size=h)
    if len(frame_shape) == 1:
        if cfg.kind == "conv":
            raise ConfigError(f"model.kind='conv' cannot read vector steps of size {frame_shape[0]}; use 'mlp' or 'auto'")
        return dataclasses.replace(cfg, kind="mlp", input_dim=frame_shape[0])
    raise ConfigError(f"unsupported frame shape {frame_shape}")


@dataclass(frozen=True)
class LossConfig:
    """Loss weights and the spectral loss (docs/METHOD.md §2)."""

    w_rec: float = 15.0
    w_pred: float = 1.0
    w_eig: float = 1.0
    static_size: int = 7  # k_s, counted in unique components (a conjugate pair counts once)
    static_criterion: Literal["ball", "norm", "real"] = "ball"
    dynamic_criterion: Literal["real", "thresh", "strict", "ball"] = "real"
    eps: float = 0.5  # dynamic threshold ε
    dynamic_ball_radius: float = 0.6  # dynamic 'ball': penalise |λ - 1| below this radius
    ambient_pred: Literal["reference", "paper"] = "reference"
    ridge: float = 0.0  # Tikhonov term of the least-squares fit
    rcond: float = 1e-10  # relative eigenvalue cut-off of the normal-equation pseudo-inverse
    w_crop: float = 0.0  # crop consistency (skd.model.crop): a crop's static part = its sequence's
    crop_frames: int = 8  # frames per crop (loud part of the sequence)
    w_indep: float = 0.0  # static/dynamic independence (skd.model.independence): linear CKA of static code and dynamics
    indep_grad: Literal["both", "dynamic"] = "both"  # which part L_indep moves: both, or only the dynamic trajectory
    w_swap_static: float = 0.0  # swap consistency (skd.model.swap): a decoded swap, encoded again, holds the donor's static part
    w_swap_dynamic: float = 0.0  # ... and its own dynamic part
    w_swap_back: float = 0.0  # ... and the swaps' parts put back together decode to the real frames (MSE)
    swap_reader: Literal["trained", "frozen"] = "trained"  # re-encode swaps with the encoder learning from them, or holding it fixed

    def __post_init__(self) -> None:
        check_finite(self, "loss")
        if self.static_size < 0:
            raise ConfigError(f"loss.static_size={self.static_size} must be >= 0")
        if min(self.w_rec, self.w_pred, self.w_eig, self.w_crop, self.w_indep, self.w_swap_static,
               self.w_swap_dynamic, self.w_swap_back) < 0:
            raise ConfigError("loss weights must be >= 0")
        if self.ridge < 0:
            raise ConfigError(f"loss.ridge={self.ridge} must be >= 0")
        if self.crop_frames < 1:
            raise ConfigError(f"loss.crop_frames={self.crop_frames} must be >= 1")


PRECISIONS = ("auto", "fp32", "bf16")  # train.precision (see skd.model.precision)
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")  # train.memory_format


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping."""

    epochs: int = 100
    max_steps: int = 0  # 0 = no step limit
    minutes: float = 0.0  # wall-clock budget, 0 = none
    batch_size: int = 32  # the GLOBAL batch: split evenly over the processes of a distributed run
    lr: float = 1e-3
    lr_milestones: tuple[int, ...] = ()  # steps at which the learning rate is multiplied by lr_gamma
    lr_gamma: float = 0.1  # step decay factor (torch's MultiStepLR rule, as a pure function of the step)
    seed: int = 1234
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    checkpoint_every: int = 500  # steps; a checkpoint is also written at the end
    keep_every: int = 0  # steps; also keep RUN/checkpoints/step_N.pt at multiples of this (0 = off)
    log_every: int = 10  # steps between metrics.jsonl lines
    max_bad_steps: int = 20  # consecutive non-finite losses before stopping
    threads: int = 0  # torch CPU threads, 0 = torch default
    sync_bn: bool = True  # several processes: BatchNorm statistics of the global batch (exact), else per process
    precision: str = "auto"  # frame networks: auto (bf16 where native, conv nets) | fp32 | bf16; see skd.model.precision
    memory_format: str = "auto"  # frame networks: auto (channels_last for conv on cpu/cuda) | channels_last | contiguous
    compile: bool = False  # torch.compile the frame networks

    def __post_init__(self) -> None:
        check_finite(self, "train")
        check_device(self.device, "train.device")
        if self.threads < 0:
            raise ConfigError(f"train.threads={self.threads} must be >= 0 (0 = torch's default)")
        if self.batch_size < 1:
            raise ConfigError(f"train.batch_size={self.batch_size} must be >= 1")
        if self.lr <= 0:
            raise ConfigError(f"train.lr={self.lr} must be > 0")
        if not 0 < self.lr_gamma <= 1:
            raise ConfigError(f"train.lr_gamma={self.lr_gamma} must be in (0, 1]")
        ms = self.lr_milestones
        if any(m < 1 for m in ms) or any(b <= a for a, b in zip(ms, ms[1:])):
            raise ConfigError(f"train.lr_milestones={list(ms)} must be increasing positive step numbers")
        if self.epochs < 0 or self.max_steps < 0 or self.minutes < 0:
            raise ConfigError("train.epochs, train.max_steps and train.minutes must be >= 0")
        if self.checkpoint_every < 1 or self.log_every < 1 or self.max_bad_steps < 1:
            raise ConfigError("train.checkpoint_every, log_every and max_bad_steps must be >= 1")
        if self.keep_every < 0 or (self.keep_every and self.keep_every % self.checkpoint_every):
            raise ConfigError(f"train.keep_every={self.keep_every} must be 0 or a multiple of "
                              f"train.checkpoint_every={self.checkpoint_every}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision={self.precision!r} must be one of {', '.join(PRECISIONS)}")
        if self.memory_format not in MEMORY_FORMATS:
            raise ConfigError(f"train.memory_format={self.memory_format!r} must be one of {', '.join(MEMORY_FORMATS)}")


AUDIO_DATA = ("fsdd", "audio", "timit")


@dataclass(frozen=True)
class DataConfig:
    """Which dataset: built-in ``shapes`` or ``oscillators``, a user's ``arrays`` file, a built
    ``sprites`` folder, or speech: a folder of WAV files (``audio``), ``fsdd`` or ``timit``."""

    name: Literal["shapes", "arrays", "sprites", "oscillators", "audio", "fsdd", "timit"] = "shapes"
    path: str = ""  # arrays: .npy/.npz file; sprites: folder of `skd data sprites`; audio/fsdd/timit: root folder
    labels: str = ""  # arrays: optional label file
    test_path: str = ""  # arrays: optional held-out file
    n_train: int = 4000  # shapes, oscillators
    n_test: int = 512  # shapes, oscillators
    image_size: int = 32  # shapes
    seq_len: int = 8  # shapes, oscillators: steps; audio: spectrogram frames per chunk
    seed: int = 0  # shapes, oscillators: generator seed
    pattern: str = ""  # audio: regex with named groups (speaker, content, split, ...) searched in relative paths
    sample_rate: int = 0  # audio: resample every file to this rate (0 = keep the files' common rate)
    n_fft: int = 256  # audio: FFT size
    win_length: int = 0  # audio: Hann window length (0 = n_fft)
    hop_length: int = 128  # audio: samples between frames
    n_mels: int = 0  # audio: mel bins (0 = linear magnitude, n_fft//2 + 1 bins)
    chunking: Literal["split", "fit"] = "split"  # audio: consecutive chunks, or one loudest/padded chunk per file
    chunk_hop: int = 0  # audio, split: frames between chunk starts (0 = seq_len, no overlap)
    fit_coverage: float = 0.95  # audio, seq_len = 0: chunk length holds this quantile of training clips whole
    # audio train/test split (skd.data.audio.splits): auto = the dataset's own (fsdd takes 0-4, timit core
    # test, a folder's `split` group); values | fraction | list | speakers (speaker-disjoint)
    split: Literal["auto", "values", "fraction", "list", "speakers"] = "auto"
    split_group: str = ""  # values: the named group (e.g. "take"); fraction: stratify by it (default speaker)
    test_values: tuple[str | int, ...] = ()  # values: group values of the test set; speakers: the test speakers
    test_fraction: float = 0.0  # fraction: of each speaker's files; speakers: of the speakers
    split_seed: int = 0  # fraction, speakers: the draw
    test_list: str = ""  # list: test paths, one per line, relative to data.path
    train_list: str = ""  # list: training paths ("" = every other matched file)

    def __post_init__(self) -> None:
        check_finite(self, "data")
        if self.name in ("arrays", "sprites", *AUDIO_DATA) and not self.path:
            raise ConfigError(f"data.path is required when data.name='{self.name}'")
        if self.n_train < 1 or self.n_test < 0:
            raise ConfigError("data.n_train must be >= 1 and data.n_test >= 0")
        if self.seq_len < 2 and not (self.seq_len == 0 and self.name in AUDIO_DATA):
            raise ConfigError(f"data.seq_len={self.seq_len} must be >= 2 (or 0 = from the clip durations, audio only)")
        if self.name == "audio" and not self.pattern:
            raise ConfigError("data.pattern is required when data.name='audio' (a regex with named groups, "
                              "e.g. '(?P<speaker>[^/]+)/[^/]+\\.wav$')")
        if self.name in ("fsdd", "timit") and self.pattern:
            raise ConfigError(f"data.pattern cannot be set for data.name='{self.name}' (its layout is fixed)")
        if (self.sample_rate < 0 or self.n_fft < 8 or self.win_length < 0 or self.hop_length < 1 or self.n_mels < 0
                or self.chunk_hop < 0):
            raise ConfigError("need data.sample_rate >= 0, data.n_fft >= 8, data.win_length >= 0, "
                              "data.hop_length >= 1, data.n_mels >= 0 and data.chunk_hop >= 0")
        if self.seq_len == 0 and self.chunking != "fit":
            raise ConfigError("data.seq_len=0 (from the clip durations) needs data.chunking='fit'")
        if not 0.0 < self.fit_coverage <= 1.0:
            raise ConfigError(f"data.fit_coverage={self.fit_coverage} must be in (0, 1]")
        self._check_split()

    def _check_split(self) -> None:
        """The split keys that ``data.split`` uses are set, and no other."""
        kind = self.split
        if kind != "auto" and self.name not in AUDIO_DATA:
            raise ConfigError(f"data.split={kind!r} is for audio datasets (data.name in {', '.join(AUDIO_DATA)})")
        uses = {"auto": (), "values": ("split_group", "test_values"), "fraction": ("test_fraction", "split_group", "split_seed"),
                "list": ("test_list", "train_list"), "speakers": ("test_values", "test_fraction", "split_seed")}[kind]
        defaults = {"split_group": "", "test_values": (), "test_fraction": 0.0, "split_seed": 0, "test_list": "",
                    "train_list": ""}
        for key, default in defaults.items():
            if key not in uses and getattr(self, key) != default:
                raise ConfigError(f"data.{key} is not used by data.split={kind!r}")
        if kind == "values" and not (self.split_group and self.test_values):
            raise ConfigError("data.split='values' needs data.split_group (e.g. 'take') and data.test_values (e.g. [5, 6])")
        if kind == "fraction" and not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"data.split='fraction' needs data.test_fraction in (0, 1), got {self.test_fraction}")
        if kind == "list" and not self.test_list:
            raise ConfigError("data.split='list' needs data.test_list (a file of test paths, one per line)")
        if kind == "speakers" and bool(self.test_values) == (0.0 < self.test_fraction < 1.0):
            raise ConfigError("data.split='speakers' needs either data.test_values (the test speakers) or "
                              f"data.test_fraction in (0, 1) (a seeded share of the speakers), got {list(self.test_values)} "
                              f"and {self.test_fraction}")


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        most = (self.model.k + 1) // 2  # C (k, k) real has at least ceil(k/2) components (a pair counts once)
        if self.loss.static_size > most:
            raise ConfigError(f"loss.static_size={self.loss.static_size} must be <= model.k/2 rounded up = {most} "
                              f"(model.k={self.model.k}; a conjugate pair counts once)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


# ----------------------------------------------------------------------------- building
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert one value against a field annotation."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}={value!r} must be one of {', '.join(map(repr, choices))}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if origin is tuple:  # tuple[X, ...] from a TOML array
        (item,) = typing.get_args(tp)[:1]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}={value!r} must be a list")
        return tuple(_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}={value!r} must be true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}={value!r} must be an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}={value!r} must be a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}={value!r} must be a string")
    raise ConfigError(f"{where}: unsupported field type {tp}")  # pragma: no cover


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'} must be a table, got {type(data).__name__}")
    hints = _hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"unknown config key {where}{unknown[0]!r} (known: {', '.join(sorted(known))})")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        where = f"{prefix}.{name}" if prefix else name
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, where)
        else:
            kwargs[name] = _coerce(value, tp, where)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from e


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build a validated Config; unknown keys and wrong types raise ConfigError."""
    return _build(Config, data, "")


def _parse_scalar(text: str) -> Any:
    """Parse the right-hand side of ``--set`` as a TOML value, falling back to a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` strings to a nested dict (a copy); values parse as TOML scalars."""
    out = json.loads(json.dumps(data))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"override key {key!r} must be section.key (e.g. model.k=40)")
        section, name = parts
        out.setdefault(section, {})
        if not isinstance(out[section], dict):
            raise ConfigError(f"override {key!r}: {section!r} is not a section")
        out[section][name] = _parse_scalar(text.strip())
    return out


def read_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        return tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot parse config file {p}: {e}") from e


def preset_dir() -> Path:
    """The ``configs/`` folder of presets (in the source tree or installed beside the package)."""
    here = Path(__file__).resolve()
    for cand in (here.parent / "configs", here.parents[2] / "configs"):
        if cand.is_dir():
            return cand
    return here.parent / "configs"


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Config from a TOML file or preset name (``demo`` → configs/demo.toml) plus overrides."""
    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.suffix and not p.exists():
            p = preset_dir() / f"{path}.toml"
        data = read_toml(p)
    data = apply_overrides(data, overrides or [])
    return config_from_dict(data)
