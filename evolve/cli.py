"""The command line: `python -m evolve <command>`. Bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

from experiments import profiles

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block
        raise UsageError(message)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def read_genome(path: str) -> str:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"genome {path!r} does not exist")
    if not p.is_file():
        raise UsageError(f"genome {path!r} is not a file")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"genome {path!r} is not UTF-8 text") from None


def profile_arg(name: str | None):
    try:
        return profiles.load(name or profiles.default_name())
    except profiles.UnknownProfile as e:
        raise UsageError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="evolve", description="Evolutionary search over train.py variants.")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    # Each command names its handler "module:function" (imported only when that command runs, so
    # `--help` and bad-input errors stay fast); the handler takes the parsed args and returns the exit code.
    train = commands.add_parser("train", help="train and score one genome")
    train.set_defaults(handler="evolve.commands:train")
    train.add_argument("genome", help="path to a train.py")
    train.add_argument("--profile", choices=profiles.NAMES, help="default: h100 with CUDA, else cpu")
    train.add_argument("--budget", type=positive_float, help="training seconds (default: the profile's)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads for the child")
    train.add_argument("--log", type=Path, help="keep the child's full log here")
    prepare = commands.add_parser("prepare", help="build the dataset, tokenizer and token caches")
    prepare.set_defaults(handler="evolve.commands:prepare")
    prepare.add_argument("--profile", choices=profiles.NAMES, help="take dataset/vocab from this profile")
    prepare.add_argument("--dataset", choices=("shakespeare", "climbmix"))
    prepare.add_argument("--vocab", type=int, help="vocabulary size including BOS")
    prepare.add_argument("--num-shards", type=int, help="climbmix training shards to download")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "handler", None):
            module, function = args.handler.split(":")
            return getattr(importlib.import_module(module), function)(args)
        raise UsageError("expected a command: train or prepare (see --help)")
    except UsageError as e:
        print(f"evolve: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("evolve: interrupted", file=sys.stderr)
        return 130
