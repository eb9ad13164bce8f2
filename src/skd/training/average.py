"""Weight averaging of checkpoints along one training run (stochastic weight averaging).

At a small constant learning rate, successive checkpoints of one run wander around a minimum;
their uniform average sits nearer its centre than any one of them (Izmailov et al., "Averaging
Weights Leads to Wider Optima and Better Generalization", 2018). For SKD the wandering shows in
the eigen split of Eq. 5: which latent directions have |lambda| ~ 1 changes from checkpoint to
checkpoint, and with it Protocol A (docs/ABLATIONS.md). Averaging removes that
checkpoint-to-checkpoint noise without choosing a checkpoint on the test split.

BatchNorm statistics are not averaged but measured again (:func:`recompute_batchnorm`): the
running mean and variance of an averaged network are those of its own activations, which the
average of the sources' statistics only approximates. ``torch.optim.swa_utils.update_bn`` does
the same for a plain ``model(x)``; here the pass runs the model's execution plan (bf16 where
training used it) so the statistics match how the model is evaluated.

An averaged checkpoint holds weights only (no optimizer state): it is evaluated with every
command that takes ``--run``, and training continues from the run it was averaged from.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from ..config import Config, ConfigError, config_from_dict
from ..data.base import SequenceData
from ..files.checkpoint import CheckpointError, load_checkpoint
from .resume import AVERAGED_KEY, CKPT_KIND, config_diff


def average_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Uniform average of model state dicts with the same names and shapes.

    Floating tensors are averaged in float64 and cast back to their dtype; integer tensors
    (BatchNorm's ``num_batches_tracked``) are taken from the last state. Pure: the inputs are
    not modified.
    """
    if not states:
        raise ValueError("nothing to average: no states given")
    names = list(states[0])
    for i, s in enumerate(states[1:], 1):
        if list(s) != names:
            missing = sorted(set(names) ^ set(s))
            raise ValueError(f"state {i} has other tensors than state 0 (first difference: {missing[:1] or 'order'})")
    out: dict[str, torch.Tensor] = {}
    for name in names:
        ts = [s[name] for s in states]
        shape = tuple(ts[0].shape)
        if any(tuple(t.shape) != shape for t in ts):
            raise ValueError(f"tensor {name!r} has different shapes in the states to average")
        if ts[0].is_floating_point():
            acc = torch.zeros(shape, dtype=torch.float64)
            for t in ts:
                acc += t.detach().to("cpu", torch.float64)
            out[name] = (acc / len(ts)).to(ts[0].dtype)
        else:
            out[name] = ts[-1].detach().clone()
    return out


@dataclass(frozen=True)
class Sources:
    """The checkpoints to average: their steps and paths, and the config they share."""

    steps: tuple[int, ...]
    paths: tuple[Path, ...]
    config: Config  # the latest source's


def read_sources(paths: Iterable[str | Path], kind: str) -> tuple[Sources, list[dict[str, torch.Tensor]]]:
    """Load the model weights of training checkpoints of one configuration, ordered by step.

    Refused with one :class:`CheckpointError`: fewer than two files, a checkpoint of another
    model or loss configuration (``train.*`` may differ: a resumed run changes the learning
    rate), an already averaged checkpoint, or fewer than two distinct steps. A step given twice
    (``RUN/checkpoint.pt`` and the kept copy of the same step) is averaged once.
    """
    loaded = []
    for p in paths:
        p = Path(p)
        ck = load_checkpoint(p, kind=kind)
        if AVERAGED_KEY in ck:
            raise CheckpointError(f"{p} is itself an average; average the training checkpoints it came from")
        if not isinstance(ck.get("model"), dict):
            raise CheckpointError(f"{p}: corrupt checkpoint (no model weights)")
        loaded.append((int(ck.get("step", 0)), p, ck))
    if len(loaded) < 2:
        raise CheckpointError(f"averaging needs at least two checkpoints, got {len(loaded)}")
    loaded.sort(key=lambda item: item[0])
    by_step: dict[int, tuple[int, Path, dict[str, Any]]] = {}
    for item in loaded:
        by_step.setdefault(item[0], item)
    loaded = list(by_step.values())
    if len(loaded) < 2:
        raise CheckpointError(f"averaging needs checkpoints of at least two steps, got only step {loaded[0][0]}")
    steps = [s for s, _, _ in loaded]
    ref_path, ref = loaded[-1][1], _resolved(loaded[-1][2]["config"], loaded[-1][1])
    for _, p, ck in loaded:  # keys added to the config since an older checkpoint take their defaults
        diff = config_diff(ref, _resolved(ck["config"], p), skip=("train",))
        if diff:
            raise CheckpointError(f"{p} and {ref_path} differ in [{diff[0][0]}]: only checkpoints of one run can be averaged")
    sources = Sources(tuple(steps), tuple(p for _, p, _ in loaded), ref)
    return sources, [ck["model"] for _, _, ck in loaded]


def _resolved(config: dict[str, Any], path: Path) -> Config:
    try:
        return config_from_dict(config)
    except ConfigError as e:
        raise CheckpointError(f"{path}: the config stored in the checkpoint is invalid ({e})") from e


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, data: SequenceData, *, batch_size: int, n_batches: int,
                        gen: torch.Generator, forward_kwargs: dict[str, Any] | None = None) -> int:
    """Measure every BatchNorm's running statistics afresh: reset them, then run ``n_batches``
    random training batches (drawn with ``gen``) in training mode with a cumulative average
    (``momentum=None``), as ``torch.optim.swa_utils.update_bn`` does. Returns the sequences seen.

    Dropout is off during the pass (only the BatchNorm layers are put in training mode), so the
    statistics are those of the network as it is evaluated. Momentum and mode are restored.
    """
    bns = _batchnorms(model)
    if not bns:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in bns]
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    seen = 0
    try:
        n = len(data)
        bs = min(batch_size, n)
        for _ in range(n_batches):
            idx = torch.randperm(n, generator=gen)[:bs]
            x = data.batch(idx, next(model.parameters()).device)
            model(x, **(forward_kwargs or {}))
            seen += bs
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        model.train(was_training)
    return seen


@dataclass(frozen=True)
class AverageResult:
    """What :func:`average_checkpoints` wrote."""

    path: Path  # OUT/checkpoint.pt
    config: Config  # the config written with it (the latest source's)
    steps: tuple[int, ...]  # the averaged checkpoints' steps, ascending
    bn_sequences: int  # training sequences run to measure the BatchNorm statistics


def average_checkpoints(paths: Sequence[str | Path], out_dir: str | Path, data: SequenceData, *,
                        bn_batches: int = 64, seed: int = 0, precision: str = "auto") -> AverageResult:
    """Average the weights of training checkpoints of one run into ``OUT/checkpoint.pt``.

    The BatchNorm statistics of the average are measured on ``bn_batches`` random batches of
    ``data`` (the training split, batches of the run's ``train.batch_size``, drawn with ``seed``),
    with the frame networks run as ``precision`` says (``auto``: as training ran them). The
    written checkpoint holds the weights, the config of the latest source and the source steps;
    it has no optimizer state and cannot be resumed.
    """
    from ..files.checkpoint import save_checkpoint
    from ..model.precision import apply_plan, reset_plan, resolve_plan
    from .loop import build_model

    if bn_batches < 1:
        raise ValueError(f"--bn-batches={bn_batches} must be >= 1")
    sources, states = read_sources(paths, CKPT_KIND)
    cfg = sources.config
    model = build_model(cfg)
    model.load_state_dict(average_states(states))
    if tuple(data.frame_shape) != tuple(model.frame_shape):
        raise ValueError(f"data frames {tuple(data.frame_shape)} do not match the model's frames {tuple(model.frame_shape)}")
    device = torch.device("cpu")
    apply_plan(model, resolve_plan(precision, "auto", False, device, cfg.model.kind))
    seen = recompute_batchnorm(model, data, batch_size=cfg.train.batch_size, n_batches=bn_batches,
                               gen=torch.Generator().manual_seed(seed),
                               forward_kwargs={"ridge": cfg.loss.ridge, "rcond": cfg.loss.rcond})
    reset_plan(model)
    state = {"model": {k: v.contiguous() for k, v in model.state_dict().items()}, "step": sources.steps[-1],
             AVERAGED_KEY: list(sources.steps), "bn_sequences": seen}
    out = Path(out_dir) / "checkpoint.pt"
    save_checkpoint(out, kind=CKPT_KIND, config=cfg.to_dict(), state=state)
    return AverageResult(out, cfg, sources.steps, seen)
