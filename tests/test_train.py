"""Training: loss goes down, checkpoints round-trip, resume is exact, bad steps are guarded."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from skd.pipelines import ops
from skd.files.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from skd.data import load_dataset
from skd.config import ConfigError, load_config
from skd.training.loop import TrainingError, load_run, lr_at, train

from conftest import tiny_config


@pytest.fixture(scope="module")
def shapes():
    return load_dataset(tiny_config().data)[0]


def _params(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_short_training_lowers_the_loss(tmp_path, shapes) -> None:
    cfg = tiny_config(max_steps=40, log_every=5, checkpoint_every=100)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dropout=0.0))
    res = train(cfg, tmp_path / "run", shapes, progress=False)
    lines = [json.loads(s) for s in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and lines[-1]["step"] == 40
    assert lines[-1]["rec"] < 0.7 * lines[0]["rec"]
    for name in ("config.json", "command.txt", "data.json", "checkpoint.pt", "result.json", "metrics.jsonl"):
        assert (tmp_path / "run" / name).exists() or name == "command.txt"
    assert res.step == 40 and res.stopped == "max_steps"


def test_save_load_gives_identical_outputs(tmp_path, shapes) -> None:
    res = train(tiny_config(max_steps=3), tmp_path / "run", shapes, progress=False)
    model, cfg = load_run(tmp_path / "run")
    x = shapes.batch(torch.arange(6))
    res.model.eval()
    with torch.no_grad():
        a, b = res.model(x), model(x)
    assert torch.equal(a.x_rec, b.x_rec) and torch.equal(a.C, b.C)
    assert cfg == res.config


def test_resume_continues_identically(tmp_path, shapes) -> None:
    full = train(tiny_config(max_steps=8, checkpoint_every=4), tmp_path / "full", shapes, progress=False)
    train(tiny_config(max_steps=4, checkpoint_every=4), tmp_path / "half", shapes, progress=False)
    resumed = train(tiny_config(max_steps=8, checkpoint_every=4), tmp_path / "half", shapes, resume=True, progress=False)
    assert resumed.step == 8
    assert torch.equal(_params(full.model), _params(resumed.model))
    # metrics of the resumed run cover steps 1..8 once
    steps = [json.loads(s)["step"] for s in (tmp_path / "half" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))


@pytest.mark.parametrize("milestones", [(), (1,), (3, 7), (2, 5, 9)])
def test_lr_at_is_multistep_rule(milestones) -> None:
    sched = torch.optim.lr_scheduler.MultiStepLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5),
                                                 milestones=list(milestones), gamma=0.3)
    for step in range(12):  # torch's scheduler as the oracle: its lr after ``step`` scheduler steps
        assert lr_at(step, 0.5, milestones, 0.3) == pytest.approx(sched.get_last_lr()[0], rel=1e-12)
        sched.optimizer.step()
        sched.step()


def test_lr_milestones_parse_and_validate() -> None:
    cfg = load_config(None, ["train.lr_milestones=[100, 200]", "train.lr_gamma=0.5"])
    assert cfg.train.lr_milestones == (100, 200) and cfg.train.lr_gamma == 0.5
    for bad, msg in (("train.lr_milestones=[5, 5]", "increasing"), ("train.lr_milestones=3", "must be a list"),
                     ("train.lr_milestones=[1, 2.5]", "integer"), ("train.lr_gamma=0", "lr_gamma")):
        with pytest.raises(ConfigError, match=msg):
            load_config(None, [bad])


def test_decay_added_on_resume_applies_from_its_milestone(tmp_path, shapes) -> None:
    full = train(tiny_config(max_steps=8, checkpoint_every=4, lr_milestones=(6,), lr_gamma=0.1), tmp_path / "full",
                 shapes, progress=False)
    train(tiny_config(max_steps=4, checkpoint_every=4), tmp_path / "half", shapes, progress=False)
    resumed = train(tiny_config(max_steps=8, checkpoint_every=4, lr_milestones=(6,), lr_gamma=0.1), tmp_path / "half",
                    shapes, resume=True, progress=False)
    assert torch.equal(_params(full.model), _params(resumed.model))  # same schedule from step 4 on: same weights
    assert json.loads((tmp_path / "half" / "config.json").read_text())["train"]["lr_milestones"] == [6]
    plain = train(tiny_config(max_steps=8, checkpoint_every=4), tmp_path / "plain", shapes, progress=False)
    assert not torch.equal(_params(full.model), _params(plain.model))  # the decay changed the last steps


def test_new_run_refuses_existing_folder(tmp_path, shapes) -> None:
    train(tiny_config(max_steps=1), tmp_path / "run", shapes, progress=False)
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(tiny_config(max_steps=1), tmp_path / "run", shapes, progress=False)


def test_non_finite_guard_stops_with_clear_message(tmp_path, shapes) -> None:
    bad = dataclasses.replace(shapes, x=shapes.x.clone())
    cfg = tiny_config(max_steps=50, max_bad_steps=3, lr=1e30)  # explodes within a few steps
    with pytest.raises(TrainingError, match="consecutive non-finite losses"):
        train(cfg, tmp_path / "run", bad, progress=False)


def test_checkpoint_atomic_and_safe(tmp_path) -> None:
    path = tmp_path / "c.pt"
    save_checkpoint(path, kind="thing", config={"a": 1}, state={"w": torch.ones(2)})
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left behind
    ck = load_checkpoint(path, kind="thing")
    assert ck["config"] == {"a": 1} and torch.equal(ck["w"], torch.ones(2))
    with pytest.raises(CheckpointError, match="expected 'koopman-ae'"):
        load_checkpoint(path, kind="koopman-ae")
    path.write_bytes(path.read_bytes()[:50])  # truncated
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": "skd-checkpoint", "version": 1, "obj": Evil()}, path)
    with pytest.raises(CheckpointError, match="is not a safe skd checkpoint.*was not loaded") as e:
        load_checkpoint(path)
    assert "weights_only" not in str(e.value)  # no advice to load it unsafely


def test_trained_ops_run_on_real_data(tmp_path, shapes) -> None:
    res = train(tiny_config(max_steps=2), tmp_path / "run", shapes, progress=False)
    z = ops.encode(res.model, shapes.batch(torch.arange(16)))
    basis = ops.fit_basis(z, 3)
    swapped = ops.decode(res.model, ops.swap_latents(z[:8], z[8:], basis))
    assert swapped.shape == (8, 8, 3, 32, 32) and torch.isfinite(swapped).all()


def test_keep_every_keeps_loadable_history(tmp_path, shapes) -> None:
    from skd.files.checkpoint import load_checkpoint

    train(tiny_config(max_steps=8, checkpoint_every=2, keep_every=4), tmp_path / "r", shapes, progress=False)
    kept = sorted(p.name for p in (tmp_path / "r" / "checkpoints").iterdir())
    assert kept == ["step_00000004.pt", "step_00000008.pt"]
    ck = load_checkpoint(tmp_path / "r" / "checkpoints" / "step_00000004.pt", kind="koopman-ae")
    assert ck["step"] == 4 and ck["elapsed"] > 0
    with pytest.raises(ConfigError, match="keep_every=3 must be 0 or a multiple"):
        load_config(None, ["train.keep_every=3", "train.checkpoint_every=2"])


def _signal_at(monkeypatch, at_step: int, times: int = 1, signum=None) -> None:
    """Make the training loop receive ``signum`` (default SIGINT) ``times`` times during step ``at_step``."""
    import signal as _signal

    import skd.training.loop as L

    real = L._train_step

    def step(fit, x, cfg, step, *rest):
        out = real(fit, x, cfg, step, *rest)
        if step == at_step:
            for _ in range(times):
                _signal.raise_signal(signum or _signal.SIGINT)
        return out

    monkeypatch.setattr(L, "_train_step", step)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_stops_at_the_step_boundary_with_a_checkpoint_and_resume_is_exact(tmp_path, shapes, monkeypatch,
                                                                                     signame) -> None:
    import signal

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    full = train(tiny_config(max_steps=8, checkpoint_every=100), tmp_path / "full", shapes, progress=False)
    _signal_at(monkeypatch, 2, signum=getattr(signal, signame))  # during the third step
    cut = train(tiny_config(max_steps=8, checkpoint_every=100), tmp_path / "cut", shapes, progress=False)
    assert cut.stopped == "interrupted" and cut.step == 3  # the step in progress was finished, no more
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == 3  # saved although checkpoint_every=100
    assert json.loads((tmp_path / "cut" / "result.json").read_text())["stopped"] == "interrupted"
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # handlers restored
    monkeypatch.undo()
    resumed = train(tiny_config(max_steps=8, checkpoint_every=100), tmp_path / "cut", shapes, resume=True,
                    progress=False)
    assert resumed.step == 8 and torch.equal(_params(full.model), _params(resumed.model))


def test_a_second_signal_aborts_at_once(tmp_path, shapes, monkeypatch) -> None:
    import signal

    before = signal.getsignal(signal.SIGINT)
    _signal_at(monkeypatch, 2, times=2)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(max_steps=8, checkpoint_every=100), tmp_path / "run", shapes, progress=False)
    assert signal.getsignal(signal.SIGINT) == before
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 0  # only the step-0 checkpoint
