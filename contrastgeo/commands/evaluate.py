"""``contrastgeo evaluate``: score a saved model on a labeled file.

Posts are labeled against the model's own candidate locations (``locations.jsonl``): a GPS
point within ``--radius-km`` of a candidate, a Twitter place with a candidate's name inside
its box, or an explicit ``location_id``. Other posts are counted and left out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from contrastgeo.commands.data_args import FORMATS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="a folder saved by fit")
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--radius-km", type=float, default=25.0)
    parser.add_argument("--out", type=Path, default=None, help="write the metrics JSON here")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from model import ContrastGeo
    from model.prompts import load_locations
    from trainer.data.catalogue import catalogue_of, label_records
    from trainer.data.readers import read_dataset
    from trainer.metrics import geolocation_metrics

    model = ContrastGeo.load(args.model)
    locations = load_locations(args.model / "locations.jsonl")
    data = read_dataset(args.data, args.format)
    labeling = label_records(data.records, catalogue_of(locations), args.radius_km)
    keep = np.flatnonzero(labeling.labels >= 0)
    if len(keep) == 0:
        raise SystemExit(f"no post in {args.data} falls on one of the model's locations")
    ranking = model.predict([data.records[i].post for i in keep], locations)
    lat = np.array([loc.lat for loc in locations])
    lon = np.array([loc.lon for loc in locations])
    metrics = geolocation_metrics(
        ranking.indices.numpy(), labeling.labels[keep], lat, lon, ranking.scores[:, 0].exp().numpy()
    )
    report = {
        "model": str(args.model),
        "data": [str(p) for p in args.data],
        "posts": len(keep),
        "labels": dict(labeling.report),
        "skipped_lines": dict(data.skipped),
        "metrics": metrics,
    }
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0
