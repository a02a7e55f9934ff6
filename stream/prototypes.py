"""Location prototypes: the vectors the index holds, one per candidate location.

Rule (``model.prototypes.mix_prototypes``): ``normalize(e_prompt + w · Σ e_post)`` over the
location's labeled posts, with ``w = support_weight``. The default ``w = 0`` keeps the
prompt embedding alone, because a trained ContrastGeo aligns posts *to the prompt
embeddings* (TLC) and the matching head was trained on them; the benchmark's
``contrastgeo-prototypes`` (the same trained model served with mixed prototypes, w picked on
dev) measures what mixing would add (docs/experiments.md). A location with no labeled posts
(a new one added at run time) always gets its prompt-only prototype, so it can be served
without retraining.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from model.prompts import Location
from model.prototypes import mix_prototypes
from stream.index import VectorIndex, collection_name
from stream.runtime import OnnxModel


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
        sums = np.zeros_like(vectors)
        for i, loc in enumerate(locations):
            posts = support.get(loc.id) or []
            if posts:
                sums[i] = model.embed_posts(posts).sum(0)
                counts[i] = len(posts)
        vectors = mix_prototypes(vectors, sums, support_weight)
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
    upsert_prototypes(index, name, locations, vectors, counts, model.version, batch)
    return name


def upsert_prototypes(
    index: VectorIndex,
    collection: str,
    locations: Sequence[Location],
    vectors: np.ndarray,
    counts: Sequence[int],
    version: str,
    batch: int = 1024,
) -> list[int]:
    """Write the locations' prototypes (and payloads) in batches of ``batch`` points;
    returns their point ids."""
    ids = [point_id(loc.id) for loc in locations]
    for s in range(0, len(locations), batch):
        rows = range(s, min(s + batch, len(locations)))
        index.upsert(
            collection,
            ids[s : s + batch],
            vectors[s : s + batch],
            [payload(locations[i], counts[i], version) for i in rows],
        )
    return ids


def add_locations(
    index: VectorIndex, collection: str, model: OnnxModel, locations: Sequence[Location]
) -> list[int]:
    """Add prompt-only locations to a live collection (no retraining); returns their ids."""
    vectors, counts = prototypes(model, locations)
    return upsert_prototypes(index, collection, locations, vectors, counts, model.version)
