"""Losses: criteria, gradients through eigenvalues, the named breakdown."""
from __future__ import annotations

import pytest
import torch

from skd.config import LossConfig
from skd.koopman import eig_sorted
from skd.losses import dynamic_term, spectral_loss, static_term


def test_guarded_eig_gradient_matches_autograd_on_generic_matrix() -> None:
    g = torch.Generator().manual_seed(0)
    C = torch.randn(6, 6, generator=g, dtype=torch.float64, requires_grad=True)
    v = eig_sorted(C).values
    ((v.real - 0.3) ** 2 + v.imag**2).sum().backward()
    C2 = C.detach().clone().requires_grad_(True)
    v2 = torch.linalg.eigvals(C2)
    ((v2.real - 0.3) ** 2 + v2.imag**2).sum().backward()
    assert torch.allclose(C.grad, C2.grad, atol=1e-8)


@pytest.mark.parametrize(
    "C",
    [
        torch.eye(5, dtype=torch.float64),  # eigenvalue 1 repeated 5 times
        torch.block_diag(torch.eye(3, dtype=torch.float64), torch.tensor([[0.2, 0.5], [-0.5, 0.2]], dtype=torch.float64)),
        torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0]], dtype=torch.float64),  # Jordan block at 1
        torch.tensor([[1.0, 1e-12], [0.0, 1.0]], dtype=torch.float64),  # nearly defective
    ],
)
@pytest.mark.parametrize("static", ["ball", "norm", "real"])
@pytest.mark.parametrize("dynamic", ["real", "thresh", "strict", "ball"])
def test_spectral_loss_gradient_finite_with_coinciding_eigenvalues(C: torch.Tensor, static: str, dynamic: str) -> None:
    C = C.clone().requires_grad_(True)
    cfg = LossConfig(static_size=1, static_criterion=static, dynamic_criterion=dynamic)  # type: ignore[arg-type]
    loss, parts = spectral_loss(C, cfg)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(C.grad).all()
    assert set(parts) == {"eig_static", "eig_dynamic"}


def test_static_terms_zero_exactly_at_one_and_positive_elsewhere() -> None:
    ones = torch.ones(3, dtype=torch.complex128)
    other = torch.tensor([0.5 + 0.2j, 1.1 + 0j], dtype=torch.complex128)
    for crit in ("ball", "norm", "real"):
        assert float(static_term(ones, crit)) == 0.0
        assert float(static_term(other, crit)) > 0.0


def test_dynamic_terms_penalise_only_near_one() -> None:
    near = torch.tensor([0.95 + 0.0j], dtype=torch.complex128)
    far = torch.tensor([0.1 + 0.1j], dtype=torch.complex128)
    for crit in ("real", "thresh", "ball"):
        assert float(dynamic_term(near, crit)) > 0.0
        assert float(dynamic_term(far, crit)) == 0.0
    # strict pulls |λ|² to ε²: zero on the circle |λ| = ε only
    on = torch.tensor([0.5 + 0.0j], dtype=torch.complex128)
    assert float(dynamic_term(on, "strict", eps=0.5)) == pytest.approx(0.0, abs=1e-15)
    assert float(dynamic_term(near, "strict")) > 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spectral_loss_decreases_under_gradient_descent(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    C = (0.5 * torch.randn(8, 8, generator=g, dtype=torch.float64)).requires_grad_(True)
    cfg = LossConfig(static_size=2)
    opt = torch.optim.SGD([C], lr=0.05)
    first = None
    for _ in range(200):
        loss, _ = spectral_loss(C, cfg)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    # at least 5x lower (measured 10-145x on two CPUs; LAPACK's path decides the exact value)
    assert spectral_loss(C, cfg)[0].item() < 0.2 * first


def test_unknown_criterion_raises() -> None:
    with pytest.raises(ValueError, match="static criterion"):
        static_term(torch.ones(2, dtype=torch.complex128), "bogus")
    with pytest.raises(ValueError, match="dynamic criterion"):
        dynamic_term(torch.ones(2, dtype=torch.complex128), "bogus")


def test_linear_cka_oracles() -> None:
    from skd.losses import linear_cka

    g = torch.Generator().manual_seed(0)
    a = torch.randn(500, 4, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    assert abs(float(linear_cka(a, 3.0 * a @ q)) - 1.0) < 1e-9  # orthogonal transform and scale: 1
    b = torch.randn(500, 6, generator=g, dtype=torch.float64)
    assert float(linear_cka(a, b)) < 0.02  # independent: ~0
    mixed = float(linear_cka(a, torch.cat([a[:, :1], b], 1)))
    assert 0.05 < mixed < 0.9


def test_independence_term_pulls_a_shared_signal_out_of_the_dynamic_part() -> None:
    from skd.losses import independence_term

    g = torch.Generator().manual_seed(1)
    k, T, B = 4, 6, 64
    C = torch.diag(torch.tensor([1.0, 1.0, 0.3, -0.4], dtype=torch.float64))  # coordinates 0, 1 static
    voice = torch.randn(B, 1, generator=g, dtype=torch.float64)
    z = torch.randn(B, T, k, generator=g, dtype=torch.float64) * 0.1
    z[:, :, 0] += voice
    z_leak = z.clone()
    z_leak[:, :, 2] += voice  # the same voice also in a dynamic coordinate
    cfg = LossConfig(static_size=2)
    clean, leak = float(independence_term(z, C, cfg)), independence_term(z_leak.requires_grad_(True), C, cfg)
    assert clean < 0.2 < float(leak.detach())
    leak.backward()
    assert torch.isfinite(z_leak.grad).all() and float(z_leak.grad[:, :, 2].abs().sum()) > 0
    assert float(independence_term(z, C * float("nan"), cfg)) == 0.0


def test_w_indep_adds_a_named_part() -> None:
    from types import SimpleNamespace

    from skd.losses import compute_losses

    g = torch.Generator().manual_seed(2)
    x = torch.randn(8, 5, 3, generator=g)
    z = torch.randn(8, 5, 4, generator=g)
    out = SimpleNamespace(x_rec=x + 0.1, x_pred=x, z=z, z_pred=z, C=torch.diag(torch.tensor([1.0, 0.9, 0.2, 0.1])))
    off, parts_off = compute_losses(x, out, LossConfig(static_size=1))
    on, parts = compute_losses(x, out, LossConfig(static_size=1, w_indep=2.0))
    assert "indep" not in parts_off and torch.isclose(on, off + 2.0 * parts["indep"])
