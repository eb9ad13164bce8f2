"""The judge: a supervised sequence classifier that scores generated samples (docs/EVALUATION.md).

Two architectures (``judge.arch``), both with one head per labelled factor, taken from the
dataset's declared factors so that every dataset is scored the same way:

- ``reference``: the judge of the literature. Per-frame encoder 4 × [Conv 4×4 s2 + BN +
  LeakyReLU(0.2)] (64, 128, 256, 512 channels), Conv 4×4 → 128 + BN + Tanh (one stage fewer for
  32×32 frames; an MLP for vector sequences); a 1-layer bidirectional LSTM (hidden 256); sequence
  feature = [forward state at the last frame ; backward state at frame 0] (512); heads
  Linear(512, 256) → ReLU → Linear(K).
- ``fast`` (default): the same frame encoder at a quarter of the width (16, 32, 64, 128). A
  STATIC factor's head reads the time average of the frame features (appearance is the same in
  every frame); a DYNAMIC factor's head reads two temporal convolutions (kernel 3) over the frame
  features, averaged over time. About 20× fewer multiply-adds than ``reference``; on Sprites it
  reads every head of the clean test split at 100 % after two epochs.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..files.checkpoint import (CheckpointError, atomic_write_text, file_sha256, load_checkpoint, load_state_checked,
                                save_checkpoint)
from ..config import ConfigError, about, DataConfig, _build, apply_overrides, check_device, check_finite
from ..data.base import Factor, SequenceData
from ..files.limits import check_allocation, format_bytes, module_bytes
from ..model.nets.conv import ConvEncoder
from ..model.nets.mlp import MLPEncoder
from ..model.precision import frame_autocast, resolve_plan

log = logging.getLogger(__name__)
JUDGE_KIND = "judge"


@dataclass(frozen=True)
class JudgeConfig:
    """Judge architecture and its training recipe."""

    arch: Literal["fast", "reference"] = "fast"  # see the module docstring
    width: int = 0  # first conv width (w, 2w, 4w, 8w); 0 = the architecture's own: fast 16, reference 64
    feature: int = 128  # per-frame feature size
    lstm_hidden: int = 256
    head_hidden: int = 256
    epochs: int = 2  # with cosine decay: 100 % on every Sprites head (docs/EVALUATION.md); reference: 4
    max_steps: int = 0  # 0 = no limit
    batch_size: int = 64
    lr: float = 1e-3
    schedule: Literal["cosine", "constant"] = "cosine"  # learning-rate schedule over all steps
    seed: int = 0
    device: str = "auto"
    threads: int = 0

    def __post_init__(self) -> None:
        check_finite(self, "judge")
        check_device(self.device, "judge.device")
        if self.threads < 0:
            raise ConfigError(f"judge.threads={self.threads} must be >= 0 (0 = torch's default)")
        if self.width < 0 or min(self.feature, self.lstm_hidden, self.head_hidden, self.batch_size) < 1:
            raise ConfigError("judge sizes and batch_size must be >= 1")
        if self.epochs < 0 or self.max_steps < 0 or (self.epochs == 0 and self.max_steps == 0):
            raise ConfigError("judge.epochs or judge.max_steps must be > 0")
        if self.lr <= 0:
            raise ConfigError(f"judge.lr={self.lr} must be > 0")


@dataclass(frozen=True)
class JudgeSetup:
    judge: JudgeConfig = dataclasses.field(default_factory=JudgeConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)


def judge_setup(overrides: list[str] | None = None, base: dict[str, Any] | None = None) -> JudgeSetup:
    """JudgeSetup from a dict plus ``judge.x=…`` / ``data.x=…`` overrides (type-checked)."""
    return _build(JudgeSetup, apply_overrides(base or {}, overrides or []), "")


class Judge(nn.Module):
    """Sequence classifier with one head per factor: (B, T, *frame) -> {name: logits (B, K)}."""

    def __init__(self, cfg: JudgeConfig, frame_shape: tuple[int, ...], factors: tuple[Factor, ...]) -> None:
        super().__init__()
        if not factors:
            raise ValueError("a judge needs at least one labelled factor")
        self.cfg = cfg
        self.frame_shape = tuple(frame_shape)
        self.factors = tuple(factors)
        if len(frame_shape) == 3:
            c, h, w = frame_shape
            width = cfg.width or (64 if cfg.arch == "reference" else 16)
            self.frame_encoder: nn.Module = ConvEncoder(in_channels=c, image_size=h, width=width, k=cfg.feature)
        else:
            self.frame_encoder = MLPEncoder(input_dim=frame_shape[0], k=cfg.feature, hidden=cfg.head_hidden)
        if cfg.arch == "reference":
            self.lstm = nn.LSTM(cfg.feature, cfg.lstm_hidden, batch_first=True, bidirectional=True)
            dims = dict.fromkeys((f.name for f in factors), 2 * cfg.lstm_hidden)
        else:
            self.temporal = nn.Sequential(
                nn.Conv1d(cfg.feature, cfg.head_hidden, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv1d(cfg.head_hidden, cfg.head_hidden, 3, padding=1), nn.ReLU(inplace=True))
            dims = {f.name: cfg.head_hidden if f.kind == "dynamic" else cfg.feature for f in factors}
        self.heads = nn.ModuleDict({
            f.name: nn.Sequential(nn.Linear(dims[f.name], cfg.head_hidden), nn.ReLU(inplace=True),
                                  nn.Linear(cfg.head_hidden, f.size))
            for f in factors
        })

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        return self.frame_encoder(x.reshape(b * t, *x.shape[2:])).reshape(b, t, -1)  # (B, T, feature)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.frame_features(x)  # (B, T, feature)
        if self.cfg.arch == "reference":
            out = self.lstm(h)[0]  # (B, T, 2·hidden)
            hid = self.cfg.lstm_hidden
            f = torch.cat([out[:, -1, :hid], out[:, 0, hid:]], dim=-1)  # (B, 2·hidden)
            return {name: head(f) for name, head in self.heads.items()}
        static = h.mean(dim=1)  # (B, feature): appearance, the same in every frame
        motion = self.temporal(h.transpose(1, 2)).mean(dim=2)  # (B, head_hidden)
        return {f.name: self.heads[f.name](motion if f.kind == "dynamic" else static) for f in self.factors}


@torch.no_grad()
def judge_probs(judge: Judge, x: torch.Tensor, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Softmax probabilities of every head for frames x (N, T, ...) in [0, 1]: {name: (N, K)}."""
    judge.eval()
    chunks = [judge(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
    return {name: torch.cat([c[name] for c in chunks]).softmax(-1) for name in judge.heads}


@torch.no_grad()
def judge_accuracy(judge: Judge, data: SequenceData, batch_size: int = 256, device: str | torch.device = "cpu") -> dict[str, float]:
    """Per-head accuracy of the judge on a labelled dataset."""
    judge.eval()
    correct = {f.name: 0 for f in judge.factors}
    for i in range(0, len(data), batch_size):
        idx = torch.arange(i, min(i + batch_size, len(data)))
        logits = judge(data.batch(idx, device))
        for name in correct:
            correct[name] += int((logits[name].argmax(-1).cpu() == data.labels[name][idx]).sum())
    return {name: c / len(data) for name, c in correct.items()}


def check_judge_fits(cfg: JudgeConfig, frame_shape: tuple[int, ...], factors: tuple[Factor, ...], copies: int,
                     what: str) -> None:
    """Refuse a judge whose ``copies`` × parameter memory cannot be allocated (4 to train with Adam).
    The heads are sized by the factors' declared class counts."""
    nbytes = module_bytes(lambda: Judge(cfg, frame_shape, factors))
    heads = ", ".join(f"{f.name}: {f.size} classes" for f in factors)
    check_allocation(copies * nbytes, f"{what} (a judge of {format_bytes(nbytes)} of parameters: judge.width={cfg.width}; "
                                      f"heads {heads})")


def labelled_factors(data: SequenceData) -> tuple[Factor, ...]:
    facs = tuple(f for f in data.factors if f.name in data.labels)
    if not facs:
        raise ValueError(f"dataset {data.name!r} has no labels: a judge needs labelled factors")
    return facs


@dataclass
class JudgeResult:
    judge: Judge
    test_accuracy: dict[str, float]
    steps: int
    seconds: float
    checkpoint: Path
    sha256: str


def train_judge(
    setup: JudgeSetup, train: SequenceData, test: SequenceData | None, out_dir: str | Path,
    *, progress: bool = True, device: torch.device | None = None,
) -> JudgeResult:
    """Fully supervised training of the judge; writes ``judge.pt`` and ``judge.json`` to out_dir."""
    cfg = setup.judge
    out_dir = Path(out_dir)
    if (out_dir / "judge.pt").exists():
        raise about("out_dir", FileExistsError(f"{out_dir} already holds a judge; choose another folder"))
    factors = labelled_factors(train)
    device = device or torch.device("cpu")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    check_judge_fits(cfg, train.frame_shape, factors, 4, "training the judge")
    torch.manual_seed(cfg.seed)
    judge = Judge(cfg, train.frame_shape, factors).to(device)
    # training runs the frame encoder as skd training does (bf16 autocast + channels_last where the
    # device does bf16 natively); scoring (judge_probs) always runs in float32
    plan = resolve_plan("auto", "auto", False, device, "conv" if len(train.frame_shape) == 3 else "mlp")
    if plan.channels_last:
        judge.frame_encoder.to(memory_format=torch.channels_last)
    bs, per_epoch, total = _judge_budget(cfg, len(train))
    t0 = time.time()
    step = _judge_loop(judge, train, factors, cfg, plan.autocast, device, bs, per_epoch, total, progress)
    seconds = time.time() - t0
    judge.frame_encoder.to(memory_format=torch.contiguous_format)
    eval_data = test if test is not None and len(test) else train
    acc = judge_accuracy(judge, eval_data, device=device)
    config = {"judge": dataclasses.asdict(cfg), "data": dataclasses.asdict(setup.data),
              "frame_shape": list(train.frame_shape), "factors": [dataclasses.asdict(f) for f in factors]}
    ckpt = save_checkpoint(out_dir / "judge.pt", kind=JUDGE_KIND, config=config, state={"model": judge.state_dict()})
    sha = file_sha256(ckpt)
    report = {"sha256": sha, "test_accuracy": acc, "evaluated_on": "test" if eval_data is test else "train",
              "execution": plan.to_dict(), "threads": torch.get_num_threads(),
              "steps": step, "epochs": step / per_epoch, "seconds": round(seconds, 1), **config}
    atomic_write_text(out_dir / "judge.json", json.dumps(report, indent=2) + "\n")
    judge.eval()
    return JudgeResult(judge, acc, step, seconds, ckpt, sha)


def _judge_budget(cfg: JudgeConfig, n: int) -> tuple[int, int, int]:
    """(batch size, batches per epoch, steps in all) of training the judge on ``n`` sequences."""
    bs = min(cfg.batch_size, n)
    per_epoch = max(1, n // bs)
    total = cfg.epochs * per_epoch if cfg.epochs else cfg.max_steps
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    return bs, per_epoch, total


def _judge_loop(judge: Judge, train: SequenceData, factors: tuple[Factor, ...], cfg: JudgeConfig,
                autocast: torch.dtype | None, device: torch.device, bs: int, per_epoch: int, total: int,
                progress: bool) -> int:
    """``total`` Adam steps of summed cross-entropy over the factor heads, on batches of ``bs``
    sequences in a fresh random order each epoch; returns the steps taken."""
    opt = torch.optim.Adam(judge.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total)) if cfg.schedule == "cosine" else None
    g = torch.Generator().manual_seed(cfg.seed)
    step = 0
    bar = tqdm(total=total, disable=not progress, desc="judge", dynamic_ncols=True)
    judge.train()
    try:
        while step < total:
            order = torch.randperm(len(train), generator=g)
            for b in range(per_epoch):
                if step >= total:
                    break
                loss = _judge_step(judge, train, order[b * bs : (b + 1) * bs], factors, opt, autocast, device)
                if sched is not None:
                    sched.step()
                step += 1
                bar.update(1)
                if step % 10 == 0:
                    bar.set_postfix(loss=f"{loss.item():.3g}")
    finally:
        bar.close()
    return step


def _judge_step(judge: Judge, train: SequenceData, idx: torch.Tensor, factors: tuple[Factor, ...],
                opt: torch.optim.Adam, autocast: torch.dtype | None, device: torch.device) -> torch.Tensor:
    """One Adam step on the sequences ``idx`` (B,); the loss (summed over factors, before the step)."""
    with frame_autocast(device.type, autocast):
        logits = judge(train.batch(idx, device))
    loss = sum(F.cross_entropy(logits[f.name].float(), train.labels[f.name][idx].to(device)) for f in factors)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def load_judge(path: str | Path, device: str | torch.device = "cpu") -> tuple[Judge, str]:
    """A trained judge (eval mode) and the SHA-256 of its checkpoint file.

    ``path`` is a judge folder (holding judge.pt) or the .pt file itself.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "judge.pt"
    ck = load_checkpoint(path, kind=JUDGE_KIND, map_location=device)
    c = ck["config"]
    try:
        # judges saved before ``arch`` existed are reference judges
        cfg = _build(JudgeConfig, {"arch": "reference", **c["judge"]}, "judge")
        factors = tuple(Factor(f["name"], f["size"], f["kind"], tuple(f.get("values", ()))) for f in c["factors"])
        frame_shape = tuple(int(v) for v in c["frame_shape"])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{path}: the config stored in the judge checkpoint is invalid ({e!s})") from e
    check_judge_fits(cfg, frame_shape, factors, 1, f"loading {path}")
    judge = Judge(cfg, frame_shape, factors).to(device)
    load_state_checked(judge, ck.get("model"), path, "judge")
    judge.eval()
    return judge, file_sha256(path)


def check_judge_matches(judge: Judge, data: SequenceData) -> None:
    """The judge must read this data's frames and predict its labelled factors."""
    if tuple(judge.frame_shape) != tuple(data.frame_shape):
        raise ValueError(f"judge reads frames {judge.frame_shape}, data has {data.frame_shape}")
    for f in judge.factors:
        mine = {g.name: g for g in data.factors}.get(f.name)
        if mine is None or mine.size != f.size:
            raise ValueError(f"judge head {f.name!r} ({f.size} classes) has no matching factor in {data.name!r}")
