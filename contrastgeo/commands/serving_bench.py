"""``contrastgeo serving-bench``: speed and accuracy of the serving path, in one run.

For a trained model folder and a labeled file: exports the model to a temporary store,
indexes its locations in Qdrant's embedded engine, and geolocates the same posts with
PyTorch eager, ONNX fp32, ONNX int8 and ONNX int8 with reduce-range (7-bit weights), each
with and without the TLM rerank stage. Prints posts/s, batch-latency percentiles, speed
ratios against PyTorch eager and Acc@1 of each; ``--out`` also writes them as JSON and
Markdown.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from contrastgeo.commands.data_args import FORMATS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="a folder saved by fit")
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--posts", type=int, default=1000, help="posts to geolocate (max)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="0 = all cores")
    parser.add_argument("--radius-km", type=float, default=25.0)
    parser.add_argument("--out", type=Path, default=None, help="folder for JSON + Markdown")


def run(args: argparse.Namespace) -> int:
    import tempfile

    import numpy as np

    from benchmarks import write_results
    from benchmarks.serving import measure_serving, speed_markdown
    from model import ContrastGeo
    from model.prompts import load_locations
    from trainer.data.catalogue import catalogue_of, label_records
    from trainer.data.readers import read_dataset

    model = ContrastGeo.load(args.model)
    locations = load_locations(args.model / "locations.jsonl")
    data = read_dataset(args.data, args.format)
    labels = label_records(data.records, catalogue_of(locations), args.radius_km).labels
    keep = np.flatnonzero(labels >= 0)[: args.posts]
    if len(keep) == 0:
        raise SystemExit("no post of the file falls on one of the model's locations")
    posts = [data.records[i].post for i in keep]
    with tempfile.TemporaryDirectory() as tmp:
        results = measure_serving(
            model, locations, posts, labels[keep], Path(tmp), args.batch_size, args.threads
        )
    results.update(model=str(args.model), data=[str(p) for p in args.data])
    text = speed_markdown(results)
    print(text)
    if args.out:
        write_results(args.out, "serving", results, text)
    return 0
