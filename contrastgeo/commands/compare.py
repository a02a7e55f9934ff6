"""``contrastgeo compare``: paired differences in Acc@1 between benchmark results.

Three questions, each answered per shot count with the mean difference on the same test
posts and its paired bootstrap 95% interval (points), as markdown rows for the docs:

    contrastgeo compare RUN --against zero-shot       # methods of one run
    contrastgeo compare RUN OTHER_RUN                  # one method, two runs, same splits
    contrastgeo compare RUN --across-shots             # each shot count minus the one before

RUN is a ``contrastgeo benchmark --out`` folder or its ``results.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from contrastgeo.commands.data_args import str_list


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="a benchmark folder or its results.json")
    parser.add_argument(
        "other_run",
        type=Path,
        nargs="?",
        help="a second run on the same splits: RUN minus OTHER_RUN, method by method",
    )
    parser.add_argument(
        "--methods",
        type=str_list,
        default=("contrastgeo",),
        help="comma-separated methods to compare (default contrastgeo)",
    )
    parser.add_argument("--against", default=None, help="a method of RUN: each method minus it")
    parser.add_argument(
        "--across-shots",
        action="store_true",
        help="each shot count minus the one before, and the largest minus the smallest",
    )


def run(args: argparse.Namespace) -> int:
    from trainer.compare import across_shots, against, between_runs, load_results

    asked = [args.other_run is not None, args.against is not None, args.across_shots]
    if sum(asked) != 1:
        raise SystemExit("compare: give exactly one of OTHER_RUN, --against or --across-shots")
    methods = list(args.methods)
    try:
        results = load_results(args.run)
        if args.against is not None:
            lines = against(results, methods, args.against)
        elif args.across_shots:
            lines = across_shots(results, methods)
        else:
            other = load_results(args.other_run)
            names = (_name(args.run), _name(args.other_run))
            lines = between_runs(results, other, methods, names)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"compare: {error}") from None
    print("\n".join(lines))
    return 0


def _name(path: Path) -> str:
    """The run's folder name (``runs/sweep-nl-steps100/results.json`` -> ``sweep-nl-steps100``)."""
    return (path.parent if path.suffix == ".json" else path).name
