"""The speed benchmark runs end to end on a tiny configuration (its numbers are not checked)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
