"""The abstention table is computed on the score a worker serves: a worker given a row's
threshold answers that row's share of the same posts (within a point)."""

from __future__ import annotations

import asyncio
import random

import numpy as np

from contrastgeo.calibration import served_calibration
from refit.publish import serve
from schemas.events import GeotaggedPost
from schemas.posts import Post
from stream.geotagger import Geotagger
from stream.routing import Message
from stream.settings import WorkerSettings
from tests.support.data import LOCATIONS
from trainer.metrics import coverage_curve

WORDS = ["memphis", "nashville", "ghent", "split", "utrecht", "hello", "rain", "lunch", "back"]


def dev_posts(n: int = 200) -> tuple[list[Post], list[int]]:
    rng = random.Random(0)
    posts = [
        Post(id=f"d{i}", text=" ".join(rng.choices(WORDS, k=rng.randint(1, 6)))) for i in range(n)
    ]
    gold = [rng.randrange(len(LOCATIONS)) for _ in posts]
    return posts, gold


def answered_shares(settings: WorkerSettings, model, posts, thresholds) -> list[float]:
    """The share of ``posts`` a worker answers at each threshold, the model put into
    service the usual way (export, index, alias)."""
    settings.model_store.mkdir()
    serve(settings, model, LOCATIONS)
    messages = [
        Message("posts", 0, i, None, p.model_dump_json().encode()) for i, p in enumerate(posts)
    ]

    async def share(threshold: float) -> float:
        geotagger = Geotagger(settings.model_copy(update={"abstain_below": threshold}))
        await geotagger.wait_for_model()
        outputs = (await geotagger.process(messages)).outputs
        geotagger.close()
        events = [GeotaggedPost.model_validate_json(o.value) for o in outputs]
        return sum(not e.abstained for e in events) / len(events)

    return [asyncio.run(share(t)) for t in thresholds]


def test_a_rows_threshold_answers_its_share_when_served(make_model, tmp_path):
    # k = 3 of 5 locations: the served softmax is over the 3 retrieved, as in production
    # (10 of thousands), so PyTorch's scores would not do
    settings = WorkerSettings(model_store=tmp_path / "m", index_path=tmp_path / "i", top_k=3)
    model = make_model().eval()
    posts, gold = dev_posts()
    table = served_calibration(model, LOCATIONS, posts, gold, settings)
    # rows report what their threshold does (ties with the m-th post answered too)
    assert table[0]["coverage"] == 1.0 and 0.1 <= table[-1]["coverage"] < 0.2
    answered = answered_shares(settings, model, posts, [row["threshold"] for row in table])
    for row, share in zip(table, answered, strict=True):
        assert abs(share - row["coverage"]) <= 0.01, (row, share)

    # the old table, on PyTorch's scores (softmax over all locations): its thresholds
    # answer other shares once served
    ranking = model.predict(posts, LOCATIONS, k=3)
    pytorch = coverage_curve(ranking.scores[:, 0].exp().numpy(), np.ones(len(posts), bool))
    settings = settings.model_copy(
        update={"model_store": tmp_path / "m2", "index_path": tmp_path / "i2"}
    )
    answered = answered_shares(settings, model, posts, [row["threshold"] for row in pytorch])
    assert max(abs(s - row["coverage"]) for row, s in zip(pytorch, answered, strict=True)) > 0.05
