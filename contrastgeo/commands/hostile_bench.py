"""``contrastgeo hostile-bench``: the worker's routing timed on crafted inputs of the
largest accepted size, one per way of trying to stall it (``benchmarks/hostile.py``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--size", type=int, default=990_000, help="payload bytes (default 990,000: under 1 MB)"
    )
    parser.add_argument("--key-bytes", type=int, default=700_000, help="Kafka key bytes")
    parser.add_argument("--out", type=Path, default=None, help="folder for JSON + Markdown")


def run(args: argparse.Namespace) -> int:
    from benchmarks import cpu_description, write_results
    from benchmarks.hostile import hostile, hostile_markdown
    from stream.settings import WorkerSettings

    results = hostile(WorkerSettings(), args.size, args.key_bytes)
    results["cpu"] = cpu_description()
    text = hostile_markdown(results) + f"\nCPU: {results['cpu']}\n"
    print(text)
    if args.out:
        write_results(args.out, "hostile", results, text)
    return 0
