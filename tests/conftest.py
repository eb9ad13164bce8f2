from __future__ import annotations

import pytest
import torch

from skd.config import Config, DataConfig, LossConfig, ModelConfig, TrainConfig


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)
    yield


def tiny_config(**train) -> Config:
    """A model small enough for CPU tests on 32×32 shapes."""
    tc = dict(epochs=0, max_steps=6, batch_size=8, lr=1e-3, seed=0, checkpoint_every=3, log_every=1, device="cpu")
    tc.update(train)
    return Config(
        model=ModelConfig(image_size=32, width=4, k=8, dropout=0.2),
        loss=LossConfig(static_size=3),
        train=TrainConfig(**tc),
        data=DataConfig(name="shapes", n_train=48, n_test=16, image_size=32),
    )


JUDGE_TINY = ["judge.width=4", "judge.feature=8", "judge.lstm_hidden=8", "judge.head_hidden=8", "judge.batch_size=8",
              "judge.epochs=0", "judge.max_steps=4"]


def tiny_world(root):
    """A 3-step run and a 4-step judge on tiny shapes data in ``root``: (run, judge result, train, test)."""
    from skd.data import load_dataset
    from skd.evaluation.judge import judge_setup, train_judge
    from skd.training.loop import train

    cfg = tiny_config(max_steps=3)
    tr, te = load_dataset(cfg.data)
    run = train(cfg, root / "run", tr, progress=False)
    setup = judge_setup(JUDGE_TINY, {"data": {"name": "shapes", "n_train": 48, "n_test": 16}})
    jr = train_judge(setup, tr, te, root / "judge", progress=False)
    return run, jr, tr, te


def signal_skd_after_two_steps(args: list[str], run_dir, signum, timeout: float = 180.0):
    """Start ``skd ARGS`` in a subprocess, send it ``signum`` once ``run_dir/metrics.jsonl`` has two
    lines (use ``train.log_every=1``); (exit status, stdout, stderr)."""
    import subprocess
    import sys
    import time

    code = "import sys; from skd.cli.main import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    metrics = run_dir / "metrics.jsonl"
    try:
        deadline = time.time() + timeout
        while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 2):
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        if proc.poll() is None:
            proc.send_signal(signum)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err
