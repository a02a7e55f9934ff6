"""``contrastgeo export``: a saved model folder -> a versioned ONNX export in the model store.

Writes ``<store>/<version>/`` (graphs, int8 encoder, tokenizer, config, locations,
manifest with checksums) and prints the version. The store is ``--store`` or
``CONTRASTGEO_MODEL_STORE`` (default ``runs/models``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", type=Path, default=Path("runs/demo/model"), help="default runs/demo/model"
    )
    parser.add_argument("--store", type=Path, default=None, help="model store folder")
    parser.add_argument(
        "--int8", action=argparse.BooleanOptionalAction, default=True, help="also write int8"
    )
    parser.add_argument(
        "--reduce-range",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="int8 weights in 7 bits (default), correct on every x86 CPU; --no-reduce-range: "
        "8 bits, which can saturate on CPUs without VNNI (docs/serving.md)",
    )
    parser.add_argument(
        "--vnni-int8",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="beside 7-bit int8, an 8-bit int8 graph that workers on CPUs with VNNI serve "
        "(about a point of Acc@1 closer to fp32; default); --no-vnni-int8: a smaller export",
    )


def run(args: argparse.Namespace) -> int:
    from model import ContrastGeo
    from model.prompts import load_locations
    from refit.publish import export_to_store
    from stream.settings import ServiceSettings

    if not (args.model / "config.json").exists():
        raise SystemExit(f"{args.model} is not a saved model (run `contrastgeo example` or fit)")
    store = args.store or ServiceSettings().model_store
    model = ContrastGeo.load(args.model)
    locations_file = args.model / "locations.jsonl"
    locations = load_locations(locations_file) if locations_file.exists() else None
    version = export_to_store(model, store, locations, args.int8, args.reduce_range, args.vnni_int8)
    print(f"exported model version {version} to {store / version}")
    return 0
