"""Hostile input and faults (issue #20): each test names the item it keeps fixed.

Quick cases only; the kill -9 / concurrent-run / real disk-full replays are in
tests/test_fault_battery.py (``-m slow``).
"""
from __future__ import annotations

import errno
import importlib
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from skd.data.audio.io import AudioError, read_audio
from skd.files.checkpoint import CheckpointError, atomic_write_text, load_checkpoint, save_checkpoint
from skd.cli.main import main
from skd.config import ConfigError, DataConfig, load_config
from skd.data import load_dataset
from skd.data.arrays import load_arrays
from skd.data.base import Factor
from skd.evaluation.judge import JudgeConfig
from skd.training.loop import TrainingError, load_run, train

from conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "data.n_train=48", "--set", "data.n_test=16", "--set", "model.width=4", "--set", "model.k=8",
        "--set", "loss.static_size=3", "--set", "train.batch_size=8", "--set", "train.epochs=0",
        "--set", "train.log_every=1"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def _train_cli(run: Path, *extra: str) -> int:
    return main(["train", "-q", "--out", str(run), "--set", "train.max_steps=3", *TINY, *extra])


@pytest.fixture(scope="module")
def shapes():
    return load_dataset(tiny_config().data)[0]


@pytest.fixture
def run3(tmp_path) -> Path:
    """A finished 3-step CLI run (checkpoint at step 3)."""
    run = tmp_path / "run"
    assert _train_cli(run, "--set", "train.checkpoint_every=3") == 0
    return run


def _params(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@contextmanager
def _claimed_elsewhere(run: Path):
    """Another process holds the run folder (as a live `skd train` would)."""
    code = ("import sys\nfrom skd.files.runfolder import claim_run_dir\nwith claim_run_dir(sys.argv[1]):\n"
            "    print('ready', flush=True)\n    sys.stdin.read()\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", code, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=env)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        yield
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


# --------------------------------------------------------------------------- 1. documented array formats


def _video(dtype: str, rng) -> np.ndarray:
    """(6, 3, 3, 32, 32) in the documented value range of ``dtype``."""
    v = rng.integers(0, 256, (6, 3, 3, 32, 32))
    return v.astype(np.uint8) if dtype == "uint8" else (v / 255.0).astype(dtype)


@pytest.mark.parametrize("container", ["npy", "npz"])
@pytest.mark.parametrize("layout", ["ntchw", "nthwc"])
@pytest.mark.parametrize("dtype", ["uint8", "float16", "float32", "float64"])
def test_item01_every_documented_dtype_layout_and_container_loads(tmp_path, container, layout, dtype) -> None:
    rng = np.random.default_rng(0)
    x = _video(dtype, rng)  # (N, T, C, H, W)
    stored = x if layout == "ntchw" else np.ascontiguousarray(x.transpose(0, 1, 3, 4, 2))
    path = tmp_path / f"v.{container}"
    np.save(path, stored) if container == "npy" else np.savez(path, x=stored)
    data = load_arrays(path)
    assert tuple(data.x.shape) == (6, 3, 3, 32, 32)
    got = data.batch(range(6)).numpy()
    want = x.astype(np.float64) / (255.0 if dtype == "uint8" else 1.0)
    assert np.abs(got - want).max() < 1e-3  # same frames, whatever the container


def test_item01_vector_series_npy_and_float32_video_train_from_the_cli(tmp_path, capsys) -> None:
    rng = np.random.default_rng(1)
    np.save(tmp_path / "vec.npy", rng.standard_normal((8, 4, 5)).astype(np.float32))
    assert load_arrays(tmp_path / "vec.npy").x.shape == (8, 4, 5)
    np.save(tmp_path / "good.npy", _video("float32", rng)[:, :, :, :, :])
    assert _train_cli(tmp_path / "r", "--data", str(tmp_path / "good.npy"), "--set", "train.batch_size=4") == 0


# --------------------------------------------------------------------------- 2, 3. one process per run folder


def test_item02_a_second_training_into_a_claimed_folder_is_refused(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    with _claimed_elsewhere(run):
        assert _train_cli(run) == 2
        assert "in use by another skd process" in _one_error_line(capsys)
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing written into the other's run
    assert _train_cli(run) == 0  # free again once the holder is gone


def test_item03_a_second_resume_of_a_running_run_is_refused(run3, capsys) -> None:
    before = (run3 / "metrics.jsonl").read_text()
    with _claimed_elsewhere(run3):
        assert main(["train", "-q", "--resume", str(run3), "--set", "train.max_steps=6"]) == 2
        assert "in use by another skd process" in _one_error_line(capsys)
    assert (run3 / "metrics.jsonl").read_text() == before
    assert main(["train", "-q", "--resume", str(run3), "--set", "train.max_steps=6"]) == 0
    steps = [json.loads(s)["step"] for s in (run3 / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 7))


# --------------------------------------------------------------------------- 4, 10, 22, 23. config values


@pytest.mark.parametrize("override", ["train.lr=inf", "train.minutes=nan", "loss.ridge=nan", "loss.eps=-inf",
                                      "model.dropout=nan", "train.lr_gamma=nan"])
def test_item04_10_22_non_finite_config_floats_are_refused(override) -> None:
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"{key}=.* must be a finite number"):
        load_config("demo", [override])
    with pytest.raises(ConfigError, match="judge.lr=nan must be a finite number"):
        JudgeConfig(lr=float("nan"))


def test_item04_parameters_that_overflow_stop_training_and_keep_the_good_checkpoint(tmp_path, shapes) -> None:
    run = tmp_path / "run"
    cfg = tiny_config(max_steps=6, checkpoint_every=2)
    object.__setattr__(cfg.train, "lr", float("inf"))  # as if validation had been bypassed (library use)
    with pytest.raises(TrainingError, match="parameters became non-finite in the optimizer step at step 1"):
        train(cfg, run, shapes, progress=False)
    ck = load_checkpoint(run / "checkpoint.pt")
    assert all(torch.isfinite(v).all() for v in ck["model"].values())


def test_item10_22_23_cli_rejects_bad_values_before_writing(tmp_path, capsys) -> None:
    for args, needle in ((["--minutes", "nan"], "train.minutes=nan"), (["--set", "loss.ridge=nan"], "loss.ridge=nan"),
                         (["--set", "train.threads=-1"], "train.threads=-1"), (["--set", "train.lr=inf"], "train.lr=inf")):
        assert _train_cli(tmp_path / "r", *args) == 2
        assert needle in _one_error_line(capsys)
        assert not (tmp_path / "r").exists()


def test_item23_negative_threads_are_refused() -> None:
    with pytest.raises(ConfigError, match="train.threads=-1 must be >= 0"):
        load_config(None, ["train.threads=-1"])
    with pytest.raises(ConfigError, match="judge.threads=-2 must be >= 0"):
        JudgeConfig(threads=-2)


# --------------------------------------------------------------------------- 5. crash before the first checkpoint


def test_item05_a_crash_before_the_first_checkpoint_resumes_exactly(tmp_path, shapes, monkeypatch) -> None:
    T = importlib.import_module("skd.training.loop")  # the module (skd.train is also the function)

    full = train(tiny_config(max_steps=4, checkpoint_every=100), tmp_path / "full", shapes, progress=False)
    real, calls = T.compute_losses, []

    def crash_on_third(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process dies between checkpoints
        return real(*a, **k)

    monkeypatch.setattr(T, "compute_losses", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(max_steps=4, checkpoint_every=100), tmp_path / "half", shapes, progress=False)
    monkeypatch.setattr(T, "compute_losses", real)
    assert load_checkpoint(tmp_path / "half" / "checkpoint.pt")["step"] == 0
    resumed = train(tiny_config(max_steps=4, checkpoint_every=100), tmp_path / "half", shapes, resume=True, progress=False)
    assert torch.equal(_params(full.model), _params(resumed.model))
    steps = [json.loads(s)["step"] for s in (tmp_path / "half" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_item05_an_early_non_finite_stop_leaves_a_resumable_folder(tmp_path, shapes) -> None:
    cfg = tiny_config(max_steps=50, max_bad_steps=2, checkpoint_every=100, lr=1e30)  # explodes within a few steps
    with pytest.raises(TrainingError, match="consecutive non-finite losses|parameters became non-finite"):
        train(cfg, tmp_path / "run", shapes, progress=False)
    ck = load_checkpoint(tmp_path / "run" / "checkpoint.pt")  # the step-0 checkpoint: --resume has a start
    assert ck["step"] == 0 and all(torch.isfinite(v).all() for v in ck["model"].values())


def test_item05_a_folder_with_only_its_config_resumes_from_step_0(run3, capsys) -> None:
    (run3 / "checkpoint.pt").unlink()  # as left by a crash before the first checkpoint
    assert main(["train", "-q", "--resume", str(run3), "--set", "train.max_steps=2"]) == 0
    assert json.loads((run3 / "result.json").read_text())["step"] == 2
    assert [json.loads(s)["step"] for s in (run3 / "metrics.jsonl").read_text().splitlines()] == [1, 2]


# --------------------------------------------------------------------------- 6. torn metrics line


def test_item06_a_torn_last_metrics_line_is_dropped_on_resume(run3, caplog) -> None:
    with open(run3 / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "epoch": 0, "lo')  # power cut in the middle of a line
    assert main(["train", "-q", "--resume", str(run3), "--set", "train.max_steps=5"]) == 0
    assert "metrics.jsonl: dropped a torn last line" in caplog.text
    steps = [json.loads(s)["step"] for s in (run3 / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]


def test_item06_a_corrupt_line_before_the_end_names_the_file(run3, capsys) -> None:
    lines = (run3 / "metrics.jsonl").read_text().splitlines()
    (run3 / "metrics.jsonl").write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    assert main(["train", "-q", "--resume", str(run3), "--set", "train.max_steps=5"]) == 2
    assert "metrics.jsonl: line 2 is not a JSON record" in _one_error_line(capsys)


# --------------------------------------------------------------------------- 7. disk full


def test_item07_disk_full_during_a_checkpoint_is_one_line_and_keeps_the_previous(run3, capsys, monkeypatch) -> None:
    import skd.files.checkpoint as C

    def full_disk(obj, f, *a, **k):
        f.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(C.torch, "save", full_disk)
    assert main(["train", "-q", "--resume", str(run3), "--set", "train.max_steps=6"]) == 2
    line = _one_error_line(capsys)
    assert "checkpoint.pt: no space left on the device (needs about" in line and "free)" in line
    monkeypatch.undo()
    assert load_checkpoint(run3 / "checkpoint.pt")["step"] == 3  # the previous checkpoint is intact
    assert not [p for p in run3.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- 8, 17, 26. checkpoints that lie


def _forge(run: Path, edit) -> None:
    ck = load_checkpoint(run / "checkpoint.pt")
    config = ck.pop("config")
    edit(config, ck)
    for key in ("format", "version", "kind"):
        ck.pop(key)
    save_checkpoint(run / "checkpoint.pt", kind="koopman-ae", config=config, state=ck)


def test_item08_a_config_that_disagrees_with_the_weights_is_one_line(run3, capsys) -> None:
    _forge(run3, lambda config, ck: config["model"].update(k=6))
    assert main(["swap", "-q", "--run", str(run3), "--pairs", "0:1"]) == 2
    line = _one_error_line(capsys)
    assert "checkpoint.pt: model tensor" in line and "config and weights disagree" in line
    cfg = json.loads((run3 / "config.json").read_text())
    cfg["model"]["k"] = 6  # consistent with the forged checkpoint, so only the weights disagree
    (run3 / "config.json").write_text(json.dumps(cfg))
    assert main(["train", "-q", "--resume", str(run3), "--set", "train.max_steps=5"]) == 2
    assert "config and weights disagree" in _one_error_line(capsys)


def test_item17_a_checkpoint_config_that_is_not_text_is_one_line(tmp_path, capsys) -> None:
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": "skd-checkpoint", "version": 1, "kind": "koopman-ae", "config": 12345}, path)
    with pytest.raises(CheckpointError, match="its config is a int, not JSON text"):
        load_checkpoint(path)
    assert main(["swap", "-q", "--run", str(tmp_path)]) == 2
    assert "checkpoint.pt: corrupt checkpoint" in _one_error_line(capsys)
    torch.save({"format": "skd-checkpoint", "version": 1, "kind": "koopman-ae", "config": "[1, 2]"}, path)
    with pytest.raises(CheckpointError, match="not a table"):
        load_checkpoint(path)


def test_item26_a_malicious_checkpoint_is_refused_in_plain_words(tmp_path, capsys) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"format": "skd-checkpoint", "version": 1, "model": Evil()}, tmp_path / "checkpoint.pt")
    assert main(["swap", "-q", "--run", str(tmp_path)]) == 2
    line = _one_error_line(capsys)
    assert "is not a safe skd checkpoint" in line and "was not loaded" in line
    assert "weights_only" not in line and "pwned" not in line


# --------------------------------------------------------------------------- 9. device


def test_item09_an_unknown_device_is_one_line(tmp_path, capsys) -> None:
    assert _train_cli(tmp_path / "r", "--device", "bogus") == 2
    assert "train.device='bogus' is not a device" in _one_error_line(capsys)
    assert main(["judge", "train", "--data", "shapes", "--out", str(tmp_path / "j"), "--device", "bogus"]) == 2
    assert "device='bogus' is not a device" in _one_error_line(capsys)


# --------------------------------------------------------------------------- 11-16. bounded allocations


def test_item11_an_array_larger_than_memory_is_one_line(tmp_path, capsys, monkeypatch) -> None:
    from skd.files import limits

    np.save(tmp_path / "big.npy", np.zeros((40, 4, 3, 32, 32), dtype=np.uint8))  # 480 KiB
    monkeypatch.setattr(limits, "memory_budget", lambda: 100_000)
    assert main(["train", "-q", "--data", str(tmp_path / "big.npy"), "--out", str(tmp_path / "r")]) == 2
    line = _one_error_line(capsys)
    assert "big.npy: x of shape (40, 4, 3, 32, 32) as uint8 needs 480.0 KiB of memory" in line
    assert "97.7 KiB is available" in line
    assert not (tmp_path / "r").exists()


def _lying_header(shape: tuple[int, ...]) -> bytes:
    head = {"descr": "<f4", "fortran_order": False, "shape": shape}
    text = repr(head).encode()
    text += b" " * (63 - (10 + len(text)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


def test_item12_a_small_file_claiming_terabytes_is_refused_before_allocating(tmp_path) -> None:
    shape = (1_000_000, 8, 3, 64, 300)  # 1.7 TiB of float32
    (tmp_path / "bomb.npy").write_bytes(_lying_header(shape) + b"\0" * 900)
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w") as z:
        z.writestr("x.npy", _lying_header(shape) + b"\0" * 900)
    for name in ("bomb.npy", "bomb.npz"):
        with pytest.raises(ValueError, match=rf"{name}.*header declares an array of shape \(1000000, 8, 3, 64, 300\)"):
            load_arrays(tmp_path / name)
    assert (tmp_path / "bomb.npy").stat().st_size < 2000


def test_item13_a_huge_label_id_is_refused(tmp_path, capsys) -> None:
    x = np.zeros((16, 3, 3, 32, 32), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, shade=np.array([0] * 15 + [2_000_000_000]))
    with pytest.raises(ValueError, match=r"d.npz\['shade'\]: labels declare 2000000001 classes"):
        load_arrays(tmp_path / "d.npz")
    assert main(["judge", "train", "--data", str(tmp_path / "d.npz"), "--out", str(tmp_path / "j")]) == 2
    assert "2000000001 classes" in _one_error_line(capsys)
    from skd.evaluation.judge import check_judge_fits
    from skd.files.limits import ResourceLimitError

    with pytest.raises(ResourceLimitError, match="shade: 2000000000 classes"):  # a factor declared elsewhere
        check_judge_fits(JudgeConfig(), (3, 32, 32), (Factor("shade", 2_000_000_000, "static"),), 4, "training")


def test_item14_a_model_too_large_for_memory_is_one_line(tmp_path, capsys) -> None:
    assert _train_cli(tmp_path / "r", "--set", "model.width=100000") == 2
    line = _one_error_line(capsys)
    assert "model.width=100000" in line and "is available" in line


def _wav(path: Path, rate: int, n: int = 400) -> Path:
    pcm = (np.sin(np.arange(n) * 0.1) * 3000).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, (rate * 2) & 0xFFFFFFFF, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def test_item15_a_wav_rate_of_4_ghz_is_refused_before_resampling(tmp_path) -> None:
    path = _wav(tmp_path / "odd.wav", 4_294_967_291)
    with pytest.raises(AudioError, match=r"odd.wav: resampling 400 samples from 4294967291 Hz to 16000 Hz .* needs"):
        read_audio(path, 16000)
    x, sr = read_audio(_wav(tmp_path / "ok.wav", 8000), 16000)  # an ordinary rate still resamples
    assert sr == 16000 and x.size == 800


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_item16_a_decompression_bomb_sheet_is_one_line(tmp_path) -> None:
    from skd.data.sprites import _load_sheet

    (tmp_path / "bomb.png").write_bytes(_png_header(100_000, 100_000))
    with pytest.raises(ValueError, match=r"bomb.png: sprite sheet refused as a decompression bomb"):
        _load_sheet(tmp_path / "bomb.png")


# --------------------------------------------------------------------------- 18. stale temporary files


def test_item18_stale_temp_files_are_removed_when_a_run_resumes(run3, caplog) -> None:
    stale = [run3 / ".checkpoint.pt.k9x1.tmp", run3 / ".metrics.jsonl.abc.tmp"]
    stale[0].write_bytes(b"\0" * 10_000)  # a partial checkpoint write
    stale[1].write_text("{}")
    keep = run3 / "notes.tmp"  # not one of ours: left alone
    keep.write_text("mine")
    assert main(["train", "-q", "--resume", str(run3), "--set", "train.max_steps=4"]) == 0
    assert not any(p.exists() for p in stale) and keep.exists()
    assert "removed 2 stale temporary file(s) (10002 bytes)" in caplog.text


# --------------------------------------------------------------------------- 20. train vs test data


def test_item20_test_data_with_other_frames_is_refused_at_load(tmp_path, capsys) -> None:
    np.save(tmp_path / "tr.npy", np.zeros((16, 3, 3, 32, 32), dtype=np.uint8))
    np.save(tmp_path / "te.npy", np.zeros((4, 3, 3, 64, 64), dtype=np.uint8))
    cfg = DataConfig(name="arrays", path=str(tmp_path / "tr.npy"), test_path=str(tmp_path / "te.npy"))
    with pytest.raises(ValueError, match=r"te.npy: test sequences have frames of shape \(3, 64, 64\).*\(3, 32, 32\)"):
        load_dataset(cfg)
    assert _train_cli(tmp_path / "r", "--data", str(tmp_path / "tr.npy"),
                      "--set", f"data.test_path={json.dumps(str(tmp_path / 'te.npy'))}") == 2
    assert "te.npy: test sequences" in _one_error_line(capsys)


# --------------------------------------------------------------------------- 21. edited config.json


def test_item21_an_edited_config_json_is_refused_on_resume(run3, capsys, caplog) -> None:
    cfg = json.loads((run3 / "config.json").read_text())
    cfg["model"]["k"], cfg["loss"]["w_rec"] = 12, 3.0
    (run3 / "config.json").write_text(json.dumps(cfg))
    assert main(["train", "-q", "--resume", str(run3), "--set", "train.max_steps=5"]) == 2
    line = _one_error_line(capsys)
    assert "config.json disagrees with" in line and "loss.w_rec: 3.0 in config.json, 15.0 in the checkpoint" in line
    assert "model.k: 12 in config.json, 8 in the checkpoint" in line and "only train.* settings may change" in line
    cfg["model"]["k"], cfg["loss"]["w_rec"], cfg["train"]["lr"] = 8, 15.0, 0.5  # a train.* edit is allowed...
    (run3 / "config.json").write_text(json.dumps(cfg))
    assert main(["train", "-q", "--resume", str(run3), "--set", "train.max_steps=5"]) == 0
    assert "train.lr=0.5 (keeps 0.001)" in caplog.text  # ...but a value a resume cannot apply is named


# --------------------------------------------------------------------------- 24. swap arguments


def test_item24_swap_with_a_negative_pair_count_is_one_line_and_writes_nothing(run3, capsys) -> None:
    assert main(["swap", "-q", "--run", str(run3), "--n-pairs", "-3"]) == 2
    assert "--n-pairs=-3 must be >= 1" in _one_error_line(capsys)
    assert not (run3 / "swaps").exists()
    from skd.pipelines.pairs import pick_pairs

    with pytest.raises(ValueError, match="n=0 must be an integer >= 1"):
        pick_pairs(load_dataset(tiny_config().data)[1], 0)


# --------------------------------------------------------------------------- 25. permissions


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_item25_atomic_writes_respect_the_umask(tmp_path, mask) -> None:
    old = os.umask(mask)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        save_checkpoint(tmp_path / "c.pt", kind="thing", config={}, state={})
        with open(tmp_path / "plain", "w") as f:  # what any other new file gets
            f.write("x")
    finally:
        os.umask(old)
    want = 0o666 & ~mask
    for name in ("a.json", "c.pt", "plain"):
        assert (tmp_path / name).stat().st_mode & 0o777 == want, name


def test_item25_run_folders_are_readable_by_the_group(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        assert _train_cli(tmp_path / "r") == 0
    finally:
        os.umask(old)
    for name in ("config.json", "checkpoint.pt", "result.json", "data.json", "metrics.jsonl"):
        assert (tmp_path / "r" / name).stat().st_mode & 0o044 == 0o044, name


# --------------------------------------------------------------------------- checkpoints still load


def test_model_loaded_through_the_checked_path_matches(run3) -> None:
    model, cfg = load_run(run3)
    ck = load_checkpoint(run3 / "checkpoint.pt")
    assert all(torch.equal(v, ck["model"][k]) for k, v in model.state_dict().items())
    assert json.loads(cfg.to_json()) == ck["config"]
