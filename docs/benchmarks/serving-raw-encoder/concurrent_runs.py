"""Exploration (not a project command): a batch's runs of 8 on one session with 2
intra-op threads, one after another (today), against runs spread over 2 Python threads on
a session with 1 intra-op thread each (onnxruntime releases the GIL in run). Needs
runs/us-16 exported:
    .venv/bin/contrastgeo export --model runs/us-16 --store runs/par/store
    PYTHONPATH=. .venv/bin/python docs/benchmarks/serving-raw-encoder/concurrent_runs.py \
        runs/par/store/<version> 32 5
Result, 2026-12-06, alone, AMD EPYC, 2 cores, avx2 fma avx512f avx512_vnni avx512_bf16:
    max abs diff 0.0
    2 intra-op threads, runs in turn: median 211.7 posts/s, rounds 193-266
    1 intra-op thread, 2 runs at once: median 209.2 posts/s, rounds 193-230
"""

import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from benchmarks.serving import labeled_posts
from model.prompts import load_locations
from stream.runtime import OnnxModel

folder, batch, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
locations = load_locations("runs/us-16/locations.jsonl")
posts, _ = labeled_posts(
    "../shared/data/us-south-tweets/tweets.jsonl.gz", "twitter-jsonl", locations
)
posts = posts[:1000]
seq = OnnxModel(folder, precision="int8", threads=2, batch_size=8)
one = OnnxModel(folder, precision="int8", threads=1, batch_size=8)
pool = ThreadPoolExecutor(2)


def encode_parallel(model, chunk):
    texts = model.post_texts(chunk)
    order = np.argsort([len(t) for t in texts], kind="stable")
    runs = [order[s : s + 8] for s in range(0, len(order), 8)]
    out = np.empty((len(texts), model.manifest["embedding_dim"]), dtype=np.float32)

    def run(idx):
        b = model.tokenizer([texts[i] for i in idx], 128)
        out[idx] = model.post_session.run(None, b)[0]

    list(pool.map(run, runs))
    return out


def rate(fn):
    fn(posts[:batch])
    t = time.perf_counter()
    for s in range(0, len(posts), batch):
        fn(posts[s : s + batch])
    return len(posts) / (time.perf_counter() - t)


a = seq.embed_posts(posts[:64])
b = encode_parallel(one, posts[:64])
print("max abs diff", float(np.abs(a - b).max()))  # noqa: T201
res = {"2 intra-op threads, runs in turn": [], "1 intra-op thread, 2 runs at once": []}
for _ in range(rounds):
    res["2 intra-op threads, runs in turn"].append(rate(seq.embed_posts))
    res["1 intra-op thread, 2 runs at once"].append(rate(lambda c: encode_parallel(one, c)))
for k, v in res.items():
    print(f"{k}: median {np.median(v):.1f} posts/s, rounds {min(v):.0f}-{max(v):.0f}")  # noqa: T201
