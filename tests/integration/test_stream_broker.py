"""The service through a real broker: real tweets replayed into the input topic, a worker
subprocess, every input accounted for exactly once; and a worker killed with SIGKILL
mid-stream, restarted, losing nothing and duplicating at most one batch."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter

import pytest

from benchmarks.local import start_worker, stop_worker
from schemas.events import DeadLetter, GeotaggedPost, LabeledPost
from stream.replay import replay
from tests.support.data import real_tweets
from tests.support.service import (
    Feeder,
    Outputs,
    copy_version,
    stream_settings,
    wait_for,
    worker_http,
    worker_model_version,
)

BAD = [
    b"{not json",
    b'{"id_str": "x1", "user": [], "text": "wrong type"}',
    b"\xff\xfe\xfd",
    json.dumps({"id": "x2", "text": "y" * 30_000}).encode(),  # over max_text_chars
    b'{"id": "x3"}',
]
CONTROL = [b'{"delete": {"status": {"id": 1, "id_str": "1"}}}', b'{"limit": {"track": 12}}']


def interleave(tweets: list[bytes], extra: list[bytes], every: int = 37) -> list[bytes]:
    out, extra = [], list(extra)
    for i, tweet in enumerate(tweets):
        out.append(tweet)
        if i % every == 0 and extra:
            out.append(extra.pop())
    return out + extra


@pytest.mark.slow
def test_real_tweets_through_the_broker_are_each_accounted_for_once(broker, served, tmp_path):
    tweets = real_tweets(400)
    settings = stream_settings(broker, tmp_path, **served)
    payloads = interleave(tweets, BAD + CONTROL)
    refs = asyncio.run(replay(settings, payloads))
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        expected = {ref for ref, p in zip(refs, payloads, strict=True) if p not in CONTROL}
        outputs = Outputs(settings).wait(
            lambda o: set(o.input_refs()) >= expected, alive=lambda: worker.poll() is None
        )
        ready = json.loads(worker_http(settings, "/readyz"))
        metrics = worker_http(settings, "/metrics")
    finally:
        assert stop_worker(worker) == 0, (tmp_path / "worker.log").read_text()[-3000:]
    assert ready["ready"] and ready["model_version"]
    assert f"contrastgeo_posts_in_total {len(payloads)}.0" in metrics

    # exactly once: every input but the control notices, no input twice (no crash here)
    accounted = outputs.input_refs()
    assert Counter(accounted) == Counter(expected)
    # the outputs are valid events, keyed by post id
    s = settings
    geotagged = [
        GeotaggedPost.model_validate_json(r.value) for r in outputs.records[s.geotagged_topic]
    ]
    labeled = [LabeledPost.model_validate_json(r.value) for r in outputs.records[s.labeled_topic]]
    letters = [
        DeadLetter.model_validate_json(r.value) for r in outputs.records[s.dead_letter_topic]
    ]
    assert all(
        r.key == e.post_id.encode()
        for r, e in zip(outputs.records[s.geotagged_topic], geotagged, strict=True)
    )
    assert sorted(e.post_id for e in geotagged) == sorted(json.loads(t)["id_str"] for t in tweets)
    assert sorted(letter.payload for letter in letters) == sorted(BAD)
    carried = {e.post_id for e in geotagged if e.source != "model"}
    assert carried and {p.post.id for p in labeled} == carried
    assert all(e.model_version and e.candidates for e in geotagged if e.source == "model")


@pytest.mark.slow
def test_a_worker_killed_mid_stream_loses_nothing(broker, served, tmp_path):
    tweets = real_tweets(600)
    settings = stream_settings(broker, tmp_path, **served)
    feeder = Feeder(settings, tweets, rate=150)
    log = tmp_path / "worker.log"
    worker = start_worker(settings, log)
    feeder.start()
    try:
        Outputs(settings).wait(
            lambda o: len(o.input_refs()) >= 60, alive=lambda: worker.poll() is None
        )
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        worker = start_worker(settings, log)  # its replacement resumes from the last commit
        feeder.join()
        outputs = Outputs(settings).wait(
            lambda o: set(o.input_refs()) >= set(feeder.refs), alive=lambda: worker.poll() is None
        )
    finally:
        feeder.join()
        stop_worker(worker)
    counts = Counter(outputs.input_refs())
    assert set(counts) == set(feeder.refs)  # nothing lost
    duplicated = [ref for ref, n in counts.items() if n > 1]
    assert len(duplicated) <= settings.take_max  # at most the batch in flight
    by_ref: dict = {}
    for record in outputs.records[settings.geotagged_topic]:
        event = json.loads(record.value)
        by_ref.setdefault((event["input"]["partition"], event["input"]["offset"]), set()).add(
            record.key
        )
    assert all(len(keys) == 1 for keys in by_ref.values())  # a replayed input keeps its key


@pytest.mark.slow
def test_a_model_update_is_served_without_losing_a_post(broker, served, tmp_path):

    from refit.publish import announce, index_version
    from stream.index import EdgeIndex, version_of

    tweets = real_tweets(200)
    settings = stream_settings(
        broker, tmp_path, **served, reload_poll_s=3600
    )  # the event, not the poll
    first = asyncio.run(replay(settings, tweets[:100]))
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        Outputs(settings).wait(
            lambda o: set(o.input_refs()) >= set(first), alive=lambda: worker.poll() is None
        )
        index = EdgeIndex(settings.index_path)
        old = version_of(index.resolve(settings.index_alias))
        # "v2": the same graphs under a new version, indexed, alias switched, announced
        copy_version(settings, old, "v2")
        collection = index_version(settings, index, "v2")
        index.close()
        asyncio.run(announce(settings, "v2", collection, old))
        wait_for(lambda: worker_model_version(settings) == "v2", "the worker loaded v2")
        second = asyncio.run(replay(settings, tweets[100:]))
        outputs = Outputs(settings).wait(
            lambda o: set(o.input_refs()) >= set(first + second),
            alive=lambda: worker.poll() is None,
        )
    finally:
        stop_worker(worker)
    assert Counter(outputs.input_refs()) == Counter(first + second)  # none lost, none twice
    version_of_input = {
        (e["input"]["partition"], e["input"]["offset"]): e["model_version"]
        for e in outputs.events(settings.geotagged_topic)
        if e["source"] == "model"
    }
    assert {v for ref, v in version_of_input.items() if ref in set(first)} == {old}
    assert {v for ref, v in version_of_input.items() if ref in set(second)} == {"v2"}
