"""Benchmark scripts run end to end on tiny configurations (their numbers are not checked)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_train_speed_prints_a_table_and_json(tmp_path) -> None:
    out = tmp_path / "speed.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "train_speed.py"), "--preset", "demo", "--set", "model.width=4",
         "--batch", "4", "--steps", "1", "--warmup", "1", "--threads", "1", "--only", "auto", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| baseline | 1 |" in proc.stdout and "| auto (bf16 + channels_last) | 1 |" in proc.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [r["name"] for r in rows] == ["baseline", "auto (bf16 + channels_last)"]
    assert all(r["step_s"] > 0 for r in rows) and rows[0]["flops"] > 0


def test_train_speed_rejects_an_unknown_configuration() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_speed.py"), "--only", "turbo"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "unknown configuration" in proc.stderr


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_espeak_corpus_builder_writes_a_loadable_seeded_corpus(tmp_path) -> None:
    from skd.config import DataConfig
    from skd.data import load_dataset

    script = str(ROOT / "benchmarks" / "build_espeak_corpus.py")
    for out in ("a", "b"):
        proc = subprocess.run([sys.executable, script, "--out", str(tmp_path / out), "--speakers", "3", "--words", "2",
                               "--takes", "2", "--seed", "7"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
    manifests = [json.loads((tmp_path / out / "manifest.json").read_text()) for out in ("a", "b")]
    assert manifests[0]["files"] == manifests[1]["files"] and len(manifests[0]["files"]) == 12
    root = tmp_path / "a"
    cfg = DataConfig(name="audio", path=str(root), pattern=(root / "PATTERN").read_text().strip(), sample_rate=8000,
                     seq_len=0, chunking="fit", split="values", split_group="take", test_values=(2,))
    train, test = load_dataset(cfg)
    assert len(train) == 6 and len(test) == 6 and {f.name for f in train.factors} == {"speaker", "word"}
    assert len({m["pitch"] for m in manifests[0]["files"]}) > 1  # takes vary


def _table_rows(stdout: str) -> dict[str, tuple[float, float]]:
    """The first table (per category) of profile_step.py's output."""
    rows: dict[str, tuple[float, float]] = {}
    for line in stdout.splitlines():
        if rows and not line.startswith("|"):
            break
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("category", "---"):
            rows[cells[0]] = (float(cells[1]), float(cells[2]))
    return rows


def test_profile_step_table_adds_up_and_writes_a_trace(tmp_path) -> None:
    trace = tmp_path / "trace.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "profile_step.py"), "--preset", "demo", "--set", "model.width=4",
         "--batch", "4", "--steps", "1", "--warmup", "1", "--threads", "1", "--trace", str(trace)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = _table_rows(proc.stdout)
    total = rows.pop("sum")
    assert abs(total[1] - 100.0) < 1.0 and abs(sum(pct for _, pct in rows.values()) - 100.0) < 1.0
    for part in ("encoder conv1 3->8", "decoder deconv4 8->3 backward", "enc lstm", "koopman fit", "spectral loss",
                 "optimizer", "data"):
        assert part in rows, (part, sorted(rows))
    assert json.loads(trace.read_text())["traceEvents"]


def test_paired_step_compares_two_trees_on_the_same_losses(tmp_path) -> None:
    src = str(ROOT / "src")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "paired_step.py"), "--before", src, "--after", src, "--preset", "demo",
         "--set", "model.width=4", "--batch", "4", "--steps", "1", "--rounds", "1", "--threads", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| after |" in proc.stdout and "loss part over the 2 steps: 0.00e+00" in proc.stdout


def _tiny_run(run: Path):
    """Train the tiny shapes model 2 steps into ``run`` (96 test sequences); its config."""
    import dataclasses

    from conftest import tiny_config
    from skd.data import load_dataset
    from skd.training.loop import train

    cfg = tiny_config(max_steps=2)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, n_test=96))
    train(cfg, run, load_dataset(cfg.data)[0], progress=False)
    return cfg


def test_part_probes_reads_every_factor_from_both_parts(tmp_path) -> None:
    cfg = _tiny_run(tmp_path / "run")
    out = tmp_path / "probes.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "part_probes.py"), "--run", str(tmp_path / "run"), "--data", "shapes",
         "--batch-size", "32", "--n", "96", "--threads", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["n"] == 96 and set(res["probes"]) == {"shape", "color", "size", "background", "motion"}
    assert all(0 <= r[p] <= 1 for r in res["probes"].values() for p in ("static", "dynamic", "chance"))
    assert "| motion |" in proc.stdout and -1 <= res["indep"]["batch"] <= 1
    assert all(v >= 0 and np.isfinite(v) for v in res["round_trip"].values()) and "swap round trip" in proc.stdout


def test_publish_weights_from_a_running_training_stops_at_the_checkpoint(tmp_path) -> None:
    import dataclasses

    from conftest import tiny_config
    from skd.data import load_dataset
    from skd.training.loop import train

    cfg = tiny_config(max_steps=4, checkpoint_every=2)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path="shapes"))
    run = tmp_path / "run"
    train(cfg, run, load_dataset(cfg.data)[0], progress=False)
    assert json.loads((run / "result.json").read_text())["step"] == 4
    # as a running training looks between checkpoints: metrics past the checkpoint, an older result
    with (run / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"step": 5, "loss": 1.0}) + "\n")
    (run / "result.json").write_text(json.dumps({"step": 2}))
    dst = tmp_path / "published"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "publish_weights.py"), str(run), str(dst),
                           "--data-path", "data/shapes"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    steps = [json.loads(line)["step"] for line in (dst / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 4 and not (dst / "result.json").exists()
    assert json.loads((dst / "config.json").read_text())["data"]["path"] == "data/shapes"


@pytest.mark.skipif(not (ROOT / "weights" / "judge-shapes" / "judge.pt").is_file(), reason="no shapes judge in weights/")
def test_swap_errors_breaks_the_errors_down_by_source(tmp_path) -> None:
    cfg = _tiny_run(tmp_path / "run")
    out = tmp_path / "errors.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "swap_errors.py"), "--run", str(tmp_path / "run"),
         "--judge", str(ROOT / "weights" / "judge-shapes"), "--data", "shapes", "--head", "color", "--by", "motion",
         "--batch-size", "32", "--n", "96", "--threads", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["n"] == 96 and res["errors"] == round((1 - res["accuracy"]) * 96)
    assert res["random_error_share"] == pytest.approx(1 / 5)  # 6 colours
    assert 0 <= res["errors_reading_the_dynamic_source"] <= 1
    # the per-class error rates average back to the overall error rate
    from skd.data import load_dataset

    test = load_dataset(cfg.data)[1]
    counts = np.bincount(test.labels["color"].numpy()[:96], minlength=6)
    names = [f for f in test.factors if f.name == "color"][0].values
    rates = res["error_by_class"]
    assert sum(rates[n] * counts[i] for i, n in enumerate(names) if n in rates) == pytest.approx(res["errors"])
    assert "| motion |" in proc.stdout and len(res["error_by_static_source"]) <= 9
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "swap_errors.py"), "--run", str(tmp_path / "run"),
                          "--judge", str(ROOT / "weights" / "judge-shapes"), "--data", "shapes", "--head", "hat",
                          "--batch-size", "32", "--n", "96"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "no factor 'hat'" in bad.stderr
