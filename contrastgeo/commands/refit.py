"""``contrastgeo refit``: the periodic refit job (the Helm chart's CronJob).

Reads new labels from the labeled topic into the label store, trains a candidate from the
served model on new and sparse locations, promotes it only if it is not worse (see
``refit/job.py``), and writes a report to ``<model store>/reports/``.

Exit codes: 0 promoted or kept the current model (gate said no, nothing to refit, or
another refit running: routine outcomes, so a Job fails only when the refit does), 1 failed
(the current model keeps serving). The decision is in the log, the report and
``<model store>/reports/refit.prom``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-ingest",
        action="store_true",
        help="use the label store as it is (do not read the labeled topic first)",
    )
    parser.add_argument(
        "--catalogue",
        type=Path,
        default=None,
        help="catalogue file (`contrastgeo catalogue`) the stored posts are labeled with "
        "(default: CONTRASTGEO_REFIT_CATALOGUE, else GeoNames at "
        "CONTRASTGEO_REFIT_COUNTRIES / CONTRASTGEO_REFIT_MIN_POPULATION)",
    )


def run(args: argparse.Namespace) -> int:
    from refit.job import markdown, refit
    from refit.settings import RefitSettings

    override = {"refit_catalogue": args.catalogue} if args.catalogue else {}
    report = refit(RefitSettings(**override), ingest_labels=not args.no_ingest)
    print(markdown(report))
    return report.exit_code
