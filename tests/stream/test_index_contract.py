"""One contract, two backends: Qdrant's embedded engine (qdrant-edge-py, on disk) and
qdrant-client (local mode here; the same calls go to a Qdrant server in production)."""

from __future__ import annotations

import numpy as np
import pytest

from stream.index import collection_name
from tests.stream.conftest import DIM, points


def test_upsert_query_returns_exact_nearest_neighbours(make_index):
    index = make_index()
    name = collection_name("v1")
    index.create(name, DIM)
    ids, vectors, payloads = points(50)
    index.upsert(name, ids, vectors, payloads)
    assert index.count(name) == 50
    queries = vectors[:5] + 0.01
    hits = index.query(name, queries, k=3, with_vectors=True)
    expected = np.argsort(-(queries @ vectors.T), axis=1)[:, :3]
    assert [[h.id for h in row] for row in hits] == expected.tolist()
    top = hits[0][0]
    assert top.payload == payloads[top.id]
    np.testing.assert_allclose(top.vector, vectors[top.id], atol=1e-5)
    assert top.score == pytest.approx(
        float(queries[0] @ vectors[top.id] / np.linalg.norm(queries[0])), abs=1e-4
    )


def test_filter_upsert_overwrites_and_delete(make_index):
    index = make_index()
    index.create("c", DIM)
    ids, vectors, payloads = points(20)
    index.upsert("c", ids, vectors, payloads)
    hits = index.query("c", vectors[:3], k=5, where={"country": "US"})
    assert all(h.payload["country"] == "US" for row in hits for h in row)
    assert all(len(row) == 5 for row in hits)
    index.upsert("c", [0], vectors[1:2], [{"location_id": "moved", "country": "NL"}])
    assert index.query("c", vectors[1:2], k=2)[0][1].payload["location_id"] in {"moved", "L1"}
    assert index.count("c") == 20
    index.delete("c", [0, 1])
    assert index.count("c") == 18
    assert {h.id for h in index.query("c", vectors[1:2], k=18)[0]}.isdisjoint({0, 1})


def test_alias_switch_and_reopen_from_disk(make_index):
    index = make_index()
    for version, seed in (("v1", 0), ("v2", 1)):
        index.create(collection_name(version), DIM)
        ids, vectors, payloads = points(10, seed)
        index.upsert(
            collection_name(version),
            ids,
            vectors,
            [{**p, "model_version": version} for p in payloads],
        )
    assert index.resolve("locations") is None
    index.set_alias("locations", collection_name("v1"))
    probe = points(1, 5)[1]
    assert index.query("locations", probe, k=1)[0][0].payload["model_version"] == "v1"
    index.set_alias("locations", collection_name("v2"))
    assert index.resolve("locations") == collection_name("v2")
    assert index.query("locations", probe, k=1)[0][0].payload["model_version"] == "v2"
    with pytest.raises(KeyError):
        index.set_alias("locations", "missing")
    index.close()

    reopened = make_index()
    assert reopened.resolve("locations") == collection_name("v2")
    assert reopened.count(collection_name("v1")) == 10
    assert reopened.query("locations", probe, k=1)[0][0].payload["model_version"] == "v2"
    reopened.drop(collection_name("v1"))
    assert not reopened.exists(collection_name("v1"))


def test_bad_input_is_a_clear_error(make_index):
    index = make_index()
    index.create("c", DIM)
    with pytest.raises(ValueError, match="as many"):
        index.upsert("c", [1, 2], np.zeros((3, DIM)), [{}, {}])
    with pytest.raises(ValueError, match="exists"):
        index.create("c", DIM)


def test_vectors_are_read_by_id_in_the_order_asked(make_index):
    index = make_index()
    index.create(collection_name("v1"), DIM)
    ids, vectors, payloads = points(10)
    index.upsert(collection_name("v1"), ids, vectors, payloads)
    index.set_alias("locations", collection_name("v1"))
    np.testing.assert_allclose(index.vectors("locations", [7, 2, 7]), vectors[[7, 2, 7]], atol=1e-6)
    with pytest.raises(KeyError, match=r"\[99\]"):
        index.vectors("locations", [2, 99])
