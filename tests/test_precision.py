"""Execution plans: bf16 autocast on the frame networks only, channels_last, the float64 Koopman core."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import tiny_config

from skd.config import ConfigError, LossConfig, ModelConfig, TrainConfig
from skd.data import load_dataset
from skd.koopman import fit_koopman
from skd.model.losses import compute_losses, spectral_loss
from skd.model import KoopmanAE
from skd.model.precision import apply_plan, reset_plan, resolve_plan
from skd.training.loop import grads_finite, train

CPU = torch.device("cpu")


def _model(seed: int = 0) -> KoopmanAE:
    torch.manual_seed(seed)
    return KoopmanAE(ModelConfig(kind="conv", image_size=32, width=4, k=8, dropout=0.0))


def _x(seed: int = 1) -> torch.Tensor:
    return torch.rand(4, 5, 3, 32, 32, generator=torch.Generator().manual_seed(seed))  # (B, T, C, H, W)


def test_plan_choices() -> None:
    assert resolve_plan("fp32", "auto", False, CPU, "conv").autocast is None
    assert resolve_plan("bf16", "auto", False, CPU, "conv").autocast is torch.bfloat16
    assert resolve_plan("auto", "auto", False, CPU, "mlp").autocast is None  # MLP nets stay fp32
    assert resolve_plan("auto", "auto", False, CPU, "conv").channels_last
    assert not resolve_plan("auto", "contiguous", False, CPU, "conv").channels_last
    assert not resolve_plan("auto", "channels_last", False, CPU, "mlp").channels_last  # no 4-D tensors
    with pytest.raises(ValueError, match="precision"):
        resolve_plan("fp16", "auto", False, CPU, "conv")
    with pytest.raises(ValueError, match="bf16 needs"):
        resolve_plan("bf16", "auto", False, torch.device("meta"), "conv")
    with pytest.raises(ConfigError, match="train.precision"):
        TrainConfig(precision="half")
    with pytest.raises(ConfigError, match="train.memory_format"):
        TrainConfig(memory_format="nhwc")


def test_koopman_core_stays_float64_inside_a_callers_autocast() -> None:
    """Eq. 2 and Eq. 4 give the same numbers inside torch.autocast as outside it."""
    model = _model().eval()
    x = _x()
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            z = model.encode(x).float()
            C_in = fit_koopman(ref.z)
            eig_in, _ = spectral_loss(ref.C, LossConfig(static_size=3))
    eig_out, _ = spectral_loss(ref.C, LossConfig(static_size=3))
    assert C_in.dtype == torch.float64
    assert torch.equal(C_in, ref.C)
    assert torch.equal(eig_in, eig_out)
    assert z.shape == ref.z.shape


def test_bf16_frame_nets_keep_float32_interfaces_and_close_values() -> None:
    fp32, bf16 = _model(), _model()
    apply_plan(bf16, resolve_plan("bf16", "channels_last", False, CPU, "conv"))
    x = _x()
    a, b = fp32.train()(x), bf16.train()(x)
    assert b.z.dtype == torch.float32 and b.x_rec.dtype == torch.float32 and b.C.dtype == torch.float64
    la, _ = compute_losses(x, a, LossConfig(static_size=3))
    lb, _ = compute_losses(x, b, LossConfig(static_size=3))
    assert torch.isfinite(lb)
    assert abs(lb.item() - la.item()) < 0.05 * abs(la.item())  # bf16 keeps ~3 significant digits
    lb.backward()
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in bf16.parameters())
    assert grads_finite(bf16)


def test_channels_last_computes_the_same_function() -> None:
    plain, nhwc = _model(), _model()
    apply_plan(nhwc, resolve_plan("fp32", "channels_last", False, CPU, "conv"))
    assert nhwc.frame_encoder.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = _x()
    with torch.no_grad():
        a, b = plain.eval()(x), nhwc.eval()(x)
    torch.testing.assert_close(b.x_rec, a.x_rec, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(b.z, a.z, rtol=1e-5, atol=1e-6)  # (C itself amplifies rounding: tiny batch)
    reset_plan(nhwc)
    assert nhwc.frame_encoder.net[0].weight.is_contiguous() and nhwc.frame_autocast is None


def test_grads_finite_catches_one_bad_tensor() -> None:
    m = _model()
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    assert grads_finite(m)
    next(m.parameters()).grad[0] = float("nan")
    assert not grads_finite(m)


def test_bf16_training_resumes_bit_identically(tmp_path) -> None:
    shapes = load_dataset(tiny_config().data)[0]
    cfg = lambda steps: tiny_config(max_steps=steps, checkpoint_every=3, precision="bf16")  # noqa: E731
    full = train(cfg(6), tmp_path / "full", shapes, progress=False)
    train(cfg(3), tmp_path / "half", shapes, progress=False)
    resumed = train(cfg(6), tmp_path / "half", shapes, resume=True, progress=False)
    flat = lambda m: torch.cat([p.detach().flatten() for p in m.parameters()])  # noqa: E731
    assert torch.equal(flat(full.model), flat(resumed.model))
    assert dataclasses.asdict(full.config.train)["precision"] == "bf16"


@pytest.mark.parametrize("kind", ["conv", "mlp"])
def test_fused_decode_equals_two_decoder_calls(kind) -> None:
    """One decoder pass for reconstruction + prediction: same loss, gradients and BN running stats."""
    if kind == "conv":
        mc, x = ModelConfig(kind="conv", image_size=32, width=4, k=8, dropout=0.2), _x()
    else:
        mc = ModelConfig(kind="mlp", input_dim=12, k=8, dropout=0.2)
        x = torch.randn(4, 5, 12, generator=torch.Generator().manual_seed(3))
    models = []
    for fuse in (False, True):
        torch.manual_seed(0)
        m = KoopmanAE(mc).train()
        m.fuse_decode = fuse
        torch.manual_seed(7)  # the same dropout mask in both
        total, parts = compute_losses(x, m(x), LossConfig(static_size=3))
        total.backward()
        models.append((m, total, parts))
    (a, la, pa), (b, lb, pb) = models
    torch.testing.assert_close(lb, la, rtol=1e-6, atol=1e-8)
    for key in pa:
        torch.testing.assert_close(pb[key], pa[key], rtol=1e-5, atol=1e-8)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        # float32 sums in another order: the absolute error scales with the gradient's magnitude
        # (7e-7 on a conv gradient of size 1.3 was seen on an AVX2-only CPU)
        scale = float(p.grad.abs().max())
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-7 + 2e-6 * scale, msg=name)
    for (name, buf), buf2 in zip(a.named_buffers(), b.buffers()):
        torch.testing.assert_close(buf2, buf, rtol=1e-6, atol=1e-7, msg=name)


def test_auto_plan_on_a_bf16_capable_gpu(monkeypatch) -> None:
    """The CUDA branch of the plan (no GPU here): bf16 + channels_last when the device has bf16."""
    import skd.model.precision as P

    monkeypatch.setattr(P, "native_bf16", lambda device: device.type == "cuda")
    plan = P.resolve_plan("auto", "auto", False, torch.device("cuda"), "conv")
    assert plan.autocast is torch.bfloat16 and plan.channels_last and "cuda" in plan.reason
    monkeypatch.setattr(P, "native_bf16", lambda device: False)
    assert P.resolve_plan("auto", "auto", False, torch.device("cuda"), "conv").autocast is None
    assert P.resolve_plan("auto", "auto", False, torch.device("mps"), "conv") == P.ExecutionPlan(
        None, False, False, "auto: fp32 (no native bf16 on this device)")


def test_cpu_bf16_detection_follows_the_instruction_set() -> None:
    """`auto` picks bf16 on a CPU only with AVX-512 BF16 or AMX, never on plain AVX-512 (emulated)."""
    import pathlib

    import skd.model.precision as P

    info = pathlib.Path("/proc/cpuinfo")
    if not info.exists():
        pytest.skip("no /proc/cpuinfo on this OS")
    flags = set(info.read_text().split())
    has_isa = bool({"avx512_bf16", "amx_tile"} & flags)
    assert P.native_bf16(CPU) is (has_isa and torch.backends.mkldnn.is_available())
    plan = P.resolve_plan("auto", "auto", False, CPU, "conv")
    assert (plan.autocast is torch.bfloat16) is P.native_bf16(CPU)
