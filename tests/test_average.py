"""Weight averaging of checkpoints (skd.training.average, `skd average`)."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from conftest import tiny_config
from skd.cli.main import main
from skd.data import load_dataset
from skd.files.checkpoint import CheckpointError, load_checkpoint
from skd.training.average import average_states, read_sources, recompute_batchnorm
from skd.training.loop import load_run, train


def _state(gen: torch.Generator) -> dict[str, torch.Tensor]:
    return {"w": torch.randn(3, 4, generator=gen), "b": torch.randn(4, generator=gen).to(torch.bfloat16),
            "n": torch.randint(0, 100, (), generator=gen)}


@pytest.mark.parametrize("seed", range(5))
def test_average_of_copies_is_the_state(seed) -> None:
    s = _state(torch.Generator().manual_seed(seed))
    avg = average_states([s, {k: v.clone() for k, v in s.items()}, {k: v.clone() for k, v in s.items()}])
    for k in s:
        assert avg[k].dtype == s[k].dtype and torch.equal(avg[k], s[k])


@pytest.mark.parametrize("seed", range(5))
def test_average_is_the_mean_and_ignores_order(seed) -> None:
    g = torch.Generator().manual_seed(seed)
    states = [_state(g) for _ in range(4)]
    before = [{k: v.clone() for k, v in s.items()} for s in states]
    avg = average_states(states)
    mean = torch.stack([s["w"].double() for s in states]).mean(0).float()
    torch.testing.assert_close(avg["w"], mean)
    torch.testing.assert_close(average_states(states[::-1])["w"], avg["w"])
    assert torch.equal(avg["n"], states[-1]["n"])  # integer counters: the last state's
    for s, b in zip(states, before):  # pure: inputs untouched
        assert all(torch.equal(s[k], b[k]) for k in s)


def test_average_refuses_mismatched_states() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = _state(g), _state(g)
    with pytest.raises(ValueError, match="other tensors"):
        average_states([a, {"w": b["w"]}])
    with pytest.raises(ValueError, match="different shapes"):
        average_states([a, {**b, "w": torch.zeros(4, 3)}])
    with pytest.raises(ValueError, match="nothing to average"):
        average_states([])


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(3, momentum=0.3)
        self.drop = nn.Dropout(0.9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (B, T, 3)
        return self.bn(self.drop(x.flatten(0, 1)))


class _Seqs:
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, idx, device):
        return self.x[idx].to(device)


def test_recompute_batchnorm_measures_the_data_without_dropout() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, 3, generator=g) * torch.tensor([1.0, 2.0, 3.0]) + torch.tensor([5.0, -1.0, 0.5])
    net = _Net().eval()
    seen = recompute_batchnorm(net, _Seqs(x), batch_size=40, n_batches=1, gen=g)  # one batch = all sequences
    flat = x.flatten(0, 1)
    torch.testing.assert_close(net.bn.running_mean, flat.mean(0))  # dropout off: the data's own statistics
    torch.testing.assert_close(net.bn.running_var, flat.var(0, unbiased=True))
    assert seen == 40 and net.bn.momentum == 0.3 and not net.training


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("avg")
    cfg = tiny_config(max_steps=6, checkpoint_every=2, keep_every=2)
    tr, _ = load_dataset(cfg.data)
    train(cfg, root / "run", tr, progress=False)
    return root / "run"


def test_read_sources_orders_by_step_and_drops_a_repeated_step(kept_run) -> None:
    kept = sorted((kept_run / "checkpoints").glob("step_*.pt"))
    sources, states = read_sources([kept_run / "checkpoint.pt", *kept[::-1]], "koopman-ae")
    assert sources.steps == (2, 4, 6) and len(states) == 3  # step 6 is checkpoint.pt and step_6: once


def test_skd_average_writes_a_model_every_command_reads(kept_run, tmp_path) -> None:
    out = tmp_path / "swa"
    assert main(["average", "-q", "--kept", str(kept_run), "--since", "4", str(kept_run), "--out", str(out)]) == 0
    info = json.loads((out / "average.json").read_text())
    assert info["steps"] == [4, 6] and info["bn_sequences"] > 0
    model, cfg = load_run(out)
    ck4 = load_checkpoint(kept_run / "checkpoints" / "step_00000004.pt")["model"]
    ck6 = load_checkpoint(kept_run / "checkpoint.pt")["model"]
    name = next(k for k in ck6 if k.endswith("weight") and "frame_encoder" in k)
    torch.testing.assert_close(model.state_dict()[name], (ck4[name] + ck6[name]) / 2)
    assert (out / "data.json").is_file() and cfg.model == load_run(kept_run)[1].model
    assert main(["swap", "-q", "--run", str(out), "--pairs", "0:1", "--fit-batch", "16"]) == 0
    # again into the same folder: the earlier average is replaced
    assert main(["average", "-q", "--kept", str(kept_run), "--out", str(out)]) == 0
    assert json.loads((out / "average.json").read_text())["steps"] == [2, 4, 6]


def test_skd_average_refusals(kept_run, tmp_path, capsys) -> None:
    out = tmp_path / "swa"
    assert main(["average", "-q", "--kept", str(kept_run), "--out", str(out)]) == 0
    capsys.readouterr()
    # an average cannot be resumed: one line, exit 2
    assert main(["train", "-q", "--resume", str(out), "--set", "train.max_steps=8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no optimizer state" in err[0]
    # never written over a training run
    before = (kept_run / "checkpoint.pt").read_bytes()
    assert main(["average", "-q", "--kept", str(kept_run), "--out", str(kept_run)]) == 2
    assert "holds a training checkpoint" in capsys.readouterr().err
    assert (kept_run / "checkpoint.pt").read_bytes() == before
    # one source, a missing file, an average as a source
    assert main(["average", "-q", str(kept_run), "--out", str(tmp_path / "one")]) == 2
    assert "at least two" in capsys.readouterr().err
    assert main(["average", "-q", str(kept_run), str(tmp_path / "nope.pt"), "--out", str(tmp_path / "x")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert main(["average", "-q", str(kept_run), str(out), "--out", str(tmp_path / "y")]) == 2
    assert "itself an average" in capsys.readouterr().err
    assert not (tmp_path / "one").exists() and not (tmp_path / "y" / "checkpoint.pt").exists()


def test_checkpoints_of_different_models_are_not_averaged(kept_run, tmp_path) -> None:
    import dataclasses

    cfg = tiny_config(max_steps=2)
    cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, static_size=2))
    tr, _ = load_dataset(cfg.data)
    train(cfg, tmp_path / "other", tr, progress=False)
    with pytest.raises(CheckpointError, match=r"differ in \[loss.static_size\]"):
        read_sources([kept_run / "checkpoint.pt", tmp_path / "other" / "checkpoint.pt"], "koopman-ae")
