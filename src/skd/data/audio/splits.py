"""Train/test splits of an audio corpus, chosen from config keys (``data.split``).

Each audio dataset first gives every file its own split (``auto``: FSDD takes 0-4 are test,
TIMIT the core-test speakers, a folder its ``split`` group). Any other kind replaces it:

- ``values``: the test set is every file whose named group ``data.split_group`` has one of
  ``data.test_values`` (e.g. ``split_group = "take"``, ``test_values = [5, 6]``).
- ``fraction``: a seeded fraction ``data.test_fraction`` of the files of every speaker
  (stratified by ``data.split_group``, default ``speaker``; all files when that label is absent).
- ``list``: the paths listed in ``data.test_list`` (one per line, relative to ``data.path``, as
  Speech Commands ships ``testing_list.txt``); training = ``data.train_list`` when given, else
  every other file.
- ``speakers``: speaker-disjoint (the TIMIT protocol): the test set is every file of the
  speakers ``data.test_values``, or of a seeded fraction ``data.test_fraction`` of the speakers.
  No test speaker occurs in training.

Random choices depend only on ``data.split_seed`` and the stratum's name, so adding a speaker
to a corpus does not change the other speakers' splits.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

SPLIT_KINDS = ("auto", "values", "fraction", "list", "speakers")
_MAX_NAMED = 3


def _short(items: Sequence[str]) -> str:
    more = f" (and {len(items) - _MAX_NAMED} more)" if len(items) > _MAX_NAMED else ""
    return ", ".join(items[:_MAX_NAMED]) + more


def same_value(a: str, b: str | int) -> bool:
    """Equal as strings, or as integers when both are whole numbers (take '05' == 5)."""
    a, b = str(a), str(b)
    if a == b:
        return True
    return a.isdigit() and b.isdigit() and int(a) == int(b)


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _natural(v: str) -> tuple:
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", v))


def _group_value(e, group: str) -> str:
    if group in e.groups:
        return e.groups[group]
    if group in e.labels:
        return e.labels[group]
    known = sorted(set(e.groups) | set(e.labels))
    raise ValueError(f"data.split_group={group!r} is not a label of {e.path} (labels: {', '.join(known) or 'none'})")


def split_by_values(entries: Sequence, group: str, test_values: Sequence[str | int]) -> list[str]:
    """'test' for files whose ``group`` value is one of ``test_values``, else 'train'."""
    values = [_group_value(e, group) for e in entries]
    unused = [str(t) for t in test_values if not any(same_value(v, t) for v in values)]
    if unused:
        seen = sorted(set(values), key=_natural)
        raise ValueError(f"data.test_values {unused} never occur in group {group!r} (values: {_short(seen)})")
    return ["test" if any(same_value(v, t) for t in test_values) else "train" for v in values]


def split_by_fraction(entries: Sequence, fraction: float, seed: int, group: str = "speaker") -> list[str]:
    """A seeded ``fraction`` of the files of every ``group`` value (stratum) is 'test'.

    Per stratum of n files, round(fraction·n) files are test, at least 1 and at most n-1 when n >= 2
    (a stratum of one file stays in training). Files are ordered by path before the draw.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"data.test_fraction={fraction} must be in (0, 1)")
    has = all(group in e.labels or group in e.groups for e in entries)
    strata: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        strata.setdefault(_group_value(e, group) if has else "", []).append(i)
    out = ["train"] * len(entries)
    for name, idx in strata.items():
        idx = sorted(idx, key=lambda i: str(entries[i].path))
        n = len(idx)
        n_test = 0 if n < 2 else min(n - 1, max(1, round(fraction * n)))
        for j in _rng(seed, name).permutation(n)[:n_test]:
            out[idx[j]] = "test"
    return out


def split_by_speakers(entries: Sequence, test_speakers: Sequence[str | int], fraction: float, seed: int,
                      group: str = "speaker") -> list[str]:
    """Speaker-disjoint: every file of the test speakers is 'test', all others 'train'.

    The test speakers are ``test_speakers`` when given, else a seeded ``fraction`` of the speakers
    (round(fraction·S), at least 1, at most S-1).
    """
    if any(group not in e.labels for e in entries):
        raise ValueError(f"data.split='speakers' needs a {group!r} label on every file (a named group in data.pattern)")
    speakers = sorted({e.labels[group] for e in entries}, key=_natural)
    if len(speakers) < 2:
        raise ValueError(f"data.split='speakers' needs at least 2 speakers, found {speakers}")
    if test_speakers:
        out = split_by_values(entries, group, test_speakers)
    else:
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"data.test_fraction={fraction} must be in (0, 1)")
        n_test = min(len(speakers) - 1, max(1, round(fraction * len(speakers))))
        chosen = {speakers[j] for j in _rng(seed, "speakers").permutation(len(speakers))[:n_test]}
        out = ["test" if e.labels[group] in chosen else "train" for e in entries]
    if "train" not in out:
        raise ValueError(f"data.test_values name every speaker ({_short(speakers)}); leave some for training")
    return out


def read_list(path: Path) -> list[str]:
    """Non-empty, non-comment lines of a list file, as '/'-separated relative paths."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: list file not found")
    lines = [ln.strip().replace("\\", "/") for ln in path.read_text().splitlines()]
    return [ln.removeprefix("./") for ln in lines if ln and not ln.startswith("#")]


def split_by_lists(entries: Sequence, root: Path, test_list: str, train_list: str = "") -> list[str | None]:
    """'test' for the files listed in ``test_list``; 'train' for those in ``train_list`` (when
    given, else every other file); None for files in neither (dropped).

    List paths are relative to ``root``; relative list-file names are looked up in ``root`` first.
    Listed paths that are not among the matched audio files are one error naming them.
    """
    rel = {Path(e.path).relative_to(root).as_posix(): i for i, e in enumerate(entries)}

    def load(name: str, key: str) -> set[str]:
        p = Path(name).expanduser()
        if not p.is_absolute() and (root / p).is_file():
            p = root / p
        items = read_list(p)
        missing = [s for s in items if s not in rel]
        if missing:
            raise ValueError(f"{p}: {len(missing)} of {len(items)} paths in data.{key} are not audio files matched "
                             f"by the pattern under {root}: {_short(missing)}")
        return set(items)

    test = load(test_list, "test_list")
    train = load(train_list, "train_list") if train_list else set(rel) - test
    both = sorted(test & train)
    if both:
        raise ValueError(f"{len(both)} files are in both data.train_list and data.test_list: {_short(both)}")
    out: list[str | None] = [None] * len(entries)
    for s, i in rel.items():
        out[i] = "test" if s in test else "train" if s in train else None
    dropped = out.count(None)
    if dropped:
        log.info("%d matched files are in neither list and are not used", dropped)
    return out


def apply_split(entries: Sequence, cfg, root: str | Path) -> list:
    """Entries with the split of ``cfg.split`` (a :class:`~skd.config.DataConfig`); 'auto' keeps theirs."""
    kind = cfg.split
    if kind == "auto":
        return list(entries)
    if kind == "values":
        splits = split_by_values(entries, cfg.split_group, cfg.test_values)
    elif kind == "fraction":
        splits = split_by_fraction(entries, cfg.test_fraction, cfg.split_seed, cfg.split_group or "speaker")
    elif kind == "speakers":
        splits = split_by_speakers(entries, cfg.test_values, cfg.test_fraction, cfg.split_seed)
    elif kind == "list":
        splits = split_by_lists(entries, Path(root).expanduser(), cfg.test_list, cfg.train_list)
    else:
        raise ValueError(f"data.split={kind!r} must be one of {', '.join(SPLIT_KINDS)}")
    out = [dataclasses.replace(e, split=s) for e, s in zip(entries, splits) if s is not None]
    n_test = sum(e.split == "test" for e in out)
    if n_test == 0:
        raise ValueError(f"data.split={kind!r} puts no file in the test set")
    log.info("data.split=%s: %d train / %d test files", kind, len(out) - n_test, n_test)
    return out
