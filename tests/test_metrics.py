"""Judge metrics: oracle predictors with known scores, and the identities that tie them together."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skd.evaluation.metrics import (
    accuracy,
    balance_classes,
    conditional_entropy,
    confusion_matrix,
    inception_score,
    judge_scores,
    marginal_entropy,
    per_attribute_accuracy,
    top_confusions,
)

K = 9


def _perfect(labels: np.ndarray, k: int = K) -> np.ndarray:
    return np.eye(k)[labels]


def test_perfect_predictor_on_balanced_classes():
    labels = np.tile(np.arange(K), 7)
    p = _perfect(labels)
    assert accuracy(p, labels) == 1.0
    assert inception_score(p) == pytest.approx(K, rel=1e-12)
    assert conditional_entropy(p) == pytest.approx(0.0, abs=1e-12)
    assert marginal_entropy(p) == pytest.approx(math.log(K), rel=1e-12)


def test_constant_predictor():
    labels = np.tile(np.arange(K), 5)
    p = _perfect(np.zeros_like(labels))
    assert accuracy(p, labels) == pytest.approx(1 / K)
    assert inception_score(p) == pytest.approx(1.0, abs=1e-12)
    assert marginal_entropy(p) == pytest.approx(0.0, abs=1e-12)
    assert conditional_entropy(p) == pytest.approx(0.0, abs=1e-12)


def test_uniform_predictor():
    p = np.full((30, K), 1 / K)
    assert conditional_entropy(p) == pytest.approx(math.log(K), rel=1e-12)
    assert marginal_entropy(p) == pytest.approx(math.log(K), rel=1e-12)
    assert inception_score(p) == pytest.approx(1.0, rel=1e-12)


def test_accuracy_takes_logits_and_torch_tensors():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0], [0.1, 0.2, 0.3]])
    assert accuracy(logits, torch.tensor([0, 1, 0])) == pytest.approx(2 / 3)
    assert accuracy(logits.numpy(), [0, 1, 2]) == 1.0


def test_balance_classes_keeps_the_first_n_min_of_each_class():
    labels = np.array([2, 0, 0, 1, 2, 0, 1, 2, 2])  # counts 3, 2, 4 -> n_min = 2
    idx = balance_classes(labels)
    assert idx.tolist() == [0, 1, 2, 3, 4, 6]
    idx2, lab, extra = balance_classes(labels, labels, np.arange(9) * 10)
    assert np.array_equal(idx2, idx) and lab.tolist() == [2, 0, 0, 1, 2, 1]
    assert extra.tolist() == (idx * 10).tolist()
    assert np.bincount(labels[idx]).tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match="arrays\\[0\\] has length 3"):
        balance_classes(labels, np.zeros(3))


def test_judge_scores_balances_before_is_and_entropies():
    # 18 samples of class 0, 2 of class 1, all predicted correctly with certainty
    labels = np.array([0] * 18 + [1] * 2)
    p = _perfect(labels, 2)
    s = judge_scores(p, labels)
    assert s["acc"] == 1.0 and s["n"] == 20 and s["n_balanced"] == 4 and s["num_classes"] == 2
    assert s["is"] == pytest.approx(2.0) and s["h_y"] == pytest.approx(math.log(2))
    assert s["h_yx"] == pytest.approx(0.0, abs=1e-12)
    assert inception_score(p) < 1.5  # unbalanced: the marginal is skewed


def test_per_attribute_accuracy():
    labels = {"skin": np.array([0, 1, 2]), "hair": np.array([5, 5, 0])}
    probs = {"skin": _perfect(labels["skin"], 6), "hair": _perfect(np.array([5, 0, 0]), 6)}
    assert per_attribute_accuracy(probs, labels) == {"skin": 1.0, "hair": pytest.approx(2 / 3)}
    with pytest.raises(ValueError, match=r"no labels for heads \['top'\]"):
        per_attribute_accuracy({**probs, "top": probs["skin"]}, labels)
    with pytest.raises(ValueError, match=r"head 'hair': labels must have shape \(3,\)"):
        per_attribute_accuracy(probs, {**labels, "hair": np.array([1, 2])})


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="apply softmax"):
        inception_score(np.array([[2.0, -1.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="shape \\(N, K\\)"):
        conditional_entropy(np.ones(3) / 3)
    with pytest.raises(ValueError, match="NaN"):
        marginal_entropy(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        accuracy(np.eye(2), np.array([0, 2]))


_probs = st.integers(1, 40).flatmap(
    lambda n: st.integers(2, 12).flatmap(
        lambda k: arrays(np.float64, (n, k), elements=st.floats(0.0, 50.0, allow_nan=False))))


def _normalise(w: np.ndarray) -> np.ndarray:
    w = w + 1e-3
    return w / w.sum(axis=1, keepdims=True)


@settings(max_examples=150, deadline=None)
@given(_probs)
def test_scores_stay_in_bounds_and_obey_the_identity(w):
    p = _normalise(w)
    k = p.shape[1]
    is_, hyx, hy = inception_score(p), conditional_entropy(p), marginal_entropy(p)
    assert 1.0 - 1e-9 <= is_ <= k * (1 + 1e-9)
    assert -1e-12 <= hyx <= math.log(k) + 1e-9
    assert -1e-12 <= hy <= math.log(k) + 1e-9
    assert hyx <= hy + 1e-9
    assert is_ == pytest.approx(math.exp(hy - hyx), rel=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=60))
def test_balance_classes_property(labels):
    y = np.array(labels)
    idx = balance_classes(y)
    counts = np.bincount(y[idx])
    present = np.unique(y)
    n_min = np.bincount(y)[present].min()
    assert (counts[present] == n_min).all() and counts.sum() == n_min * len(present)
    assert (np.diff(idx) > 0).all()
    for c in present:  # the first n_min of each class, in order
        assert np.array_equal(idx[y[idx] == c], np.flatnonzero(y == c)[:n_min])


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 6), st.integers(1, 40), st.integers(0, 2**31 - 1))
def test_confusion_matrix_counts_every_prediction_once(k, n, seed):
    rng = np.random.default_rng(seed)
    y, p = rng.integers(0, k, n), rng.random((n, k))
    cm = confusion_matrix(p, y)
    assert cm.shape == (k, k) and cm.sum() == n
    assert (cm.sum(1) == np.bincount(y, minlength=k)).all()
    assert (cm.sum(0) == np.bincount(p.argmax(1), minlength=k)).all()
    assert np.trace(cm) / n == pytest.approx(accuracy(p, y))


def test_top_confusions_names_the_largest_off_diagonal_cells():
    cm = np.array([[9, 4, 0], [1, 8, 0], [0, 6, 3]])
    assert top_confusions(cm, ("a", "b", "c"), k=2) == [("c", "b", 6), ("a", "b", 4)]
    assert top_confusions(cm, k=5) == [("2", "1", 6), ("0", "1", 4), ("1", "0", 1)]  # zero cells dropped
    assert top_confusions(np.eye(3, dtype=int)) == []
    with pytest.raises(ValueError, match="2 class names for a 3-class"):
        top_confusions(cm, ("a", "b"))
    with pytest.raises(ValueError, match="must be square"):
        top_confusions(np.zeros((2, 3)))
