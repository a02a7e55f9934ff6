"""``contrastgeo training-bench``: a training step's time and peak memory as the catalogue
grows, with the location encoder locked (the default), trained with the location bank, and
trained re-encoding every place (``benchmarks/training.py`` says how)."""

from __future__ import annotations

import argparse
from pathlib import Path

from contrastgeo.commands.data_args import encoder_names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--places", default="30,1000,10000", help="catalogue sizes, comma-separated"
    )
    parser.add_argument(
        "--plain-up-to", type=int, default=1000, help="also time the bank-free step up to here"
    )
    parser.add_argument(
        "--modes",
        default="locked,bank,plain",
        help="location sides to time, comma-separated: locked (frozen location encoder, the "
        "default for training), bank, plain (default: all three)",
    )
    parser.add_argument(
        "--checkpoints",
        type=encoder_names,
        default="minilm",
        help="named encoders to time, comma-separated (e.g. minilm,e5-small; default minilm)",
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps per size")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None, help="folder for JSON + Markdown")


def run(args: argparse.Namespace) -> int:
    from benchmarks import write_results
    from benchmarks.training import check_modes, measure_training, training_markdown

    sizes = [int(n) for n in args.places.split(",")]
    print(f"timing training steps at {sizes} places (one process each) ...")
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    try:
        check_modes(modes)
    except ValueError as error:
        print(f"--modes: {error}")
        return 2
    results = measure_training(
        sizes, args.plain_up_to, args.steps, args.batch_size, modes, list(args.checkpoints)
    )
    text = training_markdown(results)
    print(text)
    if args.out:
        write_results(args.out, "training", results, text)
    return 0
