"""The built-in pendulum series: physics, factors, determinism, and a tiny train + probe run."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from skd.cli.main import main
from skd.config import DataConfig
from skd.data import load_dataset
from skd.data.oscillators import (INPUT_DIM, LENGTHS, make_oscillators, oscillator_factors, render,
                                  simulate_angles)


def test_shapes_labels_and_determinism() -> None:
    a = make_oscillators(50, seq_len=12, seed=3)
    b = make_oscillators(50, seq_len=12, seed=3)
    assert a.x.shape == (50, 12, INPUT_DIM) and a.x.dtype == torch.float32
    assert torch.equal(a.x, b.x) and all(torch.equal(a.labels[k], b.labels[k]) for k in a.labels)
    assert not torch.equal(a.x, make_oscillators(50, seq_len=12, seed=4).x)
    assert [f.name for f in a.factors] == ["length", "color", "mass", "phase"]
    assert [f.kind for f in a.static_factors()] == ["static"] * 3 and a.dynamic_factors()[0].name == "phase"
    assert float(a.x.min()) >= 0 and float(a.x.max()) <= 1


def test_pendulum_physics() -> None:
    # small damping, so the energy of a light pendulum decays but stays positive; period grows with length
    n = len(LENGTHS)
    theta = simulate_angles(np.arange(n), np.zeros(n, dtype=int), np.zeros(n), 60)  # start at max swing
    crossings = [np.flatnonzero(np.diff(np.sign(th)) != 0)[0] for th in theta]  # first zero crossing ~ T/4
    assert crossings[0] < crossings[1] < crossings[2]
    assert np.abs(theta[:, -10:]).max() < np.abs(theta[:, :10]).max()
    heavy = simulate_angles(np.zeros(1, dtype=int), np.ones(1, dtype=int), np.zeros(1), 60)
    assert np.abs(heavy[0, -10:]).max() > np.abs(theta[0, -10:]).max()  # heavier = less damped


def test_static_factors_are_constant_and_phase_moves() -> None:
    theta = np.zeros((2, 5))
    img = render(theta, np.array([0, 2]), np.array([0, 1]), np.array([0, 1]))
    assert np.allclose(img[:, 0], img[:, -1])  # nothing moves when θ is constant
    d = make_oscillators(200, seq_len=8, seed=0)
    same_static = (d.labels["length"] == d.labels["length"][0]) & (d.labels["color"] == d.labels["color"][0]) \
        & (d.labels["mass"] == d.labels["mass"][0]) & (d.labels["phase"] != d.labels["phase"][0])
    j = int(torch.nonzero(same_static)[0])
    assert not torch.allclose(d.x[0], d.x[j])  # another phase: another trajectory


def test_config_route_and_sizes() -> None:
    train, test = load_dataset(DataConfig(name="oscillators", n_train=40, n_test=10, seq_len=6, seed=1))
    assert train.x.shape == (40, 6, INPUT_DIM) and test.x.shape == (10, 6, INPUT_DIM)
    assert not torch.equal(train.x[:10], test.x)
    assert len(oscillator_factors()) == 4
    with pytest.raises(ValueError, match="seq_len"):
        make_oscillators(3, seq_len=1)


def test_train_and_factor_probes_via_cli(tmp_path, capsys) -> None:
    run = tmp_path / "osc"
    args = ["train", "-q", "--config", "oscillators", "--out", str(run), "--set", "train.minutes=0",
            "--set", "train.max_steps=6", "--set", "train.epochs=0", "--set", "data.n_train=64", "--set", "data.n_test=32",
            "--set", "train.batch_size=16", "--set", "model.hidden=32", "--set", "model.k=8", "--set", "loss.static_size=2"]
    assert main(args) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["kind"] == "mlp" and cfg["model"]["input_dim"] == INPUT_DIM
    capsys.readouterr()
    assert main(["eval", "--factors", "--run", str(run), "--fit-batch", "32"]) == 0
    out = capsys.readouterr().out
    assert "phase" in out and "length" in out
    res = json.loads((run / "eval_factors.json").read_text())
    assert set(res["factors"]) == {"length", "color", "mass", "phase"}
    assert all(0.0 <= r["static"] <= 1.0 and 0.0 <= r["dynamic"] <= 1.0 for r in res["factors"].values())
    capsys.readouterr()
    assert main(["eval", "audio", "--run", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "`skd eval audio` needs a speech run" in err[0]


def test_export_as_user_arrays_and_train_on_them(tmp_path, capsys) -> None:
    out = tmp_path / "osc"
    assert main(["data", "oscillators", "--out", str(out), "--n-train", "48", "--n-test", "16", "--seq-len", "6"]) == 0
    from skd.data.arrays import load_arrays

    d = load_arrays(out / "train.npz")
    assert d.x.shape == (48, 6, INPUT_DIM)
    assert {f.name: f.kind for f in d.factors} == {"length": "static", "color": "static", "mass": "static", "phase": "dynamic"}
    run = tmp_path / "run"
    assert main(["train", "-q", "--data", str(out / "train.npz"), "--set", f"data.test_path={str(out / 'test.npz')!r}",
                 "--out", str(run), "--set", "train.max_steps=3", "--set", "train.epochs=0", "--set", "model.k=6",
                 "--set", "model.hidden=16", "--set", "loss.static_size=2", "--set", "train.batch_size=8"]) == 0
    assert main(["eval", "factors", "--run", str(run), "--fit-batch", "16", "--pool", "mean"]) == 0
    assert "phase" in capsys.readouterr().out
