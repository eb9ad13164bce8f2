"""Swap-consistency loss (skd.model.swap): the pure functions, the forward pass and training."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import tiny_config
from skd.config import ConfigError, LossConfig, load_config
from skd.data import load_dataset
from skd.training.loop import build_model
from skd.model.autoencoder import ModelOutput
from skd.model.independence import static_projector
from skd.model.losses import compute_losses
from skd.model.swap import split_parts, swap_back_latents, swap_consistency, swap_partner, swapped_latents
from skd.training.loop import train


def _latents(seed: int = 0, b: int = 16, t: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """z (B, T, 4) of a block-diagonal C: a static pair at λ = 1, a rotating pair at |λ| = 0.5,
    then mixed by a random invertible map (so the split is oblique, not coordinate-aligned)."""
    g = torch.Generator().manual_seed(seed)
    rot = 0.5 * torch.tensor([[0.6, -0.8], [0.8, 0.6]], dtype=torch.float64)
    C0 = torch.block_diag(torch.eye(2, dtype=torch.float64), rot)
    m = torch.randn(4, 4, generator=g, dtype=torch.float64) + 3 * torch.eye(4, dtype=torch.float64)
    C = torch.linalg.solve(m, C0 @ m)  # z_t m^-1 evolves by C0: z_{t+1} = z_t C
    zs = [torch.randn(b, 4, generator=g, dtype=torch.float64)]
    for _ in range(t - 1):
        zs.append(zs[-1] @ C)
    return torch.stack(zs, 1), C


@pytest.mark.parametrize("b", [1, 2, 5, 32])
def test_partner_is_a_derangement(b) -> None:
    p = swap_partner(b)
    assert sorted(p.tolist()) == list(range(b))
    assert b == 1 or bool((p != torch.arange(b)).all())


@pytest.mark.parametrize("seed", range(4))
def test_split_and_swap_keep_the_parts(seed) -> None:
    z, C = _latents(seed)
    proj = static_projector(C, 2, "ball")
    assert proj is not None
    zs, zd = split_parts(z, proj)
    torch.testing.assert_close(zs + zd, z)
    torch.testing.assert_close(zs, zs[:, :1].expand_as(zs))  # the static part is constant in time
    p = swap_partner(z.shape[0])
    zt = swapped_latents(z, proj, p)
    ts, td = split_parts(zt, proj)
    torch.testing.assert_close(ts, zs[p])  # the swap holds the donor's static part ...
    torch.testing.assert_close(td, zd)  # ... and its own dynamic part
    assert max(swap_consistency(z, zt, proj, p)) < 1e-20  # a perfect round trip costs nothing


@pytest.mark.parametrize("seed", range(4))
def test_loss_reads_which_part_went_wrong(seed) -> None:
    z, C = _latents(seed)
    proj = static_projector(C, 2, "ball")
    p = swap_partner(z.shape[0])
    zs, zd = split_parts(z, proj)
    keep_own_static = z  # a decoder that ignores the swap: the static target misses entirely
    lost_dynamic = zs[p] + zd[p]  # the whole donor: the dynamic target misses
    miss = swap_consistency(z, keep_own_static, proj, p)
    assert miss.static > 0.5 and miss.dynamic < 1e-20  # the dynamic part is right
    miss = swap_consistency(z, lost_dynamic, proj, p)
    assert miss.static < 1e-20 and miss.dynamic > 0.5
    # scale-free: the same miss on latents scaled by 10 costs the same
    for a, b in zip(swap_consistency(10 * z, 10 * keep_own_static, proj, p), swap_consistency(z, keep_own_static, proj, p)):
        torch.testing.assert_close(a, b)


def test_gradient_flows_only_through_the_cycle() -> None:
    z, C = _latents(1)
    proj = static_projector(C, 2, "ball")
    p = swap_partner(z.shape[0])
    zg = z.clone().requires_grad_(True)
    cyc = (z + 0.1).requires_grad_(True)
    sum(swap_consistency(zg, cyc, proj, p)).backward()
    assert zg.grad is None and torch.isfinite(cyc.grad).all() and cyc.grad.abs().sum() > 0


def test_loss_term_is_added_and_checked() -> None:
    z, C = _latents(2)
    proj = static_projector(C, 2, "ball")
    p = swap_partner(z.shape[0])
    x = torch.zeros(z.shape[0], 8, 3)
    out = ModelOutput(z=z.float(), z_pred=z.float(), C=C, x_rec=x, x_pred=x, projector=proj, partner=p,
                      z_cycle=z.float())
    base = LossConfig(static_size=2, w_eig=0.0)
    t0, p0 = compute_losses(x, out, base)
    t1, p1 = compute_losses(x, out, dataclasses.replace(base, w_swap_static=0.5, w_swap_dynamic=0.25))
    assert "swap_static" not in p0 and p1["swap_static"] > 0.5 and p1["swap_dynamic"] < 1e-6
    torch.testing.assert_close(t1, t0 + 0.5 * p1["swap_static"] + 0.25 * p1["swap_dynamic"])
    no_split = dataclasses.replace(out, projector=None, partner=None, z_cycle=None)  # no separable static set
    t2, p2 = compute_losses(x, no_split, dataclasses.replace(base, w_swap_static=0.5))
    assert p2["swap_static"] == 0 and torch.equal(t2, t0)
    for key in ("w_swap_static", "w_swap_dynamic"):
        with pytest.raises(ConfigError, match="loss weights must be >= 0"):
            load_config(None, [f"loss.{key}=-1"])


def _tiny_model_and_frames(seed: int) -> tuple[torch.nn.Module, torch.Tensor]:
    """An untrained tiny model in eval mode and random frames x (6, 8, 3, 32, 32)."""
    torch.manual_seed(seed)
    return build_model(tiny_config()).eval(), torch.rand(6, 8, 3, 32, 32)


def test_forward_decodes_and_reencodes_the_swaps() -> None:
    model, x = _tiny_model_and_frames(0)
    with torch.no_grad():
        plain = model(x)
        out = model(x, swap=(3, "ball"))
    assert plain.z_cycle is None
    torch.testing.assert_close(out.x_rec, plain.x_rec)  # the extra decode changes nothing else
    if out.projector is not None:  # an untrained C may have no separable static set
        assert out.z_cycle.shape == out.z.shape and torch.isfinite(out.z_cycle).all()
        zt = swapped_latents(out.z, out.projector, out.partner)
        torch.testing.assert_close(out.z_cycle, model.encode(model.decode(zt)))


def test_training_with_the_term_runs(tmp_path) -> None:
    cfg = tiny_config(max_steps=3)
    cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, w_swap_dynamic=0.1))
    tr, _ = load_dataset(cfg.data)
    res = train(cfg, tmp_path / "r", tr, progress=False)
    assert all(k in res.last and res.last[k] == res.last[k] for k in ("swap_static", "swap_dynamic"))  # logged, not NaN


@pytest.mark.parametrize("seed", range(3))
def test_swapping_back_a_perfect_round_trip_gives_the_latents_back(seed) -> None:
    z, C = _latents(seed, b=7)
    proj = static_projector(C, 2, "ball")
    for p in (swap_partner(z.shape[0]), torch.randperm(z.shape[0], generator=torch.Generator().manual_seed(seed))):
        zt = swapped_latents(z, proj, p)  # a perfect decoder and encoder read the swap back exactly
        torch.testing.assert_close(swap_back_latents(zt, proj, p), z)
        # a decoder that ignores the swap (keeps each sequence's own static part) is caught: the
        # back latents then hold the static part of the wrong sequence
        assert not torch.allclose(swap_back_latents(z, proj, swap_partner(z.shape[0])), z)


def test_swap_back_term_is_the_mse_to_the_real_frames() -> None:
    z, C = _latents(3)
    proj = static_projector(C, 2, "ball")
    p = swap_partner(z.shape[0])
    x = torch.rand(z.shape[0], 8, 3)
    back = x + 0.1
    out = ModelOutput(z=z.float(), z_pred=z.float(), C=C, x_rec=x, x_pred=x, projector=proj, partner=p,
                      z_cycle=z.float(), x_back=back)
    base = LossConfig(static_size=2, w_eig=0.0)
    t0, _ = compute_losses(x, out, base)
    t1, p1 = compute_losses(x, out, dataclasses.replace(base, w_swap_back=2.0))
    torch.testing.assert_close(p1["swap_back"], torch.tensor(0.01), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(t1, t0 + 2.0 * p1["swap_back"])
    t2, p2 = compute_losses(x, dataclasses.replace(out, x_back=None), dataclasses.replace(base, w_swap_back=2.0))
    assert p2["swap_back"] == 0 and torch.equal(t2, t0)  # no separable static set: nothing swapped
    with pytest.raises(ConfigError, match="loss weights must be >= 0"):
        load_config(None, ["loss.w_swap_back=-1"])


def test_forward_decodes_the_swaps_put_back_together() -> None:
    model, x = _tiny_model_and_frames(1)
    with torch.no_grad():
        out = model(x, swap=(3, "ball"), swap_back=True)
        plain = model(x, swap=(3, "ball"))
    assert plain.x_back is None
    if out.projector is not None:
        torch.testing.assert_close(out.z_cycle, plain.z_cycle)
        zb = swap_back_latents(out.z_cycle, out.projector, out.partner)
        torch.testing.assert_close(out.x_back, model.decode(zb))


def test_training_with_swap_back_alone_runs(tmp_path) -> None:
    cfg = tiny_config(max_steps=3)
    cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, w_swap_back=1.0))
    tr, _ = load_dataset(cfg.data)
    res = train(cfg, tmp_path / "r", tr, progress=False)
    assert "swap_back" in res.last and res.last["swap_back"] == res.last["swap_back"]  # logged, not NaN


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_a_frozen_reader_gives_the_same_latents_and_no_encoder_gradient(mode) -> None:
    model, x = _tiny_model_and_frames(2)
    model.train(mode == "train")
    x = x.requires_grad_(True)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    z_live = model.encode(x)
    after_live = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    z_frozen = model.encode(x, frozen=True)
    torch.testing.assert_close(z_frozen, z_live)
    for k, v in model.state_dict().items():  # BatchNorm statistics move exactly as in a plain call
        torch.testing.assert_close(v, after_live[k])
    encoder = [p for n, p in model.named_parameters() if n.startswith(("frame_encoder.", "enc_lstm."))]
    assert encoder and any(n.startswith("enc_lstm.") for n, _ in model.named_parameters())
    z_frozen.square().sum().backward()
    assert all(p.grad is None for p in encoder)
    assert x.grad is not None and x.grad.abs().sum() > 0  # the frames (a decoder's output) still get one
    model.zero_grad(set_to_none=True)
    z_live = model.encode(x)
    z_live.square().sum().backward()
    assert all(p.grad is not None for p in encoder)  # the plain call does reach them: the check can fail


def test_a_frozen_reader_changes_only_the_gradient_of_the_reading_pass() -> None:
    def encoder_grads(frozen: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model, x = _tiny_model_and_frames(3)
        out = model(x, swap=(3, "ball"), frozen_reader=frozen)
        if out.projector is None:
            pytest.skip("the untrained C has no separable static set")
        miss = swap_consistency(out.z, out.z_cycle, out.projector, out.partner)
        (miss.static + miss.dynamic).backward()
        return out.z_cycle.detach(), [p.grad.clone() for n, p in model.named_parameters()
                                      if n.startswith("frame_encoder.") and p.grad is not None]

    z_trained, g_trained = encoder_grads(False)
    z_frozen, g_frozen = encoder_grads(True)
    torch.testing.assert_close(z_frozen, z_trained)  # the same latents are read
    # the encoder still gets the gradient of the swaps' inputs (z), but not that of reading them
    assert len(g_frozen) == len(g_trained)
    assert max((a - b).abs().max().item() for a, b in zip(g_trained, g_frozen)) > 1e-6


def test_an_unknown_swap_reader_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="swap_reader"):
        load_config(overrides=["loss.swap_reader=both"])
