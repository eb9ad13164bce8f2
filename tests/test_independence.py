"""Static/dynamic independence loss (skd.model.independence) and fine-tuning with --init-from."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from conftest import tiny_config
from skd.cli.main import main
from skd.config import ConfigError, LossConfig, load_config
from skd.data import load_dataset
from skd.files.checkpoint import load_checkpoint
from skd.model.independence import linear_cka, static_dynamic_dependence, static_projector
from skd.training.loop import train


def _pair(seed: int, n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g, dtype=torch.float64), torch.randn(n, 20, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("seed", range(6))
def test_cka_symmetric_and_invariant(seed) -> None:
    a, b = _pair(seed)
    b = b + a @ torch.randn(6, 20, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)  # dependent
    q = torch.linalg.qr(torch.randn(20, 20, generator=torch.Generator().manual_seed(seed + 99), dtype=torch.float64))[0]
    v = linear_cka(a, b)
    assert 0.2 < v <= 1.0
    torch.testing.assert_close(linear_cka(b, a), v)
    torch.testing.assert_close(linear_cka(3.0 * a, (b @ q) * 0.01), v)
    q6 = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(seed + 7), dtype=torch.float64))[0]
    torch.testing.assert_close(linear_cka(a, a @ q6 * 7), torch.tensor(1.0, dtype=torch.float64))


def test_cka_of_independent_codes_is_near_zero_at_small_batches() -> None:
    values = torch.stack([linear_cka(*_pair(s)) for s in range(300)])
    assert values.mean().abs() < 0.02  # unbiased: no pull towards a smaller static spread
    assert (values < 0).any()  # an unbiased estimate scatters around 0


def test_cka_degenerate_inputs() -> None:
    a, b = _pair(0)
    assert linear_cka(torch.ones_like(a), b) == 0 and linear_cka(a[:3], b[:3]) == 0


def _latents(dependent: bool, seed: int = 0, noise: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """z (B, T, 4) from a block-diagonal C: one static pair at λ = 1, one rotating pair at |λ| = 0.5;
    the dynamic amplitude follows the static code when ``dependent``."""
    g = torch.Generator().manual_seed(seed)
    b, t = 64, 8
    rot = 0.5 * torch.tensor([[0.6, -0.8], [0.8, 0.6]], dtype=torch.float64)
    C = torch.block_diag(torch.eye(2, dtype=torch.float64), rot)
    s = torch.randn(b, 2, generator=g, dtype=torch.float64)
    d0 = torch.randn(b, 2, generator=g, dtype=torch.float64)
    if dependent:
        d0 = s * 2.0 + noise * d0
    z0 = torch.cat([s, d0], 1)
    zs = [z0]
    for _ in range(t - 1):
        zs.append(zs[-1] @ C)
    return torch.stack(zs, 1), C


def test_dependence_tells_coupled_from_independent_parts() -> None:
    z_ind, C = _latents(False)
    z_dep, _ = _latents(True)
    proj = static_projector(C, 2, "ball")  # two real eigenvalues at λ = 1
    assert proj is not None and proj[0].shape == (4, 2)
    low, high = static_dynamic_dependence(z_ind, proj), static_dynamic_dependence(z_dep, proj)
    assert low < 0.2 and high > 0.9
    zg = z_dep.clone().requires_grad_(True)
    static_dynamic_dependence(zg, proj).backward()
    assert torch.isfinite(zg.grad).all() and zg.grad.abs().sum() > 0


def test_loss_term_is_added_and_checked() -> None:
    from skd.model.autoencoder import ModelOutput
    from skd.model.losses import compute_losses

    z, C = _latents(True)
    x = torch.zeros(64, 8, 3)
    out = ModelOutput(z=z.float(), z_pred=z.float(), C=C, x_rec=x, x_pred=x)
    base = LossConfig(static_size=2, w_eig=0.0)
    t0, p0 = compute_losses(x, out, base)
    t1, p1 = compute_losses(x, out, dataclasses.replace(base, w_indep=0.5))
    assert "indep" not in p0 and p1["indep"] > 0.9
    torch.testing.assert_close(t1, t0 + 0.5 * p1["indep"])
    with pytest.raises(ConfigError, match="loss weights must be >= 0"):
        load_config(None, ["loss.w_indep=-1"])


def test_training_with_the_term_runs(tmp_path) -> None:
    cfg = tiny_config(max_steps=3)
    cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, w_indep=0.1))
    tr, _ = load_dataset(cfg.data)
    res = train(cfg, tmp_path / "r", tr, progress=False)
    assert "indep" in res.last and res.last["indep"] == res.last["indep"]  # logged and not NaN


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("src")
    cfg = tiny_config(max_steps=3)
    tr, _ = load_dataset(cfg.data)
    train(cfg, root / "run", tr, progress=False)
    return root / "run"


def test_init_from_starts_a_new_run_from_the_weights(source_run, tmp_path) -> None:
    cfg = tiny_config(max_steps=1, lr=1e-7, checkpoint_every=1)
    cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, w_indep=0.1))  # another loss: fine-tuning
    tr, _ = load_dataset(cfg.data)
    res = train(cfg, tmp_path / "ft", tr, progress=False, init_from=source_run)
    src = load_checkpoint(source_run / "checkpoint.pt")["model"]
    new = load_checkpoint(tmp_path / "ft" / "checkpoint.pt")
    assert res.step == 1 and "optimizer" in new
    w = next(k for k in src if k.endswith("weight") and "frame_encoder" in k)
    assert (new["model"][w] - src[w]).abs().max() < 1e-5  # one step at lr 1e-7 from the source
    fresh = train(cfg, tmp_path / "scratch", tr, progress=False)
    # the same seed without init_from starts where the source started, 3 Adam steps away from it
    assert (fresh.model.state_dict()[w] - src[w]).abs().max() > 1e-4
    info = json.loads((tmp_path / "ft" / "init.json").read_text())
    assert info["step"] == 3 and len(info["sha256"]) == 64
    # the fine-tuned run resumes like any run
    assert main(["train", "-q", "--resume", str(tmp_path / "ft"), "--set", "train.max_steps=2"]) == 0


def test_init_from_refusals(source_run, tmp_path, capsys) -> None:
    tiny = ["--set", "model.width=4", "--set", "model.k=8", "--set", "loss.static_size=3", "--set", "data.n_train=48",
            "--set", "data.n_test=16", "--set", "train.max_steps=1", "--set", "train.epochs=0", "--set", "train.batch_size=8"]
    bad = tmp_path / "bad"
    assert main(["train", "-q", "--init-from", str(source_run), "--out", str(bad), *tiny, "--set", "model.k=6"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "initial model tensor" in err[0] and "this run's config builds" in err[0]
    assert not (bad / "checkpoint.pt").exists()
    assert main(["train", "-q", "--resume", str(source_run), "--init-from", str(source_run)]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["train", "-q", "--init-from", str(tmp_path / "none"), "--out", str(tmp_path / "x"), *tiny]) == 2
    assert "not found" in capsys.readouterr().err


def test_dynamic_only_gradient_leaves_the_static_part_alone() -> None:
    z, C = _latents(True, noise=1.0)  # partly dependent: the term is neither 0 nor saturated
    to, frm = static_projector(C, 2, "ball")
    P = to @ frm  # (k, k) projector onto the static part, z_S = z P
    grads = {}
    for mode in ("dynamic", "both"):
        zg = z.clone().requires_grad_(True)
        static_dynamic_dependence(zg, (to, frm), grad=mode).backward()
        grads[mode] = zg.grad
    assert (grads["dynamic"] @ P.T).abs().max() < 1e-10  # no step along the static part
    assert (grads["both"] @ P.T).abs().max() > 1e-6
    with pytest.raises(ValueError, match="grad="):
        static_dynamic_dependence(z, (to, frm), grad="static")
