"""Fault battery (issue #20), replayed with real processes: ``pytest -m slow tests/test_fault_battery.py``.

- kill -9 at random moments (during steps and checkpoint writes), then resume, seven times:
  the final model and every logged loss equal an uninterrupted run's, bit for bit;
- two trainings (or two resumes) started together into one run folder: exactly one runs;
- a real full disk (a small tmpfs, needs root): one error line, the previous checkpoint kept;
- kill -9 during ``skd data sprites``: the next build removes the partial folder.

The quick, in-process versions of these cases are in tests/test_hardening.py.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from skd.files.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "data.n_train=48", "--set", "data.n_test=16", "--set", "model.width=4", "--set", "model.k=8",
        "--set", "loss.static_size=3", "--set", "train.batch_size=8", "--set", "train.epochs=0",
        "--set", "train.log_every=1", "--set", "train.threads=1", "--set", "train.device=\"cpu\""]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}


def _skd(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "skd.cli.main", *args], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def _losses(run: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


def test_seven_kill9_then_resume_give_the_uninterrupted_model(tmp_path) -> None:
    budget = ["--set", "train.max_steps=400", "--set", "train.checkpoint_every=5", *TINY]
    rc, err = _finish(_skd("train", "-q", "--out", str(tmp_path / "ref"), *budget))
    assert rc == 0, err
    run, rng, kills = tmp_path / "run", random.Random(20), 0
    proc = _skd("train", "-q", "--out", str(run), *budget)
    while True:
        deadline = time.time() + rng.uniform(2.0, 5.0)  # interpreter start ~2-3 s, then steps and writes
        while proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        if proc.poll() is None and kills < 7:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            if (run / "checkpoint.pt").exists():
                load_checkpoint(run / "checkpoint.pt")  # never unreadable
            proc = _skd("train", "-q", "--resume", str(run), *budget[:2])
            continue
        rc, err = _finish(proc)
        if rc == 0:
            break
        # a kill before the folder held anything is refused as 'no run to resume': start it again
        assert "no run to resume" in err, err
        proc = _skd("train", "-q", "--out", str(run), *budget)
    assert kills == 7
    ref, got = load_checkpoint(tmp_path / "ref" / "checkpoint.pt"), load_checkpoint(run / "checkpoint.pt")
    assert got["step"] == ref["step"] == 400
    assert all(torch.equal(ref["model"][k], got["model"][k]) for k in ref["model"])
    assert _losses(run) == _losses(tmp_path / "ref")  # every step logged once, with the same loss
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("resume", [False, True])
def test_two_runs_started_together_into_one_folder(tmp_path, resume) -> None:
    run = tmp_path / "run"
    if resume:
        rc, err = _finish(_skd("train", "-q", "--out", str(run), "--set", "train.max_steps=5", *TINY))
        assert rc == 0, err
        args = ["train", "-q", "--resume", str(run), "--set", "train.max_steps=60"]
    else:
        args = ["train", "-q", "--out", str(run), "--set", "train.max_steps=60", *TINY]
    procs = [_skd(*args), _skd(*args)]
    results = [_finish(p) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    loser = next(err for rc, err in results if rc == 2).strip().splitlines()
    assert len(loser) == 1 and "in use by another skd process" in loser[0]
    assert [s for s, _ in _losses(run)] == list(range(1, 61))  # one run's metrics, not interleaved
    saved = load_checkpoint(run / "checkpoint.pt")
    on_disk = json.loads((run / "config.json").read_text())
    assert saved["step"] == 60 and all(saved["config"][k] == on_disk[k] for k in ("model", "loss", "data"))


def _mount_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_previous(tmp_path) -> None:
    disk = tmp_path / "small"
    if not _mount_tmpfs(disk, "4m"):
        pytest.skip("needs root and tmpfs to make a real small file system")
    try:
        run = disk / "run"
        args = ["--set", "train.checkpoint_every=1", "--set", "train.log_every=1000"]
        rc, err = _finish(_skd("train", "-q", "--out", str(run), "--set", "train.max_steps=2", *TINY, *args))
        assert rc == 0, err
        size = (run / "checkpoint.pt").stat().st_size
        free = shutil.disk_usage(disk).free
        with open(disk / "filler", "wb") as f:  # leave room for small files, not for a checkpoint
            f.write(b"\0" * max(0, free - size // 4))
        rc, err = _finish(_skd("train", "-q", "--resume", str(run), "--set", "train.max_steps=6"))
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1, err
        assert "checkpoint.pt: no space left on the device (needs about" in lines[0]
        assert load_checkpoint(run / "checkpoint.pt")["step"] == 2
        assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
        (disk / "filler").unlink()
        rc, err = _finish(_skd("train", "-q", "--resume", str(run), "--set", "train.max_steps=6"))
        assert rc == 0, err  # with space again the run continues
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def _sheets() -> Path | None:
    env = os.environ.get("SKD_SPRITES_SHEETS")
    for cand in ([Path(env)] if env else []) + [ROOT.parent / "shared" / "data" / "lpc-sprites"]:
        if (cand / "body" / "0.png").is_file():
            return cand
    return None


def test_kill9_during_a_sprites_build_is_cleaned_by_the_next_build(tmp_path) -> None:
    sheets = _sheets()
    if sheets is None:
        pytest.skip("LPC sprite sheets not found (set SKD_SPRITES_SHEETS)")
    out = tmp_path / "data" / "sprites"
    # a build that stalls while writing its arrays, as a long float32 build does
    code = ("import sys, time\nimport skd.data.sprites as S\nreal = S._write_split\n"
            "def slow(*a, **k):\n    paths = real(*a, **k)\n    print('writing', flush=True)\n    time.sleep(600)\n"
            "S._write_split = slow\nS.build_sprites(sys.argv[1], sys.argv[2], limit_train=4, limit_test=2, progress=False)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(sheets), str(out)], env=_env(), stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = [p for p in out.parent.iterdir() if p.name.startswith(".sprites.partial-")]
    assert len(partial) == 1 and any(partial[0].iterdir())
    rc, err = _finish(_skd("data", "sprites", "--sheets", str(sheets), "--out", str(out), "--limit-train", "2",
                           "--limit-test", "2", "--dtype", "uint8"))
    assert rc == 0, err
    assert "partial build left by an interrupted build" in err
    assert sorted(p.name for p in out.parent.iterdir()) == ["sprites"]
