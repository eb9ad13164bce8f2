"""The CLI in-process: demo with a tiny budget, train/resume/swap, one-line errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from skd.cli.main import main

from conftest import signal_skd_after_two_steps

TINY = ["--set", "data.n_train=48", "--set", "data.n_test=16", "--set", "model.width=4", "--set", "model.k=8",
        "--set", "loss.static_size=3", "--set", "train.batch_size=8"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def test_help_on_every_command(capsys) -> None:
    for cmd in ([], ["demo"], ["train"], ["swap"]):
        with pytest.raises(SystemExit) as e:
            main([*cmd, "--help"])
        assert e.value.code == 0
        assert "usage: skd" in capsys.readouterr().out


def test_demo_tiny_budget_writes_report(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "-q", "--out", str(out), "--minutes", "0.02", *TINY]) == 0
    for name in ("swap.png", "swap.gif", "eigenvalues.png", "losses.png", "samples.png", "summary.md", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    with Image.open(out / "swap.gif") as im:
        assert im.n_frames > 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train"]["steps"] >= 1 and np.isfinite(summary["test_reconstruction_mse"])
    # a second demo into the same folder replaces it; a foreign non-empty folder is refused
    assert main(["demo", "-q", "--out", str(out), "--minutes", "0.01", *TINY]) == 0
    other = tmp_path / "mine"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    capsys.readouterr()
    assert main(["demo", "-q", "--out", str(other), "--minutes", "0.01", *TINY]) == 2
    assert "not empty" in _one_error_line(capsys)
    assert (other / "precious.txt").read_text() == "keep me"


def test_train_resume_swap_round_trip(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", "-q", "--out", str(run), "--set", "train.max_steps=3", "--set", "train.epochs=0", *TINY]) == 0
    assert main(["train", "-q", "--resume", str(run), "--set", "train.max_steps=5"]) == 0
    assert json.loads((run / "result.json").read_text())["step"] == 5
    assert main(["swap", "-q", "--run", str(run), "--pairs", "0:1,2:3", "--fit-batch", "16"]) == 0
    assert (run / "swaps" / "swap.png").exists() and (run / "swaps" / "swap.gif").exists()
    assert main(["swap", "-q", "--run", str(run), "--pairs", "0:1", "--fit-batch", "32", "--static-split", "refined",
                 "--out", str(tmp_path / "ref")]) == 0
    assert json.loads((tmp_path / "ref" / "swap.json").read_text())["static_split"] == "refined"
    capsys.readouterr()
    assert main(["train", "-q", "--resume", str(run), "--set", "model.k=4"]) == 2
    assert "cannot change model.k" in _one_error_line(capsys)
    assert main(["swap", "-q", "--run", str(run), "--pairs", "0:99999"]) == 2
    assert "out of range" in _one_error_line(capsys)


def test_bad_config_key_is_one_line(tmp_path, capsys) -> None:
    assert main(["train", "--out", str(tmp_path / "r"), "--set", "model.widht=3"]) == 2
    line = _one_error_line(capsys)
    assert "unknown config key model.'widht'" in line
    assert not (tmp_path / "r").exists()  # nothing half-written


def test_malformed_data_file_is_one_line(tmp_path, capsys) -> None:
    bad = tmp_path / "broken.npy"
    bad.write_bytes(b"\x93NUMPY garbage that is not an array")
    assert main(["train", "--out", str(tmp_path / "r"), "--data", str(bad)]) == 2
    assert "broken.npy" in _one_error_line(capsys)
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((4, 5), dtype=np.float32))
    assert main(["train", "--out", str(tmp_path / "r"), "--data", str(wrong)]) == 2
    assert "wrong.npy" in _one_error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_missing_run_is_one_line(tmp_path, capsys) -> None:
    assert main(["swap", "--run", str(tmp_path / "nothing")]) == 2
    assert "checkpoint not found" in _one_error_line(capsys)


def test_user_arrays_train_with_mlp(tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(6)[None, :, None]
    x = (np.sin(0.5 * t + rng.uniform(0, 3, (40, 1, 1))) * rng.uniform(0.5, 1.5, (40, 1, 5))).astype(np.float32)
    np.savez(tmp_path / "vec.npz", x=x, amp=np.arange(40) % 3)
    run = tmp_path / "vrun"
    assert main(["train", "-q", "--data", str(tmp_path / "vec.npz"), "--out", str(run), "--set", "train.max_steps=4",
                 "--set", "train.epochs=0", "--set", "model.k=6", "--set", "loss.static_size=2", "--set", "train.batch_size=8"]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["kind"] == "mlp" and cfg["model"]["input_dim"] == 5


def test_eval_has_one_subcommand_per_mode(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["eval", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for mode in ("two-factor", "multifactor", "audio", "factors", "scorecard"):
        assert mode in out
    for mode in ("two-factor", "multifactor", "audio", "factors", "scorecard"):
        with pytest.raises(SystemExit) as e:
            main(["eval", mode, "--help"])
        assert e.value.code == 0 and f"usage: skd eval {mode}" in capsys.readouterr().out


def test_old_eval_spellings_are_hidden_aliases_with_one_deprecation_line() -> None:
    from skd.cli.eval_cmd import legacy_argv

    assert legacy_argv(["audio", "--run", "r"]) == (["audio", "--run", "r"], None)
    for flag, mode in (("--audio", "audio"), ("--factors", "factors"), ("--multifactor", "multifactor")):
        new, note = legacy_argv(["-q", flag, "--run", "r"])
        assert new == [mode, "-q", "--run", "r"] and "deprecated" in note and f"skd eval {mode}" in note
    new, note = legacy_argv(["--run", "r", "--judge", "j"])
    assert new[0] == "two-factor" and "deprecated" in note


def test_library_errors_name_no_flag_and_the_cli_adds_it(tmp_path, capsys) -> None:
    from skd.data import data_config_from_spec

    with pytest.raises(FileNotFoundError) as e:
        data_config_from_spec(str(tmp_path / "nothing"))
    assert "--" not in str(e.value) and e.value.param == "data"
    assert main(["judge", "train", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "j")]) == 2
    assert f"--data {tmp_path / 'nothing'}: no such file" in _one_error_line(capsys)


def test_demo_with_a_judge_scores_its_swaps_and_refuses_a_judge_of_other_data(tmp_path, capsys) -> None:
    judge_sets = ["judge.width=4", "judge.feature=8", "judge.head_hidden=8", "judge.batch_size=8", "judge.epochs=0",
                  "judge.max_steps=3", "data.n_train=48", "data.n_test=16"]
    sets = [a for s in judge_sets for a in ("--set", s)]
    assert main(["judge", "train", "-q", "--data", "shapes", "--out", str(tmp_path / "j"), *sets]) == 0
    out = tmp_path / "demo"
    assert main(["demo", "-q", "--out", str(out), "--minutes", "0.02", "--judge", str(tmp_path / "j"), *TINY]) == 0
    js = json.loads((out / "summary.json").read_text())["judge_swaps"]
    assert set(js["on_target"]) == {"shape", "color", "size", "background"} and set(js["motion_kept"]) == {"motion"}
    assert all(0.0 <= v <= 1.0 for part in ("on_target", "motion_kept", "reconstruction") for v in js[part].values())
    assert js["n"] >= 8 and len(js["judge_sha256"]) == 64
    assert "read by a judge of the built-in data" in (out / "summary.md").read_text()
    # a judge of 64×64 frames cannot read the 32×32 demo: one line, before any training
    assert main(["judge", "train", "-q", "--data", "shapes", "--out", str(tmp_path / "j64"), *sets,
                 "--set", "data.image_size=64"]) == 0
    capsys.readouterr()
    assert main(["demo", "-q", "--out", str(tmp_path / "d2"), "--minutes", "0.02", "--judge", str(tmp_path / "j64"),
                 *TINY]) == 2
    assert "judge reads frames" in _one_error_line(capsys)
    assert not (tmp_path / "d2").exists()


def test_swap_data_takes_the_same_spec_as_the_other_commands(tmp_path) -> None:
    run = tmp_path / "run"
    assert main(["train", "-q", "--out", str(run), "--set", "train.max_steps=2", "--set", "train.epochs=0", *TINY]) == 0
    assert main(["swap", "-q", "--run", str(run), "--data", "shapes", "--pairs", "0:1", "--fit-batch", "16",
                 "--out", str(tmp_path / "a")]) == 0
    x = np.random.default_rng(0).random((12, 8, 3, 32, 32), dtype=np.float32)
    np.save(tmp_path / "mine.npy", x)
    assert main(["swap", "-q", "--run", str(run), "--data", str(tmp_path / "mine.npy"), "--pairs", "0:11",
                 "--fit-batch", "12", "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "swap.png").exists() and (tmp_path / "b" / "swap.png").exists()


def test_sigterm_stops_skd_train_with_a_checkpoint_and_exit_130(tmp_path) -> None:
    """What a scheduler does before it kills a job: SIGTERM. The run saves where it is and says so."""
    import signal

    run = tmp_path / "run"
    rc, out, err = signal_skd_after_two_steps(
        ["train", "-q", "--out", str(run), "--set", "train.epochs=0", "--set", "train.max_steps=100000",
         "--set", "train.log_every=1", "--set", "train.threads=1", *TINY], run, signal.SIGTERM)
    assert rc == 130, err
    result = json.loads((run / "result.json").read_text())
    assert result["stopped"] == "interrupted" and result["step"] >= 2
    assert f"checkpoint of step {result['step']} saved" in out and "SIGTERM" in err
    assert main(["train", "-q", "--resume", str(run), "--set", f"train.max_steps={result['step'] + 1}"]) == 0
    assert json.loads((run / "result.json").read_text())["step"] == result["step"] + 1
