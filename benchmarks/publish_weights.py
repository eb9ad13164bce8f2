"""Copy a run folder or a judge folder into ``weights/`` so that it can be committed and resumed.

    python benchmarks/publish_weights.py runs/sprites weights/sprites
    python benchmarks/publish_weights.py judges/sprites weights/judge

A run keeps everything ``skd train --resume`` needs (checkpoint with optimizer and RNG state,
config.json, data.json, metrics.jsonl, command.txt), so training continues exactly from the
published file. The data path stored in the run is replaced by ``--data-path`` (default
``data/sprites``, where the README builds the benchmark), so that a fresh clone resumes after
``skd data sprites --out data/sprites``; nothing else in the checkpoint changes. Published from a
training that is still running, the metrics stop at the checkpoint's step and a ``result.json``
of an earlier stop is left out. Every file is
written atomically and must stay within ``--max-mb`` (25 MB); the script prints the sha256 of
each file for the model card.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from skd.files.checkpoint import atomic_write_bytes, atomic_write_text, file_sha256, load_checkpoint, save_checkpoint
from skd.evaluation.judge import JUDGE_KIND
from skd.training.loop import CKPT_KIND
from skd.training.resume import truncate_metrics

RUN_FILES = ("config.json", "data.json", "metrics.jsonl", "command.txt", "result.json", "init.json")
JUDGE_FILES = ("judge.json",)


def _copy(src: Path, dst: Path) -> None:
    atomic_write_bytes(dst, lambda f: f.write(src.read_bytes()))


def publish(src: Path, dst: Path, data_path: str, max_mb: float) -> list[Path]:
    if (src / "checkpoint.pt").is_file():
        ckpt = load_checkpoint(src / "checkpoint.pt", kind=CKPT_KIND)
        config = ckpt.pop("config")
        old_path = config["data"]["path"]
        config["data"]["path"] = data_path
        for key in ("format", "version", "kind"):
            ckpt.pop(key)
        step = int(ckpt["step"])
        written = [save_checkpoint(dst / "checkpoint.pt", kind=CKPT_KIND, config=config, state=ckpt)]
        for name in RUN_FILES:
            if not (src / name).is_file():
                continue
            if name == "result.json" and json.loads((src / name).read_text()).get("step") != step:
                (dst / name).unlink(missing_ok=True)  # a training still running: its result is of an older stop
                continue
            if name == "config.json":
                cfg = json.loads((src / name).read_text())
                cfg["data"]["path"] = data_path
                written.append(atomic_write_text(dst / name, json.dumps(cfg, indent=2, sort_keys=True) + "\n"))
            elif name == "command.txt":  # the commands as a user would type them here
                text = (src / name).read_text()
                if old_path:
                    text = text.replace(old_path, data_path)
                written.append(atomic_write_text(dst / name, text.replace(str(src), str(dst))))
            else:
                _copy(src / name, dst / name)
                if name == "metrics.jsonl":  # lines logged after the checkpoint by a training still running
                    truncate_metrics(dst / name, step)
                written.append(dst / name)
    elif (src / "judge.pt").is_file():
        load_checkpoint(src / "judge.pt", kind=JUDGE_KIND)  # refuse anything that is not a safe judge
        written = []
        for name in ("judge.pt", *JUDGE_FILES):
            _copy(src / name, dst / name)
            written.append(dst / name)
        info = json.loads((dst / "judge.json").read_text())
        info["data"]["path"] = data_path
        info["sha256"] = file_sha256(dst / "judge.pt")
        atomic_write_text(dst / "judge.json", json.dumps(info, indent=2) + "\n")
    else:
        raise SystemExit(f"error: {src} holds neither a run (checkpoint.pt) nor a judge (judge.pt)")
    for path in written:
        mb = path.stat().st_size / 2**20
        if mb > max_mb:
            raise SystemExit(f"error: {path} is {mb:.1f} MB, over the {max_mb:g} MB limit for committed weights")
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", type=Path, help="run folder or judge folder")
    p.add_argument("dst", type=Path, help="folder under weights/")
    p.add_argument("--data-path", default="data/sprites", help="data path stored in the published config")
    p.add_argument("--max-mb", type=float, default=25.0)
    args = p.parse_args(argv)
    for path in publish(args.src, args.dst, args.data_path, args.max_mb):
        print(f"{path}  {path.stat().st_size / 2**20:6.2f} MB  sha256 {file_sha256(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
