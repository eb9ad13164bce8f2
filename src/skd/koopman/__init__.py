"""Layer 2, koopman: the Koopman operator as pure tensor math (no networks, no data).

Latents are rows: z[:, t+1] ≈ z[:, t] @ C. ``operator``: least-squares fit of C, the sorted
eigen-decomposition, the static set, eigen-coordinates and projections. ``subspace``: a stable
real basis of the static subspace. ``basis``: :class:`KoopmanBasis` (C, its eigenbasis and the
static/dynamic split) and the latent-level swap and sampling.
"""
from .operator import (
    EigSorted, Reduce, StaticCriterion, component_scores, eig_sorted, fit_koopman, from_eigen, normal_equations,
    predict_latents, project, select_static, solve_normal, split_past_future, to_eigen,
)
from .subspace import static_coordinates
from .basis import KoopmanBasis, fit_basis, predict_ahead, sample_part, swap_latents

__all__ = [
    "EigSorted", "Reduce", "StaticCriterion", "component_scores", "eig_sorted", "fit_koopman", "from_eigen",
    "normal_equations", "predict_latents", "project", "select_static", "solve_normal", "split_past_future", "to_eigen",
    "static_coordinates", "KoopmanBasis", "fit_basis", "predict_ahead", "sample_part", "swap_latents",
]
