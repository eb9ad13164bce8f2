"""Ctrl-C and SIGTERM stop training at the next step boundary, with a checkpoint.

A long ``skd train`` is stopped by hand (Ctrl-C), by a scheduler (SLURM and most job systems send
SIGTERM before they kill a job) or by ``kill``. Inside :class:`GracefulStop`, the first SIGINT or
SIGTERM only sets :attr:`GracefulStop.requested`; the training loop reads it before each step,
stops with the reason ``"interrupted"``, writes its checkpoint and ``result.json`` as at any
other stop, and ``skd train --resume`` continues exactly from there. A second signal aborts at
once (KeyboardInterrupt), losing at most the steps since the last periodic checkpoint, as before.

``skd train --nproc N`` puts its N processes in their own process group, so that a Ctrl-C in the
terminal reaches only the launcher, which passes the first signal on once to every process and
aborts them all on the second.

Handlers can only be installed from the main thread; elsewhere (a library user's worker
thread) the context does nothing and signals keep their previous behaviour.
"""
from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulStop:
    """Context manager: the first SIGINT / SIGTERM sets ``requested``, the second aborts."""

    def __init__(self, forward: Callable[[int], None] | None = None) -> None:
        """``forward``: called with the signal number of the first signal instead of announcing it
        (the launcher of :mod:`skd.training.launch` passes it on to its processes)."""
        self.requested = False
        self.signal_name = ""
        self._forward = forward
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        if self._forward is not None:
            self._forward(signum)
            return
        log.warning("%s: stopping after this step and saving a checkpoint (send it again to abort now)",
                    self.signal_name)

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()
