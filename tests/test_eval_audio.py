"""EER oracles, cosine pair scoring, linear probes, and the audio evaluation on a tiny run."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skd.evaluation.audio import cosine_pairs, eer, speaker_eer
from skd.evaluation.probes import LinearProbe, chance_level, cv_probe_accuracy, group_mean, probe_accuracy


def brute_force_eer(scores: np.ndarray, target: np.ndarray) -> float:
    """Reference: walk every distinct threshold with Python loops and intersect the ROC with FAR = FRR."""
    pts = [(0.0, 1.0)]
    for th in sorted(set(scores.tolist()), reverse=True):
        far = float(np.mean(scores[~target] >= th))
        frr = float(np.mean(scores[target] < th))
        pts.append((far, frr))
    for (f0, r0), (f1, r1) in itertools.pairwise(pts):
        if f1 >= r1:
            if f0 >= r0:
                return f0
            w = (r0 - f0) / ((r0 - f0) - (r1 - f1))
            return f0 + w * (f1 - f0)
    raise AssertionError("no crossing")


def test_eer_oracles() -> None:
    assert eer([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 0.0  # perfectly separated
    assert eer([0.5] * 6, [1, 0, 1, 0, 0, 0]) == pytest.approx(0.5)  # no information
    assert eer([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == pytest.approx(1.0)  # perfectly inverted
    # hand-computed: targets {0.9, 0.6}, non-targets {0.7, 0.3, 0.1}. At θ = 0.7: FAR = 1/3, FRR = 1/2;
    # at θ = 0.6: FAR = 1/3, FRR = 0 -> the ROC crosses FAR = FRR at 1/3.
    assert eer([0.9, 0.6, 0.7, 0.3, 0.1], [1, 1, 0, 0, 0]) == pytest.approx(1 / 3)
    # a target tied with a non-target: they move together, from (FAR 0, FRR 1/2) straight to (1/2, 0)
    assert eer([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(1 / 4)


def test_eer_invariant_to_order_and_monotone_maps() -> None:
    rng = np.random.default_rng(0)
    t = rng.random(500) < 0.3
    s = rng.normal(size=500) + 1.5 * t
    perm = rng.permutation(500)
    assert eer(s, t) == pytest.approx(eer(s[perm], t[perm]))
    assert eer(s, t) == pytest.approx(eer(np.exp(3 * s), t))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=2, max_size=40))
def test_eer_matches_brute_force(pairs) -> None:
    scores = np.array([p[0] for p in pairs], dtype=np.float64) / 6
    target = np.array([p[1] for p in pairs])
    if target.all() or not target.any():
        with pytest.raises(ValueError, match="target and non-target"):
            eer(scores, target)
        return
    assert eer(scores, target) == pytest.approx(brute_force_eer(scores, target), abs=1e-12)


def test_eer_input_errors() -> None:
    with pytest.raises(ValueError, match="same length"):
        eer([0.1, 0.2], [1])
    with pytest.raises(ValueError, match="NaN"):
        eer([0.1, float("nan")], [1, 0])


def test_cosine_pairs_and_speaker_eer() -> None:
    emb = torch.tensor([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [0.1, 3.0]])
    spk = torch.tensor([0, 0, 1, 1])
    scores, same = cosine_pairs(emb, spk)
    assert scores.shape == (6,) and same.tolist() == [True, False, False, False, False, True]
    assert speaker_eer(emb, spk) == 0.0
    assert speaker_eer(torch.ones(4, 2), spk) == pytest.approx(0.5)


def test_probe_on_separable_and_on_noise() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 3
    centres = torch.tensor([[4.0, 0, 0], [0, 4.0, 0], [0, 0, 4.0]])
    x = centres[y] + torch.randn(300, 3, generator=g)
    assert probe_accuracy(x[:200], y[:200], x[200:], y[200:]) > 0.95
    noise = torch.randn(300, 3, generator=g)
    assert probe_accuracy(noise[:200], y[:200], noise[200:], y[200:]) < 0.55
    assert cv_probe_accuracy(x, y, folds=4) > 0.95
    assert chance_level(y) == pytest.approx(1 / 3)
    probe = LinearProbe().fit(x, y + 10)  # arbitrary label values come back unchanged
    assert set(probe.predict(x).tolist()) == {10, 11, 12}


def test_group_mean() -> None:
    x = torch.tensor([[1.0], [3.0], [10.0], [5.0]])
    m, ids = group_mean(x, torch.tensor([7, 7, 2, 7]))
    assert ids.tolist() == [2, 7] and m.flatten().tolist() == [10.0, 3.0]


def test_probe_confusions_name_the_classes_that_share_an_embedding() -> None:
    """Speakers a and b have the same embedding distribution, c its own: every mistake is a <-> b."""
    from skd.evaluation.audio import prediction_confusions

    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # a and b share a centre

    def part(n: int) -> dict:
        y = torch.arange(3).repeat(n)
        return {"static": centres[y] + 0.05 * torch.randn(len(y), 2, generator=g), "label:speaker": y}

    train, test = part(40), part(40)
    pred = LinearProbe().fit(train["static"], train["label:speaker"]).predict(test["static"])
    pairs = prediction_confusions(pred, test["label:speaker"], names=("a", "b", "c"))
    assert pairs and all({t, p} == {"a", "b"} for t, p, _ in pairs)
    assert sum(n for _, _, n in pairs) >= 10  # a and b cannot be told apart: about half of their 80 are wrong
