"""What returning the candidates' vectors with every query costs the embedded engine.

A script, not a command (docs/serving.md, "The rerank's candidate vectors"), run from the
repository root:
    .venv/bin/python docs/benchmarks/index-vectors/index_vectors.py \
        > docs/benchmarks/index-vectors/result.md
64 random unit queries, top 10, over 30 and 7,500 random 384-d points with a location-like
payload; each figure is the mean of 20 queries after one warm-up.
"""

import tempfile
import time

import numpy as np

from benchmarks import cpu_description
from stream.index import EdgeIndex


def timed(fn, repeats=20) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return 1000 * (time.perf_counter() - start) / repeats


def main() -> None:
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(64, 384)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    lines = [
        f"CPU: {cpu_description()}",
        "",
        "| points | query with vectors (ms) | without (ms) | their vectors read by id once (ms) |",
        "|---:|---:|---:|---:|",
    ]
    for n in (30, 7500):
        index = EdgeIndex(tempfile.mkdtemp())
        vectors = rng.normal(size=(n, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        payload = {"name": "Memphis", "admin": "TN", "country": "US", "lat": 35.1, "lon": -90.0}
        index.create("c", 384)
        index.upsert("c", list(range(n)), vectors, [{**payload, "id": f"L{i}"} for i in range(n)])
        with_vectors = timed(lambda i=index: i.query("c", queries, 10, with_vectors=True))
        without = timed(lambda i=index: i.query("c", queries, 10))
        ids = sorted({h.id for row in index.query("c", queries, 10) for h in row})
        read = timed(lambda i=index, ids=ids: i.vectors("c", ids))
        lines.append(
            f"| {n:,} | {with_vectors:.1f} | {without:.1f} | {read:.1f} ({len(ids)} points) |"
        )
        index.close()
    print("\n".join(lines))  # noqa: T201 - the script's output is its table


if __name__ == "__main__":
    main()
