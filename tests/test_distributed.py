"""Distributed training: exact global Koopman fit and gradients on 2 gloo processes (CPU).

One 2-process job (``_suite``, started once per module with :func:`skd.training.launch.launch_local`)
computes every multi-process quantity next to its single-process reference on the concatenated
batch and writes the measured errors to JSON; the tests below assert on them. Pure pieces (env
parsing, sharding, the reduce hook, batch-norm conversion) are tested in-process.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from skd.training import distributed as D
from skd.files.checkpoint import load_checkpoint
from skd.cli.main import main
from skd.config import LossConfig, ModelConfig
from skd.data import load_dataset
from skd.koopman import fit_koopman, normal_equations
from skd.training.launch import launch_local
from skd.model.losses import compute_losses, spectral_loss
from skd.model import KoopmanAE
from skd.training.loop import train

from conftest import signal_skd_after_two_steps, tiny_config

WORLD = 2


# ----------------------------------------------------------------------------- the 2-process job
def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def _grads(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def _koopman_checks(rank: int) -> dict:
    """C and dL/dz from 2 ranks vs one process on the concatenated latents (float64)."""
    g = torch.Generator().manual_seed(0)
    full = torch.randn(6, 5, 4, generator=g, dtype=torch.float64)
    dup = full.clone()
    dup[..., 3] = dup[..., 2]  # duplicated coordinate: G is singular
    few = torch.randn(2, 2, 5, generator=g, dtype=torch.float64)  # 2 pairs for k = 5: rank 2
    cases = {"generic": (full, 0.0), "ridge": (full, 0.3), "singular_gram": (dup, 0.0), "fewer_pairs_than_k": (few, 0.0)}
    lcfg = LossConfig(static_size=1)
    out = {}
    for name, (z, ridge) in cases.items():
        weight = torch.randn(z.shape[-1], z.shape[-1], generator=g, dtype=torch.float64)

        def loss(C: torch.Tensor) -> torch.Tensor:
            return spectral_loss(C, lcfg)[0] + (C * weight).sum()

        z_ref = z.clone().requires_grad_(True)
        C_ref = fit_koopman(z_ref, ridge=ridge)
        loss(C_ref).backward()
        z_loc = D.shard(z, rank, WORLD).clone().requires_grad_(True)
        C = fit_koopman(z_loc, ridge=ridge, reduce=D.sum_across)
        (loss(C) / WORLD).backward()  # DDP's average over ranks of a loss that is the same everywhere
        out[f"C_{name}"] = _rel(C.detach(), C_ref.detach())
        out[f"grad_{name}"] = _rel(z_loc.grad, D.shard(z_ref.grad, rank, WORLD))
        out[f"finite_{name}"] = bool(torch.isfinite(C).all())
    # negative control: an all-reduce whose backward is the identity misses the other ranks' terms
    z_ref = full.clone().requires_grad_(True)
    (fit_koopman(z_ref) ** 2).sum().backward()
    z_loc = D.shard(full, rank, WORLD).clone().requires_grad_(True)
    naive = lambda t: t + (D.sum_across(t.detach()) - t).detach()  # noqa: E731
    ((fit_koopman(z_loc, reduce=naive) ** 2).sum() / WORLD).backward()
    out["grad_identity_backward"] = _rel(z_loc.grad, D.shard(z_ref.grad, rank, WORLD))
    return out


def _ddp_grad_error(cfg: ModelConfig, x: torch.Tensor, rank: int, convert: bool, ridge: float) -> dict:
    """Parameter gradients of DDP on 2 halves vs one process on the whole batch (float64)."""
    lcfg = LossConfig(static_size=1)
    torch.manual_seed(0)
    ref = KoopmanAE(cfg).double()
    local = copy.deepcopy(ref)
    total, _ = compute_losses(x, ref(x, ridge=ridge), lcfg)
    total.backward()
    if convert:
        D.convert_sync_batchnorm(local)
    ddp = DistributedDataParallel(local, **D.ddp_buffer_sync(False))
    x_loc = D.shard(x, rank, WORLD)
    loc_total, _ = compute_losses(x_loc, ddp(x_loc, ridge=ridge, reduce=D.sum_across), lcfg)
    loc_total.backward()
    _, mean = D.mean_across({"loss": loc_total})
    out = {"grad": _rel(_grads(local), _grads(ref)), "loss": abs(mean["loss"] - total.item()) / abs(total.item())}
    bufs = [(a, b) for (na, a), (nb, b) in zip(ref.named_buffers(), local.named_buffers()) if "running" in na]
    out["running_stats"] = max((_rel(b, a) for a, b in bufs), default=0.0)
    return out


def _training_checks(out_dir: Path, rank: int) -> dict:
    data = load_dataset(tiny_config().data)[0]
    res: dict = {}
    first = train(tiny_config(max_steps=4, checkpoint_every=100), out_dir / "a", data, progress=False)
    res["files_after_4"] = sorted(p.name for p in (out_dir / "a").iterdir())
    res["first_step"] = first.step
    resumed = train(tiny_config(max_steps=8, checkpoint_every=100), out_dir / "a", data, resume=True, progress=False)
    whole = train(tiny_config(max_steps=8, checkpoint_every=100), out_dir / "b", data, progress=False)
    pa = torch.cat([p.detach().flatten() for p in resumed.model.parameters()])
    pb = torch.cat([p.detach().flatten() for p in whole.model.parameters()])
    res["resumed_step"] = resumed.step
    res["resume_equal"] = bool(torch.equal(pa, pb))
    res["bn_reverted"] = not any(isinstance(m, D.GlobalBatchNorm) for m in resumed.model.modules())
    # step-1 losses of a run without dropout, to compare with one process (float32, global BN)
    nodrop = tiny_config(max_steps=1, precision="fp32", memory_format="contiguous")
    nodrop = dataclasses.replace(nodrop, model=dataclasses.replace(nodrop.model, dropout=0.0))
    train(nodrop, out_dir / "c", data, progress=False)
    return res


def _suite(out: str) -> None:
    info = D.init_distributed("cpu")
    try:
        assert info.world_size == WORLD and D.world().rank == info.rank
        rank = info.rank
        res: dict = {"koopman": _koopman_checks(rank)}
        g = torch.Generator().manual_seed(1)
        mlp = ModelConfig(kind="mlp", input_dim=6, k=4, hidden=8, layers=1, dropout=0.0)
        res["mlp"] = _ddp_grad_error(mlp, torch.randn(8, 5, 6, generator=g, dtype=torch.float64), rank, False, 0.01)
        conv = ModelConfig(kind="conv", image_size=32, channels=3, width=2, k=4, dropout=0.0)
        video = torch.rand(4, 3, 3, 32, 32, generator=g, dtype=torch.float64)
        res["conv_global_bn"] = _ddp_grad_error(conv, video, rank, True, 0.0)
        res["conv_local_bn"] = _ddp_grad_error(conv, video, rank, False, 0.0)
        try:  # torch's own SyncBatchNorm on CPU tensors
            nn.SyncBatchNorm(3).train()(torch.randn(4, 3, 2, 2))
            res["torch_syncbn_cpu"] = "works"
        except ValueError as e:
            res["torch_syncbn_cpu"] = str(e)
        res["training"] = _training_checks(Path(out), rank)
        Path(out, f"rank{rank}.json").write_text(json.dumps(res))
    finally:
        D.shutdown()


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("dist")
    launch_local(_suite, WORLD, (str(out),), threads=1)
    return out, [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]


# ----------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("case", ["generic", "ridge", "singular_gram", "fewer_pairs_than_k"])
def test_koopman_matrix_equals_single_process_fit(job, case) -> None:
    for res in job[1]:
        assert res["koopman"][f"finite_{case}"]
        assert res["koopman"][f"C_{case}"] <= 1e-10
        # d loss / d local latents; the rank-deficient pseudo-inverse case measured 2e-10 on one CPU
        assert res["koopman"][f"grad_{case}"] <= 1e-8


def test_identity_backward_all_reduce_would_be_wrong(job) -> None:
    assert min(res["koopman"]["grad_identity_backward"] for res in job[1]) > 1e-3


def test_ddp_gradients_equal_single_process_mlp(job) -> None:
    for res in job[1]:
        assert res["mlp"]["grad"] <= 1e-10 and res["mlp"]["loss"] <= 1e-12


def test_ddp_gradients_equal_single_process_conv_with_global_batchnorm(job) -> None:
    for res in job[1]:
        assert res["conv_global_bn"]["grad"] <= 1e-10 and res["conv_global_bn"]["loss"] <= 1e-12
        assert res["conv_global_bn"]["running_stats"] <= 1e-12
        # per-process BatchNorm statistics are NOT the global ones: why train.sync_bn exists
        assert res["conv_local_bn"]["grad"] > 1e-6


def test_torch_syncbatchnorm_rejects_cpu_as_documented(job) -> None:
    assert "expected input tensor to be on GPU" in job[1][0]["torch_syncbn_cpu"]


# ----------------------------------------------------------------------------- training
def test_two_process_run_writes_one_checkpoint_and_resumes_exactly(job) -> None:
    out, results = job
    for res in (r["training"] for r in results):
        assert res["first_step"] == 4 and res["resumed_step"] == 8
        assert res["resume_equal"], "resumed 2-process run differs from the uninterrupted one"
        assert res["bn_reverted"]
    assert results[0]["training"]["files_after_4"] == [".lock", "checkpoint.pt", "config.json", "data.json", "metrics.jsonl", "result.json"]
    steps = [json.loads(s)["step"] for s in (out / "a" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))  # rank 0 alone wrote metrics, once per step
    ck = load_checkpoint(out / "a" / "checkpoint.pt")
    assert ck["world_size"] == 2 and ck["rng_cpu_ranks"].shape[0] == 2
    assert not torch.equal(ck["rng_cpu_ranks"][0], ck["rng_cpu_ranks"][1])  # own dropout stream per rank


def test_two_process_step_equals_single_process_step(job, tmp_path) -> None:
    out, _ = job
    cfg = tiny_config(max_steps=1, precision="fp32", memory_format="contiguous")  # exact comparison
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dropout=0.0))
    train(cfg, tmp_path / "one", load_dataset(cfg.data)[0], progress=False)
    two = json.loads((out / "c" / "metrics.jsonl").read_text().splitlines()[0])
    one = json.loads((tmp_path / "one" / "metrics.jsonl").read_text().splitlines()[0])
    for key in ("loss", "rec", "pred_latent", "pred_ambient", "eig"):
        assert math.isclose(two[key], one[key], rel_tol=1e-5, abs_tol=1e-7), key


def test_two_process_checkpoint_resumes_in_one_process(job, tmp_path, caplog) -> None:
    out, _ = job
    run = tmp_path / "a"
    run.mkdir()
    for name in ("checkpoint.pt", "config.json", "metrics.jsonl"):
        (run / name).write_bytes((out / "a" / name).read_bytes())
    res = train(tiny_config(max_steps=10), run, load_dataset(tiny_config().data)[0], resume=True, progress=False)
    assert res.step == 10
    assert "written by 2 process(es), resumed with 1" in caplog.text


# ----------------------------------------------------------------------------- CLI
TINY = ["--set", "data.n_train=48", "--set", "data.n_test=16", "--set", "model.width=4", "--set", "model.k=8",
        "--set", "loss.static_size=3", "--set", "train.batch_size=8", "--set", "train.epochs=0"]


def _one_error_line(capfd) -> str:
    err = capfd.readouterr().err.strip().splitlines()  # the launched processes' stderr included
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def test_cli_nproc_trains_with_two_processes(tmp_path, capfd) -> None:
    run = tmp_path / "run"
    assert main(["train", "-q", "--nproc", "2", "--out", str(run), "--set", "train.max_steps=2", *TINY]) == 0
    assert json.loads((run / "result.json").read_text())["step"] == 2
    out = capfd.readouterr().out
    assert out.count("on 2 processes") == 1  # rank 0 reports, once


def test_cli_nproc_errors_are_one_line(tmp_path, capfd, monkeypatch) -> None:
    assert main(["train", "--nproc", "3", "--out", str(tmp_path / "r"), *TINY]) == 2
    assert "must be divisible by --nproc=3" in _one_error_line(capfd)
    assert main(["train", "--nproc", "0", "--out", str(tmp_path / "r"), *TINY]) == 2
    assert "--nproc=0 must be >= 1" in _one_error_line(capfd)
    assert not (tmp_path / "r").exists()
    # an error inside a launched process comes back as one line naming the process
    assert main(["train", "--nproc", "2", "--out", str(tmp_path / "r"), "--data", str(tmp_path / "missing.npz"), *TINY]) == 2
    line = _one_error_line(capfd)
    assert "process" in line and "of 2" in line and "missing.npz" in line
    for key, value in {"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(key, value)
    assert main(["train", "--nproc", "2", "--out", str(tmp_path / "r"), *TINY]) == 2
    assert "cannot be used inside a torchrun/srun launch" in _one_error_line(capfd)


@pytest.mark.slow
def test_torchrun_launch_trains_and_resumes(tmp_path) -> None:
    """The real launcher: ``python -m torch.distributed.run --standalone --nproc-per-node 2``."""
    import os
    import subprocess
    import sys

    import skd

    env = {**os.environ, "PYTHONPATH": str(Path(skd.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    run = tmp_path / "run"
    base = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "skd.cli.main", "train", "-q"]
    for args in (["--out", str(run), "--set", "train.max_steps=3", "--set", "train.log_every=1", *TINY], ["--resume", str(run), "--set", "train.max_steps=5"]):
        proc = subprocess.run([*base, *args], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.count("on 2 processes") == 1
    assert json.loads((run / "result.json").read_text())["step"] == 5
    assert [json.loads(s)["step"] for s in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5]


# ----------------------------------------------------------------------------- pure pieces
def test_env_world_from_torchrun_slurm_and_nothing() -> None:
    tr = D.env_world({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "1234"})
    assert tr == D.WorldInfo(3, 4, 1, "h", 1234) and not tr.is_main and tr.distributed
    slurm = D.env_world({"SLURM_PROCID": "5", "SLURM_STEP_NUM_TASKS": "8", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "123456",
                         "SLURM_STEP_NODELIST": "gpu[07-08]"})
    assert slurm == D.WorldInfo(5, 8, 1, "gpu07", 29500 + 3456)
    # inside an sbatch script but outside srun: one process, not a hung 8-process job
    assert D.env_world({"SLURM_PROCID": "0", "SLURM_NTASKS": "8"}) == D.WorldInfo()
    assert D.env_world({}) == D.WorldInfo() and D.env_world({"WORLD_SIZE": "1"}).world_size == 1
    with pytest.raises(ValueError, match="MASTER_ADDR"):
        D.env_world({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="inconsistent"):
        D.env_world({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"})
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        D.env_world({"WORLD_SIZE": "two"})


def test_process_device() -> None:
    info = D.WorldInfo(1, 2, 1, "h", 1)
    assert D.process_device("cpu", info) == torch.device("cpu")
    with pytest.raises(ValueError, match="cannot be used with several processes"):
        D.process_device("mps", info)
    if not torch.cuda.is_available():
        assert D.process_device("auto", info) == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA is not available"):
            D.process_device("cuda", info)


@pytest.mark.parametrize("nodes,host", [("n1", "n1"), ("n1,n2", "n1"), ("gpu[03-05,9],cpu1", "gpu03"),
                                        ("a[1-2]-ib", "a1-ib"), ("r[2]n[10-11]", "r2n10")])
def test_first_host_of_slurm_node_list(nodes, host) -> None:
    assert D.first_host(nodes) == host


def test_shard_concatenates_back_to_the_global_batch() -> None:
    idx = torch.randperm(12)
    for world in (1, 2, 3, 4, 6):
        assert torch.equal(torch.cat([D.shard(idx, r, world) for r in range(world)]), idx)
    with pytest.raises(ValueError, match="cannot be split evenly over 5"):
        D.shard(idx, 0, 5)


def test_reduce_hook_sums_blocks_of_the_other_part() -> None:
    """The algebra without processes: blocks of two halves add up to the whole batch's."""
    z = torch.randn(6, 5, 3, dtype=torch.float64)
    other = torch.stack(normal_equations(z[3:]))
    C = fit_koopman(z[:3], ridge=0.1, reduce=lambda blocks: blocks + other)
    assert torch.allclose(C, fit_koopman(z, ridge=0.1), rtol=1e-12, atol=1e-12)
    assert torch.equal(fit_koopman(z, reduce=D.sum_across), fit_koopman(z))  # identity in one process


def test_global_batchnorm_conversion_round_trips_state() -> None:
    torch.manual_seed(0)
    model = KoopmanAE(ModelConfig(image_size=32, width=2, k=4))
    keys = list(model.state_dict())
    params = [id(p) for p in model.parameters()]
    x = torch.rand(2, 3, 3, 32, 32)
    model.eval()
    before = model(x).x_rec
    D.convert_sync_batchnorm(model)
    assert any(isinstance(m, D.GlobalBatchNorm) for m in model.modules())
    assert list(model.state_dict()) == keys and [id(p) for p in model.parameters()] == params
    assert torch.equal(model(x).x_rec, before)  # plain batch norm without a process group
    model.train()
    bn, ref = D.GlobalBatchNorm(3), nn.BatchNorm2d(3)
    h = torch.randn(4, 3, 5, 5)
    assert torch.equal(bn(h), ref(h)) and torch.equal(bn.running_var, ref.running_var)
    D.revert_sync_batchnorm(model)
    assert not any(isinstance(m, D.GlobalBatchNorm) for m in model.modules())
    assert all(type(m) is nn.BatchNorm2d for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))


def test_ctrl_c_on_the_launcher_stops_every_process_with_one_checkpoint(tmp_path) -> None:
    """``skd train --nproc 2``, one SIGINT to the launcher (what Ctrl-C sends): both processes stop
    at the same step, rank 0 saves it, the launcher exits 130; the run resumes."""
    import json
    import signal

    from skd.files.checkpoint import load_checkpoint

    run = tmp_path / "run"
    rc, _, err = signal_skd_after_two_steps(
        ["train", "-q", "--nproc", "2", "--out", str(run), "--set", "train.epochs=0", "--set",
         "train.max_steps=100000", "--set", "train.log_every=1", *TINY], run, signal.SIGINT)
    assert rc == 130, err
    result = json.loads((run / "result.json").read_text())
    assert result["stopped"] == "interrupted" and result["step"] >= 2
    assert load_checkpoint(run / "checkpoint.pt")["step"] == result["step"]
