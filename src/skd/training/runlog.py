"""What a training run reports while it runs: ``RUN/metrics.jsonl`` and the progress bar.

Loss parts of the finite steps are collected in a window; every ``log_every`` steps the window's
means become one JSON line of ``metrics.jsonl`` (appended and flushed, never rewritten) and the
bar's postfix. Only the main process writes and shows anything; the others keep the window too,
so every rank returns the same ``last`` means.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..files.checkpoint import DiskFullError, is_disk_full

SHOWN = ("loss", "rec", "pred_latent", "pred_ambient", "eig")  # the parts on the progress bar


class RunLog:
    """The progress bar and the open ``metrics.jsonl`` of one training attempt (close it when done)."""

    def __init__(self, path: Path, *, total: int, initial: int, show: bool, write: bool) -> None:
        """``total`` steps (0: unknown), ``initial`` already done; ``show`` the bar, ``write`` the file."""
        self.path = path
        self.bar = tqdm(total=total or None, initial=initial, disable=not show, desc="train", dynamic_ncols=True)
        self.file = open(path, "a") if write else None
        self.window: dict[str, list[float]] = {}
        self.last: dict[str, float] = {}  # means over the last closed window

    def add(self, values: dict[str, float]) -> None:
        """The loss parts of one finite step."""
        for key, val in values.items():
            self.window.setdefault(key, []).append(val)

    def close_window(self) -> dict[str, float]:
        """Means of the collected values (now :attr:`last`); a new window starts."""
        self.last = {key: sum(v) / len(v) for key, v in self.window.items()}
        self.window = {}
        return self.last

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line of metrics.jsonl (main process) and show :attr:`last` on the bar."""
        if self.file is not None:
            try:
                self.file.write(json.dumps(record) + "\n")
                self.file.flush()
            except OSError as err:
                if not is_disk_full(err):
                    raise
                raise DiskFullError(f"cannot append to {self.path}: no space left on the device "
                                    "(the last checkpoint is kept; free space, then resume)") from err
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in self.last.items() if k in SHOWN})

    def close(self) -> None:
        self.bar.close()
        if self.file is not None:
            self.file.close()
