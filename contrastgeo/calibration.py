"""The abstention table on the score the workers serve.

A worker's score is ``exp((1 - w) log p_TLC + w log p_TLM)`` with ``p_TLC`` a softmax over
the k candidates the index returned, computed by the exported (int8 on CPU) graphs: not the
PyTorch model's softmax over every location. A threshold read off a table of PyTorch scores
would answer another share of posts once served. So ``served_calibration`` exports the
model, indexes its locations in a throw-away embedded index, runs the workers' own
``Predictor`` over the dev posts and builds the coverage-vs-accuracy table
(``trainer.metrics.coverage_curve``) from those scores: set ``CONTRASTGEO_ABSTAIN_BELOW`` to
a row's threshold and a worker answers that row's share of such posts.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model.prompts import Location
from stream.settings import WorkerSettings


def served_calibration(
    model: Any,
    locations: Sequence[Location],
    posts: Sequence[Any],
    gold: Sequence[int],
    serving: WorkerSettings | None = None,
) -> list[dict[str, float]]:
    """Coverage, threshold and Acc@1 on ``posts`` (gold: indices into ``locations``), scored
    as a worker with the ``serving`` settings (precision, top_k, rerank; default: the
    environment's) would score them."""
    from refit.publish import export_to_store, index_version
    from stream.predictor import Predictor
    from trainer.metrics import coverage_curve

    serving = serving or WorkerSettings()
    with tempfile.TemporaryDirectory(prefix="calibration-") as tmp:
        settings = serving.model_copy(
            update={"model_store": Path(tmp) / "models", "index_path": Path(tmp) / "index"}
        )
        settings.model_store.mkdir()
        version = export_to_store(model, settings.model_store, locations)
        with settings.open_index() as index:
            collection = index_version(settings, index, version, locations, switch=False)
            predictor = Predictor(
                settings.load_model(version),
                index,
                collection,
                k=settings.top_k,
                rerank=settings.rerank,
            )
            predictions = predictor.predict(list(posts))
    ids = [locations[g].id for g in gold]
    scores = np.array([p.score for p in predictions])
    correct = np.array([p.location.location_id == i for p, i in zip(predictions, ids, strict=True)])
    return coverage_curve(scores, correct)
