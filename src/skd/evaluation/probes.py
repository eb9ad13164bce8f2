"""Static / dynamic embeddings of a trained model and linear probes on them.

Embeddings (docs/EVALUATION.md §4): with the Koopman basis fitted on a reference batch, the static
embedding of a sequence is the time-average of its static part, the dynamic embedding the
time-average of its dynamic part. Two coordinate systems:

- ``"latent"`` (default): the projections Re(A[:, S] U[S, :]) in latent space (k numbers). They do
  not depend on how the eigenvectors are scaled, so cosine scores are basis-independent.
- ``"eigen"``: the eigen-coordinates A[:, S] themselves, real and imaginary parts (2|S| numbers).

``pool="flat"`` keeps the whole sequence (T·k numbers) instead of averaging, for factors that
live in the phase of an oscillation (a time-average of a full period is zero).

A linear probe is a multinomial logistic regression on standardised features, fitted by
full-batch L-BFGS in float64 with an L2 penalty — deterministic, no scikit-learn needed.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from ..koopman import to_eigen
from ..pipelines.ops import KoopmanBasis

Coordinates = Literal["latent", "eigen"]
Pool = Literal["mean", "flat"]


def part_embeddings(
    z: torch.Tensor, basis: KoopmanBasis, part: str, *, coords: Coordinates = "latent", pool: Pool = "mean"
) -> torch.Tensor:
    """Embeddings (N, d) float64 of the ``part`` ('static', 'dynamic' or 'all') of latents z (N, T, k)."""
    if part not in ("static", "dynamic", "all"):
        raise ValueError(f"part={part!r} must be 'static', 'dynamic' or 'all'")
    if coords not in ("latent", "eigen"):
        raise ValueError(f"coords={coords!r} must be 'latent' or 'eigen'")
    if pool not in ("mean", "flat"):
        raise ValueError(f"pool={pool!r} must be 'mean' or 'flat'")
    z = z.double()
    if part == "all":
        e = z  # (N, T, k)
    elif coords == "latent":
        mask = basis.static if part == "static" else basis.dynamic
        e = basis.project(z, mask)  # (N, T, k)
    else:
        mask = basis.static if part == "static" else basis.dynamic
        a = to_eigen(z, basis.eig)[..., mask]  # (N, T, |J|) complex
        e = torch.cat([a.real, a.imag], dim=-1)  # (N, T, 2|J|)
    return e.mean(1) if pool == "mean" else e.reshape(e.shape[0], -1)


def group_mean(x: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average rows of x (N, d) that share a group id (N,): returns (G, d) and the sorted ids (G,)."""
    ids, inv = torch.unique(groups, return_inverse=True)
    sums = torch.zeros(len(ids), x.shape[1], dtype=x.dtype).index_add_(0, inv, x)
    counts = torch.zeros(len(ids), dtype=x.dtype).index_add_(0, inv, torch.ones_like(inv, dtype=x.dtype))
    return sums / counts[:, None], ids


class LinearProbe:
    """Multinomial logistic regression on standardised features (fit with :meth:`fit`)."""

    def __init__(self, *, l2: float = 1e-3, max_iter: int = 200) -> None:
        if l2 < 0:
            raise ValueError(f"l2={l2} must be >= 0")
        self.l2, self.max_iter = l2, max_iter
        self.classes: torch.Tensor | None = None

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> "LinearProbe":
        x, y = torch.as_tensor(x).double(), torch.as_tensor(y).long()
        if x.ndim != 2 or y.shape != (x.shape[0],):
            raise ValueError(f"probe needs x (N, d) and y (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
        self.classes, yi = torch.unique(y, return_inverse=True)
        self.mu, self.sd = x.mean(0), x.std(0).clamp_min(1e-8) if x.shape[0] > 1 else torch.ones(x.shape[1], dtype=x.dtype)
        xs = (x - self.mu) / self.sd
        k = len(self.classes)
        self.W = torch.zeros(x.shape[1], k, dtype=torch.float64, requires_grad=True)
        self.b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([self.W, self.b], lr=1.0, max_iter=self.max_iter, tolerance_grad=1e-9,
                                tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(xs @ self.W + self.b, yi) + self.l2 * (self.W ** 2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        return self

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        if self.classes is None:
            raise RuntimeError("probe is not fitted")
        xs = (torch.as_tensor(x).double() - self.mu) / self.sd
        return self.classes[(xs @ self.W + self.b).argmax(1)]


def probe_accuracy(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                   *, l2: float = 1e-3) -> float:
    """Test accuracy of a linear probe fitted on the training embeddings."""
    pred = LinearProbe(l2=l2).fit(x_train, y_train).predict(x_test)
    return float((pred == torch.as_tensor(y_test)).double().mean())


def cv_probe_accuracy(x: torch.Tensor, y: torch.Tensor, *, folds: int = 4, seed: int = 0, l2: float = 1e-3) -> float:
    """Cross-validated probe accuracy: stratified ``folds``-fold split of (x, y), pooled over folds.

    For test sets whose classes are not in the training data (TIMIT's core-test speakers).
    """
    y = torch.as_tensor(y).long()
    g = torch.Generator().manual_seed(seed)
    fold = torch.empty_like(y)
    for c in torch.unique(y):  # deal each class's members round-robin over the folds, shuffled
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        fold[idx] = (torch.arange(len(idx)) + int(torch.randint(0, folds, (1,), generator=g))) % folds
    correct = 0
    for f in range(folds):
        te, tr = fold == f, fold != f
        if te.any() and tr.any():
            pred = LinearProbe(l2=l2).fit(x[tr], y[tr]).predict(x[te])
            correct += int((pred == y[te]).sum())
    return correct / len(y)


def chance_level(y: torch.Tensor) -> float:
    """Accuracy of always answering the most frequent class."""
    counts = np.bincount(torch.as_tensor(y).numpy() - int(torch.as_tensor(y).min()))
    return float(counts.max() / counts.sum())


def factor_probes(
    model, loss, train, test, *, fit_batch: int = 512, seed: int = 0, pool: Pool = "mean", coords: Coordinates = "latent",
) -> dict[str, dict[str, float | str]]:
    """For every labelled factor: probe accuracy from the static and from the dynamic embeddings.

    ``loss``: the run's loss config (its static set). Probes are fitted on ``train`` sequences and scored on ``test``; C is fitted on ``fit_batch``
    random training sequences. A disentangled model reads static factors from the static part
    and dynamic factors from the dynamic part, and is near chance the other way round.
    Returns ``{factor: {"kind", "static", "dynamic", "chance"}}``.
    """
    from ..pipelines import ops
    from ..pipelines.basis import BasisSpec, fit_reference_basis

    basis = fit_reference_basis(model, train, BasisSpec.from_loss(loss, fit_batch=fit_batch, seed=seed))
    z_tr = ops.encode(model, train.batch(torch.arange(len(train))))
    z_te = ops.encode(model, test.batch(torch.arange(len(test))))
    emb = {part: (part_embeddings(z_tr, basis, part, coords=coords, pool=pool),
                  part_embeddings(z_te, basis, part, coords=coords, pool=pool)) for part in ("static", "dynamic")}
    out: dict[str, dict[str, float | str]] = {}
    for f in train.factors:
        if f.name not in train.labels or f.name not in test.labels:
            continue
        y_tr, y_te = train.labels[f.name], test.labels[f.name]
        out[f.name] = {"kind": f.kind, "chance": chance_level(y_te)}
        for part, (e_tr, e_te) in emb.items():
            out[f.name][part] = probe_accuracy(e_tr, y_tr, e_te, y_te)
    return out
