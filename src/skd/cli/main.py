"""`skd` command line: one entry point, one subcommand per task.

Errors a user can fix (bad config key, malformed data, missing run) print ONE line
``skd <command>: error: ...`` to stderr and exit with status 2; tracebacks only with --debug.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from ..files.checkpoint import CheckpointError
from ..config import ConfigError
from ..training.launch import LaunchError
from ..files.runfolder import FolderLockedError
from ..training.loop import TrainingError
from .common import common_parent
from . import average_cmd, data_cmd, demo_cmd, eval_cmd, factors_cmd, judge_cmd, morph_cmd, scorecard_cmd, swap_cmd, train_cmd

COMMANDS = {"demo": demo_cmd, "train": train_cmd, "swap": swap_cmd, "data": data_cmd,
            "judge": judge_cmd, "eval": eval_cmd, "factors": factors_cmd, "morph": morph_cmd,
            "scorecard": scorecard_cmd, "average": average_cmd}
# library parameter (tagged with skd.config.about) -> the flag that sets it, per command ("*": all)
FLAGS = {"*": {"data": "--data", "out_dir": "--out", "run_dir": "--out"},
         "swap": {"groups": "--factors"}, "morph": {"groups": "--order"}}
FLAG_HINTS = {"factors": "run `skd factors --run RUN` first", "run_dir": "use --resume to continue it"}
USER_ERRORS = (ConfigError, CheckpointError, TrainingError, LaunchError, FolderLockedError, ValueError, FileNotFoundError, FileExistsError,
               NotADirectoryError, IsADirectoryError, OSError, KeyError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skd",
        description="Structured Koopman Disentanglement: learn static and dynamic factors of sequences, then swap and sample them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    common = common_parent()  # the same flags after the subcommand (`skd demo -q`)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in COMMANDS.items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.DESCRIPTION, parents=[common],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _name=name)
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


def flag_message(command: str, err: BaseException, msg: str) -> str:
    """Name the flag behind a library error tagged with the parameter it is about."""
    param = getattr(err, "param", None)
    if param is None:
        return msg
    flag = FLAGS.get(command, {}).get(param) or FLAGS["*"].get(param)
    hint = FLAG_HINTS.get(param)
    return (f"{flag} {msg}" if flag else msg) + (f"; {hint}" if hint else "")


def _modernise(argv: list[str]) -> list[str]:
    """Old spellings kept for one release (hidden): `skd eval --audio ...` -> `skd eval audio ...`,
    `skd eval --run ...` -> `skd eval two-factor --run ...`; one deprecation line on stderr."""
    i = next((n for n, a in enumerate(argv) if not a.startswith("-")), None)
    if i is None or argv[i] != "eval":
        return argv
    rest, note = eval_cmd.legacy_argv(argv[i + 1:])
    if note:
        print(note, file=sys.stderr)
    return [*argv[: i + 1], *rest]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_modernise(list(sys.argv[1:] if argv is None else argv)))
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print(f"skd {args._name}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        if args.debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, KeyError):
            msg = f"missing key {msg}"
        msg = flag_message(args._name, e, msg)
        if os.environ.get("WORLD_SIZE", "1") not in ("", "0", "1") and "RANK" in os.environ:  # one line per process
            msg = f"[rank {os.environ['RANK']}] {msg}"
        print(f"skd {args._name}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
