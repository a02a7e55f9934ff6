"""Exploration (not a project command): what does a shorter served truncation cost and buy?

Run: .venv/bin/python docs/benchmarks/truncation/truncation.py runs/truncation 3000
(needs runs/us-16 from `contrastgeo fit`, see docs/serving.md). Serves the model's int8
export (rerank on, its own prototypes) with the post truncated at 128 tokens (the length
it was trained with), 96, 64 and 48, on the last 3,000 labeled posts of the us-south file
(not held out: the same posts as int8-variants/), and prints each length's Acc@1 paired
with 128's on the same posts and its posts/s: batches of 32, the lengths taking turns
over 5 rounds, the median round's posts/s with the rounds' range.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.serving import labeled_posts
from model import ContrastGeo
from model.export import export_onnx
from model.prompts import load_locations
from stream.index import ALIAS, EdgeIndex
from stream.predictor import Predictor
from stream.prototypes import build_collection
from stream.runtime import OnnxModel
from trainer.metrics import paired_bootstrap

MODEL = Path("runs/us-16")
DATA = "../shared/data/us-south-tweets/tweets.jsonl.gz"
LENGTHS = (128, 96, 64, 48)
ROUNDS = 5


def main(work: Path, n: int) -> None:
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
    texts = served.post_texts(posts)
    tokens = np.array([int(served.tokenizer([t], 512)["attention_mask"].sum()) for t in texts])
    print(  # noqa: T201
        f"{n} posts, tokens p50 {np.median(tokens):.0f} p90 {np.percentile(tokens, 90):.0f} "
        f"p99 {np.percentile(tokens, 99):.0f} max {tokens.max()}"
    )

    def serve(length: int) -> tuple[np.ndarray, float]:
        encoder = served.config.encoder.model_copy(update={"post_max_length": length})
        served.config = served.config.model_copy(update={"encoder": encoder})
        found: list[str] = []
        start = time.perf_counter()
        for i in range(0, len(posts), 32):
            found += [p.location.location_id for p in predictor.predict(posts[i : i + 32])]
        rate = len(posts) / (time.perf_counter() - start)
        return np.array([a == g for a, g in zip(found, gold, strict=True)], dtype=float), rate

    correct: dict[int, np.ndarray] = {}
    rates: dict[int, list[float]] = {length: [] for length in LENGTHS}
    serve(LENGTHS[0])  # warm-up
    for _ in range(ROUNDS):
        for length in LENGTHS:
            correct[length], rate = serve(length)
            rates[length].append(rate)
    base = np.median(rates[LENGTHS[0]])
    for length in LENGTHS:
        gap, low, high = paired_bootstrap([correct[length] - correct[LENGTHS[0]]])
        print(  # noqa: T201
            f"max {length:3d} tokens: {100 * (tokens > length).mean():4.1f}% of posts cut, "
            f"Acc@1 {100 * correct[length].mean():.2f}, minus 128 {100 * gap:+.2f} "
            f"[{100 * low:+.2f}, {100 * high:+.2f}], posts/s {np.median(rates[length]):.1f} "
            f"({min(rates[length]):.0f}-{max(rates[length]):.0f}), "
            f"{np.median(rates[length]) / base:.2f}x 128's",
            flush=True,
        )
    index.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
