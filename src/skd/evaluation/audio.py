"""Speaker-verification EER and linear probes on static vs dynamic embeddings (docs/EVALUATION.md §4).

EER is computed exactly from the ROC of all unordered pairs: pairs are sorted by score once,
false-accept and false-reject rates at every distinct threshold follow from cumulative sums, and
the EER is where the piecewise-linear ROC crosses FAR = FRR — O(P log P) for P pairs, no loops.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ..pipelines import ops
from ..config import Config
from ..data.base import SequenceData
from ..model import KoopmanAE
from .probes import Coordinates, LinearProbe, chance_level, cv_probe_accuracy, group_mean, part_embeddings

log = logging.getLogger(__name__)


def eer(scores: Any, is_target: Any) -> float:
    """Equal error rate of verification scores (P,) with boolean target flags (P,).

    A pair is accepted when its score is >= the threshold. FAR(θ) = accepted non-targets /
    non-targets, FRR(θ) = rejected targets / targets. Operating points are taken at every
    distinct score (tied scores move together) plus θ = +∞ (FAR 0, FRR 1); the EER is the
    FAR = FRR crossing of the segment joining the last point with FAR < FRR to the next one.
    Perfect separation gives 0, scores that carry no information (all equal) give 0.5.
    """
    s = np.asarray(scores.detach().cpu() if hasattr(scores, "detach") else scores, dtype=np.float64).ravel()
    t = np.asarray(is_target.detach().cpu() if hasattr(is_target, "detach") else is_target).astype(bool).ravel()
    if s.shape != t.shape:
        raise ValueError(f"scores {s.shape} and is_target {t.shape} must have the same length")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinite values")
    n_t, n_n = int(t.sum()), int((~t).sum())
    if n_t == 0 or n_n == 0:
        raise ValueError(f"EER needs target and non-target pairs, got {n_t} targets and {n_n} non-targets")
    order = np.argsort(-s, kind="stable")
    s, t = s[order], t[order]
    last = np.r_[s[1:] != s[:-1], True]  # last pair of each run of tied scores
    far = np.r_[0.0, np.cumsum(~t)[last] / n_n]  # (M+1,) non-targets accepted
    frr = np.r_[1.0, 1.0 - np.cumsum(t)[last] / n_t]  # (M+1,) targets rejected
    i = int(np.argmax(far >= frr))  # first point at or past the crossing (exists: the last has FRR 0)
    if i == 0:
        return 0.0
    d0, d1 = frr[i - 1] - far[i - 1], frr[i] - far[i]  # > 0 before, <= 0 at i
    w = d0 / (d0 - d1)
    return float(far[i - 1] + w * (far[i] - far[i - 1]))


def cosine_pairs(emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine scores (P,) and same-label flags (P,) of all U·(U−1)/2 unordered pairs of emb (U, d)."""
    e = torch.as_tensor(emb).double()
    e = e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)
    i, j = torch.triu_indices(e.shape[0], e.shape[0], offset=1)
    lab = torch.as_tensor(labels)
    return (e[i] * e[j]).sum(1), lab[i] == lab[j]


def speaker_eer(emb: torch.Tensor, speakers: torch.Tensor) -> float:
    """EER of cosine scoring over all unordered pairs of utterance embeddings (U, d)."""
    scores, same = cosine_pairs(emb, speakers)
    return eer(scores, same)


@dataclass
class AudioEval:
    """Numbers of `skd eval --audio` (rates in [0, 1])."""

    static_eer: float
    dynamic_eer: float
    full_eer: float  # the whole latent (static + dynamic), for reference
    static_eer_centered: float  # embeddings minus the mean training-utterance embedding, then cosine
    dynamic_eer_centered: float
    speaker_probe_static: float
    speaker_probe_dynamic: float
    content_probe_dynamic: float | None
    content_probe_static: float | None
    speaker_chance: float
    content_chance: float | None
    n_utterances: int
    n_speakers: int
    n_static: int  # eigenvalues in the static set
    k: int
    probe_protocol: str  # "train->test" or "4-fold CV on test"
    coords: str
    fit_batch: int
    extra: dict[str, Any] = field(default_factory=dict)
    swap: dict[str, Any] = field(default_factory=dict)  # see :func:`swap_check`
    # part -> the speaker probe's most frequent mistakes [(true, predicted, count)], train->test probes only
    confusions: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def utterance_embeddings(
    model: KoopmanAE, data: SequenceData, basis: ops.KoopmanBasis, *, coords: Coordinates = "latent"
) -> dict[str, torch.Tensor]:
    """Per-utterance static / dynamic / full embeddings (U, d) and per-utterance labels (U,).

    Chunk embeddings are time-averages of each part; an utterance's embedding is the mean over
    its chunks (``data.utterance``; each sequence is its own utterance when absent).
    """
    z = ops.encode(model, data.batch(torch.arange(len(data))))  # (N, T, k)
    utt = getattr(data, "utterance", None)
    utt = torch.arange(len(data)) if utt is None else utt
    out: dict[str, torch.Tensor] = {}
    for part in ("static", "dynamic", "all"):
        out[part], ids = group_mean(part_embeddings(z, basis, part, coords=coords), utt)
    pick = torch.zeros(int(utt.max()) + 1, dtype=torch.long)
    pick[utt] = torch.arange(len(utt))  # one chunk of each utterance (its chunks share their labels)
    for name, lab in data.labels.items():
        out[f"label:{name}"] = lab[pick[ids]]
    return out


@torch.no_grad()
def swap_check(
    model: KoopmanAE, train: SequenceData, test: SequenceData, basis: ops.KoopmanBasis, *, speaker: str,
    content: str | None, coords: Coordinates = "latent", seed: int = 0,
) -> dict[str, float]:
    """Do decoded swaps carry the donor's voice and the source's words? Chunk-level check.

    Each test chunk i gets a donor chunk j (random, different speaker — and different content
    when labelled). The swap dynamic(i) + static(j) is decoded, re-encoded, and read by linear
    probes fitted on training chunks: the speaker probe on the static embedding should answer
    j's speaker, the content probe on the dynamic embedding i's content. When the test speakers
    do not occur in training (a speaker-disjoint split), the speaker probe is fitted on the
    static embeddings of the unswapped test chunks instead (``speaker_probe`` in the result).
    """
    g = torch.Generator().manual_seed(seed)
    spk = test.labels[speaker]
    con = test.labels[content] if content else None
    n = len(test)
    donor = torch.empty(n, dtype=torch.long)
    for i in range(n):
        ok = spk != spk[i]
        if con is not None:
            ok &= con != con[i]
        cand = torch.nonzero(ok).flatten()
        if len(cand) == 0:
            cand = torch.nonzero(spk != spk[i]).flatten()
        donor[i] = cand[torch.randint(len(cand), (1,), generator=g)]
    z = ops.encode(model, test.batch(torch.arange(n)))  # (N, T, k)
    z_new = ops.encode(model, ops.decode(model, ops.swap_latents(z, z[donor], basis)))
    z_tr = ops.encode(model, train.batch(torch.arange(len(train))))
    emb = {part: part_embeddings(z_new, basis, part, coords=coords) for part in ("static", "dynamic")}
    train_emb = {part: part_embeddings(z_tr, basis, part, coords=coords) for part in ("static", "dynamic")}
    out = {}
    seen = set(spk.tolist()) <= set(train.labels[speaker].tolist())
    if seen:
        probe = LinearProbe().fit(train_emb["static"], train.labels[speaker])
    else:
        probe = LinearProbe().fit(part_embeddings(z, basis, "static", coords=coords), spk)
    out["speaker_probe"] = "train" if seen else "test (unswapped)"
    pred = probe.predict(emb["static"])
    out["speaker_of_static_donor"] = float((pred == spk[donor]).double().mean())
    if con is not None:
        pred = LinearProbe().fit(train_emb["dynamic"], train.labels[content]).predict(emb["dynamic"])
        out["content_of_dynamic_source"] = float((pred == con).double().mean())
    return out


def prediction_confusions(pred: torch.Tensor, y: torch.Tensor, names: tuple[str, ...] = (), k: int = 5
                          ) -> list[tuple[str, str, int]]:
    """The ``k`` most frequent mistakes (true, predicted, count) of predictions ``pred`` (U,)
    against labels ``y`` (U,), by class name when ``names`` covers every class."""
    from .metrics import confusion_matrix, top_confusions

    pred, y = torch.as_tensor(pred).long(), torch.as_tensor(y).long()
    n = max(int(pred.max()), int(y.max())) + 1
    m = confusion_matrix(torch.nn.functional.one_hot(pred, n).double(), y)  # one-hot scores: argmax = pred
    names = tuple(names) if len(names) == n else tuple(str(i) for i in range(n))
    return top_confusions(m, names, k=k)


def _probe(train: dict, test: dict, key: str, part: str) -> tuple[float, str, torch.Tensor | None]:
    """(accuracy, protocol, test predictions or None): fitted on the training utterances when the
    test classes were all seen there, else cross-validated on the test utterances (no predictions)."""
    y_tr, y_te = train[f"label:{key}"], test[f"label:{key}"]
    if set(y_te.tolist()) <= set(y_tr.tolist()):
        pred = torch.as_tensor(LinearProbe().fit(train[part], y_tr).predict(test[part]))
        return float((pred == torch.as_tensor(y_te)).double().mean()), "train->test", pred
    return cv_probe_accuracy(test[part], y_te), "4-fold CV on test", None


def evaluate_audio(
    model: KoopmanAE, cfg: Config, train: SequenceData, test: SequenceData, *, fit_batch: int = 512, seed: int = 0,
    coords: Coordinates = "latent", speaker: str = "speaker", content: str | None = None,
) -> AudioEval:
    """Static / dynamic EER on ``test`` and probe accuracies (probes fitted on ``train`` utterances).

    C is fitted on ``fit_batch`` random training chunks. EERs score raw embeddings by cosine (the
    protocol); the ``*_centered`` EERs first subtract the mean training-utterance embedding (a
    label-free normalisation common in speaker verification). ``content`` defaults to the dataset's
    first dynamic factor (the digit for FSDD); speaker probes fall back to cross-validation on
    the test utterances when test speakers are unseen in training (TIMIT).
    """
    from ..pipelines.basis import BasisSpec, fit_reference_basis

    if speaker not in test.labels:
        raise ValueError(f"the dataset has no {speaker!r} labels (labels: {sorted(test.labels)}); EER needs speakers")
    if content is None:
        dyn = [f.name for f in test.dynamic_factors() if f.name in test.labels]
        content = dyn[0] if dyn else None
    basis = fit_reference_basis(model, train, BasisSpec.from_loss(cfg.loss, fit_batch=fit_batch, seed=seed))
    e_tr = utterance_embeddings(model, train, basis, coords=coords)
    e_te = utterance_embeddings(model, test, basis, coords=coords)
    spk = e_te[f"label:{speaker}"]
    if len(torch.unique(spk)) < 2:
        raise ValueError("EER needs test utterances from at least 2 speakers")
    res_s, protocol, pred_s = _probe(e_tr, e_te, speaker, "static")
    res_d, _, pred_d = _probe(e_tr, e_te, speaker, "dynamic")
    c_dyn = c_sta = c_chance = None
    if content is not None:
        c_dyn = _probe(e_tr, e_te, content, "dynamic")[0]
        c_sta = _probe(e_tr, e_te, content, "static")[0]
        c_chance = chance_level(e_te[f"label:{content}"])
    names = next((f.values for f in test.factors if f.name == speaker), ())
    confusions = {part: prediction_confusions(pred, spk, names)
                  for part, pred in (("static", pred_s), ("dynamic", pred_d)) if pred is not None}
    return AudioEval(
        static_eer=speaker_eer(e_te["static"], spk),
        dynamic_eer=speaker_eer(e_te["dynamic"], spk),
        full_eer=speaker_eer(e_te["all"], spk),
        static_eer_centered=speaker_eer(e_te["static"] - e_tr["static"].mean(0), spk),
        dynamic_eer_centered=speaker_eer(e_te["dynamic"] - e_tr["dynamic"].mean(0), spk),
        speaker_probe_static=res_s, speaker_probe_dynamic=res_d,
        content_probe_dynamic=c_dyn, content_probe_static=c_sta,
        speaker_chance=chance_level(spk), content_chance=c_chance,
        n_utterances=int(spk.shape[0]), n_speakers=int(len(torch.unique(spk))),
        n_static=int(basis.static.sum()), k=int(basis.static.shape[0]), probe_protocol=protocol, coords=coords,
        fit_batch=min(fit_batch, len(train)), extra={"content_factor": content},
        swap=swap_check(model, train, test, basis, speaker=speaker, content=content, coords=coords, seed=seed),
        confusions=confusions,
    )
