"""Resuming a run: which checkpoint and config it continues from, and the checks on the way.

A resume continues ``RUN/checkpoint.pt`` with the stopping budget, device and learning-rate
decay of the caller's config (:data:`RESUMABLE`); everything else comes from the checkpoint.
``RUN/config.json`` must agree with the checkpoint outside ``train.*`` (an edit is refused with
the differing keys), ``metrics.jsonl`` is cut back to the checkpoint's step (a torn last line
from a crash is dropped, and said so), and a folder holding only ``config.json`` (a run that
died before its first checkpoint) restarts from step 0.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from . import distributed as D
from ..files.checkpoint import CheckpointError, atomic_write_text, load_checkpoint
from ..config import Config, ConfigError, apply_overrides, config_from_dict

log = logging.getLogger(__name__)
CKPT_KIND = "koopman-ae"
AVERAGED_KEY = "averaged_from"  # in checkpoints written by skd average: the source steps (no optimizer state)


def checkpoint_config(ckpt: dict[str, Any], path: Path) -> Config:
    try:
        return config_from_dict(ckpt["config"])
    except ConfigError as e:
        raise CheckpointError(f"{path}: the config stored in the checkpoint is invalid ({e})") from e


def load_checkpoint_config(run_dir: str | Path, overrides: list[str] | None = None) -> Config:
    """The saved config of a run with ``train.*`` overrides applied (for ``--resume``).

    Model, loss and data cannot change on resume: that would not continue the same run.
    """
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"no run to resume in {run_dir} (missing {path.name})")
    for item in overrides or []:
        key = item.split("=", 1)[0].strip()
        if not key.startswith("train."):
            raise ConfigError(f"cannot change {key} when resuming; only train.* settings may change")
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"corrupt {path}: {e}") from e
    return config_from_dict(apply_overrides(saved, overrides or []))


def _parse_metric(line: str) -> dict[str, Any] | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines written after the checkpoint we resume from, and a torn last line (a write
    cut by a crash or a power cut), saying so; a corrupt line before the end is an error."""
    if not path.exists():
        return
    lines = path.read_bytes().decode("utf-8", errors="replace").split("\n")
    records: list[tuple[str, dict[str, Any]]] = []
    torn: list[str] = []
    for i, line in enumerate(lines, 1):
        if not line.strip("\x00 \t\r"):
            continue
        rec = _parse_metric(line)
        if rec is None:
            torn.append(line)
            bad_line = i
        elif torn:
            raise ValueError(f"{path}: line {bad_line} is not a JSON record (corrupt file); fix or delete that line")
        else:
            records.append((line, rec))
    if torn:
        log.warning("%s: dropped a torn last line (%d bytes) left by an interrupted write", path,
                    sum(len(t.encode()) for t in torn))
    keep = [line for line, rec in records if _step_of(rec) <= step]
    atomic_write_text(path, "".join(line + "\n" for line in keep))


def _step_of(rec: dict[str, Any]) -> float:
    value = rec.get("step", 0)
    return value if isinstance(value, (int, float)) else 0


RESUMABLE = ("epochs", "max_steps", "minutes", "device", "lr_milestones", "lr_gamma")  # train.* a resume applies


def _resumed_config(saved: Config, cfg: Config) -> Config:
    """The saved config with the stopping budget, device and learning-rate decay of ``cfg``."""
    return dataclasses.replace(saved, train=dataclasses.replace(
        saved.train, **{name: getattr(cfg.train, name) for name in RESUMABLE}))


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_diff(a: Config, b: Config, *, skip: tuple[str, ...] = ()) -> list[tuple[str, Any, Any]]:
    """(key, value in a, value in b) for every differing key, sections in ``skip`` left out."""
    fa, fb = _flat(a.to_dict()), _flat(b.to_dict())
    return [(k, fa[k], fb[k]) for k in sorted(fa) if fa[k] != fb[k] and k.split(".")[0] not in skip]


def _read_run_config(path: Path) -> Config:
    try:
        return config_from_dict(json.loads(path.read_text()))
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from e


def resume_point(cfg: Config, run_dir: Path, world: D.WorldInfo) -> tuple[Config, dict[str, Any] | None]:
    """The config and checkpoint a resume continues from (checkpoint None: from step 0)."""
    ckpt_path, json_path = run_dir / "checkpoint.pt", run_dir / "config.json"
    if not ckpt_path.exists() and json_path.is_file():
        if world.is_main:
            log.warning("%s holds no checkpoint yet (the run stopped before its first one): starting it "
                        "from step 0 with its config.json", run_dir)
        return _resumed_config(_read_run_config(json_path), cfg), None
    ckpt = load_checkpoint(ckpt_path, kind=CKPT_KIND)
    if AVERAGED_KEY in ckpt:  # weights only
        raise CheckpointError(f"{ckpt_path} is an average of checkpoints (skd average) and holds no optimizer "
                              "state; resume the run it was averaged from, then average again")
    saved = checkpoint_config(ckpt, ckpt_path)
    if json_path.is_file():  # an edited config.json would silently contradict the checkpoint
        diff = config_diff(_read_run_config(json_path), saved, skip=("train",))
        if diff:
            shown = "; ".join(f"{k}: {a!r} in config.json, {b!r} in the checkpoint" for k, a, b in diff[:4])
            more = f" (and {len(diff) - 4} more)" if len(diff) > 4 else ""
            raise ConfigError(f"{json_path} disagrees with {ckpt_path}: {shown}{more}; only train.* settings may "
                              "change when resuming: restore config.json or start a new run")
    resumed = _resumed_config(saved, cfg)  # only the budget, device and learning-rate decay change
    ignored = [(k, a, b) for k, a, b in config_diff(cfg, resumed) if k.startswith("train.")]
    if ignored and world.is_main:
        log.warning("not applied on resume (the run keeps its own value): %s",
                    ", ".join(f"{k}={a!r} (keeps {b!r})" for k, a, b in ignored))
    if (saved.train.lr_milestones, saved.train.lr_gamma) != (resumed.train.lr_milestones, resumed.train.lr_gamma) \
            and world.is_main:
        log.info("learning-rate decay changed on resume: milestones %s, gamma %g",
                 list(resumed.train.lr_milestones), resumed.train.lr_gamma)
        atomic_write_text(json_path, resumed.to_json() + "\n")
    return resumed, ckpt
