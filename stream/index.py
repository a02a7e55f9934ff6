"""Location prototypes in a vector index, behind one interface with two Qdrant backends.

- ``EdgeIndex``: Qdrant's own engine in-process (``qdrant-edge-py``), on disk, one shard
  per collection under a root folder; aliases are small JSON pointer files replaced
  atomically (``os.replace``). The default when no server URL is set. One writer at a time.
- ``ServerIndex``: ``qdrant-client`` against a Qdrant server (URL + API key) in production,
  or its local mode (``path=`` / ``:memory:``) in tests; aliases are Qdrant aliases.

A collection holds one model version's prototypes (``collection_name(version)``); the alias
(``ALIAS``) names the collection the workers serve, and switching it is one atomic step.
Point ids are integers (``stream.prototypes.point_id`` of the location id); payloads
carry location id, name, admin, country, lat/lon, support count and model version.
"""

from __future__ import annotations

import json
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.manifest import checked_name

ALIAS = "locations"


def collection_name(version: str, prefix: str = ALIAS) -> str:
    return f"{checked_name(prefix, 'alias')}-{checked_name(version)}"


def version_of(collection: str, prefix: str = ALIAS) -> str:
    return checked_name(collection.removeprefix(f"{prefix}-"))


@dataclass(frozen=True)
class Hit:
    id: int
    score: float  # cosine similarity
    payload: dict[str, Any]
    vector: np.ndarray | None = None


class VectorIndex(ABC):
    """The contract both backends pass (tests/stream/test_index_contract.py)."""

    @abstractmethod
    def create(self, collection: str, dim: int) -> None:
        """Create an empty cosine collection; error if it exists."""

    @abstractmethod
    def exists(self, collection: str) -> bool: ...

    @abstractmethod
    def drop(self, collection: str) -> None: ...

    @abstractmethod
    def upsert(
        self, collection: str, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict]
    ) -> None: ...

    @abstractmethod
    def delete(self, collection: str, ids: Sequence[int]) -> None: ...

    @abstractmethod
    def count(self, collection: str) -> int: ...

    @abstractmethod
    def query(
        self,
        collection: str,
        vectors: np.ndarray,
        k: int,
        where: dict[str, Any] | None = None,
        with_vectors: bool = False,
    ) -> list[list[Hit]]:
        """Top k per query vector, best first; ``where`` = payload equality conditions.
        ``collection`` may be an alias."""

    @abstractmethod
    def vectors(self, collection: str, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors (as the index scores them: normalized) of ``ids``, in their
        order: (len(ids), D); KeyError naming the ids that are not there."""

    @abstractmethod
    def set_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection`` in one atomic step."""

    @abstractmethod
    def resolve(self, alias: str) -> str | None:
        """The collection an alias points to, or None."""

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        pass

    def __enter__(self) -> VectorIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check(vectors: np.ndarray, ids: Sequence[int], payloads: Sequence[dict]) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(ids) or len(ids) != len(payloads):
        raise ValueError(
            f"upsert needs as many ids, vectors and payloads: {len(ids)}, "
            f"{vectors.shape}, {len(payloads)}"
        )
    return vectors


def _in_order(records: Sequence[Any], ids: Sequence[int], collection: str) -> np.ndarray:
    """Either backend's retrieved records (any order) -> their vectors in ``ids``' order."""
    found = {int(r.id): r.vector for r in records}
    missing = [int(i) for i in ids if int(i) not in found]
    if missing:
        raise KeyError(f"points {missing[:10]} are not in {collection!r}")
    return np.array([found[int(i)] for i in ids], dtype=np.float32).reshape(len(ids), -1)


def _hit(point: Any, with_vectors: bool) -> Hit:
    """Either backend's scored point (same attribute names) -> ``Hit``."""
    vector = np.asarray(point.vector, dtype=np.float32) if with_vectors else None
    return Hit(int(point.id), float(point.score), dict(point.payload or {}), vector)


# --------------------------------------------------------------------------- edge
class EdgeIndex(VectorIndex):
    def __init__(self, root: str | Path):
        self.root = Path(root)
        (self.root / "collections").mkdir(parents=True, exist_ok=True)
        (self.root / "aliases").mkdir(parents=True, exist_ok=True)
        self._shards: dict[str, Any] = {}

    def _path(self, collection: str) -> Path:
        return self.root / "collections" / checked_name(collection, "collection")

    def _shard(self, name: str) -> Any:
        import qdrant_edge as q

        collection = self.resolve(name) or name
        if collection not in self._shards:
            path = self._path(collection)
            if not path.exists():
                raise KeyError(f"no collection or alias {name!r} in {self.root}")
            self._shards[collection] = q.EdgeShard.load(str(path))
        return self._shards[collection]

    def create(self, collection: str, dim: int) -> None:
        import qdrant_edge as q

        if self.exists(collection):
            raise ValueError(f"collection {collection!r} exists")
        config = q.EdgeConfig(vectors=q.EdgeVectorParams(size=dim, distance=q.Distance.Cosine))
        self._shards[collection] = q.EdgeShard.create(str(self._path(collection)), config)

    def exists(self, collection: str) -> bool:
        return self._path(collection).exists()

    def drop(self, collection: str) -> None:
        shard = self._shards.pop(collection, None)
        if shard is not None:
            shard.close()
        shutil.rmtree(self._path(collection), ignore_errors=True)

    def upsert(self, collection, ids, vectors, payloads) -> None:
        import qdrant_edge as q

        vectors = _check(vectors, ids, payloads)
        points = [
            q.Point(int(i), v.tolist(), dict(p))
            for i, v, p in zip(ids, vectors, payloads, strict=True)
        ]
        shard = self._shard(collection)
        shard.update(q.UpdateOperation.upsert_points(points))
        shard.flush()

    def delete(self, collection, ids) -> None:
        import qdrant_edge as q

        shard = self._shard(collection)
        shard.update(q.UpdateOperation.delete_points([int(i) for i in ids]))
        shard.flush()

    def count(self, collection: str) -> int:
        return self._shard(collection).info().points_count

    def query(self, collection, vectors, k, where=None, with_vectors=False) -> list[list[Hit]]:
        import qdrant_edge as q

        condition = (
            q.Filter(
                must=[q.FieldCondition(key=key, match=q.MatchValue(v)) for key, v in where.items()]
            )
            if where
            else None
        )
        requests = [
            q.QueryRequest(
                limit=k,
                query=q.Query.Nearest(np.asarray(v, dtype=np.float32).tolist()),
                with_payload=True,
                with_vector=with_vectors,
                filter=condition,
            )
            for v in vectors
        ]
        results = self._shard(collection).query_batch(q.QueryBatchRequest(requests))
        return [[_hit(p, with_vectors) for p in points] for points in results]

    def vectors(self, collection, ids) -> np.ndarray:
        records = self._shard(collection).retrieve([int(i) for i in ids], False, True)
        return _in_order(records, ids, collection)

    def set_alias(self, alias: str, collection: str) -> None:
        if not self.exists(collection):
            raise KeyError(f"cannot point {alias!r} at missing collection {collection!r}")
        path = self.root / "aliases" / f"{checked_name(alias, 'alias')}.json"
        checked_name(collection, "collection")
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"collection": collection}))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def resolve(self, alias: str) -> str | None:
        path = self.root / "aliases" / f"{checked_name(alias, 'alias')}.json"
        if not path.exists():
            return None
        return checked_name(json.loads(path.read_text())["collection"], "collection")

    def close(self) -> None:
        for shard in self._shards.values():
            shard.close()
        self._shards.clear()


# ------------------------------------------------------------------------- server
class ServerIndex(VectorIndex):
    def __init__(self, client: Any):
        self.client = client

    @classmethod
    def connect(cls, url: str | None = None, api_key: str | None = None, path: str | None = None):
        """A Qdrant server by URL (+ API key), or qdrant-client's local mode at ``path``
        (``:memory:`` for a throwaway one)."""
        from qdrant_client import QdrantClient

        if url:
            return cls(QdrantClient(url=url, api_key=api_key))
        return cls(
            QdrantClient(location=":memory:")
            if path in (None, ":memory:")
            else QdrantClient(path=path)
        )

    def create(self, collection: str, dim: int) -> None:
        from qdrant_client import models

        if self.exists(collection):
            raise ValueError(f"collection {collection!r} exists")
        self.client.create_collection(
            collection,
            vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
        )

    def exists(self, collection: str) -> bool:
        return self.client.collection_exists(collection)

    def drop(self, collection: str) -> None:
        self.client.delete_collection(collection)

    def _name(self, name: str) -> str:
        return self.resolve(name) or name

    def upsert(self, collection, ids, vectors, payloads) -> None:
        from qdrant_client import models

        vectors = _check(vectors, ids, payloads)
        self.client.upsert(
            self._name(collection),
            points=[
                models.PointStruct(id=int(i), vector=v.tolist(), payload=dict(p))
                for i, v, p in zip(ids, vectors, payloads, strict=True)
            ],
            wait=True,
        )

    def delete(self, collection, ids) -> None:
        from qdrant_client import models

        self.client.delete(
            self._name(collection),
            points_selector=models.PointIdsList(points=[int(i) for i in ids]),
            wait=True,
        )

    def count(self, collection: str) -> int:
        return self.client.count(self._name(collection), exact=True).count

    def query(self, collection, vectors, k, where=None, with_vectors=False) -> list[list[Hit]]:
        from qdrant_client import models

        condition = (
            models.Filter(
                must=[
                    models.FieldCondition(key=key, match=models.MatchValue(value=v))
                    for key, v in where.items()
                ]
            )
            if where
            else None
        )
        requests = [
            models.QueryRequest(
                query=np.asarray(v, dtype=np.float32).tolist(),
                limit=k,
                filter=condition,
                with_payload=True,
                with_vector=with_vectors,
            )
            for v in vectors
        ]
        # the server resolves an alias itself: no round trip to look it up on each query
        responses = self.client.query_batch_points(collection, requests)
        return [[_hit(p, with_vectors) for p in r.points] for r in responses]

    def vectors(self, collection, ids) -> np.ndarray:
        records = self.client.retrieve(
            collection, [int(i) for i in ids], with_payload=False, with_vectors=True
        )
        return _in_order(records, ids, collection)

    def set_alias(self, alias: str, collection: str) -> None:
        from qdrant_client import models

        if not self.exists(collection):
            raise KeyError(f"cannot point {alias!r} at missing collection {collection!r}")
        actions: list[Any] = []
        if self.resolve(alias):
            actions.append(
                models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
            )
        actions.append(
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)
            )
        )
        self.client.update_collection_aliases(change_aliases_operations=actions)

    def resolve(self, alias: str) -> str | None:
        for a in self.client.get_aliases().aliases:
            if a.alias_name == alias:
                return a.collection_name
        return None

    def close(self) -> None:
        self.client.close()


def open_index(
    url: str | None = None, api_key: str | None = None, path: str | Path = "runs/index"
) -> VectorIndex:
    """A Qdrant server when ``url`` is set, else the embedded engine on disk at ``path``."""
    if url:
        return ServerIndex.connect(url=url, api_key=api_key)
    return EdgeIndex(path)
