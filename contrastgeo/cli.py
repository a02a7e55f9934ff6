"""``contrastgeo`` console script. Subcommands are imported lazily so ``--help`` is instant."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module under contrastgeo.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "the streaming service end to end on embedded defaults"),
    "example": ("example", "few-shot train on the bundled example and print predictions"),
    "catalogue": ("catalogue", "write a catalogue of candidate places from GeoNames"),
    "fit": ("fit", "train one model on a labeled file and save it"),
    "evaluate": ("evaluate", "score a saved model on a labeled file"),
    "benchmark": ("benchmark", "ContrastGeo against the baselines over shots and seeds"),
    "compare": ("compare", "paired differences in Acc@1 between methods, runs or shot counts"),
    "export": ("export", "export a saved model to ONNX (fp32 + int8) in the model store"),
    "index": ("index", "build location prototypes in the vector index and serve them"),
    "predict": ("predict", "geolocate posts with the served model"),
    "geotag": ("geotag", "geotag a file of posts with the served model, as a worker would"),
    "serving-bench": ("serving_bench", "speed of PyTorch vs ONNX fp32/int8, +/- rerank"),
    "broker": ("broker", "run the embedded Kafka-protocol broker (development)"),
    "worker": ("worker", "the streaming geotagger (faust worker)"),
    "replay": ("replay", "feed a file of posts into the input topic"),
    "stream-bench": ("stream_bench", "end-to-end throughput through the broker vs the encoder"),
    "soak": ("soak", "bounded soak: fixed rate through the broker, RSS/lag/latency sampled"),
    "refit": ("refit", "refit on newly labeled posts; promote only if not worse (CronJob)"),
    "refit-bench": ("refit_bench", "time a refit on N new locations x k labels of a dataset"),
    "training-bench": (
        "training_bench",
        "a training step's time and memory at 30 to 10,000 candidate places",
    ),
    "hostile-bench": (
        "hostile_bench",
        "the worker's routing time on crafted inputs of the largest accepted size",
    ),
    "footprint-bench": (
        "footprint_bench",
        "a worker's start time, memory and install size vs a baseline commit",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="contrastgeo",
        description="Few-shot geolocation of social posts (ContrastGeo).",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument(
        "--log-json",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="JSON log lines (default: when stderr is not a terminal)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.set_defaults(_module=module)
        _load(module).add_arguments(cmd)
    return parser


def _load(module: str):
    return importlib.import_module(f"contrastgeo.commands.{module}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from contrastgeo.logs import configure_logging

    configure_logging(args.log_level, args.log_json)
    return _load(args._module).run(args)


if __name__ == "__main__":
    sys.exit(main())
