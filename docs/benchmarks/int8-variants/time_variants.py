"""Exploration (not a project command): how fast is each int8 variant's raw encoder?

Run after int8_variants.py, alone on the machine:
    PYTHONPATH=. .venv/bin/python docs/benchmarks/int8-variants/time_variants.py \
        "int8-today-,7-bit,8-bit-unsigned" 3
(the folder names int8_variants.py made under runs/int8/work; "int8-today-" is its
"8-bit" variant, made when the script still named it "int8 (today)"). Times each variant's
served int8 encoder (compose, tokenize, run the graph, as serving-bench's raw encoder) on
the us-south file's first 1,000 labeled posts in batches of 32, the variants taking turns
over the rounds; prints the median round's posts/s and the range.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from benchmarks import cpu_description
from benchmarks.serving import labeled_posts
from benchmarks.stream import encoder_rate
from model.prompts import load_locations
from stream.runtime import OnnxModel

WORK = Path("runs/int8/work")
DATA = "../shared/data/us-south-tweets/tweets.jsonl.gz"


def main(names: list[str], rounds: int) -> None:
    locations = load_locations(Path("runs/us-16/locations.jsonl"))
    posts = labeled_posts(DATA, "twitter-jsonl", locations)[0][:1000]
    models = {n: OnnxModel(WORK / n, precision="int8", threads=2) for n in names}
    print(f"CPU: {cpu_description()}")  # noqa: T201
    rates: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(rounds):
        for name, model in models.items():
            rates[name].append(encoder_rate(model, posts, 32))
    for name, r in rates.items():
        print(f"{name:34s} {np.median(r):7.1f} posts/s  ({min(r):.0f}-{max(r):.0f})")  # noqa: T201


if __name__ == "__main__":
    main(sys.argv[1].split(","), int(sys.argv[2]) if len(sys.argv) > 2 else 3)
