"""Which sequences to show side by side: pairs chosen from labels, or parsed from ``'I:J,...'``."""
from __future__ import annotations

import torch

from ..data.base import SequenceData


def pick_pairs(data: SequenceData, n: int, *, seed: int = 0) -> list[tuple[int, int]]:
    """``n`` pairs (i, j) that differ in every labelled factor when labels allow, else random."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"number of pairs n={n!r} must be an integer >= 1")
    if len(data) < 2:
        raise ValueError(f"{data.name}: pairs need at least 2 sequences, the data has {len(data)}")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=g).tolist()
    labs = [data.labels[f.name] for f in data.factors if f.name in data.labels]
    pairs: list[tuple[int, int]] = []
    used: set[int] = set()
    for i in order:
        if len(pairs) >= n:
            break
        if i in used:
            continue
        for j in order:
            if j == i or j in used:
                continue
            if all(int(lab[i]) != int(lab[j]) for lab in labs):
                pairs.append((i, j))
                used.update((i, j))
                break
    while len(pairs) < n and len(order) >= 2:  # no labels or too few candidates
        i, j = order[(2 * len(pairs)) % len(order)], order[(2 * len(pairs) + 1) % len(order)]
        pairs.append((i, j))
    return pairs

def parse_pairs(text: str, n_data: int) -> list[tuple[int, int]]:
    """'0:5,3:9' -> [(0, 5), (3, 9)], checked against the dataset size."""
    pairs = []
    for item in text.split(","):
        try:
            a, b = (int(v) for v in item.split(":"))
        except ValueError:
            raise ValueError(f"pair {item!r} must look like I:J with integer indices") from None
        for v in (a, b):
            if not 0 <= v < n_data:
                raise ValueError(f"sequence index {v} out of range [0, {n_data})")
        pairs.append((a, b))
    return pairs
