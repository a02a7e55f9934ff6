"""The rerank stage's candidate vectors (``stream.vector_cache``) over either index backend:
the vectors the index stores, read once per point, read again when a point changed."""

from __future__ import annotations

import numpy as np

from stream.index import collection_name
from stream.vector_cache import CandidateVectors
from tests.stream.conftest import DIM, points


def served(make_index, n=40):
    index = make_index()
    index.create(collection_name("v1"), DIM)
    ids, vectors, payloads = points(n)
    index.upsert(collection_name("v1"), ids, vectors, payloads)
    index.set_alias("locations", collection_name("v1"))
    return index, vectors


def queries(seed=1, n=6):
    q = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_candidates_get_the_vectors_the_index_returns_with_them(make_index):
    index, _ = served(make_index)
    q = queries()
    hits = index.query("locations", q, k=5, with_vectors=True)
    cache = CandidateVectors(index, "locations")
    got = cache(q, [[h for h in row] for row in hits])
    expected = np.stack([np.stack([h.vector for h in row]) for row in hits])
    assert got.shape == (6, 5, DIM)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_each_point_is_read_once(make_index):
    index, _ = served(make_index)
    q = queries()
    hits = index.query("locations", q, k=5)
    cache = CandidateVectors(index, "locations")
    cache(q, hits)
    distinct = {h.id for row in hits for h in row}
    assert cache.reads == len(distinct) == len(cache)
    again = cache(q, index.query("locations", q, k=5))
    assert cache.reads == len(distinct)  # nothing read again
    more = queries(seed=2, n=20)
    cache(more, index.query("locations", more, k=8))
    assert cache.reads == len(cache) > len(distinct)  # only the new points were read
    np.testing.assert_allclose(cache(q, hits), again)


def test_a_point_overwritten_after_it_was_read_is_read_again(make_index):
    index, vectors = served(make_index)
    q = queries(n=1)
    cache = CandidateVectors(index, "locations")
    top = index.query("locations", q, k=3)[0][0].id
    cache(q, index.query("locations", q, k=3))
    reads = cache.reads
    # the location is added again with another vector, still the query's nearest
    moved = q[0] + 0.3 * vectors[top]
    moved /= np.linalg.norm(moved)
    index.upsert(collection_name("v1"), [top], moved[None], [{"location_id": "again"}])
    hits = index.query("locations", q, k=3)
    assert hits[0][0].id == top
    got = cache(q, hits)
    np.testing.assert_allclose(got[0, 0], moved, atol=1e-6)
    assert cache.reads == reads + 1  # only the changed point
