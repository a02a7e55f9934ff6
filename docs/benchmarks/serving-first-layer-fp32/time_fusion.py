"""Exploration (not a project command): does onnxruntime's fusion speed up today's int8?

Run alone, after `contrastgeo fit ... --out runs/us-16` (docs/serving.md):
    PYTHONPATH=. .venv/bin/python docs/benchmarks/serving-first-layer-fp32/time_fusion.py 32 5
Exports runs/us-16 twice, fused (today) and unfused (``optimize=False``), both as today's
exports otherwise, and times the raw encoder of each (compose, tokenize, run the graph, as
serving-bench's raw encoder) on the us-south file's first 1,000 labeled posts, in runs of
8 and in one run per batch, the four taking turns over the rounds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from benchmarks import cpu_description
from benchmarks.serving import labeled_posts
from benchmarks.stream import encoder_rate
from model import ContrastGeo
from model.export import export_onnx
from model.prompts import load_locations
from stream.runtime import OnnxModel

MODEL = Path("runs/us-16")
WORK = Path("runs/fusion")
DATA = "../shared/data/us-south-tweets/tweets.jsonl.gz"


def main(batch: int, rounds: int) -> None:
    model = ContrastGeo.load(MODEL)
    locations = load_locations(MODEL / "locations.jsonl")
    posts = labeled_posts(DATA, "twitter-jsonl", locations)[0][:1000]
    models = {}
    for name, optimize in (("fused", True), ("unfused", False)):
        if not (WORK / name).exists():
            export_onnx(model, WORK / name, locations=locations, optimize=optimize)
        for runs_of in (8, batch):
            models[f"{name}, runs of {runs_of}"] = OnnxModel(
                WORK / name, precision="int8", threads=2, batch_size=runs_of
            )
    print(f"CPU: {cpu_description()}; batch {batch}")  # noqa: T201
    rates: dict[str, list[float]] = {n: [] for n in models}
    for _ in range(rounds):
        for name, onnx in models.items():
            rates[name].append(encoder_rate(onnx, posts, batch))
    for name, r in rates.items():
        print(f"{name:28s} {np.median(r):7.1f} posts/s  ({min(r):.0f}-{max(r):.0f})")  # noqa: T201


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
