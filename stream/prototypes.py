"""Location prototypes: the vectors the index holds, one per candidate location.

Rule: ``prototype = normalize(e_prompt + w * sum(e_post)) / (1 + w * n)`` over the location's
n labeled posts, with ``w = support_weight``. The default ``w = 0`` keeps the prompt
embedding alone, because a trained ContrastGeo aligns posts *to the prompt embeddings* (TLC)
and the matching head was trained on them; the benchmark's frozen-encoder ``prototype``
baseline shows that averaging in raw post embeddings can hurt (docs/benchmarks.md).
A location with no labeled posts (a new one added at run time) always gets its prompt-only
prototype, so it can be served without retraining.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from model.prompts import Location
from stream.index import VectorIndex, collection_name
from stream.runtime import OnnxModel, normalize


def prototypes(
    model: OnnxModel,
    locations: Sequence[Location],
    support: dict[str, Sequence[Any]] | None = None,
    support_weight: float = 0.0,
) -> tuple[np.ndarray, list[int]]:
    """(N, D) prototypes and each location's support count (labeled posts used)."""
    vectors = model.embed_locations(locations)
    counts = [0] * len(locations)
    if support and support_weight > 0:
        for i, loc in enumerate(locations):
            posts = support.get(loc.id) or []
            if posts:
                emb = model.embed_posts(posts)
                vectors[i] = (vectors[i] + support_weight * emb.sum(0)) / (
                    1 + support_weight * len(posts)
                )
                counts[i] = len(posts)
        vectors = normalize(vectors)
    return vectors, counts


def point_id(location_id: str) -> int:
    """A stable 63-bit point id from the location id: re-adding a location overwrites it."""
    return int.from_bytes(hashlib.sha256(location_id.encode()).digest()[:8], "big") >> 1


def payload(location: Location, support: int, version: str) -> dict[str, Any]:
    return {**dataclasses.asdict(location), "support": support, "model_version": version}


def build_collection(
    index: VectorIndex,
    model: OnnxModel,
    locations: Sequence[Location],
    support: dict[str, Sequence[Any]] | None = None,
    support_weight: float = 0.0,
    batch: int = 1024,
) -> str:
    """Create (or rebuild) this model version's collection; returns its name. The alias is
    not touched: switch it with ``index.set_alias`` once the collection is complete."""
    name = collection_name(model.version)
    if index.exists(name):
        index.drop(name)
    index.create(name, model.manifest["embedding_dim"])
    vectors, counts = prototypes(model, locations, support, support_weight)
    for s in range(0, len(locations), batch):
        rows = range(s, min(s + batch, len(locations)))
        index.upsert(
            name,
            [point_id(locations[i].id) for i in rows],
            vectors[s : s + batch],
            [payload(locations[i], counts[i], model.version) for i in rows],
        )
    return name


def add_locations(
    index: VectorIndex, collection: str, model: OnnxModel, locations: Sequence[Location]
) -> list[int]:
    """Add prompt-only locations to a live collection (no retraining); returns their ids."""
    ids = [point_id(loc.id) for loc in locations]
    vectors, _ = prototypes(model, locations)
    index.upsert(collection, ids, vectors, [payload(loc, 0, model.version) for loc in locations])
    return ids
