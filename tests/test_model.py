"""Model shapes, pluggable parts and disentangling operations."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from skd.pipelines import ops
from skd.config import LossConfig, ModelConfig
from skd.koopman import eig_sorted, select_static
from skd.koopman.basis import _two_others
from skd.model.losses import compute_losses
from skd.model import KoopmanAE


@pytest.mark.parametrize("size,width,lstm", [(64, 4, True), (32, 4, False), (32, 8, True)])
def test_conv_model_shapes(size: int, width: int, lstm: bool) -> None:
    m = KoopmanAE(ModelConfig(image_size=size, width=width, k=6, lstm=lstm))
    x = torch.rand(3, 5, 3, size, size)
    out = m(x)
    assert out.z.shape == (3, 5, 6) and out.z_pred.shape == (3, 5, 6)
    assert out.C.shape == (6, 6) and out.C.dtype == torch.float64
    assert out.x_rec.shape == x.shape and out.x_pred.shape == x.shape
    assert torch.equal(out.z_pred[:, 0], out.z[:, 0])  # frame 0 is copied
    assert out.x_rec.min() >= 0 and out.x_rec.max() <= 1  # sigmoid output


def test_paper_size_parameter_count() -> None:
    m = KoopmanAE(ModelConfig(image_size=64, width=32, k=40))
    n = sum(p.numel() for p in m.parameters())
    assert 1.6e6 < n < 1.9e6  # METHOD.md: about 1.74 M for encoder + decoder


def test_pooled_channels_do_not_see_where_a_feature_is() -> None:
    """model.pooled: the last P channels read the feature map averaged over positions, so any
    permutation of the map's positions leaves them unchanged and moves the 4×4 head's channels."""
    from skd.model.nets.conv import ConvEncoder

    enc = ConvEncoder(image_size=32, width=4, k=10, pooled=3).eval()
    h = torch.randn(5, 32, 4, 4)  # what the trunk (3 stages, width 4 -> 32 channels) hands on
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    h_perm = h.flatten(2)[:, :, perm].reshape(h.shape)
    enc.net = nn.Identity()  # feed the map directly
    a, b = enc(h), enc(h_perm)
    assert a.shape == (5, 10)
    torch.testing.assert_close(a[:, 7:], b[:, 7:])
    assert not torch.allclose(a[:, :7], b[:, :7])


def test_pooled_encoder_codes_and_gradients() -> None:
    m = KoopmanAE(ModelConfig(image_size=32, width=4, k=8, pooled=3))
    x = torch.rand(2, 4, 3, 32, 32)
    out = m(x)
    assert out.z.shape == (2, 4, 8) and out.z.abs().max() < 1
    out.x_rec.square().mean().backward()
    enc = m.frame_encoder
    assert enc.pool_head[1].weight.grad.abs().sum() > 0 and enc.head[0].weight.grad.abs().sum() > 0
    plain = KoopmanAE(ModelConfig(image_size=32, width=4, k=8))  # pooled = 0: the paper's encoder
    assert not hasattr(plain.frame_encoder, "pool_head")
    n_plain = sum(p.numel() for p in plain.parameters())
    assert sum(p.numel() for p in m.parameters()) == n_plain - 3 * 32 * 16 + 3 * 32  # 4×4 head -> 1×1 for 3 channels


@pytest.mark.parametrize("pooled", [-1, 8, 9])
def test_pooled_out_of_range_is_a_config_error(pooled: int) -> None:
    from skd.config import ConfigError

    with pytest.raises(ConfigError, match="model.pooled"):
        ModelConfig(k=8, pooled=pooled)


def test_mlp_model_shapes_and_linear_output() -> None:
    m = KoopmanAE(ModelConfig(kind="mlp", input_dim=7, hidden=16, k=5))
    x = torch.randn(4, 6, 7) * 10
    out = m(x)
    assert out.x_rec.shape == (4, 6, 7) and out.z.shape == (4, 6, 5)
    assert out.x_rec.abs().max() > 1.0 or out.x_rec.min() < 0  # not squashed to (0, 1)


def test_pluggable_frame_networks() -> None:
    enc = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 6), nn.Tanh())
    dec = nn.Sequential(nn.Linear(6, 3 * 32 * 32), nn.Unflatten(1, (3, 32, 32)), nn.Sigmoid())
    m = KoopmanAE(ModelConfig(image_size=32, k=6), frame_encoder=enc, frame_decoder=dec)
    assert m(torch.rand(2, 4, 3, 32, 32)).x_pred.shape == (2, 4, 3, 32, 32)


def test_check_input_names_shape() -> None:
    m = KoopmanAE(ModelConfig(image_size=32, width=4, k=6))
    with pytest.raises(ValueError, match=r"does not match \(B, T>=2, 3, 32, 32\)"):
        m.check_input(torch.rand(2, 4, 3, 64, 64))


def test_losses_breakdown_and_total() -> None:
    m = KoopmanAE(ModelConfig(image_size=32, width=4, k=6))
    x = torch.rand(4, 5, 3, 32, 32)
    cfg = LossConfig(static_size=2)
    for form in ("reference", "paper"):
        total, parts = compute_losses(x, m(x), LossConfig(static_size=2, ambient_pred=form))  # type: ignore[arg-type]
        assert {"rec", "pred_latent", "pred_ambient", "eig", "eig_static", "eig_dynamic"} <= set(parts)
        expect = cfg.w_rec * parts["rec"] + cfg.w_pred * (parts["pred_latent"] + parts["pred_ambient"]) + cfg.w_eig * parts["eig"]
        assert torch.allclose(total, expect)
        total.backward()
        assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


# ----------------------------------------------------------------------------- operations
def _basis(k: int = 6, seed: int = 0, ks: int = 2) -> ops.KoopmanBasis:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(16, 6, k, generator=g)
    return ops.fit_basis(z, ks)


def test_swap_all_static_gives_other_and_none_is_identity() -> None:
    basis = _basis()
    g = torch.Generator().manual_seed(1)
    za, zb = torch.randn(2, 3, 5, 6, generator=g)
    everything = ops.KoopmanBasis(basis.C, basis.eig, torch.ones_like(basis.static))
    nothing = ops.KoopmanBasis(basis.C, basis.eig, torch.zeros_like(basis.static))
    assert torch.allclose(ops.swap_latents(za, zb, everything), zb, atol=1e-5)
    assert torch.allclose(ops.swap_latents(za, zb, nothing), za, atol=1e-5)
    # a proper split takes the static part of b and the dynamic part of a
    s = ops.swap_latents(za, zb, basis)
    assert torch.allclose(basis.project(s, basis.static), basis.project(zb, basis.static), atol=1e-5)
    assert torch.allclose(basis.project(s, basis.dynamic), basis.project(za, basis.dynamic), atol=1e-5)


def test_sampling_keeps_the_other_part_and_is_convex() -> None:
    basis = _basis()
    g = torch.Generator().manual_seed(2)
    z = torch.randn(7, 5, 6, generator=g)
    s = ops.sample_part(z, basis, "static", generator=torch.Generator().manual_seed(3))
    assert torch.allclose(basis.project(s, basis.dynamic), basis.project(z, basis.dynamic), atol=1e-5)
    assert not torch.allclose(basis.project(s, basis.static), basis.project(z, basis.static), atol=1e-3)
    # reproducible with the same generator, different with another
    s2 = ops.sample_part(z, basis, "static", generator=torch.Generator().manual_seed(3))
    s3 = ops.sample_part(z, basis, "static", generator=torch.Generator().manual_seed(4))
    assert torch.equal(s, s2) and not torch.equal(s, s3)
    # identical batch members: any convex combination of them is that member
    same = z[:1].expand(5, -1, -1).contiguous()
    assert torch.allclose(ops.sample_part(same, basis, "dynamic"), same, atol=1e-5)


def test_two_others_never_pick_self() -> None:
    for n in (2, 3, 10):
        j, l_ = _two_others(n, torch.Generator().manual_seed(n), torch.device("cpu"))
        i = torch.arange(n)
        assert (j != i).all() and (l_ != i).all()
        if n > 2:
            assert (j != l_).all()
    with pytest.raises(ValueError, match="at least 2"):
        _two_others(1, None, torch.device("cpu"))


def test_multi_step_prediction_follows_C() -> None:
    basis = _basis()
    z0 = torch.randn(3, 6, dtype=torch.float64)
    traj = ops.predict_ahead(z0, basis.C, 4)
    assert traj.shape == (3, 5, 6)
    assert torch.allclose(traj[:, 4], z0 @ torch.linalg.matrix_power(basis.C, 4))


def test_model_level_ops_shapes() -> None:
    m = KoopmanAE(ModelConfig(image_size=32, width=4, k=6)).eval()
    x = torch.rand(6, 5, 3, 32, 32)
    basis = ops.fit_basis(ops.encode(m, x), 2)
    assert ops.reconstruct(m, x).shape == x.shape
    assert ops.swap(m, x[:3], x[3:], basis).shape == (3, 5, 3, 32, 32)
    assert ops.sample(m, x, basis, "dynamic", generator=torch.Generator().manual_seed(0)).shape == x.shape
    assert ops.predict(m, x, basis, steps=7).shape == (6, 8, 3, 32, 32)
    mask = select_static(eig_sorted(basis.C), 2)
    assert torch.equal(mask, basis.static)
