"""Exploration (not a project command): what does a shorter served truncation cost and buy?

Run: .venv/bin/python docs/benchmarks/truncation/truncation.py runs/truncation 3000 [VARIANTS]
(needs runs/us-16 from `contrastgeo fit`, see docs/serving.md). Serves the model's int8
export (rerank on, its own prototypes) with the post truncated at 128 tokens (the length
it was trained with), 96, 64 and 48, on the last 3,000 labeled posts of the us-south file
(not held out: the same posts as int8-variants/), and prints each length's Acc@1 paired
with 128's on the same posts and its posts/s: batches of 32, the lengths taking turns
over 5 rounds, the median round's posts/s with the rounds' range.

VARIANTS (default "128,96,64,48"; the first is the baseline) are lengths. A plain length
truncates every post from its end (its profile location goes when its text is long); a
length with an "f" ("64f") cuts by field as the model does since 2026-12-07 (the
description first, then the text, never the profile location: ``model.post_budget``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.serving import labeled_posts
from model import ContrastGeo
from model.export import export_onnx
from model.prompts import load_locations, post_inputs
from stream.index import ALIAS, EdgeIndex
from stream.predictor import Predictor
from stream.prototypes import build_collection
from stream.runtime import OnnxModel
from trainer.metrics import paired_bootstrap

MODEL = Path("runs/us-16")
DATA = "../shared/data/us-south-tweets/tweets.jsonl.gz"
ROUNDS = 5


def main(work: Path, n: int, variants: list[str]) -> None:
    work.mkdir(parents=True, exist_ok=True)
    locations = load_locations(MODEL / "locations.jsonl")
    posts, labels = labeled_posts(DATA, "twitter-jsonl", locations)
    posts, gold = posts[-n:], [locations[i].id for i in labels[-n:]]  # the last n
    export = work / "export"
    if not (export / "encoder.int8.onnx").exists():
        export_onnx(ContrastGeo.load(MODEL), export, locations=locations)
    served = OnnxModel(export, precision="int8", threads=2)
    index = EdgeIndex(work / "index")
    index.set_alias(ALIAS, build_collection(index, served, locations))
    predictor = Predictor(served, index, k=served.manifest["rerank"]["k"], rerank=True)
    default_cut_order = served.config.prompts.post_cut_order
    texts = post_inputs(posts, served.config)  # before any cut
    tokens = np.array([int(served.tokenizer([t], 512)["attention_mask"].sum()) for t in texts])
    print(  # noqa: T201
        f"{n} posts, tokens p50 {np.median(tokens):.0f} p90 {np.percentile(tokens, 90):.0f} "
        f"p99 {np.percentile(tokens, 99):.0f} max {tokens.max()}"
    )

    def serve(variant: str) -> tuple[np.ndarray, float]:
        length = int(variant.rstrip("f"))
        encoder = served.config.encoder.model_copy(update={"post_max_length": length})
        cut_order = default_cut_order if variant.endswith("f") else ()
        prompts = served.config.prompts.model_copy(update={"post_cut_order": cut_order})
        served.config = served.config.model_copy(update={"encoder": encoder, "prompts": prompts})
        found: list[str] = []
        start = time.perf_counter()
        for i in range(0, len(posts), 32):
            found += [p.location.location_id for p in predictor.predict(posts[i : i + 32])]
        rate = len(posts) / (time.perf_counter() - start)
        return np.array([a == g for a, g in zip(found, gold, strict=True)], dtype=float), rate

    correct: dict[str, np.ndarray] = {}
    rates: dict[str, list[float]] = {v: [] for v in variants}
    serve(variants[0])  # warm-up
    for _ in range(ROUNDS):
        for variant in variants:
            correct[variant], rate = serve(variant)
            rates[variant].append(rate)
    first = variants[0]
    base = np.median(rates[first])
    for variant in variants:
        gap, low, high = paired_bootstrap([correct[variant] - correct[first]])
        cut = 100 * (tokens > int(variant.rstrip("f"))).mean()
        print(  # noqa: T201
            f"max {variant:>4} tokens: {cut:4.1f}% of posts cut, "
            f"Acc@1 {100 * correct[variant].mean():.2f}, minus {first} {100 * gap:+.2f} "
            f"[{100 * low:+.2f}, {100 * high:+.2f}], posts/s {np.median(rates[variant]):.1f} "
            f"({min(rates[variant]):.0f}-{max(rates[variant]):.0f}), "
            f"{np.median(rates[variant]) / base:.2f}x {first}'s",
            flush=True,
        )
    index.close()


if __name__ == "__main__":
    chosen = sys.argv[3] if len(sys.argv) > 3 else "128,96,64,48"
    main(Path(sys.argv[1]), int(sys.argv[2]), chosen.split(","))
