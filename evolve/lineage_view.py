"""`python -m evolve lineage [GENOME|best]`: a genome's ancestry as a tree, in the terminal or as an image.

The tree starts at the genome and goes back to the seed through every parent (both parents of a
crossover); an ancestor reached twice is shown in full once and then as "(shown above)". Each node
carries its id, operator, one-line description, mean val_bpb and its change from each parent.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from evolve.cli import UsageError
from evolve.lineage import lineage_view, text_lines
from evolve.runview import open_run, resolve, run_dir_arg

IMAGE_SUFFIXES = (".png", ".svg")


def main(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in IMAGE_SUFFIXES:
        raise UsageError(f"--out must end in .png or .svg, got {str(args.out)!r}")
    run_dir = run_dir_arg(args.run_dir)
    with open_run(run_dir) as pop:
        view = lineage_view(pop, resolve(pop, args.genome).id)
    width = shutil.get_terminal_size((120, 24)).columns
    print("\n".join(text_lines(view, width)))
    if out is not None:
        from evolve.figures import lineage_figure, save  # matplotlib only when an image is asked for

        out = out if out.is_absolute() else run_dir / "report" / out  # beside the report, not wherever we stand
        save(lineage_figure(view), out)
        print(f"wrote {out}")
    return 0
