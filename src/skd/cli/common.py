"""Options shared by several subcommands."""
from __future__ import annotations

import argparse
import shlex
import sys

from ..config import Config, load_config


def add_config_arguments(p: argparse.ArgumentParser, default_preset: str | None) -> None:
    p.add_argument("--config", "-c", default=default_preset, metavar="FILE|PRESET",
                   help=f"TOML config file or preset name from configs/ (default: {default_preset or 'built-in defaults'})")
    p.add_argument("--set", "-s", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --set model.k=40 --set train.lr=3e-4 (repeatable)")


def config_from_args(args: argparse.Namespace, extra: list[str] | None = None) -> Config:
    """Preset/file, then shortcut flags (``extra``), then ``--set`` overrides, validated."""
    return load_config(args.config, [*(extra or []), *args.overrides])


def command_line() -> str:
    return "skd " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def common_parent() -> argparse.ArgumentParser:
    """--debug and -q/--quiet, accepted after any (sub)command too (`skd demo -q`)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks on errors")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars, warnings only")
    return common
