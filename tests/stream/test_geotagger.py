"""The worker's logic without Kafka, on a tiny exported model in Qdrant's embedded engine:
outputs per route, model reloads (and refusals), and retries when the index fails."""

from __future__ import annotations

import asyncio
import json

import pytest
from structlog.testing import capture_logs

from refit.publish import index_version
from schemas.events import DeadLetter, GeotaggedPost, LabeledPost
from stream.geotagger import Geotagger
from stream.index import EdgeIndex
from stream.routing import Message
from stream.settings import WorkerSettings
from tests.support.service import copy_version

PAYLOADS = [
    json.dumps({"id": "p1", "text": "hello from memphis"}).encode(),
    json.dumps({"id": "p2", "text": "going to lunch", "user_location": "nashville"}).encode(),
    b"{broken",
    json.dumps(
        {
            "id_str": "g1",
            "text": "sunset",
            "coordinates": {"type": "Point", "coordinates": [3.72, 51.05]},
        }
    ).encode(),
    b'{"delete": {"status": {"id": 9}}}',
]


@pytest.fixture
def settings(served) -> WorkerSettings:
    return WorkerSettings(**served, precision="fp32")


def batch(payloads=PAYLOADS) -> list[Message]:
    return [Message("posts", 1, 100 + i, None, p) for i, p in enumerate(payloads)]


def test_a_batch_becomes_its_events(settings):
    async def go():
        geotagger = Geotagger(settings)
        await geotagger.wait_for_model()
        done = await geotagger.process(batch())
        assert "contrastgeo_posts_in_total 0.0" in geotagger.metrics.render().decode()
        with capture_logs() as logs:
            geotagger.delivered(done)  # counted once delivered, not when made
        geotagger.close()
        (line,) = [e for e in logs if e["event"] == "batch"]
        # the model's share of the batch's time is in its log line
        assert 0 < line["predict_ms"] <= line["ms"]
        assert (line["inputs"], line["predicted"], line["carried"]) == (5, 2, 1)
        return geotagger, done.outputs

    geotagger, outputs = asyncio.run(go())
    by_topic = {}
    for o in outputs:
        by_topic.setdefault(o.topic, []).append(o)
    geotagged = [
        GeotaggedPost.model_validate_json(o.value) for o in by_topic[settings.geotagged_topic]
    ]
    assert sorted(e.post_id for e in geotagged) == ["g1", "p1", "p2"]
    assert all(
        o.key == e.post_id.encode()
        for o, e in zip(by_topic[settings.geotagged_topic], geotagged, strict=True)
    )
    model_events = [e for e in geotagged if e.source == "model"]
    assert all(
        e.model_version == geotagger.version and len(e.candidates) == 5 for e in model_events
    )
    assert all(e.location.id == e.candidates[0].id for e in model_events)
    # the events carry the likeliest country (v2): its candidates' share of the scores
    for e in model_events:
        shares: dict[str, float] = {}
        for c in e.candidates:
            shares[c.country] = shares.get(c.country, 0.0) + c.score
        total = sum(shares.values())
        assert e.schema_version == 2 and e.admin is not None
        assert e.country.probability == pytest.approx(shares[e.country.name] / total, abs=1e-6)
        assert e.country.probability == pytest.approx(max(shares.values()) / total, abs=1e-6)
    (labeled,) = [
        LabeledPost.model_validate_json(o.value) for o in by_topic[settings.labeled_topic]
    ]
    assert (
        labeled.post.id == "g1"
        and labeled.source == "gps"
        and (labeled.lat, labeled.lon) == (51.05, 3.72)
    )
    (letter,) = [
        DeadLetter.model_validate_json(o.value) for o in by_topic[settings.dead_letter_topic]
    ]
    assert (
        letter.reason == "not-json" and letter.payload == b"{broken" and letter.input.offset == 102
    )
    # every input accounted for: 3 geotagged + 1 dead letter + 1 control notice skipped
    metrics = geotagger.metrics.render().decode()
    assert "contrastgeo_posts_in_total 5.0" in metrics
    assert 'contrastgeo_skipped_total{kind="delete"} 1.0' in metrics
    assert 'contrastgeo_dead_letters_total{reason="not-json"} 1.0' in metrics
    assert 'contrastgeo_posts_out_total{source="model"} 2.0' in metrics
    assert 'contrastgeo_posts_out_total{source="gps"} 1.0' in metrics
    assert "contrastgeo_labeled_posts_total 1.0" in metrics


def test_reload_switches_versions_and_refuses_a_corrupt_one(settings):
    async def go():
        geotagger = Geotagger(settings)
        await geotagger.wait_for_model()
        first = geotagger.version
        assert await geotagger.reload() is False  # nothing changed
        # a "new" version: the same export under another name, indexed, alias switched
        copy_version(settings, first, "v2")
        index = EdgeIndex(settings.index_path)
        index_version(settings, index, "v2")
        index.close()  # the embedded engine: one process holds a collection at a time
        assert await geotagger.reload() is True and geotagger.version == "v2"
        (out,) = (await geotagger.process(batch(PAYLOADS[:1]))).outputs
        assert GeotaggedPost.model_validate_json(out.value).model_version == "v2"
        # a corrupt version: refused, v2 keeps serving
        copy_version(settings, "v2", "v3")
        (settings.model_folder("v3") / "matcher.onnx").write_bytes(b"half written")
        # the alias names v3's collection (its prototypes are irrelevant: the load fails)
        (index.root / "aliases" / "locations.json").write_text('{"collection": "locations-v3"}')
        with capture_logs() as logs:
            assert await geotagger.reload() is False
        assert geotagger.version == "v2"
        assert any(
            e["event"].startswith("model refused") and e["log_level"] == "error" for e in logs
        )
        index.close()
        geotagger.close()
        return geotagger

    geotagger = asyncio.run(go())
    assert "contrastgeo_model_reload_failures_total 1.0" in geotagger.metrics.render().decode()


class FlakyIndex:
    """The real index, whose queries fail ``failures`` times first (an outage)."""

    def __init__(self, index, failures: int):
        self.index, self.failures = index, failures

    def query(self, *args, **kwargs):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("index unreachable")
        return self.index.query(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.index, name)


def test_prediction_is_retried_until_the_index_answers(settings):
    async def go():
        geotagger = Geotagger(settings, index=FlakyIndex(settings.open_index(), failures=2))
        await geotagger.wait_for_model()
        outputs = (await geotagger.process(batch(PAYLOADS[:2]))).outputs
        geotagger.close()
        return geotagger, outputs

    geotagger, outputs = asyncio.run(go())
    assert len(outputs) == 2  # nothing dropped, nothing dead-lettered
    assert "contrastgeo_predict_retries_total 2.0" in geotagger.metrics.render().decode()


def poison(predictor, text: str) -> None:
    """The served predictor fails on every batch that holds a post with this text (a post
    that breaks the model), and only then."""
    predict = predictor.predict

    def predict_or_fail(posts):
        if any(p.text == text for p in posts):
            raise ValueError("the model cannot read this post")
        return predict(posts)

    predictor.predict = predict_or_fail


def test_a_post_that_fails_once_alone_is_retried_not_blamed(settings):
    """A transient failure: the batch fails while it holds the post, and the post fails the
    first time it is tried alone, then goes through. It is geotagged, not dead-lettered."""
    payloads = [json.dumps({"id": f"p{i}", "text": f"hello {i}"}).encode() for i in range(5)]
    payloads[2] = json.dumps({"id": "shy", "text": "transient"}).encode()
    alone_tries = []

    async def go():
        geotagger = Geotagger(settings.model_copy(update={"retry_max_s": 0.01}))
        await geotagger.wait_for_model()
        predict = geotagger.predictor.predict

        def flaky(posts):
            held = any(p.text == "transient" for p in posts)
            if held and (len(posts) > 1 or not alone_tries):
                alone_tries.extend([1] if len(posts) == 1 else [])
                raise TimeoutError("a passing hiccup")
            return predict(posts)

        geotagger.predictor.predict = flaky
        outputs = (await geotagger.process(batch(payloads))).outputs
        geotagger.close()
        return outputs

    outputs = asyncio.run(go())
    assert alone_tries == [1]  # it did fail once alone
    assert sorted(o.topic for o in outputs) == [settings.geotagged_topic] * 5


def test_a_post_that_breaks_the_model_is_dead_lettered_alone(settings):
    payloads = [json.dumps({"id": f"p{i}", "text": f"hello {i}"}).encode() for i in range(7)]
    payloads[4] = json.dumps({"id": "bad", "text": "poison"}).encode()

    async def go():
        geotagger = Geotagger(settings.model_copy(update={"retry_max_s": 0.01}))
        await geotagger.wait_for_model()
        poison(geotagger.predictor, "poison")
        outputs = (await geotagger.process(batch(payloads))).outputs
        geotagger.close()
        return geotagger, outputs

    geotagger, outputs = asyncio.run(go())
    geotagged = [
        GeotaggedPost.model_validate_json(o.value)
        for o in outputs
        if o.topic == settings.geotagged_topic
    ]
    (letter,) = [
        DeadLetter.model_validate_json(o.value)
        for o in outputs
        if o.topic == settings.dead_letter_topic
    ]
    assert sorted(e.post_id for e in geotagged) == [f"p{i}" for i in range(7) if i != 4]
    assert letter.reason == "model-error" and letter.input.offset == 104
    assert "cannot read this post" in letter.detail and letter.payload == payloads[4]
    metrics = geotagger.metrics.render().decode()
    # predict_attempts (3) for the batch, then bisected; alone, the post is tried 3 times
    assert "contrastgeo_predict_retries_total 5.0" in metrics
    assert geotagger.ready


def test_when_every_post_fails_the_batch_waits_and_the_worker_turns_unready(settings):
    """The index down for everyone: the probe fails too, so no post is blamed; the batch is
    retried until the index answers, and /readyz says not ready meanwhile."""
    import time

    fast = settings.model_copy(update={"retry_max_s": 0.05, "unready_after_s": 0.3})

    async def go():
        index = FlakyIndex(fast.open_index(), failures=0)
        geotagger = Geotagger(fast, index=index)
        await geotagger.wait_for_model()
        index.failures = 10**9
        task = asyncio.create_task(geotagger.process(batch(PAYLOADS[:2])))
        start = time.monotonic()
        while geotagger.ready:
            assert time.monotonic() - start < 30, "never turned unready"
            await asyncio.sleep(0.05)
        assert not task.done()  # still retrying: nothing dropped, nothing dead-lettered
        index.failures = 0
        done = await task
        assert not geotagger.ready  # made, but not yet delivered
        geotagger.delivered(done)
        geotagger.close()
        return geotagger, done.outputs

    geotagger, outputs = asyncio.run(go())
    assert sorted(o.topic for o in outputs) == [settings.geotagged_topic] * 2
    assert geotagger.ready  # ready again once a batch goes through
