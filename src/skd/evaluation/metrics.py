"""Two-factor disentanglement scores from a frozen judge's predictions (docs/EVALUATION.md §2).

Pure, vectorised NumPy functions. Inputs are NumPy arrays or torch tensors (any device; they
are detached and copied to CPU float64): ``probs`` is (N, K) softmax output whose rows sum to 1,
``labels`` is (N,) integers in [0, K). Results are Python floats. Logs use ``EPS`` = 1e-16:

- Acc = mean_x [argmax_y p(y|x) = label(x)];
- H(y|x) = mean_x -Σ_y p(y|x) log(p(y|x) + eps);
- H(y) = -Σ_y p(y) log(p(y) + eps), with p(y) = mean_x p(y|x);
- IS = exp(mean_x KL(p(y|x) ‖ p(y))) = exp(H(y) - H(y|x)), in [1, K].
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

EPS = 1e-16
_SUM_TOL = 1e-3


def _numpy(a: Any, dtype: Any = None) -> np.ndarray:
    if hasattr(a, "detach"):  # torch.Tensor, without importing torch here
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=dtype)


def _scores(a: Any, name: str = "probs") -> np.ndarray:
    s = _numpy(a, np.float64)
    if s.ndim != 2 or s.shape[0] < 1 or s.shape[1] < 1:
        raise ValueError(f"{name} must have shape (N, K) with N, K >= 1, got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return s


def _probs(a: Any) -> np.ndarray:
    p = _scores(a)
    if p.min() < 0 or np.abs(p.sum(axis=1) - 1.0).max() > _SUM_TOL:
        raise ValueError(f"probs must be non-negative rows that sum to 1 (got row sums in "
                         f"[{p.sum(axis=1).min():g}, {p.sum(axis=1).max():g}]); apply softmax to logits first")
    return p


def _labels(a: Any, n: int, k: int | None = None) -> np.ndarray:
    y = _numpy(a)
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) like the predictions, got {y.shape}")
    if y.dtype.kind not in "biu":
        if y.dtype.kind != "f" or not np.array_equal(y, np.round(y)):
            raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or (k is not None and y.max() >= k)):
        raise ValueError(f"labels must lie in [0, {k}), got [{y.min()}, {y.max()}]")
    return y


def accuracy(probs_or_logits: Any, labels: Any) -> float:
    """Fraction of rows of (N, K) scores whose argmax equals the (N,) label."""
    s = _scores(probs_or_logits, "probs_or_logits")
    y = _labels(labels, s.shape[0], s.shape[1])
    return float((s.argmax(axis=1) == y).mean())


def balance_classes(labels: Any, *arrays: Any) -> np.ndarray | tuple[np.ndarray, ...]:
    """Indices keeping the first n_min samples of each class present in (N,) ``labels``.

    n_min is the size of the smallest present class; indices are sorted, so the original order is
    kept. Without ``arrays`` returns the (M,) int64 index array; with arrays (each of length N)
    returns ``(idx, arrays[0][idx], ...)``.
    """
    y = _numpy(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must have shape (N,), got {y.shape}")
    y = _labels(y, y.shape[0])
    for i, a in enumerate(arrays):
        if len(a) != len(y):
            raise ValueError(f"arrays[{i}] has length {len(a)}, labels have length {len(y)}")
    order = np.argsort(y, kind="stable")
    classes, first, counts = np.unique(y[order], return_index=True, return_counts=True)
    rank = np.arange(len(y)) - np.repeat(first, counts)  # position within its class, in order
    idx = np.sort(order[rank < counts.min()]) if len(y) else order
    if not arrays:
        return idx
    return (idx, *(a[idx] for a in arrays))


def conditional_entropy(probs: Any) -> float:
    """H(y|x) = mean_x -Σ_y p(y|x) log(p(y|x) + eps); 0 for one-hot rows, ln K for uniform rows."""
    p = _probs(probs)
    return float(-(p * np.log(p + EPS)).sum(axis=1).mean())


def marginal_entropy(probs: Any) -> float:
    """H(y) = -Σ_y p(y) log(p(y) + eps) with p(y) = mean_x p(y|x); ln K when classes are balanced."""
    py = _probs(probs).mean(axis=0)
    return float(-(py * np.log(py + EPS)).sum())


def inception_score(probs: Any) -> float:
    """IS = exp(mean_x KL(p(y|x) ‖ p(y))): K for confident balanced predictions, 1 for constant ones."""
    p = _probs(probs)
    py = p.mean(axis=0, keepdims=True)
    kl = (p * (np.log(p + EPS) - np.log(py + EPS))).sum(axis=1)
    return float(np.exp(kl.mean()))


def judge_scores(probs: Any, labels: Any) -> dict[str, float | int]:
    """Acc on all samples; IS, H(y|x), H(y) after :func:`balance_classes` on the true labels.

    Returns ``{"acc", "is", "h_yx", "h_y", "n", "n_balanced", "num_classes"}``.
    """
    p = _probs(probs)
    y = _labels(labels, p.shape[0], p.shape[1])
    idx = balance_classes(y)
    pb = p[idx]
    return {
        "acc": accuracy(p, y),
        "is": inception_score(pb),
        "h_yx": conditional_entropy(pb),
        "h_y": marginal_entropy(pb),
        "n": int(p.shape[0]),
        "n_balanced": int(len(idx)),
        "num_classes": int(p.shape[1]),
    }


def confusion_matrix(probs_or_logits: Any, labels: Any) -> np.ndarray:
    """(K, K) int64 counts: row = true class, column = the argmax prediction; rows sum to the class counts."""
    s = _scores(probs_or_logits)
    y = _labels(labels, s.shape[0], s.shape[1])
    out = np.zeros((s.shape[1], s.shape[1]), dtype=np.int64)
    np.add.at(out, (y, s.argmax(axis=1)), 1)
    return out


def top_confusions(matrix: Any, names: tuple[str, ...] | list[str] = (), k: int = 3) -> list[tuple[str, str, int]]:
    """The ``k`` largest off-diagonal cells of a confusion matrix as (true, predicted, count), count > 0."""
    m = _numpy(matrix, np.int64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {m.shape}")
    names = list(names) or [str(i) for i in range(m.shape[0])]
    if len(names) != m.shape[0]:
        raise ValueError(f"{len(names)} class names for a {m.shape[0]}-class confusion matrix")
    off = m.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:k]
    return [(names[i], names[j], int(off[i, j])) for i, j in zip(*np.unravel_index(order, m.shape)) if off[i, j] > 0]


def per_attribute_accuracy(probs_by_head: Mapping[str, Any], labels_by_head: Mapping[str, Any]) -> dict[str, float]:
    """``{head: accuracy}`` for every head of ``probs_by_head`` (probabilities or logits)."""
    missing = sorted(set(probs_by_head) - set(labels_by_head))
    if missing:
        raise ValueError(f"no labels for heads {missing} (labels given for {sorted(labels_by_head)})")
    out = {}
    for head, scores in probs_by_head.items():
        try:
            out[head] = accuracy(scores, labels_by_head[head])
        except ValueError as err:
            raise ValueError(f"head {head!r}: {err}") from err
    return out
