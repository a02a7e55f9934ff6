"""Fixtures of the stream tests: either index backend on disk under tmp_path."""

from __future__ import annotations

import numpy as np
import pytest

from stream.index import EdgeIndex, ServerIndex

DIM = 8


@pytest.fixture(params=["edge", "client"])
def make_index(request, tmp_path):
    """Factory: opens (or reopens) the backend's index stored under tmp_path."""
    opened = []

    def make():
        if request.param == "edge":
            index = EdgeIndex(tmp_path / "edge")
        else:
            index = ServerIndex.connect(path=str(tmp_path / "client"))
        opened.append(index)
        return index

    yield make
    for index in opened:
        index.close()


def points(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    payloads = [{"location_id": f"L{i}", "country": "US" if i % 2 else "NL"} for i in range(n)]
    return list(range(n)), vectors, payloads
