"""``contrastgeo serving-bench``: speed and accuracy of the serving path, in one run.

For a trained model folder and a labeled file: exports the model to a temporary store,
indexes its locations in Qdrant's embedded engine, and geolocates the same posts with
PyTorch eager, ONNX fp32, ONNX int8 (7-bit weights, the export's default) and ONNX int8
with 8-bit weights, each with and without the TLM rerank stage, and beside them the
previous path (8-bit int8 from the unfused graph, each batch in one run padded to its
longest post). Prints posts/s, batch-latency percentiles, speed ratios against PyTorch
eager and Acc@1 of each. Then the served path (ONNX int8, Qdrant, rerank) over indexes of
``--scales`` places (default 30, 7,500, 50,000: the model's own locations first, then the
world's most populous towns from GeoNames, or a ``--scale-places`` catalogue file), with
posts/s as a ratio to the smallest. ``--out`` also writes both as JSON and Markdown.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from contrastgeo.commands.data_args import FORMATS, encoder_names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="a folder saved by fit")
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--posts", type=int, default=1000, help="posts to geolocate (max)")
    parser.add_argument("--batch-size", type=int, default=32, help="posts per served batch")
    parser.add_argument(
        "--micro-batch",
        type=int,
        default=0,
        help="posts per encoder run within a batch (0 = the worker's default: 8 on CPU)",
    )
    parser.add_argument("--threads", type=int, default=0, help="0 = all cores")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="the paths take turns this many times; posts/s is the median round (default 3)",
    )
    parser.add_argument("--radius-km", type=float, default=25.0)
    parser.add_argument(
        "--scales",
        type=_sizes,
        default="30,7500,50000",
        help="index sizes (places) for the scale measurement, comma-separated; "
        "'' skips it (default 30,7500,50000)",
    )
    parser.add_argument(
        "--scale-places",
        type=Path,
        default=None,
        help="catalogue file (`contrastgeo catalogue`) whose places fill the indexes beyond "
        "the model's own (default: every GeoNames place of population >= 5,000, most "
        "populous first)",
    )
    parser.add_argument(
        "--encoders",
        type=encoder_names,
        default="",
        help="also time the served int8 encoder of these named encoders, comma-separated "
        "(e.g. minilm,e5-small,mpnet; untrained heads), with RSS and export size",
    )
    parser.add_argument(
        "--post-max-length",
        type=int,
        default=0,
        help="also serve today's int8 path with posts fitted to this many tokens, the "
        "description cut first (the worker's CONTRASTGEO_POST_MAX_LENGTH; 0: no such row)",
    )
    parser.add_argument("--out", type=Path, default=None, help="folder for JSON + Markdown")


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of sizes: {text!r}") from None
    if any(n < 2 for n in sizes):
        raise argparse.ArgumentTypeError(f"an index holds at least 2 places: {text!r}")
    return sizes


def run(args: argparse.Namespace) -> int:
    import tempfile

    import numpy as np

    from benchmarks import write_results
    from benchmarks.serving import (
        encoders_markdown,
        labeled_posts,
        measure_encoders,
        measure_scales,
        measure_serving,
        scale_markdown,
        scale_places,
        speed_markdown,
    )
    from contrastgeo.commands.data_args import read_catalogue
    from model import ContrastGeo
    from model.prompts import load_locations
    from stream.runtime import OnnxModel
    from trainer.data.catalogue import Catalogue, geonames_places

    if args.rounds < 1:
        raise SystemExit(f"--rounds must be at least 1, not {args.rounds}")
    encoders = list(args.encoders)
    model = ContrastGeo.load(args.model)
    locations = load_locations(args.model / "locations.jsonl")
    posts, labels = labeled_posts(args.data, args.format, locations, args.radius_km)
    posts, labels = posts[: args.posts], labels[: args.posts]
    if not posts:
        raise SystemExit("no post of the file falls on one of the model's locations")
    places = []
    if args.scales:
        if args.scale_places:
            more = read_catalogue(args.scale_places).locations
        else:
            world = geonames_places(None, min_population=5000)
            more = Catalogue(world, np.arange(len(world))).locations
        places = scale_places(locations, more, max(args.scales))
        if len(places) < max(args.scales):
            raise SystemExit(
                f"--scales asks for {max(args.scales)} places: the model's and the catalogue's "
                f"come to {len(places)}"
            )
    with tempfile.TemporaryDirectory() as tmp:
        results = measure_serving(
            model,
            locations,
            posts,
            labels,
            Path(tmp),
            args.batch_size,
            args.threads,
            args.micro_batch,
            args.rounds,
            args.post_max_length,
        )
        if places:
            onnx = OnnxModel(
                Path(tmp) / "export",
                precision="int8",
                threads=args.threads,
                batch_size=args.micro_batch,
            )
            results["scales"] = measure_scales(
                onnx, places, posts, Path(tmp), args.scales, args.batch_size
            )
        if encoders:
            results["encoders"] = measure_encoders(
                encoders,
                posts,
                locations,
                Path(tmp),
                args.batch_size,
                args.threads,
                args.micro_batch,
            )
    results.update(model=str(args.model), data=[str(p) for p in args.data])
    text = speed_markdown(results)
    if places:
        text += "\n" + scale_markdown(results["scales"])
    if encoders:
        text += "\n" + encoders_markdown(results["encoders"])
    print(text)
    if args.out:
        write_results(args.out, "serving", results, text)
    return 0
