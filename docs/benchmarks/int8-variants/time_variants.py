"""Exploration (not a project command): how fast is each int8 variant's raw encoder?

Run after int8_variants.py, alone on the machine:
    PYTHONPATH=. .venv/bin/python docs/benchmarks/int8-variants/time_variants.py \
        "int8-today-,7-bit,8-bit-unsigned" 3
(the folder names int8_variants.py made under runs/int8/work; "int8-today-" is its
"8-bit" variant, made when the script still named it "int8 (today)"). Times each variant's
served int8 encoder (compose, tokenize, run the graph, as serving-bench's raw encoder) on
the us-south file's first 1,000 labeled posts in batches of 32, the variants taking turns
over the rounds; prints the median round's posts/s and the range. Optional arguments after
the rounds, as int8_variants.py was given them: its work folder, the model folder, the
labeled file and its format (e.g. `runs/int8/work-nl-e5 runs/nl-16-e5
../shared/data/nl-tweets nl-tsv`).
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
MODEL = Path("runs/us-16")
DATA = "../shared/data/us-south-tweets/tweets.jsonl.gz"


def main(
    names: list[str],
    rounds: int,
    work: Path = WORK,
    model_dir: Path = MODEL,
    data: str = DATA,
    fmt: str = "twitter-jsonl",
) -> None:
    locations = load_locations(model_dir / "locations.jsonl")
    posts = labeled_posts(data, fmt, locations)[0][:1000]
    models = {n: OnnxModel(work / n, precision="int8", threads=2) for n in names}
    print(f"CPU: {cpu_description()}; {work}")  # noqa: T201
    rates: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(rounds):
        for name, model in models.items():
            rates[name].append(encoder_rate(model, posts, 32))
    for name, r in rates.items():
        print(f"{name:34s} {np.median(r):7.1f} posts/s  ({min(r):.0f}-{max(r):.0f})")  # noqa: T201


if __name__ == "__main__":
    names, rounds, *others = sys.argv[1:]
    paths = (Path(others[0]), Path(others[1])) if others else ()
    main(names.split(","), int(rounds), *paths, *others[2:4])
