"""The rerank stage's candidate vectors, read from the index once per point.

The matching head needs each candidate's prototype vector. Returned with every query, they
are 640 vectors of 384 floats per batch of 64 posts: with the embedded engine about 13 ms
of turning them into Python lists and arrays (about as long as the search itself), and from
a Qdrant server as many bytes over the network per batch. The index is queried for ids,
scores and payloads only, and ``CandidateVectors`` supplies the vectors: read once per point
(``VectorIndex.vectors``), then kept.

A kept vector is used only while it agrees with the index: its cosine with the query must
equal the score the index returned for it. A point overwritten since it was read (a location
added again under the same id) fails that check and is read again, so the matching head
never sees another vector than the one the index scored. One cache serves one collection
(one model version); at most one vector per point of it is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stream.index import Hit, VectorIndex

# Cosines are float32 dot products of unit vectors: the index's and ours differ by about
# 1e-6. A changed vector moves the cosine by far more (unless it changes along a direction
# orthogonal to the query, when the matcher's input barely changes either).
SCORE_TOLERANCE = 1e-4


class CandidateVectors:
    def __init__(self, index: VectorIndex, collection: str, tolerance: float = SCORE_TOLERANCE):
        self.index, self.collection, self.tolerance = index, collection, tolerance
        self._row: dict[int, int] = {}  # point id -> row of _matrix
        self._matrix = np.empty((0, 1), dtype=np.float32)  # its width set by the first read
        self.reads = 0  # points read from the index (counted for tests and metrics)

    def __len__(self) -> int:
        return len(self._row)

    def __call__(self, queries: np.ndarray, hits: Sequence[Sequence[Hit]]) -> np.ndarray:
        """(B, K, D) vectors of the hits (B rows of K) retrieved for ``queries`` (B, D)."""
        ids = np.array([[h.id for h in row] for row in hits], dtype=np.int64)
        missing = {int(i) for i in ids.flat if int(i) not in self._row}
        if missing:
            self._read(sorted(missing))
        vectors = self._gather(ids)
        scores = np.array([[h.score for h in row] for row in hits], dtype=np.float32)
        cosine = np.einsum("bd,bkd->bk", queries.astype(np.float32), vectors)
        stale = np.abs(cosine - scores) > self.tolerance
        if stale.any():
            self._read(sorted({int(i) for i in ids[stale]}))
            vectors = self._gather(ids)
        return vectors

    def _gather(self, ids: np.ndarray) -> np.ndarray:
        rows = np.vectorize(self._row.__getitem__, otypes=[np.int64])(ids)
        return self._matrix[rows]

    def _read(self, ids: list[int]) -> None:
        vectors = self.index.vectors(self.collection, ids)
        self.reads += len(ids)
        new = [i for i in ids if i not in self._row]
        if new:
            size = len(self._row)
            if size + len(new) > len(self._matrix):  # grow by doubling
                rows = max(2 * len(self._matrix), size + len(new))
                grown = np.empty((rows, vectors.shape[1]), dtype=np.float32)
                grown[:size] = self._matrix[:size]
                self._matrix = grown
            for offset, i in enumerate(new):
                self._row[i] = size + offset
        self._matrix[[self._row[i] for i in ids]] = vectors
