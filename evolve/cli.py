"""The command line: `python -m evolve <command>`. Bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import difflib
import importlib
import logging
import os
import sys
from pathlib import Path

from evolve.strategies import STRATEGIES
from experiments import profiles
from fitness.interface import check_genome

EXIT_USAGE = 2
COMMANDS = ("train", "prepare", "lineage", "show", "replay", "report", "status", "runs")


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


class StartupError(Exception):
    """The machine could not start what a command needs (not the input's fault): one line, exit code 1."""


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
        source = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"genome {path!r} is not UTF-8 text") from None
    problem = check_genome(source)
    if problem and problem.startswith("syntax error"):  # the rest of the contract is the trainer's to judge
        raise UsageError(f"genome {path!r} is not valid Python: {problem}")
    return source


def profile_arg(name: str | None):
    try:
        return profiles.load(name or profiles.default_name())
    except profiles.UnknownProfile as e:
        raise UsageError(str(e)) from None


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The run's options, on the top-level parser: `python -m evolve --population 16 --generations 50`."""
    parser.set_defaults(handler="evolve.run:main")
    g = parser.add_argument_group("the run (no command)")
    g.add_argument("--population", type=int, help="survivors kept, and children per generation (default 16)")
    g.add_argument("--generations", type=int, default=50, help="generations to evolve (a resumed run continues)")
    g.add_argument("--profile", choices=profiles.NAMES, help="default: h100 with CUDA, else cpu")
    g.add_argument("--budget", type=positive_float, help="training seconds per child (default: the profile's)")
    g.add_argument("--mutators", default="auto", help="auto, llm, offline, or a mix like llm:0.7,offline:0.3")
    g.add_argument("--model", help="the LLM for mutate/crossover/repair, any model id (default claude-sonnet-5-5)")
    g.add_argument("--price", help="the model's $ per million tokens, IN/OUT (e.g. 3/15); default: known prices")
    g.add_argument("--max-tokens", help="the LLM's output token limit per reply (default 16000)")
    g.add_argument("--llm-concurrency", help="LLM requests in flight at once (default 4)")
    g.add_argument("--llm-timeout", help="seconds for one streamed LLM reply (default 300)")
    g.add_argument("--run-dir", type=Path, help="default: runs/<profile>-<date>-<time>; an existing run resumes")
    g.add_argument("--address", help="join a Ray cluster: auto or HOST:PORT (default: start a local Ray)")
    g.add_argument("--seed-genome", help="the train.py to start from (default trainer/seeds/train.py)")
    g.add_argument("--program", help="research program for the LLM (default experiments/program.md)")
    g.add_argument("--max-hours", type=float, help="stop starting children after this long")
    g.add_argument("--max-llm-cost", type=float, help="stop once the run's LLM spend reaches this many dollars")
    g.add_argument("--noise-repeats", type=int, default=3, help="evaluations of the seed that measure noise")
    g.add_argument("--cpus-per-child", type=int, help="cores per child (CPU default: all; with GPUs: 1)")
    g.add_argument("--workers", type=int, help="trainer workers (default: one per GPU, or per cpus-per-child)")
    g.add_argument("--dashboard", action="store_true", help="start Ray's dashboard with the local Ray")
    g.add_argument("--local-gpus", type=int, help="GPUs to declare to the local Ray (testing, benchmarks)")
    g.add_argument("--lookahead", type=int, help="proposals made beyond idle workers (default workers/2, offline 0)")
    g.add_argument(
        "--paired",
        action=argparse.BooleanOptionalAction,
        help="compare children by their seed-0 score alone, no repeats mid-run; the end-of-run confirmation "
        "decides the best (default: on). --no-paired: averages over repeats at other seeds, with a noise gate",
    )
    g.add_argument("--repeat-share", type=float, help="with --no-paired: repeat evaluations per child, at most (0.5)")
    g.add_argument("--seed", type=int, default=0, help="seeds parent selection and the operators")
    g.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="evolve (default), or a baseline: greedy (one child at a time), parallel-greedy, independent, random",
    )
    g.add_argument(
        "--prune",
        action=argparse.BooleanOptionalAction,
        help="stop a child whose training loss trails its parent's at the same point of the budget (default: on)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="evolve", description="Evolutionary search over train.py variants.")
    add_run_arguments(parser)
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    # Each command names its handler "module:function" (imported only when that command runs, so
    # `--help` and bad-input errors stay fast); the handler takes the parsed args and returns the exit code.
    train = commands.add_parser("train", help="train and score one genome")
    train.set_defaults(handler="evolve.commands:train")
    train.add_argument("genome", help="path to a train.py")
    train.add_argument("--profile", choices=profiles.NAMES, help="default: h100 with CUDA, else cpu")
    train.add_argument("--budget", type=positive_float, help="training seconds (default: the profile's)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--threads",
        type=int,
        help="CPU threads for the child (default: 1 on a CPU, all cores with CUDA)",
    )
    train.add_argument("--log", type=Path, help="keep the child's full log here")
    prepare = commands.add_parser("prepare", help="build the dataset, tokenizer and token caches")
    prepare.set_defaults(handler="evolve.commands:prepare")
    prepare.add_argument("--profile", choices=profiles.NAMES, help="take dataset/vocab from this profile")
    prepare.add_argument("--dataset", choices=("shakespeare", "climbmix"))
    prepare.add_argument("--vocab", type=int, help="vocabulary size including BOS")
    prepare.add_argument("--num-shards", type=int, help="climbmix training shards to download")
    add_inspection_commands(commands)
    add_autoresearch_commands(commands)
    return parser


def add_autoresearch_commands(commands) -> None:
    """import-autoresearch and export-autoresearch: to and from an autoresearch checkout."""
    imports = commands.add_parser("import-autoresearch", help="a new run seeded from an autoresearch checkout")
    imports.set_defaults(handler="evolve.autoresearch:main")
    imports.add_argument("dir", help="the autoresearch git checkout (with results.tsv)")
    imports.add_argument("--run-dir", type=Path, required=True, help="the new run directory")
    exports = commands.add_parser("export-autoresearch", help="a genome as a train.py for autoresearch")
    exports.set_defaults(handler="evolve.autoresearch_export:main")
    exports.add_argument("genome", help="a genome id or unique prefix, `best` or `seed`")
    exports.add_argument("--run-dir", required=True, help="the run directory")
    exports.add_argument("--out", help="write here (default: stdout)")


def add_inspection_commands(commands) -> None:
    """lineage, show, replay, report, status: they read a run directory (replay also records into it); runs."""
    run_dir = dict(help="the run directory (default: the latest under runs/)")
    genome_help = "a genome id or unique prefix, `best` or `seed`"
    lineage = commands.add_parser("lineage", help="a genome's ancestry as a tree (or an image with --out)")
    lineage.set_defaults(handler="evolve.lineage_view:main")
    lineage.add_argument("genome", nargs="?", default="best", help=genome_help + " (default best)")
    lineage.add_argument("--run-dir", **run_dir)
    lineage.add_argument("--out", help="also draw the tree into this .png or .svg file")
    show = commands.add_parser("show", help="a genome's train.py, or its diff from its parents or another genome")
    show.set_defaults(handler="evolve.inspect_cmds:show")
    show.add_argument("genome", help=genome_help)
    show.add_argument("--diff", nargs="?", const="", metavar="OTHER", help="diff from its parents (or from OTHER)")
    show.add_argument("--log", action="store_true", help="print the training log of each of its evaluations")
    show.add_argument("--run-dir", **run_dir)
    replay = commands.add_parser("replay", help="train a genome again exactly as recorded; compare val_bpb")
    replay.set_defaults(handler="evolve.replay:main")
    replay.add_argument("genome", help=genome_help)
    replay.add_argument("--run-dir", **run_dir)
    replay.add_argument("--repeats", type=int, default=1, help="replays to run (their spread is reported)")
    replay.add_argument("--profile", choices=profiles.NAMES, help="replay under another profile (not comparable)")
    replay.add_argument("--threads", type=int, help="CPU threads (default: as recorded)")
    report = commands.add_parser("report", help="progress.png, lineage.png, a summary and report.html")
    report.set_defaults(handler="evolve.report:main")
    report.add_argument("--run-dir", **run_dir)
    report.add_argument("--out", help="output directory (default RUN_DIR/report)")
    report.add_argument("--lineage", default="best", help="the genome whose lineage is drawn (default best)")
    status = commands.add_parser("status", help="one screen on a running or finished run")
    status.set_defaults(handler="evolve.inspect_cmds:status")
    status.add_argument("--run-dir", **run_dir)
    runs = commands.add_parser("runs", help="the runs under runs/ with their state, progress, best and size")
    runs.set_defaults(handler="evolve.inspect_cmds:runs")
    runs.add_argument("--root", type=Path, default=Path("runs"), help="where to look (default runs/)")


def parse(argv: list[str]) -> argparse.Namespace:
    """The parsed arguments; a misspelt run option is named as such (argparse would take its value for a command)."""
    parser = build_parser()
    try:
        return parser.parse_args(argv)
    except UsageError as e:
        unknown = unknown_option(parser, argv)
        if unknown and str(e).startswith(("argument command: invalid choice", "unrecognized arguments")):
            raise UsageError(unknown) from None
        raise


def unknown_option(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """'unknown option '--populaton' (did you mean --population?)' for the first run option not known, if any."""
    known = parser._option_string_actions  # argparse's own table of option strings
    for token in argv:
        if not token.startswith("-"):
            if token in COMMANDS:
                return None  # a command's own options are its parser's to judge
            continue
        flag = token.split("=", 1)[0]
        if flag not in known and flag != "--":
            close = difflib.get_close_matches(flag, [k for k in known if k.startswith("--")], n=1)
            return f"unknown option {flag!r}" + (f" (did you mean {close[0]}?)" if close else "")
    return None


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse(argv)
        if getattr(args, "handler", None):
            module, function = args.handler.split(":")
            return getattr(importlib.import_module(module), function)(args)
        raise UsageError(f"expected a command: {', '.join(COMMANDS)} (see --help)")
    except UsageError as e:
        print(f"evolve: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except StartupError as e:
        print(f"evolve: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("evolve: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `evolve show X | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
